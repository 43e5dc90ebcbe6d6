//! The sending end of a reliable link: sequence numbers, the window of records in flight,
//! retransmission on request (Nack), on selective-ack evidence, and on timeout.

use core::time::Duration;

use weft_shared::time::Instant;
use weft_shared::wire::AckRepr;

use super::params::{PACING_OVERHEAD, RelParams, RelSenderLimits};
use super::rtt::RttEstimator;
use super::seq_after;

/// Records above the cumulative ack that an ack's selective bitmap covers.
const SACK_HORIZON: u32 = 64;

/// The congestion window at start and after a reset (RFC 6928's ten segments).
const INITIAL_CWND: u32 = 10;

/// Why [`RelSender::handle_send`] refused a record. The caller keeps the record (it is not
/// lost): a full window is backpressure, the hop that fed the record does not get an ack for
/// it and sends it again later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelSendError {
    /// `window` records are in flight; wait for acks.
    WindowFull,
    /// The record is longer than [`RelSenderLimits::record_len`].
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
}

/// What a sender did, for `weftctl` and the experiments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelSenderCounters {
    /// Records transmitted for the first time.
    pub sent: u64,
    /// Retransmissions handed out by [`RelSender::poll_transmit`].
    pub retransmitted: u64,
    /// Of those, asked for by a Nack.
    pub retx_nack: u64,
    /// Of those, inferred from selective acks (three later records acked).
    pub retx_sack: u64,
    /// Of those, sent by a timeout.
    pub retx_timeout: u64,
    /// Timeouts that fired.
    pub timeouts: u64,
    /// Loss events that halved the congestion window.
    pub loss_events: u64,
    /// Records acked (their slot freed).
    pub acked: u64,
    /// Records refused because the window was full (backpressure).
    pub window_full: u64,
    /// Records refused as too large.
    pub too_large: u64,
    /// Acks that acknowledged records never sent (dropped).
    pub bad_acks: u64,
    /// Requested sequences not in flight (acked already, or never sent).
    pub nack_unknown: u64,
    /// Requests for a record retransmitted less than a round trip ago (ignored: the copy is on
    /// its way).
    pub nack_recent: u64,
    /// Records given up by [`RelSender::reset`] (the peer restarted or the link was replaced):
    /// the end-to-end layer resends them.
    pub abandoned: u64,
}

/// A transmission from [`RelSender::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelTransmission<'a> {
    /// The sequence to stamp.
    pub link_seq: u32,
    /// The record body as taken.
    pub record: &'a [u8],
    /// When the original left.
    pub first_sent: Instant,
    /// A retransmission: send with the `RETRANSMIT` record flag.
    pub retransmission: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    seq: u32,
    in_flight: bool,
    /// Acked by a selective ack (cannot be freed before the cumulative ack passes it).
    sacked: bool,
    /// In the retransmission queue.
    queued: bool,
    retransmitted: bool,
    len: usize,
    first_sent: Instant,
    last_sent: Instant,
}

/// The sending end of one reliable sequence space (link, direction, lane).
///
/// Memory is fixed at construction ([`RelSenderLimits`]): a window of records and a
/// retransmission queue as long as the window. The call order is in the
/// [module docs](super).
#[derive(Clone, Debug)]
pub struct RelSender {
    params: RelParams,
    /// The oldest sequence not cumulatively acked.
    base: u32,
    next_seq: u32,
    /// The next record to transmit for the first time: `[base, sent_upto)` is on the wire,
    /// `[sent_upto, next_seq)` waits for the congestion window.
    sent_upto: u32,
    /// Highest sequence known received (by cumulative or selective ack).
    highest_acked: u32,
    /// Records below this were checked for loss against the selective acks.
    loss_cursor: u32,
    mask: u32,
    record_len: usize,
    slots: Box<[Slot]>,
    bytes: Box<[u8]>,
    retx: Ring,
    rtt: RttEstimator,
    /// Consecutive timeouts without progress (the backoff exponent).
    backoff: u32,
    /// The congestion window: records in the pipe (in flight, not selectively acked).
    cwnd: u32,
    ssthresh: u32,
    /// Acks counted toward the next congestion-avoidance step.
    ca_acked: u32,
    /// Losses of records below this sequence belong to the loss event already answered.
    recovery_until: u32,
    /// Records in flight that a selective ack covered.
    sacked_in_flight: u32,
    /// With pacing: the earliest time the next transmission may leave.
    pace_next: Instant,
    counters: RelSenderCounters,
}

