//! The region's layout: the versioned header at offset 0, the section table, and the checks an
//! attaching process makes before it touches anything else.
//!
//! Sections are page-aligned and sized from this build's types, so the section table is not
//! trusted: an attacher recomputes it from the header's few parameters ([`ShmLayout`]) and
//! requires an exact match. Everything is in host byte order (both processes run on one host).

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::fib::{FibControl, FibTable};
use super::groups::LocalGroupsSection;
use super::region::ShmError;
use super::rel_stats::RelStatsSection;
use super::ring::{RING_SLOT_SIZE, ring_bytes};
use super::stats::{Counter, CountersSection, StatsSection};
use crate::DropReason;

/// The first 8 bytes of every region: `"WEFTSHM\0"` read as a little-endian u64.
pub const SHM_MAGIC: u64 = u64::from_le_bytes(*b"WEFTSHM\0");

/// The layout version this build reads and writes. Bump it on any change to a section's size,
/// field order or meaning, to the header, or to a protocol (see `docs/shm.md`, "Versioning").
/// 6: the FIB tables hold 262,144 multicast keys over 16,384 deduplicated masks and 32,768
/// anycast groups (each buffer 10,494,016 B).
pub const LAYOUT_VERSION: u32 = 6;

/// Number of data-plane worker slots: FIB reader epochs and per-worker counter rows.
pub const MAX_WORKERS: usize = 64;

/// Sections start on page boundaries.
pub const PAGE_SIZE: u64 = 4096;

/// Bytes reserved for the header at offset 0 (the header itself is smaller).
pub const HEADER_AREA: u64 = PAGE_SIZE;

/// Most slots a ring may have.
pub const MAX_RING_SLOTS: u32 = 1 << 16;

/// A hash of the per-worker counter names in order (fixed counters, then drop reasons). A build
/// that adds, removes or reorders a counter gets a different value and refuses to attach.
pub const COUNTER_SCHEMA: u64 = counter_schema();

/// One section of the region, in layout order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The FIB control block: current generation, writer, per-worker reader epochs.
    FibControl,
    /// FIB table buffer 0 (holds even generations).
    FibBuffer0,
    /// FIB table buffer 1 (holds odd generations).
    FibBuffer1,
    /// Per-link and per-path statistics under seqlocks.
    LinkStats,
    /// Per-worker counter rows.
    WorkerCounters,
    /// The punt rings (data plane to control plane), one after another.
    PuntRings,
    /// The inject rings (control plane to data plane), one after another.
    InjectRings,
    /// The reliable service's per-link and per-flow statistics.
    RelStats,
    /// The groups this node's clients joined, for the control plane.
    LocalGroups,
}

impl Section {
    /// Number of sections.
    pub const COUNT: usize = 9;

    /// Every section in layout order.
    pub const ALL: [Section; Self::COUNT] = [
        Section::FibControl,
        Section::FibBuffer0,
        Section::FibBuffer1,
        Section::LinkStats,
        Section::WorkerCounters,
        Section::PuntRings,
        Section::InjectRings,
        Section::RelStats,
        Section::LocalGroups,
    ];

    /// Position in the header's section table.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name for errors and dumps.
    pub const fn name(self) -> &'static str {
        match self {
            Section::FibControl => "fib_control",
            Section::FibBuffer0 => "fib_buffer0",
            Section::FibBuffer1 => "fib_buffer1",
            Section::LinkStats => "link_stats",
            Section::WorkerCounters => "worker_counters",
            Section::PuntRings => "punt_rings",
            Section::InjectRings => "inject_rings",
            Section::RelStats => "rel_stats",
            Section::LocalGroups => "local_groups",
        }
    }
}

/// Where a section lives in the region.
#[derive(
    FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[repr(C)]
