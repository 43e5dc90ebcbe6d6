//! srt-compare: NM-Strikes beside SRT over the same emulated path, in one run.
//!
//! Weft: a 2-node overlay whose one link path runs through `weft-linkem`, with `weft gateway`s
//! carrying a UDP probe stream in a `realtime:DEADLINE:N:M` flow. SRT: `srt-live-transmit` in
//! live mode, caller and listener, the SRT connection through a `weft-linkem` relay with the
//! same settings (latency RTT/2 each way, the same loss model and seed). One probe source
//! (fixed rate and size, a sequence number and the send time in every datagram) and one sink
//! measure both: on time (received within the deadline of sending), late, lost, duplicates,
//! out of order, latency percentiles; the relay's counters give the bytes that crossed the path
//! in each direction. Runs alternate the systems; the table gives median (min–max).
//!
//! Needs `srt-live-transmit` (Debian: `apt-get install srt-tools`; it is not installed here) and
//! a release build: `cargo build --release -p weft-perf -p weft -p weft-dataplane
//! -p weft-controld -p weftctl -p weft-tests && target/release/srt-compare`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use serde_json::json;
use weft_perf::srt_compare::probe::{HEADER, Sink, Source};
use weft_perf::srt_compare::report::{Measurement, runs_table, summary_json, summary_table};
use weft_perf::srt_compare::srt::{SrtSide, check_installed};
use weft_perf::srt_compare::weft::{HELLO_MS, WeftSide};
use weft_perf::srt_compare::{
    PathModel, check_interrupted, load_average, relay_lateness, traffic_between, watch_signals,
};
use weft_tests::linkem::process::LinkemProcess;
use weft_tests::overlay::Addrs;

/// NM-Strikes (weft gateway, 2 nodes) beside SRT (srt-live-transmit) over one emulated path.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Seconds of probe traffic per measurement (1..=600).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Probe datagrams per second (1..=20000).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Probe datagram size in bytes (24..=1396; 1316 is 7 MPEG-TS packets).
    #[arg(long, default_value_t = 1316)]
    size: usize,
    /// Round-trip time of the emulated path (each direction gets half).
    #[arg(long, default_value_t = 60.0)]
    rtt_ms: f64,
    /// Loss probability of each direction.
    #[arg(long, default_value_t = 0.05)]
    loss: f64,
    /// Mean loss burst in packets (Gilbert model); Bernoulli loss without it.
    #[arg(long)]
    burst: Option<f64>,
    /// The relay's seed (the same for both systems).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The latency budget: on time = received within this of sending.
    #[arg(long, default_value_t = 200)]
    deadline_ms: u32,
    /// Runs; each measures every configuration, Weft and SRT alternating first (1..=20).
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Weft's N:M strikes, comma-separated (service realtime:DEADLINE:N:M); `none`: no Weft.
    #[arg(long, value_delimiter = ',', default_value = "3:2,3:3")]
    strikes: Vec<String>,
    /// SRT's `latency` (ms, both ends), comma-separated; `auto` is the deadline less the
    /// one-way delay less 20 ms, so SRT's fixed delivery delay fits in the deadline; `none`:
    /// no SRT.
    #[arg(long, value_delimiter = ',', default_value = "200,auto")]
    srt_latency: Vec<String>,
    /// The srt-live-transmit binary.
    #[arg(long, default_value = "srt-live-transmit")]
    srt_bin: PathBuf,
    /// Where Weft's binaries are (default: this program's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Also print the measurements and the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

enum System {
    Weft(String),
    Srt(u32),
}

impl System {
    fn label(&self) -> String {
        match self {
            System::Weft(s) => s.clone(),
            System::Srt(l) => format!("latency={l}"),
        }
    }
}

struct Bench {
    args: Args,
    model: PathModel,
    bins: PathBuf,
}

impl Bench {
    fn count(&self) -> u64 {
        self.args.seconds * self.args.rate
    }

    fn measure(&self, run: u32, system: &System) -> Result<Measurement> {
        let a = &self.args;
        let label = system.label();
        let tag: String = format!("r{run}-{label}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let addrs = Addrs::new(&tag);
        let deadline = Duration::from_millis(u64::from(a.deadline_ms));
        let sink = Sink::start(addrs.host(0, 100, 6000), self.count())?;
        let limit = Duration::from_secs(a.seconds + 120);
        // The side is held until the figures are taken; dropping it stops its processes.
        let (weft, srt, input) = match system {
            System::Weft(service) => {
                let w = WeftSide::start(&self.bins, &tag, &self.model, service, sink.addr())?;
                let input = w.input;
                (Some(w), None, input)
            }
            System::Srt(latency) => {
                let s = SrtSide::start(
                    &self.bins,
                    &a.srt_bin,
                    &tag,
                    &self.model,
                    *latency,
                    sink.addr(),
                    limit,
                )?;
                let input = s.input;
                (None, Some(s), input)
            }
        };
        let relay: &LinkemProcess = match (&weft, &srt) {
            (Some(w), _) => w.relay(),
            (_, Some(s)) => s.relay(),
            _ => bail!("no side started"),
        };
        let source = Source::new(addrs.host(0, 102, 0), input, a.size)?;
        source
            .warm_up(&sink, Duration::from_secs(15), Duration::from_millis(500))
            .with_context(|| format!("{} {label}", system_name(system)))?;
        let load_before = load_average();
        let before = relay.stats();
        let (errors, behind) = source.run(self.count(), a.rate);
        check_interrupted()?;
        // Everything still in flight arrives or is given up within the deadline.
        std::thread::sleep(deadline + Duration::from_millis(500));
        let after = relay.stats();
        let load_after = load_average();
        let extra = weft.as_ref().map_or(json!({}), WeftSide::counters);
        drop(weft);
        drop(srt);
        let probe = sink.finish(self.count(), deadline)?;
        let (fwd, rev) = traffic_between(&before, &after);
        let (late0, _) = relay_lateness(&before);
        let (late1, max_late) = relay_lateness(&after);
        Ok(Measurement {
            system: system_name(system),
            config: label,
            run,
            payload_bytes: probe.sent * a.size as u64,
            probe,
            fwd,
            rev,
            load: (load_before, load_after),
            relay_late: (late1.saturating_sub(late0), max_late),
            source: (behind, errors),
            extra,
        })
    }
}

fn system_name(s: &System) -> &'static str {
    match s {
        System::Weft(_) => "weft",
        System::Srt(_) => "srt",
    }
}

