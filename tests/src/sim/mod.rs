//! A deterministic network simulator that runs Weft's real protocol code.
//!
//! N simulated nodes each run, per incarnation, the same sans-IO state machines the daemons run
//! ([`node`] says how they are driven): a [`weft_proto::link_monitor::LinkMonitor`] per link,
//! the [`weft_proto::forward::Forwarder`] over a [`weft_shared::shm::fib::FibTable`], and a
//! [`weft_routing::link_state::Router`]. Nothing is re-implemented: the packets are the bytes
//! the real writers ([`weft_proto::forward::LinkSender`]) produce, parsed by the real
//! pipeline at the next node. Between nodes, every path of every link is two
//! [`LinkModel`](crate::linkmodel::LinkModel)s (one per direction) with latency, jitter,
//! Bernoulli or Gilbert–Elliott loss, a rate limit and a bounded queue.
//!
//! **Determinism.** Time is virtual ([`weft_shared::time::Instant`]); events come from one
//! binary heap ordered by (time, sequence number); every random draw comes from one seeded
//! [`Rng`](crate::linkmodel::Rng), forked in a fixed order (links in config order, then each
//! node); nothing iterates a hash map. The same scenario and seed give the same [`Trace`],
//! record for record.
//!
//! **What a run is.** A [`Scenario`] (a TOML file, `docs/simulator.md`) names a Weft config,
//! the link models, best-effort flows (to a node, a multicast group or an anycast group) and a
//! timeline of failures, recoveries, misbehaviour and group joins and leaves;
//! [`Simulation::new`] builds it, [`Simulation::run_until`] advances it, and
//! [`Simulation::report`] gives per-flow figures (sent, delivered, lost, latency percentiles,
//! overhead, the outage after each event; for a group flow, per receiving node, and its
//! packets per link and per message). Each node also runs the group-membership protocol
//! ([`weft_routing::groups::GroupState`], [`groups`]).
//!
//! ```no_run
//! use weft_tests::sim::{Scenario, Simulation};
//! use weft_shared::time::Instant;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let scenario = Scenario::load("tests/scenarios/reference-node-failure.toml")?;
//! let config = scenario.load_config()?;
//! let mut sim = Simulation::new(&config, &scenario, 7)?;
//! sim.run_until(Instant::from_millis(5_000));
//! let report = sim.run(scenario.drain);
//! for flow in &report.flows {
//!     println!("{}: lost {} of {}", flow.name, flow.lost, flow.sent);
//! }
//! println!("trace {}", report.trace_hash);
//! # Ok(())
//! # }
//! ```

pub mod flow;
pub mod group_flow;
pub mod groups;
pub mod log;
pub mod node;
mod pipeline;
mod queue;
pub mod report;
mod resolve;
pub mod scenario;
mod simulation;
pub mod trace;

pub use flow::{FlowReport, Outage, Percentile};
pub use group_flow::{CopyCount, GroupFlowReport, LinkCount, ReceiverReport};
pub use log::{Log, LogEntry, LogEvent};
pub use report::{Counters, GroupSummary, LinkDirReport, NodeSummary, Report};
pub use scenario::{Scenario, ScenarioError};
pub use simulation::{SimError, Simulation};
pub use trace::{Trace, TraceKind, TraceMode, TraceRecord};

/// The environment variable that sets the seed of seed-tolerant tests (CI sets a random one
/// and prints it).
pub const SEED_ENV: &str = "WEFT_SIM_SEED";

/// The seed from [`SEED_ENV`] if it is set and a number, else `default`; printed either way so
/// that a failing run can be repeated.
pub fn seed_from_env(default: u64) -> u64 {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default);
    eprintln!("simulator seed: {SEED_ENV}={seed}");
    seed
}

/// Loads a scenario file and its config, builds the simulation with `seed` (the scenario's own
/// seed, else 1, when `None`), runs it to the end plus its drain time, and reports.
pub fn run_file(
    path: impl AsRef<std::path::Path>,
    seed: Option<u64>,
) -> Result<(Simulation, Report), SimError> {
    let scenario = Scenario::load(path)?;
    let config = scenario.load_config()?;
    let seed = seed.or(scenario.seed).unwrap_or(1);
    let mut sim = Simulation::new(&config, &scenario, seed)?;
    let report = sim.run(scenario.drain);
    Ok((sim, report))
}
