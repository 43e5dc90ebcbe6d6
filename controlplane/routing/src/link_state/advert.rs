//! The link-state update body: what travels inside a control envelope of kind `LinkState`.
//!
//! The envelope (`docs/wire.md`) already names the origin, its incarnation and the update's
//! sequence number. The body is one of two messages:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 1 | `message`: 1 advert, 2 ack |
//! | 1 | 1 | `version`: 1 |
//! | 2 | 2 | `count` of link entries (big endian; 0 for an ack) |
//! | 4 | 12 × count | entries, strictly increasing link id |
//!
//! Each entry: `link` (u16), `flags` (u8, bit 0 = up, other bits 0), reserved (u8, 0),
//! `latency_us` (u32, one-way), `loss_ppm` (u32, at most 1,000,000). An ack carries no entries:
//! its envelope's (origin, incarnation, sequence) name the advert it acknowledges.

use weft_shared::DropReason;
use weft_shared::ids::{Incarnation, LinkId, NodeId};
use weft_shared::wire::{ControlKind, ControlRepr};

use crate::metric::{LinkReport, PPM};

/// Body header length.
pub const ADVERT_HEAD_LEN: usize = 4;
/// Length of one link entry.
pub const ADVERT_ENTRY_LEN: usize = 12;
/// Most link entries one advert carries: the envelope must fit one record of a 1,472-byte
/// datagram (24 B link header, 8 B record header, 16 B envelope).
pub const MAX_ADVERT_LINKS: usize = (1472 - 24 - 8 - 16 - ADVERT_HEAD_LEN) / ADVERT_ENTRY_LEN;

const MESSAGE_ADVERT: u8 = 1;
const MESSAGE_ACK: u8 = 2;
const VERSION: u8 = 1;

/// One link as its end node advertises it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvertLink {
    /// The link.
    pub link: LinkId,
    /// Its state, latency and loss as the advertising node sees them.
    pub report: LinkReport,
}

/// A decoded link-state message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A node's links.
    Advert(Advert),
    /// The acknowledgement of the advert `(origin, incarnation, seq)`.
    Ack(UpdateId),
}

/// Names one advert: its origin, the origin's incarnation and sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UpdateId {
    /// The node whose links the advert describes.
    pub origin: NodeId,
    /// The origin control plane's incarnation.
    pub incarnation: Incarnation,
    /// The origin's sequence number within that incarnation.
    pub seq: u32,
}

impl UpdateId {
    /// The version key: a higher incarnation wins, then a higher sequence number.
    pub fn version(&self) -> (u32, u32) {
        (self.incarnation.0, self.seq)
    }
}

/// A node's advertised links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// Origin, incarnation and sequence.
    pub id: UpdateId,
    /// Links in increasing id order.
    pub links: Vec<AdvertLink>,
}

impl Advert {
    /// The advertised state of `link`, if the advert mentions it.
    pub fn link(&self, link: LinkId) -> Option<LinkReport> {
        self.links
            .binary_search_by_key(&link, |l| l.link)
            .ok()
            .map(|i| self.links[i].report)
    }

    /// Encodes the advert as a control envelope.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(ADVERT_HEAD_LEN + ADVERT_ENTRY_LEN * self.links.len());
        body.push(MESSAGE_ADVERT);
        body.push(VERSION);
        let count = self.links.len().min(MAX_ADVERT_LINKS);
        body.extend_from_slice(&(count as u16).to_be_bytes());
        for l in &self.links[..count] {
            body.extend_from_slice(&l.link.get().to_be_bytes());
            body.push(u8::from(l.report.up));
            body.push(0);
            body.extend_from_slice(&l.report.latency_us.to_be_bytes());
            body.extend_from_slice(&l.report.loss_ppm.min(PPM).to_be_bytes());
        }
        envelope(self.id, &body)
    }
}

/// Encodes the acknowledgement of `id` as a control envelope.
pub fn encode_ack(id: UpdateId) -> Vec<u8> {
    envelope(id, &[MESSAGE_ACK, VERSION, 0, 0])
}

fn envelope(id: UpdateId, body: &[u8]) -> Vec<u8> {
    let repr = ControlRepr {
        origin: id.origin,
        origin_incarnation: id.incarnation,
        update_seq: id.seq,
        kind: ControlKind::LinkState,
        body,
    };
    let mut out = vec![0; repr.wire_len()];
    // The body is at most MAX_ADVERT_LINKS entries and the incarnation is nonzero (callers
    // never build incarnation 0: Router::new refuses it), so emit cannot fail; an empty
    // vector would be refused by the data plane, never misread.
    match repr.emit(&mut out) {
        Ok(n) => out.truncate(n),
        Err(_) => out.clear(),
    }
    out
}

