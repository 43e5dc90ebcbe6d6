//! The replay window of one (link, sending node, lane, class) packet-number sequence
//! (docs/wire.md "Replay window"), shared by all the workers of a node.
//!
//! A lane's data from one source address and port reaches one worker, but a replayed copy sent
//! from another address or port can be steered to another worker; so the window is one object
//! that every worker's [`AuthTable`](super::AuthTable) holds through an `Arc`, and is updated
//! with atomics only (no lock, no allocation).
//!
//! It remembers the sender's incarnation `I`, the highest authenticated counter `H` (the packet
//! number without its lane byte) and, in [`REPLAY_WINDOW`] slots, the highest counter accepted
//! in each residue class modulo the window. Slot values only grow, by compare-and-swap, so
//! each packet number is accepted at most once however many workers race on it; a number more
//! than the window below `H` is refused as too old. Every value carries the window's
//! *generation*, a byte that moves on when a newer incarnation is accepted: values of an older
//! generation count as empty, so a restart needs no clearing pass that could race with another
//! worker. (A generation comes round again after 255 restarts; a value left from then can only
//! make a packet look older than it is: a counted drop, never a second acceptance.) A packet of
//! the old incarnation still being accepted on another worker at the instant of the switch
//! re-reads the generation before each write and gives up if it moved; what is left is the few
//! instructions between that read and the write.
//!
//! [`ReplayWindow::check`] runs before the tag is verified and changes nothing;
//! [`ReplayWindow::accept`] runs only after it verified, so a forged packet never moves the
//! window, and it fails if another worker accepted the same number in between.

use core::sync::atomic::{AtomicU64, Ordering};

use weft_shared::DropReason;

/// How many packet numbers at and below the highest one the window remembers.
pub const REPLAY_WINDOW: u64 = 2048;

/// The counter part of a packet number (its top byte is the lane, `docs/wire.md`).
const COUNTER_MASK: u64 = (1 << 56) - 1;

