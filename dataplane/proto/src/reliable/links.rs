//! One lane's reliable-link state over a node's links, as the forwarding pipeline and a
//! worker's loop use it: a [`RelSender`] per link for the lane's own outgoing records, and a
//! [`RelReceiver`] per (link, peer lane) for what the peer's workers send.
//!
//! Like the real-time [`RtLinks`](crate::realtime::RtLinks), it is owned by one worker: the
//! worker stamps its lane on everything it sends, and the kernel steering gives it all the data
//! of a given peer lane. Feedback (Acks and Nacks) names the lane of the data it answers
//! (`data_lane`), so feedback that reaches another worker is handed to the owner by the caller.
//!
//! Memory is allocated once in [`RelLinks::new`]: per link one sender ([`RelSenderLimits`]) and
//! [`RelLinksLimits::peer_lanes`] receivers ([`RelReceiverLimits`]). Data from a peer lane beyond
//! that is dropped and counted. When the peer's data-plane incarnation changes (seen on its data
//! or its feedback), the link's sequence spaces start over: the receiver expects 1 again, and
//! the sender gives up what it held (the end-to-end layer at the source resends it).

use core::time::Duration;

use weft_shared::DropReason;
use weft_shared::ids::{Incarnation, LinkId};

use crate::link_slots::LinkSlots;
use weft_shared::time::Instant;
use weft_shared::wire::{AckRepr, DataPacket, NackRepr, RecordFlags};

use super::{
    RelClass, RelParams, RelReceiver, RelReceiverLimits, RelSendError, RelSender, RelSenderLimits,
};

/// Memory of one lane's [`RelLinks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelLinksLimits {
    /// Each link's sender.
    pub sender: RelSenderLimits,
    /// Each (link, peer lane) receiver.
    pub receiver: RelReceiverLimits,
    /// Peer lanes tracked per link.
    pub peer_lanes: u8,
}

impl Default for RelLinksLimits {
    /// The sender and receiver defaults, 8 peer lanes: about 6 MB per link.
    fn default() -> Self {
        RelLinksLimits {
            sender: RelSenderLimits::default(),
            receiver: RelReceiverLimits::default(),
            peer_lanes: 8,
        }
    }
}

/// Link feedback to send back, from [`RelLinks::poll_feedback`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelFeedback {
    /// An ack for the data of a peer lane.
    Ack(AckRepr),
    /// A request for missing records of a peer lane.
    Nack(NackRepr),
}

/// Totals over a lane's senders and receivers, for counters and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelTotals {
    /// Records transmitted for the first time.
    pub sent: u64,
    /// Retransmissions.
    pub retransmitted: u64,
    /// Records accepted from peers.
    pub accepted: u64,
    /// Of those, brought by a retransmission.
    pub recovered: u64,
    /// Of those, arrived out of order on the link.
    pub out_of_order: u64,
    /// Duplicates suppressed.
    pub duplicates: u64,
    /// Records refused for want of room downstream (backpressure).
    pub refused: u64,
    /// Records held by the senders now (buffer use).
    pub held: u64,
    /// Records given up when a peer restarted.
    pub abandoned: u64,
}

struct RelLink {
    id: LinkId,
    sender: RelSender,
    /// The peer incarnation the sender's sequence space belongs to.
    sender_peer: Option<Incarnation>,
    /// Per peer lane: the receiver and the peer incarnation it follows.
    receivers: Box<[(Option<Incarnation>, RelReceiver)]>,
}

impl RelLink {
    /// The peer is `peer`: a new incarnation starts the sender over.
    fn note_peer(&mut self, peer: Incarnation) {
        if self.sender_peer != Some(peer) {
            if self.sender_peer.is_some() {
                self.sender.reset();
            }
            self.sender_peer = Some(peer);
        }
    }
}

/// One lane's reliable link state (module doc).
pub struct RelLinks {
    links: LinkSlots<RelLink>,
    /// A retransmission is patched (age) here before it is handed out.
    scratch: Box<[u8]>,
}

impl RelLinks {
    /// State for the links `links` (id and current round trip), with `limits`.
    pub fn new(
        links: impl IntoIterator<Item = (LinkId, Duration)>,
        limits: RelLinksLimits,
    ) -> Self {
        let links = LinkSlots::new(links, |id, rtt| {
            let params = RelParams::for_link(rtt);
            RelLink {
                id,
                sender: RelSender::new(params, limits.sender),
                sender_peer: None,
                receivers: (0..limits.peer_lanes.max(1))
                    .map(|_| (None, RelReceiver::new(params, limits.receiver)))
                    .collect(),
            }
        });
        RelLinks {
            links,
            scratch: vec![0; limits.sender.record_len].into_boxed_slice(),
        }
    }

