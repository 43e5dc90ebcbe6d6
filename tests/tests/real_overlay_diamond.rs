//! The whole system on a 4-node diamond, each node homed on two ISPs:
//!
//! ```text
//!        2
//!   0 /     \ 2        links 0 and 2 cost 10 ms, links 1 and 3 cost 20 ms (floors far above
//!   1         4        loopback noise): the active route from 1 to 4 is 1-2-4
//!   1 \     / 3
//!        3
//! ```
//!
//! - traffic from 1 to 4 survives the SIGKILL of node 2 (on the active route): the longest gap
//!   between arrivals is reported and asserted under 1 s; routes go through 3, and back
//!   through 2 once it is restarted;
//! - with the control planes of 1 and 4 killed, forwarding goes on and `weftctl show fib`
//!   shows the generation frozen; restarted, they publish a newer generation.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use weft_tests::overlay::{LinkSpec, Overlay, Role, Start};
use weft_tests::traffic::Traffic;

const PORT: u16 = 4000;
const RATE: u64 = 1_000;

fn diamond(name: &str, start: Start) -> Overlay {
    let links = [
        LinkSpec {
            id: 0,
            a: 1,
            b: 2,
            cost_us: 10_000,
        },
        LinkSpec {
            id: 1,
            a: 1,
            b: 3,
            cost_us: 20_000,
        },
        LinkSpec {
            id: 2,
            a: 2,
            b: 4,
            cost_us: 10_000,
        },
        LinkSpec {
            id: 3,
            a: 3,
            b: 4,
            cost_us: 20_000,
        },
    ];
    Overlay::start(name, 4, &links, start)
}

/// The path node `from`'s control plane reports to `to`, or empty.
fn path(o: &Overlay, from: u16, to: u16) -> Vec<u64> {
    let v = o.weftctl_json(from, &["show", "routes"]);
    v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["destination"] == to)
        .map(|r| {
            r["path"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until node `from` routes to `to` along `want`.
fn wait_path(o: &Overlay, from: u16, to: u16, want: &[u64], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let p = path(o, from, to);
        if p == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {from} routes to {to} along {p:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fib_generation(o: &Overlay, node: u16) -> u64 {
    o.weftctl_json(node, &["show", "fib"])["generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("no generation in show fib"))
}

#[test]
fn traffic_reroutes_around_a_killed_node_and_returns() {
    let mut o = diamond("diamond-kill", Start::Launcher);
    wait_path(&o, 1, 4, &[1, 2, 4], Duration::from_secs(10));
    wait_path(&o, 4, 1, &[4, 2, 1], Duration::from_secs(10));
    o.wait_converged(Duration::from_secs(10));

    let traffic = Traffic::start(
        o.session_socket(1),
        o.session_socket(4),
        4,
        PORT,
        RATE,
        100,
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_secs(1));
    let before_kill = traffic.sent();
    o.kill_node(2);
    let killed_at = Instant::now();
    wait_path(&o, 1, 4, &[1, 3, 4], Duration::from_secs(2));
    eprintln!("node 1 rerouted after {:?}", killed_at.elapsed());
    std::thread::sleep(Duration::from_millis(1_500));
    o.start_node(2);
    wait_path(&o, 1, 4, &[1, 2, 4], Duration::from_secs(5));
    o.wait_converged(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    let result = traffic.finish().unwrap();
    let r = &result.recv;
    eprintln!(
        "sent {} (before the kill {before_kill}), received {}, lost {}, duplicates {}, \
         longest gap {:.1} ms",
        result.sent, r.received, r.lost, r.duplicates, r.max_gap_ms
    );
    assert!(result.sent >= 2 * RATE, "the sender ran: {}", result.sent);
    assert!(
        r.max_gap_ms < 1_000.0,
        "outage {:.1} ms (target under 150 ms)",
        r.max_gap_ms
    );
    // Only the outage's worth of messages may be missing: at most a second of traffic.
    assert!(
        r.received + RATE >= result.sent,
        "received {} of {}",
        r.received,
        result.sent
    );
    assert_eq!(r.duplicates, 0);
}

#[test]
fn forwarding_goes_on_without_control_planes_and_they_resync() {
    let mut o = diamond("diamond-headless", Start::Separate);
    wait_path(&o, 1, 4, &[1, 2, 4], Duration::from_secs(10));
    wait_path(&o, 4, 1, &[4, 2, 1], Duration::from_secs(10));
    o.wait_converged(Duration::from_secs(10));
    let traffic = Traffic::start(
        o.session_socket(1),
        o.session_socket(4),
        4,
        PORT,
        RATE,
        100,
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_millis(500));
    let frozen1 = fib_generation(&o, 1);
    let frozen4 = fib_generation(&o, 4);
    o.kill(1, Role::Controld, Signal::SIGKILL);
    o.kill(4, Role::Controld, Signal::SIGKILL);
    // The control plane is gone: weftctl says so, the FIB stays, traffic flows.
    let (code, _, err) = o.weftctl(1, &["show", "routes"]);
    assert_eq!(code, 1);
    assert!(err.contains("not running"), "{err}");
    let sent_while_headless = traffic.sent();
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(fib_generation(&o, 1), frozen1, "generation frozen");
    assert_eq!(fib_generation(&o, 4), frozen4, "generation frozen");
    let headless_sent = traffic.sent() - sent_while_headless;
    assert!(
        headless_sent >= RATE,
        "the sender kept sending: {headless_sent}"
    );

    o.start_controld(1);
    o.start_controld(4);
    let deadline = Instant::now() + Duration::from_secs(5);
    while fib_generation(&o, 1) <= frozen1 || fib_generation(&o, 4) <= frozen4 {
        assert!(
            Instant::now() < deadline,
            "no newer generation after restart"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_path(&o, 1, 4, &[1, 2, 4], Duration::from_secs(2));
    let status = o.weftctl_json(1, &["show", "status"]);
    assert!(
        status["fib_generation"].as_u64().unwrap() > frozen1,
        "{status}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let result = traffic.finish().unwrap();
    let r = &result.recv;
    eprintln!(
        "sent {}, received {}, lost {}, longest gap {:.1} ms",
        result.sent, r.received, r.lost, r.max_gap_ms
    );
    // Nothing routed changed, so nothing may be lost across the whole episode.
    assert_eq!(r.lost, 0, "lost messages while headless or on restart");
    assert!(
        r.received + 5 >= result.sent,
        "received {} of {}",
        r.received,
        result.sent
    );
    assert!(r.max_gap_ms < 500.0, "a {:.1} ms gap", r.max_gap_ms);
}
