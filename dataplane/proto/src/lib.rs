//! weft-proto: Weft's sans-IO link protocols and the per-core forwarding pipeline.
//!
//! Everything here is a state machine driven by `handle_packet(now, ..)`, `handle_timeout(now)`,
//! `poll_transmit(now, ..)`, `poll_timeout()` and `poll_event()`; it never reads a clock or
//! touches a socket, so the engine and the simulator run the same code.
//!
//! - [`link_monitor`]: per-link hellos, RTT, loss, path up/down and the active path.
//! - [`auth`]: per-link AES-GCM sealing and opening in place, replay windows and key epochs.
//! - [`forward`]: the per-record pipeline (hello, control punt, deliver, forward, drops) and the
//!   [`LinkSender`](forward::LinkSender) that builds outgoing link packets.
//! - [`realtime`]: NM-Strikes, the real-time link protocol (spaced requests and retransmissions
//!   within a deadline) and the destination's deadline buffer.
//! - [`reliable`]: hop-by-hop ARQ with in-order exactly-once delivery at the destination and
//!   an end-to-end layer for flow control and crash recovery.

pub mod auth;
pub mod forward;
pub mod link_monitor;
pub mod link_slots;
pub mod realtime;
pub mod reliable;
