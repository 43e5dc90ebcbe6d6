//! The link bitmask of source-routed data: one bit per overlay link, 1 to 8 words of 64 bits.
//!
//! The ingress node stamps the links a packet may travel (k disjoint paths, a dissemination
//! graph, constrained flooding); every node forwards it on each of its own links whose bit is
//! set. Word `w` is a big-endian u64 on the wire and link id `i` is bit `i % 64` (least
//! significant first) of word `i / 64`. So link 0 is the lowest bit of mask byte 7, link 63 the
//! top bit of byte 0, link 64 the lowest bit of byte 15.

use super::EmitError;
use crate::DropReason;
use crate::ids::{LinkId, MAX_LINKS};

/// Largest bitmask length in 64-bit words: 8 words = 512 links = [`MAX_LINKS`].
pub const MAX_MASK_WORDS: usize = 8;

const _: () = assert!(MAX_MASK_WORDS * 64 == MAX_LINKS as usize);

/// A set of links, 1..=[`MAX_MASK_WORDS`] words long on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkMask {
    words: [u64; MAX_MASK_WORDS],
    len: u8,
}

impl LinkMask {
    /// An empty mask of `words` words, or `None` unless `1 <= words <= 8`.
    pub const fn new(words: usize) -> Option<Self> {
        if words == 0 || words > MAX_MASK_WORDS {
            None
        } else {
            Some(LinkMask {
                words: [0; MAX_MASK_WORDS],
                len: words as u8,
            })
        }
    }

    /// An empty mask just long enough for links `0..=highest`.
    pub const fn covering(highest: LinkId) -> Self {
        LinkMask {
            words: [0; MAX_MASK_WORDS],
            len: (highest.get() / 64 + 1) as u8,
        }
    }

    /// A mask of `words.len()` words, or `None` unless `1 <= words.len() <= 8`.
    pub fn from_words(words: &[u64]) -> Option<Self> {
        let mut mask = Self::new(words.len())?;
        mask.words[..words.len()].copy_from_slice(words);
        Some(mask)
    }

    /// The words as carried on the wire.
    pub fn words(&self) -> &[u64] {
        &self.words[..usize::from(self.len)]
    }

    /// Length on the wire in bytes.
    pub const fn wire_len(&self) -> usize {
        self.len as usize * 8
    }

    /// Adds `link`; returns false (and changes nothing) if the mask is too short for it.
    pub fn insert(&mut self, link: LinkId) -> bool {
        let (w, bit) = Self::position(link);
        match self.words[..usize::from(self.len)].get_mut(w) {
            Some(word) => {
                *word |= 1 << bit;
                true
            }
            None => false,
        }
    }

    /// Whether `link` is in the mask.
    pub fn contains(&self, link: LinkId) -> bool {
        let (w, bit) = Self::position(link);
        self.words().get(w).is_some_and(|word| word >> bit & 1 == 1)
    }

    /// Whether no link is set.
    pub fn is_empty(&self) -> bool {
        self.words().iter().all(|w| *w == 0)
    }

    /// The links in the mask, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = LinkId> + '_ {
        self.words().iter().enumerate().flat_map(|(w, &word)| {
            (0..64u16)
                .filter(move |bit| word >> bit & 1 == 1)
                .filter_map(move |bit| LinkId::new(w as u16 * 64 + bit))
        })
    }

    fn position(link: LinkId) -> (usize, u32) {
        let i = link.get();
        (usize::from(i / 64), u32::from(i % 64))
    }

    /// Reads a mask of `bytes.len() / 8` words.
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, DropReason> {
        let words = bytes.len() / 8;
        let mut mask =
            Self::new(words)
                .filter(|_| bytes.len() % 8 == 0)
                .ok_or(DropReason::BadLength {
                    field: "overlay.mask_words",
                    value: words,
                })?;
        for (word, chunk) in mask.words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *word = u64::from_be_bytes(b);
        }
        Ok(mask)
    }

    /// Writes the mask at the front of `buf`; returns its length.
    pub(super) fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let len = self.wire_len();
        super::check_room(buf, len)?;
        for (chunk, word) in buf[..len].chunks_exact_mut(8).zip(self.words()) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        Ok(len)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn link(i: u16) -> LinkId {
        LinkId::new(i).unwrap()
    }

    #[test]
    fn golden_bit_positions() {
        let mut m = LinkMask::new(2).unwrap();
        assert!(m.insert(link(0)));
        assert!(m.insert(link(63)));
        assert!(m.insert(link(64)));
        assert!(!m.insert(link(128)), "link 128 needs a third word");
        let mut buf = [0u8; 16];
        assert_eq!(m.emit(&mut buf), Ok(16));
        let golden = [
            0x80, 0, 0, 0, 0, 0, 0, 0x01, // word 0: links 63 and 0
            0, 0, 0, 0, 0, 0, 0, 0x01, // word 1: link 64
        ];
        assert_eq!(buf, golden);
        assert_eq!(LinkMask::parse(&golden), Ok(m));
        assert_eq!(m.iter().map(LinkId::get).collect::<Vec<_>>(), [0, 63, 64]);
        assert!(m.contains(link(63)) && !m.contains(link(1)) && !m.contains(link(511)));
        assert_eq!(LinkMask::covering(link(511)).wire_len(), 64);
        assert_eq!(LinkMask::covering(link(63)).wire_len(), 8);
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(LinkMask::new(0), None);
        assert_eq!(LinkMask::new(9), None);
        assert!(LinkMask::parse(&[]).is_err());
        assert!(LinkMask::parse(&[0; 72]).is_err());
        assert!(LinkMask::parse(&[0; 12]).is_err());
        assert!(LinkMask::new(1).unwrap().emit(&mut [0; 7]).is_err());
    }

    proptest! {
        #[test]
        fn set_semantics(links in proptest::collection::btree_set(0u16..512, 0..40)) {
            let mut m = LinkMask::new(MAX_MASK_WORDS).unwrap();
            for &l in &links {
                prop_assert!(m.insert(link(l)));
            }
            prop_assert_eq!(m.iter().map(LinkId::get).collect::<Vec<_>>(),
                links.iter().copied().collect::<Vec<_>>());
            let mut buf = [0u8; 64];
            m.emit(&mut buf).unwrap();
            prop_assert_eq!(LinkMask::parse(&buf), Ok(m));
            prop_assert_eq!(m.is_empty(), links.is_empty());
        }
    }
}
