//! Authenticated links between real data planes: nodes 1 and 2 share link 0 with a key file.
//! Path 0 from node 1 to node 2 runs through a capturing relay in the test, which keeps a copy
//! of every datagram it passes on and can send a bit-flipped copy of a real packet just ahead
//! of it. The test then sends, from its own socket, forged packets (a fresh packet number and a
//! random tag), bit-flipped and verbatim copies of captured packets: the client gets exactly the
//! real messages, once each, and node 2 counts every one of the others as `bad_tag` or
//! `replayed`. Then a key rotation mid-flow (epoch 1 appended to the key file, later epoch 0
//! removed) loses no message of a paced flow, the packets on the wire switch to epoch 1, and
//! replays of packets captured before the rotation are still refused. A second test replays
//! captured packets from sixteen ports at a node with two workers: each worker refuses them.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::client::TestClient;
use common::{Addrs, NodeSpec, Overlay, Spec};
use weft_shared::DropReason;
use weft_shared::ids::LinkId;
use weft_shared::shm::{AuthStats, Counter, CounterTotals, StatsReader};
use weft_shared::wire::{LINK_FLAG_AUTH, LinkRepr, PacketType};

const KEY0: &str = "0 3f1a6c0de2b94d7788a1c5e0f3b2d4a6\n";
const KEY1: &str = "1 9c4e2b7a11d05f38e6a7b9c0d1e2f3a4\n";

/// A relay that keeps a copy of what it passes on, and can put a bit-flipped copy of the next
/// data packets ahead of them.
struct Capture {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Data packets still to precede with a flipped copy.
    flip_next: Arc<AtomicU64>,
    /// Flipped copies sent.
    flipped: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    fn start(bind: SocketAddr, to: SocketAddr) -> Capture {
        let sock = UdpSocket::bind(bind).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flip_next = Arc::new(AtomicU64::new(0));
        let flipped = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, f, fl, sn) = (
            stop.clone(),
            flip_next.clone(),
            flipped.clone(),
            seen.clone(),
        );
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let pkt = &buf[..n];
                let data = n > 24 && pkt[1] == PacketType::Data.byte();
                if data
                    && f.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| k.checked_sub(1))
                        .is_ok()
                {
                    let mut bad = pkt.to_vec();
                    // A body bit: only the tag can tell.
                    bad[24 + (n - 24) / 2] ^= 0x20;
                    sock.send_to(&bad, to).unwrap();
                    fl.fetch_add(1, Ordering::Relaxed);
                }
                sock.send_to(pkt, to).unwrap();
                let mut seen = sn.lock().unwrap();
                if seen.len() < 200_000 {
                    seen.push(pkt.to_vec());
                }
            }
        });
        Capture {
            addr,
            stop,
            flip_next,
            flipped,
            seen,
            thread: Some(thread),
        }
    }

    /// The captured data packets so far.
    fn data_packets(&self) -> Vec<Vec<u8>> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|p| p[1] == PacketType::Data.byte())
            .cloned()
            .collect()
    }

    /// Everything captured so far (data and hellos).
    fn all_packets(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn drops(o: &Overlay, node: u16, reason: DropReason) -> u64 {
    o.counters(node).drops[reason.index()]
}

/// A tiny deterministic generator for tags and bodies (the seed is printed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Nodes 1 and 2 on link 0, keyed with epoch 0 of `keys/link0.key`, node 1's path 0 through
/// `capture`, node 2 on `node2_cores` (default: the spec's); once both ends have the link up,
/// a client on node 2 bound to port 7 and one on node 1 with a flow from port 8 to it.
fn keyed_pair(
    name: &str,
    capture: &Capture,
    node2_cores: Option<Vec<u16>>,
) -> (
    Overlay,
    TestClient,
    TestClient,
    weft_shared::session::FlowHandle,
) {
    let mut spec = Spec::simple(2, &[(0, 1, 2)]);
    if let Some(cores) = node2_cores {
        spec.nodes[1] = NodeSpec { id: 2, cores };
    }
    spec.extra_args = vec![(1, vec!["--remote".into(), format!("0:0={}", capture.addr)])];
    spec.key_files = vec![(0, "keys/link0.key".into())];
    spec.files = vec![("keys/link0.key".into(), format!("# link 0\n{KEY0}"))];
    let mut o = Overlay::start(name, spec);
    o.publish_fib(1, &[(2, 0)]);
    o.publish_fib(2, &[(1, 0)]);
    o.wait_link_up(1, 0, Some(0));
    o.wait_link_up(2, 0, Some(0));
    let mut rx = TestClient::connect(&o.session_socket(2));
    rx.bind(7);
    let mut tx = TestClient::connect(&o.session_socket(1));
    tx.bind(8);
    let flow = tx.open_flow(8, 2, 7);
    (o, rx, tx, flow)
}

/// Sends `count` paced messages `"{tag}{i}"` on `flow` while a thread collects what `rx`
/// receives; `during(elapsed)` runs between sends. Returns the payloads received.
fn paced_flow(
    tx: &mut TestClient,
    flow: weft_shared::session::FlowHandle,
    mut rx: TestClient,
    tag: &str,
    count: usize,
    pace: Duration,
    mut during: impl FnMut(Duration),
) -> (TestClient, Vec<Vec<u8>>) {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut quiet_since = None::<Instant>;
        loop {
            match rx.recv(Duration::from_millis(20)) {
                Some(r) => {
                    got.push(r.payload);
                    quiet_since = None;
                }
                None if d.load(Ordering::Relaxed) => {
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_millis(500) {
                        break;
                    }
                }
                None => {}
            }
        }
        (rx, got)
    });
    let start = Instant::now();
    for i in 0..count {
        let due = start + pace * i as u32;
        while Instant::now() < due {
            std::thread::sleep(Duration::from_micros(200));
        }
        tx.send(flow, format!("{tag}{i}").as_bytes());
        during(start.elapsed());
    }
    done.store(true, Ordering::Relaxed);
    receiver.join().unwrap()
}

