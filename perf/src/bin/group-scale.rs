//! group-scale: how the group-membership protocol and the group FIB cope with many groups, in
//! the simulator on the reference topology (`config/reference.toml`: 12 nodes, 22 links).
//!
//! At `--join-at-ms`, `--groups` groups are joined at once, each on 3 to 5 nodes chosen from the
//! seed (every node a member of about a third of them). The run is stepped every `--step-ms` of
//! virtual time until every node's group database holds every group with exactly its member
//! nodes (group-state convergence) and every node has published a FIB with every group entry
//! its group and link state call for, or until `--seconds`. Prints both times, the multicast
//! and anycast entries per node (min/max, with the distinct out-link masks), the FIB's
//! capacities, any node whose group routes did not fit (the control plane logs it and keeps the
//! unicast routes), and the wall time. One thread; use a release build:
//! `cargo build --release -p weft-perf && target/release/group-scale`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant as StdInstant;

use anyhow::{Context, bail};
use clap::Parser;
use weft_routing::groups::GroupFibCounts;
use weft_shared::ids::NodeId;
use weft_shared::shm::fib::{ANYCAST_CAPACITY, MULTICAST_CAPACITY, MULTICAST_MASKS};
use weft_shared::time::Instant;
use weft_tests::linkmodel::Rng;
use weft_tests::sim::{LogEvent, Scenario, Simulation};

/// Group-state convergence and group FIBs with many groups on the reference topology.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Groups joined.
    #[arg(long, default_value_t = 10_000)]
    groups: u32,
    /// Fewest member nodes per group.
    #[arg(long, default_value_t = 3)]
    min_members: u64,
    /// Most member nodes per group.
    #[arg(long, default_value_t = 5)]
    max_members: u64,
    /// When the groups are joined (the overlay has converged by 1 s).
    #[arg(long, default_value_t = 1_000)]
    join_at_ms: u64,
    /// Give up after this much virtual time.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Virtual time between checks.
    #[arg(long, default_value_t = 1)]
    step_ms: u64,
    /// The seed (memberships and the simulation).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The repository root (where `config/reference.toml` is).
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

/// Every group's member nodes (increasing), group 1 first.
fn memberships(args: &Args, nodes: &[NodeId]) -> Vec<Vec<NodeId>> {
    let mut rng = Rng::new(args.seed);
    let span = args.max_members - args.min_members + 1;
    (0..args.groups)
        .map(|_| {
            let k = (args.min_members + rng.below(span)) as usize;
            // A partial Fisher–Yates shuffle picks k distinct nodes.
            let mut pool = nodes.to_vec();
            for i in 0..k.min(pool.len()) {
                let j = i + rng.below((pool.len() - i) as u64) as usize;
                pool.swap(i, j);
            }
            let mut members: Vec<NodeId> = pool[..k.min(pool.len())].to_vec();
            members.sort();
            members
        })
        .collect()
}

/// Whether `sim`'s node `node` knows exactly `expected` (group `i + 1` has `expected[i]`).
fn converged(sim: &Simulation, node: NodeId, expected: &[Vec<NodeId>]) -> bool {
    let Some(state) = sim.group_state(node) else {
        return false;
    };
    if state.group_count() != expected.len() {
        return false;
    }
    state
        .groups()
        .zip(expected)
        .enumerate()
        .all(|(i, ((g, members), want))| g.0 as usize == i + 1 && members == want.as_slice())
}

