//! Record bodies of the link-critical and control packet types: hellos, acks, nacks and control
//! envelopes.
//!
//! Hellos measure each path's RTT without synchronised clocks (the peer echoes the sender's
//! transmit time and says how long it held it), announce the wire versions the sender speaks and
//! its config hash. Acks and nacks are the per-link feedback of the Reliable and Real-time link
//! protocols. A control envelope carries a link-state or group-state update to the control
//! plane; its body is opaque here (defined by the routing crate).

use core::mem::size_of;
use core::time::Duration;

use zerocopy::network_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::record::{RecordBody, RecordKind};
use super::{
    EmitError, LinkProto, WIRE_VERSION_MAX, WIRE_VERSION_MIN, check_room, split_view, write_view,
};
use crate::DropReason;
use crate::ids::{Incarnation, NodeId};
use crate::time::Instant;

/// Length of a hello body in bytes.
pub const HELLO_BODY_LEN: usize = 40;
/// Length of an ack body in bytes.
pub const ACK_BODY_LEN: usize = 16;
/// Length of the fixed part of a nack body; `count` link sequences of 4 B follow.
pub const NACK_HEAD_LEN: usize = 4;
/// Most link sequences one nack carries.
pub const MAX_NACK_SEQS: usize = 32;
/// Length of the fixed part of a control envelope; the opaque body follows.
pub const CONTROL_HEAD_LEN: usize = 16;

/// Bit 8 of a hello's `key_epoch` field: the low byte is the newest key epoch the sender holds.
pub const HELLO_KEY_EPOCH_PRESENT: u16 = 0x0100;

/// A hello body as it sits on the wire.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct HelloBody {
    /// Lowest wire version the sender speaks.
    pub version_min: u8,
    /// Highest wire version the sender speaks.
    pub version_max: u8,
    /// The newest key epoch the sender holds for this link: [`HELLO_KEY_EPOCH_PRESENT`] plus
    /// the epoch in the low byte, or 0 on a link without keys. Other bits reserved.
    pub key_epoch: U16,
    /// Sender's hello counter on this path.
    pub hello_seq: U32,
    /// Transmit time in the sender's clock (ns); only the sender ever interprets it.
    pub tx_time_ns: U64,
    /// The `tx_time_ns` of the last hello received from the peer; 0 if none.
    pub echo_tx_time_ns: U64,
    /// Microseconds between receiving that hello and sending this one.
    pub echo_delay_us: U32,
    /// The peer incarnation of the echoed hello; 0 if none.
    pub echo_incarnation: U32,
    /// Hash of the overlay config the sender runs.
    pub config_hash: U64,
}

const _: () = assert!(size_of::<HelloBody>() == HELLO_BODY_LEN);

/// What a hello echoes of the last hello it received from the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloEcho {
    /// The peer's `tx_time_ns` from that hello.
    pub tx_time_ns: u64,
    /// How long it was held before this hello was sent, in microseconds.
    pub delay_us: u32,
    /// The peer incarnation that sent it (never 0).
    pub incarnation: Incarnation,
}

/// A parsed hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloRepr {
    /// Lowest wire version the sender speaks (at least 1).
    pub version_min: u8,
    /// Highest wire version the sender speaks (at least `version_min`).
    pub version_max: u8,
    /// Sender's hello counter.
    pub hello_seq: u32,
    /// Transmit time in the sender's clock (ns).
    pub tx_time_ns: u64,
    /// Echo of the peer's last hello, once one was received.
    pub echo: Option<HelloEcho>,
    /// Hash of the sender's overlay config.
    pub config_hash: u64,
    /// The newest key epoch the sender holds for this link (`None` on a link without keys).
    /// The peer seals with the newest epoch both hold (docs/wire.md "Key epochs").
    pub key_epoch: Option<u8>,
}

impl HelloRepr {
    /// Parses a hello record body.
    pub fn parse(body: &[u8]) -> Result<Self, DropReason> {
        let h = exact::<HelloBody>(body, "hello.len")?;
        if h.version_min == 0 || h.version_min > h.version_max {
            return Err(DropReason::BadField {
                field: "hello.version_min",
                value: h.version_min.into(),
            });
        }
        let key_field = h.key_epoch.get();
        let key_epoch = match key_field & !0xff {
            0 if key_field == 0 => None,
            HELLO_KEY_EPOCH_PRESENT => Some((key_field & 0xff) as u8),
            _ => {
                return Err(DropReason::ReservedBitsSet {
                    field: "hello.key_epoch",
                });
            }
        };
        let echo_incarnation = h.echo_incarnation.get();
        let echo = if echo_incarnation == 0 {
            // No echo: the other echo fields must be empty too (one encoding per value).
            if h.echo_tx_time_ns.get() != 0 || h.echo_delay_us.get() != 0 {
                return Err(DropReason::BadField {
                    field: "hello.echo_incarnation",
                    value: 0,
                });
            }
            None
        } else {
            Some(HelloEcho {
                tx_time_ns: h.echo_tx_time_ns.get(),
                delay_us: h.echo_delay_us.get(),
                incarnation: Incarnation(echo_incarnation),
            })
        };
        Ok(HelloRepr {
            version_min: h.version_min,
            version_max: h.version_max,
            hello_seq: h.hello_seq.get(),
            tx_time_ns: h.tx_time_ns.get(),
            echo,
            config_hash: h.config_hash.get(),
            key_epoch,
        })
    }

