//! Proptest strategies for every wire `Repr`, and owned messages for whole-packet tests.
//!
//! Test-only. Each strategy generates only values that have an encoding, so a round trip must
//! give the value back.

use core::num::NonZeroU32;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::ids::{FlowId, GroupId, Incarnation, LinkId, MAX_NODE_ID, NodeId, PathId, Port};

pub(crate) fn arb_node_id() -> impl Strategy<Value = NodeId> {
    (1..=MAX_NODE_ID).prop_filter_map("node id", NodeId::new)
}

fn arb_incarnation() -> impl Strategy<Value = Incarnation> {
    (1..=u32::MAX).prop_map(Incarnation)
}

pub(crate) fn arb_link_repr() -> impl Strategy<Value = LinkRepr> {
    let ty = prop::sample::select(PacketType::ALL.to_vec());
    arb_link_repr_of(ty)
}

pub(crate) fn arb_link_repr_of(
    ty: impl Strategy<Value = PacketType>,
) -> impl Strategy<Value = LinkRepr> {
    (
        ty,
        (any::<bool>(), 0..super::KEY_EPOCH_SLOTS),
        any::<u8>(),
        arb_node_id(),
        (0..crate::ids::MAX_LINKS).prop_filter_map("link", LinkId::new),
        (0..crate::ids::MAX_PATHS_PER_LINK).prop_filter_map("path", PathId::new),
        arb_incarnation(),
        0..=MAX_PACKET_COUNTER,
    )
        .prop_filter_map(
            "packet number",
            |(packet_type, (auth, epoch), lane, sender, link, path, inc, counter)| {
                Some(LinkRepr {
                    packet_type,
                    auth,
                    key_epoch: if auth { epoch } else { 0 },
                    lane,
                    sender,
                    link,
                    path,
                    sender_incarnation: inc,
                    packet_number: LinkRepr::packet_number(lane, counter)?,
                })
            },
        )
}

pub(crate) fn arb_record_repr() -> impl Strategy<Value = RecordRepr> {
    let kinds = vec![
        RecordKind::Hello,
        RecordKind::Ack,
        RecordKind::Nack,
        RecordKind::Control,
        RecordKind::Data,
    ];
    (
        prop::sample::select(kinds),
        any::<bool>(),
        any::<u32>(),
        0u16..2000,
    )
        .prop_map(|(kind, retransmit, link_seq, body_len)| {
            let data = kind == RecordKind::Data;
            RecordRepr {
                kind,
                flags: if retransmit && data {
                    RecordFlags::RETRANSMIT
                } else {
                    RecordFlags::NONE
                },
                link_seq: if data { link_seq } else { 0 },
                body_len,
            }
        })
}

pub(crate) fn arb_hello() -> impl Strategy<Value = HelloRepr> {
    let echo = prop::option::of((any::<u64>(), any::<u32>(), arb_incarnation())).prop_map(|e| {
        e.map(|(tx_time_ns, delay_us, incarnation)| HelloEcho {
            tx_time_ns,
            delay_us,
            incarnation,
        })
    });
    (
        1u8..=255,
        any::<u8>(),
        any::<u32>(),
        any::<u64>(),
        echo,
        any::<u64>(),
        any::<Option<u8>>(),
    )
        .prop_map(
            |(min, span, hello_seq, tx_time_ns, echo, config_hash, key_epoch)| HelloRepr {
                version_min: min,
                version_max: min.saturating_add(span % 4),
                hello_seq,
                tx_time_ns,
                echo,
                config_hash,
                key_epoch,
            },
        )
}

fn arb_feedback_proto() -> impl Strategy<Value = LinkProto> {
    prop::sample::select(vec![LinkProto::Reliable, LinkProto::Realtime])
}

