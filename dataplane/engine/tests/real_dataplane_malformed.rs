//! Garbage sent to a node's UDP port: truncated datagrams, an unknown wire version, an unknown
//! packet type, a bad record length and a packet on a link the node does not have are each
//! counted as drops in shared memory, and the node keeps forwarding.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::client::TestClient;
use common::{Overlay, Spec};
use weft_proto::forward::LinkSender;
use weft_shared::DropReason;
use weft_shared::ids::{Incarnation, LinkId, NodeId, PathId};
use weft_shared::wire::HelloRepr;

fn drops(o: &Overlay, node: u16, reason: DropReason) -> u64 {
    o.counters(node).drops[reason.index()]
}

#[test]
fn malformed_datagrams_are_counted_and_forwarding_goes_on() {
    let mut o = Overlay::start("malformed", Spec::simple(2, &[(0, 1, 2)]));
    o.publish_fib(1, &[(2, 0)]);
    o.publish_fib(2, &[(1, 0)]);
    o.wait_link_up(1, 0, None);
    o.wait_link_up(2, 0, None);
    let mut rx = TestClient::connect(&o.session_socket(2));
    rx.bind(7);
    let mut tx = TestClient::connect(&o.session_socket(1));
    tx.bind(8);
    let flow = tx.open_flow(8, 2, 7);
    tx.send(flow, b"before");
    assert_eq!(rx.recv(Duration::from_secs(5)).unwrap().payload, b"before");

    // A well-formed hello to take apart.
    let mut sender = LinkSender::new(NodeId::new(1).unwrap(), Incarnation(5), 0);
    let hello = HelloRepr {
        version_min: 1,
        version_max: 1,
        hello_seq: 1,
        tx_time_ns: 1,
        echo: None,
        config_hash: 0,
        key_epoch: None,
    };
    let mut good = [0u8; 128];
    let n = sender
        .write_hello(
            &mut good,
            LinkId::new(0).unwrap(),
            PathId::new(0).unwrap(),
            &hello,
        )
        .unwrap();
    let good = &good[..n];
    let mut wrong_version = good.to_vec();
    wrong_version[0] = 9;
    let mut unknown_type = good.to_vec();
    unknown_type[1] = 0x55;
    let mut bad_len = good.to_vec();
    bad_len[24 + 2] = 0xff; // record length far past the end
    let mut other_link = [0u8; 128];
    let m = sender
        .write_hello(
            &mut other_link,
            LinkId::new(9).unwrap(),
            PathId::new(0).unwrap(),
            &hello,
        )
        .unwrap();

    let before = [
        drops(&o, 2, DropReason::Truncated { needed: 0, got: 0 }),
        drops(&o, 2, DropReason::UnsupportedVersion(0)),
        drops(&o, 2, DropReason::UnknownPacketType(0)),
        drops(
            &o,
            2,
            DropReason::BadLength {
                field: "",
                value: 0,
            },
        ),
        drops(&o, 2, DropReason::UnknownLink(0)),
    ];
    let s = UdpSocket::bind(o.addrs.spare(1)).unwrap();
    let target = o.addrs.node(2, 0);
    const ROUNDS: u64 = 50;
    for _ in 0..ROUNDS {
        s.send_to(&good[..5], target).unwrap(); // truncated link header
        s.send_to(&good[..24], target).unwrap(); // header without records: truncated
        s.send_to(&wrong_version, target).unwrap();
        s.send_to(&unknown_type, target).unwrap();
        s.send_to(&bad_len, target).unwrap();
        s.send_to(&other_link[..m], target).unwrap();
        s.send_to(&[], target).unwrap(); // empty: truncated
    }
    let expected = [3 * ROUNDS, ROUNDS, ROUNDS, ROUNDS, ROUNDS];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = [
            drops(&o, 2, DropReason::Truncated { needed: 0, got: 0 }),
            drops(&o, 2, DropReason::UnsupportedVersion(0)),
            drops(&o, 2, DropReason::UnknownPacketType(0)),
            drops(
                &o,
                2,
                DropReason::BadLength {
                    field: "",
                    value: 0,
                },
            ),
            drops(&o, 2, DropReason::UnknownLink(0)),
        ];
        let delta: Vec<u64> = now.iter().zip(before).map(|(a, b)| a - b).collect();
        if delta == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "drops {delta:?}, expected {expected:?}: {}",
            o.counters_text(2)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The node is still up and forwarding.
    for i in 0..100u32 {
        tx.send(flow, &i.to_be_bytes());
    }
    for i in 0..100u32 {
        let r = rx.recv(Duration::from_secs(5)).unwrap();
        assert_eq!(r.payload, i.to_be_bytes());
    }
    o.wait_link_up(2, 0, None);
}
