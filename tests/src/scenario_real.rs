//! Running a simulator scenario file on real processes: the scenario's topology becomes a real
//! overlay on loopback whose every path runs through `weft-linkem` with the scenario's link
//! model, its flows become paced client flows, and its timeline is played in real time (cuts
//! and restores through the relay's control socket, node failures by SIGKILL and restarts).
//!
//! This is how a test compares the simulator with reality on the same file
//! (`tests/tests/real_fidelity.rs`). What cannot be done for real is refused with a clear
//! error: misbehaving nodes, per-direction or mid-run parameter changes, node ids that are not
//! 1..=N, links with other than two paths, and timers other than the harness's (10 ms hellos,
//! a path dead after 100 ms, up after 3 hellos).

use std::time::{Duration, Instant};

use weft_shared::config::Config;

use crate::linkmodel::LossModel;
use crate::overlay::{EmulatedPath, LinkSpec, Overlay};
use crate::sim::scenario::{Action, LinkRef, LinkSpec as ModelSpec, NodeRef, Scenario};
use crate::traffic::{Traffic, TrafficResult};

/// What a real run of a scenario measured, per flow in the scenario's order.
#[derive(Debug)]
pub struct RealRun {
    /// Each flow's name and result.
    pub flows: Vec<(String, TrafficResult)>,
}

/// Why a scenario cannot run on real processes.
#[derive(Debug, thiserror::Error)]
#[error("{file}: cannot run on real processes: {message}")]
pub struct RealScenarioError {
    /// The scenario file.
    pub file: String,
    /// What is not possible.
    pub message: String,
}

/// Plays `scenario` on real processes (test name `name` picks the loopback block) and returns
/// each flow's figures. Blocks for the scenario's duration plus start-up and drain.
pub fn run(scenario: &Scenario, name: &str) -> Result<RealRun, RealScenarioError> {
    let err = |message: String| RealScenarioError {
        file: scenario.file.clone(),
        message,
    };
    let config = scenario.load_config().map_err(|e| err(e.to_string()))?;
    let plan = plan(scenario, &config).map_err(err)?;
    let mut o = Overlay::start_emulated(name, plan.nodes, &plan.links, &plan.paths);
    o.wait_converged(Duration::from_secs(20));

    // Flows start and stop on the scenario's clock, whose zero is now.
    let t0 = Instant::now();
    let mut steps: Vec<(Duration, Step)> = Vec::new();
    for (i, f) in plan.flows.iter().enumerate() {
        steps.push((f.start, Step::StartFlow(i)));
        steps.push((f.stop, Step::StopFlow(i)));
    }
    for (at, action) in &plan.timeline {
        steps.push((*at, Step::Act(action.clone())));
    }
    steps.sort_by_key(|(at, _)| *at);
    let mut running: Vec<Option<Traffic>> = plan.flows.iter().map(|_| None).collect();
    let mut results: Vec<Option<TrafficResult>> = plan.flows.iter().map(|_| None).collect();
    for (at, step) in steps {
        let now = t0.elapsed();
        if at > now {
            std::thread::sleep(at - now);
        }
        match step {
            Step::StartFlow(i) => {
                let f = &plan.flows[i];
                running[i] = Some(Traffic::start(
                    o.session_socket(f.from),
                    o.session_socket(f.to),
                    f.to,
                    4200 + i as u16,
                    f.rate_pps,
                    f.size,
                    f.stop - f.start + Duration::from_secs(1),
                ));
            }
            Step::StopFlow(i) => {
                if let Some(t) = running[i].take() {
                    results[i] = Some(t.finish().map_err(err)?);
                }
            }
            Step::Act(RealAction::CutPath(link, path)) => o.cut_path(link, path),
            Step::Act(RealAction::RestorePath(link, path)) => o.restore_path(link, path),
            Step::Act(RealAction::FailNode(n)) => o.kill_node(n),
            Step::Act(RealAction::RestartNode(n)) => o.start_node(n),
        }
    }
    let flows = plan
        .flows
        .iter()
        .zip(results)
        .map(|(f, r)| {
            r.map(|r| (f.name.clone(), r))
                .ok_or_else(|| err(format!("flow {} never ran", f.name)))
        })
        .collect::<Result<_, _>>()?;
    Ok(RealRun { flows })
}

/// One step of the real timeline.
enum Step {
    StartFlow(usize),
    StopFlow(usize),
    Act(RealAction),
}

/// A timeline action the real harness can perform.
#[derive(Clone, Debug)]
enum RealAction {
    CutPath(u16, u8),
    RestorePath(u16, u8),
    FailNode(u16),
    RestartNode(u16),
}

/// A flow in real terms.
struct RealFlow {
    name: String,
    from: u16,
    to: u16,
    rate_pps: u64,
    size: usize,
    start: Duration,
    stop: Duration,
}

/// The overlay, paths, flows and timeline of a scenario.
struct Plan {
    nodes: u16,
    links: Vec<LinkSpec>,
    paths: Vec<EmulatedPath>,
    flows: Vec<RealFlow>,
    timeline: Vec<(Duration, RealAction)>,
}

