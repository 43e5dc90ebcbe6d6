//! The source end of a reliable flow: end-to-end sequence numbers, the flow's window (the
//! client's credit), and resending what a crashed node or a dead route lost.

use core::time::Duration;

use weft_shared::time::Instant;

use super::E2eAck;
use super::params::E2eParams;

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
}

/// The source end of one reliable flow. Memory is fixed at construction: `window` messages of
/// up to `msg_len` bytes.
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
    /// What the next resend timeout counts from: the last progress or the last resend pass.
    resend_clock: Instant,
    backoff: u32,
    /// The resend pass in progress: the next sequence to look at, and where the pass ends.
    resend: Option<(u64, u64)>,
    /// The sink holds everything but has not reported it all delivered, and said nothing for
    /// a timeout: its last ack may be lost, so the newest message goes again as a probe (the
    /// sink answers a duplicate with an ack at once).
    probe: bool,
    stalled: bool,
    event: Option<E2eEvent>,
    counters: E2eSourceCounters,
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
            resend_clock: Instant::ZERO,
            backoff: 0,
            resend: None,
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

    /// Whether the flow is reported stalled.
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Takes a message from the client; returns its end-to-end sequence. The caller sends it
    /// toward the destination (and if it cannot, it stays here and the resend timeout covers
    /// it).
    pub fn handle_send(&mut self, now: Instant, msg: &[u8]) -> Result<u64, E2eSendError> {
        if msg.len() > self.msg_len {
            return Err(E2eSendError::TooLarge { len: msg.len() });
        }
        if self.credit() == 0 {
            self.counters.would_block += 1;
            return Err(E2eSendError::WouldBlock);
        }
        if self.outstanding() == 0 {
            // The clocks run only while something is outstanding.
            self.last_progress = now;
            self.resend_clock = now;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let i = self.index(seq);
        self.slots[i] = Slot {
            len: msg.len(),
            received: false,
        };
        let at = i * self.msg_len;
        self.bytes[at..at + msg.len()].copy_from_slice(msg);
        self.counters.sent += 1;
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
        if ack.received > self.received {
            self.received = ack.received;
            progressed = true;
        }
        let mut bits = ack.sack;
        while bits != 0 {
            let i = u64::from(bits.trailing_zeros());
            bits &= bits - 1;
            let seq = ack.received + 1 + i;
            if seq >= self.base && seq < self.next_seq {
                let slot = self.index(seq);
                if !self.slots[slot].received {
                    self.slots[slot].received = true;
                    progressed = true;
                }
            }
        }
        if progressed {
            self.last_progress = now;
            self.resend_clock = now;
            self.backoff = 0;
            if self.stalled {
                self.stalled = false;
                self.event = Some(E2eEvent::Resumed);
            }
        }
    }

    /// Runs the resend timeout and the stall report. When it fires, a resend pass starts over
    /// every message the sink has not reported received; drain it with
    /// [`peek_resend`](Self::peek_resend) / [`commit_resend`](Self::commit_resend).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outstanding() == 0 {
            return;
        }
        let idle = now - self.last_progress;
        if !self.stalled && idle >= self.params.stall_after {
            self.stalled = true;
            self.counters.stalls += 1;
            self.event = Some(E2eEvent::Stalled {
                outstanding: self.outstanding(),
            });
        }
        let waited = now - self.resend_clock;
        if waited >= self.rto() && self.resend.is_none() && !self.probe {
            self.counters.timeouts += 1;
            if self.received < self.last_sent() {
                self.resend = Some((self.base.max(self.received + 1), self.next_seq));
            } else {
                self.probe = true;
            }
            self.backoff = self.backoff.saturating_add(1);
            // The next timeout counts from this pass.
            self.resend_clock = now;
        }
    }

    /// The next message of the resend pass, if any: `(seq, message)`. The caller sends it and
    /// calls [`commit_resend`](Self::commit_resend); if it cannot send now (no room on the
    /// link), it stops and peeks again later.
    pub fn peek_resend(&mut self) -> Option<(u64, &[u8])> {
        if self.probe {
            if self.outstanding() == 0 {
                self.probe = false;
                return None;
            }
            let seq = self.last_sent();
            let i = self.index(seq);
            let at = i * self.msg_len;
            return Some((seq, &self.bytes[at..at + self.slots[i].len]));
        }
        let (mut seq, end) = self.resend?;
        seq = seq.max(self.base).max(self.received + 1);
        while seq < end && self.slots[self.index(seq)].received {
            seq += 1;
        }
        if seq >= end {
            self.resend = None;
            return None;
        }
        self.resend = Some((seq, end));
        let i = self.index(seq);
        let at = i * self.msg_len;
        Some((seq, &self.bytes[at..at + self.slots[i].len]))
    }

    /// The message last peeked was sent.
    pub fn commit_resend(&mut self) {
        if self.probe {
            self.probe = false;
            self.counters.probes += 1;
        } else if let Some((seq, end)) = self.resend {
            self.counters.resent += 1;
            self.resend = if seq + 1 < end {
                Some((seq + 1, end))
            } else {
                None
            };
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outstanding() == 0 || self.resend.is_some() || self.probe {
            return None;
        }
        let stall = if self.stalled {
            None
        } else {
            Some(self.last_progress + self.params.stall_after)
        };
        let resend = Some(self.resend_clock + self.rto());
        match (stall, resend) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next event for the client, if any.
    pub fn poll_event(&mut self) -> Option<E2eEvent> {
        self.event.take()
    }

    /// The resend timeout in force (with backoff).
    pub fn rto(&self) -> Duration {
        self.params
            .rto
            .saturating_mul(1 << self.backoff.min(16))
            .min(self.params.max_rto.max(self.params.rto))
    }

    /// Sets the base resend timeout (the route's round trip changed).
    pub fn set_rto(&mut self, rto: Duration) {
        self.params.rto = rto;
    }

    fn index(&self, seq: u64) -> usize {
        (seq & self.mask) as usize
    }
}
