//! weft-tests: the deterministic simulator and the real-process integration harness.
//!
//! Built by the test-bench issue; see the README for what exists today.
