//! The Markdown table and the JSON of `reliable-goodput`'s measurements.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{FlowResult, Measurement, Settings, counter_names};

fn rate_label(r: Option<u64>) -> String {
    r.map_or_else(
        || "none".to_owned(),
        |r| format!("{} Mbit/s", r as f64 / 1e6),
    )
}

fn load_label(l: (Option<f64>, Option<f64>)) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.2}"));
    format!("{}→{}", f(l.0), f(l.1))
}

/// One row per measurement: the reliable flow, the counters, the best-effort flow's ratio.
pub fn table(all: &[Measurement], s: &Settings) -> String {
    let mut t = String::from(
        "| loss (every link, both ways) | rate limit | delivered / sent | complete | out of order | dups | time s | goodput Mbit/s | msgs/s | link retx | recovered | refused | e2e resent | sink dups | relay lost fwd / rev | queue drops | best effort delivered | load |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|\n",
    );
    for m in all {
        let r = &m.reliable;
        let (lf, lr) = r.relay_lost();
        let be = m.best_effort.as_ref().map_or_else(
            || "—".to_owned(),
            |b| {
                format!(
                    "{:.2} % at {:.0}/s",
                    100.0 * b.recv.unique as f64 / b.sent.max(1) as f64,
                    r.msgs_per_s()
                )
            },
        );
        let complete = if m.reliable_ok(s.count) {
            "yes".to_owned()
        } else {
            "**no**".to_owned()
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} / {} | {complete} | {} | {} | {:.2} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {lf} / {lr} | {} | {be} | {} |",
            m.model.label(),
            rate_label(m.rate_bps),
            r.recv.unique,
            r.sent,
            r.recv.out_of_order,
            r.recv.duplicates,
            r.elapsed.as_secs_f64(),
            r.goodput_bps(s.size) / 1e6,
            r.msgs_per_s(),
            r.counter_sum("rel_retransmitted"),
            r.counter_sum("rel_recovered"),
            r.counter_sum("rel_refused"),
            r.counter(1, "rel_resent"),
            r.counter(usize::from(s.nodes), "rel_sink_duplicates"),
            r.queue_drops(),
            load_label(m.load),
        );
    }
    t
}

/// What went wrong in a reliable flow, one line each (empty when nothing did).
pub fn problems(m: &Measurement, s: &Settings) -> Vec<String> {
    let r = &m.reliable;
    let what = format!("{}, rate {}", m.model.label(), rate_label(m.rate_bps));
    let mut p = Vec::new();
    if r.recv.unique != s.count {
        p.push(format!(
            "{what}: {} of {} messages delivered (sender sent {}, done {}, timed out {})",
            r.recv.unique, s.count, r.sent, r.sender_done, r.recv.timed_out
        ));
    }
    if r.recv.duplicates > 0 || r.recv.out_of_order > 0 || r.recv.bogus > 0 {
        p.push(format!(
            "{what}: {} duplicates, {} out of order, {} bogus; first (expected, index, seq): {:?}",
            r.recv.duplicates, r.recv.out_of_order, r.recv.bogus, r.recv.first_errors
        ));
    }
    if let Some(e) = &r.recv.error {
        p.push(format!("{what}: receiver error: {e}"));
    }
    if let Some(e) = &r.sender_error {
        p.push(format!("{what}: sender error: {e}"));
    }
    p
}

fn flow_json(f: &FlowResult, s: &Settings) -> Value {
    let q = |p: f64| f.recv.age_us.value_at_quantile(p) as f64 / 1000.0;
    let counters: Vec<Value> = f
        .counters
        .iter()
        .map(|c| {
            counter_names()
                .map(|k| (k.to_owned(), c[k].clone()))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    json!({
        "sent": f.sent,
        "sender_done": f.sender_done,
        "sender_error": f.sender_error,
        "delivered": f.recv.unique,
        "duplicates": f.recv.duplicates,
        "out_of_order": f.recv.out_of_order,
        "bogus": f.recv.bogus,
        "first_errors": f.recv.first_errors,
        "timed_out": f.recv.timed_out,
        "receiver_error": f.recv.error,
        "elapsed_s": f.elapsed.as_secs_f64(),
        "goodput_bps": f.goodput_bps(s.size),
        "msgs_per_s": f.msgs_per_s(),
        "age_ms": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": f.recv.age_us.max() as f64 / 1000.0 },
        "node_counters": counters,
        "relays": f.relays.iter().map(|(a, b)| json!({"a_to_b": a.json(), "b_to_a": b.json()})).collect::<Vec<_>>(),
        "relay_late_1ms": f.relay_late.0,
        "relay_max_late_us": f.relay_late.1,
    })
}

/// One measurement as JSON.
pub fn json(m: &Measurement, s: &Settings) -> Value {
    json!({
        "loss": m.model.loss,
        "burst": m.model.burst,
        "label": m.model.label(),
        "rate_bps": m.rate_bps,
        "complete_in_order_once": m.reliable_ok(s.count),
        "reliable": flow_json(&m.reliable, s),
        "best_effort": m.best_effort.as_ref().map(|b| flow_json(b, s)),
        "load_before": m.load.0,
        "load_after": m.load.1,
    })
}
