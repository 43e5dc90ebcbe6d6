//! Weft's packet formats on overlay links: zerocopy views plus `Repr` parse/emit.
//!
//! Every UDP datagram between two neighbour nodes is one *link packet*:
//!
//! ```text
//! +-------------------+--------------------------------------------+----------------+
//! | link header, 24 B | body: 1..n records (8 B header + body each) | AEAD tag, 16 B |
//! +-------------------+--------------------------------------------+----------------+
//!                                                                    (only with AUTH)
//! ```
//!
//! The records of a packet all belong to the packet's type: hellos, link feedback (acks and
//! nacks), control envelopes punted to the control plane, or data. A data record's body is the
//! 44-byte overlay header, an optional link bitmask, an optional fragment header and the payload.
//! `docs/wire.md` is the specification; this module implements it.
//!
//! Each header comes in two layers (STYLE.md §4):
//! - a *view*, a `#[repr(C)]` struct of big-endian [`zerocopy::network_endian`] fields whose
//!   size is pinned by a const assertion ([`LinkHeader`], [`RecordHeader`], [`OverlayHeader`],
//!   [`FragmentHeader`], [`HelloBody`], [`AckBody`], [`NackHead`], [`ControlHead`]);
//! - a *`Repr`*, a typed value with `parse` and `emit`. Fixed-size headers parse as
//!   `parse(&[u8]) -> Result<(Repr, rest), DropReason>`. Record bodies are delimited by their
//!   record header, so their `parse` takes exactly the body and rejects trailing bytes. Every
//!   `emit(&self, &mut [u8]) -> Result<usize, EmitError>` writes the canonical encoding and
//!   returns the bytes written.
//!
//! Parsers check every size before reading a field, reject reserved bits, and return a
//! [`DropReason`] instead of panicking on any input. Anything a parser
//! accepts re-emits byte for byte (the tests check this on random and corrupted input).
//! [`parse_packet`] walks a whole datagram; it is what the `wire_parse` fuzz target calls.

mod control;
mod fragment;
pub mod lane;
mod link;
mod mask;
mod overlay;
mod packet;
mod record;
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod strategies;

pub use control::{
    ACK_BODY_LEN, AckBody, AckRepr, CONTROL_HEAD_LEN, ControlHead, ControlKind, ControlRepr,
    HELLO_BODY_LEN, HELLO_KEY_EPOCH_PRESENT, HelloBody, HelloEcho, HelloRepr, MAX_NACK_SEQS,
    NACK_HEAD_LEN, NackHead, NackRepr,
};
pub use fragment::{
    FRAGMENT_HEADER_LEN, FragmentHeader, FragmentRepr, MAX_FRAGMENTS, MAX_MESSAGE_LEN,
};
pub use link::{
    KEY_EPOCH_SLOTS, LINK_FLAG_AUTH, LINK_FLAG_EPOCH_MASK, LINK_FLAG_EPOCH_SHIFT, LINK_HEADER_LEN,
    LinkHeader, LinkPacket, LinkRepr, MAX_PACKET_COUNTER, PacketType, PriorityClass, peek_class,
};
pub use mask::{LinkMask, MAX_MASK_WORDS};
pub use overlay::{
    DataPacket, DataRepr, Delivery, LinkProto, OVERLAY_HEADER_LEN, OverlayHeader, OverlayRepr,
    Route, SVC_FLAG_AT_DEADLINE, SVC_FLAG_FRAGMENT, Strikes,
};
pub use packet::{Message, Packet, PacketSummary, PacketWriter, parse_packet};
pub use record::{
    RECORD_HEADER_LEN, Record, RecordBody, RecordFlags, RecordHeader, RecordKind, RecordRepr,
    RecordWriter, Records,
};

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::DropReason;

/// The wire version this build writes into every link header.
pub const WIRE_VERSION: u8 = 1;
/// The lowest wire version this build accepts (announced in hellos).
pub const WIRE_VERSION_MIN: u8 = 1;
/// The highest wire version this build accepts (announced in hellos).
pub const WIRE_VERSION_MAX: u8 = 1;

