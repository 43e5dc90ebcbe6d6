//! weft-dataplane: the data-plane process (pinned io_uring workers driving `weft-proto`).
//!
//! Built by the data-plane issue; see the README for what exists today.

pub mod session;
pub mod uring;
