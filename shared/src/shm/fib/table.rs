//! One FIB table: plain `repr(C)` arrays that live in a shared-memory buffer (or on the heap for
//! tests and the simulator), O(1) allocation-free lookups, and a builder for the writer.
//!
//! - Unicast: indexed by destination `NodeId`, 1024 entries of 8 B.
//! - Multicast: open addressing with linear probing over 524,288 key slots of 16 B (at most
//!   [`MULTICAST_CAPACITY`] = 262,144 entries, so the load stays at or below one half), keyed by
//!   (group, source node). Each key holds the index of its out-links in an array of at most
//!   [`MULTICAST_MASKS`] = 16,384 *distinct* 64-B [`LinkMask`]s: a node has few distinct out-link
//!   sets, so keys with the same out-links share one mask (the builder deduplicates them).
//! - Anycast: the same scheme over 65,536 slots for at most [`ANYCAST_CAPACITY`] = 32,768 groups.
//!
//! Probing is capped at [`MAX_PROBE`] slots: the builder refuses an insert that would need more,
//! so a lookup touches at most that many slots even on a corrupted table. Every value read from a
//! table is range-checked before use; a bad value reads as "no route", never as a panic.

#![allow(unsafe_code, reason = "zeroed heap allocation of a FibTable")]

use core::fmt;
use core::mem::size_of;
use std::collections::{HashMap, HashSet};

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::ids::{GroupId, LinkId, MAX_LINKS, NodeId};

/// Unicast entries, indexed by [`NodeId::index`] (node ids 1..=1023 use 0..=1022).
pub const UNICAST_ENTRIES: usize = 1024;
/// Most multicast (group, source) entries in one table.
pub const MULTICAST_CAPACITY: usize = 262_144;
/// Multicast key slots (twice the capacity: load factor at most 0.5).
pub const MULTICAST_SLOTS: usize = 2 * MULTICAST_CAPACITY;
/// Most distinct multicast out-link masks in one table (keys with equal masks share one).
pub const MULTICAST_MASKS: usize = 16_384;
/// Most anycast groups in one table.
pub const ANYCAST_CAPACITY: usize = 32_768;
/// Anycast slots (twice the capacity).
pub const ANYCAST_SLOTS: usize = 2 * ANYCAST_CAPACITY;
/// Most slots a lookup probes; inserts needing more fail with [`FibError::ProbeLimit`]. A full
/// multicast table (262,144 keys: sequential, clustered or random) measured at most 40 (42 over
/// ten more random key sets), a full anycast table (32,768 groups) at most 33; see the test
/// `longest_probe_of_full_tables`.
pub const MAX_PROBE: usize = 128;

const NO_LINK: u16 = u16::MAX;
const UNICAST_VALID: u16 = 1;
const MULTICAST_LOCAL: u16 = 1;

/// A FIB generation number; generation `g` lives in buffer `g & 1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub u64);

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A set of overlay links: one bit per [`LinkId`] (512 bits, one cache line).
#[derive(
    FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Default, PartialEq, Eq, Hash,
)]
#[repr(C, align(64))]
pub struct LinkMask {
    words: [u64; 8],
}

const _: () = assert!(size_of::<LinkMask>() * 8 == MAX_LINKS as usize);

impl LinkMask {
    /// No links.
    pub const EMPTY: LinkMask = LinkMask { words: [0; 8] };

    /// A mask from its raw words (bit `l % 64` of word `l / 64` is link `l`).
    pub const fn from_words(words: [u64; 8]) -> Self {
        LinkMask { words }
    }

    /// The raw words.
    pub const fn words(&self) -> [u64; 8] {
        self.words
    }

    /// Adds `link`.
    pub fn insert(&mut self, link: LinkId) {
        let l = usize::from(link.get());
        self.words[l / 64] |= 1 << (l % 64);
    }

    /// Removes `link`.
    pub fn remove(&mut self, link: LinkId) {
        let l = usize::from(link.get());
        self.words[l / 64] &= !(1 << (l % 64));
    }

