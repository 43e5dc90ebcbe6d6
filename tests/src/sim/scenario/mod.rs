//! Scenario files: which overlay config to run, how its links behave, which flows to send and
//! what happens when. The format is documented in `docs/simulator.md`.
//!
//! Loading goes text → serde `raw` structs (unknown keys refused) → [`Scenario`], whose values
//! are checked on their own (ranges, exactly one action per event, exactly one destination per
//! flow, best effort only). Network events go to [`Scenario::events`] and group joins and
//! leaves to [`Scenario::group_events`]; both keep their place in the one time-sorted timeline
//! ([`GroupEventSpec::position`]). Names of
//! nodes and links are checked against the config when the [`Simulation`](super::Simulation)
//! is built, and those errors name the scenario file and field too.

mod error;
mod groups;
mod raw;

use std::path::{Path, PathBuf};
use std::time::Duration;

use weft_shared::config::Config;

use crate::linkmodel::{LinkParams, LossModel};
use crate::sim::trace::TraceMode;

pub use error::ScenarioError;
use groups::Timed;
pub use groups::{GroupChange, GroupEventSpec, GroupKind, GroupTarget};
use raw::{
    RawEvent, RawFlow, RawLinkOverride, RawLinkRef, RawLinkSpec, RawLoss, RawMisbehave, RawNodeRef,
    RawReport, RawScenario,
};

/// Longest scenario: one virtual day.
const MAX_DURATION_MS: u64 = 86_400_000;
/// Largest flow payload in bytes (fits one packet on a 1500-byte path with every header).
pub const MAX_FLOW_SIZE: usize = 1200;
/// Smallest flow payload in bytes: the send timestamp and some room.
pub const MIN_FLOW_SIZE: usize = 16;
/// Highest rate of one flow or flood, packets per second.
pub const MAX_RATE_PPS: f64 = 1_000_000.0;

/// A node named by id or by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeRef {
    /// `4`
    Id(u16),
    /// `"atlanta"`
    Name(String),
}

/// A link named by id or by its two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkRef {
    /// `3`
    Id(u16),
    /// `["boston", "newyork"]`
    Between(NodeRef, NodeRef),
}

/// Changes to a link model; `None` keeps what was there.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkSpec {
    /// One-way latency.
    pub latency: Option<Duration>,
    /// Uniform extra delay bound.
    pub jitter: Option<Duration>,
    /// Loss model.
    pub loss: Option<LossModel>,
    /// Rate limit in bits per second.
    pub rate_bps: Option<u64>,
    /// Queue limit in bytes.
    pub queue_bytes: Option<usize>,
    /// Whether jitter may reorder.
    pub reorder: Option<bool>,
}

impl LinkSpec {
    /// Applies the fields that are set to `params`.
    pub fn apply(&self, params: &mut LinkParams) {
        if let Some(v) = self.latency {
            params.latency = v;
        }
        if let Some(v) = self.jitter {
            params.jitter = v;
        }
        if let Some(v) = self.loss {
            params.loss = v;
        }
        if let Some(v) = self.rate_bps {
            params.rate_bps = Some(v);
        }
        if let Some(v) = self.queue_bytes {
            params.queue_limit_bytes = v;
        }
        if let Some(v) = self.reorder {
            params.reorder = v;
        }
    }
}

/// `[[link_override]]`: model changes for one link, or one path of it.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkOverride {
    /// The link.
    pub link: LinkRef,
    /// Only this path (id), or every path of the link.
    pub path: Option<u8>,
    /// The changes.
    pub spec: LinkSpec,
}

/// `[[flow]]`: a constant-rate best-effort flow to a node (`to`), a multicast group
/// (`to_group`) or an anycast group (`to_anycast`).
#[derive(Clone, Debug, PartialEq)]
pub struct FlowSpec {
    /// Name in reports.
    pub name: String,
    /// Source node.
    pub from: NodeRef,
    /// Destination node. For a group flow ([`FlowSpec::group`]) a placeholder name that no
    /// config node can have (`"(multicast group 7)"`), so that a tool that knows only flows
    /// to a node refuses the flow instead of sending it somewhere.
    pub to: NodeRef,
    /// The group, for a flow to a group.
    pub group: Option<GroupTarget>,
    /// Packets per second.
    pub rate_pps: f64,
    /// Payload bytes per packet.
    pub size: usize,
    /// First send.
    pub start: Duration,
    /// No sends from here on.
    pub stop: Duration,
}

