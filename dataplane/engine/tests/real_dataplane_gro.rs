//! Receive offload in the data plane: a sender coalesces several Weft packets into one GSO send
//! (`UDP_SEGMENT`) towards node 2. With `UDP_GRO` on node 2's socket (the default) each burst
//! arrives as one super-packet, and every segment must still be handled as its own Weft packet:
//! each data segment delivered, a shorter control segment at the end of a burst punted, a bad
//! segment counted as a drop without losing its neighbours. Node 2's exit report shows that the
//! bursts really arrived coalesced. The same bursts with `--no-gro` arrive one datagram each and
//! give the same result.
//!
//! If the worker handled a super-packet as one datagram, only the first segment of each burst
//! would be delivered and the counts below would not match.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::io::IoSlice;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::client::TestClient;
use common::{Overlay, Spec, attach};
use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
use weft_proto::forward::LinkSender;
use weft_shared::DropReason;
use weft_shared::ids::{FlowId, Incarnation, LinkId, NodeId, PathId, Port};
use weft_shared::shm::{Counter, RingConsumer, RingId};
use weft_shared::wire::{
    ControlKind, ControlRepr, DataRepr, Delivery, LinkProto, OverlayRepr, Route, Strikes,
};

/// GSO bursts sent.
const BURSTS: usize = 24;
/// Full-size data packets per burst.
const PER_BURST: usize = 40;
/// Payload bytes of a full-size data packet.
const PAYLOAD: usize = 300;
/// The burst with a garbage segment (bad version byte) in the middle.
const GARBAGE_BURST: usize = 5;

/// What the bursts carry, for the checks.
struct Sent {
    /// Data payloads in sending order (their seq is their index).
    data: Vec<Vec<u8>>,
    /// Update sequence numbers of the control envelopes (one per odd burst, as its last segment).
    controls: Vec<u32>,
    /// Segments in all bursts.
    segments: u64,
}

/// A data packet from node 1 (lane 9, so it cannot be confused with node 1's own packets) to
/// port 500 on node 2.
fn data_packet(sender: &mut LinkSender, seq: u64, payload: &[u8]) -> Vec<u8> {
    let node1 = NodeId::new(1).unwrap();
    let data = DataRepr {
        overlay: OverlayRepr {
            route: Route::Unicast(NodeId::new(2).unwrap()),
            ttl: 8,
            link_proto: LinkProto::BestEffort,
            delivery: Delivery::AsSoonAsOrdered,
            priority: 0,
            strikes: Strikes::NONE,
            src: node1,
            src_port: Port(400),
            dst_port: Port(500),
            src_incarnation: Incarnation(42),
            flow: FlowId(1),
            seq,
            deadline_us: None,
            age_us: 0,
        },
        fragment: None,
        payload,
    };
    let mut buf = [0u8; 1500];
    let n = sender
        .write_data(
            &mut buf,
            LinkId::new(0).unwrap(),
            PathId::new(0).unwrap(),
            &data,
            1472,
        )
        .unwrap();
    buf[..n].to_vec()
}

fn control_packet(sender: &mut LinkSender, update_seq: u32) -> Vec<u8> {
    let body = format!("gro control {update_seq}");
    let envelope = ControlRepr {
        origin: NodeId::new(1).unwrap(),
        origin_incarnation: Incarnation(3),
        update_seq,
        kind: ControlKind::LinkState,
        body: body.as_bytes(),
    };
    let mut env = [0u8; 256];
    let n = envelope.emit(&mut env).unwrap();
    let mut buf = [0u8; 1500];
    let len = sender
        .write_control(
            &mut buf,
            LinkId::new(0).unwrap(),
            PathId::new(0).unwrap(),
            &env[..n],
            1472,
        )
        .unwrap();
    buf[..len].to_vec()
}

/// Sends the bursts to node 2's ISP-a address, each as one `sendmsg` with `UDP_SEGMENT`. Even
/// bursts end with a shorter data packet, odd ones with a (shorter) control packet.
fn send_bursts(o: &Overlay) -> Sent {
    let sock = UdpSocket::bind(o.addrs.spare(1)).unwrap();
    let dst = SockaddrStorage::from(o.addrs.node(2, 0));
    let mut sender = LinkSender::new(NodeId::new(1).unwrap(), Incarnation(42), 9);
    let mut sent = Sent {
        data: Vec::new(),
        controls: Vec::new(),
        segments: 0,
    };
    for b in 0..BURSTS {
        let mut packets = Vec::new();
        for i in 0..PER_BURST {
            let mut payload = format!("burst {b:02} packet {i:02} ").into_bytes();
            payload.resize(PAYLOAD, b'.');
            packets.push(data_packet(&mut sender, sent.data.len() as u64, &payload));
            sent.data.push(payload);
            if b == GARBAGE_BURST && i == PER_BURST / 2 {
                // Same size as its neighbours, but not a Weft packet of this version.
                let mut garbage = packets[0].clone();
                garbage[0] = 0xEE;
                packets.push(garbage);
            }
        }
        let segment = packets[0].len();
        if b % 2 == 0 {
            let payload = format!("burst {b:02} short tail").into_bytes();
            packets.push(data_packet(&mut sender, sent.data.len() as u64, &payload));
            sent.data.push(payload);
        } else {
            packets.push(control_packet(&mut sender, sent.controls.len() as u32));
            sent.controls.push(sent.controls.len() as u32);
        }
        let last = packets.last().unwrap().len();
        assert!(
            last < segment,
            "the last segment ({last} B) is the short one"
        );
        assert!(
            packets[..packets.len() - 1]
                .iter()
                .all(|p| p.len() == segment)
        );
        sent.segments += packets.len() as u64;
        let wire = packets.concat();
        let gso = u16::try_from(segment).unwrap();
        let n = sendmsg(
            sock.as_raw_fd(),
            &[IoSlice::new(&wire)],
            &[ControlMessage::UdpGsoSegments(&gso)],
            MsgFlags::empty(),
            Some(&dst),
        )
        .unwrap();
        assert_eq!(n, wire.len());
        // Pace the bursts a little so node 2's socket buffer never overflows.
        std::thread::sleep(Duration::from_millis(2));
    }
    sent
}

