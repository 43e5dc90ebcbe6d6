//! Reliable records through the pipeline: new records delivered or taken by the next link's
//! sender and only then acked, duplicates dropped and acked again, records without room or
//! route refused (not acked), feedback handed to the output, and an output without reliable
//! state refusing them.

use core::time::Duration;

use weft_shared::DropReason;
use weft_shared::ids::{FlowId, Incarnation, LinkId, PathId, Port};
use weft_shared::time::Instant;
use weft_shared::wire::{
    AckRepr, DataRepr, Delivery, LinkProto, LinkRepr, OverlayRepr, PacketType, PacketWriter,
    RecordFlags, Route, Strikes,
};

use super::tests_realtime::{IN_LINK, Links, ME, OUT_LINK, PEER, fib, link, node, packet};
use super::*;
use crate::reliable::{RelFeedback, RelLinks, RelLinksLimits, RelSenderLimits};

struct Recorder {
    rel: Option<RelLinks>,
    delivered: Vec<(u64, bool)>,
    feedback: Vec<(LinkId, RelFeedback)>,
    drops: Vec<DropReason>,
}

impl Recorder {
    fn new(with_rel: bool, window: u32) -> Self {
        let links = [IN_LINK, OUT_LINK].map(|l| (link(l), Duration::from_millis(20)));
        let limits = RelLinksLimits {
            sender: RelSenderLimits {
                window,
                record_len: 1448,
            },
            ..RelLinksLimits::default()
        };
        Recorder {
            rel: with_rel.then(|| RelLinks::new(links, limits)),
            delivered: Vec::new(),
            feedback: Vec::new(),
            drops: Vec::new(),
        }
    }

    fn rel(&mut self) -> &mut RelLinks {
        self.rel.as_mut().unwrap()
    }

    /// What the reliable state transmits now: (link, link_seq, e2e seq, retransmission).
    fn transmitted(&mut self, at_ms: u64) -> Vec<(LinkId, u32, u64, bool)> {
        let mut out = Vec::new();
        self.rel()
            .poll_transmit(Instant::from_millis(at_ms), |l, s, f, body| {
                let seq = DataRepr::parse(body).unwrap().overlay.seq;
                out.push((l, s, seq, f == RecordFlags::RETRANSMIT));
            });
        out
    }

    /// The feedback due at `at_ms` for the incoming link.
    fn feedback_due(&mut self, at_ms: u64) -> Vec<RelFeedback> {
        let mut out = Vec::new();
        while let Some((l, fb)) = self.rel().poll_feedback(Instant::from_millis(at_ms)) {
            assert_eq!(l, link(IN_LINK));
            out.push(fb);
        }
        out
    }
}

impl PipelineOutput for Recorder {
    fn hello(&mut self, _rx: &LinkRepr, _hello: &weft_shared::wire::HelloRepr) {}
    fn control(&mut self, _rx: &LinkRepr, _envelope: &[u8]) {}
    fn deliver(&mut self, _rx: &LinkRepr, d: &LocalDelivery<'_>, _record_body: &[u8]) {
        self.delivered.push((d.seq, d.reliable));
    }
    fn forward(&mut self, _link: LinkId, _link_seq: u32, _flags: RecordFlags, _body: &[u8]) {
        panic!("reliable records leave through RelLinks::poll_transmit");
    }
    fn drop_record(&mut self, reason: DropReason) {
        self.drops.push(reason);
    }
    fn reliable(&mut self) -> Option<&mut RelLinks> {
        self.rel.as_mut()
    }
    fn reliable_feedback(&mut self, rx: &LinkRepr, feedback: &RelFeedback) {
        self.feedback.push((rx.link, *feedback));
    }
}

fn overlay(dst: u16, seq: u64) -> OverlayRepr {
    OverlayRepr {
        route: Route::Unicast(node(dst)),
        ttl: 8,
        link_proto: LinkProto::Reliable,
        delivery: Delivery::AsSoonAsOrdered,
        priority: 0,
        strikes: Strikes::NONE,
        src: node(PEER),
        src_port: Port(40),
        dst_port: Port(50),
        src_incarnation: Incarnation(9),
        flow: FlowId(3),
        seq,
        deadline_us: None,
        age_us: 0,
    }
}

fn run(out: &mut Recorder, at_ms: u64, mut datagram: Vec<u8>) {
    let t = Instant::from_millis(at_ms);
    Forwarder::new(node(ME)).handle_datagram(t, t, &mut datagram, &fib(), &Links, out);
}

