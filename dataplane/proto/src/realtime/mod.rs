//! NM-Strikes, the real-time link protocol (`link_proto` 2): deadline-bounded recovery on every
//! overlay link, and the destination's deadline buffer.
//!
//! Three sans-IO state machines, each with bounded memory sized at construction and a counter
//! for every drop:
//!
//! - [`RtSender`], one per (link, direction, lane) on the sending node: numbers outgoing
//!   real-time data records (`link_seq`), keeps recent records in a ring, and answers the
//!   *first* request for a sequence with M retransmissions spaced in time, the first at once.
//! - [`RtReceiver`], its peer on the receiving node: suppresses duplicates, and on a gap
//!   schedules N requests for each missing sequence, spaced in time, cancelled when the packet
//!   arrives. Requests go out batched in Nack records.
//! - [`DeadlineBuffer`], one per flow at the destination: releases messages in end-to-end order
//!   at origin + deadline, or as soon as order allows, and counts on-time, recovered, late, lost
//!   and duplicate messages with a latency histogram ([`FlowStats`]).
//!
//! Nothing is requested or sent that can no longer arrive in time: every packet carries an
//! [`RtMeta`] whose `deadline` is the latest local time at which the packet is still useful at the
//! receiving end of this link, and both ends compare it with the link's one-way delay.
//!
//! ```text
//!   sender hop                                        receiver hop
//!   handle_send ──data(link_seq)───────────X (lost)
//!               ──data(link_seq+1)──────────────────▶ handle_packet: gap, schedule N requests
//!                                                     ├ +reorder allowance  ─┐
//!   handle_nack ◀───────────────Nack(link_seq)─────── ├ +request spacing     │ poll_nack
//!     first request only: M copies                    └ +request spacing    ─┘ (cancelled on
//!   poll_transmit ──copy 1 (at once)────────────────▶ handle_packet: filled, arrival)
//!                 ──copy 2 (+retransmit spacing)────▶ duplicate, suppressed
//! ```
//!
//! # Call order
//!
//! Sending node, per real-time record to send on the link: [`RtSender::handle_send`] (it returns
//! the `link_seq` to stamp; on `Err` the record is dropped and counted). Per Nack record received
//! for that sequence space: [`RtSender::handle_nack`]. Then, and whenever
//! [`RtSender::poll_timeout`] passes, [`RtSender::poll_transmit`] until it returns `None`, sending
//! each copy with the `RETRANSMIT` record flag.
//!
//! Receiving node, per real-time data record: [`RtReceiver::handle_packet`], then pass the record
//! on only if the outcome [`is_accepted`](RxOutcome::is_accepted). Whenever
//! [`RtReceiver::poll_timeout`] passes: [`RtReceiver::handle_timeout`]. After either, send what
//! [`RtReceiver::poll_nack`] returns until `None`, as Feedback packets on the reverse direction.
//!
//! Destination, per message of a real-time flow: [`DeadlineBuffer::handle_packet`], then
//! [`DeadlineBuffer::poll_release`] until `None`; again whenever
//! [`DeadlineBuffer::poll_timeout`] passes.
//!
//! ```no_run
//! use std::time::Duration;
//! use weft_proto::realtime::{ReceiverLimits, RtMeta, RtParams, RtReceiver, RtSender, SenderLimits};
//! use weft_shared::time::Instant;
//! use weft_shared::wire::Strikes;
//!
//! let params = RtParams::for_link(Duration::from_millis(10));
//! let mut tx = RtSender::new(params, SenderLimits::default());
//! let mut rx = RtReceiver::new(params, ReceiverLimits::default());
//! let now = Instant::from_millis(1);
//! let meta = RtMeta {
//!     strikes: Strikes::new(3, 3).unwrap_or(Strikes::NONE),
//!     deadline: now + Duration::from_millis(150),
//! };
//! if let Ok(link_seq) = tx.handle_send(now, meta, b"record body") {
//!     // ... the record crosses the link ...
//!     let arrived = now + Duration::from_millis(10);
//!     if rx.handle_packet(arrived, link_seq, meta, false).is_accepted() { /* forward it */ }
//!     while let Some(nack) = rx.poll_nack() {
//!         // ... the nack crosses back ...
//!         tx.handle_nack(arrived + Duration::from_millis(10), nack.seqs());
//!     }
//!     while let Some(copy) = tx.poll_transmit(arrived + Duration::from_millis(10)) {
//!         let _ = (copy.link_seq, copy.record); // send with RETRANSMIT set
//!     }
//! }
//! ```
//!
//! The protocol, its parameters and the experiment figures are described in `docs/realtime.md`.

//= Babay et al., "Structured Overlay Networks for a New Generation of Internet Services", IV-A
//# When the receiver detects an out of order packet, it schedules N retransmission requests for
//# each missing packet. [...] The sender, upon receipt of the first request for a
//# retransmission, will schedule M retransmissions, also spaced to avoid correlated loss.

mod deadline;
mod histogram;
mod links;
mod params;
mod receiver;
mod sender;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests;

use weft_shared::time::Instant;
use weft_shared::wire::Strikes;

pub use deadline::{ArrivalOutcome, DeadlineBuffer, DeadlineParams, FlowStats, Release};
pub use histogram::LatencyHistogram;
pub use links::{RtLinks, RtLinksLimits, RtTotals};
pub use params::{MIN_SPACING, ReceiverLimits, RtParams, SenderLimits};
pub use receiver::{ReceiverCounters, RtReceiver, RxOutcome};
pub use sender::{Retransmission, RtSendError, RtSender, SenderCounters};

/// What the link protocol needs to know about one real-time packet, from its overlay header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtMeta {
    /// The flow's strikes: N requests per missing packet, M retransmissions per request.
    pub strikes: Strikes,
    /// The latest time, on this node's clock, at which the packet is still useful when it
    /// arrives at the receiving end of this link; [`Instant::FAR_FUTURE`] for no deadline.
    ///
    /// The caller derives it from the overlay header: `now + remaining_us` at the receiving
    /// node (the age already counts the link just crossed), less the latency still ahead to the
    /// destination when the caller knows it (the route's cost). At the destination it is the
    /// message's origin time + the flow's deadline.
    pub deadline: Instant,
}

/// Whether sequence `a` comes after `b` in serial-number arithmetic (RFC 1982).
pub(crate) fn seq_after(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 1 << 31
}