pub struct SectionDesc {
    /// Byte offset from the start of the region (a multiple of [`PAGE_SIZE`]).
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The header at offset 0, written once by the creator (only `dataplane_incarnation` changes
/// later, atomically). A copy of it is what [`super::ShmRegion::header`] returns.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ShmHeader {
    /// [`SHM_MAGIC`].
    pub magic: u64,
    /// [`LAYOUT_VERSION`] of the creator.
    pub layout_version: u32,
    /// `size_of::<ShmHeader>()` of the creator.
    pub header_size: u32,
    /// Size of the whole region in bytes; equals the file size.
    pub total_size: u64,
    /// Pid of the process that created the region.
    pub creator_pid: u32,
    /// Incarnation of the data plane currently using the region (changes when it restarts).
    pub dataplane_incarnation: u32,
    /// Hash of the overlay config the creator ran with (compare with
    /// [`super::ShmRegion::check_config_hash`]).
    pub config_hash: u64,
    /// [`COUNTER_SCHEMA`] of the creator.
    pub counters_schema: u64,
    /// [`MAX_WORKERS`] of the creator.
    pub max_workers: u32,
    /// Number of punt rings.
    pub punt_rings: u32,
    /// Number of inject rings.
    pub inject_rings: u32,
    /// Slots per ring (a power of two).
    pub ring_slots: u32,
    /// Bytes per ring slot ([`RING_SLOT_SIZE`]).
    pub ring_slot_size: u32,
    /// Number of entries in `sections` ([`Section::COUNT`]).
    pub section_count: u32,
    /// Offset and size of each section, indexed by [`Section::index`].
    pub sections: [SectionDesc; Section::COUNT],
}

const _: () = assert!(size_of::<ShmHeader>() == 216);
const _: () = assert!(size_of::<ShmHeader>() as u64 <= HEADER_AREA);
const _: () = assert!(size_of::<ShmHeader>() % 4 == 0, "read as u32 words");

/// The parameters of a region's layout; everything else is fixed by this build's types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmLayout {
    /// Number of punt rings (data plane to control plane), 1..=[`MAX_WORKERS`]: one per worker
    /// lets every worker punt without sharing a producer.
    pub punt_rings: u32,
    /// Number of inject rings (control plane to data plane), 1..=[`MAX_WORKERS`].
    pub inject_rings: u32,
    /// Slots per ring: a power of two in 2..=[`MAX_RING_SLOTS`].
    pub ring_slots: u32,
}

impl Default for ShmLayout {
    /// One punt ring and one inject ring of 1024 slots (about 17 MiB in all).
    fn default() -> Self {
        ShmLayout {
            punt_rings: 1,
            inject_rings: 1,
            ring_slots: 1024,
        }
    }
}

impl ShmLayout {
    /// Checks the parameters' ranges.
    pub fn check(&self) -> Result<(), ShmError> {
        let workers = MAX_WORKERS as u32;
        if !(1..=workers).contains(&self.punt_rings) {
            return Err(ShmError::InvalidLayout {
                reason: "punt_rings must be 1..=MAX_WORKERS",
            });
        }
        if !(1..=workers).contains(&self.inject_rings) {
            return Err(ShmError::InvalidLayout {
                reason: "inject_rings must be 1..=MAX_WORKERS",
            });
        }
        if !self.ring_slots.is_power_of_two() || !(2..=MAX_RING_SLOTS).contains(&self.ring_slots) {
            return Err(ShmError::InvalidLayout {
                reason: "ring_slots must be a power of two in 2..=65536",
            });
        }
        Ok(())
    }

    /// The section table for these parameters: page-aligned sections in [`Section::ALL`] order.
    pub fn sections(&self) -> [SectionDesc; Section::COUNT] {
        let ring = ring_bytes(self.ring_slots);
        let sizes = [
            size_of::<FibControl>() as u64,
            size_of::<FibTable>() as u64,
            size_of::<FibTable>() as u64,
            size_of::<StatsSection>() as u64,
            size_of::<CountersSection>() as u64,
            ring * u64::from(self.punt_rings),
            ring * u64::from(self.inject_rings),
            size_of::<RelStatsSection>() as u64,
            size_of::<LocalGroupsSection>() as u64,
        ];
        let mut out = [SectionDesc::default(); Section::COUNT];
        let mut offset = HEADER_AREA;
        for (desc, size) in out.iter_mut().zip(sizes) {
            *desc = SectionDesc { offset, size };
            offset = (offset + size).next_multiple_of(PAGE_SIZE);
        }
        out
    }

