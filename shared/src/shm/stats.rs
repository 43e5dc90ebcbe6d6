//! Statistics the data plane writes and the control plane reads.
//!
//! - Per link and per path ([`LinkStats`]): state, RTT, loss, hello counts, last change, traffic.
//!   Each record has its own seqlock: one writer per record (the worker that owns the link),
//!   rare writes, and readers that retry a bounded number of times and then report
//!   [`StatsError::Busy`]. All fields are stored as `AtomicU64` words, so a torn read is detected
//!   by the sequence check and is never a data race.
//! - Per worker ([`WorkerCounters`]): one row of `AtomicU64` counters per worker, written by that
//!   worker alone with relaxed load+store (no locked instruction), summed by readers
//!   ([`CounterTotals`]).

#![allow(unsafe_code, reason = "typed references into the stats sections")]

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use zerocopy::FromBytes;

use super::layout::{MAX_WORKERS, Section};
use super::owner::{self, OwnerWord};
use super::region::{ShmError, ShmRegion};
use crate::DropReason;
use crate::ids::{LinkId, MAX_LINKS, MAX_PATHS_PER_LINK, PathId};
use crate::time::Instant;

/// How many times a reader retries a record that is being written before reporting busy.
pub const SEQLOCK_READ_TRIES: usize = 64;

const WORDS: usize = 10;
const LINKS: usize = MAX_LINKS as usize;
const PATHS: usize = MAX_PATHS_PER_LINK as usize;

/// One seqlocked record: sequence word plus [`LinkStats`] encoded in 10 words, on 128 B.
/// (The tenth word, the authentication state, was reserved and zero before: a record written
/// by an older data plane reads as an unauthenticated link.)
#[derive(FromBytes)]
#[repr(C, align(128))]
struct Record {
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
    reserved: [u64; 5],
}

#[derive(FromBytes)]
#[repr(C, align(128))]
struct StatsHead {
    writer: AtomicU64,
    reserved: [u64; 15],
}

/// The link statistics section.
#[derive(FromBytes)]
#[repr(C)]
pub(crate) struct StatsSection {
    head: StatsHead,
    links: [Record; LINKS],
    paths: [[Record; PATHS]; LINKS],
}

const _: () = assert!(size_of::<Record>() == 128);
const _: () = assert!(size_of::<StatsSection>() == 128 * (1 + LINKS + LINKS * PATHS));

/// Counter slots reserved per worker row; fixed counters then one per drop reason.
const ROW: usize = 64;

#[derive(FromBytes)]
#[repr(C, align(128))]
struct CounterRow {
    values: [AtomicU64; ROW],
}

/// The per-worker counters section.
#[derive(FromBytes)]
#[repr(C)]
pub(crate) struct CountersSection {
    rows: [CounterRow; MAX_WORKERS],
}

const _: () = assert!(
    Counter::COUNT + DropReason::COUNT <= ROW,
    "counter row too small"
);

fn section(region: &ShmRegion) -> &StatsSection {
    // SAFETY: StatsSection is the type laid out there; apart from reserved words nobody writes,
    // it is all atomics.
    unsafe { region.section_ref::<StatsSection>(Section::LinkStats, 0) }
}

fn counters(region: &ShmRegion) -> &CountersSection {
    // SAFETY: CountersSection is the type laid out there, made only of atomics.
    unsafe { region.section_ref::<CountersSection>(Section::WorkerCounters, 0) }
}

/// A link's or path's liveness as the data plane last decided it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkState {
    /// Never measured (also what an unknown stored value reads as).
    #[default]
    Unknown,
    /// Hellos are not answered.
    Down,
    /// Hellos are answered.
    Up,
}

/// Statistics of one link, or of one path of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Up, down or unknown.
    pub state: LinkState,
    /// For a link: the path it currently uses. Unused in path records.
    pub active_path: Option<PathId>,
    /// Smoothed round-trip time in microseconds.
    pub rtt_us: u32,
    /// Loss rate in parts per million.
    pub loss_ppm: u32,
    /// Hellos sent.
    pub hellos_sent: u64,
    /// Hellos received (answers and the peer's own).
    pub hellos_received: u64,
    /// When `state` last changed (the data plane's clock).
    pub last_change: Instant,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// For an authenticated link: its key epochs. `None` for a plain link and in path records.
    pub auth: Option<AuthStats>,
}

/// The key epochs of an authenticated link, as worker 0 holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// The epoch packets are sealed with now.
    pub send_epoch: u8,
    /// The newest epoch this node holds (what its hellos announce).
    pub newest_epoch: u8,
    /// The newest epoch the peer announced, once an authenticated hello said so.
    pub peer_epoch: Option<u8>,
}

