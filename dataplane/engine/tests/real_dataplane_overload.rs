//! Overload: floods of data far beyond what node 2 can handle, aimed at node 2's ISP-a address
//! (where its path-0 hellos arrive too), for 3 s. The senders offer data packets with GSO (64
//! packets of 540 bytes per `sendmsg`); each is for node 9, which node 2 has no route to: parsed,
//! looked up and dropped (`no_route`). The flooding threads run on node 2's core.
//!
//! Each run checks that the overload is real: the kernel drops a good part of the offer at node
//! 2's sockets (read from `/proc/net/udp`, independently of the data plane, and matched against
//! node 2's `kernel_drops`), in every 250 ms of a sustained flood, and every offered packet is
//! either handled by node 2 or dropped there. Then it checks that the link survives: link 0 (active path 0) and both its paths are
//! up on both nodes in every 5 ms sample, the link's last state change (the latest of its
//! paths') is still the one from before the flood, node 2 kept counting hellos on path 0 and
//! lost none of them, and node 2's control sockets dropped nothing (its exit report).
//!
//! What makes this hold (docs/dataplane.md, "Sockets and steering"): node 2's reuseport program
//! puts hellos on the interface's control socket, which the flood never reaches, and worker 0
//! reads it with a buffer ring of its own and handles it first each turn. Before that design,
//! hellos shared the data socket: a pulsed flood that let the socket drain kept the link up, a
//! sustained one cost 20-50 % of the hellos (`--no-gro`) and now and then a path.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Overlay, Spec};
use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
use weft_proto::forward::LinkSender;
use weft_shared::DropReason;
use weft_shared::ids::{FlowId, Incarnation, LinkId, NodeId, PathId, Port};
use weft_shared::shm::{Counter, LinkState, LinkStats, StatsReader};
use weft_shared::wire::{DataRepr, Delivery, LinkProto, OverlayRepr, Route, Strikes};

/// How long the flood lasts at most.
const FLOOD: Duration = Duration::from_secs(3);
/// The pulsed flood: this long on, then this long off, and again. The quiet part lets node 2's
/// socket drain: at about 4 million packets a second it empties in under 10 ms.
const PULSE: Duration = Duration::from_millis(50);
/// The most data packets offered in all (a bound in case the machine is much faster).
const MAX_OFFERED: u64 = 50_000_000;
/// Data packets per GSO send.
const PER_SEND: usize = 64;
/// A sustained flood makes node 2's sockets drop datagrams in every window of this length.
const WINDOW: Duration = Duration::from_millis(250);

/// Sum of the `drops` column of `/proc/net/udp` over the sockets bound to `addr` (IPv4): the
/// kernel's own count of datagrams dropped at node 2's sockets, read without the data plane.
fn proc_udp_drops(addr: SocketAddr) -> u64 {
    let IpAddr::V4(ip) = addr.ip() else {
        panic!("IPv4 only")
    };
    // The address is printed as the raw big-endian word read as a host (little-endian) u32.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(ip.octets()),
        addr.port()
    );
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let mut found = false;
    let mut drops = 0;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&local.as_str()) {
            found = true;
            drops += fields.last().unwrap().parse::<u64>().unwrap();
        }
    }
    assert!(
        found,
        "no socket bound to {addr} ({local}) in /proc/net/udp"
    );
    drops
}

/// Pins the calling thread to node 2's core (Spec::simple puts node 2 on core 1). The flood is to
/// fill node 2's sockets, not to take the CPU from everything else: on 2 cores, flooders free to
/// run anywhere (with the loopback receive work they do in their own context) can leave node 1's
/// worker unscheduled for longer than a path's dead interval (110 ms here), which tests the
/// scheduler, not the data plane. On node 2's core they take about two thirds of its time, so
/// node 2 handles much less than they offer, and node 1 and the test keep the other core.
fn pin_to_node2_core() {
    let core = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.id == 1);
    if !core.is_some_and(core_affinity::set_for_current) {
        eprintln!("could not pin a flooder to core 1; it runs unpinned");
    }
}

