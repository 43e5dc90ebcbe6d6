//! [`Egress`]: messages delivered to one overlay port, out as UDP datagrams to one local
//! address, unchanged, in the order the node delivers them.
//!
//! The messages are those sent to the port bound on the node (`NODE:PORT`), those sent to
//! `group:GROUP:PORT` or `anycast:GROUP:PORT` of the group the egress joined, or both. A
//! member gets every message of its group whatever its port: those for another port of the
//! group are counted (`other_port`) and discarded, so several streams can share a group. Each
//! egress joined to a group gets its own copy of every message, on one node or many.
//!
//! The UDP socket is connected to the deliver address, so the kernel reports a receiver that
//! is not there (ICMP port unreachable, `ECONNREFUSED` on the next send); the gateway counts
//! that (`refused`), retries the datagram once and goes on, so a player may start after the
//! gateway.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use weft_shared::ids::{GroupId, NodeId, Port};
use weft_shared::session::{DeliveredTo, MAX_PAYLOAD};

use super::config::EgressSpec;
use super::counters::{EgressCounters, EgressStats, add};
use super::seq::{SeqCheck, SeqEvent};
use super::{GatewayError, Warning};
use crate::client::Client;
use crate::queue::Delivered;

/// How long a receive waits at most between checks of the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// An open egress gateway: a session with the local node bound to one overlay port or joined
/// to a group (or both), and a UDP socket connected to the deliver address.
#[derive(Debug)]
pub struct Egress {
    spec: EgressSpec,
    node: NodeId,
    client: Client,
    udp: UdpSocket,
    buf: Box<[u8]>,
    counters: Arc<EgressCounters>,
    seq: SeqCheck,
    warn_send: Warning,
    warn_seq: Warning,
}

impl Egress {
    /// Connects to the node, makes the UDP socket, binds the overlay port and joins the group
    /// (as the spec asks). Each failure says which step failed: no node at the socket, a
    /// deliver address this host cannot send to, the overlay port in use, a join the node
    /// refused (too many groups).
    pub fn open(spec: &EgressSpec) -> Result<Egress, GatewayError> {
        let mut client = Client::connect(&spec.socket, "weft-gateway-egress")
            .map_err(GatewayError::node("connecting to the local node"))?;
        let node = client.node();
        let deliver_err = |source| GatewayError::Deliver {
            addr: spec.deliver,
            source,
        };
        let any: SocketAddr = match spec.deliver {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let udp = UdpSocket::bind(any).map_err(deliver_err)?;
        udp.connect(spec.deliver).map_err(deliver_err)?;
        if spec.bind {
            let port = client.bind(spec.port).map_err(GatewayError::node(format!(
                "binding overlay port {} on node {node}",
                spec.port
            )))?;
            debug_assert_eq!(port, spec.port, "a non-zero port binds as asked");
        }
        if let Some(group) = spec.join {
            client.join(group).map_err(GatewayError::node(format!(
                "joining group {group} on node {node}"
            )))?;
        }
        Ok(Egress {
            spec: spec.clone(),
            node,
            client,
            udp,
            buf: vec![0; MAX_PAYLOAD].into_boxed_slice(),
            counters: Arc::new(EgressCounters::default()),
            seq: SeqCheck::new(),
            warn_send: Warning::default(),
            warn_seq: Warning::default(),
        })
    }

    /// What it maps.
    pub fn spec(&self) -> &EgressSpec {
        &self.spec
    }

    /// The overlay port it receives on (bound, or the joined group's port it delivers).
    pub fn port(&self) -> Port {
        self.spec.port
    }

    /// The group it joined, if any.
    pub fn group(&self) -> Option<GroupId> {
        self.spec.join
    }

    /// The node it is a client of.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Whether a delivered message is this mapping's: to the bound port, or to the joined
    /// group's port (multicast or anycast).
    fn wanted(&self, d: &Delivered) -> bool {
        match d.to {
            DeliveredTo::Node => self.spec.bind && d.to_port == self.spec.port,
            DeliveredTo::Multicast(g) | DeliveredTo::Anycast(g) => {
                self.spec.join == Some(g) && d.to_port == self.spec.port
            }
        }
    }

    /// Its counters, shared with whoever prints them.
    pub fn counters(&self) -> Arc<EgressCounters> {
        Arc::clone(&self.counters)
    }

    /// Runs until `stop` is set (checked at least every 50 ms) or the node goes away.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), GatewayError> {
        while !stop.load(Ordering::Relaxed) {
            match self.client.recv_timeout(&mut self.buf, TICK) {
                Ok(Some(d)) => self.deliver(&d),
                Ok(None) => {}
                Err(e) => return Err(GatewayError::node("receiving from the local node")(e)),
            }
        }
        Ok(())
    }

    /// Sends one delivered message on as a datagram, and checks its sequence number; a group
    /// message for another port is counted and dropped.
    fn deliver(&mut self, d: &Delivered) {
        let c = &self.counters;
        if !self.wanted(d) {
            add(&c.other_port, 1);
            return;
        }
        add(&c.delivered, 1);
        add(&c.delivered_bytes, d.len as u64);
        match self.seq.record(d.from, d.flow, d.seq) {
            SeqEvent::NewStream => add(&c.streams, 1),
            SeqEvent::InOrder => {}
            SeqEvent::Gap { missing } => {
                add(&c.gaps, 1);
                add(&c.missing, missing);
                self.warn_seq.warn(
                    &self.spec,
                    &format_args!(
                        "{missing} message(s) from {} missing before sequence number {}",
                        d.from, d.seq
                    ),
                );
            }
            SeqEvent::Late => {
                add(&c.late, 1);
                self.warn_seq.warn(
                    &self.spec,
                    &format_args!("message {} from {} came late (reordered)", d.seq, d.from),
                );
            }
        }
        if d.truncated {
            // Cannot happen (the buffer holds the protocol's largest payload); never send a
            // changed datagram.
            add(&c.truncated, 1);
            return;
        }
        let payload = self.buf.get(..d.len).unwrap_or_default();
        let mut retried = false;
        loop {
            match self.udp.send(payload) {
                Ok(_) => {
                    add(&c.sent, 1);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A pending error from an earlier datagram: nothing listened then. The error
                // is cleared by reporting it; this datagram was not sent, so send it again.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && !retried => {
                    add(&c.refused, 1);
                    retried = true;
                }
                Err(e) => {
                    add(&c.send_errors, 1);
                    let to = self.spec.deliver;
                    self.warn_send.warn(
                        &self.spec,
                        &format_args!("dropped a datagram: sending to {to} failed: {e}"),
                    );
                    return;
                }
            }
        }
    }

    /// Ends the session and returns the final counters.
    pub fn finish(self) -> EgressStats {
        let stats = self.counters.snapshot();
        let _ = self.client.close();
        stats
    }
}
