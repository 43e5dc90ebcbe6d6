//! reliable-experiment: the reliable service (`weft_proto::reliable`) in virtual time, over the
//! harness `weft_tests::experiments::reliable` (real link and end-to-end machines over seeded
//! link models). Three tables, each a "must be shown" item of issue 6:
//!
//! 1. the paper's figure 3 (DSN 2003): five 10 ms links, hop-by-hop against end-to-end
//!    recovery over the same links and losses (1 % and 5 % on every link, 1 % and 2 % on the
//!    middle link only), 1,000 messages/s and DSN 2003's 500 kbit/s: latency of the recovered
//!    messages and in-order delivery latency of all, with the share delayed over 60 and
//!    100 ms;
//! 2. goodput against loss on three 10 ms links of 10 Mbit/s, the source flat out, each ARQ
//!    loop paced to 9.5 Mbit/s or under TCP-like congestion control;
//! 3. faults on the diamond: intermediate-node crashes and a link cut.
//!
//! Prints Markdown; `--json` adds one JSON line per row. Deterministic for `--seed`. Run it
//! from a release build: `cargo build --release -p weft-perf --bin reliable-experiment &&
//! target/release/reliable-experiment`. Results and their reading: `perf/RESULTS.md`.

use std::time::{Duration, Instant as StdInstant};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use weft_tests::experiments::reliable::{
    Fault, Latency, NetLink, Recovery, ReliableConfig, ReliableReport, run,
};
use weft_tests::linkmodel::LossModel;

const MS: Duration = Duration::from_millis(1);

/// The tables this command can print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Table {
    /// Figure 3: recovery and delivery latency, hop by hop against end to end.
    Fig3,
    /// Goodput against loss on a 3-hop, 10 Mbit/s path.
    Goodput,
    /// Intermediate-node crashes and a link cut on the diamond.
    Faults,
}

/// The reliable service in virtual time: figure 3, goodput, faults.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Messages per figure-3 row.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Messages per goodput row.
    #[arg(long, default_value_t = 50_000)]
    goodput_messages: u64,
    /// The flow's end-to-end window in the goodput rows (messages).
    #[arg(long, default_value_t = 1024)]
    goodput_window: u32,
    /// Messages per fault row (1,000 messages/s).
    #[arg(long, default_value_t = 10_000)]
    fault_messages: u64,
    /// The seed of every run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only these tables (repeatable; default all).
    #[arg(long, value_enum)]
    table: Vec<Table>,
    /// Also print one JSON line per row.
    #[arg(long)]
    json: bool,
}

/// A baseline or Weft's recovery, as the rows name it.
#[derive(Clone, Copy)]
struct Variant {
    label: &'static str,
    recovery: Recovery,
    congestion_control: bool,
}

const FIG3_VARIANTS: [Variant; 3] = [
    Variant {
        label: "hop by hop",
        recovery: Recovery::HopByHop,
        congestion_control: false,
    },
    Variant {
        label: "end to end",
        recovery: Recovery::EndToEnd,
        congestion_control: false,
    },
    Variant {
        label: "end to end, cc",
        recovery: Recovery::EndToEnd,
        congestion_control: true,
    },
];

/// The share of samples above `x_ms`, bracketed from the quantiles a [`Latency`] reports
/// (the harness keeps no histogram). `q(p)` is the smallest sample with at least a share `p`
/// at or below it, so `q(p) ≤ x` bounds the share above `x` by `1 − p` from above, and
/// `q(p) > x` by `1 − p` from below (strictly). Returns `(low, high)`: low < share ≤ high,
/// or both equal when exact (0 or 1).
fn share_above(l: &Latency, x_ms: f64) -> (f64, f64) {
    if l.count == 0 || l.max_ms <= x_ms {
        return (0.0, 0.0);
    }
    if l.min_ms > x_ms {
        return (1.0, 1.0);
    }
    let quantiles = [
        (0.5, l.p50_ms),
        (0.9, l.p90_ms),
        (0.99, l.p99_ms),
        (0.999, l.p999_ms),
    ];
    // Above the largest listed quantile at or below x, below the smallest listed one above x.
    let mut high: f64 = 1.0;
    let mut low: f64 = 0.0;
    for (p, q) in quantiles {
        if q <= x_ms {
            high = 1.0 - p;
        } else if low == 0.0 {
            low = 1.0 - p;
        }
    }
    (low.min(high), high)
}