/// What a misbehaving node does to the data it forwards for others (its own traffic and what
/// it delivers locally are untouched).
#[derive(Clone, Debug, PartialEq)]
pub enum Behaviour {
    /// Forwards honestly again.
    Honest,
    /// Drops every forwarded data packet (a black hole).
    DropAll,
    /// Drops this fraction of forwarded data packets at random.
    DropFraction(f64),
    /// Holds every forwarded data packet this long first.
    Delay(Duration),
    /// Sends every forwarded data packet this many extra times.
    Duplicate(u8),
    /// Originates junk best-effort traffic towards a node, on top of forwarding honestly.
    Flood {
        /// Where the junk goes.
        to: NodeRef,
        /// Packets per second.
        rate_pps: f64,
        /// Payload bytes per packet.
        size: usize,
    },
}

/// A timeline action.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Every path of the link goes down (both directions).
    CutLink(LinkRef),
    /// The link's paths come back (paths cut on their own stay cut).
    RestoreLink(LinkRef),
    /// One path (an ISP pair) of a link goes down.
    CutPath(LinkRef, u8),
    /// The path comes back.
    RestorePath(LinkRef, u8),
    /// The node stops: no processing, its state is lost.
    FailNode(NodeRef),
    /// The node starts again as a new incarnation (fresh monitors, forwarder, router).
    RestartNode(NodeRef),
    /// The node starts misbehaving (or, with [`Behaviour::Honest`], stops).
    Misbehave(NodeRef, Behaviour),
}

/// `[[event]]` with a network action.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSpec {
    /// When, from the start of the simulation.
    pub at: Duration,
    /// What.
    pub action: Action,
}

/// `[report]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportSpec {
    /// Latency percentiles to report.
    pub percentiles: Vec<f64>,
    /// Per-link-direction counters in the report.
    pub links: bool,
    /// Print the log of link, path, route and timeline events after the summary.
    pub log: bool,
    /// How much of the packet trace is kept.
    pub trace: TraceMode,
}

impl Default for ReportSpec {
    fn default() -> Self {
        ReportSpec {
            percentiles: vec![50.0, 90.0, 99.0],
            links: false,
            log: false,
            trace: TraceMode::Hash,
        }
    }
}

/// A checked scenario (names not yet resolved against the config).
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The file it came from (for errors and reports).
    pub file: String,
    /// The directory relative paths start from.
    pub base_dir: PathBuf,
    /// Name in reports (default: the file stem).
    pub name: String,
    /// The Weft config, as written (relative to the scenario or any directory above it).
    pub config: String,
    /// Overrides of the config's `[timers]`.
    pub timers: Option<toml::Table>,
    /// Flows are clamped to this; events after it are refused.
    pub duration: Duration,
    /// Extra virtual time after `duration` for packets in flight to land.
    pub drain: Duration,
    /// The seed when none is given on the command line.
    pub seed: Option<u64>,
    /// How often each node's control plane reads its link statistics (the daemon's 5 ms).
    pub stats_interval: Duration,
    /// Applied to every path, both directions.
    pub link_model: LinkSpec,
    /// Applied after `link_model`, in file order.
    pub link_overrides: Vec<LinkOverride>,
    /// The flows.
    pub flows: Vec<FlowSpec>,
    /// The network events of the timeline, in time order.
    pub events: Vec<EventSpec>,
    /// The membership events of the timeline, in time order.
    pub group_events: Vec<GroupEventSpec>,
    /// What to report.
    pub report: ReportSpec,
}

