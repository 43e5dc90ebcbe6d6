//! `srt-compare`: NM-Strikes (through two `weft gateway`s and a 2-node overlay) beside SRT
//! (`srt-live-transmit` in live mode) over the same `weft-linkem` path, measured by one probe.
//!
//! This module holds what both sides share: the guard of child processes, temporary
//! directories, the emulated path's settings and the relay, and the relay's counters turned
//! into overhead figures. `probe` is the paced source and the sink, `weft` and `srt` start
//! each side, `report` prints the table. The binary is `perf/src/bin/srt-compare.rs`.

pub mod probe;
pub mod report;
pub mod srt;
pub mod weft;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use weft_tests::linkem::process::LinkemProcess;

/// The emulated path, the same for both sides: each direction gets `one_way_ms` of latency and
/// the same loss model, seeded alike.
#[derive(Clone, Debug)]
pub struct PathModel {
    /// One-way latency of each direction (RTT / 2), ms.
    pub one_way_ms: f64,
    /// Loss probability of each direction (the average, with `burst`).
    pub loss: f64,
    /// Mean loss burst in packets (Gilbert model), or Bernoulli loss when `None`.
    pub burst: Option<f64>,
    /// The relay's seed.
    pub seed: u64,
}

impl PathModel {
    /// The relay's command-line settings.
    fn relay_args(&self) -> Vec<String> {
        let mut a = vec![
            "--latency-ms".to_owned(),
            self.one_way_ms.to_string(),
            "--loss".to_owned(),
            self.loss.to_string(),
            "--seed".to_owned(),
            self.seed.to_string(),
        ];
        if let Some(b) = self.burst {
            a.extend(["--burst".to_owned(), b.to_string()]);
        }
        a
    }

    /// As printed in reports.
    pub fn describe(&self) -> String {
        let loss = match self.burst {
            Some(b) => format!("Gilbert {:.1} % loss, mean burst {b}", self.loss * 100.0),
            None => format!("Bernoulli {:.1} % loss", self.loss * 100.0),
        };
        format!(
            "{} ms each way (RTT {} ms), {loss} each way, seed {}",
            self.one_way_ms,
            self.one_way_ms * 2.0,
            self.seed
        )
    }
}

/// One relayed path: a side faces the sender, b side the receiver.
#[derive(Clone, Copy, Debug)]
pub struct RelayAddrs {
    /// Bound by the relay, facing the sender.
    pub a_side: SocketAddr,
    /// Bound by the relay, facing the receiver.
    pub b_side: SocketAddr,
    /// The sender's address (where b→a traffic goes).
    pub to_a: SocketAddr,
    /// The receiver's address (where a→b traffic goes).
    pub to_b: SocketAddr,
}

/// Starts `weft-linkem relay` for one path with `model` on both directions.
pub fn start_relay(
    bins: &Path,
    dir: &Path,
    addrs: &RelayAddrs,
    model: &PathModel,
) -> LinkemProcess {
    let mut args = vec![
        "--name".to_owned(),
        "p0".to_owned(),
        "--a-side".to_owned(),
        addrs.a_side.to_string(),
        "--b-side".to_owned(),
        addrs.b_side.to_string(),
        "--to-a".to_owned(),
        addrs.to_a.to_string(),
        "--to-b".to_owned(),
        addrs.to_b.to_string(),
    ];
    args.extend(model.relay_args());
    LinkemProcess::start(
        &bins.join("weft-linkem"),
        &args,
        &dir.join("linkem.ctl"),
        &dir.join("linkem.log"),
    )
}

/// Counters of one direction of the relayed path over the measured window.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirTraffic {
    /// Datagrams that arrived at the relay.
    pub offered: u64,
    /// Datagrams the relay passed on.
    pub delivered: u64,
    /// Datagrams its loss model dropped.
    pub lost: u64,
    /// UDP payload bytes it passed on.
    pub delivered_bytes: u64,
    /// Datagrams the rate limit's queue dropped (tail drop; 0 without a rate limit).
    pub queue_drops: u64,
}

impl DirTraffic {
    fn from_json(d: &Value) -> DirTraffic {
        let n = |k: &str| d[k].as_u64().unwrap_or(0);
        DirTraffic {
            offered: n("offered"),
            delivered: n("delivered"),
            lost: n("lost"),
            delivered_bytes: n("delivered_bytes"),
            queue_drops: n("queue_drops"),
        }
    }

    fn minus(self, before: DirTraffic) -> DirTraffic {
        DirTraffic {
            offered: self.offered.saturating_sub(before.offered),
            delivered: self.delivered.saturating_sub(before.delivered),
            lost: self.lost.saturating_sub(before.lost),
            delivered_bytes: self.delivered_bytes.saturating_sub(before.delivered_bytes),
            queue_drops: self.queue_drops.saturating_sub(before.queue_drops),
        }
    }

    /// UDP payload bytes sent into the path: the relay counts bytes only of what it passes
    /// on, so the bytes of lost datagrams are estimated at the mean size of the delivered ones.
    pub fn offered_bytes(&self) -> f64 {
        if self.delivered == 0 {
            return 0.0;
        }
        self.delivered_bytes as f64 * self.offered as f64 / self.delivered as f64
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "offered": self.offered,
            "delivered": self.delivered,
            "lost": self.lost,
            "delivered_bytes": self.delivered_bytes,
            "queue_drops": self.queue_drops,
            "offered_bytes_est": self.offered_bytes().round(),
        })
    }
}