    /// Size of the whole region in bytes.
    pub fn total_size(&self) -> u64 {
        let last = self.sections()[Section::COUNT - 1];
        (last.offset + last.size).next_multiple_of(PAGE_SIZE)
    }

    /// The header a creator writes for these parameters.
    pub fn header(&self, config_hash: u64, creator_pid: u32) -> ShmHeader {
        ShmHeader {
            magic: SHM_MAGIC,
            layout_version: LAYOUT_VERSION,
            header_size: size_of::<ShmHeader>() as u32,
            total_size: self.total_size(),
            creator_pid,
            dataplane_incarnation: 0,
            config_hash,
            counters_schema: COUNTER_SCHEMA,
            max_workers: MAX_WORKERS as u32,
            punt_rings: self.punt_rings,
            inject_rings: self.inject_rings,
            ring_slots: self.ring_slots,
            ring_slot_size: RING_SLOT_SIZE as u32,
            section_count: Section::COUNT as u32,
            sections: self.sections(),
        }
    }

    /// The parameters recorded in a header.
    pub fn of(header: &ShmHeader) -> ShmLayout {
        ShmLayout {
            punt_rings: header.punt_rings,
            inject_rings: header.inject_rings,
            ring_slots: header.ring_slots,
        }
    }
}

/// Parses and checks the header bytes of a region whose file is `file_size` bytes long: magic,
/// version, header size, total size, counter schema, then every section against the layout this
/// build computes from the header's parameters.
pub fn validate_header(bytes: &[u8], file_size: u64) -> Result<ShmHeader, ShmError> {
    let needed = size_of::<ShmHeader>() as u64;
    let Ok((header, _)) = ShmHeader::read_from_prefix(bytes) else {
        return Err(ShmError::TooSmall {
            size: bytes.len() as u64,
            needed,
        });
    };
    if header.magic != SHM_MAGIC {
        return Err(ShmError::BadMagic {
            found: header.magic,
        });
    }
    if header.layout_version != LAYOUT_VERSION {
        return Err(ShmError::VersionMismatch {
            found: header.layout_version,
            expected: LAYOUT_VERSION,
        });
    }
    if u64::from(header.header_size) != needed {
        return Err(ShmError::HeaderSizeMismatch {
            found: header.header_size,
            expected: needed,
        });
    }
    if header.total_size != file_size {
        return Err(ShmError::SizeMismatch {
            header: header.total_size,
            file: file_size,
        });
    }
    if header.counters_schema != COUNTER_SCHEMA {
        return Err(ShmError::LayoutMismatch {
            field: "counters_schema",
        });
    }
    if header.max_workers != MAX_WORKERS as u32 {
        return Err(ShmError::LayoutMismatch {
            field: "max_workers",
        });
    }
    if header.ring_slot_size != RING_SLOT_SIZE as u32 {
        return Err(ShmError::LayoutMismatch {
            field: "ring_slot_size",
        });
    }
    if header.section_count != Section::COUNT as u32 {
        return Err(ShmError::LayoutMismatch {
            field: "section_count",
        });
    }
    let layout = ShmLayout::of(&header);
    layout.check()?;
    let expected = layout.sections();
    for section in Section::ALL {
        if header.sections[section.index()] != expected[section.index()] {
            return Err(ShmError::SectionMismatch {
                section: section.name(),
            });
        }
    }
    if layout.total_size() != header.total_size {
        return Err(ShmError::LayoutMismatch {
            field: "total_size",
        });
    }
    Ok(header)
}

const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    // A separator so ["ab", "c"] and ["a", "bc"] differ.
    hash ^= 0xFF;
    hash.wrapping_mul(0x0100_0000_01b3)
}

