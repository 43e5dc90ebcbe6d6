//! weft-perf: load generators, sinks and baseline forwarders for Weft's benchmarks.
//!
//! Built by the data-plane and line-rate issues; figures go to `perf/RESULTS.md`.

pub mod raw_load;
pub mod reliable_goodput;
pub mod srt_compare;
pub mod udp_baseline;
