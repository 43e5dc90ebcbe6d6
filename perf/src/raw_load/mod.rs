//! `weft-rawload`: loads one real `weft-dataplane` with raw overlay link packets, the tool
//! itself playing the node's two neighbours on a line `from -> via -> to` (by default
//! 1 -> 2 -> 3), so that only the node under test's forwarding path is measured.
//!
//! One process, two threads sharing `CLOCK_MONOTONIC`:
//! - the **generator** ([`generator`]) binds `from`'s configured address, keeps the link to
//!   `via` up with the project's own [`LinkMonitor`](weft_proto::link_monitor::LinkMonitor)
//!   ([`fake_node`]), and sends best-effort data records addressed to `to` (packed several to a
//!   link packet as the data plane's packer would, probe-stamped like `weft-send`'s), in GSO
//!   batches, at a fixed rate or flat out;
//! - the **sink** ([`sink`]) binds `to`'s configured address, keeps the link from `via` up,
//!   and records every forwarded data record with `weft-recv`'s statistics.
//!
//! With `--one-thread` ([`one_thread`]) one thread does both in a single busy-polling loop
//! (send what the pacing says is due, drain the sink's socket, service both ends' hellos), so
//! the two never preempt each other on one core and the sink's latency is the path's, not the
//! scheduler's; `--one-thread --direct` sends the same packets straight to the sink's socket,
//! the baseline whose latency at the same rate is subtracted to get what the node under test
//! adds. `perf/rawload.sh --latency` runs the pairs, and [`summary`] (`weft-rawload
//! latency-summary FILE`) summarises them.
//!
//! The result is one JSON line with `weft-recv`'s / `udp-baseline sink`'s field names
//! (`received`, `rate`, `lost`, `loss_pct`, `reordered`, `latency_us`, ...) plus `sent`,
//! `gbps` (payload) and `link_gbps` (datagrams), the CPU time of the tool and of each thread,
//! each fake end's hello and link up/down counts, and with `--timeline-ms` the offered and
//! delivered rates and latency percentiles per interval; `mode` says which of `two-threads`,
//! `one-thread` and `one-thread-direct` ran, and a one-thread run adds `loop` (its pacing lag,
//! messages per send, packets per receive, idle turns; see [`one_thread::LoopReport`]), its
//! one thread's CPU time in `gen_cpu_s` (`sink_cpu_s` is null). Plain links only; the node under test
//! needs a FIB with a route to `to` (`weft-controld --static-routes`).
//!
//! Both sinks take each record's latency (`latency_us`, the timeline's, `max_gap_ms`) to the
//! kernel's receive timestamp of its datagram, not to when the sink read it ([`rx_stamp`]):
//! `rx_stamp` says which clock it ended on (`kernel`; `kernel+read` or `read` when some or
//! all receives came without a stamp, `rx_stamp_missing` of them, whose read time was used),
//! `latency_read_us` has the latency to the read as before, and `rx_clock` the uncertainty
//! of the realtime-to-monotonic offset and how much it moved during the run.

pub mod cpu;
pub mod fake_node;
pub mod generator;
pub mod one_thread;
pub mod packet;
pub mod rx_stamp;
pub mod sink;
pub mod summary;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use weft_client::probe::{PROBE_HEADER_LEN, monotonic_ns};
use weft_shared::config::Config;
use weft_shared::ids::{Incarnation, NodeId, Port};
use weft_shared::wire::LINK_HEADER_LEN;

use crate::udp_baseline::sockopt;
use fake_node::{EndCounts, FakeEnd};
use generator::{GenPlan, GenReport};
use one_thread::LoopPlan;
use packet::{DataStream, record_len, records_per_packet};
use sink::{SinkPlan, SinkReport};

/// Bytes of IPv4 and UDP headers: a link's `mtu` minus these is its largest datagram.
const IPV4_UDP_HEADERS: usize = 28;

