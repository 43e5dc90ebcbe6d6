//! The monitor's timers: a fixed table indexed by (timer kind, path); the next wakeup is its
//! minimum (STYLE.md §3).

use weft_shared::ids::{MAX_PATHS_PER_LINK, PathId};
use weft_shared::time::Instant;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TimerKind {
    /// The path's next hello is due.
    Hello,
    /// The path, while up, is declared down if no hello arrives by then.
    Dead,
}

impl TimerKind {
    const COUNT: usize = 2;
}

const PATHS: usize = MAX_PATHS_PER_LINK as usize;

/// One timer of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Timer {
    /// What it is for.
    pub(super) kind: TimerKind,
    /// Which path it belongs to.
    pub(super) path: PathId,
}

impl Timer {
    fn index(self) -> usize {
        self.kind as usize * PATHS + usize::from(self.path.get())
    }
}

/// Deadlines for every (kind, path); `None` is a stopped timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TimerTable {
    deadlines: [Option<Instant>; TimerKind::COUNT * PATHS],
}

impl TimerTable {
    pub(super) const fn new() -> Self {
        TimerTable {
            deadlines: [None; TimerKind::COUNT * PATHS],
        }
    }

    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// Whether `timer` is running and due at `now`.
    pub(super) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest deadline of any running timer.
    pub(super) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_minimum_of_running_timers() {
        let mut t = TimerTable::new();
        let p = |i| PathId::new(i).unwrap();
        assert_eq!(t.next(), None);
        t.set(
            Timer {
                kind: TimerKind::Hello,
                path: p(7),
            },
            Instant::from_millis(30),
        );
        t.set(
            Timer {
                kind: TimerKind::Dead,
                path: p(0),
            },
            Instant::from_millis(20),
        );
        t.set(
            Timer {
                kind: TimerKind::Dead,
                path: p(7),
            },
            Instant::from_millis(40),
        );
        assert_eq!(t.next(), Some(Instant::from_millis(20)));
        assert!(t.is_expired(
            Timer {
                kind: TimerKind::Dead,
                path: p(0)
            },
            Instant::from_millis(20)
        ));
        assert!(!t.is_expired(
            Timer {
                kind: TimerKind::Hello,
                path: p(7)
            },
            Instant::from_millis(20)
        ));
        t.stop(Timer {
            kind: TimerKind::Dead,
            path: p(0),
        });
        assert_eq!(t.next(), Some(Instant::from_millis(30)));
        assert_eq!(
            t.get(Timer {
                kind: TimerKind::Dead,
                path: p(7)
            }),
            Some(Instant::from_millis(40))
        );
    }
}
