//! A bench for `weft-linkem` tests: one relayed path between two plain UDP sockets standing
//! in for node A and node B, on the test's own loopback block, with a temp directory and a
//! guard for the relay process, and a paced, timestamped stream through it.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    reason = "shared by several test binaries; tests fail loudly"
)]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{setsockopt, sockopt};
use weft_tests::linkem::process::LinkemProcess;
use weft_tests::overlay::Addrs;

/// The relay binary.
pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft-linkem"))
}

/// A per-test temporary directory, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("weft-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Node A's and node B's sockets and one relay between them.
pub(crate) struct Bench {
    /// The relay (path `p0`).
    pub(crate) relay: LinkemProcess,
    /// `[node A, node B]`.
    pub(crate) nodes: [UdpSocket; 2],
    /// `[A side, B side]` of the relay.
    pub(crate) sides: [SocketAddr; 2],
    /// The test's addresses.
    pub(crate) addrs: Addrs,
    origin: Instant,
    /// Dropped last: the relay's socket and log live there.
    pub(crate) dir: TempDir,
}

/// One datagram that came through.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    /// Its sequence number.
    pub(crate) seq: u64,
    /// When it was sent, after the bench's origin.
    pub(crate) sent_offset: Duration,
    /// How long it took.
    pub(crate) delay: Duration,
    /// When it arrived.
    pub(crate) at: Instant,
}

impl Arrival {
    pub(crate) fn delay_ms(&self) -> f64 {
        self.delay.as_secs_f64() * 1e3
    }
}

/// What a stream delivered, in arrival order.
pub(crate) struct Received {
    pub(crate) arrivals: Vec<Arrival>,
}

impl Received {
    pub(crate) fn delays_ms(&self) -> Vec<f64> {
        self.arrivals.iter().map(Arrival::delay_ms).collect()
    }

    /// `lost[i]`: datagram `i` of `n` never arrived.
    pub(crate) fn lost_pattern(&self, n: u64) -> Vec<bool> {
        let mut lost = vec![true; n as usize];
        for a in &self.arrivals {
            if let Some(l) = lost.get_mut(a.seq as usize) {
                *l = false;
            }
        }
        lost
    }
}

/// Moves the calling thread to SCHED_FIFO (best effort, via chrt(1)), so that the arrival
/// times it records are not spoiled by other processes on a busy host.
pub(crate) fn realtime_thread() {
    let tid = nix::unistd::gettid().to_string();
    let _ = std::process::Command::new("chrt")
        .args(["-f", "-p", "10", &tid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Runs `attempt(i)` for i = 0, 1, ... until it returns `Ok`, at most `n` times: timing
/// figures on a shared 2-core host can be spoiled by other processes now and then, while a
/// broken relay fails every attempt. Panics with every attempt's message.
pub(crate) fn within_attempts(n: usize, mut attempt: impl FnMut(usize) -> Result<(), String>) {
    let mut failures = Vec::new();
    for i in 0..n {
        match attempt(i) {
            Ok(()) => return,
            Err(e) => {
                eprintln!("attempt {} of {n} failed: {e}", i + 1);
                failures.push(e);
            }
        }
    }
    panic!("every attempt failed: {failures:#?}");
}

/// The `q` quantile of sorted `v`.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

impl Bench {
    /// Starts `weft-linkem relay ARGS` between the two sockets (seed 1 unless ARGS say).
    pub(crate) fn start(name: &str, args: &[&str]) -> Bench {
        let addrs = Addrs::new(name);
        let dir = TempDir::new(name);
        let nodes = [
            UdpSocket::bind(addrs.host(0, 1, 7001)).unwrap(),
            UdpSocket::bind(addrs.host(0, 2, 7002)).unwrap(),
        ];
        for s in &nodes {
            let _ = setsockopt(s, sockopt::RcvBuf, &(4 << 20));
        }
        let sides = [addrs.host(0, 254, 9000), addrs.host(0, 254, 9001)];
        let mut all: Vec<String> = vec![
            "--a-side".into(),
            sides[0].to_string(),
            "--b-side".into(),
            sides[1].to_string(),
            "--to-a".into(),
            nodes[0].local_addr().unwrap().to_string(),
            "--to-b".into(),
            nodes[1].local_addr().unwrap().to_string(),
        ];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let relay = LinkemProcess::start(
            &bin(),
            &all,
            &dir.0.join("linkem.ctl"),
            &dir.0.join("linkem.log"),
        );
        Bench {
            relay,
            nodes,
            sides,
            addrs,
            origin: Instant::now(),
            dir,
        }
    }

    /// Sends `n` datagrams of `size` bytes (≥ 16) from node `from` (0: A, 1: B) to the other,
    /// one every `interval` on a fixed schedule (at most 1 ms early), and collects what arrives until half a second
    /// after the last one went out.
    pub(crate) fn stream(&self, from: usize, n: u64, interval: Duration, size: usize) -> Received {
        let rx = self.nodes[1 - from].try_clone().unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let done_r = done.clone();
        let origin = self.origin;
        let receiver = std::thread::spawn(move || {
            realtime_thread();
            let mut arrivals = Vec::new();
            let mut buf = [0u8; 2048];
            let mut done_at: Option<Instant> = None;
            loop {
                match rx.recv_from(&mut buf) {
                    Ok((len, _)) if len >= 16 => {
                        let at = Instant::now();
                        let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                        let sent = Duration::from_nanos(u64::from_le_bytes(
                            buf[8..16].try_into().unwrap(),
                        ));
                        arrivals.push(Arrival {
                            seq,
                            sent_offset: sent,
                            delay: (at - origin).saturating_sub(sent),
                            at,
                        });
                        if arrivals.len() as u64 == n {
                            break;
                        }
                    }
                    _ => {}
                }
                if done_r.load(Ordering::Acquire) {
                    let t = *done_at.get_or_insert_with(Instant::now);
                    if t.elapsed() > Duration::from_millis(500) {
                        break;
                    }
                }
            }
            arrivals
        });
        let tx = self.nodes[from].try_clone().unwrap();
        let to = self.sides[from];
        let origin = self.origin;
        // Its own real-time thread: a sender preempted between reading the clock and sending
        // would make the datagram look slow.
        let sender = std::thread::spawn(move || {
            realtime_thread();
            let mut payload = vec![0u8; size.max(16)];
            let start = Instant::now();
            for seq in 0..n {
                // Sleep only when a millisecond or more ahead: sleeps are coarse, so faster
                // streams go out in small bursts at the right average rate.
                let due = start + interval * seq as u32;
                let now = Instant::now();
                if due > now + Duration::from_millis(1) {
                    std::thread::sleep(due - now);
                }
                payload[..8].copy_from_slice(&seq.to_le_bytes());
                let sent = (Instant::now() - origin).as_nanos() as u64;
                payload[8..16].copy_from_slice(&sent.to_le_bytes());
                tx.send_to(&payload, to).unwrap();
            }
        });
        sender.join().unwrap();
        done.store(true, Ordering::Release);
        Received {
            arrivals: receiver.join().unwrap(),
        }
    }
}
