//! Session codec tests: golden bytes, typed errors for malformed messages, limits, the frame
//! writer, and frames split at every byte boundary. Property tests are in `session_proptest.rs`.

#![allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]

use weft_shared::ids::{FlowId, GroupId, NodeId, Port};
use weft_shared::session::{
    ClientMessage, DecodeError, Deliver, DeliveredTo, DeliveryMode, Destination, EncodeError,
    ErrorCode, ErrorMsg, FlowHandle, Frame, FrameReader, FrameWriter, Hello, LinkProtocol,
    MAX_CLIENT_NAME_LEN, MAX_ERROR_TEXT_LEN, MAX_FRAME_SIZE, MAX_PAYLOAD, OpenFlow, RecvBuf,
    RoutingMode, ServerMessage, Strikes, Welcome, encode_frame,
};

fn node(n: u16) -> NodeId {
    NodeId::new(n).unwrap()
}

fn encode<M: weft_shared::session::Encode>(request_id: u32, msg: &M) -> Vec<u8> {
    let mut buf = vec![0; MAX_FRAME_SIZE];
    let n = encode_frame(request_id, msg, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// The single frame in `bytes`, which must be exactly one frame.
fn only_frame(bytes: &[u8]) -> Frame<'_> {
    let mut r = FrameReader::new(bytes);
    let f = r.next().unwrap().unwrap();
    assert!(r.next().is_none());
    assert_eq!(r.consumed(), bytes.len());
    f
}

/// Encodes, checks the bytes, decodes, checks the message and request id.
fn golden_client(id: u32, msg: ClientMessage<'_>, expect: &[u8]) {
    let bytes = encode(id, &msg);
    assert_eq!(bytes, expect, "{msg:?}");
    let f = only_frame(&bytes);
    assert_eq!(f.request_id, id);
    assert_eq!(ClientMessage::decode(&f).unwrap(), msg);
}

fn golden_server(id: u32, msg: ServerMessage<'_>, expect: &[u8]) {
    let bytes = encode(id, &msg);
    assert_eq!(bytes, expect, "{msg:?}");
    let f = only_frame(&bytes);
    assert_eq!(f.request_id, id);
    assert_eq!(ServerMessage::decode(&f).unwrap(), msg);
}

#[test]
fn golden_frame_header_bind() {
    #[rustfmt::skip]
    let expect = [
        0x00, 0x00, 0x00, 0x0a, // len: 8 header bytes + 2 body bytes
        0x02,                   // type: Bind
        0x00,                   // flags
        0x00, 0x00,             // reserved
        0x01, 0x02, 0x03, 0x04, // request id
        0x00, 0x50,             // port 80
    ];
    golden_client(0x0102_0304, ClientMessage::Bind { port: Port(80) }, &expect);
}

#[test]
fn golden_hello_and_welcome() {
    #[rustfmt::skip]
    let hello = [
        0, 0, 0, 19, 0x01, 0, 0, 0, 0, 0, 0, 1,
        b'W', b'E', b'F', b'T', // magic
        0, 1, 0, 2,             // versions 1..=2
        b'a', b'p', b'p',       // name
    ];
    golden_client(
        1,
        ClientMessage::Hello(Hello {
            min_version: 1,
            max_version: 2,
            name: "app",
        }),
        &hello,
    );

    #[rustfmt::skip]
    let welcome = [
        0, 0, 0, 28, 0x81, 0, 0, 0, 0, 0, 0, 1,
        0, 1,                   // version
        0, 7,                   // node
        0, 0, 0xfd, 0xe8,       // max payload 65000
        0, 0, 0, 64,            // default credits
        1, 0,                   // max flows 256
        0, 64,                  // max ports
        0, 32,                  // max groups
        0, 0,                   // reserved
    ];
    let w = Welcome {
        version: 1,
        node: node(7),
        max_payload: 65_000,
        default_credits: 64,
        max_flows: 256,
        max_ports: 64,
        max_groups: 32,
    };
    golden_server(1, ServerMessage::Welcome(w), &welcome);
}

#[test]
fn golden_open_flow_and_send() {
    #[rustfmt::skip]
    let open = [
        0, 0, 0, 28, 0x04, 0, 0, 0, 0, 0, 0, 2,
        0, 10,                  // local port
        0,                      // destination kind: node
        2,                      // link protocol: realtime
        0, 0, 0, 2,             // destination node 2
        0, 20,                  // destination port
        1, 2,                   // routing: k-paths, k = 2
        0,                      // priority
        1,                      // delivery: in order asap
        2, 1,                   // strikes N, M
        0, 0, 0xc3, 0x50,       // deadline 50 000 us
    ];
    let f = OpenFlow {
        local_port: Port(10),
        destination: Destination::Node {
            node: node(2),
            port: Port(20),
        },
        protocol: LinkProtocol::Realtime,
        routing: RoutingMode::KPaths(2),
        priority: 0,
        deadline_us: 50_000,
        strikes: Strikes { n: 2, m: 1 },
        delivery: DeliveryMode::InOrderAsap,
        pack_delay_us: 0,
    };
    golden_client(2, ClientMessage::OpenFlow(f), &open);

    // A best-effort flow with a pack delay: the 4-byte tail, only then.
    let mut held = open.to_vec();
    held[3] = 32;
    held[15] = 0; // best effort
    held.extend_from_slice(&[0, 0, 0x01, 0xf4]); // pack delay 500 us
    let g = OpenFlow {
        protocol: LinkProtocol::BestEffort,
        pack_delay_us: 500,
        ..f
    };
    golden_client(2, ClientMessage::OpenFlow(g), &held);
    // A tail of any other length is refused.
    let mut bad = held.clone();
    bad[3] = 30;
    bad.truncate(bad.len() - 2);
    assert!(matches!(
        ClientMessage::decode(&only_frame(&bad)),
        Err(DecodeError::Truncated { .. })
    ));

    let send = [
        0, 0, 0, 14, 0x06, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 7, b'h', b'i',
    ];
    golden_client(
        9,
        ClientMessage::Send {
            flow: FlowHandle(7),
            payload: b"hi",
        },
        &send,
    );
}

#[test]
fn golden_deliver_and_error() {
    #[rustfmt::skip]
    let deliver = [
        0, 0, 0, 37, 0x85, 0, 0, 0, 0, 0, 0, 0,
        0x13, 0x88,             // local port 5000
        0, 3,                   // source node
        0x12, 0x34,             // source port
        1, 0,                   // kind multicast, reserved
        0x0a, 0x0b, 0x0c, 0x0d, // group
        0x11, 0x22, 0x33, 0x44, // flow id
        1, 2, 3, 4, 5, 6, 7, 8, // seq
        0, 0, 0x05, 0xdc,       // age 1500 us
        b'x',
    ];
    let d = Deliver {
        local_port: Port(5000),
        to: DeliveredTo::Multicast(GroupId(0x0a0b_0c0d)),
        source_node: node(3),
        source_port: Port(0x1234),
        flow: FlowId(0x1122_3344),
        seq: 0x0102_0304_0506_0708,
        age_us: 1500,
        payload: b"x",
    };
    golden_server(0, ServerMessage::Deliver(d), &deliver);

    #[rustfmt::skip]
    let error = [
        0, 0, 0, 18, 0x87, 0, 0, 0, 0, 0, 0, 1,
        0, 2,                   // code: UnsupportedVersion
        0, 0,                   // reserved
        0, 2, 0, 3,             // detail: versions 2..=3
        b'n', b'o',
    ];
    let e = ErrorMsg {
        text: "no",
        ..ErrorMsg::unsupported_version(2, 3)
    };
    golden_server(1, ServerMessage::Error(e), &error);

    golden_server(
        0,
        ServerMessage::Goodbye,
        &[0, 0, 0, 8, 0x89, 0, 0, 0, 0, 0, 0, 0],
    );
    golden_client(
        5,
        ClientMessage::Goodbye,
        &[0, 0, 0, 8, 0x09, 0, 0, 0, 0, 0, 0, 5],
    );
}

#[test]
fn limits_are_enforced_on_both_sides() {
    let full = vec![0x5a; MAX_PAYLOAD];
    let bytes = encode(
        1,
        &ClientMessage::Send {
            flow: FlowHandle(1),
            payload: &full,
        },
    );
    let f = only_frame(&bytes);
    assert_eq!(
        ClientMessage::decode(&f).unwrap(),
        ClientMessage::Send {
            flow: FlowHandle(1),
            payload: &full
        }
    );

    let over = vec![0; MAX_PAYLOAD + 1];
    let mut buf = vec![0; MAX_FRAME_SIZE];
    let send = ClientMessage::Send {
        flow: FlowHandle(1),
        payload: &over,
    };
    assert_eq!(
        encode_frame(1, &send, &mut buf),
        Err(EncodeError::PayloadTooLarge {
            len: MAX_PAYLOAD + 1,
            max: MAX_PAYLOAD
        })
    );
    // A hand-made frame with one byte too many decodes to MessageTooLarge, not a close.
    let mut raw = bytes.clone();
    raw.push(0);
    let len = u32::try_from(raw.len() - 4).unwrap();
    raw[..4].copy_from_slice(&len.to_be_bytes());
    let err = ClientMessage::decode(&only_frame(&raw)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PayloadTooLarge {
            len: MAX_PAYLOAD + 1,
            max: MAX_PAYLOAD
        }
    );
    assert_eq!(err.code(), ErrorCode::MessageTooLarge);

    let long_name = "n".repeat(MAX_CLIENT_NAME_LEN + 1);
    let hello = ClientMessage::Hello(Hello {
        min_version: 1,
        max_version: 1,
        name: &long_name,
    });
    assert!(matches!(
        encode_frame(1, &hello, &mut buf),
        Err(EncodeError::TextTooLong { .. })
    ));
    let long_text = "t".repeat(MAX_ERROR_TEXT_LEN + 1);
    let e = ServerMessage::Error(ErrorMsg {
        code: ErrorCode::Internal,
        detail: 0,
        text: &long_text,
    });
    assert!(matches!(
        encode_frame(1, &e, &mut buf),
        Err(EncodeError::TextTooLong { .. })
    ));
}

#[test]
fn malformed_messages_get_typed_errors() {
    let frame = |msg_type, flags, reserved, body| Frame {
        msg_type,
        flags,
        reserved,
        request_id: 3,
        body,
    };
    let cases: [(Frame<'_>, DecodeError); 9] = [
        (
            frame(0x02, 1, 0, &[0, 1]),
            DecodeError::ReservedBitsSet { field: "flags" },
        ),
        (
            frame(0x02, 0, 1, &[0, 1]),
            DecodeError::ReservedBitsSet {
                field: "frame reserved",
            },
        ),
        (
            frame(0x02, 0, 0, &[0]),
            DecodeError::Truncated {
                msg: "Bind",
                needed: 2,
                got: 1,
            },
        ),
        (
            frame(0x02, 0, 0, &[0, 1, 2]),
            DecodeError::TrailingBytes {
                msg: "Bind",
                extra: 1,
            },
        ),
        (frame(0x81, 0, 0, &[0; 20]), DecodeError::UnknownType(0x81)),
        (frame(0x42, 0, 0, &[]), DecodeError::UnknownType(0x42)),
        (
            frame(0x01, 0, 0, b"WEFX\0\x01\0\x01"),
            DecodeError::BadField {
                field: "hello magic",
                value: 0x5745_4658,
            },
        ),
        (
            frame(0x01, 0, 0, b"WEFT\0\x01\0\x01\xff"),
            DecodeError::BadUtf8 {
                field: "client name",
            },
        ),
        (
            frame(0x09, 0, 0, &[0]),
            DecodeError::TrailingBytes {
                msg: "Goodbye",
                extra: 1,
            },
        ),
    ];
    for (f, want) in cases {
        assert_eq!(ClientMessage::decode(&f), Err(want), "{f:?}");
        assert_eq!(want.code(), ErrorCode::BadRequest);
    }
    // OpenFlow to node 0, an unknown protocol, k-paths with k = 0.
    let good = encode(
        1,
        &ClientMessage::OpenFlow(OpenFlow {
            local_port: Port(1),
            destination: Destination::Node {
                node: node(1),
                port: Port(2),
            },
            protocol: LinkProtocol::BestEffort,
            routing: RoutingMode::LinkState,
            priority: 0,
            deadline_us: 0,
            strikes: Strikes { n: 0, m: 0 },
            delivery: DeliveryMode::AtDeadline,
            pack_delay_us: 0,
        }),
    );
    for (offset, value, field) in [
        (19, 0, "destination node"),
        (15, 9, "link protocol"),
        (22, 1, "routing mode"),
    ] {
        let mut bad = good.clone();
        bad[offset] = value;
        let err = ClientMessage::decode(&only_frame(&bad)).unwrap_err();
        assert!(
            matches!(err, DecodeError::BadField { field: f, .. } if f == field),
            "{err:?}"
        );
    }
    // Deliver from node 0, and a unicast Deliver with a group set.
    let d = Deliver {
        local_port: Port(1),
        to: DeliveredTo::Node,
        source_node: node(1),
        source_port: Port(1),
        flow: FlowId(1),
        seq: 1,
        age_us: 1,
        payload: b"",
    };
    let good = encode(0, &ServerMessage::Deliver(d));
    let mut bad = good.clone();
    bad[15] = 0;
    assert!(matches!(
        ServerMessage::decode(&only_frame(&bad)),
        Err(DecodeError::BadField {
            field: "source node",
            ..
        })
    ));
    let mut bad = good.clone();
    bad[21] = 1;
    assert!(matches!(
        ServerMessage::decode(&only_frame(&bad)),
        Err(DecodeError::BadField { field: "group", .. })
    ));
}

#[test]
fn writer_fills_to_capacity_and_never_writes_a_partial_frame() {
    let mut buf = [0u8; 100];
    let mut w = FrameWriter::new(&mut buf);
    let send = ClientMessage::Send {
        flow: FlowHandle(1),
        payload: &[1; 14],
    }; // 30-byte frames
    let mut pushed = 0;
    loop {
        match w.push(pushed, &send) {
            Ok(n) => assert_eq!(n, 30),
            Err(e) => {
                assert_eq!(
                    e,
                    EncodeError::BufferFull {
                        needed: 30,
                        available: 10
                    }
                );
                break;
            }
        }
        pushed += 1;
    }
    assert_eq!((w.frames(), w.len(), w.spare_capacity()), (3, 90, 10));
    let bytes = w.as_bytes().to_vec();
    let ids: Vec<u32> = FrameReader::new(&bytes)
        .map(|f| f.unwrap().request_id)
        .collect();
    assert_eq!(ids, [0, 1, 2]);
    // A Goodbye (12 bytes) does not fit in 10 either; an empty writer after clear takes frames again.
    assert!(w.push(9, &ClientMessage::Goodbye).is_err());
    w.clear();
    assert!(w.is_empty());
    w.push(9, &ClientMessage::Goodbye).unwrap();
    assert_eq!(w.len(), 12);
}

/// One of every message type, client and server, as a single byte stream.
fn one_of_each() -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    let open = OpenFlow {
        local_port: Port(4),
        destination: Destination::Anycast {
            group: GroupId(9),
            port: Port(5),
        },
        protocol: LinkProtocol::ItReliable,
        routing: RoutingMode::DisseminationGraph,
        priority: 3,
        deadline_us: 7,
        strikes: Strikes { n: 1, m: 2 },
        delivery: DeliveryMode::AtDeadline,
        pack_delay_us: 0,
    };
    let client = [
        ClientMessage::Hello(Hello {
            min_version: 1,
            max_version: 1,
            name: "splitter",
        }),
        ClientMessage::Bind { port: Port(0) },
        ClientMessage::Unbind { port: Port(3) },
        ClientMessage::OpenFlow(open),
        ClientMessage::CloseFlow {
            flow: FlowHandle(2),
        },
        ClientMessage::Send {
            flow: FlowHandle(2),
            payload: b"payload bytes",
        },
        ClientMessage::Join { group: GroupId(1) },
        ClientMessage::Leave { group: GroupId(1) },
        ClientMessage::Goodbye,
    ];
    for (i, m) in client.iter().enumerate() {
        bytes.extend(encode(u32::try_from(i).unwrap(), m));
        ends.push(bytes.len());
    }
    let welcome = Welcome {
        version: 1,
        node: node(1023),
        max_payload: 1,
        default_credits: 2,
        max_flows: 3,
        max_ports: 4,
        max_groups: 5,
    };
    let deliver = Deliver {
        local_port: Port(1),
        to: DeliveredTo::Anycast(GroupId(8)),
        source_node: node(1),
        source_port: Port(2),
        flow: FlowId(3),
        seq: 4,
        age_us: 5,
        payload: b"delivered",
    };
    let server = [
        ServerMessage::Welcome(welcome),
        ServerMessage::Bound { port: Port(77) },
        ServerMessage::FlowOpened {
            flow: FlowHandle(2),
            credits: 16,
        },
        ServerMessage::Ok,
        ServerMessage::Deliver(deliver),
        ServerMessage::Credit {
            flow: FlowHandle(2),
            credits: 4,
        },
        ServerMessage::Error(ErrorMsg {
            code: ErrorCode::NoCredit,
            detail: 2,
            text: "no crédit",
        }),
        ServerMessage::Goodbye,
    ];
    for (i, m) in server.iter().enumerate() {
        bytes.extend(encode(u32::try_from(100 + i).unwrap(), m));
        ends.push(bytes.len());
    }
    (bytes, ends)
}

/// Decodes a frame as whichever side sent it, into a comparable string.
fn describe(f: &Frame<'_>) -> String {
    if f.msg_type & 0x80 == 0 {
        format!("{} {:?}", f.request_id, ClientMessage::decode(f).unwrap())
    } else {
        format!("{} {:?}", f.request_id, ServerMessage::decode(f).unwrap())
    }
}

#[test]
fn frames_split_at_every_byte_boundary() {
    let (bytes, ends) = one_of_each();
    let whole: Vec<String> = FrameReader::new(&bytes)
        .map(|f| describe(&f.unwrap()))
        .collect();
    assert_eq!(whole.len(), 17);

    for split in 0..=bytes.len() {
        // A reader over the first part returns exactly the frames that end within it.
        let mut r = FrameReader::new(&bytes[..split]);
        let mut got = 0;
        for f in r.by_ref() {
            f.unwrap();
            got += 1;
        }
        let complete = ends.iter().filter(|&&e| e <= split).count();
        assert_eq!(got, complete, "split at {split}");
        assert_eq!(
            r.consumed(),
            if complete == 0 { 0 } else { ends[complete - 1] }
        );

        // Streaming the two parts through a RecvBuf yields every frame once, in order.
        let mut rb = RecvBuf::new(0);
        let mut seen = Vec::new();
        for part in [&bytes[..split], &bytes[split..]] {
            rb.spare_mut()[..part.len()].copy_from_slice(part);
            rb.commit(part.len());
            let mut r = rb.frames();
            seen.extend(r.by_ref().map(|f| describe(&f.unwrap())));
            let used = r.consumed();
            rb.consume(used);
        }
        assert_eq!(seen, whole, "split at {split}");
        assert!(rb.data().is_empty());
    }

    // One byte at a time.
    let mut rb = RecvBuf::new(0);
    let mut seen = Vec::new();
    for b in &bytes {
        rb.spare_mut()[0] = *b;
        rb.commit(1);
        let mut r = rb.frames();
        seen.extend(r.by_ref().map(|f| describe(&f.unwrap())));
        let used = r.consumed();
        rb.consume(used);
    }
    assert_eq!(seen, whole);
}
