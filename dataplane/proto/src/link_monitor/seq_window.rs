//! Which of the peer's recent hello sequence numbers arrived: a 1024-bit sliding bitmap.
//!
//! The same window answers three questions: is this hello new, a late one filling a hole, or a
//! duplicate; what fraction of the last [`LOSS_WINDOW`] hellos was lost (the receive-direction
//! loss estimate); and how many of the newest hellos arrived in an unbroken run (the proof a path
//! needs to come up). Reordering is tolerated: a late hello fills its hole.

/// Number of sequence numbers the window covers: 10.24 s of hellos at the default 10 ms. The
/// standard deviation of one loss estimate at loss p is sqrt(p(1-p)/1024): 0.94 % at p = 10 %
/// (a 256 window would give 1.9 %, too noisy for a routing metric). 128 bytes per path.
pub(super) const LOSS_WINDOW: u32 = 1024;

const WORDS: usize = (LOSS_WINDOW / 64) as usize;

/// What a received sequence number was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SeqOutcome {
    /// Newer than any before; `skipped` sequence numbers between it and the previous highest are
    /// (for now) missing.
    New {
        /// Sequence numbers jumped over.
        skipped: u32,
    },
    /// An older sequence number that was missing: a reordered hello.
    Filled,
    /// Already received.
    Duplicate,
    /// Older than the window or than the first sequence number seen since the last reset.
    TooOld,
}

/// The receive window of one path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct SeqWindow {
    /// Highest sequence number received; meaningful once `span > 0`.
    highest: u32,
    /// Bit `i` (word `i / 64`, bit `i % 64`) is set when `highest - i` arrived.
    bits: [u64; WORDS],
    /// How many sequence numbers, ending at `highest`, the window covers: those since the first
    /// one received after the last reset, at most [`LOSS_WINDOW`]. Zero before the first.
    span: u32,
    /// Distinct sequence numbers received since the last reset.
    received: u64,
    /// Sequence numbers from the first to the highest since the last reset.
    expected: u64,
}

impl SeqWindow {
    /// Records `seq` and says what it was.
    pub(super) fn on_seq(&mut self, seq: u32) -> SeqOutcome {
        if self.span == 0 {
            *self = SeqWindow {
                highest: seq,
                span: 1,
                received: 1,
                expected: 1,
                ..Self::default()
            };
            self.bits[0] = 1;
            return SeqOutcome::New { skipped: 0 };
        }
        let ahead = seq.wrapping_sub(self.highest);
        if ahead != 0 && ahead <= i32::MAX as u32 {
            self.shift(ahead);
            self.bits[0] |= 1;
            self.highest = seq;
            self.span = self.span.saturating_add(ahead).min(LOSS_WINDOW);
            self.received += 1;
            self.expected += u64::from(ahead);
            return SeqOutcome::New { skipped: ahead - 1 };
        }
        let age = self.highest.wrapping_sub(seq);
        if age >= self.span {
            return SeqOutcome::TooOld;
        }
        let (word, bit) = ((age / 64) as usize, age % 64);
        if self.bits[word] & (1 << bit) != 0 {
            return SeqOutcome::Duplicate;
        }
        self.bits[word] |= 1 << bit;
        self.received += 1;
        SeqOutcome::Filled
    }

    /// Moves every bit `by` positions towards the old end (the 1024-bit number shifts left).
    fn shift(&mut self, by: u32) {
        if by >= LOSS_WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let (words, bits) = ((by / 64) as usize, by % 64);
        for i in (0..WORDS).rev() {
            let mut v = 0;
            if i >= words {
                let src = i - words;
                v = self.bits[src] << bits;
                if bits > 0 && src > 0 {
                    v |= self.bits[src - 1] >> (64 - bits);
                }
            }
            self.bits[i] = v;
        }
    }

    /// Fraction of the sequence numbers in the window that are missing, in parts per million;
    /// `None` before the first hello.
    pub(super) fn loss_ppm(&self) -> Option<u32> {
        if self.span == 0 {
            return None;
        }
        let got = self.count_received(self.span);
        let missing = u64::from(self.span - got);
        u32::try_from(missing * 1_000_000 / u64::from(self.span)).ok()
    }

    /// Number of set bits among the newest `n` positions.
    fn count_received(&self, n: u32) -> u32 {
        let mut left = n;
        let mut got = 0;
        for word in self.bits {
            if left == 0 {
                break;
            }
            let take = left.min(64);
            let mask = if take == 64 {
                u64::MAX
            } else {
                (1 << take) - 1
            };
            got += (word & mask).count_ones();
            left -= take;
        }
        got
    }

