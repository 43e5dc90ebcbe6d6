//! The `weft-controld` binary: a node's control plane. It attaches to the node's running data
//! plane, runs link-state routing and publishes FIB generations until SIGINT/SIGTERM.
//! `--static-routes` instead publishes the config's shortest paths once and exits.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use weft_controld::attach::{attach, attach_socket_path};
use weft_controld::ctl_server::CtlServer;
use weft_controld::daemon::Daemon;
use weft_controld::static_routes;
use weft_controld::status;
use weft_shared::config::Config;
use weft_shared::ids::{Incarnation, NodeId};
use weft_shared::time::Instant;

/// Weft's control plane.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The overlay's config file.
    #[arg(long)]
    config: PathBuf,
    /// This node's id in the config.
    #[arg(long)]
    id: u16,
    /// The data plane's attach socket (default: `<session_socket>.attach` from the config).
    #[arg(long)]
    attach: Option<PathBuf>,
    /// The data plane's shared-memory name, when it was started with `--shm-name` (default:
    /// the node's `shm_name` from the config).
    #[arg(long)]
    shm_name: Option<String>,
    /// The link-state incarnation (nonzero; decimal or 0x hex). Default: the wall clock in
    /// seconds, so a restarted control plane is newer than the one before.
    #[arg(long, value_parser = parse_incarnation)]
    incarnation: Option<u32>,
    /// How often to read the data plane's link statistics, in milliseconds.
    #[arg(long, default_value_t = 5)]
    stats_interval_ms: u64,
    /// Publish shortest paths over the configured links at their base costs, then exit
    /// (no link state: routes never change).
    #[arg(long)]
    static_routes: bool,
    /// How long to keep trying to reach the data plane at start, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
}

fn parse_incarnation(s: &str) -> Result<u32, String> {
    let v = match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("{s}: {e}"))?;
    if v == 0 {
        return Err("the incarnation must be nonzero".into());
    }
    Ok(v)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("weft-controld: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::load(&args.config)?;
    let node = NodeId::new(args.id)
        .filter(|id| config.node(*id).is_some())
        .with_context(|| {
            format!(
                "--id {}: no such node in {}",
                args.id,
                args.config.display()
            )
        })?;
    let timeout = Duration::from_millis(args.timeout_ms);
    if args.static_routes {
        return run_static(&config, node, timeout);
    }
    // Signals go to the signalfd only.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block().context("blocking SIGINT/SIGTERM")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("creating the signalfd")?;

    let attach_path = match args.attach {
        Some(p) => p,
        None => attach_socket_path(&config, node)?,
    };
    let shm_name = args
        .shm_name
        .clone()
        .or_else(|| config.node(node).map(|n| n.shm_name().to_owned()))
        .unwrap_or_default();
    let attachment = attach(&attach_path, &shm_name, &config, timeout)?;
    let incarnation = Incarnation(match args.incarnation {
        Some(i) => i,
        None => wall_clock_incarnation(),
    });
    let config = Arc::new(config);
    let mut daemon = Daemon::new(
        config.clone(),
        node,
        incarnation,
        attachment,
        Duration::from_millis(args.stats_interval_ms.max(1)),
    )?;
    let ctl_path = config
        .node(node)
        .map(|n| n.ctl_socket().to_owned())
        .context("node not in config")?;
    let mut ctl = CtlServer::bind(&ctl_path)
        .with_context(|| format!("serving weftctl on {}", ctl_path.display()))?;
    let dataplane_pid = daemon.dataplane_pid();
    eprintln!(
        "weft-controld: node {node} attached (incarnation {}, FIB generation {})",
        incarnation.0,
        daemon.fib_generation().0
    );
    let mut next_liveness_check = std::time::Instant::now();
    loop {
        let mut next = daemon.turn();
        if let Some(t) = ctl.poll_timeout() {
            let left = t.saturating_duration_since(std::time::Instant::now());
            next = next.min(daemon.now() + left);
        }
        let ready = daemon.sleep(next, &[signals.as_fd(), ctl.as_fd()]);
        ctl.poll(std::time::Instant::now(), |req| {
            status::answer(&mut daemon, req)
        });
        if ready.first().copied().unwrap_or(false) {
            if let Ok(Some(sig)) = signals.read_signal() {
                eprintln!(
                    "weft-controld: node {node} stopping on signal {} (the data plane keeps forwarding on FIB generation {})",
                    sig.ssi_signo,
                    daemon.fib_generation().0
                );
                return Ok(());
            }
        }
        if std::time::Instant::now() >= next_liveness_check {
            next_liveness_check += Duration::from_millis(500);
            if let Some(pid) = dataplane_pid {
                if !process_alive(pid) {
                    bail!("the data plane (pid {pid}) is gone");
                }
            }
        }
    }
}

/// Seconds since the Unix epoch: higher for every later start (until 2106).
fn wall_clock_incarnation() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX).max(1)
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return true;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

fn run_static(config: &Config, node: NodeId, timeout: Duration) -> anyhow::Result<()> {
    let origin = std::time::Instant::now();
    let mut now = move || Instant::from_nanos(origin.elapsed().as_nanos() as u64);
    let region = {
        let start = std::time::Instant::now();
        loop {
            match static_routes::open_region(config, node) {
                Ok(r) => break r,
                Err(_) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    };
    let generation = static_routes::publish(config, node, region, timeout, &mut now)?;
    println!(
        "node {node}: published static routes as FIB generation {}",
        generation.0
    );
    for (dst, route) in weft_routing::spf::Graph::from_config(config)
        .shortest_paths(node)
        .iter()
    {
        let Some(link) = route.first_hop else {
            continue;
        };
        let via = config.neighbour(link, node).map_or(0, |n| n.get());
        println!(
            "node {node}: to {dst} via link {link} (next hop {via}), {} hops, cost {} us",
            route.hops, route.cost
        );
    }
    Ok(())
}
