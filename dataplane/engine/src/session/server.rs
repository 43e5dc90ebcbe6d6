//! [`SessionServer`]: the listener, the client slots and their socket I/O (accept, read in
//! bounded batches, flush, reap) plus delivery of overlay messages to local clients.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags, sockopt};
use weft_shared::ids::{FlowId, GroupId, NodeId, Port};
use weft_shared::session::{
    Deliver, DeliveredTo, ErrorCode, ErrorMsg, FlowHandle, MAX_FRAME_SIZE, MAX_FRAMES_PER_BATCH,
    MAX_PAYLOAD, ServerMessage, SocketError, bind_listener, encode_frame,
};

use super::client::{Client, ClientState, Phase};
use super::config::{REPLY_RESERVE, SessionConfig};
use super::outbuf::PushError;
use super::ports::PortTable;
use super::requests::Step;
use super::{
    ClientId, ClientStatus, DeliverError, DeliverInfo, PeerCred, SessionSink, SessionStats,
};

/// What the request handlers share across clients.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) node: NodeId,
    pub(crate) cfg: SessionConfig,
    pub(crate) ports: PortTable,
    pub(crate) stats: SessionStats,
    /// The next network flow id to hand out (never 0).
    pub(crate) next_flow_id: u32,
    /// Flows whose credits the current batch consumed (at most one entry per frame).
    pub(crate) touched: Vec<FlowHandle>,
    /// Where a frame that wraps around an output ring is encoded first.
    pub(crate) scratch: Box<[u8]>,
    /// Local members per group joined by at least one client (at most `max_node_groups`).
    pub(crate) groups: BTreeMap<GroupId, u32>,
    /// Bumped whenever a local member joins or leaves a group.
    pub(crate) group_epoch: u64,
}

/// A connected client as `weftctl` shows it.
#[derive(Clone, Copy, Debug)]
pub struct ClientInfo<'a> {
    /// The name from its `Hello` ("" before the handshake).
    pub name: &'a str,
    /// Whether the handshake is done.
    pub connected: bool,
    /// The negotiated protocol version (0 before the handshake).
    pub version: u16,
    /// Its process credentials, if the kernel gave them.
    pub peer: Option<PeerCred>,
    /// Ports it holds.
    pub ports: &'a [Port],
    /// Groups it has joined.
    pub groups: &'a [GroupId],
    /// Flows it has open.
    pub flows: usize,
    /// Bytes waiting in its output buffer.
    pub out_bytes: usize,
}

/// The session server: a nonblocking Unix listener and up to `max_clients` client connections,
/// driven by the caller's loop (see the [module docs](super) for the call order).
#[derive(Debug)]
pub struct SessionServer {
    listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the socket file this server created, so `Drop` removes only its own.
    socket_file: Option<(u64, u64)>,
    clients: Vec<Client>,
    core: Core,
}

impl SessionServer {
    /// Binds the listener at `path` (reclaiming a dead node's socket, refusing a live one; see
    /// `bind_listener`) for node `node`. The socket file is removed when the server is dropped.
    pub fn bind(path: &Path, node: NodeId, cfg: SessionConfig) -> Result<Self, SocketError> {
        let cfg = cfg.normalized();
        let listener = bind_listener(path, cfg.socket_mode)?;
        listener
            .set_nonblocking(true)
            .map_err(|source| SocketError::Io {
                op: "set nonblocking",
                path: path.to_path_buf(),
                source,
            })?;
        let socket_file = fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
        Ok(SessionServer {
            listener,
            path: path.to_path_buf(),
            socket_file,
            clients: Vec::with_capacity(cfg.max_clients),
            core: Core {
                node,
                ports: PortTable::new(cfg.ephemeral_ports.clone()),
                cfg,
                stats: SessionStats::default(),
                next_flow_id: 1,
                touched: Vec::with_capacity(MAX_FRAMES_PER_BATCH),
                scratch: vec![0; MAX_FRAME_SIZE].into_boxed_slice(),
                groups: BTreeMap::new(),
                group_epoch: 0,
            },
        })
    }

