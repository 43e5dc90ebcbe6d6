//! weft-tests: whole-system test support.
//!
//! - [`experiments`]: protocol experiments in virtual time over [`linkmodel`] links (NM-Strikes
//!   on a continental chain: on-time ratio, overhead, latency);
//! - [`linkmodel`]: emulated links (latency, jitter, Bernoulli and Gilbert–Elliott loss, rate
//!   limit, cuts), shared by the simulator and `weft-linkem`;
//! - [`linkem`]: `weft-linkem`, the userspace UDP relay that runs [`linkmodel`] between real
//!   processes (per-path latency, loss, rate, cuts; a control socket and timelines);
//! - [`overlay`]: real overlays of `weft-dataplane` + `weft-controld` (or `weft node`)
//!   processes on loopback, guarded, with `weftctl` access;
//! - [`scenario_real`]: a simulator scenario file played on real processes through
//!   `weft-linkem` (topology, link model, flows, timeline);
//! - [`traffic`]: a paced flow between two nodes' clients with loss, gap and latency figures;
//! - [`sim`]: the deterministic, virtual-time simulator that runs N nodes of the real sans-IO
//!   protocol code (link monitors, forwarder, link-state router) over emulated links, driven by
//!   scenario files (`docs/simulator.md`, the `weft-sim` binary).

#![allow(
    clippy::panic,
    reason = "a test harness fails loudly; nothing here handles production input"
)]

pub mod experiments;
pub mod linkem;
pub mod linkmodel;
pub mod overlay;
pub mod scenario_real;
pub mod sim;
pub mod traffic;
