//! Multicast and anycast in virtual time on the reference topology (`config/reference.toml`),
//! every node running the real group-membership protocol next to link state: a multicast flow
//! reaches each member node once with one copy per edge of the source's shortest-path tree; a
//! failed transit member is routed around within a bounded outage and receives again once it
//! returns and rejoins; a join starts and a leave stops deliveries (and copies) within a bound;
//! anycast goes to the nearest member only, and to the next nearest after it fails; loss never
//! duplicates a delivery; a cut tree link is repaired.
//!
//! The last two guard a fix the simulator led to: a node used to publish a FIB only when its
//! own unicast routes or the group members changed, so a graph change that moved another
//! source's tree through it left its multicast entries stale (a cut tree link was never
//! repaired; under loss, metric changes that flipped a tree delivered duplicates for tens of
//! milliseconds). Now any change of the graph makes a FIB due.
//!
//! The measured figures are printed (`--nocapture`). Every test is seeded with [`SEED`].

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::collections::BTreeSet;
use std::path::Path;

use weft_routing::spf::{Edge, Graph};
use weft_shared::config::Config;
use weft_shared::ids::NodeId;
use weft_shared::time::Instant;
use weft_tests::sim::{GroupFlowReport, Report, Scenario, Simulation};

const SEED: u64 = 7;
const GROUP: u32 = 7;
/// Every flow here: one message every 5 ms.
const RATE_PPS: f64 = 200.0;
const INTERVAL_MS: f64 = 1000.0 / RATE_PPS;

/// The reference nodes by name, as the tests use them.
const BOSTON: u16 = 1;
const WASHINGTON: u16 = 3;
const MIAMI: u16 = 5;
const CHICAGO: u16 = 6;
const DALLAS: u16 = 7;
const SEATTLE: u16 = 9;
const LOSANGELES: u16 = 11;

fn n(i: u16) -> NodeId {
    NodeId::new(i).unwrap()
}

fn sim(text: &str) -> (Scenario, Config, Simulation) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let scenario = Scenario::from_toml_str(text, "test.toml", &base).unwrap();
    let config = scenario.load_config().unwrap();
    let sim = Simulation::new(&config, &scenario, SEED).unwrap();
    (scenario, config, sim)
}

/// A scenario of `duration_ms` with one flow from Boston to `to` (`to_group = 7` or
/// `to_anycast = 7`) between `start_ms` and `stop_ms`, then `events`.
fn scenario(duration_ms: u64, to: &str, (start_ms, stop_ms): (u64, u64), extra: &str) -> String {
    format!(
        "config = \"config/reference.toml\"\nduration_ms = {duration_ms}\n{extra}\n\
         [[flow]]\nname = \"to-group\"\nfrom = \"boston\"\n{to} = {GROUP}\nrate_pps = {RATE_PPS}\n\
         size = 100\nstart_ms = {start_ms}\nstop_ms = {stop_ms}\n"
    )
}

fn join(at_ms: u64, node: u16) -> String {
    format!("[[event]]\nat_ms = {at_ms}\njoin = {{ node = {node}, group = {GROUP} }}\n")
}

fn leave(at_ms: u64, node: u16) -> String {
    format!("[[event]]\nat_ms = {at_ms}\nleave = {{ node = {node}, group = {GROUP} }}\n")
}

fn event(at_ms: u64, action: &str, node: u16) -> String {
    format!("[[event]]\nat_ms = {at_ms}\n{action} = {node}\n")
}

fn joins(at_ms: u64, nodes: &[u16]) -> String {
    nodes.iter().map(|m| join(at_ms, *m)).collect()
}

/// The edges (parent, child) of `source`'s shortest-path tree by the config's link costs, to
/// every node of `members`, computed here on their own: the union of the shortest paths.
fn tree_edges(config: &Config, source: u16, members: &[u16]) -> BTreeSet<(u16, u16)> {
    let routes = Graph::from_config(config).shortest_paths(n(source));
    let mut edges = BTreeSet::new();
    for m in members {
        for w in routes.path_to(n(*m)).windows(2) {
            edges.insert((w[0].get(), w[1].get()));
        }
    }
    edges
}

