//! The destination's deadline buffer for one real-time flow: releases messages in end-to-end
//! order, at origin + deadline or as soon as order allows, and counts what happened to them.
//!
//! Intermediate nodes forward out of order; only the destination reorders (the paper, IV-A: "if
//! a recovered packet arrives after later packets were already delivered, it is discarded").

use core::time::Duration;

use weft_shared::time::Instant;
use weft_shared::wire::Delivery;

use super::histogram::LatencyHistogram;

/// How a flow's messages are released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadlineParams {
    /// The flow's one-way deadline (its `deadline_us`).
    pub deadline: Duration,
    /// At the deadline (constant delay), or as soon as every earlier message is released or
    /// given up.
    pub delivery: Delivery,
    /// Messages buffered at most, as a span of sequence numbers from the next to release (a
    /// power of two; rounded up). Size it to rate × deadline. A message beyond the span is
    /// dropped and counted (`overflow`) while anything is buffered.
    pub capacity: u32,
}

/// What happened to each message of the flow. The latency of a released message is its release
/// time − its origin time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Released (on time, in order).
    pub on_time: u64,
    /// Of those, marked by the caller as recovered (arrived via a retransmission).
    pub recovered: u64,
    /// Arrived after their deadline or after a later message was released: dropped.
    pub late: u64,
    /// Skipped gaps: sequences given up at a later message's deadline that have not arrived
    /// (one that arrives later moves from here to `late`).
    pub lost: u64,
    /// Copies of a message already buffered, released or counted late: dropped.
    pub duplicates: u64,
    /// Dropped because they were beyond the buffer's span.
    pub overflow: u64,
    /// Latencies of the released messages.
    pub latency: LatencyHistogram,
}

/// What [`DeadlineBuffer::handle_packet`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrivalOutcome {
    /// Kept until its release.
    Buffered,
    /// Too late (after its deadline, or after a later message was released): dropped.
    Late,
    /// Seen before: dropped.
    Duplicate,
    /// Beyond the buffer's span while it holds earlier messages: dropped.
    Overflow,
}

/// A message released by [`DeadlineBuffer::poll_release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release<T> {
    /// The end-to-end sequence number.
    pub seq: u64,
    /// What the caller handed in with it (a buffer handle, the payload, ...).
    pub item: T,
    /// Its origin time (this node's clock).
    pub origin: Instant,
    /// Release time − origin.
    pub latency: Duration,
    /// Marked as recovered on arrival.
    pub recovered: bool,
}

#[derive(Clone, Debug)]
enum Slot<T> {
    Empty,
    Held {
        seq: u64,
        origin: Instant,
        recovered: bool,
        item: T,
    },
    /// It arrived after its deadline: counted late, never released, not lost.
    Late {
        seq: u64,
    },
}

/// The reorder buffer of one real-time flow at its destination.
///
/// Memory is fixed at construction: `capacity` slots for the messages from the next to release
/// onward, and a bitmap of as many sequences behind it that tells a late message from a
/// duplicate. The call order is in the [module docs](super).
#[derive(Clone, Debug)]
pub struct DeadlineBuffer<T> {
    params: DeadlineParams,
    /// The next sequence to release; `None` until the first message when no start was given.
    head: Option<u64>,
    /// The flow's first sequence (the first head): nothing before it was ever lost.
    start: Option<u64>,
    slots: Box<[Slot<T>]>,
    /// Bit `seq & mask`, for `seq` in `head - capacity .. head`: a copy of `seq` was released or
    /// counted late (clear: it was skipped as lost).
    seen: Box<[u64]>,
    mask: u64,
    /// Messages held (`Slot::Held`).
    held: usize,
    /// The highest sequence in a slot (bounds the scan for the next held message).
    highest: Option<u64>,
    stats: FlowStats,
}

impl<T> DeadlineBuffer<T> {
    /// A buffer for a flow whose first sequence is `first` (`None`: whatever arrives first).
    pub fn new(params: DeadlineParams, first: Option<u64>) -> Self {
        let cap = params.capacity.clamp(64, 1 << 24).next_power_of_two();
        let params = DeadlineParams {
            capacity: cap,
            ..params
        };
        DeadlineBuffer {
            params,
            head: first,
            start: first,
            slots: (0..cap).map(|_| Slot::Empty).collect(),
            seen: vec![0; (cap / 64) as usize].into_boxed_slice(),
            mask: u64::from(cap) - 1,
            held: 0,
            highest: None,
            stats: FlowStats::default(),
        }
    }

    /// The parameters (capacity rounded up).
    pub fn params(&self) -> &DeadlineParams {
        &self.params
    }

    /// The figures so far.
    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Messages buffered now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// The next sequence to release.
    pub fn next_seq(&self) -> Option<u64> {
        self.head
    }