    /// The listener's fd, to watch for readability.
    pub fn listener_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// A connected client's fd (until [`reap`](Self::reap)).
    pub fn client_fd(&self, client: ClientId) -> Option<BorrowedFd<'_>> {
        self.clients
            .get(client.index())?
            .stream
            .as_ref()
            .map(AsFd::as_fd)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force (after raising too-small values).
    pub fn config(&self) -> &SessionConfig {
        &self.core.cfg
    }

    /// Accepts every pending connection. Each new client gets a slot and is reported to
    /// `watch(fd, id)`, so the caller watches its fd with `id` as token. Beyond `max_clients` a
    /// connection is accepted, told `Error { Internal, detail: max_clients }` and closed. If the
    /// caller cannot watch a client, it should [`disconnect`](Self::disconnect) and reap it.
    pub fn handle_accept(&mut self, watch: &mut dyn FnMut(BorrowedFd<'_>, ClientId)) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue;
                }
                Err(_) => {
                    // EMFILE and the like: the connection waits in the backlog for a later turn.
                    self.core.stats.accept_errors += 1;
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                self.core.stats.accept_errors += 1;
                continue;
            }
            let Some(slot) = self.free_slot() else {
                self.refuse(&stream);
                continue;
            };
            let peer = socket::getsockopt(&stream, sockopt::PeerCredentials)
                .ok()
                .map(|c| PeerCred {
                    pid: c.pid(),
                    uid: c.uid(),
                    gid: c.gid(),
                });
            let Some(client) = self.clients.get_mut(slot) else {
                continue;
            };
            client.start(stream, peer);
            self.core.stats.accepted += 1;
            self.core.stats.clients += 1;
            if let Some(fd) = client.stream.as_ref() {
                watch(fd.as_fd(), ClientId(slot as u32));
            }
        }
    }

    /// The lowest free slot, creating one (the slot's only allocation) below `max_clients`.
    fn free_slot(&mut self) -> Option<usize> {
        if let Some(i) = self.clients.iter().position(|c| c.st.phase == Phase::Free) {
            return Some(i);
        }
        if self.clients.len() < self.core.cfg.max_clients {
            self.clients.push(Client::new(&self.core.cfg));
            return Some(self.clients.len() - 1);
        }
        None
    }

    /// Tells a connection over the limit why, best effort, before it is dropped (closed).
    fn refuse(&mut self, stream: &UnixStream) {
        self.core.stats.refused += 1;
        let max = self.core.cfg.max_clients;
        let mut text = weft_shared::session::ErrorText::new();
        let _ = std::fmt::Write::write_fmt(
            &mut text,
            format_args!("the node serves at most {max} clients"),
        );
        let msg = ServerMessage::Error(ErrorMsg {
            code: ErrorCode::Internal,
            detail: u32::try_from(max).unwrap_or(u32::MAX),
            text: text.as_str(),
        });
        let mut buf = [0u8; 400];
        if let Ok(n) = encode_frame(0, &msg, &mut buf) {
            let _ = send_some(stream, buf.get(..n).unwrap_or_default());
            self.core.stats.count_error(ErrorCode::Internal);
        }
    }

    /// Reads what `client` has sent and handles at most `MAX_FRAMES_PER_BATCH` frames, passing
    /// each accepted `Send` to `sink`, then queues one `Credit` per flow whose credits the batch
    /// consumed. Nothing is read while the client's output buffer has less than
    /// [`REPLY_RESERVE`] free. Returns [`ClientStatus::Closed`] when the client is gone (end of
    /// stream, error, `Goodbye`, failed handshake, framing error); everything it held is then
    /// released. A stale or free `client` is `Closed`.
    pub fn handle_readable(
        &mut self,
        client: ClientId,
        sink: &mut dyn SessionSink,
    ) -> ClientStatus {
        let slot = client.index();
        let Some(c) = self.clients.get_mut(slot) else {
            return ClientStatus::Closed;
        };
        if !matches!(c.st.phase, Phase::AwaitHello | Phase::Open) {
            return ClientStatus::Closed;
        }
        let core = &mut self.core;
        let mut step = if c.st.broken {
            Step::Close
        } else {
            Step::Continue
        };
        c.st.pending = false;
        if step == Step::Continue && c.st.out.free() < REPLY_RESERVE {
            // Paused until `flush` makes room; `next_pending` brings it back.
            c.st.pending = true;
            return ClientStatus::Open;
        }
        let mut budget = MAX_FRAMES_PER_BATCH;
        while step == Step::Continue {
            let (frames, consumed, s) = core.handle_frames(slot, &c.rx, &mut c.st, budget, sink);
            c.rx.consume(consumed);
            budget -= frames;
            step = s;
            if step == Step::Close {
                break;
            }
            if budget == 0 {
                c.st.pending = true;
                break;
            }
            let Some(mut stream) = c.stream.as_ref() else {
                step = Step::Close;
                break;
            };
            match c.rx.read_from(&mut stream) {
                Ok(0) => step = Step::Close,
                Ok(n) => core.stats.bytes_in += n as u64,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => step = Step::Close,
            }
        }
        core.return_credits(&mut c.st);
        if step == Step::Close {
            core.release(client, &mut c.st, sink);
            let consumed = c.rx.data().len();
            c.rx.consume(consumed);
            return ClientStatus::Closed;
        }
        ClientStatus::Open
    }

    /// Gives `n` credits back to the flow with network id `flow` (a reliable flow whose
    /// messages were delivered at the far end). A flow already closed is ignored.
    pub fn grant_credits(&mut self, flow: FlowId, n: u32) {
        if n == 0 {
            return;
        }
        let core = &mut self.core;
        for c in self.clients.iter_mut() {
            if c.stream.is_some() && core.grant(&mut c.st, flow, n) {
                return;
            }
        }
    }

    /// The first client after `after` (from the start for `None`) with input that no readiness
    /// event will announce and that can be handled now, or that must be closed. Call
    /// [`handle_readable`](Self::handle_readable) for each, once per loop turn.
    pub fn next_pending(&self, after: Option<ClientId>) -> Option<ClientId> {
        let start = after.map_or(0, |c| c.index() + 1);
        let found = self
            .clients
            .iter()
            .skip(start)
            .position(|c| is_pending(&c.st))?;
        u32::try_from(start + found).ok().map(ClientId)
    }

    /// Whether some client has pending input (see [`next_pending`](Self::next_pending)).
    pub fn has_pending(&self) -> bool {
        self.clients.iter().any(|c| is_pending(&c.st))
    }

    /// Closes a connected client from the node's side (a stall timeout, a failed watch): its
    /// ports, flows and groups are released as on [`ClientStatus::Closed`]. The caller then
    /// stops watching its fd and calls [`reap`](Self::reap).
    pub fn disconnect(&mut self, client: ClientId, sink: &mut dyn SessionSink) {
        if let Some(c) = self.clients.get_mut(client.index()) {
            if matches!(c.st.phase, Phase::AwaitHello | Phase::Open) {
                self.core.release(client, &mut c.st, sink);
            }
        }
    }

    /// Closes the fd of a client that [`handle_readable`](Self::handle_readable) reported
    /// `Closed` (or that was [`disconnect`](Self::disconnect)ed), after one last nonblocking
    /// attempt to write its queued output (such as the `Error` that explains the close). The slot
    /// and its id are then free for a new client. Does nothing for a client still connected.
    pub fn reap(&mut self, client: ClientId) {
        let Some(c) = self.clients.get_mut(client.index()) else {
            return;
        };
        if c.st.phase != Phase::Dead {
            return;
        }
        if let Some(stream) = c.stream.take() {
            if !c.st.broken {
                write_out(&stream, &mut c.st, &mut self.core.stats);
            }
            drop(stream);
        }
        c.st.out.clear();
        c.st.phase = Phase::Free;
        c.st.pending = false;
    }

    /// Queues one overlay message for local clients. With `info.group == None` it goes to the
    /// client bound to `port` on this node. With `Some(group)` it goes to every local member of
    /// the multicast group (as a group-addressed `Deliver` with `port` as its local port); the
    /// result is `Ok` only if every member got it (each member that did not is counted).
    pub fn deliver(
        &mut self,
        port: Port,
        info: &DeliverInfo,
        payload: &[u8],
    ) -> Result<(), DeliverError> {
        let result = match info.group {
            None => self.deliver_to_port(port, info, payload),
            Some(g) => self.deliver_to_members(DeliveredTo::Multicast(g), port, info, payload),
        };
        if let Err(DeliverError::NoSuchPort | DeliverError::PayloadTooLarge) = result {
            self.count_deliver_drop(result);
        }
        result
    }

    /// Queues one overlay message as it was addressed: to the client bound to `port`, to every
    /// local member of a multicast group, or to one local member of an anycast group
    /// (`info.group` is set from `to`).
    pub fn deliver_addressed(
        &mut self,
        to: DeliveredTo,
        port: Port,
        info: &DeliverInfo,
        payload: &[u8],
    ) -> Result<(), DeliverError> {
        match to {
            DeliveredTo::Node => self.deliver(
                port,
                &DeliverInfo {
                    group: None,
                    ..*info
                },
                payload,
            ),
            DeliveredTo::Multicast(g) => self.deliver(
                port,
                &DeliverInfo {
                    group: Some(g),
                    ..*info
                },
                payload,
            ),
            DeliveredTo::Anycast(g) => self.deliver_anycast(
                port,
                &DeliverInfo {
                    group: Some(g),
                    ..*info
                },
                payload,
            ),
        }
    }

    /// Queues a message addressed to an anycast group for one local member: the first (by
    /// client id) with room. `info.group` names the group; without one this is
    /// [`deliver`](Self::deliver).
    pub fn deliver_anycast(
        &mut self,
        port: Port,
        info: &DeliverInfo,
        payload: &[u8],
    ) -> Result<(), DeliverError> {
        let Some(g) = info.group else {
            return self.deliver(port, info, payload);
        };
        let result = self.deliver_to_members(DeliveredTo::Anycast(g), port, info, payload);
        if let Err(DeliverError::NoSuchPort | DeliverError::PayloadTooLarge) = result {
            self.count_deliver_drop(result);
        }
        result
    }

    fn count_deliver_drop(&mut self, result: Result<(), DeliverError>) {
        if let Err(e) = result {
            if let Some(n) = self.core.stats.deliver_drops.get_mut(e.index()) {
                *n += 1;
            }
        }
    }

    fn deliver_to_port(
        &mut self,
        port: Port,
        info: &DeliverInfo,
        payload: &[u8],
    ) -> Result<(), DeliverError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(DeliverError::PayloadTooLarge);
        }
        let slot = self
            .core
            .ports
            .owner(port)
            .ok_or(DeliverError::NoSuchPort)?;
        let c = self.clients.get_mut(slot).ok_or(DeliverError::NoSuchPort)?;
        let msg = deliver_msg(DeliveredTo::Node, port, info, payload);
        let r = self.core.push_deliver(&mut c.st, &msg);
        if let Err(DeliverError::ClientBacklogFull) = r {
            self.count_deliver_drop(r);
        }
        r
    }

    /// Multicast (every member) or anycast (the first member with room).
    fn deliver_to_members(
        &mut self,
        to: DeliveredTo,
        port: Port,
        info: &DeliverInfo,
        payload: &[u8],
    ) -> Result<(), DeliverError> {
        let (DeliveredTo::Multicast(group) | DeliveredTo::Anycast(group)) = to else {
            return self.deliver_to_port(port, info, payload);
        };
        if payload.len() > MAX_PAYLOAD {
            return Err(DeliverError::PayloadTooLarge);
        }
        let msg = deliver_msg(to, port, info, payload);
        let anycast = matches!(to, DeliveredTo::Anycast(_));
        let (mut members, mut full) = (0u32, 0u32);
        for c in &mut self.clients {
            if c.st.phase != Phase::Open || !c.st.groups.contains(&group) {
                continue;
            }
            members += 1;
            match self.core.push_deliver(&mut c.st, &msg) {
                Ok(()) if anycast => return Ok(()),
                Ok(()) => {}
                Err(_) => full += 1,
            }
        }
        if members == 0 {
            return Err(DeliverError::NoSuchPort);
        }
        let drops = if anycast { 1 } else { full };
        if let Some(n) = self
            .core
            .stats
            .deliver_drops
            .get_mut(DeliverError::ClientBacklogFull.index())
        {
            *n += u64::from(drops);
        }
        if drops > 0 {
            Err(DeliverError::ClientBacklogFull)
        } else {
            Ok(())
        }
    }

    /// Writes queued output to every client until its socket would block. Returns true if some
    /// client still has output waiting (wait briefly, not until the next event). A write error
    /// marks the client broken: its output is dropped and it is closed at its next turn (it
    /// shows up in [`next_pending`](Self::next_pending)).
    pub fn flush(&mut self) -> bool {
        let mut waiting = false;
        for c in &mut self.clients {
            if c.st.out.is_empty() || c.st.broken {
                continue;
            }
            if let Some(stream) = c.stream.as_ref() {
                write_out(stream, &mut c.st, &mut self.core.stats);
            }
            waiting |= !c.st.out.is_empty();
        }
        waiting
    }

    /// The counters.
    pub fn stats(&self) -> SessionStats {
        self.core.stats.clone()
    }

    /// What a connected client is and holds, for `weftctl`; `None` for a free slot.
    pub fn client_info(&self, client: ClientId) -> Option<ClientInfo<'_>> {
        let c = self.clients.get(client.index())?;
        if c.st.phase == Phase::Free {
            return None;
        }
        Some(ClientInfo {
            name: c.st.name(),
            connected: c.st.phase == Phase::Open,
            version: c.st.version,
            peer: c.st.peer,
            ports: &c.st.ports,
            groups: &c.st.groups,
            flows: c.st.flows.open_count(),
            out_bytes: c.st.out.len(),
        })
    }

    /// The groups with local members, ascending, with their member counts.
    pub fn local_groups(&self) -> impl Iterator<Item = (GroupId, u32)> + '_ {
        self.core.groups.iter().map(|(&g, &n)| (g, n))
    }

    /// Changes whenever a local member joins or leaves a group (starts at 0).
    pub fn group_epoch(&self) -> u64 {
        self.core.group_epoch
    }

    /// Local clients that are members of `group`.
    pub fn group_members(&self, group: GroupId) -> usize {
        self.clients
            .iter()
            .filter(|c| c.st.phase == Phase::Open && c.st.groups.contains(&group))
            .count()
    }
}

