//! The group-state update body: what travels inside a control envelope of kind `GroupState`.
//!
//! A node's membership is split into [`BUCKETS`] buckets by a stable hash of the group id
//! ([`Bucket::of`]); each (origin, bucket) is advertised on its own, so that one advert always
//! fits in one record and a join re-floods one bucket, not the node's whole set. The envelope
//! (`docs/wire.md`, "Control record") names the origin, its incarnation and the update's
//! sequence number; the body is one of two messages:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 1 | `message`: 1 advert, 2 ack |
//! | 1 | 1 | `version`: 1 |
//! | 2 | 2 | `bucket` (big endian), below [`BUCKETS`] |
//! | 4 | 2 | `count` of group ids (big endian; 0 for an ack and for a withdrawal) |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 4 × count | group ids (u32, big endian): nonzero, strictly increasing, each in `bucket` |
//!
//! An advert lists every group of the bucket that has at least one member at the origin; an
//! empty advert withdraws the bucket. An ack carries no group ids: its envelope's (origin,
//! incarnation, sequence) and its `bucket` name the advert it acknowledges. At most
//! [`MAX_BUCKET_GROUPS`] ids fit, so an envelope is at most 1,196 bytes.
//!
//! The bucket of a group is the low byte of the murmur3 32-bit finaliser of its id
//! ([`Bucket::of`]); every node must use the same function, so it is part of the format.

use weft_shared::DropReason;
use weft_shared::ids::GroupId;
use weft_shared::wire::{CONTROL_HEAD_LEN, ControlKind, ControlRepr};

use crate::link_state::UpdateId;

/// Number of buckets a node's membership is split into.
pub const BUCKETS: usize = 256;
/// Body header length.
pub const GROUP_HEAD_LEN: usize = 8;
/// Length of one group id.
pub const GROUP_ENTRY_LEN: usize = 4;
/// Most group ids one bucket advert carries: its envelope stays under 1,200 bytes (one record
/// of a datagram, with room to spare for a signature later).
pub const MAX_BUCKET_GROUPS: usize = 293;

const _: () =
    assert!(CONTROL_HEAD_LEN + GROUP_HEAD_LEN + GROUP_ENTRY_LEN * MAX_BUCKET_GROUPS < 1_200);

const MESSAGE_ADVERT: u8 = 1;
const MESSAGE_ACK: u8 = 2;
const VERSION: u8 = 1;

/// One of the [`BUCKETS`] parts of a node's membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket(u8);

const _: () = assert!(BUCKETS == u8::MAX as usize + 1);

impl Bucket {
    /// The first bucket.
    pub const MIN: Bucket = Bucket(0);
    /// The last bucket.
    pub const MAX: Bucket = Bucket(u8::MAX);

    /// The bucket `raw`, or `None` if it is [`BUCKETS`] or above.
    pub fn new(raw: u16) -> Option<Bucket> {
        u8::try_from(raw).ok().map(Bucket)
    }

    /// The bucket a group belongs to: the low byte of the murmur3 32-bit finaliser of its id.
    pub const fn of(group: GroupId) -> Bucket {
        let mut h = group.0;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^= h >> 16;
        Bucket((h & 0xff) as u8)
    }

    /// The bucket number as carried on the wire.
    pub const fn get(self) -> u16 {
        self.0 as u16
    }

    /// Every bucket, in order.
    pub fn all() -> impl Iterator<Item = Bucket> {
        (0..=u8::MAX).map(Bucket)
    }
}

/// A decoded group-state message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupMessage {
    /// One bucket of a node's membership.
    Advert(BucketAdvert),
    /// The acknowledgement of the advert `(origin, incarnation, seq)` of `bucket`.
    Ack {
        /// The acknowledged advert's origin and version.
        id: UpdateId,
        /// Its bucket.
        bucket: Bucket,
    },
}

