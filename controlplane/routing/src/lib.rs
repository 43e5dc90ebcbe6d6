//! weft-routing: sans-IO route computation for the control plane.
//!
//! - [`metric`]: the expected-latency link metric and the damping of re-advertisements;
//! - [`link_state`]: the link-state protocol (adverts, reliable flooding, aging, full
//!   exchange) and the [`link_state::Router`] that turns it into routes and FIB contents;
//! - [`spf`]: shortest paths with deterministic tie-breaks over the overlay graph;
//! - [`groups`]: group membership flooded per bucket ([`groups::GroupState`]) and the
//!   multicast trees and anycast choices computed from it ([`groups::Trees`]).
//!
//! Every input is a value and no clock is read, so the control-plane daemon and the simulator
//! drive the same code.

pub mod groups;
pub mod link_state;
pub mod metric;
pub mod spf;
