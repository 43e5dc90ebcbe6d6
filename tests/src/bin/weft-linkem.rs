//! The `weft-linkem` binary: a userspace UDP link emulator (latency, jitter, Bernoulli and
//! Gilbert–Elliott loss, rate limit, cuts) placed on link paths between real Weft nodes, with
//! a control socket and timelines. `docs/linkem.md` describes it.
//!
//! ```text
//! weft-linkem relay --config FILE [--timeline FILE] [--seed N] [--control SOCKET] [--realtime P]
//! weft-linkem relay --a-side ADDR --b-side ADDR --to-a ADDR --to-b ADDR [settings...]
//! weft-linkem ctl SOCKET cut|restore|set|stats|quit [...]
//! weft-linkem check FILE
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use weft_tests::linkem::config::{PathSpec, RelayConfig};
use weft_tests::linkem::control::request;
use weft_tests::linkem::params::ParamSpec;
use weft_tests::linkem::relay::{Relay, monotonic_now};

/// A userspace UDP link emulator for Weft tests.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Relay one path (from flags) or several (from --config) until SIGINT/SIGTERM or `quit`;
    /// prints the final counters as one JSON line on stdout.
    Relay(Box<RelayArgs>),
    /// Send one command to a running relay and print its JSON reply.
    Ctl {
        /// The relay's control socket.
        socket: PathBuf,
        /// The command and its words: cut, restore, set, stats or quit (e.g. `cut p0 a-to-b`,
        /// `set p0 latency_ms=20`; see docs/linkem.md).
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// Check a relay config file (and timelines) and print its paths.
    Check {
        /// The TOML file.
        config: PathBuf,
        /// Timeline files to check along.
        #[arg(long)]
        timeline: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct RelayArgs {
    /// A TOML file describing the paths (instead of the single-path flags).
    #[arg(long, conflicts_with_all = ["a_side", "b_side", "to_a", "to_b", "name"])]
    config: Option<PathBuf>,
    /// A TOML file of `[[timeline]]` entries (at_ms, action); repeatable.
    #[arg(long)]
    timeline: Vec<PathBuf>,
    /// The random seed (overrides the file's; default 1).
    #[arg(long)]
    seed: Option<u64>,
    /// The Unix control socket (overrides the file's).
    #[arg(long)]
    control: Option<PathBuf>,
    /// Most datagrams held per direction (default 65536).
    #[arg(long)]
    max_held: Option<usize>,
    /// Run under SCHED_FIFO at this priority (1..=99, via chrt(1)), so other processes on the
    /// host cannot delay deliveries; without the permission or chrt, a warning and on.
    #[arg(long, value_name = "PRIO", value_parser = clap::value_parser!(u8).range(1..=99))]
    realtime: Option<u8>,
    /// The path's name (default p0).
    #[arg(long)]
    name: Option<String>,
    /// The address node A sends to.
    #[arg(long, required_unless_present = "config")]
    a_side: Option<SocketAddr>,
    /// The address node B sends to.
    #[arg(long, required_unless_present = "config")]
    b_side: Option<SocketAddr>,
    /// Node A's address (datagrams from the B side go there).
    #[arg(long, required_unless_present = "config")]
    to_a: Option<SocketAddr>,
    /// Node B's address (datagrams from the A side go there).
    #[arg(long, required_unless_present = "config")]
    to_b: Option<SocketAddr>,
    #[command(flatten)]
    both: ParamFlags,
    /// Settings of the A-to-B direction only, as KEY=VALUE words ("latency_ms=20 loss=0.1").
    #[arg(long, value_name = "SETTINGS")]
    a_to_b: Option<String>,
    /// Settings of the B-to-A direction only.
    #[arg(long, value_name = "SETTINGS")]
    b_to_a: Option<String>,
}

/// Settings of both directions of the single path (with --config they belong in the file).
#[derive(Args)]
struct ParamFlags {
    /// One-way delay in milliseconds.
    #[arg(long, allow_negative_numbers = true)]
    latency_ms: Option<f64>,
    /// Extra delay, uniform in [0, jitter], in milliseconds.
    #[arg(long, allow_negative_numbers = true)]
    jitter_ms: Option<f64>,
    /// Loss probability (Bernoulli; with --burst, the average of a bursty model).
    #[arg(long, allow_negative_numbers = true)]
    loss: Option<f64>,
    /// Mean loss burst length in packets (Gilbert model with --loss as the average).
    #[arg(long, allow_negative_numbers = true)]
    burst: Option<f64>,
    /// Gilbert–Elliott probabilities: good→bad, bad→good, loss in good, loss in bad.
    #[arg(long, value_name = "GB,BG,LG,LB")]
    ge: Option<String>,
    /// Rate limit in bits per second of UDP payload (0: none).
    #[arg(long)]
    rate_bps: Option<u64>,
    /// Bytes that may queue behind the rate limit.
    #[arg(long)]
    queue_bytes: Option<u64>,
    /// Let jitter reorder datagrams.
    #[arg(long)]
    reorder: bool,
}

impl ParamFlags {
    fn spec(&self) -> anyhow::Result<ParamSpec> {
        let mut s = ParamSpec {
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            loss: self.loss,
            burst: self.burst,
            rate_bps: self.rate_bps,
            queue_bytes: self.queue_bytes,
            reorder: self.reorder.then_some(true),
            ..ParamSpec::default()
        };
        if let Some(ge) = &self.ge {
            let v: Vec<&str> = ge.split(',').map(str::trim).collect();
            let [gb, bg, lg, lb] = v.as_slice() else {
                anyhow::bail!("--ge {ge}: expected four comma-separated probabilities");
            };
            for (key, value) in [
                ("ge_good_to_bad", gb),
                ("ge_bad_to_good", bg),
                ("ge_loss_good", lg),
                ("ge_loss_bad", lb),
            ] {
                s.set(key, value).with_context(|| format!("--ge {ge}"))?;
            }
        }
        Ok(s)
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Relay(args) => relay(*args),
        Cmd::Ctl { socket, words } => ctl(socket, &words),
        Cmd::Check { config, timeline } => check(config, &timeline),
    };
    if let Err(e) = result {
        eprintln!("weft-linkem: error: {e:#}");
        std::process::exit(1);
    }
}

fn load(args: &RelayArgs) -> anyhow::Result<RelayConfig> {
    let both = args.both.spec()?;
    let dir = |flag: &str, text: &Option<String>| -> anyhow::Result<ParamSpec> {
        match text {
            Some(t) => ParamSpec::parse_settings(t).with_context(|| format!("--{flag} {t}")),
            None => Ok(ParamSpec::default()),
        }
    };
    let mut config = match &args.config {
        Some(file) => {
            if !both.is_empty() || args.a_to_b.is_some() || args.b_to_a.is_some() {
                anyhow::bail!(
                    "--config: give settings in the file, not as flags (or drop --config)"
                );
            }
            let mut c = RelayConfig::load(file)?;
            if let Some(seed) = args.seed {
                c.seed = seed;
            }
            if let Some(control) = &args.control {
                c.control = Some(control.clone());
            }
            if let Some(max_held) = args.max_held {
                // Re-checked through the same builder rules.
                anyhow::ensure!(
                    (1..=weft_tests::linkem::config::MAX_MAX_HELD).contains(&max_held),
                    "--max-held {max_held}: not in 1..={}",
                    weft_tests::linkem::config::MAX_MAX_HELD
                );
                c.max_held = max_held;
            }
            c
        }
        None => {
            let spec = PathSpec {
                name: args.name.clone(),
                addrs: [args.a_side, args.b_side, args.to_a, args.to_b],
                both,
                a_to_b: dir("a-to-b", &args.a_to_b)?,
                b_to_a: dir("b-to-a", &args.b_to_a)?,
            };
            RelayConfig::build(
                "command line",
                args.seed,
                args.control.clone(),
                args.max_held,
                &ParamSpec::default(),
                &[spec],
            )?
        }
    };
    for t in &args.timeline {
        config.add_timeline_file(t)?;
    }
    Ok(config)
}

fn relay(args: RelayArgs) -> anyhow::Result<()> {
    let config = load(&args)?;
    let (seed, control, n, entries) = (
        config.seed,
        config.control.clone(),
        config.paths.len(),
        config.timeline.len(),
    );
    let names: Vec<(String, SocketAddr, SocketAddr)> = config
        .paths
        .iter()
        .map(|p| (p.name.clone(), p.to_a, p.to_b))
        .collect();
    let mut relay = Relay::bind(config, true)?;
    if let Some(prio) = args.realtime {
        realtime(prio);
    }
    for ((name, to_a, to_b), [a, b]) in names.iter().zip(relay.local_addrs()) {
        eprintln!("weft-linkem: path {name}: {a} -> {to_b}, {b} -> {to_a}");
    }
    let control = control.map_or("none".to_owned(), |c| c.display().to_string());
    eprintln!(
        "weft-linkem: relaying {n} path(s), seed {seed}, control {control}, \
         {entries} timeline entries"
    );
    relay.run()?;
    println!("{}", relay.stats_json(monotonic_now()?));
    Ok(())
}

/// Moves this (single-threaded) process to SCHED_FIFO at `prio` with `chrt -f -p`, which
/// keeps the crate free of `unsafe`; a failure is only a warning.
fn realtime(prio: u8) {
    let pid = std::process::id().to_string();
    let result = std::process::Command::new("chrt")
        .args(["-f", "-p", &prio.to_string(), &pid])
        .stdout(std::process::Stdio::null())
        .output();
    match result {
        Ok(out) if out.status.success() => {
            eprintln!("weft-linkem: running under SCHED_FIFO priority {prio}");
        }
        Ok(out) => eprintln!(
            "weft-linkem: warning: --realtime {prio}: chrt failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("weft-linkem: warning: --realtime {prio}: running chrt: {e}"),
    }
}

fn ctl(socket: PathBuf, words: &[String]) -> anyhow::Result<()> {
    let reply = request(&socket, &words.join(" "))?;
    println!("{reply}");
    Ok(())
}

fn check(file: PathBuf, timelines: &[PathBuf]) -> anyhow::Result<()> {
    let mut config = RelayConfig::load(&file)?;
    for t in timelines {
        config.add_timeline_file(t)?;
    }
    println!(
        "{}: {} path(s), seed {}, {} timeline entries",
        file.display(),
        config.paths.len(),
        config.seed,
        config.timeline.len()
    );
    for p in &config.paths {
        println!(
            "  {}: {} -> {}, {} -> {}",
            p.name, p.a_side, p.to_b, p.b_side, p.to_a
        );
    }
    Ok(())
}
