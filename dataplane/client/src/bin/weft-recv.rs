//! weft-recv: receives messages on a port of the local Weft node (and on groups it joins) and
//! prints a summary: count, loss, duplicates and reordering per flow from `weft-send`'s probe
//! sequence numbers, and latency percentiles from its timestamps.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use weft_client::probe::monotonic_ns;
use weft_client::report::RecvStats;
use weft_client::{Client, ClientError};
use weft_shared::ids::{GroupId, Port};
use weft_shared::session::MAX_PAYLOAD;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Receive probe messages from weft-send and summarise loss, reordering and latency.",
    long_about = "Receive probe messages from weft-send on a port of the local Weft node and \
        summarise them.\n\n\
        Per sender flow it counts loss (gaps between the lowest and highest sequence number \
        seen; messages lost after the last one received are not visible, so compare with \
        weft-send's sent), duplicates and reordering. Latency percentiles (p50, p90, p99, \
        p99.9, max) come from the CLOCK_MONOTONIC send time in each probe, so they are only \
        meaningful when sender and receiver share a host (or synchronised clocks); the nodes' \
        own age_us is reported next to them.\n\n\
        The run ends after --count messages, --seconds, or --idle-exit-ms without a message, \
        whichever comes first (at least one is required). The summary is human-readable; \
        with --json one JSON object follows as the last line."
)]
struct Args {
    /// Path of the local node's session socket (`session_socket` in the node's config).
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,

    /// Port to bind and receive on.
    #[arg(long, value_name = "P")]
    port: u16,

    /// Join this group too (repeat for several); group messages arrive on their destination
    /// port, whichever it is.
    #[arg(long, value_name = "G")]
    join: Vec<u32>,

    /// Stop after this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,

    /// Stop after this many seconds.
    #[arg(long, value_name = "S")]
    seconds: Option<f64>,

    /// Stop after this many milliseconds without a message, counted from the first message
    /// (before it, only --seconds bounds the wait).
    #[arg(long, value_name = "M")]
    idle_exit_ms: Option<u64>,

    /// Also print the summary as one JSON object, on the last line.
    #[arg(long)]
    json: bool,

    /// Client name shown in the node's logs.
    #[arg(long, default_value = "weft-recv")]
    name: String,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-recv: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.count.is_none() && args.seconds.is_none() && args.idle_exit_ms.is_none() {
        bail!("give --count, --seconds or --idle-exit-ms so the run ends");
    }
    let mut client = Client::connect(&args.socket, &args.name)?;
    let port = client.bind(Port(args.port))?;
    for &g in &args.join {
        client.join(GroupId(g))?;
    }
    eprintln!("weft-recv: receiving on {}:{port}", client.node());

    let mut stats = RecvStats::new();
    let mut buf = vec![0u8; MAX_PAYLOAD];
    let start = Instant::now();
    let end = args
        .seconds
        .map(|s| start + Duration::from_secs_f64(s.max(0.0)));
    let idle = args.idle_exit_ms.map(Duration::from_millis);
    let count = args.count.unwrap_or(u64::MAX);
    let mut first: Option<Instant> = None;
    let mut last = start;
    let mut ended_by_node = None;

    while stats.received() < count {
        let now = Instant::now();
        // Wait until the earliest of: the end, the idle limit, or a periodic check.
        let mut wait = Duration::from_millis(200);
        if let Some(e) = end {
            if now >= e {
                break;
            }
            wait = wait.min(e - now);
        }
        if let (Some(i), Some(_)) = (idle, first) {
            let idle_end = last + i;
            if now >= idle_end {
                break;
            }
            wait = wait.min(idle_end - now);
        }
        match client.recv_timeout(&mut buf, wait) {
            Ok(Some(d)) => {
                let now_ns = monotonic_ns();
                let payload = buf.get(..d.len).unwrap_or_default();
                stats.record(d.from.node, d.from.port, payload, d.age_us, now_ns);
                last = Instant::now();
                first.get_or_insert(last);
            }
            Ok(None) => {}
            Err(ClientError::Disconnected(reason)) => {
                ended_by_node = Some(reason);
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }

    let seconds = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let summary = stats.summary(seconds);
    println!("{summary}");
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    if let Some(reason) = ended_by_node {
        bail!("stopped early: {reason}");
    }
    client.close()?;
    Ok(())
}
