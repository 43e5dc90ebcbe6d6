//! A minimal blocking session client for tests, written on the session codec alone.

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use weft_shared::ids::{NodeId, Port};
use weft_shared::session::{
    ClientMessage, DeliveryMode, Destination, FlowHandle, Hello, LinkProtocol, OpenFlow, RecvBuf,
    RoutingMode, ServerMessage, Strikes, encode_frame,
};

/// One delivered message.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    /// Source node.
    pub(crate) src: NodeId,
    /// Source port.
    pub(crate) src_port: Port,
    /// Sequence number in the flow.
    pub(crate) seq: u64,
    /// Age in microseconds.
    pub(crate) age_us: u32,
    /// The payload.
    pub(crate) payload: Vec<u8>,
    /// When the test client read it.
    pub(crate) at: Instant,
}

/// A connected client.
pub(crate) struct TestClient {
    stream: UnixStream,
    rx: RecvBuf,
    next_request: u32,
    credits: HashMap<u32, u32>,
    replies: Vec<(u32, String)>,
    /// Messages delivered but not yet taken with [`TestClient::recv`].
    pub(crate) inbox: std::collections::VecDeque<Received>,
    /// `Error` replies seen (request id, text).
    pub(crate) errors: Vec<String>,
}

impl TestClient {
    /// Connects and completes the handshake.
    pub(crate) fn connect(path: &Path) -> TestClient {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut c = TestClient {
            stream,
            rx: RecvBuf::new(1 << 20),
            next_request: 1,
            credits: HashMap::new(),
            replies: Vec::new(),
            inbox: Default::default(),
            errors: Vec::new(),
        };
        let id = c.request(&ClientMessage::Hello(Hello {
            min_version: 1,
            max_version: 1,
            name: "test",
        }));
        c.wait_reply(id);
        c
    }

    fn request(&mut self, msg: &ClientMessage<'_>) -> u32 {
        let id = self.next_request;
        self.next_request += 1;
        let mut buf = vec![0u8; 70_000];
        let n = encode_frame(id, msg, &mut buf).unwrap();
        self.stream.write_all(&buf[..n]).unwrap();
        id
    }

    /// Reads once (up to the read timeout) and handles every complete frame.
    pub(crate) fn pump(&mut self) {
        match self.rx.read_from(&mut self.stream) {
            Ok(0) => panic!("node closed the session"),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("session read: {e}"),
        }
        let mut consumed = 0;
        let mut frames = self.rx.frames();
        for frame in frames.by_ref() {
            let frame = frame.unwrap();
            let msg = ServerMessage::decode(&frame).unwrap();
            match msg {
                ServerMessage::Deliver(d) => self.inbox.push_back(Received {
                    src: d.source_node,
                    src_port: d.source_port,
                    seq: d.seq,
                    age_us: d.age_us,
                    payload: d.payload.to_vec(),
                    at: Instant::now(),
                }),
                ServerMessage::Credit { flow, credits } => {
                    *self.credits.entry(flow.0).or_default() += credits;
                }
                ServerMessage::FlowOpened { flow, credits } => {
                    *self.credits.entry(flow.0).or_default() += credits;
                    self.replies
                        .push((frame.request_id, format!("flow {}", flow.0)));
                }
                ServerMessage::Bound { port } => {
                    self.replies
                        .push((frame.request_id, format!("port {}", port.0)));
                }
                ServerMessage::Error(e) => {
                    let text = format!("{:?} {}", e.code, e.text);
                    self.errors.push(text.clone());
                    self.replies
                        .push((frame.request_id, format!("error {text}")));
                }
                ServerMessage::Welcome(_) | ServerMessage::Ok => {
                    self.replies.push((frame.request_id, "ok".into()));
                }
                ServerMessage::Goodbye => panic!("node said goodbye"),
            }
        }
        consumed += frames.consumed();
        self.rx.consume(consumed);
    }

    fn wait_reply(&mut self, id: u32) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(i) = self.replies.iter().position(|(r, _)| *r == id) {
                return self.replies.remove(i).1;
            }
            assert!(Instant::now() < deadline, "no reply to request {id}");
            self.pump();
        }
    }

    /// Binds `port`.
    pub(crate) fn bind(&mut self, port: u16) {
        let id = self.request(&ClientMessage::Bind { port: Port(port) });
        let reply = self.wait_reply(id);
        assert_eq!(reply, format!("port {port}"));
    }

    /// Opens a best-effort flow from `port` to `node`:`dst_port`.
    pub(crate) fn open_flow(&mut self, port: u16, node: u16, dst_port: u16) -> FlowHandle {
        let id = self.request(&ClientMessage::OpenFlow(OpenFlow {
            local_port: Port(port),
            destination: Destination::Node {
                node: NodeId::new(node).unwrap(),
                port: Port(dst_port),
            },
            protocol: LinkProtocol::BestEffort,
            routing: RoutingMode::LinkState,
            priority: 0,
            deadline_us: 0,
            strikes: Strikes { n: 0, m: 0 },
            delivery: DeliveryMode::InOrderAsap,
            pack_delay_us: 0,
        }));
        let reply = self.wait_reply(id);
        let flow = reply
            .strip_prefix("flow ")
            .unwrap_or_else(|| panic!("OpenFlow: {reply}"));
        FlowHandle(flow.parse().unwrap())
    }

    /// Sends on `flow`, waiting for credit first.
    pub(crate) fn send(&mut self, flow: FlowHandle, payload: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.credits.get(&flow.0).copied().unwrap_or(0) == 0 {
            assert!(Instant::now() < deadline, "no credit on flow {}", flow.0);
            self.pump();
        }
        *self.credits.get_mut(&flow.0).unwrap() -= 1;
        self.request(&ClientMessage::Send { flow, payload });
    }

    /// The next delivered message, waiting up to `timeout`.
    pub(crate) fn recv(&mut self, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.inbox.pop_front() {
                return Some(r);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.pump();
        }
    }
}
