//! The `weft-client` library against real nodes: messages of every size up to the node's
//! `max_payload` cross a link, and a message between two clients of the same node is delivered
//! locally (never touching the network).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::time::Duration;

use common::{Overlay, Spec};
use weft_client::{Addr, Client, Service};
use weft_shared::ids::{NodeId, Port};
use weft_shared::shm::Counter;

/// Nodes 1 and 2 on link 0, routed to each other, the link up at both ends.
fn two_nodes(name: &str) -> Overlay {
    let mut o = Overlay::start(name, Spec::simple(2, &[(0, 1, 2)]));
    o.publish_fib(1, &[(2, 0)]);
    o.publish_fib(2, &[(1, 0)]);
    o.wait_link_up(1, 0, None);
    o.wait_link_up(2, 0, None);
    o
}

#[test]
fn the_client_library_talks_across_and_within_nodes() {
    let o = two_nodes("client");

    let mut a = Client::connect(o.session_socket(1), "a").unwrap();
    let mut b = Client::connect(o.session_socket(2), "b").unwrap();
    let mut a2 = Client::connect(o.session_socket(1), "a2").unwrap();
    let pa = a.bind(Port(0)).unwrap();
    let pb = b.bind(Port(900)).unwrap();
    let pa2 = a2.bind(Port(901)).unwrap();
    let to_b = Addr {
        node: NodeId::new(2).unwrap(),
        port: pb,
    };
    let to_a2 = Addr {
        node: NodeId::new(1).unwrap(),
        port: pa2,
    };
    let remote = a.open_flow(pa, to_b, Service::default()).unwrap();
    let local = a.open_flow(pa, to_a2, Service::default()).unwrap();

    // 1,396 B is the largest payload one packet carries on a 1500-byte-MTU link.
    let payloads: Vec<Vec<u8>> = (0..1397u32)
        .step_by(7)
        .map(|n| (0..n).map(|i| (i ^ n) as u8).collect())
        .collect();
    assert_eq!(a.send_batch(&remote, &payloads).unwrap(), payloads.len());
    assert_eq!(a.send_batch(&local, &payloads).unwrap(), payloads.len());
    let mut buf = vec![0u8; 2048];
    for (who, c) in [("remote", &mut b), ("local", &mut a2)] {
        for (i, want) in payloads.iter().enumerate() {
            let d = c
                .recv_timeout(&mut buf, Duration::from_secs(10))
                .unwrap()
                .unwrap_or_else(|| panic!("{who}: message {i} missing: {}", o.counters_text(1)));
            assert_eq!(d.seq, i as u64, "{who}");
            assert_eq!(d.from.port, pa, "{who}");
            assert_eq!(&buf[..d.len], want.as_slice(), "{who}");
        }
    }
    let n = payloads.len() as u64;
    assert_eq!(
        o.counter(1, Counter::Delivered),
        n,
        "node 1 delivered the local ones"
    );
    assert_eq!(o.counter(2, Counter::Delivered), n);
    // One byte more than a packet carries is refused by the node.
    assert!(a.send(&remote, &vec![0u8; 1397]).is_err());
}

/// A best-effort flow with a pack delay: node 1 holds its paced messages (one per session
/// write, 100 us apart) so that up to 13 share a datagram, where the same flow without one
/// sends about a datagram per message; every message arrives, in order.
#[test]
fn a_pack_delay_packs_a_paced_flow_into_few_datagrams() {
    let o = two_nodes("pack-delay");
    let mut a = Client::connect(o.session_socket(1), "a").unwrap();
    let mut b = Client::connect(o.session_socket(2), "b").unwrap();
    let pa = a.bind(Port(0)).unwrap();
    let pb = b.bind(Port(900)).unwrap();
    let to_b = Addr {
        node: NodeId::new(2).unwrap(),
        port: pb,
    };
    let held = a
        .open_flow(pa, to_b, Service::best_effort().pack_delay(3_000))
        .unwrap();
    let plain = a.open_flow(pa, to_b, Service::best_effort()).unwrap();
    let n = 130u64;
    let mut datagrams = Vec::new();
    let mut buf = vec![0u8; 2048];
    for flow in [&held, &plain] {
        let before = o.counter(1, Counter::Sent);
        for i in 0..n {
            a.send(flow, &[i as u8; 100]).unwrap();
            std::thread::sleep(Duration::from_micros(100));
        }
        for i in 0..n {
            let d = b
                .recv_timeout(&mut buf, Duration::from_secs(10))
                .unwrap()
                .unwrap_or_else(|| panic!("message {i} missing: {}", o.counters_text(1)));
            assert_eq!(
                d.seq,
                i,
                "node 1: {}\nnode 2: {}",
                o.counters_text(1),
                o.counters_text(2)
            );
            assert_eq!(buf[..d.len], [i as u8; 100]);
        }
        // Sent counts every datagram node 1 sent, hellos (every 10 ms per path) included.
        datagrams.push(o.counter(1, Counter::Sent) - before);
    }
    println!(
        "datagrams for {n} messages: held {}, plain {}",
        datagrams[0], datagrams[1]
    );
    assert!(datagrams[0] <= 40, "{datagrams:?}");
    assert!(datagrams[1] >= 2 * datagrams[0], "{datagrams:?}");
}
