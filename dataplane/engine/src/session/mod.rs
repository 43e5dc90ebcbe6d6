//! The node side of the session protocol: the Unix-socket server clients talk to.
//!
//! Worker 0 runs one [`SessionServer`] inside its single-threaded loop. The server never blocks
//! and never spawns: its listener and client sockets are nonblocking, and the loop calls it when
//! they are readable. The protocol (framing, handshake, messages, error codes) is
//! `weft_shared::session`, specified in `docs/session.md`; this module decides policy.
//!
//! # Run-loop contract
//!
//! Each loop turn, in any order between the first three:
//!
//! 1. listener readable: [`SessionServer::handle_accept`], which reports each new client so the
//!    loop watches its fd with the [`ClientId`] as token;
//! 2. a client readable: [`SessionServer::handle_readable`]; on [`ClientStatus::Closed`] the loop
//!    stops watching the fd and then calls [`SessionServer::reap`], which closes it;
//! 3. **clients with pending input**: `while let Some(c) = server.next_pending(prev)` call
//!    `handle_readable(c)` (and handle `Closed` as above). A turn handles at most
//!    [`MAX_FRAMES_PER_BATCH`](weft_shared::session::MAX_FRAMES_PER_BATCH) frames per client, so
//!    a burst can stay buffered with no readiness event left to announce it (io_uring's
//!    multishot poll fires when data arrives, not while it waits). Skipping this step stalls
//!    such clients until they write again;
//! 4. a message for a local port: [`SessionServer::deliver`];
//! 5. last: [`SessionServer::flush`]. If it returns true, or [`SessionServer::has_pending`] is
//!    true, wait briefly (e.g. 1 ms) or not at all instead of sleeping until the next event.
//!
//! ```no_run
//! use std::os::fd::AsFd;
//! use std::path::Path;
//!
//! use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
//! use weft_dataplane::session::{
//!     ClientId, ClientStatus, OutboundMessage, SessionConfig, SessionServer, SessionSink,
//! };
//! use weft_shared::DropReason;
//! use weft_shared::ids::NodeId;
//!
//! struct Count(u64);
//! impl SessionSink for Count {
//!     fn send(&mut self, _msg: &OutboundMessage<'_>) -> Result<(), DropReason> {
//!         self.0 += 1; // A real sink hands the message to the forwarding pipeline.
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = NodeId::new(1).ok_or("node id")?;
//! let mut server = SessionServer::bind(Path::new("/run/weft/n1.sock"), node, SessionConfig::default())?;
//! let mut sink = Count(0);
//! let mut watched: Vec<ClientId> = Vec::new();
//! loop {
//!     let busy = server.flush() || server.has_pending();
//!     let (listener_ready, ready) = {
//!         let mut fds = vec![PollFd::new(server.listener_fd(), PollFlags::POLLIN)];
//!         for &c in &watched {
//!             fds.extend(server.client_fd(c).map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
//!         }
//!         poll(&mut fds, if busy { PollTimeout::ZERO } else { PollTimeout::from(100u16) })?;
//!         let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
//!         (ready[0], ready[1..].to_vec())
//!     };
//!     if listener_ready {
//!         server.handle_accept(&mut |_fd, id| watched.push(id));
//!     }
//!     let mut closed = Vec::new();
//!     for (&c, _) in watched.iter().zip(&ready).filter(|(_, r)| **r) {
//!         if server.handle_readable(c, &mut sink) == ClientStatus::Closed {
//!             closed.push(c);
//!         }
//!     }
//!     let mut prev = None;
//!     while let Some(c) = server.next_pending(prev) {
//!         prev = Some(c);
//!         if server.handle_readable(c, &mut sink) == ClientStatus::Closed {
//!             closed.push(c);
//!         }
//!     }
//!     for c in closed {
//!         watched.retain(|&w| w != c); // "unwatch"
//!         server.reap(c);
//!     }
//! }
//! # }
//! ```
//!
//! # Policies
//!
//! - **Ports** are exclusive per node (`PortInUse`). `Bind { port: 0 }` picks the next free port
//!   of [`SessionConfig::ephemeral_ports`], rotating so a just-freed port is not handed out again
//!   at once. Binding a port the client already holds answers `Bound` again.
//! - **Flows**: `OpenFlow` needs a port the client has bound, checks the service against the
//!   node's limits (k, strikes, a deadline for realtime; else `Unsupported`) and asks
//!   [`SessionSink::flow_opened`]. It assigns a node-unique [`FlowId`] from a `u32` counter
//!   starting at 1 (0 is never used; it wraps after 2³² flows) and a per-flow sequence counter:
//!   **the first accepted `Send` of a flow has seq 0**, and each accepted one adds 1. A `Send` the
//!   sink refuses does not use a sequence number.
//! - **Credits** (client → node flow control): a flow starts with
//!   [`SessionConfig::credits_per_flow`]. Each `Send` that finds a credit consumes it; one that
//!   finds none is dropped with `Error { NoCredit }` for that flow only. When a batch (one
//!   `handle_readable` call) ends, every credit its `Send`s consumed is returned in one `Credit`
//!   frame per flow, whether the sink accepted the message or refused it (a refusal is answered
//!   with an `Error` and holds nothing). A client that sends faster than the node handles its
//!   frames is therefore paced by the node's processing rate: its credits come back only as its
//!   batches are handled. This is admission pacing, not end-to-end backpressure: a sink that
//!   queues the message returns the credit before it leaves the node. The reliable and
//!   intrusion-tolerant reliable services will need credits returned when their queues drain.
//! - **Output** (node → client) has no credits in protocol version 1. Each client has one
//!   bounded output buffer ([`SessionConfig::out_buf_bytes`]). Replies (`Welcome`, `Bound`,
//!   `Error`, `Credit`, ...) are never dropped: [`REPLY_RESERVE`] bytes are kept for them, a
//!   `Deliver` may not use that space, and the server reads a client's requests only while that
//!   much is free (a client that does not read its socket stops being read, and its own writes
//!   then block). A `Deliver` that does not fit is dropped and reported as
//!   [`DeliverError::ClientBacklogFull`]: best-effort semantics, counted by the caller and in
//!   [`SessionStats::deliver_drops`]. Reliable services will need backpressure here instead.
//!   A client that never reads is not closed by this module (it has no clock); the engine may
//!   [`disconnect`](SessionServer::disconnect) it.
//! - **Errors**: a message that does not decode gets `Error` with its request id and the
//!   connection stays open; a framing error (bad length prefix) gets `Error` with request id 0
//!   and the connection is closed; before the handshake every error closes. Other clients are
//!   never affected. Nothing here panics on client input.
//! - **Disconnect** (end of stream, `Goodbye`, read or write error, fatal frame) releases the
//!   client's ports, closes its flows ([`SessionSink::flow_closed`]) and leaves its groups
//!   ([`SessionSink::left`]) before `handle_readable` returns [`ClientStatus::Closed`].
//! - **Groups**: `Join`/`Leave` name a group only; a member receives the group's messages on any
//!   port. Group 0 is refused (`BadRequest`): it means "no group" in `Deliver`.
//! - **Memory**: a client slot's buffers and tables are allocated when the slot is first used
//!   (at accept) and kept for later clients; nothing is allocated per message.

