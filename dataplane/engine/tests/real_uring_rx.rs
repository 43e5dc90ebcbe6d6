//! Receive-side robustness: a tiny buffer ring runs dry while the caller holds buffers, the
//! multishot receive ends with ENOBUFS, and once buffers come back it is re-armed and every
//! datagram the kernel did not drop arrives, in order. A socket with a separate ring keeps
//! receiving while a flooded socket has taken every buffer of the main ring.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]

mod uring_common;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use uring_common::{driver, features, payload, peer, run_until, seq_of, udp_drops};
use weft_dataplane::uring::{
    BufId, DriverConfig, Event, SeparateRing, SocketOptions, TxQueue, UdpDriver, bind_udp,
};

const BURST: u32 = 1000;

#[test]
fn enobufs_rearm_recovers_after_release() {
    let config = DriverConfig {
        buf_entries: 4,
        ..DriverConfig::default()
    };
    let (mut d, addr) = driver(&config, &SocketOptions::default());
    let sender = peer();
    for seq in 0..BURST {
        sender.send_to(&payload(seq, 64), addr).unwrap();
    }

    // Phase 1: the caller holds every buffer it gets. The ring runs dry after 4 datagrams and
    // the multishot receive ends; with no buffer to give it, the driver does not re-arm.
    let held = RefCell::new(Vec::<BufId>::new());
    let seqs = RefCell::new(Vec::<u32>::new());
    run_until(
        &mut d,
        Duration::from_secs(5),
        "the ring to run dry",
        |_, ev| {
            if let Event::Datagram(dg) = ev {
                seqs.borrow_mut().push(seq_of(dg.payload()));
                held.borrow_mut().push(dg.hold());
            }
        },
        |d| d.stats().rx.enobufs > 0 && d.buffers_held() == 4,
    );
    for _ in 0..3 {
        d.run_once(Some(Duration::from_millis(10)), |_, _| {
            panic!("no buffer, no datagram")
        })
        .unwrap();
    }
    let s = d.stats().rx;
    assert_eq!(
        (s.datagrams, s.rearms, d.buffers_in_kernel()),
        (4, 0, 0),
        "{s:?}"
    );
    assert_eq!(*seqs.borrow(), [0, 1, 2, 3]);
    let held = held.into_inner();
    assert_eq!(d.held_payload(&held[2]), Some(&payload(2, 64)[..]));

    // Phase 2: give the buffers back; from now on each buffer returns after its callback.
    for id in held {
        assert!(d.release(id));
    }
    let drops = udp_drops(addr.port());
    let deadline = Instant::now() + Duration::from_secs(10);
    while (seqs.borrow().len() as u64) + drops < u64::from(BURST) {
        assert!(
            Instant::now() < deadline,
            "stuck at {} datagrams",
            seqs.borrow().len()
        );
        d.run_once(Some(Duration::from_millis(20)), |_, ev| {
            if let Event::Datagram(dg) = ev {
                seqs.borrow_mut().push(seq_of(dg.payload()));
            }
        })
        .unwrap();
    }
    let s = d.stats().rx;
    println!("kernel drops {drops}; {s:?}");
    let seqs = seqs.into_inner();
    assert!(s.rearms > 0 && s.enobufs > 0, "{s:?}");
    assert_eq!(seqs.len() as u64 + drops, u64::from(BURST));
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates"
    );
    // 1000 small datagrams fit the 8 MiB receive buffer: nothing should have been dropped.
    assert_eq!(drops, 0);
    assert_eq!((d.buffers_in_kernel(), d.buffers_held()), (4, 0));
}