impl RelSender {
    /// A sender with timing `params` and memory `limits`; the first sequence is 1.
    pub fn new(params: RelParams, limits: RelSenderLimits) -> Self {
        let window = limits.window.clamp(1, 1 << 30).next_power_of_two();
        let n = window as usize;
        RelSender {
            params,
            base: 1,
            next_seq: 1,
            sent_upto: 1,
            highest_acked: 0,
            loss_cursor: 1,
            mask: window - 1,
            record_len: limits.record_len,
            slots: vec![Slot::default(); n].into_boxed_slice(),
            bytes: vec![0; n * limits.record_len].into_boxed_slice(),
            retx: Ring::new(n),
            rtt: RttEstimator::new(params.initial_rtt),
            backoff: 0,
            cwnd: INITIAL_CWND.min(window),
            ssthresh: window,
            ca_acked: 0,
            recovery_until: 1,
            sacked_in_flight: 0,
            pace_next: Instant::ZERO,
            counters: RelSenderCounters::default(),
        }
    }

    /// What the sender did so far.
    pub fn counters(&self) -> RelSenderCounters {
        self.counters
    }

    /// Records held: taken and not cumulatively acked (on the wire or waiting for the
    /// congestion window).
    pub fn in_flight(&self) -> u32 {
        self.next_seq.wrapping_sub(self.base)
    }

    /// Records taken but not yet transmitted (waiting for the congestion window).
    pub fn queued(&self) -> u32 {
        self.next_seq.wrapping_sub(self.sent_upto)
    }

    /// Records transmitted and not cumulatively acked.
    fn on_wire(&self) -> u32 {
        self.sent_upto.wrapping_sub(self.base)
    }

    /// The window: records that may be in flight.
    pub fn window(&self) -> u32 {
        self.mask + 1
    }

    /// Whether a record can be taken now (the window has a slot).
    pub fn has_room(&self) -> bool {
        self.in_flight() <= self.mask
    }

    /// Whether a record taken at `now` would be transmitted at once (the congestion window and
    /// the pacer let it out, nothing waits before it). A source takes new messages from its
    /// client only then, so that they wait at the client (backpressure), not in a queue here.
    pub fn can_transmit(&self, now: Instant) -> bool {
        self.has_room()
            && self.sent_upto == self.next_seq
            && self.cwnd_open()
            && self.paced_until(now).is_none()
    }

    fn cwnd_open(&self) -> bool {
        !self.params.congestion_control || self.pipe() < self.cwnd
    }

    /// Records on the wire that no ack covered yet.
    pub fn pipe(&self) -> u32 {
        self.on_wire() - self.sacked_in_flight
    }

    /// The congestion window, in records.
    pub fn cwnd(&self) -> u32 {
        self.cwnd
    }

    /// The smoothed round trip.
    pub fn srtt(&self) -> Duration {
        self.rtt.srtt()
    }

    /// The retransmission timeout in force (with backoff).
    pub fn rto(&self) -> Duration {
        // At least two round trips: a loss is normally repaired by the receiver's request
        // (a gap seen, the allowance, the request and the copy: just over one round trip), and
        // the timeout must not race it (Spines: 2 × RTT).
        let base = self
            .rtt
            .rto()
            .max(self.rtt.srtt() * 2 + self.params.ack_delay * 2)
            .max(self.params.min_rto);
        base.saturating_mul(1 << self.backoff.min(16))
            .min(self.params.max_rto)
    }

    /// Numbers `record` and keeps a copy until it is acked; returns its `link_seq`. It goes out
    /// through [`poll_transmit`](Self::poll_transmit), at once if the congestion window allows.
    pub fn handle_send(&mut self, now: Instant, record: &[u8]) -> Result<u32, RelSendError> {
        if record.len() > self.record_len {
            self.counters.too_large += 1;
            return Err(RelSendError::TooLarge { len: record.len() });
        }
        self.handle_send_with(now, |slot| {
            slot[..record.len()].copy_from_slice(record);
            Ok(record.len())
        })
    }