mod client;
mod config;
mod outbuf;
mod ports;
mod requests;
mod server;
mod stats;

use weft_shared::DropReason;
use weft_shared::ids::{FlowId, GroupId, NodeId, Port};
use weft_shared::session::{
    DeliveryMode, Destination, ErrorCode, LinkProtocol, RoutingMode, Strikes,
};

pub use config::{
    DEFAULT_EPHEMERAL_PORTS, DEFAULT_MAX_CLIENTS, DEFAULT_MAX_K_PATHS, DEFAULT_MAX_STRIKES,
    DEFAULT_OUT_BUF_BYTES, MIN_OUT_BUF_BYTES, REPLY_RESERVE, SessionConfig,
};
pub use server::{ClientInfo, SessionServer};
pub use stats::{ERROR_CODE_SLOTS, SessionStats};

/// A connected client: a small dense index (a slot), also the caller's poll token. Reused after
/// [`SessionServer::reap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u32);

impl ClientId {
    /// The id as a table index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Whether a client is still connected after [`SessionServer::handle_readable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientStatus {
    /// Still connected; keep watching it.
    Open,
    /// Gone, and everything it held is released: stop watching its fd, then call
    /// [`SessionServer::reap`].
    Closed,
}

/// A flow's service, a copy of what its `OpenFlow` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowService {
    /// The hop-by-hop link protocol.
    pub protocol: LinkProtocol,
    /// The routing mode (k for k-paths inside).
    pub routing: RoutingMode,
    /// Priority for intrusion-tolerant priority; 0 otherwise.
    pub priority: u8,
    /// Per-message deadline for realtime flows, in microseconds; 0 for none.
    pub deadline_us: u32,
    /// NM-strikes parameters for realtime flows.
    pub strikes: Strikes,
    /// Delivery mode for realtime flows.
    pub delivery: DeliveryMode,
    /// Best-effort flows: how long the source may hold a message for packing, in microseconds
    /// (0: packed within the turn only).
    pub pack_delay_us: u32,
}