#[test]
fn forwarded_records_are_taken_by_the_next_link_and_acked_once_taken() {
    let mut out = Recorder::new(true, 64);
    for (link_seq, seq) in [(1, 10), (2, 11), (2, 11), (3, 12)] {
        run(
            &mut out,
            1000,
            packet(overlay(3, seq), link_seq, RecordFlags::NONE),
        );
    }
    assert_eq!(out.drops, [DropReason::Duplicate]);
    let l = link(OUT_LINK);
    assert_eq!(
        out.transmitted(1000),
        [(l, 1, 10, false), (l, 2, 11, false), (l, 3, 12, false)]
    );
    // The duplicate made an ack due at once; it covers all three.
    let fb = out.feedback_due(1000);
    assert!(
        matches!(fb.as_slice(), [RelFeedback::Ack(a)] if a.cum_ack == 3 && a.data_lane == 1),
        "{fb:?}"
    );
}

#[test]
fn records_for_this_node_are_delivered_as_reliable_and_gaps_requested() {
    let mut out = Recorder::new(true, 64);
    run(&mut out, 1000, packet(overlay(ME, 1), 1, RecordFlags::NONE));
    run(&mut out, 1001, packet(overlay(ME, 3), 3, RecordFlags::NONE));
    assert_eq!(out.delivered, [(1, true), (3, true)]);
    let fb = out.feedback_due(1010);
    let nack = fb.iter().find_map(|f| match f {
        RelFeedback::Nack(n) => Some(*n),
        RelFeedback::Ack(_) => None,
    });
    let nack = nack.expect("the gap is requested");
    assert_eq!((nack.seqs(), nack.data_lane()), (&[2][..], 1));
    assert_eq!(nack.link_proto(), LinkProto::Reliable);
}

#[test]
fn a_full_next_link_refuses_the_record_without_acking_it() {
    let mut out = Recorder::new(true, 2);
    for (link_seq, seq) in [(1, 10), (2, 11), (3, 12)] {
        run(
            &mut out,
            1000,
            packet(overlay(3, seq), link_seq, RecordFlags::NONE),
        );
    }
    assert_eq!(out.drops, [DropReason::QueueFull]);
    let fb = out.feedback_due(1001);
    assert!(
        matches!(fb.as_slice(), [RelFeedback::Ack(a)] if a.cum_ack == 2 && a.sack == 0),
        "{fb:?}"
    );
    assert_eq!(out.rel().totals().refused, 1);
}

#[test]
fn a_record_without_a_route_is_refused_and_one_past_its_ttl_is_acked_and_dropped() {
    let mut out = Recorder::new(true, 64);
    run(&mut out, 1000, packet(overlay(6, 1), 1, RecordFlags::NONE));
    let mut spent = overlay(3, 2);
    spent.ttl = 1;
    run(&mut out, 1000, packet(spent, 2, RecordFlags::NONE));
    assert_eq!(out.drops, [DropReason::NoRoute, DropReason::TtlExpired]);
    let fb = out.feedback_due(1001);
    assert!(
        matches!(fb.as_slice(), [RelFeedback::Ack(a)] if a.cum_ack == 0 && a.sack == 0b10),
        "only the TTL-spent one is acked: {fb:?}"
    );
}

#[test]
fn feedback_goes_to_the_output_and_without_reliable_state_data_is_refused() {
    let mut out = Recorder::new(false, 64);
    run(&mut out, 1000, packet(overlay(3, 1), 1, RecordFlags::NONE));
    assert_eq!(
        out.drops,
        [DropReason::Unsupported("reliable flows on this node")]
    );
    let mut sender = LinkSender::new(node(PEER), Incarnation(9), 1);
    let header = sender
        .next_header(link(IN_LINK), PathId::new(0).unwrap(), PacketType::Feedback)
        .unwrap();
    let mut buf = vec![0; 256];
    let mut w = PacketWriter::new(&mut buf, &header, 256).unwrap();
    let ack = AckRepr {
        link_proto: LinkProto::Reliable,
        data_lane: 0,
        cum_ack: 7,
        sack: 0,
    };
    w.records().push(RecordFlags::NONE, 0, &ack).unwrap();
    let n = w.finish().unwrap();
    buf.truncate(n);
    run(&mut out, 1000, buf);
    assert_eq!(out.feedback, [(link(IN_LINK), RelFeedback::Ack(ack))]);
}
