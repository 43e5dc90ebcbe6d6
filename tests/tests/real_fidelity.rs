//! Fidelity: one scenario, the simulator and real processes through `weft-linkem`, compared.
//!
//! `tests/scenarios/three-hop-loss.toml`: a 4-node line (3 hops, 10 ms per link), 2 %
//! Bernoulli loss on every path in both directions, one flow of 1,000 msgs/s from node 1 to
//! node 4 for 9 s, the middle link cut 4 s after the flow starts and restored 2 s later. The
//! simulator runs it in virtual time; the real run uses four `weft-dataplane` + `weft-controld`
//! pairs with every path through `weft-linkem` set to the same latency and loss, and cuts both
//! paths of the middle link at the same moment of the flow. The delivery ratios must agree
//! within 2 percentage points and the outages within 30 % (or 100 ms).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::time::{Duration, Instant};

use weft_tests::overlay::{EmulatedPath, LinkSpec, Overlay, workspace_root};
use weft_tests::sim::run_file;
use weft_tests::traffic::Traffic;

const PORT: u16 = 4100;

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

    // --- real processes through weft-linkem ---
    let links: Vec<LinkSpec> = (0..3)
        .map(|i| LinkSpec {
            id: i,
            a: i + 1,
            b: i + 2,
            cost_us: 10_000,
        })
        .collect();
    let paths: Vec<EmulatedPath> = (0..3)
        .flat_map(|l| (0..2).map(move |p| EmulatedPath::new(l, p, "latency_ms=10 loss=0.02")))
        .collect();
    let o = Overlay::start_emulated("fidelity", 4, &links, &paths);
    o.wait_converged(Duration::from_secs(15));
    let traffic = Traffic::start(
        o.session_socket(1),
        o.session_socket(4),
        4,
        PORT,
        1_000,
        200,
        Duration::from_secs(9),
    );
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    o.cut_path(1, 0);
    o.cut_path(1, 1);
    eprintln!("cut at {:?}", start.elapsed());
    std::thread::sleep(Duration::from_secs(2));
    o.restore_path(1, 0);
    o.restore_path(1, 1);
    eprintln!("restored at {:?}", start.elapsed());
    let left = Duration::from_secs(9).saturating_sub(start.elapsed());
    std::thread::sleep(left);
    let result = traffic.finish().unwrap();
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