/// The member nearest to `source` by path cost over the config's links, leaving out the
/// links of the nodes in `failed` (ties: the lower id, as the FIB's anycast choice).
fn nearest(config: &Config, source: u16, members: &[u16], failed: &[u16]) -> (u16, u64) {
    let edges = config.links().iter().filter_map(|l| {
        let [a, b] = l.nodes();
        let down = failed.iter().any(|f| n(*f) == a || n(*f) == b);
        (!down).then(|| Edge {
            link: l.id(),
            a,
            b,
            cost: u64::from(l.cost_us()),
        })
    });
    let routes = Graph::new(edges).shortest_paths(n(source));
    members
        .iter()
        .filter(|m| !failed.contains(m))
        .filter_map(|m| Some((routes.to(n(*m))?.cost, *m)))
        .min()
        .map(|(cost, m)| (m, cost))
        .unwrap()
}

fn flow(report: &Report) -> &GroupFlowReport {
    &report.group_flows[0]
}

/// Messages sent from `from_ms` (inclusive) to `to_ms` (exclusive) by a flow that starts at
/// `start_ms`.
fn sent_between(start_ms: u64, from_ms: f64, to_ms: f64) -> u64 {
    let first = ((from_ms - start_ms as f64) / INTERVAL_MS).ceil().max(0.0);
    let end = ((to_ms - start_ms as f64) / INTERVAL_MS).ceil().max(0.0);
    (end - first) as u64
}

#[test]
fn multicast_reaches_every_member_once_with_one_copy_per_tree_edge() {
    let members = [MIAMI, CHICAGO, DALLAS, SEATTLE, LOSANGELES];
    let text = scenario(3_000, "to_group", (1_500, 3_000), &joins(500, &members));
    let (scenario, config, mut sim) = sim(&text);
    let report = sim.run(scenario.drain);
    let f = flow(&report);
    assert_eq!(f.sent, 300);
    for m in members {
        let r = f.receiver(m).unwrap();
        eprintln!(
            "node {m}: delivered {} of {}, p50 {:?} ms",
            r.delivered, f.sent, r.latency_ms[0].ms
        );
        assert_eq!((r.delivered, r.duplicates), (f.sent, 0), "node {m}");
    }
    assert_eq!(f.receivers.len(), members.len(), "nobody else got any");
    assert_eq!(f.receiver(BOSTON), None, "the source is no member");
    let edges = tree_edges(&config, BOSTON, &members);
    eprintln!("tree edges {edges:?}");
    // Every message, in steady state from the first: one copy per tree edge, no other link.
    assert!(
        f.copies_per_message
            .iter()
            .all(|c| *c as usize == edges.len()),
        "copies per message {:?} vs {} edges",
        f.copies,
        edges.len()
    );
    let used: BTreeSet<(u16, u16)> = f.links.iter().map(|l| (l.from, l.to)).collect();
    assert_eq!(used, edges);
    assert!(f.links.iter().all(|l| l.packets == f.sent));
}

#[test]
fn a_failed_transit_member_is_routed_around_and_receives_again_after_it_rejoins() {
    let members = [MIAMI, CHICAGO, DALLAS, SEATTLE, LOSANGELES];
    let others = [MIAMI, DALLAS, SEATTLE, LOSANGELES];
    let text = scenario(
        5_000,
        "to_group",
        (1_500, 5_000),
        &format!(
            "{}{}{}{}",
            joins(500, &members),
            event(2_000, "fail_node", CHICAGO),
            event(3_000, "restart_node", CHICAGO),
            join(3_000, CHICAGO)
        ),
    );
    let (fail, restart, rejoin) = (5, 6, 7);
    let (scenario, config, mut sim) = sim(&text);
    // Chicago carries the tree to Dallas, Seattle and (through Denver) Los Angeles.
    let edges = tree_edges(&config, BOSTON, &members);
    for m in [DALLAS, SEATTLE] {
        assert!(edges.contains(&(CHICAGO, m)), "{edges:?}");
    }
    sim.run_until(Instant::from_millis(3_000));
    let before = flow(&sim.report()).receiver(CHICAGO).unwrap().delivered;
    // Chicago's first delivery after it rejoined.
    let mut back_at = None;
    for ms in (3_000..4_000).step_by(5) {
        sim.run_until(Instant::from_millis(ms));
        if flow(&sim.report()).receiver(CHICAGO).unwrap().delivered > before {
            back_at = Some(ms);
            break;
        }
    }
    let back_at = back_at.expect("chicago receives again within 1 s of its rejoin");
    eprintln!("chicago: first delivery after restart and rejoin at 3000 ms: {back_at} ms");
    let report = sim.run(scenario.drain);
    let f = flow(&report);
    for m in others {
        let r = f.receiver(m).unwrap();
        let outage = r.outage_after(fail).unwrap();
        let on_return = r
            .outage_after(restart)
            .unwrap()
            .max(r.outage_after(rejoin).unwrap());
        eprintln!(
            "node {m}: outage after chicago failed {outage:.1} ms, longest gap after it \
             returned {on_return:.1} ms, lost {} of {}",
            f.sent - r.delivered,
            f.sent
        );
        assert!(outage < 1_000.0, "node {m}: outage {outage} ms");
        // Only the outage's messages are lost.
        let lost = f.sent - r.delivered;
        assert!(
            lost as f64 <= (outage + on_return) / INTERVAL_MS + 2.0,
            "node {m}: lost {lost}"
        );
        // While a tree changes, nodes switch FIBs at different times: a message can take the
        // old and the new tree (best effort has no duplicate suppression). Measured: 1, at Los
        // Angeles when Chicago returned.
        eprintln!("node {m}: {} duplicates", r.duplicates);
        assert!(r.duplicates <= 2, "node {m}: {} duplicates", r.duplicates);
        assert_eq!(
            r.last_seq,
            Some(f.sent - 1),
            "node {m}: the tree was repaired"
        );
    }
    let chicago = f.receiver(CHICAGO).unwrap();
    assert_eq!(chicago.duplicates, 0);
    assert_eq!(
        chicago.last_seq,
        Some(f.sent - 1),
        "chicago receives to the end"
    );
    // From its first delivery after the rejoin on, it got every message.
    let after = chicago.delivered - before;
    let expected = sent_between(1_500, back_at as f64, 5_000.0);
    assert!(after + 2 >= expected, "{after} of about {expected}");
}

