//! weft-controld: the control-plane process.
//!
//! - [`attach`]: reaching the node's data plane through its attach socket;
//! - [`daemon`]: the loop that drives the link-state [`weft_routing::link_state::Router`] with
//!   punted control packets, link statistics and time, injects its envelopes and publishes FIB
//!   generations;
//! - [`ctl_server`]: the non-blocking server of the `weftctl` protocol on the node's ctl socket;
//! - [`status`]: the answers to `weftctl` built from the daemon's state;
//! - [`static_routes`]: the one-shot mode that publishes the config's shortest paths at base
//!   cost (no link state).

pub mod attach;
pub mod ctl_server;
pub mod daemon;
pub mod static_routes;
pub mod status;