fn pct(v: f64) -> String {
    let s = format!("{:.2}", v * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn share_cell((low, high): (f64, f64)) -> String {
    if low == high {
        format!("{} %", pct(low))
    } else {
        format!("{}–{} %", pct(low), pct(high))
    }
}

fn lat_cells(l: &Latency) -> String {
    format!(
        "{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}",
        l.count, l.min_ms, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms
    )
}

/// One row's JSON: the table, its labels, and the report.
fn json_row(table: &str, labels: Value, r: &ReliableReport) -> anyhow::Result<String> {
    let line = json!({ "table": table, "row": labels, "report": r });
    Ok(serde_json::to_string(&line)?)
}

/// A chain of five 10 ms links with `loss` on the middle one only (C–D), none elsewhere.
fn middle_only(loss: LossModel, messages: u64, seed: u64) -> ReliableConfig {
    let mut cfg = ReliableConfig::chain(5, 10 * MS, LossModel::None, Recovery::HopByHop, 0, seed);
    cfg.messages = messages;
    cfg.links[2] = NetLink {
        loss,
        ..cfg.links[2]
    };
    cfg
}

fn fig3(args: &Args, json: &mut Vec<String>) -> anyhow::Result<()> {
    let b = |p| LossModel::Bernoulli { p };
    // (placement, loss %, messages/s)
    let scenarios: [(&str, f64, u32); 6] = [
        ("every link", 0.01, 1000),
        ("every link", 0.05, 1000),
        ("middle link", 0.01, 1000),
        ("middle link", 0.02, 1000),
        // DSN 2003's stream: 500 kbit/s of 1,000-byte messages.
        ("middle link", 0.01, 63),
        ("middle link", 0.02, 63),
    ];
    let mut recovered = Vec::new();
    let mut delivery = Vec::new();
    for (place, p, rate) in scenarios {
        for v in FIG3_VARIANTS {
            let mut cfg = if place == "every link" {
                ReliableConfig::chain(5, 10 * MS, b(p), v.recovery, args.messages, args.seed)
            } else {
                middle_only(b(p), args.messages, args.seed)
            };
            cfg.recovery = v.recovery;
            cfg.congestion_control = v.congestion_control;
            cfg.rate_pps = Some(rate);
            let r = run(&cfg);
            let head = format!("{place} {} % | {rate}/s | {}", pct(p), v.label);
            let (d, rl) = (&r.delivery_latency, &r.recovered_latency);
            recovered.push(format!(
                "| {head} | {} | {} |",
                lat_cells(rl),
                share_cell(share_above(rl, 100.0))
            ));
            let (over60, over100) = (share_above(d, 60.0), share_above(d, 100.0));
            delivery.push(format!(
                "| {head} | {} | {} | {} | {} | {} |",
                lat_cells(d),
                share_cell(over60),
                share_cell(over100),
                if r.complete { "yes" } else { "**no**" },
                r.misordered + r.corrupted,
            ));
            let labels = json!({
                "placement": place, "loss": p, "rate_pps": rate, "variant": v.label,
                "delivery_over_60ms": [over60.0, over60.1],
                "delivery_over_100ms": [over100.0, over100.1],
            });
            json.push(json_row("fig3", labels, &r)?);
        }
    }
    println!(
        "### Figure 3: five 10 ms links, Bernoulli loss, {} messages per row, seed {}\n",
        args.messages, args.seed
    );
    let cols = "count | min | p50 | p90 | p99 | p99.9 | max | mean";
    let rule = "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|";
    println!("Latency of recovered messages (arrival at the destination − send), ms:\n");
    println!("| loss | rate | recovery | {cols} | > 100 ms |");
    println!("{rule}---:|");
    for l in &recovered {
        println!("{l}");
    }
    println!("\nIn-order delivery latency of all messages (delivery − send), ms:\n");
    println!("| loss | rate | recovery | {cols} | > 60 ms | > 100 ms | complete | misordered |");
    println!("{rule}---:|---:|---|---:|");
    for l in &delivery {
        println!("{l}");
    }
    println!();
    Ok(())
}

fn goodput(args: &Args, json: &mut Vec<String>) -> anyhow::Result<()> {
    let losses = [
        ("none", LossModel::None),
        ("Bernoulli 1 %", LossModel::Bernoulli { p: 0.01 }),
        ("Bernoulli 5 %", LossModel::Bernoulli { p: 0.05 }),
        ("Bernoulli 10 %", LossModel::Bernoulli { p: 0.10 }),
        ("G–E 5 %, burst 4", LossModel::bursty(0.05, 4.0)),
    ];
    let modes = [
        ("paced 9.5 Mbit/s", false, Some(9_500_000)),
        ("congestion control", true, None),
    ];
    let recoveries = [
        ("hop by hop", Recovery::HopByHop),
        ("end to end", Recovery::EndToEnd),
    ];
    println!(
        "### Goodput: three 10 ms links of 10 Mbit/s, source flat out, {} messages per row, end-to-end window {}, seed {}\n",
        args.goodput_messages, args.goodput_window, args.seed
    );
    println!(
        "| loss | recovery | sending | goodput Mbit/s | delivered / sent | complete | misordered | sink dups | ARQ retx / msg | e2e resends | refused | data pkts / msg |"
    );
    println!("|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|");
    for (loss_label, loss) in losses {
        for (mode, cc, pacing) in modes {
            for (rec_label, rec) in recoveries {
                let cfg = ReliableConfig {
                    rate_pps: None,
                    rate_bps: Some(10_000_000),
                    pacing_bps: pacing,
                    congestion_control: cc,
                    e2e_window: args.goodput_window,
                    ..ReliableConfig::chain(3, 10 * MS, loss, rec, args.goodput_messages, args.seed)
                };
                let r = run(&cfg);
                let per_msg = |v: u64| v as f64 / r.sent.max(1) as f64;
                println!(
                    "| {loss_label} | {rec_label} | {mode} | {:.2} | {} / {} | {} | {} | {} | {:.4} | {} | {} | {:.3} |",
                    r.goodput_bps / 1e6,
                    r.delivered,
                    r.sent,
                    if r.complete { "yes" } else { "**no**" },
                    r.misordered + r.corrupted,
                    r.sink_duplicates,
                    per_msg(r.link_retransmissions),
                    r.e2e_resent,
                    r.refused,
                    per_msg(r.data_packets) / cfg.links.len() as f64,
                );
                let labels = json!({ "loss": loss_label, "recovery": rec_label, "sending": mode });
                json.push(json_row("goodput", labels, &r)?);
            }
        }
    }
    println!();
    Ok(())
}

fn crash(node: usize, at_ms: u64, for_ms: u64) -> Fault {
    Fault::CrashNode {
        node,
        at: Duration::from_millis(at_ms),
        for_: Duration::from_millis(for_ms),
    }
}

fn faults(args: &Args, json: &mut Vec<String>) -> anyhow::Result<()> {
    let b2 = LossModel::Bernoulli { p: 0.02 };
    let rows: [(&str, LossModel, Vec<Fault>); 5] = [
        ("none", b2, vec![]),
        (
            "node 1 down 2 s at 3 s",
            LossModel::None,
            vec![crash(1, 3000, 2000)],
        ),
        ("node 1 down 2 s at 3 s", b2, vec![crash(1, 3000, 2000)]),
        (
            "node 1 down 2 s at 3 s, 300 ms at 7 s",
            b2,
            vec![crash(1, 3000, 2000), crash(1, 7000, 300)],
        ),
        (
            "link 1–3 cut 2 s at 3 s",
            b2,
            vec![Fault::CutLink {
                link: 1,
                at: Duration::from_secs(3),
                for_: Duration::from_secs(2),
            }],
        ),
    ];
    println!(
        "### Faults on the diamond (route 0–1–3, detours 0–2–3 and 0–4–5–3), 1,000 messages/s, {} messages per row, seed {}, detection 100 ms\n",
        args.fault_messages, args.seed
    );
    println!(
        "| fault | loss | delivered / sent | complete | misordered | e2e resends | sink dups | link retx | stalls | p99.9 ms | max delivery ms |"
    );
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (label, loss, faults) in rows {
        let cfg = ReliableConfig {
            faults,
            ..ReliableConfig::diamond(loss, args.fault_messages, args.seed)
        };
        let r = run(&cfg);
        let loss_label = if loss == LossModel::None {
            "none"
        } else {
            "2 %"
        };
        println!(
            "| {label} | {loss_label} | {} / {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
            r.delivered,
            r.sent,
            if r.complete { "yes" } else { "**no**" },
            r.misordered + r.corrupted,
            r.e2e_resent,
            r.sink_duplicates,
            r.link_retransmissions,
            r.stalls,
            r.delivery_latency.p999_ms,
            r.delivery_latency.max_ms,
        );
        json.push(json_row(
            "faults",
            json!({ "fault": label, "loss": loss_label }),
            &r,
        )?);
    }
    println!();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let want = |t| args.table.is_empty() || args.table.contains(&t);
    let mut json = Vec::new();
    let start = StdInstant::now();
    if want(Table::Fig3) {
        fig3(&args, &mut json)?;
    }
    if want(Table::Goodput) {
        goodput(&args, &mut json)?;
    }
    if want(Table::Faults) {
        faults(&args, &mut json)?;
    }
    eprintln!("({:.1} s)", start.elapsed().as_secs_f64());
    if args.json {
        for line in json {
            println!("{line}");
        }
    }
    Ok(())
}
