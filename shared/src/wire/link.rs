//! The link header: the first 24 bytes of every UDP datagram between two neighbour nodes.
//!
//! It names the sender node, the link and the path, so a receiver never trusts the UDP source
//! address (relays and NAT rewrite it). Its packet type carries a priority class in the top two
//! bits, so the data plane can queue link-critical and control packets ahead of data after
//! reading one byte ([`peek_class`]). The sender incarnation and packet number form the AEAD
//! nonce, and the whole header is the AEAD's associated data (docs/wire.md "Authentication").

use core::fmt;
use core::mem::size_of;

use zerocopy::network_endian::{U16, U32, U64};
use zerocopy::{
    FromBytes, Immutable, IntoBytes, KnownLayout, Ref, SplitByteSlice, SplitByteSliceMut, Unaligned,
};

use super::{
    EmitError, MAX_DATAGRAM_LEN, NONCE_LEN, TAG_LEN, WIRE_VERSION, split_view, write_view,
};
use crate::DropReason;
use crate::ids::{Incarnation, LinkId, NodeId, PathId};

/// Length of the link header in bytes.
pub const LINK_HEADER_LEN: usize = 24;
/// Link flag bit 0: the body is AES-GCM sealed and a [`TAG_LEN`]-byte tag trails the packet.
pub const LINK_FLAG_AUTH: u8 = 0x01;
/// Link flag bits 1..2: the key epoch modulo 4 of an AUTH packet (0 without AUTH), so the
/// receiver knows which of the link's keys to try.
pub const LINK_FLAG_EPOCH_MASK: u8 = 0x06;
/// Shift of the key-epoch bits in the link flags.
pub const LINK_FLAG_EPOCH_SHIFT: u8 = 1;
/// The number of key epochs the wire tells apart (the epoch travels modulo this).
pub const KEY_EPOCH_SLOTS: u8 = 4;
/// The largest per-lane packet counter: the low 56 bits of the packet number.
pub const MAX_PACKET_COUNTER: u64 = (1 << 56) - 1;

/// The link header as it sits on the wire (big-endian, no padding, any alignment).
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct LinkHeader {
    /// Wire version, [`WIRE_VERSION`].
    pub version: u8,
    /// [`PacketType`]: priority class in bits 7..6, kind in bits 5..0.
    pub packet_type: u8,
    /// [`LINK_FLAG_AUTH`] and, with it, the key epoch mod 4 ([`LINK_FLAG_EPOCH_MASK`]); the
    /// other bits are reserved and must be zero.
    pub flags: u8,
    /// The lane (per-core packet-number space) this packet belongs to.
    pub lane: u8,
    /// The sending node.
    pub sender_node: U16,
    /// The link the packet travels on.
    pub link_id: U16,
    /// The path (interface pair) of the link.
    pub path_id: u8,
    /// Reserved, must be zero.
    pub reserved0: u8,
    /// Reserved, must be zero.
    pub reserved1: U16,
    /// The sender's data-plane incarnation; never 0.
    pub sender_incarnation: U32,
    /// Lane in the top 8 bits, a per-lane counter in the low 56 bits; fresh for every datagram.
    pub packet_number: U64,
}

const _: () = assert!(size_of::<LinkHeader>() == LINK_HEADER_LEN);

impl LinkHeader {
    /// The AES-GCM nonce of this packet: sender incarnation then packet number, which are
    /// exactly header bytes 12..24.
    pub fn nonce(&self) -> [u8; NONCE_LEN] {
        let mut nonce = [0; NONCE_LEN];
        nonce[..4].copy_from_slice(self.sender_incarnation.as_bytes());
        nonce[4..].copy_from_slice(self.packet_number.as_bytes());
        nonce
    }
}

/// Priority class of a packet type: the order in which a receiver queues packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum PriorityClass {
    /// Link-critical: hellos and link feedback. Never starved by data, or links flap under load.
    LinkCritical = 0,
    /// Control: link-state and group updates for the control plane.
    Control = 1,
    /// Data.
    Data = 2,
}

