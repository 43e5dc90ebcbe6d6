//! Hand-built packets through the pipeline: deliver, forward, TTL, no route, malformed input,
//! unsupported features, and the sender's packet numbering.

use core::time::Duration;

use weft_shared::DropReason;
use weft_shared::ids::{FlowId, GroupId, Incarnation, LinkId, NodeId, PathId, Port};
use weft_shared::shm::fib::{FibBuilder, FibTable, UnicastRoute};
use weft_shared::time::Instant;
use weft_shared::wire::{
    AckRepr, ControlKind, ControlRepr, DataRepr, Delivery, HelloEcho, HelloRepr, LINK_HEADER_LEN,
    LinkMask, LinkPacket, LinkProto, LinkRepr, OverlayRepr, PacketType, PacketWriter, RecordFlags,
    Route, Strikes, parse_packet,
};

use super::*;
use crate::link_monitor::{HelloFields, VersionRange};

const ME: u16 = 1;
const PEER: u16 = 2;
/// Link 4 joins node 1 (us) and node 2; link 7 joins us and node 3.
const IN_LINK: u16 = 4;
const OUT_LINK: u16 = 7;
const OUT_DELAY_US: u32 = 5_000;

fn node(n: u16) -> NodeId {
    NodeId::new(n).unwrap()
}

fn link(n: u16) -> LinkId {
    LinkId::new(n).unwrap()
}

fn path(n: u8) -> PathId {
    PathId::new(n).unwrap()
}

struct Links;

impl LinkTable for Links {
    fn link(&self, id: LinkId) -> Option<LinkInfo> {
        match id.get() {
            IN_LINK => Some(LinkInfo {
                neighbour: node(PEER),
                path_count: 2,
                one_way_delay_us: 1_000,
            }),
            OUT_LINK => Some(LinkInfo {
                neighbour: node(3),
                path_count: 1,
                one_way_delay_us: OUT_DELAY_US,
            }),
            _ => None,
        }
    }
}

/// Routes: node 3 via link 7, node 5 via link 9 (which we do not have); nothing else.
fn fib() -> Box<FibTable> {
    let mut table = FibTable::new_boxed();
    let mut b = FibBuilder::new(&mut table);
    b.set_unicast(
        node(3),
        UnicastRoute {
            next_hop: link(OUT_LINK),
            metric_us: 10,
        },
    );
    b.set_unicast(
        node(5),
        UnicastRoute {
            next_hop: link(9),
            metric_us: 10,
        },
    );
    table
}

#[derive(Debug, Default)]
struct Recorder {
    hellos: Vec<(LinkRepr, HelloRepr)>,
    controls: Vec<(LinkRepr, Vec<u8>)>,
    delivered: Vec<(Port, NodeId, u64, u32, Vec<u8>)>,
    forwarded: Vec<(LinkId, Vec<u8>)>,
    drops: Vec<DropReason>,
}

impl PipelineOutput for Recorder {
    fn hello(&mut self, rx: &LinkRepr, hello: &HelloRepr) {
        self.hellos.push((*rx, *hello));
    }
    fn control(&mut self, rx: &LinkRepr, envelope: &[u8]) {
        self.controls.push((*rx, envelope.to_vec()));
    }
    fn deliver(&mut self, _rx: &LinkRepr, d: &LocalDelivery<'_>, record_body: &[u8]) {
        // The record body handed along parses to the same delivery (the cross-worker path).
        assert_eq!(LocalDelivery::parse(record_body, false).unwrap(), *d);
        self.delivered
            .push((d.dst_port, d.src, d.seq, d.age_us, d.payload.to_vec()));
    }
    fn forward(&mut self, link: LinkId, link_seq: u32, flags: RecordFlags, record_body: &[u8]) {
        assert_eq!(
            (link_seq, flags),
            (0, RecordFlags::NONE),
            "best effort only"
        );
        self.forwarded.push((link, record_body.to_vec()));
    }
    fn drop_record(&mut self, reason: DropReason) {
        self.drops.push(reason);
    }
}

fn overlay(route: Route, ttl: u8, seq: u64) -> OverlayRepr {
    OverlayRepr {
        route,
        ttl,
        link_proto: LinkProto::BestEffort,
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
        age_us: 100,
    }
}

