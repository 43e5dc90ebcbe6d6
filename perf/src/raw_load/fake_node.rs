//! One end of one overlay link played by the load tool: the fake neighbour's socket on its
//! configured address, its link sender (packet numbers, headers) and the project's own sans-IO
//! [`LinkMonitor`], so the real data plane across the link sees hellos, echoes and incarnations
//! exactly as from a real neighbour and keeps the link up.
//!
//! The driver (generator or sink loop) feeds every class-0 datagram it receives from the real
//! node to [`FakeEnd::handle_control`] and calls [`FakeEnd::poll`] often enough (every few
//! milliseconds) for the monitor's hellos to go out on time. Only plain (unkeyed) links and
//! fake nodes with exactly one interface (so one path per link) are supported.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use anyhow::{Context, bail};
use weft_client::probe::monotonic_ns;
use weft_proto::forward::{LinkSender, hello_fields, hello_repr};
use weft_proto::link_monitor::VersionRange;
use weft_proto::link_monitor::{LinkEvent, LinkMonitor, LinkMonitorConfig, LocalIdentity};
use weft_shared::DropReason;
use weft_shared::config::Config;
use weft_shared::ids::{Incarnation, LinkId, NodeId, PathId};
use weft_shared::time::Instant;
use weft_shared::wire::{
    LinkRepr, Message, Packet, PacketType, WIRE_VERSION_MAX, WIRE_VERSION_MIN,
};

/// The monitor's clock: `CLOCK_MONOTONIC` (shared with the probe stamps).
pub fn now() -> Instant {
    Instant::from_nanos(monotonic_ns())
}

/// What one fake end counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndCounts {
    /// Hellos sent to the real node.
    pub hellos_sent: u64,
    /// Hellos that could not be sent (socket errors).
    pub hello_send_errors: u64,
    /// Hellos received from the real node.
    pub hellos_received: u64,
    /// Hellos the monitor refused (duplicates, mismatches, stale incarnations).
    pub hellos_ignored: u64,
    /// Class-0/1 datagrams that were not hellos for this link (feedback, control, malformed).
    pub other_control: u64,
    /// Times the link came up in this end's monitor.
    pub link_ups: u64,
    /// Times the link went down in this end's monitor (after it was first up).
    pub link_downs: u64,
    /// The path's smoothed RTT as this end measured it, in µs.
    pub srtt_us: Option<u32>,
    /// The longest time between two hellos received from the real node, in µs (its hello
    /// interval when nothing delays them).
    pub max_hello_gap_us: u64,
}

/// The fake neighbour's end of one link (see the module doc).
pub struct FakeEnd {
    link: LinkId,
    path: PathId,
    peer: NodeId,
    sock: UdpSocket,
    remote: SocketAddr,
    sender: LinkSender,
    monitor: LinkMonitor,
    incarnation: Incarnation,
    /// The real node echoed a hello of this incarnation: it hears us.
    echo_seen: bool,
    counts: EndCounts,
    last_hello: Option<Instant>,
    buf: [u8; 256],
}

impl FakeEnd {
    /// Plays node `me` on the link to `peer` from `config`: binds `me`'s one interface address
    /// and starts a link monitor with the config's timers and hash.
    pub fn new(
        config: &Config,
        me: NodeId,
        peer: NodeId,
        incarnation: Incarnation,
    ) -> anyhow::Result<Self> {
        let node = config
            .node(me)
            .with_context(|| format!("node {me} is not in the config"))?;
        if node.interfaces().len() != 1 {
            bail!(
                "node {me} must have exactly one interface (it has {})",
                node.interfaces().len()
            );
        }
        let link = config
            .link_between(me, peer)
            .with_context(|| format!("no link between nodes {me} and {peer}"))?;
        if link.key_file().is_some() {
            bail!(
                "link {} is keyed: weft-rawload speaks plain links only",
                link.id()
            );
        }
        let end = link.end(me).context("link end")?;
        let path = end.paths().next().context("link without a path")?;
        let sock = UdpSocket::bind(path.local.addr)
            .with_context(|| format!("bind node {me}'s address {}", path.local.addr))?;
        let local = LocalIdentity {
            incarnation,
            config_hash: config.hash().get(),
            versions: VersionRange {
                min: WIRE_VERSION_MIN,
                max: WIRE_VERSION_MAX,
            },
        };
        let paths = u8::try_from(link.paths().len()).unwrap_or(u8::MAX);
        let mc = LinkMonitorConfig::from_timers(config.timers(), paths, u64::from(link.id().get()));
        let monitor = LinkMonitor::new(mc, local, now())
            .map_err(|e| anyhow::anyhow!("link monitor for link {}: {e}", link.id()))?;
        Ok(FakeEnd {
            link: link.id(),
            path: path.id,
            peer,
            sock,
            remote: path.remote.addr,
            sender: LinkSender::new(me, incarnation, 0),
            monitor,
            incarnation,
            echo_seen: false,
            counts: EndCounts::default(),
            last_hello: None,
            buf: [0; 256],
        })
    }

    /// The socket on the fake node's address.
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// The real node's address on this link's path.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The link.
    pub fn link(&self) -> LinkId {
        self.link
    }

    /// What this end counted so far.
    pub fn counts(&self) -> EndCounts {
        EndCounts {
            srtt_us: self.srtt_us(),
            ..self.counts
        }
    }

