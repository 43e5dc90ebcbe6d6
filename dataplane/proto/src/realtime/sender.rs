//! The sending end of an NM-Strikes link: sequence numbers, the retransmission history, and M
//! spaced retransmissions answering the first request for a sequence.

use core::time::Duration;

use weft_shared::time::Instant;

use super::params::{RtParams, SenderLimits};
use super::{RtMeta, seq_after};

/// Why [`RtSender::handle_send`] refused a record (the caller drops it and counts the reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtSendError {
    /// The record is longer than [`SenderLimits::record_len`].
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// It cannot reach the far end of the link before its deadline: sending it wastes the link.
    Expired,
}

/// What a sender did, for `weftctl` and the experiments. Every refusal and drop has its count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderCounters {
    /// Records numbered and sent for the first time.
    pub sent: u64,
    /// Retransmitted copies handed out by [`RtSender::poll_transmit`].
    pub retransmitted: u64,
    /// Records refused as too large.
    pub too_large: u64,
    /// Records refused because they could no longer arrive in time.
    pub expired: u64,
    /// Records overwritten in the history while they could still have been useful (the history
    /// is too small for the rate and deadlines).
    pub evicted_live: u64,
    /// Sequences requested by the peer.
    pub requested: u64,
    /// Requests answered with a retransmission schedule (the first request for a sequence).
    pub answered: u64,
    /// Later requests for a sequence already answered, ignored.
    pub repeated: u64,
    /// Requests for sequences not in the history (never sent, or overwritten).
    pub unknown: u64,
    /// Requests that came too late for even one copy to arrive in time.
    pub too_late: u64,
    /// Requests for a flow with M = 0.
    pub no_strikes: u64,
    /// Requests dropped because the schedule table was full.
    pub schedule_full: u64,
    /// Scheduled copies not sent because the deadline came too close.
    pub cut_by_deadline: u64,
    /// Scheduled copies not sent because the record left the history first.
    pub cut_by_eviction: u64,
}

/// One retransmitted copy, from [`RtSender::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retransmission<'a> {
    /// The sequence to stamp (the original's); send with the `RETRANSMIT` record flag.
    pub link_seq: u32,
    /// The record body as first sent. The caller adds the time it waited here
    /// (`now − first_sent`) to the overlay header's age before sending.
    pub record: &'a [u8],
    /// When the original left.
    pub first_sent: Instant,
    /// Which copy this is, 1..=M.
    pub copy: u8,
}

/// A record in the history.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    seq: u32,
    used: bool,
    /// A request for it has been answered: later ones are ignored.
    answered: bool,
    m: u8,
    len: usize,
    sent_at: Instant,
    deadline: Instant,
}

/// Copies still to send for one answered request.
#[derive(Clone, Copy, Debug)]
struct Scheduled {
    seq: u32,
    next_at: Instant,
    left: u8,
    m: u8,
    spacing: Duration,
    /// When it was scheduled, in answer order: ties in `next_at` go to the older request.
    order: u64,
}

/// The sending end of one real-time sequence space (link, direction, lane).
///
/// Memory is fixed at construction ([`SenderLimits`]): a ring of `history` records of up to
/// `record_len` bytes and a table of `schedule` answered requests. Nothing allocates afterwards.
/// The call order is in the [module docs](super).
#[derive(Clone, Debug)]
pub struct RtSender {
    params: RtParams,
    next_seq: u32,
    mask: u32,
    record_len: usize,
    slots: Box<[Slot]>,
    bytes: Box<[u8]>,
    schedule: Vec<Scheduled>,
    schedule_cap: usize,
    /// Requests answered so far (the next [`Scheduled::order`]).
    answers: u64,
    counters: SenderCounters,
}

impl RtSender {
    /// A sender with timing `params` and memory `limits`; the first sequence is 1.
    pub fn new(params: RtParams, limits: SenderLimits) -> Self {
        let history = limits.history.clamp(1, 1 << 30).next_power_of_two();
        let n = history as usize;
        let cap = limits.schedule.max(1);
        RtSender {
            params,
            next_seq: 1,
            mask: history - 1,
            record_len: limits.record_len,
            slots: vec![Slot::default(); n].into_boxed_slice(),
            bytes: vec![0; n * limits.record_len].into_boxed_slice(),
            schedule: Vec::with_capacity(cap),
            schedule_cap: cap,
            answers: 0,
            counters: SenderCounters::default(),
        }
    }

    /// The same sender starting at sequence `first` (tests of wrap-around; a new link
    /// incarnation starts at 1).
    pub fn starting_at(mut self, first: u32) -> Self {
        self.next_seq = first;
        self
    }

    /// The timing in use.
    pub fn params(&self) -> &RtParams {
        &self.params
    }

    /// Takes a new one-way delay estimate (from the link monitor's RTT).
    pub fn set_one_way(&mut self, one_way: Duration) {
        self.params.one_way = one_way;
    }

