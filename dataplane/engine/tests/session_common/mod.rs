//! Helpers shared by the `real_session_*` tests: a [`SessionServer`] on a socket in a temp dir,
//! driven by a `poll(2)` loop in the test thread; a recording sink; and a raw test client that
//! speaks the protocol with the codec from `weft_shared::session`.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use weft_dataplane::session::{
    ClientId, ClientStatus, FlowService, OutboundMessage, SessionConfig, SessionServer, SessionSink,
};
use weft_shared::DropReason;
use weft_shared::ids::{FlowId, GroupId, NodeId, Port};
use weft_shared::session::{
    ClientMessage, DeliveredTo, DeliveryMode, Destination, ErrorCode, FlowHandle, Hello,
    LinkProtocol, OpenFlow, RecvBuf, RoutingMode, ServerMessage, Strikes, Welcome, encode_frame,
};

/// The node id every test server uses.
pub(crate) const NODE: u16 = 7;

/// How long any wait in these tests may take before it fails.
pub(crate) const LIMIT: Duration = Duration::from_secs(10);

/// One message the sink accepted, with its payload copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) src_port: Port,
    pub(crate) flow: FlowId,
    pub(crate) seq: u64,
    pub(crate) dst: Destination,
    pub(crate) service: FlowService,
    pub(crate) payload: Vec<u8>,
}

/// A sink that records everything; it refuses `Send`s whose payload starts with `b"drop"`
/// (`QueueFull`) and flows to port 666 (`Unsupported`).
#[derive(Debug, Default)]
pub(crate) struct RecordingSink {
    pub(crate) sends: Vec<Sent>,
    pub(crate) opened: Vec<FlowId>,
    pub(crate) closed: Vec<FlowId>,
    pub(crate) joined: Vec<(GroupId, ClientId)>,
    pub(crate) left: Vec<(GroupId, ClientId)>,
}

impl SessionSink for RecordingSink {
    fn send(&mut self, msg: &OutboundMessage<'_>) -> Result<(), DropReason> {
        if msg.payload.starts_with(b"drop") {
            return Err(DropReason::QueueFull);
        }
        self.sends.push(Sent {
            src_port: msg.src_port,
            flow: msg.flow,
            seq: msg.seq,
            dst: msg.dst,
            service: msg.service,
            payload: msg.payload.to_vec(),
        });
        Ok(())
    }

    fn flow_opened(
        &mut self,
        flow: FlowId,
        _src_port: Port,
        dst: Destination,
        _service: &FlowService,
    ) -> Result<(), ErrorCode> {
        if dst.port() == Port(666) {
            return Err(ErrorCode::Unsupported);
        }
        self.opened.push(flow);
        Ok(())
    }

    fn flow_closed(&mut self, flow: FlowId) {
        self.closed.push(flow);
    }

    fn joined(&mut self, group: GroupId, client: ClientId) {
        self.joined.push((group, client));
    }

    fn left(&mut self, group: GroupId, client: ClientId) {
        self.left.push((group, client));
    }
}

/// A server in a temp dir plus the test's run loop.
pub(crate) struct Harness {
    pub(crate) server: SessionServer,
    pub(crate) sink: RecordingSink,
    /// Clients the loop watches, in accept order.
    pub(crate) watched: Vec<ClientId>,
    /// Clients `handle_readable` reported closed (and that were reaped), in order.
    pub(crate) closed: Vec<ClientId>,
    /// `handle_readable` calls made for pending input (not for a readiness event).
    pub(crate) pending_turns: u64,
    pub(crate) path: PathBuf,
    dir: PathBuf,
}

