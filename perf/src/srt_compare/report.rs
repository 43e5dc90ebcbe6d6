//! One measurement of `srt-compare` (one system, one configuration, one run), its overhead
//! figures, and the Markdown tables and JSON of a whole run.

use serde_json::{Value, json};

use super::DirTraffic;
use super::probe::ProbeStats;

/// One measurement.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// `weft` or `srt`.
    pub system: &'static str,
    /// Its configuration (`realtime:200:3:2`, `latency=200`).
    pub config: String,
    /// Run number, from 1.
    pub run: u32,
    /// What the probe saw.
    pub probe: ProbeStats,
    /// Sender → receiver direction of the emulated path over the measured window.
    pub fwd: DirTraffic,
    /// Receiver → sender direction.
    pub rev: DirTraffic,
    /// Payload bytes the probe sent (datagrams × size).
    pub payload_bytes: u64,
    /// 1-minute load average before and after.
    pub load: (Option<f64>, Option<f64>),
    /// Datagrams the relay sent over 1 ms late, and the worst lateness (µs).
    pub relay_late: (u64, u64),
    /// How far the probe's source fell behind its schedule at worst (µs), and its send errors.
    pub source: (u64, u64),
    /// System-specific counters.
    pub extra: Value,
}

impl Measurement {
    fn ratio(&self, bytes: f64) -> f64 {
        if self.payload_bytes == 0 {
            return 0.0;
        }
        bytes / self.payload_bytes as f64
    }

    /// Bytes into the path, both directions, per payload byte sent.
    pub fn overhead_total(&self) -> f64 {
        self.ratio(self.fwd.offered_bytes() + self.rev.offered_bytes())
    }

    /// Bytes into the path sender → receiver per payload byte sent.
    pub fn overhead_fwd(&self) -> f64 {
        self.ratio(self.fwd.offered_bytes())
    }

    /// Datagrams into the path sender → receiver per probe datagram sent.
    pub fn datagrams_fwd(&self) -> f64 {
        if self.probe.sent == 0 {
            return 0.0;
        }
        self.fwd.offered as f64 / self.probe.sent as f64
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "system": self.system,
            "config": self.config,
            "run": self.run,
            "probe": self.probe.json(),
            "path": {"fwd": self.fwd.json(), "rev": self.rev.json()},
            "payload_bytes": self.payload_bytes,
            "overhead_total": self.overhead_total(),
            "overhead_fwd": self.overhead_fwd(),
            "overhead_rev": self.ratio(self.rev.offered_bytes()),
            "datagrams_fwd_per_sent": self.datagrams_fwd(),
            "datagrams_rev_per_sent": self.rev.offered as f64 / self.probe.sent.max(1) as f64,
            "load_before": self.load.0,
            "load_after": self.load.1,
            "relay_late_1ms": self.relay_late.0,
            "relay_max_late_us": self.relay_late.1,
            "source_max_behind_us": self.source.0,
            "source_send_errors": self.source.1,
            "counters": self.extra,
        })
    }
}

fn load(l: Option<f64>) -> String {
    l.map_or_else(|| "?".to_owned(), |v| format!("{v:.2}"))
}

/// The Markdown table of every measurement.
pub fn runs_table(ms: &[Measurement]) -> String {
    let mut s = String::from(
        "| run | system | config | on time % | late | lost | dup | p50 ms | p99 ms | p99.9 ms | \
         overhead (both) | fwd | rev | fwd dgrams/sent | rev dgrams/sent | load before→after |\n\
         |---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for m in ms {
        let p = &m.probe;
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {}→{} |\n",
            m.run,
            m.system,
            m.config,
            p.on_time_pct(),
            p.late,
            p.lost,
            p.duplicates,
            p.latency_ms[0],
            p.latency_ms[1],
            p.latency_ms[2],
            m.overhead_total(),
            m.overhead_fwd(),
            m.ratio(m.rev.offered_bytes()),
            m.datagrams_fwd(),
            m.rev.offered as f64 / p.sent.max(1) as f64,
            load(m.load.0),
            load(m.load.1),
        ));
    }
    s
}

/// Median, min and max.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// Per configuration (in first-seen order): its measurements.
fn groups(ms: &[Measurement]) -> Vec<(&'static str, String, Vec<&Measurement>)> {
    let mut g: Vec<(&'static str, String, Vec<&Measurement>)> = Vec::new();
    for m in ms {
        match g
            .iter_mut()
            .find(|(s, c, _)| *s == m.system && *c == m.config)
        {
            Some((_, _, v)) => v.push(m),
            None => g.push((m.system, m.config.clone(), vec![m])),
        }
    }
    g
}

type Metric = fn(&Measurement) -> f64;

const METRICS: [(&str, Metric); 6] = [
    ("on_time_pct", |m| m.probe.on_time_pct()),
    ("overhead_total", Measurement::overhead_total),
    ("overhead_fwd", Measurement::overhead_fwd),
    ("datagrams_fwd_per_sent", Measurement::datagrams_fwd),
    ("latency_p50_ms", |m| m.probe.latency_ms[0]),
    ("latency_p99_ms", |m| m.probe.latency_ms[1]),
];

/// The summary table: per configuration, median (min–max) over the runs.
pub fn summary_table(ms: &[Measurement]) -> String {
    let mut s = String::from(
        "| system | config | runs | on time % | overhead (both directions) | fwd overhead | fwd datagrams/sent | p50 ms | p99 ms |\n\
         |---|---|---:|---|---|---|---|---|---|\n",
    );
    for (system, config, v) in groups(ms) {
        s.push_str(&format!("| {system} | {config} | {} |", v.len()));
        for (i, (_, f)) in METRICS.iter().enumerate() {
            let (med, lo, hi) = spread(v.iter().map(|m| f(m)).collect());
            let prec = if i == 0 {
                3
            } else if i < 4 {
                4
            } else {
                1
            };
            s.push_str(&format!(" {med:.prec$} ({lo:.prec$}–{hi:.prec$}) |"));
        }
        s.push('\n');
    }
    s
}

/// The summary as JSON: per configuration, median, min and max of each figure.
pub fn summary_json(ms: &[Measurement]) -> Value {
    let rows: Vec<Value> = groups(ms)
        .into_iter()
        .map(|(system, config, v)| {
            let mut o = serde_json::Map::new();
            o.insert("system".into(), json!(system));
            o.insert("config".into(), json!(config));
            o.insert("runs".into(), json!(v.len()));
            for (name, f) in METRICS {
                let (med, lo, hi) = spread(v.iter().map(|m| f(m)).collect());
                o.insert(name.into(), json!({"median": med, "min": lo, "max": hi}));
            }
            Value::Object(o)
        })
        .collect();
    Value::Array(rows)
}