impl AuthStats {
    fn encode(a: Option<AuthStats>) -> u64 {
        a.map_or(0, |a| {
            1 | u64::from(a.send_epoch) << 8
                | u64::from(a.newest_epoch) << 16
                | a.peer_epoch.map_or(0, |p| 1 << 24 | u64::from(p) << 32)
        })
    }

    fn decode(w: u64) -> Option<AuthStats> {
        (w & 1 == 1).then(|| AuthStats {
            send_epoch: (w >> 8) as u8,
            newest_epoch: (w >> 16) as u8,
            peer_epoch: (w >> 24 & 1 == 1).then_some((w >> 32) as u8),
        })
    }
}

impl LinkStats {
    fn encode(&self) -> [u64; WORDS] {
        let state = match self.state {
            LinkState::Unknown => 0u64,
            LinkState::Down => 1,
            LinkState::Up => 2,
        };
        // Path p is stored as p + 1 so that zeroed memory reads as "no path".
        let path = self.active_path.map_or(0, |p| u64::from(p.get()) + 1);
        [
            state | path << 8,
            u64::from(self.rtt_us) | u64::from(self.loss_ppm) << 32,
            self.hellos_sent,
            self.hellos_received,
            self.last_change.as_nanos(),
            self.bytes_in,
            self.bytes_out,
            self.packets_in,
            self.packets_out,
            AuthStats::encode(self.auth),
        ]
    }

    fn decode(w: [u64; WORDS]) -> LinkStats {
        let state = match w[0] & 0xFF {
            1 => LinkState::Down,
            2 => LinkState::Up,
            _ => LinkState::Unknown,
        };
        LinkStats {
            state,
            active_path: ((w[0] >> 8) as u8).checked_sub(1).and_then(PathId::new),
            rtt_us: w[1] as u32,
            loss_ppm: (w[1] >> 32) as u32,
            hellos_sent: w[2],
            hellos_received: w[3],
            last_change: Instant::from_nanos(w[4]),
            bytes_in: w[5],
            bytes_out: w[6],
            packets_in: w[7],
            packets_out: w[8],
            auth: AuthStats::decode(w[9]),
        }
    }
}

/// Why a record could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    /// The record was being written on every try (or its writer died mid-write; a restarted
    /// data plane repairs that when it attaches).
    #[error("stats record busy after {tries} tries")]
    Busy {
        /// Tries made.
        tries: usize,
    },
}

impl Record {
    /// Seqlock write (one writer per record): odd sequence, words, even sequence.
    fn write(&self, value: &LinkStats) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1) | 1, Ordering::Relaxed);
        // Orders the odd sequence before the data stores (a reader that sees new data also
        // sees the odd or a later sequence).
        fence(Ordering::Release);
        for (cell, w) in self.words.iter().zip(value.encode()) {
            cell.store(w, Ordering::Relaxed);
        }
        self.seq.store((seq | 1).wrapping_add(1), Ordering::Release);
    }

    /// Seqlock read: even sequence, words, same sequence again.
    fn read(&self) -> Result<LinkStats, StatsError> {
        for _ in 0..SEQLOCK_READ_TRIES {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let words = std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
            // Orders the data loads before the second sequence load.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return Ok(LinkStats::decode(words));
            }
        }
        Err(StatsError::Busy {
            tries: SEQLOCK_READ_TRIES,
        })
    }
}

/// The data plane's write side of the link statistics. `Sync`: workers share one writer, each
/// writing only the records of the links it owns (one writer per record).
pub struct StatsWriter {
    region: Arc<ShmRegion>,
    me: OwnerWord,
}

impl StatsWriter {
    /// Becomes the stats writer (one process per region; a dead one's role is taken over).
    /// Records a dead writer left mid-write (odd sequence) are closed so readers see them again.
    pub fn attach(region: Arc<ShmRegion>) -> Result<Self, ShmError> {
        let me = owner::current_process();
        owner::claim(&section(&region).head.writer, me).map_err(|held| {
            let (pid, tid) = owner::split(held);
            ShmError::RoleBusy {
                role: "stats writer",
                pid,
                tid,
            }
        })?;
        let s = section(&region);
        for record in s.links.iter().chain(s.paths.iter().flatten()) {
            let seq = record.seq.load(Ordering::Acquire);
            if seq & 1 == 1 {
                record.seq.store(seq.wrapping_add(1), Ordering::Release);
            }
        }
        Ok(StatsWriter { region, me })
    }

