//! The baseline every forwarding figure is compared with: plain kernel UDP, no overlay
//! headers, per-packet or with GSO/GRO (see `weft_perf::udp_baseline`).
//!
//! `udp-baseline gen --to A --size N --count C [--rate R] [--batch B] [--gso]` sends probe
//! datagrams; `udp-baseline forward --listen A --to B --mode per-packet|gso|gro-gso` relays
//! them; `udp-baseline sink --listen A [--gro]` records them as `weft-recv` does. Each prints
//! one JSON line. The perf scripts run gen → forwarder(s) → sink in the same run as Weft's own
//! figures, so both see the same machine load.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use weft_perf::udp_baseline::{self, ForwardMode, GenSpec, Lifetime};

#[derive(Parser)]
#[command(about = "plain kernel-UDP generator, forwarder and sink (the perf baseline)")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Relay every datagram received on --listen to --to.
    Forward {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        to: SocketAddr,
        #[arg(long, value_enum, default_value = "per-packet")]
        mode: ForwardMode,
        /// Stop after this many seconds at most.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Stop this long after the last datagram.
        #[arg(long, default_value_t = 2_000)]
        idle_exit_ms: u64,
    },
    /// Record what arrives on --listen; print the summary once idle after traffic.
    Sink {
        #[arg(long)]
        listen: SocketAddr,
        /// Receive with UDP_GRO.
        #[arg(long)]
        gro: bool,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value_t = 1_000)]
        idle_exit_ms: u64,
    },
    /// Send --count probe datagrams of --size bytes to --to.
    Gen(GenSpec),
}

fn main() -> ExitCode {
    let life = |seconds: u64, idle_ms: u64| Lifetime {
        limit: Duration::from_secs(seconds),
        idle: Duration::from_millis(idle_ms),
    };
    let report = match Args::parse().cmd {
        Cmd::Forward {
            listen,
            to,
            mode,
            seconds,
            idle_exit_ms,
        } => udp_baseline::forward(listen, to, mode, life(seconds, idle_exit_ms)),
        Cmd::Sink {
            listen,
            gro,
            seconds,
            idle_exit_ms,
        } => udp_baseline::sink(listen, gro, life(seconds, idle_exit_ms)),
        Cmd::Gen(spec) => udp_baseline::generate(spec),
    };
    match report {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("udp-baseline: {e:#}");
            ExitCode::FAILURE
        }
    }
}
