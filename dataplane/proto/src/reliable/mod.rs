//! The reliable service (`link_proto` 1): hop-by-hop ARQ on every overlay link, out-of-order
//! forwarding in the middle, and in-order exactly-once delivery at the destination with an
//! end-to-end layer that bounds each flow's memory and resends what a crashed node held.
//!
//! Four sans-IO state machines, each with memory fixed at construction and a counter for every
//! drop:
//!
//! - [`RelSender`], one per (link, direction, lane) on the sending node: numbers reliable data
//!   records (`link_seq`), keeps each until the peer acks it, and retransmits on a Nack, on
//!   selective-ack evidence (three later records acked) and on timeout. A TCP-like congestion
//!   window paces what goes on the wire; the rest waits in the window. A full window refuses
//!   new records: backpressure, never loss.
//! - [`RelReceiver`], its peer: suppresses duplicates, requests each gap after a short reorder
//!   allowance and again every round trip until it is filled, and acks (cumulative + a 64-bit
//!   selective bitmap) within 1 ms or every 8 records. A record the caller has no room for is
//!   refused: not acked, so the sender keeps it and resends it.
//! - [`E2eSource`], one per reliable flow at the source node: end-to-end sequence numbers and
//!   the flow's window of outstanding messages. The window is the client's credit; messages stay
//!   buffered until the sink reports them delivered, and are resent only when the sink has
//!   made no progress for a timeout well above a hop-by-hop recovery (a crashed node held them,
//!   or the route changed).
//! - [`E2eSink`], one per flow at the destination: a reorder buffer as large as the source's
//!   window that delivers each message once, in order, and only as fast as the client takes
//!   them; its acks say what was delivered (frees the source) and what is held (not resent).
//!
//! Intermediate nodes keep no per-flow state: they run only the link machines and forward a
//! record as soon as it is accepted, in whatever order it arrived.
//!
//! ```text
//!  client ─▶ E2eSource ─▶ RelSender ═link═▶ RelReceiver ─▶ RelSender ═link═▶ RelReceiver ─▶ E2eSink ─▶ client
//!             ▲  (resend on             ◀═ack/nack═                 ◀═ack/nack═                │
//!             └── no progress) ◀───────────── end-to-end ack (delivered, received, sack) ──────┘
//! ```
//!
//! # Nothing lost, memory bounded
//!
//! A record leaves a link sender's window only when the next hop acked it, and a hop acks
//! only what it has passed on (or, at the destination, taken into the sink). So a record is
//! always held by some hop, until the sink has it. A hop that crashes loses what it held; the
//! source still has every message the sink has not reported, and resends it on a path that
//! exists. Every buffer is bounded: a link's window, a flow's window at each end. When no path
//! exists for long, the source reports the flow [stalled](E2eEvent::Stalled), keeps at most its
//! window, refuses the client more (would-block), and resumes by itself when a path returns.
//!
//! # Call order
//!
//! Sending hop, per record: [`RelSender::handle_send`] (on `Err(WindowFull)` keep the record
//! and refuse it upstream). Per Ack or Nack from the peer: [`RelSender::handle_ack`] /
//! [`RelSender::handle_nack`]. Whenever [`RelSender::poll_timeout`] passes:
//! [`RelSender::handle_timeout`]. After any of these: [`RelSender::poll_transmit`] until
//! `None`, sending each (retransmissions with the `RETRANSMIT` flag). The window holds what the
//! congestion window does not let out yet.
//!
//! Receiving hop, per record: [`RelReceiver::classify`]; if new, pass it on and
//! [`RelReceiver::accept`] it, or [`RelReceiver::refuse`] it if there is no room; otherwise
//! [`RelReceiver::duplicate`]. Then, and whenever [`RelReceiver::poll_timeout`] passes, send
//! [`RelReceiver::poll_ack`] and [`RelReceiver::poll_nack`] (until `None`) back on the link.
//!
//! Source: [`E2eSource::handle_send`] per client message; [`E2eSource::handle_ack`] per
//! end-to-end ack; [`E2eSource::handle_timeout`] when [`E2eSource::poll_timeout`] passes, then
//! [`E2eSource::peek_resend`] / [`E2eSource::commit_resend`] while the link has room.
//! Destination: [`E2eSink::classify`] before acking the link record, [`E2eSink::handle_packet`],
//! then [`E2eSink::peek_deliver`] / [`E2eSink::consume`] while the client has room, and
//! [`E2eSink::poll_ack`] when due.
//!
//! The protocol, its parameters and the experiments are described in `docs/reliable.md`.

//= Amir et al., "Reliable Communication in Overlay Networks", DSN 2003
//# each overlay link runs its own reliable protocol (selective repeat, no FIFO ordering) ...
//# intermediate nodes keep no per-flow state, forward out of order; the end receiver reorders
//# by an end-to-end sequence number.

mod links;
mod params;
mod receiver;
mod rtt;
mod sender;
mod sink;
mod source;

#[cfg(test)]
mod tests;

pub use links::{RelFeedback, RelLinks, RelLinksLimits, RelTotals};
pub use params::{
    E2eParams, MAX_RTO, MIN_RTO, PACING_OVERHEAD, RelParams, RelReceiverLimits, RelSenderLimits,
};
pub use receiver::{RelClass, RelReceiver, RelReceiverCounters};
pub use rtt::RttEstimator;
pub use sender::{RelSendError, RelSender, RelSenderCounters, RelTransmission};
pub use sink::{E2eSink, E2eSinkCounters, SinkOutcome};
pub use source::{E2eEvent, E2eSendError, E2eSource, E2eSourceCounters};

/// Words of an end-to-end ack's selective bitmap: 1,024 messages above `received`, the
/// default window, so the source never resends what the sink holds.
pub const E2E_SACK_WORDS: usize = 16;

/// An end-to-end ack, from the destination's [`E2eSink`] to the source's [`E2eSource`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E2eAck {
    /// Every message up to and including this one was delivered to the client: the source
    /// frees them.
    pub delivered: u64,
    /// Every message up to and including this one is held or delivered: never resent.
    pub received: u64,
    /// Bit `i % 64` of word `i / 64`: `received + 1 + i` is held too.
    pub sack: [u64; E2E_SACK_WORDS],
}

impl E2eAck {
    /// An ack with the first 64 selective bits `sack` (tests and small windows).
    pub fn new(delivered: u64, received: u64, sack: u64) -> Self {
        let mut words = [0; E2E_SACK_WORDS];
        words[0] = sack;
        E2eAck {
            delivered,
            received,
            sack: words,
        }
    }

    /// Whether the ack says the sink holds or delivered `seq`.
    pub fn covers(&self, seq: u64) -> bool {
        if seq <= self.received {
            return true;
        }
        let i = seq - self.received - 1;
        i < (E2E_SACK_WORDS * 64) as u64 && self.sack[(i / 64) as usize] >> (i % 64) & 1 == 1
    }
}

/// Whether link sequence `a` comes after `b` (serial-number arithmetic, 32 bits).
pub(crate) fn seq_after(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 1 << 31
}