fn plan(scenario: &Scenario, config: &Config) -> Result<Plan, String> {
    let nodes = u16::try_from(config.nodes().len()).map_err(|_| "too many nodes".to_owned())?;
    for (i, n) in config.nodes().iter().enumerate() {
        if usize::from(n.id().get()) != i + 1 {
            return Err(format!(
                "node ids must be 1..={nodes} in order (found {})",
                n.id()
            ));
        }
    }
    let t = config.timers();
    if t.hello_interval() != Duration::from_millis(10)
        || t.path_dead_after() != Duration::from_millis(100)
        || t.path_up_after_hellos() != 3
    {
        return Err("the harness runs 10 ms hellos, dead after 100 ms, up after 3".into());
    }
    let mut links = Vec::new();
    let mut paths = Vec::new();
    for l in config.links() {
        let [a, b] = l.nodes();
        links.push(LinkSpec {
            id: l.id().get(),
            a: a.get(),
            b: b.get(),
            cost_us: l.cost_us(),
        });
        if l.paths().len() != 2 {
            return Err(format!(
                "link {} has {} paths, not 2",
                l.id(),
                l.paths().len()
            ));
        }
        for p in 0..2u8 {
            let mut spec = ModelSpec {
                latency: Some(Duration::from_micros(u64::from(l.cost_us()))),
                ..ModelSpec::default()
            };
            merge(&mut spec, &scenario.link_model);
            for o in &scenario.link_overrides {
                if link_id(config, &o.link)? == l.id().get() && o.path.is_none_or(|x| x == p) {
                    merge(&mut spec, &o.spec);
                }
            }
            paths.push(EmulatedPath::new(l.id().get(), p, &settings(&spec)?));
        }
    }
    let mut flows = Vec::new();
    for f in &scenario.flows {
        flows.push(RealFlow {
            name: f.name.clone(),
            from: node_id(config, &f.from)?,
            to: node_id(config, &f.to)?,
            rate_pps: f.rate_pps.round() as u64,
            size: f.size,
            start: f.start,
            stop: f.stop.min(scenario.duration),
        });
    }
    let mut timeline = Vec::new();
    for e in &scenario.events {
        let both =
            |link: u16, f: fn(u16, u8) -> RealAction| [(e.at, f(link, 0)), (e.at, f(link, 1))];
        match &e.action {
            Action::CutLink(l) => timeline.extend(both(link_id(config, l)?, RealAction::CutPath)),
            Action::RestoreLink(l) => {
                timeline.extend(both(link_id(config, l)?, RealAction::RestorePath))
            }
            Action::CutPath(l, p) => {
                timeline.push((e.at, RealAction::CutPath(link_id(config, l)?, *p)))
            }
            Action::RestorePath(l, p) => {
                timeline.push((e.at, RealAction::RestorePath(link_id(config, l)?, *p)))
            }
            Action::FailNode(n) => timeline.push((e.at, RealAction::FailNode(node_id(config, n)?))),
            Action::RestartNode(n) => {
                timeline.push((e.at, RealAction::RestartNode(node_id(config, n)?)))
            }
            Action::Misbehave(..) => {
                return Err("misbehaving nodes exist only in the simulator".into());
            }
        }
    }
    Ok(Plan {
        nodes,
        links,
        paths,
        flows,
        timeline,
    })
}

fn merge(into: &mut ModelSpec, from: &ModelSpec) {
    into.latency = from.latency.or(into.latency);
    into.jitter = from.jitter.or(into.jitter);
    into.loss = from.loss.or(into.loss);
    into.rate_bps = from.rate_bps.or(into.rate_bps);
    into.queue_bytes = from.queue_bytes.or(into.queue_bytes);
    into.reorder = from.reorder.or(into.reorder);
}

/// The link model as `weft-linkem` settings.
fn settings(spec: &ModelSpec) -> Result<String, String> {
    let mut s = Vec::new();
    if let Some(l) = spec.latency {
        s.push(format!("latency_ms={}", l.as_secs_f64() * 1e3));
    }
    if let Some(j) = spec.jitter {
        s.push(format!("jitter_ms={}", j.as_secs_f64() * 1e3));
    }
    match spec.loss {
        None | Some(LossModel::None) => {}
        Some(LossModel::Bernoulli { p }) => s.push(format!("loss={p}")),
        Some(LossModel::GilbertElliott {
            p_good_to_bad,
            p_bad_to_good,
            loss_good,
            loss_bad,
        }) => s.push(format!(
            "ge_good_to_bad={p_good_to_bad} ge_bad_to_good={p_bad_to_good} \
             ge_loss_good={loss_good} ge_loss_bad={loss_bad}"
        )),
    }
    if let Some(r) = spec.rate_bps {
        s.push(format!("rate_bps={r}"));
    }
    if let Some(q) = spec.queue_bytes {
        s.push(format!("queue_bytes={q}"));
    }
    if let Some(r) = spec.reorder {
        s.push(format!("reorder={r}"));
    }
    Ok(s.join(" "))
}

fn node_id(config: &Config, n: &NodeRef) -> Result<u16, String> {
    match n {
        NodeRef::Id(id) => Ok(*id),
        NodeRef::Name(name) => config
            .node_by_name(name)
            .map(|n| n.id().get())
            .ok_or_else(|| format!("no node {name:?}")),
    }
}

fn link_id(config: &Config, l: &LinkRef) -> Result<u16, String> {
    match l {
        LinkRef::Id(id) => Ok(*id),
        LinkRef::Between(a, b) => {
            let (a, b) = (node_id(config, a)?, node_id(config, b)?);
            let (Some(a), Some(b)) = (
                weft_shared::ids::NodeId::new(a),
                weft_shared::ids::NodeId::new(b),
            ) else {
                return Err("bad node id".into());
            };
            config
                .link_between(a, b)
                .map(|l| l.id().get())
                .ok_or_else(|| format!("no link between {a} and {b}"))
        }
    }
}