    /// Whether `link` is in the set.
    pub fn contains(&self, link: LinkId) -> bool {
        let l = usize::from(link.get());
        self.words[l / 64] & (1 << (l % 64)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Number of links in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The links in increasing id order.
    pub fn iter(&self) -> impl Iterator<Item = LinkId> + '_ {
        (0..MAX_LINKS)
            .filter_map(LinkId::new)
            .filter(|l| self.contains(*l))
    }
}

impl fmt::Debug for LinkMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(LinkId::get)).finish()
    }
}

/// Per-buffer header: lets a reader sanity-check what it sees.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
struct FibHeader {
    /// The generation this buffer holds; equals the control word when a reader enters.
    generation: u64,
    unicast_count: u32,
    multicast_count: u32,
    anycast_count: u32,
    /// Masks stored in `multicast_masks[..multicast_mask_count]` (at most [`MULTICAST_MASKS`]).
    multicast_mask_count: u32,
    /// Wrapping sum of a hash of every entry and of every stored mask (order-independent).
    checksum: u64,
    reserved2: [u64; 4],
}

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
struct UnicastEntry {
    next_hop: u16,
    flags: u16,
    metric_us: u32,
}

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
struct MulticastSlot {
    group: u32,
    /// Source node id; 0 marks an empty slot (node ids start at 1).
    source: u16,
    flags: u16,
    /// Index into `multicast_masks`, below the header's `multicast_mask_count`.
    route: u32,
    reserved: u32,
}

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
struct AnycastSlot {
    group: u32,
    /// Target node id; 0 marks an empty slot.
    target: u16,
    next_hop: u16,
    metric_us: u32,
    flags: u16,
    reserved: u16,
}

const _: () = assert!(size_of::<FibHeader>() == 64);
const _: () = assert!(size_of::<UnicastEntry>() == 8);
const _: () = assert!(size_of::<MulticastSlot>() == 16);
const _: () = assert!(size_of::<AnycastSlot>() == 16);

/// One complete forwarding table. In shared memory it is one of the two FIB buffers; it can also
/// live on the heap ([`FibTable::new_boxed`]) for tests and the simulator.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(64))]
pub struct FibTable {
    header: FibHeader,
    unicast: [UnicastEntry; UNICAST_ENTRIES],
    multicast_slots: [MulticastSlot; MULTICAST_SLOTS],
    anycast_slots: [AnycastSlot; ANYCAST_SLOTS],
    multicast_masks: [LinkMask; MULTICAST_MASKS],
}

/// Size of one FIB buffer in bytes: 10,494,016 (about 10.0 MiB; 8 MiB of it multicast keys).
pub const FIB_TABLE_SIZE: usize = size_of::<FibTable>();
const _: () = assert!(FIB_TABLE_SIZE == 64 + 8 * 1024 + 16 * (524_288 + 65_536) + 64 * 16_384);
const _: () = assert!(FIB_TABLE_SIZE == 10_494_016);
const _: () = assert!(MULTICAST_SLOTS.is_power_of_two() && ANYCAST_SLOTS.is_power_of_two());
const _: () = assert!(MULTICAST_CAPACITY <= u32::MAX as usize);

/// A unicast route: forward on `next_hop`; `metric_us` is the path's latency metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnicastRoute {
    /// The link to forward on.
    pub next_hop: LinkId,
    /// Path metric in microseconds (latency adjusted for loss).
    pub metric_us: u32,
}

/// A multicast route for one (group, source) tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticastRoute<'a> {
    /// The links to forward on.
    pub links: &'a LinkMask,
    /// Whether this node has local members to deliver to.
    pub local_delivery: bool,
}

/// An anycast route: the nearest member node and how to reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnycastRoute {
    /// The member node chosen.
    pub target: NodeId,
    /// The link towards it, or `None` when the target is this node.
    pub next_hop: Option<LinkId>,
    /// Path metric in microseconds.
    pub metric_us: u32,
}

/// Entry counts of one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FibCounts {
    /// Unicast routes.
    pub unicast: usize,
    /// Multicast (group, source) entries.
    pub multicast: usize,
    /// Distinct out-link masks the multicast entries point at (at most [`MULTICAST_MASKS`];
    /// may include masks no entry uses any more, until the builder clears or compacts them).
    pub multicast_masks: usize,
    /// Anycast groups.
    pub anycast: usize,
}

