//! What each `weftctl` command reports, as plain data: filled in by [`crate::fetch`], printed as
//! tables by [`crate::render`] or as JSON (`--json`) by serde. The JSON field names are part of
//! weftctl's interface (`docs/weftctl.md`).

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use weft_shared::ctl::{GroupsReply, NodeRow, RouteRow, StatusReply};

/// `show status`: the control plane's own state.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    /// The control plane's answer.
    #[serde(flatten)]
    pub status: StatusReply,
}

/// `show nodes`: the control plane's link-state database.
#[derive(Clone, Debug, Serialize)]
pub struct NodesReport {
    /// The node asked.
    pub node: u16,
    /// Its name.
    pub name: String,
    /// One row per node in the database.
    pub nodes: Vec<NodeRow>,
}

/// `show routes`: the control plane's routing table.
#[derive(Clone, Debug, Serialize)]
pub struct RoutesReport {
    /// The node asked.
    pub node: u16,
    /// Its name.
    pub name: String,
    /// The control plane's status, when it answered that too.
    pub status: Option<StatusReply>,
    /// One row per destination.
    pub routes: Vec<RouteRow>,
}

/// `show groups`: the control plane's group state, as it answered (its fields at the top
/// level: `node`, `local`, `groups`, ...).
#[derive(Clone, Debug, Serialize)]
pub struct GroupsReport {
    /// The control plane's answer.
    #[serde(flatten)]
    pub groups: GroupsReply,
}

/// Liveness of a link or path as the data plane decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Hellos are answered.
    Up,
    /// Hellos are not answered.
    Down,
    /// Not measured yet.
    Unknown,
    /// The record was being written on every read try (or its writer died mid-write).
    Busy,
}

impl State {
    /// The lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Unknown => "unknown",
            State::Busy => "busy",
        }
    }
}

/// Measurements shared by links and paths.
#[derive(Clone, Debug, Serialize)]
pub struct Liveness {
    /// Up, down, unknown or busy.
    pub state: State,
    /// Smoothed round-trip time in microseconds (0: not measured).
    pub rtt_us: u32,
    /// Loss of the peer's hellos, in parts per million.
    pub loss_ppm: u32,
    /// Hellos sent.
    pub hellos_sent: u64,
    /// Hellos received.
    pub hellos_received: u64,
    /// Milliseconds since the state last changed; `None` if it never changed.
    pub changed_ms_ago: Option<u64>,
}

/// One path of a link.
#[derive(Clone, Debug, Serialize)]
pub struct PathRow {
    /// The path id.
    pub path: u8,
    /// This node's end: `isp address`.
    pub local: String,
    /// The neighbour's end: `isp address`.
    pub remote: String,
    /// The path's measurements.
    #[serde(flatten)]
    pub liveness: Liveness,
}

/// One link of the node, with its paths.
#[derive(Clone, Debug, Serialize)]
pub struct LinkRow {
    /// The link id.
    pub link: u16,
    /// The node across the link.
    pub neighbour: u16,
    /// Its name.
    pub neighbour_name: String,
    /// The path the link uses now.
    pub active_path: Option<u8>,
    /// The link's measurements (those of its active path; hellos summed over its paths).
    #[serde(flatten)]
    pub liveness: Liveness,
    /// Bytes received, over all workers.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// The key epochs if the link is authenticated (`null`: a plain link).
    pub auth: Option<AuthRow>,
    /// The link's paths, by id.
    pub paths: Vec<PathRow>,
}

/// The key epochs of an authenticated link, as the data plane's worker 0 holds them.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct AuthRow {
    /// The epoch packets are sealed with now.
    pub send_epoch: u8,
    /// The newest epoch this node holds (announced in its hellos).
    pub newest_epoch: u8,
    /// The newest epoch the peer announced (`null` before its first authenticated hello).
    pub peer_epoch: Option<u8>,
}

/// `show links`: every link and path of the node, from the data plane's shared memory.
#[derive(Clone, Debug, Serialize)]
pub struct LinksReport {
    /// The node.
    pub node: u16,
    /// Its name.
    pub name: String,
    /// Where the statistics come from.
    pub dataplane: DataplaneInfo,
    /// One row per configured link of the node, by id.
    pub links: Vec<LinkRow>,
}

