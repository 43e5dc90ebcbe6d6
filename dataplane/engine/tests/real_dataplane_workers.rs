//! A node with two workers (cores 0 and 1) in the middle of a line 1 - 2 - 3. Data reaches node 2
//! from many UDP source ports, so `SO_REUSEPORT` spreads it over both workers: each forwards what
//! it receives, and worker 1 hands local deliveries to worker 0 through its ring. And a
//! one-worker neighbour's flows, from one address and port, spread over both by sub-lane.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::time::Duration;

use common::client::TestClient;
use common::{NodeSpec, Overlay, Spec};
use weft_proto::forward::LinkSender;
use weft_shared::ids::{FlowId, Incarnation, LinkId, NodeId, PathId, Port};
use weft_shared::shm::{Counter, CounterTotals};
use weft_shared::wire::{DataRepr, Delivery, LinkProto, OverlayRepr, Route, Strikes};

/// A best-effort data packet from node 1 on link 0, path 0, as node 1 would send it.
fn packet(sender: &mut LinkSender, dst: u16, dst_port: u16, seq: u64) -> Vec<u8> {
    let seq_bytes = seq.to_be_bytes();
    let data = DataRepr {
        overlay: OverlayRepr {
            route: Route::Unicast(NodeId::new(dst).unwrap()),
            ttl: 8,
            link_proto: LinkProto::BestEffort,
            delivery: Delivery::AsSoonAsOrdered,
            priority: 0,
            strikes: Strikes::NONE,
            src: NodeId::new(1).unwrap(),
            src_port: Port(99),
            dst_port: Port(dst_port),
            src_incarnation: Incarnation(77),
            flow: FlowId(5),
            seq,
            deadline_us: None,
            age_us: 0,
        },
        fragment: None,
        payload: &seq_bytes,
    };
    let mut buf = vec![0u8; 1500];
    let n = sender
        .write_data(
            &mut buf,
            LinkId::new(0).unwrap(),
            PathId::new(0).unwrap(),
            &data,
            1472,
        )
        .unwrap();
    buf.truncate(n);
    buf
}

/// The line 1 - 2 - 3 with node 2 on cores 0 and 1, static routes, every link up.
fn line_with_two_workers_at_node_2(name: &str) -> Overlay {
    let mut spec = Spec::simple(3, &[(0, 1, 2), (1, 2, 3)]);
    spec.nodes[1] = NodeSpec {
        id: 2,
        cores: vec![0, 1],
    };
    let mut o = Overlay::start(name, spec);
    o.publish_fib(1, &[(2, 0), (3, 0)]);
    o.publish_fib(2, &[(1, 0), (3, 1)]);
    o.publish_fib(3, &[(1, 1), (2, 1)]);
    for (node, link) in [(1, 0), (2, 0), (2, 1), (3, 1)] {
        o.wait_link_up(node, link, None);
    }
    o
}