#[test]
fn a_join_starts_and_a_leave_stops_deliveries_and_copies_within_a_bound() {
    let text = scenario(
        5_000,
        "to_group",
        (1_500, 5_000),
        &format!(
            "{}{}{}",
            joins(500, &[MIAMI, SEATTLE, LOSANGELES]),
            join(2_000, DALLAS),
            leave(3_000, LOSANGELES)
        ),
    );
    let (scenario, _, mut sim) = sim(&text);
    sim.run_until(Instant::from_millis(3_000));
    let copies_at_leave = flow(&sim.report()).packets_to(LOSANGELES);
    sim.run_until(Instant::from_millis(4_000));
    let copies_at_4s = flow(&sim.report()).packets_to(LOSANGELES);
    let report = sim.run(scenario.drain);
    let f = flow(&report);

    let dallas = f.receiver(DALLAS).unwrap();
    let first = dallas.first_ms.unwrap();
    let join_latency = first - 2_000.0;
    eprintln!(
        "join latency (dallas joins at 2000 ms, first delivery at {first:.1} ms): \
         {join_latency:.1} ms"
    );
    assert!((0.0..1_000.0).contains(&join_latency), "{join_latency} ms");
    // From its first message on, it gets every one, once.
    let (from, to) = (dallas.first_seq.unwrap(), dallas.last_seq.unwrap());
    assert_eq!(to, f.sent - 1);
    assert_eq!((dallas.delivered, dallas.duplicates), (to - from + 1, 0));

    let la = f.receiver(LOSANGELES).unwrap();
    let last_delivery = la.last_ms.unwrap() - 3_000.0;
    let last_copy = f.last_packet_to(LOSANGELES).unwrap() - 3_000.0;
    eprintln!(
        "leave (los angeles at 3000 ms): last delivery {last_delivery:.1} ms after, {} more \
         copies towards it, the last {last_copy:.1} ms after",
        copies_at_4s - copies_at_leave
    );
    assert!(last_delivery < 1_000.0 && last_copy < 1_000.0);
    assert_eq!(
        f.packets_to(LOSANGELES),
        copies_at_4s,
        "no copy goes to los angeles once its leave is known"
    );
    for m in [MIAMI, SEATTLE] {
        let r = f.receiver(m).unwrap();
        assert_eq!((r.delivered, r.duplicates), (f.sent, 0), "node {m}");
    }
}

