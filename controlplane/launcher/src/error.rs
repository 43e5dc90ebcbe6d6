//! The launcher's errors: each names what went wrong, where, and what to do about it.
//!
//! Every variant ends the launcher with exit status 1 (`main.rs`); the message is printed as
//! `weft: error: <message>`.

use std::io;
use std::path::PathBuf;

use weft_shared::config::ConfigError;
use weft_shared::ids::NodeId;

/// Why `weft node` could not start the node or had to stop it.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The config file could not be read or is not a valid config (the message names the file,
    /// line and field).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// `--id` is not an integer node id, or names no node of the config.
    #[error("--id {given}: {why}")]
    BadNodeId {
        /// The `--id` value as given.
        given: String,
        /// Why it was refused, including the config's node ids.
        why: String,
    },
    /// An option value is out of range or inconsistent with another.
    #[error("{option}: {why}")]
    BadOption {
        /// The option, e.g. `--restart-max-backoff-ms`.
        option: &'static str,
        /// Why it was refused.
        why: String,
    },
    /// A binary the node needs was not found.
    #[error("cannot find {name}: {looked}")]
    MissingBinary {
        /// The binary's file name, e.g. `weft-dataplane`.
        name: &'static str,
        /// Where the launcher looked, and how to point it elsewhere.
        looked: String,
    },
    /// One of the node's sockets accepts connections: the node already runs.
    #[error("node {node} is already running: {} accepts connections", socket.display())]
    AlreadyRunning {
        /// The node.
        node: NodeId,
        /// The socket that answered.
        socket: PathBuf,
    },
    /// A socket path of the node is taken by something that is not a socket.
    #[error("{}: exists and is not a socket; refusing to remove it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Probing or removing one of the node's socket files failed.
    #[error("{action} {}: {source}", path.display())]
    SocketFile {
        /// What was being done, e.g. "removing the stale socket".
        action: &'static str,
        /// The socket file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A child process could not be started.
    #[error("starting {what} ({}): {source}", path.display())]
    Spawn {
        /// Which child: `weft-dataplane` or `weft-controld`.
        what: &'static str,
        /// The binary.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The data plane exited before it reported `node N up`.
    #[error("the data plane of node {node} {status} during start-up (its output is above)")]
    DataplaneStartFailed {
        /// The node.
        node: NodeId,
        /// How it ended, e.g. "exited with status 1".
        status: String,
    },
    /// The data plane did not report `node N up` in time; it was stopped.
    #[error(
        "the data plane of node {node} did not report \"node {node} up\" within {waited_ms} ms"
    )]
    DataplaneUpTimeout {
        /// The node.
        node: NodeId,
        /// How long the launcher waited.
        waited_ms: u64,
    },
    /// The data plane exited while the node was running; the control plane was stopped.
    #[error("the data plane of node {node} {status}: the node is down")]
    DataplaneExited {
        /// The node.
        node: NodeId,
        /// How it ended, e.g. "was killed by signal SIGKILL".
        status: String,
    },
    /// A system call of the supervisor itself failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: &'static str,
        /// The operating system's error.
        source: nix::Error,
    },
}
