//! Getting the data behind each command, without formatting it.
//!
//! - [`control`]: asks the control plane over its ctl socket (`show status|nodes|routes|groups`).
//! - [`dataplane`]: reads the data plane's shared memory directly (`show links|fib|counters`), so
//!   those work while the control plane is down.
//! - [`check_config`]: loads a config file and summarises it (`config check`).

pub mod control;
pub mod dataplane;

use std::path::Path;

use weft_shared::config::Config;

use crate::report::{ConfigNode, ConfigSummary};

/// Loads and validates the config at `path` and summarises it. The error is the loader's,
/// which names the file, line, column and field.
pub fn check_config(path: &Path) -> anyhow::Result<ConfigSummary> {
    let config = Config::load(path)?;
    Ok(summarise(&config, path))
}

/// The summary of a loaded config.
pub fn summarise(config: &Config, path: &Path) -> ConfigSummary {
    let node_list = config
        .nodes()
        .iter()
        .map(|n| ConfigNode {
            id: n.id().get(),
            name: n.name().to_owned(),
            workers: n.cores().len(),
            links: config.links_of(n.id()).count(),
            ctl_socket: n.ctl_socket().display().to_string(),
        })
        .collect();
    ConfigSummary {
        file: path.display().to_string(),
        overlay: config.overlay().name().to_owned(),
        hash: config.hash().to_string(),
        nodes: config.nodes().len(),
        links: config.links().len(),
        paths: config.links().iter().map(|l| l.paths().len()).sum(),
        node_list,
    }
}
