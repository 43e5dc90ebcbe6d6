//! Real-time records through the pipeline: link sequences stamped on the way out, duplicates
//! suppressed on the way in, gaps turned into Nacks, spent budgets dropped as late, Nacks
//! handed to the output, and an output without real-time state refusing them.

use core::time::Duration;

use weft_shared::DropReason;
use weft_shared::ids::{FlowId, Incarnation, LinkId, NodeId, PathId, Port};
use weft_shared::shm::fib::{FibBuilder, FibTable, UnicastRoute};
use weft_shared::time::Instant;
use weft_shared::wire::{
    DataRepr, Delivery, LinkProto, LinkRepr, NackRepr, OverlayRepr, PacketType, PacketWriter,
    RecordFlags, Route, Strikes,
};

use super::*;
use crate::realtime::{RtLinks, RtLinksLimits};

pub(super) const ME: u16 = 1;
pub(super) const PEER: u16 = 2;
pub(super) const IN_LINK: u16 = 4;
pub(super) const OUT_LINK: u16 = 7;

pub(super) fn node(n: u16) -> NodeId {
    NodeId::new(n).unwrap()
}

pub(super) fn link(n: u16) -> LinkId {
    LinkId::new(n).unwrap()
}

pub(super) struct Links;

impl LinkTable for Links {
    fn link(&self, id: LinkId) -> Option<LinkInfo> {
        match id.get() {
            IN_LINK => Some(LinkInfo {
                neighbour: node(PEER),
                path_count: 1,
                one_way_delay_us: 10_000,
            }),
            OUT_LINK => Some(LinkInfo {
                neighbour: node(3),
                path_count: 1,
                one_way_delay_us: 10_000,
            }),
            _ => None,
        }
    }
}

pub(super) fn fib() -> Box<FibTable> {
    let mut table = FibTable::new_boxed();
    FibBuilder::new(&mut table).set_unicast(
        node(3),
        UnicastRoute {
            next_hop: link(OUT_LINK),
            metric_us: 10,
        },
    );
    table
}

struct Recorder {
    rt: Option<RtLinks>,
    delivered: Vec<(u64, Option<RtDelivery>)>,
    forwarded: Vec<(LinkId, u32, u64)>,
    nacks: Vec<(LinkId, NackRepr)>,
    drops: Vec<DropReason>,
}

impl Recorder {
    fn new(with_rt: bool) -> Self {
        let links = [IN_LINK, OUT_LINK].map(|l| (link(l), Duration::from_millis(10)));
        Recorder {
            rt: with_rt.then(|| RtLinks::new(links, RtLinksLimits::default())),
            delivered: Vec::new(),
            forwarded: Vec::new(),
            nacks: Vec::new(),
            drops: Vec::new(),
        }
    }
}

impl PipelineOutput for Recorder {
    fn hello(&mut self, _rx: &LinkRepr, _hello: &weft_shared::wire::HelloRepr) {}
    fn control(&mut self, _rx: &LinkRepr, _envelope: &[u8]) {}
    fn deliver(&mut self, _rx: &LinkRepr, d: &LocalDelivery<'_>, _record_body: &[u8]) {
        self.delivered.push((d.seq, d.realtime));
    }
    fn forward(&mut self, link: LinkId, link_seq: u32, flags: RecordFlags, body: &[u8]) {
        assert_eq!(flags, RecordFlags::NONE);
        let seq = DataRepr::parse(body).unwrap().overlay.seq;
        self.forwarded.push((link, link_seq, seq));
    }
    fn drop_record(&mut self, reason: DropReason) {
        self.drops.push(reason);
    }
    fn realtime(&mut self) -> Option<&mut RtLinks> {
        self.rt.as_mut()
    }
    fn nack(&mut self, rx: &LinkRepr, nack: &NackRepr) {
        self.nacks.push((rx.link, *nack));
    }
}

fn overlay(dst: u16, seq: u64, age_us: u32) -> OverlayRepr {
    OverlayRepr {
        route: Route::Unicast(node(dst)),
        ttl: 8,
        link_proto: LinkProto::Realtime,
        delivery: Delivery::AtDeadline,
        priority: 0,
        strikes: Strikes::new(3, 2).unwrap(),
        src: node(PEER),
        src_port: Port(40),
        dst_port: Port(50),
        src_incarnation: Incarnation(9),
        flow: FlowId(3),
        seq,
        deadline_us: core::num::NonZeroU32::new(200_000),
        age_us,
    }
}

