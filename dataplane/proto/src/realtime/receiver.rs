//! The receiving end of an NM-Strikes link: duplicate suppression, gap detection, and N spaced
//! requests per missing sequence, cancelled when it arrives.

use core::time::Duration;
use std::collections::VecDeque;

use weft_shared::time::Instant;
use weft_shared::wire::{LinkProto, MAX_NACK_SEQS, NackRepr, Strikes};

use super::params::{ReceiverLimits, RtParams};
use super::{RtMeta, seq_after};

/// What a received real-time data record was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxOutcome {
    /// The highest sequence so far: pass it on. Any sequences it jumped over are now missing.
    New,
    /// A missing sequence arrived: pass it on; its pending requests are cancelled.
    Filled {
        /// It came as a link-level retransmission (the `RETRANSMIT` flag): a recovery.
        retransmission: bool,
    },
    /// Already received: drop it (counted).
    Duplicate,
    /// Older than the window, so it cannot be told from a duplicate: drop it (counted).
    TooOld,
}

impl RxOutcome {
    /// Whether the record is passed on (forwarded or delivered).
    pub fn is_accepted(self) -> bool {
        matches!(self, RxOutcome::New | RxOutcome::Filled { .. })
    }
}

/// What a receiver did, for `weftctl` and the experiments. Every drop has its count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverCounters {
    /// Data records handed in.
    pub received: u64,
    /// Accepted records that filled a gap (reordered or recovered).
    pub filled: u64,
    /// Of those, link-level retransmissions.
    pub recovered: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Records older than the window, dropped.
    pub too_old: u64,
    /// Sequences found missing (jumped over by a newer one).
    pub missing: u64,
    /// Missing sequences given a request schedule.
    pub scheduled: u64,
    /// Missing sequences not requested: the flow has N = 0.
    pub no_strikes: u64,
    /// Missing sequences not requested: even a first request would be answered too late.
    pub too_late: u64,
    /// Missing sequences not requested: the pending table was full.
    pub pending_full: u64,
    /// Missing sequences not tracked: the jump was longer than the window.
    pub beyond_window: u64,
    /// Requests put into Nack records.
    pub requests: u64,
    /// Scheduled requests cancelled because the packet arrived.
    pub cancelled: u64,
    /// Request schedules abandoned because the deadline came too close (or the sequence left
    /// the window).
    pub abandoned: u64,
    /// Requests dropped because the Nack queue was full (the caller did not drain it).
    pub nack_queue_full: u64,
    /// Nack records handed out.
    pub nacks: u64,
}

/// A missing sequence with requests still to send.
#[derive(Clone, Copy, Debug)]
struct Pending {
    seq: u32,
    next_at: Instant,
    left: u8,
    spacing: Duration,
    /// The estimated deadline of the missing packet at this node.
    deadline: Instant,
}

/// The receiving end of one real-time sequence space (link, direction, lane).
///
/// Memory is fixed at construction ([`ReceiverLimits`]): a bitmap of `window` sequences, a
/// table of `pending` missing sequences and a queue of `nack_queue` requests. Nothing
/// allocates afterwards. The call order is in the [module docs](super).
///
/// The receiver cannot read a missing packet's header, so it takes the strikes and deadline
/// of the missing packets from their neighbours: N is the larger of the two packets around the
/// gap, and the deadline the later one's (an upper bound when both belong to one flow). A
/// request that is answered too late costs one sequence in a Nack record: the sender knows the
/// exact deadline and sends nothing useless.
#[derive(Clone, Debug)]
pub struct RtReceiver {
    params: RtParams,
    /// Bit `seq & mask` is set when `seq` (within the window) arrived.
    bits: Box<[u64]>,
    mask: u32,
    /// The highest sequence received and its meta.
    highest: Option<(u32, RtMeta)>,
    pending: Vec<Pending>,
    pending_cap: usize,
    queue: VecDeque<u32>,
    queue_cap: usize,
    counters: ReceiverCounters,
}

impl RtReceiver {
    /// A receiver with timing `params` and memory `limits`.
    pub fn new(params: RtParams, limits: ReceiverLimits) -> Self {
        let window = limits.window.clamp(64, 1 << 30).next_power_of_two();
        let pending_cap = limits.pending.max(1);
        let queue_cap = limits.nack_queue.max(1);
        RtReceiver {
            params,
            bits: vec![0; (window / 64) as usize].into_boxed_slice(),
            mask: window - 1,
            highest: None,
            pending: Vec::with_capacity(pending_cap),
            pending_cap,
            queue: VecDeque::with_capacity(queue_cap),
            queue_cap,
            counters: ReceiverCounters::default(),
        }
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
    pub fn counters(&self) -> &ReceiverCounters {
        &self.counters
    }

    /// Missing sequences with requests still to send (at most the pending limit).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Requests waiting for [`poll_nack`](Self::poll_nack) (at most the queue limit).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The number of sequences the window tracks.
    pub fn window(&self) -> u32 {
        self.mask + 1
    }

    /// Forgets everything (the peer restarted with a new incarnation); counters are kept.
    pub fn reset(&mut self) {
        self.bits.fill(0);
        self.highest = None;
        self.pending.clear();
        self.queue.clear();
    }

    /// A real-time data record with `link_seq` and `meta` arrived at `now`; `retransmission`
    /// is its `RETRANSMIT` flag. Says whether to pass it on.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        link_seq: u32,
        meta: RtMeta,
        retransmission: bool,
    ) -> RxOutcome {
        self.counters.received += 1;
        let Some((highest, highest_meta)) = self.highest else {
            self.set_bit(link_seq);
            self.highest = Some((link_seq, meta));
            return RxOutcome::New;
        };
        if seq_after(link_seq, highest) {
            self.on_jump(now, highest, highest_meta, link_seq, meta);
            return RxOutcome::New;
        }
        let age = highest.wrapping_sub(link_seq);
        if age > self.mask {
            self.counters.too_old += 1;
            return RxOutcome::TooOld;
        }
        if self.bit(link_seq) {
            self.counters.duplicates += 1;
            return RxOutcome::Duplicate;
        }
        self.set_bit(link_seq);
        self.counters.filled += 1;
        if retransmission {
            self.counters.recovered += 1;
        }
        //= US 11,057,319: the recovery process is terminated when the packet arrives.
        if let Some(i) = self.pending.iter().position(|p| p.seq == link_seq) {
            let p = self.pending.remove(i);
            self.counters.cancelled += u64::from(p.left);
        }
        RxOutcome::Filled { retransmission }
    }