    /// Writes the record of `link`.
    pub fn write_link(&self, link: LinkId, value: &LinkStats) {
        section(&self.region).links[usize::from(link.get())].write(value);
    }

    /// Writes the record of path `path` of `link`.
    pub fn write_path(&self, link: LinkId, path: PathId, value: &LinkStats) {
        section(&self.region).paths[usize::from(link.get())][usize::from(path.get())].write(value);
    }
}

impl Drop for StatsWriter {
    fn drop(&mut self) {
        owner::release(&section(&self.region).head.writer, self.me);
    }
}

/// The control plane's read side of the link statistics.
pub struct StatsReader {
    region: Arc<ShmRegion>,
}

impl StatsReader {
    /// A reader over `region` (any number may exist).
    pub fn new(region: Arc<ShmRegion>) -> Self {
        StatsReader { region }
    }

    /// The record of `link`.
    pub fn link(&self, link: LinkId) -> Result<LinkStats, StatsError> {
        section(&self.region).links[usize::from(link.get())].read()
    }

    /// The record of path `path` of `link`.
    pub fn path(&self, link: LinkId, path: PathId) -> Result<LinkStats, StatsError> {
        section(&self.region).paths[usize::from(link.get())][usize::from(path.get())].read()
    }

    /// The pid of the live stats writer, if any.
    pub fn writer_pid(&self) -> Option<u32> {
        let holder = section(&self.region).head.writer.load(Ordering::Acquire);
        owner::is_alive(holder).then(|| owner::split(holder).0)
    }
}

/// The fixed per-worker counters (drop reasons follow them in each row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Weft packets received from the network (each segment of a GRO super-packet counts).
    Received,
    /// Datagrams sent to the network.
    Sent,
    /// Packets forwarded to another node.
    Forwarded,
    /// Packets delivered to local clients.
    Delivered,
    /// Drops the kernel reported (socket buffer overflows, ring exhaustion).
    KernelDrops,
    /// Real-time: copies retransmitted on this node's links (NM-Strikes answers).
    RtRetransmitted,
    /// Real-time: link sequences requested from neighbours (entries of Nacks sent).
    RtRequested,
    /// Real-time: messages released to local clients by their deadline.
    RtOnTime,
    /// Real-time: of those, messages a retransmission on the last link brought.
    RtRecovered,
    /// Real-time: messages that arrived at this destination too late and were dropped.
    RtLate,
    /// Real-time: messages given up at this destination (never arrived in time).
    RtLost,
    /// Reliable: records retransmitted on this node's links.
    RelRetransmitted,
    /// Reliable: records a retransmission brought over a link to this node.
    RelRecovered,
    /// Reliable: records that arrived on a link below the highest sequence seen (filled a gap
    /// or were reordered).
    RelOutOfOrder,
    /// Reliable: link duplicates suppressed (records already passed on).
    RelDuplicates,
    /// Reliable: records refused for want of room or route downstream (left unacked: the
    /// previous hop resends them).
    RelRefused,
    /// Reliable: records held now in this worker's link senders (a gauge: buffer use).
    RelHeld,
    /// Reliable: messages delivered to local clients in order, exactly once.
    RelDelivered,
    /// Reliable: messages resent end to end by this source node (a node on the way crashed,
    /// or a route changed).
    RelResent,
    /// Reliable: end-to-end duplicates dropped at this destination.
    RelSinkDuplicates,
    /// Groups: multicast messages handed to this node's members (once per message, whatever
    /// the number of members).
    McastDelivered,
    /// Groups: anycast messages handed to one of this node's members.
    AnycastDelivered,
    /// Groups: multicast copies this node sent on tree links (originated or forwarded).
    McastCopies,
}

impl Counter {
    /// Number of fixed counters.
    pub const COUNT: usize = 23;
    /// Every fixed counter in row order.
    pub const ALL: [Counter; Self::COUNT] = [
        Counter::Received,
        Counter::Sent,
        Counter::Forwarded,
        Counter::Delivered,
        Counter::KernelDrops,
        Counter::RtRetransmitted,
        Counter::RtRequested,
        Counter::RtOnTime,
        Counter::RtRecovered,
        Counter::RtLate,
        Counter::RtLost,
        Counter::RelRetransmitted,
        Counter::RelRecovered,
        Counter::RelOutOfOrder,
        Counter::RelDuplicates,
        Counter::RelRefused,
        Counter::RelHeld,
        Counter::RelDelivered,
        Counter::RelResent,
        Counter::RelSinkDuplicates,
        Counter::McastDelivered,
        Counter::AnycastDelivered,
        Counter::McastCopies,
    ];
    /// Names in row order, for `weftctl show counters` and JSON.
    pub const NAMES: [&'static str; Self::COUNT] = [
        "received",
        "sent",
        "forwarded",
        "delivered",
        "kernel_drops",
        "rt_retransmitted",
        "rt_requested",
        "rt_on_time",
        "rt_recovered",
        "rt_late",
        "rt_lost",
        "rel_retransmitted",
        "rel_recovered",
        "rel_out_of_order",
        "rel_duplicates",
        "rel_refused",
        "rel_held",
        "rel_delivered",
        "rel_resent",
        "rel_sink_duplicates",
        "mcast_delivered",
        "anycast_delivered",
        "mcast_copies",
    ];

