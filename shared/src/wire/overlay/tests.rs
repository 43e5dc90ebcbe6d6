//! Tests of the overlay header and data record bodies: golden bytes, each rejection, in-place
//! forwarding updates and proptest round trips.

use proptest::prelude::*;

use super::*;
use crate::ids::LinkId;
use crate::wire::strategies::arb_data;

/// A source-routed real-time packet with a 2-word mask, a fragment header and payload "hi".
const GOLDEN: [u8; 70] = [
    0x03, // routing: source-routed
    0x10, // ttl 16
    0x02, // link protocol: realtime
    0x03, // svc flags: at deadline | fragment header
    0x05, // priority
    0x32, // strikes: N = 3, M = 2
    0x02, // mask words
    0x00, // reserved
    0x01, 0x02, // src node 258
    0x1f, 0x90, // src port 8080
    0x00, 0x00, 0x00, 0x07, // dst node 7
    0x00, 0x50, // dst port 80
    0x00, 0x02, // payload length
    0xde, 0xad, 0xbe, 0xef, // src incarnation
    0x00, 0x00, 0x00, 0x09, // flow
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, // seq
    0x00, 0x03, 0x0d, 0x40, // deadline 200,000 us
    0x00, 0x00, 0x04, 0xd2, // age 1,234 us
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // mask word 0: link 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // mask word 1: link 65
    0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, // fragment 0 of 2, message 3 B
    b'h', b'i',
];

fn golden_repr() -> DataRepr<'static> {
    let mut mask = LinkMask::new(2).unwrap();
    mask.insert(LinkId::new(0).unwrap());
    mask.insert(LinkId::new(65).unwrap());
    DataRepr {
        overlay: OverlayRepr {
            route: Route::SourceRouted {
                dst: NodeId::new(7).unwrap(),
                mask,
            },
            ttl: 16,
            link_proto: LinkProto::Realtime,
            delivery: Delivery::AtDeadline,
            priority: 5,
            strikes: Strikes::new(3, 2).unwrap(),
            src: NodeId::new(258).unwrap(),
            src_port: Port(8080),
            dst_port: Port(80),
            src_incarnation: Incarnation(0xdead_beef),
            flow: FlowId(9),
            seq: 0x1_0000_0002,
            deadline_us: NonZeroU32::new(200_000),
            age_us: 1234,
        },
        fragment: Some(FragmentRepr {
            index: 0,
            count: 2,
            msg_len: 3,
        }),
        payload: b"hi",
    }
}

#[test]
fn golden_bytes() {
    let repr = golden_repr();
    let mut buf = [0u8; 80];
    assert_eq!(repr.emit(&mut buf), Ok(GOLDEN.len()));
    assert_eq!(buf[..GOLDEN.len()], GOLDEN);
    assert_eq!(DataRepr::parse(&GOLDEN), Ok(repr));
    assert_eq!(repr.wire_len(), GOLDEN.len());
    assert_eq!(repr.overlay.strikes.n(), 3);
    assert_eq!(repr.overlay.strikes.m(), 2);
}

#[test]
fn golden_multicast_best_effort() {
    let mut golden = [0u8; 44 + 1];
    golden[0] = 1; // multicast
    golden[1] = 64; // ttl
    golden[8..10].copy_from_slice(&[0, 1]); // src node 1
    golden[12..16].copy_from_slice(&[0xe0, 0, 0, 1]); // group
    golden[19] = 1; // payload length 1
    golden[23] = 1; // src incarnation 1
    golden[44] = 0x42;
    let repr = DataRepr::parse(&golden).unwrap();
    assert_eq!(repr.overlay.route, Route::Multicast(GroupId(0xe000_0001)));
    assert_eq!(repr.overlay.link_proto, LinkProto::BestEffort);
    assert_eq!(repr.overlay.deadline_us, None);
    assert_eq!(repr.fragment, None);
    assert_eq!(repr.payload, [0x42]);
    let mut out = [0u8; 45];
    assert_eq!(repr.emit(&mut out), Ok(45));
    assert_eq!(out, golden);
}

fn parse_patched(patch: impl Fn(&mut Vec<u8>)) -> Result<DataRepr<'static>, DropReason> {
    let mut b = GOLDEN.to_vec();
    patch(&mut b);
    // Leak so the repr can borrow; tests only.
    DataRepr::parse(Vec::leak(b))
}

