//! Helpers of `real_gateway.rs`: a synthetic MPEG-TS stream and its checker, paced UDP
//! senders and receivers, and `weft gateway` child processes with their output.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    unreachable_pub,
    reason = "test helpers fail loudly; their pub items serve real_gateway.rs only"
)]

use std::io::{BufRead as _, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use weft_tests::overlay::bin_dir;

/// Bytes of one MPEG-TS packet.
pub const TS_PACKET: usize = 188;
/// TS packets per datagram, as ffmpeg's `pkt_size=1316` sends them.
pub const TS_PER_DATAGRAM: usize = 7;
/// Bytes of one datagram.
pub const DATAGRAM: usize = TS_PACKET * TS_PER_DATAGRAM;

// ---------------------------------------------------------------------------------------------
// A synthetic MPEG-TS stream

/// Makes datagrams of 7 TS packets of one PID: sync byte 0x47, the PID, payload only, a 4-bit
/// continuity counter that grows by one per packet, and a payload that numbers the datagram
/// and fills the rest from a fixed-seed generator (so any change to a byte is seen).
pub struct TsStream {
    pid: u16,
    cc: u8,
    rng: u64,
    index: u64,
}

impl TsStream {
    pub fn new(pid: u16, seed: u64) -> TsStream {
        TsStream {
            pid,
            cc: 0,
            rng: seed | 1,
            index: 0,
        }
    }

    pub fn next_datagram(&mut self) -> Vec<u8> {
        let mut d = Vec::with_capacity(DATAGRAM);
        for k in 0..TS_PER_DATAGRAM {
            let start = u8::from(k == 0);
            d.push(0x47);
            d.push((start << 6) | ((self.pid >> 8) as u8 & 0x1f));
            d.push(self.pid as u8);
            d.push(0x10 | self.cc); // no scrambling, payload only, continuity counter
            self.cc = (self.cc + 1) & 0x0f;
            let mut payload = [0u8; TS_PACKET - 4];
            payload[..8].copy_from_slice(&self.index.to_be_bytes());
            for b in &mut payload[8..] {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                *b = self.rng as u8;
            }
            d.extend_from_slice(&payload);
        }
        self.index += 1;
        d
    }

    pub fn datagrams(pid: u16, seed: u64, count: usize) -> Vec<Vec<u8>> {
        let mut s = TsStream::new(pid, seed);
        (0..count).map(|_| s.next_datagram()).collect()
    }
}

/// Parses the TS headers of `datagrams` as a receiver would: counts packets without the sync
/// byte, of another PID, or whose continuity counter does not follow the one before.
pub fn ts_errors(datagrams: &[Vec<u8>], pid: u16) -> (usize, usize) {
    let mut bad_headers = 0;
    let mut cc_errors = 0;
    let mut last_cc: Option<u8> = None;
    for d in datagrams {
        if d.len() % TS_PACKET != 0 {
            bad_headers += 1;
            continue;
        }
        for p in d.chunks(TS_PACKET) {
            let p_pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
            if p[0] != 0x47 || p_pid != pid {
                bad_headers += 1;
                continue;
            }
            let cc = p[3] & 0x0f;
            if last_cc.is_some_and(|l| (l + 1) & 0x0f != cc) {
                cc_errors += 1;
            }
            last_cc = Some(cc);
        }
    }
    (bad_headers, cc_errors)
}

/// Sends `datagrams` from a fresh socket to `to`, paced at `rate` per second.
pub fn send_paced(to: SocketAddr, datagrams: &[Vec<u8>], rate: u64) {
    let from = UdpSocket::bind((to.ip(), 0)).unwrap();
    let start = Instant::now();
    for (i, d) in datagrams.iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        assert_eq!(from.send_to(d, to).unwrap(), d.len());
    }
}

/// Receives on `sink` in a thread until `count` datagrams came or nothing came for `idle`.
pub fn receive(sink: UdpSocket, count: usize, idle: Duration) -> JoinHandle<Vec<Vec<u8>>> {
    std::thread::spawn(move || {
        sink.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let mut last = Instant::now();
        while got.len() < count && last.elapsed() < idle {
            if let Ok(n) = sink.recv(&mut buf) {
                got.push(buf[..n].to_vec());
                last = Instant::now();
            }
        }
        got
    })
}

/// The PID of MPEG-TS null packets, which receivers discard: the warm-up datagrams.
pub const NULL_PID: u16 = 0x1fff;

/// Whether a datagram is a warm-up one: its first TS packet has the null PID.
pub fn is_warm_up(d: &[u8]) -> bool {
    d.len() >= 3 && (u16::from(d[1] & 0x1f) << 8 | u16::from(d[2])) == NULL_PID
}

/// A receiving thread that also says how many datagrams it has so far.
pub struct CountingReceiver {
    pub seen: Arc<AtomicUsize>,
    pub handle: JoinHandle<Vec<Vec<u8>>>,
}

