//! The protocol between `weftctl` and a node's control plane (`weft-controld`), specified in
//! `docs/weftctl.md`.
//!
//! The control plane listens on a Unix stream socket at the node's `ctl_socket` (config). Each
//! connection carries exactly one exchange: the client writes one line of JSON (a request), the
//! server writes one line of JSON back (a reply) and closes the connection.
//!
//! ```text
//! -> {"v":1,"show":"nodes"}
//! <- {"v":1,"nodes":[{"node":2,"name":"berlin","reachable":true,...}]}
//! ```
//!
//! - [`CtlRequest`] and [`CtlReply`] are the messages; `v` is [`CTL_VERSION`], checked on both
//!   sides, so a mismatched pair fails with a clear error instead of a misread field.
//! - [`codec`] encodes and decodes one line, with a size bound per direction
//!   ([`MAX_REQUEST_LINE`], [`MAX_REPLY_LINE`]). The server (in `weft-controld`) and the client
//!   share it.
//! - [`query`] is the blocking client: connect, write the request, read the reply, with a
//!   timeout on every blocking call.
//!
//! No clock is read here: the server's idle timeouts live in the daemon, and the client bounds
//! each blocking call with the socket's own read and write timeouts.

use serde::{Deserialize, Serialize};

mod client;
pub mod codec;

pub use client::{CtlError, query};
pub use codec::{CodecError, MAX_REPLY_LINE, MAX_REQUEST_LINE};

/// The version of this protocol, carried as `"v"` in every request and reply. Bump it when a
/// message changes incompatibly (a field removed, renamed, or its meaning changed); adding a
/// request kind or an optional reply field does not need a bump.
pub const CTL_VERSION: u32 = 1;

/// What `weftctl` asks the control plane. On the wire: `{"v":1,"show":"status"}`,
/// `{"v":1,"show":"nodes"}` or `{"v":1,"show":"routes"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtlRequest {
    /// The control plane's own state: [`CtlReply::Status`].
    Status,
    /// The link-state database, one row per known node: [`CtlReply::Nodes`].
    Nodes,
    /// The routing table as last computed: [`CtlReply::Routes`].
    Routes,
}

impl CtlRequest {
    /// The request's name on the wire (`"status"`, `"nodes"`, `"routes"`).
    pub fn name(self) -> &'static str {
        match self {
            CtlRequest::Status => "status",
            CtlRequest::Nodes => "nodes",
            CtlRequest::Routes => "routes",
        }
    }
}

/// The control plane's answer. On the wire the variant is the key next to `"v"`:
/// `{"v":1,"status":{..}}`, `{"v":1,"nodes":[..]}`, `{"v":1,"routes":[..]}` or
/// `{"v":1,"error":{"message":".."}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtlReply {
    /// Answer to [`CtlRequest::Status`].
    Status(StatusReply),
    /// Answer to [`CtlRequest::Nodes`]: every node in the link-state database, by node id.
    Nodes(Vec<NodeRow>),
    /// Answer to [`CtlRequest::Routes`]: one row per destination, by node id.
    Routes(Vec<RouteRow>),
    /// The request could not be answered (malformed, too long, unknown kind, wrong version, or
    /// the control plane cannot answer it now).
    Error {
        /// A sentence for the operator.
        message: String,
    },
}

impl CtlReply {
    /// An [`CtlReply::Error`] with `message`.
    pub fn error(message: impl Into<String>) -> CtlReply {
        CtlReply::Error {
            message: message.into(),
        }
    }
}

/// The control plane's own state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    /// This node's id.
    pub node: u16,
    /// This node's name (from the config).
    pub name: String,
    /// The control plane's link-state incarnation (new on every start).
    pub incarnation: u32,
    /// Milliseconds since the control plane started.
    pub uptime_ms: u64,
    /// The FIB generation currently published in shared memory.
    pub fib_generation: u64,
    /// FIB generations this control plane has published since it started.
    pub fib_publishes: u64,
    /// Link-state updates received from neighbours.
    pub updates_received: u64,
    /// Link-state updates sent to neighbours.
    pub updates_sent: u64,
    /// Link-state updates sent again because a neighbour did not acknowledge them in time.
    pub retransmissions: u64,
    /// Shortest-path computations run since start.
    pub spf_runs: u64,
    /// Duration of the last shortest-path computation, in microseconds.
    pub last_spf_us: u64,
}

/// One node's entry in the link-state database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    /// The node's id.
    pub node: u16,
    /// The node's name (from the config).
    pub name: String,
    /// Whether this node can reach it over links both ends advertise as up.
    pub reachable: bool,
    /// The incarnation of the node's link-state origin (its control plane's start).
    pub incarnation: u32,
    /// The sequence number of the node's newest link-state update.
    pub seq: u32,
    /// Milliseconds since that update was received (or originated, for this node).
    pub age_ms: u64,
    /// The links the node advertises, by link id.
    pub links: Vec<AdvertisedLink>,
}

/// One link as its node advertises it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertisedLink {
    /// The link's id.
    pub link: u16,
    /// The node at the link's other end.
    pub neighbour: u16,
    /// Whether the advertising node sees the link up.
    pub up: bool,
    /// Measured one-way latency in microseconds.
    pub latency_us: u32,
    /// Measured loss in parts per million.
    pub loss_ppm: u32,
    /// The routing cost derived from latency and loss, in microseconds.
    pub cost_us: u64,
}

/// One destination in the routing table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRow {
    /// The destination node's id.
    pub destination: u16,
    /// The destination node's name (from the config).
    pub name: String,
    /// The neighbour packets go to first; `None` when the destination is unreachable (or is
    /// this node).
    pub next_hop_node: Option<u16>,
    /// The link towards `next_hop_node`; `None` with it.
    pub link: Option<u16>,
    /// The path's total cost in microseconds (meaningless when unreachable).
    pub metric_us: u64,
    /// The nodes along the path, this node first and the destination last; empty when
    /// unreachable.
    pub path: Vec<u16>,
}

#[cfg(test)]
mod tests;
