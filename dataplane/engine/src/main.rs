//! `weft-dataplane`: the data-plane process of one overlay node.
//!
//! ```text
//! weft-dataplane --config FILE --id N [--shm-name NAME | --memfd] [--incarnation X]
//!                [--remote LINK:PATH=ADDR ...] [--no-gro]
//! ```
//!
//! See `docs/dataplane.md` for what it does at start-up, its threads and the attach socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use weft_dataplane::links::RemoteOverride;
use weft_dataplane::node::{Options, ShmChoice, run};
use weft_shared::ids::{LinkId, PathId};

/// Weft data plane: forwards overlay packets for one node.
#[derive(Debug, Parser)]
#[command(name = "weft-dataplane", version)]
struct Cli {
    /// The overlay config file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// This node's id in the config.
    #[arg(long, value_name = "N")]
    id: u16,
    /// Name of the shared-memory region under /dev/shm (default: the node's `shm_name`).
    #[arg(long, value_name = "NAME", conflicts_with = "memfd")]
    shm_name: Option<String>,
    /// Use an anonymous memfd region, reachable only through the attach socket.
    #[arg(long)]
    memfd: bool,
    /// The data-plane incarnation (nonzero, decimal or 0x-hex); default: from clock and pid.
    #[arg(long, value_name = "X", value_parser = parse_u32)]
    incarnation: Option<u32>,
    /// Send on path PATH of link LINK to ADDR instead of the peer's configured interface (for a
    /// relay or link emulator). Repeatable.
    #[arg(long = "remote", value_name = "LINK:PATH=ADDR", value_parser = parse_remote)]
    remotes: Vec<RemoteOverride>,
    /// Receive without UDP_GRO (one datagram per receive buffer), for comparisons or a kernel
    /// whose GRO misbehaves. Default: GRO on where the kernel accepts it.
    #[arg(long)]
    no_gro: bool,
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s}: {e}"))
}

fn parse_remote(s: &str) -> Result<RemoteOverride, String> {
    let bad = || format!("{s}: expected LINK:PATH=ADDR, e.g. 3:0=127.0.0.1:9000");
    let (lp, addr) = s.split_once('=').ok_or_else(bad)?;
    let (l, p) = lp.split_once(':').ok_or_else(bad)?;
    let link = l.parse().ok().and_then(LinkId::new).ok_or_else(bad)?;
    let path = p.parse().ok().and_then(PathId::new).ok_or_else(bad)?;
    let addr: SocketAddr = addr.parse().map_err(|_| bad())?;
    Ok(RemoteOverride { link, path, addr })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = Options {
        config: cli.config,
        node: cli.id,
        shm: if cli.memfd {
            ShmChoice::Memfd
        } else {
            ShmChoice::Named(cli.shm_name)
        },
        incarnation: cli.incarnation,
        remotes: cli.remotes,
        gro: !cli.no_gro,
    };
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-dataplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}
