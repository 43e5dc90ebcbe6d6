//! The config file's shape: serde structs that mirror the TOML one to one.
//!
//! These hold what the file says and nothing more: integers stay `i64` (TOML's integer type) and
//! addresses stay strings, so that range and syntax problems are reported by
//! [`Config::from_raw`](super::Config::from_raw) with a field path and a sentence, not as a serde
//! type mismatch. Unknown keys are rejected (`deny_unknown_fields`) so a typo never silently
//! falls back to a default.
//!
//! Programs that build topologies (the simulator, loopback tests) may fill these structs in
//! directly, serialize them with `toml::to_string` to write a file, or hand them to
//! [`Config::from_raw`](super::Config::from_raw).

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The schema version; must be [`SCHEMA_VERSION`](super::SCHEMA_VERSION).
    pub schema: i64,
    /// The `[overlay]` table.
    pub overlay: RawOverlay,
    /// The `[timers]` table; every field is optional.
    #[serde(default)]
    pub timers: RawTimers,
    /// The `[[node]]` entries, in file order.
    #[serde(default, rename = "node", skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<RawNode>,
    /// The `[[link]]` entries, in file order.
    #[serde(default, rename = "link", skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<RawLink>,
}

/// `[overlay]`: settings of the overlay as a whole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverlay {
    /// The overlay's name.
    pub name: String,
    /// The link authentication mode; absent means `"none"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
}

/// `[timers]`: protocol timers in milliseconds (or counts); absent fields take their defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimers {
    /// Interval between link hellos on each path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello_interval_ms: Option<i64>,
    /// A path without hellos for this long is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_dead_after_ms: Option<i64>,
    /// Consecutive hellos a down path needs to come back up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_up_after_hellos: Option<i64>,
    /// How often a node refloods its own link state even when nothing changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_state_refresh_ms: Option<i64>,
    /// Link state older than this is discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_state_max_age_ms: Option<i64>,
    /// The control plane publishes at most one FIB generation per this interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fib_publish_min_interval_ms: Option<i64>,
}

/// `[[node]]`: one overlay node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// The node id, 1..=1023.
    pub id: i64,
    /// A unique human-readable name.
    pub name: String,
    /// CPU cores for the data plane workers; absent means `[0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<Vec<i64>>,
    /// The client session socket path; absent means `/run/weft/node<ID>.sock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_socket: Option<String>,
    /// The control socket path; absent means `/run/weft/node<ID>.ctl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctl_socket: Option<String>,
    /// The shared-memory name; absent means `weft-<overlay>-node<ID>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_name: Option<String>,
    /// Whether data records for one next hop share datagrams; absent means `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packing: Option<bool>,
    /// Microseconds a worker keeps polling after a turn with work before it blocks; absent
    /// means 0 (block at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_poll_us: Option<i64>,
    /// The `[[node.interface]]` entries, in file order.
    #[serde(default, rename = "interface", skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<RawInterface>,
}

/// `[[node.interface]]`: the node's UDP socket on one ISP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInterface {
    /// The ISP's short name, e.g. `"a"`.
    pub isp: String,
    /// `IP:port` (IPv6 as `[addr]:port`) that the node binds for this ISP.
    pub addr: String,
}

/// `[[link]]`: an overlay link between two nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    /// The stable link id, 0..512.
    pub id: i64,
    /// The two node ids `[A, B]`.
    pub nodes: Vec<i64>,
    /// The base cost in microseconds.
    pub cost: i64,
    /// The path MTU in bytes; absent means 1500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// Interface pairs `["isp_of_A", "isp_of_B"]`; absent means the default pairing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<Vec<String>>>,
    /// The link's key file (relative to the config file's directory); absent means the link
    /// is not authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}