pub(crate) fn arb_ack() -> impl Strategy<Value = AckRepr> {
    (
        arb_feedback_proto(),
        any::<u8>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(|(link_proto, data_lane, cum_ack, sack)| AckRepr {
            link_proto,
            data_lane,
            cum_ack,
            sack,
        })
}

pub(crate) fn arb_nack() -> impl Strategy<Value = NackRepr> {
    (
        arb_feedback_proto(),
        any::<u8>(),
        vec(any::<u32>(), 1..=MAX_NACK_SEQS),
    )
        .prop_filter_map("nack", |(p, lane, seqs)| {
            NackRepr::new(p, &seqs).map(|n| n.with_data_lane(lane))
        })
}

pub(crate) fn arb_control_kind() -> impl Strategy<Value = ControlKind> {
    prop::sample::select(vec![ControlKind::LinkState, ControlKind::GroupState])
}

fn arb_route() -> impl Strategy<Value = Route> {
    let mask =
        vec(any::<u64>(), 1..=MAX_MASK_WORDS).prop_filter_map("mask", |w| LinkMask::from_words(&w));
    prop_oneof![
        arb_node_id().prop_map(Route::Unicast),
        any::<u32>().prop_map(|g| Route::Multicast(GroupId(g))),
        any::<u32>().prop_map(|g| Route::Anycast(GroupId(g))),
        (arb_node_id(), mask).prop_map(|(dst, mask)| Route::SourceRouted { dst, mask }),
    ]
}

pub(crate) fn arb_overlay() -> impl Strategy<Value = OverlayRepr> {
    (
        (
            arb_route(),
            any::<u8>(),
            prop::sample::select(LinkProto::ALL.to_vec()),
        ),
        (any::<bool>(), any::<u8>(), 0u8..16, 0u8..16),
        (arb_node_id(), any::<u16>(), any::<u16>(), arb_incarnation()),
        (any::<u32>(), any::<u64>(), any::<u32>(), any::<u32>()),
    )
        .prop_map(|(a, b, c, d)| {
            let (route, ttl, link_proto) = a;
            let (at_deadline, priority, n, m) = b;
            let (src, src_port, dst_port, src_incarnation) = c;
            let (flow, seq, deadline, age_us) = d;
            let deadline_us = NonZeroU32::new(deadline);
            let realtime = link_proto == LinkProto::Realtime;
            OverlayRepr {
                route,
                ttl,
                link_proto,
                delivery: if at_deadline && deadline_us.is_some() {
                    Delivery::AtDeadline
                } else {
                    Delivery::AsSoonAsOrdered
                },
                priority,
                strikes: Strikes::new(n, m)
                    .filter(|_| realtime)
                    .unwrap_or(Strikes::NONE),
                src,
                src_port: Port(src_port),
                dst_port: Port(dst_port),
                src_incarnation,
                flow: FlowId(flow),
                seq,
                deadline_us,
                age_us,
            }
        })
}

/// A fragment header with a payload length it accepts.
pub(crate) fn arb_fragment() -> impl Strategy<Value = (FragmentRepr, usize)> {
    (
        1usize..300,
        2u16..=MAX_FRAGMENTS,
        any::<prop::sample::Index>(),
        any::<u16>(),
    )
        .prop_map(|(stride, count, last, index)| {
            let last = last.index(stride) + 1;
            let index = index % count;
            let msg_len = (usize::from(count) - 1) * stride + last;
            let payload = if index + 1 == count { last } else { stride };
            let repr = FragmentRepr {
                index,
                count,
                msg_len: msg_len as u32,
            };
            (repr, payload)
        })
}

/// The parts of a data record, with an owned payload.
pub(crate) fn arb_data() -> impl Strategy<Value = (OverlayRepr, Option<FragmentRepr>, Vec<u8>)> {
    let frag = prop::option::of(arb_fragment());
    (arb_overlay(), frag, vec(any::<u8>(), 0..200)).prop_map(|(overlay, frag, mut payload)| {
        match frag {
            Some((f, len)) => {
                payload.resize(len, 0xab);
                (overlay, Some(f), payload)
            }
            None => (overlay, None, payload),
        }
    })
}

/// A record's message with owned bytes, so it can be generated and then borrowed.
#[derive(Clone, Debug)]
pub(crate) enum OwnedMessage {
    Hello(HelloRepr),
    Ack(AckRepr),
    Nack(NackRepr),
    Control(NodeId, Incarnation, u32, ControlKind, Vec<u8>),
    Data(OverlayRepr, Option<FragmentRepr>, Vec<u8>),
}

impl OwnedMessage {
    pub(crate) fn as_message(&self) -> Message<'_> {
        match self {
            OwnedMessage::Hello(h) => Message::Hello(*h),
            OwnedMessage::Ack(a) => Message::Ack(*a),
            OwnedMessage::Nack(n) => Message::Nack(*n),
            OwnedMessage::Control(origin, inc, seq, kind, body) => Message::Control(ControlRepr {
                origin: *origin,
                origin_incarnation: *inc,
                update_seq: *seq,
                kind: *kind,
                body,
            }),
            OwnedMessage::Data(overlay, fragment, payload) => Message::Data(DataRepr {
                overlay: *overlay,
                fragment: *fragment,
                payload,
            }),
        }
    }
}

/// One record: flags, link sequence and message, consistent with each other.
pub(crate) type OwnedRecord = (RecordFlags, u32, OwnedMessage);

fn arb_record_of(ty: PacketType) -> BoxedStrategy<OwnedRecord> {
    let none = |m| (RecordFlags::NONE, 0, m);
    match ty {
        PacketType::Hello => arb_hello()
            .prop_map(move |h| none(OwnedMessage::Hello(h)))
            .boxed(),
        PacketType::Feedback => prop_oneof![
            arb_ack().prop_map(move |a| none(OwnedMessage::Ack(a))),
            arb_nack().prop_map(move |n| none(OwnedMessage::Nack(n))),
        ]
        .boxed(),
        PacketType::Control => (
            arb_node_id(),
            arb_incarnation(),
            any::<u32>(),
            arb_control_kind(),
            vec(any::<u8>(), 0..100),
        )
            .prop_map(move |(o, i, s, k, b)| none(OwnedMessage::Control(o, i, s, k, b)))
            .boxed(),
        PacketType::Data => (arb_data(), any::<bool>(), any::<u32>())
            .prop_map(|((overlay, frag, payload), retransmit, seq)| {
                let best_effort = overlay.link_proto == LinkProto::BestEffort;
                let flags = if retransmit && !best_effort {
                    RecordFlags::RETRANSMIT
                } else {
                    RecordFlags::NONE
                };
                let seq = if best_effort { 0 } else { seq };
                (flags, seq, OwnedMessage::Data(overlay, frag, payload))
            })
            .boxed(),
    }
}

/// A link header and 1..=4 records of its packet type.
pub(crate) fn arb_packet() -> impl Strategy<Value = (LinkRepr, Vec<OwnedRecord>)> {
    arb_link_repr().prop_flat_map(|link| {
        vec(arb_record_of(link.packet_type), 1..=4).prop_map(move |records| (link, records))
    })
}

/// Builds a datagram of `records` under `link` (tag bytes zero).
pub(crate) fn build_packet(link: &LinkRepr, records: &[OwnedRecord]) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut w = PacketWriter::new(&mut buf, link, 4096).unwrap();
    for (flags, seq, msg) in records {
        msg.as_message().push_to(w.records(), *flags, *seq).unwrap();
    }
    let len = w.finish().unwrap();
    buf.truncate(len);
    buf
}