#[test]
fn anycast_goes_to_the_nearest_member_once_and_to_the_next_after_it_fails() {
    let members = [WASHINGTON, CHICAGO, DALLAS];
    let text = scenario(
        5_000,
        "to_anycast",
        (1_500, 5_000),
        &format!(
            "{}{}",
            joins(500, &members),
            event(3_000, "fail_node", WASHINGTON)
        ),
    );
    let fail = 3;
    let (scenario, config, mut sim) = sim(&text);
    let (first, cost) = nearest(&config, BOSTON, &members, &[]);
    let (second, cost2) = nearest(&config, BOSTON, &members, &[first]);
    eprintln!("nearest member {first} ({cost} us), then {second} ({cost2} us)");
    assert_eq!((first, second), (WASHINGTON, CHICAGO));
    sim.run_until(Instant::from_millis(2_999));
    let before = sim.report();
    let b = flow(&before);
    let at_nearest = b.receiver(first).unwrap();
    // All to the nearest (the last two are still on their way: 10 ms from Boston).
    assert_eq!(
        at_nearest.delivered, b.deliveries,
        "only the nearest got any"
    );
    assert_eq!(at_nearest.last_seq, Some(at_nearest.delivered - 1));
    assert!(at_nearest.delivered + 2 >= b.sent, "{b:?}");
    assert!(b.receivers.iter().all(|r| r.duplicates == 0));
    let report = sim.run(scenario.drain);
    let f = flow(&report);
    let outage = f.outage_after(fail).unwrap();
    eprintln!(
        "anycast failover outage after node {first} failed: {outage:.1} ms; delivered per \
         node: {:?}",
        f.receivers
            .iter()
            .map(|r| (r.node, r.delivered))
            .collect::<Vec<_>>()
    );
    assert!(outage < 1_000.0, "outage {outage} ms");
    // Every message delivered at most once anywhere, and all but the outage's.
    assert_eq!(f.deliveries, f.delivered_anywhere, "no message twice");
    assert!(f.receivers.iter().all(|r| r.duplicates == 0));
    let lost = f.sent - f.delivered_anywhere;
    assert!(lost as f64 <= outage / INTERVAL_MS + 1.0, "lost {lost}");
    let next = f.receiver(second).unwrap();
    let at_first = f.receiver(first).unwrap().delivered;
    assert_eq!(
        next.delivered,
        f.delivered_anywhere - at_first,
        "the rest to the next"
    );
    assert_eq!(next.last_seq, Some(f.sent - 1));
    assert_eq!(f.receiver(DALLAS).unwrap().delivered, 0);
}

#[test]
fn loss_alone_never_duplicates_a_multicast_delivery() {
    // A line of four nodes: every tree is the only one, whatever the loss does to the metric.
    let text = "config = \"line4.toml\"\nduration_ms = 6000\n\
         [link_model]\nloss = { model = \"bernoulli\", p = 0.02 }\n\
         [[flow]]\nfrom = \"two\"\nto_group = 7\nrate_pps = 200\nsize = 100\nstart_ms = 1500\n"
        .to_owned()
        + &joins(500, &[1, 3, 4]);
    let (scenario, _, mut sim) = sim(&text);
    let report = sim.run(scenario.drain);
    let f = flow(&report);
    for (m, hops) in [(1, 1), (3, 1), (4, 2)] {
        let r = f.receiver(m).unwrap();
        let ratio = r.delivered as f64 / f.sent as f64;
        eprintln!(
            "node {m} ({hops} hops): delivered {} of {} ({ratio:.3})",
            r.delivered, f.sent
        );
        assert_eq!(r.duplicates, 0, "node {m}");
        // 2 % per hop: 0.98 or 0.96 expected; 5σ below over 900 messages.
        let expected = 0.98f64.powi(hops);
        let sigma = (expected * (1.0 - expected) / f.sent as f64).sqrt();
        assert!(ratio > expected - 5.0 * sigma, "node {m}: {ratio}");
    }
}

/// On the reference topology, measured loss moves link metrics and so trees: when Boston's
/// tree to Chicago moved to New York, New York (whose own routes did not change) used to keep
/// its old (group, Boston) entry, and Chicago, Miami, Dallas, Seattle and Los Angeles got
/// duplicates for about 100 ms (12 at Chicago, seed 7).
#[test]
fn loss_never_duplicates_a_multicast_delivery() {
    let members = [MIAMI, CHICAGO, DALLAS, SEATTLE, LOSANGELES];
    let text = scenario(
        6_000,
        "to_group",
        (1_500, 6_000),
        &format!(
            "[link_model]\nloss = {{ model = \"bernoulli\", p = 0.02 }}\n{}",
            joins(500, &members)
        ),
    );
    let (scenario, _, mut sim) = sim(&text);
    let report = sim.run(scenario.drain);
    let f = flow(&report);
    for m in members {
        let r = f.receiver(m).unwrap();
        let ratio = r.delivered as f64 / f.sent as f64;
        eprintln!(
            "node {m}: delivered {} of {} ({ratio:.3}), dup {}",
            r.delivered, f.sent, r.duplicates
        );
        assert_eq!(r.duplicates, 0, "node {m}");
        assert!(ratio > 0.85, "node {m}: {ratio}");
    }
}

