//! weftctl: the command-line client of a node's control plane.
//!
//! Built by the control-plane issue; see the README for what exists today.
