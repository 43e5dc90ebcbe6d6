//! The monitor's settings: timer values from the overlay config's `[timers]` section and what
//! this node announces about itself in every hello.
//!
//! [`LinkMonitor::new`](super::LinkMonitor::new) checks the settings once and refuses values the
//! monitor cannot work with, so nothing later re-validates them.

use core::fmt;
use core::time::Duration;

use weft_shared::config::Timers;
use weft_shared::ids::{Incarnation, MAX_PATHS_PER_LINK};

use super::seq_window::LOSS_WINDOW;

/// Timer values and limits for one link's path monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkMonitorConfig {
    /// Number of paths the link has, 1..=[`MAX_PATHS_PER_LINK`]. Path ids are `0..path_count`
    /// and their order is the preference order: the active path is the first one that is up.
    pub path_count: u8,
    /// How often a hello is sent on each path (default 10 ms).
    pub hello_interval: Duration,
    /// An up path goes down when no hello arrived for `dead_after` past the moment the next one
    /// was due, i.e. `hello_interval + dead_after` after the last one (default 100 ms). Once a path
    /// falls silent, it is declared down between `dead_after` and `dead_after + hello_interval`
    /// later.
    pub dead_after: Duration,
    /// A path comes up once the peer's last `up_after_hellos` hellos on it, all sent after the path
    /// was last down, have arrived (default 3; at most 100). Losing one restarts the count, which
    /// is the hysteresis that keeps a failing path from flapping.
    pub up_after_hellos: u8,
    /// RTT samples above this are discarded as implausible (default 5 s).
    pub max_rtt: Duration,
    /// Mixed into the per-path phase offsets so that a node's links do not send their hellos in
    /// lockstep either; the engine passes something stable such as the link id.
    pub phase_seed: u64,
}

impl Default for LinkMonitorConfig {
    fn default() -> Self {
        LinkMonitorConfig {
            path_count: 1,
            hello_interval: Duration::from_millis(10),
            dead_after: Duration::from_millis(100),
            up_after_hellos: 3,
            max_rtt: Duration::from_secs(5),
            phase_seed: 0,
        }
    }
}

/// A range of wire versions, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VersionRange {
    /// Lowest version supported.
    pub min: u8,
    /// Highest version supported.
    pub max: u8,
}

impl VersionRange {
    /// Whether the two ranges share at least one version (an empty range shares none).
    pub fn overlaps(self, other: VersionRange) -> bool {
        self.min.max(other.min) <= self.max.min(other.max)
    }
}

/// What this node says about itself in every hello; a peer that disagrees is a mismatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalIdentity {
    /// This data plane's incarnation (changes on every start).
    pub incarnation: Incarnation,
    /// Hash of the overlay config this node runs; peers must run the same one.
    pub config_hash: u64,
    /// Wire versions this build speaks; a peer must share at least one.
    pub versions: VersionRange,
}

/// A [`LinkMonitorConfig`] value the monitor cannot work with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMonitorConfigError {
    /// `path_count` is 0 or above [`MAX_PATHS_PER_LINK`].
    PathCount(u8),
    /// `hello_interval` is zero (or below one microsecond).
    HelloInterval(Duration),
    /// `dead_after` is zero.
    DeadAfter(Duration),
    /// `up_after_hellos` is 0 or above 100.
    UpAfterHellos(u8),
    /// `max_rtt` is zero or does not fit the u32 microseconds of the echo hold time.
    MaxRtt(Duration),
    /// The local version range is empty (`min > max`).
    LocalVersions(VersionRange),
}

impl fmt::Display for LinkMonitorConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PathCount(n) => {
                write!(f, "path count {n} is outside 1..={MAX_PATHS_PER_LINK}")
            }
            Self::HelloInterval(d) => write!(f, "hello interval {d:?} is below 1 us"),
            Self::DeadAfter(d) => write!(f, "dead-after {d:?} must be positive"),
            Self::UpAfterHellos(n) => write!(
                f,
                "up-after-hellos {n} is outside 1..={MAX_UP_AFTER_HELLOS}"
            ),
            Self::MaxRtt(d) => write!(f, "max RTT {d:?} is zero or above u32::MAX us"),
            Self::LocalVersions(v) => {
                write!(f, "local version range {}..={} is empty", v.min, v.max)
            }
        }
    }
}

impl std::error::Error for LinkMonitorConfigError {}