impl Scenario {
    /// Reads and checks the scenario file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::new(&file, "", format!("cannot read: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Scenario::from_toml_str(&text, &file, base)
    }

    /// Parses and checks `text`; errors name `file`, relative paths start at `base_dir`.
    pub fn from_toml_str(
        text: &str,
        file: &str,
        base_dir: &Path,
    ) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let err = ScenarioError::new(file, "", e.message().to_owned());
            match e.span() {
                Some(span) => err.at_offset(text, span.start),
                None => err,
            }
        })?;
        let c = Check { file };
        let name = raw.name.clone().unwrap_or_else(|| {
            Path::new(file)
                .file_stem()
                .map_or_else(|| file.to_owned(), |s| s.to_string_lossy().into_owned())
        });
        if raw.duration_ms == 0 || raw.duration_ms > MAX_DURATION_MS {
            return Err(c.err(
                "duration_ms",
                format!("{} is outside 1..={MAX_DURATION_MS}", raw.duration_ms),
            ));
        }
        let duration = Duration::from_millis(raw.duration_ms);
        let stats_ms = raw.stats_interval_ms.unwrap_or(5);
        if !(1..=1000).contains(&stats_ms) {
            return Err(c.err(
                "stats_interval_ms",
                format!("{stats_ms} is outside 1..=1000"),
            ));
        }
        let drain_ms = raw.drain_ms.unwrap_or(1000);
        if drain_ms > 60_000 {
            return Err(c.err("drain_ms", format!("{drain_ms} is above 60000")));
        }
        let link_model = match &raw.link_model {
            Some(spec) => c.link_spec("link_model", spec)?,
            None => LinkSpec::default(),
        };
        let link_overrides = raw
            .link_override
            .iter()
            .enumerate()
            .map(|(i, o)| c.link_override(i, o))
            .collect::<Result<_, _>>()?;
        let flows = raw
            .flow
            .iter()
            .enumerate()
            .map(|(i, f)| c.flow(i, f, duration))
            .collect::<Result<_, _>>()?;
        let mut timeline: Vec<(Duration, Timed)> = raw
            .event
            .iter()
            .enumerate()
            .map(|(i, e)| c.event(i, e, duration))
            .collect::<Result<_, _>>()?;
        // Stable: events at the same time keep their file order.
        timeline.sort_by_key(|(at, _)| *at);
        let mut events = Vec::new();
        let mut group_events = Vec::new();
        for (position, (at, timed)) in timeline.into_iter().enumerate() {
            match timed {
                Timed::Network(action) => events.push(EventSpec { at, action }),
                Timed::Group(node, group, change) => group_events.push(GroupEventSpec {
                    at,
                    node,
                    group,
                    change,
                    position,
                }),
            }
        }
        let report = match &raw.report {
            Some(r) => c.report(r)?,
            None => ReportSpec::default(),
        };
        Ok(Scenario {
            file: file.to_owned(),
            base_dir: base_dir.to_owned(),
            name,
            config: raw.config,
            timers: raw.timers,
            duration,
            drain: Duration::from_millis(drain_ms),
            seed: raw.seed,
            stats_interval: Duration::from_millis(stats_ms),
            link_model,
            link_overrides,
            flows,
            events,
            group_events,
            report,
        })
    }

    /// Number of events in the timeline (network and group events).
    pub fn timeline_len(&self) -> usize {
        self.events.len() + self.group_events.len()
    }

    /// Where the config file is: `config` as written if absolute, else the first of the
    /// scenario's directory and the directories above it that has it.
    pub fn config_path(&self) -> Result<PathBuf, ScenarioError> {
        let written = Path::new(&self.config);
        if written.is_absolute() {
            return Ok(written.to_owned());
        }
        for dir in self.base_dir.ancestors() {
            let candidate = dir.join(written);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        Err(ScenarioError::new(
            &self.file,
            "config",
            format!(
                "{:?} is neither relative to {} nor to a directory above it",
                self.config,
                self.base_dir.display()
            ),
        ))
    }

    /// Loads the Weft config the scenario names, with the scenario's `[timers]` applied.
    pub fn load_config(&self) -> Result<Config, ScenarioError> {
        let path = self.config_path()?;
        let shown = path.display().to_string();
        let config_err = |e: &dyn std::fmt::Display| {
            ScenarioError::new(&self.file, "config", format!("loading {shown}: {e}"))
        };
        let Some(timers) = &self.timers else {
            return Config::load(&path).map_err(|e| config_err(&e));
        };
        let text = std::fs::read_to_string(&path).map_err(|e| config_err(&e))?;
        let mut doc: toml::Table = toml::from_str(&text).map_err(|e| config_err(&e))?;
        let entry = doc
            .entry("timers")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(table) = entry.as_table_mut() else {
            return Err(config_err(&"[timers] is not a table"));
        };
        for (k, v) in timers {
            table.insert(k.clone(), v.clone());
        }
        let patched = toml::to_string(&doc).map_err(|e| config_err(&e))?;
        Config::from_toml_str(&patched, &shown).map_err(|e| {
            // The patched text's line numbers mean nothing to the reader: field and reason only.
            let message = format!("{shown} with these timers: {}: {}", e.path(), e.kind());
            ScenarioError::new(&self.file, "timers", message)
        })
    }
}

/// The checks, with the file name for errors.
pub(crate) struct Check<'a> {
    file: &'a str,
}

