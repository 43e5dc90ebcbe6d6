//! weft-send: sends numbered, timestamped probe messages through the local Weft node, paced or
//! as fast as credits allow, in batches, and prints a JSON summary line when done.
//!
//! Each payload starts with the probe header of `weft_client::probe` (flow index, sequence,
//! `CLOCK_MONOTONIC` send time), so `weft-recv` can count loss, duplicates and reordering per
//! flow and measure latency. The latency is only meaningful when sender and receiver run on
//! one host (they share `CLOCK_MONOTONIC`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use weft_client::probe::{PROBE_HEADER_LEN, ProbeHeader, monotonic_ns};
use weft_client::{Addr, Client, ClientError, Flow, ServerError, Service};
use weft_shared::ids::{GroupId, Port};
use weft_shared::session::Destination;

/// The link protocol of the flows.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ServiceArg {
    /// Forward and forget.
    BestEffort,
    /// Hop-by-hop retransmission, in-order exactly-once delivery.
    Reliable,
    /// NM-strikes with a per-message deadline (--deadline-ms).
    Realtime,
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Send numbered, timestamped probe messages through the local Weft node.",
    long_about = "Send numbered, timestamped probe messages through the local Weft node.\n\n\
        Each payload starts with a 24-byte probe header (magic, flow index, sequence, send \
        time as CLOCK_MONOTONIC nanoseconds), so weft-recv can count loss, duplicates and \
        reordering per flow and measure one-way latency. Latency is only meaningful when \
        sender and receiver run on one host, which share CLOCK_MONOTONIC (or on hosts with \
        synchronised clocks).\n\n\
        Messages go out in batches (one write per batch, see --batch). The run ends after \
        --count messages or --seconds, whichever comes first (at least one is required); \
        then the tool waits for the node to drain its queues (--linger-ms), says Goodbye and \
        prints one JSON line: sent, seconds, rate and counters."
)]
struct Args {
    /// Path of the local node's session socket (`session_socket` in the node's config).
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,

    /// Destination client as NODE:PORT. With --group, only PORT is used (write *:PORT).
    #[arg(long, value_name = "NODE:PORT")]
    to: String,

    /// Send to this multicast group (on the PORT of --to) instead of one node.
    #[arg(long, value_name = "G")]
    group: Option<u32>,

    /// With --group: the group is an anycast group (delivered to the nearest member only).
    #[arg(long, requires = "group")]
    anycast: bool,

    /// Messages per second over all flows; 0 sends as fast as the node's credits allow.
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 0.0)]
    rate: f64,

    /// Payload size in bytes, probe header included (at least 24, at most the node's limit).
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    size: usize,

    /// Stop after sending this many messages (over all flows).
    #[arg(long, value_name = "N")]
    count: Option<u64>,

    /// Stop after this many seconds.
    #[arg(long, value_name = "S")]
    seconds: Option<f64>,

    /// Number of flows to open, all to the same destination; messages go to them in turn, a
    /// batch at a time, and a flow out of credit is skipped rather than waited for.
    #[arg(long, value_name = "K", default_value_t = 1)]
    flows: u32,

    /// The link protocol of the flows.
    #[arg(long, value_enum, default_value_t = ServiceArg::BestEffort)]
    service: ServiceArg,

    /// Per-message deadline for --service realtime, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    deadline_ms: u64,

    /// Best effort: let the node hold each message up to this long (microseconds, at most
    /// 10,000) so that later ones share its datagram; 0 = packed within a turn only.
    #[arg(long, value_name = "US", default_value_t = 0)]
    pack_delay_us: u32,

    /// Local port to bind and send from; 0 lets the node pick a free one.
    #[arg(long, value_name = "P", default_value_t = 0)]
    from_port: u16,

    /// Most messages encoded into one write.
    #[arg(long, value_name = "B", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    batch: u32,

    /// At the end, wait up to this long for the node to send on what it still queues (its
    /// credits coming back) before saying Goodbye, which would drop it.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    linger_ms: u64,

    /// Client name shown in the node's logs.
    #[arg(long, default_value = "weft-send")]
    name: String,
}

