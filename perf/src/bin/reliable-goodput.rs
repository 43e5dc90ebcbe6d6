//! reliable-goodput: goodput of a reliable flow against loss, on real processes.
//!
//! For each loss model (Bernoulli 0, 1, 5, 10 % and Gilbert–Elliott 5 % with mean burst 4 by
//! default) it starts a line of 4 nodes (3 hops) whose every link runs through `weft-linkem`
//! with that loss and the latency on both directions (one path per link: the nodes are
//! single-homed, so nothing bypasses the relays), sends `--count` messages from a client on
//! node 1 on a reliable flow, as fast as its credits allow, to a client on node 4 that checks
//! every message arrives in order exactly once, and reports goodput, the data planes' `rel_*`
//! counters and the relays' losses; then a best-effort flow at the same rate for comparison.
//! Every flow is bounded by `--timeout-s`. Exit status 1 if any reliable flow missed, doubled
//! or misordered a message.
//!
//! Needs a release build: `cargo build --release -p weft-perf -p weft-dataplane
//! -p weft-controld -p weftctl -p weft-tests && target/release/reliable-goodput`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use serde_json::json;
use weft_perf::reliable_goodput::report::{json, problems, table};
use weft_perf::reliable_goodput::{LossModel, Settings, measure};
use weft_perf::srt_compare::{check_interrupted, load_average, watch_signals};

/// Reliable goodput against loss on a line of real Weft nodes through weft-linkem.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Messages per flow (1..=1000000).
    #[arg(long, default_value_t = 50_000)]
    count: u64,
    /// Message size in bytes (8..=1396).
    #[arg(long, default_value_t = 1000)]
    size: usize,
    /// Nodes on the line (3..=8; hops = nodes − 1).
    #[arg(long, default_value_t = 4)]
    nodes: u16,
    /// One-way latency of every link direction, ms.
    #[arg(long, default_value_t = 5.0)]
    latency_ms: f64,
    /// Loss models, comma-separated: `P` (Bernoulli) or `P:BURST` (Gilbert–Elliott average P,
    /// mean burst BURST).
    #[arg(long, value_delimiter = ',', default_value = "0,0.01,0.05,0.1,0.05:4")]
    loss: Vec<String>,
    /// Rate limits of every link direction (UDP payload bits/s), comma-separated; 0 is none.
    /// Each loss model is measured at each.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    rate_bps: Vec<u64>,
    /// The rate limit's queue in bytes (default: the relay's, 1 MiB).
    #[arg(long)]
    queue_bytes: Option<u64>,
    /// The longest one flow may take (1..=600 s).
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// The relays' seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip the best-effort comparison flow.
    #[arg(long)]
    no_best_effort: bool,
    /// Where Weft's binaries are (default: this program's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Also print the measurements as one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_model(s: &str) -> Result<LossModel> {
    let (p, burst) = match s.split_once(':') {
        Some((p, b)) => (p, Some(b.parse::<f64>().ok().filter(|b| *b >= 1.0))),
        None => (s, None),
    };
    let loss = p.parse::<f64>().ok().filter(|p| (0.0..1.0).contains(p));
    match (loss, burst) {
        (Some(loss), None) => Ok(LossModel { loss, burst: None }),
        (Some(loss), Some(Some(b))) if loss > 0.0 => Ok(LossModel {
            loss,
            burst: Some(b),
        }),
        _ => bail!("--loss: bad model {s:?}; expected P in [0, 1) or P:BURST with BURST >= 1"),
    }
}

fn main() -> Result<()> {
    watch_signals()?;
    let a = Args::parse();
    if !(1..=1_000_000).contains(&a.count)
        || !(8..=1396).contains(&a.size)
        || !(3..=8).contains(&a.nodes)
        || !(1..=600).contains(&a.timeout_s)
        || !(0.0..=1000.0).contains(&a.latency_ms)
    {
        bail!(
            "--count 1..=1000000, --size 8..=1396, --nodes 3..=8, --timeout-s 1..=600, --latency-ms 0..=1000"
        );
    }
    let models = a
        .loss
        .iter()
        .map(|s| parse_model(s))
        .collect::<Result<Vec<_>>>()?;
    let bins = match &a.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .context("this program's directory")?,
    };
    for b in ["weft-dataplane", "weft-controld", "weftctl", "weft-linkem"] {
        if !bins.join(b).is_file() {
            bail!(
                "{} not found: build it first (cargo build --release -p weft-dataplane \
                 -p weft-controld -p weftctl -p weft-tests) or pass --bin-dir",
                bins.join(b).display()
            );
        }
    }
    let mut all = Vec::new();
    let started = Instant::now();
    let load_start = load_average();
    let mut failed = Vec::new();
    let mut last_settings: Option<Settings> = None;
    for (ri, &rate) in a.rate_bps.iter().enumerate() {
        let settings = Settings {
            nodes: a.nodes,
            count: a.count,
            size: a.size,
            one_way_ms: a.latency_ms,
            rate_bps: (rate > 0).then_some(rate),
            queue_bytes: a.queue_bytes,
            timeout: Duration::from_secs(a.timeout_s),
            seed: a.seed,
            best_effort: !a.no_best_effort,
        };
        for (mi, model) in models.iter().enumerate() {
            check_interrupted()?;
            let tag = format!("rg-r{ri}-m{mi}");
            let m = measure(&bins, &tag, &settings, model)?;
            let r = &m.reliable;
            eprintln!(
                "{} rate {rate}: {} / {} in {:.2} s, {:.2} Mbit/s, ok {}, load {:?}→{:?}",
                model.label(),
                r.recv.unique,
                r.sent,
                r.elapsed.as_secs_f64(),
                r.goodput_bps(a.size) / 1e6,
                m.reliable_ok(a.count),
                m.load.0,
                m.load.1
            );
            for p in problems(&m, &settings) {
                eprintln!("PROBLEM: {p}");
                failed.push(p);
            }
            all.push(m);
        }
        last_settings = Some(settings);
    }
    let load_end = load_average();
    println!(
        "Line of {} nodes ({} hops), every link {} ms each way, {} messages of {} B per flow, seed {}.\n",
        a.nodes,
        a.nodes - 1,
        a.latency_ms,
        a.count,
        a.size,
        a.seed
    );
    if let Some(s) = &last_settings {
        println!("{}", table(&all, s));
    }
    println!(
        "wall time {:.0} s, load average {load_start:?} → {load_end:?}",
        started.elapsed().as_secs_f64()
    );
    if a.json {
        let out = json!({
            "params": {
                "count": a.count, "size": a.size, "nodes": a.nodes, "latency_ms": a.latency_ms,
                "queue_bytes": a.queue_bytes, "timeout_s": a.timeout_s, "seed": a.seed,
            },
            "measurements": last_settings.as_ref().map(|s| all.iter().map(|m| json(m, s)).collect::<Vec<_>>()),
            "load_start": load_start, "load_end": load_end,
        });
        println!("{out}");
    }
    if !failed.is_empty() {
        bail!("{} problem(s):\n{}", failed.len(), failed.join("\n"));
    }
    Ok(())
}