impl Check<'_> {
    pub(crate) fn err(
        &self,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ScenarioError {
        ScenarioError::new(self.file, field, message)
    }

    fn millis(&self, field: &str, ms: f64) -> Result<Duration, ScenarioError> {
        if !ms.is_finite() || !(0.0..=600_000.0).contains(&ms) {
            return Err(self.err(field, format!("{ms} ms is outside 0..=600000")));
        }
        Ok(Duration::from_nanos((ms * 1e6).round() as u64))
    }

    fn link_spec(&self, at: &str, s: &RawLinkSpec) -> Result<LinkSpec, ScenarioError> {
        let field = |f: &str| format!("{at}.{f}");
        let mut spec = LinkSpec {
            reorder: s.reorder,
            ..LinkSpec::default()
        };
        if let Some(ms) = s.latency_ms {
            spec.latency = Some(self.millis(&field("latency_ms"), ms)?);
        }
        if let Some(ms) = s.jitter_ms {
            spec.jitter = Some(self.millis(&field("jitter_ms"), ms)?);
        }
        if let Some(loss) = &s.loss {
            spec.loss = Some(self.loss(&field("loss"), loss)?);
        }
        if let Some(mbps) = s.rate_mbps {
            if !mbps.is_finite() || mbps <= 0.0 || mbps > 1e6 {
                return Err(self.err(field("rate_mbps"), format!("{mbps} is outside (0, 1e6]")));
            }
            spec.rate_bps = Some((mbps * 1e6).round() as u64);
        }
        if let Some(kb) = s.queue_kb {
            if !kb.is_finite() || !(0.0..=1e6).contains(&kb) {
                return Err(self.err(field("queue_kb"), format!("{kb} is outside 0..=1e6")));
            }
            spec.queue_bytes = Some((kb * 1000.0).round() as usize);
        }
        Ok(spec)
    }

    fn loss(&self, at: &str, l: &RawLoss) -> Result<LossModel, ScenarioError> {
        let unit = |name: &str, v: Option<f64>, max: f64| -> Result<f64, ScenarioError> {
            let field = format!("{at}.{name}");
            let v =
                v.ok_or_else(|| self.err(&field, format!("missing for model {:?}", l.model)))?;
            if !v.is_finite() || !(0.0..=max).contains(&v) {
                return Err(self.err(field, format!("{v} is outside 0..={max}")));
            }
            Ok(v)
        };
        let unused = |names: &[(&str, bool)]| -> Result<(), ScenarioError> {
            match names.iter().find(|(_, set)| *set) {
                Some((name, _)) => Err(self.err(
                    format!("{at}.{name}"),
                    format!("not a parameter of model {:?}", l.model),
                )),
                None => Ok(()),
            }
        };
        match l.model.as_str() {
            "none" => {
                unused(&[
                    ("p", l.p.is_some()),
                    ("average", l.average.is_some()),
                    ("mean_burst", l.mean_burst.is_some()),
                ])?;
                Ok(LossModel::None)
            }
            "bernoulli" => {
                unused(&[
                    ("average", l.average.is_some()),
                    ("mean_burst", l.mean_burst.is_some()),
                ])?;
                Ok(LossModel::Bernoulli {
                    p: unit("p", l.p, 1.0)?,
                })
            }
            "gilbert-elliott" => {
                unused(&[("p", l.p.is_some())])?;
                let average = unit("average", l.average, 0.99)?;
                let burst = unit("mean_burst", l.mean_burst, 1e6)?;
                if burst < 1.0 {
                    return Err(self.err(
                        format!("{at}.mean_burst"),
                        format!("{burst} is below 1 packet"),
                    ));
                }
                Ok(LossModel::bursty(average, burst))
            }
            other => Err(self.err(
                format!("{at}.model"),
                format!("unknown loss model {other:?} (none, bernoulli, gilbert-elliott)"),
            )),
        }
    }

    fn link_override(&self, i: usize, o: &RawLinkOverride) -> Result<LinkOverride, ScenarioError> {
        let at = format!("link_override[{i}]");
        let raw = RawLinkSpec {
            latency_ms: o.latency_ms,
            jitter_ms: o.jitter_ms,
            loss: o.loss.clone(),
            rate_mbps: o.rate_mbps,
            queue_kb: o.queue_kb,
            reorder: o.reorder,
        };
        Ok(LinkOverride {
            link: link_ref(&o.link),
            path: o.path,
            spec: self.link_spec(&at, &raw)?,
        })
    }

    fn rate(&self, field: String, pps: f64) -> Result<f64, ScenarioError> {
        if !pps.is_finite() || pps <= 0.0 || pps > MAX_RATE_PPS {
            return Err(self.err(field, format!("{pps} is outside (0, {MAX_RATE_PPS}]")));
        }
        Ok(pps)
    }

    fn size(&self, field: String, size: u64) -> Result<usize, ScenarioError> {
        let ok = (MIN_FLOW_SIZE as u64..=MAX_FLOW_SIZE as u64).contains(&size);
        if !ok {
            return Err(self.err(
                field,
                format!("{size} bytes is outside {MIN_FLOW_SIZE}..={MAX_FLOW_SIZE}"),
            ));
        }
        Ok(size as usize)
    }

    fn flow(&self, i: usize, f: &RawFlow, duration: Duration) -> Result<FlowSpec, ScenarioError> {
        let at = |name: &str| format!("flow[{i}].{name}");
        if let Some(service) = &f.service {
            if service != "best-effort" {
                return Err(self.err(
                    at("service"),
                    format!(
                        "{service:?} is not built in Weft yet: only \"best-effort\" flows can be \
                         simulated"
                    ),
                ));
            }
        }
        let start = Duration::from_millis(f.start_ms.unwrap_or(0));
        let stop = f.stop_ms.map_or(duration, Duration::from_millis);
        if stop > duration {
            return Err(self.err(at("stop_ms"), "after the scenario's duration_ms"));
        }
        if start >= stop {
            return Err(self.err(at("start_ms"), "not before the flow's stop"));
        }
        let (to, group) = match (&f.to, f.to_group, f.to_anycast) {
            (Some(to), None, None) => (node_ref(to), None),
            (None, Some(g), None) => self.group_flow(at("to_group"), GroupKind::Multicast, g)?,
            (None, None, Some(g)) => self.group_flow(at("to_anycast"), GroupKind::Anycast, g)?,
            (to, group, anycast) => {
                let given = [to.is_some(), group.is_some(), anycast.is_some()];
                return Err(self.err(
                    format!("flow[{i}]"),
                    format!(
                        "needs exactly one of to, to_group, to_anycast ({} given)",
                        given.iter().filter(|g| **g).count()
                    ),
                ));
            }
        };
        Ok(FlowSpec {
            name: f.name.clone().unwrap_or_else(|| format!("flow{i}")),
            from: node_ref(&f.from),
            to,
            group,
            rate_pps: self.rate(at("rate_pps"), f.rate_pps)?,
            size: self.size(at("size"), f.size)?,
            start,
            stop,
        })
    }

    fn event(
        &self,
        i: usize,
        e: &RawEvent,
        duration: Duration,
    ) -> Result<(Duration, Timed), ScenarioError> {
        let at = format!("event[{i}]");
        let mut actions = Vec::new();
        if let Some(l) = &e.cut_link {
            actions.push(Timed::Network(Action::CutLink(link_ref(l))));
        }
        if let Some(l) = &e.restore_link {
            actions.push(Timed::Network(Action::RestoreLink(link_ref(l))));
        }
        if let Some(p) = &e.cut_path {
            actions.push(Timed::Network(Action::CutPath(link_ref(&p.link), p.path)));
        }
        if let Some(p) = &e.restore_path {
            actions.push(Timed::Network(Action::RestorePath(
                link_ref(&p.link),
                p.path,
            )));
        }
        if let Some(n) = &e.fail_node {
            actions.push(Timed::Network(Action::FailNode(node_ref(n))));
        }
        if let Some(n) = &e.restart_node {
            actions.push(Timed::Network(Action::RestartNode(node_ref(n))));
        }
        if let Some(m) = &e.misbehave {
            let b = self.behaviour(&format!("{at}.misbehave"), m)?;
            actions.push(Timed::Network(Action::Misbehave(node_ref(&m.node), b)));
        }
        if let Some(m) = &e.join {
            actions.push(self.membership(format!("{at}.join"), m, GroupChange::Join)?);
        }
        if let Some(m) = &e.leave {
            actions.push(self.membership(format!("{at}.leave"), m, GroupChange::Leave)?);
        }
        if actions.len() != 1 {
            return Err(self.err(
                at,
                format!(
                    "needs exactly one of cut_link, restore_link, cut_path, restore_path, \
                     fail_node, restart_node, misbehave, join, leave ({} given)",
                    actions.len()
                ),
            ));
        }
        let when = Duration::from_millis(e.at_ms);
        if when > duration {
            return Err(self.err(format!("{at}.at_ms"), "after the scenario's duration_ms"));
        }
        Ok((when, actions.remove(0)))
    }

    fn behaviour(&self, at: &str, m: &RawMisbehave) -> Result<Behaviour, ScenarioError> {
        let field = |f: &str| format!("{at}.{f}");
        let allowed: &[&str] = match m.behaviour.as_str() {
            "honest" => &[],
            "drop-all" => &[],
            "drop-fraction" => &["fraction"],
            "delay" => &["delay_ms"],
            "duplicate" => &["copies"],
            "flood" => &["to", "rate_pps", "size"],
            other => {
                return Err(self.err(
                    field("behaviour"),
                    format!(
                        "unknown behaviour {other:?} (honest, drop-all, drop-fraction, delay, \
                         duplicate, flood)"
                    ),
                ));
            }
        };
        let given = [
            ("fraction", m.fraction.is_some()),
            ("delay_ms", m.delay_ms.is_some()),
            ("copies", m.copies.is_some()),
            ("to", m.to.is_some()),
            ("rate_pps", m.rate_pps.is_some()),
            ("size", m.size.is_some()),
        ];
        for (name, set) in given {
            if set && !allowed.contains(&name) {
                return Err(self.err(
                    field(name),
                    format!("not a parameter of behaviour {:?}", m.behaviour),
                ));
            }
        }
        let missing = |name: &str| self.err(field(name), format!("needed by {:?}", m.behaviour));
        Ok(match m.behaviour.as_str() {
            "drop-all" => Behaviour::DropAll,
            "drop-fraction" => {
                let f = m.fraction.ok_or_else(|| missing("fraction"))?;
                if !f.is_finite() || !(0.0..=1.0).contains(&f) {
                    return Err(self.err(field("fraction"), format!("{f} is outside 0..=1")));
                }
                Behaviour::DropFraction(f)
            }
            "delay" => {
                let ms = m.delay_ms.ok_or_else(|| missing("delay_ms"))?;
                Behaviour::Delay(self.millis(&field("delay_ms"), ms)?)
            }
            "duplicate" => {
                let n = m.copies.ok_or_else(|| missing("copies"))?;
                if !(1..=16).contains(&n) {
                    return Err(self.err(field("copies"), format!("{n} is outside 1..=16")));
                }
                Behaviour::Duplicate(n)
            }
            "flood" => Behaviour::Flood {
                to: node_ref(m.to.as_ref().ok_or_else(|| missing("to"))?),
                rate_pps: self.rate(
                    field("rate_pps"),
                    m.rate_pps.ok_or_else(|| missing("rate_pps"))?,
                )?,
                size: self.size(field("size"), m.size.ok_or_else(|| missing("size"))?)?,
            },
            _ => Behaviour::Honest,
        })
    }

    fn report(&self, r: &RawReport) -> Result<ReportSpec, ScenarioError> {
        let mut spec = ReportSpec::default();
        if let Some(p) = &r.percentiles {
            if let Some(bad) = p
                .iter()
                .find(|q| !q.is_finite() || **q <= 0.0 || **q > 100.0)
            {
                return Err(self.err("report.percentiles", format!("{bad} is outside (0, 100]")));
            }
            spec.percentiles = p.clone();
        }
        spec.links = r.links.unwrap_or(spec.links);
        spec.log = r.log.unwrap_or(spec.log);
        if let Some(t) = &r.trace {
            spec.trace = match t.as_str() {
                "off" => TraceMode::Off,
                "hash" => TraceMode::Hash,
                "full" => TraceMode::Full,
                other => {
                    return Err(self.err(
                        "report.trace",
                        format!("unknown trace mode {other:?} (off, hash, full)"),
                    ));
                }
            };
        }
        Ok(spec)
    }
}

pub(crate) fn node_ref(r: &RawNodeRef) -> NodeRef {
    match r {
        RawNodeRef::Id(id) => NodeRef::Id(*id),
        RawNodeRef::Name(name) => NodeRef::Name(name.clone()),
    }
}

fn link_ref(r: &RawLinkRef) -> LinkRef {
    match r {
        RawLinkRef::Id(id) => LinkRef::Id(*id),
        RawLinkRef::Between([a, b]) => LinkRef::Between(node_ref(a), node_ref(b)),
    }
}
