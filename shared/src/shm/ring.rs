//! Single-producer single-consumer rings of packet descriptors in the region: punt rings carry
//! control packets the data plane received to the control plane, inject rings carry the control
//! plane's packets to the data plane for sending.
//!
//! Each ring is a 512-B header (four 128-B lines: constants, producer's tail, consumer's head,
//! the consumer's `sleeping` flag) and a power-of-two number of 2048-B slots: a 16-B descriptor
//! (length, link, path, flags) and up to [`RING_PAYLOAD_MAX`] bytes. Indices are free-running
//! u64s; each side keeps a cached copy of the other's index and publishes its own once per burst
//! ([`RingProducer::stage`] then [`RingProducer::publish`]; [`RingConsumer::pop_burst`]).
//!
//! Wakeup without busy polling: before blocking, the consumer calls
//! [`RingConsumer::prepare_sleep`] (sets `sleeping`, fences, re-checks the ring) and blocks on
//! the ring's eventfd only if it returns true. The producer's publish stores the tail, fences and
//! takes the flag: [`Notify::NeedsWakeup`] tells the caller to write the eventfd, and only then.

#![allow(
    unsafe_code,
    reason = "slot reads and writes through raw pointers into the region"
)]

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::layout::Section;
use super::owner::{self, OwnerWord};
use super::region::{ShmError, ShmRegion};
use crate::ids::{LinkId, PathId};

/// Bytes per slot (descriptor plus payload).
pub const RING_SLOT_SIZE: usize = 2048;
/// Descriptor bytes at the start of each slot.
const DESC_SIZE: usize = 16;
/// Largest payload a slot holds.
pub const RING_PAYLOAD_MAX: usize = RING_SLOT_SIZE - DESC_SIZE;
/// Bytes before the first slot.
const RING_HEADER_SIZE: u64 = 512;

const NO_LINK: u16 = u16::MAX;
const NO_PATH: u8 = u8::MAX;

/// Bytes one ring of `slots` slots takes in its section.
pub(crate) const fn ring_bytes(slots: u32) -> u64 {
    RING_HEADER_SIZE + slots as u64 * RING_SLOT_SIZE as u64
}

#[derive(FromBytes)]
#[repr(C, align(128))]
struct InfoLine {
    capacity: AtomicU32,
    slot_size: AtomicU32,
    reserved: [u32; 30],
}

#[derive(FromBytes)]
#[repr(C, align(128))]
struct IndexLine {
    /// The producer's tail or the consumer's head.
    index: AtomicU64,
    owner: AtomicU64,
    reserved: [u64; 14],
}

#[derive(FromBytes)]
#[repr(C, align(128))]
struct WakeLine {
    sleeping: AtomicU32,
    reserved: [u32; 31],
}

#[derive(FromBytes)]
#[repr(C)]
struct RingHeader {
    info: InfoLine,
    producer: IndexLine,
    consumer: IndexLine,
    wake: WakeLine,
}

const _: () = assert!(size_of::<RingHeader>() as u64 == RING_HEADER_SIZE);

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy)]
#[repr(C)]
struct Descriptor {
    len: u16,
    link: u16,
    path: u8,
    reserved0: u8,
    flags: u16,
    reserved: u64,
}

const _: () = assert!(size_of::<Descriptor>() == DESC_SIZE);
const _: () = assert!(RING_PAYLOAD_MAX <= u16::MAX as usize);

/// Which ring of the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingId {
    /// Punt ring `n`: data plane (producer) to control plane (consumer).
    Punt(u32),
    /// Inject ring `n`: control plane (producer) to data plane (consumer).
    Inject(u32),
}

/// What travels with a packet: the link and path it came in on (punt) or should leave on
/// (inject; `path: None` lets the data plane pick the link's active path), and free flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// The overlay link.
    pub link: Option<LinkId>,
    /// The path of that link.
    pub path: Option<PathId>,
    /// Flags for the packet's users (not interpreted by the ring).
    pub flags: u16,
}