impl Harness {
    /// A server for node [`NODE`] with `cfg`, on a fresh socket path named after `test`.
    pub(crate) fn new(test: &str, cfg: SessionConfig) -> Self {
        let dir = std::env::temp_dir().join(format!("weft-sessrv-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("session.sock");
        let server = SessionServer::bind(&path, NodeId::new(NODE).unwrap(), cfg).unwrap();
        Harness {
            server,
            sink: RecordingSink::default(),
            watched: Vec::new(),
            closed: Vec::new(),
            pending_turns: 0,
            path,
            dir,
        }
    }

    /// One loop turn: poll (up to 1 ms), accept, read the readable clients, serve pending
    /// input, reap closed clients, flush.
    pub(crate) fn step(&mut self) {
        let mut fds = vec![PollFd::new(self.server.listener_fd(), PollFlags::POLLIN)];
        for &c in &self.watched {
            fds.push(PollFd::new(
                self.server.client_fd(c).unwrap(),
                PollFlags::POLLIN,
            ));
        }
        poll(&mut fds, PollTimeout::from(1u16)).unwrap();
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        if ready[0] {
            let watched = &mut self.watched;
            self.server.handle_accept(&mut |_fd, id| watched.push(id));
        }
        let mut closed = Vec::new();
        let readable: Vec<ClientId> = self
            .watched
            .iter()
            .zip(&ready[1..])
            .filter(|(_, r)| **r)
            .map(|(c, _)| *c)
            .collect();
        for c in readable {
            if self.server.handle_readable(c, &mut self.sink) == ClientStatus::Closed {
                closed.push(c);
            }
        }
        let mut prev = None;
        while let Some(c) = self.server.next_pending(prev) {
            prev = Some(c);
            self.pending_turns += 1;
            if self.server.handle_readable(c, &mut self.sink) == ClientStatus::Closed {
                closed.push(c);
            }
        }
        for c in closed {
            if let Some(i) = self.watched.iter().position(|&w| w == c) {
                self.watched.remove(i);
                self.server.reap(c);
                self.closed.push(c);
            }
        }
        self.server.flush();
    }

    /// Steps until `done` holds, failing the test after [`LIMIT`].
    pub(crate) fn until(&mut self, what: &str, mut done: impl FnMut(&mut Self) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
            self.step();
        }
    }

    /// Steps until `c` has a message, and returns it.
    pub(crate) fn recv(&mut self, c: &mut TestClient) -> (u32, Msg) {
        let start = Instant::now();
        loop {
            c.poll();
            if let Some(m) = c.inbox.pop_front() {
                return m;
            }
            assert!(!c.eof, "connection closed while waiting for a message");
            assert!(start.elapsed() < LIMIT, "timed out waiting for a message");
            self.step();
        }
    }

    /// Steps until `c` has a message other than `Credit`, and returns it.
    pub(crate) fn reply(&mut self, c: &mut TestClient) -> (u32, Msg) {
        loop {
            match self.recv(c) {
                (_, Msg::Credit(..)) => {}
                m => return m,
            }
        }
    }

    /// Sends `msg` and returns its reply, checking that it echoes the request id.
    pub(crate) fn request(&mut self, c: &mut TestClient, msg: &ClientMessage<'_>) -> Msg {
        let id = c.send(msg);
        let (rid, reply) = self.reply(c);
        assert_eq!(rid, id, "reply {reply:?} to request {id}");
        reply
    }

    /// Steps until the server has closed `c`'s connection; returns what arrived before.
    pub(crate) fn wait_closed(&mut self, c: &mut TestClient) -> Vec<(u32, Msg)> {
        let start = Instant::now();
        loop {
            c.poll();
            if c.eof {
                return c.inbox.drain(..).collect();
            }
            assert!(start.elapsed() < LIMIT, "timed out waiting for the close");
            self.step();
        }
    }

    /// A connected client that completed the handshake as `name`.
    pub(crate) fn connect(&mut self, name: &str) -> (TestClient, Welcome) {
        let mut c = TestClient::connect(&self.path);
        let hello = ClientMessage::Hello(Hello {
            min_version: 1,
            max_version: 1,
            name,
        });
        match self.request(&mut c, &hello) {
            Msg::Welcome(w) => (c, w),
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    /// Binds `port` for `c`, expecting `Bound`.
    pub(crate) fn bind(&mut self, c: &mut TestClient, port: u16) -> Port {
        match self.request(c, &ClientMessage::Bind { port: Port(port) }) {
            Msg::Bound(p) => p,
            other => panic!("expected Bound, got {other:?}"),
        }
    }

    /// Opens a best-effort link-state flow from `port` to node 2 port 9, expecting
    /// `FlowOpened`; returns the handle and its credits.
    pub(crate) fn open_flow(&mut self, c: &mut TestClient, port: u16) -> (FlowHandle, u32) {
        match self.request(c, &ClientMessage::OpenFlow(best_effort(port, 9))) {
            Msg::FlowOpened(h, credits) => (h, credits),
            other => panic!("expected FlowOpened, got {other:?}"),
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A best-effort, link-state flow from `port` to node 2, port `dst_port`.
pub(crate) fn best_effort(port: u16, dst_port: u16) -> OpenFlow {
    OpenFlow {
        local_port: Port(port),
        destination: Destination::Node {
            node: NodeId::new(2).unwrap(),
            port: Port(dst_port),
        },
        protocol: LinkProtocol::BestEffort,
        routing: RoutingMode::LinkState,
        priority: 0,
        deadline_us: 0,
        strikes: Strikes { n: 0, m: 0 },
        delivery: DeliveryMode::AtDeadline,
        pack_delay_us: 0,
    }
}

/// A `Deliver` with its payload copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Delivered {
    pub(crate) local_port: Port,
    pub(crate) to: DeliveredTo,
    pub(crate) source_node: NodeId,
    pub(crate) source_port: Port,
    pub(crate) flow: FlowId,
    pub(crate) seq: u64,
    pub(crate) age_us: u32,
    pub(crate) payload: Vec<u8>,
}

/// A server message, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    Welcome(Welcome),
    Bound(Port),
    FlowOpened(FlowHandle, u32),
    Ok,
    Deliver(Delivered),
    Credit(FlowHandle, u32),
    Error(ErrorCode, u32, String),
    Goodbye,
}

impl Msg {
    fn from_wire(m: &ServerMessage<'_>) -> Self {
        match *m {
            ServerMessage::Welcome(w) => Msg::Welcome(w),
            ServerMessage::Bound { port } => Msg::Bound(port),
            ServerMessage::FlowOpened { flow, credits } => Msg::FlowOpened(flow, credits),
            ServerMessage::Ok => Msg::Ok,
            ServerMessage::Deliver(d) => Msg::Deliver(Delivered {
                local_port: d.local_port,
                to: d.to,
                source_node: d.source_node,
                source_port: d.source_port,
                flow: d.flow,
                seq: d.seq,
                age_us: d.age_us,
                payload: d.payload.to_vec(),
            }),
            ServerMessage::Credit { flow, credits } => Msg::Credit(flow, credits),
            ServerMessage::Error(e) => Msg::Error(e.code, e.detail, e.text.to_string()),
            ServerMessage::Goodbye => Msg::Goodbye,
        }
    }

    /// The error code, for an `Error`.
    pub(crate) fn code(&self) -> Option<ErrorCode> {
        match self {
            Msg::Error(code, ..) => Some(*code),
            _ => None,
        }
    }
}

/// A raw client: a nonblocking Unix stream plus a receive buffer and an inbox.
pub(crate) struct TestClient {
    pub(crate) stream: UnixStream,
    rx: RecvBuf,
    pub(crate) inbox: VecDeque<(u32, Msg)>,
    /// The server closed the connection (end of stream or reset).
    pub(crate) eof: bool,
    next_id: u32,
}

impl TestClient {
    /// Connects to `path` (the handshake is the test's business).
    pub(crate) fn connect(path: &std::path::Path) -> Self {
        let stream = UnixStream::connect(path).unwrap();
        stream.set_nonblocking(true).unwrap();
        TestClient {
            stream,
            rx: RecvBuf::new(1 << 20),
            inbox: VecDeque::new(),
            eof: false,
            next_id: 1,
        }
    }

    /// A fresh request id.
    pub(crate) fn next_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Encodes `msg` with a fresh request id and writes it; returns the id.
    pub(crate) fn send(&mut self, msg: &ClientMessage<'_>) -> u32 {
        let id = self.next_id();
        let mut buf = vec![0u8; 70_000];
        let n = encode_frame(id, msg, &mut buf).unwrap();
        self.write_all(&buf[..n]);
        id
    }

    /// Writes all of `bytes` in one `write` (the socket buffer is big enough in these tests).
    pub(crate) fn write_all(&mut self, bytes: &[u8]) {
        let n = self.stream.write(bytes).unwrap();
        assert_eq!(n, bytes.len(), "one write took only part of the bytes");
    }

    /// Reads everything available and decodes it into the inbox.
    pub(crate) fn poll(&mut self) {
        loop {
            match self.rx.read_from(&mut self.stream) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    self.eof = true;
                    break;
                }
                Err(e) => panic!("client read failed: {e}"),
            }
            self.decode();
        }
        self.decode();
    }

    fn decode(&mut self) {
        let mut reader = self.rx.frames();
        for frame in reader.by_ref() {
            let frame = frame.unwrap();
            let msg = ServerMessage::decode(&frame).unwrap();
            self.inbox
                .push_back((frame.request_id, Msg::from_wire(&msg)));
        }
        let consumed = reader.consumed();
        self.rx.consume(consumed);
    }

    /// Reads raw bytes that are already available, without decoding (for tests that look at
    /// the exact bytes).
    pub(crate) fn read_raw(&mut self, buf: &mut [u8]) -> usize {
        match self.stream.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// The fd, for tests that poll it.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// Encodes several messages into one buffer (for a single write), numbering them from
/// `first_id`.
pub(crate) fn batch(first_id: u32, msgs: &[ClientMessage<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    for (i, m) in msgs.iter().enumerate() {
        let n = encode_frame(first_id + i as u32, m, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}
