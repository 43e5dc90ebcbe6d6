//! [`Ingress`]: local UDP datagrams into one overlay flow.
//!
//! One loop, one thread: `poll` on the UDP socket and the session socket, then read datagrams
//! (up to [`READ_BURST`] per turn) into the FIFO, then send from the FIFO's front as many as
//! the flow's credits take, in batches of up to [`SEND_BATCH`] (one write each). Every datagram
//! goes through the FIFO, so order is kept whatever the credits do.
//!
//! The destination is one node's port, or a group's: every member of a multicast group gets
//! each message (the overlay copies it once per tree link), the nearest member of an anycast
//! group gets it. The gateway sends the same way to all three.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use weft_shared::session::{Destination, MAX_PAYLOAD};

use super::config::{DestinationText, IngressSpec};
use super::counters::{IngressCounters, IngressStats, add, raise, set};
use super::fifo::DatagramFifo;
use super::{GatewayError, Warning};
use crate::client::Client;
use crate::error::{ClientError, ServerError};
use crate::service::{Addr, Flow};

/// Datagrams read from the UDP socket per turn of the loop, at most.
pub const READ_BURST: usize = 64;

/// Messages encoded into one write to the node, at most.
pub const SEND_BATCH: usize = 64;

/// A UDP datagram's largest payload is 65,507 B (IPv4) or 65,527 B (IPv6): this buffer holds
/// any of them whole, so an oversize datagram is seen at its full length, never cut.
const DATAGRAM_BUF: usize = 65_536;

/// How long the loop sleeps at most between checks of the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// An open ingress gateway: a UDP socket, a session with the local node and one flow.
#[derive(Debug)]
pub struct Ingress {
    spec: IngressSpec,
    client: Client,
    flow: Flow,
    from: Addr,
    udp: UdpSocket,
    local: SocketAddr,
    fifo: DatagramFifo,
    buf: Box<[u8]>,
    max_payload: usize,
    counters: Arc<IngressCounters>,
    /// Waiting for credit since the last send that went through.
    starved: bool,
    warn_oversize: Warning,
    warn_full: Warning,
    warn_node: Warning,
}

impl Ingress {
    /// Connects to the node, binds the UDP address and the overlay port and opens the flow.
    /// Each failure says which step failed: no node at the socket, the UDP address in use, the
    /// overlay port in use, the service refused.
    pub fn open(spec: &IngressSpec) -> Result<Ingress, GatewayError> {
        let mut client = Client::connect(&spec.socket, "weft-gateway-ingress")
            .map_err(GatewayError::node("connecting to the local node"))?;
        let node = client.node();
        let max_payload = usize::try_from(client.welcome().max_payload)
            .unwrap_or(MAX_PAYLOAD)
            .min(MAX_PAYLOAD);
        let udp = UdpSocket::bind(spec.listen).map_err(|source| GatewayError::Listen {
            addr: spec.listen,
            source,
        })?;
        let local = udp.local_addr().map_err(|source| GatewayError::Listen {
            addr: spec.listen,
            source,
        })?;
        udp.set_nonblocking(true)
            .map_err(|source| GatewayError::Udp {
                addr: local,
                source,
            })?;
        let port = client
            .bind(spec.from_port)
            .map_err(GatewayError::node(format!(
                "binding overlay port {} on node {node}",
                spec.from_port
            )))?;
        let flow = client
            .open_flow(port, spec.to, spec.service)
            .map_err(GatewayError::node(format!(
                "opening a flow from {node}:{port} to {} with service {}",
                DestinationText(spec.to),
                super::ServiceText(spec.service)
            )))?;
        client.set_nonblocking(true);
        Ok(Ingress {
            spec: spec.clone(),
            client,
            flow,
            from: Addr { node, port },
            udp,
            local,
            fifo: DatagramFifo::new(spec.queue.datagrams, spec.queue.bytes, max_payload),
            buf: vec![0; DATAGRAM_BUF].into_boxed_slice(),
            max_payload,
            counters: Arc::new(IngressCounters::default()),
            starved: false,
            warn_oversize: Warning::default(),
            warn_full: Warning::default(),
            warn_node: Warning::default(),
        })
    }