/// Cutting link 19 (Boston–Chicago) moves Boston's tree to Boston–New York–Chicago though New
/// York's own routes stay: its (group, Boston) entry must change anyway (it used not to:
/// Chicago, Dallas, Seattle and Los Angeles got nothing from 2 s to the end). Measured now:
/// 131–132 ms of outage behind the cut, 5 ms (one interval) at Miami.
#[test]
fn a_cut_tree_link_is_repaired() {
    let members = [MIAMI, CHICAGO, DALLAS, SEATTLE, LOSANGELES];
    let text = scenario(
        5_000,
        "to_group",
        (1_500, 5_000),
        &format!(
            "{}[[event]]\nat_ms = 2000\ncut_link = 19\n",
            joins(500, &members)
        ),
    );
    let cut = 5;
    let (scenario, _, mut sim) = sim(&text);
    let report = sim.run(scenario.drain);
    let f = flow(&report);
    for m in members {
        let r = f.receiver(m).unwrap();
        let outage = r.outage_after(cut).unwrap();
        eprintln!("node {m}: outage after the cut {outage:.1} ms");
        assert!(outage < 1_000.0, "node {m}: {outage} ms");
        assert_eq!(r.last_seq, Some(f.sent - 1), "node {m}");
    }
}

#[test]
fn group_events_and_flows_are_checked() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let bad = |body: &str| {
        let text = format!("config = \"config/reference.toml\"\nduration_ms = 1000\n{body}");
        Scenario::from_toml_str(&text, "bad.toml", &base)
            .and_then(|s| {
                let config = s.load_config()?;
                Simulation::new(&config, &s, 1).map_err(|e| match e {
                    weft_tests::sim::SimError::Scenario(e) => e,
                    other => panic!("{other}"),
                })?;
                Ok(())
            })
            .unwrap_err()
            .to_string()
    };
    let flow = "[[flow]]\nfrom = 1\nrate_pps = 10\nsize = 100\n";
    let e = bad(&format!("{flow}to = 2\nto_group = 3\n"));
    assert!(
        e.contains("flow[0]: needs exactly one of to, to_group, to_anycast (2 given)"),
        "{e}"
    );
    let e = bad(&format!("{flow}to_anycast = 0\n"));
    assert!(
        e.contains("flow[0].to_anycast: group 0 is not a group"),
        "{e}"
    );
    let e = bad("[[event]]\nat_ms = 5\njoin = { node = \"nowhere\", group = 1 }\n");
    assert!(e.contains("event[0].join.node: no node \"nowhere\""), "{e}");
    let e = bad("[[event]]\nat_ms = 5\nleave = { node = 1, group = 0 }\n");
    assert!(
        e.contains("event[0].leave.group: group 0 is not a group"),
        "{e}"
    );
}

#[test]
fn the_shipped_groups_scenario_gives_what_its_comment_says() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/reference-groups.toml");
    let (sim, report) = weft_tests::sim::run_file(path, None).unwrap();
    let (fail, restart) = (8, 9);
    let m = &report.group_flows[0];
    for r in &m.receivers {
        let outage = r.outage_after(fail).unwrap_or(0.0);
        eprintln!(
            "multicast node {}: delivered {} of {}, dup {}, outage after the failure {outage:.1} ms",
            r.node, r.delivered, m.sent, r.duplicates
        );
        if r.node == MIAMI {
            assert!(outage < 10.0, "{outage}");
        } else if r.node != CHICAGO {
            assert!(
                (100.0..250.0).contains(&outage),
                "node {}: {outage}",
                r.node
            );
        }
        assert_eq!(r.last_seq, Some(m.sent - 1), "node {}", r.node);
    }
    let a = &report.group_flows[1];
    let outage = a.outage_after(fail).unwrap();
    let per_node: Vec<(u16, u64)> = a.receivers.iter().map(|r| (r.node, r.delivered)).collect();
    eprintln!("anycast: outage {outage:.1} ms, delivered per node {per_node:?}");
    assert!((100.0..250.0).contains(&outage), "{outage}");
    assert_eq!(a.deliveries, a.delivered_anywhere);
    // Atlanta (4) takes over; Chicago gets the messages again once it is back.
    let atlanta = a.receiver(4).unwrap();
    assert!(atlanta.delivered > 0 && a.receiver(DALLAS).unwrap().delivered == 0);
    assert_eq!(a.receiver(CHICAGO).unwrap().last_seq, Some(a.sent - 1));
    assert!(a.outage_after(restart).unwrap() < 250.0);
    assert!(sim.is_member(n(CHICAGO), weft_shared::ids::GroupId(9)));
}
