//! The probe: a source that sends datagrams of a fixed size at a fixed rate, each carrying a
//! sequence number and its send time, and a sink that records each one's arrival. Both run in
//! this process, so send and receive times come from the same monotonic clock.
//!
//! Datagram layout (big-endian): magic `u32`, kind `u32` (0 data, 1 warm-up), sequence `u64`,
//! send time `u64` (ns since the process's epoch), then zeros up to the size.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use hdrhistogram::Histogram;
use nix::sys::socket::{setsockopt, sockopt};
use serde_json::{Value, json};

const MAGIC: u32 = 0x5746_5052;
/// Bytes of the probe's header; `--size` must be at least this.
pub const HEADER: usize = 24;
const DATA: u32 = 0;
const WARM_UP: u32 = 1;
const NOT_RECEIVED: u64 = u64::MAX;

/// Nanoseconds since the first call in this process.
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let e = *EPOCH.get_or_init(Instant::now);
    u64::try_from(e.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn datagram(buf: &mut [u8], kind: u32, seq: u64) {
    buf[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    buf[4..8].copy_from_slice(&kind.to_be_bytes());
    buf[8..16].copy_from_slice(&seq.to_be_bytes());
    buf[16..24].copy_from_slice(&now_ns().to_be_bytes());
}

/// What the sink recorded.
struct Record {
    /// Latency (ns) of each data sequence's first arrival, `NOT_RECEIVED` if none.
    latency: Vec<u64>,
    duplicates: u64,
    out_of_order: u64,
    foreign: u64,
}

/// A sink receiving on its own thread until stopped.
pub struct Sink {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    warm: Arc<AtomicU64>,
    thread: Option<JoinHandle<Record>>,
}

impl Sink {
    /// Binds `addr` and receives data sequences `0..count`.
    pub fn start(addr: SocketAddr, count: u64) -> Result<Sink> {
        let sock = UdpSocket::bind(addr).with_context(|| format!("probe sink: binding {addr}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        // Weft releases a burst when a gap is filled (everything held behind it, up to a
        // deadline's worth): the default buffer (about 200 KiB) would overflow.
        let want = 16 << 20;
        if setsockopt(&sock, sockopt::RcvBufForce, &want).is_err() {
            let _ = setsockopt(&sock, sockopt::RcvBuf, &want);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let warm = Arc::new(AtomicU64::new(0));
        let len = usize::try_from(count)?;
        let (s, w) = (Arc::clone(&stop), Arc::clone(&warm));
        let thread = std::thread::spawn(move || {
            let mut r = Record {
                latency: vec![NOT_RECEIVED; len],
                duplicates: 0,
                out_of_order: 0,
                foreign: 0,
            };
            let mut highest: Option<u64> = None;
            let mut buf = vec![0u8; 65_536];
            while !s.load(Ordering::Relaxed) {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let at = now_ns();
                let word = |i: usize| buf.get(i..i + 4).and_then(|b| <[u8; 4]>::try_from(b).ok());
                let long = |i: usize| buf.get(i..i + 8).and_then(|b| <[u8; 8]>::try_from(b).ok());
                let (Some(magic), Some(kind), Some(seq), Some(sent)) =
                    (word(0), word(4), long(8), long(16))
                else {
                    r.foreign += 1;
                    continue;
                };
                if n < HEADER || u32::from_be_bytes(magic) != MAGIC {
                    r.foreign += 1;
                    continue;
                }
                let (seq, sent) = (u64::from_be_bytes(seq), u64::from_be_bytes(sent));
                match u32::from_be_bytes(kind) {
                    WARM_UP => {
                        w.fetch_add(1, Ordering::Relaxed);
                    }
                    DATA => {
                        let Some(slot) =
                            usize::try_from(seq).ok().and_then(|i| r.latency.get_mut(i))
                        else {
                            r.foreign += 1;
                            continue;
                        };
                        if *slot != NOT_RECEIVED {
                            r.duplicates += 1;
                            continue;
                        }
                        *slot = at.saturating_sub(sent);
                        if highest.is_some_and(|h| seq < h) {
                            r.out_of_order += 1;
                        }
                        highest = Some(highest.map_or(seq, |h| h.max(seq)));
                    }
                    _ => r.foreign += 1,
                }
            }
            r
        });
        Ok(Sink {
            addr,
            stop,
            warm,
            thread: Some(thread),
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Warm-up datagrams received so far.
    pub fn warm_ups(&self) -> u64 {
        self.warm.load(Ordering::Relaxed)
    }

    /// Stops the sink and returns its figures against `sent` data datagrams.
    pub fn finish(mut self, sent: u64, deadline: Duration) -> Result<ProbeStats> {
        self.stop.store(true, Ordering::Relaxed);
        let r = self
            .thread
            .take()
            .ok_or_else(|| anyhow!("probe sink already finished"))?
            .join()
            .map_err(|_| anyhow!("probe sink thread panicked"))?;
        ProbeStats::from_record(&r, sent, deadline)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A paced source.
pub struct Source {
    sock: UdpSocket,
    to: SocketAddr,
    size: usize,
}

impl Source {
    /// A source on a fresh socket bound to `from` (port 0: any), sending to `to`.
    pub fn new(from: SocketAddr, to: SocketAddr, size: usize) -> Result<Source> {
        if size < HEADER {
            bail!("--size {size}: the probe needs at least {HEADER} bytes");
        }
        let sock =
            UdpSocket::bind(from).with_context(|| format!("probe source: binding {from}"))?;
        Ok(Source { sock, to, size })
    }

    /// Sends a warm-up datagram every 20 ms until `sink` has received one, then waits
    /// `settle`; fails after `within`.
    pub fn warm_up(&self, sink: &Sink, within: Duration, settle: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; self.size];
        let mut seq = 0;
        while sink.warm_ups() == 0 {
            super::check_interrupted()?;
            if Instant::now() > deadline {
                bail!(
                    "no warm-up datagram from {} reached the sink {} within {within:?}",
                    self.to,
                    sink.addr()
                );
            }
            datagram(&mut buf, WARM_UP, seq);
            seq += 1;
            let _ = self.sock.send_to(&buf, self.to);
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(settle);
        Ok(())
    }

    /// Sends data datagrams `0..count` at `rate` per second; returns the send errors and how
    /// far (µs) the source fell behind its schedule at worst.
    pub fn run(&self, count: u64, rate: u64) -> (u64, u64) {
        let mut buf = vec![0u8; self.size];
        let start = Instant::now();
        let (mut errors, mut behind) = (0, 0u64);
        for seq in 0..count {
            if super::interrupted() {
                break;
            }
            let due = start + Duration::from_secs_f64(seq as f64 / rate as f64);
            let now = Instant::now();
            match due.checked_duration_since(now) {
                Some(wait) => std::thread::sleep(wait),
                None => behind = behind.max(u64::try_from((now - due).as_micros()).unwrap_or(0)),
            }
            datagram(&mut buf, DATA, seq);
            if self.sock.send_to(&buf, self.to).is_err() {
                errors += 1;
            }
        }
        (errors, behind)
    }
}

/// The probe's figures for one measurement.
#[derive(Clone, Debug, Default)]
pub struct ProbeStats {
    /// Data datagrams sent.
    pub sent: u64,
    /// Distinct ones received.
    pub received: u64,
    /// Received within the deadline of their send time.
    pub on_time: u64,
    /// Received after it.
    pub late: u64,
    /// Never received.
    pub lost: u64,
    /// Copies received after the first.
    pub duplicates: u64,
    /// Received after a higher sequence.
    pub out_of_order: u64,
    /// Datagrams that were not the probe's.
    pub foreign: u64,
    /// Latency of the received ones, ms: p50, p99, p99.9, max.
    pub latency_ms: [f64; 4],
}

impl ProbeStats {
    fn from_record(r: &Record, sent: u64, deadline: Duration) -> Result<ProbeStats> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
        let limit = u64::try_from(deadline.as_nanos())?;
        let mut s = ProbeStats {
            sent,
            duplicates: r.duplicates,
            out_of_order: r.out_of_order,
            foreign: r.foreign,
            ..ProbeStats::default()
        };
        for &l in r.latency.iter().take(usize::try_from(sent)?) {
            if l == NOT_RECEIVED {
                s.lost += 1;
                continue;
            }
            s.received += 1;
            if l <= limit {
                s.on_time += 1;
            } else {
                s.late += 1;
            }
            h.saturating_record((l / 1_000).max(1));
        }
        let q = |x: f64| h.value_at_quantile(x) as f64 / 1_000.0;
        s.latency_ms = [q(0.5), q(0.99), q(0.999), h.max() as f64 / 1_000.0];
        Ok(s)
    }

    /// On-time share of what was sent, in percent.
    pub fn on_time_pct(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.on_time as f64 * 100.0 / self.sent as f64
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "sent": self.sent,
            "received": self.received,
            "on_time": self.on_time,
            "on_time_pct": self.on_time_pct(),
            "late": self.late,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "foreign": self.foreign,
            "latency_ms": {
                "p50": self.latency_ms[0],
                "p99": self.latency_ms[1],
                "p99_9": self.latency_ms[2],
                "max": self.latency_ms[3],
            },
        })
    }
}
