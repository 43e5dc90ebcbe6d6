//! Emulated loss shows up in the flows' figures: 2 % Bernoulli or Gilbert–Elliott loss on every
//! path of the 4-node line gives a 3-hop flow an end-to-end loss of 1 − 0.98³ ≈ 5.88 %, within
//! tolerances that hold for any seed. The seed comes from `WEFT_SIM_SEED` when it is set (CI
//! sets a random one and prints it).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::path::Path;

use weft_tests::sim::{Report, Scenario, Simulation, seed_from_env};

const EXPECTED: f64 = 1.0 - 0.98 * 0.98 * 0.98;

fn run(loss: &str, seed: u64) -> Report {
    let text = format!(
        r#"
config = "line4.toml"
duration_ms = 21000

[link_model]
loss = {loss}

[[flow]]
from = "one"
to = "four"
rate_pps = 1000
size = 100
start_ms = 1000

[report]
links = true
"#
    );
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let scenario = Scenario::from_toml_str(&text, "loss.toml", &base).unwrap();
    let config = scenario.load_config().unwrap();
    let mut sim = Simulation::new(&config, &scenario, seed).unwrap();
    sim.run(scenario.drain)
}

#[test]
fn bernoulli_loss_on_three_hops_is_the_flows_loss() {
    let seed = seed_from_env(2024);
    let report = run(r#"{ model = "bernoulli", p = 0.02 }"#, seed);
    let f = &report.flows[0];
    assert_eq!(f.sent, 20_000);
    // σ = sqrt(p(1 − p) / n) ≈ 0.0017 for 20,000 packets: 5σ ≈ 0.0085.
    assert!(
        (f.loss - EXPECTED).abs() < 0.0085,
        "seed {seed}: loss {} (expected {EXPECTED:.4})",
        f.loss
    );
    // Each link direction that carried the flow lost about 2 % of what it was offered.
    for l in report.links.as_ref().unwrap() {
        if l.offered > 10_000 {
            let rate = l.lost as f64 / l.offered as f64;
            assert!((rate - 0.02).abs() < 0.005, "seed {seed}: link {l:?}");
        }
    }
    assert!(
        f.max_gap_ms < 50.0,
        "seed {seed}: no outage: {} ms",
        f.max_gap_ms
    );
}

#[test]
fn burst_loss_averages_out_to_the_same_loss_with_longer_gaps() {
    let seed = seed_from_env(2025);
    let bursty = run(
        r#"{ model = "gilbert-elliott", average = 0.02, mean_burst = 8 }"#,
        seed,
    );
    let f = &bursty.flows[0];
    // Bursts of mean 8 make the count noisier: about 20,000 · 0.02 / 8 = 50 bursts per link,
    // σ of the loss ≈ 0.005 on three hops; the tolerance is about 5σ.
    assert!(
        (f.loss - EXPECTED).abs() < 0.025,
        "seed {seed}: loss {} (expected {EXPECTED:.4})",
        f.loss
    );
    let plain = run(r#"{ model = "bernoulli", p = 0.02 }"#, seed);
    // Bursts of 8 packets at 1,000/s (plus hellos) leave gaps several times longer than
    // independent losses do.
    assert!(
        f.max_gap_ms > plain.flows[0].max_gap_ms + 5.0,
        "seed {seed}: bursty gap {} ms, plain {} ms",
        f.max_gap_ms,
        plain.flows[0].max_gap_ms
    );
}
