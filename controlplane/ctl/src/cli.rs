//! weftctl's command line (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Show a Weft node's state, check a config.
#[derive(Debug, Parser)]
#[command(name = "weftctl", version)]
pub struct Cli {
    /// The overlay's config file (needed by `show`).
    #[arg(long, global = true, env = "WEFT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The node to ask: its id in the config (needed by `show`).
    #[arg(long, global = true, env = "WEFT_ID", value_name = "N")]
    pub id: Option<u16>,
    /// Print one JSON document instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long each read or write on a socket may wait, in milliseconds.
    #[arg(long, global = true, default_value_t = 2000, value_name = "MS")]
    pub timeout_ms: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show part of the node's state.
    Show {
        /// status, nodes, routes, groups: from the control plane; links, fib, counters, reliable:
        /// from the data plane's shared memory.
        what: Show,
        /// With `groups`: only this group, with its multicast trees from every source node.
        #[arg(long, value_name = "GROUP")]
        group: Option<u32>,
    },
    /// Work with config files.
    Config {
        /// The config subcommand.
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// What `show` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Show {
    /// The control plane's counters (from the control plane).
    Status,
    /// The link-state database: nodes and the links they advertise (from the control plane).
    Nodes,
    /// The routing table (from the control plane).
    Routes,
    /// Group state: local groups, and per group its members, anycast choice and multicast tree
    /// from this node (from the control plane).
    Groups,
    /// Links and paths: state, RTT, loss, hellos, traffic (from the data plane).
    Links,
    /// The FIB generation in use and its unicast table (from the data plane).
    Fib,
    /// Per-worker counters and drops by reason (from the data plane).
    Counters,
    /// The reliable service per link and per flow (from the data plane).
    Reliable,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate a config file; print a summary (exit 0) or the first error (exit 1).
    Check {
        /// The config file.
        file: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_go_before_or_after_the_command() {
        let cli = Cli::try_parse_from([
            "weftctl", "--config", "c.toml", "--id", "3", "show", "links", "--json",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Show {
                what: Show::Links,
                group: None
            }
        ));
        assert_eq!(cli.id, Some(3));
        assert!(cli.json);
        let cli = Cli::try_parse_from(["weftctl", "config", "check", "x.toml"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Config {
                command: ConfigCommand::Check { .. }
            }
        ));
        assert!(Cli::try_parse_from(["weftctl", "show", "everything"]).is_err());
        let cli = Cli::try_parse_from(["weftctl", "show", "groups", "--group", "7"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Show {
                what: Show::Groups,
                group: Some(7)
            }
        ));
        assert!(Cli::try_parse_from(["weftctl", "show", "groups", "--group", "-1"]).is_err());
        assert!(Cli::try_parse_from(["weftctl", "--id", "70000", "show", "fib"]).is_err());
    }
}