const fn counter_schema() -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < Counter::NAMES.len() {
        hash = fnv1a(hash, Counter::NAMES[i].as_bytes());
        i += 1;
    }
    let mut j = 0;
    while j < DropReason::NAMES.len() {
        hash = fnv1a(hash, DropReason::NAMES[j].as_bytes());
        j += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(h: &ShmHeader) -> Vec<u8> {
        h.as_bytes().to_vec()
    }

    /// The error of a failed validation, as text (io::Error makes ShmError not PartialEq).
    fn err(result: Result<ShmHeader, ShmError>) -> String {
        format!("{:?}", result.err())
    }

    fn want(e: ShmError) -> String {
        format!("{:?}", Some(e))
    }

    fn good() -> (ShmHeader, u64) {
        let layout = ShmLayout::default();
        (layout.header(7, 42), layout.total_size())
    }

    #[test]
    fn a_fresh_header_validates() {
        let (h, size) = good();
        assert_eq!(validate_header(&header_bytes(&h), size).ok(), Some(h));
    }

    #[test]
    fn bad_magic_is_refused() {
        let (mut h, size) = good();
        h.magic = u64::from_le_bytes(*b"NOTWEFT\0");
        assert_eq!(
            err(validate_header(&header_bytes(&h), size)),
            want(ShmError::BadMagic { found: h.magic })
        );
    }

    #[test]
    fn other_version_is_refused() {
        let (mut h, size) = good();
        h.layout_version = LAYOUT_VERSION + 1;
        assert_eq!(
            err(validate_header(&header_bytes(&h), size)),
            want(ShmError::VersionMismatch {
                found: LAYOUT_VERSION + 1,
                expected: LAYOUT_VERSION
            })
        );
    }

    #[test]
    fn size_mismatches_are_refused() {
        let (h, size) = good();
        assert_eq!(
            err(validate_header(&header_bytes(&h), size - PAGE_SIZE)),
            want(ShmError::SizeMismatch {
                header: size,
                file: size - PAGE_SIZE
            })
        );
        assert_eq!(
            err(validate_header(&header_bytes(&h)[..100], size)),
            want(ShmError::TooSmall {
                size: 100,
                needed: 216
            })
        );
        let mut short = h;
        short.header_size = 100;
        assert_eq!(
            err(validate_header(&header_bytes(&short), size)),
            want(ShmError::HeaderSizeMismatch {
                found: 100,
                expected: 216
            })
        );
    }

    #[test]
    fn tampered_sections_and_parameters_are_refused() {
        let (h, size) = good();
        let mut moved = h;
        moved.sections[Section::LinkStats.index()].offset += PAGE_SIZE;
        assert_eq!(
            err(validate_header(&header_bytes(&moved), size)),
            want(ShmError::SectionMismatch {
                section: "link_stats"
            })
        );
        let mut odd = h;
        odd.ring_slots = 1000;
        assert!(matches!(
            validate_header(&header_bytes(&odd), size),
            Err(ShmError::InvalidLayout { .. })
        ));
        let mut schema = h;
        schema.counters_schema ^= 1;
        assert_eq!(
            err(validate_header(&header_bytes(&schema), size)),
            want(ShmError::LayoutMismatch {
                field: "counters_schema"
            })
        );
    }

    #[test]
    fn sections_are_page_aligned_and_disjoint() {
        let layout = ShmLayout {
            punt_rings: 4,
            inject_rings: 2,
            ring_slots: 256,
        };
        let sections = layout.sections();
        let mut end = HEADER_AREA;
        for s in sections {
            assert_eq!(s.offset % PAGE_SIZE, 0);
            assert!(s.offset >= end, "sections overlap");
            end = s.offset + s.size;
        }
        assert!(layout.total_size() >= end);
        // The default layout stays around 27 MiB (two 10-MiB FIB tables since layout 6).
        let total = ShmLayout::default().total_size();
        assert!(
            total > 26 << 20 && total < 28 << 20,
            "default region is {total} B"
        );
    }

    #[test]
    fn counter_schema_depends_on_names() {
        assert_ne!(COUNTER_SCHEMA, 0);
        assert_ne!(fnv1a(fnv1a(1, b"ab"), b"c"), fnv1a(fnv1a(1, b"a"), b"bc"));
    }
}
