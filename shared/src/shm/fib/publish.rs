//! Publishing FIB generations: a double buffer with per-worker epochs (RCU-like).
//!
//! The control word holds the current generation `g`; generation `g` lives in buffer `g & 1`.
//! Each worker has a slot with its epoch: the generation it may be reading, or [`QUIESCENT`].
//!
//! Reader, once per batch ([`FibReader::enter`]): load `g`, store `epoch = g`, SeqCst fence,
//! reload `g`; retry while it moved (bounded), then read buffer `g & 1` until the next enter or
//! [`FibReader::quiesce`] (which stores `QUIESCENT` with Release; call it before blocking).
//!
//! Writer ([`FibWriter::try_publish`]): with `g` current, generation `g + 1` goes to buffer
//! `(g + 1) & 1`, which last held `g - 1`. After a SeqCst fence it scans the slots: if every
//! epoch is `>= g` (`QUIESCENT` is `u64::MAX`), no reader can be in that buffer; it fills it and
//! stores `g + 1` (SeqCst). Otherwise it returns [`PublishError::ReadersBusy`] at once (after
//! reclaiming slots whose holder is dead) and the caller retries later; past `stuck_after` the
//! error becomes [`PublishError::ReaderStuck`]. It never writes a buffer a live reader may be in.
//!
//! Why it is safe: the reader's (store epoch; fence; load g) and the writer's (store g; fence;
//! load epoch) are the two halves of Dekker's pattern, so at least one sees the other. If the
//! reader's reload missed the writer's store of `g`, the writer's scan sees the reader's epoch
//! `< g` and waits; if it saw it, the reader moves on to the new buffer. `docs/shm.md` has the
//! full argument.

#![allow(
    unsafe_code,
    reason = "references to the FIB buffers under the epoch protocol"
)]

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::Duration;

use zerocopy::FromBytes;

use super::table::{FibBuilder, FibError, FibTable, Generation};
use crate::shm::layout::{MAX_WORKERS, Section};
use crate::shm::owner::{self, OwnerWord};
use crate::shm::region::{ShmError, ShmRegion};
use crate::time::Instant;

/// The epoch of a reader that is not reading any buffer.
pub const QUIESCENT: u64 = u64::MAX;

/// How often [`FibReader::enter`] re-reads a generation that moved under it before it settles
/// for an epoch older than the generation it reads (still safe, see `enter`).
const ENTER_RETRIES: usize = 4;

/// One worker's slot: its epoch and who holds it. Own 128-B line (adjacent-line prefetch).
#[derive(FromBytes)]
#[repr(C, align(128))]
struct ReaderSlot {
    epoch: AtomicU64,
    owner: AtomicU64,
    reserved: [u64; 14],
}

/// The control word line: read by every worker each batch, written once per publish.
#[derive(FromBytes)]
#[repr(C, align(128))]
struct ControlLine {
    generation: AtomicU64,
    writer: AtomicU64,
    reserved: [u64; 14],
}

/// The FIB control section.
#[derive(FromBytes)]
#[repr(C)]
pub(crate) struct FibControl {
    line: ControlLine,
    slots: [ReaderSlot; MAX_WORKERS],
}

const _: () = assert!(size_of::<ReaderSlot>() == 128);
const _: () = assert!(size_of::<FibControl>() == 128 * (1 + MAX_WORKERS));

fn control(region: &ShmRegion) -> &FibControl {
    // SAFETY: FibControl is the type laid out in this section and consists of atomics plus
    // reserved words that nobody writes after creation.
    unsafe { region.section_ref::<FibControl>(Section::FibControl, 0) }
}

fn buffer(region: &ShmRegion, generation: u64) -> NonNull<FibTable> {
    let section = if generation & 1 == 0 {
        Section::FibBuffer0
    } else {
        Section::FibBuffer1
    };
    region.section_ptr::<FibTable>(section, 0)
}

