//! One lane's NM-Strikes state over a node's links, as the forwarding pipeline and a worker's
//! loop use it: an [`RtSender`] per link for the lane's own outgoing records, and an
//! [`RtReceiver`] per (link, peer lane) for what the peer's workers send.
//!
//! A worker owns one lane (its index), stamps it on everything it sends and, thanks to the
//! kernel steering, receives all the data of a given peer lane. So [`RtLinks`] is owned by one
//! worker and never shared. Feedback names the lane of the data it answers (`data_lane`), so
//! a Nack that reaches the wrong worker is handed to the owner by the caller.
//!
//! Memory is allocated once in [`RtLinks::new`]: per link one sender (`SenderLimits`) and
//! [`RtLinksLimits::peer_lanes`] receivers (`ReceiverLimits`). Data from a peer lane beyond that
//! is dropped and counted. A receiver restarts (`RtReceiver::reset`) when the peer's data-plane
//! incarnation changes, since its sequences start over.

use core::time::Duration;

use weft_shared::DropReason;
use weft_shared::ids::{Incarnation, LinkId};

use crate::link_slots::LinkSlots;
use weft_shared::time::Instant;
use weft_shared::wire::{DataPacket, NackRepr};

use super::{
    ReceiverLimits, RtMeta, RtParams, RtReceiver, RtSendError, RtSender, RxOutcome, SenderLimits,
};

/// Memory of one lane's [`RtLinks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtLinksLimits {
    /// Each link's sender.
    pub sender: SenderLimits,
    /// Each (link, peer lane) receiver.
    pub receiver: ReceiverLimits,
    /// Peer lanes tracked per link: data stamped with a higher lane is dropped (a peer with
    /// more workers than this).
    pub peer_lanes: u8,
}

impl Default for RtLinksLimits {
    /// The sender and receiver defaults, 8 peer lanes: about 1.6 MB per link.
    fn default() -> Self {
        RtLinksLimits {
            sender: SenderLimits::default(),
            receiver: ReceiverLimits::default(),
            peer_lanes: 8,
        }
    }
}

/// Totals over a lane's senders and receivers, for counters and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtTotals {
    /// Original records sent.
    pub sent: u64,
    /// Retransmitted copies sent.
    pub retransmitted: u64,
    /// Sequences requested (entries of Nacks sent).
    pub requested: u64,
    /// Gaps filled by a retransmission.
    pub recovered: u64,
    /// Duplicates and too-old records suppressed.
    pub suppressed: u64,
    /// Records refused because they could no longer arrive in time.
    pub expired: u64,
}

struct RtLink {
    id: LinkId,
    sender: RtSender,
    /// Per peer lane: the receiver and the peer incarnation it follows (`None` until used).
    receivers: Box<[(Option<Incarnation>, RtReceiver)]>,
}

/// One lane's real-time link state (module doc).
pub struct RtLinks {
    links: LinkSlots<RtLink>,
    /// A retransmitted copy is patched (age) here before it is handed out.
    scratch: Box<[u8]>,
}

impl RtLinks {
    /// State for the links `links` (id and current one-way delay), with `limits`.
    pub fn new(links: impl IntoIterator<Item = (LinkId, Duration)>, limits: RtLinksLimits) -> Self {
        let links = LinkSlots::new(links, |id, one_way| {
            let params = RtParams::for_link(one_way);
            RtLink {
                id,
                sender: RtSender::new(params, limits.sender),
                receivers: (0..limits.peer_lanes.max(1))
                    .map(|_| (None, RtReceiver::new(params, limits.receiver)))
                    .collect(),
            }
        });
        RtLinks {
            links,
            scratch: vec![0; limits.sender.record_len].into_boxed_slice(),
        }
    }

    fn link_mut(&mut self, id: LinkId) -> Result<&mut RtLink, DropReason> {
        self.links.get_mut(id)
    }

