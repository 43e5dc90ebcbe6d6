//! Records: the messages packed into a link packet's body, each with an 8-byte header.
//!
//! Several small messages (hellos, acks, control updates, small data packets) share one UDP
//! datagram, which costs one syscall, one AEAD seal and one tag instead of one each. [`Records`]
//! walks a body and stops at the first bad record; [`RecordWriter`] packs records into a
//! caller-supplied buffer up to a size limit without allocating.

use core::mem::size_of;

use zerocopy::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{EmitError, PacketType, split_view, write_view};
use crate::DropReason;

/// Length of a record header in bytes.
pub const RECORD_HEADER_LEN: usize = 8;

/// The record header as it sits on the wire.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct RecordHeader {
    /// [`RecordKind`].
    pub kind: u8,
    /// [`RecordFlags`]; unknown bits must be zero.
    pub flags: u8,
    /// Length of the record body after this header.
    pub len: U16,
    /// The link protocol's per-link sequence number; 0 where the kind has none.
    pub link_seq: U32,
}

const _: () = assert!(size_of::<RecordHeader>() == RECORD_HEADER_LEN);

/// What a record's body is. Each kind belongs to exactly one packet type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// A link hello ([`HelloRepr`](super::HelloRepr)), in Hello packets.
    Hello = 1,
    /// A cumulative ack with a SACK bitmap ([`AckRepr`](super::AckRepr)), in Feedback packets.
    Ack = 2,
    /// A list of missing link sequences ([`NackRepr`](super::NackRepr)), in Feedback packets.
    Nack = 3,
    /// A control envelope ([`ControlRepr`](super::ControlRepr)), in Control packets.
    Control = 4,
    /// An overlay data packet ([`DataRepr`](super::DataRepr)), in Data packets.
    Data = 5,
}

impl RecordKind {
    /// The kind of wire byte `b`, or `None` if it is unknown.
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Hello),
            2 => Some(RecordKind::Ack),
            3 => Some(RecordKind::Nack),
            4 => Some(RecordKind::Control),
            5 => Some(RecordKind::Data),
            _ => None,
        }
    }

    /// The packet type whose body may hold records of this kind.
    pub const fn packet_type(self) -> PacketType {
        match self {
            RecordKind::Hello => PacketType::Hello,
            RecordKind::Ack | RecordKind::Nack => PacketType::Feedback,
            RecordKind::Control => PacketType::Control,
            RecordKind::Data => PacketType::Data,
        }
    }

    /// Whether records of this kind carry a link sequence number (only data does).
    pub const fn has_link_seq(self) -> bool {
        matches!(self, RecordKind::Data)
    }
}

/// Record flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RecordFlags(u8);

impl RecordFlags {
    /// No flags.
    pub const NONE: RecordFlags = RecordFlags(0);
    /// Bit 0, data records only: a link-level retransmission of an earlier `link_seq`
    /// (the receiver counts it, and never takes an RTT sample from it).
    pub const RETRANSMIT: RecordFlags = RecordFlags(0x01);

    /// The flags of wire byte `b`, or `None` if a reserved bit is set.
    pub const fn from_bits(b: u8) -> Option<Self> {
        if b & !Self::RETRANSMIT.0 == 0 {
            Some(RecordFlags(b))
        } else {
            None
        }
    }

    /// The wire byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: RecordFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A parsed record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRepr {
    /// What the body is.
    pub kind: RecordKind,
    /// Flags; [`RecordFlags::RETRANSMIT`] only on data records.
    pub flags: RecordFlags,
    /// The link protocol's sequence number (data records only; 0 otherwise).
    pub link_seq: u32,
    /// Length of the body that follows the header.
    pub body_len: u16,
}

impl RecordRepr {
    /// Parses a record header; returns it and every byte after the header (the body is the
    /// first `body_len` of them, which [`Records`] checks).
    pub fn parse(buf: &[u8]) -> Result<(Self, &[u8]), DropReason> {
        let (h, rest) = split_view::<RecordHeader>(buf)?;
        let kind = RecordKind::from_byte(h.kind).ok_or(DropReason::UnknownRecordKind(h.kind))?;
        let flags = RecordFlags::from_bits(h.flags)
            .filter(|f| *f == RecordFlags::NONE || kind == RecordKind::Data)
            .ok_or(DropReason::ReservedBitsSet {
                field: "record.flags",
            })?;
        let link_seq = h.link_seq.get();
        if link_seq != 0 && !kind.has_link_seq() {
            return Err(DropReason::BadField {
                field: "record.link_seq",
                value: link_seq.into(),
            });
        }
        Ok((
            RecordRepr {
                kind,
                flags,
                link_seq,
                body_len: h.len.get(),
            },
            rest,
        ))
    }