/// Whether the caller must wake the consumer (write the ring's eventfd).
#[must_use = "write the ring's eventfd on NeedsWakeup, or the consumer may sleep forever"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// The consumer is awake (or nothing was published).
    NotNeeded,
    /// The consumer is sleeping or about to: write its eventfd once.
    NeedsWakeup,
}

/// Why a packet was not staged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Every slot is in use; the caller counts a drop (`DropReason::QueueFull`).
    #[error("ring full")]
    Full,
    /// The packet is larger than a slot's payload.
    #[error("packet of {len} B exceeds the ring's {max} B slot payload")]
    Oversized {
        /// The packet's length.
        len: usize,
        /// [`RING_PAYLOAD_MAX`].
        max: usize,
    },
}

/// Writes the constant line of every ring at creation (the rest starts zeroed).
pub(crate) fn init_rings(region: &ShmRegion) {
    let layout = region.layout();
    let ids = (0..layout.punt_rings)
        .map(RingId::Punt)
        .chain((0..layout.inject_rings).map(RingId::Inject));
    for id in ids {
        if let Ok(ring) = Ring::locate(region, id) {
            ring.header()
                .info
                .capacity
                .store(layout.ring_slots, Ordering::Relaxed);
            ring.header()
                .info
                .slot_size
                .store(RING_SLOT_SIZE as u32, Ordering::Relaxed);
        }
    }
}

/// Pointers to one ring; the `Arc<ShmRegion>` in each endpoint keeps them valid.
struct Ring {
    header: NonNull<RingHeader>,
    slots: NonNull<u8>,
    capacity: u64,
}

impl Ring {
    fn locate(region: &ShmRegion, id: RingId) -> Result<Ring, ShmError> {
        let layout = region.layout();
        let (section, index, count) = match id {
            RingId::Punt(i) => (Section::PuntRings, i, layout.punt_rings),
            RingId::Inject(i) => (Section::InjectRings, i, layout.inject_rings),
        };
        if index >= count {
            return Err(ShmError::BadRing { ring: id, count });
        }
        let offset = u64::from(index) * ring_bytes(layout.ring_slots);
        let header = region.section_ptr::<RingHeader>(section, offset);
        // The last slot's last byte is in the section: section_ptr checks a whole slot there.
        let last =
            offset + RING_HEADER_SIZE + (u64::from(layout.ring_slots) - 1) * RING_SLOT_SIZE as u64;
        let _ = region.section_ptr::<[u8; RING_SLOT_SIZE]>(section, last);
        let slots = region.section_ptr::<u8>(section, offset + RING_HEADER_SIZE);
        Ok(Ring {
            header,
            slots,
            capacity: u64::from(layout.ring_slots),
        })
    }

    fn header(&self) -> &RingHeader {
        // SAFETY: in bounds and aligned (section_ptr); RingHeader is atomics plus reserved words
        // nobody writes; the endpoint's Arc keeps the mapping alive.
        unsafe { self.header.as_ref() }
    }

    fn slot(&self, index: u64) -> *mut u8 {
        let at = (index & (self.capacity - 1)) as usize * RING_SLOT_SIZE;
        // SAFETY: at + RING_SLOT_SIZE <= capacity * RING_SLOT_SIZE, inside the ring (locate).
        unsafe { self.slots.as_ptr().add(at) }
    }

    fn claim(&self, line: &IndexLine, role: &'static str) -> Result<OwnerWord, ShmError> {
        let me = owner::current_process();
        owner::claim(&line.owner, me).map_err(|held| {
            let (pid, tid) = owner::split(held);
            ShmError::RoleBusy { role, pid, tid }
        })?;
        Ok(me)
    }
}

/// The producing end of a ring (one per ring; a dead producer's role is taken over).
pub struct RingProducer {
    _region: Arc<ShmRegion>,
    ring: Ring,
    /// Next index to stage into (published + staged).
    tail: u64,
    published: u64,
    head_cache: u64,
    me: OwnerWord,
}

// SAFETY: the raw pointers point into the mapping owned by the Arc, which is Send + Sync; the
// endpoint has no thread-affine state.
unsafe impl Send for RingProducer {}

