//! The source end of a reliable flow: end-to-end sequence numbers, the flow's window (the
//! client's credit), and resending what a crashed node or a dead route lost.

use core::time::Duration;

use weft_shared::time::Instant;

use super::params::E2eParams;
use super::rtt::RttEstimator;
use super::{E2E_SACK_WORDS, E2eAck};

/// Why [`E2eSource::handle_send`] refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum E2eSendError {
    /// `window` messages are outstanding: the client must wait (its send blocks or returns
    /// would-block). Nothing is lost.
    WouldBlock,
    /// The message is longer than [`E2eParams::msg_len`].
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
}

/// A change the client is told about ([`E2eSource::poll_event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum E2eEvent {
    /// No progress for [`E2eParams::stall_after`] while messages are outstanding: no path to
    /// the destination, or its client stopped reading. Messages stay buffered (at most the
    /// window) and are resent until the flow moves again.
    Stalled {
        /// Messages outstanding.
        outstanding: u32,
    },
    /// The flow moves again after a stall.
    Resumed,
}

/// What a source did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E2eSourceCounters {
    /// Messages taken from the client.
    pub sent: u64,
    /// Messages the sink reported delivered (their buffer freed).
    pub delivered: u64,
    /// Messages resent end to end.
    pub resent: u64,
    /// Resend timeouts that fired.
    pub timeouts: u64,
    /// Probes sent: the newest message again, when the sink held everything but its
    /// delivery ack was missing.
    pub probes: u64,
    /// Sends refused for want of window (client backpressure).
    pub would_block: u64,
    /// Acks naming messages never sent (dropped).
    pub bad_acks: u64,
    /// Stalls reported.
    pub stalls: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    len: usize,
    /// The sink reported it received (it holds it): never resent.
    received: bool,
    /// When it was last sent (first send or resend): it is resent one timeout later.
    last_sent: Instant,
    /// Resent at least once (its ack gives no round-trip sample: Karn's rule).
    resent: bool,
}

/// The source end of one reliable flow. Memory is fixed at construction: `window` messages of
/// up to `msg_len` bytes.
///
/// Each message not reported received is resent one timeout after it was last sent (the
/// timeout doubles while resends bring no progress): a message that a crashed node held comes
/// again without waiting for the rest of the flow to stop.
#[derive(Clone, Debug)]
pub struct E2eSource {
    params: E2eParams,
    /// Oldest message not reported delivered.
    base: u64,
    next_seq: u64,
    /// Every message up to this one is held at the sink or delivered.
    received: u64,
    mask: u64,
    msg_len: usize,
    slots: Box<[Slot]>,
    bytes: Box<[u8]>,
    /// When the sink last reported progress (or the flow last went from idle to busy).
    last_progress: Instant,
    /// No message not reported received falls due before this (a lower bound).
    next_due: Option<Instant>,
    /// When the probe falls due, while everything outstanding is reported received.
    probe_at: Instant,
    backoff: u32,
    /// The round trip from send to the sink's report, queueing on the way included.
    rtt: RttEstimator,
    /// The resend pass in progress.
    pass: Option<Pass>,
    /// The sink holds everything but has not reported it all delivered, and said nothing for
    /// a timeout: its last ack may be lost, so the newest message goes again as a probe (the
    /// sink answers a duplicate with an ack at once).
    probe: bool,
    stalled: bool,
    event: Option<E2eEvent>,
    counters: E2eSourceCounters,
}

/// A walk over the outstanding messages, resending those due at `at`.
#[derive(Clone, Copy, Debug)]
struct Pass {
    next: u64,
    end: u64,
    at: Instant,
    /// The earliest due time of the messages it passed over.
    min_due: Option<Instant>,
    resent: bool,
}

impl E2eSource {
    /// A source with `params`; the first message is sequence 1.
    pub fn new(params: E2eParams) -> Self {
        let window = u64::from(params.window.clamp(1, 1 << 24).next_power_of_two());
        let n = window as usize;
        E2eSource {
            params,
            base: 1,
            next_seq: 1,
            received: 0,
            mask: window - 1,
            msg_len: params.msg_len,
            slots: vec![Slot::default(); n].into_boxed_slice(),
            bytes: vec![0; n * params.msg_len].into_boxed_slice(),
            last_progress: Instant::ZERO,
            next_due: None,
            probe_at: Instant::ZERO,
            backoff: 0,
            rtt: RttEstimator::new(params.rto / 4),
            pass: None,
            probe: false,
            stalled: false,
            event: None,
            counters: E2eSourceCounters::default(),
        }
    }