/// A data packet from the peer on link 4, path 1, with one record per overlay header.
fn data_packet(overlays: &[OverlayRepr], payload: &[u8]) -> Vec<u8> {
    let mut sender = LinkSender::new(node(PEER), Incarnation(9), 0);
    let header = sender
        .next_header(link(IN_LINK), path(1), PacketType::Data)
        .unwrap();
    let mut buf = vec![0; 2048];
    let mut w = PacketWriter::new(&mut buf, &header, 2048).unwrap();
    for o in overlays {
        let data = DataRepr {
            overlay: *o,
            fragment: None,
            payload,
        };
        w.records().push(RecordFlags::NONE, 0, &data).unwrap();
    }
    let n = w.finish().unwrap();
    buf.truncate(n);
    buf
}

fn run(datagram: &mut [u8]) -> Recorder {
    let mut out = Recorder::default();
    let rx_at = Instant::from_millis(10);
    let now = rx_at.saturating_add(Duration::from_micros(7));
    Forwarder::new(node(ME)).handle_datagram(rx_at, now, datagram, &fib(), &Links, &mut out);
    out
}

#[test]
fn data_for_this_node_is_delivered_with_residence_added_to_its_age() {
    let mut pkt = data_packet(&[overlay(Route::Unicast(node(ME)), 1, 77)], b"hello");
    let out = run(&mut pkt);
    assert_eq!(out.drops, []);
    assert!(out.forwarded.is_empty());
    // TTL 1 does not matter for local delivery; age 100 + 7 us residence.
    assert_eq!(
        out.delivered,
        vec![(Port(50), node(PEER), 77, 107, b"hello".to_vec())]
    );
}

#[test]
fn data_for_another_node_is_forwarded_with_ttl_and_age_updated() {
    let mut pkt = data_packet(&[overlay(Route::Unicast(node(3)), 8, 5)], b"payload");
    let out = run(&mut pkt);
    assert_eq!(out.drops, []);
    assert!(out.delivered.is_empty());
    let [(l, body)] = &out.forwarded[..] else {
        panic!("one forward expected: {out:?}");
    };
    assert_eq!(*l, link(OUT_LINK));
    let data = DataRepr::parse(body).unwrap();
    assert_eq!(data.overlay.ttl, 7);
    assert_eq!(data.overlay.age_us, 100 + 7 + OUT_DELAY_US);
    assert_eq!(data.payload, b"payload");
    // The sender wraps it for the next hop, and the result is a valid packet on that link.
    let mut sender = LinkSender::new(node(ME), Incarnation(1), 3);
    let mut buf = [0u8; 2048];
    let n = sender
        .write_data_record(&mut buf, *l, path(0), body, 1472)
        .unwrap();
    let summary = parse_packet(&buf[..n]).unwrap();
    assert_eq!(summary.header.link, link(OUT_LINK));
    assert_eq!(summary.header.sender, node(ME));
    assert_eq!(summary.header.lane, 3);
    assert_eq!(summary.data_payload_bytes, 7);
}

#[test]
fn ttl_expiry_and_missing_routes_are_counted_drops() {
    let mut pkt = data_packet(
        &[
            overlay(Route::Unicast(node(3)), 1, 1),
            overlay(Route::Unicast(node(4)), 8, 2),
            overlay(Route::Unicast(node(5)), 8, 3),
            overlay(Route::Unicast(node(3)), 2, 4),
        ],
        b"x",
    );
    let out = run(&mut pkt);
    assert_eq!(
        out.drops,
        vec![
            DropReason::TtlExpired,
            DropReason::NoRoute,
            DropReason::NoRoute
        ],
        "node 4 has no route; node 5's next hop is not one of our links"
    );
    // The records after the drops are still handled.
    assert_eq!(out.forwarded.len(), 1);
    assert_eq!(DataRepr::parse(&out.forwarded[0].1).unwrap().overlay.seq, 4);
}