fn expect_exactly(got: &[Vec<u8>], tag: &str, count: usize) {
    let want: BTreeSet<Vec<u8>> = (0..count)
        .map(|i| format!("{tag}{i}").into_bytes())
        .collect();
    let unique: BTreeSet<Vec<u8>> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "a message was delivered twice");
    let missing = want.difference(&unique).count();
    let extra = unique.difference(&want).count();
    assert_eq!(
        (missing, extra),
        (0, 0),
        "{tag}: {} received of {count}",
        got.len()
    );
}

#[test]
fn forged_flipped_and_replayed_packets_are_never_delivered_across_a_rotation() {
    let name = "auth";
    let addrs = Addrs::new(name);
    let seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    println!("seed {seed:#x}");
    let mut rng = Rng(seed | 1);
    let capture = Capture::start(addrs.spare(1), addrs.node(2, 0));
    let (o, rx, mut tx, flow) = keyed_pair(name, &capture, None);
    let key_path = o.dir.join("keys/link0.key");

    // Real traffic, with a flipped copy ahead of 50 of its packets.
    capture.flip_next.store(50, Ordering::Relaxed);
    let (rx, got) = paced_flow(
        &mut tx,
        flow,
        rx,
        "a",
        500,
        Duration::from_millis(1),
        |_| {},
    );
    expect_exactly(&got, "a", 500);
    let flipped_ahead = capture.flipped.load(Ordering::Relaxed);
    assert_eq!(flipped_ahead, 50);
    assert_eq!(
        drops(&o, 2, DropReason::BadTag),
        50,
        "{}",
        o.counters_text(2)
    );
    assert_eq!(drops(&o, 2, DropReason::Replayed), 0);

    // Every captured data packet is AUTH, epoch 0, and hides its payload.
    let before_rotation = capture.data_packets();
    // Node 1 packs the messages of one turn into one datagram, so 500 messages paced 1 ms
    // apart take at most 500 packets, and at least the 50 that were flipped.
    assert!(
        (50..=500).contains(&before_rotation.len()),
        "{} data packets",
        before_rotation.len()
    );
    for p in &before_rotation {
        let (h, _) = LinkRepr::parse(p).unwrap();
        assert!(h.auth && h.key_epoch == 0, "{h:?}");
        assert!(!p.windows(3).any(|w| w == b"a49"), "plaintext on the wire");
    }

    // The attack, from a socket of the test's own.
    let attacker = UdpSocket::bind(addrs.spare(9)).unwrap();
    let target = addrs.node(2, 0);
    // Paced, so a burst of hundreds cannot overflow node 2's receive buffer on a loaded
    // machine (a packet the kernel drops is counted by nobody).
    let send = |p: &[u8]| {
        attacker.send_to(p, target).unwrap();
        std::thread::sleep(Duration::from_micros(100));
    };
    let mut forged = 0u64;
    for p in before_rotation.iter().take(100) {
        // A fresh packet number (so the window lets it through to the tag) and a random tag
        // and body.
        let mut f = p.clone();
        let number = u64::from_be_bytes(f[16..24].try_into().unwrap()) + 1_000_000 + forged;
        f[16..24].copy_from_slice(&number.to_be_bytes());
        let len = f.len();
        for b in &mut f[len - 16..] {
            *b = rng.next() as u8;
        }
        f[30] ^= rng.next() as u8 | 1;
        send(&f);
        forged += 1;
    }
    let mut replays = 0u64;
    for p in before_rotation.iter().take(200) {
        send(p);
        let mut flipped = p.clone();
        let at = 24 + (rng.next() as usize % (p.len() - 24));
        flipped[at] ^= 1 << (rng.next() % 8);
        send(&flipped);
        replays += 2;
    }
    // Hellos captured on the path are refused as replays too. Only recent ones: a hello
    // forwarded before node 2 was listening never reached it, so its replay is
    // indistinguishable from a late original (inside the window, never seen) and is rightly
    // accepted.
    let mut hellos: Vec<Vec<u8>> = capture
        .all_packets()
        .into_iter()
        .filter(|p| p[1] == PacketType::Hello.byte())
        .rev()
        .take(20)
        .collect();
    hellos.reverse();
    for h in &hellos {
        send(h);
        replays += 1;
    }
    // A plaintext packet (AUTH cleared) on the keyed link: its tag is missing.
    let mut stripped = before_rotation[0].clone();
    stripped[2] &= !LINK_FLAG_AUTH & !0x06;
    stripped.truncate(stripped.len() - 16);
    send(&stripped);
    forged += 1;
    std::thread::sleep(Duration::from_millis(300));
    let mut rx = rx;
    assert!(
        rx.recv(Duration::from_millis(300)).is_none(),
        "an attack packet was delivered"
    );
    assert_eq!(
        drops(&o, 2, DropReason::BadTag),
        flipped_ahead + forged,
        "{}",
        o.counters_text(2)
    );
    assert_eq!(
        drops(&o, 2, DropReason::Replayed),
        replays,
        "{}",
        o.counters_text(2)
    );

    // Rotation mid-flow: epoch 1 is appended to the (shared) key file at 1 s, epoch 0 is
    // removed at 4 s, the flow runs 6 s at 1,000 messages a second.
    let mut appended = false;
    let mut removed = false;
    let kp = key_path.clone();
    let (rx, got) = paced_flow(
        &mut tx,
        flow,
        rx,
        "r",
        6_000,
        Duration::from_millis(1),
        |t| {
            if !appended && t >= Duration::from_secs(1) {
                std::fs::write(&kp, format!("# link 0\n{KEY0}{KEY1}")).unwrap();
                appended = true;
            }
            if !removed && t >= Duration::from_secs(4) {
                std::fs::write(&kp, format!("# link 0, rotated\n{KEY1}")).unwrap();
                removed = true;
            }
        },
    );
    expect_exactly(&got, "r", 6_000);
    for n in [1, 2] {
        let log = o.log(n);
        assert!(
            log.contains("epochs [0, 1], sending with Some(")
                && log.contains("epochs [1], sending with Some(1)"),
            "node {n} log:\n{log}"
        );
    }
    let last = capture.data_packets().pop().unwrap();
    assert_eq!(LinkRepr::parse(&last).unwrap().0.key_epoch, 1);
    // What `weftctl show links` shows: both nodes seal with epoch 1, hold 1, heard 1.
    for n in [1, 2] {
        let reader = StatsReader::new(o.region(n));
        let want = Some(AuthStats {
            send_epoch: 1,
            newest_epoch: 1,
            peer_epoch: Some(1),
        });
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut got = None;
        while Instant::now() < deadline {
            got = reader.link(LinkId::new(0).unwrap()).unwrap().auth;
            if got == want {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(got, want, "node {n}");
    }
    assert_eq!(
        drops(&o, 2, DropReason::BadTag),
        flipped_ahead + forged,
        "the rotation cost packets: {}",
        o.counters_text(2)
    );
    assert_eq!(drops(&o, 2, DropReason::Replayed), replays);

    // Replays of packets from before the rotation: the window or the missing key refuses them.
    let refused_before = drops(&o, 2, DropReason::BadTag) + drops(&o, 2, DropReason::Replayed);
    for p in before_rotation.iter().rev().take(100) {
        send(p);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut rx = rx;
    assert!(rx.recv(Duration::from_millis(300)).is_none());
    let refused_after = drops(&o, 2, DropReason::BadTag) + drops(&o, 2, DropReason::Replayed);
    assert_eq!(refused_after - refused_before, 100);
    drop(capture);
}

/// Node 2 runs two workers. The steering program sends node 1's lane to one of them, and a
/// replayed copy from another address or port to either: every copy, on whichever worker, is
/// refused by the link's one shared window, and none is delivered.
#[test]
fn replays_steered_to_either_worker_are_all_refused() {
    let name = "auth-workers";
    let addrs = Addrs::new(name);
    let capture = Capture::start(addrs.spare(1), addrs.node(2, 0));
    let (o, rx, mut tx, flow) = keyed_pair(name, &capture, Some(vec![0, 1]));
    let (rx, got) = paced_flow(
        &mut tx,
        flow,
        rx,
        "w",
        300,
        Duration::from_millis(1),
        |_| {},
    );
    expect_exactly(&got, "w", 300);
    let captured = capture.data_packets();
    assert!(!captured.is_empty());
    assert_eq!(drops(&o, 2, DropReason::Replayed), 0);

    let region = o.region(2);
    let received = |w| CounterTotals::read_worker(&region, w).get(Counter::Received);
    let before = [received(0), received(1)];
    // Sixteen attacker sockets, each on its own port: the steering hash spreads them.
    let attackers: Vec<UdpSocket> = (0..16)
        .map(|_| UdpSocket::bind(addrs.spare(9)).unwrap())
        .collect();
    let target = addrs.node(2, 0);
    let mut replays = 0u64;
    for (i, p) in captured.iter().enumerate() {
        for k in 0..2 {
            attackers[(2 * i + k) % attackers.len()]
                .send_to(p, target)
                .unwrap();
            replays += 1;
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut rx = rx;
    assert!(
        rx.recv(Duration::from_millis(300)).is_none(),
        "a replay was delivered"
    );
    let after = [received(0), received(1)];
    println!(
        "replays {replays}: worker 0 received {}, worker 1 received {}",
        after[0] - before[0],
        after[1] - before[1]
    );
    // Both workers saw replays (so the second one had not seen the originals).
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "{before:?} -> {after:?}"
    );
    assert_eq!(
        drops(&o, 2, DropReason::Replayed),
        replays,
        "{}",
        o.counters_text(2)
    );
    drop(capture);
}
