//! What the monitor reports to the engine, and the bounded queue that holds it until polled.

use weft_shared::ids::{Incarnation, PathId};

use super::config::VersionRange;

/// Why a path went down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathDownReason {
    /// No hello arrived for `hello_interval + dead_after`.
    Silent,
    /// The peer's config hash or versions stopped matching ours.
    Mismatch,
}

/// How the peer's hello disagrees with this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The two nodes share no wire version.
    Version {
        /// Our range.
        ours: VersionRange,
        /// The peer's range.
        theirs: VersionRange,
    },
    /// The two nodes run different overlay configs.
    ConfigHash {
        /// Our config hash.
        ours: u64,
        /// The peer's config hash.
        theirs: u64,
    },
}

/// A change the engine (and through it the control plane) should know about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// The path came up.
    PathUp(PathId),
    /// The path went down.
    PathDown {
        /// The path.
        path: PathId,
        /// Why.
        reason: PathDownReason,
    },
    /// The path the link sends on changed; `None` means the link has no up path.
    ActivePathChanged {
        /// The previous active path.
        from: Option<PathId>,
        /// The new active path.
        to: Option<PathId>,
    },
    /// The link has its first up path (follows the `ActivePathChanged` from `None`).
    LinkUp,
    /// The link lost its last up path (follows the `ActivePathChanged` to `None`).
    LinkDown,
    /// The peer's data plane restarted: its sequence numbers and clock start over. Every path's
    /// sequence, loss and echo tracking was reset; path states are kept.
    PeerRestarted {
        /// The incarnation seen before.
        old: Incarnation,
        /// The new one.
        new: Incarnation,
    },
    /// The path entered [`PathState::Mismatch`](super::PathState::Mismatch): it stays down until
    /// the peer's hellos match again. Reported once per entry.
    Mismatch {
        /// The path.
        path: PathId,
        /// What differs.
        mismatch: Mismatch,
    },
}

/// Capacity of the event queue. One call produces at most 10 events (all 8 paths dying in one
/// `handle_timeout`, then `ActivePathChanged` and `LinkDown`), so an engine that drains events
/// after each call never fills it.
pub(super) const EVENT_QUEUE_LEN: usize = 32;

/// A bounded FIFO of events. Drop policy: when full, the newest event is dropped and counted; the
/// monitor's state stays queryable, so the engine can resynchronise from
/// [`LinkMonitor::path_stats`](super::LinkMonitor::path_stats).
#[derive(Clone, Debug)]
pub(super) struct EventQueue {
    slots: [Option<LinkEvent>; EVENT_QUEUE_LEN],
    head: usize,
    len: usize,
    dropped: u64,
}

impl EventQueue {
    pub(super) const fn new() -> Self {
        EventQueue {
            slots: [None; EVENT_QUEUE_LEN],
            head: 0,
            len: 0,
            dropped: 0,
        }
    }

    pub(super) fn push(&mut self, event: LinkEvent) {
        if self.len == EVENT_QUEUE_LEN {
            self.dropped += 1;
            return;
        }
        self.slots[(self.head + self.len) % EVENT_QUEUE_LEN] = Some(event);
        self.len += 1;
    }

    pub(super) fn pop(&mut self) -> Option<LinkEvent> {
        if self.len == 0 {
            return None;
        }
        let event = self.slots[self.head].take();
        self.head = (self.head + 1) % EVENT_QUEUE_LEN;
        self.len -= 1;
        event
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn queue_is_fifo_and_drops_the_newest_when_full() {
        let mut q = EventQueue::new();
        for _ in 0..3 {
            q.push(LinkEvent::LinkUp);
            q.push(LinkEvent::LinkDown);
            assert_eq!(q.pop(), Some(LinkEvent::LinkUp));
            assert_eq!(q.pop(), Some(LinkEvent::LinkDown));
            assert_eq!(q.pop(), None);
        }
        for _ in 0..EVENT_QUEUE_LEN {
            q.push(LinkEvent::LinkUp);
        }
        q.push(LinkEvent::LinkDown);
        assert_eq!(q.dropped(), 1);
        let mut n = 0;
        while let Some(e) = q.pop() {
            assert_eq!(e, LinkEvent::LinkUp);
            n += 1;
        }
        assert_eq!(n, EVENT_QUEUE_LEN);
    }
}