    fn link_mut(&mut self, id: LinkId) -> Result<&mut RelLink, DropReason> {
        self.links.get_mut(id)
    }

    fn receiver(
        &mut self,
        link: LinkId,
        lane: u8,
        peer: Incarnation,
    ) -> Result<&mut RelReceiver, DropReason> {
        let l = self.link_mut(link)?;
        l.note_peer(peer);
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
        Ok(rx)
    }

    /// What reliable record `link_seq` from peer lane `lane` (incarnation `peer`) on `link` is.
    /// For [`RelClass::New`] the caller passes the record on and calls
    /// [`accept`](Self::accept), or [`refuse`](Self::refuse) without room; otherwise it drops
    /// it and calls [`duplicate`](Self::duplicate).
    pub fn classify(
        &mut self,
        link: LinkId,
        lane: u8,
        peer: Incarnation,
        link_seq: u32,
    ) -> Result<RelClass, DropReason> {
        Ok(self.receiver(link, lane, peer)?.classify(link_seq))
    }

    /// The record was passed on.
    pub fn accept(
        &mut self,
        now: Instant,
        link: LinkId,
        lane: u8,
        peer: Incarnation,
        link_seq: u32,
        retransmission: bool,
    ) -> Result<(), DropReason> {
        self.receiver(link, lane, peer)?
            .accept(now, link_seq, retransmission);
        Ok(())
    }

    /// The record found no room downstream: not acked, its sender resends it.
    pub fn refuse(
        &mut self,
        now: Instant,
        link: LinkId,
        lane: u8,
        peer: Incarnation,
        link_seq: u32,
    ) -> Result<(), DropReason> {
        self.receiver(link, lane, peer)?.refuse(now, link_seq);
        Ok(())
    }

    /// A duplicate (or a record beyond the window) was dropped: an ack goes back at once.
    pub fn duplicate(
        &mut self,
        now: Instant,
        link: LinkId,
        lane: u8,
        peer: Incarnation,
        class: RelClass,
    ) -> Result<(), DropReason> {
        self.receiver(link, lane, peer)?.duplicate(now, class);
        Ok(())
    }

    /// Whether `link`'s sender can take a record now.
    pub fn has_room(&mut self, link: LinkId) -> bool {
        self.link_mut(link).is_ok_and(|l| l.sender.has_room())
    }

    /// Whether a record taken now on `link` would leave at once (a source takes its client's
    /// messages only then).
    pub fn can_transmit(&mut self, now: Instant, link: LinkId) -> bool {
        self.link_mut(link)
            .is_ok_and(|l| l.sender.can_transmit(now))
    }

    /// Takes a record to send on `link` (round trip `rtt` as the link monitor measures it); it
    /// leaves through [`poll_transmit`](Self::poll_transmit). A full window is
    /// [`DropReason::QueueFull`]: the caller refuses the record upstream (it is not lost).
    pub fn send(
        &mut self,
        now: Instant,
        link: LinkId,
        rtt: Duration,
        record: &[u8],
    ) -> Result<u32, DropReason> {
        let l = self.link_mut(link)?;
        if !rtt.is_zero() {
            l.sender.set_rtt(rtt);
        }
        l.sender.handle_send(now, record).map_err(DropReason::from)
    }

    /// Like [`send`](Self::send), but `write` encodes the record straight into the sender's
    /// copy (see [`RelSender::handle_send_with`]); its error is returned as it is.
    pub fn send_with(
        &mut self,
        now: Instant,
        link: LinkId,
        rtt: Duration,
        write: impl FnOnce(&mut [u8]) -> Result<usize, DropReason>,
    ) -> Result<u32, DropReason> {
        let l = self.link_mut(link)?;
        if !rtt.is_zero() {
            l.sender.set_rtt(rtt);
        }
        l.sender.handle_send_with(now, write)
    }

    /// An Ack from peer incarnation `peer` on `link`, for this lane's data.
    pub fn handle_ack(
        &mut self,
        now: Instant,
        link: LinkId,
        peer: Incarnation,
        ack: &AckRepr,
    ) -> Result<(), DropReason> {
        let l = self.link_mut(link)?;
        l.note_peer(peer);
        l.sender.handle_ack(now, ack);
        Ok(())
    }

