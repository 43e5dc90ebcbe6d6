//! `busy_poll_us`: a worker keeps polling for that long after a turn with work, then blocks.
//! Node 2 of a two-node overlay receives a message about every 200 us for a second; with
//! `busy_poll_us = 1000` its worker does not block between them (few voluntary context
//! switches; it stays on the CPU), without busy polling it sleeps between them (about one per
//! message); and once the traffic stops, the polling worker goes idle like the other.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::time::{Duration, Instant};

use common::client::TestClient;
use common::{Overlay, Spec};

/// Node `node`'s thread `weft-worker-0`: its CPU seconds (from schedstat) and how often it
/// blocked (voluntary context switches, from status).
fn worker_usage(o: &Overlay, node: u16) -> (f64, u64) {
    let pid = o.pid(node).unwrap();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != "weft-worker-0" {
            continue;
        }
        // schedstat: nanoseconds on the CPU, nanoseconds waiting, timeslices.
        let stat = std::fs::read_to_string(dir.join("schedstat")).unwrap();
        let ns: u64 = stat.split_whitespace().next().unwrap().parse().unwrap();
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        let blocked = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        return (ns as f64 / 1e9, blocked);
    }
    panic!("node {node} has no weft-worker-0 thread");
}

/// What node 2's worker did over one phase: CPU seconds and times it blocked.
#[derive(Clone, Copy, Debug)]
struct Usage {
    cpu: f64,
    blocked: u64,
}

fn usage_since(o: &Overlay, before: (f64, u64)) -> Usage {
    let (cpu, blocked) = worker_usage(o, 2);
    Usage {
        cpu: cpu - before.0,
        blocked: blocked - before.1,
    }
}

/// Node 2's worker while it receives a paced stream for a second (one message about every
/// 200 us, all delivered), then while idle for as long.
fn busy_then_idle(name: &str, busy_poll_us: Option<u32>) -> (Usage, Usage) {
    let mut spec = Spec::simple(2, &[(0, 1, 2)]);
    if let Some(us) = busy_poll_us {
        spec.node_lines.push((2, format!("busy_poll_us = {us}")));
    }
    let mut o = Overlay::start(name, spec);
    o.publish_fib(1, &[(2, 0)]);
    o.publish_fib(2, &[(1, 0)]);
    o.wait_link_up(1, 0, None);
    o.wait_link_up(2, 0, None);
    let mut c2 = TestClient::connect(&o.session_socket(2));
    c2.bind(20);
    let mut c1 = TestClient::connect(&o.session_socket(1));
    c1.bind(10);
    let flow = c1.open_flow(10, 2, 20);
    let period = Duration::from_secs(1);
    let before = worker_usage(&o, 2);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < period {
        c1.send(flow, &sent.to_be_bytes());
        sent += 1;
        let next = start + Duration::from_micros(200 * sent);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let busy = usage_since(&o, before);
    for _ in 0..sent {
        assert!(
            c2.recv(Duration::from_secs(5)).is_some(),
            "a message was lost"
        );
    }
    let before = worker_usage(&o, 2);
    std::thread::sleep(period);
    let idle = usage_since(&o, before);
    eprintln!("{name}: {sent} messages; worker {busy:?} under traffic, {idle:?} idle");
    (busy, idle)
}

#[test]
fn a_busy_polling_worker_stays_on_the_cpu_under_traffic_and_sleeps_when_idle() {
    let (polling, polling_idle) = busy_then_idle("busypoll-on", Some(1000));
    let (blocking, blocking_idle) = busy_then_idle("busypoll-off", None);
    // Blocking, the worker sleeps between messages 200 us apart (about once per message);
    // polling, it keeps looking instead, so it blocks only where a gap passed 1 ms (the sender
    // stalled). Generous bounds: CI may share the cores.
    assert!(
        blocking.blocked > 1000 && polling.blocked * 4 < blocking.blocked,
        "blocked under traffic: polling {} times, blocking {} times",
        polling.blocked,
        blocking.blocked
    );
    // Idle, both block between hellos and use next to no CPU.
    assert!(
        polling_idle.cpu < 0.1 && blocking_idle.cpu < 0.1,
        "idle: polling {polling_idle:?}, blocking {blocking_idle:?}"
    );
}