    /// Whether the link is up in this end's monitor and the real node echoed our hellos (so
    /// it sees the link up too, one hello interval later at most).
    pub fn is_up(&self) -> bool {
        self.monitor.is_link_up() && self.echo_seen
    }

    /// The smoothed RTT of the path as this end measures it, in µs.
    pub fn srtt_us(&self) -> Option<u32> {
        self.monitor.path_stats(self.path).and_then(|s| s.srtt_us)
    }

    /// The link header of the next data packet (a fresh packet number on lane 0).
    pub fn data_header(&mut self) -> Result<LinkRepr, DropReason> {
        self.sender
            .next_header(self.link, self.path, PacketType::Data)
    }

    /// Handles one non-data datagram from the real node: a hello on this link goes to the
    /// monitor; anything else is counted.
    pub fn handle_control(&mut self, at: Instant, datagram: &[u8]) {
        let Ok(packet) = Packet::parse(datagram) else {
            self.counts.other_control += 1;
            return;
        };
        let rx = packet.header;
        if rx.packet_type != PacketType::Hello || rx.link != self.link || rx.sender != self.peer {
            self.counts.other_control += 1;
            return;
        }
        for record in packet.records() {
            let Ok(Message::Hello(hello)) = record.and_then(|r| Message::parse(&r)) else {
                self.counts.other_control += 1;
                continue;
            };
            self.counts.hellos_received += 1;
            if let Some(last) = self.last_hello {
                let gap = at.saturating_duration_since(last).as_micros();
                let gap = u64::try_from(gap).unwrap_or(u64::MAX);
                self.counts.max_hello_gap_us = self.counts.max_hello_gap_us.max(gap);
            }
            self.last_hello = Some(at);
            if hello
                .echo
                .is_some_and(|e| e.incarnation == self.incarnation)
            {
                self.echo_seen = true;
            }
            let fields = hello_fields(&rx, &hello, self.incarnation);
            if self.monitor.handle_hello(at, rx.path, &fields).is_err() {
                self.counts.hellos_ignored += 1;
            }
        }
        self.drain_events();
    }

    /// Runs the monitor's due timers and sends its due hellos (each alone).
    pub fn poll(&mut self, at: Instant) {
        if self.monitor.poll_timeout().is_some_and(|t| t <= at) {
            self.monitor.handle_timeout(at);
        }
        while let Some((path, fields)) = self.monitor.poll_transmit(at) {
            let hello = hello_repr(&fields, self.monitor.peer_incarnation());
            let sent = self
                .sender
                .write_hello(&mut self.buf, self.link, path, &hello)
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|n| self.sock.send_to(&self.buf[..n], self.remote));
            match sent {
                Ok(_) => self.counts.hellos_sent += 1,
                Err(_) => self.counts.hello_send_errors += 1,
            }
        }
        self.drain_events();
    }

    /// When [`poll`](Self::poll) is next needed.
    pub fn next_timeout(&self) -> Instant {
        self.monitor.poll_timeout().unwrap_or(Instant::FAR_FUTURE)
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.monitor.poll_event() {
            match event {
                LinkEvent::LinkUp => self.counts.link_ups += 1,
                LinkEvent::LinkDown => self.counts.link_downs += 1,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let mut t = String::from("schema = 1\n[overlay]\nname = \"t\"\n");
        for n in 1..=3 {
            // A free port from the kernel, released for the fake end to bind.
            let port = UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .unwrap()
                .port();
            t += &format!(
                "[[node]]\nid = {n}\nname = \"n{n}\"\ncores = [0]\nsession_socket = \"/tmp/x{n}.sock\"\nctl_socket = \"/tmp/x{n}.ctl\"\n[[node.interface]]\nisp = \"a\"\naddr = \"127.0.0.1:{port}\"\n"
            );
        }
        t += "[[link]]\nid = 0\nnodes = [1, 2]\ncost = 1000\n[[link]]\nid = 1\nnodes = [2, 3]\ncost = 1000\n";
        Config::from_toml_str(&t, "t.toml").unwrap()
    }

    #[test]
    fn two_fake_ends_bring_their_link_up_on_each_other() {
        // Nodes 1 and 2 of link 0, both played here, on the config's addresses.
        let cfg = config();
        let n = |i| NodeId::new(i).unwrap();
        let mut a = FakeEnd::new(&cfg, n(1), n(2), Incarnation(7)).unwrap();
        let mut b = FakeEnd::new(&cfg, n(2), n(1), Incarnation(9)).unwrap();
        for s in [&a.sock, &b.sock] {
            s.set_nonblocking(true).unwrap();
        }
        let mut buf = [0u8; 2048];
        let start = std::time::Instant::now();
        while !(a.is_up() && b.is_up()) {
            assert!(
                start.elapsed().as_secs() < 5,
                "{:?} {:?}",
                a.counts(),
                b.counts()
            );
            for e in [&mut a, &mut b] {
                e.poll(now());
                while let Ok((len, _)) = e.sock.recv_from(&mut buf) {
                    e.handle_control(now(), &buf[..len]);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(a.counts().link_ups, 1);
        assert_eq!(b.counts().link_downs, 0);
        assert!(a.srtt_us().is_some());
        assert!(a.counts().max_hello_gap_us > 0);
        let h = a.data_header().unwrap();
        assert_eq!(
            (h.link, h.sender, h.packet_type),
            (LinkId::new(0).unwrap(), n(1), PacketType::Data)
        );
    }
}