    /// Message `seq`, sent at `origin` (this node's clock: arrival − age), arrived at `now`;
    /// `recovered` if a retransmission brought it. Call [`poll_release`](Self::poll_release)
    /// after.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        seq: u64,
        origin: Instant,
        recovered: bool,
        item: T,
    ) -> ArrivalOutcome {
        let head = *self.head.get_or_insert(seq);
        let start = *self.start.get_or_insert(seq);
        let cap = self.mask + 1;
        if seq < head {
            // Released, skipped or counted late already.
            if head - seq <= cap && self.seen_bit(seq) {
                self.stats.duplicates += 1;
                return ArrivalOutcome::Duplicate;
            }
            if head - seq <= cap && seq >= start {
                // It was skipped as lost; it is late instead.
                self.set_seen(seq);
                self.stats.lost = self.stats.lost.saturating_sub(1);
            }
            self.stats.late += 1;
            return ArrivalOutcome::Late;
        }
        if seq - head >= cap {
            if self.held > 0 {
                self.stats.overflow += 1;
                return ArrivalOutcome::Overflow;
            }
            // Nothing buffered: everything before `seq` is gone (a long outage). Jump.
            self.jump_to(seq);
        }
        let idx = (seq & self.mask) as usize;
        if !matches!(self.slots[idx], Slot::Empty) {
            self.stats.duplicates += 1;
            return ArrivalOutcome::Duplicate;
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        if now > origin + self.params.deadline {
            self.slots[idx] = Slot::Late { seq };
            self.stats.late += 1;
            return ArrivalOutcome::Late;
        }
        self.slots[idx] = Slot::Held {
            seq,
            origin,
            recovered,
            item,
        };
        self.held += 1;
        ArrivalOutcome::Buffered
    }

    /// The next message due at `now`, in order; call until `None`. Gaps are given up (counted
    /// lost) when the message after them reaches its deadline.
    pub fn poll_release(&mut self, now: Instant) -> Option<Release<T>> {
        loop {
            let head = self.head?;
            let idx = (head & self.mask) as usize;
            match &self.slots[idx] {
                Slot::Held { origin, .. } => {
                    let due = match self.params.delivery {
                        Delivery::AsSoonAsOrdered => true,
                        Delivery::AtDeadline => now >= *origin + self.params.deadline,
                    };
                    if !due {
                        return None;
                    }
                    let Slot::Held {
                        seq,
                        origin,
                        recovered,
                        item,
                    } = core::mem::replace(&mut self.slots[idx], Slot::Empty)
                    else {
                        return None;
                    };
                    self.held -= 1;
                    self.advance(true);
                    let latency = now - origin;
                    self.stats.on_time += 1;
                    self.stats.recovered += u64::from(recovered);
                    self.stats.latency.record(latency);
                    return Some(Release {
                        seq,
                        item,
                        origin,
                        latency,
                        recovered,
                    });
                }
                Slot::Late { .. } => {
                    self.slots[idx] = Slot::Empty;
                    self.advance(true);
                }
                Slot::Empty => {
                    let (next, origin) = self.next_held(head)?;
                    if now < origin + self.params.deadline {
                        return None;
                    }
                    // The gap [head, next) cannot be filled in time for `next`: give it up.
                    while self.head.is_some_and(|h| h < next) {
                        let h = self.head.unwrap_or(next);
                        let i = (h & self.mask) as usize;
                        let late = matches!(self.slots[i], Slot::Late { .. });
                        if !late {
                            self.stats.lost += 1;
                        }
                        self.slots[i] = Slot::Empty;
                        self.advance(late);
                    }
                }
            }
        }
    }

    /// When [`poll_release`](Self::poll_release) next has something to do (a time already past
    /// means now).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let head = self.head?;
        match &self.slots[(head & self.mask) as usize] {
            Slot::Held { origin, .. } => Some(match self.params.delivery {
                Delivery::AsSoonAsOrdered => *origin,
                Delivery::AtDeadline => *origin + self.params.deadline,
            }),
            Slot::Late { .. } => Some(Instant::ZERO),
            Slot::Empty => self
                .next_held(head)
                .map(|(_, origin)| origin + self.params.deadline),
        }
    }

    /// The first held message after `head` (which is empty), with its origin.
    fn next_held(&self, head: u64) -> Option<(u64, Instant)> {
        if self.held == 0 {
            return None;
        }
        let end = self.highest?;
        (head..=end).find_map(|s| match &self.slots[(s & self.mask) as usize] {
            Slot::Held { seq, origin, .. } if *seq == s => Some((s, *origin)),
            _ => None,
        })
    }

    /// Moves the head one on, remembering whether its sequence was seen.
    fn advance(&mut self, seen: bool) {
        let Some(head) = self.head else {
            return;
        };
        if seen {
            self.set_seen(head);
        } else {
            self.clear_seen(head);
        }
        self.head = Some(head + 1);
    }

    /// Skips every sequence before `seq` (nothing is held, only late markers): they count as
    /// lost, except those that arrived late. O(capacity), after an outage only.
    fn jump_to(&mut self, seq: u64) {
        let Some(head) = self.head else {
            return;
        };
        let cap = self.mask + 1;
        self.stats.lost += seq - head;
        for s in head.max(seq.saturating_sub(cap))..seq {
            self.clear_seen(s);
        }
        for i in 0..self.slots.len() {
            if let Slot::Late { seq: s } = self.slots[i] {
                // It arrived (late), so it is not lost.
                self.stats.lost = self.stats.lost.saturating_sub(1);
                if seq - s <= cap {
                    self.set_seen(s);
                }
            }
            self.slots[i] = Slot::Empty;
        }
        self.head = Some(seq);
    }

    fn seen_bit(&self, seq: u64) -> bool {
        let i = seq & self.mask;
        self.seen[(i / 64) as usize] >> (i % 64) & 1 == 1
    }

    fn set_seen(&mut self, seq: u64) {
        let i = seq & self.mask;
        self.seen[(i / 64) as usize] |= 1 << (i % 64);
    }

    fn clear_seen(&mut self, seq: u64) {
        let i = seq & self.mask;
        self.seen[(i / 64) as usize] &= !(1 << (i % 64));
    }
}
