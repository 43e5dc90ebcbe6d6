//! Whole-packet tests: a golden datagram, the header budget, round trips of random packets, and
//! the no-panic property of every parser on arbitrary, truncated, extended and corrupted bytes.

use proptest::prelude::*;

use super::*;
use crate::ids::{FlowId, Incarnation, LinkId, NodeId, PathId, Port};
use crate::wire::strategies::{OwnedRecord, arb_packet, build_packet};
use crate::wire::{
    AckRepr, DataPacket, Delivery, FragmentRepr, LinkMask, MAX_MASK_WORDS, MPEG_TS_PAYLOAD,
    MTU_1500_UDP_PAYLOAD, OverlayRepr, PacketType, RecordRepr, Route, Strikes, peek_class,
};

fn feedback_header(auth: bool) -> LinkRepr {
    LinkRepr {
        packet_type: PacketType::Feedback,
        auth,
        key_epoch: 0,
        lane: 0,
        sender: NodeId::new(2).unwrap(),
        link: LinkId::new(1).unwrap(),
        path: PathId::new(0).unwrap(),
        sender_incarnation: Incarnation(9),
        packet_number: 77,
    }
}

/// A feedback packet packing an ack and a nack.
const GOLDEN: [u8; 64] = [
    // link header
    0x01, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4d, // record: ack, 16 B
    0x02, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, //
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
    // record: nack, 8 B
    0x03, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, //
    0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63,
];

#[test]
fn golden_packet() {
    let ack = AckRepr {
        link_proto: LinkProto::Reliable,
        data_lane: 0,
        cum_ack: 100,
        sack: 0b11,
    };
    let nack = NackRepr::new(LinkProto::Reliable, &[99]).unwrap();
    let mut buf = [0u8; 128];
    let mut w = PacketWriter::new(&mut buf, &feedback_header(false), 128).unwrap();
    w.records().push(RecordFlags::NONE, 0, &ack).unwrap();
    w.records().push(RecordFlags::NONE, 0, &nack).unwrap();
    assert_eq!(w.finish(), Ok(64));
    assert_eq!(buf[..64], GOLDEN);

    let summary = parse_packet(&GOLDEN).unwrap();
    assert_eq!(summary.header, feedback_header(false));
    assert_eq!(summary.records, 2);
    let packet = Packet::parse(&GOLDEN).unwrap();
    let msgs: Vec<_> = packet
        .records()
        .map(|r| Message::parse(&r.unwrap()).unwrap())
        .collect();
    assert_eq!(msgs, [Message::Ack(ack), Message::Nack(nack)]);
    assert_eq!(packet.tag, None);
}

#[test]
fn auth_packets_carry_a_tag_after_the_records() {
    let ack = AckRepr {
        link_proto: LinkProto::Realtime,
        data_lane: 0,
        cum_ack: 1,
        sack: 0,
    };
    let mut buf = [0xffu8; 128];
    let mut w = PacketWriter::new(&mut buf, &feedback_header(true), 128).unwrap();
    w.records().push(RecordFlags::NONE, 0, &ack).unwrap();
    let len = w.finish().unwrap();
    assert_eq!(len, 24 + 8 + 16 + TAG_LEN);
    assert_eq!(
        buf[len - TAG_LEN..len],
        [0; TAG_LEN],
        "tag space zeroed for sealing"
    );
    let packet = Packet::parse(&buf[..len]).unwrap();
    assert_eq!(packet.body.len(), 24);
    assert!(packet.tag.is_some());
    assert_eq!(parse_packet(&buf[..len]).map(|s| s.records), Ok(1));
    // Without the tag the last record runs short.
    assert!(parse_packet(&buf[..len - 1]).is_err());
}

#[test]
fn empty_packets_are_refused_both_ways() {
    let mut buf = [0u8; 64];
    let w = PacketWriter::new(&mut buf, &feedback_header(false), 64).unwrap();
    assert!(matches!(w.finish(), Err(EmitError::Invalid { .. })));
    assert!(matches!(
        parse_packet(&GOLDEN[..24]),
        Err(DropReason::Truncated { .. })
    ));
    assert!(PacketWriter::new(&mut buf, &feedback_header(true), 24 + 8 + 15).is_err());
}

