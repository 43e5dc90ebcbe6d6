//! Loopback round trip: a driver echoes 10,000 datagrams of varied sizes from a plain std socket;
//! every byte and every source address must be right, and the counters must match.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]

mod uring_common;

use std::cell::Cell;
use std::time::Duration;

use uring_common::{Rng, driver, payload, peer, run_until, settle_sends};
use weft_dataplane::uring::{DriverConfig, Event, SocketOptions};

const N: u32 = 10_000;
const WINDOW: u32 = 32;

#[test]
fn echoes_10000_varied_datagrams() {
    let seed = 0x00C0_FFEE_u64;
    println!("size seed {seed:#x}");
    let mut rng = Rng(seed);
    let config = DriverConfig::default();
    let (mut d, addr) = driver(&config, &SocketOptions::default());
    let client = peer();
    let client_addr = client.local_addr().unwrap();

    let mut buf = vec![0u8; 65_536];
    let mut sent = 0u32;
    let mut total_bytes = 0u64;
    while sent < N {
        let w = WINDOW.min(N - sent);
        let batch: Vec<Vec<u8>> = (sent..sent + w)
            .map(|seq| {
                // Mostly 0..=1472 bytes, sometimes exactly a common MTU-sized payload.
                let len = match rng.next() % 8 {
                    0 => 1400,
                    _ => (rng.next() % 1473) as usize,
                };
                payload(seq, len)
            })
            .collect();
        for p in &batch {
            client.send_to(p, addr).unwrap();
            total_bytes += p.len() as u64;
        }
        let got = Cell::new(0u32);
        run_until(
            &mut d,
            Duration::from_secs(5),
            "a window of datagrams",
            |tx, ev| {
                let Event::Datagram(dg) = ev else { return };
                assert_eq!(dg.source(), client_addr);
                assert_eq!(dg.socket(), 0);
                assert_eq!(dg.segment_size(), None);
                let i = got.get();
                assert_eq!(
                    dg.payload(),
                    &batch[i as usize][..],
                    "datagram {}",
                    sent + i
                );
                tx.queue(dg.socket(), dg.source(), dg.payload()).unwrap();
                got.set(i + 1);
            },
            |_| got.get() == w,
        );
        d.submit().unwrap();
        for (i, p) in batch.iter().enumerate() {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(from, addr);
            assert_eq!(&buf[..n], &p[..], "echo of datagram {}", sent + i as u32);
        }
        sent += w;
    }
    settle_sends(&mut d);

    let s = d.stats();
    println!("{s:?}");
    assert_eq!(s.rx.datagrams, u64::from(N));
    assert_eq!(s.rx.bytes, total_bytes);
    assert_eq!(s.tx.queued, u64::from(N));
    assert_eq!(s.tx.datagrams, u64::from(N));
    assert_eq!(s.tx.bytes, total_bytes);
    assert_eq!(
        (s.rx.truncated, s.rx.errors, s.rx.malformed, s.tx.errors),
        (0, 0, 0, 0)
    );
    assert_eq!(s.unknown_completions, 0);
    // No buffer leaked: all back in the ring, all tx slots free.
    assert_eq!(d.buffers_in_kernel(), config.buf_entries);
    assert_eq!(d.buffers_held(), 0);
    assert_eq!(d.tx().free_slots(), config.tx_slots as usize);
}