    /// A Nack from peer incarnation `peer` on `link`, for this lane's data.
    pub fn handle_nack(
        &mut self,
        now: Instant,
        link: LinkId,
        peer: Incarnation,
        nack: &NackRepr,
    ) -> Result<(), DropReason> {
        let l = self.link_mut(link)?;
        l.note_peer(peer);
        l.sender.handle_nack(now, nack.seqs());
        Ok(())
    }

    /// Runs the senders' timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        for l in self.links.iter_mut() {
            l.sender.handle_timeout(now);
        }
    }

    /// The next Ack or Nack to send back, with the link it goes on; its `data_lane` is the peer
    /// lane whose data it answers.
    pub fn poll_feedback(&mut self, now: Instant) -> Option<(LinkId, RelFeedback)> {
        for l in self.links.iter_mut() {
            for (lane, (seen, rx)) in l.receivers.iter_mut().enumerate() {
                if seen.is_none() {
                    continue;
                }
                if let Some(n) = rx.poll_nack(now) {
                    return Some((l.id, RelFeedback::Nack(n.with_data_lane(lane as u8))));
                }
                if let Some(mut a) = rx.poll_ack(now) {
                    a.data_lane = lane as u8;
                    return Some((l.id, RelFeedback::Ack(a)));
                }
            }
        }
        None
    }

    /// Hands every transmission due at `now` to `emit(link, link_seq, flags, record)`: first
    /// transmissions as taken, retransmissions with the `RETRANSMIT` flag and their age
    /// increased by the time they waited.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        mut emit: impl FnMut(LinkId, u32, RecordFlags, &[u8]),
    ) {
        let scratch = &mut self.scratch;
        for l in self.links.iter_mut() {
            while let Some(t) = l.sender.poll_transmit(now) {
                let seq = t.link_seq;
                if !t.retransmission {
                    emit(l.id, seq, RecordFlags::NONE, t.record);
                    continue;
                }
                // A retransmission carries its age plus the time it waited: patched in a copy,
                // so the kept record stays as first sent.
                let n = t.record.len().min(scratch.len());
                scratch[..n].copy_from_slice(&t.record[..n]);
                let waited = now.saturating_duration_since(t.first_sent);
                if let Ok(mut data) = DataPacket::new_checked(&mut scratch[..n]) {
                    let us = u32::try_from(waited.as_micros()).unwrap_or(u32::MAX);
                    data.header_mut().add_age_us(us);
                }
                emit(l.id, seq, RecordFlags::RETRANSMIT, &scratch[..n]);
            }
        }
    }

    /// When a sender's timeout or pacing, or a receiver's ack or request, is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for l in self.links.iter() {
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
    pub fn totals(&self) -> RelTotals {
        let mut t = RelTotals::default();
        for (_, l) in self.per_link() {
            t.add(&l);
        }
        t
    }

    /// Each link's totals (its sender and its receivers of every peer lane).
    pub fn per_link(&self) -> impl Iterator<Item = (LinkId, RelTotals)> + '_ {
        self.links.iter().map(|l| {
            let s = l.sender.counters();
            let mut t = RelTotals {
                sent: s.sent,
                retransmitted: s.retransmitted,
                abandoned: s.abandoned,
                held: u64::from(l.sender.in_flight()),
                ..RelTotals::default()
            };
            for (_, rx) in l.receivers.iter() {
                let r = rx.counters();
                t.accepted += r.accepted;
                t.recovered += r.recovered;
                t.out_of_order += r.out_of_order;
                t.duplicates += r.duplicates + r.beyond_window;
                t.refused += r.refused;
            }
            (l.id, t)
        })
    }
}

impl RelTotals {
    /// Adds `other`.
    pub fn add(&mut self, other: &RelTotals) {
        self.sent += other.sent;
        self.retransmitted += other.retransmitted;
        self.accepted += other.accepted;
        self.recovered += other.recovered;
        self.out_of_order += other.out_of_order;
        self.duplicates += other.duplicates;
        self.refused += other.refused;
        self.held += other.held;
        self.abandoned += other.abandoned;
    }
}