/// What a link packet carries; all its records are of kinds belonging to this type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// Link hellos (liveness, RTT, version and config check). Class 0, kind 1.
    Hello = 0x01,
    /// Per-link acks and nacks of the link protocols. Class 0, kind 2.
    Feedback = 0x02,
    /// Control envelopes punted to the control plane. Class 1, kind 1.
    Control = 0x41,
    /// Overlay data. Class 2, kind 1.
    Data = 0x81,
}

impl PacketType {
    /// Every packet type, in wire-value order.
    pub const ALL: [PacketType; 4] = [
        PacketType::Hello,
        PacketType::Feedback,
        PacketType::Control,
        PacketType::Data,
    ];

    /// The packet type of wire byte `b`, or `None` if it is unknown.
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(PacketType::Hello),
            0x02 => Some(PacketType::Feedback),
            0x41 => Some(PacketType::Control),
            0x81 => Some(PacketType::Data),
            _ => None,
        }
    }

    /// The wire byte.
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// The priority class (top two bits of the wire byte).
    pub const fn class(self) -> PriorityClass {
        match self.byte() >> 6 {
            0 => PriorityClass::LinkCritical,
            1 => PriorityClass::Control,
            _ => PriorityClass::Data,
        }
    }

    /// The kind within the class (low six bits of the wire byte).
    pub const fn kind(self) -> u8 {
        self.byte() & 0x3f
    }
}

/// The priority class of a datagram after checking only its version, size and type byte, so a
/// receive loop can queue link-critical and control packets first before parsing further.
pub fn peek_class(datagram: &[u8]) -> Result<PriorityClass, DropReason> {
    check_version(datagram)?;
    if datagram.len() < LINK_HEADER_LEN {
        return Err(DropReason::Truncated {
            needed: LINK_HEADER_LEN,
            got: datagram.len(),
        });
    }
    let b = datagram[1];
    PacketType::from_byte(b)
        .map(PacketType::class)
        .ok_or(DropReason::UnknownPacketType(b))
}

/// Checks the version byte first, so a peer on another version is counted as such even if its
/// header has another length.
fn check_version(datagram: &[u8]) -> Result<(), DropReason> {
    match datagram.first() {
        None => Err(DropReason::Truncated {
            needed: LINK_HEADER_LEN,
            got: 0,
        }),
        Some(&v) if v != WIRE_VERSION => Err(DropReason::UnsupportedVersion(v)),
        Some(_) => Ok(()),
    }
}

/// A parsed link header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkRepr {
    /// What the body carries.
    pub packet_type: PacketType,
    /// The body is sealed with AES-GCM and a tag trails the packet.
    pub auth: bool,
    /// With `auth`: the epoch of the sealing key modulo [`KEY_EPOCH_SLOTS`] (0..=3). Always 0
    /// without `auth`.
    pub key_epoch: u8,
    /// The lane; also the top byte of `packet_number`.
    pub lane: u8,
    /// The sending node.
    pub sender: NodeId,
    /// The link.
    pub link: LinkId,
    /// The path of the link.
    pub path: PathId,
    /// The sender's data-plane incarnation (never 0).
    pub sender_incarnation: Incarnation,
    /// `lane << 56 | counter`; strictly increasing per (link, direction, lane, incarnation).
    pub packet_number: u64,
}

impl LinkRepr {
    /// The packet number for the `counter`-th packet of `lane`, or `None` if the counter does
    /// not fit in 56 bits (the lane must then rekey or restart with a new incarnation).
    pub const fn packet_number(lane: u8, counter: u64) -> Option<u64> {
        if counter > MAX_PACKET_COUNTER {
            None
        } else {
            Some(((lane as u64) << 56) | counter)
        }
    }

    /// The per-lane counter part of the packet number.
    pub const fn counter(&self) -> u64 {
        self.packet_number & MAX_PACKET_COUNTER
    }

    /// Parses the link header at the front of `datagram`; returns it and the bytes after it.
    pub fn parse(datagram: &[u8]) -> Result<(Self, &[u8]), DropReason> {
        check_version(datagram)?;
        let (header, rest) = split_view::<LinkHeader>(datagram)?;
        Ok((Self::from_view(header)?, rest))
    }

