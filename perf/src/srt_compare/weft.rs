//! The Weft side of `srt-compare`: two nodes joined by one link with one path, which runs
//! through `weft-linkem`; an ingress `weft gateway` on node 1 (the probe sends to it) opens a
//! real-time flow to an egress gateway on node 2, which delivers to the probe's sink.
//!
//! ```text
//!  probe -> gateway -> node 1 ── weft-linkem ──> node 2 -> gateway -> probe sink
//! ```
//!
//! Each node is a `weft-dataplane` and a `weft-controld` (one core each), single-homed (one
//! ISP), so the link has exactly the one path the relay emulates: hellos, Nacks and copies
//! all cross it and are counted.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use weft_tests::linkem::process::LinkemProcess;
use weft_tests::overlay::Addrs;

use super::{PathModel, Procs, RelayAddrs, TempDir, start_relay};

/// Hello interval of both nodes (the example config's value).
pub const HELLO_MS: u32 = 10;
/// The overlay port of the egress mapping.
const PORT: u16 = 5000;

/// A running Weft side; dropping it stops everything (gateways first, the relay last).
pub struct WeftSide {
    procs: Procs,
    relay: LinkemProcess,
    config: PathBuf,
    bins: PathBuf,
    shm: [String; 2],
    /// Where the probe sends.
    pub input: SocketAddr,
    _dir: TempDir,
}

