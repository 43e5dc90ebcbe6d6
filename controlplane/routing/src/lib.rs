//! weft-routing: sans-IO link-state routing, group state and FIB building.
//!
//! Built by the control-plane issue; see the README for what exists today.