    /// Checks that this header has an encoding.
    fn check(&self) -> Result<(), EmitError> {
        if self.flags != RecordFlags::NONE && self.kind != RecordKind::Data {
            return Err(EmitError::Invalid {
                field: "record.flags",
                value: self.flags.bits().into(),
            });
        }
        if self.link_seq != 0 && !self.kind.has_link_seq() {
            return Err(EmitError::Invalid {
                field: "record.link_seq",
                value: self.link_seq.into(),
            });
        }
        Ok(())
    }

    /// Writes the header; returns [`RECORD_HEADER_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        self.check()?;
        let view = RecordHeader {
            kind: self.kind as u8,
            flags: self.flags.bits(),
            len: U16::new(self.body_len),
            link_seq: U32::new(self.link_seq),
        };
        write_view(&view, buf)
    }
}

/// One record of a body: its header and its body bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The header.
    pub header: RecordRepr,
    /// The body, exactly `header.body_len` bytes.
    pub body: &'a [u8],
}

/// Iterator over the records of a plaintext body; yields an error for the first bad record and
/// then stops.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
    packet_type: PacketType,
    done: bool,
}

impl<'a> Records<'a> {
    /// Walks `body`, which belongs to a packet of `packet_type`.
    pub fn new(body: &'a [u8], packet_type: PacketType) -> Self {
        Records {
            rest: body,
            packet_type,
            done: false,
        }
    }

    fn next_record(&mut self) -> Result<Record<'a>, DropReason> {
        let (header, after) = RecordRepr::parse(self.rest)?;
        if header.kind.packet_type() != self.packet_type {
            return Err(DropReason::UnknownRecordKind(header.kind as u8));
        }
        let len = usize::from(header.body_len);
        if len > after.len() {
            return Err(DropReason::BadLength {
                field: "record.len",
                value: len,
            });
        }
        let (body, rest) = after.split_at(len);
        self.rest = rest;
        Ok(Record { header, body })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, DropReason>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        let item = self.next_record();
        self.done = item.is_err();
        Some(item)
    }
}

impl core::iter::FusedIterator for Records<'_> {}

/// A record body type that a [`RecordWriter`] can write.
pub trait RecordBody {
    /// The record kind of this body.
    const KIND: RecordKind;
    /// Length of the encoded body.
    fn body_len(&self) -> usize;
    /// Writes the body at the front of `buf`; returns its length.
    fn emit_body(&self, buf: &mut [u8]) -> Result<usize, EmitError>;
}

/// Packs records of one packet type into a caller-supplied buffer, never past a size limit.
///
/// A record that does not fit is not written and the writer is left unchanged
/// ([`EmitError::BufferTooSmall`]); the caller sends what it has and starts a new packet.
#[derive(Debug)]
pub struct RecordWriter<'a> {
    buf: &'a mut [u8],
    limit: usize,
    len: usize,
    count: usize,
    packet_type: PacketType,
}

