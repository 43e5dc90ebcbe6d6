//! The simulator is deterministic: a busy scenario (jitter, bursty loss, a node failure and
//! restart, a misbehaving node) run twice with one seed gives the same trace, record for
//! record, and the same report; another seed gives another trace.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::path::Path;

use weft_tests::sim::{Report, Scenario, Simulation, TraceMode, TraceRecord};

const BUSY: &str = r#"
config = "config/reference.toml"
duration_ms = 3000

[link_model]
jitter_ms = 1.0
loss = { model = "gilbert-elliott", average = 0.01, mean_burst = 3 }

[[link_override]]
link = ["boston", "chicago"]
rate_mbps = 5
queue_kb = 20

[[flow]]
from = "boston"
to = "miami"
rate_pps = 1000
size = 300
start_ms = 500

[[flow]]
from = "seattle"
to = "washington"
rate_pps = 500
size = 1000
start_ms = 500

[[flow]]
from = "miami"
to = "boston"
rate_pps = 800
size = 100
start_ms = 500

[[event]]
at_ms = 1200
fail_node = "washington"

[[event]]
at_ms = 1500
misbehave = { node = "chicago", behaviour = "drop-fraction", fraction = 0.1 }

[[event]]
at_ms = 2200
restart_node = "washington"
"#;

fn run(seed: u64) -> (Vec<TraceRecord>, u64, Report) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut scenario = Scenario::from_toml_str(BUSY, "busy.toml", &base).unwrap();
    scenario.report.trace = TraceMode::Full;
    let config = scenario.load_config().unwrap();
    let mut sim = Simulation::new(&config, &scenario, seed).unwrap();
    let report = sim.run(scenario.drain);
    (sim.trace().records().to_vec(), sim.trace().hash(), report)
}

#[test]
fn one_seed_one_trace_and_another_seed_another() {
    let (a, hash_a, report_a) = run(42);
    let (b, hash_b, report_b) = run(42);
    assert!(a.len() > 50_000, "a busy trace: {} records", a.len());
    assert_eq!(a.len(), b.len());
    if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
        panic!("traces diverge at record {i}: {:?} vs {:?}", a[i], b[i]);
    }
    assert_eq!(hash_a, hash_b);
    assert_eq!(report_a, report_b);
    assert_eq!(
        serde_json::to_string(&report_a).unwrap(),
        serde_json::to_string(&report_b).unwrap()
    );
    // Every kind of record shows up, so the trace covers sends, losses, arrivals, deliveries,
    // packets reaching the failed node and the misbehaving node's drops.
    for kind in [
        "Sent",
        "LostOnLink",
        "Arrived",
        "Delivered",
        "NodeDown",
        "Dropped",
    ] {
        assert!(
            a.iter().any(|r| format!("{:?}", r.kind) == kind),
            "no {kind} record"
        );
    }

    let (c, hash_c, report_c) = run(43);
    assert_ne!(hash_a, hash_c, "another seed, another trace");
    assert_ne!(a, c);
    assert_ne!(report_a.trace_hash, report_c.trace_hash);
}