    /// Length of the unbroken run of received sequence numbers ending at the highest one.
    pub(super) fn top_run(&self) -> u32 {
        let mut run = 0;
        for word in self.bits {
            let ones = word.trailing_ones();
            run += ones;
            if ones < 64 {
                break;
            }
        }
        run.min(self.span)
    }

    /// The highest sequence number received, if any.
    pub(super) fn highest(&self) -> Option<u32> {
        (self.span > 0).then_some(self.highest)
    }

    /// Sequence numbers the peer sent between the first and the highest received, that did not
    /// arrive (lost, or still in flight), since the last reset.
    pub(super) fn missing(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn gaps_reorder_and_duplicates() {
        let mut w = SeqWindow::default();
        assert_eq!(w.loss_ppm(), None);
        assert_eq!(w.on_seq(10), SeqOutcome::New { skipped: 0 });
        assert_eq!(w.on_seq(13), SeqOutcome::New { skipped: 2 });
        assert_eq!(w.top_run(), 1);
        // 4 covered, 2 received.
        assert_eq!(w.loss_ppm(), Some(500_000));
        assert_eq!(w.on_seq(12), SeqOutcome::Filled);
        assert_eq!(w.top_run(), 2);
        assert_eq!(w.on_seq(12), SeqOutcome::Duplicate);
        assert_eq!(w.on_seq(9), SeqOutcome::TooOld, "older than the first seen");
        assert_eq!(w.on_seq(11), SeqOutcome::Filled);
        assert_eq!(w.top_run(), 4);
        assert_eq!(w.loss_ppm(), Some(0));
        assert_eq!(w.missing(), 0);
        assert_eq!(w.on_seq(10 + 2000), SeqOutcome::New { skipped: 1996 });
        assert_eq!(w.on_seq(13), SeqOutcome::TooOld, "fell out of the window");
        assert_eq!(w.loss_ppm(), Some(1_000_000 * 1023 / 1024));
        assert_eq!(w.missing(), 1996);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut w = SeqWindow::default();
        for seq in (u32::MAX - 5)..=u32::MAX {
            w.on_seq(seq);
        }
        assert_eq!(w.on_seq(0), SeqOutcome::New { skipped: 0 });
        assert_eq!(w.on_seq(2), SeqOutcome::New { skipped: 1 });
        assert_eq!(w.on_seq(u32::MAX), SeqOutcome::Duplicate);
        assert_eq!(w.highest(), Some(2));
        assert_eq!(w.top_run(), 1);
    }

    /// The window against a plain set of received sequence numbers.
    fn check_against_model(seqs: &[u32]) -> Result<(), TestCaseError> {
        let mut w = SeqWindow::default();
        let mut got = BTreeSet::new();
        let first = seqs[0];
        let mut highest: Option<u32> = None;
        for &seq in seqs {
            let outcome = w.on_seq(seq);
            let expect = match highest {
                None => SeqOutcome::New { skipped: 0 },
                Some(h) if seq > h => SeqOutcome::New {
                    skipped: seq - h - 1,
                },
                Some(h) if seq < h.saturating_sub(LOSS_WINDOW - 1).max(first) => SeqOutcome::TooOld,
                Some(_) if got.contains(&seq) => SeqOutcome::Duplicate,
                Some(_) => SeqOutcome::Filled,
            };
            prop_assert_eq!(outcome, expect, "seq {}", seq);
            if matches!(expect, SeqOutcome::New { .. } | SeqOutcome::Filled) {
                got.insert(seq);
            }
            let h = highest.map_or(seq, |h| h.max(seq));
            highest = Some(h);
            let floor = h.saturating_sub(LOSS_WINDOW - 1).max(first);
            let span = h - floor + 1;
            let in_window = got.range(floor..=h).count() as u32;
            let loss = u64::from(span - in_window) * 1_000_000 / u64::from(span);
            prop_assert_eq!(w.loss_ppm(), Some(loss as u32));
            let run = (floor..=h).rev().take_while(|s| got.contains(s)).count() as u32;
            prop_assert_eq!(w.top_run(), run);
            prop_assert_eq!(w.missing(), u64::from(h - first + 1) - got.len() as u64);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn matches_a_set_model(
            start in 0u32..1_000,
            steps in proptest::collection::vec(-1_200i32..1_400, 1..400),
        ) {
            // A walk around a moving front: mostly forward, sometimes back (reorder, duplicates),
            // sometimes far (window-sized jumps).
            let mut seqs = vec![start + 2_000];
            let mut front = start + 2_000;
            for step in steps {
                let step = if step.abs() > 1_000 { step } else { step / 4 };
                let seq = front.saturating_add_signed(step);
                front = front.max(seq);
                seqs.push(seq);
            }
            check_against_model(&seqs)?;
        }
    }
}
