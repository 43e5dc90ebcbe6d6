//! weft-shared: the contracts every Weft process agrees on.
//!
//! - [`ids`] and [`time`]: typed identifiers and time as an input.
//! - [`wire`]: packet formats on overlay links (zerocopy views plus `Repr` parse/emit),
//!   specified in `docs/wire.md`.
//! - [`shm`]: the shared memory between the data plane and the control plane (FIB generations,
//!   link statistics, punt/inject rings), specified in `docs/shm.md`. This is one of the two
//!   places where `unsafe` lives.
//! - [`session`]: the protocol between clients and their node, specified in `docs/session.md`.
//! - [`config`]: the overlay's TOML config, parsed once into typed values.
//! - [`drop_reason`]: why a packet was dropped, counted per reason.
//!
//! Nothing here reads a clock: the drivers (data plane engine, control plane daemon, simulator)
//! pass time in. The only I/O is at the edges: mapping shared memory (`shm`) and binding the
//! session socket (`session::bind_listener`); codecs and tables work on caller buffers.

pub mod config;
pub mod ctl;
pub mod drop_reason;
pub mod ids;
pub mod session;
pub mod shm;
pub mod time;
pub mod wire;

pub use drop_reason::DropReason;
