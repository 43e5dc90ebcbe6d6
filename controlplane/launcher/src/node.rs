//! `weft node`: what to run for one node, checked before anything starts.
//!
//! [`NodeOptions`] is the command line as given; [`NodePlan::prepare`] turns it into a
//! [`NodePlan`] (the config loaded, the id found in it, both binaries found, every duration in
//! range) or the first problem as a [`LaunchError`]. [`run`] then reclaims the node's stale
//! socket files and hands the plan to the supervisor (`supervise.rs`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use weft_shared::config::Config;
use weft_shared::ids::{MAX_NODE_ID, NodeId};

use crate::bins::BinSearch;
use crate::error::LaunchError;
use crate::{say, sockets, supervise};

/// The longest any of the launcher's durations may be (one hour).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// The options of `weft node`, as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeOptions {
    /// The overlay config file.
    pub config: PathBuf,
    /// The node id, as text (checked by [`NodePlan::prepare`]).
    pub id: String,
    /// `--dataplane-bin`: the data-plane binary, instead of searching for `weft-dataplane`.
    pub dataplane_bin: Option<PathBuf>,
    /// `--controld-bin`: the control-plane binary, instead of searching for `weft-controld`.
    pub controld_bin: Option<PathBuf>,
    /// The delay before the first restart of a control plane that exited.
    pub restart_min_backoff: Duration,
    /// The longest delay between restarts of the control plane.
    pub restart_max_backoff: Duration,
    /// How long the data plane may take to report `node N up`.
    pub up_timeout: Duration,
    /// How long each child may take to exit after SIGTERM before it gets SIGKILL.
    pub stop_timeout: Duration,
}

/// A checked plan for one node: everything [`run`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePlan {
    /// The node.
    pub node: NodeId,
    /// The config file, passed on to both children as given.
    pub config: PathBuf,
    /// The data-plane binary.
    pub dataplane_bin: PathBuf,
    /// The control-plane binary.
    pub controld_bin: PathBuf,
    /// The node's session socket (from the config).
    pub session_socket: PathBuf,
    /// The data plane's attach socket, `<session_socket>.attach`.
    pub attach_socket: PathBuf,
    /// The node's ctl socket (from the config).
    pub ctl_socket: PathBuf,
    /// The delay before the first restart of the control plane.
    pub restart_min_backoff: Duration,
    /// The longest delay between restarts of the control plane.
    pub restart_max_backoff: Duration,
    /// How long the data plane may take to report `node N up`.
    pub up_timeout: Duration,
    /// How long each child may take to exit after SIGTERM.
    pub stop_timeout: Duration,
}

impl NodePlan {
    /// Checks `opts` in order (durations, config, id, binaries) and stops at the first problem.
    pub fn prepare(opts: &NodeOptions, search: &BinSearch) -> Result<NodePlan, LaunchError> {
        check_duration("--restart-min-backoff-ms", opts.restart_min_backoff, true)?;
        check_duration("--restart-max-backoff-ms", opts.restart_max_backoff, true)?;
        check_duration("--up-timeout-ms", opts.up_timeout, true)?;
        check_duration("--stop-timeout-ms", opts.stop_timeout, false)?;
        if opts.restart_max_backoff < opts.restart_min_backoff {
            return Err(LaunchError::BadOption {
                option: "--restart-max-backoff-ms",
                why: format!(
                    "{} ms is less than --restart-min-backoff-ms ({} ms)",
                    opts.restart_max_backoff.as_millis(),
                    opts.restart_min_backoff.as_millis()
                ),
            });
        }
        let config = Config::load(&opts.config)?;
        let node = parse_node(&opts.id, &opts.config, &config)?;
        let Some(spec) = config.node(node) else {
            // parse_node checked this; kept as an error rather than a panic.
            return Err(bad_id(&opts.id, &opts.config, &config, "no such node"));
        };
        let dataplane_bin = search.find(
            "weft-dataplane",
            "--dataplane-bin",
            opts.dataplane_bin.as_deref(),
        )?;
        let controld_bin = search.find(
            "weft-controld",
            "--controld-bin",
            opts.controld_bin.as_deref(),
        )?;
        let session_socket = spec.session_socket().to_path_buf();
        Ok(NodePlan {
            node,
            config: opts.config.clone(),
            dataplane_bin,
            controld_bin,
            attach_socket: attach_path(&session_socket),
            session_socket,
            ctl_socket: spec.ctl_socket().to_path_buf(),
            restart_min_backoff: opts.restart_min_backoff,
            restart_max_backoff: opts.restart_max_backoff,
            up_timeout: opts.up_timeout,
            stop_timeout: opts.stop_timeout,
        })
    }

    /// The arguments both children get: `--config FILE --id N`.
    pub fn child_args(&self) -> Vec<OsString> {
        vec![
            "--config".into(),
            self.config.clone().into_os_string(),
            "--id".into(),
            self.node.get().to_string().into(),
        ]
    }

    /// The node's socket files: session, attach, ctl.
    pub fn sockets(&self) -> [&Path; 3] {
        [&self.session_socket, &self.attach_socket, &self.ctl_socket]
    }
}

/// Runs the node until SIGINT or SIGTERM (`Ok`) or until it cannot go on (`Err`): reclaims the
/// node's stale socket files (a live one means the node already runs), then starts and
/// supervises both children. Returns only when both children have been reaped.
pub fn run(plan: &NodePlan) -> Result<(), LaunchError> {
    for path in sockets::reclaim(plan.node, &plan.sockets(), sockets::SETTLE)? {
        say(
            plan.node,
            &format!("removed the stale socket {}", path.display()),
        );
    }
    supervise::run(plan)
}