#[test]
fn rejects_each_bad_field() {
    let bad = |field: &'static str, value: u64| Err(DropReason::BadField { field, value });
    assert_eq!(parse_patched(|b| b[0] = 4), bad("overlay.routing", 4));
    assert_eq!(parse_patched(|b| b[2] = 5), bad("overlay.link_proto", 5));
    assert_eq!(
        parse_patched(|b| b[3] |= 0x04),
        Err(DropReason::ReservedBitsSet {
            field: "overlay.svc_flags"
        })
    );
    assert_eq!(parse_patched(|b| b[2] = 1), bad("overlay.strikes", 0x32));
    assert_eq!(
        parse_patched(|b| b[6] = 9),
        Err(DropReason::BadLength {
            field: "overlay.mask_words",
            value: 9
        })
    );
    assert_eq!(parse_patched(|b| b[6] = 0), bad("overlay.mask_words", 0));
    assert_eq!(parse_patched(|b| b[0] = 0), bad("overlay.mask_words", 2));
    assert_eq!(
        parse_patched(|b| b[7] = 1),
        Err(DropReason::ReservedBitsSet {
            field: "overlay.reserved"
        })
    );
    assert_eq!(
        parse_patched(|b| b[8..10].fill(0)),
        bad("overlay.src_node", 0)
    );
    assert_eq!(parse_patched(|b| b[15] = 0), bad("overlay.dst", 0));
    assert_eq!(
        parse_patched(|b| b[12] = 1),
        bad("overlay.dst", 0x0100_0007)
    );
    assert_eq!(
        parse_patched(|b| b[20..24].fill(0)),
        bad("overlay.src_incarnation", 0)
    );
    assert_eq!(
        parse_patched(|b| b[36..40].fill(0)),
        bad("overlay.deadline_us", 0)
    );
    let payload_len = |value| {
        Err(DropReason::BadLength {
            field: "overlay.payload_len",
            value,
        })
    };
    assert_eq!(parse_patched(|b| b[19] = 3), payload_len(3));
    assert_eq!(parse_patched(|b| b.push(0)), payload_len(2));
    assert_eq!(parse_patched(|b| b[67] = 9), bad("fragment.msg_len", 9));
    assert_eq!(parse_patched(|b| b[61] = 2), bad("fragment.index", 2));
    // Without the fragment flag, the fragment bytes count as payload: the length is wrong.
    assert_eq!(parse_patched(|b| b[3] = 0x01), payload_len(2));
    // Truncation inside the header, the mask and the fragment header.
    for cut in [0, 43, 44, 59, 60, 67] {
        assert!(
            matches!(
                DataRepr::parse(&GOLDEN[..cut]),
                Err(DropReason::Truncated { .. })
            ),
            "cut at {cut}"
        );
    }
}

#[test]
fn emit_refuses_what_parse_would_reject() {
    let mut buf = [0u8; 100_000];
    let mut r = golden_repr();
    r.overlay.link_proto = LinkProto::Reliable;
    assert!(matches!(
        r.emit(&mut buf),
        Err(EmitError::Invalid {
            field: "overlay.strikes",
            ..
        })
    ));
    let mut r = golden_repr();
    r.overlay.deadline_us = None;
    assert!(matches!(r.emit(&mut buf), Err(EmitError::Invalid { .. })));
    let mut r = golden_repr();
    r.payload = b"too long for a 3-byte message";
    assert!(matches!(r.emit(&mut buf), Err(EmitError::Invalid { .. })));
    let big = vec![0u8; 70_000];
    let mut r = golden_repr();
    r.fragment = None;
    r.payload = &big;
    assert!(matches!(
        r.emit(&mut buf),
        Err(EmitError::Invalid {
            field: "overlay.payload_len",
            ..
        })
    ));
    assert_eq!(
        golden_repr().emit(&mut buf[..69]),
        Err(EmitError::BufferTooSmall {
            needed: 70,
            available: 69
        })
    );
}

#[test]
fn forwarding_updates_in_place() {
    let mut bytes = GOLDEN;
    let mut pkt = DataPacket::new_checked(&mut bytes[..]).unwrap();
    assert_eq!(pkt.payload(), b"hi");
    assert_eq!(pkt.fragment().map(|f| f.count), Some(2));
    let h = pkt.header_mut();
    assert_eq!(h.remaining_us(), Some(200_000 - 1234));
    h.decrement_ttl().unwrap();
    h.add_age_us(10_000);
    let parsed = DataRepr::parse(&bytes).unwrap();
    assert_eq!(parsed.overlay.ttl, 15);
    assert_eq!(parsed.overlay.age_us, 11_234);

    let (h, _) = OverlayHeader::mut_from_prefix(&mut bytes[..]).unwrap();
    h.ttl = 1;
    assert_eq!(h.decrement_ttl(), Err(DropReason::TtlExpired));
    h.age_us = U32::new(u32::MAX - 1);
    h.add_age_us(5);
    assert_eq!(h.age_us.get(), u32::MAX);
    assert_eq!(h.remaining_us(), Some(0));
    h.deadline_us = U32::ZERO;
    assert_eq!(h.remaining_us(), None);
}

proptest! {
    #[test]
    fn round_trip((overlay, fragment, payload) in arb_data()) {
        let repr = DataRepr { overlay, fragment, payload: &payload };
        let mut buf = vec![0u8; repr.wire_len()];
        prop_assert_eq!(repr.emit(&mut buf), Ok(repr.wire_len()));
        prop_assert_eq!(DataRepr::parse(&buf), Ok(repr));
        let short = matches!(
            repr.emit(&mut buf[..repr.wire_len() - 1]),
            Err(EmitError::BufferTooSmall { .. })
        );
        prop_assert!(short);
    }
}