    /// Checks every field of a header view.
    pub fn from_view(h: &LinkHeader) -> Result<Self, DropReason> {
        if h.version != WIRE_VERSION {
            return Err(DropReason::UnsupportedVersion(h.version));
        }
        let packet_type = PacketType::from_byte(h.packet_type)
            .ok_or(DropReason::UnknownPacketType(h.packet_type))?;
        let auth = h.flags & LINK_FLAG_AUTH != 0;
        let key_epoch = (h.flags & LINK_FLAG_EPOCH_MASK) >> LINK_FLAG_EPOCH_SHIFT;
        // Epoch bits mean something only on an AUTH packet (one encoding per value).
        if h.flags & !(LINK_FLAG_AUTH | LINK_FLAG_EPOCH_MASK) != 0 || (!auth && key_epoch != 0) {
            return Err(DropReason::ReservedBitsSet {
                field: "link.flags",
            });
        }
        if h.reserved0 != 0 || h.reserved1.get() != 0 {
            return Err(DropReason::ReservedBitsSet {
                field: "link.reserved",
            });
        }
        let sender = NodeId::new(h.sender_node.get()).ok_or(DropReason::BadField {
            field: "link.sender_node",
            value: h.sender_node.get().into(),
        })?;
        let link = LinkId::new(h.link_id.get()).ok_or(DropReason::BadField {
            field: "link.link_id",
            value: h.link_id.get().into(),
        })?;
        let path = PathId::new(h.path_id).ok_or(DropReason::BadField {
            field: "link.path_id",
            value: h.path_id.into(),
        })?;
        let incarnation = h.sender_incarnation.get();
        if incarnation == 0 {
            return Err(DropReason::BadField {
                field: "link.sender_incarnation",
                value: 0,
            });
        }
        let packet_number = h.packet_number.get();
        // Lanes have disjoint packet-number spaces, so nonces never collide across cores.
        if (packet_number >> 56) as u8 != h.lane {
            return Err(DropReason::BadField {
                field: "link.packet_number",
                value: packet_number,
            });
        }
        Ok(LinkRepr {
            packet_type,
            auth,
            key_epoch,
            lane: h.lane,
            sender,
            link,
            path,
            sender_incarnation: Incarnation(incarnation),
            packet_number,
        })
    }

    /// The header view of this value, or why it cannot be encoded.
    pub fn to_view(&self) -> Result<LinkHeader, EmitError> {
        if self.sender_incarnation.0 == 0 {
            return Err(EmitError::Invalid {
                field: "link.sender_incarnation",
                value: 0,
            });
        }
        if (self.packet_number >> 56) as u8 != self.lane {
            return Err(EmitError::Invalid {
                field: "link.packet_number",
                value: self.packet_number,
            });
        }
        if self.key_epoch >= KEY_EPOCH_SLOTS || (!self.auth && self.key_epoch != 0) {
            return Err(EmitError::Invalid {
                field: "link.key_epoch",
                value: self.key_epoch.into(),
            });
        }
        let flags = if self.auth {
            LINK_FLAG_AUTH | (self.key_epoch << LINK_FLAG_EPOCH_SHIFT)
        } else {
            0
        };
        Ok(LinkHeader {
            version: WIRE_VERSION,
            packet_type: self.packet_type.byte(),
            flags,
            lane: self.lane,
            sender_node: U16::new(self.sender.get()),
            link_id: U16::new(self.link.get()),
            path_id: self.path.get(),
            reserved0: 0,
            reserved1: U16::ZERO,
            sender_incarnation: U32::new(self.sender_incarnation.0),
            packet_number: U64::new(self.packet_number),
        })
    }

    /// Writes the header to the front of `buf`; returns [`LINK_HEADER_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        write_view(&self.to_view()?, buf)
    }

    /// The AES-GCM nonce: sender incarnation (4 B) then packet number (8 B), big-endian.
    pub fn nonce(&self) -> [u8; NONCE_LEN] {
        let mut nonce = [0; NONCE_LEN];
        nonce[..4].copy_from_slice(&self.sender_incarnation.0.to_be_bytes());
        nonce[4..].copy_from_slice(&self.packet_number.to_be_bytes());
        nonce
    }

    /// Bytes after the body that this header implies: the tag if `auth` is set.
    pub const fn trailer_len(&self) -> usize {
        if self.auth { TAG_LEN } else { 0 }
    }
}