impl Drop for SessionServer {
    fn drop(&mut self) {
        // Remove the socket file only if it is still the one this server bound.
        let same = fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if same.is_some() && same == self.socket_file {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Core {
    /// Queues a `Deliver`, keeping the reply reserve free.
    fn push_deliver(
        &mut self,
        st: &mut ClientState,
        msg: &ServerMessage<'_>,
    ) -> Result<(), DeliverError> {
        if st.phase != Phase::Open || st.broken {
            return Err(DeliverError::NoSuchPort);
        }
        match st.out.push(0, msg, REPLY_RESERVE, &mut self.scratch) {
            Ok(_) => {
                self.stats.delivers += 1;
                Ok(())
            }
            Err(PushError::Full) => Err(DeliverError::ClientBacklogFull),
            Err(PushError::Encode(_)) => Err(DeliverError::PayloadTooLarge),
        }
    }
}

fn deliver_msg<'a>(
    to: DeliveredTo,
    port: Port,
    info: &DeliverInfo,
    payload: &'a [u8],
) -> ServerMessage<'a> {
    ServerMessage::Deliver(Deliver {
        local_port: port,
        to,
        source_node: info.from_node,
        source_port: info.from_port,
        flow: info.flow,
        seq: info.seq,
        age_us: info.age_us,
        payload,
    })
}

fn is_pending(st: &ClientState) -> bool {
    matches!(st.phase, Phase::AwaitHello | Phase::Open)
        && (st.broken || (st.pending && st.out.free() >= REPLY_RESERVE))
}

/// Writes `st.out` to `stream` until it is empty or the socket would block; marks the client
/// broken (and drops its output) on any other error.
fn write_out(stream: &UnixStream, st: &mut ClientState, stats: &mut SessionStats) {
    while !st.out.is_empty() {
        match send_some(stream, st.out.front()) {
            Ok(n) => {
                st.out.advance(n);
                stats.bytes_out += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                st.broken = true;
                st.out.clear();
                return;
            }
        }
    }
}

/// One nonblocking `send` without `SIGPIPE` (a closed peer is an `EPIPE` error, not a signal).
fn send_some(stream: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
    match socket::send(stream.as_raw_fd(), bytes, flags) {
        Ok(0) if !bytes.is_empty() => Err(io::Error::from(ErrorKind::WriteZero)),
        Ok(n) => Ok(n),
        Err(Errno::EAGAIN) => Err(io::Error::from(ErrorKind::WouldBlock)),
        Err(e) => Err(io::Error::from(e)),
    }
}
