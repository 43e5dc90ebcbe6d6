//! `weft gateway`: carries UDP datagrams across the overlay (`docs/gateway.md`).
//!
//! One process runs one or more mappings, each on its own thread with its own session with
//! the local node: an ingress (`--listen HOST:PORT --to NODE:PORT|group:G:PORT|anycast:G:PORT
//! [--service S]`), an egress (`--port PORT --deliver HOST:PORT [--join GROUP [--bind]]`),
//! both, or any number from a TOML file (`--config`).
//! The main thread blocks SIGINT and SIGTERM before any mapping starts, reads them from a
//! signalfd, prints counters every `--stats-every-s` seconds and, on a signal or a mapping's
//! failure, stops every mapping and prints each one's final counters on stdout.
//!
//! Exit status: 0 after SIGINT/SIGTERM, 1 for a bad option value, a config file, a node not
//! running, an address or port in use, a refused service, or a mapping that failed while
//! running; 2 (from clap) for a malformed command line.

use std::io::Write as _;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use weft_client::gateway::{
    EgressSpec, Gateway, GatewayConfig, GatewayError, GatewayStats, IngressSpec, MappingSpec,
    QueueLimits, Running, parse_port,
};

/// The `weft gateway` options.
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// The local node's session socket (`session_socket` in its config); with --config, the
    /// default for mappings that name none.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Ingress: the local UDP address to receive datagrams on.
    #[arg(long, value_name = "HOST:PORT", requires = "to")]
    listen: Option<String>,
    /// Ingress: the overlay destination of the datagrams: `NODE:PORT` (one node),
    /// `group:GROUP:PORT` (every member of a multicast group) or `anycast:GROUP:PORT` (the
    /// nearest member).
    #[arg(long, value_name = "DEST", requires = "listen")]
    to: Option<String>,
    /// Ingress: the flow's service: `best-effort`, `reliable` or `realtime[:DEADLINE_MS[:N:M]]`
    /// (`realtime` alone is `realtime:200:3:2`). Passed to the node, which may refuse it.
    #[arg(long, value_name = "SERVICE", default_value = "best-effort")]
    service: String,
    /// Ingress: the overlay port to send from (0: any free one).
    #[arg(long, value_name = "PORT", default_value = "0")]
    from_port: String,
    /// Ingress: datagrams that may wait for credit at most; more are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = QueueLimits::default().datagrams)]
    queue_datagrams: usize,
    /// Ingress: bytes that may wait for credit at most; more are dropped and counted.
    #[arg(long, value_name = "BYTES", default_value_t = QueueLimits::default().bytes)]
    queue_bytes: usize,
    /// Egress: the overlay port to bind and receive on; with --join, the port of the group's
    /// messages to deliver.
    #[arg(long, value_name = "PORT", requires = "deliver")]
    port: Option<String>,
    /// Egress: the local UDP address to send each delivered message to.
    #[arg(long, value_name = "HOST:PORT", requires = "port")]
    deliver: Option<String>,
    /// Egress: join this group (1..=4294967295) and deliver its messages to --port (sent to
    /// `group:GROUP:PORT` or `anycast:GROUP:PORT`) instead of binding --port.
    #[arg(long, value_name = "GROUP", requires = "port")]
    join: Option<String>,
    /// Egress with --join: bind --port as well, so messages to `NODE:PORT` are delivered too.
    #[arg(long, requires = "join")]
    bind: bool,
    /// Run the mappings of this TOML file (`[[ingress]]` and `[[egress]]` tables) instead.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["listen", "to", "port", "deliver", "join", "bind"]
    )]
    config: Option<PathBuf>,
    /// Print every mapping's counters every S seconds (0: only at exit).
    #[arg(long, value_name = "S", default_value_t = 0)]
    stats_every_s: u64,
    /// Print counters as JSON objects, one per line.
    #[arg(long)]
    json: bool,
}

/// Why `weft gateway` failed; printed as `weft: error: ...`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GatewayCliError {
    /// A missing option the mappings need.
    #[error("{0}")]
    Usage(String),
    /// The config file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bad option, config field or mapping that could not open.
    #[error("{context}{source}")]
    Gateway {
        context: String,
        #[source]
        source: GatewayError,
    },
    /// A system call for the signal handling failed.
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: nix::Error,
    },
    /// Mappings failed while running (each was reported on stderr).
    #[error("{0} mapping(s) failed")]
    Failed(usize),
}

fn gw(context: impl Into<String>) -> impl FnOnce(GatewayError) -> GatewayCliError {
    let context = context.into();
    move |source| GatewayCliError::Gateway { context, source }
}

