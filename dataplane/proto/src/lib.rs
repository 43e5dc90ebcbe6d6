//! weft-proto: Weft's sans-IO link protocols and the per-core forwarding pipeline.
//!
//! Everything here is a state machine driven by `handle_packet(now, ..)`, `handle_timeout(now)`,
//! `poll_transmit(now, ..)`, `poll_timeout()` and `poll_event()`; it never reads a clock or
//! touches a socket, so the engine and the simulator run the same code. Built by the data-plane
//! issue; see the README for what exists today.

pub mod link_monitor;
