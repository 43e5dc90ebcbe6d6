//! The engine's clock: `CLOCK_MONOTONIC` in nanoseconds, read once per batch and passed to the
//! sans-IO code as a [`weft_shared::time::Instant`] (STYLE.md §2). All workers share the clock,
//! so times taken on one worker compare with times taken on another.

use nix::time::{ClockId, clock_gettime};
use weft_shared::time::Instant;

/// Now, from `CLOCK_MONOTONIC` (never 0 on a running system; 1 ns if the call failed).
pub fn now() -> Instant {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => {
            let ns = (ts.tv_sec() as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(ts.tv_nsec() as u64);
            Instant::from_nanos(ns.max(1))
        }
        Err(_) => Instant::from_nanos(1),
    }
}
