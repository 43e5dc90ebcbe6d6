//! strikes-experiment: NM-Strikes on the continental path (4 links of 10 ms, 200 ms deadline,
//! 1,000 packets/s, released as soon as ordered), for Bernoulli loss of 1, 5 and 10 % and
//! Gilbert–Elliott loss of 5 % with a mean burst of 4 packets, and N, M in {1, 2, 3}: on-time
//! ratio, overhead against 1 + M·p, latency percentiles. Runs the real sans-IO sender, receiver
//! and deadline buffer in virtual time (`weft_tests::experiments::strikes`).
//!
//! Prints a Markdown table and, with `--json`, one JSON line per configuration. With
//! `--ablation`, adds N = M = 3 under the bursty loss with shorter spacings and without the
//! reverse background stream. Run it from a release build:
//! `cargo build --release -p weft-perf --bin strikes-experiment && target/release/strikes-experiment`.

use std::time::{Duration, Instant as StdInstant};

use clap::Parser;
use weft_tests::experiments::strikes::{RtParams, StrikesConfig, StrikesReport, run};
use weft_tests::linkmodel::LossModel;

/// NM-Strikes on-time ratio and overhead against loss.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Messages per configuration.
    #[arg(long, default_value_t = 100_000)]
    packets: u64,
    /// The seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also print one JSON line per configuration.
    #[arg(long)]
    json: bool,
    /// Add the spacing and reverse-background ablation rows.
    #[arg(long)]
    ablation: bool,
}

/// The on-time ratio independent losses predict: per link a message is lost for good with
/// p·(p^N + (1 − p^N)·p^M) (all N requests lost, or the first that arrives answered by M lost
/// copies); deadlines are ignored.
fn bernoulli_model(p: f64, n: u8, m: u8, links: usize) -> f64 {
    let pn = p.powi(i32::from(n));
    let q = p * (pn + (1.0 - pn) * p.powi(i32::from(m)));
    (1.0 - q).powi(links as i32)
}

fn row(label: &str, r: &StrikesReport, model: Option<f64>) -> String {
    let diff = (r.link_overhead / r.expected_overhead - 1.0) * 100.0;
    let model = model.map_or("–".to_string(), |v| format!("{:.3}", v * 100.0));
    format!(
        "| {label} | {} | {} | {:.3} | {model} | {} | {} | {:.4} | {:.4} | {diff:+.2} % | {:.4} | {:.1} | {:.1} | {:.1} |",
        r.n,
        r.m,
        r.on_time_ratio * 100.0,
        r.late,
        r.lost,
        r.link_overhead,
        r.expected_overhead,
        r.delivery_overhead,
        r.p50_ms,
        r.p99_ms,
        r.p999_ms,
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let losses = [
        ("Bernoulli 1 %", LossModel::Bernoulli { p: 0.01 }),
        ("Bernoulli 5 %", LossModel::Bernoulli { p: 0.05 }),
        ("Bernoulli 10 %", LossModel::Bernoulli { p: 0.10 }),
        ("G–E 5 %, burst 4", LossModel::bursty(0.05, 4.0)),
    ];
    println!(
        "{} messages per row, seed {}, 4 × 10 ms links, 200 ms deadline, 1,000 packets/s\n",
        args.packets, args.seed
    );
    println!(
        "| loss | N | M | on time % | model % | late | lost | overhead | 1 + M·p | diff | per delivered | p50 ms | p99 ms | p99.9 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut json = Vec::new();
    let start = StdInstant::now();
    for (label, loss) in losses {
        for n in 1..=3u8 {
            for m in 1..=3u8 {
                let cfg = StrikesConfig::continental(loss, n, m, args.packets, args.seed);
                let r = run(&cfg);
                let model = match loss {
                    LossModel::Bernoulli { p } => Some(bernoulli_model(p, n, m, cfg.links)),
                    _ => None,
                };
                println!("{}", row(label, &r, model));
                json.push(serde_json::to_string(&r)?);
            }
        }
    }
    if args.ablation {
        println!("\nN = M = 3 under G–E 5 %, burst 4, varying the timing:\n");
        println!(
            "| variant | N | M | on time % | model % | late | lost | overhead | 1 + M·p | diff | per delivered | p50 ms | p99 ms | p99.9 ms |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let bursty = LossModel::bursty(0.05, 4.0);
        for (label, spacing_ms, background) in [
            ("spacing 10 ms (default)", 10, true),
            ("spacing 3 ms", 3, true),
            ("spacing 1 ms", 1, true),
            ("spacing 0", 0, true),
            ("spacing 10 ms, idle reverse path", 10, false),
        ] {
            let mut cfg = StrikesConfig::continental(bursty, 3, 3, args.packets, args.seed);
            let mut params = RtParams::for_link(cfg.link_latency);
            params.request_spacing = Duration::from_millis(spacing_ms);
            params.retransmit_spacing = Duration::from_millis(spacing_ms);
            cfg.params = Some(params);
            cfg.reverse_background = background;
            let r = run(&cfg);
            println!("{}", row(label, &r, None));
            json.push(serde_json::to_string(&r)?);
        }
    }
    eprintln!("({:.1} s)", start.elapsed().as_secs_f64());
    if args.json {
        println!();
        for line in json {
            println!("{line}");
        }
    }
    Ok(())
}
