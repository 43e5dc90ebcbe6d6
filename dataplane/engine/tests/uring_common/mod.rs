//! Helpers shared by the `real_uring_*` tests: a probed driver on 127.0.0.1, plain std peers,
//! bounded run loops and the kernel's per-socket drop counter.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use weft_dataplane::uring::{
    DriverConfig, Event, Features, SocketOptions, TxQueue, UdpDriver, bind_udp, probe,
};

/// The probe's result; every real test needs io_uring, which this machine has.
pub(crate) fn features() -> Features {
    probe().unwrap_or_else(|e| panic!("io_uring probe failed: {e}"))
}

/// A driver over one socket bound to 127.0.0.1 on a kernel-chosen port.
pub(crate) fn driver(config: &DriverConfig, opts: &SocketOptions) -> (UdpDriver, SocketAddr) {
    let sock = bind_udp("127.0.0.1:0".parse().unwrap(), opts).unwrap();
    let addr = sock.local_addr().unwrap();
    (
        UdpDriver::new(&features(), config, vec![sock]).unwrap(),
        addr,
    )
}

/// A plain blocking std socket on 127.0.0.1 with a 2 s read timeout.
pub(crate) fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

/// Runs the driver until `done()` or until `limit` passes (then panics with `what`).
pub(crate) fn run_until<F>(
    d: &mut UdpDriver,
    limit: Duration,
    what: &str,
    mut on_event: F,
    mut done: impl FnMut(&UdpDriver) -> bool,
) where
    F: FnMut(&mut TxQueue, Event<'_>),
{
    let deadline = Instant::now() + limit;
    while !done(d) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; stats {:?}",
            d.stats()
        );
        d.run_once(Some(Duration::from_millis(20)), &mut on_event)
            .unwrap();
    }
}

/// Reaps send completions until no send is in flight.
pub(crate) fn settle_sends(d: &mut UdpDriver) {
    d.submit().unwrap();
    run_until(
        d,
        Duration::from_secs(5),
        "send completions",
        |_, _| {},
        |d| d.sends_in_flight() == 0 && d.sends_pending() == 0,
    );
}

/// The kernel's drop counter for the UDP socket bound to `port` on 127.0.0.1
/// (`/proc/net/udp`, last column).
pub(crate) fn udp_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let local = format!("0100007F:{port:04X}");
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(1) == Some(&local.as_str()) {
            return cols.last().unwrap().parse().unwrap();
        }
    }
    panic!("no /proc/net/udp entry for {local}");
}

/// A payload of `len` bytes that encodes `seq`: its first bytes are the little-endian sequence
/// number (as many as fit), the rest a pattern derived from it.
pub(crate) fn payload(seq: u32, len: usize) -> Vec<u8> {
    let head = seq.to_le_bytes();
    (0..len)
        .map(|i| {
            if i < 4 {
                head[i]
            } else {
                (seq as usize * 31 + i) as u8
            }
        })
        .collect()
}

/// The sequence number at the start of a payload made by [`payload`] (needs 4 bytes).
pub(crate) fn seq_of(p: &[u8]) -> u32 {
    u32::from_le_bytes(p[..4].try_into().unwrap())
}

/// A small deterministic generator (SplitMix64) for sizes; tests print their seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
