//! weft-controld: the control-plane process.
//!
//! Today it has one mode, [`static_routes`]: compute shortest paths over the config's links at
//! their base costs and publish them as a FIB generation into a running data plane's shared
//! memory. Link-state flooding, live link metrics and rerouting come with the control-plane
//! issue and replace this mode's fixed view of the graph.

pub mod ctl_server;
pub mod static_routes;
