//! A fake Weft node for tests: a thread per connection behind a Unix listener, speaking the
//! session protocol with the `weft_shared::session` codec.
//!
//! It does the handshake (with a configurable version range, or never answers), binds ports,
//! opens flows with a configurable number of credits, grants credits (automatically, one per
//! `Send` handled, or only when a test calls [`FakeNode::grant`]), and delivers each `Send` to
//! the client holding the destination port on this node, or to the members of the
//! destination group. A flow to the sender's own port is an echo. Tests can inject `Deliver`s,
//! say `Goodbye`, and read per-connection counters.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support: each test file uses part of it, and it fails loudly"
)]

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use weft_client::probe::ProbeHeader;
use weft_shared::ids::{FlowId, NodeId, Port};
use weft_shared::session::{
    ClientMessage, DEFAULT_MAX_FLOWS_PER_CLIENT, DEFAULT_MAX_GROUPS_PER_CLIENT,
    DEFAULT_MAX_PORTS_PER_CLIENT, Deliver, DeliveredTo, Destination, ErrorCode, ErrorMsg,
    FlowHandle, MAX_FRAME_SIZE, MAX_PAYLOAD, RecvBuf, ServerMessage, Welcome, encode_frame,
    negotiate_version,
};

/// How the fake node behaves.
#[derive(Clone, Debug)]
pub(crate) struct FakeConfig {
    /// Its node id.
    pub(crate) node: u16,
    /// The protocol versions it speaks.
    pub(crate) versions: (u16, u16),
    /// Credits in each `FlowOpened`.
    pub(crate) initial_credits: u32,
    /// Grant one credit back per `Send` handled (in one `Credit` per flow per read); if false,
    /// only [`FakeNode::grant`] grants.
    pub(crate) replenish: bool,
    /// `Welcome.max_payload`.
    pub(crate) max_payload: u32,
    /// Drop (but still credit) probe payloads whose sequence is `r` modulo `m`.
    pub(crate) drop_probe_seq: Option<(u64, u64)>,
    /// Never answer `Hello`.
    pub(crate) silent: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            node: 1,
            versions: (1, 1),
            initial_credits: 64,
            replenish: true,
            max_payload: MAX_PAYLOAD as u32,
            drop_probe_seq: None,
            silent: false,
        }
    }
}

/// Counters of one connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnStats {
    /// Reads that returned data.
    pub(crate) reads: u64,
    /// Frames handled.
    pub(crate) frames: u64,
    /// `Send`s handled.
    pub(crate) sends: u64,
    /// `Send`s delivered to nobody (no client on the port, or dropped on purpose).
    pub(crate) undelivered: u64,
    /// Whether the client said `Goodbye`.
    pub(crate) goodbye: bool,
    /// Whether the connection ended.
    pub(crate) closed: bool,
    /// Ports it holds.
    pub(crate) ports: Vec<u16>,
}

struct Conn {
    writer: Arc<Mutex<UnixStream>>,
    stats: ConnStats,
}

struct FlowInfo {
    conn: usize,
    local_port: u16,
    dest: Destination,
    seq: u64,
}

#[derive(Default)]
struct State {
    conns: Vec<Conn>,
    ports: HashMap<u16, usize>,
    groups: HashMap<u32, Vec<usize>>,
    flows: HashMap<u32, FlowInfo>,
    next_handle: u32,
    next_port: u16,
}

struct Shared {
    config: FakeConfig,
    state: Mutex<State>,
    changed: Condvar,
}

/// A running fake node; its socket lives in a fresh temp directory, removed on drop.
pub(crate) struct FakeNode {
    /// The session socket's path.
    pub(crate) path: PathBuf,
    dir: PathBuf,
    shared: Arc<Shared>,
}

/// Appends `msg` as a frame to `out`.
fn push(out: &mut Vec<u8>, id: u32, msg: &ServerMessage<'_>) {
    let mut frame = vec![0u8; MAX_FRAME_SIZE];
    let n = encode_frame(id, msg, &mut frame).unwrap();
    out.extend_from_slice(&frame[..n]);
}

/// Appends an `Error` reply.
fn push_error(out: &mut Vec<u8>, id: u32, code: ErrorCode, detail: u32) {
    let e = ErrorMsg {
        code,
        detail,
        text: "fake node says no",
    };
    push(out, id, &ServerMessage::Error(e));
}

