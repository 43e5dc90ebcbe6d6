//! One FIB table: plain `repr(C)` arrays that live in a shared-memory buffer (or on the heap for
//! tests and the simulator), O(1) allocation-free lookups, and a builder for the writer.
//!
//! - Unicast: indexed by destination `NodeId`, 1024 entries of 8 B.
//! - Multicast: open addressing with linear probing over 131,072 key slots of 16 B (at most
//!   [`MULTICAST_CAPACITY`] = 65,536 entries, so the load stays at or below one half), keyed by
//!   (group, source node); each key points at a dense 64-B [`LinkMask`] of out-links.
//! - Anycast: the same scheme over 16,384 slots for at most [`ANYCAST_CAPACITY`] = 8,192 groups.
//!
//! Probing is capped at [`MAX_PROBE`] slots: the builder refuses an insert that would need more,
//! so a lookup touches at most that many slots even on a corrupted table. Every value read from a
//! table is range-checked before use; a bad value reads as "no route", never as a panic.

#![allow(unsafe_code, reason = "zeroed heap allocation of a FibTable")]

use core::fmt;
use core::mem::size_of;

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::ids::{GroupId, LinkId, MAX_LINKS, NodeId};

/// Unicast entries, indexed by [`NodeId::index`] (node ids 1..=1023 use 0..=1022).
pub const UNICAST_ENTRIES: usize = 1024;
/// Most multicast (group, source) entries in one table.
pub const MULTICAST_CAPACITY: usize = 65_536;
/// Multicast key slots (twice the capacity: load factor at most 0.5).
pub const MULTICAST_SLOTS: usize = 2 * MULTICAST_CAPACITY;
/// Most anycast groups in one table.
pub const ANYCAST_CAPACITY: usize = 8_192;
/// Anycast slots (twice the capacity).
pub const ANYCAST_SLOTS: usize = 2 * ANYCAST_CAPACITY;
/// Most slots a lookup probes; inserts needing more fail with [`FibError::ProbeLimit`]. A full
/// multicast table (65,536 keys, sequential, clustered or random) measured at most 32.
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
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Default, PartialEq, Eq)]
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
    reserved: u32,
    /// Wrapping sum of a hash of every entry (order-independent).
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
    /// Index into `multicast_routes`.
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
    multicast_routes: [LinkMask; MULTICAST_CAPACITY],
}

/// Size of one FIB buffer in bytes (about 6.3 MiB).
pub const FIB_TABLE_SIZE: usize = size_of::<FibTable>();
const _: () = assert!(FIB_TABLE_SIZE == 64 + 8 * 1024 + 16 * (131_072 + 16_384) + 64 * 65_536);

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
                let links = self.multicast_routes.get(slot.route as usize)?;
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
            let links = self.multicast_routes.get(s.route as usize)?;
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

    /// Recomputes counts and the checksum from every entry and compares them with the header.
    /// O(table size) (a few ms): for diagnostics and tests, never per packet.
    pub fn verify(&self) -> Result<(), FibError> {
        let mut sum = 0u64;
        let mut unicast = 0u32;
        for (i, e) in self.unicast.iter().enumerate() {
            if e.flags & UNICAST_VALID != 0 {
                unicast += 1;
                sum = sum.wrapping_add(unicast_sum(i, e));
            }
        }
        let mut multicast = 0u32;
        for s in self.multicast_slots.iter().filter(|s| s.source != 0) {
            if s.route >= self.header.multicast_count {
                return Err(FibError::Corrupt {
                    what: "multicast route index",
                });
            }
            let links = &self.multicast_routes[s.route as usize];
            multicast += 1;
            sum = sum.wrapping_add(multicast_sum(s, links));
        }
        let mut anycast = 0u32;
        for s in self.anycast_slots.iter().filter(|s| s.target != 0) {
            anycast += 1;
            sum = sum.wrapping_add(anycast_sum(s));
        }
        let h = &self.header;
        if (unicast, multicast, anycast) != (h.unicast_count, h.multicast_count, h.anycast_count) {
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

/// Fills one table: the writer gets one in [`super::FibWriter::try_publish`], cleared; tests and
/// the simulator wrap a heap table with [`FibBuilder::new`]. Inserts replace an existing entry
/// with the same key. There is no removal for multicast and anycast: rebuild instead.
pub struct FibBuilder<'a> {
    table: &'a mut FibTable,
    previous: Option<&'a FibTable>,
}

impl<'a> FibBuilder<'a> {
    /// A builder over `table`, keeping its current contents.
    pub fn new(table: &'a mut FibTable) -> Self {
        FibBuilder {
            table,
            previous: None,
        }
    }

    pub(crate) fn with_previous(table: &'a mut FibTable, previous: &'a FibTable) -> Self {
        FibBuilder {
            table,
            previous: Some(previous),
        }
    }

    pub(crate) fn set_generation(&mut self, generation: Generation) {
        self.table.header.generation = generation.0;
    }

    /// Removes every entry (about 2.3 MiB of stores; route masks are left, unreachable).
    pub fn clear(&mut self) {
        let h = &mut self.table.header;
        (
            h.unicast_count,
            h.multicast_count,
            h.anycast_count,
            h.checksum,
        ) = (0, 0, 0, 0);
        self.table.unicast.zero();
        self.table.multicast_slots.zero();
        self.table.anycast_slots.zero();
    }

    /// Replaces the contents with a copy of the previously published generation, to apply a
    /// small change instead of rebuilding (a 6.3 MiB copy). Does nothing outside a publish.
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

    /// Sets the out-links and local delivery of (`group`, `source`).
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
                let count = self.table.header.multicast_count;
                if count as usize >= MULTICAST_CAPACITY {
                    return Err(FibError::MulticastFull {
                        capacity: MULTICAST_CAPACITY,
                    });
                }
                let new = MulticastSlot {
                    group: group.0,
                    source: source.get(),
                    flags,
                    route: count,
                    reserved: 0,
                };
                self.table.multicast_slots[i] = new;
                self.table.multicast_routes[count as usize] = *links;
                let h = &mut self.table.header;
                h.multicast_count += 1;
                h.checksum = h.checksum.wrapping_add(multicast_sum(&new, links));
                return Ok(());
            }
            if slot.group == group.0 && slot.source == source.get() {
                let route = slot.route as usize;
                let Some(old_links) = self.table.multicast_routes.get(route).copied() else {
                    return Err(FibError::Corrupt {
                        what: "multicast route index",
                    });
                };
                let new = MulticastSlot { flags, ..slot };
                self.table.multicast_slots[i] = new;
                self.table.multicast_routes[route] = *links;
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
