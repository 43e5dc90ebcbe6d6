//! The receiving end of a reliable link: duplicate suppression, gaps found and requested in
//! Nack records (re-requested until filled), and cumulative + selective acks.

use std::collections::VecDeque;

use weft_shared::time::Instant;
use weft_shared::wire::{AckRepr, LinkProto, MAX_NACK_SEQS, NackRepr};

use super::params::{RelParams, RelReceiverLimits};
use super::seq_after;

/// What a data record's `link_seq` is to the receiver ([`RelReceiver::classify`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelClass {
    /// Not seen before: the caller takes it (then [`RelReceiver::accept`]) or, lacking room
    /// downstream, refuses it ([`RelReceiver::refuse`]).
    New,
    /// Received already: drop it ([`RelReceiver::duplicate`] makes an ack due, so the sender
    /// stops resending).
    Duplicate,
    /// Further ahead than the window tracks: drop it, unacked; the sender resends it later.
    BeyondWindow,
}

/// What a receiver did, for `weftctl` and the experiments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelReceiverCounters {
    /// Records accepted (each `link_seq` once).
    pub accepted: u64,
    /// Of those, retransmissions.
    pub recovered: u64,
    /// Of those, arrived below the highest sequence seen (filled a gap or were reordered).
    pub out_of_order: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Records beyond the window, dropped.
    pub beyond_window: u64,
    /// New records the caller had no room for (backpressure), left unacked.
    pub refused: u64,
    /// Sequences found missing.
    pub missing: u64,
    /// Sequences requested (entries of Nack records, re-requests included).
    pub requests: u64,
    /// Missing sequences not tracked for requests because the table was full.
    pub pending_full: u64,
    /// Missing sequences left to the sender's timeout after `max_requests` requests.
    pub gave_up: u64,
    /// Acks made.
    pub acks: u64,
}

/// A missing sequence waiting for its next request.
#[derive(Clone, Copy, Debug)]
struct Pending {
    seq: u32,
    due: Instant,
    requests: u8,
}

/// The receiving end of one reliable sequence space (link, direction, lane).
///
/// Memory is fixed at construction ([`RelReceiverLimits`]). The pending requests sit in one
/// FIFO ordered by due time: every gap waits the same allowance and every re-request the same
/// interval, so appending keeps it sorted.
#[derive(Clone, Debug)]
pub struct RelReceiver {
    params: RelParams,
    /// Every sequence up to and including this one was accepted.
    cum: u32,
    /// The highest sequence seen (accepted or refused).
    highest: u32,
    /// Bit for `cum + 1 + i`: accepted. `window` bits, as a ring indexed by sequence.
    bits: Box<[u64]>,
    mask: u32,
    pending: VecDeque<Pending>,
    pending_cap: usize,
    nack: [u32; MAX_NACK_SEQS],
    nack_len: usize,
    /// Accepted since the last ack.
    unacked: u32,
    /// When the next ack is due (`None`: nothing to ack).
    ack_due: Option<Instant>,
    counters: RelReceiverCounters,
}

impl RelReceiver {
    /// A receiver with timing `params` and memory `limits`; it expects sequence 1 first.
    pub fn new(params: RelParams, limits: RelReceiverLimits) -> Self {
        let window = limits.window.clamp(64, 1 << 30).next_power_of_two();
        RelReceiver {
            params,
            cum: 0,
            highest: 0,
            bits: vec![0; (window / 64) as usize].into_boxed_slice(),
            mask: window - 1,
            pending: VecDeque::with_capacity(limits.pending),
            pending_cap: limits.pending,
            nack: [0; MAX_NACK_SEQS],
            nack_len: 0,
            unacked: 0,
            ack_due: None,
            counters: RelReceiverCounters::default(),
        }
    }

    /// What the receiver did so far.
    pub fn counters(&self) -> RelReceiverCounters {
        self.counters
    }

    /// The cumulative ack: every sequence up to this one was accepted.
    pub fn cum_ack(&self) -> u32 {
        self.cum
    }

    /// Missing sequences waiting for a request.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// What `link_seq` is to this receiver.
    pub fn classify(&self, link_seq: u32) -> RelClass {
        let ahead = link_seq.wrapping_sub(self.cum);
        if link_seq == 0 || ahead == 0 || ahead > u32::MAX / 2 {
            RelClass::Duplicate
        } else if ahead > self.mask {
            RelClass::BeyondWindow
        } else if self.received(link_seq) {
            RelClass::Duplicate
        } else {
            RelClass::New
        }
    }

    /// Takes a record that [`classify`](Self::classify) called new and the caller passed on.
    pub fn accept(&mut self, now: Instant, link_seq: u32, retransmission: bool) {
        if self.classify(link_seq) != RelClass::New {
            return;
        }
        self.counters.accepted += 1;
        self.counters.recovered += u64::from(retransmission);
        if seq_after(self.highest, link_seq) {
            self.counters.out_of_order += 1;
        }
        self.note_highest(now, link_seq);
        self.set(link_seq, true);
        loop {
            let next = self.cum.wrapping_add(1);
            if next == 0 {
                self.cum = 0; // the sender skips 0
                continue;
            }
            if !self.received(next) {
                break;
            }
            self.set(next, false);
            self.cum = next;
        }
        self.unacked += 1;
        if self.unacked >= self.params.ack_every {
            self.ack_due = Some(now);
        } else if self.ack_due.is_none() {
            self.ack_due = Some(now + self.params.ack_delay);
        }
    }

