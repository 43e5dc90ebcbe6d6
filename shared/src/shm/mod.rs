//! The shared memory between Weft's data plane and its control plane, specified in `docs/shm.md`.
//!
//! One mapping per node ([`ShmRegion`]) holds, after a versioned [`ShmHeader`]:
//!
//! - the FIB, published as generations through a double buffer with per-worker epochs
//!   ([`fib`]): the control plane is the single [`FibWriter`], each data-plane worker a
//!   [`FibReader`] that calls [`FibReader::enter`] at the start of a batch and
//!   [`FibReader::quiesce`] before it blocks;
//! - link and path statistics written by the data plane under per-record seqlocks, and per-worker
//!   counters ([`stats`]);
//! - SPSC rings of packet descriptors ([`ring`]): punt rings (data plane to control plane) and
//!   inject rings (control plane to data plane), with an eventfd wakeup only when the consumer
//!   sleeps ([`EventFd`]).
//!
//! The launcher (or a standalone data plane) creates the region as a sealed memfd and hands the fd
//! to the other process by inheritance or with [`fdpass::send_fds`]; tests and debugging use named
//! regions under `/dev/shm`.
//!
//! This module is one of the two places where `unsafe` lives (STYLE.md §9). Every unsafe block
//! says why it is sound; the soundness of the FIB and ring accesses rests on the protocols written
//! down in `docs/shm.md`, which both processes follow because they link this same code.
//!
//! ```no_run
//! use std::sync::Arc;
//! use weft_shared::shm::{FibReader, FibWriter, ShmLayout, ShmRegion};
//! use weft_shared::ids::{LinkId, NodeId};
//! use weft_shared::shm::fib::UnicastRoute;
//! use weft_shared::time::Instant;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let region = Arc::new(ShmRegion::create_memfd(&ShmLayout::default(), 0x1234)?);
//! // Control plane: build and publish a generation (non-blocking; retry on ReadersBusy).
//! let mut writer = FibWriter::attach(region.clone(), std::time::Duration::from_millis(100))?;
//! let dst = NodeId::new(7).ok_or("node id")?;
//! let route = UnicastRoute { next_hop: LinkId::new(3).ok_or("link id")?, metric_us: 1_200 };
//! writer.try_publish(Instant::ZERO, |fib| {
//!     fib.set_unicast(dst, route);
//!     Ok(())
//! })?;
//! // Data plane worker 0: one enter per batch, quiesce before blocking in io_uring.
//! let mut reader = FibReader::register(region, 0)?;
//! let view = reader.enter();
//! assert_eq!(view.unicast(dst), Some(route));
//! reader.quiesce();
//! # Ok(())
//! # }
//! ```

#![allow(
    unsafe_code,
    reason = "shared memory: mmap, raw section pointers (STYLE.md §9)"
)]

pub mod eventfd;
pub mod fdpass;
pub mod fib;
pub mod groups;
pub mod layout;
mod owner;
pub mod region;
pub mod rel_stats;
pub mod ring;
pub mod stats;

pub use eventfd::EventFd;
pub use fib::{FibReader, FibView, FibWriter, Generation, PublishError};
pub use groups::{
    GroupsBusy, LocalGroups, LocalGroupsReader, LocalGroupsWriter, MAX_LOCAL_GROUPS, TooManyGroups,
};
pub use layout::{LAYOUT_VERSION, MAX_WORKERS, SHM_MAGIC, Section, ShmHeader, ShmLayout};
pub use region::{ShmError, ShmRegion};
pub use rel_stats::{RelFlowValues, RelLinkValues, RelStatsReader, RelStatsWriter};
pub use ring::{Notify, PacketMeta, PushError, RingConsumer, RingId, RingProducer};
pub use stats::{
    AuthStats, Counter, CounterTotals, LinkState, LinkStats, StatsReader, StatsWriter,
};
pub use stats::{StatsError, WorkerCounters};