/// `weft-rawload`'s options.
#[derive(Clone, Debug, clap::Args)]
pub struct Spec {
    /// The overlay config the node under test runs.
    #[arg(long)]
    pub config: PathBuf,
    /// The node played as the source (the generator).
    #[arg(long, default_value_t = 1)]
    pub from: u16,
    /// The node under test (a real data plane).
    #[arg(long, default_value_t = 2)]
    pub via: u16,
    /// The node played as the destination (the sink).
    #[arg(long, default_value_t = 3)]
    pub to: u16,
    /// Message (payload) size in bytes, at least the 24-byte probe header.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Messages to send at most.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Messages per second; 0 sends flat out.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Stop sending after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Flows (flow ids 1..=N, messages in turn).
    #[arg(long, default_value_t = 1)]
    pub flows: u32,
    /// Data records per link packet; 0: as many as fit the link's MTU.
    #[arg(long, default_value_t = 0)]
    pub pack: usize,
    /// Link packets per GSO send (at most 64 and 65,507 bytes).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Source port stamped in the overlay header.
    #[arg(long, default_value_t = 600)]
    pub src_port: u16,
    /// Destination (client) port on the sink node; the sink counts at link level.
    #[arg(long, default_value_t = 700)]
    pub dst_port: u16,
    /// Keep a timeline with one row per this many ms (0: none).
    #[arg(long, default_value_t = 0)]
    pub timeline_ms: u64,
    /// The sink stops this long after the last data once the generator is done.
    #[arg(long, default_value_t = 500)]
    pub idle_exit_ms: u64,
    /// Generator, sink and both ends' hellos in one busy-polling loop on one thread
    /// ([`one_thread`]) instead of two threads.
    #[arg(long)]
    pub one_thread: bool,
    /// With `--one-thread`: send straight to the sink's socket, not through the node under
    /// test (the baseline to subtract).
    #[arg(long, requires = "one_thread")]
    pub direct: bool,
    /// With `--one-thread`: hold each send until this many full link packets are due.
    #[arg(long, default_value_t = 1, requires = "one_thread")]
    pub min_packets: usize,
    /// With `--one-thread`: how the loop waits when idle (spin: busy-poll; poll: ppoll until
    /// the next send is due).
    #[arg(long, value_enum, default_value = "spin", requires = "one_thread")]
    pub wait: one_thread::Wait,
    /// With `--one-thread`: skip the messages more than this many µs overdue instead of
    /// sending them in one catch-up burst after a stall of the loop (0: always catch up).
    #[arg(long, default_value_t = 0, requires = "one_thread")]
    pub max_lag_us: u64,
}

impl Spec {
    /// The `mode` field of the report.
    pub fn mode(&self) -> &'static str {
        match (self.one_thread, self.direct) {
            (false, _) => "two-threads",
            (true, false) => "one-thread",
            (true, true) => "one-thread-direct",
        }
    }
}

/// What the two threads share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Messages the generator has sent so far.
    pub sent: AtomicU64,
    /// When the generator started sending (`CLOCK_MONOTONIC` ns; 0 before).
    pub gen_start_ns: AtomicU64,
    /// The sink's link is up on both sides.
    pub sink_up: AtomicBool,
    /// The generator has finished sending (or failed).
    pub gen_done: AtomicBool,
    /// The sink has finished.
    pub sink_done: AtomicBool,
}

/// Joins a spawned thread and flattens its spawn error, panic and result into one.
fn join<T>(
    h: std::io::Result<std::thread::ScopedJoinHandle<'_, anyhow::Result<T>>>,
) -> anyhow::Result<T> {
    h.map_err(anyhow::Error::from).and_then(|h| {
        h.join()
            .map_err(|_| anyhow::anyhow!("a thread panicked"))
            .and_then(|r| r)
    })
}

fn node(raw: u16, what: &str) -> anyhow::Result<NodeId> {
    NodeId::new(raw).with_context(|| format!("--{what} {raw} is not a node id (1..=1023)"))
}

fn end_json(c: &EndCounts) -> Value {
    json!({
        "hellos_sent": c.hellos_sent,
        "hello_send_errors": c.hello_send_errors,
        "hellos_received": c.hellos_received,
        "hellos_ignored": c.hellos_ignored,
        "other_control": c.other_control,
        "link_ups": c.link_ups,
        "link_downs": c.link_downs,
        "srtt_us": c.srtt_us,
        "max_hello_gap_ms": c.max_hello_gap_us as f64 / 1000.0,
    })
}

