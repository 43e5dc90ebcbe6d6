//! Tests of hello, ack, nack and control bodies: golden bytes, rejections, helpers and proptest
//! round trips.

use proptest::prelude::*;

use super::*;
use crate::wire::strategies::{arb_ack, arb_control_kind, arb_hello, arb_nack, arb_node_id};

const HELLO_GOLDEN: [u8; HELLO_BODY_LEN] = [
    0x01, 0x01, // versions 1..=1
    0x00, 0x00, // key epoch: none
    0x00, 0x00, 0x00, 0x07, // hello seq
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // tx time
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, // echoed tx time
    0x00, 0x00, 0x00, 0xfa, // echo delay 250 us
    0x0a, 0x0b, 0x0c, 0x0d, // echoed incarnation
    0xca, 0xfe, 0xba, 0xbe, 0x00, 0x00, 0x00, 0x01, // config hash
];

fn hello() -> HelloRepr {
    HelloRepr {
        version_min: 1,
        version_max: 1,
        hello_seq: 7,
        tx_time_ns: 0x0102_0304_0506_0708,
        echo: Some(HelloEcho {
            tx_time_ns: 0x1112_1314_1516_1718,
            delay_us: 250,
            incarnation: Incarnation(0x0a0b_0c0d),
        }),
        config_hash: 0xcafe_babe_0000_0001,
        key_epoch: None,
    }
}

#[test]
fn hello_key_epoch_field() {
    let mut h = hello();
    h.key_epoch = Some(7);
    let mut buf = [0u8; HELLO_BODY_LEN];
    h.emit(&mut buf).unwrap();
    assert_eq!(buf[2..4], [0x01, 0x07]);
    assert_eq!(HelloRepr::parse(&buf), Ok(h));
    h.key_epoch = Some(0);
    h.emit(&mut buf).unwrap();
    assert_eq!(buf[2..4], [0x01, 0x00]);
    assert_eq!(HelloRepr::parse(&buf).map(|h| h.key_epoch), Ok(Some(0)));
    // An epoch without the present bit, or another bit, is reserved.
    let reserved = Err(DropReason::ReservedBitsSet {
        field: "hello.key_epoch",
    });
    for field in [[0x00, 0x03], [0x02, 0x00], [0x81, 0x00]] {
        buf[2..4].copy_from_slice(&field);
        assert_eq!(HelloRepr::parse(&buf), reserved);
    }
}

#[test]
fn hello_golden_bytes() {
    let mut buf = [0u8; HELLO_BODY_LEN];
    assert_eq!(hello().emit(&mut buf), Ok(HELLO_BODY_LEN));
    assert_eq!(buf, HELLO_GOLDEN);
    assert_eq!(HelloRepr::parse(&HELLO_GOLDEN), Ok(hello()));
}

#[test]
fn hello_rejections() {
    let patched = |i: usize, v: u8| {
        let mut b = HELLO_GOLDEN;
        b[i] = v;
        HelloRepr::parse(&b)
    };
    let min = |value| {
        Err(DropReason::BadField {
            field: "hello.version_min",
            value,
        })
    };
    assert_eq!(patched(0, 0), min(0));
    assert_eq!(patched(0, 2), min(2));
    assert!(matches!(
        patched(3, 1),
        Err(DropReason::ReservedBitsSet { .. })
    ));
    // An echo time without an echo incarnation has two encodings of "no echo": rejected.
    let mut b = HELLO_GOLDEN;
    b[28..32].fill(0);
    assert!(matches!(
        HelloRepr::parse(&b),
        Err(DropReason::BadField { .. })
    ));
    b[16..28].fill(0);
    assert_eq!(HelloRepr::parse(&b).map(|h| h.echo), Ok(None));
    assert!(matches!(
        HelloRepr::parse(&HELLO_GOLDEN[..39]),
        Err(DropReason::Truncated { .. })
    ));
    let mut long = HELLO_GOLDEN.to_vec();
    long.push(0);
    assert_eq!(
        HelloRepr::parse(&long),
        Err(DropReason::BadLength {
            field: "hello.len",
            value: 41
        })
    );
}

