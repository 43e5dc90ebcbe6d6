//! Link failover between two paths: node 1 and node 2 share link 0 with path 0 (ISP a) and
//! path 1 (ISP b). Path 0 runs through a UDP relay in each direction (`--remote 0:0=RELAY`), so the
//! test can cut it. A client sends a message every millisecond; after the cut, the link monitors
//! declare path 0 down and move the link to path 1, and the delivery gap must stay under 1 s.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::time::{Duration, Instant};

use common::client::TestClient;
use common::relay::Relay;
use common::{Addrs, Overlay, Spec};
use weft_shared::ids::{LinkId, PathId};
use weft_shared::shm::{LinkState, StatsReader};

#[test]
fn cutting_the_active_path_fails_over_within_a_second() {
    let name = "failover";
    let addrs = Addrs::new(name);
    // Relay 1 carries node 1 -> node 2 on path 0, relay 2 the other direction.
    let relay12 = Relay::start(addrs.spare(1), addrs.node(2, 0));
    let relay21 = Relay::start(addrs.spare(2), addrs.node(1, 0));
    let mut spec = Spec::simple(2, &[(0, 1, 2)]);
    spec.extra_args = vec![
        (1, vec!["--remote".into(), format!("0:0={}", relay12.addr)]),
        (2, vec!["--remote".into(), format!("0:0={}", relay21.addr)]),
    ];
    let mut o = Overlay::start(name, spec);
    o.publish_fib(1, &[(2, 0)]);
    o.publish_fib(2, &[(1, 0)]);
    o.wait_link_up(1, 0, Some(0));
    o.wait_link_up(2, 0, Some(0));

    let mut rx = TestClient::connect(&o.session_socket(2));
    rx.bind(2);
    let mut tx = TestClient::connect(&o.session_socket(1));
    tx.bind(1);
    let flow = tx.open_flow(1, 2, 2);

    let total = Duration::from_millis(3_000);
    let cut_at = Duration::from_millis(1_000);
    let receiver = std::thread::spawn(move || {
        let mut times = Vec::new();
        let start = Instant::now();
        while start.elapsed() < total + Duration::from_millis(500) {
            if let Some(r) = rx.recv(Duration::from_millis(50)) {
                times.push((r.seq, r.at));
            }
        }
        times
    });
    let start = Instant::now();
    let mut cut = None;
    let mut sent = 0u64;
    while start.elapsed() < total {
        if cut.is_none() && start.elapsed() >= cut_at {
            relay12.cut();
            relay21.cut();
            cut = Some(Instant::now());
        }
        tx.send(flow, b"tick");
        sent += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let times = receiver.join().unwrap();
    let cut = cut.unwrap();
    // The longest silence between two deliveries around the cut.
    let gap = times
        .windows(2)
        .filter(|w| w[1].1 > cut)
        .map(|w| w[1].1.duration_since(w[0].1))
        .max()
        .unwrap();
    let lost = sent - times.len() as u64;
    eprintln!(
        "failover: sent {sent}, delivered {}, lost {lost}, longest delivery gap {gap:?}",
        times.len()
    );
    assert!(gap < Duration::from_secs(1), "gap {gap:?}");
    // Deliveries continued after the cut, on path 1.
    assert!(times.last().unwrap().1 > cut + Duration::from_millis(1_000));
    let stats = StatsReader::new(o.region(1))
        .link(LinkId::new(0).unwrap())
        .unwrap();
    assert_eq!(stats.state, LinkState::Up);
    assert_eq!(stats.active_path, PathId::new(1));
    let path0 = StatsReader::new(o.region(1))
        .path(LinkId::new(0).unwrap(), PathId::new(0).unwrap())
        .unwrap();
    assert_eq!(path0.state, LinkState::Down);
}
