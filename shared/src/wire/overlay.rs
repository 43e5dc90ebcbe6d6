//! The overlay header: the 44 bytes that start every data record, end to end across the overlay.
//!
//! It names the source (node, port, incarnation), the destination (node or group, port), the
//! flow and its end-to-end sequence, and the flow's service: which link protocol every hop runs
//! for it, its priority, its NM-Strikes counts and its one-way deadline. Intermediate nodes keep
//! no per-flow setup state, so everything a hop needs to serve the packet travels in it (see
//! docs/wire.md "Why the service travels in every packet"). After the header come the optional
//! link bitmask ([`LinkMask`]), the optional fragment header ([`FragmentRepr`]) and the payload.

use core::fmt;
use core::mem::size_of;
use core::num::NonZeroU32;

use zerocopy::network_endian::{U16, U32, U64};
use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout, Ref, SplitByteSlice, SplitByteSliceMut, Unaligned,
};

use super::record::{RecordBody, RecordKind};
use super::{
    EmitError, FRAGMENT_HEADER_LEN, FragmentHeader, FragmentRepr, LinkMask, MAX_MASK_WORDS,
    check_room, write_view,
};
use crate::DropReason;
use crate::ids::{FlowId, GroupId, Incarnation, NodeId, Port};

/// Length of the overlay header in bytes.
pub const OVERLAY_HEADER_LEN: usize = 44;
/// Service flag bit 0: deliver at the deadline (constant delay) rather than as soon as ordered.
pub const SVC_FLAG_AT_DEADLINE: u8 = 0x01;
/// Service flag bit 1: a fragment header follows the bitmask.
pub const SVC_FLAG_FRAGMENT: u8 = 0x02;

/// The overlay header as it sits on the wire.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct OverlayHeader {
    /// 0 unicast (link state), 1 multicast, 2 anycast, 3 source-routed (bitmask).
    pub routing: u8,
    /// Hops left; a node forwarding to another node decrements it.
    pub ttl: u8,
    /// [`LinkProto`] every hop runs for this flow.
    pub link_proto: u8,
    /// [`SVC_FLAG_AT_DEADLINE`], [`SVC_FLAG_FRAGMENT`]; other bits reserved.
    pub svc_flags: u8,
    /// Scheduling priority on each outgoing link; higher is served first.
    pub priority: u8,
    /// NM-Strikes: N (receiver requests) in the high nibble, M (retransmissions) in the low.
    pub strikes: u8,
    /// Length of the link bitmask in 8-byte words, 0..=8.
    pub mask_words: u8,
    /// Reserved, must be zero.
    pub reserved: u8,
    /// Source node.
    pub src_node: U16,
    /// Source port.
    pub src_port: U16,
    /// Destination node (unicast, source-routed) or group (multicast, anycast).
    pub dst: U32,
    /// Destination port.
    pub dst_port: U16,
    /// Payload length after the bitmask and fragment header.
    pub payload_len: U16,
    /// The source node's data-plane incarnation.
    pub src_incarnation: U32,
    /// Flow id, unique per (source node, source incarnation).
    pub flow_id: U32,
    /// End-to-end sequence number of the message within the flow.
    pub seq: U64,
    /// The flow's one-way latency budget in microseconds; 0 = none.
    pub deadline_us: U32,
    /// Microseconds spent so far: residence times plus measured one-way link delays.
    pub age_us: U32,
}

const _: () = assert!(size_of::<OverlayHeader>() == OVERLAY_HEADER_LEN);

impl OverlayHeader {
    /// Decrements the TTL before forwarding to another node, or says the packet may not take
    /// another hop ([`DropReason::TtlExpired`]). Local delivery ignores the TTL.
    pub fn decrement_ttl(&mut self) -> Result<(), DropReason> {
        if self.ttl <= 1 {
            return Err(DropReason::TtlExpired);
        }
        self.ttl -= 1;
        Ok(())
    }