impl RingProducer {
    /// Becomes the producer of ring `id`, continuing from the ring's published tail.
    pub fn attach(region: Arc<ShmRegion>, id: RingId) -> Result<Self, ShmError> {
        let ring = Ring::locate(&region, id)?;
        let me = ring.claim(&ring.header().producer, "ring producer")?;
        let tail = ring.header().producer.index.load(Ordering::Acquire);
        let head_cache = ring.header().consumer.index.load(Ordering::Acquire);
        Ok(RingProducer {
            _region: region,
            ring,
            tail,
            published: tail,
            head_cache,
            me,
        })
    }

    /// Copies one packet into the next free slot; it becomes visible at the next
    /// [`RingProducer::publish`].
    pub fn stage(&mut self, meta: PacketMeta, bytes: &[u8]) -> Result<(), PushError> {
        if bytes.len() > RING_PAYLOAD_MAX {
            return Err(PushError::Oversized {
                len: bytes.len(),
                max: RING_PAYLOAD_MAX,
            });
        }
        if self.tail.wrapping_sub(self.head_cache) >= self.ring.capacity {
            self.head_cache = self.ring.header().consumer.index.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.head_cache) >= self.ring.capacity {
                return Err(PushError::Full);
            }
        }
        let desc = Descriptor {
            len: bytes.len() as u16,
            link: meta.link.map_or(NO_LINK, LinkId::get),
            path: meta.path.map_or(NO_PATH, PathId::get),
            reserved0: 0,
            flags: meta.flags,
            reserved: 0,
        };
        let slot = self.ring.slot(self.tail);
        // SAFETY: the slot is free: the consumer finished with it (its head, loaded with
        // Acquire, is past it) and publishes nothing from it until our Release store of a tail
        // beyond it. The descriptor and payload fit the slot (length checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(desc.as_bytes().as_ptr(), slot, DESC_SIZE);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), slot.add(DESC_SIZE), bytes.len());
        }
        self.tail = self.tail.wrapping_add(1);
        Ok(())
    }

    /// Makes every staged packet visible with one Release store; says whether to wake the
    /// consumer.
    pub fn publish(&mut self) -> Notify {
        if self.tail == self.published {
            return Notify::NotNeeded;
        }
        let h = self.ring.header();
        h.producer.index.store(self.tail, Ordering::Release);
        self.published = self.tail;
        // Pairs with the consumer's fence in prepare_sleep: it sees our tail or we see its flag.
        fence(Ordering::SeqCst);
        if h.wake.sleeping.load(Ordering::Relaxed) != 0
            && h.wake.sleeping.swap(0, Ordering::AcqRel) != 0
        {
            Notify::NeedsWakeup
        } else {
            Notify::NotNeeded
        }
    }

    /// Stages one packet and publishes it.
    pub fn push(&mut self, meta: PacketMeta, bytes: &[u8]) -> Result<Notify, PushError> {
        self.stage(meta, bytes)?;
        Ok(self.publish())
    }

    /// Packets staged but not yet published.
    pub fn staged(&self) -> usize {
        self.tail.wrapping_sub(self.published) as usize
    }

    /// Slots free right now (refreshes the cached head).
    pub fn free(&mut self) -> usize {
        self.head_cache = self.ring.header().consumer.index.load(Ordering::Acquire);
        self.ring
            .capacity
            .saturating_sub(self.tail.wrapping_sub(self.head_cache)) as usize
    }
}

impl Drop for RingProducer {
    fn drop(&mut self) {
        owner::release(&self.ring.header().producer.owner, self.me);
    }
}

/// The consuming end of a ring (one per ring; a dead consumer's role is taken over).
pub struct RingConsumer {
    _region: Arc<ShmRegion>,
    ring: Ring,
    head: u64,
    tail_cache: u64,
    corrupt: u64,
    me: OwnerWord,
}

// SAFETY: as for RingProducer.
unsafe impl Send for RingConsumer {}