/// The drop a refused [`RelSender::handle_send`] counts as.
impl From<RelSendError> for DropReason {
    fn from(e: RelSendError) -> Self {
        match e {
            RelSendError::WindowFull => DropReason::QueueFull,
            RelSendError::TooLarge { len } => DropReason::BadLength {
                field: "reliable.record",
                value: len,
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn transmit_all(
        links: &mut RelLinks,
        now: Instant,
    ) -> Vec<(LinkId, u32, RecordFlags, Vec<u8>)> {
        let mut out = Vec::new();
        links.poll_transmit(now, |l, s, f, r| out.push((l, s, f, r.to_vec())));
        out
    }

    #[test]
    fn a_lost_record_is_requested_resent_and_acked() {
        let rtt = Duration::from_millis(20);
        let link = LinkId::new(2).unwrap();
        let mut a = RelLinks::new([(link, rtt)], RelLinksLimits::default());
        let mut b = RelLinks::new([(link, rtt)], RelLinksLimits::default());
        let (pa, pb) = (Incarnation(5), Incarnation(6));
        for i in 0..3u8 {
            a.send(at(0), link, rtt, &[i; 8]).unwrap();
        }
        let sent = transmit_all(&mut a, at(0));
        assert_eq!(sent.len(), 3);
        // The second is lost.
        for (_, seq, flags, _) in [&sent[0], &sent[2]] {
            assert_eq!(b.classify(link, 0, pa, *seq).unwrap(), RelClass::New);
            b.accept(at(10), link, 0, pa, *seq, *flags == RecordFlags::RETRANSMIT)
                .unwrap();
        }
        let mut nacked = false;
        let mut now = at(10);
        while let Some(t) = b.poll_timeout() {
            now = t.max(now);
            while let Some((back, fb)) = b.poll_feedback(now) {
                assert_eq!(back, link);
                match fb {
                    RelFeedback::Nack(n) => {
                        assert_eq!(n.seqs(), &[sent[1].1]);
                        a.handle_nack(now, link, pb, &n).unwrap();
                        nacked = true;
                    }
                    RelFeedback::Ack(ack) => a.handle_ack(now, link, pb, &ack).unwrap(),
                }
            }
            if nacked {
                break;
            }
        }
        let again = transmit_all(&mut a, now);
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].1, again[0].2),
            (sent[1].1, RecordFlags::RETRANSMIT)
        );
        b.accept(now, link, 0, pa, again[0].1, true).unwrap();
        let t = b.totals();
        assert_eq!((t.accepted, t.recovered), (3, 1));
        assert_eq!(a.totals().retransmitted, 1);
    }

    #[test]
    fn a_restarted_peer_starts_both_sequence_spaces_over() {
        let rtt = Duration::from_millis(20);
        let link = LinkId::new(1).unwrap();
        let mut a = RelLinks::new([(link, rtt)], RelLinksLimits::default());
        for _ in 0..10 {
            a.send(at(0), link, rtt, &[0; 4]).unwrap();
        }
        let _ = transmit_all(&mut a, at(0));
        assert_eq!(
            a.classify(link, 0, Incarnation(1), 1).unwrap(),
            RelClass::New
        );
        a.accept(at(1), link, 0, Incarnation(1), 1, false).unwrap();
        assert_eq!(
            a.classify(link, 0, Incarnation(1), 1).unwrap(),
            RelClass::Duplicate
        );
        // The peer comes back as a new incarnation.
        assert_eq!(
            a.classify(link, 0, Incarnation(2), 1).unwrap(),
            RelClass::New
        );
        let t = a.totals();
        assert_eq!((t.abandoned, t.held), (10, 0));
        assert_eq!(a.send(at(2), link, rtt, &[0; 4]), Ok(1));
    }

    #[test]
    fn unknown_links_lanes_and_full_windows_are_counted_drops() {
        let rtt = Duration::from_millis(20);
        let link = LinkId::new(3).unwrap();
        let limits = RelLinksLimits {
            sender: RelSenderLimits {
                window: 2,
                record_len: 16,
            },
            peer_lanes: 2,
            ..RelLinksLimits::default()
        };
        let mut a = RelLinks::new([(link, rtt)], limits);
        let other = LinkId::new(4).unwrap();
        assert_eq!(
            a.classify(other, 0, Incarnation(1), 1),
            Err(DropReason::UnknownLink(4))
        );
        assert!(matches!(
            a.classify(link, 2, Incarnation(1), 1),
            Err(DropReason::BadField {
                field: "link.lane",
                ..
            })
        ));
        a.send(at(0), link, rtt, &[0; 4]).unwrap();
        a.send(at(0), link, rtt, &[0; 4]).unwrap();
        assert!(!a.has_room(link));
        assert_eq!(
            a.send(at(0), link, rtt, &[0; 4]),
            Err(DropReason::QueueFull)
        );
        assert!(matches!(
            a.send(at(0), link, rtt, &[0; 17]),
            Err(DropReason::BadLength { .. })
        ));
    }
}
