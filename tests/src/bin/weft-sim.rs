//! `weft-sim`: runs a simulator scenario (`docs/simulator.md`) and prints what happened.
//!
//! `weft-sim run SCENARIO.toml [--seed N] [--json] [--log] [--trace FILE]` prints a human
//! summary; with `--json` the last line of stdout is one JSON object with the per-flow figures
//! (the [`Report`](weft_tests::sim::Report)). Errors go to stderr with the file and field, and
//! the exit status is 1 (2 for bad arguments).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use weft_tests::sim::{Scenario, Simulation, TraceMode};

#[derive(Parser)]
#[command(name = "weft-sim", about = "Weft's deterministic network simulator")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a scenario file.
    Run {
        /// The scenario (TOML).
        scenario: PathBuf,
        /// The seed (default: the scenario's `seed`, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// End with one line of JSON: the report.
        #[arg(long)]
        json: bool,
        /// Print the event log (link, path and route changes) too.
        #[arg(long)]
        log: bool,
        /// Write every trace record as JSON lines to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
    },
    /// Checks a scenario file and its config without running it.
    Check {
        /// The scenario (TOML).
        scenario: PathBuf,
    },
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("weft-sim: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Check { scenario } => {
            let s = Scenario::load(&scenario)?;
            let config = s.load_config()?;
            Simulation::new(&config, &s, s.seed.unwrap_or(1))?;
            println!(
                "{}: ok ({} nodes, {} links, {} flows, {} events)",
                scenario.display(),
                config.nodes().len(),
                config.links().len(),
                s.flows.len(),
                s.events.len()
            );
            Ok(())
        }
        Command::Run {
            scenario,
            seed,
            json,
            log,
            trace,
        } => {
            let mut s = Scenario::load(&scenario)?;
            if trace.is_some() {
                s.report.trace = TraceMode::Full;
            }
            let config = s.load_config()?;
            let seed = seed.or(s.seed).unwrap_or(1);
            let mut sim = Simulation::new(&config, &s, seed)?;
            let wall = std::time::Instant::now();
            let report = sim.run(s.drain);
            let wall = wall.elapsed();
            let mut out = std::io::stdout().lock();
            write!(out, "{}", report.human())?;
            let virtual_s = report.virtual_ms / 1000.0;
            writeln!(
                out,
                "wall {:.3} s ({:.1}x real time)",
                wall.as_secs_f64(),
                virtual_s / wall.as_secs_f64().max(1e-9)
            )?;
            if log || s.report.log {
                writeln!(out, "\nlog:")?;
                for e in sim.log().entries() {
                    writeln!(out, "  {e}")?;
                }
                if sim.log().dropped() > 0 {
                    writeln!(out, "  ({} more entries not kept)", sim.log().dropped())?;
                }
            }
            if let Some(path) = trace {
                let file = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let mut w = std::io::BufWriter::new(file);
                for r in sim.trace().records() {
                    serde_json::to_writer(&mut w, r)?;
                    writeln!(w)?;
                }
                w.flush()?;
            }
            if json {
                writeln!(out, "{}", serde_json::to_string(&report)?)?;
            }
            Ok(())
        }
    }
}
