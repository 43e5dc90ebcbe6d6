//! `reliable-goodput`: goodput of a reliable flow against loss on real processes.
//!
//! Each measurement starts a line of nodes (`srt_compare::weft::Line`: `weft-dataplane` +
//! `weft-controld` per node, single-homed, every link's one path through a `weft-linkem` relay
//! of its own with the loss model and latency on both directions, optionally a rate limit), then
//! one client on the first node sends `count` messages on a reliable flow as fast as its
//! credits allow to a client on the last node, which checks that every message arrives in
//! order exactly once (`flow`). Optionally a best-effort flow follows on the same overlay at the
//! rate the reliable flow reached, for its delivered ratio. The data planes' counters
//! (`weftctl show counters`) and the relays' counters are taken after each flow. `report`
//! prints the table. The binary is `perf/src/bin/reliable-goodput.rs`.

pub mod flow;
pub mod report;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use serde_json::Value;
use weft_client::Service;
use weft_shared::shm::Counter;

use crate::srt_compare::weft::Line;
use crate::srt_compare::{
    DirTraffic, PathModel, interrupted, load_average, relay_lateness, traffic_between,
};
use flow::{Pace, Received, Sending};

/// The overlay port of the reliable flow's receiver.
const RELIABLE_PORT: u16 = 4100;
/// The overlay port of the best-effort flow's receiver.
const BEST_EFFORT_PORT: u16 = 4101;
/// How long a best-effort receiver waits after the last send for stragglers.
const BEST_EFFORT_GRACE: Duration = Duration::from_secs(1);

/// The data-plane counters reported for each node: the reliable service's (`rel_*`).
pub fn counter_names() -> impl Iterator<Item = &'static str> {
    Counter::NAMES
        .iter()
        .copied()
        .filter(|n| n.starts_with("rel_"))
}

/// A loss model of every direction of every link.
#[derive(Clone, Debug)]
pub struct LossModel {
    /// Average loss probability.
    pub loss: f64,
    /// Mean burst length (Gilbert–Elliott), or Bernoulli when `None`.
    pub burst: Option<f64>,
}

impl LossModel {
    /// As printed in the table.
    pub fn label(&self) -> String {
        match self.burst {
            Some(b) => format!("G–E {} %, burst {b}", self.loss * 100.0),
            None if self.loss == 0.0 => "none".to_owned(),
            None => format!("Bernoulli {} %", self.loss * 100.0),
        }
    }
}

/// What every measurement shares.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Nodes on the line (hops = nodes − 1).
    pub nodes: u16,
    /// Messages per flow.
    pub count: u64,
    /// Message size, bytes.
    pub size: usize,
    /// One-way latency of every link direction, ms.
    pub one_way_ms: f64,
    /// Rate limit of every link direction (UDP payload bits/s), none when `None`.
    pub rate_bps: Option<u64>,
    /// The rate limit's queue, bytes (the relay's default, 1 MiB, when `None`).
    pub queue_bytes: Option<u64>,
    /// The longest a flow may take, first send to last delivery.
    pub timeout: Duration,
    /// The relays' seed.
    pub seed: u64,
    /// Whether to run the best-effort comparison flow.
    pub best_effort: bool,
}

/// One flow's outcome.
#[derive(Debug)]
pub struct FlowResult {
    /// Messages the sender handed to its node.
    pub sent: u64,
    /// Whether the sender's last send returned.
    pub sender_done: bool,
    /// The sender's error, if it stopped early.
    pub sender_error: Option<String>,
    /// What the receiver saw.
    pub recv: Received,
    /// From the first send to the last new delivery.
    pub elapsed: Duration,
    /// Each relay's traffic over the flow, link 0 first: (a → b, b → a).
    pub relays: Vec<(DirTraffic, DirTraffic)>,
    /// Datagrams the relays sent over 1 ms late during the flow, and the worst lateness (µs).
    pub relay_late: (u64, u64),
    /// Each node's counters (totals over its workers) after the flow, node 1 first.
    pub counters: Vec<Value>,
}

impl FlowResult {
    /// Delivered payload bits per second, first send to last delivery.
    pub fn goodput_bps(&self, size: usize) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s <= 0.0 {
            return 0.0;
        }
        (self.recv.unique * size as u64 * 8) as f64 / s
    }

    /// Delivered messages per second.
    pub fn msgs_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s <= 0.0 {
            return 0.0;
        }
        self.recv.unique as f64 / s
    }

    /// Counter `name` of node `n` (1-based).
    pub fn counter(&self, n: usize, name: &str) -> u64 {
        self.counters
            .get(n.wrapping_sub(1))
            .and_then(|c| c[name].as_u64())
            .unwrap_or(0)
    }

    /// Counter `name` summed over the nodes.
    pub fn counter_sum(&self, name: &str) -> u64 {
        (1..=self.counters.len())
            .map(|n| self.counter(n, name))
            .sum()
    }

    /// Datagrams the relays' loss models dropped: (forward, the flow's direction; reverse).
    pub fn relay_lost(&self) -> (u64, u64) {
        self.relays
            .iter()
            .fold((0, 0), |(f, r), (a, b)| (f + a.lost, r + b.lost))
    }

    /// Datagrams the relays' rate-limit queues dropped, both directions.
    pub fn queue_drops(&self) -> u64 {
        self.relays
            .iter()
            .map(|(a, b)| a.queue_drops + b.queue_drops)
            .sum()
    }
}