/// The attach socket's path for a node whose session socket is `session` (the rule of
/// `docs/dataplane.md`, "The attach socket").
fn attach_path(session: &Path) -> PathBuf {
    let mut s = session.as_os_str().to_owned();
    s.push(".attach");
    PathBuf::from(s)
}

/// Checks a duration option: at most [`MAX_DURATION`], and nonzero if `nonzero`.
fn check_duration(option: &'static str, d: Duration, nonzero: bool) -> Result<(), LaunchError> {
    let why = if nonzero && d.is_zero() {
        "must be at least 1 ms"
    } else if d > MAX_DURATION {
        "must be at most 3600000 ms (one hour)"
    } else {
        return Ok(());
    };
    Err(LaunchError::BadOption {
        option,
        why: format!("{} ms {why}", d.as_millis()),
    })
}

/// `--id` as a node of `config`.
fn parse_node(given: &str, path: &Path, config: &Config) -> Result<NodeId, LaunchError> {
    let Some(id) = given.trim().parse::<u16>().ok().and_then(NodeId::new) else {
        let why = format!("not a node id (an integer 1..={MAX_NODE_ID})");
        return Err(bad_id(given, path, config, &why));
    };
    if config.node(id).is_none() {
        return Err(bad_id(given, path, config, "no such node"));
    }
    Ok(id)
}

fn bad_id(given: &str, path: &Path, config: &Config, why: &str) -> LaunchError {
    let ids: Vec<String> = config
        .nodes()
        .iter()
        .map(|n| n.id().get().to_string())
        .collect();
    LaunchError::BadNodeId {
        given: given.to_owned(),
        why: format!(
            "{why} in {} (its nodes: {})",
            path.display(),
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(", ")
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const CONFIG: &str = r#"
schema = 1
[overlay]
name = "plan"
[[node]]
id = 2
name = "two"
session_socket = "/tmp/weft-plan-test/n2.sock"
ctl_socket = "/tmp/weft-plan-test/n2.ctl"
[[node.interface]]
isp = "a"
addr = "127.0.91.250:7002"
[[node]]
id = 5
name = "five"
[[node.interface]]
isp = "a"
addr = "127.0.91.251:7005"
"#;

    fn setup(name: &str) -> (PathBuf, NodeOptions, BinSearch) {
        let dir = std::env::temp_dir().join(format!("weft-plan-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("overlay.toml");
        std::fs::write(&config, CONFIG).unwrap();
        for bin in ["weft-dataplane", "weft-controld"] {
            let p = dir.join(bin);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, PermissionsExt::from_mode(0o755)).unwrap();
        }
        let opts = NodeOptions {
            config,
            id: "2".into(),
            dataplane_bin: None,
            controld_bin: None,
            restart_min_backoff: Duration::from_millis(100),
            restart_max_backoff: Duration::from_secs(5),
            up_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(3),
        };
        let search = BinSearch {
            env_dir: None,
            exe_dir: Some(dir.clone()),
        };
        (dir, opts, search)
    }

    #[test]
    fn a_good_plan_has_the_sockets_and_arguments_of_the_node() {
        let (dir, opts, search) = setup("good");
        let plan = NodePlan::prepare(&opts, &search).unwrap();
        assert_eq!(plan.node.get(), 2);
        assert_eq!(plan.dataplane_bin, dir.join("weft-dataplane"));
        assert_eq!(
            plan.sockets(),
            [
                Path::new("/tmp/weft-plan-test/n2.sock"),
                Path::new("/tmp/weft-plan-test/n2.sock.attach"),
                Path::new("/tmp/weft-plan-test/n2.ctl"),
            ]
        );
        let args: Vec<String> = plan
            .child_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--config",
                &dir.join("overlay.toml").display().to_string(),
                "--id",
                "2"
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_ids_and_options_are_named() {
        let (dir, opts, search) = setup("bad");
        let err = |o: &NodeOptions| NodePlan::prepare(o, &search).unwrap_err().to_string();
        let file = opts.config.display().to_string();
        for (id, why) in [
            ("3", "no such node"),
            ("0", "not a node id (an integer 1..=1023)"),
            ("x", "not a node id (an integer 1..=1023)"),
            ("70000", "not a node id (an integer 1..=1023)"),
        ] {
            let o = NodeOptions {
                id: id.into(),
                ..opts.clone()
            };
            assert_eq!(
                err(&o),
                format!("--id {id}: {why} in {file} (its nodes: 2, 5)")
            );
        }
        let o = NodeOptions {
            restart_min_backoff: Duration::ZERO,
            ..opts.clone()
        };
        assert_eq!(
            err(&o),
            "--restart-min-backoff-ms: 0 ms must be at least 1 ms"
        );
        let o = NodeOptions {
            restart_max_backoff: Duration::from_millis(50),
            ..opts.clone()
        };
        assert_eq!(
            err(&o),
            "--restart-max-backoff-ms: 50 ms is less than --restart-min-backoff-ms (100 ms)"
        );
        let o = NodeOptions {
            config: dir.join("missing.toml"),
            ..opts.clone()
        };
        assert!(
            err(&o).contains("missing.toml: cannot read the config file"),
            "{}",
            err(&o)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
