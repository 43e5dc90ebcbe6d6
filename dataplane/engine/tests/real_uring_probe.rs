//! The start-up probe succeeds on this machine (Linux 6.18) and finds every feature the driver
//! can use, including the UDP offloads.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]

use weft_dataplane::uring::probe;

#[test]
fn probe_finds_io_uring_and_udp_offloads() {
    let f = probe().unwrap();
    println!("{f:?}");
    assert_eq!(f.io_uring_disabled_sysctl, 0);
    assert!(
        f.single_issuer && f.defer_taskrun,
        "6.18 accepts SINGLE_ISSUER|DEFER_TASKRUN"
    );
    assert!(f.read_op && f.timeout_op);
    assert!(f.udp_gro, "UDP_GRO socket option");
    assert!(f.udp_gso, "UDP_SEGMENT send");
}

#[test]
fn probe_is_repeatable() {
    // Each probe sets up and tears down its own ring; a second one must see the same kernel.
    assert_eq!(probe().unwrap(), probe().unwrap());
}
