//! Protocol experiments in virtual time: small, deterministic, seeded harnesses that run one
//! protocol's real sans-IO state machines over [`crate::linkmodel`] links, with figures to check
//! against the papers' formulas. The simulator ([`crate::sim`]) runs whole overlays; these run
//! one mechanism at the scale a statistical claim needs (hundreds of thousands of packets).
//!
//! - [`reliable`]: the reliable service over a small overlay with loss, reordering, link cuts
//!   and node crashes: hop-by-hop against end-to-end recovery, exactly-once in-order delivery,
//!   bounded memory (`docs/reliable.md`).
//! - [`strikes`]: NM-Strikes over a chain of links into a deadline buffer: on-time ratio,
//!   overhead against 1 + M·p, latency percentiles (`docs/realtime.md`).

pub mod queue;
pub mod reliable;
pub mod strikes;
