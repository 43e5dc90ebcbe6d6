//! The node's local group membership in shared memory (`docs/groups.md`): the groups that at
//! least one of this node's clients has joined, with their member counts, written by the data
//! plane's worker 0 (which runs the session server) whenever the set changes, and read by the
//! control plane, which floods it as group state.
//!
//! One writer, any readers, no locks: a seqlock. The writer makes `seq` odd, writes the count
//! and the entries, and makes it even again; a reader copies everything between two reads of
//! an even, unchanged `seq`, and tries again otherwise. The writer never waits; a reader
//! retries a bounded number of times and then reports the table as busy.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::sync::Arc;

use zerocopy::FromBytes;

use super::layout::Section;
use super::region::ShmRegion;
use crate::ids::GroupId;

/// Most groups with local members one node publishes.
pub const MAX_LOCAL_GROUPS: usize = 16_384;

/// How many times [`LocalGroupsReader::read`] tries before giving up on a busy table.
const READ_ATTEMPTS: usize = 64;

#[derive(FromBytes)]
#[repr(C)]
struct Entry {
    group: AtomicU32,
    members: AtomicU32,
}

/// The section: sequence, count, and the entries in ascending group order.
#[derive(FromBytes)]
#[repr(C)]
pub(crate) struct LocalGroupsSection {
    seq: AtomicU64,
    /// Bumped on every publish (a reader compares it to skip unchanged tables).
    version: AtomicU64,
    count: AtomicU32,
    reserved: AtomicU32,
    entries: [Entry; MAX_LOCAL_GROUPS],
}

fn section(region: &ShmRegion) -> &LocalGroupsSection {
    // SAFETY: LocalGroupsSection is the type laid out there (the layout gives it its own
    // page-aligned section of exactly its size); it is all atomics, valid for any bytes.
    unsafe { region.section_ref::<LocalGroupsSection>(Section::LocalGroups, 0) }
}

/// Why a publish was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{groups} groups with local members; the table holds at most {MAX_LOCAL_GROUPS}")]
pub struct TooManyGroups {
    /// How many were offered.
    pub groups: usize,
}

/// Worker 0's writer of the local membership.
pub struct LocalGroupsWriter {
    region: Arc<ShmRegion>,
}

impl LocalGroupsWriter {
    /// The writer (one per region: the seqlock has a single writer).
    pub fn new(region: Arc<ShmRegion>) -> Self {
        LocalGroupsWriter { region }
    }

    /// Publishes the whole set: `(group, local members)` in ascending group order.
    pub fn publish(
        &self,
        groups: impl ExactSizeIterator<Item = (GroupId, u32)>,
    ) -> Result<(), TooManyGroups> {
        let n = groups.len();
        if n > MAX_LOCAL_GROUPS {
            return Err(TooManyGroups { groups: n });
        }
        let s = section(&self.region);
        let seq = s.seq.load(Ordering::Relaxed);
        s.seq.store(seq.wrapping_add(1) | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (entry, (group, members)) in s.entries.iter().zip(groups) {
            entry.group.store(group.0, Ordering::Relaxed);
            entry.members.store(members, Ordering::Relaxed);
        }
        s.count.store(n as u32, Ordering::Relaxed);
        s.version.fetch_add(1, Ordering::Relaxed);
        s.seq
            .store((seq.wrapping_add(1) | 1).wrapping_add(1), Ordering::Release);
        Ok(())
    }
}

/// A consistent copy of the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalGroups {
    /// Increases with every publish (0: never published).
    pub version: u64,
    /// `(group, local members)`, ascending by group.
    pub groups: Vec<(GroupId, u32)>,
}

/// The table could not be read whole: the writer kept changing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the local group table changed during {READ_ATTEMPTS} read attempts")]
pub struct GroupsBusy;

/// The control plane's reader.
pub struct LocalGroupsReader<'a> {
    region: &'a ShmRegion,
}

impl<'a> LocalGroupsReader<'a> {
    /// A reader of `region`.
    pub fn new(region: &'a ShmRegion) -> Self {
        LocalGroupsReader { region }
    }

    /// The version of the table now (cheap: compare it before reading the whole table).
    pub fn version(&self) -> u64 {
        section(self.region).version.load(Ordering::Acquire)
    }

