//! Send path: runs of equal-size packets go out as one GSO `SENDMSG`, mixed sizes and
//! destinations split into the right groups, a full submission queue is submitted and
//! retried rather than losing packets, and `send_now` sends without a `run_once`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]

mod uring_common;

use std::net::{SocketAddr, UdpSocket};

use uring_common::{driver, payload, peer, seq_of, settle_sends};
use weft_dataplane::uring::{DriverConfig, SocketOptions, TxStats};

fn recv_all(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 65_536];
    (0..n)
        .map(|_| {
            let (len, _) = s.recv_from(&mut buf).unwrap();
            buf[..len].to_vec()
        })
        .collect()
}

fn delta(after: TxStats, before: TxStats) -> (u64, u64, u64, u64) {
    (
        after.sendmsgs - before.sendmsgs,
        after.gso_sends - before.gso_sends,
        after.gso_segments - before.gso_segments,
        after.datagrams - before.datagrams,
    )
}

#[test]
fn forty_equal_packets_are_one_gso_send() {
    let (mut d, addr) = driver(&DriverConfig::default(), &SocketOptions::default());
    assert!(d.tx().gso_enabled());
    let rx = peer();
    let dst = rx.local_addr().unwrap();
    let sent: Vec<Vec<u8>> = (0..40).map(|i| payload(i, 1000)).collect();
    for p in &sent {
        d.tx().queue(0, dst, p).unwrap();
    }
    settle_sends(&mut d);
    let s = d.stats().tx;
    assert_eq!(delta(s, TxStats::default()), (1, 1, 40, 40), "{s:?}");
    assert_eq!(s.bytes, 40_000);

    let mut buf = vec![0u8; 4096];
    for p in &sent {
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(from, addr);
        assert_eq!(&buf[..n], &p[..], "datagram {}", seq_of(p));
    }
}

#[test]
fn mixed_sizes_and_destinations_split_correctly() {
    let (mut d, _) = driver(&DriverConfig::default(), &SocketOptions::default());
    let (a, b) = (peer(), peer());
    let (da, db): (SocketAddr, SocketAddr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    // (destination, size). Expected groups, one SENDMSG each, gathered per destination past
    // the other's packets (each destination's order kept): [a 500 x5 + a 200] (a shorter last
    // segment joins its run), [a 700 x3 + a 100], [b 700 x2 + b 300], [a 0] (empty datagrams
    // never coalesce), [a 300 x2], [a 1200 x2] (larger than the run before: a new group).
    let plan: &[(SocketAddr, usize)] = &[
        (da, 500),
        (da, 500),
        (da, 500),
        (da, 500),
        (da, 500),
        (da, 200),
        (da, 700),
        (da, 700),
        (da, 700),
        (db, 700),
        (db, 700),
        (da, 100),
        (da, 0),
        (da, 300),
        (db, 300),
        (da, 300),
        (da, 1200), // larger than the previous run: a new group
        (da, 1200),
    ];
    let expected_groups = [6, 4, 3, 1, 2, 2];
    let mut to_a = Vec::new();
    let mut to_b = Vec::new();
    for (i, &(dst, len)) in plan.iter().enumerate() {
        let p = payload(i as u32, len);
        d.tx().queue(0, dst, &p).unwrap();
        if dst == da {
            to_a.push(p)
        } else {
            to_b.push(p)
        }
    }
    settle_sends(&mut d);
    let s = d.stats().tx;
    let gso_groups: Vec<u64> = expected_groups.iter().copied().filter(|&n| n > 1).collect();
    assert_eq!(
        delta(s, TxStats::default()),
        (
            expected_groups.len() as u64,
            gso_groups.len() as u64,
            gso_groups.iter().sum::<u64>(),
            plan.len() as u64
        ),
        "{s:?}"
    );
    assert_eq!(recv_all(&a, to_a.len()), to_a);
    assert_eq!(recv_all(&b, to_b.len()), to_b);
}

#[test]
fn full_submission_queue_is_submitted_and_retried() {
    // A 4-entry SQ and no GSO: 40 packets need 40 SENDMSGs, so the SQ fills ten times over.
    let config = DriverConfig {
        sq_entries: 4,
        gso: false,
        ..DriverConfig::default()
    };
    let (mut d, _) = driver(&config, &SocketOptions::default());
    assert!(!d.tx().gso_enabled());
    let rx = peer();
    let dst = rx.local_addr().unwrap();
    let sent: Vec<Vec<u8>> = (0..40).map(|i| payload(i, 100)).collect();
    for p in &sent {
        d.tx().queue(0, dst, p).unwrap();
    }
    settle_sends(&mut d);
    let s = d.stats();
    assert!(s.sq_full_submits >= 9, "{s:?}");
    assert_eq!(delta(s.tx, TxStats::default()), (40, 0, 0, 40));
    assert_eq!(recv_all(&rx, 40), sent);
}

#[test]
fn full_pool_is_an_error_not_a_wait() {
    let config = DriverConfig {
        tx_slots: 8,
        ..DriverConfig::default()
    };
    let (mut d, _) = driver(&config, &SocketOptions::default());
    let rx = peer();
    let dst = rx.local_addr().unwrap();
    let mut refused = 0;
    for i in 0..20 {
        if d.tx().queue(0, dst, &payload(i, 64)).is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 12);
    assert_eq!(d.stats().tx.pool_full, 12);
    settle_sends(&mut d);
    // Completions freed the pool: queueing works again.
    assert_eq!(d.tx().free_slots(), 8);
    let mut slot = d.tx().slot().unwrap();
    slot.buf()[..5].copy_from_slice(b"hello");
    slot.queue(0, dst, 5).unwrap();
    settle_sends(&mut d);
    let got = recv_all(&rx, 9);
    assert_eq!(got[8], b"hello");
}

/// `send_now` puts the queued packets on the wire without a `run_once`: the peer receives them
/// (as one GSO send) while the caller has not reaped anything; the next `run_once` reaps the
/// completion and frees the buffers.
#[test]
fn send_now_sends_without_waiting_for_run_once() {
    let (mut d, _) = driver(&DriverConfig::default(), &SocketOptions::default());
    let rx = peer();
    let dst = rx.local_addr().unwrap();
    let sent: Vec<Vec<u8>> = (0..8).map(|i| payload(i, 500)).collect();
    for p in &sent {
        d.tx().queue(0, dst, p).unwrap();
    }
    assert_eq!(d.tx().pending(), 8);
    d.send_now().unwrap();
    assert_eq!(d.tx().pending(), 0, "all handed to the kernel");
    assert_eq!(
        recv_all(&rx, sent.len()),
        sent,
        "arrived before any run_once"
    );
    assert_eq!(d.tx().in_flight(), 8, "completions not reaped yet");
    settle_sends(&mut d);
    assert_eq!(d.tx().in_flight(), 0);
    assert_eq!(d.stats().tx.gso_sends, 1);
    // Nothing queued: nothing to do.
    d.send_now().unwrap();
}
