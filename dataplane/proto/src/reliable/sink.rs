//! The destination end of a reliable flow: the reorder buffer that delivers every message
//! exactly once and in order, and the end-to-end acks that free the source's window.

use weft_shared::time::Instant;

use super::params::E2eParams;
use super::{E2E_SACK_WORDS, E2eAck};

/// What the sink made of a message ([`E2eSink::handle_packet`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkOutcome {
    /// Kept for delivery.
    Accepted,
    /// Held or delivered already: dropped (an ack goes back at once).
    Duplicate,
    /// Beyond the flow's window: the source broke its window (dropped, counted).
    BeyondWindow,
    /// Longer than the flow's largest message (dropped, counted).
    TooLarge,
}

/// What a sink did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E2eSinkCounters {
    /// Messages accepted (each sequence once).
    pub accepted: u64,
    /// Of those, arrived ahead of an earlier missing one (held for order).
    pub out_of_order: u64,
    /// Messages handed to the client, in order.
    pub delivered: u64,
    /// Duplicates dropped (end-to-end resends of what had arrived, or link duplicates).
    pub duplicates: u64,
    /// Messages beyond the window, dropped.
    pub beyond_window: u64,
    /// Messages too large, dropped.
    pub too_large: u64,
    /// Acks made.
    pub acks: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    present: bool,
    len: usize,
    /// When it arrived, and its age then (µs since the source sent it).
    arrived: Instant,
    age_us: u32,
}

/// The destination end of one reliable flow. Memory is fixed at construction: `window`
/// messages of up to `msg_len` bytes, the most the source may have outstanding.
#[derive(Clone, Debug)]
pub struct E2eSink {
    params: E2eParams,
    /// The next sequence to deliver; everything below it was delivered.
    next: u64,
    /// Every sequence below this one is held or delivered.
    received_below: u64,
    /// The highest sequence held.
    highest: u64,
    mask: u64,
    msg_len: usize,
    slots: Box<[Slot]>,
    bytes: Box<[u8]>,
    ack_due: Option<Instant>,
    /// What the last ack said (delivered, received): an unchanged state needs no ack.
    last_acked: (u64, u64),
    counters: E2eSinkCounters,
}

impl E2eSink {
    /// A sink for a flow with `params` (the same window as the source); it expects sequence 1.
    pub fn new(params: E2eParams) -> Self {
        let window = u64::from(params.window.clamp(1, 1 << 24).next_power_of_two());
        let n = window as usize;
        E2eSink {
            params,
            next: 1,
            received_below: 1,
            highest: 0,
            mask: window - 1,
            msg_len: params.msg_len,
            slots: vec![Slot::default(); n].into_boxed_slice(),
            bytes: vec![0; n * params.msg_len].into_boxed_slice(),
            ack_due: None,
            last_acked: (0, 0),
            counters: E2eSinkCounters::default(),
        }
    }

    /// What the sink did so far.
    pub fn counters(&self) -> E2eSinkCounters {
        self.counters
    }

    /// Messages held, waiting for order or for the client.
    pub fn held(&self) -> u64 {
        // Each sequence is accepted once and consumed once.
        self.counters.accepted - self.counters.delivered
    }

    /// The last sequence delivered.
    pub fn delivered(&self) -> u64 {
        self.next - 1
    }

    /// What `seq` would be to the sink, without taking it: the caller asks before it acks the
    /// link record that carries the message, so that it never acks what it cannot keep.
    pub fn classify(&self, seq: u64, len: usize) -> SinkOutcome {
        if len > self.msg_len {
            SinkOutcome::TooLarge
        } else if seq < self.next || seq != 0 && self.is_present(seq) {
            SinkOutcome::Duplicate
        } else if seq == 0 || seq - self.next > self.mask {
            SinkOutcome::BeyondWindow
        } else {
            SinkOutcome::Accepted
        }
    }

    /// Takes message `seq` of the flow.
    pub fn handle_packet(&mut self, now: Instant, seq: u64, msg: &[u8]) -> SinkOutcome {
        self.handle_packet_aged(now, seq, msg, 0)
    }

    /// Takes message `seq` of the flow, `age_us` old on arrival; [`peek_age`](Self::peek_age)
    /// adds the time it waits here.
    pub fn handle_packet_aged(
        &mut self,
        now: Instant,
        seq: u64,
        msg: &[u8],
        age_us: u32,
    ) -> SinkOutcome {
        let outcome = self.classify(seq, msg.len());
        match outcome {
            SinkOutcome::Accepted => {}
            SinkOutcome::Duplicate => {
                self.counters.duplicates += 1;
                // The source resends: it may have missed our acks.
                self.ack_due = Some(now);
                self.last_acked = (u64::MAX, u64::MAX);
                return outcome;
            }
            SinkOutcome::BeyondWindow => {
                self.counters.beyond_window += 1;
                return outcome;
            }
            SinkOutcome::TooLarge => {
                self.counters.too_large += 1;
                return outcome;
            }
        }
        let i = self.index(seq);
        self.slots[i] = Slot {
            present: true,
            len: msg.len(),
            arrived: now,
            age_us,
        };
        let at = i * self.msg_len;
        self.bytes[at..at + msg.len()].copy_from_slice(msg);
        self.counters.accepted += 1;
        if seq > self.received_below {
            self.counters.out_of_order += 1;
        }
        self.highest = self.highest.max(seq);
        while self.received_below <= self.highest && self.is_present(self.received_below) {
            self.received_below += 1;
        }
        self.schedule_ack(now);
        outcome
    }

