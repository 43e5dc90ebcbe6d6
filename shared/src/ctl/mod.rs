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

/// Most rows of [`GroupsReply::groups`]; the rest are counted in [`GroupsReply::total`]. The
/// server also stops earlier if the next row would take the reply past [`MAX_REPLY_LINE`].
pub const MAX_GROUP_ROWS: usize = 1_000;

/// Most rows of [`GroupsReply::local`]; the rest are counted in [`GroupsReply::local_total`].
pub const MAX_LOCAL_GROUP_ROWS: usize = 1_000;

/// What `weftctl` asks the control plane. On the wire: `{"v":1,"show":"status"}`,
/// `{"v":1,"show":"nodes"}`, `{"v":1,"show":"routes"}`, `{"v":1,"show":"groups"}` or, for one
/// group, `{"v":1,"show":"groups","group":7}` ([`codec`] maps the lines to these values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtlRequest {
    /// The control plane's own state: [`CtlReply::Status`].
    Status,
    /// The link-state database, one row per known node: [`CtlReply::Nodes`].
    Nodes,
    /// The routing table as last computed: [`CtlReply::Routes`].
    Routes,
    /// Group state: counts, local groups, and one row per known group with its anycast choice
    /// and its multicast tree rooted at this node: [`CtlReply::Groups`].
    Groups,
    /// The same for one group (by id), with its multicast trees rooted at every source node
    /// ([`GroupRow::trees`]): [`CtlReply::Groups`] with at most one row.
    Group(u32),
}

impl CtlRequest {
    /// The request's name on the wire (`"status"`, `"nodes"`, `"routes"`, `"groups"`).
    pub fn name(self) -> &'static str {
        match self {
            CtlRequest::Status => "status",
            CtlRequest::Nodes => "nodes",
            CtlRequest::Routes => "routes",
            CtlRequest::Groups | CtlRequest::Group(_) => "groups",
        }
    }
}

/// The control plane's answer. On the wire the variant is the key next to `"v"`:
/// `{"v":1,"status":{..}}`, `{"v":1,"nodes":[..]}`, `{"v":1,"routes":[..]}`,
/// `{"v":1,"groups":{..}}` or `{"v":1,"error":{"message":".."}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtlReply {
    /// Answer to [`CtlRequest::Status`].
    Status(StatusReply),
    /// Answer to [`CtlRequest::Nodes`]: every node in the link-state database, by node id.
    Nodes(Vec<NodeRow>),
    /// Answer to [`CtlRequest::Routes`]: one row per destination, by node id.
    Routes(Vec<RouteRow>),
    /// Answer to [`CtlRequest::Groups`] and [`CtlRequest::Group`].
    Groups(GroupsReply),
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

/// The group state of one node: what it knows of every group, and what it would do with a
/// packet to each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsReply {
    /// This node's id.
    pub node: u16,
    /// This node's name (from the config).
    pub name: String,
    /// The group asked for ([`CtlRequest::Group`]); `None` for every group.
    pub asked_group: Option<u32>,
    /// Groups with at least one member node, as this node knows them.
    pub group_count: u64,
    /// Multicast (group, source) entries in the last FIB this control plane published.
    pub fib_multicast: u64,
    /// Anycast entries in that FIB.
    pub fib_anycast: u64,
    /// What the group-state flooding has done since the control plane started.
    pub adverts: GroupAdvertStats,
    /// Groups with at least one local member, as last read from the data plane, in increasing
    /// order; at most [`MAX_LOCAL_GROUP_ROWS`].
    pub local: Vec<LocalGroupRow>,
    /// Number of local groups (`local` may hold fewer).
    pub local_total: u64,
    /// One row per known group in increasing order (or the one group asked for, if known); at
    /// most [`MAX_GROUP_ROWS`], fewer if they would not fit in one reply line.
    pub groups: Vec<GroupRow>,
    /// Rows `groups` would hold without the bounds.
    pub total: u64,
    /// Whether something was left out to fit the bounds: rows of `groups`, or (for one group)
    /// some of its per-source trees.
    pub truncated: bool,
    /// The name of every node the reply mentions, by id.
    pub names: Vec<NodeName>,
}

/// Counters of the group-state protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAdvertStats {
    /// Bucket adverts this node originated (withdrawals included).
    pub originated: u64,
    /// Adverts received that were newer than the stored copy.
    pub accepted: u64,
    /// Adverts received that were duplicates, older, or of an old incarnation.
    pub ignored: u64,
    /// Messages refused (malformed, unknown link or origin).
    pub refused: u64,
    /// Envelopes queued for sending (adverts and acks).
    pub sent: u64,
    /// Adverts sent again for lack of an ack.
    pub retransmissions: u64,
    /// Acks received.
    pub acks_received: u64,
    /// Full exchanges of the database (a link came up, a neighbour restarted).
    pub full_exchanges: u64,
    /// Stored buckets dropped because their origin showed a newer incarnation.
    pub superseded: u64,
    /// Stored buckets discarded for age.
    pub aged_out: u64,
}

/// One group with local members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalGroupRow {
    /// The group id.
    pub group: u32,
    /// Clients of this node that joined it.
    pub members: u32,
}

/// One known group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRow {
    /// The group id.
    pub group: u32,
    /// Its member nodes (this node included when it has local members), in increasing order.
    pub members: Vec<u16>,
    /// Where an anycast packet from this node goes; `None` if no member is reachable.
    pub anycast: Option<AnycastChoice>,
    /// The multicast tree of packets from this node: every edge of this node's shortest-path
    /// tree on a path to a reachable member, by (from, to).
    pub tree: Vec<TreeEdgeRow>,
    /// Only for [`CtlRequest::Group`]: the tree from every source node this node reaches
    /// (itself included), by source; empty otherwise.
    #[serde(default)]
    pub trees: Vec<SourceTree>,
}

/// The anycast choice of a group at this node: its nearest reachable member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnycastChoice {
    /// The member node packets go to (this node itself when it is a member).
    pub target: u16,
    /// The neighbour they go to first; `None` when the target is this node.
    pub next_hop_node: Option<u16>,
    /// The link towards `next_hop_node`; `None` with it.
    pub link: Option<u16>,
    /// The path's cost in microseconds (0 for this node).
    pub metric_us: u32,
}

/// One directed edge of a multicast tree: `from` forwards to `to` on `link`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEdgeRow {
    /// The parent node.
    pub from: u16,
    /// The child node.
    pub to: u16,
    /// The link between them.
    pub link: u16,
}

/// A group's multicast tree for packets from one source node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTree {
    /// The source node (the tree's root).
    pub source: u16,
    /// The tree's edges towards reachable members, by (from, to).
    pub edges: Vec<TreeEdgeRow>,
}

/// A node's name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeName {
    /// The node's id.
    pub node: u16,
    /// Its name (from the config).
    pub name: String,
}

#[cfg(test)]
mod tests;
