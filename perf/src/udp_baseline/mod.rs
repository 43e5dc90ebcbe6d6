//! The baseline every forwarding figure is compared with: plain kernel UDP, no overlay
//! headers, in the three shapes the kernel offers (`dataplane-measurements.md` has their
//! limits on this kind of machine):
//!
//! - [`ForwardMode::PerPacket`]: one `recvfrom` and one `sendto` per datagram;
//! - [`ForwardMode::Gso`]: `recvmmsg` batches of up to 64, each run of equal-sized datagrams
//!   sent on as one `UDP_SEGMENT` send (the same offload Weft's data plane uses on send);
//! - [`ForwardMode::GroGso`]: `UDP_GRO` receive, each super-packet forwarded whole with its
//!   segment size (idealised on loopback, where super-packets stay whole end to end).
//!
//! The generator stamps every datagram with the probe header `weft-send` uses
//! ([`weft_client::probe`]), and the sink records with `weft-recv`'s statistics
//! ([`weft_client::report::RecvStats`]), so the baseline's rate, loss, reordering and latency
//! are measured exactly as Weft's are. Every tool prints one JSON line with its CPU time.

pub mod sockopt;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use weft_client::probe::{PROBE_HEADER_LEN, ProbeHeader, monotonic_ns};
use weft_client::report::RecvStats;
use weft_shared::ids::{NodeId, Port};

use sockopt::{MAX_BATCH, MAX_UDP_PAYLOAD};

/// Socket buffer size asked for (the kernel caps it at `net.core.[rw]mem_max`).
const SOCKET_BUFFER: usize = 4 << 20;

/// How the forwarder moves datagrams (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardMode {
    /// One receive and one send syscall per datagram.
    PerPacket,
    /// Batched receive; runs of equal-sized datagrams sent as one GSO send.
    Gso,
    /// GRO receive; each super-packet sent on whole as one GSO send.
    GroGso,
}

/// How long a tool runs: at most `limit`, and not more than `idle` after its last datagram.
#[derive(Clone, Copy, Debug)]
pub struct Lifetime {
    /// Hard limit.
    pub limit: Duration,
    /// Stop this long after the last datagram (once one has arrived).
    pub idle: Duration,
}

fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let sock = UdpSocket::bind(addr).with_context(|| format!("bind {addr}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    sockopt::set_buffers(&sock, SOCKET_BUFFER).context("SO_RCVBUF/SO_SNDBUF")?;
    Ok(sock)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

/// Tracks a tool's [`Lifetime`].
struct Clock {
    end: Instant,
    idle: Duration,
    last: Option<Instant>,
}

impl Clock {
    fn new(life: Lifetime) -> Self {
        Clock {
            end: Instant::now() + life.limit,
            idle: life.idle,
            last: None,
        }
    }

    fn arrived(&mut self) {
        self.last = Some(Instant::now());
    }

    fn done(&self) -> bool {
        let now = Instant::now();
        now >= self.end || self.last.is_some_and(|l| now - l > self.idle)
    }
}

/// What a generator is asked to send (also `udp-baseline gen`'s options).
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct GenSpec {
    /// Destination.
    #[arg(long)]
    pub to: SocketAddr,
    /// Datagram size in bytes (at least the probe header).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Datagrams to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Datagrams per second; 0 sends flat out.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Datagrams per syscall (sendmmsg, or one GSO send with --gso), 1..=64.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Send each batch as one `UDP_SEGMENT` send instead of a `sendmmsg`.
    #[arg(long)]
    pub gso: bool,
}

/// Sends `spec.count` probe datagrams; returns the JSON report.
pub fn generate(spec: GenSpec) -> anyhow::Result<serde_json::Value> {
    if spec.size < PROBE_HEADER_LEN || spec.size > MAX_UDP_PAYLOAD {
        bail!(
            "--size must be {PROBE_HEADER_LEN}..={MAX_UDP_PAYLOAD} bytes (the probe header is {PROBE_HEADER_LEN} B)"
        );
    }
    if !(1..=MAX_BATCH).contains(&spec.batch) {
        bail!("--batch must be 1..={MAX_BATCH}");
    }
    if spec.gso && spec.size * spec.batch > MAX_UDP_PAYLOAD {
        bail!("--gso needs size x batch <= {MAX_UDP_PAYLOAD} B (one UDP_SEGMENT send)");
    }
    if !(spec.rate.is_finite() && spec.rate >= 0.0) {
        bail!("--rate must be 0 or a positive number");
    }
    let sock = bind("127.0.0.1:0".parse()?)?;
    let mut bufs = vec![vec![0x5au8; spec.size]; spec.batch];
    let (mut sent, mut errors, mut syscalls) = (0u64, 0u64, 0u64);
    let cpu0 = sockopt::cpu_seconds();
    let start = Instant::now();
    while sent < spec.count {
        let mut due = (spec.count - sent).min(spec.batch as u64) as usize;
        if spec.rate > 0.0 {
            let target = (start.elapsed().as_secs_f64() * spec.rate) as u64;
            due = due.min(target.saturating_sub(sent) as usize);
            if due == 0 {
                let next = start + Duration::from_secs_f64((sent + 1) as f64 / spec.rate);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                continue;
            }
        }
        let now = monotonic_ns();
        for (i, b) in bufs.iter_mut().take(due).enumerate() {
            ProbeHeader {
                flow_index: 0,
                seq: sent + i as u64,
                sent_ns: now,
            }
            .write(b);
        }
        let refs: Vec<&[u8]> = bufs.iter().take(due).map(|b| &b[..]).collect();
        syscalls += 1;
        let result = if spec.gso {
            sockopt::send_gso(&sock, spec.to, &refs, spec.size).map(|_| due)
        } else if due == 1 {
            sock.send_to(refs[0], spec.to).map(|_| 1)
        } else {
            sockopt::send_batch(&sock, spec.to, &refs)
        };
        match result {
            Ok(n) => sent += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Err(e.into()),
            Err(_) => {
                // ENOBUFS or a refused port: the datagrams are skipped, counted, not retried.
                errors += due as u64;
                sent += due as u64;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(json!({
        "sent": sent - errors,
        "send_errors": errors,
        "syscalls": syscalls,
        "seconds": seconds,
        "rate": (sent - errors) as f64 / seconds.max(1e-9),
        "cpu_s": sockopt::cpu_seconds() - cpu0,
    }))
}

/// Counts of a forwarder.
#[derive(Debug, Default)]
struct ForwardCounts {
    datagrams: u64,
    receives: u64,
    sends: u64,
    send_errors: u64,
}

/// Relays everything that arrives on `listen` to `to` in `mode`; returns the JSON report.
pub fn forward(
    listen: SocketAddr,
    to: SocketAddr,
    mode: ForwardMode,
    life: Lifetime,
) -> anyhow::Result<serde_json::Value> {
    let sock = bind(listen)?;
    if mode == ForwardMode::GroGso {
        sockopt::enable_gro(&sock).context("UDP_GRO (Linux 5.0 or newer)")?;
    }
    let mut clock = Clock::new(life);
    let mut c = ForwardCounts::default();
    let cpu0 = sockopt::cpu_seconds();
    match mode {
        ForwardMode::PerPacket => {
            let mut buf = vec![0u8; MAX_UDP_PAYLOAD];
            while !clock.done() {
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        clock.arrived();
                        c.receives += 1;
                        c.datagrams += 1;
                        c.sends += 1;
                        if sock.send_to(&buf[..n], to).is_err() {
                            c.send_errors += 1;
                        }
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        ForwardMode::Gso => {
            let mut slots = vec![[0u8; 2048]; MAX_BATCH];
            let mut lens = [0usize; MAX_BATCH];
            while !clock.done() {
                let n = match sockopt::recv_batch(&sock, &mut slots, &mut lens) {
                    Ok(n) => n,
                    Err(e) if is_timeout(&e) => continue,
                    Err(e) => return Err(e.into()),
                };
                clock.arrived();
                c.receives += 1;
                c.datagrams += n as u64;
                for run in gso_runs(&lens[..n]) {
                    let segs: Vec<&[u8]> = run.clone().map(|i| &slots[i][..lens[i]]).collect();
                    c.sends += 1;
                    if sockopt::send_gso(&sock, to, &segs, lens[run.start]).is_err() {
                        c.send_errors += segs.len() as u64;
                    }
                }
            }
        }
        ForwardMode::GroGso => {
            let mut buf = vec![0u8; MAX_UDP_PAYLOAD];
            while !clock.done() {
                let (n, segment) = match sockopt::recv_gro(&sock, &mut buf) {
                    Ok(r) => r,
                    Err(e) if is_timeout(&e) => continue,
                    Err(e) => return Err(e.into()),
                };
                clock.arrived();
                let segments = n.div_ceil(segment.max(1)).max(1) as u64;
                c.receives += 1;
                c.datagrams += segments;
                c.sends += 1;
                if sockopt::send_split(&sock, to, &buf[..n], segment).is_err() {
                    c.send_errors += segments;
                }
            }
        }
    }
    Ok(json!({
        "mode": format!("{mode:?}"),
        "forwarded": c.datagrams - c.send_errors,
        "send_errors": c.send_errors,
        "receive_calls": c.receives,
        "send_calls": c.sends,
        "cpu_s": sockopt::cpu_seconds() - cpu0,
    }))
}

/// Splits a batch's datagram lengths into runs one GSO send can carry: equal lengths, the last
/// possibly shorter (which ends the run), at most 64 segments and 65,507 bytes.
fn gso_runs(lens: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < lens.len() {
        let size = lens[start].max(1);
        let mut end = start + 1;
        let mut total = lens[start];
        while end < lens.len() && end - start < MAX_BATCH && total + lens[end] <= MAX_UDP_PAYLOAD {
            if lens[end] > size {
                break;
            }
            total += lens[end];
            end += 1;
            if lens[end - 1] < size {
                break;
            }
        }
        runs.push(start..end);
        start = end;
    }
    runs
}

/// Receives on `listen` (with `UDP_GRO` if `gro`) and records every datagram as `weft-recv`
/// does; returns its summary with the CPU time.
pub fn sink(listen: SocketAddr, gro: bool, life: Lifetime) -> anyhow::Result<serde_json::Value> {
    let sock = bind(listen)?;
    if gro {
        sockopt::enable_gro(&sock).context("UDP_GRO (Linux 5.0 or newer)")?;
    }
    let node = NodeId::new(1).context("node id 1")?;
    let mut stats = RecvStats::new();
    let mut clock = Clock::new(life);
    let (mut first, mut last) = (None, Instant::now());
    let cpu0 = sockopt::cpu_seconds();
    let mut slots = vec![[0u8; 2048]; MAX_BATCH];
    let mut lens = [0usize; MAX_BATCH];
    let mut big = vec![0u8; MAX_UDP_PAYLOAD];
    while !clock.done() {
        let got = if gro {
            sockopt::recv_gro(&sock, &mut big).map(|(n, segment)| {
                let now = monotonic_ns();
                for seg in big[..n].chunks(segment.max(1)) {
                    stats.record(node, Port(0), seg, 0, now);
                }
            })
        } else {
            sockopt::recv_batch(&sock, &mut slots, &mut lens).map(|n| {
                let now = monotonic_ns();
                for i in 0..n {
                    stats.record(node, Port(0), &slots[i][..lens[i]], 0, now);
                }
            })
        };
        match got {
            Ok(()) => {
                clock.arrived();
                last = Instant::now();
                first.get_or_insert(last);
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let seconds = first.map_or(0.0, |f| (last - f).as_secs_f64());
    let mut report = serde_json::to_value(stats.summary(seconds))?;
    report["cpu_s"] = json!(sockopt::cpu_seconds() - cpu0);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gso_runs_group_equal_sizes_and_end_on_a_short_one() {
        assert_eq!(gso_runs(&[100, 100, 100]), vec![0..3]);
        assert_eq!(gso_runs(&[100, 100, 50, 100]), vec![0..3, 3..4]);
        assert_eq!(gso_runs(&[50, 100, 100]), vec![0..1, 1..3]);
        assert_eq!(gso_runs(&[]), Vec::<std::ops::Range<usize>>::new());
        // 1400 B: 46 segments fit in 65,507 B.
        let lens = [1400usize; 64];
        assert_eq!(gso_runs(&lens), vec![0..46, 46..64]);
    }

    #[test]
    fn a_generator_through_each_forwarder_mode_reaches_the_sink_whole() {
        for mode in [
            ForwardMode::PerPacket,
            ForwardMode::Gso,
            ForwardMode::GroGso,
        ] {
            // Free ports from the kernel (released just before the tools bind them).
            let free = || {
                UdpSocket::bind("127.0.0.1:0")
                    .and_then(|s| s.local_addr())
                    .unwrap()
            };
            let (sink_addr, fwd_addr) = (free(), free());
            let life = Lifetime {
                limit: Duration::from_secs(10),
                idle: Duration::from_secs(2),
            };
            let s = std::thread::spawn(move || {
                sink(sink_addr, mode == ForwardMode::GroGso, life).unwrap()
            });
            let f = std::thread::spawn(move || forward(fwd_addr, sink_addr, mode, life).unwrap());
            std::thread::sleep(Duration::from_millis(100));
            let g = generate(GenSpec {
                to: fwd_addr,
                size: 1000,
                count: 2_000,
                rate: 20_000.0,
                batch: 8,
                gso: mode != ForwardMode::PerPacket,
            })
            .unwrap();
            let f = f.join().unwrap();
            let s = s.join().unwrap();
            assert_eq!(g["sent"], 2_000, "{mode:?}: {g}");
            assert_eq!(f["forwarded"], 2_000, "{mode:?}: {f}");
            assert_eq!(s["received"], 2_000, "{mode:?}: {s}");
            assert_eq!(s["lost"], 0, "{mode:?}: {s}");
            assert_eq!(s["bytes"], 2_000_000, "{mode:?}: {s}");
        }
    }

    #[test]
    fn bad_generator_settings_are_refused_with_a_reason() {
        let spec = GenSpec {
            to: "127.0.0.1:9".parse().unwrap(),
            size: 10,
            count: 1,
            rate: 0.0,
            batch: 1,
            gso: false,
        };
        assert!(generate(spec).unwrap_err().to_string().contains("--size"));
        let e = generate(GenSpec {
            size: 100,
            batch: 65,
            ..spec
        })
        .unwrap_err();
        assert!(e.to_string().contains("--batch"));
        let e = generate(GenSpec {
            size: 1400,
            batch: 64,
            gso: true,
            ..spec
        })
        .unwrap_err();
        assert!(e.to_string().contains("--gso"));
        let e = generate(GenSpec {
            size: 100,
            rate: -1.0,
            ..spec
        })
        .unwrap_err();
        assert!(e.to_string().contains("--rate"));
    }
}