fn node_config(name: &str, addrs: &Addrs, dir: &Path, one_way_ms: f64) -> (String, [String; 2]) {
    let pid = std::process::id();
    let shm = [1, 2].map(|n| format!("weft-srtcmp-{pid}-{name}-n{n}"));
    let mut s = format!(
        "schema = 1\n[overlay]\nname = \"{name}\"\n[timers]\nhello_interval_ms = {HELLO_MS}\n\
         path_dead_after_ms = 100\npath_up_after_hellos = 3\n"
    );
    for n in 1u16..=2 {
        let d = dir.display();
        let _ = write!(
            s,
            "[[node]]\nid = {n}\nname = \"n{n}\"\ncores = [{core}]\nsession_socket = \"{d}/n{n}.sock\"\n\
             ctl_socket = \"{d}/n{n}.ctl\"\nshm_name = \"{shm}\"\n[[node.interface]]\nisp = \"a\"\n\
             addr = \"{addr}\"\n",
            core = n - 1,
            shm = shm[usize::from(n - 1)],
            addr = addrs.node(n, 0),
        );
    }
    let cost = (one_way_ms * 1000.0).round().max(1.0);
    let _ = write!(s, "[[link]]\nid = 0\nnodes = [1, 2]\ncost = {cost}\n");
    (s, shm)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

impl WeftSide {
    /// Starts the relay, both nodes and both gateways (the flow with `service`), the egress
    /// delivering to `sink`. `tag` makes names and addresses unique to this measurement.
    pub fn start(
        bins: &Path,
        tag: &str,
        model: &PathModel,
        service: &str,
        sink: SocketAddr,
    ) -> Result<WeftSide> {
        let dir = TempDir::new(tag)?;
        let addrs = Addrs::new(tag);
        let (text, shm) = node_config(tag, &addrs, dir.path(), model.one_way_ms);
        let config = dir.path().join("overlay.toml");
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        let relay_addrs = RelayAddrs {
            a_side: addrs.relay(0, 0),
            b_side: addrs.relay(0, 1),
            to_a: addrs.node(1, 0),
            to_b: addrs.node(2, 0),
        };
        let relay = start_relay(bins, dir.path(), &relay_addrs, model);
        let mut procs = Procs::new(dir.path());
        let cfg = config.display().to_string();
        let d = dir.path().to_owned();
        for (n, side) in [(1u16, relay_addrs.a_side), (2, relay_addrs.b_side)] {
            let name = format!("n{n}-dataplane");
            let args = strings(&["--config", &cfg, "--id", &n.to_string()]);
            let mut args = args;
            args.extend(["--remote".to_owned(), format!("0:0={side}")]);
            procs.spawn(&name, &bins.join("weft-dataplane"), &args)?;
            let attach = d.join(format!("n{n}.sock.attach"));
            procs.wait_until(&name, "attach socket", Duration::from_secs(20), |_| {
                std::os::unix::net::UnixStream::connect(&attach).is_ok()
            })?;
        }
        for n in 1u16..=2 {
            let name = format!("n{n}-controld");
            let args = strings(&["--config", &cfg, "--id", &n.to_string()]);
            procs.spawn(&name, &bins.join("weft-controld"), &args)?;
            let ctl = d.join(format!("n{n}.ctl"));
            procs.wait_until(&name, "ctl socket", Duration::from_secs(20), |_| {
                std::os::unix::net::UnixStream::connect(&ctl).is_ok()
            })?;
        }
        let mut side = WeftSide {
            procs,
            relay,
            config,
            bins: bins.to_owned(),
            shm,
            input: addrs.host(0, 101, 5000),
            _dir: dir,
        };
        side.wait_routes(Duration::from_secs(15))?;
        let sock = |n: u16| d.join(format!("n{n}.sock")).display().to_string();
        let egress = strings(&[
            "gateway",
            "--socket",
            &sock(2),
            "--port",
            &PORT.to_string(),
            "--deliver",
            &sink.to_string(),
            "--json",
        ]);
        side.start_gateway("egress", &egress)?;
        let ingress = strings(&[
            "gateway",
            "--socket",
            &sock(1),
            "--listen",
            &side.input.to_string(),
            "--to",
            &format!("2:{PORT}"),
            "--service",
            service,
            "--json",
        ]);
        side.start_gateway("ingress", &ingress)?;
        Ok(side)
    }

    fn start_gateway(&mut self, name: &str, args: &[String]) -> Result<()> {
        let weft = self.bins.join("weft");
        self.procs.spawn(name, &weft, args)?;
        self.procs
            .wait_until(name, "ready", Duration::from_secs(10), |p| {
                p.output(name).lines().any(|l| l.ends_with(": ready"))
            })
    }

    /// `weftctl --json ARGS` on node `n`.
    fn weftctl(&self, n: u16, args: &[&str]) -> Result<Value> {
        let out = Command::new(self.bins.join("weftctl"))
            .arg("--json")
            .arg("--config")
            .arg(&self.config)
            .args(["--id", &n.to_string()])
            .args(args)
            .output()
            .context("running weftctl")?;
        if !out.status.success() {
            bail!(
                "weftctl {args:?} on node {n}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn wait_routes(&mut self, within: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + within;
        for n in 1u16..=2 {
            loop {
                let fib = self.weftctl(n, &["show", "fib"]).ok();
                if fib.is_some_and(|v| v["unicast_count"].as_u64() == Some(1)) {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    bail!(
                        "node {n} has no route to the other node after {within:?}:\n{}",
                        self.procs.output(&format!("n{n}-dataplane"))
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The relay of the path.
    pub fn relay(&self) -> &LinkemProcess {
        &self.relay
    }

    /// The nodes' real-time counters: node 1 (sender) and node 2 (destination).
    pub fn counters(&self) -> Value {
        let total = |n: u16| {
            self.weftctl(n, &["show", "counters"])
                .map(|v| v["total"].clone())
                .unwrap_or(Value::Null)
        };
        let (t1, t2) = (total(1), total(2));
        let pick = |t: &Value, k: &str| t[k].as_u64().unwrap_or(0);
        json!({
            "n1_rt_retransmitted": pick(&t1, "rt_retransmitted"),
            "n2_rt_requested": pick(&t2, "rt_requested"),
            "n2_rt_on_time": pick(&t2, "rt_on_time"),
            "n2_rt_recovered": pick(&t2, "rt_recovered"),
            "n2_rt_late": pick(&t2, "rt_late"),
            "n2_rt_lost": pick(&t2, "rt_lost"),
        })
    }
}

impl Drop for WeftSide {
    fn drop(&mut self) {
        self.procs.stop_all();
        for s in &self.shm {
            let _ = std::fs::remove_file(format!("/dev/shm/{s}"));
        }
        // The relay (a field) stops after the nodes; the directory after it.
    }
}