    /// A new record the caller had no room for: it is not acked, not requested, and the sender
    /// resends it on its timeout. The sequences it jumped over are requested as usual.
    pub fn refuse(&mut self, now: Instant, link_seq: u32) {
        if self.classify(link_seq) != RelClass::New {
            return;
        }
        self.counters.refused += 1;
        self.note_highest(now, link_seq);
        // A pending request for it is dropped when it falls due and the sequence is seen as
        // refused: mark nothing; the request costs one Nack entry at worst.
    }

    /// A record that [`classify`](Self::classify) called a duplicate (or beyond the window):
    /// counts it and makes an ack due at once, since the sender resending it means it has not
    /// seen our ack.
    pub fn duplicate(&mut self, now: Instant, class: RelClass) {
        match class {
            RelClass::BeyondWindow => self.counters.beyond_window += 1,
            _ => self.counters.duplicates += 1,
        }
        self.ack_due = Some(now);
    }

    /// Moves due requests into the Nack being built. Call when
    /// [`poll_timeout`](Self::poll_timeout) passes, then drain [`poll_nack`](Self::poll_nack).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(p) = self.pending.front().copied() {
            if p.due > now || self.nack_len == MAX_NACK_SEQS {
                break;
            }
            self.pending.pop_front();
            if self.classify(p.seq) != RelClass::New {
                continue; // filled meanwhile
            }
            self.nack[self.nack_len] = p.seq;
            self.nack_len += 1;
            self.counters.requests += 1;
            if p.requests + 1 >= self.params.max_requests {
                self.counters.gave_up += 1;
            } else {
                self.pending.push_back(Pending {
                    seq: p.seq,
                    due: now + self.params.renack,
                    requests: p.requests + 1,
                });
            }
        }
    }

    /// The next Nack record to send back (up to [`MAX_NACK_SEQS`] sequences), if any. Loop:
    /// a full Nack leaves the rest of the due requests for the next call.
    pub fn poll_nack(&mut self, now: Instant) -> Option<NackRepr> {
        if self.nack_len == 0 {
            self.handle_timeout(now);
        }
        if self.nack_len == 0 {
            return None;
        }
        let nack = NackRepr::new(LinkProto::Reliable, &self.nack[..self.nack_len]);
        self.nack_len = 0;
        self.handle_timeout(now);
        nack
    }

    /// The ack to send back now, if one is due.
    pub fn poll_ack(&mut self, now: Instant) -> Option<AckRepr> {
        match self.ack_due {
            Some(due) if due <= now => {}
            _ => return None,
        }
        self.ack_due = None;
        self.unacked = 0;
        self.counters.acks += 1;
        let mut sack = 0u64;
        for i in 0..64u32 {
            if self.received(self.cum.wrapping_add(1 + i)) {
                sack |= 1 << i;
            }
        }
        Some(AckRepr {
            link_proto: LinkProto::Reliable,
            data_lane: 0,
            cum_ack: self.cum,
            sack,
        })
    }

    /// When the next ack or request falls due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let request = self.pending.front().map(|p| p.due);
        match (request, self.ack_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The same receiver expecting `first` next (tests of sequence wrap-around; the sender
    /// must start at the same sequence).
    #[doc(hidden)]
    pub fn starting_at(mut self, first: u32) -> Self {
        self.cum = first.wrapping_sub(1);
        self.highest = self.cum;
        self
    }

    /// Starts over, expecting sequence 1 (the peer's data plane restarted).
    pub fn reset(&mut self) {
        self.cum = 0;
        self.highest = 0;
        self.bits.fill(0);
        self.pending.clear();
        self.nack_len = 0;
        self.unacked = 0;
        self.ack_due = None;
    }

    /// Records `link_seq` as seen; the sequences it jumped over become missing.
    fn note_highest(&mut self, now: Instant, link_seq: u32) {
        if seq_after(link_seq, self.highest) {
            let from = if seq_after(self.cum, self.highest) {
                self.cum
            } else {
                self.highest
            };
            let mut seq = from.wrapping_add(1);
            while seq != link_seq {
                if seq != 0 {
                    self.counters.missing += 1;
                    if self.pending.len() < self.pending_cap {
                        self.pending.push_back(Pending {
                            seq,
                            due: now + self.params.reorder_allowance,
                            requests: 0,
                        });
                    } else {
                        self.counters.pending_full += 1;
                    }
                }
                seq = seq.wrapping_add(1);
            }
            self.highest = link_seq;
        }
    }

    fn received(&self, seq: u32) -> bool {
        let ahead = seq.wrapping_sub(self.cum);
        if ahead == 0 || ahead > self.mask {
            return false;
        }
        let i = seq & self.mask;
        self.bits[(i / 64) as usize] >> (i % 64) & 1 == 1
    }

    fn set(&mut self, seq: u32, on: bool) {
        let i = seq & self.mask;
        let word = &mut self.bits[(i / 64) as usize];
        if on {
            *word |= 1 << (i % 64);
        } else {
            *word &= !(1 << (i % 64));
        }
    }
}
