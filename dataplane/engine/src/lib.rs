//! weft-dataplane: the data-plane process (pinned io_uring workers driving `weft-proto`).
//!
//! - [`uring`]: the thin io_uring UDP driver (one per worker).
//! - [`node`]: start-up and shutdown (config, shared memory, workers, attach socket, signals).
//! - [`sockets`]: the node's UDP sockets, bound in a fixed order by the main thread;
//!   [`steer`]: the reuseport BPF program that puts hellos and control on worker 0's control
//!   sockets and spreads data over the workers' data sockets.
//! - [`worker`]: the per-core loop (and `rx`: its receive buffers, split into GRO segments;
//!   `output`: where the pipeline's packets go); [`monitors`]: worker 0's link monitors;
//!   [`links`]: the node's links shared by the workers; [`keys`]: the link key files each
//!   worker loads and reloads; [`handoff`]: rings from the workers to
//!   worker 0; [`session`]: the session server clients talk to; [`session_glue`]: worker 0's
//!   adapter.
//!
//! `docs/dataplane.md` describes the process as a whole.

pub mod clock;
pub mod deadline_flows;
pub mod handoff;
pub mod keys;
pub mod links;
pub mod monitors;
pub mod node;
pub mod originate;
mod output;
pub mod packer;
pub mod reliable_flows;
mod rx;
pub mod session;
pub mod session_glue;
pub mod sockets;
pub mod steer;
pub mod uring;
pub mod worker;