    /// Position in the row.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The counter's name.
    pub const fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

/// One worker's counter row. Only that worker writes it (relaxed load + store, cheaper than an
/// atomic add), so the handle is `Send` but not `Sync`.
pub struct WorkerCounters {
    region: Arc<ShmRegion>,
    worker: usize,
    _single_writer: PhantomData<Cell<()>>,
}

impl WorkerCounters {
    /// The row of `worker`.
    pub fn new(region: Arc<ShmRegion>, worker: usize) -> Result<Self, ShmError> {
        if worker >= MAX_WORKERS {
            return Err(ShmError::BadWorker {
                worker,
                max: MAX_WORKERS,
            });
        }
        Ok(WorkerCounters {
            region,
            worker,
            _single_writer: PhantomData,
        })
    }

    fn bump(&self, index: usize, n: u64) {
        let cell = &counters(&self.region).rows[self.worker].values[index];
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds `n` to `counter`.
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        self.bump(counter.index(), n);
    }

    /// Sets a gauge (a counter that says how much is held now, like [`Counter::RelHeld`]).
    #[inline]
    pub fn set(&self, counter: Counter, value: u64) {
        counters(&self.region).rows[self.worker].values[counter.index()]
            .store(value, Ordering::Relaxed);
    }

    /// Adds `n` drops for `reason`.
    #[inline]
    pub fn add_drop(&self, reason: DropReason, n: u64) {
        self.bump(Counter::COUNT + reason.index(), n);
    }
}

/// Counter values, of one worker or summed over all workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterTotals {
    /// Fixed counters, indexed by [`Counter::index`].
    pub counters: [u64; Counter::COUNT],
    /// Drops, indexed by [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
}

impl CounterTotals {
    /// The row of one worker (zeros for an index out of range).
    pub fn read_worker(region: &ShmRegion, worker: usize) -> CounterTotals {
        let mut out = CounterTotals::default();
        if let Some(row) = counters(region).rows.get(worker) {
            out.add_row(row);
        }
        out
    }

    /// The sum over all workers.
    pub fn sum(region: &ShmRegion) -> CounterTotals {
        let mut out = CounterTotals::default();
        for row in &counters(region).rows {
            out.add_row(row);
        }
        out
    }

    fn add_row(&mut self, row: &CounterRow) {
        for (i, total) in self.counters.iter_mut().enumerate() {
            *total = total.wrapping_add(row.values[i].load(Ordering::Relaxed));
        }
        for (i, total) in self.drops.iter_mut().enumerate() {
            *total = total.wrapping_add(row.values[Counter::COUNT + i].load(Ordering::Relaxed));
        }
    }

    /// The value of `counter`.
    pub fn get(&self, counter: Counter) -> u64 {
        self.counters[counter.index()]
    }

