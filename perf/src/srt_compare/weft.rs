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
//! all cross it and are counted. [`Line`] is the overlay part on its own, for any number of
//! nodes on a line (each link through a relay of its own); `reliable-goodput` uses it too.

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
    line: Line,
    /// Where the probe sends.
    pub input: SocketAddr,
}

/// Nodes 1..=n on a line, node k joined to node k + 1 by link k − 1, each link with one path
/// (the nodes are single-homed) through a `weft-linkem` relay of its own, with `model` on both
/// directions. Each node is a `weft-dataplane` and a `weft-controld`. Dropping it stops every
/// process it started (the ones spawned into it too, last started first), then the relays.
pub struct Line {
    procs: Procs,
    relays: Vec<LinkemProcess>,
    config: PathBuf,
    bins: PathBuf,
    shm: Vec<String>,
    nodes: u16,
    dir: TempDir,
}

fn node_config(
    name: &str,
    addrs: &Addrs,
    dir: &Path,
    nodes: u16,
    one_way_ms: f64,
) -> (String, Vec<String>) {
    let pid = std::process::id();
    let shm: Vec<String> = (1..=nodes)
        .map(|n| format!("weft-srtcmp-{pid}-{name}-n{n}"))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get().min(64) as u16);
    let mut s = format!(
        "schema = 1\n[overlay]\nname = \"{name}\"\n[timers]\nhello_interval_ms = {HELLO_MS}\n\
         path_dead_after_ms = 100\npath_up_after_hellos = 3\n"
    );
    for n in 1u16..=nodes {
        let d = dir.display();
        let _ = write!(
            s,
            "[[node]]\nid = {n}\nname = \"n{n}\"\ncores = [{core}]\nsession_socket = \"{d}/n{n}.sock\"\n\
             ctl_socket = \"{d}/n{n}.ctl\"\nshm_name = \"{shm}\"\n[[node.interface]]\nisp = \"a\"\n\
             addr = \"{addr}\"\n",
            core = (n - 1) % cores,
            shm = shm[usize::from(n - 1)],
            addr = addrs.node(n, 0),
        );
    }
    let cost = (one_way_ms * 1000.0).round().max(1.0);
    for l in 0..nodes.saturating_sub(1) {
        let _ = write!(
            s,
            "[[link]]\nid = {l}\nnodes = [{}, {}]\ncost = {cost}\n",
            l + 1,
            l + 2
        );
    }
    (s, shm)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

impl Line {
    /// Starts the relays, then the data planes and control planes of `nodes` (2..=64) nodes,
    /// and waits until every node has a route to every other. `tag` makes names and addresses
    /// unique to this measurement.
    pub fn start(bins: &Path, tag: &str, nodes: u16, model: &PathModel) -> Result<Line> {
        if !(2..=64).contains(&nodes) {
            bail!("a line of {nodes} nodes: 2..=64");
        }
        let dir = TempDir::new(tag)?;
        let addrs = Addrs::new(tag);
        let (text, shm) = node_config(tag, &addrs, dir.path(), nodes, model.one_way_ms);
        let config = dir.path().join("overlay.toml");
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        let mut relays = Vec::new();
        // Each data plane's `--remote LINK:0=<its side of the link's relay>`.
        let mut remotes: Vec<Vec<String>> = vec![Vec::new(); usize::from(nodes)];
        for l in 0..nodes - 1 {
            let relay_addrs = RelayAddrs {
                a_side: addrs.relay(l, 0),
                b_side: addrs.relay(l, 1),
                to_a: addrs.node(l + 1, 0),
                to_b: addrs.node(l + 2, 0),
            };
            // The 2-node line keeps srt-compare's layout: the relay's files in the directory.
            let rdir = if nodes == 2 {
                dir.path().to_owned()
            } else {
                let d = dir.path().join(format!("link{l}"));
                std::fs::create_dir_all(&d)?;
                d
            };
            relays.push(start_relay(bins, &rdir, &relay_addrs, model));
            for (n, side) in [(l, relay_addrs.a_side), (l + 1, relay_addrs.b_side)] {
                remotes[usize::from(n)].extend(["--remote".to_owned(), format!("{l}:0={side}")]);
            }
        }
        let mut procs = Procs::new(dir.path());
        let cfg = config.display().to_string();
        let d = dir.path().to_owned();
        for n in 1u16..=nodes {
            let name = format!("n{n}-dataplane");
            let mut args = strings(&["--config", &cfg, "--id", &n.to_string()]);
            args.extend(remotes[usize::from(n - 1)].iter().cloned());
            procs.spawn(&name, &bins.join("weft-dataplane"), &args)?;
            let attach = d.join(format!("n{n}.sock.attach"));
            procs.wait_until(&name, "attach socket", Duration::from_secs(20), |_| {
                std::os::unix::net::UnixStream::connect(&attach).is_ok()
            })?;
        }
        for n in 1u16..=nodes {
            let name = format!("n{n}-controld");
            let args = strings(&["--config", &cfg, "--id", &n.to_string()]);
            procs.spawn(&name, &bins.join("weft-controld"), &args)?;
            let ctl = d.join(format!("n{n}.ctl"));
            procs.wait_until(&name, "ctl socket", Duration::from_secs(20), |_| {
                std::os::unix::net::UnixStream::connect(&ctl).is_ok()
            })?;
        }
        let mut line = Line {
            procs,
            relays,
            config,
            bins: bins.to_owned(),
            shm,
            nodes,
            dir,
        };
        line.wait_routes(Duration::from_secs(15))?;
        Ok(line)
    }

