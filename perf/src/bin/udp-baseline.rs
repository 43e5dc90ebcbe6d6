//! The baseline every forwarding figure is compared with: plain kernel UDP, one datagram per
//! syscall, no overlay headers.
//!
//! `udp-baseline forward --listen A --to B` relays every datagram it receives on A to B;
//! `udp-baseline sink --listen A --seconds S` counts what arrives; `udp-baseline gen --to A
//! --size N --count C` sends as fast as it can. The perf scripts run gen → [forward →] sink in the
//! same run as Weft's own figures, so both see the same machine load.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "plain kernel-UDP generator, forwarder and sink (the perf baseline)")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Relay every datagram received on --listen to --to, until --seconds pass.
    Forward {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        to: SocketAddr,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Count datagrams on --listen; print one JSON line once idle for 1 s after traffic or after
    /// --seconds.
    Sink {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Send --count datagrams of --size bytes to --to as fast as possible.
    Gen {
        #[arg(long)]
        to: SocketAddr,
        #[arg(long, default_value_t = 100)]
        size: usize,
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().cmd {
        Cmd::Forward {
            listen,
            to,
            seconds,
        } => forward(listen, to, seconds),
        Cmd::Sink { listen, seconds } => sink(listen, seconds),
        Cmd::Gen { to, size, count } => gen_load(to, size, count),
    }
}

fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let sock = UdpSocket::bind(addr).with_context(|| format!("bind {addr}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(sock)
}

fn forward(listen: SocketAddr, to: SocketAddr, seconds: u64) -> anyhow::Result<()> {
    let sock = bind(listen)?;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut buf = [0u8; 65536];
    let mut forwarded = 0u64;
    while Instant::now() < end {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                if sock.send_to(&buf[..n], to).is_ok() {
                    forwarded += 1;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    println!("{}", serde_json::json!({ "forwarded": forwarded }));
    Ok(())
}

fn sink(listen: SocketAddr, seconds: u64) -> anyhow::Result<()> {
    let sock = bind(listen)?;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut buf = [0u8; 65536];
    let (mut count, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None, Instant::now());
    while Instant::now() < end {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                last = Instant::now();
                first.get_or_insert(last);
                count += 1;
                bytes += n as u64;
            }
            Err(e) if is_timeout(&e) => {
                if first.is_some() && last.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
    let pps = if secs > 0.0 { count as f64 / secs } else { 0.0 };
    println!(
        "{}",
        serde_json::json!({ "received": count, "bytes": bytes, "seconds": secs, "pps": pps })
    );
    Ok(())
}

fn gen_load(to: SocketAddr, size: usize, count: u64) -> anyhow::Result<()> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let payload = vec![0xa5u8; size];
    let start = Instant::now();
    let mut sent = 0u64;
    for _ in 0..count {
        if sock.send_to(&payload, to).is_ok() {
            sent += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "sent": sent, "seconds": secs, "pps": sent as f64 / secs })
    );
    Ok(())
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