    /// Whether message `seq` (`len` bytes) is the next in order with nothing held: then the
    /// caller may hand it to the client straight from the packet, and if the client takes it,
    /// call [`handle_delivered`](Self::handle_delivered) instead of keeping a copy here.
    pub fn is_next_in_order(&self, seq: u64, len: usize) -> bool {
        seq == self.next && self.held() == 0 && self.classify(seq, len) == SinkOutcome::Accepted
    }

    /// Message `seq`, for which [`is_next_in_order`](Self::is_next_in_order) held, was handed
    /// to the client on arrival: the same state as taking it and then consuming it.
    pub fn handle_delivered(&mut self, now: Instant, seq: u64) {
        debug_assert!(seq == self.next && self.held() == 0);
        self.counters.accepted += 1;
        self.highest = self.highest.max(seq);
        // Nothing was held, so everything below `next` was received and none above it.
        self.received_below = seq + 1;
        self.schedule_ack(now);
        self.next += 1;
        self.counters.delivered += 1;
        self.ack_after_delivery(now);
    }

    /// The next message in order, if it is here: `(seq, message)`. The caller hands it to the
    /// client and calls [`consume`](Self::consume); a client with no room leaves it here, and
    /// the source's window then stops the flow (backpressure, nothing lost).
    pub fn peek_deliver(&self) -> Option<(u64, &[u8])> {
        let i = self.index(self.next);
        let slot = self.slots[i];
        if !slot.present || self.next > self.highest {
            return None;
        }
        let at = i * self.msg_len;
        Some((self.next, &self.bytes[at..at + slot.len]))
    }

    /// The age at `now` of the message [`peek_deliver`](Self::peek_deliver) returns: its age
    /// on arrival plus its wait here, in µs (saturating).
    pub fn peek_age(&self, now: Instant) -> u32 {
        let slot = self.slots[self.index(self.next)];
        let waited = now.saturating_duration_since(slot.arrived).as_micros();
        u32::try_from(u128::from(slot.age_us) + waited).unwrap_or(u32::MAX)
    }

    /// The message last peeked was handed to the client.
    pub fn consume(&mut self, now: Instant) {
        if self.peek_deliver().is_none() {
            return;
        }
        let i = self.index(self.next);
        self.slots[i].present = false;
        self.next += 1;
        self.counters.delivered += 1;
        self.ack_after_delivery(now);
    }

    fn ack_after_delivery(&mut self, now: Instant) {
        // A quarter window delivered since the last ack: ack at once, the source waits on it.
        let since = self
            .delivered()
            .saturating_sub(self.last_acked.0.min(self.delivered()));
        if since > self.mask / 4 {
            self.ack_due = Some(now);
        } else {
            self.schedule_ack(now);
        }
    }

    /// The end-to-end ack to send to the source now, if one is due.
    pub fn poll_ack(&mut self, now: Instant) -> Option<E2eAck> {
        match self.ack_due {
            Some(due) if due <= now => {}
            _ => return None,
        }
        self.ack_due = None;
        let ack = self.ack();
        self.last_acked = (ack.delivered, ack.received);
        self.counters.acks += 1;
        Some(ack)
    }

    /// The flow's state as an ack (also for a periodic keepalive).
    pub fn ack(&self) -> E2eAck {
        let received = self.received_below - 1;
        let mut sack = [0u64; E2E_SACK_WORDS];
        let last = self.highest.min(received + (E2E_SACK_WORDS * 64) as u64);
        for seq in received + 1..=last {
            if self.is_present(seq) {
                let i = seq - received - 1;
                sack[(i / 64) as usize] |= 1 << (i % 64);
            }
        }
        E2eAck {
            delivered: self.delivered(),
            received,
            sack,
        }
    }

    /// When the next ack falls due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ack_due
    }

    fn schedule_ack(&mut self, now: Instant) {
        if self.ack_due.is_none() {
            self.ack_due = Some(now + self.params.ack_delay);
        }
    }

    fn is_present(&self, seq: u64) -> bool {
        seq >= self.next && seq <= self.highest && seq - self.next <= self.mask && {
            self.slots[self.index(seq)].present
        }
    }

    fn index(&self, seq: u64) -> usize {
        (seq & self.mask) as usize
    }
}
