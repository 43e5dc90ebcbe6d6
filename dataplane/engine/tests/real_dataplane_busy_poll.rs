//! `busy_poll_us`: a worker keeps polling for that long after a turn with work, then blocks.
//! Node 2 of a two-node overlay receives a message about every 200 us for a second; with
//! `busy_poll_us = 1000` its worker never blocks between them (it stays on the CPU for most of
//! the second), without busy polling it sleeps between them; and once the traffic stops, the
//! polling worker goes idle like the other.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::time::{Duration, Instant};

use common::client::TestClient;
use common::{Overlay, Spec};

/// CPU seconds of node `node`'s thread `weft-worker-0` (from its schedstat).
fn worker_cpu(o: &Overlay, node: u16) -> f64 {
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
        return ns as f64 / 1e9;
    }
    panic!("node {node} has no weft-worker-0 thread");
}

/// Node 2's worker CPU while it receives a paced stream for `busy` (one message about every
/// 200 us, all delivered), then while idle for as long.
fn cpu_busy_then_idle(name: &str, busy_poll_us: Option<u32>) -> (f64, f64) {
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
    let before = worker_cpu(&o, 2);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < period {
        c1.send(flow, &sent.to_be_bytes());
        sent += 1;
        let next = start + Duration::from_micros(200 * sent);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let busy = worker_cpu(&o, 2) - before;
    for _ in 0..sent {
        assert!(
            c2.recv(Duration::from_secs(5)).is_some(),
            "a message was lost"
        );
    }
    let before = worker_cpu(&o, 2);
    std::thread::sleep(period);
    let idle = worker_cpu(&o, 2) - before;
    eprintln!("{name}: {sent} messages; worker CPU {busy:.3} s busy, {idle:.3} s idle");
    (busy, idle)
}

#[test]
fn a_busy_polling_worker_stays_on_the_cpu_under_traffic_and_sleeps_when_idle() {
    let (polling, polling_idle) = cpu_busy_then_idle("busypoll-on", Some(1000));
    let (blocking, blocking_idle) = cpu_busy_then_idle("busypoll-off", None);
    // Polling between messages 200 us apart keeps the worker running nearly all the second;
    // blocking costs a wake-up per message. Generous bounds: CI may share the cores.
    assert!(
        polling > 3.0 * blocking && polling > 0.25,
        "polling {polling:.3} s against blocking {blocking:.3} s"
    );
    // Idle, both block (the polling one after 1 ms without work); the hellos wake them.
    assert!(
        polling_idle < 0.1 && blocking_idle < 0.1,
        "idle: polling {polling_idle:.3} s, blocking {blocking_idle:.3} s"
    );
}
