//! The summary of `perf/rawload.sh --latency`: from the JSON lines of its runs (per size, one
//! flat-out run, then pairs of a `--one-thread` run through the node under test and a
//! `--one-thread --direct` run at the same rate), one JSON line per size with, for p50, p99
//! and p99.9 of the one-way latency: through the node, direct, and added (through minus direct,
//! each pair differenced on its own, each percentile on its own), each as median, min and max
//! over the pairs (from `latency_us`, which ends on the sink's kernel receive stamp; the same
//! from `latency_read_us`, which ends on the loop's read, as `through_read_us`,
//! `direct_read_us` and `added_read_us`, and which clock the runs used, `rx_stamp`); and the
//! delivered/sent ratios, the offered/target rates and the loops'
//! pacing lag, the same way.
//!
//! `weft-rawload latency-summary FILE` prints it; the runs are told apart by their `run` field
//! (`flat`, `latency-through`, `latency-direct`) and grouped by `size`; the n-th through run
//! of a size pairs with its n-th direct run.

use serde_json::{Value, json};

/// The `run` labels the summary reads.
pub const FLAT: &str = "flat";
/// A `--one-thread` run through the node under test.
pub const THROUGH: &str = "latency-through";
/// A `--one-thread --direct` run.
pub const DIRECT: &str = "latency-direct";

/// The percentiles summarised: (name in the summary, field of `latency_us`).
const PERCENTILES: [(&str, &str); 3] = [("p50", "p50"), ("p99", "p99"), ("p99.9", "p999")];

