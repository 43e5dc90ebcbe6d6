//! The bounded queue of delivered messages that arrive while the client waits for something
//! else (a reply, a credit, room in the socket).
//!
//! Storage is allocated once at connect: a byte ring for payloads and a ring of message
//! headers. Both are bounded ([`ReceiveQueueLimits`]). When a message does not fit, the queue
//! refuses it and the client stops reading the socket, leaving the message (and everything
//! after it) in the node's hands, so the node's backpressure applies. Nothing is dropped.

use std::collections::VecDeque;

use weft_shared::ids::{FlowId, Port};
use weft_shared::session::{Deliver, DeliveredTo, MAX_PAYLOAD};

use crate::service::Addr;

/// Bounds of the queue of delivered messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiveQueueLimits {
    /// Messages queued at most.
    pub messages: usize,
    /// Payload bytes queued at most (raised to [`MAX_PAYLOAD`] so any one message fits).
    pub bytes: usize,
}

impl Default for ReceiveQueueLimits {
    /// 4,096 messages and 4 MiB of payload.
    fn default() -> Self {
        ReceiveQueueLimits {
            messages: 4096,
            bytes: 4 << 20,
        }
    }
}

/// A delivered message, as `recv` returns it; the payload is in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The sending client.
    pub from: Addr,
    /// The local port it was addressed to (for group traffic, the group's destination port,
    /// which this client need not have bound).
    pub to_port: Port,
    /// Whether it was addressed to this node or to a group this client joined.
    pub to: DeliveredTo,
    /// The network flow id, chosen by the source node.
    pub flow: FlowId,
    /// The end-to-end sequence number within the flow.
    pub seq: u64,
    /// Time since the source sent it, in microseconds, accumulated hop by hop by the nodes.
    pub age_us: u32,
    /// Payload bytes written to the caller's buffer.
    pub len: usize,
    /// Whether the payload was longer than the caller's buffer and was cut to fit (like a
    /// datagram socket's `MSG_TRUNC`); the rest is lost.
    pub truncated: bool,
}

impl Delivered {
    /// The metadata of `d`, with `len` and `truncated` for a copy into a buffer of `cap` bytes.
    pub(crate) fn from_deliver(d: &Deliver<'_>, cap: usize) -> Self {
        let len = d.payload.len().min(cap);
        Delivered {
            from: Addr {
                node: d.source_node,
                port: d.source_port,
            },
            to_port: d.local_port,
            to: d.to,
            flow: d.flow,
            seq: d.seq,
            age_us: d.age_us,
            len,
            truncated: len < d.payload.len(),
        }
    }
}

/// Copies `d` into `buf`, cutting it if `buf` is short.
pub(crate) fn deliver_into(d: &Deliver<'_>, buf: &mut [u8]) -> Delivered {
    let meta = Delivered::from_deliver(d, buf.len());
    if let (Some(dst), Some(src)) = (buf.get_mut(..meta.len), d.payload.get(..meta.len)) {
        dst.copy_from_slice(src);
    }
    meta
}

/// One queued message: its metadata and where its payload sits in the byte ring.
#[derive(Clone, Copy, Debug)]
struct Entry {
    meta: Delivered,
    /// The payload's start as a virtual position (grows forever; the ring index is `pos % cap`).
    pos: u64,
}

/// The bounded queue. Payloads are stored contiguously: one that would cross the end of the
/// ring starts at its beginning instead, and the skipped bytes count as used until the message
/// before them is taken.
#[derive(Debug)]
pub(crate) struct DeliverQueue {
    entries: VecDeque<Entry>,
    max_messages: usize,
    ring: Box<[u8]>,
    /// Virtual position after the newest payload.
    tail: u64,
    /// Payload bytes queued (without skipped bytes).
    bytes: usize,
}

impl DeliverQueue {
    /// An empty queue with these bounds; the only allocation it makes.
    pub(crate) fn new(limits: ReceiveQueueLimits) -> Self {
        let max_messages = limits.messages.max(1);
        DeliverQueue {
            entries: VecDeque::with_capacity(max_messages),
            max_messages,
            ring: vec![0; limits.bytes.max(MAX_PAYLOAD)].into_boxed_slice(),
            tail: 0,
            bytes: 0,
        }
    }

    /// Messages queued.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Payload bytes queued.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the queue is empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where a payload of `len` bytes would start, if it fits.
    fn place(&self, len: usize) -> Option<u64> {
        if self.entries.len() >= self.max_messages {
            return None;
        }
        let cap = self.ring.len() as u64;
        let head = self.entries.front().map_or(self.tail, |e| e.pos);
        let used = self.tail - head;
        let offset = self.tail % cap;
        let len = len as u64;
        // A payload that would cross the ring's end starts at its beginning instead.
        let skip = if offset + len > cap { cap - offset } else { 0 };
        (used + skip + len <= cap).then_some(self.tail + skip)
    }

