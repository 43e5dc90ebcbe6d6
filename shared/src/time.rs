//! Time as an input: a monotonic nanosecond instant that only drivers create.
//!
//! Sans-IO code never reads a clock (STYLE.md §2, enforced by `clippy.toml`). The engine reads
//! the clock once per batch, the control plane once per loop turn and the simulator advances a
//! virtual clock; all of them hand the value in as an [`Instant`].

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in monotonic time, in nanoseconds since an arbitrary per-process origin.
///
/// Instants from different hosts (or different processes) are not comparable; nothing on the
/// wire carries one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin (time zero).
    pub const ZERO: Instant = Instant(0);
    /// A time later than any real deadline; used as "never".
    pub const FAR_FUTURE: Instant = Instant(u64::MAX);

    /// An instant `ns` nanoseconds after the origin.
    pub const fn from_nanos(ns: u64) -> Self {
        Instant(ns)
    }

    /// An instant `us` microseconds after the origin (saturating).
    pub const fn from_micros(us: u64) -> Self {
        Instant(us.saturating_mul(1_000))
    }

    /// An instant `ms` milliseconds after the origin (saturating).
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Microseconds since the origin, rounded down.
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at [`Instant::FAR_FUTURE`].
    pub fn saturating_add(self, d: Duration) -> Instant {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ns))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(5);
        assert_eq!(t.as_nanos(), 5_000_000);
        assert_eq!(t + Duration::from_micros(1), Instant::from_nanos(5_001_000));
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(
            Instant::FAR_FUTURE + Duration::from_secs(1),
            Instant::FAR_FUTURE
        );
        assert_eq!(t - Instant::from_millis(2), Duration::from_millis(3));
    }
}
