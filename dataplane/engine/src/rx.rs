//! A worker's receive buffers for one turn, sorted by what their Weft packets carry.
//!
//! With `UDP_GRO` the kernel may hand over several datagrams of one sender in one receive buffer:
//! the segments of a super-packet, all of the segment size the `UDP_GRO` control message gives
//! except the last, which may be shorter. Each segment is one Weft packet. So:
//!
//! - [`RxBatch::sort`] (in the receive callback) counts every segment as received, peeks its
//!   class, counts a segment that fails the peek as a drop, and holds the buffer if any segment
//!   is worth handling, noting whether it has hello/control segments, data segments or both.
//! - [`RxBatch::for_each`] then walks the held buffers for one class at a time (the worker does
//!   hello and control first, data second), copying each segment of that class into the
//!   caller's scratch buffer, so segments of different classes in one buffer are handled in
//!   class order too.
//! - [`RxBatch::release_all`] gives every buffer back to the ring once all its segments have
//!   been handled.
//!
//! Nothing allocates: the list of held buffers has room for every buffer of the ring, which is
//! the most that can be held at once. The class byte is peeked twice per segment (once to sort,
//! once to pick), which costs two loads and saves a per-segment list.

use weft_shared::DropReason;
use weft_shared::shm::{Counter, WorkerCounters};
use weft_shared::wire::{PriorityClass, peek_class};

use crate::uring::{BufId, Datagram, Segments, UdpDriver};

/// Which segments [`RxBatch::for_each`] visits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Hellos, feedback and control: everything that is not data.
    Critical,
    /// Data.
    Data,
}

impl Class {
    fn of(c: PriorityClass) -> Class {
        match c {
            PriorityClass::Data => Class::Data,
            _ => Class::Critical,
        }
    }
}

/// One buffer kept for the turn.
#[derive(Debug)]
struct Held {
    id: BufId,
    segment_size: Option<u16>,
    critical: bool,
    data: bool,
}

/// Counters of what arrived, for the worker's exit report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RxTotals {
    /// Weft packets (segments) received.
    pub(crate) packets: u64,
    /// Of those, segments that arrived in a GRO super-packet of two or more.
    pub(crate) coalesced: u64,
    /// Buffers that held two or more segments.
    pub(crate) super_packets: u64,
}

/// The buffers held during one turn.
#[derive(Debug)]
pub(crate) struct RxBatch {
    held: Vec<Held>,
    totals: RxTotals,
}

impl RxBatch {
    /// A batch with room for `buffers` held buffers: the driver's `buf_entries`.
    pub(crate) fn new(buffers: u32) -> Self {
        Self {
            held: Vec::with_capacity(buffers as usize),
            totals: RxTotals::default(),
        }
    }

    /// What arrived so far.
    pub(crate) fn totals(&self) -> RxTotals {
        self.totals
    }

    /// True if no buffer is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// True if a held buffer has a data segment.
    pub(crate) fn has_data(&self) -> bool {
        self.held.iter().any(|h| h.data)
    }

    /// Counts and classifies the segments of a received datagram and holds its buffer if one of
    /// them is to be handled. Called from the receive callback.
    pub(crate) fn sort(&mut self, d: &Datagram<'_>, counters: &WorkerCounters) {
        let (mut segments, mut critical, mut data) = (0u64, false, false);
        for seg in d.segments() {
            segments += 1;
            match peek_class(seg).map(Class::of) {
                Err(reason) => counters.add_drop(reason, 1),
                Ok(Class::Critical) => critical = true,
                Ok(Class::Data) => data = true,
            }
        }
        counters.add(Counter::Received, segments);
        self.totals.packets += segments;
        if segments > 1 {
            self.totals.coalesced += segments;
            self.totals.super_packets += 1;
        }
        if !(critical || data) {
            return;
        }
        if self.held.len() == self.held.capacity() {
            // Cannot happen: the driver lends at most `buf_entries` buffers, the capacity. Drop
            // rather than grow, so the hot path never allocates.
            counters.add_drop(DropReason::QueueFull, segments);
            return;
        }
        self.held.push(Held {
            id: d.hold(),
            segment_size: d.segment_size(),
            critical,
            data,
        });
    }

    /// Calls `handle` with every segment of `class` in the held buffers, in arrival order, each
    /// copied into `scratch` (the pipeline rewrites packets in place). A segment longer than
    /// `scratch` cannot occur: `scratch` is as long as a receive buffer's payload.
    pub(crate) fn for_each(
        &self,
        class: Class,
        driver: &mut UdpDriver,
        scratch: &mut [u8],
        mut handle: impl FnMut(&mut UdpDriver, &mut [u8]),
    ) {
        for h in &self.held {
            let wanted = match class {
                Class::Critical => h.critical,
                Class::Data => h.data,
            };
            if !wanted {
                continue;
            }
            let mut offset = 0;
            loop {
                // Find the next segment of `class` at or after `offset`, copy it, and end the
                // borrow of the driver's buffer before handing the copy over. Every segment but
                // the last is `segment_size` long, so splitting the rest again is the same split.
                let mut found = None;
                let rest = driver
                    .held_payload(&h.id)
                    .and_then(|p| p.get(offset..))
                    .unwrap_or_default();
                for seg in Segments::new(rest, h.segment_size) {
                    offset += seg.len();
                    if seg.is_empty() {
                        break;
                    }
                    if matches!(peek_class(seg).map(Class::of), Ok(c) if c == class) {
                        let n = seg.len().min(scratch.len());
                        scratch[..n].copy_from_slice(&seg[..n]);
                        found = Some(n);
                        break;
                    }
                }
                let Some(n) = found else { break };
                handle(driver, &mut scratch[..n]);
            }
        }
    }

    /// Gives every held buffer back to the driver's ring.
    pub(crate) fn release_all(&mut self, driver: &mut UdpDriver) {
        for h in self.held.drain(..) {
            driver.release(h.id);
        }
    }
}