/// A client's message for the overlay, handed to [`SessionSink::send`]. Borrows the payload from
/// the client's receive buffer: copy it before returning if it must be kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboundMessage<'a> {
    /// The bound port the flow sends from.
    pub src_port: Port,
    /// The node-unique network flow id.
    pub flow: FlowId,
    /// The end-to-end sequence number: 0 for the flow's first accepted message, then +1.
    pub seq: u64,
    /// Where the flow sends.
    pub dst: Destination,
    /// The flow's service.
    pub service: FlowService,
    /// The application's bytes.
    pub payload: &'a [u8],
}

/// What the server hands to the rest of the node. Only [`send`](Self::send) is required.
pub trait SessionSink {
    /// A client's message to send into the overlay. `Err(reason)` drops it: the server counts it
    /// ([`SessionStats::send_drops`]) and replies `Error` to that request (`Unsupported` for
    /// [`DropReason::Unsupported`], else `Internal` with the reason's counter index as detail
    /// and its text). The flow stays usable and its credit comes back.
    fn send(&mut self, msg: &OutboundMessage<'_>) -> Result<(), DropReason>;

    /// A flow is about to open. `Err(code)` refuses it: the client gets `Error { code }` (for
    /// example `Unsupported` for a service this node does not run yet) and no flow opens.
    fn flow_opened(
        &mut self,
        flow: FlowId,
        src_port: Port,
        dst: Destination,
        service: &FlowService,
    ) -> Result<(), ErrorCode> {
        let _ = (flow, src_port, dst, service);
        Ok(())
    }

    /// A flow closed (by `CloseFlow`, `Unbind` of its port, or the client leaving).
    fn flow_closed(&mut self, flow: FlowId) {
        let _ = flow;
    }

    /// A local client joined `group` (called once per client and group, not for a repeat).
    fn joined(&mut self, group: GroupId, client: ClientId) {
        let _ = (group, client);
    }

    /// A local client left `group`, by `Leave` or by disconnecting.
    fn left(&mut self, group: GroupId, client: ClientId) {
        let _ = (group, client);
    }
}

/// Where a message for a local client came from, for its `Deliver`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliverInfo {
    /// The sending node.
    pub from_node: NodeId,
    /// The sending client's port.
    pub from_port: Port,
    /// The network flow id, chosen by the source node.
    pub flow: FlowId,
    /// The sequence number within the flow.
    pub seq: u64,
    /// Age of the message, in microseconds, accumulated hop by hop.
    pub age_us: u32,
    /// The group it was addressed to, or `None` when it was addressed to this node.
    pub group: Option<GroupId>,
}

/// Why a message could not be handed to a local client. The caller counts it as a drop; the
/// server counts it too ([`SessionStats::deliver_drops`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// No connected client holds the port (or, for a group, no local client is a member).
    #[error("no local client on that port or group")]
    NoSuchPort,
    /// The client's output buffer is full: it does not read fast enough.
    #[error("client output buffer full")]
    ClientBacklogFull,
    /// The payload is over the protocol's `MAX_PAYLOAD`.
    #[error("payload too large for a Deliver")]
    PayloadTooLarge,
}

impl DeliverError {
    /// Number of counter slots.
    pub const COUNT: usize = 3;
    /// Counter names in index order.
    pub const NAMES: [&'static str; Self::COUNT] =
        ["no_such_port", "client_backlog_full", "payload_too_large"];

    /// A dense counter index.
    pub const fn index(self) -> usize {
        match self {
            DeliverError::NoSuchPort => 0,
            DeliverError::ClientBacklogFull => 1,
            DeliverError::PayloadTooLarge => 2,
        }
    }
}

/// The connecting process's credentials (`SO_PEERCRED`), for logs and `weftctl` only: access is
/// decided by the socket file's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliver_error_names_match_indices() {
        for e in [
            DeliverError::NoSuchPort,
            DeliverError::ClientBacklogFull,
            DeliverError::PayloadTooLarge,
        ] {
            assert!(e.index() < DeliverError::COUNT);
        }
        assert_eq!(
            DeliverError::NAMES[DeliverError::ClientBacklogFull.index()],
            "client_backlog_full"
        );
    }
}