/// A checked view of a whole datagram: the header, the body and, with AUTH, the trailing tag.
///
/// With `B = &mut [u8]` this is what authentication works on: the header bytes are the AAD, the
/// body is opened or sealed in place, and the tag is read or written.
pub struct LinkPacket<B> {
    repr: LinkRepr,
    header: Ref<B, LinkHeader>,
    body: B,
    tag: Option<Ref<B, [u8; TAG_LEN]>>,
}

impl<B: SplitByteSlice> LinkPacket<B> {
    /// Checks the header and the lengths: the body holds at least one byte and, with AUTH, is
    /// followed by a tag.
    pub fn new_checked(datagram: B) -> Result<Self, DropReason> {
        let len = datagram.len();
        check_version(&datagram)?;
        if len > MAX_DATAGRAM_LEN {
            return Err(DropReason::BadLength {
                field: "datagram",
                value: len,
            });
        }
        let (header, rest) =
            Ref::<B, LinkHeader>::from_prefix(datagram).map_err(|_| DropReason::Truncated {
                needed: LINK_HEADER_LEN,
                got: len,
            })?;
        let repr = LinkRepr::from_view(&header)?;
        let trailer = repr.trailer_len();
        let body_len = rest.len().saturating_sub(trailer);
        if body_len == 0 {
            return Err(DropReason::Truncated {
                needed: LINK_HEADER_LEN + 1 + trailer,
                got: len,
            });
        }
        let (body, tag) = if repr.auth {
            let (body, tag) =
                Ref::<B, [u8; TAG_LEN]>::from_suffix(rest).map_err(|_| DropReason::Truncated {
                    needed: LINK_HEADER_LEN + 1 + TAG_LEN,
                    got: len,
                })?;
            (body, Some(tag))
        } else {
            (rest, None)
        };
        Ok(LinkPacket {
            repr,
            header,
            body,
            tag,
        })
    }

    /// The parsed header.
    pub fn repr(&self) -> &LinkRepr {
        &self.repr
    }

    /// The header view: also the AAD of the AEAD.
    pub fn header(&self) -> &LinkHeader {
        &self.header
    }

    /// The body: records in plaintext, or ciphertext while an AUTH packet is sealed.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The AEAD tag of an AUTH packet.
    pub fn tag(&self) -> Option<&[u8; TAG_LEN]> {
        self.tag.as_deref()
    }
}

impl<'a> LinkPacket<&'a [u8]> {
    /// The parsed header, the body and the tag, borrowed from the datagram.
    pub fn into_parts(self) -> (LinkRepr, &'a [u8], Option<&'a [u8; TAG_LEN]>) {
        (self.repr, self.body, self.tag.map(Ref::into_ref))
    }
}

impl<B: SplitByteSliceMut> LinkPacket<B> {
    /// The body, for opening or sealing in place.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.body
    }

    /// The AEAD tag, for writing after sealing.
    pub fn tag_mut(&mut self) -> Option<&mut [u8; TAG_LEN]> {
        self.tag.as_deref_mut()
    }
}

