//! The event log: what the protocols decided (paths and links up and down, route changes, FIB
//! publishes, group sets and routes refused) and the timeline's events, with the time and node. Bounded: past
//! [`LOG_CAPACITY`] entries, further ones are only counted.

use std::fmt;

use serde::Serialize;
use weft_shared::time::Instant;

/// Most entries kept.
pub const LOG_CAPACITY: usize = 100_000;

/// One thing that happened at a node (or, for timeline events, to the network).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum LogEvent {
    /// A path of a link came up (the link monitor's decision).
    PathUp {
        /// Link id.
        link: u16,
        /// Path id.
        path: u8,
    },
    /// A path went down.
    PathDown {
        /// Link id.
        link: u16,
        /// Path id.
        path: u8,
    },
    /// The link's active path changed (`None`: no up path).
    ActivePath {
        /// Link id.
        link: u16,
        /// The new active path.
        path: Option<u8>,
    },
    /// The link got its first up path.
    LinkUp {
        /// Link id.
        link: u16,
    },
    /// The link lost its last up path.
    LinkDown {
        /// Link id.
        link: u16,
    },
    /// The neighbour across the link restarted.
    PeerRestarted {
        /// Link id.
        link: u16,
    },
    /// The neighbour's hellos do not match (config hash or versions).
    Mismatch {
        /// Link id.
        link: u16,
        /// Path id.
        path: u8,
    },
    /// The node's FIB changed its first hop towards `dst` (`None`: no route).
    RouteChanged {
        /// Destination node.
        dst: u16,
        /// The new first-hop link.
        next_hop: Option<u16>,
    },
    /// The node published a FIB with `routes` unicast routes.
    FibPublished {
        /// Number of destinations with a route.
        routes: usize,
        /// Multicast (group, source) entries.
        multicast: usize,
        /// Anycast entries.
        anycast: usize,
    },
    /// The group state refused the node's local groups (nothing changed).
    LocalGroupsRefused {
        /// Why.
        error: String,
    },
    /// The group routes did not all fit in the FIB just published (what fit is in it).
    GroupRoutesIncomplete {
        /// Why.
        error: String,
    },
    /// A timeline event was applied.
    Timeline {
        /// Its index in the scenario's (time-sorted) timeline.
        index: usize,
        /// What it did.
        what: String,
    },
}

/// A log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Virtual time in nanoseconds.
    pub at_ns: u64,
    /// The node (0 for timeline events).
    pub node: u16,
    /// What happened.
    pub event: LogEvent,
}

impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.at_ns as f64 / 1e6;
        write!(f, "{ms:>10.3} ms  ")?;
        if self.node != 0 {
            write!(f, "node {:>3}  ", self.node)?;
        } else {
            write!(f, "timeline  ")?;
        }
        match &self.event {
            LogEvent::PathUp { link, path } => write!(f, "link {link} path {path} up"),
            LogEvent::PathDown { link, path } => write!(f, "link {link} path {path} down"),
            LogEvent::ActivePath { link, path } => match path {
                Some(p) => write!(f, "link {link} sends on path {p}"),
                None => write!(f, "link {link} has no up path"),
            },
            LogEvent::LinkUp { link } => write!(f, "link {link} up"),
            LogEvent::LinkDown { link } => write!(f, "link {link} down"),
            LogEvent::PeerRestarted { link } => write!(f, "peer across link {link} restarted"),
            LogEvent::Mismatch { link, path } => write!(f, "link {link} path {path} mismatch"),
            LogEvent::RouteChanged { dst, next_hop } => match next_hop {
                Some(l) => write!(f, "route to node {dst} via link {l}"),
                None => write!(f, "no route to node {dst}"),
            },
            LogEvent::FibPublished {
                routes,
                multicast,
                anycast,
            } => {
                write!(f, "FIB published ({routes} routes")?;
                if multicast + anycast > 0 {
                    write!(f, ", {multicast} multicast, {anycast} anycast")?;
                }
                write!(f, ")")
            }
            LogEvent::LocalGroupsRefused { error } => write!(f, "local groups refused: {error}"),
            LogEvent::GroupRoutesIncomplete { error } => {
                write!(f, "group routes incomplete: {error}")
            }
            LogEvent::Timeline { index, what } => write!(f, "event {index}: {what}"),
        }
    }
}

/// The log so far.
#[derive(Clone, Debug, Default)]
pub struct Log {
    entries: Vec<LogEntry>,
    dropped: u64,
}

impl Log {
    pub(crate) fn push(&mut self, at: Instant, node: u16, event: LogEvent) {
        if self.entries.len() < LOG_CAPACITY {
            self.entries.push(LogEntry {
                at_ns: at.as_nanos(),
                node,
                event,
            });
        } else {
            self.dropped += 1;
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// Entries not kept because the log was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