impl CountingReceiver {
    /// Receives on `sink` until `count` datagrams other than warm-up ones came, or nothing
    /// came for `idle` after the first one (at most `first_within` waiting for the first).
    pub fn start(
        sink: UdpSocket,
        count: usize,
        idle: Duration,
        first_within: Duration,
    ) -> CountingReceiver {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        let handle = std::thread::spawn(move || {
            sink.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65_536];
            let start = Instant::now();
            let mut last: Option<Instant> = None;
            let mut stream = 0;
            while stream < count {
                match last {
                    None if start.elapsed() > first_within => break,
                    Some(t) if t.elapsed() > idle => break,
                    _ => {}
                }
                if let Ok(n) = sink.recv(&mut buf) {
                    let d = buf[..n].to_vec();
                    stream += usize::from(!is_warm_up(&d));
                    got.push(d);
                    counter.fetch_add(1, Ordering::Relaxed);
                    last = Some(Instant::now());
                }
            }
            got
        });
        CountingReceiver { seen, handle }
    }

    /// Datagrams received so far.
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::Relaxed)
    }

    /// What it received: (warm-up datagrams before the stream, the rest). Panics if a
    /// warm-up datagram came after the stream began (the order was broken).
    pub fn join(self) -> (usize, Vec<Vec<u8>>) {
        let got = self.handle.join().unwrap();
        let warm = got.iter().take_while(|d| is_warm_up(d)).count();
        let rest = got[warm..].to_vec();
        assert!(
            !rest.iter().any(|d| is_warm_up(d)),
            "a warm-up datagram came after the stream began"
        );
        (warm, rest)
    }
}

/// Checks that `got` is exactly `sent` (same datagrams, same bytes, same order) and that its
/// TS headers parse without errors; on a mismatch, says where.
pub fn assert_same_stream(what: &str, sent: &[Vec<u8>], got: &[Vec<u8>], pid: u16) {
    if let Some(i) = (0..sent.len().min(got.len())).find(|&i| sent[i] != got[i]) {
        let index =
            |d: &[u8]| u64::from_be_bytes(d.get(4..12).unwrap_or(&[0; 8]).try_into().unwrap());
        panic!(
            "{what}: datagram {i} differs (sent #{}, got #{} of {} B)",
            index(&sent[i]),
            index(&got[i]),
            got[i].len()
        );
    }
    assert_eq!(got.len(), sent.len(), "{what}: datagrams received");
    assert_eq!(
        ts_errors(got, pid),
        (0, 0),
        "{what}: TS header and continuity errors"
    );
}

// ---------------------------------------------------------------------------------------------
// `weft gateway` processes

/// A `weft gateway` child process, with its output collected by two threads. Dropping it
/// kills the process.
pub struct GatewayProc {
    pub child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

pub fn collect(from: impl Read + Send + 'static, into: &Arc<Mutex<String>>) -> JoinHandle<()> {
    let into = Arc::clone(into);
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    })
}

impl GatewayProc {
    pub fn start(args: &[String]) -> GatewayProc {
        let mut child = Command::new(bin_dir().join("weft"))
            .arg("gateway")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting weft gateway: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), &stdout),
            collect(child.stderr.take().unwrap(), &stderr),
        ];
        GatewayProc {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until `mappings` lines say `ready`, and returns them; panics if the process
    /// exits first or takes over 10 s.
    pub fn wait_ready(&mut self, mappings: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let err = self.stderr();
            let ready: Vec<String> = err
                .lines()
                .filter(|l| l.ends_with(": ready"))
                .map(str::to_owned)
                .collect();
            if ready.len() >= mappings {
                return ready;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("weft gateway exited before it was ready ({status}):\n{err}");
            }
            assert!(Instant::now() < deadline, "weft gateway not ready:\n{err}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `within` for the process to exit on its own; returns its exit code and
    /// output.
    pub fn wait_exit(mut self, within: Duration) -> (i32, String, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "weft gateway did not exit within {within:?}:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let out = self.stdout.lock().unwrap().clone();
        (status.code().unwrap_or(-1), out, self.stderr())
    }

    /// SIGTERM, then waits for the exit: (exit code, stdout, stderr).
    pub fn stop(self) -> (i32, String, String) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(10))
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `weft gateway ARGS` to its end (at most 15 s): (exit code, stdout, stderr).
pub fn run_gateway(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    GatewayProc::start(&args).wait_exit(Duration::from_secs(15))
}

/// The final JSON counters of the mapping whose label starts with `prefix`.
pub fn final_counters(stdout: &str, prefix: &str) -> Value {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["final"] == true && v["mapping"].as_str().is_some_and(|m| m.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no final counters for {prefix:?} in:\n{stdout}"))
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

pub fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Whether `tool` runs (`tool -version`).
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
