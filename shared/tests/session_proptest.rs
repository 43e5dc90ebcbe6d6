//! Session codec property tests: every message round trips (encode then decode gives it back),
//! and arbitrary, frame-like, corrupted or truncated bytes give frames or typed errors, never a
//! panic.

#![allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]

use proptest::prelude::*;
use weft_shared::ids::{FlowId, GroupId, MAX_NODE_ID, NodeId, Port};
use weft_shared::session::{
    ClientMessage, Deliver, DeliveredTo, DeliveryMode, Destination, Encode, ErrorCode, ErrorMsg,
    FlowHandle, Frame, FrameError, FrameReader, Hello, LinkProtocol, MAX_FRAME_SIZE, MAX_PAYLOAD,
    OpenFlow, RoutingMode, ServerMessage, Strikes, Welcome, encode_frame,
};

fn node(n: u16) -> NodeId {
    NodeId::new(n).unwrap()
}

fn encode<M: Encode>(request_id: u32, msg: &M) -> Vec<u8> {
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

// Round trips. Owned mirrors of the messages, so proptest can generate them.

#[derive(Clone, Debug)]
enum OwnedClient {
    Hello(u16, u16, String),
    Bind(u16),
    Unbind(u16),
    OpenFlow(OpenFlow),
    CloseFlow(u32),
    Send(u32, Vec<u8>),
    Join(u32),
    Leave(u32),
    Goodbye,
}

impl OwnedClient {
    fn view(&self) -> ClientMessage<'_> {
        match self {
            OwnedClient::Hello(a, b, n) => ClientMessage::Hello(Hello {
                min_version: *a,
                max_version: *b,
                name: n,
            }),
            OwnedClient::Bind(p) => ClientMessage::Bind { port: Port(*p) },
            OwnedClient::Unbind(p) => ClientMessage::Unbind { port: Port(*p) },
            OwnedClient::OpenFlow(f) => ClientMessage::OpenFlow(*f),
            OwnedClient::CloseFlow(h) => ClientMessage::CloseFlow {
                flow: FlowHandle(*h),
            },
            OwnedClient::Send(h, p) => ClientMessage::Send {
                flow: FlowHandle(*h),
                payload: p,
            },
            OwnedClient::Join(g) => ClientMessage::Join { group: GroupId(*g) },
            OwnedClient::Leave(g) => ClientMessage::Leave { group: GroupId(*g) },
            OwnedClient::Goodbye => ClientMessage::Goodbye,
        }
    }
}

#[derive(Clone, Debug)]
enum OwnedServer {
    Welcome(Welcome),
    Bound(u16),
    FlowOpened(u32, u32),
    Ok,
    Deliver(Deliver<'static>, Vec<u8>),
    Credit(u32, u32),
    Error(ErrorCode, u32, String),
    Goodbye,
}

impl OwnedServer {
    fn view(&self) -> ServerMessage<'_> {
        match self {
            OwnedServer::Welcome(w) => ServerMessage::Welcome(*w),
            OwnedServer::Bound(p) => ServerMessage::Bound { port: Port(*p) },
            OwnedServer::FlowOpened(f, c) => ServerMessage::FlowOpened {
                flow: FlowHandle(*f),
                credits: *c,
            },
            OwnedServer::Ok => ServerMessage::Ok,
            OwnedServer::Deliver(d, p) => ServerMessage::Deliver(Deliver { payload: p, ..*d }),
            OwnedServer::Credit(f, c) => ServerMessage::Credit {
                flow: FlowHandle(*f),
                credits: *c,
            },
            OwnedServer::Error(code, detail, text) => ServerMessage::Error(ErrorMsg {
                code: *code,
                detail: *detail,
                text,
            }),
            OwnedServer::Goodbye => ServerMessage::Goodbye,
        }
    }
}

fn node_id() -> impl Strategy<Value = NodeId> {
    (1..=MAX_NODE_ID).prop_map(node)
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..300),
        1 => proptest::collection::vec(any::<u8>(), MAX_PAYLOAD - 8..=MAX_PAYLOAD),
    ]
}

