//! [`DatagramFifo`]: the ingress gateway's bounded queue of datagrams waiting for credit.
//!
//! One byte ring and one ring of entries, both allocated when the gateway opens and bounded in
//! datagrams and bytes. Datagrams are stored contiguously: one that would cross the end of the
//! ring starts at its beginning instead, and the skipped bytes count as used until the datagram
//! before them is taken. The oldest datagram leaves first, so order is kept.

use std::collections::VecDeque;

/// The bounded FIFO of datagrams.
#[derive(Debug)]
pub(crate) struct DatagramFifo {
    /// Start (virtual position: it grows; the ring index is `pos % cap`) and length of each
    /// datagram, oldest first.
    entries: VecDeque<(u64, usize)>,
    max_datagrams: usize,
    ring: Box<[u8]>,
    /// Virtual position after the newest datagram.
    tail: u64,
    /// Datagram bytes queued (without skipped bytes).
    bytes: usize,
}

impl DatagramFifo {
    /// An empty FIFO of at most `max_datagrams` datagrams (at least 1) in a ring of `bytes`
    /// bytes (at least `largest`, so any datagram the gateway accepts fits when it is empty).
    pub(crate) fn new(max_datagrams: usize, bytes: usize, largest: usize) -> Self {
        let max_datagrams = max_datagrams.max(1);
        DatagramFifo {
            entries: VecDeque::with_capacity(max_datagrams),
            max_datagrams,
            ring: vec![0; bytes.max(largest).max(1)].into_boxed_slice(),
            tail: 0,
            bytes: 0,
        }
    }

    /// Datagrams queued.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Datagram bytes queued.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Where a datagram of `len` bytes would start, if it fits.
    fn place(&self, len: usize) -> Option<u64> {
        if self.entries.len() >= self.max_datagrams {
            return None;
        }
        let cap = self.ring.len() as u64;
        let head = self.entries.front().map_or(self.tail, |e| e.0);
        let used = self.tail - head;
        let offset = self.tail % cap;
        let len = len as u64;
        // A datagram that would cross the ring's end starts at its beginning instead.
        let skip = if offset + len > cap { cap - offset } else { 0 };
        (used + skip + len <= cap).then_some(self.tail + skip)
    }

    /// Queues a copy of `datagram`; `false` (nothing queued) if the FIFO is full.
    pub(crate) fn push(&mut self, datagram: &[u8]) -> bool {
        let len = datagram.len();
        let Some(pos) = self.place(len) else {
            return false;
        };
        let start = self.index(pos);
        let Some(dst) = self.ring.get_mut(start..start + len) else {
            return false;
        };
        dst.copy_from_slice(datagram);
        self.entries.push_back((pos, len));
        self.tail = pos + len as u64;
        self.bytes += len;
        true
    }

    /// The `i`-th oldest datagram.
    pub(crate) fn get(&self, i: usize) -> Option<&[u8]> {
        let &(pos, len) = self.entries.get(i)?;
        let start = self.index(pos);
        self.ring.get(start..start + len)
    }

    /// Drops the `n` oldest datagrams (all of them if fewer are queued).
    pub(crate) fn pop(&mut self, n: usize) {
        for _ in 0..n {
            let Some((_, len)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= len;
        }
        if self.entries.is_empty() {
            // Start over at the ring's beginning: the next datagrams need not wrap.
            self.tail = 0;
        }
    }

    fn index(&self, pos: u64) -> usize {
        usize::try_from(pos % self.ring.len() as u64).unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_refuses_when_full() {
        let mut f = DatagramFifo::new(3, 10, 4);
        assert!(f.push(b"abcd"));
        assert!(f.push(b""));
        assert!(f.push(b"efg"));
        assert!(!f.push(b"h"), "3 datagrams at most");
        assert_eq!((f.len(), f.bytes()), (3, 7));
        assert_eq!(f.get(0).unwrap(), b"abcd");
        assert_eq!(f.get(1).unwrap(), b"");
        assert_eq!(f.get(2).unwrap(), b"efg");
        f.pop(1);
        // 3 bytes left at the ring's end: a 4-byte datagram wraps to the start, which is free.
        assert!(f.push(b"wxyz"));
        assert!(!f.push(b"q"), "3 datagrams again");
        f.pop(1);
        assert!(!f.push(b"qrs"), "no room: efg and wxyz hold the ring");
        assert_eq!(f.get(0).unwrap(), b"efg");
        assert_eq!(f.get(1).unwrap(), b"wxyz");
        f.pop(5);
        assert!(f.is_empty());
        assert!(
            f.push(b"0123456789"),
            "an empty ring takes a full-size datagram"
        );
    }

    /// Against a model (a deque of vectors), with a fixed-seed random mix of pushes and pops.
    #[test]
    fn matches_a_model() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut f = DatagramFifo::new(16, 200, 50);
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut stamp = 0u8;
        for _ in 0..20_000 {
            if rand(3) < 2 {
                let len = rand(51) as usize;
                stamp = stamp.wrapping_add(1);
                let d: Vec<u8> = (0..len).map(|i| stamp ^ i as u8).collect();
                let fits = f.push(&d);
                let model_bytes: usize = model.iter().map(Vec::len).sum();
                if fits {
                    model.push_back(d);
                } else {
                    // Refused only when full in count, or when the bytes do not fit beside the
                    // waste of two wraps (the one queued and this datagram's), each under 50.
                    assert!(
                        model.len() == 16 || model_bytes + len > 200 - 2 * 50,
                        "{model_bytes}"
                    );
                }
            } else {
                let n = rand(3) as usize;
                f.pop(n);
                for _ in 0..n.min(model.len()) {
                    model.pop_front();
                }
            }
            assert_eq!(f.len(), model.len());
            assert_eq!(f.bytes(), model.iter().map(Vec::len).sum::<usize>());
            for (i, m) in model.iter().enumerate() {
                assert_eq!(f.get(i).unwrap(), &m[..]);
            }
        }
    }
}