    /// Adds this hop's residence time and the next link's one-way delay (saturating).
    pub fn add_age_us(&mut self, us: u32) {
        self.age_us = U32::new(self.age_us.get().saturating_add(us));
    }

    /// Budget left before the deadline (0 once late), or `None` if the flow has no deadline.
    pub fn remaining_us(&self) -> Option<u32> {
        let deadline = self.deadline_us.get();
        (deadline != 0).then(|| deadline.saturating_sub(self.age_us.get()))
    }
}

/// The link protocol every hop runs for a flow (ARCHITECTURE.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LinkProto {
    /// Forward and forget.
    BestEffort = 0,
    /// Hop-by-hop ARQ with acks and nacks; in-order exactly-once delivery at the destination.
    Reliable = 1,
    /// NM-Strikes: deadline-bounded recovery with N requests and M retransmissions.
    Realtime = 2,
    /// Intrusion-tolerant priority messaging (source-fair storage, oldest lowest-priority drop).
    ItPriority = 3,
    /// Intrusion-tolerant reliable messaging (backpressure, end-to-end acks).
    ItReliable = 4,
}

impl LinkProto {
    /// Every link protocol, in wire-value order.
    pub const ALL: [LinkProto; 5] = [
        LinkProto::BestEffort,
        LinkProto::Reliable,
        LinkProto::Realtime,
        LinkProto::ItPriority,
        LinkProto::ItReliable,
    ];

    /// The protocol of wire byte `b`, or `None` if it is unknown.
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(LinkProto::BestEffort),
            1 => Some(LinkProto::Reliable),
            2 => Some(LinkProto::Realtime),
            3 => Some(LinkProto::ItPriority),
            4 => Some(LinkProto::ItReliable),
            _ => None,
        }
    }
}

/// When the destination hands a message to the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// As soon as it is in order.
    #[default]
    AsSoonAsOrdered,
    /// When the deadline expires (constant end-to-end delay, no jitter); needs a deadline.
    AtDeadline,
}

/// NM-Strikes counts: N spaced requests by the receiver, M spaced retransmissions by the sender.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Strikes(u8);

impl Strikes {
    /// No strikes (every protocol but [`LinkProto::Realtime`]).
    pub const NONE: Strikes = Strikes(0);

    /// N requests and M retransmissions, or `None` if either is above 15.
    pub const fn new(n: u8, m: u8) -> Option<Self> {
        if n > 15 || m > 15 {
            None
        } else {
            Some(Strikes(n << 4 | m))
        }
    }

    /// The strikes of wire byte `b`.
    pub const fn from_byte(b: u8) -> Self {
        Strikes(b)
    }

    /// The wire byte.
    pub const fn byte(self) -> u8 {
        self.0
    }

    /// N: how many spaced requests the receiver sends for a gap.
    pub const fn n(self) -> u8 {
        self.0 >> 4
    }

    /// M: how many spaced retransmissions the sender sends per request.
    pub const fn m(self) -> u8 {
        self.0 & 0x0f
    }
}

impl fmt::Debug for Strikes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Strikes(n={}, m={})", self.n(), self.m())
    }
}

/// Where a data packet goes: the routing mode with its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// To a node, along link-state shortest paths.
    Unicast(NodeId),
    /// To every member of a group, along the source's shortest-path tree.
    Multicast(GroupId),
    /// To the nearest member of a group.
    Anycast(GroupId),
    /// To a node, over the links the source stamped in the bitmask.
    SourceRouted {
        /// The destination node.
        dst: NodeId,
        /// The links the packet may take.
        mask: LinkMask,
    },
}

impl Route {
    /// The routing byte on the wire.
    pub const fn routing_byte(&self) -> u8 {
        match self {
            Route::Unicast(_) => 0,
            Route::Multicast(_) => 1,
            Route::Anycast(_) => 2,
            Route::SourceRouted { .. } => 3,
        }
    }