    /// What the source did so far.
    pub fn counters(&self) -> E2eSourceCounters {
        self.counters
    }

    /// Messages outstanding (sent, not reported delivered).
    pub fn outstanding(&self) -> u32 {
        (self.next_seq - self.base) as u32
    }

    /// Messages the client may send now: its credit.
    pub fn credit(&self) -> u32 {
        (self.mask + 1 - (self.next_seq - self.base)) as u32
    }

    /// The highest sequence handed out.
    pub fn last_sent(&self) -> u64 {
        self.next_seq - 1
    }

    /// Whether a resend pass or a probe is waiting to be sent.
    pub fn resend_pending(&self) -> bool {
        self.pass.is_some() || self.probe
    }

    /// Whether the flow is reported stalled.
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Takes a message from the client; returns its end-to-end sequence. The caller sends it
    /// toward the destination (and if it cannot, it stays here and its resend covers it).
    pub fn handle_send(&mut self, now: Instant, msg: &[u8]) -> Result<u64, E2eSendError> {
        if msg.len() > self.msg_len {
            return Err(E2eSendError::TooLarge { len: msg.len() });
        }
        if self.credit() == 0 {
            self.counters.would_block += 1;
            return Err(E2eSendError::WouldBlock);
        }
        if self.outstanding() == 0 {
            // The stall clock runs only while something is outstanding.
            self.last_progress = now;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let i = self.index(seq);
        self.slots[i] = Slot {
            len: msg.len(),
            received: false,
            last_sent: now,
            resent: false,
        };
        let at = i * self.msg_len;
        self.bytes[at..at + msg.len()].copy_from_slice(msg);
        self.counters.sent += 1;
        let due = now + self.rto();
        self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
        Ok(seq)
    }

    /// Takes an end-to-end ack from the sink.
    pub fn handle_ack(&mut self, now: Instant, ack: &E2eAck) {
        let last = self.next_seq - 1;
        if ack.delivered > last || ack.received > last || ack.delivered > ack.received {
            self.counters.bad_acks += 1;
            return;
        }
        let mut progressed = false;
        while self.base <= ack.delivered {
            self.base += 1;
            self.counters.delivered += 1;
            progressed = true;
        }
        // One round-trip sample per ack: the newest message it reports for the first time.
        let mut newest = None;
        if ack.received > self.received {
            for seq in (self.received + 1).max(self.base)..=ack.received {
                if !self.slots[self.index(seq)].received {
                    newest = Some(seq);
                }
            }
            self.received = ack.received;
            progressed = true;
        }
        let last = (self.next_seq - 1).min(ack.received + (E2E_SACK_WORDS * 64) as u64);
        for seq in (ack.received + 1).max(self.base)..=last {
            let slot = self.index(seq);
            if ack.covers(seq) && !self.slots[slot].received {
                self.slots[slot].received = true;
                newest = Some(seq);
                progressed = true;
            }
        }
        if let Some(seq) = newest.filter(|&s| s >= self.base) {
            let slot = self.slots[self.index(seq)];
            // Karn's rule; and a report much later than the timeout says the sink had nothing
            // to report on for a while (the flow waited for a resend), not that the path is
            // slow: such samples would feed on themselves.
            let sample = now - slot.last_sent;
            if !slot.resent && sample <= self.base_rto() * 2 {
                self.rtt.sample(sample);
            }
        }
        if progressed {
            self.last_progress = now;
            self.probe_at = now + self.params.rto;
            self.backoff = 0;
            if self.stalled {
                self.stalled = false;
                self.event = Some(E2eEvent::Resumed);
            }
        }
    }

    /// Runs the resend timers and the stall report. When messages fall due, a resend pass
    /// starts; drain it with [`peek_resend`](Self::peek_resend) /
    /// [`commit_resend`](Self::commit_resend).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outstanding() == 0 {
            return;
        }
        if !self.stalled && now - self.last_progress >= self.params.stall_after {
            self.stalled = true;
            self.counters.stalls += 1;
            self.event = Some(E2eEvent::Stalled {
                outstanding: self.outstanding(),
            });
        }
        if self.pass.is_some() || self.probe {
            return;
        }
        if self.next_due.is_some_and(|d| d <= now) {
            self.pass = Some(Pass {
                next: self.base.max(self.received + 1),
                end: self.next_seq,
                at: now,
                min_due: None,
                resent: false,
            });
        } else if self.next_due.is_none() && now >= self.probe_at {
            self.probe = true;
            self.counters.timeouts += 1;
            self.backoff = self.backoff.saturating_add(1);
            self.probe_at = now + self.rto();
        }
    }

    /// The next message to resend, if any: `(seq, message)`. The caller sends it and calls
    /// [`commit_resend`](Self::commit_resend); if it cannot send now (no room on the link), it
    /// stops and peeks again later.
    pub fn peek_resend(&mut self) -> Option<(u64, &[u8])> {
        if self.probe {
            if self.outstanding() == 0 {
                self.probe = false;
                return None;
            }
            let seq = self.last_sent();
            return Some((seq, self.message(seq)));
        }
        let mut pass = self.pass?;
        let rto = self.rto();
        pass.next = pass.next.max(self.base).max(self.received + 1);
        while pass.next < pass.end {
            let slot = self.slots[self.index(pass.next)];
            if !slot.received {
                let due = slot.last_sent + rto;
                if due <= pass.at {
                    break;
                }
                pass.min_due = Some(pass.min_due.map_or(due, |d| d.min(due)));
            }
            pass.next += 1;
        }
        if pass.next >= pass.end {
            self.finish_pass(pass);
            return None;
        }
        self.pass = Some(pass);
        let seq = pass.next;
        Some((seq, self.message(seq)))
    }

    /// The message last peeked was sent.
    pub fn commit_resend(&mut self) {
        if self.probe {
            self.probe = false;
            self.counters.probes += 1;
            return;
        }
        let Some(mut pass) = self.pass else {
            return;
        };
        if pass.next < pass.end {
            let i = self.index(pass.next);
            self.slots[i].last_sent = pass.at;
            self.slots[i].resent = true;
            self.counters.resent += 1;
            pass.resent = true;
            // Doubled for the next round, as the whole pass will be.
            let due = pass.at + self.rto() * 2;
            pass.min_due = Some(pass.min_due.map_or(due, |d| d.min(due)));
            pass.next += 1;
        }
        if pass.next >= pass.end {
            self.finish_pass(pass);
        } else {
            self.pass = Some(pass);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run next.
    ///
    /// While a resend pass or a probe waits for the caller (no room or route), only the stall
    /// report is timed: the caller retries the pass itself.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outstanding() == 0 {
            return None;
        }
        let stall = (!self.stalled).then(|| self.last_progress + self.params.stall_after);
        let waiting = self.pass.is_some() || self.probe;
        let resend = (!waiting).then(|| self.next_due.unwrap_or(self.probe_at));
        match (stall, resend) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next event for the client, if any.
    pub fn poll_event(&mut self) -> Option<E2eEvent> {
        self.event.take()
    }

    /// The resend timeout in force: the configured floor, or the measured round trip to the
    /// sink's report plus four deviations if that is longer (queues on the way), doubled per
    /// resend round without progress.
    pub fn rto(&self) -> Duration {
        self.base_rto()
            .saturating_mul(1 << self.backoff.min(16))
            .min(self.params.max_rto.max(self.params.rto))
    }

    /// The timeout before backoff.
    fn base_rto(&self) -> Duration {
        self.params
            .rto
            .max(self.rtt.rto())
            .min(self.params.max_rto.max(self.params.rto))
    }

    /// Sets the base resend timeout (the route's round trip changed).
    pub fn set_rto(&mut self, rto: Duration) {
        self.params.rto = rto;
    }

    fn finish_pass(&mut self, pass: Pass) {
        self.pass = None;
        self.next_due = pass.min_due;
        if pass.resent {
            self.counters.timeouts += 1;
            self.backoff = self.backoff.saturating_add(1);
        }
        if self.next_due.is_none() {
            self.probe_at = pass.at + self.rto();
        }
    }

    fn message(&self, seq: u64) -> &[u8] {
        let i = self.index(seq);
        let at = i * self.msg_len;
        &self.bytes[at..at + self.slots[i].len]
    }

    fn index(&self, seq: u64) -> usize {
        (seq & self.mask) as usize
    }
}