    /// What it maps.
    pub fn spec(&self) -> &IngressSpec {
        &self.spec
    }

    /// The UDP address it receives on (the port the system chose, for a `listen` port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The overlay address it sends from.
    pub fn from(&self) -> Addr {
        self.from
    }

    /// The largest datagram it carries: the node's payload limit.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Its counters, shared with whoever prints them.
    pub fn counters(&self) -> Arc<IngressCounters> {
        Arc::clone(&self.counters)
    }

    /// Runs until `stop` is set (checked at least every 50 ms) or a fatal error: the node went
    /// away, refused the flow's service, or the UDP socket failed.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), GatewayError> {
        while !stop.load(Ordering::Relaxed) {
            self.wait(TICK)?;
            self.pump_node()?;
            self.read_udp()?;
            self.send_queued()?;
        }
        Ok(())
    }

    /// Sleeps until a datagram or something from the node arrives, the session socket takes
    /// pending output, or `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> Result<(), GatewayError> {
        let mut session = PollFlags::POLLIN;
        if self.client.has_pending_output() {
            session |= PollFlags::POLLOUT;
        }
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [
            PollFd::new(self.udp.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.client.as_fd(), session),
        ];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(e) => Err(GatewayError::Udp {
                addr: self.local,
                source: io::Error::from(e),
            }),
        }
    }

    /// Takes in what the node sent (credits, errors) without waiting.
    fn pump_node(&mut self) -> Result<(), GatewayError> {
        match self.client.poll_io(Some(Duration::ZERO)) {
            Ok(()) | Err(ClientError::ReceiveQueueFull { .. }) => {}
            Err(e) => return Err(GatewayError::node("talking to the local node")(e)),
        }
        self.drain_unexpected()
    }

    /// Discards messages sent to the gateway's own overlay port, counting them.
    fn drain_unexpected(&mut self) -> Result<(), GatewayError> {
        loop {
            match self.client.try_recv(&mut self.buf) {
                Ok(Some(_)) => add(&self.counters.unexpected, 1),
                Ok(None) => return Ok(()),
                Err(e) => return Err(GatewayError::node("talking to the local node")(e)),
            }
        }
    }

    /// Reads up to [`READ_BURST`] datagrams into the FIFO, dropping (and counting) those too
    /// large for the node and those that find the FIFO full.
    fn read_udp(&mut self) -> Result<(), GatewayError> {
        for _ in 0..READ_BURST {
            let n = match self.udp.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(GatewayError::Udp {
                        addr: self.local,
                        source,
                    });
                }
            };
            let c = &self.counters;
            add(&c.received, 1);
            add(&c.received_bytes, n as u64);
            if n > self.max_payload {
                add(&c.dropped_oversize, 1);
                let max = self.max_payload;
                self.warn_oversize.warn(
                    &self.spec,
                    &format_args!(
                        "dropped a datagram of {n} B: the overlay carries at most {max} B per \
                         message (for MPEG-TS, send 1316-byte datagrams: pkt_size=1316)"
                    ),
                );
                continue;
            }
            let datagram = self.buf.get(..n).unwrap_or_default();
            if !self.fifo.push(datagram) {
                add(&c.dropped_queue_full, 1);
                let (q, b) = (self.fifo.len(), self.fifo.bytes());
                self.warn_full.warn(
                    &self.spec,
                    &format_args!(
                        "dropped a datagram: {q} datagrams ({b} B) already wait for credit \
                         (the overlay is slower than the stream)"
                    ),
                );
            }
        }
        let queued = self.fifo.len() as u64;
        set(&self.counters.queued, queued);
        raise(&self.counters.queued_peak, queued);
        Ok(())
    }

    /// Sends from the FIFO's front while the flow has credit and the session socket room.
    fn send_queued(&mut self) -> Result<(), GatewayError> {
        while !self.fifo.is_empty() {
            let mut batch: [&[u8]; SEND_BATCH] = [&[]; SEND_BATCH];
            let n = self.fifo.len().min(SEND_BATCH);
            for (i, slot) in batch.iter_mut().take(n).enumerate() {
                *slot = self.fifo.get(i).unwrap_or_default();
            }
            let batch = batch.get(..n).unwrap_or_default();
            match self.client.try_send_batch(&self.flow, batch) {
                Ok(sent) => {
                    self.fifo.pop(sent);
                    add(&self.counters.sent, sent as u64);
                    self.starved = false;
                }
                Err(ClientError::WouldBlock) => {
                    if self.client.credits(&self.flow) == Some(0) && !self.starved {
                        self.starved = true;
                        add(&self.counters.credit_waits, 1);
                    }
                    break;
                }
                Err(ClientError::ReceiveQueueFull { .. }) => self.drain_unexpected()?,
                // The node's error for an earlier send; nothing of this batch went out.
                Err(ClientError::Server(e)) => self.on_send_error(e)?,
                Err(e) => return Err(GatewayError::node("sending to the local node")(e)),
            }
        }
        set(&self.counters.queued, self.fifo.len() as u64);
        set(&self.counters.node_dropped, self.client.stats().send_errors);
        Ok(())
    }

    /// An `Error` the node returned for a send: a message it dropped. Dropped messages are
    /// counted (`node_dropped`) and warned about; errors that say the flow cannot go on end
    /// the gateway.
    fn on_send_error(&mut self, e: ServerError) -> Result<(), GatewayError> {
        match e {
            ServerError::Unreachable { .. }
            | ServerError::Internal { .. }
            | ServerError::NoCredit { .. }
            | ServerError::MessageTooLarge { .. } => {
                // A group no member has joined yet (or whose joins have not reached this
                // node) has no tree: the node drops the message as "no group members".
                let hint = match self.spec.to {
                    Destination::Node { .. } => "",
                    Destination::Multicast { .. } | Destination::Anycast { .. } => {
                        " (for a group: no member has joined it, or the joins have not \
                         reached this node yet)"
                    }
                };
                self.warn_node.warn(
                    &self.spec,
                    &format_args!("the node dropped a message: {e}{hint}"),
                );
                Ok(())
            }
            other => Err(GatewayError::node(format!(
                "sending to {} with service {}",
                DestinationText(self.spec.to),
                super::ServiceText(self.spec.service)
            ))(ClientError::Server(other))),
        }
    }

    /// Stops: sends what is still queued (waiting up to `linger` for credit), counts the rest
    /// as `dropped_at_stop`, waits up to `linger` for the node to send on what it holds, and
    /// ends the session. Returns the final counters.
    pub fn finish(mut self, linger: Duration) -> IngressStats {
        let deadline = Instant::now() + linger;
        while !self.fifo.is_empty() && Instant::now() < deadline {
            let step = self
                .wait(TICK)
                .and_then(|()| self.pump_node())
                .and_then(|()| self.send_queued());
            if step.is_err() {
                break;
            }
        }
        add(&self.counters.dropped_at_stop, self.fifo.len() as u64);
        self.fifo.pop(usize::MAX);
        set(&self.counters.queued, 0);
        self.client.set_nonblocking(false);
        let left = deadline.saturating_duration_since(Instant::now());
        // Going away drops what the node still queues for the flow: give it time to send.
        let _ = self.client.linger(left.max(Duration::from_millis(100)));
        set(&self.counters.node_dropped, self.client.stats().send_errors);
        let _ = self.client.close();
        self.counters.snapshot()
    }
}