    /// A real-time data record from peer lane `lane` (incarnation `peer`) on `link` arrived at
    /// `now`. `Ok` says pass it on; duplicates and records too old to track are dropped.
    #[allow(
        clippy::too_many_arguments,
        reason = "the record's link-level identity, passed through"
    )]
    pub fn receive(
        &mut self,
        now: Instant,
        link: LinkId,
        lane: u8,
        peer: Incarnation,
        one_way: Duration,
        link_seq: u32,
        meta: RtMeta,
        retransmission: bool,
    ) -> Result<(), DropReason> {
        let l = self.link_mut(link)?;
        let (seen, rx) = l
            .receivers
            .get_mut(usize::from(lane))
            .ok_or(DropReason::BadField {
                field: "link.lane",
                value: lane.into(),
            })?;
        if *seen != Some(peer) {
            if seen.is_some() {
                rx.reset();
            }
            *seen = Some(peer);
        }
        if rx.params().one_way != one_way {
            rx.set_one_way(one_way);
        }
        match rx.handle_packet(now, link_seq, meta, retransmission) {
            RxOutcome::Duplicate | RxOutcome::TooOld => Err(DropReason::Duplicate),
            _ => Ok(()),
        }
    }

    /// A real-time record about to go out on `link` for the first time: keeps a copy and
    /// returns the `link_seq` to stamp. A record that can no longer arrive in time is dropped.
    pub fn send(
        &mut self,
        now: Instant,
        link: LinkId,
        one_way: Duration,
        meta: RtMeta,
        record: &[u8],
    ) -> Result<u32, DropReason> {
        let l = self.link_mut(link)?;
        if l.sender.params().one_way != one_way {
            l.sender.set_one_way(one_way);
        }
        l.sender
            .handle_send(now, meta, record)
            .map_err(|e| match e {
                RtSendError::Expired => DropReason::Late,
                RtSendError::TooLarge { len } => DropReason::BadLength {
                    field: "realtime.record",
                    value: len,
                },
            })
    }

    /// A real-time Nack for this lane's data on `link`.
    pub fn handle_nack(
        &mut self,
        now: Instant,
        link: LinkId,
        nack: &NackRepr,
    ) -> Result<(), DropReason> {
        self.link_mut(link)?.sender.handle_nack(now, nack.seqs());
        Ok(())
    }

    /// Moves the receivers' due requests into their Nack queues.
    pub fn handle_timeout(&mut self, now: Instant) {
        for l in self.links.iter_mut() {
            for (seen, rx) in l.receivers.iter_mut() {
                if seen.is_some() {
                    rx.handle_timeout(now);
                }
            }
        }
    }

    /// The next Nack to send, with the link it goes back on; its `data_lane` is the peer lane
    /// whose data it asks for.
    pub fn poll_nack(&mut self) -> Option<(LinkId, NackRepr)> {
        for l in self.links.iter_mut() {
            for (lane, (seen, rx)) in l.receivers.iter_mut().enumerate() {
                if seen.is_some() {
                    if let Some(n) = rx.poll_nack() {
                        return Some((l.id, n.with_data_lane(lane as u8)));
                    }
                }
            }
        }
        None
    }

    /// Hands every retransmitted copy due at `now` to `emit(link, link_seq, record)`, its age
    /// already increased by the time it waited; the caller sends it with the `RETRANSMIT` flag.
    pub fn poll_transmit(&mut self, now: Instant, mut emit: impl FnMut(LinkId, u32, &[u8])) {
        let scratch = &mut self.scratch;
        for l in self.links.iter_mut() {
            while let Some(c) = l.sender.poll_transmit(now) {
                let n = c.record.len().min(scratch.len());
                scratch[..n].copy_from_slice(&c.record[..n]);
                let waited = now.saturating_duration_since(c.first_sent);
                let seq = c.link_seq;
                if let Ok(mut data) = DataPacket::new_checked(&mut scratch[..n]) {
                    let us = u32::try_from(waited.as_micros()).unwrap_or(u32::MAX);
                    data.header_mut().add_age_us(us);
                }
                emit(l.id, seq, &scratch[..n]);
            }
        }
    }

    /// When a sender's copy or a receiver's request is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for l in self.links.iter() {
            let mut consider = |t: Option<Instant>| {
                if let Some(t) = t {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            };
            consider(l.sender.poll_timeout());
            for (seen, rx) in l.receivers.iter() {
                if seen.is_some() {
                    consider(rx.poll_timeout());
                }
            }
        }
        next
    }

    /// Totals over every sender and receiver of the lane.
    pub fn totals(&self) -> RtTotals {
        let mut t = RtTotals::default();
        for l in self.links.iter() {
            let s = l.sender.counters();
            t.sent += s.sent;
            t.retransmitted += s.retransmitted;
            t.expired += s.expired;
            for (_, rx) in l.receivers.iter() {
                let r = rx.counters();
                t.requested += r.requests;
                t.recovered += r.recovered;
                t.suppressed += r.duplicates + r.too_old;
            }
        }
        t
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use weft_shared::wire::{LinkProto, Strikes};

    fn meta(now: Instant) -> RtMeta {
        RtMeta {
            strikes: Strikes::new(2, 2).unwrap(),
            deadline: now + Duration::from_millis(200),
        }
    }

    #[test]
    fn a_gap_is_requested_answered_and_filled() {
        let one_way = Duration::from_millis(10);
        let link = LinkId::new(3).unwrap();
        let mut a = RtLinks::new([(link, one_way)], RtLinksLimits::default());
        let mut b = RtLinks::new([(link, one_way)], RtLinksLimits::default());
        let peer = Incarnation(7);
        let t0 = Instant::from_nanos(1_000_000_000);
        let s1 = a.send(t0, link, one_way, meta(t0), &[1; 8]).unwrap();
        let s2 = a.send(t0, link, one_way, meta(t0), &[2; 8]).unwrap();
        let s3 = a.send(t0, link, one_way, meta(t0), &[3; 8]).unwrap();
        // s2 is lost on the way.
        let t1 = t0 + one_way;
        b.receive(t1, link, 1, peer, one_way, s1, meta(t0), false)
            .unwrap();
        b.receive(t1, link, 1, peer, one_way, s3, meta(t0), false)
            .unwrap();
        assert_eq!(
            b.receive(t1, link, 1, peer, one_way, s3, meta(t0), false),
            Err(DropReason::Duplicate)
        );
        let due = b.poll_timeout().unwrap();
        b.handle_timeout(due);
        let (back, nack) = b.poll_nack().unwrap();
        assert_eq!((back, nack.data_lane(), nack.seqs()), (link, 1, &[s2][..]));
        assert_eq!(nack.link_proto(), LinkProto::Realtime);
        a.handle_nack(due, link, &nack).unwrap();
        let mut copies = Vec::new();
        a.poll_transmit(due, |l, seq, rec| copies.push((l, seq, rec.to_vec())));
        assert_eq!(copies, vec![(link, s2, vec![2; 8])]);
        b.receive(due, link, 1, peer, one_way, s2, meta(t0), true)
            .unwrap();
        assert_eq!(b.totals().recovered, 1);
        assert_eq!(a.totals().retransmitted, 1);
    }

    #[test]
    fn unknown_links_and_lanes_are_counted_drops() {
        let one_way = Duration::from_millis(10);
        let link = LinkId::new(3).unwrap();
        let other = LinkId::new(4).unwrap();
        let limits = RtLinksLimits {
            peer_lanes: 2,
            ..RtLinksLimits::default()
        };
        let mut b = RtLinks::new([(link, one_way)], limits);
        let peer = Incarnation(7);
        let t = Instant::from_nanos(1);
        assert_eq!(
            b.receive(t, other, 0, peer, one_way, 1, meta(t), false),
            Err(DropReason::UnknownLink(4))
        );
        assert!(matches!(
            b.receive(t, link, 2, peer, one_way, 1, meta(t), false),
            Err(DropReason::BadField {
                field: "link.lane",
                ..
            })
        ));
    }

    #[test]
    fn a_new_peer_incarnation_starts_the_sequence_space_over() {
        let one_way = Duration::from_millis(10);
        let link = LinkId::new(1).unwrap();
        let mut b = RtLinks::new([(link, one_way)], RtLinksLimits::default());
        let t = Instant::from_nanos(1);
        let old = Incarnation(1);
        let new = Incarnation(2);
        for seq in 1..=100 {
            b.receive(t, link, 0, old, one_way, seq, meta(t), false)
                .unwrap();
        }
        // Without the reset, sequence 1 would be a duplicate.
        b.receive(t, link, 0, new, one_way, 1, meta(t), false)
            .unwrap();
    }
}