/// The data plane a report was read from.
#[derive(Clone, Debug, Serialize)]
pub struct DataplaneInfo {
    /// Its pid (the live writer of its statistics).
    pub pid: u32,
    /// Its incarnation (new on every start).
    pub incarnation: u32,
    /// The shared memory: `/dev/shm/<name>`, or the attach socket a memfd came through.
    pub region: String,
}

/// One unicast FIB entry.
#[derive(Clone, Debug, Serialize)]
pub struct FibRoute {
    /// The destination node.
    pub destination: u16,
    /// Its name (empty if the config does not know it).
    pub name: String,
    /// The link packets leave on.
    pub link: u16,
    /// The node across that link (`None` if the link is not one of this node's).
    pub next_hop_node: Option<u16>,
    /// The route's metric in microseconds.
    pub metric_us: u32,
}

/// `show fib`: the generation the data plane forwards with.
#[derive(Clone, Debug, Serialize)]
pub struct FibReport {
    /// The node.
    pub node: u16,
    /// Its name.
    pub name: String,
    /// Where it was read.
    pub dataplane: DataplaneInfo,
    /// The current generation (0: nothing was ever published).
    pub generation: u64,
    /// Unicast entries (from the table header).
    pub unicast_count: usize,
    /// Multicast (group, source) entries.
    pub multicast_count: usize,
    /// Anycast groups.
    pub anycast_count: usize,
    /// Whether the table's counts and checksum match its entries.
    pub verified: bool,
    /// What did not match, when `verified` is false.
    pub verify_error: Option<String>,
    /// The unicast table, by destination.
    pub unicast: Vec<FibRoute>,
}

/// Counter values in a fixed order (`received`, ..., `drop_<reason>`); a JSON object.
#[derive(Clone, Debug, Default)]
pub struct Counters(pub Vec<(String, u64)>);

impl Counters {
    /// The value of `name`, if there is such a counter.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// One worker's counters.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerRow {
    /// The worker index.
    pub worker: usize,
    /// The core it is configured for.
    pub core: u16,
    /// Every counter of the worker.
    pub counters: Counters,
}

/// `show counters`: per-worker packet counters and drops by reason.
#[derive(Clone, Debug, Serialize)]
pub struct CountersReport {
    /// The node.
    pub node: u16,
    /// Its name.
    pub name: String,
    /// Where they were read.
    pub dataplane: DataplaneInfo,
    /// One row per configured worker.
    pub workers: Vec<WorkerRow>,
    /// Sums over every worker row of the region.
    pub total: Counters,
}

/// One link's reliable figures, summed over the workers.
#[derive(Clone, Debug, Serialize)]
pub struct ReliableLinkRow {
    /// The link id.
    pub link: u16,
    /// The node at the other end.
    pub neighbour: u16,
    /// What the link's reliable machines did, and hold now.
    #[serde(flatten)]
    pub values: weft_shared::shm::RelLinkValues,
}

/// `show reliable`: the reliable service per link and per flow.
#[derive(Clone, Debug, Serialize)]
pub struct ReliableReport {
    /// The node.
    pub node: u16,
    /// Its name.
    pub name: String,
    /// Where they were read.
    pub dataplane: DataplaneInfo,
    /// One row per link of the node.
    pub links: Vec<ReliableLinkRow>,
    /// One row per reliable flow end at this node.
    pub flows: Vec<weft_shared::shm::RelFlowValues>,
}

/// `config check`: a config that loaded.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigSummary {
    /// The file.
    pub file: String,
    /// The overlay's name.
    pub overlay: String,
    /// The config hash (16 hex digits), as nodes compare it in hellos.
    pub hash: String,
    /// Number of nodes.
    pub nodes: usize,
    /// Number of links.
    pub links: usize,
    /// Number of paths over all links.
    pub paths: usize,
    /// Each node: id, name, workers, links.
    pub node_list: Vec<ConfigNode>,
}

/// One node in a [`ConfigSummary`].
#[derive(Clone, Debug, Serialize)]
pub struct ConfigNode {
    /// Node id.
    pub id: u16,
    /// Name.
    pub name: String,
    /// Data-plane workers (cores).
    pub workers: usize,
    /// Links touching the node.
    pub links: usize,
    /// The control plane's socket.
    pub ctl_socket: String,
}