impl<'a> RecordWriter<'a> {
    /// A writer of a `packet_type` body into `buf`, at most `limit` bytes long.
    pub fn new(buf: &'a mut [u8], limit: usize, packet_type: PacketType) -> Self {
        let limit = limit.min(buf.len());
        RecordWriter {
            buf,
            limit,
            len: 0,
            count: 0,
            packet_type,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no record was written.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of records written.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The largest record body that still fits.
    pub fn remaining_body(&self) -> usize {
        (self.limit - self.len)
            .saturating_sub(RECORD_HEADER_LEN)
            .min(usize::from(u16::MAX))
    }

    /// The packet type this writer packs.
    pub fn packet_type(&self) -> PacketType {
        self.packet_type
    }

    /// Checks a header and room for its body; returns the byte range of the whole record.
    fn place(
        &self,
        kind: RecordKind,
        flags: RecordFlags,
        link_seq: u32,
        body_len: usize,
    ) -> Result<(RecordRepr, usize), EmitError> {
        if kind.packet_type() != self.packet_type {
            return Err(EmitError::Invalid {
                field: "record.kind",
                value: kind as u64,
            });
        }
        let body_len16 = u16::try_from(body_len).map_err(|_| EmitError::Invalid {
            field: "record.len",
            value: body_len as u64,
        })?;
        let header = RecordRepr {
            kind,
            flags,
            link_seq,
            body_len: body_len16,
        };
        header.check()?;
        let end = self.len + RECORD_HEADER_LEN + body_len;
        if end > self.limit {
            return Err(EmitError::BufferTooSmall {
                needed: RECORD_HEADER_LEN + body_len,
                available: self.limit - self.len,
            });
        }
        Ok((header, end))
    }

    /// Appends a record header and returns its zeroed `body_len`-byte body for the caller to
    /// fill in place.
    pub fn reserve(
        &mut self,
        kind: RecordKind,
        flags: RecordFlags,
        link_seq: u32,
        body_len: usize,
    ) -> Result<&mut [u8], EmitError> {
        let (header, end) = self.place(kind, flags, link_seq, body_len)?;
        let start = self.len;
        header.emit(&mut self.buf[start..end])?;
        let body = &mut self.buf[start + RECORD_HEADER_LEN..end];
        body.fill(0);
        self.len = end;
        self.count += 1;
        Ok(body)
    }

    /// Appends a record whose body is already encoded (e.g. a data record being forwarded).
    pub fn push_bytes(
        &mut self,
        kind: RecordKind,
        flags: RecordFlags,
        link_seq: u32,
        body: &[u8],
    ) -> Result<(), EmitError> {
        self.reserve(kind, flags, link_seq, body.len())?
            .copy_from_slice(body);
        Ok(())
    }

    /// Appends a record with `body` encoded in place.
    pub fn push<R: RecordBody>(
        &mut self,
        flags: RecordFlags,
        link_seq: u32,
        body: &R,
    ) -> Result<(), EmitError> {
        let (header, end) = self.place(R::KIND, flags, link_seq, body.body_len())?;
        let start = self.len;
        let record = &mut self.buf[start..end];
        header.emit(record)?;
        let written = body.emit_body(&mut record[RECORD_HEADER_LEN..])?;
        if written != usize::from(header.body_len) {
            return Err(EmitError::Invalid {
                field: "record.len",
                value: written as u64,
            });
        }
        // Commit only once the body is written, so a failed push leaves the writer unchanged.
        self.len = end;
        self.count += 1;
        Ok(())
    }

    /// The buffer and the number of body bytes written.
    pub fn into_parts(self) -> (&'a mut [u8], usize) {
        (self.buf, self.len)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::strategies::arb_record_repr;

    /// A retransmitted data record, link_seq 0x01020304, with a 3-byte body "abc".
    const GOLDEN: [u8; 11] = [
        0x05, // kind: data
        0x01, // flags: retransmit
        0x00, 0x03, // body length
        0x01, 0x02, 0x03, 0x04, // link_seq
        b'a', b'b', b'c',
    ];

    #[test]
    fn golden_bytes() {
        let repr = RecordRepr {
            kind: RecordKind::Data,
            flags: RecordFlags::RETRANSMIT,
            link_seq: 0x0102_0304,
            body_len: 3,
        };
        let mut buf = [0u8; 11];
        assert_eq!(repr.emit(&mut buf), Ok(RECORD_HEADER_LEN));
        buf[8..].copy_from_slice(b"abc");
        assert_eq!(buf, GOLDEN);
        assert_eq!(RecordRepr::parse(&GOLDEN), Ok((repr, &b"abc"[..])));

        let mut w_buf = [0u8; 64];
        let mut w = RecordWriter::new(&mut w_buf, 64, PacketType::Data);
        w.push_bytes(
            RecordKind::Data,
            RecordFlags::RETRANSMIT,
            0x0102_0304,
            b"abc",
        )
        .unwrap();
        let (out, len) = w.into_parts();
        assert_eq!(out[..len], GOLDEN);
    }

    #[test]
    fn iterator_walks_packed_records_and_stops_at_the_first_error() {
        let mut buf = [0u8; 64];
        let mut w = RecordWriter::new(&mut buf, 64, PacketType::Data);
        w.push_bytes(RecordKind::Data, RecordFlags::NONE, 1, b"one")
            .unwrap();
        w.push_bytes(RecordKind::Data, RecordFlags::NONE, 2, b"")
            .unwrap();
        w.push_bytes(RecordKind::Data, RecordFlags::NONE, 3, b"three")
            .unwrap();
        assert_eq!(w.count(), 3);
        let (buf, len) = w.into_parts();
        let body = &buf[..len];
        let got: Vec<_> = Records::new(body, PacketType::Data)
            .map(|r| r.map(|r| (r.header.link_seq, r.body)))
            .collect();
        assert_eq!(
            got,
            [
                Ok((1, &b"one"[..])),
                Ok((2, &b""[..])),
                Ok((3, &b"three"[..]))
            ]
        );

        // A length running past the body is reported once, then the iterator ends.
        let mut bad = body.to_vec();
        bad[3] = 200;
        let mut it = Records::new(&bad, PacketType::Data);
        assert_eq!(
            it.next(),
            Some(Err(DropReason::BadLength {
                field: "record.len",
                value: 200
            }))
        );
        assert_eq!(it.next(), None);

        // A record of the wrong packet type is rejected.
        let mut it = Records::new(body, PacketType::Hello);
        assert_eq!(it.next(), Some(Err(DropReason::UnknownRecordKind(5))));
        // Trailing bytes shorter than a header are truncated.
        let mut it = Records::new(&body[..len - 5 - 4], PacketType::Data);
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(it.next(), Some(Err(DropReason::Truncated { .. }))));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn header_rules() {
        let flags_on_hello = [1, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            RecordRepr::parse(&flags_on_hello),
            Err(DropReason::ReservedBitsSet {
                field: "record.flags"
            })
        );
        let seq_on_ack = [2, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(
            RecordRepr::parse(&seq_on_ack),
            Err(DropReason::BadField {
                field: "record.link_seq",
                value: 9
            })
        );
        let reserved_flag = [5, 2, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            RecordRepr::parse(&reserved_flag),
            Err(DropReason::ReservedBitsSet { .. })
        ));
        assert_eq!(
            RecordRepr::parse(&[9; 8]),
            Err(DropReason::UnknownRecordKind(9))
        );
    }

    #[test]
    fn writer_respects_the_limit_and_stays_unchanged_on_failure() {
        let mut buf = [0xaa_u8; 64];
        let mut w = RecordWriter::new(&mut buf, 20, PacketType::Data);
        assert_eq!(w.remaining_body(), 12);
        w.push_bytes(RecordKind::Data, RecordFlags::NONE, 1, &[1; 4])
            .unwrap();
        assert_eq!(w.len(), 12);
        assert_eq!(w.remaining_body(), 0);
        assert_eq!(
            w.push_bytes(RecordKind::Data, RecordFlags::NONE, 2, &[2; 1]),
            Err(EmitError::BufferTooSmall {
                needed: 9,
                available: 8
            })
        );
        assert_eq!(
            w.reserve(RecordKind::Hello, RecordFlags::NONE, 0, 0),
            Err(EmitError::Invalid {
                field: "record.kind",
                value: 1
            })
        );
        assert_eq!((w.len(), w.count()), (12, 1));
        let (buf, len) = w.into_parts();
        assert_eq!(len, 12);
        assert_eq!(
            buf[12..],
            [0xaa; 52],
            "nothing written past the committed records"
        );

        let mut small = [0u8; 4];
        let w = RecordWriter::new(&mut small, 100, PacketType::Data);
        assert_eq!(w.remaining_body(), 0, "the limit is clamped to the buffer");
    }

    proptest! {
        #[test]
        fn round_trip(repr in arb_record_repr(), fill in any::<u8>()) {
            let mut buf = vec![fill; RECORD_HEADER_LEN + usize::from(repr.body_len)];
            prop_assert_eq!(repr.emit(&mut buf), Ok(RECORD_HEADER_LEN));
            let (parsed, rest) = RecordRepr::parse(&buf).unwrap();
            prop_assert_eq!(parsed, repr);
            prop_assert_eq!(rest.len(), usize::from(repr.body_len));
            let mut it = Records::new(&buf, repr.kind.packet_type());
            prop_assert_eq!(it.next(), Some(Ok(Record { header: repr, body: rest })));
            prop_assert_eq!(it.next(), None);
        }

        #[test]
        fn writer_never_exceeds_its_limit(
            limit in 0usize..200,
            lens in proptest::collection::vec(0usize..60, 0..10),
        ) {
            let mut buf = [0u8; 256];
            let mut w = RecordWriter::new(&mut buf, limit, PacketType::Data);
            let mut pushed = Vec::new();
            for (i, len) in lens.iter().enumerate() {
                let body = vec![i as u8; *len];
                let fits = w.len() + RECORD_HEADER_LEN + len <= limit;
                let res = w.push_bytes(RecordKind::Data, RecordFlags::NONE, i as u32, &body);
                prop_assert_eq!(res.is_ok(), fits);
                if fits {
                    pushed.push((i as u32, body));
                }
                prop_assert!(w.len() <= limit);
            }
            let (buf, len) = w.into_parts();
            let got: Vec<_> = Records::new(&buf[..len], PacketType::Data)
                .map(|r| r.map(|r| (r.header.link_seq, r.body.to_vec())))
                .collect::<Result<_, _>>()
                .unwrap();
            prop_assert_eq!(got, pushed);
        }
    }
}