fn open_flow() -> impl Strategy<Value = OpenFlow> {
    let destination = prop_oneof![
        (node_id(), any::<u16>()).prop_map(|(node, p)| Destination::Node {
            node,
            port: Port(p)
        }),
        (any::<u32>(), any::<u16>()).prop_map(|(g, p)| Destination::Multicast {
            group: GroupId(g),
            port: Port(p)
        }),
        (any::<u32>(), any::<u16>()).prop_map(|(g, p)| Destination::Anycast {
            group: GroupId(g),
            port: Port(p)
        }),
    ];
    let protocol = prop_oneof![
        Just(LinkProtocol::BestEffort),
        Just(LinkProtocol::Reliable),
        Just(LinkProtocol::Realtime),
        Just(LinkProtocol::ItPriority),
        Just(LinkProtocol::ItReliable),
    ];
    let routing = prop_oneof![
        Just(RoutingMode::LinkState),
        (1..=u8::MAX).prop_map(RoutingMode::KPaths),
        Just(RoutingMode::Flooding),
        Just(RoutingMode::DisseminationGraph),
    ];
    let delivery = prop_oneof![
        Just(DeliveryMode::AtDeadline),
        Just(DeliveryMode::InOrderAsap)
    ];
    (
        any::<u16>(),
        destination,
        protocol,
        routing,
        any::<u8>(),
        any::<u32>(),
        any::<(u8, u8)>(),
        (delivery, prop_oneof![Just(0u32), any::<u32>()]),
    )
        .prop_map(
            |(
                lp,
                destination,
                protocol,
                routing,
                priority,
                deadline_us,
                (n, m),
                (delivery, pack_delay_us),
            )| {
                OpenFlow {
                    local_port: Port(lp),
                    destination,
                    protocol,
                    routing,
                    priority,
                    deadline_us,
                    strikes: Strikes { n, m },
                    delivery,
                    pack_delay_us,
                }
            },
        )
}

fn client_message() -> impl Strategy<Value = OwnedClient> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), "\\PC{0,16}")
            .prop_map(|(a, b, n)| OwnedClient::Hello(a, b, n)),
        any::<u16>().prop_map(OwnedClient::Bind),
        any::<u16>().prop_map(OwnedClient::Unbind),
        open_flow().prop_map(OwnedClient::OpenFlow),
        any::<u32>().prop_map(OwnedClient::CloseFlow),
        (any::<u32>(), payload()).prop_map(|(h, p)| OwnedClient::Send(h, p)),
        any::<u32>().prop_map(OwnedClient::Join),
        any::<u32>().prop_map(OwnedClient::Leave),
        Just(OwnedClient::Goodbye),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    // Known codes, and unknown ones (which must stay `Other`).
    prop_oneof![
        (1u16..=14).prop_map(ErrorCode::from_u16),
        prop_oneof![Just(0u16), 15u16..].prop_map(ErrorCode::Other),
    ]
}

