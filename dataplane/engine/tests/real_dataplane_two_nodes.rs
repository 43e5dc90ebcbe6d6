//! Two real nodes on loopback: a client on node 1 sends 10,000 messages to a client on node 2
//! and every one arrives, in order, with the counters to match.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::time::Duration;

use common::client::TestClient;
use common::{Overlay, Spec};
use weft_shared::shm::Counter;

#[test]
fn ten_thousand_messages_cross_one_link() {
    let mut overlay = Overlay::start("two", Spec::simple(2, &[(0, 1, 2)]));
    overlay.publish_fib(1, &[(2, 0)]);
    overlay.publish_fib(2, &[(1, 0)]);
    overlay.wait_link_up(1, 0, Some(0));
    overlay.wait_link_up(2, 0, Some(0));

    let mut rx = TestClient::connect(&overlay.session_socket(2));
    rx.bind(500);
    let mut tx = TestClient::connect(&overlay.session_socket(1));
    tx.bind(400);
    let flow = tx.open_flow(400, 2, 500);

    const N: u64 = 10_000;
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(N as usize);
        while (got.len() as u64) < N {
            match rx.recv(Duration::from_secs(5)) {
                Some(r) => got.push(r),
                None => break,
            }
        }
        got
    });
    for i in 0..N {
        tx.send(flow, format!("message {i}").as_bytes());
    }
    let got = receiver.join().unwrap();
    assert_eq!(
        got.len() as u64,
        N,
        "node 1: {}\nnode 2: {}",
        overlay.counters_text(1),
        overlay.counters_text(2)
    );
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.seq, i as u64, "in order, none lost");
        assert_eq!(r.payload, format!("message {i}").as_bytes());
        assert_eq!(r.src.get(), 1);
        assert_eq!(r.src_port.0, 400);
    }
    assert!(overlay.counter(2, Counter::Delivered) >= N);
    let drops: u64 = overlay.counters(2).drops.iter().sum();
    assert_eq!(drops, 0, "node 2: {}", overlay.counters_text(2));
    // Both processes stop cleanly and remove their shared memory and sockets.
    let socket = overlay.session_socket(1);
    let shm = format!("/dev/shm/{}", overlay.shm_name(1));
    assert_eq!(overlay.stop(1), Some(0));
    assert!(!socket.exists() && !std::path::Path::new(&shm).exists());
}