#[test]
fn hellos_and_control_envelopes_are_handed_over() {
    let mut sender = LinkSender::new(node(PEER), Incarnation(9), 0);
    let hello = HelloRepr {
        version_min: 1,
        version_max: 1,
        hello_seq: 12,
        tx_time_ns: 5_000,
        echo: None,
        config_hash: 0xabc,
        key_epoch: None,
    };
    let mut buf = [0u8; 256];
    let n = sender
        .write_hello(&mut buf, link(IN_LINK), path(1), &hello)
        .unwrap();
    let out = run(&mut buf[..n]);
    assert_eq!(out.drops, []);
    let [(rx, got)] = &out.hellos[..] else {
        panic!("one hello expected: {out:?}");
    };
    assert_eq!(
        (rx.link, rx.path, rx.sender),
        (link(IN_LINK), path(1), node(PEER))
    );
    assert_eq!(*got, hello);

    let envelope = ControlRepr {
        origin: node(6),
        origin_incarnation: Incarnation(4),
        update_seq: 99,
        kind: ControlKind::LinkState,
        body: b"lsa",
    };
    let mut env = [0u8; 64];
    let len = envelope.emit(&mut env).unwrap();
    let n = sender
        .write_control(&mut buf, link(IN_LINK), path(0), &env[..len], 256)
        .unwrap();
    let out = run(&mut buf[..n]);
    assert_eq!(out.drops, []);
    assert_eq!(out.controls.len(), 1);
    assert_eq!(out.controls[0].1, &env[..len]);
    assert_eq!(ControlRepr::parse(&out.controls[0].1).unwrap(), envelope);
}

#[test]
fn malformed_datagrams_are_dropped_with_their_reason() {
    let good = data_packet(&[overlay(Route::Unicast(node(ME)), 8, 1)], b"abc");
    let drops_of = |mut pkt: Vec<u8>| {
        let out = run(&mut pkt);
        assert!(out.delivered.is_empty() && out.forwarded.is_empty());
        out.drops
    };
    // Empty, truncated header, unknown version.
    assert!(matches!(
        drops_of(vec![])[..],
        [DropReason::Truncated { .. }]
    ));
    assert!(matches!(
        drops_of(good[..10].to_vec())[..],
        [DropReason::Truncated { .. }]
    ));
    let mut v2 = good.clone();
    v2[0] = 2;
    assert_eq!(drops_of(v2), [DropReason::UnsupportedVersion(2)]);
    // A header without any record.
    assert!(matches!(
        drops_of(good[..LINK_HEADER_LEN].to_vec())[..],
        [DropReason::Truncated { .. }]
    ));
    // A record length past the end of the datagram.
    assert!(matches!(
        drops_of(good[..good.len() - 1].to_vec())[..],
        [DropReason::BadLength { .. }]
    ));
    // A record header cut short after a good record: the good one is still delivered.
    let mut tail = good.clone();
    tail.extend_from_slice(&[5, 0, 0]);
    let out = run(&mut tail);
    assert_eq!(out.delivered.len(), 1);
    assert!(matches!(out.drops[..], [DropReason::Truncated { .. }]));
    // Payload length disagreeing with the record length.
    let mut short = good.clone();
    let plen = LINK_HEADER_LEN + 8 + 18; // overlay payload_len field
    short[plen + 1] = 4;
    assert!(matches!(
        drops_of(short)[..],
        [DropReason::BadLength { .. }]
    ));
}

#[test]
fn packets_must_come_from_the_links_neighbour_on_a_configured_path() {
    let mut good = data_packet(&[overlay(Route::Unicast(node(ME)), 8, 1)], b"abc");
    let header = LinkPacket::new_checked(&good[..])
        .unwrap()
        .repr()
        .to_owned();
    let rewrite = |pkt: &mut Vec<u8>, h: LinkRepr| {
        h.emit(&mut pkt[..]).unwrap();
    };
    let mut wrong_sender = good.clone();
    rewrite(
        &mut wrong_sender,
        LinkRepr {
            sender: node(3),
            ..header
        },
    );
    assert!(matches!(
        run(&mut wrong_sender).drops[..],
        [DropReason::BadField {
            field: "link.sender_node",
            ..
        }]
    ));
    let mut unknown_link = good.clone();
    rewrite(
        &mut unknown_link,
        LinkRepr {
            link: link(100),
            ..header
        },
    );
    assert_eq!(run(&mut unknown_link).drops, [DropReason::UnknownLink(100)]);
    let mut bad_path = good.clone();
    rewrite(
        &mut bad_path,
        LinkRepr {
            path: path(2),
            ..header
        },
    );
    assert!(matches!(
        run(&mut bad_path).drops[..],
        [DropReason::BadField {
            field: "link.path_id",
            ..
        }]
    ));
    let mut auth = good.clone();
    auth.extend_from_slice(&[0; 16]);
    rewrite(
        &mut auth,
        LinkRepr {
            auth: true,
            ..header
        },
    );
    assert!(matches!(
        run(&mut auth).drops[..],
        [DropReason::Unsupported(_)]
    ));
    assert_eq!(run(&mut good).delivered.len(), 1);
}

