//! weftctl: the operator's command-line view of one Weft node (`docs/weftctl.md`).
//!
//! ```text
//! weftctl --config FILE --id N [--json] show status|nodes|routes|groups|links|fib|counters|reliable
//! weftctl --config FILE --id N [--json] show groups --group G
//! weftctl [--json] config check FILE
//! ```
//!
//! Two sources, so that each part works while the other is down:
//!
//! - `show status|nodes|routes|groups` ask the node's control plane over its ctl socket
//!   (`weft_shared::ctl`, one JSON line each way);
//! - `show links|fib|counters|reliable` read the data plane's shared memory directly
//!   (`weft_shared::shm`): the named region `/dev/shm/<shm_name>`, or the memfd the data plane
//!   hands out on its attach socket.
//!
//! The code keeps fetching apart from printing: [`fetch`] fills the plain data types of
//! [`report`]; [`render`] turns them into aligned tables ([`table`]); `--json` prints the same
//! report with serde. [`cli`] is the command line and [`run`] ties it together.

pub mod cli;
pub mod fetch;
pub mod render;
pub mod report;
pub mod table;

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use weft_shared::config::{Config, Node};
use weft_shared::ids::NodeId;

use crate::cli::{Cli, Command, ConfigCommand, Show};
use crate::fetch::control;
use crate::fetch::dataplane::DataPlane;
use crate::report::{GroupsReport, NodesReport, RoutesReport, StatusReport};

/// Runs one command and returns what to print on stdout (a table, or one JSON document).
pub fn run(cli: &Cli) -> anyhow::Result<String> {
    match &cli.command {
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let summary = fetch::check_config(file)?;
            output(cli.json, &summary, render::config_summary)
        }
        Command::Show { what, group } => show(cli, *what, *group),
    }
}

fn show(cli: &Cli, what: Show, group: Option<u32>) -> anyhow::Result<String> {
    if group.is_some() && what != Show::Groups {
        bail!("--group goes only with 'show groups'");
    }
    let path = cli
        .config
        .as_deref()
        .context("show needs the overlay's config: --config FILE (or WEFT_CONFIG)")?;
    let id = cli.id.context("show needs the node: --id N (or WEFT_ID)")?;
    let config = Config::load(path)?;
    let node = NodeId::new(id)
        .and_then(|n| config.node(n))
        .with_context(|| format!("--id {id}: no such node in {}", path.display()))?;
    let timeout = Duration::from_millis(cli.timeout_ms);
    let socket = node.ctl_socket();
    match what {
        Show::Status => {
            let report = StatusReport {
                status: control::status(socket, timeout)?,
            };
            output(cli.json, &report, render::status)
        }
        Show::Nodes => {
            let report = NodesReport {
                node: id,
                name: node.name().to_owned(),
                nodes: control::nodes(socket, timeout)?,
            };
            output(cli.json, &report, render::nodes)
        }
        Show::Routes => {
            let routes = control::routes(socket, timeout)?;
            // The status only adds a heading line; a control plane that answers routes but not
            // status still gets its routes shown.
            let status = control::status(socket, timeout).ok();
            let report = RoutesReport {
                node: id,
                name: node.name().to_owned(),
                status,
                routes,
            };
            output(cli.json, &report, render::routes)
        }
        Show::Groups => {
            let report = GroupsReport {
                groups: control::groups(socket, group, timeout)?,
            };
            output(cli.json, &report, render::groups)
        }
        Show::Links => {
            let report = dataplane(&config, node, timeout)?.links(&config, node);
            output(cli.json, &report, render::links)
        }
        Show::Fib => {
            let report = dataplane(&config, node, timeout)?.fib(&config, node)?;
            output(cli.json, &report, render::fib)
        }
        Show::Counters => {
            let report = dataplane(&config, node, timeout)?.counters(node);
            output(cli.json, &report, render::counters)
        }
        Show::Reliable => {
            let report = dataplane(&config, node, timeout)?.reliable(&config, node);
            output(cli.json, &report, render::reliable)
        }
    }
}

fn dataplane(config: &Config, node: &Node, timeout: Duration) -> anyhow::Result<DataPlane> {
    DataPlane::open(config, node, timeout)
}

fn output<T: Serialize>(json: bool, report: &T, human: fn(&T) -> String) -> anyhow::Result<String> {
    if json {
        let mut text = serde_json::to_string_pretty(report).context("encode JSON")?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(human(report))
    }
}