    /// Writes the body; returns [`HELLO_BODY_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        if self.version_min == 0 || self.version_min > self.version_max {
            return Err(EmitError::Invalid {
                field: "hello.version_min",
                value: self.version_min.into(),
            });
        }
        if self.echo.is_some_and(|e| e.incarnation.0 == 0) {
            return Err(EmitError::Invalid {
                field: "hello.echo_incarnation",
                value: 0,
            });
        }
        let view = HelloBody {
            version_min: self.version_min,
            version_max: self.version_max,
            key_epoch: U16::new(
                self.key_epoch
                    .map_or(0, |e| HELLO_KEY_EPOCH_PRESENT | u16::from(e)),
            ),
            hello_seq: U32::new(self.hello_seq),
            tx_time_ns: U64::new(self.tx_time_ns),
            echo_tx_time_ns: U64::new(self.echo.map_or(0, |e| e.tx_time_ns)),
            echo_delay_us: U32::new(self.echo.map_or(0, |e| e.delay_us)),
            echo_incarnation: U32::new(self.echo.map_or(0, |e| e.incarnation.0)),
            config_hash: U64::new(self.config_hash),
        };
        write_view(&view, buf)
    }

    /// The highest wire version both this build and the sender speak, or `None` if there is
    /// none (the link stays down and the mismatch is shown in link state).
    pub fn common_version(&self) -> Option<u8> {
        let high = self.version_max.min(WIRE_VERSION_MAX);
        (high >= self.version_min.max(WIRE_VERSION_MIN)).then_some(high)
    }

    /// A round-trip sample from this hello's echo, received at `now` by the node whose
    /// incarnation is `mine`: `now − echoed tx time − hold delay`. `None` without an echo, for an
    /// echo of an earlier incarnation (its times are of another clock), or for an echo from the
    /// future.
    pub fn rtt_sample(&self, now: Instant, mine: Incarnation) -> Option<Duration> {
        let echo = self.echo.filter(|e| e.incarnation == mine)?;
        let elapsed = now.as_nanos().checked_sub(echo.tx_time_ns)?;
        let held = u64::from(echo.delay_us) * 1_000;
        Some(Duration::from_nanos(elapsed.saturating_sub(held)))
    }
}

/// An ack body as it sits on the wire.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct AckBody {
    /// The link protocol whose sequence space this acks.
    pub link_proto: u8,
    /// The lane of the data this acks (the data's link header lane).
    pub data_lane: u8,
    /// Reserved, must be zero.
    pub reserved: U16,
    /// Every link sequence up to and including this one was received.
    pub cum_ack: U32,
    /// Bit i set: `cum_ack + 1 + i` was received.
    pub sack: U64,
}

const _: () = assert!(size_of::<AckBody>() == ACK_BODY_LEN);

/// A parsed ack: a cumulative link sequence plus a 64-bit selective-ack bitmap above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckRepr {
    /// The link protocol ([`LinkProto::Reliable`] or [`LinkProto::Realtime`]).
    pub link_proto: LinkProto,
    /// The lane of the data this acks: each lane of a link has its own sequence space.
    pub data_lane: u8,
    /// Highest link sequence below which (inclusive) everything was received.
    pub cum_ack: u32,
    /// Bit i: `cum_ack + 1 + i` received.
    pub sack: u64,
}

impl AckRepr {
    /// Parses an ack record body.
    pub fn parse(body: &[u8]) -> Result<Self, DropReason> {
        let h = exact::<AckBody>(body, "ack.len")?;
        if h.reserved.get() != 0 {
            return Err(DropReason::ReservedBitsSet {
                field: "ack.reserved",
            });
        }
        Ok(AckRepr {
            link_proto: feedback_proto(h.link_proto)?,
            data_lane: h.data_lane,
            cum_ack: h.cum_ack.get(),
            sack: h.sack.get(),
        })
    }

