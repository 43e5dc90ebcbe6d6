//! Failures in virtual time on the reference topology: a failed node is routed around within
//! a fraction of a second and its return costs nothing; a cut link is routed around; a cut path
//! (one ISP pair) fails over to the link's other path without any routing change.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::path::Path;

use weft_shared::ids::{LinkId, NodeId, PathId};
use weft_shared::time::Instant;
use weft_tests::sim::{LogEvent, Report, Scenario, Simulation};

fn n(i: u16) -> NodeId {
    NodeId::new(i).unwrap()
}

fn sim(text: &str) -> (Scenario, Simulation) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let scenario = Scenario::from_toml_str(text, "test.toml", &base).unwrap();
    let config = scenario.load_config().unwrap();
    let sim = Simulation::new(&config, &scenario, 7).unwrap();
    (scenario, sim)
}

/// Boston (1) to Miami (5) at 1,000 packets/s: 1-2-3-4-5 (26 ms) through Washington (3).
const FLOW: &str = r#"
config = "config/reference.toml"
duration_ms = 4000

[[flow]]
name = "boston-miami"
from = "boston"
to = "miami"
rate_pps = 1000
size = 200
start_ms = 1000
"#;

#[test]
fn a_failed_node_is_routed_around_in_about_a_hundred_ms_and_its_return_costs_nothing() {
    let text = format!(
        "{FLOW}\n[[event]]\nat_ms = 2000\nfail_node = \"washington\"\n\
         [[event]]\nat_ms = 3000\nrestart_node = \"washington\"\n"
    );
    let (scenario, mut sim) = sim(&text);
    sim.run_until(Instant::from_millis(1_900));
    let before = sim.route(n(1), n(5));
    assert_eq!(before, [n(1), n(2), n(3), n(4), n(5)]);
    sim.run_until(Instant::from_millis(2_900));
    let during = sim.route(n(1), n(5));
    assert!(
        !during.contains(&n(3)),
        "routed around washington: {during:?}"
    );
    assert_eq!(during.last(), Some(&n(5)));
    sim.run_until(Instant::from_millis(3_900));
    assert_eq!(sim.route(n(1), n(5)), before, "back on the shortest route");
    let report = sim.run(scenario.drain);
    let f = &report.flows[0];
    let outage = f.outage_after(0).unwrap();
    // 100 ms without hellos (plus up to one hello interval), then the control plane: the
    // real demo measures 104-111 ms.
    assert!((100.0..200.0).contains(&outage), "outage {outage} ms");
    let back = f.outage_after(1).unwrap();
    assert!(
        back < 10.0,
        "the restart disturbs nothing: longest gap {back} ms"
    );
    // Only the outage's packets are lost (1 per ms).
    assert!(
        f.lost as f64 <= outage + 5.0,
        "lost {} in {outage} ms",
        f.lost
    );
    assert_eq!(f.duplicates, 0);
}

#[test]
fn a_cut_link_is_routed_around() {
    let text = format!(
        "{FLOW}\n[[event]]\nat_ms = 2000\ncut_link = [\"newyork\", \"washington\"]\n\
         [[event]]\nat_ms = 3000\nrestore_link = 1\n"
    );
    let (scenario, mut sim) = sim(&text);
    sim.run_until(Instant::from_millis(2_900));
    let during = sim.route(n(1), n(5));
    assert!(
        !during.windows(2).any(|w| w == [n(2), n(3)]),
        "not over link 1: {during:?}"
    );
    let report = sim.run(scenario.drain);
    let outage = report.flows[0].outage_after(0).unwrap();
    assert!((100.0..200.0).contains(&outage), "outage {outage} ms");
    assert!(report.flows[0].outage_after(1).unwrap() < 10.0);
}

fn route_changes_after(report_sim: &Simulation, at: Instant) -> Vec<String> {
    report_sim
        .log()
        .entries()
        .iter()
        .filter(|e| e.at_ns > at.as_nanos())
        .filter(|e| matches!(e.event, LogEvent::RouteChanged { .. }))
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn a_cut_path_fails_over_to_the_other_isp_without_a_routing_change() {
    let text = format!("{FLOW}\n[[event]]\nat_ms = 2000\ncut_path = {{ link = 1, path = 0 }}\n");
    let (scenario, mut sim) = sim(&text);
    let link = LinkId::new(1).unwrap();
    sim.run_until(Instant::from_millis(1_900));
    let before = sim.route(n(1), n(5));
    assert_eq!(sim.active_path(n(2), link), PathId::new(0));
    let report: Report = sim.run(scenario.drain);
    assert_eq!(sim.active_path(n(2), link), PathId::new(1), "failed over");
    assert_eq!(sim.active_path(n(3), link), PathId::new(1));
    assert_eq!(sim.route(n(1), n(5)), before, "same route");
    let changes = route_changes_after(&sim, Instant::from_millis(2_000));
    assert!(changes.is_empty(), "no route changed: {changes:?}");
    let outage = report.flows[0].outage_after(0).unwrap();
    // The link monitor alone: silence for dead_after (100 ms) past the next due hello.
    assert!((100.0..125.0).contains(&outage), "outage {outage} ms");
}