/// The header budget of docs/wire.md: an authenticated, source-routed data packet with the
/// largest bitmask and one MPEG-TS burst fills a 1500-byte-MTU path exactly.
#[test]
fn mpeg_ts_with_full_bitmask_fits_1472_bytes() {
    let mut mask = LinkMask::new(MAX_MASK_WORDS).unwrap();
    assert!(mask.insert(LinkId::new(511).unwrap()));
    let overlay = OverlayRepr {
        route: Route::SourceRouted {
            dst: NodeId::new(1023).unwrap(),
            mask,
        },
        ttl: 32,
        link_proto: LinkProto::Realtime,
        delivery: Delivery::AtDeadline,
        priority: 0,
        strikes: Strikes::new(3, 2).unwrap(),
        src: NodeId::new(1).unwrap(),
        src_port: Port(1),
        dst_port: Port(2),
        src_incarnation: Incarnation(1),
        flow: FlowId(1),
        seq: 1,
        deadline_us: core::num::NonZeroU32::new(200_000),
        age_us: 0,
    };
    let payload = [0x47u8; MPEG_TS_PAYLOAD];
    let data = DataRepr {
        overlay,
        fragment: None,
        payload: &payload,
    };
    let link = LinkRepr {
        packet_type: PacketType::Data,
        auth: true,
        key_epoch: 0,
        ..feedback_header(true)
    };
    let mut buf = [0u8; 2048];
    let mut w = PacketWriter::new(&mut buf, &link, MTU_1500_UDP_PAYLOAD).unwrap();
    w.records().push(RecordFlags::NONE, 1, &data).unwrap();
    assert_eq!(w.records().remaining_body(), 0);
    assert_eq!(w.finish(), Ok(MTU_1500_UDP_PAYLOAD));
    let summary = parse_packet(&buf[..MTU_1500_UDP_PAYLOAD]).unwrap();
    assert_eq!(summary.data_payload_bytes, MPEG_TS_PAYLOAD);

    // A fragment header on top no longer fits: the writer refuses rather than overflow.
    let fragmented = DataRepr {
        fragment: Some(FragmentRepr {
            index: 0,
            count: 2,
            msg_len: 2 * MPEG_TS_PAYLOAD as u32,
        }),
        ..data
    };
    let mut w = PacketWriter::new(&mut buf, &link, MTU_1500_UDP_PAYLOAD).unwrap();
    assert!(matches!(
        w.records().push(RecordFlags::NONE, 1, &fragmented),
        Err(EmitError::BufferTooSmall { .. })
    ));
}

#[test]
fn best_effort_data_has_no_link_sequence() {
    let mut link = feedback_header(false);
    link.packet_type = PacketType::Data;
    let mut buf = [0u8; 256];
    let mut w = PacketWriter::new(&mut buf, &link, 256).unwrap();
    w.records()
        .push_bytes(
            RecordKind::Data,
            RecordFlags::NONE,
            5,
            &golden_best_effort(),
        )
        .unwrap();
    let len = w.finish().unwrap();
    assert_eq!(
        parse_packet(&buf[..len]),
        Err(DropReason::BadField {
            field: "record.link_seq",
            value: 5
        })
    );
    let mut w = PacketWriter::new(&mut buf, &link, 256).unwrap();
    let be = golden_best_effort();
    w.records()
        .push_bytes(RecordKind::Data, RecordFlags::RETRANSMIT, 0, &be)
        .unwrap();
    let len = w.finish().unwrap();
    assert_eq!(
        parse_packet(&buf[..len]),
        Err(DropReason::ReservedBitsSet {
            field: "record.flags"
        })
    );
}

fn golden_best_effort() -> [u8; 44] {
    let mut b = [0u8; 44];
    b[9] = 1; // src node 1
    b[15] = 2; // dst node 2
    b[23] = 1; // src incarnation 1
    b
}

/// Re-encodes an accepted datagram from its parsed values; every accepted datagram must come
/// back byte for byte (tag bytes aside, which sealing writes).
fn re_emit(datagram: &[u8]) -> Vec<u8> {
    let packet = Packet::parse(datagram).unwrap();
    let mut buf = vec![0u8; datagram.len() + 64];
    let mut w = PacketWriter::new(&mut buf, &packet.header, MAX_DATAGRAM_LEN).unwrap();
    for record in packet.records() {
        let record = record.unwrap();
        let msg = Message::parse(&record).unwrap();
        msg.push_to(w.records(), record.header.flags, record.header.link_seq)
            .unwrap();
    }
    let len = w.finish().unwrap();
    buf.truncate(len);
    if let Some(tag) = packet.tag {
        buf[len - TAG_LEN..].copy_from_slice(tag);
    }
    buf
}