#[test]
fn unsupported_routing_and_groups_without_members_are_counted() {
    let mut mask = LinkMask::new(1).unwrap();
    mask.insert(link(OUT_LINK));
    let reliable = OverlayRepr {
        link_proto: LinkProto::Reliable,
        ..overlay(Route::Unicast(node(3)), 8, 4)
    };
    let mut pkt = data_packet(
        &[
            overlay(Route::Multicast(GroupId(1)), 8, 1),
            overlay(Route::Anycast(GroupId(2)), 8, 2),
            overlay(Route::SourceRouted { dst: node(3), mask }, 8, 3),
        ],
        b"m",
    );
    let out = run(&mut pkt);
    assert!(out.forwarded.is_empty() && out.delivered.is_empty());
    assert_eq!(
        out.drops,
        vec![
            // This FIB has no group entries.
            DropReason::NoMembers,
            DropReason::NoMembers,
            DropReason::Unsupported("source routing"),
        ]
    );
    // A reliable-protocol record is refused too (its link_seq would be nonzero on the wire,
    // but the protocol check comes first).
    let mut sender = LinkSender::new(node(PEER), Incarnation(9), 0);
    let header = sender
        .next_header(link(IN_LINK), path(0), PacketType::Data)
        .unwrap();
    let mut buf = vec![0; 512];
    let mut w = PacketWriter::new(&mut buf, &header, 512).unwrap();
    let data = DataRepr {
        overlay: reliable,
        fragment: None,
        payload: b"r",
    };
    w.records().push(RecordFlags::NONE, 1, &data).unwrap();
    let n = w.finish().unwrap();
    assert!(matches!(
        run(&mut buf[..n]).drops[..],
        [DropReason::Unsupported(_)]
    ));
    // Link feedback.
    let header = sender
        .next_header(link(IN_LINK), path(0), PacketType::Feedback)
        .unwrap();
    let mut w = PacketWriter::new(&mut buf, &header, 512).unwrap();
    let ack = AckRepr {
        link_proto: LinkProto::Reliable,
        data_lane: 0,
        cum_ack: 3,
        sack: 0,
    };
    w.records().push(RecordFlags::NONE, 0, &ack).unwrap();
    let n = w.finish().unwrap();
    assert_eq!(
        run(&mut buf[..n]).drops,
        [DropReason::Unsupported("reliable link feedback")]
    );
}

#[test]
fn packet_numbers_increase_per_link_within_the_lane() {
    let mut s = LinkSender::new(node(ME), Incarnation(1), 2);
    let h = |s: &mut LinkSender, l| s.next_header(link(l), path(0), PacketType::Data).unwrap();
    let a0 = h(&mut s, 1);
    let a1 = h(&mut s, 1);
    let b0 = h(&mut s, 2);
    assert_eq!(a0.packet_number, 2 << 56);
    assert_eq!(a1.packet_number, (2 << 56) | 1);
    assert_eq!(b0.packet_number, 2 << 56, "each link counts on its own");
    assert_eq!(a1.lane, 2);
    assert_eq!(a1.sender_incarnation, Incarnation(1));
}

#[test]
fn hello_mapping_round_trips_and_drops_foreign_echoes() {
    let fields = HelloFields {
        seq: 3,
        tx_time_ns: 1_000,
        echo_tx_time_ns: 400,
        echo_held_us: 2,
        incarnation: Incarnation(7),
        config_hash: 0xfeed,
        versions: VersionRange { min: 1, max: 1 },
        rx_loss_ppm: None,
    };
    let repr = hello_repr(&fields, Some(Incarnation(8)));
    assert_eq!(
        repr.echo,
        Some(HelloEcho {
            tx_time_ns: 400,
            delay_us: 2,
            incarnation: Incarnation(8)
        })
    );
    let mut sender = LinkSender::new(node(PEER), Incarnation(7), 0);
    let rx = sender
        .next_header(link(IN_LINK), path(0), PacketType::Hello)
        .unwrap();
    // Received by incarnation 8 (the echo is ours): every field comes back.
    assert_eq!(hello_fields(&rx, &repr, Incarnation(8)), fields);
    // Received by incarnation 9 (we restarted): the echo is not ours and is left out.
    let other = hello_fields(&rx, &repr, Incarnation(9));
    assert_eq!((other.echo_tx_time_ns, other.echo_held_us), (0, 0));
    // No peer known yet: no echo on the wire.
    assert_eq!(hello_repr(&fields, None).echo, None);
}