/// Decodes a control envelope of kind `LinkState`. Any malformed field is a [`DropReason`].
pub fn decode(envelope: &[u8]) -> Result<Message, DropReason> {
    let repr = ControlRepr::parse(envelope)?;
    if repr.kind != ControlKind::LinkState {
        return Err(DropReason::BadField {
            field: "control.kind",
            value: repr.kind as u64,
        });
    }
    let id = UpdateId {
        origin: repr.origin,
        incarnation: repr.origin_incarnation,
        seq: repr.update_seq,
    };
    let body = repr.body;
    let bad = |field, value: u64| DropReason::BadField { field, value };
    if body.len() < ADVERT_HEAD_LEN {
        return Err(DropReason::BadLength {
            field: "link_state.len",
            value: body.len(),
        });
    }
    if body[1] != VERSION {
        return Err(bad("link_state.version", body[1].into()));
    }
    let count = usize::from(u16::from_be_bytes([body[2], body[3]]));
    let entries = &body[ADVERT_HEAD_LEN..];
    match body[0] {
        MESSAGE_ACK => {
            if count != 0 || !entries.is_empty() {
                return Err(DropReason::BadLength {
                    field: "link_state.ack_len",
                    value: body.len(),
                });
            }
            Ok(Message::Ack(id))
        }
        MESSAGE_ADVERT => {
            if entries.len() != count * ADVERT_ENTRY_LEN {
                return Err(DropReason::BadLength {
                    field: "link_state.count",
                    value: body.len(),
                });
            }
            let mut links: Vec<AdvertLink> = Vec::with_capacity(count);
            for e in entries.chunks_exact(ADVERT_ENTRY_LEN) {
                let raw = u16::from_be_bytes([e[0], e[1]]);
                let link = LinkId::new(raw).ok_or(bad("link_state.link", raw.into()))?;
                if links.last().is_some_and(|prev| prev.link >= link) {
                    return Err(bad("link_state.link_order", raw.into()));
                }
                if e[2] & !1 != 0 || e[3] != 0 {
                    return Err(DropReason::ReservedBitsSet {
                        field: "link_state.flags",
                    });
                }
                let latency_us = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
                let loss_ppm = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
                if loss_ppm > PPM {
                    return Err(bad("link_state.loss_ppm", loss_ppm.into()));
                }
                links.push(AdvertLink {
                    link,
                    report: LinkReport {
                        up: e[2] & 1 == 1,
                        latency_us,
                        loss_ppm,
                    },
                });
            }
            Ok(Message::Advert(Advert { id, links }))
        }
        m => Err(bad("link_state.message", m.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(origin: u16, inc: u32, seq: u32) -> UpdateId {
        UpdateId {
            origin: NodeId::new(origin).unwrap(),
            incarnation: Incarnation(inc),
            seq,
        }
    }

    fn advert() -> Advert {
        Advert {
            id: id(7, 0x0102_0304, 9),
            links: vec![
                AdvertLink {
                    link: LinkId::new(3).unwrap(),
                    report: LinkReport {
                        up: true,
                        latency_us: 5_000,
                        loss_ppm: 12,
                    },
                },
                AdvertLink {
                    link: LinkId::new(40).unwrap(),
                    report: LinkReport {
                        up: false,
                        latency_us: 0,
                        loss_ppm: 0,
                    },
                },
            ],
        }
    }

    #[test]
    fn golden_bytes() {
        let bytes = advert().encode();
        let expected: Vec<u8> = [
            // envelope: origin 7, kind 1, rsv, incarnation, seq 9, body_len 28, rsv
            &[0, 7, 1, 0, 1, 2, 3, 4, 0, 0, 0, 9, 0, 28, 0, 0][..],
            // advert head: message 1, version 1, count 2
            &[1, 1, 0, 2],
            // link 3 up, 5000 us, 12 ppm
            &[0, 3, 1, 0, 0, 0, 0x13, 0x88, 0, 0, 0, 12],
            // link 40 down
            &[0, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(decode(&bytes).unwrap(), Message::Advert(advert()));
        let ack = encode_ack(id(7, 5, 6));
        assert_eq!(ack.len(), 20);
        assert_eq!(decode(&ack).unwrap(), Message::Ack(id(7, 5, 6)));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let good = advert().encode();
        let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
        let mut v = good.clone();
        v[17] = 2; // version
        cases.push((v, "version"));
        let mut v = good.clone();
        v[16] = 9; // message
        cases.push((v, "message"));
        let mut v = good.clone();
        v[19] = 3; // count says 3, two entries follow
        cases.push((v, "count"));
        let mut v = good.clone();
        v[20..22].copy_from_slice(&50u16.to_be_bytes()); // 50 then 40: out of order
        cases.push((v, "order"));
        let mut v = good.clone();
        v[22] = 0x81; // unknown flag bit
        cases.push((v, "flags"));
        let mut v = good.clone();
        v[28..32].copy_from_slice(&2_000_000u32.to_be_bytes()); // loss over 100 %
        cases.push((v, "loss"));
        let mut v = good.clone();
        v[20..22].copy_from_slice(&600u16.to_be_bytes()); // link id out of range
        cases.push((v, "link"));
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
        fn round_trip(links in proptest::collection::btree_map(0u16..512, (any::<bool>(), any::<u32>(), 0u32..=PPM), 0..MAX_ADVERT_LINKS),
                      inc in 1u32.., seq in any::<u32>(), origin in 1u16..=1023) {
            let a = Advert {
                id: id(origin, inc, seq),
                links: links.into_iter().map(|(l, (up, latency_us, loss_ppm))| AdvertLink {
                    link: LinkId::new(l).unwrap(),
                    report: LinkReport { up, latency_us, loss_ppm },
                }).collect(),
            };
            prop_assert_eq!(decode(&a.encode()).unwrap(), Message::Advert(a));
        }
    }
}