impl<B: SplitByteSlice> fmt::Debug for LinkPacket<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkPacket")
            .field("repr", &self.repr)
            .field("body_len", &self.body.len())
            .field("tag", &self.tag())
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::strategies::arb_link_repr;

    /// A data packet on link 258, path 2, lane 3, from node 5, incarnation 0x0a0b0c0d, counter 42.
    const GOLDEN: [u8; 24] = [
        0x01, // version
        0x81, // packet type: class 2 (data), kind 1
        0x01, // flags: AUTH
        0x03, // lane
        0x00, 0x05, // sender node 5
        0x01, 0x02, // link 258
        0x02, // path 2
        0x00, // reserved
        0x00, 0x00, // reserved
        0x0a, 0x0b, 0x0c, 0x0d, // sender incarnation
        0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // packet number: lane 3, counter 42
    ];

    fn golden_repr() -> LinkRepr {
        LinkRepr {
            packet_type: PacketType::Data,
            auth: true,
            key_epoch: 0,
            lane: 3,
            sender: NodeId::new(5).unwrap(),
            link: LinkId::new(258).unwrap(),
            path: PathId::new(2).unwrap(),
            sender_incarnation: Incarnation(0x0a0b_0c0d),
            packet_number: LinkRepr::packet_number(3, 42).unwrap(),
        }
    }

    #[test]
    fn golden_bytes() {
        let mut buf = [0xee; 30];
        assert_eq!(golden_repr().emit(&mut buf), Ok(LINK_HEADER_LEN));
        assert_eq!(buf[..LINK_HEADER_LEN], GOLDEN);
        assert_eq!(
            buf[LINK_HEADER_LEN..],
            [0xee; 6],
            "emit wrote past the header"
        );
        let (repr, rest) = LinkRepr::parse(&buf).unwrap();
        assert_eq!(repr, golden_repr());
        assert_eq!(rest.len(), 6);
        assert_eq!(repr.counter(), 42);
    }

    #[test]
    fn nonce_is_header_bytes_12_to_24() {
        let (header, _) = LinkHeader::ref_from_prefix(&GOLDEN[..]).unwrap();
        assert_eq!(header.nonce()[..], GOLDEN[12..24]);
        assert_eq!(golden_repr().nonce()[..], GOLDEN[12..24]);
    }

    #[test]
    fn classes_follow_the_top_two_bits() {
        assert_eq!(PacketType::Hello.class(), PriorityClass::LinkCritical);
        assert_eq!(PacketType::Feedback.class(), PriorityClass::LinkCritical);
        assert_eq!(PacketType::Control.class(), PriorityClass::Control);
        assert_eq!(PacketType::Data.class(), PriorityClass::Data);
        for t in PacketType::ALL {
            assert_eq!(PacketType::from_byte(t.byte()), Some(t));
            assert_eq!(t.byte(), ((t.class() as u8) << 6) | t.kind());
        }
        assert_eq!(peek_class(&GOLDEN), Ok(PriorityClass::Data));
        let mut hello = GOLDEN;
        hello[1] = 0x01;
        assert_eq!(peek_class(&hello), Ok(PriorityClass::LinkCritical));
        hello[1] = 0xc1;
        assert_eq!(peek_class(&hello), Err(DropReason::UnknownPacketType(0xc1)));
    }

    #[test]
    fn rejects_each_bad_field() {
        let parse = |patch: &dyn Fn(&mut [u8; 24])| {
            let mut b = GOLDEN;
            patch(&mut b);
            LinkRepr::parse(&b).map(|(r, _)| r)
        };
        assert_eq!(parse(&|b| b[0] = 2), Err(DropReason::UnsupportedVersion(2)));
        assert_eq!(
            parse(&|b| b[1] = 0x03),
            Err(DropReason::UnknownPacketType(3))
        );
        let flags = DropReason::ReservedBitsSet {
            field: "link.flags",
        };
        assert_eq!(parse(&|b| b[2] = 0x08), Err(flags));
        assert_eq!(parse(&|b| b[2] = 0x81), Err(flags));
        // Key-epoch bits without AUTH are not a second encoding of "no auth".
        assert_eq!(parse(&|b| b[2] = 0x02), Err(flags));
        assert_eq!(parse(&|b| b[2] = 0x07).map(|r| r.key_epoch), Ok(3));
        let reserved = DropReason::ReservedBitsSet {
            field: "link.reserved",
        };
        assert_eq!(parse(&|b| b[9] = 1), Err(reserved));
        assert_eq!(parse(&|b| b[11] = 1), Err(reserved));
        let node0 = DropReason::BadField {
            field: "link.sender_node",
            value: 0,
        };
        assert_eq!(parse(&|b| b[5] = 0), Err(node0));
        let link512 = DropReason::BadField {
            field: "link.link_id",
            value: 512,
        };
        assert_eq!(parse(&|b| b[6..8].copy_from_slice(&[2, 0])), Err(link512));
        let path8 = DropReason::BadField {
            field: "link.path_id",
            value: 8,
        };
        assert_eq!(parse(&|b| b[8] = 8), Err(path8));
        let inc0 = DropReason::BadField {
            field: "link.sender_incarnation",
            value: 0,
        };
        assert_eq!(parse(&|b| b[12..16].fill(0)), Err(inc0));
        assert!(matches!(
            parse(&|b| b[3] = 4),
            Err(DropReason::BadField {
                field: "link.packet_number",
                ..
            })
        ));
        // The version is checked before the length, so short packets of other versions count as
        // version mismatches.
        assert_eq!(
            LinkRepr::parse(&[7, 0]),
            Err(DropReason::UnsupportedVersion(7))
        );
        assert_eq!(
            LinkRepr::parse(&GOLDEN[..23]),
            Err(DropReason::Truncated {
                needed: 24,
                got: 23
            })
        );
    }

    #[test]
    fn packet_view_splits_body_and_tag() {
        let mut datagram = [0u8; 24 + 5 + TAG_LEN];
        datagram[..24].copy_from_slice(&GOLDEN);
        datagram[24..29].copy_from_slice(b"hello");
        datagram[29..].fill(0x77);
        let mut pkt = LinkPacket::new_checked(&mut datagram[..]).unwrap();
        assert_eq!(pkt.body(), b"hello");
        assert_eq!(pkt.tag(), Some(&[0x77; TAG_LEN]));
        assert_eq!(pkt.header().nonce(), golden_repr().nonce());
        pkt.body_mut()[0] = b'j';
        assert_eq!(datagram[24], b'j');

        // AUTH with a body but no room for the tag, and a body-less packet, are truncated.
        assert!(matches!(
            LinkPacket::new_checked(&datagram[..24 + TAG_LEN]),
            Err(DropReason::Truncated { .. })
        ));
        let mut plain = GOLDEN;
        plain[2] = 0;
        assert!(matches!(
            LinkPacket::new_checked(&plain[..]),
            Err(DropReason::Truncated { .. })
        ));
        let big = vec![0u8; MAX_DATAGRAM_LEN + 1];
        let mut big = big;
        big[..24].copy_from_slice(&GOLDEN);
        assert!(matches!(
            LinkPacket::new_checked(&big[..]),
            Err(DropReason::BadLength {
                field: "datagram",
                ..
            })
        ));
    }

    #[test]
    fn packet_numbers_keep_lanes_apart() {
        assert_eq!(
            LinkRepr::packet_number(0, MAX_PACKET_COUNTER),
            Some(MAX_PACKET_COUNTER)
        );
        assert_eq!(LinkRepr::packet_number(0, MAX_PACKET_COUNTER + 1), None);
        assert_eq!(LinkRepr::packet_number(255, 1), Some(0xff00_0000_0000_0001));
        let mut r = golden_repr();
        r.lane = 4;
        assert!(matches!(
            r.emit(&mut [0; 24]),
            Err(EmitError::Invalid { .. })
        ));
        let mut r = golden_repr();
        r.key_epoch = 4;
        assert!(matches!(
            r.emit(&mut [0; 24]),
            Err(EmitError::Invalid {
                field: "link.key_epoch",
                ..
            })
        ));
        r.key_epoch = 2;
        let mut buf = [0; 24];
        r.emit(&mut buf).unwrap();
        assert_eq!(buf[2], 0x05);
    }

    proptest! {
        #[test]
        fn round_trip(repr in arb_link_repr()) {
            let mut buf = [0u8; LINK_HEADER_LEN];
            prop_assert_eq!(repr.emit(&mut buf), Ok(LINK_HEADER_LEN));
            let (parsed, rest) = LinkRepr::parse(&buf).unwrap();
            prop_assert_eq!(parsed, repr);
            prop_assert!(rest.is_empty());
            prop_assert_eq!(peek_class(&buf), Ok(repr.packet_type.class()));
        }

        #[test]
        fn short_buffers_fail_cleanly(repr in arb_link_repr(), cut in 0usize..LINK_HEADER_LEN) {
            let mut buf = [0u8; LINK_HEADER_LEN];
            let short = matches!(
                repr.emit(&mut buf[..cut]),
                Err(EmitError::BufferTooSmall { needed: 24, .. })
            );
            prop_assert!(short);
            repr.emit(&mut buf).unwrap();
            let truncated = matches!(LinkRepr::parse(&buf[..cut]), Err(DropReason::Truncated { .. }));
            prop_assert!(truncated);
        }
    }
}
