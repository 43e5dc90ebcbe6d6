//! The thin io_uring UDP I/O layer of a data-plane worker (STYLE.md §11).
//!
//! One [`UdpDriver`] per pinned core, run to completion. It receives with one multishot RECVMSG
//! per socket into a provided-buffer ring, sends with SENDMSG from a fixed tx pool, coalescing runs
//! of equal-size packets to one destination into a single GSO send, and watches extra fds (an
//! eventfd, Unix sockets) with multishot POLL_ADD. Each [`UdpDriver::run_once`] makes one
//! `io_uring_enter` that submits and waits, so an idle worker sleeps in the kernel and a busy one
//! makes no syscall per packet. Nothing allocates after setup. It knows nothing about Weft's
//! packet formats.
//!
//! At start-up, [`probe`] checks the kernel and reports what it offers; [`bind_udp`] makes the
//! sockets (`SO_REUSEPORT`, big buffers, optional `UDP_GRO`).
//!
//! ```no_run
//! use std::time::Duration;
//! use weft_dataplane::uring::{DriverConfig, Event, SocketOptions, UdpDriver, bind_udp, probe};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let features = probe()?;
//! let sock = bind_udp("127.0.0.1:7000".parse()?, &SocketOptions::default())?;
//! let mut driver = UdpDriver::new(&features, &DriverConfig::default(), vec![sock])?;
//! let mut dropped = 0u64;
//! loop {
//!     // Echo every datagram; the replies go out with the next call, in one submit.
//!     driver.run_once(Some(Duration::from_millis(10)), |tx, event| {
//!         if let Event::Datagram(d) = event {
//!             if tx.queue(d.socket(), d.source(), d.payload()).is_err() {
//!                 dropped += 1;
//!             }
//!         }
//!     })?;
//! }
//! # }
//! ```
//!
//! This directory is one of the two places where `unsafe` lives: every file that needs it says
//! why in its `#![allow(unsafe_code)]`, and every block has a `// SAFETY:` comment.

mod bufring;
mod config;
mod driver;
mod event;
mod mem;
mod probe;
mod socket;
mod token;
mod tx;

pub use config::{DriverConfig, DriverError, DriverStats, RxStats, SeparateRing};
pub use driver::UdpDriver;
pub use event::{BufId, Datagram, Event, Segments, WatchId};
pub use probe::{Features, ProbeError, probe};
pub use socket::{SocketOptions, bind_udp, socket_drops};
pub use tx::{MAX_GSO_SEGMENTS, MAX_UDP_PAYLOAD, Reserved, TxError, TxQueue, TxSlot, TxStats};