/// Why building or checking a table failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FibError {
    /// The multicast table already has [`MULTICAST_CAPACITY`] entries.
    #[error("multicast table full ({capacity} entries)")]
    MulticastFull {
        /// The capacity.
        capacity: usize,
    },
    /// The multicast table already holds [`MULTICAST_MASKS`] distinct out-link masks, every one
    /// still in use, and the entry needs another.
    #[error("multicast table: too many distinct out-link masks ({limit})")]
    MulticastMasksFull {
        /// [`MULTICAST_MASKS`].
        limit: usize,
    },
    /// The anycast table already has [`ANYCAST_CAPACITY`] groups.
    #[error("anycast table full ({capacity} groups)")]
    AnycastFull {
        /// The capacity.
        capacity: usize,
    },
    /// The key's probe sequence is longer than [`MAX_PROBE`] (a pathological cluster).
    #[error("{table} table: no free slot within {probes} probes")]
    ProbeLimit {
        /// "multicast" or "anycast".
        table: &'static str,
        /// [`MAX_PROBE`].
        probes: usize,
    },
    /// A table's counts or checksum do not match its entries.
    #[error("fib table corrupt: {what}")]
    Corrupt {
        /// What did not match.
        what: &'static str,
    },
}

/// The murmur3 64-bit finaliser: spreads keys over the slots.
const fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn fold(words: &[u64]) -> u64 {
    words
        .iter()
        .fold(0x9e37_79b9_7f4a_7c15, |h, w| mix64(h ^ w))
}

fn multicast_home(group: u32, source: u16) -> usize {
    mix64(u64::from(group) << 16 | u64::from(source)) as usize & (MULTICAST_SLOTS - 1)
}

fn anycast_home(group: u32) -> usize {
    mix64(u64::from(group) | 1 << 48) as usize & (ANYCAST_SLOTS - 1)
}

fn unicast_sum(index: usize, e: &UnicastEntry) -> u64 {
    let packed = u64::from(e.next_hop) | u64::from(e.flags) << 16 | u64::from(e.metric_us) << 32;
    fold(&[1, index as u64, packed])
}

