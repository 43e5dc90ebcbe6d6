//! The `weft` binary: `weft node --config F --id N` runs one overlay node (its data plane and
//! its control plane) under supervision (`docs/launcher.md`); `weft gateway ...` carries UDP
//! datagrams across the overlay (`docs/gateway.md`).
//!
//! Exit status: 0 after SIGINT/SIGTERM, 1 on any error (bad config or id, missing binary, node
//! already running, data plane failed or exited; for `gateway`: a bad address, no node, an
//! address or port in use, a refused service), 2 for a malformed command line.

mod gateway;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use weft_launcher::{BinSearch, NodeOptions, NodePlan, backoff, run_node};

/// Weft overlay network: run its processes.
#[derive(Debug, Parser)]
#[command(name = "weft", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one overlay node: start its data plane, then its control plane, and supervise both
    /// (the control plane is restarted with backoff; the node stops if the data plane exits).
    Node(NodeArgs),
    /// Carry UDP datagrams across the overlay: from a local UDP address into an overlay flow
    /// (--listen, --to), and from an overlay port to a local UDP address (--port, --deliver),
    /// each datagram unchanged, one overlay message each; or the mappings of a --config file.
    Gateway(gateway::GatewayArgs),
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// The overlay config file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// This node's id in the config.
    #[arg(long, value_name = "N")]
    id: String,
    /// The data-plane binary (default: weft-dataplane in $WEFT_BIN_DIR, else next to weft).
    #[arg(long, value_name = "PATH")]
    dataplane_bin: Option<PathBuf>,
    /// The control-plane binary (default: weft-controld in $WEFT_BIN_DIR, else next to weft).
    #[arg(long, value_name = "PATH")]
    controld_bin: Option<PathBuf>,
    /// The delay before the first restart of a control plane that exited, doubled each time.
    #[arg(long, value_name = "MS", default_value_t = backoff::DEFAULT_MIN.as_millis() as u64)]
    restart_min_backoff_ms: u64,
    /// The longest delay between control-plane restarts.
    #[arg(long, value_name = "MS", default_value_t = backoff::DEFAULT_MAX.as_millis() as u64)]
    restart_max_backoff_ms: u64,
    /// How long the data plane may take to report "node N up".
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    up_timeout_ms: u64,
    /// How long each process may take to exit after SIGTERM before it is killed.
    #[arg(long, value_name = "MS", default_value_t = 3_000)]
    stop_timeout_ms: u64,
}

impl NodeArgs {
    fn options(self) -> NodeOptions {
        NodeOptions {
            config: self.config,
            id: self.id,
            dataplane_bin: self.dataplane_bin,
            controld_bin: self.controld_bin,
            restart_min_backoff: Duration::from_millis(self.restart_min_backoff_ms),
            restart_max_backoff: Duration::from_millis(self.restart_max_backoff_ms),
            up_timeout: Duration::from_millis(self.up_timeout_ms),
            stop_timeout: Duration::from_millis(self.stop_timeout_ms),
        }
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Node(args) => NodePlan::prepare(&args.options(), &BinSearch::from_env())
            .and_then(|plan| run_node(&plan))
            .map_err(|e| e.to_string()),
        Command::Gateway(args) => gateway::run(&args).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "weft: error: {e}");
            ExitCode::FAILURE
        }
    }
}