/// Most hellos `up_after_hellos` may ask for: the proof must fit well inside the loss window.
pub(super) const MAX_UP_AFTER_HELLOS: u8 = 100;
const _: () = assert!((MAX_UP_AFTER_HELLOS as u32) < LOSS_WINDOW);

impl LinkMonitorConfig {
    /// The settings for a link with `path_count` paths from the overlay config's `[timers]`
    /// (`hello_interval_ms`, `path_dead_after_ms`, `path_up_after_hellos`); the rest default.
    pub fn from_timers(timers: &Timers, path_count: u8, phase_seed: u64) -> Self {
        LinkMonitorConfig {
            path_count,
            hello_interval: timers.hello_interval(),
            dead_after: timers.path_dead_after(),
            up_after_hellos: u8::try_from(timers.path_up_after_hellos()).unwrap_or(u8::MAX),
            phase_seed,
            ..LinkMonitorConfig::default()
        }
    }

    /// Checks every value once; the monitor relies on the result.
    pub(super) fn check(&self, local: &LocalIdentity) -> Result<(), LinkMonitorConfigError> {
        if self.path_count == 0 || self.path_count > MAX_PATHS_PER_LINK {
            return Err(LinkMonitorConfigError::PathCount(self.path_count));
        }
        if self.hello_interval < Duration::from_micros(1) {
            return Err(LinkMonitorConfigError::HelloInterval(self.hello_interval));
        }
        if self.dead_after.is_zero() {
            return Err(LinkMonitorConfigError::DeadAfter(self.dead_after));
        }
        if self.up_after_hellos == 0 || self.up_after_hellos > MAX_UP_AFTER_HELLOS {
            return Err(LinkMonitorConfigError::UpAfterHellos(self.up_after_hellos));
        }
        if self.max_rtt.is_zero() || self.max_rtt.as_micros() > u128::from(u32::MAX) {
            return Err(LinkMonitorConfigError::MaxRtt(self.max_rtt));
        }
        if local.versions.min > local.versions.max {
            return Err(LinkMonitorConfigError::LocalVersions(local.versions));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    fn local() -> LocalIdentity {
        LocalIdentity {
            incarnation: Incarnation(1),
            config_hash: 7,
            versions: VersionRange { min: 1, max: 1 },
        }
    }

    #[test]
    fn defaults_pass_and_bad_values_are_named() {
        let ok = LinkMonitorConfig::default();
        assert_eq!(ok.check(&local()), Ok(()));
        let bad = LinkMonitorConfig {
            path_count: 9,
            ..ok
        };
        assert_eq!(
            bad.check(&local()),
            Err(LinkMonitorConfigError::PathCount(9))
        );
        let bad = LinkMonitorConfig {
            hello_interval: Duration::ZERO,
            ..ok
        };
        assert!(matches!(
            bad.check(&local()),
            Err(LinkMonitorConfigError::HelloInterval(_))
        ));
        let bad = LinkMonitorConfig {
            up_after_hellos: 101,
            ..ok
        };
        assert_eq!(
            bad.check(&local()),
            Err(LinkMonitorConfigError::UpAfterHellos(101))
        );
        let bad = LinkMonitorConfig {
            dead_after: Duration::ZERO,
            ..ok
        };
        assert!(matches!(
            bad.check(&local()),
            Err(LinkMonitorConfigError::DeadAfter(_))
        ));
        let bad = LinkMonitorConfig {
            max_rtt: Duration::from_secs(5000),
            ..ok
        };
        assert!(matches!(
            bad.check(&local()),
            Err(LinkMonitorConfigError::MaxRtt(_))
        ));
        let empty = LocalIdentity {
            versions: VersionRange { min: 2, max: 1 },
            ..local()
        };
        assert!(ok.check(&empty).is_err());
    }

    #[test]
    fn overlay_timer_defaults_are_the_monitor_defaults() {
        let from = LinkMonitorConfig::from_timers(&Timers::default(), 1, 0);
        assert_eq!(from, LinkMonitorConfig::default());
        assert_eq!(from.check(&local()), Ok(()));
    }

    #[test]
    fn version_ranges_overlap_only_when_they_share_a_version() {
        let r = |min, max| VersionRange { min, max };
        assert!(r(1, 3).overlaps(r(3, 5)));
        assert!(r(2, 2).overlaps(r(1, 4)));
        assert!(!r(1, 2).overlaps(r(3, 4)));
        assert!(!r(3, 4).overlaps(r(1, 2)));
        assert!(!r(2, 1).overlaps(r(1, 2)), "an empty range shares nothing");
    }
}