/// The groups of one bucket that have members at the origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketAdvert {
    /// Origin, incarnation and sequence.
    pub id: UpdateId,
    /// The bucket.
    pub bucket: Bucket,
    /// The bucket's groups with members at the origin: increasing, nonzero, each in
    /// `bucket`; empty for a withdrawal.
    pub groups: Vec<GroupId>,
}

impl BucketAdvert {
    /// Encodes the advert as a control envelope. The caller keeps the groups valid (sorted,
    /// in the bucket, at most [`MAX_BUCKET_GROUPS`]); extra groups past the limit are left out.
    pub fn encode(&self) -> Vec<u8> {
        let count = self.groups.len().min(MAX_BUCKET_GROUPS);
        let mut body = Vec::with_capacity(GROUP_HEAD_LEN + GROUP_ENTRY_LEN * count);
        body.push(MESSAGE_ADVERT);
        body.push(VERSION);
        body.extend_from_slice(&self.bucket.get().to_be_bytes());
        body.extend_from_slice(&(count as u16).to_be_bytes());
        body.extend_from_slice(&[0, 0]);
        for g in &self.groups[..count] {
            body.extend_from_slice(&g.0.to_be_bytes());
        }
        envelope(self.id, &body)
    }
}

/// Encodes the acknowledgement of the advert `id` of `bucket` as a control envelope.
pub fn encode_ack(id: UpdateId, bucket: Bucket) -> Vec<u8> {
    let b = bucket.get().to_be_bytes();
    envelope(id, &[MESSAGE_ACK, VERSION, b[0], b[1], 0, 0, 0, 0])
}

fn envelope(id: UpdateId, body: &[u8]) -> Vec<u8> {
    let repr = ControlRepr {
        origin: id.origin,
        origin_incarnation: id.incarnation,
        update_seq: id.seq,
        kind: ControlKind::GroupState,
        body,
    };
    let mut out = vec![0; repr.wire_len()];
    // The body is at most MAX_BUCKET_GROUPS ids and the incarnation is nonzero
    // (GroupState::new refuses 0), so emit cannot fail; an empty vector would be refused by
    // the receiver, never misread.
    match repr.emit(&mut out) {
        Ok(n) => out.truncate(n),
        Err(_) => out.clear(),
    }
    out
}

