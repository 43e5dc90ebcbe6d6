//! Receive offload: with `UDP_GRO` on the driver's socket, GSO bursts from another socket arrive
//! as super-packets; the driver reports the segment size and splitting yields the original
//! datagrams in order.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]

mod uring_common;

use std::cell::RefCell;
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
use uring_common::{driver, payload, peer, run_until};
use weft_dataplane::uring::{DriverConfig, Event, SocketOptions};

#[test]
fn gso_bursts_arrive_coalesced_and_split_back() {
    let opts = SocketOptions {
        gro: true,
        ..SocketOptions::default()
    };
    let (mut d, addr) = driver(&DriverConfig::with_gro(), &opts);
    let sender = peer();
    let from = sender.local_addr().unwrap();
    let dst = SockaddrStorage::from(addr);

    // Three bursts: 10 x 1200 B + a 500 B tail, 40 x 1000 B, 7 x 64 B.
    let bursts: [(u16, usize, usize); 3] = [(1200, 10, 500), (1000, 40, 0), (64, 7, 0)];
    let mut originals = Vec::new();
    for &(seg, full, tail) in &bursts {
        let mut packets: Vec<Vec<u8>> = Vec::new();
        for _ in 0..full {
            packets.push(payload(
                (originals.len() + packets.len()) as u32,
                usize::from(seg),
            ));
        }
        if tail > 0 {
            packets.push(payload((originals.len() + packets.len()) as u32, tail));
        }
        let wire: Vec<u8> = packets.concat();
        let cmsg = [ControlMessage::UdpGsoSegments(&seg)];
        let n = sendmsg(
            sender.as_raw_fd(),
            &[IoSlice::new(&wire)],
            &cmsg,
            MsgFlags::empty(),
            Some(&dst),
        )
        .unwrap();
        assert_eq!(n, wire.len());
        originals.extend(packets);
    }

    let got = RefCell::new(Vec::<Vec<u8>>::new());
    let mut seg_sizes = Vec::new();
    run_until(
        &mut d,
        Duration::from_secs(5),
        "GRO datagrams",
        |_, ev| {
            let Event::Datagram(dg) = ev else { return };
            assert_eq!(dg.source(), from);
            seg_sizes.push(dg.segment_size());
            got.borrow_mut().extend(dg.segments().map(<[u8]>::to_vec));
        },
        |_| got.borrow().len() >= originals.len(),
    );
    println!(
        "segment sizes per delivery: {seg_sizes:?}; {:?}",
        d.stats().rx
    );
    assert_eq!(got.into_inner(), originals);
    // Loopback keeps GSO super-packets whole for a GRO socket: one delivery per burst.
    assert_eq!(seg_sizes, vec![Some(1200), Some(1000), Some(64)]);
    let rx = d.stats().rx;
    assert_eq!((rx.gro_datagrams, rx.datagrams, rx.truncated), (3, 3, 0));
}

#[test]
fn super_packet_larger_than_a_buffer_is_counted_as_truncated() {
    // Buffers hold 4000 B of payload but the burst is 10 x 1200 B: truncated, dropped, counted.
    let opts = SocketOptions {
        gro: true,
        ..SocketOptions::default()
    };
    let config = DriverConfig {
        buf_payload: 4000,
        ..DriverConfig::with_gro()
    };
    let (mut d, addr) = driver(&config, &opts);
    let sender = peer();
    let dst = SockaddrStorage::from(addr);
    let seg: u16 = 1200;
    let wire = vec![7u8; 12_000];
    let cmsg = [ControlMessage::UdpGsoSegments(&seg)];
    sendmsg(
        sender.as_raw_fd(),
        &[IoSlice::new(&wire)],
        &cmsg,
        MsgFlags::empty(),
        Some(&dst),
    )
    .unwrap();
    sender.send_to(&payload(1, 100), addr).unwrap();
    let got = RefCell::new(Vec::new());
    run_until(
        &mut d,
        Duration::from_secs(5),
        "the datagram after the truncated one",
        |_, ev| {
            if let Event::Datagram(dg) = ev {
                got.borrow_mut().push(dg.payload().to_vec());
            }
        },
        |_| !got.borrow().is_empty(),
    );
    assert_eq!(got.into_inner(), vec![payload(1, 100)]);
    assert_eq!(d.stats().rx.truncated, 1);
    assert_eq!(
        d.buffers_in_kernel(),
        config.buf_entries,
        "the truncated buffer went back"
    );
}
