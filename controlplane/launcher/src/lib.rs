//! `weft`: the launcher that runs Weft overlay nodes.
//!
//! Each overlay node is two processes: the data plane (`weft-dataplane`, which owns the UDP
//! sockets and forwards) and the control plane (`weft-controld`, which attaches to the running
//! data plane through its attach socket and computes routes). `weft node --config F --id N`
//! starts both in the right order and keeps them running:
//!
//! 1. checks the options, the config and the id ([`NodePlan::prepare`]), and finds both
//!    binaries ([`BinSearch`]);
//! 2. removes socket files that a killed node left behind, and refuses to start if a live
//!    process answers on one of them ([`sockets`]);
//! 3. starts the data plane and waits for its `node N up` line, then starts the control plane
//!    and prints `weft node N running (dataplane pid P, controld pid Q)`;
//! 4. restarts the control plane with backoff whenever it exits ([`Backoff`]); the data plane
//!    keeps forwarding meanwhile. If the data plane exits, the node is down: the launcher stops
//!    the control plane and exits with status 1, leaving the restart to the service manager;
//! 5. on SIGINT or SIGTERM stops the control plane, then the data plane, and exits 0.
//!
//! Children die with the launcher (`PR_SET_PDEATHSIG`), so SIGKILL to the launcher takes the
//! whole node down. The full contract is in `docs/launcher.md`.
//!
//! ```no_run
//! use std::time::Duration;
//! use weft_launcher::{BinSearch, NodeOptions, NodePlan};
//!
//! let opts = NodeOptions {
//!     config: "config/demo.toml".into(),
//!     id: "1".into(),
//!     dataplane_bin: None,
//!     controld_bin: None,
//!     restart_min_backoff: Duration::from_millis(100),
//!     restart_max_backoff: Duration::from_secs(5),
//!     up_timeout: Duration::from_secs(10),
//!     stop_timeout: Duration::from_secs(3),
//! };
//! let plan = NodePlan::prepare(&opts, &BinSearch::from_env())?;
//! weft_launcher::run_node(&plan)?; // returns after SIGINT/SIGTERM, or with the reason it stopped
//! # Ok::<(), weft_launcher::LaunchError>(())
//! ```

pub mod backoff;
pub mod bins;
mod child;
pub mod error;
pub mod node;
mod output;
pub mod sockets;
mod supervise;

use std::io::Write as _;

use weft_shared::ids::NodeId;

pub use backoff::Backoff;
pub use bins::BinSearch;
pub use error::LaunchError;
pub use node::{NodeOptions, NodePlan, run as run_node};

/// Writes one of the launcher's own log lines to stderr: `weft: node N: <msg>`. Write errors
/// are ignored (a launcher whose log reader went away keeps the node running).
pub(crate) fn say(node: NodeId, msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "weft: node {node}: {msg}");
}
