//! The gateways' counters: atomics the worker thread bumps ([`IngressCounters`],
//! [`EgressCounters`]) and the plain snapshots other threads print ([`IngressStats`],
//! [`EgressStats`]), as `name=value` text or JSON.
//!
//! Counters only grow, except `queued` (the ingress queue's length now).

use core::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Defines a struct of atomic counters, its snapshot struct with the same fields, `snapshot()`
/// and a `Display` that prints `name=value` pairs in field order.
macro_rules! counters {
    (
        $(#[$meta:meta])* $atomics:ident => $(#[$smeta:meta])* $stats:ident {
            $($(#[$fmeta:meta])* $field:ident,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $atomics {
            $($(#[$fmeta])* pub $field: AtomicU64,)*
        }

        $(#[$smeta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
        pub struct $stats {
            $($(#[$fmeta])* pub $field: u64,)*
        }

        impl $atomics {
            /// The values now (each read on its own: a snapshot taken while the gateway runs
            /// may be a few messages out of step between fields).
            pub fn snapshot(&self) -> $stats {
                $stats {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                }
            }
        }

        impl fmt::Display for $stats {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut sep = "";
                $(
                    write!(f, "{sep}{}={}", stringify!($field), self.$field)?;
                    sep = " ";
                )*
                let _ = sep;
                Ok(())
            }
        }
    };
}

counters! {
    /// What an ingress gateway did, updated as it runs.
    IngressCounters =>
    /// A snapshot of [`IngressCounters`].
    IngressStats {
        /// Datagrams received on the UDP socket.
        received,
        /// Their bytes.
        received_bytes,
        /// Messages handed to the node (one per datagram sent on).
        sent,
        /// Datagrams dropped for being larger than the node's payload limit.
        dropped_oversize,
        /// Datagrams dropped because the queue waiting for credit was full.
        dropped_queue_full,
        /// Datagrams still queued when the gateway stopped, and dropped.
        dropped_at_stop,
        /// Messages the local node took but then dropped, reported by its `Error` replies
        /// (best effort with no route to the destination at that moment).
        node_dropped,
        /// Times a datagram had to wait because the flow had no credit.
        credit_waits,
        /// Datagrams queued now, waiting for credit.
        queued,
        /// The most datagrams ever queued at once.
        queued_peak,
        /// Messages that arrived on the ingress gateway's own overlay port (not expected;
        /// discarded).
        unexpected,
    }
}

counters! {
    /// What an egress gateway did, updated as it runs.
    EgressCounters =>
    /// A snapshot of [`EgressCounters`].
    EgressStats {
        /// Messages delivered by the node for this mapping (to its port, or to its group's).
        delivered,
        /// Their bytes.
        delivered_bytes,
        /// Datagrams sent to the deliver address.
        sent,
        /// Datagrams the UDP socket refused to send (dropped; the error is logged).
        send_errors,
        /// Times the kernel reported that nothing listens at the deliver address (the datagram
        /// is retried once; such datagrams go nowhere until a receiver starts).
        refused,
        /// Messages cut to fit the buffer (never expected: the buffer holds the largest).
        truncated,
        /// Messages of the joined group for another of its ports (not this mapping's stream;
        /// discarded).
        other_port,
        /// Distinct (source, flow) streams seen.
        streams,
        /// Times a message's end-to-end sequence number skipped ahead of the next expected one.
        gaps,
        /// Sequence numbers skipped in those gaps: messages lost (or still to come, reordered).
        missing,
        /// Messages whose sequence number was below the next expected one (reordered or
        /// duplicated), delivered as they came.
        late,
    }
}

/// The counters of one mapping, of either kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum GatewayStats {
    /// An ingress mapping's.
    Ingress(IngressStats),
    /// An egress mapping's.
    Egress(EgressStats),
}

impl fmt::Display for GatewayStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayStats::Ingress(s) => s.fmt(f),
            GatewayStats::Egress(s) => s.fmt(f),
        }
    }
}

impl GatewayStats {
    /// One JSON object on one line: `{"mapping": .., "final": .., "role": "ingress", ..}`.
    pub fn to_json(&self, mapping: &str, last: bool) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            mapping: &'a str,
            #[serde(rename = "final")]
            last: bool,
            #[serde(flatten)]
            stats: &'a GatewayStats,
        }
        let line = Line {
            mapping,
            last,
            stats: self,
        };
        // Serialising plain numbers and strings cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    }
}

/// Adds `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Sets a gauge.
pub(crate) fn set(c: &AtomicU64, v: u64) {
    c.store(v, Ordering::Relaxed);
}

/// Raises a high-water mark to `v`.
pub(crate) fn raise(c: &AtomicU64, v: u64) {
    c.fetch_max(v, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_print_as_text_and_json() {
        let c = EgressCounters::default();
        add(&c.delivered, 3);
        add(&c.gaps, 1);
        let s = GatewayStats::Egress(c.snapshot());
        let text = s.to_string();
        assert!(
            text.starts_with("delivered=3 delivered_bytes=0 sent=0"),
            "{text}"
        );
        assert!(text.ends_with("gaps=1 missing=0 late=0"), "{text}");
        let json = serde_json::to_value(s).unwrap_or_default();
        assert_eq!(json["role"], "egress");
        assert_eq!(json["delivered"], 3);
        let line: serde_json::Value =
            serde_json::from_str(&s.to_json("egress x", true)).unwrap_or_default();
        assert_eq!(line["mapping"], "egress x");
        assert_eq!(line["final"], true);
        assert_eq!(line["role"], "egress");
        assert_eq!(line["gaps"], 1);
        let i = IngressCounters::default();
        raise(&i.queued_peak, 5);
        raise(&i.queued_peak, 2);
        set(&i.queued, 4);
        assert_eq!((i.snapshot().queued_peak, i.snapshot().queued), (5, 4));
    }
}
