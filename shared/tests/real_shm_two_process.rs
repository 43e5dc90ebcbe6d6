//! Two-process tests of the shared memory (`docs/shm.md`): the FIB generation protocol across
//! processes, a writer that outlives a sleeping, a stuck and a killed reader, and a million
//! descriptors through a punt ring with the eventfd wakeup.
//!
//! The test binary re-executes itself as the child (`--exact <child test> --nocapture`) with
//! `WEFT_SHM_TEST_ROLE` and `WEFT_SHM_TEST_NAME` set; the child tests return at once when the
//! role is absent, so a normal run only runs the parents. Children report progress as
//! `MARK:<word> ...` lines on stdout, are killed and reaped by a guard, and every named region is
//! unlinked by a guard.

#![allow(
    clippy::disallowed_methods,
    reason = "real processes: the driver reads the clock"
)]

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant as Clock};

use weft_shared::ids::{GroupId, LinkId, NodeId};
use weft_shared::shm::fdpass::{recv_fds, send_fds};
use weft_shared::shm::fib::{
    ANYCAST_CAPACITY, AnycastRoute, FibBuilder, FibError, LinkMask, MULTICAST_CAPACITY,
    UnicastRoute,
};
use weft_shared::shm::{
    EventFd, FibReader, FibView, FibWriter, Notify, PacketMeta, PublishError, PushError,
    RingConsumer, RingId, RingProducer, ShmLayout, ShmRegion,
};
use weft_shared::time::Instant;

const ROLE: &str = "WEFT_SHM_TEST_ROLE";
const NAME: &str = "WEFT_SHM_TEST_NAME";

// ---------------------------------------------------------------------------------------------
// Harness

