//! Two real Weft nodes (`weft-dataplane` + `weft-controld` each) on one link with two paths,
//! path 0 through `weft-linkem` (`Overlay::start_emulated`):
//!
//! - with 20 ms of latency each way on path 0, both data planes measure a ~40 ms RTT on it
//!   (and on the link, whose active path it is), while path 1 stays at loopback RTT; setting
//!   5 ms at run time brings it to ~10 ms;
//! - cutting path 0 through the control socket makes both data planes fail over to path 1
//!   (`weftctl --json show links`) while traffic from node 1 to node 2 keeps flowing;
//!   restoring it brings the link back to path 0, and the relay counted the cut's drops.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::time::{Duration, Instant};

use serde_json::Value;
use weft_tests::overlay::{EmulatedPath, LinkSpec, Overlay};
use weft_tests::traffic::Traffic;

const LINK: [LinkSpec; 1] = [LinkSpec {
    id: 0,
    a: 1,
    b: 2,
    cost_us: 10_000,
}];

/// Link 0 as node `node`'s data plane shows it.
fn link0(o: &Overlay, node: u16) -> Value {
    let v = o.weftctl_json(node, &["show", "links"]);
    v["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["link"] == 0)
        .cloned()
        .unwrap_or_else(|| panic!("node {node} shows no link 0: {v}"))
}

/// Waits until `pred` holds for link 0 on both nodes; returns the last views.
fn wait_links(o: &Overlay, within: Duration, what: &str, pred: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let views = [link0(o, 1), link0(o, 2)];
        if views.iter().all(&pred) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}:\nnode 1 {}\nnode 2 {}",
            views[0],
            views[1]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn path_rtt_ms(link: &Value, path: usize) -> f64 {
    link["paths"][path]["rtt_us"].as_f64().unwrap_or(0.0) / 1e3
}

#[test]
fn the_data_plane_measures_the_emulated_latency() {
    let o = Overlay::start_emulated(
        "lk-ov-rtt",
        2,
        &LINK,
        &[EmulatedPath::new(0, 0, "latency_ms=20")],
    );
    wait_links(&o, Duration::from_secs(10), "path 0 RTT ~40 ms", |l| {
        l["active_path"] == 0 && (38.0..46.0).contains(&path_rtt_ms(l, 0))
    });
    for node in [1, 2] {
        let l = link0(&o, node);
        let (link_rtt, p0, p1) = (
            l["rtt_us"].as_f64().unwrap() / 1e3,
            path_rtt_ms(&l, 0),
            path_rtt_ms(&l, 1),
        );
        eprintln!("node {node}: link RTT {link_rtt:.2} ms, path 0 {p0:.2} ms, path 1 {p1:.2} ms");
        assert!((38.0..46.0).contains(&link_rtt), "link RTT {link_rtt} ms");
        // Path 1 is plain loopback (well under a millisecond when idle); the
        // bound only has to tell it from the emulated 40 ms, with room for a
        // scheduling spike on a loaded 2-core CI machine.
        assert!(p1 > 0.0 && p1 < 15.0, "path 1 is plain loopback: {p1} ms");
        assert_eq!(
            l["paths"][0]["remote"].as_str().map(|s| s.is_empty()),
            Some(false)
        );
    }
    o.set_path(0, 0, "latency_ms=5");
    wait_links(&o, Duration::from_secs(10), "path 0 RTT ~10 ms", |l| {
        (9.0..14.0).contains(&path_rtt_ms(l, 0))
    });
    let s = o.linkem().stats();
    let p = &s["paths"][0];
    assert_eq!(p["name"], "l0p0");
    for dir in ["a_to_b", "b_to_a"] {
        assert!(
            p[dir]["delivered"].as_u64().unwrap() > 20,
            "hellos went through: {p}"
        );
        assert_eq!(p[dir]["params"]["latency_ms"], 5.0);
    }
}

#[test]
fn cutting_the_emulated_path_fails_over_and_traffic_goes_on() {
    const RATE: u64 = 1_000;
    let o = Overlay::start_emulated(
        "lk-ov-cut",
        2,
        &LINK,
        &[EmulatedPath::new(0, 0, "latency_ms=1")],
    );
    let t0 = Instant::now();
    o.wait_converged(Duration::from_secs(10));
    eprintln!("converged after {:?}", t0.elapsed());
    wait_links(&o, Duration::from_secs(10), "path 0 active", |l| {
        l["active_path"] == 0 && l["paths"][0]["state"] == "up"
    });
    let traffic = Traffic::start(
        o.session_socket(1),
        o.session_socket(2),
        2,
        4000,
        RATE,
        100,
        Duration::from_secs(20),
    );
    eprintln!("traffic started after {:?}", t0.elapsed());
    std::thread::sleep(Duration::from_millis(500));
    let cut_at = Instant::now();
    o.cut_path(0, 0);
    wait_links(&o, Duration::from_secs(2), "failover to path 1", |l| {
        l["active_path"] == 1 && l["paths"][0]["state"] == "down" && l["state"] == "up"
    });
    eprintln!("both nodes on path 1 after {:?}", cut_at.elapsed());
    let sent_at_failover = traffic.sent();
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(
        traffic.sent() >= sent_at_failover + RATE / 2,
        "the sender ran"
    );
    o.restore_path(0, 0);
    wait_links(&o, Duration::from_secs(3), "back on path 0", |l| {
        l["active_path"] == 0 && l["paths"][0]["state"] == "up"
    });
    std::thread::sleep(Duration::from_millis(300));
    eprintln!("restored after {:?}", t0.elapsed());
    let result = traffic.finish().unwrap();
    eprintln!("finished after {:?}", t0.elapsed());
    let r = &result.recv;
    eprintln!(
        "sent {}, received {}, lost {}, longest gap {:.1} ms",
        result.sent, r.received, r.lost, r.max_gap_ms
    );
    // Only failure detection's worth (100 ms dead time plus a hello) may be missing.
    assert!(r.max_gap_ms < 1_000.0, "a {:.1} ms outage", r.max_gap_ms);
    assert!(
        r.received + RATE / 2 >= result.sent,
        "received {} of {}",
        r.received,
        result.sent
    );
    let s = o.linkem().stats();
    for dir in ["a_to_b", "b_to_a"] {
        let d = &s["paths"][0][dir];
        assert!(d["down_drops"].as_u64().unwrap() > 50, "{dir}: {d}");
        assert_eq!(d["up"], true);
    }
}