fn multicast_sum(s: &MulticastSlot, links: &LinkMask) -> u64 {
    let key = u64::from(s.group) | u64::from(s.source) << 32 | u64::from(s.flags) << 48;
    let w = links.words;
    fold(&[2, key, w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
}

fn mask_sum(links: &LinkMask) -> u64 {
    let w = links.words;
    fold(&[4, w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
}

fn anycast_sum(s: &AnycastSlot) -> u64 {
    let key = u64::from(s.group) | u64::from(s.target) << 32 | u64::from(s.next_hop) << 48;
    fold(&[3, key, u64::from(s.metric_us) | u64::from(s.flags) << 32])
}

impl FibTable {
    /// An empty table on the heap (zeroed memory is an empty table).
    pub fn new_boxed() -> Box<FibTable> {
        let layout = std::alloc::Layout::new::<FibTable>();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<FibTable>();
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: ptr is a fresh global-allocator allocation with FibTable's layout, and
        // all-zero bytes are a valid FibTable (it derives FromZeros: integers only), so Box may
        // own and later free it.
        unsafe { Box::from_raw(ptr) }
    }

    /// The generation recorded in this table's header.
    pub fn generation(&self) -> Generation {
        Generation(self.header.generation)
    }

    /// The route to `dst`, if any.
    #[inline]
    pub fn unicast(&self, dst: NodeId) -> Option<UnicastRoute> {
        let e = self.unicast.get(dst.index())?;
        if e.flags & UNICAST_VALID == 0 {
            return None;
        }
        Some(UnicastRoute {
            next_hop: LinkId::new(e.next_hop)?,
            metric_us: e.metric_us,
        })
    }

    /// The stored mask at `index`: `None` unless it is below the header's mask count (and the
    /// array's length, should the header be corrupt).
    #[inline]
    fn mask(&self, index: u32) -> Option<&LinkMask> {
        if index >= self.header.multicast_mask_count {
            return None;
        }
        self.multicast_masks.get(index as usize)
    }

    /// The out-links and local delivery for packets of `group` from `source`, if any.
    #[inline]
    pub fn multicast(&self, group: GroupId, source: NodeId) -> Option<MulticastRoute<'_>> {
        let mut i = multicast_home(group.0, source.get());
        for _ in 0..MAX_PROBE {
            let slot = &self.multicast_slots[i];
            if slot.source == 0 {
                return None;
            }
            if slot.group == group.0 && slot.source == source.get() {
                let links = self.mask(slot.route)?;
                let local_delivery = slot.flags & MULTICAST_LOCAL != 0;
                return Some(MulticastRoute {
                    links,
                    local_delivery,
                });
            }
            i = (i + 1) & (MULTICAST_SLOTS - 1);
        }
        None
    }

    /// The anycast target for `group`, if any.
    #[inline]
    pub fn anycast(&self, group: GroupId) -> Option<AnycastRoute> {
        let mut i = anycast_home(group.0);
        for _ in 0..MAX_PROBE {
            let slot = &self.anycast_slots[i];
            if slot.target == 0 {
                return None;
            }
            if slot.group == group.0 {
                let next_hop = match slot.next_hop {
                    NO_LINK => None,
                    raw => Some(LinkId::new(raw)?),
                };
                let target = NodeId::new(slot.target)?;
                return Some(AnycastRoute {
                    target,
                    next_hop,
                    metric_us: slot.metric_us,
                });
            }
            i = (i + 1) & (ANYCAST_SLOTS - 1);
        }
        None
    }

    /// Entry counts from the header.
    pub fn counts(&self) -> FibCounts {
        FibCounts {
            unicast: self.header.unicast_count as usize,
            multicast: self.header.multicast_count as usize,
            multicast_masks: self.header.multicast_mask_count as usize,
            anycast: self.header.anycast_count as usize,
        }
    }

    /// Every unicast route, by destination.
    pub fn unicast_routes(&self) -> impl Iterator<Item = (NodeId, UnicastRoute)> + '_ {
        (1..=crate::ids::MAX_NODE_ID)
            .filter_map(NodeId::new)
            .filter_map(|n| Some((n, self.unicast(n)?)))
    }

    /// Every multicast entry as (group, source, route), in slot order.
    pub fn multicast_routes(
        &self,
    ) -> impl Iterator<Item = (GroupId, NodeId, MulticastRoute<'_>)> + '_ {
        self.multicast_slots.iter().filter_map(|s| {
            let source = NodeId::new(s.source)?;
            let links = self.mask(s.route)?;
            let local_delivery = s.flags & MULTICAST_LOCAL != 0;
            Some((
                GroupId(s.group),
                source,
                MulticastRoute {
                    links,
                    local_delivery,
                },
            ))
        })
    }

    /// Every anycast entry as (group, route), in slot order.
    pub fn anycast_routes(&self) -> impl Iterator<Item = (GroupId, AnycastRoute)> + '_ {
        self.anycast_slots.iter().filter_map(|s| {
            let target = NodeId::new(s.target)?;
            let next_hop = if s.next_hop == NO_LINK {
                None
            } else {
                LinkId::new(s.next_hop)
            };
            Some((
                GroupId(s.group),
                AnycastRoute {
                    target,
                    next_hop,
                    metric_us: s.metric_us,
                },
            ))
        })
    }

    /// Recomputes counts and the checksum from every entry and every stored mask and compares
    /// them with the header; also checks that every mask index is in range and that the stored
    /// masks are distinct. O(table size) (a few ms) and allocates: for diagnostics and tests,
    /// never per packet.
    pub fn verify(&self) -> Result<(), FibError> {
        let h = &self.header;
        let mut sum = 0u64;
        let mut unicast = 0u32;
        for (i, e) in self.unicast.iter().enumerate() {
            if e.flags & UNICAST_VALID != 0 {
                unicast += 1;
                sum = sum.wrapping_add(unicast_sum(i, e));
            }
        }
        let masks = h.multicast_mask_count as usize;
        let Some(stored) = self.multicast_masks.get(..masks) else {
            return Err(FibError::Corrupt {
                what: "multicast mask count",
            });
        };
        let mut distinct = HashSet::with_capacity(masks);
        for links in stored {
            if !distinct.insert(links) {
                return Err(FibError::Corrupt {
                    what: "duplicate multicast mask",
                });
            }
            sum = sum.wrapping_add(mask_sum(links));
        }
        let mut multicast = 0u32;
        for s in self.multicast_slots.iter().filter(|s| s.source != 0) {
            let Some(links) = stored.get(s.route as usize) else {
                return Err(FibError::Corrupt {
                    what: "multicast mask index",
                });
            };
            multicast += 1;
            sum = sum.wrapping_add(multicast_sum(s, links));
        }
        let mut anycast = 0u32;
        for s in self.anycast_slots.iter().filter(|s| s.target != 0) {
            anycast += 1;
            sum = sum.wrapping_add(anycast_sum(s));
        }
        if (unicast, multicast, anycast) != (h.unicast_count, h.multicast_count, h.anycast_count)
            || multicast as usize > MULTICAST_CAPACITY
            || anycast as usize > ANYCAST_CAPACITY
        {
            return Err(FibError::Corrupt {
                what: "entry counts",
            });
        }
        if sum != h.checksum {
            return Err(FibError::Corrupt { what: "checksum" });
        }
        Ok(())
    }
}

/// The stored masks of `table` and their indices (the first index of a mask stored twice, which
/// only a corrupt table has).
fn index_masks(table: &FibTable) -> HashMap<LinkMask, u32> {
    let count = (table.header.multicast_mask_count as usize).min(MULTICAST_MASKS);
    let mut index = HashMap::with_capacity(count);
    for (i, links) in table.multicast_masks[..count].iter().enumerate() {
        index.entry(*links).or_insert(i as u32);
    }
    index
}

/// Fills one table: the writer gets one in [`super::FibWriter::try_publish`], cleared; tests and
/// the simulator wrap a heap table with [`FibBuilder::new`]. Inserts replace an existing entry
/// with the same key. There is no removal for multicast and anycast: rebuild instead.
///
/// Multicast out-link masks are deduplicated: an insert whose mask is already stored points its
/// key at that mask, through an index of the stored masks the builder keeps on the heap (built
/// from the table when first needed). Replacing a key's mask may leave the old one unused; it
/// stays stored (and counted in [`FibCounts::multicast_masks`] and the checksum) until
/// [`FibBuilder::clear`], or until a new mask finds the array full, when the builder compacts the
/// array (drops every unused mask and renumbers the keys' indices) before it gives up with
/// [`FibError::MulticastMasksFull`].
pub struct FibBuilder<'a> {
    table: &'a mut FibTable,
    previous: Option<&'a FibTable>,
    /// Index of every stored mask; `None` until first needed (then built from the table).
    masks: Option<HashMap<LinkMask, u32>>,
}

impl<'a> FibBuilder<'a> {
    /// A builder over `table`, keeping its current contents.
    pub fn new(table: &'a mut FibTable) -> Self {
        FibBuilder {
            table,
            previous: None,
            masks: None,
        }
    }

    pub(crate) fn with_previous(table: &'a mut FibTable, previous: &'a FibTable) -> Self {
        FibBuilder {
            table,
            previous: Some(previous),
            masks: None,
        }
    }

    pub(crate) fn set_generation(&mut self, generation: Generation) {
        self.table.header.generation = generation.0;
    }

    /// Removes every entry and every stored mask (about 9.0 MiB of stores: the unicast, key and
    /// anycast arrays; the mask array is left as it is, unreachable past the zero mask count).
    pub fn clear(&mut self) {
        let h = &mut self.table.header;
        (
            h.unicast_count,
            h.multicast_count,
            h.multicast_mask_count,
            h.anycast_count,
            h.checksum,
        ) = (0, 0, 0, 0, 0);
        self.table.unicast.zero();
        self.table.multicast_slots.zero();
        self.table.anycast_slots.zero();
        match &mut self.masks {
            Some(index) => index.clear(),
            None => self.masks = Some(HashMap::new()),
        }
    }

    /// Replaces the contents with a copy of the previously published generation, to apply a
    /// small change instead of rebuilding (a 10 MiB copy). Does nothing outside a publish.
    pub fn copy_previous(&mut self) {
        if let Some(previous) = self.previous {
            self.copy_from(previous);
        }
    }

    /// Replaces the contents with a copy of `other` (keeping this table's generation).
    pub fn copy_from(&mut self, other: &FibTable) {
        let generation = self.table.header.generation;
        self.table.as_mut_bytes().copy_from_slice(other.as_bytes());
        self.table.header.generation = generation;
        self.masks = None;
    }

    /// Sets the route to `dst`.
    pub fn set_unicast(&mut self, dst: NodeId, route: UnicastRoute) {
        self.remove_unicast(dst);
        let i = dst.index();
        let e = UnicastEntry {
            next_hop: route.next_hop.get(),
            flags: UNICAST_VALID,
            metric_us: route.metric_us,
        };
        self.table.unicast[i] = e;
        let h = &mut self.table.header;
        h.unicast_count += 1;
        h.checksum = h.checksum.wrapping_add(unicast_sum(i, &e));
    }

    /// Removes the route to `dst`, if any.
    pub fn remove_unicast(&mut self, dst: NodeId) {
        let i = dst.index();
        let old = self.table.unicast[i];
        if old.flags & UNICAST_VALID != 0 {
            let h = &mut self.table.header;
            h.unicast_count -= 1;
            h.checksum = h.checksum.wrapping_sub(unicast_sum(i, &old));
        }
        self.table.unicast[i] = UnicastEntry {
            next_hop: NO_LINK,
            flags: 0,
            metric_us: 0,
        };
    }

    /// Sets the out-links and local delivery of (`group`, `source`). The mask is stored once per
    /// table: a key whose out-links equal another key's shares its mask. On an error the table
    /// is unchanged (except for a compaction of unused masks, which changes no route).
    pub fn insert_multicast(
        &mut self,
        group: GroupId,
        source: NodeId,
        links: &LinkMask,
        local_delivery: bool,
    ) -> Result<(), FibError> {
        let flags = if local_delivery { MULTICAST_LOCAL } else { 0 };
        let mut i = multicast_home(group.0, source.get());
        for _ in 0..MAX_PROBE {
            let slot = self.table.multicast_slots[i];
            if slot.source == 0 {
                if self.table.header.multicast_count as usize >= MULTICAST_CAPACITY {
                    return Err(FibError::MulticastFull {
                        capacity: MULTICAST_CAPACITY,
                    });
                }
                let route = self.store_mask(links)?;
                let new = MulticastSlot {
                    group: group.0,
                    source: source.get(),
                    flags,
                    route,
                    reserved: 0,
                };
                self.table.multicast_slots[i] = new;
                let h = &mut self.table.header;
                h.multicast_count += 1;
                h.checksum = h.checksum.wrapping_add(multicast_sum(&new, links));
                return Ok(());
            }
            if slot.group == group.0 && slot.source == source.get() {
                let Some(old_links) = self.table.mask(slot.route).copied() else {
                    return Err(FibError::Corrupt {
                        what: "multicast mask index",
                    });
                };
                // May compact the masks, renumbering this slot's index too: only its content
                // (old_links) is needed below.
                let route = self.store_mask(links)?;
                let new = MulticastSlot {
                    flags,
                    route,
                    ..slot
                };
                self.table.multicast_slots[i] = new;
                let h = &mut self.table.header;
                h.checksum = h
                    .checksum
                    .wrapping_sub(multicast_sum(&slot, &old_links))
                    .wrapping_add(multicast_sum(&new, links));
                return Ok(());
            }
            i = (i + 1) & (MULTICAST_SLOTS - 1);
        }
        Err(FibError::ProbeLimit {
            table: "multicast",
            probes: MAX_PROBE,
        })
    }

    /// The index of a stored mask equal to `links`, storing it first if there is none.
    fn store_mask(&mut self, links: &LinkMask) -> Result<u32, FibError> {
        let table = &*self.table;
        if let Some(&i) = self
            .masks
            .get_or_insert_with(|| index_masks(table))
            .get(links)
        {
            return Ok(i);
        }
        let mut count = self.table.header.multicast_mask_count as usize;
        if count >= MULTICAST_MASKS {
            count = self.compact_masks();
            if count >= MULTICAST_MASKS {
                return Err(FibError::MulticastMasksFull {
                    limit: MULTICAST_MASKS,
                });
            }
        }
        self.table.multicast_masks[count] = *links;
        let h = &mut self.table.header;
        h.multicast_mask_count = count as u32 + 1;
        h.checksum = h.checksum.wrapping_add(mask_sum(links));
        if let Some(index) = &mut self.masks {
            index.insert(*links, count as u32);
        }
        Ok(count as u32)
    }

    /// Drops every stored mask no key points at, moving the rest down in order and renumbering
    /// the keys' indices, and returns the new mask count. Changes no route, so the entries'
    /// checksum terms stay; the dropped masks' terms leave the checksum. O(table size).
    fn compact_masks(&mut self) -> usize {
        let t = &mut *self.table;
        let count = (t.header.multicast_mask_count as usize).min(MULTICAST_MASKS);
        const UNUSED: u32 = u32::MAX;
        let mut remap = vec![UNUSED; count];
        for s in t.multicast_slots.iter().filter(|s| s.source != 0) {
            if let Some(r) = remap.get_mut(s.route as usize) {
                *r = 0;
            }
        }
        let mut kept = 0;
        for (old, r) in remap.iter_mut().enumerate() {
            let links = t.multicast_masks[old];
            if *r == UNUSED {
                t.header.checksum = t.header.checksum.wrapping_sub(mask_sum(&links));
                continue;
            }
            *r = kept as u32;
            t.multicast_masks[kept] = links;
            kept += 1;
        }
        for s in t.multicast_slots.iter_mut().filter(|s| s.source != 0) {
            // An index out of range (a corrupt table) stays out of range: kept <= count.
            if let Some(&r) = remap.get(s.route as usize) {
                s.route = r;
            }
        }
        t.header.multicast_mask_count = kept as u32;
        self.masks = Some(index_masks(t));
        kept
    }

    /// Sets the anycast route of `group`.
    pub fn insert_anycast(&mut self, group: GroupId, route: AnycastRoute) -> Result<(), FibError> {
        let new = AnycastSlot {
            group: group.0,
            target: route.target.get(),
            next_hop: route.next_hop.map_or(NO_LINK, LinkId::get),
            metric_us: route.metric_us,
            flags: 0,
            reserved: 0,
        };
        let mut i = anycast_home(group.0);
        for _ in 0..MAX_PROBE {
            let slot = self.table.anycast_slots[i];
            let h = &mut self.table.header;
            if slot.target == 0 {
                if h.anycast_count as usize >= ANYCAST_CAPACITY {
                    return Err(FibError::AnycastFull {
                        capacity: ANYCAST_CAPACITY,
                    });
                }
                h.anycast_count += 1;
                h.checksum = h.checksum.wrapping_add(anycast_sum(&new));
                self.table.anycast_slots[i] = new;
                return Ok(());
            }
            if slot.group == group.0 {
                h.checksum = h
                    .checksum
                    .wrapping_sub(anycast_sum(&slot))
                    .wrapping_add(anycast_sum(&new));
                self.table.anycast_slots[i] = new;
                return Ok(());
            }
            i = (i + 1) & (ANYCAST_SLOTS - 1);
        }
        Err(FibError::ProbeLimit {
            table: "anycast",
            probes: MAX_PROBE,
        })
    }

    /// Entry counts so far.
    pub fn counts(&self) -> FibCounts {
        self.table.counts()
    }

    /// The table as built so far.
    pub fn table(&self) -> &FibTable {
        self.table
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