/// Median, min and max of `xs` (`null` if empty; the median of an even count is the mean of
/// the middle two), as `{"median", "min", "max"}`.
pub fn spread(xs: &[f64]) -> Value {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({"median": r(median), "min": r(v[0]), "max": r(v[n - 1])})
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

fn ratio(v: &Value, a: &[&str], b: &[&str]) -> Option<f64> {
    let (a, b) = (num(v, a)?, num(v, b)?);
    (b > 0.0).then(|| a / b)
}

/// The summary line of one size (see the module doc).
pub fn size_summary(size: u64, flat: Option<&Value>, through: &[Value], direct: &[Value]) -> Value {
    let pairs: Vec<(&Value, &Value)> = through.iter().zip(direct).collect();
    let of = |runs: &[&Value], f: &dyn Fn(&Value) -> Option<f64>| -> Value {
        spread(&runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    let th: Vec<&Value> = pairs.iter().map(|p| p.0).collect();
    let di: Vec<&Value> = pairs.iter().map(|p| p.1).collect();
    // The kernel-stamped latency (`latency_us`), and beside it the latency to the loop's
    // read (`latency_read_us`), which counts the time a packet waited for the loop.
    let percentiles = |hist: &str| {
        let (mut through, mut direct, mut added) = (json!({}), json!({}), json!({}));
        for (name, field) in PERCENTILES {
            let lat = |r: &Value| num(r, &[hist, field]);
            through[name] = of(&th, &lat);
            direct[name] = of(&di, &lat);
            let diff: Vec<f64> = pairs
                .iter()
                .filter_map(|(t, d)| Some(lat(t)? - lat(d)?))
                .collect();
            added[name] = spread(&diff);
        }
        (through, direct, added)
    };
    let (through_us, direct_us, added_us) = percentiles("latency_us");
    let (through_read_us, direct_read_us, added_read_us) = percentiles("latency_read_us");
    let stamps = |runs: &[&Value]| -> Vec<Value> {
        let mut v: Vec<Value> = Vec::new();
        for r in runs {
            let s = r.get("rx_stamp").cloned().unwrap_or(json!("read"));
            if !v.contains(&s) {
                v.push(s);
            }
        }
        v
    };
    let delivered = |r: &Value| ratio(r, &["received"], &["sent"]);
    let offered = |r: &Value| ratio(r, &["offered_rate"], &["target_rate"]);
    let lag = |r: &Value| num(r, &["loop", "pacing_lag_us", "p99"]);
    let behind = |r: &Value| num(r, &["loop", "behind_at_end"]);
    let skipped = |r: &Value| Some(num(r, &["loop", "skipped"])? / num(r, &["sent"])?.max(1.0));
    // Node 2's CPU over the run's length: its load in the traffic shape of the run (paced
    // sends carry fewer datagrams per GSO send than flat-out ones, so a message costs more).
    let busy = |r: &Value| ratio(r, &["node2_cpu_s"], &["seconds"]);
    let capacity = flat.and_then(|f| {
        let a = num(f, &["rate"]).unwrap_or(0.0);
        let b = num(f, &["node2_forwarded_rate"]).unwrap_or(0.0);
        (a.max(b) > 0.0).then(|| a.max(b))
    });
    let total =
        |runs: &[&Value], k: &str| -> f64 { runs.iter().filter_map(|r| num(r, &[k])).sum() };
    json!({
        "latency_summary": true,
        "size": size,
        "runs": pairs.len(),
        "capacity_msgs_s": capacity,
        "rate_msgs_s": of(&th, &|r| num(r, &["target_rate"])),
        "node2_busy": of(&th, &busy),
        "node2_cpu_ns_per_msg": of(&th, &|r| num(r, &["node2_cpu_ns_per_msg"])),
        "through_us": through_us,
        "direct_us": direct_us,
        "added_us": added_us,
        "rx_stamp": {"through": stamps(&th), "direct": stamps(&di)},
        "rx_stamp_missing": {
            "through": total(&th, "rx_stamp_missing"),
            "direct": total(&di, "rx_stamp_missing"),
        },
        "through_read_us": through_read_us,
        "direct_read_us": direct_read_us,
        "added_read_us": added_read_us,
        "delivered_ratio": {"through": of(&th, &delivered), "direct": of(&di, &delivered)},
        "received_sent": {
            "through": [total(&th, "received"), total(&th, "sent")],
            "direct": [total(&di, "received"), total(&di, "sent")],
        },
        "offered_vs_target": {"through": of(&th, &offered), "direct": of(&di, &offered)},
        "pacing_lag_p99_us": {"through": of(&th, &lag), "direct": of(&di, &lag)},
        "behind_at_end": {"through": of(&th, &behind), "direct": of(&di, &behind)},
        "skipped_vs_sent": {"through": of(&th, &skipped), "direct": of(&di, &skipped)},
    })
}

/// One summary line per size, in the order the sizes first appear in `runs`.
pub fn summarise(runs: &[Value]) -> Vec<Value> {
    let mut sizes: Vec<u64> = Vec::new();
    for r in runs {
        if let Some(s) = r.get("size").and_then(Value::as_u64)
            && !sizes.contains(&s)
        {
            sizes.push(s);
        }
    }
    sizes
        .into_iter()
        .map(|size| {
            let of = |label: &str| -> Vec<Value> {
                runs.iter()
                    .filter(|r| {
                        r.get("size").and_then(Value::as_u64) == Some(size)
                            && r.get("run").and_then(Value::as_str) == Some(label)
                    })
                    .cloned()
                    .collect()
            };
            let flat = of(FLAT);
            size_summary(size, flat.last(), &of(THROUGH), &of(DIRECT))
        })
        .collect()
}

/// Parses JSON lines (others are skipped) and summarises them.
pub fn summarise_lines(text: &str) -> Vec<Value> {
    let runs: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object)
        .collect();
    summarise(&runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, size: u64, p: [f64; 3], sent: u64, received: u64) -> Value {
        json!({
            "run": label, "size": size, "sent": sent, "received": received,
            "target_rate": 1000.0, "offered_rate": 990.0, "seconds": 2.0, "node2_cpu_s": 1.0,
            "latency_us": {"p50": p[0], "p99": p[1], "p999": p[2]},
            "latency_read_us": {"p50": p[0] + 1.0, "p99": p[1] * 2.0, "p999": p[2] * 3.0},
            "rx_stamp": "kernel", "rx_stamp_missing": 1,
            "loop": {"pacing_lag_us": {"p99": 3.0}, "behind_at_end": 0, "skipped": 10},
        })
    }

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(spread(&[]), Value::Null);
        assert_eq!(
            spread(&[3.0, 1.0, 2.0]),
            json!({"median": 2.0, "min": 1.0, "max": 3.0})
        );
        assert_eq!(
            spread(&[4.0, 1.0, 2.0, 10.0]),
            json!({"median": 3.0, "min": 1.0, "max": 10.0})
        );
        assert_eq!(
            spread(&[f64::NAN, 5.0]),
            json!({"median": 5.0, "min": 5.0, "max": 5.0})
        );
    }

    #[test]
    fn added_latency_is_differenced_per_pair_then_summarised() {
        let lines = [
            json!({"run": "flat", "size": 100, "rate": 5.0e6, "node2_forwarded_rate": 9.0e6}),
            run(THROUGH, 100, [30.0, 60.0, 100.0], 1000, 1000),
            run(DIRECT, 100, [10.0, 20.0, 30.0], 1000, 1000),
            run(THROUGH, 100, [35.0, 80.0, 300.0], 1000, 990),
            run(DIRECT, 100, [12.0, 25.0, 40.0], 1000, 1000),
            run(THROUGH, 100, [32.0, 70.0, 150.0], 1000, 1000),
            run(DIRECT, 100, [20.0, 60.0, 200.0], 1000, 1000),
            run(THROUGH, 1396, [50.0, 90.0, 120.0], 10, 10),
            // An unpaired through run is left out.
            run(THROUGH, 1396, [1.0, 1.0, 1.0], 10, 10),
            run(DIRECT, 1396, [20.0, 30.0, 40.0], 10, 10),
        ];
        let text: String = lines
            .iter()
            .map(|l| format!("{l}\n"))
            .chain(["not json\n".to_string()])
            .collect();
        let out = summarise_lines(&text);
        assert_eq!(out.len(), 2);
        let s = &out[0];
        assert_eq!(
            (s["size"].as_u64(), s["runs"].as_u64()),
            (Some(100), Some(3))
        );
        assert_eq!(s["capacity_msgs_s"], json!(9.0e6));
        assert_eq!(
            s["through_us"]["p50"],
            json!({"median": 32.0, "min": 30.0, "max": 35.0})
        );
        assert_eq!(
            s["direct_us"]["p99.9"],
            json!({"median": 40.0, "min": 30.0, "max": 200.0})
        );
        // Added p99 per pair: 40, 55, 10; p99.9: 70, 260, -50 (a pair may come out negative).
        assert_eq!(
            s["added_us"]["p99"],
            json!({"median": 40.0, "min": 10.0, "max": 55.0})
        );
        assert_eq!(
            s["added_us"]["p99.9"],
            json!({"median": 70.0, "min": -50.0, "max": 260.0})
        );
        assert_eq!(
            s["delivered_ratio"]["through"],
            json!({"median": 1.0, "min": 0.99, "max": 1.0})
        );
        assert_eq!(s["received_sent"]["through"], json!([2990.0, 3000.0]));
        // The read latency beside it: p99 per pair 80, 110, 20.
        assert_eq!(
            s["added_read_us"]["p99"],
            json!({"median": 80.0, "min": 20.0, "max": 110.0})
        );
        assert_eq!(s["through_read_us"]["p50"]["median"], json!(33.0));
        assert_eq!(s["rx_stamp"]["direct"], json!(["kernel"]));
        assert_eq!(s["rx_stamp_missing"]["through"], json!(3.0));
        assert_eq!(s["offered_vs_target"]["direct"]["median"], json!(0.99));
        assert_eq!(s["node2_busy"]["median"], json!(0.5));
        assert_eq!(s["skipped_vs_sent"]["through"]["median"], json!(0.01));
        let t = &out[1];
        assert_eq!(
            (t["runs"].as_u64(), t["capacity_msgs_s"].clone()),
            (Some(1), Value::Null)
        );
        assert_eq!(t["added_us"]["p50"]["median"], json!(30.0));
    }
}