/// Runs the generator and the sink against the node under test; returns the JSON report.
pub fn run(spec: &Spec) -> anyhow::Result<Value> {
    let config = Config::load(&spec.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (from, via, to) = (
        node(spec.from, "from")?,
        node(spec.via, "via")?,
        node(spec.to, "to")?,
    );
    let link_in = config
        .link_between(from, via)
        .with_context(|| format!("no link {from} - {via}"))?;
    let max_len = usize::from(link_in.mtu()).saturating_sub(IPV4_UDP_HEADERS);
    let fit = records_per_packet(spec.size, max_len);
    if spec.size < PROBE_HEADER_LEN || fit == 0 {
        bail!(
            "--size must be {PROBE_HEADER_LEN}..={} B on link {} (MTU {})",
            max_len.saturating_sub(LINK_HEADER_LEN + record_len(0)),
            link_in.id(),
            link_in.mtu()
        );
    }
    if !(spec.rate.is_finite() && spec.rate >= 0.0) {
        bail!("--rate must be 0 or a positive number");
    }
    if spec.flows == 0 {
        bail!("--flows must be at least 1");
    }
    let pack = if spec.pack == 0 {
        fit
    } else {
        spec.pack.min(fit)
    };
    // An incarnation for both fake nodes: seconds of the monotonic clock mixed with the pid.
    let incarnation =
        Incarnation(((monotonic_ns() / 1_000_000) as u32 ^ std::process::id().rotate_left(16)) | 1);
    let gen_end = FakeEnd::new(&config, from, via, incarnation)?;
    let sink_end = FakeEnd::new(&config, to, via, incarnation)?;
    let stream = DataStream::new(
        from,
        Port(spec.src_port),
        to,
        Port(spec.dst_port),
        incarnation,
        spec.flows,
        spec.size,
    );
    let plan = GenPlan {
        count: spec.count,
        rate: spec.rate,
        seconds: spec.seconds,
        pack,
        batch: spec.batch,
        max_len,
    };
    let sink_plan = SinkPlan {
        idle: Duration::from_millis(spec.idle_exit_ms),
        limit: Duration::from_secs_f64(spec.seconds.max(0.0) + 20.0),
        interval: (spec.timeline_ms > 0).then(|| Duration::from_millis(spec.timeline_ms)),
    };
    if spec.one_thread {
        let lp = LoopPlan {
            send: plan,
            sink: sink_plan,
            direct: spec.direct,
            min_packets: spec.min_packets,
            expect_sender: if spec.direct { from } else { via },
            wait: spec.wait,
            max_lag_us: spec.max_lag_us,
        };
        let cpu0 = sockopt::cpu_seconds();
        let (g, s, l) = one_thread::run(gen_end, sink_end, stream, lp)?;
        let cpu = sockopt::cpu_seconds() - cpu0;
        let mut v = report(spec, pack, &g, s, cpu)?;
        // One thread did both: its CPU time is `gen_cpu_s`.
        v["sink_cpu_s"] = Value::Null;
        v["loop"] = json!({
            "wait": l.wait,
            "direct": l.direct,
            "min_send_msgs": l.min_send_msgs,
            "turns": l.turns,
            "idle_turns": l.idle_turns,
            "pacing_lag_us": l.pacing_lag_us,
            "behind_at_end": l.behind_at_end,
            "max_lag_us": spec.max_lag_us,
            "skipped": l.skipped,
            "skips": l.skips,
            "msgs_per_send": l.msgs_per_send,
            "packets_per_receive": l.packets_per_receive,
            "wrong_sender": l.wrong_sender,
        });
        return Ok(v);
    }
    let shared = Shared::default();
    let cpu0 = sockopt::cpu_seconds();
    let (g, s) = std::thread::scope(|scope| {
        let sh = &shared;
        let sink = std::thread::Builder::new()
            .name("rawload-sink".into())
            .spawn_scoped(scope, move || sink::run(sink_end, sink_plan, sh));
        let generator = std::thread::Builder::new()
            .name("rawload-gen".into())
            .spawn_scoped(scope, move || generator::run(gen_end, stream, plan, sh));
        // The sink first: it stops only once the generator is done.
        let s = join(sink);
        let g = join(generator);
        (g, s)
    });
    let (g, s) = (g?, s?);
    let cpu = sockopt::cpu_seconds() - cpu0;
    report(spec, pack, &g, s, cpu)
}

/// The JSON report of one run (see the module doc).
fn report(
    spec: &Spec,
    pack: usize,
    g: &GenReport,
    s: SinkReport,
    cpu: f64,
) -> anyhow::Result<Value> {
    let summary = s.stats.summary(s.seconds);
    let mut v = serde_json::to_value(&summary)?;
    let secs = s.seconds.max(1e-9);
    v["mode"] = json!(spec.mode());
    v["size"] = json!(spec.size);
    v["pack"] = json!(pack);
    v["sent"] = json!(g.sent);
    v["send_errors"] = json!(g.send_errors);
    v["offered_rate"] = json!(g.sent as f64 / g.seconds.max(1e-9));
    v["target_rate"] = json!(spec.rate);
    v["undelivered"] = json!(g.sent.saturating_sub(summary.received));
    v["delivered_pct"] = json!(if g.sent > 0 {
        100.0 * summary.received as f64 / g.sent as f64
    } else {
        0.0
    });
    v["gbps"] = json!(s.data.payload_bytes as f64 * 8.0 / secs / 1e9);
    v["link_packets"] = json!(s.packets);
    v["link_gbps"] = json!(s.packet_bytes as f64 * 8.0 / secs / 1e9);
    v["records_per_link_packet"] = json!(s.data.records as f64 / (s.packets.max(1)) as f64);
    v["bad_packets"] = json!(s.bad_packets);
    v["sink_socket_drops"] = json!(s.socket_drops);
    v["first_error"] = json!(s.first_error);
    v["cpu_s"] = json!(cpu);
    v["gen_cpu_s"] = json!(g.cpu_s);
    v["sink_cpu_s"] = json!(s.cpu_s);
    v["rx_stamp"] = json!(s.rx.source.name());
    v["rx_stamp_missing"] = json!(s.rx.missing);
    v["latency_read_us"] = json!(s.rx.latency_read_us);
    v["rx_clock"] = json!({
        "offset_gap_ns": s.rx.offset_gap_ns,
        "offset_change_ns": s.rx.offset_change_ns,
    });
    v["gen"] = json!({
        "packets": g.packets,
        "syscalls": g.syscalls,
        "retries": g.retries,
        "seconds": g.seconds,
        "receives": s.receives,
    });
    v["source_end"] = end_json(&g.end);
    v["sink_end"] = end_json(&s.end);
    if !s.timeline.is_empty() {
        v["timeline"] = Value::Array(s.timeline);
    }
    Ok(v)
}