    /// The link bitmask of a source-routed packet.
    pub const fn mask(&self) -> Option<&LinkMask> {
        match self {
            Route::SourceRouted { mask, .. } => Some(mask),
            _ => None,
        }
    }

    const fn dst_raw(&self) -> u32 {
        match self {
            Route::Unicast(n) | Route::SourceRouted { dst: n, .. } => n.get() as u32,
            Route::Multicast(g) | Route::Anycast(g) => g.0,
        }
    }

    fn mask_len(&self) -> usize {
        self.mask().map_or(0, LinkMask::wire_len)
    }
}

/// A parsed overlay header, bitmask included (in [`Route::SourceRouted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverlayRepr {
    /// Routing mode and destination.
    pub route: Route,
    /// Hops left.
    pub ttl: u8,
    /// The link protocol every hop runs.
    pub link_proto: LinkProto,
    /// When the destination delivers.
    pub delivery: Delivery,
    /// Scheduling priority; higher first.
    pub priority: u8,
    /// NM-Strikes counts; [`Strikes::NONE`] unless `link_proto` is realtime.
    pub strikes: Strikes,
    /// Source node.
    pub src: NodeId,
    /// Source port.
    pub src_port: Port,
    /// Destination port.
    pub dst_port: Port,
    /// Source node's incarnation (never 0).
    pub src_incarnation: Incarnation,
    /// Flow id.
    pub flow: FlowId,
    /// End-to-end sequence number.
    pub seq: u64,
    /// One-way budget in microseconds, if the flow has one.
    pub deadline_us: Option<NonZeroU32>,
    /// Microseconds accumulated so far.
    pub age_us: u32,
}

impl OverlayRepr {
    /// Checks the fields that do not depend on the bitmask bytes.
    fn check_header(h: &OverlayHeader) -> Result<(), DropReason> {
        if h.routing > 3 {
            return Err(DropReason::BadField {
                field: "overlay.routing",
                value: h.routing.into(),
            });
        }
        let words = usize::from(h.mask_words);
        if words > MAX_MASK_WORDS {
            return Err(DropReason::BadLength {
                field: "overlay.mask_words",
                value: words,
            });
        }
        // A bitmask exactly when source-routed.
        if (h.routing == 3) != (words > 0) {
            return Err(DropReason::BadField {
                field: "overlay.mask_words",
                value: words as u64,
            });
        }
        if h.svc_flags & !(SVC_FLAG_AT_DEADLINE | SVC_FLAG_FRAGMENT) != 0 {
            return Err(DropReason::ReservedBitsSet {
                field: "overlay.svc_flags",
            });
        }
        if h.reserved != 0 {
            return Err(DropReason::ReservedBitsSet {
                field: "overlay.reserved",
            });
        }
        Ok(())
    }

    /// Builds the repr from a header already passed by `check_header` and its bitmask bytes.
    fn from_parts(h: &OverlayHeader, mask: &[u8]) -> Result<Self, DropReason> {
        let bad = |field, value: u64| DropReason::BadField { field, value };
        let dst = h.dst.get();
        let dst_node = || {
            u16::try_from(dst)
                .ok()
                .and_then(NodeId::new)
                .ok_or(bad("overlay.dst", dst.into()))
        };
        let route = match h.routing {
            0 => Route::Unicast(dst_node()?),
            1 => Route::Multicast(GroupId(dst)),
            2 => Route::Anycast(GroupId(dst)),
            _ => Route::SourceRouted {
                dst: dst_node()?,
                mask: LinkMask::parse(mask)?,
            },
        };
        let link_proto = LinkProto::from_byte(h.link_proto)
            .ok_or(bad("overlay.link_proto", h.link_proto.into()))?;
        if h.strikes != 0 && link_proto != LinkProto::Realtime {
            return Err(bad("overlay.strikes", h.strikes.into()));
        }
        let deadline_us = NonZeroU32::new(h.deadline_us.get());
        let delivery = if h.svc_flags & SVC_FLAG_AT_DEADLINE != 0 {
            if deadline_us.is_none() {
                return Err(bad("overlay.deadline_us", 0));
            }
            Delivery::AtDeadline
        } else {
            Delivery::AsSoonAsOrdered
        };
        let src = NodeId::new(h.src_node.get())
            .ok_or(bad("overlay.src_node", h.src_node.get().into()))?;
        let src_incarnation = h.src_incarnation.get();
        if src_incarnation == 0 {
            return Err(bad("overlay.src_incarnation", 0));
        }
        Ok(OverlayRepr {
            route,
            ttl: h.ttl,
            link_proto,
            delivery,
            priority: h.priority,
            strikes: Strikes::from_byte(h.strikes),
            src,
            src_port: Port(h.src_port.get()),
            dst_port: Port(h.dst_port.get()),
            src_incarnation: Incarnation(src_incarnation),
            flow: FlowId(h.flow_id.get()),
            seq: h.seq.get(),
            deadline_us,
            age_us: h.age_us.get(),
        })
    }