    /// Every counter as (name, value): fixed counters, then drops as `drop_<reason>`.
    pub fn named(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let fixed = Counter::NAMES
            .iter()
            .zip(self.counters)
            .map(|(n, v)| ((*n).to_owned(), v));
        let drops = DropReason::NAMES
            .iter()
            .zip(self.drops)
            .map(|(n, v)| (format!("drop_{n}"), v));
        fixed.chain(drops)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::shm::layout::ShmLayout;

    fn region() -> Arc<ShmRegion> {
        let layout = ShmLayout {
            punt_rings: 1,
            inject_rings: 1,
            ring_slots: 2,
        };
        Arc::new(ShmRegion::create_memfd(&layout, 0).expect("region"))
    }

    fn link(l: u16) -> LinkId {
        LinkId::new(l).expect("link id")
    }

    fn sample(k: u64) -> LinkStats {
        LinkStats {
            state: if k % 2 == 0 {
                LinkState::Up
            } else {
                LinkState::Down
            },
            active_path: PathId::new((k % 8) as u8),
            rtt_us: k as u32,
            loss_ppm: (k * 3) as u32,
            hellos_sent: k,
            hellos_received: k + 1,
            last_change: Instant::from_nanos(k * 1000),
            bytes_in: k * 5,
            bytes_out: k * 6,
            packets_in: k * 7,
            packets_out: k * 8,
            auth: (k % 3 != 0).then_some(AuthStats {
                send_epoch: k as u8,
                newest_epoch: (k + 1) as u8,
                peer_epoch: (k % 3 == 2).then_some((k + 2) as u8),
            }),
        }
    }

    #[test]
    fn auth_states_round_trip() {
        for k in 0..600 {
            let s = sample(k);
            assert_eq!(LinkStats::decode(s.encode()), s, "{k}");
        }
        // An older data plane's record (word 9 zero) is a plain link.
        assert_eq!(AuthStats::decode(0), None);
    }

    #[test]
    fn records_round_trip_and_start_unknown() {
        let r = region();
        let w = StatsWriter::attach(r.clone()).expect("writer");
        let reader = StatsReader::new(r.clone());
        assert_eq!(reader.link(link(3)), Ok(LinkStats::default()));
        w.write_link(link(3), &sample(41));
        let path = PathId::new(7).expect("path");
        w.write_path(link(511), path, &sample(42));
        assert_eq!(reader.link(link(3)), Ok(sample(41)));
        assert_eq!(reader.path(link(511), path), Ok(sample(42)));
        assert_eq!(reader.writer_pid(), Some(std::process::id()));
        assert!(matches!(
            StatsWriter::attach(r),
            Err(ShmError::RoleBusy { .. })
        ));
    }

    #[test]
    fn a_record_left_mid_write_reads_busy_until_a_new_writer_repairs_it() {
        let r = region();
        let record = &section(&r).links[9];
        record.seq.store(7, Ordering::Release); // a writer died between its two stores
        let reader = StatsReader::new(r.clone());
        assert_eq!(
            reader.link(link(9)),
            Err(StatsError::Busy {
                tries: SEQLOCK_READ_TRIES
            })
        );
        let w = StatsWriter::attach(r).expect("writer");
        assert_eq!(reader.link(link(9)), Ok(LinkStats::default()));
        w.write_link(link(9), &sample(2));
        assert_eq!(reader.link(link(9)), Ok(sample(2)));
    }

    #[test]
    fn concurrent_reads_never_see_a_torn_record() {
        let r = region();
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let w = StatsWriter::attach(r.clone()).expect("writer");
        w.write_link(link(1), &sample(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (reader, stop, reads) =
                    (StatsReader::new(r.clone()), stop.clone(), reads.clone());
                std::thread::spawn(move || {
                    let mut busy = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        match reader.link(link(1)) {
                            // Every field derives from one k: a torn read breaks the relation.
                            Ok(s) => {
                                assert_eq!(s, sample(s.hellos_sent), "torn record");
                                reads.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(StatsError::Busy { .. }) => busy += 1,
                        }
                    }
                    busy
                })
            })
            .collect();
        // Keep writing until the readers have read a good number of times under the writes.
        let mut k = 1;
        while (k < 2_000_000 || reads.load(Ordering::Relaxed) < 500_000) && k < 100_000_000 {
            w.write_link(link(1), &sample(k));
            k += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for handle in readers {
            handle.join().expect("reader saw a torn record");
        }
        assert!(reads.load(Ordering::Relaxed) >= 500_000);
    }

    #[test]
    fn counters_sum_across_workers() {
        let r = region();
        let w0 = WorkerCounters::new(r.clone(), 0).expect("worker 0");
        let w63 = WorkerCounters::new(r.clone(), MAX_WORKERS - 1).expect("worker 63");
        assert!(WorkerCounters::new(r.clone(), MAX_WORKERS).is_err());
        w0.add(Counter::Received, 10);
        w63.add(Counter::Received, 5);
        w63.add(Counter::KernelDrops, 1);
        w0.add_drop(DropReason::BadTag, 2);
        w63.add_drop(DropReason::QueueFull, 3);
        let total = CounterTotals::sum(&r);
        assert_eq!(total.get(Counter::Received), 15);
        assert_eq!(total.get(Counter::KernelDrops), 1);
        assert_eq!(total.drops[DropReason::BadTag.index()], 2);
        assert_eq!(total.drops[DropReason::QueueFull.index()], 3);
        assert_eq!(CounterTotals::read_worker(&r, 0).get(Counter::Received), 10);
        let named: Vec<_> = total.named().collect();
        assert_eq!(named[0], ("received".to_owned(), 15));
        assert!(named.contains(&("drop_queue_full".to_owned(), 3)));
        assert_eq!(named.len(), Counter::COUNT + DropReason::COUNT);
    }
}
