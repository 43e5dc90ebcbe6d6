//! The replay window of one (link, sending node, lane, class) packet-number sequence
//! (docs/wire.md "Replay window"): the sender's incarnation `I`, the highest authenticated
//! packet number `H` and a bitmap of the [`REPLAY_WINDOW`] numbers at and below `H`, kept as a
//! ring of 64-bit words in the manner of RFC 6479 (moving `H` clears whole words, never bit by
//! bit).
//!
//! [`ReplayWindow::check`] runs before the tag is verified and changes nothing;
//! [`ReplayWindow::accept`] runs only after it verified, so a forged packet never moves the
//! window.

use weft_shared::DropReason;

/// How many packet numbers at and below the highest one the window remembers.
pub const REPLAY_WINDOW: u64 = 2048;

/// Words in the ring: the window plus one word, so every number within [`REPLAY_WINDOW`] of `H`
/// has its bit even when `H` sits at the start of a word.
const WORDS: usize = (REPLAY_WINDOW as usize) / 64 + 1;

/// One replay window; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    /// The sender incarnation the window belongs to; 0 (never a real incarnation) = empty.
    incarnation: u32,
    /// The highest accepted packet number of that incarnation.
    highest: u64,
    /// Bit `n % 64` of word `(n / 64) % WORDS` is set when `n` was accepted.
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window: the first packet of any incarnation passes.
    pub const fn new() -> Self {
        ReplayWindow {
            incarnation: 0,
            highest: 0,
            bits: [0; WORDS],
        }
    }

    /// Whether packet `number` of sender incarnation `incarnation` may be new. Changes nothing.
    pub fn check(&self, incarnation: u32, number: u64) -> Result<(), DropReason> {
        if incarnation < self.incarnation {
            return Err(DropReason::Replayed);
        }
        if incarnation > self.incarnation || number > self.highest {
            return Ok(());
        }
        if self.highest - number >= REPLAY_WINDOW || self.bit(number) {
            return Err(DropReason::Replayed);
        }
        Ok(())
    }

    /// Records packet `number` of `incarnation` as accepted. Call only after its tag verified
    /// and [`ReplayWindow::check`] passed; a newer incarnation starts the window over.
    pub fn accept(&mut self, incarnation: u32, number: u64) {
        if incarnation > self.incarnation {
            // The peer restarted, and this packet proves it.
            self.incarnation = incarnation;
            self.highest = number;
            self.bits = [0; WORDS];
        } else if incarnation < self.incarnation {
            return;
        } else if number > self.highest {
            let old_word = self.highest / 64;
            let new_word = number / 64;
            if new_word - old_word >= WORDS as u64 {
                self.bits = [0; WORDS];
            } else {
                for w in old_word + 1..=new_word {
                    self.bits[(w % WORDS as u64) as usize] = 0;
                }
            }
            self.highest = number;
        }
        let (word, bit) = Self::slot(number);
        self.bits[word] |= 1 << bit;
    }

    /// The incarnation and highest number accepted so far (incarnation 0: none).
    pub fn position(&self) -> (u32, u64) {
        (self.incarnation, self.highest)
    }

    fn bit(&self, number: u64) -> bool {
        let (word, bit) = Self::slot(number);
        self.bits[word] & (1 << bit) != 0
    }

    fn slot(number: u64) -> (usize, u32) {
        (
            ((number / 64) % WORDS as u64) as usize,
            (number % 64) as u32,
        )
    }
}