/// The numbers of worker 0's exit report: (GRO on, Weft packets, coalesced segments,
/// super-packets).
fn exit_report(log: &str) -> (bool, u64, u64, u64) {
    let line = log
        .lines()
        .find(|l| l.contains("worker 0 stopped:"))
        .unwrap_or_else(|| panic!("no exit report in the log:\n{log}"));
    let number_before = |word: &str| -> u64 {
        let at = line
            .find(word)
            .unwrap_or_else(|| panic!("no {word:?} in {line}"));
        line[..at]
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        line.contains("UDP_GRO on"),
        number_before(" Weft packets"),
        number_before(" of them in"),
        number_before(" GRO super-packets"),
    )
}

fn bursts_are_split_into_weft_packets(name: &str, gro: bool) {
    let mut spec = Spec::simple(2, &[(0, 1, 2)]);
    if !gro {
        spec.extra_args.push((2, vec!["--no-gro".into()]));
    }
    let mut o = Overlay::start(name, spec);
    o.wait_link_up(1, 0, Some(0));
    o.wait_link_up(2, 0, Some(0));
    let (region2, _punt2, _inject2) = attach(&o, 2);
    let mut punt = RingConsumer::attach(Arc::new(region2), RingId::Punt(0)).unwrap();
    let mut rx = TestClient::connect(&o.session_socket(2));
    rx.bind(500);

    let sent = send_bursts(&o);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < sent.data.len() && Instant::now() < deadline {
        if let Some(r) = rx.recv(Duration::from_millis(100)) {
            got.push(r);
        }
    }
    let mut controls = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while controls.len() < sent.controls.len() && Instant::now() < deadline {
        punt.pop_burst(64, |meta, bytes| {
            assert_eq!((meta.link, meta.path), (LinkId::new(0), PathId::new(0)));
            let c = ControlRepr::parse(bytes).unwrap();
            assert_eq!(c.body, format!("gro control {}", c.update_seq).as_bytes());
            controls.push(c.update_seq);
        });
        std::thread::sleep(Duration::from_millis(5));
    }

    // Every data segment was delivered, once, in order; nothing else was.
    assert_eq!(
        got.len(),
        sent.data.len(),
        "delivered messages vs data segments sent; node 2: {}",
        o.counters_text(2)
    );
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
        assert_eq!(r.payload, sent.data[i], "message {i}");
        assert_eq!((r.src.get(), r.src_port.0), (1, 400));
    }
    assert_eq!(o.counter(2, Counter::Delivered), sent.data.len() as u64);
    // Every control segment (the short last one of its burst) was punted.
    assert_eq!(controls, sent.controls);
    // The garbage segment is the only drop.
    let c = o.counters(2);
    assert_eq!(
        c.drops[DropReason::UnsupportedVersion(0xEE).index()],
        1,
        "{}",
        o.counters_text(2)
    );
    assert_eq!(c.drops.iter().sum::<u64>(), 1, "{}", o.counters_text(2));
    assert_eq!(c.get(Counter::KernelDrops), 0, "{}", o.counters_text(2));
    // `received` counts Weft packets: every segment, plus node 1's hellos.
    assert!(c.get(Counter::Received) >= sent.segments);

    // The worker's exit report says how the segments arrived.
    assert_eq!(o.stop(2), Some(0));
    let log = o.log(2);
    let (gro_on, packets, coalesced, super_packets) = exit_report(&log);
    eprintln!(
        "{name}: {} segments in {BURSTS} bursts; node 2 reports {packets} Weft packets, \
         {coalesced} coalesced in {super_packets} super-packets",
        sent.segments
    );
    assert_eq!(gro_on, gro, "{log}");
    assert!(packets >= sent.segments, "{log}");
    if gro {
        // Loopback keeps a GSO send whole for a GRO socket: each burst is one super-packet.
        // (Node 1 may coalesce two same-size hellos to one address too, hence at least.)
        assert!(super_packets >= BURSTS as u64, "{log}");
        assert!(coalesced >= sent.segments, "{log}");
    } else {
        assert_eq!((coalesced, super_packets), (0, 0), "{log}");
    }
}

#[test]
fn gro_super_packets_are_handled_segment_by_segment() {
    bursts_are_split_into_weft_packets("gro-on", true);
}

#[test]
fn without_gro_the_same_bursts_arrive_one_datagram_each() {
    bursts_are_split_into_weft_packets("gro-off", false);
}
