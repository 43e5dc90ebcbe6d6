//! Overload: a flood of data datagrams at node 2's ISP-a socket (the socket its path-0 hellos
//! arrive on) for 1.5 s. Hellos are handled before data in every batch, so link 0 never goes
//! down on either side while the flood is being dropped.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Overlay, Spec};
use weft_proto::forward::LinkSender;
use weft_shared::DropReason;
use weft_shared::ids::{FlowId, Incarnation, LinkId, NodeId, PathId, Port};
use weft_shared::shm::{Counter, LinkState, StatsReader};
use weft_shared::wire::{DataRepr, Delivery, LinkProto, OverlayRepr, Route, Strikes};

#[test]
fn a_data_flood_does_not_take_the_link_down() {
    let mut o = Overlay::start("overload", Spec::simple(2, &[(0, 1, 2)]));
    o.publish_fib(1, &[(2, 0)]);
    o.publish_fib(2, &[(1, 0)]);
    o.wait_link_up(1, 0, Some(0));
    o.wait_link_up(2, 0, Some(0));

    // Data for node 9, which node 2 has no route to: each one is parsed, looked up and dropped.
    let mut sender = LinkSender::new(NodeId::new(1).unwrap(), Incarnation(42), 3);
    let payload = [0u8; 512];
    let data = DataRepr {
        overlay: OverlayRepr {
            route: Route::Unicast(NodeId::new(9).unwrap()),
            ttl: 8,
            link_proto: LinkProto::BestEffort,
            delivery: Delivery::AsSoonAsOrdered,
            priority: 0,
            strikes: Strikes::NONE,
            src: NodeId::new(1).unwrap(),
            src_port: Port(1),
            dst_port: Port(1),
            src_incarnation: Incarnation(42),
            flow: FlowId(1),
            seq: 0,
            deadline_us: None,
            age_us: 0,
        },
        fragment: None,
        payload: &payload,
    };
    let mut buf = [0u8; 1500];
    let n = sender
        .write_data(
            &mut buf,
            LinkId::new(0).unwrap(),
            PathId::new(0).unwrap(),
            &data,
            1472,
        )
        .unwrap();
    let packet = buf[..n].to_vec();
    let target = o.addrs.node(2, 0);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let sock = UdpSocket::bind(o.addrs.spare(1)).unwrap();
            let (stop, sent, packet) = (stop.clone(), sent.clone(), packet.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        let _ = sock.send_to(&packet, target);
                    }
                    sent.fetch_add(256, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let link = LinkId::new(0).unwrap();
    let readers = [StatsReader::new(o.region(1)), StatsReader::new(o.region(2))];
    let start = Instant::now();
    let mut samples = 0;
    while start.elapsed() < Duration::from_millis(1_500) {
        for (i, r) in readers.iter().enumerate() {
            let s = r.link(link).unwrap();
            assert_eq!(
                (s.state, s.active_path),
                (LinkState::Up, PathId::new(0)),
                "node {} lost link 0 under load after {:?}",
                i + 1,
                start.elapsed()
            );
        }
        samples += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let dropped = o.counters(2).drops[DropReason::NoRoute.index()];
    let received = o.counter(2, Counter::Received);
    eprintln!(
        "overload: {} datagrams offered, node 2 received {received} and dropped {dropped} \
         ({:.0}/s) with the link up in all {samples} samples",
        sent.load(Ordering::Relaxed),
        dropped as f64 / elapsed
    );
    assert!(
        dropped > 10_000,
        "the flood did not reach the node: {}",
        o.counters_text(2)
    );
}