impl RingConsumer {
    /// Becomes the consumer of ring `id`, continuing from the ring's head.
    pub fn attach(region: Arc<ShmRegion>, id: RingId) -> Result<Self, ShmError> {
        let ring = Ring::locate(&region, id)?;
        let me = ring.claim(&ring.header().consumer, "ring consumer")?;
        let head = ring.header().consumer.index.load(Ordering::Acquire);
        let tail_cache = ring.header().producer.index.load(Ordering::Acquire);
        Ok(RingConsumer {
            _region: region,
            ring,
            head,
            tail_cache,
            corrupt: 0,
            me,
        })
    }

    fn refresh(&mut self) -> u64 {
        self.tail_cache = self.ring.header().producer.index.load(Ordering::Acquire);
        // A corrupt tail can never make us read more than one lap.
        self.tail_cache
            .wrapping_sub(self.head)
            .min(self.ring.capacity)
    }

    /// Packets ready to pop (refreshes the cached tail).
    pub fn available(&mut self) -> usize {
        self.refresh() as usize
    }

    /// Calls `f` on up to `max` packets in order, then frees their slots with one Release store.
    /// The bytes are valid only during the call. Returns how many slots were consumed.
    pub fn pop_burst<F: FnMut(PacketMeta, &[u8])>(&mut self, max: usize, mut f: F) -> usize {
        let mut ready = self
            .tail_cache
            .wrapping_sub(self.head)
            .min(self.ring.capacity);
        if ready == 0 {
            ready = self.refresh();
        }
        let n = ready.min(max as u64);
        for k in 0..n {
            let slot = self.ring.slot(self.head.wrapping_add(k));
            let mut desc = [0u8; DESC_SIZE];
            // SAFETY: the producer wrote this slot before its Release store of a tail past it,
            // which we loaded with Acquire; it does not touch it again until our head passes it.
            unsafe { std::ptr::copy_nonoverlapping(slot, desc.as_mut_ptr(), DESC_SIZE) };
            let Ok(desc) = Descriptor::read_from_bytes(&desc) else {
                continue;
            };
            let len = usize::from(desc.len);
            if len > RING_PAYLOAD_MAX {
                self.corrupt += 1;
                continue;
            }
            // SAFETY: as above; len <= RING_PAYLOAD_MAX keeps the slice inside the slot, and the
            // slice does not outlive this call of `f` (higher-ranked lifetime).
            let bytes = unsafe { std::slice::from_raw_parts(slot.add(DESC_SIZE), len) };
            let meta = PacketMeta {
                link: LinkId::new(desc.link),
                path: PathId::new(desc.path),
                flags: desc.flags,
            };
            f(meta, bytes);
        }
        if n > 0 {
            self.head = self.head.wrapping_add(n);
            self.ring
                .header()
                .consumer
                .index
                .store(self.head, Ordering::Release);
        }
        n as usize
    }

    /// Pops one packet into `buf`; returns its metadata and full length (only
    /// `min(len, buf.len())` bytes are copied).
    pub fn pop_into(&mut self, buf: &mut [u8]) -> Option<(PacketMeta, usize)> {
        let mut out = None;
        self.pop_burst(1, |meta, bytes| {
            let n = bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            out = Some((meta, bytes.len()));
        });
        out
    }

    /// Announces that the consumer is about to block, then re-checks the ring. Returns true if
    /// it is still empty: block on the eventfd now, and call [`RingConsumer::finish_sleep`] after
    /// waking. Returns false (flag already withdrawn) if packets arrived meanwhile.
    pub fn prepare_sleep(&mut self) -> bool {
        self.ring.header().wake.sleeping.store(1, Ordering::SeqCst);
        // Pairs with the producer's fence in publish: we see its tail or it sees our flag.
        fence(Ordering::SeqCst);
        if self.refresh() == 0 {
            return true;
        }
        self.ring.header().wake.sleeping.store(0, Ordering::Relaxed);
        false
    }

    /// Withdraws the sleeping flag after waking (or instead of sleeping).
    pub fn finish_sleep(&mut self) {
        self.ring.header().wake.sleeping.store(0, Ordering::Relaxed);
    }

    /// Slots skipped because their descriptor was invalid (a bug in the producer).
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }
}

impl Drop for RingConsumer {
    fn drop(&mut self) {
        owner::release(&self.ring.header().consumer.owner, self.me);
    }
}

#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