    /// Node `n`'s session socket.
    pub fn session_socket(&self, n: u16) -> PathBuf {
        self.dir.path().join(format!("n{n}.sock"))
    }

    /// The child-process guard: processes spawned into it stop before the nodes.
    pub fn procs(&mut self) -> &mut Procs {
        &mut self.procs
    }
    /// `weftctl --json ARGS` on node `n`.
    pub fn weftctl(&self, n: u16, args: &[&str]) -> Result<Value> {
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
        let others = u64::from(self.nodes - 1);
        for n in 1u16..=self.nodes {
            loop {
                let fib = self.weftctl(n, &["show", "fib"]).ok();
                if fib.is_some_and(|v| v["unicast_count"].as_u64() == Some(others)) {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    bail!(
                        "node {n} has no route to every other node after {within:?}:\n{}",
                        self.procs.output(&format!("n{n}-dataplane"))
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The relays, link 0 first.
    pub fn relays(&self) -> &[LinkemProcess] {
        &self.relays
    }

    /// Node `n`'s counters (`weftctl show counters`, the total over its workers); `Null` if
    /// weftctl failed.
    pub fn total_counters(&self, n: u16) -> Value {
        self.weftctl(n, &["show", "counters"])
            .map(|v| v["total"].clone())
            .unwrap_or(Value::Null)
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.procs.stop_all();
        for s in &self.shm {
            let _ = std::fs::remove_file(format!("/dev/shm/{s}"));
        }
        // The relays (a field) stop after the nodes; the directory after them.
    }
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
        let line = Line::start(bins, tag, 2, model)?;
        let input = Addrs::new(tag).host(0, 101, 5000);
        let mut side = WeftSide { line, input };
        let sock = |n: u16| side.line.session_socket(n).display().to_string();
        let (sock1, sock2) = (sock(1), sock(2));
        let egress = strings(&[
            "gateway",
            "--socket",
            &sock2,
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
            &sock1,
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
        let weft = self.line.bins.join("weft");
        let procs = self.line.procs();
        procs.spawn(name, &weft, args)?;
        procs.wait_until(name, "ready", Duration::from_secs(10), |p| {
            p.output(name).lines().any(|l| l.ends_with(": ready"))
        })
    }

    /// The relay of the path.
    pub fn relay(&self) -> &LinkemProcess {
        &self.line.relays[0]
    }

    /// The nodes' real-time counters: node 1 (sender) and node 2 (destination).
    pub fn counters(&self) -> Value {
        let (t1, t2) = (self.line.total_counters(1), self.line.total_counters(2));
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
