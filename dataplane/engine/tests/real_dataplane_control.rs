//! The control path: a control plane attaches to each node through `<session_socket>.attach`
//! (region fd, punt eventfd, inject eventfd by SCM_RIGHTS). An envelope injected on node 1 for
//! link 0 leaves as a Control packet on the link's active path, and node 2 punts it; the punt
//! ring's eventfd wakes the sleeping consumer.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::time::{Duration, Instant};

use common::{Overlay, Spec, attach};
use weft_shared::ids::{Incarnation, LinkId, NodeId, PathId};
use weft_shared::shm::{Notify, PacketMeta, RingConsumer, RingId, RingProducer};
use weft_shared::wire::{ControlKind, ControlRepr};

#[test]
fn injected_control_packets_are_punted_by_the_neighbour() {
    let mut o = Overlay::start("control", Spec::simple(2, &[(0, 1, 2)]));
    o.wait_link_up(1, 0, None);
    o.wait_link_up(2, 0, None);
    let (region1, _punt1, inject1) = attach(&o, 1);
    let (region2, punt2, _inject2) = attach(&o, 2);
    let region1 = std::sync::Arc::new(region1);
    let region2 = std::sync::Arc::new(region2);
    assert_ne!(region2.dataplane_incarnation(), Incarnation(0));
    let mut producer = RingProducer::attach(region1, RingId::Inject(0)).unwrap();
    let mut consumer = RingConsumer::attach(region2, RingId::Punt(0)).unwrap();

    const N: u32 = 100;
    let mut got = Vec::new();
    let start = Instant::now();
    for seq in 0..N {
        let body = format!("link state {seq}");
        let envelope = ControlRepr {
            origin: NodeId::new(1).unwrap(),
            origin_incarnation: Incarnation(3),
            update_seq: seq,
            kind: ControlKind::LinkState,
            body: body.as_bytes(),
        };
        let mut buf = [0u8; 256];
        let n = envelope.emit(&mut buf).unwrap();
        let meta = PacketMeta {
            link: LinkId::new(0),
            path: None,
            flags: 0,
        };
        if producer.push(meta, &buf[..n]).unwrap() == Notify::NeedsWakeup {
            inject1.notify().unwrap();
        }
        // Sleep like a control plane would: announce it, then block on the punt eventfd.
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() <= seq as usize {
            consumer.pop_burst(64, |meta, bytes| {
                got.push((meta, bytes.to_vec()));
            });
            if got.len() > seq as usize {
                break;
            }
            if consumer.prepare_sleep() {
                punt2.wait(Some(Duration::from_millis(500))).unwrap();
                let _ = punt2.drain();
            }
            consumer.finish_sleep();
            assert!(Instant::now() < deadline, "envelope {seq} was not punted");
        }
    }
    eprintln!("{N} envelopes injected and punted in {:?}", start.elapsed());
    for (seq, (meta, bytes)) in got.iter().enumerate() {
        assert_eq!(meta.link, LinkId::new(0));
        assert!(meta.path == PathId::new(0) || meta.path == PathId::new(1));
        let c = ControlRepr::parse(bytes).unwrap();
        assert_eq!(c.update_seq, seq as u32);
        assert_eq!(c.body, format!("link state {seq}").as_bytes());
    }
    assert_eq!(o.stop(1), Some(0), "node 1 stops cleanly");
}
