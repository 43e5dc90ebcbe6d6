//! Why a packet or request was dropped: one `Copy` enum, counted per worker per reason.
//!
//! Wire parsers and protocol state machines return a [`DropReason`] instead of panicking
//! (STYLE.md §7). Each variant carries the offending value where one exists, and maps to a dense
//! counter index with [`DropReason::index`] so workers can count drops in a fixed array.

use core::fmt;

/// The reason a packet, record or request was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Fewer bytes than the fixed header needs: (needed, got).
    Truncated {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// A length field points past the end of the buffer or exceeds a limit.
    BadLength {
        /// The length field.
        field: &'static str,
        /// Its value.
        value: usize,
    },
    /// The wire version is not one this build speaks.
    UnsupportedVersion(u8),
    /// The packet type byte is unknown.
    UnknownPacketType(u8),
    /// A record kind is unknown or not allowed in this packet type.
    UnknownRecordKind(u8),
    /// A field holds a value outside its range (e.g. node id 0, link id past the maximum).
    BadField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// Reserved bits that must be zero were set.
    ReservedBitsSet {
        /// The field whose reserved bits were set.
        field: &'static str,
    },
    /// The AEAD tag did not verify.
    BadTag,
    /// The packet number was already seen or is too old for the replay window.
    Replayed,
    /// The packet arrived on a link or from a node that the config does not have.
    UnknownLink(u16),
    /// The TTL reached zero.
    TtlExpired,
    /// No route to the destination in the current FIB.
    NoRoute,
    /// The FIB entry or feature is not supported by this build yet.
    Unsupported(&'static str),
    /// A bounded queue was full.
    QueueFull,
    /// A copy of a sequenced record already passed on (link duplicate suppression), or one too
    /// old to tell.
    Duplicate,
    /// A real-time record that can no longer arrive within its flow's deadline.
    Late,
    /// A group-addressed record with no members to reach from here (no FIB entry for the
    /// group, or for its source's tree at this node).
    NoMembers,
}

impl DropReason {
    /// Number of distinct counter slots (one per variant).
    pub const COUNT: usize = 17;

    /// A dense index per variant for counter arrays.
    pub const fn index(self) -> usize {
        match self {
            DropReason::Truncated { .. } => 0,
            DropReason::BadLength { .. } => 1,
            DropReason::UnsupportedVersion(_) => 2,
            DropReason::UnknownPacketType(_) => 3,
            DropReason::UnknownRecordKind(_) => 4,
            DropReason::BadField { .. } => 5,
            DropReason::ReservedBitsSet { .. } => 6,
            DropReason::BadTag => 7,
            DropReason::Replayed => 8,
            DropReason::UnknownLink(_) => 9,
            DropReason::TtlExpired => 10,
            DropReason::NoRoute => 11,
            DropReason::Unsupported(_) => 12,
            DropReason::QueueFull => 13,
            DropReason::Duplicate => 14,
            DropReason::Late => 15,
            DropReason::NoMembers => 16,
        }
    }

    /// Counter names in index order, for `weftctl show counters` and JSON exports.
    pub const NAMES: [&'static str; Self::COUNT] = [
        "truncated",
        "bad_length",
        "unsupported_version",
        "unknown_packet_type",
        "unknown_record_kind",
        "bad_field",
        "reserved_bits_set",
        "bad_tag",
        "replayed",
        "unknown_link",
        "ttl_expired",
        "no_route",
        "unsupported",
        "queue_full",
        "duplicate",
        "late",
        "no_members",
    ];

    /// The counter name of this reason.
    pub const fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Truncated { needed, got } => {
                write!(f, "truncated: need {needed} B, got {got}")
            }
            DropReason::BadLength { field, value } => write!(f, "bad length in {field}: {value}"),
            DropReason::UnsupportedVersion(v) => write!(f, "unsupported wire version {v}"),
            DropReason::UnknownPacketType(t) => write!(f, "unknown packet type {t:#04x}"),
            DropReason::UnknownRecordKind(k) => write!(f, "unknown record kind {k:#04x}"),
            DropReason::BadField { field, value } => write!(f, "bad {field}: {value}"),
            DropReason::ReservedBitsSet { field } => write!(f, "reserved bits set in {field}"),
            DropReason::BadTag => f.write_str("authentication tag did not verify"),
            DropReason::Replayed => f.write_str("replayed or too old packet number"),
            DropReason::UnknownLink(l) => write!(f, "unknown link {l}"),
            DropReason::TtlExpired => f.write_str("ttl expired"),
            DropReason::NoRoute => f.write_str("no route"),
            DropReason::Unsupported(what) => write!(f, "unsupported: {what}"),
            DropReason::QueueFull => f.write_str("queue full"),
            DropReason::Duplicate => f.write_str("duplicate or too old link sequence"),
            DropReason::Late => f.write_str("past its deadline"),
            DropReason::NoMembers => f.write_str("no group members to reach"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_indices() {
        assert_eq!(DropReason::NoMembers.index(), DropReason::COUNT - 1);
        assert_eq!(DropReason::BadTag.name(), "bad_tag");
        assert_eq!(
            DropReason::Truncated { needed: 1, got: 0 }.name(),
            "truncated"
        );
    }
}
