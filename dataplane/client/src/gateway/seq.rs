//! [`SeqCheck`]: the egress gateway's check of the end-to-end sequence numbers the node
//! reports with each message (`Delivered::seq`), per (source, flow) stream.
//!
//! It only counts: the gateway delivers every message as it arrives, whatever the check says.
//! A node numbers a flow's messages from 0 as it takes them, so a number skipped means a
//! message lost in the overlay (or reordered, if it still comes, as a late one). Messages the
//! sending node refused (no route at the time) take no number and show no gap here; the
//! ingress gateway counts them (`node_dropped`).

use weft_shared::ids::FlowId;

use crate::service::Addr;

/// Streams tracked at once; a new stream beyond them replaces the oldest-created.
pub const TRACKED_STREAMS: usize = 8;

/// What one message's sequence number says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqEvent {
    /// The first message of a stream not tracked yet.
    NewStream,
    /// The next number expected.
    InOrder,
    /// Ahead of the next expected by `missing` numbers.
    Gap {
        /// Numbers skipped.
        missing: u64,
    },
    /// Below the next expected: reordered or duplicated.
    Late,
}

#[derive(Clone, Copy, Debug)]
struct Stream {
    from: Addr,
    flow: FlowId,
    next: u64,
}

/// Sequence tracking for up to [`TRACKED_STREAMS`] streams; no allocation.
#[derive(Clone, Debug, Default)]
pub struct SeqCheck {
    streams: [Option<Stream>; TRACKED_STREAMS],
    /// The slot a new stream takes when all are used.
    evict: usize,
}

impl SeqCheck {
    /// A check tracking nothing yet.
    pub fn new() -> Self {
        SeqCheck::default()
    }

    /// Records a message numbered `seq` of flow `flow` from `from`.
    pub fn record(&mut self, from: Addr, flow: FlowId, seq: u64) -> SeqEvent {
        let found = self
            .streams
            .iter_mut()
            .flatten()
            .find(|s| s.from == from && s.flow == flow);
        let Some(s) = found else {
            let slot = match self.streams.iter().position(Option::is_none) {
                Some(free) => free,
                None => {
                    let e = self.evict;
                    self.evict = (e + 1) % TRACKED_STREAMS;
                    e
                }
            };
            if let Some(dst) = self.streams.get_mut(slot) {
                *dst = Some(Stream {
                    from,
                    flow,
                    next: seq.saturating_add(1),
                });
            }
            return SeqEvent::NewStream;
        };
        if seq == s.next {
            s.next = seq.saturating_add(1);
            SeqEvent::InOrder
        } else if seq > s.next {
            let missing = seq - s.next;
            s.next = seq.saturating_add(1);
            SeqEvent::Gap { missing }
        } else {
            SeqEvent::Late
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_late_messages_per_stream() {
        let a: Addr = "1:10".parse().unwrap();
        let b: Addr = "2:10".parse().unwrap();
        let mut c = SeqCheck::new();
        assert_eq!(c.record(a, FlowId(1), 0), SeqEvent::NewStream);
        assert_eq!(c.record(a, FlowId(1), 1), SeqEvent::InOrder);
        assert_eq!(
            c.record(b, FlowId(1), 7),
            SeqEvent::NewStream,
            "another source"
        );
        assert_eq!(
            c.record(a, FlowId(2), 0),
            SeqEvent::NewStream,
            "another flow"
        );
        assert_eq!(c.record(a, FlowId(1), 4), SeqEvent::Gap { missing: 2 });
        assert_eq!(c.record(a, FlowId(1), 2), SeqEvent::Late);
        assert_eq!(c.record(a, FlowId(1), 5), SeqEvent::InOrder);
        assert_eq!(c.record(b, FlowId(1), 8), SeqEvent::InOrder);
    }

    #[test]
    fn a_new_stream_beyond_the_table_replaces_the_oldest() {
        let a: Addr = "1:10".parse().unwrap();
        let mut c = SeqCheck::new();
        for f in 0..TRACKED_STREAMS as u32 {
            assert_eq!(c.record(a, FlowId(f), 0), SeqEvent::NewStream);
        }
        assert_eq!(c.record(a, FlowId(99), 0), SeqEvent::NewStream);
        assert_eq!(
            c.record(a, FlowId(0), 1),
            SeqEvent::NewStream,
            "flow 0 was replaced"
        );
        assert_eq!(
            c.record(a, FlowId(2), 1),
            SeqEvent::InOrder,
            "flow 2 still tracked"
        );
    }
}