    /// Copies the table into `out` (reusing its allocation).
    pub fn read(&self, out: &mut LocalGroups) -> Result<(), GroupsBusy> {
        let s = section(self.region);
        for _ in 0..READ_ATTEMPTS {
            let before = s.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                core::hint::spin_loop();
                continue;
            }
            let n = (s.count.load(Ordering::Relaxed) as usize).min(MAX_LOCAL_GROUPS);
            let version = s.version.load(Ordering::Relaxed);
            out.groups.clear();
            out.groups.extend(s.entries[..n].iter().map(|e| {
                (
                    GroupId(e.group.load(Ordering::Relaxed)),
                    e.members.load(Ordering::Relaxed),
                )
            }));
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) == before {
                out.version = version;
                return Ok(());
            }
        }
        Err(GroupsBusy)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use crate::shm::ShmLayout;

    fn region() -> Arc<ShmRegion> {
        Arc::new(ShmRegion::create_memfd(&ShmLayout::default(), 0).unwrap())
    }

    #[test]
    fn a_published_set_reads_back_whole_and_versions_increase() {
        let region = region();
        let reader = LocalGroupsReader::new(&region);
        let mut got = LocalGroups::default();
        reader.read(&mut got).unwrap();
        assert_eq!(got, LocalGroups::default());
        let w = LocalGroupsWriter::new(region.clone());
        let set = [(GroupId(3), 1), (GroupId(9), 4)];
        w.publish(set.into_iter()).unwrap();
        reader.read(&mut got).unwrap();
        assert_eq!((got.version, &got.groups[..]), (1, &set[..]));
        w.publish([(GroupId(9), 3)].into_iter()).unwrap();
        assert_eq!(reader.version(), 2);
        reader.read(&mut got).unwrap();
        assert_eq!(got.groups, [(GroupId(9), 3)]);
        w.publish(core::iter::empty()).unwrap();
        reader.read(&mut got).unwrap();
        assert!(got.groups.is_empty());
    }

    #[test]
    fn an_oversized_set_is_refused_and_the_table_keeps_the_last_one() {
        let region = region();
        let w = LocalGroupsWriter::new(region.clone());
        w.publish([(GroupId(1), 1)].into_iter()).unwrap();
        let too_many = (1..MAX_LOCAL_GROUPS as u32 + 2).map(|g| (GroupId(g), 1));
        assert_eq!(
            w.publish(too_many),
            Err(TooManyGroups {
                groups: MAX_LOCAL_GROUPS + 1
            })
        );
        let mut got = LocalGroups::default();
        LocalGroupsReader::new(&region).read(&mut got).unwrap();
        assert_eq!(got.groups, [(GroupId(1), 1)]);
    }

    #[test]
    #[allow(
        clippy::disallowed_methods,
        reason = "a wall-clock bound on how long the race runs; nothing depends on its value"
    )]
    fn a_reader_racing_the_writer_sees_only_whole_sets() {
        let region = region();
        let w = LocalGroupsWriter::new(region.clone());
        let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
        let stop_writer = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut round = 1u32;
            while !stop_writer.load(Ordering::Relaxed) {
                // Set `round` has `round % 50 + 1` groups, each with `round` members.
                let n = (round % 50) as usize + 1;
                let set = (0..n as u32).map(|g| (GroupId(g + 1), round));
                w.publish(set).unwrap();
                round = round.wrapping_add(1).max(1);
                std::thread::yield_now();
            }
        });
        let reader = LocalGroupsReader::new(&region);
        let mut got = LocalGroups::default();
        let (mut whole, mut busy) = (0, 0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while whole < 1_000 && std::time::Instant::now() < deadline {
            match reader.read(&mut got) {
                Ok(()) if !got.groups.is_empty() => {
                    let round = got.groups[0].1;
                    assert_eq!(got.groups.len(), (round % 50) as usize + 1);
                    assert!(got.groups.iter().all(|&(_, m)| m == round));
                    whole += 1;
                }
                Ok(()) => {}
                Err(GroupsBusy) => busy += 1,
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(whole > 0, "no whole read in 5 s ({busy} busy)");
    }
}