    /// Writes the body; returns [`ACK_BODY_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        check_feedback_proto(self.link_proto)?;
        let view = AckBody {
            link_proto: self.link_proto as u8,
            data_lane: self.data_lane,
            reserved: U16::ZERO,
            cum_ack: U32::new(self.cum_ack),
            sack: U64::new(self.sack),
        };
        write_view(&view, buf)
    }

    /// Whether this ack covers `link_seq` (serial-number arithmetic: sequences wrap).
    pub fn covers(&self, link_seq: u32) -> bool {
        let ahead = link_seq.wrapping_sub(self.cum_ack);
        if ahead == 0 || ahead > u32::MAX / 2 {
            return true; // at or before the cumulative ack
        }
        ahead <= 64 && self.sack >> (ahead - 1) & 1 == 1
    }
}

/// The fixed part of a nack body as it sits on the wire.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct NackHead {
    /// The link protocol whose sequence space this refers to.
    pub link_proto: u8,
    /// Number of link sequences that follow, 1..=[`MAX_NACK_SEQS`].
    pub count: u8,
    /// The lane of the data this asks for (the data's link header lane).
    pub data_lane: u8,
    /// Reserved, must be zero.
    pub reserved: u8,
}

const _: () = assert!(size_of::<NackHead>() == NACK_HEAD_LEN);

/// A parsed nack: link sequences the receiver is missing and asks to be retransmitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NackRepr {
    link_proto: LinkProto,
    data_lane: u8,
    count: u8,
    seqs: [u32; MAX_NACK_SEQS],
}

impl NackRepr {
    /// A nack for `seqs` on data lane 0 (see [`NackRepr::with_data_lane`]), or `None` if the
    /// list is empty or longer than [`MAX_NACK_SEQS`], or the protocol has no link feedback.
    pub fn new(link_proto: LinkProto, seqs: &[u32]) -> Option<Self> {
        if seqs.is_empty()
            || seqs.len() > MAX_NACK_SEQS
            || check_feedback_proto(link_proto).is_err()
        {
            return None;
        }
        let mut all = [0; MAX_NACK_SEQS];
        all[..seqs.len()].copy_from_slice(seqs);
        Some(NackRepr {
            link_proto,
            data_lane: 0,
            count: seqs.len() as u8,
            seqs: all,
        })
    }

    /// The link protocol.
    pub fn link_proto(&self) -> LinkProto {
        self.link_proto
    }

    /// The same nack for the data of lane `lane`.
    pub fn with_data_lane(mut self, lane: u8) -> Self {
        self.data_lane = lane;
        self
    }

    /// The lane of the data this asks for: each lane of a link has its own sequence space.
    pub fn data_lane(&self) -> u8 {
        self.data_lane
    }

    /// The missing link sequences.
    pub fn seqs(&self) -> &[u32] {
        &self.seqs[..usize::from(self.count)]
    }

    /// Length of the encoded body.
    pub fn wire_len(&self) -> usize {
        NACK_HEAD_LEN + 4 * usize::from(self.count)
    }

    /// Parses a nack record body.
    pub fn parse(body: &[u8]) -> Result<Self, DropReason> {
        let (h, rest) = split_view::<NackHead>(body)?;
        let link_proto = feedback_proto(h.link_proto)?;
        let count = usize::from(h.count);
        if count == 0 || count > MAX_NACK_SEQS {
            return Err(DropReason::BadField {
                field: "nack.count",
                value: count as u64,
            });
        }
        if h.reserved != 0 {
            return Err(DropReason::ReservedBitsSet {
                field: "nack.reserved",
            });
        }
        if rest.len() != 4 * count {
            return Err(DropReason::BadLength {
                field: "nack.len",
                value: body.len(),
            });
        }
        let mut seqs = [0; MAX_NACK_SEQS];
        for (seq, chunk) in seqs.iter_mut().zip(rest.chunks_exact(4)) {
            let mut b = [0u8; 4];
            b.copy_from_slice(chunk);
            *seq = u32::from_be_bytes(b);
        }
        Ok(NackRepr {
            link_proto,
            data_lane: h.data_lane,
            count: h.count,
            seqs,
        })
    }

    /// Writes the body; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let len = self.wire_len();
        check_room(buf, len)?;
        let head = NackHead {
            link_proto: self.link_proto as u8,
            count: self.count,
            data_lane: self.data_lane,
            reserved: 0,
        };
        let at = write_view(&head, buf)?;
        for (chunk, seq) in buf[at..len].chunks_exact_mut(4).zip(self.seqs()) {
            chunk.copy_from_slice(&seq.to_be_bytes());
        }
        Ok(len)
    }
}

/// The fixed part of a control envelope as it sits on the wire.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct ControlHead {
    /// The node that originated the update.
    pub origin_node: U16,
    /// [`ControlKind`].
    pub kind: u8,
    /// Reserved, must be zero.
    pub reserved0: u8,
    /// The origin's incarnation.
    pub origin_incarnation: U32,
    /// The origin's update sequence number.
    pub update_seq: U32,
    /// Length of the opaque body that follows.
    pub body_len: U16,
    /// Reserved, must be zero.
    pub reserved1: U16,
}