#[test]
fn two_workers_forward_and_deliver() {
    let o = line_with_two_workers_at_node_2("workers");
    let mut c2 = TestClient::connect(&o.session_socket(2));
    c2.bind(20);
    let mut c3 = TestClient::connect(&o.session_socket(3));
    c3.bind(30);

    // 32 sockets, each its own 4-tuple towards node 2's ISP-a interface.
    let sockets: Vec<UdpSocket> = (0..32)
        .map(|_| UdpSocket::bind(o.addrs.spare(1)).unwrap())
        .collect();
    let target = o.addrs.node(2, 0);
    let mut sender = LinkSender::new(NodeId::new(1).unwrap(), Incarnation(77), 7);
    const N: u64 = 3_200;
    for seq in 0..N {
        let s = &sockets[(seq % 32) as usize];
        let (dst, port) = if seq % 2 == 0 { (3, 30) } else { (2, 20) };
        s.send_to(&packet(&mut sender, dst, port, seq), target)
            .unwrap();
        if seq % 64 == 0 {
            // Stay well below the socket buffers; this test is about correctness, not load.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut at3 = BTreeSet::new();
    let mut at2 = BTreeSet::new();
    while at3.len() < (N / 2) as usize {
        let r = c3.recv(Duration::from_secs(5)).unwrap_or_else(|| {
            panic!(
                "node 3 got {} of {}: node 2 {}",
                at3.len(),
                N / 2,
                o.counters_text(2)
            )
        });
        at3.insert(r.seq);
    }
    while at2.len() < (N / 2) as usize {
        let r = c2.recv(Duration::from_secs(5)).unwrap_or_else(|| {
            panic!(
                "node 2 got {} of {}: {}",
                at2.len(),
                N / 2,
                o.counters_text(2)
            )
        });
        at2.insert(r.seq);
    }
    assert!(at3.iter().all(|s| s % 2 == 0) && at2.iter().all(|s| s % 2 == 1));
    let region = o.region(2);
    let w0 = CounterTotals::read_worker(&region, 0);
    let w1 = CounterTotals::read_worker(&region, 1);
    eprintln!(
        "worker 0: received {} forwarded {} delivered {}; worker 1: received {} forwarded {}",
        w0.get(Counter::Received),
        w0.get(Counter::Forwarded),
        w0.get(Counter::Delivered),
        w1.get(Counter::Received),
        w1.get(Counter::Forwarded),
    );
    assert!(w1.get(Counter::Forwarded) > 0, "worker 1 forwarded nothing");
    assert!(w0.get(Counter::Forwarded) > 0, "worker 0 forwarded nothing");
    assert_eq!(
        w0.get(Counter::Forwarded) + w1.get(Counter::Forwarded),
        N / 2
    );
    // Every delivery, including those worker 1 received, was handed to the client by worker 0.
    assert_eq!(w0.get(Counter::Delivered), N / 2);
    assert_eq!(w1.get(Counter::Delivered), 0);
}

/// Node 1 runs one worker and sends from one address and port, so without sub-lanes its
/// whole link to node 2 would reach one of node 2's two workers. Its best-effort flows go on
/// one of two sub-lanes each (node 2 has two workers), which node 2's steering sends to
/// different workers: both forward, and every flow arrives whole and in order at node 3.
#[test]
fn one_workers_flows_spread_over_the_next_nodes_workers() {
    let o = line_with_two_workers_at_node_2("sublanes");
    let mut c3 = TestClient::connect(&o.session_socket(3));
    c3.bind(30);
    let mut c1 = TestClient::connect(&o.session_socket(1));
    const FLOWS: u16 = 8;
    const PER_FLOW: u64 = 200;
    let flows: Vec<_> = (0..FLOWS)
        .map(|k| {
            c1.bind(10 + k);
            c1.open_flow(10 + k, 3, 30)
        })
        .collect();
    for i in 0..PER_FLOW {
        for f in &flows {
            c1.send(*f, &i.to_be_bytes());
        }
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut seqs: std::collections::BTreeMap<u16, Vec<u64>> = Default::default();
    let total = u64::from(FLOWS) * PER_FLOW;
    for _ in 0..total {
        let r = c3.recv(Duration::from_secs(5)).unwrap_or_else(|| {
            panic!(
                "node 3 got {} of {total}: node 2 {}",
                seqs.values().map(Vec::len).sum::<usize>(),
                o.counters_text(2)
            )
        });
        seqs.entry(r.src_port.0).or_default().push(r.seq);
    }
    assert_eq!(seqs.len(), usize::from(FLOWS));
    for (port, s) in &seqs {
        let sorted = {
            let mut v = s.clone();
            v.sort_unstable();
            v
        };
        assert_eq!(s, &sorted, "flow from port {port} reordered");
        assert_eq!(s.len() as u64, PER_FLOW, "flow from port {port}");
    }
    let region = o.region(2);
    let w0 = CounterTotals::read_worker(&region, 0);
    let w1 = CounterTotals::read_worker(&region, 1);
    eprintln!(
        "node 2: worker 0 received {} forwarded {}; worker 1 received {} forwarded {}",
        w0.get(Counter::Received),
        w0.get(Counter::Forwarded),
        w1.get(Counter::Received),
        w1.get(Counter::Forwarded),
    );
    assert!(w0.get(Counter::Forwarded) > 0, "worker 0 forwarded nothing");
    assert!(w1.get(Counter::Forwarded) > 0, "worker 1 forwarded nothing");
    assert_eq!(
        w0.get(Counter::Forwarded) + w1.get(Counter::Forwarded),
        total
    );
}