/// Writes the initial state at creation: every reader slot quiescent, generation 0 (an empty
/// table, which zeroed memory already is).
pub(crate) fn init_control(region: &ShmRegion) {
    for slot in &control(region).slots {
        slot.epoch.store(QUIESCENT, Ordering::Relaxed);
    }
}

/// A data-plane worker's read side of the FIB. Registered on the worker's own thread (the slot
/// records its tid for liveness checks), so it is neither `Send` nor `Sync`.
pub struct FibReader {
    region: Arc<ShmRegion>,
    /// Cached section pointers: `enter` runs once per batch and skips the bounds checks.
    control: NonNull<FibControl>,
    buffers: [NonNull<FibTable>; 2],
    worker: usize,
    me: OwnerWord,
    _thread_bound: PhantomData<*const ()>,
}

impl FibReader {
    /// Claims worker slot `worker` for the calling thread. Fails if another live thread holds it;
    /// a slot left by a dead thread or process is taken over.
    pub fn register(region: Arc<ShmRegion>, worker: usize) -> Result<Self, ShmError> {
        if worker >= MAX_WORKERS {
            return Err(ShmError::BadWorker {
                worker,
                max: MAX_WORKERS,
            });
        }
        let me = owner::current_thread();
        let slot = &control(&region).slots[worker];
        owner::claim(&slot.owner, me).map_err(|held| {
            let (pid, tid) = owner::split(held);
            ShmError::RoleBusy {
                role: "fib reader slot",
                pid,
                tid,
            }
        })?;
        slot.epoch.store(QUIESCENT, Ordering::Release);
        let control = region.section_ptr::<FibControl>(Section::FibControl, 0);
        let buffers = [buffer(&region, 0), buffer(&region, 1)];
        Ok(FibReader {
            region,
            control,
            buffers,
            worker,
            me,
            _thread_bound: PhantomData,
        })
    }

    fn control(&self) -> &FibControl {
        // SAFETY: checked by section_ptr at registration; the Arc keeps the mapping alive; the
        // section is atomics plus reserved words nobody writes.
        unsafe { self.control.as_ref() }
    }

    /// The worker index (slot) of this reader.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Enters the current generation for one batch and returns a view of it. The view (and every
    /// route borrowed from it) ends before the next `enter` or `quiesce`.
    #[inline]
    pub fn enter(&mut self) -> FibView<'_> {
        let ctrl = self.control();
        let slot = &ctrl.slots[self.worker];
        let mut g = ctrl.line.generation.load(Ordering::Acquire);
        for _ in 0..ENTER_RETRIES {
            slot.epoch.store(g, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let again = ctrl.line.generation.load(Ordering::Acquire);
            if again == g {
                break;
            }
            g = again;
        }
        // If the generation kept moving we read `g` with an epoch e < g. That is still safe:
        // buffer g & 1 is next rewritten for g + 2, which needs every epoch >= g + 1 > e, and the
        // fence pairing guarantees the writer sees e (we did not see its store of g + 1).
        let ptr = self.buffers[(g & 1) as usize];
        // SAFETY: the epoch protocol (module doc) keeps the writer out of buffer g & 1 until this
        // slot's epoch moves past it, which only happens through `enter`/`quiesce`/drop, all of
        // which need &mut self and so end this borrow first. The buffer is FromBytes, so any
        // contents are a valid FibTable.
        let table = unsafe { ptr.as_ref() };
        FibView {
            table,
            generation: Generation(g),
        }
    }

    /// Marks this worker quiescent: it reads no buffer until its next `enter`. Call it before
    /// blocking (in io_uring, on an eventfd) so an idle worker never holds the writer back.
    #[inline]
    pub fn quiesce(&mut self) {
        control(&self.region).slots[self.worker]
            .epoch
            .store(QUIESCENT, Ordering::Release);
    }
}