impl GatewayArgs {
    /// The mappings the options or the file ask for, checked.
    fn config(&self) -> Result<GatewayConfig, GatewayCliError> {
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path).map_err(|source| GatewayCliError::Read {
                path: path.clone(),
                source,
            })?;
            return GatewayConfig::from_toml(&text, self.socket.as_deref())
                .map_err(|e| gw(format!("{}: ", path.display()))(e.into()));
        }
        let socket = self.socket.as_deref().ok_or_else(|| {
            GatewayCliError::Usage(
                "--socket PATH is required: the local node's session socket \
                 (session_socket in its config)"
                    .to_owned(),
            )
        })?;
        let mut config = GatewayConfig::default();
        if let (Some(listen), Some(to)) = (&self.listen, &self.to) {
            let queue = QueueLimits {
                datagrams: self.queue_datagrams,
                bytes: self.queue_bytes,
            };
            let mut spec = IngressSpec::parse("--", socket, listen, to, &self.service)
                .and_then(|s| s.with_queue(("--queue-datagrams", "--queue-bytes"), queue))
                .map_err(|e| gw("")(e.into()))?;
            spec.from_port =
                parse_port("--from-port", &self.from_port, true).map_err(|e| gw("")(e.into()))?;
            config.mappings.push(MappingSpec::Ingress(spec));
        }
        if let (Some(port), Some(deliver)) = (&self.port, &self.deliver) {
            let mut spec =
                EgressSpec::parse("--", socket, port, deliver).map_err(|e| gw("")(e.into()))?;
            if let Some(group) = &self.join {
                spec = spec
                    .with_join("--join", group, self.bind)
                    .map_err(|e| gw("")(e.into()))?;
            }
            config.mappings.push(MappingSpec::Egress(spec));
        }
        config.check().map_err(|e| gw("")(e.into()))?;
        Ok(config)
    }
}

/// Writes a line to stderr, prefixed `weft gateway: `; write errors are ignored.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "weft gateway: {msg}");
}

/// Prints every mapping's counters on stdout, as text or JSON.
fn print_stats(stats: &[(String, GatewayStats)], json: bool, last: bool) {
    let mut out = std::io::stdout().lock();
    for (mapping, s) in stats {
        let _ = if json {
            writeln!(out, "{}", s.to_json(mapping, last))
        } else {
            let when = if last { "final" } else { "now" };
            writeln!(out, "weft gateway: {mapping}: {when}: {s}")
        };
    }
    let _ = out.flush();
}

/// Runs `weft gateway` until SIGINT/SIGTERM (`Ok`) or a failure.
pub(crate) fn run(args: &GatewayArgs) -> Result<(), GatewayCliError> {
    let config = args.config()?;

    // Before any thread exists, so every thread inherits the mask and the signals wait in
    // the signalfd for the main thread.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    let sys = |what| move |source| GatewayCliError::Sys { what, source };
    mask.thread_block()
        .map_err(sys("blocking SIGINT and SIGTERM"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(sys("creating a signalfd"))?;

    let mut gateways = Vec::with_capacity(config.mappings.len());
    for spec in &config.mappings {
        gateways.push(Gateway::open(spec).map_err(gw(format!("{spec}: ")))?);
    }
    for g in &gateways {
        say(&format!("{}: ready", g.describe()));
    }
    let running = Running::spawn(gateways).map_err(gw(""))?;

    let every = (args.stats_every_s > 0).then(|| Duration::from_secs(args.stats_every_s));
    let mut next_stats = every.map(|e| Instant::now() + e);
    loop {
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(100u16));
        if let Ok(Some(info)) = signals.read_signal() {
            let name = Signal::try_from(info.ssi_signo as i32)
                .map_or_else(|_| info.ssi_signo.to_string(), |s| s.to_string());
            say(&format!("stopping on {name}"));
            break;
        }
        if running.stopping() {
            break;
        }
        if let (Some(at), Some(e)) = (next_stats, every) {
            if Instant::now() >= at {
                print_stats(&running.snapshot(), args.json, false);
                next_stats = Some(at + e);
            }
        }
    }

    let outcomes = running.stop();
    let finals: Vec<(String, GatewayStats)> = outcomes
        .iter()
        .map(|o| (o.mapping.clone(), o.stats))
        .collect();
    print_stats(&finals, args.json, true);
    let mut failed = 0;
    for o in &outcomes {
        if let Err(e) = &o.result {
            failed += 1;
            say(&format!("error: {}: {e}", o.mapping));
        }
    }
    if failed > 0 {
        return Err(GatewayCliError::Failed(failed));
    }
    Ok(())
}