#[test]
fn version_negotiation() {
    let range = |version_min, version_max| HelloRepr {
        version_min,
        version_max,
        ..hello()
    };
    assert_eq!(range(1, 1).common_version(), Some(1));
    assert_eq!(range(1, 5).common_version(), Some(WIRE_VERSION_MAX));
    assert_eq!(range(2, 3).common_version(), None);
}

#[test]
fn rtt_from_echo() {
    let mine = Incarnation(0x0a0b_0c0d);
    let mut h = hello();
    h.echo = Some(HelloEcho {
        tx_time_ns: 1_000_000,
        delay_us: 100,
        incarnation: mine,
    });
    let now = Instant::from_nanos(3_000_000);
    assert_eq!(
        h.rtt_sample(now, mine),
        Some(Duration::from_nanos(1_900_000))
    );
    assert_eq!(
        h.rtt_sample(now, Incarnation(1)),
        None,
        "echo of another incarnation"
    );
    assert_eq!(
        h.rtt_sample(Instant::from_nanos(10), mine),
        None,
        "echo from the future"
    );
    h.echo = None;
    assert_eq!(h.rtt_sample(now, mine), None);
}

#[test]
fn ack_golden_and_coverage() {
    let golden = [
        0x01, // reliable
        0x00, 0x00, 0x00, // reserved
        0x00, 0x00, 0x00, 0x0a, // cumulative ack 10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // sack: 11 and 13
    ];
    let ack = AckRepr {
        link_proto: LinkProto::Reliable,
        data_lane: 0,
        cum_ack: 10,
        sack: 0b101,
    };
    let mut buf = [0u8; ACK_BODY_LEN];
    assert_eq!(ack.emit(&mut buf), Ok(ACK_BODY_LEN));
    assert_eq!(buf, golden);
    assert_eq!(AckRepr::parse(&golden), Ok(ack));
    let covered: Vec<u32> = (0..80).filter(|s| ack.covers(*s)).collect();
    assert_eq!(covered, (0..=11).chain([13]).collect::<Vec<_>>());
    let wrapped = AckRepr {
        cum_ack: u32::MAX,
        sack: 1,
        ..ack
    };
    assert!(wrapped.covers(0) && wrapped.covers(u32::MAX - 5) && !wrapped.covers(1));

    let mut b = golden;
    b[0] = 0;
    assert!(matches!(
        AckRepr::parse(&b),
        Err(DropReason::BadField {
            field: "feedback.link_proto",
            value: 0
        })
    ));
    b = golden;
    b[2] = 1;
    assert!(matches!(
        AckRepr::parse(&b),
        Err(DropReason::ReservedBitsSet { .. })
    ));
    assert!(
        AckRepr {
            link_proto: LinkProto::ItReliable,
            ..ack
        }
        .emit(&mut buf)
        .is_err()
    );
}

#[test]
fn nack_golden_and_limits() {
    let golden = [
        0x02, // realtime
        0x02, // two sequences
        0x00, 0x00, // reserved
        0x00, 0x00, 0x00, 0x05, // 5
        0x01, 0x02, 0x03, 0x04, // 0x01020304
    ];
    let nack = NackRepr::new(LinkProto::Realtime, &[5, 0x0102_0304]).unwrap();
    let mut buf = [0u8; 12];
    assert_eq!(nack.emit(&mut buf), Ok(12));
    assert_eq!(buf, golden);
    assert_eq!(NackRepr::parse(&golden), Ok(nack));
    assert_eq!(nack.seqs(), [5, 0x0102_0304]);

    assert_eq!(NackRepr::new(LinkProto::Realtime, &[]), None);
    assert_eq!(
        NackRepr::new(LinkProto::Realtime, &[0; MAX_NACK_SEQS + 1]),
        None
    );
    assert_eq!(NackRepr::new(LinkProto::BestEffort, &[1]), None);
    let count = |c: u8| {
        let mut b = golden.to_vec();
        b[1] = c;
        NackRepr::parse(&b)
    };
    assert!(matches!(
        count(0),
        Err(DropReason::BadField {
            field: "nack.count",
            ..
        })
    ));
    assert!(matches!(
        count(33),
        Err(DropReason::BadField {
            field: "nack.count",
            ..
        })
    ));
    assert!(matches!(
        count(3),
        Err(DropReason::BadLength {
            field: "nack.len",
            ..
        })
    ));
    assert!(matches!(
        count(1),
        Err(DropReason::BadLength {
            field: "nack.len",
            ..
        })
    ));
}