fn server_message() -> impl Strategy<Value = OwnedServer> {
    let welcome = (
        any::<u16>(),
        node_id(),
        any::<u32>(),
        any::<u32>(),
        any::<(u16, u16, u16)>(),
    )
        .prop_map(
            |(version, node, max_payload, default_credits, (max_flows, max_ports, max_groups))| {
                Welcome {
                    version,
                    node,
                    max_payload,
                    default_credits,
                    max_flows,
                    max_ports,
                    max_groups,
                }
            },
        );
    let to = prop_oneof![
        Just(DeliveredTo::Node),
        any::<u32>().prop_map(|g| DeliveredTo::Multicast(GroupId(g))),
        any::<u32>().prop_map(|g| DeliveredTo::Anycast(GroupId(g))),
    ];
    let deliver = (
        any::<u16>(),
        to,
        node_id(),
        any::<u16>(),
        any::<u32>(),
        any::<u64>(),
        any::<u32>(),
        payload(),
    )
        .prop_map(|(lp, to, source_node, sp, flow, seq, age_us, p)| {
            let d = Deliver {
                local_port: Port(lp),
                to,
                source_node,
                source_port: Port(sp),
                flow: FlowId(flow),
                seq,
                age_us,
                payload: &[],
            };
            OwnedServer::Deliver(d, p)
        });
    prop_oneof![
        welcome.prop_map(OwnedServer::Welcome),
        any::<u16>().prop_map(OwnedServer::Bound),
        any::<(u32, u32)>().prop_map(|(f, c)| OwnedServer::FlowOpened(f, c)),
        Just(OwnedServer::Ok),
        deliver,
        any::<(u32, u32)>().prop_map(|(f, c)| OwnedServer::Credit(f, c)),
        (error_code(), any::<u32>(), "\\PC{0,64}")
            .prop_map(|(c, d, t)| OwnedServer::Error(c, d, t)),
        Just(OwnedServer::Goodbye),
    ]
}

/// Byte strings that look like frame streams: interesting length prefixes, then noise.
fn frame_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let max = u32::try_from(MAX_FRAME_SIZE).unwrap();
    let len = prop_oneof![
        0u32..24,
        Just(max - 5),
        Just(max - 4),
        Just(max - 3),
        Just(u32::MAX),
        any::<u32>()
    ];
    (
        len,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(len, t, rest)| {
            let mut v = len.to_be_bytes().to_vec();
            v.push(t);
            v.extend(rest);
            v
        })
}

/// Runs the whole receive path on `bytes`: framing, then decoding as both sides.
fn receive_everything(bytes: &[u8]) {
    let mut r = FrameReader::new(bytes);
    let mut total = 0;
    for f in r.by_ref() {
        match f {
            Ok(f) => {
                total += 12 + f.body.len();
                let _ = ClientMessage::decode(&f);
                let _ = ServerMessage::decode(&f);
            }
            Err(FrameError::TooShort { len }) => assert!(len < 8),
            Err(FrameError::TooLarge { size, max }) => assert!(size > u64::from(max)),
        }
    }
    assert_eq!(r.consumed(), total);
    assert!(r.consumed() <= bytes.len());
}

proptest! {
    // Integration tests have no lib.rs next to them for proptest's failure file; a failure
    // prints its minimal case instead.
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn client_messages_round_trip(msg in client_message(), id in any::<u32>()) {
        let view = msg.view();
        let bytes = encode(id, &view);
        let f = only_frame(&bytes);
        prop_assert_eq!(f.request_id, id);
        prop_assert_eq!(ClientMessage::decode(&f).unwrap(), view);
    }

    #[test]
    fn server_messages_round_trip(msg in server_message(), id in any::<u32>()) {
        let view = msg.view();
        let bytes = encode(id, &view);
        let f = only_frame(&bytes);
        prop_assert_eq!(f.request_id, id);
        prop_assert_eq!(ServerMessage::decode(&f).unwrap(), view);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        receive_everything(&bytes);
    }

    #[test]
    fn frame_like_bytes_never_panic(bytes in frame_like_bytes()) {
        receive_everything(&bytes);
    }

    #[test]
    fn arbitrary_bodies_never_panic(
        msg_type in any::<u8>(),
        flags in prop_oneof![3 => Just(0u8), 1 => any::<u8>()],
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let f = Frame { msg_type, flags, reserved: 0, request_id: 1, body: &body };
        let _ = ClientMessage::decode(&f);
        let _ = ServerMessage::decode(&f);
    }

    #[test]
    fn corrupted_and_truncated_frames_never_panic(
        msg in server_message(),
        cmsg in client_message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for mut bytes in [encode(7, &msg.view()), encode(7, &cmsg.view())] {
            for (at, v) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= v;
            }
            let end = cut.index(bytes.len() + 1);
            receive_everything(&bytes[..end]);
            receive_everything(&bytes);
        }
    }
}
