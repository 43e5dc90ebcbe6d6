//! The configuration of a `weft-linkem` relay: its paths (four addresses and the settings of
//! each direction), the control socket, the seed and a timeline, from a TOML file or built from
//! the command line. Raw serde structs become a typed [`RelayConfig`] once, with every check
//! done there (STYLE.md §5).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::linkem::command::{Command, Dirs};
use crate::linkem::params::{ParamError, ParamSpec};
use crate::linkmodel::{LinkParams, Rng};

/// Most paths one relay serves.
pub const MAX_PATHS: usize = 256;

/// Most timeline entries.
pub const MAX_TIMELINE: usize = 100_000;

/// Default cap on datagrams held (waiting for their delivery time) per direction.
pub const DEFAULT_MAX_HELD: usize = 65_536;

/// Largest `max_held` accepted.
pub const MAX_MAX_HELD: usize = 1 << 22;

/// Words that cannot name a path (they mean something in commands).
const RESERVED: [&str; 6] = ["all", "both", "a-to-b", "b-to-a", "a_to_b", "b_to_a"];

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a value of the wrong type (the message has the line).
    #[error("{file}: {message}")]
    Toml {
        /// The file.
        file: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value that parses but is not acceptable.
    #[error("{file}: {field}: {why}")]
    Invalid {
        /// The file, or `command line`.
        file: String,
        /// Which field (`path[1].a_to_b.loss`, `timeline[3].action`).
        field: String,
        /// Why.
        why: String,
    },
}

/// One relayed path.
#[derive(Clone, Debug, PartialEq)]
pub struct PathConfig {
    /// Its name in commands and statistics.
    pub name: String,
    /// The address node A sends to (bound by the relay).
    pub a_side: SocketAddr,
    /// The address node B sends to (bound by the relay).
    pub b_side: SocketAddr,
    /// Node A's address: where datagrams from the B side go.
    pub to_a: SocketAddr,
    /// Node B's address: where datagrams from the A side go.
    pub to_b: SocketAddr,
    /// The settings of each direction: `[A to B, B to A]`.
    pub params: [LinkParams; 2],
}

/// A command to run at a time after start.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineEntry {
    /// When, after the relay started.
    pub at: Duration,
    /// What (cut, restore, set or quit).
    pub command: Command,
    /// The action as written, for the log.
    pub action: String,
}