    /// The header view, given the fragment flag and the payload length.
    fn header_view(&self, fragment: bool, payload_len: usize) -> Result<OverlayHeader, EmitError> {
        let invalid = |field, value: u64| EmitError::Invalid { field, value };
        if self.strikes != Strikes::NONE && self.link_proto != LinkProto::Realtime {
            return Err(invalid("overlay.strikes", self.strikes.byte().into()));
        }
        if self.delivery == Delivery::AtDeadline && self.deadline_us.is_none() {
            return Err(invalid("overlay.deadline_us", 0));
        }
        if self.src_incarnation.0 == 0 {
            return Err(invalid("overlay.src_incarnation", 0));
        }
        let payload_len = u16::try_from(payload_len)
            .map_err(|_| invalid("overlay.payload_len", payload_len as u64))?;
        let mut svc_flags = 0;
        if self.delivery == Delivery::AtDeadline {
            svc_flags |= SVC_FLAG_AT_DEADLINE;
        }
        if fragment {
            svc_flags |= SVC_FLAG_FRAGMENT;
        }
        Ok(OverlayHeader {
            routing: self.route.routing_byte(),
            ttl: self.ttl,
            link_proto: self.link_proto as u8,
            svc_flags,
            priority: self.priority,
            strikes: self.strikes.byte(),
            mask_words: (self.route.mask_len() / 8) as u8,
            reserved: 0,
            src_node: U16::new(self.src.get()),
            src_port: U16::new(self.src_port.0),
            dst: U32::new(self.route.dst_raw()),
            dst_port: U16::new(self.dst_port.0),
            payload_len: U16::new(payload_len),
            src_incarnation: U32::new(self.src_incarnation.0),
            flow_id: U32::new(self.flow.0),
            seq: U64::new(self.seq),
            deadline_us: U32::new(self.deadline_us.map_or(0, NonZeroU32::get)),
            age_us: U32::new(self.age_us),
        })
    }
}

/// A checked view of a data record body, for reading and for updating TTL and age in place.
pub struct DataPacket<B> {
    header: Ref<B, OverlayHeader>,
    overlay: OverlayRepr,
    fragment: Option<FragmentRepr>,
    payload: B,
}

