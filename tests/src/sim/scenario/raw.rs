//! The scenario file's TOML as serde structs, unknown keys refused. Nothing here is checked
//! beyond TOML types: [`super::Scenario::from_toml_str`] turns these into checked values.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub(crate) name: Option<String>,
    pub(crate) config: String,
    pub(crate) duration_ms: u64,
    pub(crate) drain_ms: Option<u64>,
    pub(crate) seed: Option<u64>,
    pub(crate) stats_interval_ms: Option<u64>,
    pub(crate) timers: Option<toml::Table>,
    pub(crate) link_model: Option<RawLinkSpec>,
    #[serde(default)]
    pub(crate) link_override: Vec<RawLinkOverride>,
    #[serde(default)]
    pub(crate) flow: Vec<RawFlow>,
    #[serde(default)]
    pub(crate) event: Vec<RawEvent>,
    pub(crate) report: Option<RawReport>,
}

/// A node by id or by name.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawNodeRef {
    Id(u16),
    Name(String),
}

/// A link by id or by its two nodes.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawLinkRef {
    Id(u16),
    Between([RawNodeRef; 2]),
}

/// Link model settings (every field optional).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLinkSpec {
    pub(crate) latency_ms: Option<f64>,
    pub(crate) jitter_ms: Option<f64>,
    pub(crate) loss: Option<RawLoss>,
    pub(crate) rate_mbps: Option<f64>,
    pub(crate) queue_kb: Option<f64>,
    pub(crate) reorder: Option<bool>,
}

/// `loss = { model = "...", ... }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoss {
    pub(crate) model: String,
    pub(crate) p: Option<f64>,
    pub(crate) average: Option<f64>,
    pub(crate) mean_burst: Option<f64>,
}

/// `[[link_override]]`: a link (or one of its paths) and the model fields it changes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLinkOverride {
    pub(crate) link: RawLinkRef,
    pub(crate) path: Option<u8>,
    pub(crate) latency_ms: Option<f64>,
    pub(crate) jitter_ms: Option<f64>,
    pub(crate) loss: Option<RawLoss>,
    pub(crate) rate_mbps: Option<f64>,
    pub(crate) queue_kb: Option<f64>,
    pub(crate) reorder: Option<bool>,
}

/// `[[flow]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFlow {
    pub(crate) name: Option<String>,
    pub(crate) from: RawNodeRef,
    pub(crate) to: Option<RawNodeRef>,
    pub(crate) to_group: Option<u32>,
    pub(crate) to_anycast: Option<u32>,
    pub(crate) rate_pps: f64,
    pub(crate) size: u64,
    pub(crate) start_ms: Option<u64>,
    pub(crate) stop_ms: Option<u64>,
    pub(crate) service: Option<String>,
}

/// `[[event]]`: a time and exactly one action (a network event or a membership change).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvent {
    pub(crate) at_ms: u64,
    pub(crate) cut_link: Option<RawLinkRef>,
    pub(crate) restore_link: Option<RawLinkRef>,
    pub(crate) cut_path: Option<RawPathRef>,
    pub(crate) restore_path: Option<RawPathRef>,
    pub(crate) fail_node: Option<RawNodeRef>,
    pub(crate) restart_node: Option<RawNodeRef>,
    pub(crate) misbehave: Option<RawMisbehave>,
    pub(crate) join: Option<RawMembership>,
    pub(crate) leave: Option<RawMembership>,
}

/// `join = { node = ..., group = N }` (and `leave`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMembership {
    pub(crate) node: RawNodeRef,
    pub(crate) group: u32,
}

/// `{ link = ..., path = N }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPathRef {
    pub(crate) link: RawLinkRef,
    pub(crate) path: u8,
}

/// `misbehave = { node = ..., behaviour = "...", ... }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMisbehave {
    pub(crate) node: RawNodeRef,
    pub(crate) behaviour: String,
    pub(crate) fraction: Option<f64>,
    pub(crate) delay_ms: Option<f64>,
    pub(crate) copies: Option<u8>,
    pub(crate) to: Option<RawNodeRef>,
    pub(crate) rate_pps: Option<f64>,
    pub(crate) size: Option<u64>,
}

/// `[report]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReport {
    pub(crate) percentiles: Option<Vec<f64>>,
    pub(crate) links: Option<bool>,
    pub(crate) log: Option<bool>,
    pub(crate) trace: Option<String>,
}