fn systems(args: &Args, one_way_ms: f64) -> Result<(Vec<System>, Vec<System>)> {
    let mut weft = Vec::new();
    for s in args.strikes.iter().filter(|s| *s != "none") {
        let ok = s.split_once(':').is_some_and(|(n, m)| {
            n.parse::<u8>().is_ok_and(|n| n <= 7) && m.parse::<u8>().is_ok_and(|m| m <= 7)
        });
        if !ok {
            bail!("--strikes: bad N:M {s:?}; expected e.g. 3:2");
        }
        weft.push(System::Weft(format!("realtime:{}:{s}", args.deadline_ms)));
    }
    let mut srt = Vec::new();
    for l in args.srt_latency.iter().filter(|s| *s != "none") {
        let ms = if l == "auto" {
            let auto = f64::from(args.deadline_ms) - one_way_ms - 20.0;
            if auto < 20.0 {
                bail!("--srt-latency auto: the deadline leaves {auto} ms for SRT's buffer");
            }
            auto.round() as u32
        } else {
            l.parse()
                .ok()
                .filter(|v| (20..=10_000).contains(v))
                .with_context(|| {
                    format!("--srt-latency: bad value {l:?}; expected 20..=10000 or auto")
                })?
        };
        srt.push(System::Srt(ms));
    }
    Ok((weft, srt))
}

fn main() -> Result<()> {
    watch_signals()?;
    let args = Args::parse();
    if !(1..=600).contains(&args.seconds)
        || !(1..=20_000).contains(&args.rate)
        || !(HEADER..=1396).contains(&args.size)
        || !(1..=20).contains(&args.runs)
    {
        bail!("--seconds 1..=600, --rate 1..=20000, --size {HEADER}..=1396, --runs 1..=20");
    }
    if !(0.0..1.0).contains(&args.loss) || !(0.0..=2000.0).contains(&args.rtt_ms) {
        bail!("--loss in [0, 1), --rtt-ms in 0..=2000");
    }
    let srt_version = check_installed(&args.srt_bin)?;
    let bins = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .context("this program's directory")?,
    };
    for b in [
        "weft",
        "weft-dataplane",
        "weft-controld",
        "weftctl",
        "weft-linkem",
    ] {
        if !bins.join(b).is_file() {
            bail!(
                "{} not found: build it first (cargo build --release -p weft -p weft-dataplane \
                 -p weft-controld -p weftctl -p weft-tests) or pass --bin-dir",
                bins.join(b).display()
            );
        }
    }
    let model = PathModel {
        one_way_ms: args.rtt_ms / 2.0,
        loss: args.loss,
        burst: args.burst,
        seed: args.seed,
    };
    let (weft, srt) = systems(&args, model.one_way_ms)?;
    eprintln!(
        "srt-compare: path {}; probe {} datagrams/s of {} B for {} s; deadline {} ms; {} runs; \
         Weft hellos every {HELLO_MS} ms; {srt_version}",
        model.describe(),
        args.rate,
        args.size,
        args.seconds,
        args.deadline_ms,
        args.runs
    );
    let bench = Bench { args, model, bins };
    let started = Instant::now();
    let mut all = Vec::new();
    for run in 1..=bench.args.runs {
        let order: Vec<&System> = if run % 2 == 1 {
            weft.iter().chain(srt.iter()).collect()
        } else {
            srt.iter().chain(weft.iter()).collect()
        };
        for s in order {
            check_interrupted()?;
            let m = bench.measure(run, s)?;
            eprintln!(
                "run {run} {} {}: on time {:.3} % ({} late, {} lost), overhead {:.4} (fwd {:.4}), \
                 p50 {:.1} ms, p99 {:.1} ms, load {:?}→{:?}",
                m.system,
                m.config,
                m.probe.on_time_pct(),
                m.probe.late,
                m.probe.lost,
                m.overhead_total(),
                m.overhead_fwd(),
                m.probe.latency_ms[0],
                m.probe.latency_ms[1],
                m.load.0,
                m.load.1
            );
            all.push(m);
        }
    }
    println!("Path: {}", bench.model.describe());
    println!(
        "Probe: {} datagrams/s of {} B for {} s per measurement; on time = within {} ms of sending.\n",
        bench.args.rate, bench.args.size, bench.args.seconds, bench.args.deadline_ms
    );
    println!("{}", runs_table(&all));
    println!("{}", summary_table(&all));
    println!("wall time {:.0} s", started.elapsed().as_secs_f64());
    if bench.args.json {
        let a = &bench.args;
        let out = json!({
            "params": {
                "seconds": a.seconds, "rate": a.rate, "size": a.size, "rtt_ms": a.rtt_ms,
                "loss": a.loss, "burst": a.burst, "seed": a.seed, "deadline_ms": a.deadline_ms,
                "runs": a.runs, "weft_hello_ms": HELLO_MS, "srt_version": srt_version,
            },
            "measurements": all.iter().map(Measurement::json).collect::<Vec<_>>(),
            "summary": summary_json(&all),
        });
        println!("{out}");
    }
    Ok(())
}
