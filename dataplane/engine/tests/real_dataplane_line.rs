//! Three real nodes in a line, 1 - 2 - 3: node 2 forwards both ways, and counts it.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::time::Duration;

use common::client::TestClient;
use common::{Overlay, Spec};
use weft_shared::shm::Counter;

#[test]
fn the_middle_node_forwards_both_ways() {
    let mut o = Overlay::start("line", Spec::simple(3, &[(0, 1, 2), (1, 2, 3)]));
    o.publish_fib(1, &[(2, 0), (3, 0)]);
    o.publish_fib(2, &[(1, 0), (3, 1)]);
    o.publish_fib(3, &[(1, 1), (2, 1)]);
    for (node, link) in [(1, 0), (2, 0), (2, 1), (3, 1)] {
        o.wait_link_up(node, link, None);
    }
    let mut c1 = TestClient::connect(&o.session_socket(1));
    c1.bind(10);
    let mut c3 = TestClient::connect(&o.session_socket(3));
    c3.bind(30);
    let to3 = c1.open_flow(10, 3, 30);
    let to1 = c3.open_flow(30, 1, 10);

    const N: u64 = 2_000;
    for i in 0..N {
        c1.send(to3, &i.to_be_bytes());
        c3.send(to1, &i.to_be_bytes());
    }
    for (name, c) in [("node 3", &mut c3), ("node 1", &mut c1)] {
        for i in 0..N {
            let r = c
                .recv(Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{name}: message {i} missing"));
            assert_eq!(r.seq, i);
            assert_eq!(r.payload, i.to_be_bytes());
            // TTL and age were updated on the way: two hops of loopback age.
            assert!(r.age_us < 1_000_000);
        }
    }
    assert!(
        o.counter(2, Counter::Forwarded) >= 2 * N,
        "node 2: {}",
        o.counters_text(2)
    );
    assert_eq!(o.counter(2, Counter::Delivered), 0);
}