impl FakeNode {
    /// Starts a node with `config`; `test` names its temp directory.
    pub(crate) fn start(test: &str, config: FakeConfig) -> FakeNode {
        let dir = std::env::temp_dir().join(format!("weft-client-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State {
                next_handle: 1,
                next_port: 1000,
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        let accept = Arc::clone(&shared);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let writer = Arc::new(Mutex::new(stream.try_clone().unwrap()));
                let id = {
                    let mut st = accept.state.lock().unwrap();
                    st.conns.push(Conn {
                        writer,
                        stats: ConnStats::default(),
                    });
                    st.conns.len() - 1
                };
                accept.changed.notify_all();
                let shared = Arc::clone(&accept);
                thread::spawn(move || serve(&shared, stream, id));
            }
        });
        FakeNode { path, dir, shared }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// Waits up to 10 s for `pred` to hold; panics if it does not.
    fn wait(&self, what: &str, pred: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut st = self.lock();
        while !pred(&st) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "fake node: timed out waiting for {what}");
            st = self.shared.changed.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Counters of connection `conn` (0 is the first accepted).
    pub(crate) fn stats(&self, conn: usize) -> ConnStats {
        self.lock().conns[conn].stats.clone()
    }

    /// Waits until `conn` has handled `n` `Send`s.
    pub(crate) fn wait_sends(&self, conn: usize, n: u64) {
        self.wait("sends", |s| {
            s.conns.get(conn).is_some_and(|c| c.stats.sends >= n)
        });
    }

    /// Waits until some client has bound `port`.
    pub(crate) fn wait_bound(&self, port: u16) {
        self.wait("a bind", |s| s.ports.contains_key(&port));
    }

    /// Waits until `conn` holds exactly `n` ports.
    pub(crate) fn wait_ports(&self, conn: usize, n: usize) {
        self.wait("ports", |s| {
            s.conns.get(conn).is_some_and(|c| c.stats.ports.len() == n)
        });
    }

    /// Waits until `conn` has ended, and returns its counters.
    pub(crate) fn wait_closed(&self, conn: usize) -> ConnStats {
        self.wait("close", |s| {
            s.conns.get(conn).is_some_and(|c| c.stats.closed)
        });
        self.stats(conn)
    }

    /// Writes raw bytes to connection `conn`.
    fn write_to(&self, conn: usize, bytes: &[u8]) {
        let w = Arc::clone(&self.lock().conns[conn].writer);
        w.lock().unwrap().write_all(bytes).unwrap();
    }

    /// Grants `n` credits to `flow` (on whichever connection opened it).
    pub(crate) fn grant(&self, flow: FlowHandle, n: u32) {
        let conn = self.lock().flows[&flow.0].conn;
        let mut out = Vec::new();
        push(&mut out, 0, &ServerMessage::Credit { flow, credits: n });
        self.write_to(conn, &out);
    }

    /// Delivers `payload` to connection `conn` as if from node 1, port 1.
    pub(crate) fn inject(&self, conn: usize, to_port: u16, seq: u64, payload: &[u8]) {
        let d = Deliver {
            local_port: Port(to_port),
            to: DeliveredTo::Node,
            source_node: NodeId::new(self.shared.config.node).unwrap(),
            source_port: Port(1),
            flow: FlowId(0),
            seq,
            age_us: 0,
            payload,
        };
        let mut out = Vec::new();
        push(&mut out, 0, &ServerMessage::Deliver(d));
        self.write_to(conn, &out);
    }