impl Drop for FibReader {
    fn drop(&mut self) {
        self.quiesce();
        owner::release(&control(&self.region).slots[self.worker].owner, self.me);
    }
}

/// A read-only view of one FIB generation, valid for one enter/quiesce section. Lookups go
/// through `Deref` to [`FibTable`].
pub struct FibView<'a> {
    table: &'a FibTable,
    generation: Generation,
}

impl FibView<'_> {
    /// The generation this view reads (from the control word). The table's own header,
    /// `view.table().generation()`, must agree; readers may check that as a sanity test.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The table itself (lookups also work on the view directly, through `Deref`).
    pub fn table(&self) -> &FibTable {
        self.table
    }
}

impl Deref for FibView<'_> {
    type Target = FibTable;

    fn deref(&self) -> &FibTable {
        self.table
    }
}

/// One worker slot as the writer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    /// The worker index.
    pub worker: usize,
    /// Holder's pid (0 when the slot is free).
    pub pid: u32,
    /// Holder's thread id.
    pub tid: u32,
    /// The generation it may be reading, `None` when quiescent.
    pub epoch: Option<Generation>,
}

/// Why a generation was not published. Both busy variants mean "retry later"; nothing was
/// written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// A live reader may still be reading the buffer the next generation goes to.
    #[error("fib reader {worker} (pid {pid}, tid {tid}) may still read generation {epoch}")]
    ReadersBusy {
        /// Its worker slot.
        worker: usize,
        /// Its pid.
        pid: u32,
        /// Its thread id.
        tid: u32,
        /// The generation it entered.
        epoch: u64,
        /// How long the writer has been held back so far.
        waited: Duration,
    },
    /// As `ReadersBusy`, for longer than the writer's `stuck_after`: the reader is alive but stuck
    /// mid-read. Report it and keep retrying; the buffer is never overwritten under it.
    #[error(
        "fib reader {worker} (pid {pid}, tid {tid}) stuck in generation {epoch} for {waited:?}"
    )]
    ReaderStuck {
        /// Its worker slot.
        worker: usize,
        /// Its pid.
        pid: u32,
        /// Its thread id.
        tid: u32,
        /// The generation it entered.
        epoch: u64,
        /// How long the writer has been held back.
        waited: Duration,
    },
    /// The fill closure failed; nothing was published.
    #[error("building the fib failed: {0}")]
    Build(#[from] FibError),
}

/// The control plane's write side of the FIB: the single writer, non-blocking, time as input.
pub struct FibWriter {
    region: Arc<ShmRegion>,
    me: OwnerWord,
    stuck_after: Duration,
    blocked_since: Option<Instant>,
}

impl FibWriter {
    /// Becomes the region's FIB writer (one per region; a dead writer's role is taken over). A
    /// reader holding it back for `stuck_after` or longer is reported as stuck.
    pub fn attach(region: Arc<ShmRegion>, stuck_after: Duration) -> Result<Self, ShmError> {
        let me = owner::current_process();
        owner::claim(&control(&region).line.writer, me).map_err(|held| {
            let (pid, tid) = owner::split(held);
            ShmError::RoleBusy {
                role: "fib writer",
                pid,
                tid,
            }
        })?;
        Ok(FibWriter {
            region,
            me,
            stuck_after,
            blocked_since: None,
        })
    }

    /// The generation currently published.
    pub fn generation(&self) -> Generation {
        Generation(
            control(&self.region)
                .line
                .generation
                .load(Ordering::Acquire),
        )
    }