#[test]
fn control_golden_and_rejections() {
    let golden = [
        0x00, 0x03, // origin node 3
        0x01, // link state
        0x00, // reserved
        0x00, 0x00, 0x00, 0x01, // origin incarnation
        0x00, 0x00, 0x00, 0x10, // update seq
        0x00, 0x03, // body length
        0x00, 0x00, // reserved
        b'x', b'y', b'z',
    ];
    let ctl = ControlRepr {
        origin: NodeId::new(3).unwrap(),
        origin_incarnation: Incarnation(1),
        update_seq: 0x10,
        kind: ControlKind::LinkState,
        body: b"xyz",
    };
    let mut buf = [0u8; 19];
    assert_eq!(ctl.emit(&mut buf), Ok(19));
    assert_eq!(buf, golden);
    assert_eq!(ControlRepr::parse(&golden), Ok(ctl));

    let patched = |i: usize, v: u8| {
        let mut b = golden.to_vec();
        b[i] = v;
        ControlRepr::parse(Vec::leak(b)).map(|c| c.kind)
    };
    assert!(matches!(
        patched(1, 0),
        Err(DropReason::BadField {
            field: "control.origin_node",
            ..
        })
    ));
    assert!(matches!(
        patched(2, 3),
        Err(DropReason::BadField {
            field: "control.kind",
            ..
        })
    ));
    assert!(matches!(
        patched(3, 1),
        Err(DropReason::ReservedBitsSet { .. })
    ));
    assert!(matches!(
        patched(15, 1),
        Err(DropReason::ReservedBitsSet { .. })
    ));
    assert!(matches!(patched(7, 0), Err(DropReason::BadField { .. })));
    assert!(matches!(patched(13, 4), Err(DropReason::BadLength { .. })));
    assert!(matches!(patched(13, 2), Err(DropReason::BadLength { .. })));
    assert_eq!(
        ctl.emit(&mut buf[..18]),
        Err(EmitError::BufferTooSmall {
            needed: 19,
            available: 18
        })
    );
}

proptest! {
    #[test]
    fn hello_round_trip(h in arb_hello()) {
        let mut buf = [0u8; HELLO_BODY_LEN];
        prop_assert_eq!(h.emit(&mut buf), Ok(HELLO_BODY_LEN));
        prop_assert_eq!(HelloRepr::parse(&buf), Ok(h));
    }

    #[test]
    fn ack_round_trip(a in arb_ack()) {
        let mut buf = [0u8; ACK_BODY_LEN];
        prop_assert_eq!(a.emit(&mut buf), Ok(ACK_BODY_LEN));
        prop_assert_eq!(AckRepr::parse(&buf), Ok(a));
        prop_assert!(a.covers(a.cum_ack));
    }

    #[test]
    fn nack_round_trip(n in arb_nack()) {
        let mut buf = vec![0u8; n.wire_len()];
        prop_assert_eq!(n.emit(&mut buf), Ok(n.wire_len()));
        prop_assert_eq!(NackRepr::parse(&buf), Ok(n));
    }

    #[test]
    fn control_round_trip(
        origin in arb_node_id(),
        inc in 1u32..,
        update_seq in any::<u32>(),
        kind in arb_control_kind(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let c = ControlRepr { origin, origin_incarnation: Incarnation(inc), update_seq, kind, body: &body };
        let mut buf = vec![0u8; c.wire_len()];
        prop_assert_eq!(c.emit(&mut buf), Ok(c.wire_len()));
        prop_assert_eq!(ControlRepr::parse(&buf), Ok(c));
    }
}