/// A whole relay.
#[derive(Clone, Debug, PartialEq)]
pub struct RelayConfig {
    /// The seed every direction's generator derives from ([`direction_seed`]).
    pub seed: u64,
    /// The control socket, if any.
    pub control: Option<PathBuf>,
    /// Cap on datagrams held per direction; beyond it arrivals are `held_drops`.
    pub max_held: usize,
    /// The paths (at least one).
    pub paths: Vec<PathConfig>,
    /// Timed commands, sorted by time (file order among equal times).
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    seed: Option<u64>,
    control: Option<PathBuf>,
    max_held: Option<usize>,
    defaults: Option<ParamSpec>,
    #[serde(default)]
    path: Vec<RawPath>,
    #[serde(default)]
    timeline: Vec<RawTimeline>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    name: Option<String>,
    a_side: SocketAddr,
    b_side: SocketAddr,
    to_a: SocketAddr,
    to_b: SocketAddr,
    both: Option<ParamSpec>,
    a_to_b: Option<ParamSpec>,
    b_to_a: Option<ParamSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeline {
    at_ms: u64,
    action: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimelineFile {
    #[serde(default)]
    timeline: Vec<RawTimeline>,
}

/// The settings of one path as given: addresses and three layers of settings.
#[derive(Clone, Debug, Default)]
pub struct PathSpec {
    /// The name (default `p<index>`).
    pub name: Option<String>,
    /// `[a_side, b_side, to_a, to_b]`.
    pub addrs: [Option<SocketAddr>; 4],
    /// Settings of both directions.
    pub both: ParamSpec,
    /// Settings of A to B only (over `both`).
    pub a_to_b: ParamSpec,
    /// Settings of B to A only (over `both`).
    pub b_to_a: ParamSpec,
}

/// The seed of direction `dir` (0: A to B, 1: B to A) of path `index` under relay seed `seed`:
/// the same whatever the other paths are, so a test can run the same [`LinkModel`] offline.
///
/// [`LinkModel`]: crate::linkmodel::LinkModel
pub fn direction_seed(seed: u64, index: usize, dir: usize) -> u64 {
    let k = (index as u64).wrapping_mul(2).wrapping_add(dir as u64);
    Rng::new(seed ^ k.wrapping_mul(0xd1b5_4a32_d192_ed03)).next_u64()
}

impl RelayConfig {
    /// Loads a TOML file.
    pub fn load(file: &Path) -> Result<RelayConfig, ConfigError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: name.clone(),
            source,
        })?;
        RelayConfig::from_toml_str(&text, &name)
    }

    /// Parses TOML `text`; `file` names it in errors.
    pub fn from_toml_str(text: &str, file: &str) -> Result<RelayConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Toml {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let invalid = |field: String, why: String| ConfigError::Invalid {
            file: file.to_owned(),
            field,
            why,
        };
        let defaults = raw.defaults.unwrap_or_default();
        if let Err(e) = defaults.apply(LinkParams::default()) {
            return Err(invalid(format!("defaults.{}", e.key), e.why));
        }
        let specs = raw
            .path
            .into_iter()
            .map(|p| PathSpec {
                name: p.name,
                addrs: [Some(p.a_side), Some(p.b_side), Some(p.to_a), Some(p.to_b)],
                both: p.both.unwrap_or_default(),
                a_to_b: p.a_to_b.unwrap_or_default(),
                b_to_a: p.b_to_a.unwrap_or_default(),
            })
            .collect::<Vec<_>>();
        let mut config =
            RelayConfig::build(file, raw.seed, raw.control, raw.max_held, &defaults, &specs)?;
        config.add_timeline(file, raw.timeline)?;
        Ok(config)
    }

    /// A relay from paths given in code or on the command line; `file` names the source in
    /// errors (`command line`).
    pub fn build(
        file: &str,
        seed: Option<u64>,
        control: Option<PathBuf>,
        max_held: Option<usize>,
        defaults: &ParamSpec,
        specs: &[PathSpec],
    ) -> Result<RelayConfig, ConfigError> {
        let invalid = |field: String, why: String| ConfigError::Invalid {
            file: file.to_owned(),
            field,
            why,
        };
        if specs.is_empty() {
            return Err(invalid("path".into(), "no path to relay".into()));
        }
        if specs.len() > MAX_PATHS {
            return Err(invalid(
                "path".into(),
                format!("{} paths, at most {MAX_PATHS}", specs.len()),
            ));
        }
        let max_held = max_held.unwrap_or(DEFAULT_MAX_HELD);
        if !(1..=MAX_MAX_HELD).contains(&max_held) {
            return Err(invalid(
                "max_held".into(),
                format!("{max_held} is not in 1..={MAX_MAX_HELD}"),
            ));
        }
        let mut names = HashSet::new();
        let mut bound = HashSet::new();
        let mut paths = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let at = format!("path[{i}]");
            let name = spec.name.clone().unwrap_or_else(|| format!("p{i}"));
            check_name(&name).map_err(|why| invalid(format!("{at}.name"), why))?;
            if !names.insert(name.clone()) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("`{name}` names two paths"),
                ));
            }
            let mut addrs = [SocketAddr::from(([0, 0, 0, 0], 0)); 4];
            for (k, key) in ["a_side", "b_side", "to_a", "to_b"].iter().enumerate() {
                let a = spec.addrs[k]
                    .ok_or_else(|| invalid(format!("{at}.{key}"), "missing".into()))?;
                check_addr(key, a).map_err(|why| invalid(format!("{at}.{key}"), why))?;
                addrs[k] = a;
            }
            for (k, key) in ["a_side", "b_side"].iter().enumerate() {
                if addrs[k].port() != 0 && !bound.insert(addrs[k]) {
                    return Err(invalid(
                        format!("{at}.{key}"),
                        format!("{} is bound twice", addrs[k]),
                    ));
                }
            }
            let both = defaults.merged(&spec.both);
            let layer = |dir: &str, over: &ParamSpec| {
                both.merged(over)
                    .apply(LinkParams::default())
                    .map_err(|e: ParamError| invalid(format!("{at}.{dir}.{}", e.key), e.why))
            };
            let params = [
                layer("a_to_b", &spec.a_to_b)?,
                layer("b_to_a", &spec.b_to_a)?,
            ];
            paths.push(PathConfig {
                name,
                a_side: addrs[0],
                b_side: addrs[1],
                to_a: addrs[2],
                to_b: addrs[3],
                params,
            });
        }
        Ok(RelayConfig {
            seed: seed.unwrap_or(1),
            control,
            max_held,
            paths,
            timeline: Vec::new(),
        })
    }

    /// Adds the `[[timeline]]` entries of a TOML file (one holding only those).
    pub fn add_timeline_file(&mut self, file: &Path) -> Result<(), ConfigError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: name.clone(),
            source,
        })?;
        let raw: RawTimelineFile = toml::from_str(&text).map_err(|e| ConfigError::Toml {
            file: name.clone(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        self.add_timeline(&name, raw.timeline)
    }

    fn add_timeline(&mut self, file: &str, raw: Vec<RawTimeline>) -> Result<(), ConfigError> {
        if self.timeline.len() + raw.len() > MAX_TIMELINE {
            return Err(ConfigError::Invalid {
                file: file.to_owned(),
                field: "timeline".into(),
                why: format!("more than {MAX_TIMELINE} entries"),
            });
        }
        for (i, entry) in raw.into_iter().enumerate() {
            let invalid = |why: String| ConfigError::Invalid {
                file: file.to_owned(),
                field: format!("timeline[{i}].action"),
                why,
            };
            let command = Command::parse(&entry.action).map_err(|e| invalid(e.to_string()))?;
            match &command {
                Command::Stats => return Err(invalid("stats is not a timeline action".into())),
                Command::Quit => {}
                c => {
                    if let Some(name) = c.target().and_then(|t| t.path.as_deref()) {
                        if !self.paths.iter().any(|p| p.name == name) {
                            return Err(invalid(format!("no path named `{name}`")));
                        }
                    }
                }
            }
            self.timeline.push(TimelineEntry {
                at: Duration::from_millis(entry.at_ms),
                command,
                action: entry.action.trim().to_owned(),
            });
        }
        // Stable: entries at the same time keep their file order.
        self.timeline.sort_by_key(|e| e.at);
        Ok(())
    }

    /// The index of the path named `name`.
    pub fn path_index(&self, name: &str) -> Option<usize> {
        self.paths.iter().position(|p| p.name == name)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        return Err(format!("`{name}` is not a name (1..=32 of A-Za-z0-9-_.)"));
    }
    if RESERVED.contains(&name) {
        return Err(format!("`{name}` is a reserved word in commands"));
    }
    Ok(())
}

fn check_addr(key: &str, a: SocketAddr) -> Result<(), String> {
    if key.starts_with("to_") {
        if a.ip().is_unspecified() || a.ip().is_multicast() || a.port() == 0 {
            return Err(format!(
                "{a} is not a node's address (a specific unicast IP and a nonzero port)"
            ));
        }
    } else if a.ip().is_multicast() {
        return Err(format!("{a} is a multicast address"));
    }
    Ok(())
}

/// A target's direction indices, for iteration.
pub fn dir_indices(dirs: Dirs) -> impl Iterator<Item = usize> {
    (0..2).filter(move |d| dirs.includes(*d))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;
    use crate::linkmodel::LossModel;

    const TWO: &str = r#"
seed = 7
control = "/tmp/x.ctl"
[defaults]
latency_ms = 5

[[path]]
name = "l0p0"
a_side = "127.0.0.1:9000"
b_side = "127.0.0.1:9001"
to_a = "127.0.0.1:7001"
to_b = "127.0.0.1:7002"
[path.both]
loss = 0.01
[path.a_to_b]
latency_ms = 20

[[path]]
a_side = "127.0.0.1:9002"
b_side = "127.0.0.1:9003"
to_a = "127.0.0.2:7001"
to_b = "127.0.0.2:7002"

[[timeline]]
at_ms = 500
action = "restore l0p0"
[[timeline]]
at_ms = 100
action = "cut l0p0 a-to-b"
"#;

    #[test]
    fn a_file_with_layers_and_a_timeline() {
        let c = RelayConfig::from_toml_str(TWO, "t.toml").unwrap();
        assert_eq!(c.seed, 7);
        assert_eq!(c.paths.len(), 2);
        let p = &c.paths[0];
        assert_eq!(p.params[0].latency, Duration::from_millis(20));
        assert_eq!(p.params[1].latency, Duration::from_millis(5));
        assert_eq!(p.params[1].loss, LossModel::Bernoulli { p: 0.01 });
        assert_eq!(c.paths[1].name, "p1");
        assert_eq!(c.paths[1].params[0].latency, Duration::from_millis(5));
        assert_eq!(c.paths[1].params[0].loss, LossModel::None);
        assert_eq!(c.timeline[0].at, Duration::from_millis(100));
        assert!(matches!(c.timeline[0].command, Command::Cut(_)));
        assert_eq!(c.path_index("p1"), Some(1));
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let err = |text: &str| {
            RelayConfig::from_toml_str(text, "t.toml")
                .unwrap_err()
                .to_string()
        };
        let e = err(&TWO.replace("loss = 0.01", "loss = 1.01"));
        assert!(e.starts_with("t.toml: path[0].a_to_b.loss:"), "{e}");
        let e = err(&TWO.replace("[path.both]", "[path.bot]"));
        assert!(
            e.contains("t.toml") && e.contains("bot") && e.contains("line"),
            "{e}"
        );
        let e = err(&TWO.replace("\"127.0.0.1:9000\"", "\"127.0.0.1\""));
        assert!(e.contains("a_side") || e.contains("line"), "{e}");
        let e = err(&TWO.replace("127.0.0.2:7002", "0.0.0.0:7002"));
        assert!(e.contains("path[1].to_b"), "{e}");
        let e = err(&TWO.replace("127.0.0.1:9002", "127.0.0.1:9000"));
        assert!(e.contains("path[1].a_side") && e.contains("twice"), "{e}");
        let e = err(&TWO.replace("restore l0p0", "restore l9"));
        assert!(e.contains("timeline[0].action") && e.contains("l9"), "{e}");
        let e = err(&TWO.replace("restore l0p0", "stats"));
        assert!(e.contains("timeline[0]"), "{e}");
        let e = err(&TWO.replace("name = \"l0p0\"", "name = \"all\""));
        assert!(e.contains("reserved"), "{e}");
        let e = err(&TWO.replace("latency_ms = 5", "latency_ms = -5"));
        assert!(e.contains("defaults.latency_ms"), "{e}");
        let e = err("seed = 1\n");
        assert!(e.contains("no path"), "{e}");
    }

    #[test]
    fn direction_seeds_differ_and_repeat() {
        let a = direction_seed(1, 0, 0);
        assert_eq!(a, direction_seed(1, 0, 0));
        assert_ne!(a, direction_seed(1, 0, 1));
        assert_ne!(a, direction_seed(1, 1, 0));
        assert_ne!(a, direction_seed(2, 0, 0));
    }
}