/// Feeds `bytes` to every parser; none may panic, and whatever is accepted must re-encode to the
/// bytes it was parsed from.
fn every_parser(bytes: &[u8]) -> Result<(), TestCaseError> {
    let _ = peek_class(bytes);
    if let Ok((link, rest)) = LinkRepr::parse(bytes) {
        let mut out = [0u8; 24];
        link.emit(&mut out).unwrap();
        prop_assert_eq!(&out[..], &bytes[..24]);
        prop_assert_eq!(rest.len(), bytes.len() - 24);
    }
    if let Ok((rec, _)) = RecordRepr::parse(bytes) {
        let mut out = [0u8; 8];
        rec.emit(&mut out).unwrap();
        prop_assert_eq!(&out[..], &bytes[..8]);
    }
    for kind in [
        PacketType::Hello,
        PacketType::Feedback,
        PacketType::Control,
        PacketType::Data,
    ] {
        for record in Records::new(bytes, kind).flatten() {
            let _ = Message::parse(&record);
        }
    }
    if let Ok(d) = DataRepr::parse(bytes) {
        let mut out = vec![0u8; bytes.len()];
        prop_assert_eq!(d.emit(&mut out), Ok(bytes.len()));
        prop_assert_eq!(&out[..], bytes);
    }
    let _ = DataPacket::new_checked(bytes);
    if let Ok(h) = HelloRepr::parse(bytes) {
        let mut out = vec![0u8; bytes.len()];
        h.emit(&mut out).unwrap();
        prop_assert_eq!(&out[..], bytes);
    }
    if let Ok(a) = AckRepr::parse(bytes) {
        let mut out = vec![0u8; bytes.len()];
        a.emit(&mut out).unwrap();
        prop_assert_eq!(&out[..], bytes);
    }
    if let Ok(n) = NackRepr::parse(bytes) {
        let mut out = vec![0u8; bytes.len()];
        n.emit(&mut out).unwrap();
        prop_assert_eq!(&out[..], bytes);
    }
    if let Ok(c) = ControlRepr::parse(bytes) {
        let mut out = vec![0u8; bytes.len()];
        c.emit(&mut out).unwrap();
        prop_assert_eq!(&out[..], bytes);
    }
    if let Ok((f, _)) = FragmentRepr::parse(bytes) {
        let _ = f.offset(bytes.len());
    }
    let mut copy = bytes.to_vec();
    let _ = LinkPacket::new_checked(&mut copy[..]);
    if parse_packet(bytes).is_ok() {
        prop_assert_eq!(re_emit(bytes), bytes);
    }
    Ok(())
}

/// One way to damage a valid datagram.
#[derive(Clone, Debug)]
enum Damage {
    Truncate(prop::sample::Index),
    Extend(Vec<u8>),
    Flip(prop::sample::Index, u8),
    Overwrite(prop::sample::Index, Vec<u8>),
}

fn arb_damage() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Extend),
        (any::<prop::sample::Index>(), 1u8..).prop_map(|(i, x)| Damage::Flip(i, x)),
        (
            any::<prop::sample::Index>(),
            proptest::collection::vec(any::<u8>(), 1..8)
        )
            .prop_map(|(i, b)| Damage::Overwrite(i, b)),
    ];
    proptest::collection::vec(one, 1..4)
}

fn apply(bytes: &mut Vec<u8>, damage: &[Damage]) {
    for d in damage {
        match d {
            Damage::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
            Damage::Extend(more) => bytes.extend_from_slice(more),
            Damage::Flip(i, x) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] ^= x;
            }
            Damage::Overwrite(i, b) if !bytes.is_empty() => {
                let start = i.index(bytes.len());
                for (dst, src) in bytes[start..].iter_mut().zip(b) {
                    *dst = *src;
                }
            }
            _ => {}
        }
    }
}

fn check_round_trip(link: &LinkRepr, records: &[OwnedRecord]) -> Result<(), TestCaseError> {
    let datagram = build_packet(link, records);
    let summary = parse_packet(&datagram);
    prop_assert_eq!(
        summary.map(|s| (s.header, s.records)),
        Ok((*link, records.len()))
    );
    let packet = Packet::parse(&datagram).unwrap();
    for (record, (flags, seq, msg)) in packet.records().zip(records) {
        let record = record.unwrap();
        prop_assert_eq!(record.header.flags, *flags);
        prop_assert_eq!(record.header.link_seq, *seq);
        prop_assert_eq!(Message::parse(&record), Ok(msg.as_message()));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_packets_round_trip((link, records) in arb_packet()) {
        check_round_trip(&link, &records)?;
    }

    #[test]
    fn damaged_packets_never_panic((link, records) in arb_packet(), damage in arb_damage()) {
        let mut bytes = build_packet(&link, &records);
        apply(&mut bytes, &damage);
        every_parser(&bytes)?;
        // Record bodies alone, damaged: reach deep into each body parser.
        let packet_body_start = 24 + 8;
        if bytes.len() > packet_body_start {
            every_parser(&bytes[packet_body_start..])?;
        }
    }

    /// Every single-byte change to a valid datagram, at every position, is either rejected or
    /// re-encodes to the changed bytes: no parser silently ignores or normalises a byte.
    #[test]
    fn single_byte_changes_are_rejected_or_canonical(
        (link, records) in arb_packet(),
        xor in 1u8..,
    ) {
        let datagram = build_packet(&link, &records);
        let tag_start = datagram.len() - link.trailer_len();
        for i in 0..tag_start {
            let mut changed = datagram.clone();
            changed[i] ^= xor;
            if parse_packet(&changed).is_ok() {
                prop_assert_eq!(re_emit(&changed), changed, "byte {} ^ {:#x}", i, xor);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        every_parser(&bytes)?;
    }

    #[test]
    fn valid_header_with_arbitrary_body_never_panics(
        (link, _records) in arb_packet(),
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = vec![0u8; 24];
        link.emit(&mut bytes).unwrap();
        bytes.extend_from_slice(&body);
        every_parser(&bytes)?;
    }
}