/// One loss model's measurement.
#[derive(Debug)]
pub struct Measurement {
    /// The loss model.
    pub model: LossModel,
    /// The rate limit, if any.
    pub rate_bps: Option<u64>,
    /// The reliable flow.
    pub reliable: FlowResult,
    /// The best-effort flow at the reliable flow's rate, if run.
    pub best_effort: Option<FlowResult>,
    /// The 1-minute load average before and after.
    pub load: (Option<f64>, Option<f64>),
}

impl Measurement {
    /// Whether the reliable flow met the service's promise: everything, in order, once.
    pub fn reliable_ok(&self, count: u64) -> bool {
        let r = &self.reliable.recv;
        r.unique == count
            && r.duplicates == 0
            && r.out_of_order == 0
            && r.bogus == 0
            && r.error.is_none()
    }
}

/// Starts a line with `model` on every link, runs the flows, stops everything.
pub fn measure(
    bins: &Path,
    tag: &str,
    settings: &Settings,
    model: &LossModel,
) -> Result<Measurement> {
    let path = PathModel {
        one_way_ms: settings.one_way_ms,
        loss: model.loss,
        burst: model.burst,
        seed: settings.seed,
    };
    let line = Line::start(bins, tag, settings.nodes, &path)?;
    let mut limit = String::new();
    if let Some(r) = settings.rate_bps {
        limit.push_str(&format!(" rate_bps={r}"));
    }
    if let Some(q) = settings.queue_bytes {
        limit.push_str(&format!(" queue_bytes={q}"));
    }
    if !limit.is_empty() {
        for relay in line.relays() {
            relay
                .ctl(&format!("set p0 both{limit}"))
                .map_err(|e| anyhow!("weft-linkem set{limit}: {e}"))?;
        }
    }
    let load_before = load_average();
    let reliable = run_flow(
        &line,
        settings,
        Service::reliable(),
        Pace::Credits,
        RELIABLE_PORT,
    )?;
    let best_effort = if settings.best_effort && reliable.msgs_per_s() > 0.0 && !interrupted() {
        let pace = Pace::Rate(reliable.msgs_per_s());
        Some(run_flow(
            &line,
            settings,
            Service::best_effort(),
            pace,
            BEST_EFFORT_PORT,
        )?)
    } else {
        None
    };
    let load_after = load_average();
    drop(line);
    Ok(Measurement {
        model: model.clone(),
        rate_bps: settings.rate_bps,
        reliable,
        best_effort,
        load: (load_before, load_after),
    })
}

fn run_flow(
    line: &Line,
    s: &Settings,
    service: Service,
    pace: Pace,
    port: u16,
) -> Result<FlowResult> {
    let reliable = matches!(pace, Pace::Credits);
    let stats = |l: &Line| -> Vec<Value> { l.relays().iter().map(|r| r.stats()).collect() };
    let before = stats(line);
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + s.timeout;
    let last = s.nodes;
    let rx = flow::receiver(
        line.session_socket(last),
        port,
        s.count,
        reliable,
        deadline,
        Arc::clone(&stop),
    )?;
    let start = Instant::now();
    let tx: Arc<Sending> = flow::sender(
        line.session_socket(1),
        last,
        port,
        service,
        s.count,
        s.size,
        pace,
        Arc::clone(&stop),
    )?;
    let mut sent_all_at: Option<Instant> = None;
    while !rx.is_finished() {
        if interrupted() {
            stop.store(true, Ordering::Relaxed);
        }
        if !reliable && tx.done.load(Ordering::Relaxed) {
            // Best effort: what is lost stays lost; stop listening a moment after the end.
            let at = *sent_all_at.get_or_insert_with(Instant::now);
            if at.elapsed() > BEST_EFFORT_GRACE {
                stop.store(true, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let recv = rx
        .join()
        .map_err(|_| anyhow!("the receiver thread panicked"))?;
    // Taken while the sender's session is still open (a stuck flow's state shows here).
    let counters = (1..=s.nodes).map(|n| line.total_counters(n)).collect();
    let after = stats(line);
    stop.store(true, Ordering::Relaxed);
    let relays = before
        .iter()
        .zip(&after)
        .map(|(b, a)| traffic_between(b, a))
        .collect();
    let late0: u64 = before.iter().map(|b| relay_lateness(b).0).sum();
    let late1: u64 = after.iter().map(|a| relay_lateness(a).0).sum();
    let max_late = after.iter().map(|a| relay_lateness(a).1).max().unwrap_or(0);
    let elapsed = recv
        .last
        .map_or(Duration::ZERO, |l| l.duration_since(start));
    // A sender still blocked for credit ends when its node stops (the socket closes).
    Ok(FlowResult {
        sent: tx.sent.load(Ordering::Relaxed),
        sender_done: tx.done.load(Ordering::Relaxed),
        sender_error: tx.error(),
        recv,
        elapsed,
        relays,
        relay_late: (late1.saturating_sub(late0), max_late),
        counters,
    })
}