impl<B: SplitByteSlice> DataPacket<B> {
    /// Checks a whole data record body: header fields, bitmask, fragment header and that the
    /// payload is exactly `payload_len` bytes.
    pub fn new_checked(body: B) -> Result<Self, DropReason> {
        let got = body.len();
        let truncated = |needed| DropReason::Truncated { needed, got };
        let (header, rest) = Ref::<B, OverlayHeader>::from_prefix(body)
            .map_err(|_| truncated(OVERLAY_HEADER_LEN))?;
        OverlayRepr::check_header(&header)?;
        let mask_len = usize::from(header.mask_words) * 8;
        let (mask, rest) = rest
            .split_at(mask_len)
            .map_err(|_| truncated(OVERLAY_HEADER_LEN + mask_len))?;
        let overlay = OverlayRepr::from_parts(&header, &mask)?;
        let (fragment, payload) = if header.svc_flags & SVC_FLAG_FRAGMENT != 0 {
            let (frag, rest) = Ref::<B, FragmentHeader>::from_prefix(rest)
                .map_err(|_| truncated(OVERLAY_HEADER_LEN + mask_len + FRAGMENT_HEADER_LEN))?;
            (Some(FragmentRepr::from_view(&frag)), rest)
        } else {
            (None, rest)
        };
        let payload_len = usize::from(header.payload_len.get());
        if payload.len() != payload_len {
            return Err(DropReason::BadLength {
                field: "overlay.payload_len",
                value: payload_len,
            });
        }
        if let Some(f) = &fragment {
            f.offset(payload_len)?;
        }
        Ok(DataPacket {
            header,
            overlay,
            fragment,
            payload,
        })
    }

    /// The header view.
    pub fn header(&self) -> &OverlayHeader {
        &self.header
    }

    /// The header as parsed (before any in-place update).
    pub fn overlay(&self) -> &OverlayRepr {
        &self.overlay
    }

    /// The fragment header, if the message is fragmented.
    pub fn fragment(&self) -> Option<FragmentRepr> {
        self.fragment
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The parsed header, fragment header and the payload bytes.
    pub fn into_parts(self) -> (OverlayRepr, Option<FragmentRepr>, B) {
        (self.overlay, self.fragment, self.payload)
    }
}

impl<B: SplitByteSliceMut> DataPacket<B> {
    /// The header view, to decrement the TTL and add age when forwarding.
    pub fn header_mut(&mut self) -> &mut OverlayHeader {
        &mut self.header
    }
}

impl<B: SplitByteSlice> fmt::Debug for DataPacket<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataPacket")
            .field("overlay", &self.overlay)
            .field("fragment", &self.fragment)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// A parsed data record body: overlay header, bitmask (in the route), fragment header, payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRepr<'a> {
    /// The overlay header.
    pub overlay: OverlayRepr,
    /// The fragment header, if the message is fragmented.
    pub fragment: Option<FragmentRepr>,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> DataRepr<'a> {
    /// Parses a whole data record body (nothing may follow the payload).
    pub fn parse(body: &'a [u8]) -> Result<Self, DropReason> {
        let (overlay, fragment, payload) = DataPacket::new_checked(body)?.into_parts();
        Ok(DataRepr {
            overlay,
            fragment,
            payload,
        })
    }

    /// Length of the encoded body.
    pub fn wire_len(&self) -> usize {
        OVERLAY_HEADER_LEN
            + self.overlay.route.mask_len()
            + self.fragment.map_or(0, |_| FRAGMENT_HEADER_LEN)
            + self.payload.len()
    }

    /// Writes the body; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let view = self
            .overlay
            .header_view(self.fragment.is_some(), self.payload.len())?;
        if let Some(f) = &self.fragment {
            f.offset(self.payload.len()).map_err(|e| match e {
                DropReason::BadField { field, value } => EmitError::Invalid { field, value },
                _ => EmitError::Invalid {
                    field: "overlay.payload_len",
                    value: self.payload.len() as u64,
                },
            })?;
        }
        let len = self.wire_len();
        check_room(buf, len)?;
        let mut at = write_view(&view, buf)?;
        if let Some(mask) = self.overlay.route.mask() {
            at += mask.emit(&mut buf[at..])?;
        }
        if let Some(f) = &self.fragment {
            at += f.emit(&mut buf[at..])?;
        }
        buf[at..len].copy_from_slice(self.payload);
        Ok(len)
    }
}

impl RecordBody for DataRepr<'_> {
    const KIND: RecordKind = RecordKind::Data;

    fn body_len(&self) -> usize {
        self.wire_len()
    }

    fn emit_body(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        self.emit(buf)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests;