/// Length of the AES-GCM tag that trails a packet with [`LINK_FLAG_AUTH`].
pub const TAG_LEN: usize = 16;
/// Length of the AES-GCM nonce: sender incarnation (4 B) then packet number (8 B).
pub const NONCE_LEN: usize = 12;

/// Largest UDP payload on a 1500-byte-MTU IPv4 path: 1500 − 20 (IPv4) − 8 (UDP).
pub const MTU_1500_UDP_PAYLOAD: usize = 1472;
/// Largest UDP payload at all (65,535 − 20 − 8); longer datagrams cannot exist.
pub const MAX_DATAGRAM_LEN: usize = 65_507;
/// One MPEG-TS burst as carried by SRT/RIST and UDP video: 7 transport packets of 188 B.
pub const MPEG_TS_PAYLOAD: usize = 7 * 188;

/// Bytes one data packet spends on headers and the tag, before any bitmask or fragment header.
pub const DATA_OVERHEAD: usize = LINK_HEADER_LEN + RECORD_HEADER_LEN + OVERLAY_HEADER_LEN + TAG_LEN;

// The header budget (ARCHITECTURE.md §3, docs/wire.md "Header budget"): an authenticated data
// packet carrying one MPEG-TS burst fits a 1500-byte path, with room left for the largest link
// bitmask (8 words = 512 links).
const _: () = assert!(DATA_OVERHEAD == 92);
const _: () = assert!(DATA_OVERHEAD + MPEG_TS_PAYLOAD == 1408);
const _: () = assert!(DATA_OVERHEAD + MPEG_TS_PAYLOAD + MAX_MASK_WORDS * 8 <= MTU_1500_UDP_PAYLOAD);

/// Why an `emit` could not write a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The output buffer (or the size limit of a writer) is smaller than the encoding.
    #[error("buffer too small: need {needed} B, have {available} B")]
    BufferTooSmall {
        /// Bytes the encoding needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// A field of the value to emit has no valid encoding (a parser would reject it).
    #[error("cannot emit {field} = {value}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
}

/// Splits a fixed-size view `T` off the front of `buf`, or reports how short `buf` is.
fn split_view<T>(buf: &[u8]) -> Result<(&T, &[u8]), DropReason>
where
    T: FromBytes + KnownLayout + Immutable,
{
    T::ref_from_prefix(buf).map_err(|_| DropReason::Truncated {
        needed: size_of::<T>(),
        got: buf.len(),
    })
}

/// Writes the view `value` at the front of `buf`.
fn write_view<T>(value: &T, buf: &mut [u8]) -> Result<usize, EmitError>
where
    T: IntoBytes + Immutable,
{
    let needed = size_of::<T>();
    value
        .write_to_prefix(buf)
        .map_err(|_| EmitError::BufferTooSmall {
            needed,
            available: buf.len(),
        })?;
    Ok(needed)
}

/// Checks that `buf` can hold `needed` bytes before an emit starts writing.
fn check_room(buf: &[u8], needed: usize) -> Result<(), EmitError> {
    if buf.len() < needed {
        Err(EmitError::BufferTooSmall {
            needed,
            available: buf.len(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_budget_fits_a_1500_mtu_path() {
        // 24 link + 8 record + 44 overlay + 16 tag + 1316 MPEG-TS = 1408 B.
        let packet = LINK_HEADER_LEN + RECORD_HEADER_LEN + OVERLAY_HEADER_LEN + TAG_LEN;
        assert_eq!(packet + MPEG_TS_PAYLOAD, 1408);
        // 64 B left: exactly the 512-link bitmask.
        assert_eq!(MTU_1500_UDP_PAYLOAD - (packet + MPEG_TS_PAYLOAD), 64);
        assert_eq!(MAX_MASK_WORDS * 8, 64);
        assert_eq!(MAX_MASK_WORDS * 64, usize::from(crate::ids::MAX_LINKS));
    }

    #[test]
    fn emit_errors_display() {
        let e = EmitError::BufferTooSmall {
            needed: 24,
            available: 3,
        };
        assert_eq!(e.to_string(), "buffer too small: need 24 B, have 3 B");
    }
}