/// One flood packet: data from node 1 for node 9.
fn flood_packet() -> Vec<u8> {
    let mut sender = LinkSender::new(NodeId::new(1).unwrap(), Incarnation(42), 3);
    let payload = [0u8; 512];
    let data = DataRepr {
        overlay: OverlayRepr {
            route: Route::Unicast(NodeId::new(9).unwrap()),
            ttl: 8,
            link_proto: LinkProto::BestEffort,
            delivery: Delivery::AsSoonAsOrdered,
            priority: 0,
            strikes: Strikes::NONE,
            src: NodeId::new(1).unwrap(),
            src_port: Port(1),
            dst_port: Port(1),
            src_incarnation: Incarnation(42),
            flow: FlowId(1),
            seq: 0,
            deadline_us: None,
            age_us: 0,
        },
        fragment: None,
        payload: &payload,
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

/// Link 0 and its path 0 as a node sees them.
fn link_and_path(r: &StatsReader) -> (LinkStats, LinkStats) {
    let (link, path) = (LinkId::new(0).unwrap(), PathId::new(0).unwrap());
    (r.link(link).unwrap(), r.path(link, path).unwrap())
}

#[test]
fn a_pulsed_data_flood_that_overflows_the_socket_does_not_take_the_link_down() {
    let r = flood("overload", true, 1, true);
    r.assert_link_survived();
}

/// A flood that keeps node 2's data socket full, at the default (GRO) setting: every burst is one
/// super-packet of 64 segments.
#[test]
fn a_sustained_gro_flood_does_not_take_the_link_down() {
    let r = flood("overload-gro", true, 2, false);
    r.assert_link_survived();
}

/// The same at a node started with `--no-gro`: each data packet is a datagram of its own, about
/// as small as a hello. On a shared socket this cost 20-50 % of the hellos.
#[test]
fn a_sustained_no_gro_flood_does_not_take_the_link_down() {
    let r = flood("overload-nogro", false, 2, false);
    r.assert_link_survived();
}

/// What one flood did to the link.
struct Outcome {
    /// Node 2's loss figure for path 0 after the flood.
    loss_ppm: u32,
    /// Hellos node 2 counted on path 0 during the flood.
    hellos: u64,
    /// Seconds the flood lasted.
    seconds: f64,
    /// Samples in which either node had link 0 or its path 0 down, and the first of them.
    down_samples: u32,
    first_down: Option<String>,
    /// Link 0 and path 0 on both nodes before and after.
    before: [(LinkStats, LinkStats); 2],
    after: [(LinkStats, LinkStats); 2],
    /// What node 2's workers said in their exit reports: datagrams the kernel dropped at the
    /// data sockets and at the control sockets.
    data_socket_drops: u64,
    control_socket_drops: u64,
}

impl Outcome {
    fn assert_link_survived(&self) {
        assert_eq!(
            self.down_samples,
            0,
            "{}",
            self.first_down.as_deref().unwrap_or("")
        );
        // No flap between samples either: the last state change is the one from before.
        for (i, (b, a)) in self.before.iter().zip(&self.after).enumerate() {
            assert_eq!(
                (b.0.last_change, b.1.last_change),
                (a.0.last_change, a.1.last_change),
                "node {}: link 0 or path 0 changed state during the flood: before {b:?}, after \
                 {a:?}",
                i + 1
            );
            assert_eq!((a.0.state, a.1.state), (LinkState::Up, LinkState::Up));
        }
        // Node 2 kept hearing node 1's hellos (about 100 a second on path 0 when none is lost)
        // and lost none of them.
        assert!(
            self.hellos >= (self.seconds * 50.0) as u64,
            "node 2 heard only {} hellos on path 0 in {:.1} s",
            self.hellos,
            self.seconds
        );
        assert_eq!(self.loss_ppm, 0, "node 2 lost hellos on path 0");
        // The data sockets overflowed; the control sockets never did.
        assert!(
            self.data_socket_drops > 0,
            "node 2's data sockets dropped nothing"
        );
        assert_eq!(
            self.control_socket_drops, 0,
            "node 2's control sockets dropped"
        );
    }
}

/// Sums the `data sockets N` and `control sockets N` figures of the workers' exit reports in a
/// node's log.
fn exit_report_drops(log: &str) -> (u64, u64) {
    let figure = |line: &str, key: &str| -> u64 {
        line.split(key)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .map_or(0, |n| n.parse().unwrap())
    };
    let reports: Vec<&str> = log.lines().filter(|l| l.contains(" stopped: ")).collect();
    assert!(!reports.is_empty(), "no exit report in the log:\n{log}");
    reports.iter().fold((0, 0), |(d, c), l| {
        (
            d + figure(l, "data sockets "),
            c + figure(l, "control sockets "),
        )
    })
}

/// Floods node 2 (started with `--no-gro` unless `gro`) from `flooders` threads, in pulses or
/// without pause, checks that the overload was real and tells what happened to the link.
fn flood(name: &str, gro: bool, flooders: u8, pulsed: bool) -> Outcome {
    let mut spec = Spec::simple(2, &[(0, 1, 2)]);
    if !gro {
        spec.extra_args.push((2, vec!["--no-gro".into()]));
    }
    let mut o = Overlay::start(name, spec);
    o.publish_fib(1, &[(2, 0)]);
    o.publish_fib(2, &[(1, 0)]);
    o.wait_link_up(1, 0, Some(0));
    o.wait_link_up(2, 0, Some(0));
    let target = o.addrs.node(2, 0);
    let readers = [StatsReader::new(o.region(1)), StatsReader::new(o.region(2))];
    // Let the link settle (RTT, loss), then take the "before" picture.
    std::thread::sleep(Duration::from_millis(300));
    let before = [link_and_path(&readers[0]), link_and_path(&readers[1])];
    let proc_before = proc_udp_drops(target);
    let kernel_before = o.counter(2, Counter::KernelDrops);

    let packet = flood_packet();
    let wire = packet.repeat(PER_SEND);
    let segment = u16::try_from(packet.len()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let offered = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..flooders)
        .map(|k| {
            let sock = UdpSocket::bind(o.addrs.spare(1 + k)).unwrap();
            let (stop, offered, wire) = (stop.clone(), offered.clone(), wire.clone());
            std::thread::spawn(move || {
                pin_to_node2_core();
                let dst = SockaddrStorage::from(target);
                let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) && offered.load(Ordering::Relaxed) < MAX_OFFERED
                {
                    let pulse = start.elapsed().as_millis() / PULSE.as_millis();
                    if pulsed && pulse % 2 == 1 {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    let iov = [IoSlice::new(&wire)];
                    let sent =
                        sendmsg(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&dst));
                    if sent.is_ok() {
                        offered.fetch_add(PER_SEND as u64, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let start = Instant::now();
    let mut samples = 0;
    let (mut down_samples, mut first_down) = (0, None);
    // Windows of the flood, and those in which node 2's sockets dropped datagrams.
    let (mut windows, mut overflowing) = (0, 0);
    let (mut window_start, mut window_drops) = (Instant::now(), proc_before);
    while start.elapsed() < FLOOD && !flooders.iter().any(|f| f.is_finished()) {
        if window_start.elapsed() >= WINDOW {
            let drops = proc_udp_drops(target);
            windows += 1;
            overflowing += u32::from(drops > window_drops);
            (window_start, window_drops) = (Instant::now(), drops);
        }
        let now = [link_and_path(&readers[0]), link_and_path(&readers[1])];
        for (i, (link, path)) in now.iter().enumerate() {
            // Path 1 (ISP b, another socket) must not suffer from the flood either.
            let path1 = readers[i]
                .path(LinkId::new(0).unwrap(), PathId::new(1).unwrap())
                .unwrap();
            let up = (link.state, link.active_path, path.state, path1.state)
                == (LinkState::Up, PathId::new(0), LinkState::Up, LinkState::Up);
            if !up {
                down_samples += 1;
                first_down.get_or_insert_with(|| {
                    format!(
                        "node {} lost link 0, its path 0 or its path 1 after {:?}: path 0 on \
                         node 1 {:?}, on node 2 {:?}; path 1 here {path1:?}; node 2: {}",
                        i + 1,
                        start.elapsed(),
                        now[0].1,
                        now[1].1,
                        o.counters_text(2)
                    )
                });
            }
        }
        samples += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Node 2 writes its statistics and reads its socket drop counter every 100 ms.
    std::thread::sleep(Duration::from_millis(300));
    let after = [link_and_path(&readers[0]), link_and_path(&readers[1])];

    let offered = offered.load(Ordering::Relaxed);
    let proc_drops = proc_udp_drops(target) - proc_before;
    let kernel_drops = o.counter(2, Counter::KernelDrops) - kernel_before;
    let handled = o.counters(2).drops[DropReason::NoRoute.index()];
    let (hellos_before, hellos_after) = (before[1].1.hellos_received, after[1].1.hellos_received);
    eprintln!(
        "{name}: {offered} data packets offered in {elapsed:.1} s ({:.0}/s); node 2 handled \
         {handled} ({:.0}/s), the kernel dropped {proc_drops} at its socket (kernel_drops \
         {kernel_drops}); path 0 on node 2: {} hellos received during the flood, loss {} ppm, \
         RTT {} us; link down in {down_samples} of {samples} samples; socket drops in \
         {overflowing} of {windows} windows of {WINDOW:?}",
        offered as f64 / elapsed,
        handled as f64 / elapsed,
        hellos_after - hellos_before,
        after[1].1.loss_ppm,
        after[1].1.rtt_us,
    );
    // The flood really overloaded node 2: the kernel dropped a good part of the offer at its
    // socket (more than a tenth), and node 2 handled the rest. The kernel counts a GRO
    // super-packet dropped whole once. A sustained flood kept the socket full: it dropped in every
    // window.
    let per_drop = if gro { PER_SEND as u64 } else { 1 };
    if !pulsed {
        assert!(
            windows >= 8 && overflowing == windows,
            "node 2's sockets dropped datagrams in only {overflowing} of {windows} windows of \
             {WINDOW:?}: not a sustained overload; {}",
            o.counters_text(2)
        );
    }
    assert!(
        proc_drops * per_drop > offered / 10,
        "the flood did not overload node 2: {proc_drops} x {per_drop} of {offered} dropped at its \
         socket; {}",
        o.counters_text(2)
    );
    let unaccounted = offered.abs_diff(handled + proc_drops * per_drop);
    assert!(
        unaccounted <= offered / 1000,
        "{offered} offered, {handled} handled, {proc_drops} x {per_drop} dropped at the socket"
    );
    // The data plane read the same counter.
    assert!(
        kernel_drops >= proc_drops,
        "kernel_drops {kernel_drops} < /proc/net/udp drops {proc_drops}"
    );
    // Stop node 2 for its workers' exit reports (each socket kind's drops).
    assert_eq!(
        o.stop(2),
        Some(0),
        "node 2 did not stop cleanly:\n{}",
        o.log(2)
    );
    let log = o.log(2);
    let (data_socket_drops, control_socket_drops) = exit_report_drops(&log);
    eprintln!(
        "{name}: node 2's exit reports: {data_socket_drops} drops at the data sockets, {control_socket_drops} at the control sockets"
    );
    Outcome {
        loss_ppm: after[1].1.loss_ppm,
        hellos: hellos_after - hellos_before,
        seconds: elapsed,
        down_samples,
        first_down,
        before,
        after,
        data_socket_drops,
        control_socket_drops,
    }
}
