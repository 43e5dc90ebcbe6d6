//! The simulator runs the real protocol code, not a model of it: change a protocol setting in
//! the config (`[timers] path_dead_after_ms`, read by `LinkMonitorConfig::from_timers`) and the
//! simulated failure detection follows. If the link monitor's detection changed in the crate,
//! these figures would change with it.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::path::Path;

use weft_tests::sim::{Scenario, Simulation};

/// The outage after `event` at 2 s for a flow from Boston to Miami (through Washington), with
/// `dead_ms` as the config's `path_dead_after_ms`.
fn outage(dead_ms: u64, event: &str, seed: u64) -> f64 {
    let text = format!(
        r#"
config = "config/reference.toml"
duration_ms = 3500

[timers]
path_dead_after_ms = {dead_ms}

[[flow]]
from = "boston"
to = "miami"
rate_pps = 1000
size = 100
start_ms = 1000

[[event]]
at_ms = 2000
{event}
"#
    );
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let scenario = Scenario::from_toml_str(&text, "dead-after.toml", &base).unwrap();
    let config = scenario.load_config().unwrap();
    assert_eq!(
        config.timers().path_dead_after().as_millis(),
        u128::from(dead_ms),
        "the scenario's timers reach the config"
    );
    let mut sim = Simulation::new(&config, &scenario, seed).unwrap();
    sim.run(scenario.drain).flows[0].outage_after(0).unwrap()
}

#[test]
fn path_failover_tracks_the_configured_dead_time() {
    // Failover between a link's two paths involves the link monitor only: the path is declared
    // dead hello_interval + dead_after after the last hello arrived, which was up to one hello
    // interval before the cut or one link latency (5 ms) after it; plus a packet interval.
    let cut = "cut_path = { link = 1, path = 0 }";
    for seed in [1, 2, 3] {
        let fast = outage(100, cut, seed);
        let slow = outage(300, cut, seed);
        assert!(
            (100.0..=118.0).contains(&fast),
            "seed {seed}: 100 ms -> {fast}"
        );
        assert!(
            (300.0..=318.0).contains(&slow),
            "seed {seed}: 300 ms -> {slow}"
        );
    }
}

#[test]
fn rerouting_around_a_failed_node_tracks_the_configured_dead_time() {
    let fail = "fail_node = \"washington\"";
    let fast = outage(100, fail, 5);
    let slow = outage(300, fail, 5);
    // Detection, then the control plane (5 ms statistics reads, flooding, FIB throttle).
    assert!((100.0..160.0).contains(&fast), "100 ms -> {fast}");
    assert!((300.0..360.0).contains(&slow), "300 ms -> {slow}");
    assert!((180.0..220.0).contains(&(slow - fast)), "{fast} vs {slow}");
}