    /// Like [`handle_send`](Self::handle_send), but `write` encodes the record straight into
    /// its slot (at most [`RelSenderLimits::record_len`] bytes) and returns its length, so the
    /// record is not built elsewhere and copied in. If `write` fails, nothing is numbered or kept
    /// and its error is returned.
    pub fn handle_send_with<E: From<RelSendError>>(
        &mut self,
        now: Instant,
        write: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<u32, E> {
        if !self.has_room() {
            self.counters.window_full += 1;
            return Err(RelSendError::WindowFull.into());
        }
        let seq = self.next_seq;
        let i = self.index(seq);
        let at = i * self.record_len;
        let len = write(&mut self.bytes[at..at + self.record_len])?.min(self.record_len);
        self.next_seq = seq.wrapping_add(1);
        if self.next_seq == 0 {
            // 0 means "nothing yet" in a cumulative ack; the space skips it. Its slot is free.
            self.next_seq = 1;
        }
        self.slots[i] = Slot {
            seq,
            in_flight: true,
            sacked: false,
            queued: false,
            retransmitted: false,
            len,
            first_sent: now,
            last_sent: now,
        };
        Ok(seq)
    }

    /// Takes an ack from the peer: frees what it covers, samples the round trip, and queues
    /// for retransmission what three later acked records show lost.
    pub fn handle_ack(&mut self, now: Instant, ack: &AckRepr) {
        let cum = ack.cum_ack;
        // An ack of something never sent is bogus (a peer bug or an attack): ignore it whole.
        let last_sent = match self.sent_upto.wrapping_sub(1) {
            0 if self.base != 1 => u32::MAX,
            s => s,
        };
        if seq_after(cum, last_sent) {
            self.counters.bad_acks += 1;
            return;
        }
        let mut progressed = false;
        // Cumulative part.
        while self.on_wire() > 0 && !seq_after(self.base, cum) {
            let seq = self.base;
            self.ack_slot(now, seq, cum);
            self.base = self.advance(seq);
            progressed = true;
        }
        // Selective part: bit i is cum + 1 + i.
        let mut bits = ack.sack;
        while bits != 0 {
            let i = bits.trailing_zeros();
            bits &= bits - 1;
            let seq = cum.wrapping_add(1 + i);
            if self.is_in_flight(seq) {
                let slot = self.index(seq);
                if !self.slots[slot].sacked {
                    self.slots[slot].sacked = true;
                    self.sacked_in_flight += 1;
                    self.grow();
                    self.sample(now, seq, cum);
                    progressed = true;
                }
            }
            if self.is_in_flight(seq) && seq_after(seq, self.highest_acked) {
                self.highest_acked = seq;
            }
        }
        if seq_after(cum, self.highest_acked) {
            self.highest_acked = cum;
        }
        // Free the cumulatively acked prefix that selective acks already covered.
        while self.on_wire() > 0 && self.slots[self.index(self.base)].sacked {
            let seq = self.base;
            self.ack_slot(now, seq, seq);
            self.base = self.advance(seq);
        }
        if progressed {
            self.backoff = 0;
        }
        self.infer_losses(now);
    }

    /// Takes a Nack: queues the requested records still in flight for retransmission.
    pub fn handle_nack(&mut self, now: Instant, seqs: &[u32]) {
        // A request that arrives less than a round trip after the last copy left was sent
        // before that copy could have arrived: ignore it. The round trip is the measured one
        // (queues included), kept within one to four times the link monitor's, since an ack
        // that waited for a gap to fill inflates the samples.
        let link = self.params.initial_rtt;
        let recent = self.rtt.srtt().clamp(link, link * 4);
        for &seq in seqs {
            if !self.is_in_flight(seq) {
                self.counters.nack_unknown += 1;
                continue;
            }
            let i = self.index(seq);
            let slot = self.slots[i];
            if slot.sacked {
                self.counters.nack_unknown += 1;
            } else if slot.retransmitted && now - slot.last_sent < recent {
                self.counters.nack_recent += 1;
            } else if self.enqueue(seq) {
                self.counters.retx_nack += 1;
                self.on_loss(seq);
            }
        }
    }

    /// Runs the retransmission timeout: when the oldest record in flight has waited an RTO
    /// since it was last sent, every record among the oldest 64 in flight that has waited as
    /// long is queued, and the timeout doubles until the next progress.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(due) = self.timeout_at() else {
            return;
        };
        if now < due {
            return;
        }
        self.counters.timeouts += 1;
        let rto = self.rto();
        // Only the records an ack can report on (64 above the cumulative ack) are resent:
        // beyond that the sender cannot tell a lost record from an unacknowledged one, and the
        // receiver requests real gaps there itself.
        let mut seq = self.base;
        let mut looked = 0;
        while seq != self.sent_upto && looked < SACK_HORIZON {
            looked += 1;
            let slot = self.slots[self.index(seq)];
            if slot.in_flight && !slot.sacked && now - slot.last_sent >= rto && self.enqueue(seq) {
                self.counters.retx_timeout += 1;
            }
            seq = self.advance(seq);
        }
        self.backoff = self.backoff.saturating_add(1);
        self.ssthresh = (self.pipe() / 2).max(2);
        self.cwnd = 2.min(self.mask + 1);
        self.ca_acked = 0;
        self.recovery_until = self.sent_upto;
        // The oldest record restarts its clock even if it was already queued.
        let i = self.index(self.base);
        self.slots[i].last_sent = now;
    }

    /// The next transmission, if any: retransmissions first, then records waiting for the
    /// congestion window. The caller sends it at once.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<RelTransmission<'_>> {
        if self.paced_until(now).is_some() {
            return None;
        }
        while let Some(seq) = self.retx.pop() {
            if !self.is_in_flight(seq) {
                continue;
            }
            let i = self.index(seq);
            let slot = &mut self.slots[i];
            slot.queued = false;
            if slot.sacked {
                continue;
            }
            slot.retransmitted = true;
            slot.last_sent = now;
            let (len, first_sent) = (slot.len, slot.first_sent);
            self.counters.retransmitted += 1;
            self.pace(now, len);
            let at = i * self.record_len;
            return Some(RelTransmission {
                link_seq: seq,
                record: &self.bytes[at..at + len],
                first_sent,
                retransmission: true,
            });
        }
        if self.sent_upto == self.next_seq || !self.cwnd_open() {
            return None;
        }
        let seq = self.sent_upto;
        self.sent_upto = self.advance(seq);
        let i = self.index(seq);
        let slot = &mut self.slots[i];
        slot.first_sent = now;
        slot.last_sent = now;
        let len = slot.len;
        self.counters.sent += 1;
        self.pace(now, len);
        let at = i * self.record_len;
        Some(RelTransmission {
            link_seq: seq,
            record: &self.bytes[at..at + len],
            first_sent: now,
            retransmission: false,
        })
    }

    /// When [`RelSender::handle_timeout`] and [`RelSender::poll_transmit`] should run next:
    /// the retransmission timeout, or when pacing lets the next transmission out (`None`:
    /// nothing in flight and nothing waiting).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waiting = !self.retx.is_empty() || self.sent_upto != self.next_seq && self.cwnd_open();
        let paced = if waiting {
            self.paced_until(Instant::ZERO).map(|_| self.pace_release())
        } else {
            None
        };
        match (paced, self.timeout_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// With pacing, `Some(release)` while a transmission at `now` must wait.
    fn paced_until(&self, now: Instant) -> Option<Instant> {
        self.params.pacing_bps?;
        let release = self.pace_release();
        (now < release).then_some(release)
    }

    /// When the pacer lets the next transmission out: it allows a burst of one millisecond.
    fn pace_release(&self) -> Instant {
        Instant::from_nanos(self.pace_next.as_nanos().saturating_sub(1_000_000))
    }

    /// Charges a transmission of a `len`-byte record to the pacer.
    fn pace(&mut self, now: Instant, len: usize) {
        let Some(bps) = self.params.pacing_bps.filter(|&b| b > 0) else {
            return;
        };
        let bits = ((len + PACING_OVERHEAD) * 8) as u64;
        let ns = bits.saturating_mul(1_000_000_000) / bps;
        // An idle pacer lets a burst of one millisecond out, no more.
        let floor = Instant::from_nanos(now.as_nanos().saturating_sub(1_000_000));
        self.pace_next = self.pace_next.max(floor) + Duration::from_nanos(ns);
    }

    /// Gives up every record in flight (the peer restarted: its receiver starts over) and
    /// starts a new sequence space at 1. Returns how many were given up.
    pub fn reset(&mut self) -> u64 {
        let n = u64::from(self.in_flight());
        self.counters.abandoned += n;
        for s in self.slots.iter_mut() {
            *s = Slot::default();
        }
        self.retx.clear();
        self.base = 1;
        self.next_seq = 1;
        self.sent_upto = 1;
        self.highest_acked = 0;
        self.loss_cursor = 1;
        self.backoff = 0;
        self.cwnd = INITIAL_CWND.min(self.mask + 1);
        self.ssthresh = self.mask + 1;
        self.ca_acked = 0;
        self.recovery_until = 1;
        self.sacked_in_flight = 0;
        n
    }

    /// The same sender starting at sequence `first` (tests of wrap-around; the receiver must
    /// start at the same sequence).
    #[doc(hidden)]
    pub fn starting_at(mut self, first: u32) -> Self {
        let first = if first == 0 { 1 } else { first };
        self.base = first;
        self.next_seq = first;
        self.sent_upto = first;
        self.loss_cursor = first;
        self.highest_acked = first.wrapping_sub(1);
        self
    }

    /// Sets the link's round trip as the link monitor measures it (hellos): the floor of the
    /// timeout and the basis of request handling.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.params.initial_rtt = rtt;
        if !self.rtt.has_sample() {
            self.rtt = RttEstimator::new(rtt);
        }
    }

    fn timeout_at(&self) -> Option<Instant> {
        if self.on_wire() == 0 {
            return None;
        }
        let slot = self.slots[self.index(self.base)];
        Some(slot.last_sent + self.rto())
    }

    fn index(&self, seq: u32) -> usize {
        (seq & self.mask) as usize
    }

    /// The sequence after `seq`, skipping 0.
    fn advance(&self, seq: u32) -> u32 {
        match seq.wrapping_add(1) {
            0 => 1,
            s => s,
        }
    }

    fn is_in_flight(&self, seq: u32) -> bool {
        let off = seq.wrapping_sub(self.base);
        off < self.on_wire() && {
            let s = &self.slots[self.index(seq)];
            s.in_flight && s.seq == seq
        }
    }

    /// Frees the slot of `seq` (acked) and samples the round trip if `seq` is the newest the
    /// ack covers.
    fn ack_slot(&mut self, now: Instant, seq: u32, newest: u32) {
        let i = self.index(seq);
        if !self.slots[i].sacked && seq == newest {
            self.sample(now, seq, newest);
        }
        if self.slots[i].sacked {
            self.sacked_in_flight -= 1;
        } else {
            self.grow();
        }
        self.slots[i].in_flight = false;
        self.counters.acked += 1;
    }

    /// A round-trip sample from `seq`, if it was sent once (Karn's rule) and is the newest the
    /// ack reports.
    fn sample(&mut self, now: Instant, seq: u32, _cum: u32) {
        let slot = self.slots[self.index(seq)];
        let rtt = now - slot.first_sent;
        // Karn's rule; and a record acked only when a gap below it filled (beyond the
        // selective bitmap) says nothing of the path: ignore samples far above the link's RTT.
        let plausible =
            (self.params.initial_rtt * 4).max(self.rtt.srtt() * 2) + Duration::from_millis(20);
        if !slot.retransmitted && rtt <= plausible {
            self.rtt.sample(rtt);
        }
    }

    /// Queues every unacked record at least three below the highest acked one (each is lost
    /// unless reordered by more than three), once per record: a retransmission lost again is
    /// found by the receiver's next request or by the timeout.
    fn infer_losses(&mut self, _now: Instant) {
        let limit = self.highest_acked.wrapping_sub(2);
        if seq_after(self.base, self.loss_cursor) {
            self.loss_cursor = self.base;
        }
        while seq_after(limit, self.loss_cursor) && self.loss_cursor != self.sent_upto {
            let seq = self.loss_cursor;
            if self.is_in_flight(seq) {
                let slot = self.slots[self.index(seq)];
                if !slot.sacked && !slot.retransmitted && self.enqueue(seq) {
                    self.counters.retx_sack += 1;
                    self.on_loss(seq);
                }
            }
            self.loss_cursor = self.advance(seq);
        }
    }

    /// One more record acked: slow start below the threshold, one record per window above.
    fn grow(&mut self) {
        let max = self.mask + 1;
        if self.cwnd < self.ssthresh {
            self.cwnd = (self.cwnd + 1).min(max);
        } else {
            self.ca_acked += 1;
            if self.ca_acked >= self.cwnd {
                self.ca_acked = 0;
                self.cwnd = (self.cwnd + 1).min(max);
            }
        }
    }

    /// `seq` was lost: halve the window, once per loss event (a window's worth of records).
    fn on_loss(&mut self, seq: u32) {
        if seq_after(self.recovery_until, seq) {
            return; // part of the event already answered
        }
        self.counters.loss_events += 1;
        self.ssthresh = (self.pipe() / 2).max(2);
        self.cwnd = self.ssthresh;
        self.ca_acked = 0;
        self.recovery_until = self.sent_upto;
    }

    /// Queues `seq` for retransmission unless it is queued already.
    fn enqueue(&mut self, seq: u32) -> bool {
        let i = self.index(seq);
        if self.slots[i].queued {
            return false;
        }
        if self.retx.push(seq) {
            self.slots[i].queued = true;
            true
        } else {
            false
        }
    }
}

/// A fixed ring of sequences (the retransmission queue); as long as the window, so it never
/// overflows while each record is queued at most once.
#[derive(Clone, Debug)]
struct Ring {
    buf: Box<[u32]>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new(cap: usize) -> Self {
        Ring {
            buf: vec![0; cap.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    fn push(&mut self, v: u32) -> bool {
        if self.len == self.buf.len() {
            return false;
        }
        let at = (self.head + self.len) % self.buf.len();
        self.buf[at] = v;
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let v = self.buf[self.head];
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        Some(v)
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}
