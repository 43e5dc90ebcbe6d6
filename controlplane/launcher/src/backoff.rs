//! The control plane's restart delays: exponential backoff that forgets after a healthy run.
//!
//! A control plane that exits at once would otherwise be restarted in a hot loop. The first
//! restart waits `min`, each further one twice as long, up to `max`. A run of at least
//! `healthy` counts as recovery: the next exit waits `min` again. The type holds no clock; the
//! supervisor passes how long the process ran.

use std::time::Duration;

/// The restart delay of the first restart, by default.
pub const DEFAULT_MIN: Duration = Duration::from_millis(100);
/// The longest restart delay, by default.
pub const DEFAULT_MAX: Duration = Duration::from_secs(5);
/// How long a process must run for its next exit to be treated as a fresh failure.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// Restart delays doubling from `min` to `max`, reset after a run of `healthy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    healthy: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `min` doubling up to `max` (`max` below `min` is raised to `min`), forgotten
    /// after a run of `healthy`.
    pub fn new(min: Duration, max: Duration, healthy: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            healthy,
            next: min,
        }
    }

    /// The delay before restarting a process that exited after running for `ran`.
    pub fn on_exit(&mut self, ran: Duration) -> Duration {
        if ran >= self.healthy {
            self.next = self.min;
        }
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_to_the_cap_and_resets_after_a_healthy_run() {
        let mut b = Backoff::new(DEFAULT_MIN, DEFAULT_MAX, HEALTHY_AFTER);
        let quick: Vec<u128> = (0..9).map(|_| b.on_exit(MS).as_millis()).collect();
        assert_eq!(quick, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        // Just short of healthy: still backing off.
        assert_eq!(b.on_exit(HEALTHY_AFTER - MS).as_millis(), 5000);
        assert_eq!(b.on_exit(HEALTHY_AFTER).as_millis(), 100);
        assert_eq!(b.on_exit(MS).as_millis(), 200);
    }

    #[test]
    fn a_max_below_min_is_min() {
        let mut b = Backoff::new(300 * MS, 100 * MS, HEALTHY_AFTER);
        assert_eq!(b.on_exit(MS), 300 * MS);
        assert_eq!(b.on_exit(MS), 300 * MS);
    }
}