fn ms(at: Option<Instant>, join: Instant) -> String {
    at.map_or("never".into(), |t| {
        format!("{:.1} ms", (t.as_nanos() - join.as_nanos()) as f64 / 1e6)
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.min_members == 0 || args.min_members > args.max_members || args.max_members > 12 {
        bail!("members per group: need 1 <= --min-members <= --max-members <= 12");
    }
    let wall = StdInstant::now();
    let mut text = format!(
        "name = \"group-scale\"\nconfig = \"config/reference.toml\"\nduration_ms = {}\n\
         drain_ms = 0\n[report]\ntrace = \"off\"\n",
        args.seconds * 1000
    );
    let base = Scenario::from_toml_str(&text, "group-scale", &args.root)?;
    let config = base
        .load_config()
        .context("run from the repository root, or pass --root")?;
    let nodes: Vec<NodeId> = config.nodes().iter().map(|n| n.id()).collect();
    let expected = memberships(&args, &nodes);
    for (i, members) in expected.iter().enumerate() {
        for m in members {
            text += &format!(
                "[[event]]\nat_ms = {}\njoin = {{ node = {m}, group = {} }}\n",
                args.join_at_ms,
                i + 1
            );
        }
    }
    let scenario = Scenario::from_toml_str(&text, "group-scale", &args.root)?;
    let mut sim = Simulation::new(&config, &scenario, args.seed)?;
    let built = wall.elapsed().as_secs_f64();
    let per_node: Vec<usize> = nodes
        .iter()
        .map(|n| expected.iter().filter(|m| m.contains(n)).count())
        .collect();
    println!(
        "reference topology: {} groups with {}-{} member nodes each ({} joins) at {} ms; seed {}",
        args.groups,
        args.min_members,
        args.max_members,
        expected.iter().map(Vec::len).sum::<usize>(),
        args.join_at_ms,
        args.seed
    );
    println!(
        "local groups per node: min {} max {}; FIB capacity: {MULTICAST_CAPACITY} multicast \
         entries ({MULTICAST_MASKS} distinct out-link masks), {ANYCAST_CAPACITY} anycast groups",
        per_node.iter().min().unwrap_or(&0),
        per_node.iter().max().unwrap_or(&0)
    );

    let join = Instant::from_millis(args.join_at_ms);
    sim.run_until(join);
    let mut db_at: Vec<Option<Instant>> = vec![None; nodes.len()];
    let mut needed: Vec<Option<GroupFibCounts>> = vec![None; nodes.len()];
    let mut fib_at: Vec<Option<Instant>> = vec![None; nodes.len()];
    let end = Instant::from_millis(args.seconds * 1000);
    let mut now = join;
    while now < end && fib_at.iter().any(Option::is_none) {
        now = (now + std::time::Duration::from_millis(args.step_ms)).min(end);
        sim.run_until(now);
        for (i, &node) in nodes.iter().enumerate() {
            if db_at[i].is_none() && converged(&sim, node, &expected) {
                db_at[i] = Some(now);
                // The group and link state are final: what the FIB needs from now on.
                needed[i] = sim.group_routes_needed(node);
            }
            if let (None, Some(need), Some(have)) = (fib_at[i], needed[i], sim.fib_counts(node))
                && have.multicast == need.multicast
                && have.anycast == need.anycast
            {
                fib_at[i] = Some(now);
            }
        }
        // Nothing more can happen once every database converged and every FIB that could
        // hold its entries did; a node whose routes overflow never gets there.
        let overflowing = (0..nodes.len()).all(|i| {
            fib_at[i].is_some()
                || needed[i].is_some_and(|n| {
                    n.multicast > MULTICAST_CAPACITY || n.anycast > ANYCAST_CAPACITY
                })
        });
        if db_at.iter().all(Option::is_some) && overflowing {
            break;
        }
    }
    let wall_s = wall.elapsed().as_secs_f64();

    println!("\nper node (times after the joins):");
    for (i, &node) in nodes.iter().enumerate() {
        let have = sim.fib_counts(node).unwrap_or_default();
        let need = needed[i].unwrap_or_default();
        let known = sim.group_state(node).map_or(0, |s| s.group_count());
        println!(
            "  node {node:>2}: local {:>5}  database {:>5} groups, complete {:>10}  FIB multicast \
             {:>6}/{:<6} anycast {:>5}/{:<5} masks {:>4}  complete {:>10}",
            per_node[i],
            known,
            ms(db_at[i], join),
            have.multicast,
            need.multicast,
            have.anycast,
            need.anycast,
            have.multicast_masks,
            ms(fib_at[i], join)
        );
    }
    let last = |v: &[Option<Instant>]| {
        v.iter()
            .copied()
            .try_fold(Instant::ZERO, |m, t| t.map(|t| m.max(t)))
    };
    let fibs: Vec<_> = nodes.iter().filter_map(|n| sim.fib_counts(*n)).collect();
    let span = |f: fn(&weft_shared::shm::fib::FibCounts) -> usize| {
        let v: Vec<usize> = fibs.iter().map(f).collect();
        (
            v.iter().min().copied().unwrap_or(0),
            v.iter().max().copied().unwrap_or(0),
        )
    };
    let (mc_min, mc_max) = span(|c| c.multicast);
    let (ac_min, ac_max) = span(|c| c.anycast);
    let (mk_min, mk_max) = span(|c| c.multicast_masks);
    println!(
        "\ngroup-state convergence (every node's database has every group and its members): {}",
        ms(last(&db_at), join)
    );
    println!(
        "every node has published a FIB with all its group entries: {}",
        ms(last(&fib_at), join)
    );
    println!(
        "FIB entries per node: multicast min {mc_min} max {mc_max} (masks {mk_min}-{mk_max}), \
         anycast min {ac_min} max {ac_max}"
    );
    for (i, &node) in nodes.iter().enumerate() {
        let need = needed[i].unwrap_or_default();
        if need.multicast > MULTICAST_CAPACITY || need.anycast > ANYCAST_CAPACITY {
            println!(
                "OVERFLOW node {node}: needs {} multicast (capacity {MULTICAST_CAPACITY}) and {} \
                 anycast (capacity {ANYCAST_CAPACITY}) entries",
                need.multicast, need.anycast
            );
        }
    }
    let report = sim.report();
    // The nodes' counters say which FIBs were incomplete (the log may be full of the joins).
    let incomplete: Vec<(u16, u64)> = report
        .nodes
        .iter()
        .filter(|n| n.groups.fib_errors > 0)
        .map(|n| (n.id, n.groups.fib_errors))
        .collect();
    if incomplete.is_empty() {
        println!("no FIB overflowed (no node published incomplete group routes)");
    } else {
        println!("FIBs published with incomplete group routes (node, how many): {incomplete:?}");
    }
    let errors: BTreeSet<String> = sim
        .log()
        .entries()
        .iter()
        .filter_map(|e| match &e.event {
            LogEvent::GroupRoutesIncomplete { error } => Some(error.clone()),
            _ => None,
        })
        .collect();
    for e in &errors {
        println!("  logged: {e}");
    }
    let c = report.counters;
    println!(
        "virtual {:.3} s, {} events, {} link packets; wall {wall_s:.2} s ({built:.2} s to build \
         the scenario)",
        sim.now().as_nanos() as f64 / 1e9,
        c.events,
        c.link_packets
    );
    Ok(())
}
