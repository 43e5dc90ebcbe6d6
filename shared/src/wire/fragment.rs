//! The fragment header: splits one client message of up to 65,535 B over several data packets.
//!
//! All fragments of a message share (source node, source incarnation, flow, seq) and carry the
//! same `frag_count` and `msg_len`. Every fragment but the last carries the same payload length
//! `L`; the last carries the rest (1..=L bytes). So each fragment alone tells where it goes: a
//! non-last fragment at `index × payload_len`, the last at `msg_len − payload_len`. A receiver
//! checks this on every fragment, so a forged or corrupt fragment cannot write out of bounds.

use core::mem::size_of;
use core::ops::Range;

use zerocopy::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{EmitError, split_view, write_view};
use crate::DropReason;

/// Length of the fragment header in bytes.
pub const FRAGMENT_HEADER_LEN: usize = 8;
/// Largest client message: what a 16-bit length can say, and what one reassembly slot holds.
pub const MAX_MESSAGE_LEN: usize = 65_535;
/// Most fragments per message. 64 fragments of at least 1,024 B carry the largest message.
pub const MAX_FRAGMENTS: u16 = 64;

/// The fragment header as it sits on the wire.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct FragmentHeader {
    /// Index of this fragment, `0..frag_count`.
    pub frag_index: U16,
    /// Number of fragments of the message, `2..=MAX_FRAGMENTS`.
    pub frag_count: U16,
    /// Length of the whole message, `1..=MAX_MESSAGE_LEN`.
    pub msg_len: U32,
}

const _: () = assert!(size_of::<FragmentHeader>() == FRAGMENT_HEADER_LEN);

/// A parsed fragment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentRepr {
    /// Index of this fragment.
    pub index: u16,
    /// Number of fragments.
    pub count: u16,
    /// Length of the whole message.
    pub msg_len: u32,
}

impl FragmentRepr {
    /// Parses the fixed header; [`FragmentRepr::offset`] checks it against the payload.
    pub fn parse(buf: &[u8]) -> Result<(Self, &[u8]), DropReason> {
        let (h, rest) = split_view::<FragmentHeader>(buf)?;
        Ok((Self::from_view(h), rest))
    }

    /// The values of a view (unchecked: see [`FragmentRepr::offset`]).
    pub fn from_view(h: &FragmentHeader) -> Self {
        FragmentRepr {
            index: h.frag_index.get(),
            count: h.frag_count.get(),
            msg_len: h.msg_len.get(),
        }
    }