    /// The counters so far.
    pub fn counters(&self) -> &SenderCounters {
        &self.counters
    }

    /// The number of requests being answered (at most the schedule limit).
    pub fn scheduled(&self) -> usize {
        self.schedule.len()
    }

    /// The sequence the next record will get.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// A record about to be sent for the first time at `now`: keeps a copy and returns the
    /// `link_seq` to stamp on it.
    pub fn handle_send(
        &mut self,
        now: Instant,
        meta: RtMeta,
        record: &[u8],
    ) -> Result<u32, RtSendError> {
        if record.len() > self.record_len {
            self.counters.too_large += 1;
            return Err(RtSendError::TooLarge { len: record.len() });
        }
        if !self.in_time(now, meta.deadline) {
            self.counters.expired += 1;
            return Err(RtSendError::Expired);
        }
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let idx = (seq & self.mask) as usize;
        let old = self.slots[idx];
        if old.used && self.in_time(now, old.deadline) {
            self.counters.evicted_live += 1;
        }
        self.slots[idx] = Slot {
            seq,
            used: true,
            answered: false,
            m: meta.strikes.m(),
            len: record.len(),
            sent_at: now,
            deadline: meta.deadline,
        };
        let start = idx * self.record_len;
        self.bytes[start..start + record.len()].copy_from_slice(record);
        self.counters.sent += 1;
        Ok(seq)
    }

    /// The sequences of a Nack record received at `now`. The first request for a sequence
    /// schedules its M copies, the first due at once; later requests for it are ignored.
    pub fn handle_nack(&mut self, now: Instant, seqs: &[u32]) {
        for &seq in seqs {
            self.on_request(now, seq);
        }
    }

    fn on_request(&mut self, now: Instant, seq: u32) {
        self.counters.requested += 1;
        let Some(idx) = self.slot_of(seq) else {
            self.counters.unknown += 1;
            return;
        };
        let slot = &mut self.slots[idx];
        if slot.answered {
            self.counters.repeated += 1;
            return;
        }
        slot.answered = true;
        let (m, deadline) = (slot.m, slot.deadline);
        if m == 0 {
            self.counters.no_strikes += 1;
            return;
        }
        //= US 11,057,319: only on the first receipt of a request for the packet, schedule M
        //# retransmissions at M times relative to that receipt.
        if !self.in_time(now, deadline) {
            self.counters.too_late += 1;
            return;
        }
        if self.schedule.len() >= self.schedule_cap {
            self.counters.schedule_full += 1;
            return;
        }
        let budget = deadline.saturating_duration_since(now + self.params.one_way);
        let spacing = self.params.retransmit_spacing_for(budget, m);
        self.counters.answered += 1;
        self.answers += 1;
        self.schedule.push(Scheduled {
            seq,
            next_at: now,
            left: m,
            m,
            spacing,
            order: self.answers,
        });
    }

    /// The next retransmitted copy due at `now`, if any; call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Retransmission<'_>> {
        loop {
            let (i, entry) = self
                .schedule
                .iter()
                .enumerate()
                .filter(|(_, e)| e.next_at <= now)
                .min_by_key(|(_, e)| (e.next_at, e.order))
                .map(|(i, e)| (i, *e))?;
            let Some(idx) = self.slot_of(entry.seq) else {
                self.counters.cut_by_eviction += u64::from(entry.left);
                self.schedule.swap_remove(i);
                continue;
            };
            let slot = self.slots[idx];
            if !self.in_time(now, slot.deadline) {
                self.counters.cut_by_deadline += u64::from(entry.left);
                self.schedule.swap_remove(i);
                continue;
            }
            let copy = entry.m - entry.left + 1;
            if entry.left <= 1 {
                self.schedule.swap_remove(i);
            } else {
                let e = &mut self.schedule[i];
                e.left -= 1;
                e.next_at = now + entry.spacing;
            }
            self.counters.retransmitted += 1;
            let start = idx * self.record_len;
            return Some(Retransmission {
                link_seq: entry.seq,
                record: &self.bytes[start..start + slot.len],
                first_sent: slot.sent_at,
                copy,
            });
        }
    }

    /// When the next scheduled copy is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.schedule.iter().map(|e| e.next_at).min()
    }

    /// The history slot holding `seq`, if it is still there.
    fn slot_of(&self, seq: u32) -> Option<usize> {
        // A sequence not yet sent (at or after next_seq) is never in the history.
        if !seq_after(self.next_seq, seq) {
            return None;
        }
        let idx = (seq & self.mask) as usize;
        let slot = &self.slots[idx];
        (slot.used && slot.seq == seq).then_some(idx)
    }

    /// Whether a copy sent at `now` arrives at the far end by `deadline`.
    fn in_time(&self, now: Instant, deadline: Instant) -> bool {
        now + self.params.one_way <= deadline
    }
}