    /// Says `Goodbye` to connection `conn` and closes it.
    pub(crate) fn goodbye(&self, conn: usize) {
        let mut out = Vec::new();
        push(&mut out, 0, &ServerMessage::Goodbye);
        self.write_to(conn, &out);
        let w = Arc::clone(&self.lock().conns[conn].writer);
        let _ = w.lock().unwrap().shutdown(std::net::Shutdown::Both);
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Serves one connection until it ends.
fn serve(shared: &Shared, mut stream: UnixStream, id: usize) {
    let mut rx = RecvBuf::new(4 * MAX_FRAME_SIZE);
    loop {
        let n = rx.read_from(&mut stream).unwrap_or(0);
        if n == 0 {
            close(shared, id);
            return;
        }
        let mut outs: HashMap<usize, Vec<u8>> = HashMap::new();
        let mut end = false;
        let writers = {
            let mut st = shared.state.lock().unwrap();
            st.conns[id].stats.reads += 1;
            let mut reader = rx.frames();
            let mut credits: Vec<(u32, u32)> = Vec::new();
            for frame in reader.by_ref() {
                let Ok(frame) = frame else {
                    end = true;
                    break;
                };
                st.conns[id].stats.frames += 1;
                let own = outs.entry(id).or_default();
                let msg = match ClientMessage::decode(&frame) {
                    Ok(m) => m,
                    Err(e) => {
                        push_error(own, frame.request_id, e.code(), e.detail());
                        continue;
                    }
                };
                end |= handle(
                    shared,
                    &mut st,
                    id,
                    frame.request_id,
                    msg,
                    &mut outs,
                    &mut credits,
                );
            }
            let consumed = reader.consumed();
            rx.consume(consumed);
            let own = outs.entry(id).or_default();
            for (flow, n) in credits {
                let msg = ServerMessage::Credit {
                    flow: FlowHandle(flow),
                    credits: n,
                };
                push(own, 0, &msg);
            }
            outs.keys()
                .map(|&c| (c, Arc::clone(&st.conns[c].writer)))
                .collect::<HashMap<_, _>>()
        };
        shared.changed.notify_all();
        for (conn, bytes) in outs {
            if !bytes.is_empty() {
                // A client that went away is not the sender's problem.
                let _ = writers[&conn].lock().unwrap().write_all(&bytes);
            }
        }
        if end {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            close(shared, id);
            return;
        }
    }
}

/// Releases what connection `id` held.
fn close(shared: &Shared, id: usize) {
    let mut st = shared.state.lock().unwrap();
    st.ports.retain(|_, c| *c != id);
    st.flows.retain(|_, f| f.conn != id);
    for members in st.groups.values_mut() {
        members.retain(|c| *c != id);
    }
    st.conns[id].stats.ports.clear();
    st.conns[id].stats.closed = true;
    drop(st);
    shared.changed.notify_all();
}

/// Handles one message; returns whether the connection ends after this batch.
fn handle(
    shared: &Shared,
    st: &mut State,
    id: usize,
    req: u32,
    msg: ClientMessage<'_>,
    outs: &mut HashMap<usize, Vec<u8>>,
    credits: &mut Vec<(u32, u32)>,
) -> bool {
    let cfg = &shared.config;
    let reply = |outs: &mut HashMap<usize, Vec<u8>>, msg: &ServerMessage<'_>| {
        push(outs.entry(id).or_default(), req, msg);
    };
    let error = |outs: &mut HashMap<usize, Vec<u8>>, code: ErrorCode, detail: u32| {
        push_error(outs.entry(id).or_default(), req, code, detail);
    };
    match msg {
        ClientMessage::Hello(h) => {
            if cfg.silent {
                return false;
            }
            match negotiate_version((h.min_version, h.max_version), cfg.versions) {
                Some(version) => {
                    let w = Welcome {
                        version,
                        node: NodeId::new(cfg.node).unwrap(),
                        max_payload: cfg.max_payload,
                        default_credits: cfg.initial_credits,
                        max_flows: DEFAULT_MAX_FLOWS_PER_CLIENT,
                        max_ports: DEFAULT_MAX_PORTS_PER_CLIENT,
                        max_groups: DEFAULT_MAX_GROUPS_PER_CLIENT,
                    };
                    reply(outs, &ServerMessage::Welcome(w));
                }
                None => {
                    let e = ErrorMsg::unsupported_version(cfg.versions.0, cfg.versions.1);
                    reply(outs, &ServerMessage::Error(e));
                    return true;
                }
            }
        }
        ClientMessage::Bind { port } => {
            let port = if port.0 == 0 {
                while st.ports.contains_key(&st.next_port) {
                    st.next_port += 1;
                }
                st.next_port
            } else {
                port.0
            };
            match st.ports.get(&port) {
                Some(&c) if c != id => error(outs, ErrorCode::PortInUse, u32::from(port)),
                _ => {
                    st.ports.insert(port, id);
                    if !st.conns[id].stats.ports.contains(&port) {
                        st.conns[id].stats.ports.push(port);
                    }
                    reply(outs, &ServerMessage::Bound { port: Port(port) });
                }
            }
        }
        ClientMessage::Unbind { port } => {
            if st.ports.get(&port.0) == Some(&id) {
                st.ports.remove(&port.0);
                st.conns[id].stats.ports.retain(|p| *p != port.0);
                reply(outs, &ServerMessage::Ok);
            } else {
                error(outs, ErrorCode::PortNotBound, u32::from(port.0));
            }
        }
        ClientMessage::OpenFlow(o) => {
            if st.ports.get(&o.local_port.0) != Some(&id) {
                error(outs, ErrorCode::PortNotBound, u32::from(o.local_port.0));
            } else {
                let handle = st.next_handle;
                st.next_handle += 1;
                st.flows.insert(
                    handle,
                    FlowInfo {
                        conn: id,
                        local_port: o.local_port.0,
                        dest: o.destination,
                        seq: 0,
                    },
                );
                let msg = ServerMessage::FlowOpened {
                    flow: FlowHandle(handle),
                    credits: cfg.initial_credits,
                };
                reply(outs, &msg);
            }
        }
        ClientMessage::CloseFlow { flow } => {
            if st.flows.get(&flow.0).is_some_and(|f| f.conn == id) {
                st.flows.remove(&flow.0);
                reply(outs, &ServerMessage::Ok);
            } else {
                error(outs, ErrorCode::UnknownFlow, flow.0);
            }
        }
        ClientMessage::Send { flow, payload } => {
            st.conns[id].stats.sends += 1;
            let Some(f) = st.flows.get_mut(&flow.0).filter(|f| f.conn == id) else {
                error(outs, ErrorCode::UnknownFlow, flow.0);
                return false;
            };
            let seq = f.seq;
            f.seq += 1;
            let (local_port, dest) = (f.local_port, f.dest);
            if cfg.replenish {
                match credits.iter_mut().find(|(h, _)| *h == flow.0) {
                    Some((_, n)) => *n += 1,
                    None => credits.push((flow.0, 1)),
                }
            }
            let dropped = cfg
                .drop_probe_seq
                .is_some_and(|(m, r)| ProbeHeader::read(payload).is_some_and(|h| h.seq % m == r));
            let (targets, to, port): (Vec<usize>, DeliveredTo, Port) = match dest {
                Destination::Node { node, port } if node.get() == cfg.node => (
                    st.ports.get(&port.0).copied().into_iter().collect(),
                    DeliveredTo::Node,
                    port,
                ),
                Destination::Node { port, .. } => (Vec::new(), DeliveredTo::Node, port),
                Destination::Multicast { group, port } => (
                    st.groups.get(&group.0).cloned().unwrap_or_default(),
                    DeliveredTo::Multicast(group),
                    port,
                ),
                Destination::Anycast { group, port } => (
                    st.groups
                        .get(&group.0)
                        .and_then(|m| m.first().copied())
                        .into_iter()
                        .collect(),
                    DeliveredTo::Anycast(group),
                    port,
                ),
            };
            if dropped || targets.is_empty() {
                st.conns[id].stats.undelivered += 1;
                return false;
            }
            let d = Deliver {
                local_port: port,
                to,
                source_node: NodeId::new(cfg.node).unwrap(),
                source_port: Port(local_port),
                flow: FlowId(flow.0),
                seq,
                age_us: 1,
                payload,
            };
            for t in targets {
                push(outs.entry(t).or_default(), 0, &ServerMessage::Deliver(d));
            }
        }
        ClientMessage::Join { group } => {
            let members = st.groups.entry(group.0).or_default();
            if !members.contains(&id) {
                members.push(id);
            }
            reply(outs, &ServerMessage::Ok);
        }
        ClientMessage::Leave { group } => {
            if let Some(m) = st.groups.get_mut(&group.0) {
                m.retain(|c| *c != id);
            }
            reply(outs, &ServerMessage::Ok);
        }
        ClientMessage::Goodbye => {
            st.conns[id].stats.goodbye = true;
            return true;
        }
    }
    false
}
