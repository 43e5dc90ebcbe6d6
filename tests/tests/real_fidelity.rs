//! Fidelity: one scenario, the simulator and real processes through `weft-linkem`, compared.
//!
//! `tests/scenarios/three-hop-loss.toml`: a 4-node line (3 hops, 10 ms per link), 2 %
//! Bernoulli loss on every path in both directions, one flow of 1,000 msgs/s from node 1 to
//! node 4 for 9 s, the middle link cut 4 s after the flow starts and restored 2 s later. The
//! simulator runs it in virtual time; `weft_tests::scenario_real` plays the same file on four
//! `weft-dataplane` + `weft-controld` pairs with every path through `weft-linkem` set to the
//! scenario's latency and loss, and cuts both paths of the middle link at the same moment. The delivery ratios must agree
//! within 2 percentage points and the outages within 30 % (or 100 ms).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use weft_tests::overlay::workspace_root;
use weft_tests::scenario_real;
use weft_tests::sim::run_file;
use weft_tests::sim::scenario::Scenario;

#[test]
fn simulator_and_real_processes_agree_on_loss_and_outage() {
    // --- the simulator ---
    let scenario = workspace_root().join("tests/scenarios/three-hop-loss.toml");
    let (_, report) = run_file(&scenario, Some(1)).unwrap();
    let flow = &report.flows[0];
    let sim_ratio = flow.delivered as f64 / flow.sent as f64;
    let sim_outage = flow.outage_after(0).unwrap();
    eprintln!(
        "simulator: sent {}, delivered {} ({:.2} %), outage after the cut {sim_outage:.1} ms",
        flow.sent,
        flow.delivered,
        100.0 * sim_ratio
    );

    // --- the same file on real processes through weft-linkem ---
    let scenario = Scenario::load(&scenario).unwrap();
    let run = scenario_real::run(&scenario, "fidelity").unwrap();
    let result = &run.flows[0].1;
    let real_ratio = result.recv.received as f64 / result.sent as f64;
    let real_outage = result.recv.max_gap_ms;
    eprintln!(
        "real: sent {}, received {} ({:.2} %), longest gap {real_outage:.1} ms",
        result.sent,
        result.recv.received,
        100.0 * real_ratio
    );

    assert!(
        (sim_ratio - real_ratio).abs() <= 0.02,
        "delivery ratio: simulator {:.2} %, real {:.2} %",
        100.0 * sim_ratio,
        100.0 * real_ratio
    );
    let tolerance = (0.3 * sim_outage).max(100.0);
    assert!(
        (sim_outage - real_outage).abs() <= tolerance,
        "outage: simulator {sim_outage:.1} ms, real {real_outage:.1} ms"
    );
}
