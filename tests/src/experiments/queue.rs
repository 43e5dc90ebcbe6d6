//! The experiments' event queue: events in time order, ties in the order they were pushed, so
//! a run is the same for a seed whatever the heap does with equal keys.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use weft_shared::time::Instant;

struct Queued<E> {
    at: Instant,
    order: u64,
    ev: E,
}

impl<E> PartialEq for Queued<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl<E> Eq for Queued<E> {}

impl<E> PartialOrd for Queued<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Queued<E> {
    /// Earliest first (the heap is a max-heap), then in push order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

/// Events of type `E` in time order.
pub struct EventQueue<E> {
    heap: BinaryHeap<Queued<E>>,
    order: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            order: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `ev` at `at`.
    pub fn push(&mut self, at: Instant, ev: E) {
        self.order += 1;
        self.heap.push(Queued {
            at,
            order: self.order,
            ev,
        });
    }

    /// The earliest event and its time.
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        self.heap.pop().map(|q| (q.at, q.ev))
    }
}