const _: () = assert!(size_of::<ControlHead>() == CONTROL_HEAD_LEN);

/// What a control envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ControlKind {
    /// A link-state update.
    LinkState = 1,
    /// A group-membership update.
    GroupState = 2,
}

/// A parsed control envelope: who originated an update, its sequence, and the opaque body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlRepr<'a> {
    /// The originating node.
    pub origin: NodeId,
    /// The origin's incarnation (never 0).
    pub origin_incarnation: Incarnation,
    /// The origin's update sequence number.
    pub update_seq: u32,
    /// What the body is.
    pub kind: ControlKind,
    /// The update, defined by the routing crate (including the origin's signature).
    pub body: &'a [u8],
}

impl<'a> ControlRepr<'a> {
    /// Parses a control record body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DropReason> {
        let bad = |field, value: u64| DropReason::BadField { field, value };
        let (h, rest) = split_view::<ControlHead>(body)?;
        let origin = NodeId::new(h.origin_node.get())
            .ok_or(bad("control.origin_node", h.origin_node.get().into()))?;
        let kind = match h.kind {
            1 => ControlKind::LinkState,
            2 => ControlKind::GroupState,
            k => return Err(bad("control.kind", k.into())),
        };
        if h.reserved0 != 0 || h.reserved1.get() != 0 {
            return Err(DropReason::ReservedBitsSet {
                field: "control.reserved",
            });
        }
        let incarnation = h.origin_incarnation.get();
        if incarnation == 0 {
            return Err(bad("control.origin_incarnation", 0));
        }
        let body_len = usize::from(h.body_len.get());
        if rest.len() != body_len {
            return Err(DropReason::BadLength {
                field: "control.body_len",
                value: body_len,
            });
        }
        Ok(ControlRepr {
            origin,
            origin_incarnation: Incarnation(incarnation),
            update_seq: h.update_seq.get(),
            kind,
            body: rest,
        })
    }

    /// Length of the encoded envelope.
    pub fn wire_len(&self) -> usize {
        CONTROL_HEAD_LEN + self.body.len()
    }

    /// Writes the envelope; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let invalid = |field, value: u64| EmitError::Invalid { field, value };
        if self.origin_incarnation.0 == 0 {
            return Err(invalid("control.origin_incarnation", 0));
        }
        let body_len = u16::try_from(self.body.len())
            .map_err(|_| invalid("control.body_len", self.body.len() as u64))?;
        let len = self.wire_len();
        check_room(buf, len)?;
        let head = ControlHead {
            origin_node: U16::new(self.origin.get()),
            kind: self.kind as u8,
            reserved0: 0,
            origin_incarnation: U32::new(self.origin_incarnation.0),
            update_seq: U32::new(self.update_seq),
            body_len: U16::new(body_len),
            reserved1: U16::ZERO,
        };
        let at = write_view(&head, buf)?;
        buf[at..len].copy_from_slice(self.body);
        Ok(len)
    }
}

/// Reads a fixed-size body that must fill the record exactly.
fn exact<'a, T>(body: &'a [u8], field: &'static str) -> Result<&'a T, DropReason>
where
    T: FromBytes + KnownLayout + Immutable,
{
    let (view, rest) = split_view::<T>(body)?;
    if !rest.is_empty() {
        return Err(DropReason::BadLength {
            field,
            value: body.len(),
        });
    }
    Ok(view)
}

/// The link protocols that have per-link feedback records.
fn feedback_proto(b: u8) -> Result<LinkProto, DropReason> {
    match LinkProto::from_byte(b) {
        Some(p @ (LinkProto::Reliable | LinkProto::Realtime)) => Ok(p),
        _ => Err(DropReason::BadField {
            field: "feedback.link_proto",
            value: b.into(),
        }),
    }
}

fn check_feedback_proto(p: LinkProto) -> Result<(), EmitError> {
    feedback_proto(p as u8)
        .map(|_| ())
        .map_err(|_| EmitError::Invalid {
            field: "feedback.link_proto",
            value: p as u64,
        })
}

macro_rules! record_body {
    ($t:ty, $kind:expr, |$s:ident| $len:expr) => {
        impl RecordBody for $t {
            const KIND: RecordKind = $kind;

            fn body_len(&self) -> usize {
                let $s = self;
                $len
            }

            fn emit_body(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
                self.emit(buf)
            }
        }
    };
}
record_body!(HelloRepr, RecordKind::Hello, |_s| HELLO_BODY_LEN);
record_body!(AckRepr, RecordKind::Ack, |_s| ACK_BODY_LEN);
record_body!(NackRepr, RecordKind::Nack, |s| s.wire_len());
record_body!(ControlRepr<'_>, RecordKind::Control, |s| s.wire_len());

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests;