/// One replay window; see the module doc. 16 KiB: one slot per number of the window.
#[derive(Debug)]
pub struct ReplayWindow {
    /// `incarnation << 32 | generation` (generation 1..=255; incarnation 0 = nothing yet).
    state: AtomicU64,
    /// `generation << 56 | H`.
    head: AtomicU64,
    /// Slot `c % REPLAY_WINDOW`: `generation << 56 | c` of the highest counter `c` accepted
    /// there.
    slots: Box<[AtomicU64]>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

fn tagged(generation: u64, counter: u64) -> u64 {
    generation << 56 | counter
}

/// The counter of `value` if it belongs to `generation`.
fn of_generation(value: u64, generation: u64) -> Option<u64> {
    (value >> 56 == generation).then_some(value & COUNTER_MASK)
}

impl ReplayWindow {
    /// An empty window: the first packet of any incarnation passes.
    pub fn new() -> Self {
        ReplayWindow {
            state: AtomicU64::new(1),
            head: AtomicU64::new(0),
            slots: (0..REPLAY_WINDOW).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot(&self, counter: u64) -> &AtomicU64 {
        // In range: the index is below REPLAY_WINDOW = slots.len().
        &self.slots[(counter % REPLAY_WINDOW) as usize]
    }

    /// Whether packet `number` of sender incarnation `incarnation` may be new. Changes nothing.
    pub fn check(&self, incarnation: u32, number: u64) -> Result<(), DropReason> {
        let state = self.state.load(Ordering::Acquire);
        let current = (state >> 32) as u32;
        if incarnation < current {
            return Err(DropReason::Replayed);
        }
        if incarnation > current {
            return Ok(());
        }
        self.check_in(state & 0xff, number & COUNTER_MASK)
    }

    fn check_in(&self, generation: u64, counter: u64) -> Result<(), DropReason> {
        let head = of_generation(self.head.load(Ordering::Acquire), generation);
        if head.is_some_and(|h| h >= counter && h - counter >= REPLAY_WINDOW) {
            return Err(DropReason::Replayed);
        }
        let seen = of_generation(self.slot(counter).load(Ordering::Acquire), generation);
        if seen.is_some_and(|s| s >= counter) {
            return Err(DropReason::Replayed);
        }
        Ok(())
    }

    /// Records packet `number` of `incarnation` as accepted. Call only after its tag verified
    /// and [`ReplayWindow::check`] passed; a newer incarnation starts the window over. Fails
    /// (`Replayed`) when the number was accepted meanwhile, by another worker, or fell out of
    /// the window.
    pub fn accept(&self, incarnation: u32, number: u64) -> Result<(), DropReason> {
        let counter = number & COUNTER_MASK;
        let generation = loop {
            let state = self.state.load(Ordering::Acquire);
            let current = (state >> 32) as u32;
            let generation = state & 0xff;
            if incarnation == current {
                break generation;
            }
            if incarnation < current {
                return Err(DropReason::Replayed);
            }
            // The peer restarted, and this packet proves it: a new generation.
            let next = if generation >= 255 { 1 } else { generation + 1 };
            let _ = self.state.compare_exchange(
                state,
                u64::from(incarnation) << 32 | next,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        };
        self.check_in(generation, counter)?;
        let value = tagged(generation, counter);
        let slot = self.slot(counter);
        let mut seen = slot.load(Ordering::Acquire);
        loop {
            if of_generation(seen, generation).is_some_and(|s| s >= counter) {
                return Err(DropReason::Replayed);
            }
            if self.state.load(Ordering::Acquire) & 0xff != generation {
                // A newer incarnation was accepted meanwhile: this packet is of an old one.
                return Err(DropReason::Replayed);
            }
            match slot.compare_exchange_weak(seen, value, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        let mut head = self.head.load(Ordering::Acquire);
        while of_generation(head, generation).is_none_or(|h| h < counter)
            && self.state.load(Ordering::Acquire) & 0xff == generation
        {
            match self
                .head
                .compare_exchange_weak(head, value, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        Ok(())
    }

    /// The incarnation and highest counter accepted so far (incarnation 0: none).
    pub fn position(&self) -> (u32, u64) {
        let state = self.state.load(Ordering::Acquire);
        let head = of_generation(self.head.load(Ordering::Acquire), state & 0xff);
        ((state >> 32) as u32, head.unwrap_or(0))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// Two "workers" race over the same packet numbers, each number offered to both (a replay
    /// of every packet, steered to the other worker): every number is accepted exactly once.
    #[test]
    fn racing_workers_accept_each_number_once() {
        let w = Arc::new(ReplayWindow::new());
        let accepted = Arc::new(AtomicUsize::new(0));
        let n = 200_000u64;
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let (w, accepted) = (Arc::clone(&w), Arc::clone(&accepted));
                std::thread::spawn(move || {
                    for i in 1..=n {
                        // Lane 3's numbers; the second thread runs a little behind, out of order.
                        let c = if t == 0 { i } else { (i + 7) % n + 1 };
                        let number = 3 << 56 | c;
                        if w.check(4, number).is_ok() && w.accept(4, number).is_ok() {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let got = accepted.load(Ordering::Relaxed) as u64;
        // Each number once at most; a few fall out of the window while the other thread is far
        // ahead, none is accepted twice.
        assert!(got <= n, "{got} accepted of {n}");
        assert!(got >= n - 2 * REPLAY_WINDOW, "{got} accepted of {n}");
        for c in n - 100..=n {
            assert_eq!(w.check(4, 3 << 56 | c), Err(DropReason::Replayed));
        }
        assert_eq!(w.position(), (4, n));
    }

    #[test]
    fn a_newer_incarnation_starts_over_without_clearing() {
        let w = ReplayWindow::new();
        for c in 1..=5000 {
            w.accept(9, c).unwrap();
        }
        assert_eq!(w.check(9, 4000), Err(DropReason::Replayed));
        // The peer restarted: its numbers start low again and are all new.
        for c in 1..=100 {
            w.check(10, c).unwrap();
            w.accept(10, c).unwrap();
        }
        assert_eq!(w.check(10, 50), Err(DropReason::Replayed));
        assert_eq!(w.check(10, 4000), Ok(()));
        assert_eq!(w.accept(9, 6000), Err(DropReason::Replayed));
        assert_eq!(w.position(), (10, 100));
        // 300 restarts: the generation byte wraps, and nothing is accepted twice.
        for inc in 11..311 {
            w.accept(inc, 1).unwrap();
            assert_eq!(w.accept(inc, 1), Err(DropReason::Replayed));
        }
    }
}
