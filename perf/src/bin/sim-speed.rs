//! sim-speed: how fast the simulator runs, in simulated seconds per wall-clock second, on the
//! reference topology (`config/reference.toml`: 12 nodes, 22 links, two paths each) with 10
//! best-effort flows of 1,000 packets/s each (200-byte payloads), 0.5 ms of jitter on every
//! path, and every node's link monitors, forwarder and router running. One thread.
//!
//! Prints the figure and, with `--json`, one JSON line. Run it from a release build:
//! `cargo build --release -p weft-perf && target/release/sim-speed`.

use std::path::PathBuf;
use std::time::Instant as StdInstant;

use anyhow::Context;
use clap::Parser;
use weft_tests::sim::{Scenario, Simulation};

/// Simulated seconds per wall second on the reference topology.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Simulated seconds to run (the flows start at 1 s).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Packets per second of each of the 10 flows.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// The seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The repository root (where `config/reference.toml` is).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// End with one JSON line.
    #[arg(long)]
    json: bool,
}

/// Ten flows across the continent, both directions of five pairs.
const PAIRS: [(&str, &str); 5] = [
    ("boston", "miami"),
    ("newyork", "losangeles"),
    ("seattle", "atlanta"),
    ("washington", "phoenix"),
    ("chicago", "sanjose"),
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut text = format!(
        "name = \"sim-speed\"\nconfig = \"config/reference.toml\"\nduration_ms = {}\n\
         [link_model]\njitter_ms = 0.5\n",
        args.seconds * 1000
    );
    for (a, b) in PAIRS {
        for (from, to) in [(a, b), (b, a)] {
            text += &format!(
                "[[flow]]\nfrom = \"{from}\"\nto = \"{to}\"\nrate_pps = {}\nsize = 200\n\
                 start_ms = 1000\n",
                args.rate
            );
        }
    }
    let scenario = Scenario::from_toml_str(&text, "sim-speed", &args.root)?;
    let config = scenario
        .load_config()
        .context("run from the repository root, or pass --root")?;
    let mut sim = Simulation::new(&config, &scenario, args.seed)?;
    let start = StdInstant::now();
    let report = sim.run(scenario.drain);
    let wall = start.elapsed().as_secs_f64();
    let simulated = report.virtual_ms / 1000.0;
    let speed = simulated / wall;
    let sent: u64 = report.flows.iter().map(|f| f.sent).sum();
    let delivered: u64 = report.flows.iter().map(|f| f.delivered).sum();
    let c = report.counters;
    println!(
        "reference topology, 10 flows x {} pkt/s: {simulated:.1} simulated s in {wall:.3} wall s \
         = {speed:.1}x real time",
        args.rate
    );
    println!(
        "  {} events ({:.2} M/s), {} link packets ({} data), {delivered} of {sent} delivered",
        c.events,
        c.events as f64 / wall / 1e6,
        c.link_packets,
        c.data_link_packets
    );
    if args.json {
        let v = serde_json::json!({
            "simulated_s": simulated,
            "wall_s": wall,
            "speed": speed,
            "events": c.events,
            "events_per_s": c.events as f64 / wall,
            "link_packets": c.link_packets,
            "sent": sent,
            "delivered": delivered,
            "trace_hash": report.trace_hash,
        });
        println!("{v}");
    }
    Ok(())
}