    /// Writes the header; returns [`FRAGMENT_HEADER_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let view = FragmentHeader {
            frag_index: U16::new(self.index),
            frag_count: U16::new(self.count),
            msg_len: U32::new(self.msg_len),
        };
        write_view(&view, buf)
    }

    /// Where a fragment carrying `payload_len` bytes sits in the message, after checking that
    /// the header and the payload length are consistent.
    pub fn offset(&self, payload_len: usize) -> Result<usize, DropReason> {
        self.layout(payload_len).map(|(offset, _)| offset)
    }

    /// The payload length `L` of every fragment but the last that this fragment implies. A
    /// reassembler drops a fragment whose stride differs from the first one it kept, so
    /// fragments that each look valid cannot overlap.
    pub fn stride(&self, payload_len: usize) -> Result<usize, DropReason> {
        self.layout(payload_len).map(|(_, stride)| stride)
    }

    /// (offset, stride) of a fragment carrying `payload_len` bytes.
    fn layout(&self, payload_len: usize) -> Result<(usize, usize), DropReason> {
        let bad = |field, value: u64| DropReason::BadField { field, value };
        if !(2..=MAX_FRAGMENTS).contains(&self.count) {
            return Err(bad("fragment.count", self.count.into()));
        }
        if self.index >= self.count {
            return Err(bad("fragment.index", self.index.into()));
        }
        let msg_len = self.msg_len as usize;
        if msg_len == 0 || msg_len > MAX_MESSAGE_LEN {
            return Err(bad("fragment.msg_len", self.msg_len.into()));
        }
        if payload_len == 0 || payload_len > msg_len {
            return Err(DropReason::BadLength {
                field: "overlay.payload_len",
                value: payload_len,
            });
        }
        let count = usize::from(self.count);
        let index = usize::from(self.index);
        if index + 1 < count {
            // Not the last: every fragment before the last carries payload_len bytes.
            let fits = (count - 1) * payload_len < msg_len && msg_len <= count * payload_len;
            if fits {
                Ok((index * payload_len, payload_len))
            } else {
                Err(bad("fragment.msg_len", self.msg_len.into()))
            }
        } else {
            // The last: the others share msg_len - payload_len equally, each at least as long.
            let before = msg_len - payload_len;
            let stride = before / (count - 1);
            if before % (count - 1) == 0 && payload_len <= stride {
                Ok((before, stride))
            } else {
                Err(bad("fragment.msg_len", self.msg_len.into()))
            }
        }
    }

    /// How a sender splits a `msg_len`-byte message into fragments of at most `max_payload`
    /// bytes: each header with its byte range of the message. `None` if the message fits in
    /// one packet (send it unfragmented), is longer than [`MAX_MESSAGE_LEN`], or would need
    /// more than [`MAX_FRAGMENTS`] fragments.
    pub fn split(
        msg_len: usize,
        max_payload: usize,
    ) -> Option<impl Iterator<Item = (FragmentRepr, Range<usize>)>> {
        if max_payload == 0 || msg_len <= max_payload || msg_len > MAX_MESSAGE_LEN {
            return None;
        }
        let count = u16::try_from(msg_len.div_ceil(max_payload))
            .ok()
            .filter(|c| *c <= MAX_FRAGMENTS)?;
        let msg_len32 = u32::try_from(msg_len).ok()?;
        Some((0..count).map(move |index| {
            let start = usize::from(index) * max_payload;
            let end = (start + max_payload).min(msg_len);
            let repr = FragmentRepr {
                index,
                count,
                msg_len: msg_len32,
            };
            (repr, start..end)
        }))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn golden_bytes() {
        let repr = FragmentRepr {
            index: 2,
            count: 3,
            msg_len: 2500,
        };
        let golden = [0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x09, 0xc4];
        let mut buf = [0u8; 8];
        assert_eq!(repr.emit(&mut buf), Ok(8));
        assert_eq!(buf, golden);
        assert_eq!(FragmentRepr::parse(&golden), Ok((repr, &[][..])));
        // 2500 = 1000 + 1000 + 500: the last fragment (500 B) starts at 2000.
        assert_eq!(repr.offset(500), Ok(2000));
        assert_eq!(FragmentRepr { index: 1, ..repr }.offset(1000), Ok(1000));
    }

    #[test]
    fn inconsistent_fragments_are_rejected() {
        let f = |index, count, msg_len| FragmentRepr {
            index,
            count,
            msg_len,
        };
        let field = |r: Result<usize, DropReason>| match r {
            Err(DropReason::BadField { field, .. } | DropReason::BadLength { field, .. }) => field,
            other => panic!("expected a rejection, got {other:?}"),
        };
        assert_eq!(field(f(0, 1, 10).offset(10)), "fragment.count");
        assert_eq!(field(f(0, 65, 65_000).offset(1000)), "fragment.count");
        assert_eq!(field(f(3, 3, 30).offset(10)), "fragment.index");
        assert_eq!(field(f(0, 2, 0).offset(1)), "fragment.msg_len");
        assert_eq!(field(f(0, 2, 65_536).offset(40_000)), "fragment.msg_len");
        assert_eq!(field(f(0, 2, 30).offset(0)), "overlay.payload_len");
        assert_eq!(field(f(0, 2, 30).offset(31)), "overlay.payload_len");
        // Non-last fragments too short or too long for the message.
        assert_eq!(field(f(0, 3, 2500).offset(800)), "fragment.msg_len");
        assert_eq!(field(f(0, 3, 2500).offset(1250)), "fragment.msg_len");
        // Last fragment longer than the others, or the others not equal.
        assert_eq!(field(f(1, 2, 2500).offset(1300)), "fragment.msg_len");
        assert_eq!(field(f(2, 3, 2501).offset(500)), "fragment.msg_len");
        assert!(FragmentRepr::parse(&[0; 7]).is_err());
    }

    #[test]
    fn split_refuses_what_needs_no_or_too_many_fragments() {
        assert!(FragmentRepr::split(1000, 1000).is_none());
        assert!(FragmentRepr::split(MAX_MESSAGE_LEN + 1, 1400).is_none());
        assert!(FragmentRepr::split(MAX_MESSAGE_LEN, 1023).is_none());
        assert_eq!(
            FragmentRepr::split(MAX_MESSAGE_LEN, 1024).map(Iterator::count),
            Some(64)
        );
        assert!(FragmentRepr::split(10, 0).is_none());
    }

    proptest! {
        /// The fragments a sender makes are each accepted alone, and their offsets tile the
        /// message exactly.
        #[test]
        fn split_fragments_tile_the_message(msg_len in 2usize..=MAX_MESSAGE_LEN, max in 1usize..3000) {
            let Some(frags) = FragmentRepr::split(msg_len, max) else {
                let count = msg_len.div_ceil(max);
                prop_assert!(msg_len <= max || count > usize::from(MAX_FRAGMENTS));
                return Ok(());
            };
            let mut next = 0;
            for (repr, range) in frags {
                prop_assert_eq!(repr.offset(range.len()), Ok(range.start));
                prop_assert_eq!(repr.stride(range.len()), Ok(max));
                prop_assert_eq!(range.start, next);
                next = range.end;
            }
            prop_assert_eq!(next, msg_len);
        }

        #[test]
        fn accepted_fragments_stay_inside_the_message(
            index in 0u16..70, count in 0u16..70, msg_len in 0u32..70_000, payload in 0usize..70_000,
        ) {
            let repr = FragmentRepr { index, count, msg_len };
            if let Ok(offset) = repr.offset(payload) {
                prop_assert!(offset + payload <= msg_len as usize);
                prop_assert!(payload >= 1);
            }
            let mut buf = [0u8; 8];
            repr.emit(&mut buf).unwrap();
            prop_assert_eq!(FragmentRepr::parse(&buf), Ok((repr, &[][..])));
        }
    }
}
