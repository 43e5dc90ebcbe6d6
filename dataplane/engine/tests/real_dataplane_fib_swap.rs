//! A FIB swapped under load: in a triangle (links 0: 1-2, 1: 2-3, 2: 1-3) node 1 sends to node 3
//! while the test publishes new generations on node 1 that move the route from the direct link
//! to the detour through node 2 and back. No message is lost; node 2 forwards part of them.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::client::TestClient;
use common::{Overlay, Spec};
use weft_shared::shm::Counter;

#[test]
fn swapping_the_route_loses_nothing() {
    let mut o = Overlay::start(
        "fibswap",
        Spec::simple(3, &[(0, 1, 2), (1, 2, 3), (2, 1, 3)]),
    );
    o.publish_fib(1, &[(2, 0), (3, 2)]);
    o.publish_fib(2, &[(1, 0), (3, 1)]);
    o.publish_fib(3, &[(1, 2), (2, 1)]);
    for (node, link) in [(1, 0), (1, 2), (2, 0), (2, 1), (3, 1), (3, 2)] {
        o.wait_link_up(node, link, None);
    }
    let mut rx = TestClient::connect(&o.session_socket(3));
    rx.bind(3);
    let mut tx = TestClient::connect(&o.session_socket(1));
    tx.bind(1);
    let flow = tx.open_flow(1, 3, 3);

    const N: u64 = 20_000;
    let receiver = std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        while (seen.len() as u64) < N {
            match rx.recv(Duration::from_secs(5)) {
                Some(r) => {
                    assert!(seen.insert(r.seq), "duplicate {}", r.seq);
                }
                None => break,
            }
        }
        seen
    });
    let mut generations = 0;
    for i in 0..N {
        tx.send(flow, &i.to_be_bytes());
        if i % 2_000 == 1_000 {
            // Direct (link 2) <-> detour via node 2 (link 0), alternately.
            let via = if generations % 2 == 0 { 0 } else { 2 };
            o.publish_fib(1, &[(2, 0), (3, via)]);
            generations += 1;
        }
    }
    let seen = receiver.join().unwrap();
    let missing: Vec<u64> = (0..N).filter(|s| !seen.contains(s)).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {N} arrived; first missing {missing:?}; node 1 {}; node 2 {}",
        seen.len(),
        o.counters_text(1),
        o.counters_text(2)
    );
    let forwarded = o.counter(2, Counter::Forwarded);
    eprintln!("fib swap: {generations} generations published, node 2 forwarded {forwarded}");
    assert!(
        forwarded > 0 && forwarded < N,
        "node 2 forwarded {forwarded}"
    );
}
