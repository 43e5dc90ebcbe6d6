//! Misbehaving nodes, each with a visible effect on a flow's figures: node 2 of the 4-node line
//! (`scenarios/line4.toml`) sits on the only route of a flow from node 1 to node 4 and starts
//! misbehaving at 2 s (the protocols do not detect misbehaviour: the effect stays).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::path::Path;

use weft_tests::sim::{FlowReport, Scenario, Simulation};

/// 4 s of 500 packets/s from one to four; node two misbehaves from 2 s on as `behaviour` says.
fn run(behaviour: Option<&str>, extra: &str) -> FlowReport {
    let mut text = format!(
        r#"
config = "line4.toml"
duration_ms = 4000
{extra}
[[flow]]
from = "one"
to = "four"
rate_pps = 500
size = 200
start_ms = 1000
"#
    );
    if let Some(b) = behaviour {
        text += &format!("[[event]]\nat_ms = 2000\nmisbehave = {{ node = \"two\", {b} }}\n");
    }
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let scenario = Scenario::from_toml_str(&text, "misbehave.toml", &base).unwrap();
    let config = scenario.load_config().unwrap();
    let mut sim = Simulation::new(&config, &scenario, 11).unwrap();
    sim.run(scenario.drain).flows.remove(0)
}

#[test]
fn an_honest_line_loses_nothing() {
    let f = run(None, "");
    assert_eq!(f.sent, 1500);
    assert_eq!(f.delivered, 1500);
    assert_eq!(f.duplicates, 0);
    assert!(
        (f.overhead.unwrap() - 3.0).abs() < 1e-9,
        "3 hops per packet"
    );
    assert!((f.latency_at(99.0).unwrap() - 30.0).abs() < 0.1);
}

#[test]
fn a_black_hole_drops_everything_after_it_starts() {
    let f = run(Some(r#"behaviour = "drop-all""#), "");
    // Packets sent before 2 s (500) arrive; after it none.
    assert!(
        (495..=510).contains(&f.delivered),
        "delivered {}",
        f.delivered
    );
    assert!(f.loss > 0.6, "loss {}", f.loss);
    assert!(f.outages[0].outage_ms.unwrap() > 1900.0);
}

#[test]
fn dropping_a_fraction_shows_as_that_fraction_of_loss() {
    let f = run(Some(r#"behaviour = "drop-fraction", fraction = 0.3"#), "");
    // 1,000 packets exposed to 30 % loss: 300 ± 5σ (σ ≈ 14.5).
    assert!((228..=372).contains(&f.lost), "lost {}", f.lost);
}

#[test]
fn delaying_shows_in_the_latency() {
    let percentiles = "[report]\npercentiles = [25.0, 50.0]\n";
    let f = run(Some(r#"behaviour = "delay", delay_ms = 50"#), percentiles);
    assert_eq!(f.lost, 0);
    // A third of the packets went before 2 s (30 ms), the rest after (80 ms).
    assert!((f.latency_at(25.0).unwrap() - 30.0).abs() < 0.1, "before");
    assert!((f.latency_at(50.0).unwrap() - 80.0).abs() < 0.1, "after");
}

#[test]
fn duplicating_shows_as_duplicates_and_overhead() {
    let f = run(Some(r#"behaviour = "duplicate", copies = 1"#), "");
    assert_eq!(f.lost, 0);
    // Every packet node two forwards from 2 s on (a few were on their way to it already).
    assert!(
        (1000..=1010).contains(&f.duplicates),
        "dup {}",
        f.duplicates
    );
    // 500 packets over 3 hops, then 1,000 sent once on 1-2 and twice on 2-3 and 3-4:
    // (500 · 3 + 1000 · 5) / 1500 distinct deliveries = 4.33.
    let o = f.overhead.unwrap();
    assert!((4.28..4.4).contains(&o), "overhead {o}");
}

#[test]
fn flooding_a_slow_link_starves_the_flow() {
    // 2 Mbit/s links with 20 kB queues: the flow needs 0.9 Mbit/s, the flood 16.
    let slow = "[link_model]\nrate_mbps = 2\nqueue_kb = 20\n";
    let honest = run(None, slow);
    assert_eq!(honest.lost, 0, "the flow alone fits");
    let f = run(
        Some(r#"behaviour = "flood", to = "four", rate_pps = 2000, size = 1000"#),
        slow,
    );
    assert!(f.loss > 0.3, "loss {}", f.loss);
    let p99 = f.latency_at(99.0).unwrap();
    assert!(p99 > 60.0, "queueing delay: p99 {p99} ms");
}