    /// `seq` is newer than `highest`: clears the bits it moves over and schedules requests for
    /// the sequences in between.
    fn on_jump(&mut self, now: Instant, highest: u32, old: RtMeta, seq: u32, meta: RtMeta) {
        let ahead = seq.wrapping_sub(highest);
        let window = self.mask + 1;
        if ahead >= window {
            self.bits.fill(0);
        } else {
            for s in 1..=ahead {
                self.clear_bit(highest.wrapping_add(s));
            }
        }
        self.set_bit(seq);
        self.highest = Some((seq, meta));
        let missing = ahead - 1;
        if missing == 0 {
            return;
        }
        self.counters.missing += u64::from(missing);
        // Only the newest window - 1 missing sequences are tracked.
        let tracked = missing.min(window - 1);
        self.counters.beyond_window += u64::from(missing - tracked);
        let n = old.strikes.n().max(meta.strikes.n());
        if n == 0 {
            self.counters.no_strikes += u64::from(tracked);
            return;
        }
        let m = old.strikes.m().max(meta.strikes.m());
        let strikes = Strikes::new(n, m).unwrap_or(Strikes::NONE);
        let deadline = old.deadline.max(meta.deadline);
        //= US 11,057,319: the receiver waiting time is a non-zero delay shorter than the RTT.
        let first = now + self.params.reorder_allowance;
        if !self.answer_in_time(first, deadline) {
            self.counters.too_late += u64::from(tracked);
            return;
        }
        let budget = deadline.saturating_duration_since(now);
        let spacing = self.params.request_spacing_for(budget, strikes);
        for back in (1..=tracked).rev() {
            let s = seq.wrapping_sub(back);
            if self.pending.len() >= self.pending_cap {
                self.counters.pending_full += 1;
                continue;
            }
            self.counters.scheduled += 1;
            self.pending.push(Pending {
                seq: s,
                next_at: first,
                left: n,
                spacing,
                deadline,
            });
        }
    }

    /// Sends the requests due at `now` to the Nack queue (oldest missing sequence first) and
    /// drops schedules that can no longer help.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Compacts in place, keeping the table in gap order.
        let mut keep = 0;
        for i in 0..self.pending.len() {
            let mut p = self.pending[i];
            if p.next_at <= now {
                if !self.answer_in_time(now, p.deadline) || !self.in_window(p.seq) {
                    self.counters.abandoned += 1;
                    continue;
                }
                if self.queue.len() < self.queue_cap {
                    self.queue.push_back(p.seq);
                    self.counters.requests += 1;
                } else {
                    self.counters.nack_queue_full += 1;
                }
                if p.left <= 1 {
                    continue;
                }
                p.left -= 1;
                p.next_at = now + p.spacing;
            }
            self.pending[keep] = p;
            keep += 1;
        }
        self.pending.truncate(keep);
    }

    /// The next Nack record to send (up to [`MAX_NACK_SEQS`] requests); call until `None`.
    pub fn poll_nack(&mut self) -> Option<NackRepr> {
        let mut seqs = [0u32; MAX_NACK_SEQS];
        let mut k = 0;
        while k < MAX_NACK_SEQS {
            let Some(seq) = self.queue.pop_front() else {
                break;
            };
            seqs[k] = seq;
            k += 1;
        }
        let nack = NackRepr::new(LinkProto::Realtime, &seqs[..k])?;
        self.counters.nacks += 1;
        Some(nack)
    }

    /// When the next request is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.next_at).min()
    }

    /// Whether a request sent at `at` can bring a first copy back by `deadline`.
    fn answer_in_time(&self, at: Instant, deadline: Instant) -> bool {
        at + self.params.one_way.saturating_mul(2) <= deadline
    }

    fn in_window(&self, seq: u32) -> bool {
        self.highest
            .is_some_and(|(h, _)| h.wrapping_sub(seq) <= self.mask)
    }

    fn bit(&self, seq: u32) -> bool {
        let i = seq & self.mask;
        self.bits[(i / 64) as usize] >> (i % 64) & 1 == 1
    }

    fn set_bit(&mut self, seq: u32) {
        let i = seq & self.mask;
        self.bits[(i / 64) as usize] |= 1 << (i % 64);
    }

    fn clear_bit(&mut self, seq: u32) {
        let i = seq & self.mask;
        self.bits[(i / 64) as usize] &= !(1 << (i % 64));
    }
}