/// Both directions of path `p0` in a relay's `stats` reply.
pub fn path_traffic(stats: &Value) -> (DirTraffic, DirTraffic) {
    let p = &stats["paths"][0];
    (
        DirTraffic::from_json(&p["a_to_b"]),
        DirTraffic::from_json(&p["b_to_a"]),
    )
}

/// The path's traffic between two `stats` replies.
pub fn traffic_between(before: &Value, after: &Value) -> (DirTraffic, DirTraffic) {
    let (f0, r0) = path_traffic(before);
    let (f1, r1) = path_traffic(after);
    (f1.minus(f0), r1.minus(r0))
}

/// Whether the relay kept its timing: datagrams sent over 1 ms late, and the worst lateness.
pub fn relay_lateness(stats: &Value) -> (u64, u64) {
    let p = &stats["paths"][0];
    let sum = |k: &str| p["a_to_b"][k].as_u64().unwrap_or(0) + p["b_to_a"][k].as_u64().unwrap_or(0);
    let max = |k: &str| {
        p["a_to_b"][k]
            .as_u64()
            .unwrap_or(0)
            .max(p["b_to_a"][k].as_u64().unwrap_or(0))
    };
    (sum("late_1ms"), max("max_late_us"))
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (call it first, in `main`: threads and
/// children inherit the mask) and waits for them on a thread of their own, which sets the
/// flag [`interrupted`] reads. Every wait and the probe's source check it, so the run ends
/// early and the guards stop every child. (Weft's processes take their signals from a
/// signalfd, so the inherited mask does not matter to them; `srt-live-transmit` is stopped
/// with SIGKILL.)
pub fn watch_signals() -> Result<()> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        mask.add(s);
    }
    mask.thread_block()
        .context("blocking SIGINT/SIGTERM/SIGHUP")?;
    std::thread::spawn(move || {
        if mask.wait().is_ok() {
            INTERRUPTED.store(true, Ordering::Relaxed);
        }
    });
    Ok(())
}

/// Whether a signal asked the run to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Fails if a signal asked the run to stop.
pub fn check_interrupted() -> Result<()> {
    if interrupted() {
        bail!("interrupted by a signal");
    }
    Ok(())
}

/// Child processes, stopped in reverse start order when dropped: each with its stop signal,
/// then SIGKILL after 3 s. Output goes to files in a directory.
pub struct Procs {
    children: Vec<(String, Child, Signal)>,
    logs: PathBuf,
}

impl Procs {
    /// An empty guard whose children log into `logs`.
    pub fn new(logs: &Path) -> Procs {
        Procs {
            children: Vec::new(),
            logs: logs.to_owned(),
        }
    }

    /// Starts `bin ARGS` as `name`, stdout in `<name>.out`, stderr in `<name>.err`, stopped
    /// with SIGTERM.
    pub fn spawn(&mut self, name: &str, bin: &Path, args: &[String]) -> Result<()> {
        self.spawn_with(name, bin, args, Signal::SIGTERM)
    }

    /// Like [`Procs::spawn`], stopped with `stop`.
    pub fn spawn_with(
        &mut self,
        name: &str,
        bin: &Path,
        args: &[String],
        stop: Signal,
    ) -> Result<()> {
        let out = std::fs::File::create(self.logs.join(format!("{name}.out")))?;
        let err = std::fs::File::create(self.logs.join(format!("{name}.err")))?;
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({})", bin.display()))?;
        self.children.push((name.to_owned(), child, stop));
        Ok(())
    }

    /// What `name` printed so far (stdout, then stderr).
    pub fn output(&self, name: &str) -> String {
        let read = |ext: &str| {
            std::fs::read_to_string(self.logs.join(format!("{name}.{ext}"))).unwrap_or_default()
        };
        format!("{}{}", read("out"), read("err"))
    }

    /// Fails if `name` has exited.
    pub fn check_running(&mut self, name: &str) -> Result<()> {
        let exited = self
            .children
            .iter_mut()
            .find(|(n, _, _)| n == name)
            .and_then(|(_, c, _)| c.try_wait().ok().flatten());
        if let Some(status) = exited {
            bail!("{name} exited ({status}):\n{}", self.output(name));
        }
        Ok(())
    }

    /// Waits up to `within` until `ready` holds, failing early if `name` exits.
    pub fn wait_until(
        &mut self,
        name: &str,
        what: &str,
        within: Duration,
        mut ready: impl FnMut(&Procs) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + within;
        while !ready(self) {
            check_interrupted()?;
            self.check_running(name)?;
            if Instant::now() > deadline {
                bail!(
                    "{name}: {what} not within {within:?}; its output:\n{}",
                    self.output(name)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Stops every child (last started first).
    pub fn stop_all(&mut self) {
        while let Some((_, mut child, stop)) = self.children.pop() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), stop);
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A directory of its own under the system's temp directory, removed when dropped (unless
/// `WEFT_KEEP_TMP` is set, to read the logs).
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/weft-srt-compare-<pid>-<label>`, empty.
    pub fn new(label: &str) -> Result<TempDir> {
        let p =
            std::env::temp_dir().join(format!("weft-srt-compare-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("WEFT_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
