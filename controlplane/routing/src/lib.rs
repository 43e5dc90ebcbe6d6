//! weft-routing: sans-IO route computation for the control plane.
//!
//! Today it holds [`spf`], shortest paths with deterministic tie-breaks over the overlay graph.
//! Link-state flooding, group state and FIB building from live link state come with the
//! control-plane issue; like this module they take every input as a value and read no clock.

pub mod spf;