/// Kills and reaps the child when dropped, so a failing parent never leaves one behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Unlinks a named region (or removes a socket file) when dropped.
struct Cleanup(Box<dyn Fn()>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn unique(test: &str) -> String {
    format!("weft-test-{}-{test}", std::process::id())
}

fn named_region(test: &str) -> (Arc<ShmRegion>, Cleanup) {
    let name = unique(test);
    let region = ShmRegion::create_named(&name, &ShmLayout::default(), 0x5eed).expect("create");
    let cleanup = Cleanup(Box::new(move || {
        let _ = ShmRegion::unlink_named(&name);
    }));
    (Arc::new(region), cleanup)
}

/// Starts the child test `child_test` in a new process of this binary; its stdout lines go to
/// the returned channel.
fn spawn(child_test: &str, role: &str, name: &str) -> (ChildGuard, mpsc::Receiver<String>) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(NAME, name)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("child: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (ChildGuard(child), rx)
}

/// Waits for a `MARK:<word>` line and returns the rest of it.
fn wait_mark(rx: &mpsc::Receiver<String>, word: &str, timeout: Duration) -> String {
    let deadline = Clock::now() + timeout;
    let tag = format!("MARK:{word}");
    loop {
        let left = deadline.saturating_duration_since(Clock::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|e| {
            unreachable!("no {tag} from the child within {timeout:?}: {e}");
        });
        if let Some(at) = line.find(&tag) {
            return line[at + tag.len()..].trim().to_owned();
        }
    }
}

/// `Some((role, name))` in a child process started for `want`.
fn child_role(want: &str) -> Option<String> {
    let role = std::env::var(ROLE).ok()?;
    (role == want).then(|| std::env::var(NAME).expect("child needs WEFT_SHM_TEST_NAME"))
}

fn mark(word: &str, rest: impl std::fmt::Display) {
    println!("\nMARK:{word} {rest}");
}

fn now(start: Clock) -> Instant {
    Instant::from_nanos(start.elapsed().as_nanos() as u64)
}

// ---------------------------------------------------------------------------------------------
// FIB contents: every entry encodes the generation that wrote it.

fn node(n: u16) -> NodeId {
    NodeId::new(n).expect("node id")
}

fn link(l: u64) -> LinkId {
    LinkId::new((l % 512) as u16).expect("link id")
}

fn unicast(g: u64, n: u16) -> UnicastRoute {
    UnicastRoute {
        next_hop: link(g + u64::from(n)),
        metric_us: g as u32,
    }
}

fn mc_key(i: usize) -> (GroupId, NodeId) {
    (GroupId(i as u32 / 64), node((i % 64) as u16 + 1))
}

/// The mask of entry `i` in generation `g`: 1024 distinct masks per generation (a table holds
/// at most `MULTICAST_MASKS` distinct ones; keys with equal masks share one).
fn mc_mask(g: u64, i: usize) -> LinkMask {
    let i = (i % 1024) as u64;
    LinkMask::from_words([
        g,
        i,
        g ^ i,
        g.rotate_left(17),
        !g,
        g * 3 + i,
        g << 9,
        u64::MAX - g,
    ])
}

fn any_group(j: usize) -> GroupId {
    GroupId(j as u32 * 3 + 1)
}

fn anycast(g: u64, j: usize) -> AnycastRoute {
    let k = g + j as u64;
    let next_hop = if k % 5 == 0 {
        None
    } else {
        Some(link(g * 3 + j as u64))
    };
    AnycastRoute {
        target: node((k % 1023) as u16 + 1),
        next_hop,
        metric_us: g as u32,
    }
}

fn fill_unicast(b: &mut FibBuilder<'_>, g: u64) {
    for n in 1..=1023 {
        b.set_unicast(node(n), unicast(g, n));
    }
}

fn fill_all(b: &mut FibBuilder<'_>, g: u64) -> Result<(), FibError> {
    fill_unicast(b, g);
    for i in 0..MULTICAST_CAPACITY {
        let (group, source) = mc_key(i);
        b.insert_multicast(group, source, &mc_mask(g, i), (g + i as u64) % 2 == 0)?;
    }
    for j in 0..ANYCAST_CAPACITY {
        b.insert_anycast(any_group(j), anycast(g, j))?;
    }
    Ok(())
}

/// Checks that every unicast entry (and, with `all`, every multicast and anycast entry) of the
/// view comes from the view's generation; names the first entry that does not.
fn check_view(view: &FibView<'_>, all: bool) -> Result<(), String> {
    let g = view.generation().0;
    if view.table().generation().0 != g {
        let held = view.table().generation();
        return Err(format!("buffer holds {held} but the control word says {g}"));
    }
    for n in 1..=1023 {
        let got = view.unicast(node(n));
        if got != (g > 0).then(|| unicast(g, n)) {
            return Err(format!(
                "view {g}: unicast {n} is {got:?} (metric = its generation)"
            ));
        }
    }
    if !all {
        return Ok(());
    }
    for i in 0..MULTICAST_CAPACITY {
        let (group, source) = mc_key(i);
        let got = view.multicast(group, source);
        let ok = match got {
            None => g == 0,
            Some(r) => r.links == &mc_mask(g, i) && r.local_delivery == ((g + i as u64) % 2 == 0),
        };
        if !ok {
            let from = got.map(|r| r.links.words()[0]);
            return Err(format!(
                "view {g}: multicast {i} comes from generation {from:?}"
            ));
        }
    }
    for j in 0..ANYCAST_CAPACITY {
        let got = view.anycast(any_group(j));
        if got != (g > 0).then(|| anycast(g, j)) {
            return Err(format!("view {g}: anycast {j} is {got:?}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (a) A writer publishing full generations continuously, a reader checking each section.

#[test]
fn fib_generations_stay_consistent_across_processes() {
    let (region, _cleanup) = named_region("fib-consistent");
    let mut writer = FibWriter::attach(region.clone(), Duration::from_secs(2)).expect("writer");
    let name = region.name().expect("named").to_owned();
    let (mut child, rx) = spawn("child_fib_reader", "fib-reader", &name);
    let child_pid = child.0.id();
    wait_mark(&rx, "reading", Duration::from_secs(10));
    let start = Clock::now();
    let (mut published, mut busy) = (0u64, 0u64);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "reader did not finish"
        );
        let next = writer.generation().0 + 1;
        match writer.try_publish(now(start), |b| fill_all(b, next)) {
            Ok(_) => published += 1,
            Err(PublishError::ReadersBusy { pid, .. }) => {
                assert_eq!(pid, child_pid);
                busy += 1;
                std::thread::yield_now();
            }
            Err(e) => unreachable!("publish failed: {e}"),
        }
    };
    println!("published {published} full generations, {busy} busy retries");
    assert!(status.success(), "reader child failed: {status}");
    let summary = wait_mark(&rx, "done", Duration::from_secs(1));
    println!("reader: {summary}");
    assert!(published >= 10, "only {published} generations published");
}

#[test]
fn child_fib_reader() {
    let Some(name) = child_role("fib-reader") else {
        return;
    };
    let region = Arc::new(ShmRegion::open_named(&name).expect("open"));
    region.check_config_hash(0x5eed).expect("same config");
    let mut reader = FibReader::register(region, 0).expect("register");
    mark("reading", "");
    let start = Clock::now();
    let (mut sections, mut distinct, mut last, mut verified) = (0u64, 0u64, u64::MAX, 0u64);
    while start.elapsed() < Duration::from_secs(2) {
        let view = reader.enter();
        if let Err(e) = check_view(&view, true) {
            mark("inconsistent", &e);
            unreachable!("{e}");
        }
        if sections % 8 == 0 {
            view.verify().expect("checksum and counts");
            verified += 1;
        }
        if view.generation().0 != last {
            (last, distinct) = (view.generation().0, distinct + 1);
        }
        sections += 1;
        if sections % 3 == 0 {
            reader.quiesce();
        }
    }
    mark(
        "done",
        format!("{sections} sections, {distinct} generations, {verified} verified"),
    );
    assert!(distinct >= 5, "saw only {distinct} generations");
}

// ---------------------------------------------------------------------------------------------
// (b) The writer keeps publishing past a sleeping reader, reports a stuck one without touching
// its buffer, and reclaims it once it is killed.

#[test]
fn fib_writer_outlives_sleeping_stuck_and_killed_readers() {
    let (region, _cleanup) = named_region("fib-killed");
    let stuck_after = Duration::from_millis(200);
    let mut writer = FibWriter::attach(region.clone(), stuck_after).expect("writer");
    let name = region.name().expect("named").to_owned();
    let (mut child, rx) = spawn("child_fib_sleeper", "fib-sleeper", &name);
    let child_pid = child.0.id();
    let start = Clock::now();
    let publish = |writer: &mut FibWriter| {
        let next = writer.generation().0 + 1;
        writer.try_publish(now(start), |b| {
            fill_unicast(b, next);
            Ok(())
        })
    };

    // Phase 1: the reader is quiescent and asleep; every publish goes through.
    wait_mark(&rx, "sleeping", Duration::from_secs(10));
    let phase = Clock::now();
    let mut asleep = 0u64;
    while phase.elapsed() < Duration::from_millis(400) {
        publish(&mut writer).expect("a quiescent reader never blocks the writer");
        asleep += 1;
    }
    assert!(
        asleep >= 20,
        "only {asleep} generations while the reader slept"
    );

    // Phase 2: the reader holds generation g forever. One more generation fits in the other
    // buffer, then the writer reports it busy and, after stuck_after, stuck.
    let g: u64 = wait_mark(&rx, "stuck", Duration::from_secs(10))
        .parse()
        .expect("generation");
    let phase = Clock::now();
    let (mut ok, mut stuck_reports) = (0u64, 0u64);
    while phase.elapsed() < Duration::from_millis(600) {
        match publish(&mut writer) {
            Ok(_) => ok += 1,
            Err(PublishError::ReadersBusy {
                worker: 0,
                pid,
                epoch,
                ..
            }) => {
                assert_eq!((pid, epoch), (child_pid, g));
            }
            Err(PublishError::ReaderStuck {
                worker: 0,
                pid,
                epoch,
                waited,
                ..
            }) => {
                assert_eq!((pid, epoch), (child_pid, g));
                assert!(waited >= stuck_after);
                stuck_reports += 1;
            }
            Err(e) => unreachable!("unexpected: {e}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        ok <= 1,
        "published {ok} generations over a stuck reader's buffer"
    );
    assert!(writer.generation().0 <= g + 1);
    assert!(
        stuck_reports > 0,
        "a reader stuck for 600 ms was never reported"
    );
    assert!(
        child.0.try_wait().expect("try_wait").is_none(),
        "reader saw its buffer change"
    );

    // Phase 3: SIGKILL the reader mid-read; the writer reclaims its slot and carries on.
    child.0.kill().expect("kill");
    child.0.wait().expect("reap");
    let phase = Clock::now();
    let mut after_kill = 0u64;
    while phase.elapsed() < Duration::from_millis(400) {
        publish(&mut writer).expect("a dead reader's slot is reclaimed");
        after_kill += 1;
    }
    assert!(
        after_kill >= 20,
        "only {after_kill} generations after the kill"
    );
    let slot = writer.readers().next().expect("slot 0");
    assert_eq!((slot.pid, slot.epoch), (0, None), "slot 0 reclaimed");
    println!("{asleep} generations while asleep, {ok} over stuck, {after_kill} after the kill");
}

#[test]
fn child_fib_sleeper() {
    let Some(name) = child_role("fib-sleeper") else {
        return;
    };
    let region = Arc::new(ShmRegion::open_named(&name).expect("open"));
    let mut reader = FibReader::register(region, 0).expect("register");
    for _ in 0..50 {
        check_view(&reader.enter(), false).expect("consistent");
        reader.quiesce();
    }
    mark("sleeping", "");
    std::thread::sleep(Duration::from_secs(1));
    let view = reader.enter();
    check_view(&view, false).expect("consistent");
    mark("stuck", view.generation());
    // Stuck mid-read: keep checking that the buffer under us never changes, until killed.
    let start = Clock::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Err(e) = check_view(&view, false) {
            mark("overwritten", &e);
            unreachable!("{e}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------------------------
// (c) One million descriptors through a punt ring, in order, with the consumer sleeping on the
// eventfd whenever the ring runs empty. The memfd and eventfd cross over SCM_RIGHTS.

const RING_TOTAL: u64 = 1_000_000;

fn ring_packet(n: u64) -> (PacketMeta, Vec<u8>) {
    let meta = PacketMeta {
        link: LinkId::new((n % 512) as u16),
        path: weft_shared::ids::PathId::new((n % 8) as u8),
        flags: n as u16,
    };
    let len = 8 + (n % 120) as usize;
    let mut bytes: Vec<u8> = (0..len)
        .map(|i| (n as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect();
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    (meta, bytes)
}

#[test]
fn punt_ring_carries_a_million_descriptors_in_order() {
    let region = Arc::new(ShmRegion::create_memfd(&ShmLayout::default(), 0x5eed).expect("memfd"));
    let event = EventFd::new().expect("eventfd");
    let mut consumer = RingConsumer::attach(region.clone(), RingId::Punt(0)).expect("consumer");
    let path = std::env::temp_dir().join(format!("{}.sock", unique("rings")));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind");
    let sock_path = path.clone();
    let _cleanup = Cleanup(Box::new(move || {
        let _ = std::fs::remove_file(&sock_path);
    }));
    let (child, rx) = spawn(
        "child_ring_producer",
        "ring-producer",
        path.to_str().expect("utf8"),
    );
    listener.set_nonblocking(true).expect("nonblocking");
    let start = Clock::now();
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "child never connected"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => unreachable!("accept: {e}"),
        }
    };
    send_fds(&stream, &[region.fd(), event.as_fd()]).expect("send fds");

    let (mut expect, mut sleeps) = (0u64, 0u64);
    while expect < RING_TOTAL {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stalled at {expect}"
        );
        let n = consumer.pop_burst(64, |meta, bytes| {
            let (want_meta, want_bytes) = ring_packet(expect);
            assert_eq!(meta, want_meta, "descriptor {expect}");
            assert_eq!(bytes, &want_bytes[..], "payload {expect}");
            expect += 1;
        });
        if n == 0 && consumer.prepare_sleep() {
            sleeps += 1;
            let woke = event.wait(Some(Duration::from_secs(5))).expect("wait");
            assert!(
                woke,
                "lost wakeup at {expect}: the producer never signalled"
            );
            consumer.finish_sleep();
        }
    }
    let summary = wait_mark(&rx, "done", Duration::from_secs(10));
    let mut child = child;
    let status = child.0.wait().expect("wait child");
    assert!(status.success(), "producer child failed: {status}");
    assert_eq!(consumer.corrupt(), 0);
    println!("consumer slept {sleeps} times; producer: {summary}");
    assert!(sleeps >= 5, "wakeup path barely exercised: {sleeps} sleeps");
}

#[test]
fn child_ring_producer() {
    let Some(path) = child_role("ring-producer") else {
        return;
    };
    let stream = UnixStream::connect(&path).expect("connect");
    let mut fds = recv_fds(&stream).expect("recv fds").into_iter();
    let (Some(shm), Some(ev)) = (fds.next(), fds.next()) else {
        unreachable!("expected the memfd and the eventfd");
    };
    let region = Arc::new(ShmRegion::from_fd(shm).expect("attach memfd"));
    let event = EventFd::from_fd(ev);
    let mut producer = RingProducer::attach(region, RingId::Punt(0)).expect("producer");
    let oversized = vec![0u8; 4096];
    assert!(matches!(
        producer.stage(PacketMeta::default(), &oversized),
        Err(PushError::Oversized { len: 4096, .. })
    ));
    let (mut n, mut wakeups, mut full) = (0u64, 0u64, 0u64);
    while n < RING_TOTAL {
        let mut was_full = false;
        // A burst of up to 32, one publish; stop early at every 100,000th packet.
        while n < RING_TOTAL && producer.staged() < 32 {
            let (meta, bytes) = ring_packet(n);
            match producer.stage(meta, &bytes) {
                Ok(()) => n += 1,
                Err(PushError::Full) => {
                    (full, was_full) = (full + 1, true);
                    break;
                }
                Err(e) => unreachable!("{e}"),
            }
            if n % 100_000 == 0 {
                break;
            }
        }
        if producer.publish() == Notify::NeedsWakeup {
            wakeups += 1;
            event.notify().expect("notify");
        }
        if n % 100_000 == 0 {
            // Pause so the consumer drains the ring and goes to sleep on the eventfd.
            std::thread::sleep(Duration::from_millis(20));
        } else if was_full {
            std::thread::yield_now();
        }
    }
    mark("done", format!("{wakeups} wakeups sent, {full} full rings"));
}