    /// The generation currently published, as readers see it.
    pub fn current(&self) -> FibView<'_> {
        let g = control(&self.region)
            .line
            .generation
            .load(Ordering::Acquire);
        // SAFETY: only this writer writes FIB buffers, and only the inactive one inside
        // try_publish, which needs &mut self and so cannot overlap this borrow.
        let table = unsafe { buffer(&self.region, g).as_ref() };
        FibView {
            table,
            generation: Generation(g),
        }
    }

    /// Every worker slot, for diagnostics (`weftctl show fib`).
    pub fn readers(&self) -> impl Iterator<Item = ReaderInfo> + '_ {
        control(&self.region)
            .slots
            .iter()
            .enumerate()
            .map(|(worker, slot)| {
                let (pid, tid) = owner::split(slot.owner.load(Ordering::Acquire));
                let epoch = slot.epoch.load(Ordering::Acquire);
                let epoch = (epoch != QUIESCENT).then_some(Generation(epoch));
                ReaderInfo {
                    worker,
                    pid,
                    tid,
                    epoch,
                }
            })
    }

    /// Publishes the next generation if no live reader can still be in its buffer: clears that
    /// buffer, lets `fill` build it, then makes it current. Never waits. On a busy error, call
    /// again later (tens of microseconds to a millisecond: a busy worker re-enters every batch).
    pub fn try_publish<F>(&mut self, now: Instant, fill: F) -> Result<Generation, PublishError>
    where
        F: FnOnce(&mut FibBuilder<'_>) -> Result<(), FibError>,
    {
        let g = self.poll_ready(now)?;
        let next = g.0 + 1;
        let mut target = buffer(&self.region, next);
        let previous = buffer(&self.region, g.0);
        // SAFETY: poll_ready saw every epoch >= g (or reclaimed a dead holder's slot), so no
        // reader is in buffer (g + 1) & 1 and none can enter it before we store g + 1. This is
        // the only writer (owner claim) and &mut self excludes our own `current()` views, which
        // only touch buffer g & 1 anyway. `previous` is buffer g & 1: a different buffer.
        let (table, previous) = unsafe { (target.as_mut(), previous.as_ref()) };
        let mut builder = FibBuilder::with_previous(table, previous);
        builder.clear();
        fill(&mut builder)?;
        builder.set_generation(Generation(next));
        control(&self.region)
            .line
            .generation
            .store(next, Ordering::SeqCst);
        Ok(Generation(next))
    }

    /// Checks, without writing anything, whether the next generation could be published now;
    /// returns the current generation if so. Reclaims slots of dead readers on the way.
    pub fn poll_ready(&mut self, now: Instant) -> Result<Generation, PublishError> {
        let ctrl = control(&self.region);
        let g = ctrl.line.generation.load(Ordering::Acquire);
        // Pairs with the reader's fence in `enter`: our store of g happened before this fence.
        fence(Ordering::SeqCst);
        for (worker, slot) in ctrl.slots.iter().enumerate() {
            let epoch = slot.epoch.load(Ordering::Acquire);
            if epoch >= g {
                continue;
            }
            let holder = slot.owner.load(Ordering::Acquire);
            if !owner::is_alive(holder) {
                // A dead reader reads nothing. If a new holder claims the slot meanwhile, it
                // changes the epoch first, so this exchange fails and its epoch stands.
                let quiesced = slot.epoch.compare_exchange(
                    epoch,
                    QUIESCENT,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                if quiesced.is_ok() {
                    owner::release(&slot.owner, holder);
                }
                if slot.epoch.load(Ordering::Acquire) >= g {
                    continue;
                }
            }
            let since = *self.blocked_since.get_or_insert(now);
            let waited = now.saturating_duration_since(since);
            let (pid, tid) = owner::split(holder);
            return Err(if waited >= self.stuck_after {
                PublishError::ReaderStuck {
                    worker,
                    pid,
                    tid,
                    epoch,
                    waited,
                }
            } else {
                PublishError::ReadersBusy {
                    worker,
                    pid,
                    tid,
                    epoch,
                    waited,
                }
            });
        }
        self.blocked_since = None;
        Ok(Generation(g))
    }
}

impl Drop for FibWriter {
    fn drop(&mut self) {
        owner::release(&control(&self.region).line.writer, self.me);
    }
}

#[cfg(test)]
#[path = "publish_tests.rs"]
mod tests;