/// A packet from the peer's lane 1 on link 4 with one data record.
pub(super) fn packet(o: OverlayRepr, link_seq: u32, flags: RecordFlags) -> Vec<u8> {
    let mut sender = LinkSender::new(node(PEER), Incarnation(9), 1);
    let header = sender
        .next_header(link(IN_LINK), PathId::new(0).unwrap(), PacketType::Data)
        .unwrap();
    let mut buf = vec![0; 2048];
    let mut w = PacketWriter::new(&mut buf, &header, 2048).unwrap();
    let data = DataRepr {
        overlay: o,
        fragment: None,
        payload: b"frame",
    };
    w.records().push(flags, link_seq, &data).unwrap();
    let n = w.finish().unwrap();
    buf.truncate(n);
    buf
}

fn run(out: &mut Recorder, at_ms: u64, mut datagram: Vec<u8>) {
    let t = Instant::from_millis(at_ms);
    Forwarder::new(node(ME)).handle_datagram(t, t, &mut datagram, &fib(), &Links, out);
}

#[test]
fn forwarded_records_get_link_sequences_and_duplicates_stop_here() {
    let mut out = Recorder::new(true);
    for (link_seq, seq) in [(1, 10), (2, 11), (2, 11), (3, 12)] {
        run(
            &mut out,
            1000,
            packet(overlay(3, seq, 10_000), link_seq, RecordFlags::NONE),
        );
    }
    assert_eq!(out.drops, [DropReason::Duplicate]);
    // The next link numbers what it sends in its own space, from 1.
    let l = link(OUT_LINK);
    assert_eq!(out.forwarded, [(l, 1, 10), (l, 2, 11), (l, 3, 12)]);
    assert_eq!(out.rt.as_ref().unwrap().totals().sent, 3);
}

#[test]
fn a_gap_on_the_incoming_link_becomes_a_nack_for_the_peer_lane() {
    let mut out = Recorder::new(true);
    run(
        &mut out,
        1000,
        packet(overlay(ME, 1, 10_000), 1, RecordFlags::NONE),
    );
    run(
        &mut out,
        1001,
        packet(overlay(ME, 3, 10_000), 3, RecordFlags::NONE),
    );
    let rt = out.rt.as_mut().unwrap();
    let due = rt.poll_timeout().unwrap();
    rt.handle_timeout(due);
    let (back, nack) = rt.poll_nack().unwrap();
    assert_eq!(
        (back, nack.data_lane(), nack.seqs()),
        (link(IN_LINK), 1, &[2][..])
    );
    // The copy arrives flagged and is delivered as recovered.
    run(
        &mut out,
        1030,
        packet(overlay(ME, 2, 40_000), 2, RecordFlags::RETRANSMIT),
    );
    let recovered: Vec<_> = out
        .delivered
        .iter()
        .map(|(seq, rt)| (*seq, rt.unwrap().recovered))
        .collect();
    assert_eq!(recovered, [(1, false), (3, false), (2, true)]);
    assert_eq!(out.delivered[0].1.unwrap().deadline_us, 200_000);
    assert_eq!(out.delivered[0].1.unwrap().delivery, Delivery::AtDeadline);
}

#[test]
fn a_record_whose_budget_is_spent_is_not_forwarded() {
    let mut out = Recorder::new(true);
    // 195 ms old on arrival: the next 10 ms link takes it past 200 ms.
    run(
        &mut out,
        1000,
        packet(overlay(3, 1, 195_000), 1, RecordFlags::NONE),
    );
    assert_eq!(out.drops, [DropReason::Late]);
    assert!(out.forwarded.is_empty());
}

#[test]
fn nacks_go_to_the_output_and_nodes_without_real_time_refuse_it() {
    let mut with = Recorder::new(true);
    let mut sender = LinkSender::new(node(PEER), Incarnation(9), 0);
    let mut buf = [0u8; 512];
    let nack = NackRepr::new(LinkProto::Realtime, &[4, 5])
        .unwrap()
        .with_data_lane(1);
    let n = sender
        .write_nack(&mut buf, link(IN_LINK), PathId::new(0).unwrap(), &nack, 512)
        .unwrap();
    run(&mut with, 1000, buf[..n].to_vec());
    assert_eq!(with.nacks, [(link(IN_LINK), nack)]);

    let mut without = Recorder::new(false);
    run(
        &mut without,
        1000,
        packet(overlay(3, 1, 0), 1, RecordFlags::NONE),
    );
    assert_eq!(
        without.drops,
        [DropReason::Unsupported("real-time flows on this node")]
    );
}