/// The JSON summary line.
#[derive(Debug, Serialize)]
struct Summary {
    /// Messages sent.
    sent: u64,
    /// Seconds from the first send to the last.
    seconds: f64,
    /// `sent / seconds`.
    rate: f64,
    flows: u32,
    size: usize,
    bytes: u64,
    /// Write system calls (a batch is one, or a few if the socket was full).
    writes: u64,
    /// Times a flow was found without credit.
    credit_stalls: u64,
    /// Whether the node drained its queues within --linger-ms.
    drained: bool,
    /// Messages received on the sending port (not expected; discarded).
    unexpected_messages: u64,
    /// Messages the local node dropped because their destination had no route at the time
    /// (best effort during a failure), as counted by the node's error replies.
    unreachable: u64,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-send: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The destination from --to, --group and --anycast.
fn destination(args: &Args) -> anyhow::Result<Destination> {
    let (node, port) = args
        .to
        .split_once(':')
        .with_context(|| format!("--to {:?}: expected NODE:PORT", args.to))?;
    let port = Port(
        port.parse()
            .with_context(|| format!("--to {:?}: bad port", args.to))?,
    );
    Ok(match args.group {
        Some(g) if args.anycast => Destination::Anycast {
            group: GroupId(g),
            port,
        },
        Some(g) => Destination::Multicast {
            group: GroupId(g),
            port,
        },
        None if node == "*" => bail!("--to *:PORT needs --group"),
        None => args.to.parse::<Addr>()?.into(),
    })
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.count.is_none() && args.seconds.is_none() {
        bail!("give --count or --seconds (or both) so the run ends");
    }
    if args.size < PROBE_HEADER_LEN {
        bail!(
            "--size {} is below the probe header's {PROBE_HEADER_LEN} bytes",
            args.size
        );
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        bail!("--rate must be 0 or a positive number");
    }
    if args.flows == 0 {
        bail!("--flows must be at least 1");
    }
    let dest = destination(&args)?;
    let service = match args.service {
        ServiceArg::BestEffort => Service::best_effort(),
        ServiceArg::Reliable => Service::reliable(),
        ServiceArg::Realtime => Service::realtime(Duration::from_millis(args.deadline_ms)),
    }
    .pack_delay(args.pack_delay_us);

    let mut client = Client::connect(&args.socket, &args.name)?;
    let max = client.welcome().max_payload as usize;
    if args.size > max {
        bail!(
            "--size {} exceeds the node's payload limit of {max} bytes",
            args.size
        );
    }
    let port = client.bind(Port(args.from_port))?;
    let flows = (0..args.flows)
        .map(|_| client.open_flow(port, dest, service))
        .collect::<Result<Vec<Flow>, _>>()?;
    client.set_nonblocking(true);

    let batch = args.batch as usize;
    let mut payloads = vec![vec![0x5Au8; args.size]; batch];
    let mut scratch = vec![0u8; max];
    let mut seqs = vec![0u64; flows.len()];
    let count = args.count.unwrap_or(u64::MAX);
    let start = Instant::now();
    let end = args
        .seconds
        .map(|s| start + Duration::from_secs_f64(s.max(0.0)));
    let mut sent = 0u64;
    let mut last_send = start;
    let mut unexpected = 0u64;
    let mut next_flow = 0usize;
    let mut blocked_in_a_row = 0usize;

    while sent < count {
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        // How many messages are due now: all of a batch when unpaced.
        let due = if args.rate > 0.0 {
            let target = (now.duration_since(start).as_secs_f64() * args.rate) as u64;
            target.saturating_sub(sent)
        } else {
            batch as u64
        };
        let due = due.min(batch as u64).min(count - sent) as usize;
        if due == 0 {
            // Sleep until the next message is due (short naps keep the end time honest).
            let next = start + Duration::from_secs_f64((sent + 1) as f64 / args.rate);
            let nap = next
                .saturating_duration_since(now)
                .min(Duration::from_millis(5));
            std::thread::sleep(nap);
            continue;
        }

        let f = next_flow;
        next_flow = (next_flow + 1) % flows.len();
        let sent_ns = monotonic_ns();
        for (i, p) in payloads.iter_mut().take(due).enumerate() {
            let header = ProbeHeader {
                flow_index: f as u32,
                seq: seqs[f] + i as u64,
                sent_ns,
            };
            header.write(p);
        }
        match client.try_send_batch(&flows[f], &payloads[..due]) {
            Ok(n) => {
                seqs[f] += n as u64;
                sent += n as u64;
                last_send = Instant::now();
                blocked_in_a_row = 0;
            }
            Err(ClientError::WouldBlock) => {
                blocked_in_a_row += 1;
                if blocked_in_a_row >= flows.len() {
                    // Every flow is out of credit: wait for the node, but not past the end.
                    let mut wait = Duration::from_millis(10);
                    if let Some(e) = end {
                        wait = wait.min(e.saturating_duration_since(Instant::now()));
                    }
                    match client.poll_io(Some(wait)) {
                        Ok(()) => {}
                        Err(ClientError::ReceiveQueueFull { .. }) => {
                            unexpected += drain(&mut client, &mut scratch)?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                    blocked_in_a_row = 0;
                }
            }
            Err(ClientError::ReceiveQueueFull { .. }) => {
                unexpected += drain(&mut client, &mut scratch)?;
            }
            // An earlier send found no route (a failure being routed around): nothing of this
            // batch was sent; go on, the next round sends it.
            Err(ClientError::Server(ServerError::Unreachable { .. })) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let seconds = last_send.duration_since(start).as_secs_f64();
    client.set_nonblocking(false);
    client.flush()?;
    let drained = loop {
        match client.linger(Duration::from_millis(args.linger_ms)) {
            Ok(d) => break d,
            Err(ClientError::ReceiveQueueFull { .. }) => {
                unexpected += drain(&mut client, &mut scratch)?;
            }
            Err(ClientError::Server(ServerError::Unreachable { .. })) => {}
            Err(e) => return Err(e.into()),
        }
    };
    unexpected += drain(&mut client, &mut scratch)?;
    let stats = client.stats();
    client.close()?;

    let summary = Summary {
        sent,
        seconds,
        rate: if seconds > 0.0 {
            sent as f64 / seconds
        } else {
            0.0
        },
        flows: args.flows,
        size: args.size,
        bytes: sent * args.size as u64,
        writes: stats.writes,
        credit_stalls: stats.credit_stalls,
        drained,
        unexpected_messages: unexpected,
        unreachable: stats.send_errors,
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// Takes and discards messages delivered to the sending port; returns how many.
fn drain(client: &mut Client, scratch: &mut [u8]) -> anyhow::Result<u64> {
    let mut n = 0;
    while client.try_recv(scratch)?.is_some() {
        n += 1;
    }
    Ok(n)
}
