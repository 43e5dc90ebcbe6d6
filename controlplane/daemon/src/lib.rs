//! weft-controld: the control-plane process (link-state flooding, routes, FIB publishing).
//!
//! Built by the control-plane issue; see the README for what exists today.