#[test]
fn oversize_datagram_is_truncated_counted_and_dropped() {
    let config = DriverConfig {
        buf_payload: 100,
        ..DriverConfig::default()
    };
    let (mut d, addr) = driver(&config, &SocketOptions::default());
    let sender = peer();
    sender.send_to(&payload(0, 200), addr).unwrap();
    sender.send_to(&payload(1, 100), addr).unwrap();
    let got = RefCell::new(Vec::new());
    run_until(
        &mut d,
        Duration::from_secs(5),
        "the second datagram",
        |_, ev| {
            if let Event::Datagram(dg) = ev {
                got.borrow_mut().push(dg.payload().to_vec());
            }
        },
        |_| !got.borrow().is_empty(),
    );
    assert_eq!(got.into_inner(), vec![payload(1, 100)]);
    assert_eq!(d.stats().rx.truncated, 1);
}

#[test]
fn held_buffer_stays_out_until_released() {
    let (mut d, addr) = driver(&DriverConfig::default(), &SocketOptions::default());
    peer().send_to(b"keep me", addr).unwrap();
    let held = RefCell::new(None);
    run_until(
        &mut d,
        Duration::from_secs(5),
        "one datagram",
        |_, ev| {
            if let Event::Datagram(dg) = ev {
                *held.borrow_mut() = Some(dg.hold());
            }
        },
        |_| held.borrow().is_some(),
    );
    let id = held.into_inner().unwrap();
    assert_eq!(d.held_payload(&id), Some(&b"keep me"[..]));
    let entries = DriverConfig::default().buf_entries;
    assert_eq!((d.buffers_in_kernel(), d.buffers_held()), (entries - 1, 1));
    // Still held across further run_once calls.
    d.run_once(Some(Duration::from_millis(5)), |_, _| {})
        .unwrap();
    assert_eq!(d.held_payload(&id), Some(&b"keep me"[..]));
    assert!(d.release(id));
    assert_eq!((d.buffers_in_kernel(), d.buffers_held()), (entries, 0));
}

/// Floods socket 0 and holds every buffer it receives (a caller that has not released them
/// yet), then sends three datagrams to socket 1. Returns what socket 1 got within 300 ms.
fn starve(separate: bool) -> Vec<u32> {
    let opts = SocketOptions::default();
    let socks: Vec<_> = (0..2)
        .map(|_| bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap())
        .collect();
    let addrs: Vec<_> = socks.iter().map(|s| s.local_addr().unwrap()).collect();
    let config = DriverConfig {
        buf_entries: 8,
        separate_ring: separate.then_some(SeparateRing {
            first_socket: 1,
            buf_entries: 4,
            buf_payload: 2048,
        }),
        ..DriverConfig::default()
    };
    let mut d = UdpDriver::new(&features(), &config, socks).unwrap();
    assert_eq!(d.buffers(), if separate { 12 } else { 8 });
    let sender = peer();
    for seq in 0..100 {
        sender.send_to(&payload(seq, 64), addrs[0]).unwrap();
    }
    let held = RefCell::new(Vec::<BufId>::new());
    let on_1 = RefCell::new(Vec::new());
    let mut on_event = |_: &mut TxQueue, ev: Event<'_>| {
        if let Event::Datagram(dg) = ev {
            if dg.socket() == 1 {
                on_1.borrow_mut().push(seq_of(dg.payload()));
            } else {
                held.borrow_mut().push(dg.hold());
            }
        }
    };
    run_until(
        &mut d,
        Duration::from_secs(5),
        "the flood to take the main ring",
        &mut on_event,
        |_| held.borrow().len() == 8,
    );
    for seq in 1000..1003 {
        sender.send_to(&payload(seq, 64), addrs[1]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline && on_1.borrow().len() < 3 {
        d.run_once(Some(Duration::from_millis(10)), &mut on_event)
            .unwrap();
    }
    assert_eq!(
        held.borrow().len(),
        8,
        "the flooded socket got no more buffers"
    );
    for id in held.take() {
        assert!(d.release(id));
    }
    on_1.into_inner()
}

#[test]
fn a_socket_with_its_own_ring_receives_while_a_flood_holds_the_main_ring() {
    assert_eq!(starve(true), [1000, 1001, 1002]);
    // The control experiment: sharing the ring, socket 1 waits for buffers.
    assert_eq!(starve(false), Vec::<u32>::new());
}