    /// Queues `d`; `false` (nothing queued) if the queue is full.
    pub(crate) fn push(&mut self, d: &Deliver<'_>) -> bool {
        let len = d.payload.len();
        let Some(pos) = self.place(len) else {
            return false;
        };
        let cap = self.ring.len() as u64;
        let start = usize::try_from(pos % cap).unwrap_or(0);
        let Some(dst) = self.ring.get_mut(start..start + len) else {
            return false;
        };
        dst.copy_from_slice(d.payload);
        self.entries.push_back(Entry {
            meta: Delivered::from_deliver(d, len),
            pos,
        });
        self.tail = pos + len as u64;
        self.bytes += len;
        true
    }

    /// Takes the oldest message, copying its payload into `buf` (cut to fit).
    pub(crate) fn pop(&mut self, buf: &mut [u8]) -> Option<Delivered> {
        let e = self.entries.pop_front()?;
        let full = e.meta.len;
        let cap = self.ring.len() as u64;
        let start = usize::try_from(e.pos % cap).unwrap_or(0);
        let len = full.min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..len), self.ring.get(start..start + len)) {
            dst.copy_from_slice(src);
        }
        self.bytes -= full;
        if self.entries.is_empty() {
            // Start over at the ring's beginning: the next payloads need not wrap.
            self.tail = 0;
        }
        Some(Delivered {
            len,
            truncated: len < full,
            ..e.meta
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use weft_shared::ids::NodeId;

    use super::*;

    fn deliver(seq: u64, payload: &[u8]) -> Deliver<'_> {
        Deliver {
            local_port: Port(5),
            to: DeliveredTo::Node,
            source_node: NodeId::new(2).unwrap(),
            source_port: Port(9),
            flow: FlowId(1),
            seq,
            age_us: 3,
            payload,
        }
    }

    #[test]
    fn bounded_by_messages_and_order_kept() {
        let mut q = DeliverQueue::new(ReceiveQueueLimits {
            messages: 3,
            bytes: 0,
        });
        for s in 0..3 {
            assert!(q.push(&deliver(s, &[s as u8; 10])));
        }
        assert!(!q.push(&deliver(3, b"x")), "a fourth message is refused");
        let mut buf = [0; 64];
        for s in 0..3 {
            let d = q.pop(&mut buf).unwrap();
            assert_eq!((d.seq, d.len, d.truncated), (s, 10, false));
            assert_eq!(&buf[..10], &[s as u8; 10]);
        }
        assert!(q.pop(&mut buf).is_none());
        assert_eq!((q.len(), q.bytes()), (0, 0));
    }

    #[test]
    fn bounded_by_bytes_with_wraparound() {
        // The ring is MAX_PAYLOAD bytes; payloads of 40% of it: two fit, a third does not.
        let mut q = DeliverQueue::new(ReceiveQueueLimits {
            messages: 100,
            bytes: 0,
        });
        let big = vec![7u8; MAX_PAYLOAD * 2 / 5];
        let mut buf = vec![0; MAX_PAYLOAD];
        assert!(q.push(&deliver(0, &big)));
        assert!(q.push(&deliver(1, &big)));
        assert!(!q.push(&deliver(2, &big)));
        // Taking the first frees its bytes; the third wraps to the ring's start.
        assert_eq!(q.pop(&mut buf).unwrap().seq, 0);
        assert!(q.push(&deliver(2, &[9u8; MAX_PAYLOAD * 2 / 5])));
        assert!(
            !q.push(&deliver(3, &big)),
            "the skipped tail still counts as used"
        );
        assert_eq!(q.pop(&mut buf).unwrap().seq, 1);
        let d = q.pop(&mut buf).unwrap();
        assert_eq!(d.seq, 2);
        assert!(buf[..d.len].iter().all(|&b| b == 9));
        assert!(q.is_empty());
    }

    #[test]
    fn short_buffers_truncate() {
        let mut q = DeliverQueue::new(ReceiveQueueLimits::default());
        assert!(q.push(&deliver(0, b"hello world")));
        let mut buf = [0; 5];
        let d = q.pop(&mut buf).unwrap();
        assert_eq!((d.len, d.truncated, &buf), (5, true, b"hello"));
        let mut small = [0; 2];
        let direct = deliver_into(&deliver(1, b"abc"), &mut small);
        assert_eq!((direct.len, direct.truncated, &small), (2, true, b"ab"));
    }
}