/// Decodes a control envelope of kind `GroupState`. Any malformed field is a [`DropReason`].
pub fn decode(envelope: &[u8]) -> Result<GroupMessage, DropReason> {
    let repr = ControlRepr::parse(envelope)?;
    let bad = |field, value: u64| DropReason::BadField { field, value };
    if repr.kind != ControlKind::GroupState {
        return Err(bad("control.kind", repr.kind as u64));
    }
    let id = UpdateId {
        origin: repr.origin,
        incarnation: repr.origin_incarnation,
        seq: repr.update_seq,
    };
    let body = repr.body;
    if body.len() < GROUP_HEAD_LEN {
        return Err(DropReason::Truncated {
            needed: GROUP_HEAD_LEN,
            got: body.len(),
        });
    }
    if body[1] != VERSION {
        return Err(bad("group_state.version", body[1].into()));
    }
    let raw_bucket = u16::from_be_bytes([body[2], body[3]]);
    let bucket = Bucket::new(raw_bucket).ok_or(bad("group_state.bucket", raw_bucket.into()))?;
    let count = usize::from(u16::from_be_bytes([body[4], body[5]]));
    if body[6] != 0 || body[7] != 0 {
        return Err(DropReason::ReservedBitsSet {
            field: "group_state.reserved",
        });
    }
    let entries = &body[GROUP_HEAD_LEN..];
    match body[0] {
        MESSAGE_ACK => {
            if count != 0 || !entries.is_empty() {
                return Err(DropReason::BadLength {
                    field: "group_state.ack_len",
                    value: body.len(),
                });
            }
            Ok(GroupMessage::Ack { id, bucket })
        }
        MESSAGE_ADVERT => {
            if count > MAX_BUCKET_GROUPS {
                return Err(DropReason::BadLength {
                    field: "group_state.count",
                    value: count,
                });
            }
            if entries.len() != count * GROUP_ENTRY_LEN {
                return Err(DropReason::BadLength {
                    field: "group_state.len",
                    value: body.len(),
                });
            }
            let mut groups: Vec<GroupId> = Vec::with_capacity(count);
            for e in entries.chunks_exact(GROUP_ENTRY_LEN) {
                let g = GroupId(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
                if g.0 == 0 {
                    return Err(bad("group_state.group", 0));
                }
                if Bucket::of(g) != bucket {
                    return Err(bad("group_state.group_bucket", g.0.into()));
                }
                if groups.last().is_some_and(|prev| *prev >= g) {
                    return Err(bad("group_state.group_order", g.0.into()));
                }
                groups.push(g);
            }
            Ok(GroupMessage::Advert(BucketAdvert { id, bucket, groups }))
        }
        m => Err(bad("group_state.message", m.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weft_shared::ids::{Incarnation, NodeId};

    fn id(origin: u16, inc: u32, seq: u32) -> UpdateId {
        UpdateId {
            origin: NodeId::new(origin).unwrap(),
            incarnation: Incarnation(inc),
            seq,
        }
    }

    /// The first `n` nonzero group ids of `bucket`, in order.
    fn groups_of(bucket: Bucket, n: usize) -> Vec<GroupId> {
        (1..)
            .map(GroupId)
            .filter(|g| Bucket::of(*g) == bucket)
            .take(n)
            .collect()
    }

    fn advert() -> BucketAdvert {
        let bucket = Bucket::of(GroupId(7));
        BucketAdvert {
            id: id(7, 0x0102_0304, 9),
            bucket,
            groups: groups_of(bucket, 2),
        }
    }

    #[test]
    fn the_bucket_hash_is_pinned() {
        // Part of the format: every node must put a group in the same bucket.
        let buckets: Vec<u16> = [1, 2, 3, 1000, u32::MAX]
            .into_iter()
            .map(|g| Bucket::of(GroupId(g)).get())
            .collect();
        assert_eq!(buckets, vec![183, 6, 39, 88, 57]); // checked against a Python murmur3 fmix32
        // Consecutive ids spread over the buckets.
        let mut per_bucket = [0usize; BUCKETS];
        for g in 1..=25_600 {
            per_bucket[usize::from(Bucket::of(GroupId(g)).get())] += 1;
        }
        let (min, max) = (per_bucket.iter().min(), per_bucket.iter().max());
        assert!(min >= Some(&60) && max <= Some(&140), "{min:?} {max:?}");
    }

    #[test]
    fn golden_bytes() {
        let a = advert();
        let [g1, g2] = [a.groups[0].0, a.groups[1].0];
        let bytes = a.encode();
        let expected: Vec<u8> = [
            // envelope: origin 7, kind 2, rsv, incarnation, seq 9, body_len 16, rsv
            &[0, 7, 2, 0, 1, 2, 3, 4, 0, 0, 0, 9, 0, 16, 0, 0][..],
            // head: message 1, version 1, bucket, count 2, reserved
            &[1, 1, 0, a.bucket.0, 0, 2, 0, 0],
            &g1.to_be_bytes(),
            &g2.to_be_bytes(),
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(decode(&bytes).unwrap(), GroupMessage::Advert(a.clone()));
        let ack = encode_ack(id(7, 5, 6), a.bucket);
        assert_eq!(ack.len(), 24);
        assert_eq!(
            decode(&ack).unwrap(),
            GroupMessage::Ack {
                id: id(7, 5, 6),
                bucket: a.bucket
            }
        );
        let withdrawal = BucketAdvert {
            groups: Vec::new(),
            ..a
        };
        assert_eq!(withdrawal.encode().len(), 24);
        assert_eq!(
            decode(&withdrawal.encode()).unwrap(),
            GroupMessage::Advert(withdrawal)
        );
    }

    #[test]
    fn a_full_bucket_fits_under_1200_bytes() {
        let bucket = Bucket::of(GroupId(1));
        let full = BucketAdvert {
            id: id(1, 1, 1),
            bucket,
            groups: groups_of(bucket, MAX_BUCKET_GROUPS),
        };
        let bytes = full.encode();
        assert_eq!(bytes.len(), 1_196);
        assert_eq!(decode(&bytes).unwrap(), GroupMessage::Advert(full));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let good = advert().encode();
        let other_bucket = Bucket((advert().bucket.0).wrapping_add(1));
        let foreign = groups_of(other_bucket, 1)[0];
        let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
        cases.push((good[..good.len() - 1].to_vec(), "truncated record"));
        let mut v = good[..20].to_vec(); // head cut short, body_len fixed to match
        v[13] = 4;
        cases.push((v, "truncated head"));
        let mut v = good.clone();
        v[2] = 1; // a link-state envelope
        cases.push((v, "wrong kind"));
        let mut v = good.clone();
        v[17] = 2;
        cases.push((v, "version"));
        let mut v = good.clone();
        v[16] = 9;
        cases.push((v, "message"));
        let mut v = good.clone();
        v[18..20].copy_from_slice(&256u16.to_be_bytes());
        cases.push((v, "bucket out of range"));
        let mut v = good.clone();
        v[19] = other_bucket.0; // the groups are not in this bucket
        cases.push((v, "groups in another bucket"));
        let mut v = good.clone();
        v[24..28].copy_from_slice(&foreign.0.to_be_bytes());
        cases.push((v, "one group in another bucket"));
        let mut v = good.clone();
        v[21] = 3; // count says 3, two ids follow
        cases.push((v, "count"));
        let mut v = good.clone();
        v[22] = 1;
        cases.push((v, "reserved"));
        let mut v = good.clone();
        let (a, b) = (v[24..28].to_vec(), v[28..32].to_vec());
        v[24..28].copy_from_slice(&b);
        v[28..32].copy_from_slice(&a);
        cases.push((v, "unsorted"));
        let mut v = good.clone();
        let a = v[24..28].to_vec();
        v[28..32].copy_from_slice(&a);
        cases.push((v, "duplicate"));
        // Group 0 (in its own bucket, alone, so only the zero check can refuse it).
        let zero = BucketAdvert {
            id: id(1, 1, 1),
            bucket: Bucket::of(GroupId(0)),
            groups: vec![GroupId(0)],
        };
        cases.push((zero.encode(), "group 0"));
        let mut v = encode_ack(id(1, 1, 1), Bucket(0));
        v[21] = 1; // an ack with a count
        cases.push((v, "ack with count"));
        let mut v = encode_ack(id(1, 1, 1), Bucket(0));
        v.extend_from_slice(&[0, 0, 0, 1]);
        v[13] = 12; // body_len matches, the ack carries an id
        cases.push((v, "ack with ids"));
        for (bytes, what) in cases {
            assert!(decode(&bytes).is_err(), "{what}");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn round_trip(ids in proptest::collection::btree_set(1u32.., 0..400),
                      bucket in 0u8..=255, inc in 1u32.., seq in any::<u32>(),
                      origin in 1u16..=1023) {
            let bucket = Bucket(bucket);
            // Map every id into the bucket by searching upwards (ids stay distinct and sorted
            // after dedup).
            let mut groups: Vec<GroupId> = ids
                .into_iter()
                .filter_map(|g| (g..g.saturating_add(4096)).map(GroupId).find(|g| Bucket::of(*g) == bucket))
                .collect();
            groups.sort();
            groups.dedup();
            groups.truncate(MAX_BUCKET_GROUPS);
            let a = BucketAdvert { id: id(origin, inc, seq), bucket, groups };
            prop_assert_eq!(decode(&a.encode()).unwrap(), GroupMessage::Advert(a));
        }
    }
}
