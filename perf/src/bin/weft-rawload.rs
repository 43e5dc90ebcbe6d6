//! Loads one real `weft-dataplane` with raw overlay link packets, playing both of its
//! neighbours on a line (see `weft_perf::raw_load`): the generator as the source node, the
//! sink as the destination node, each keeping its link up with hellos.
//!
//! `weft-rawload --config F [--from 1 --via 2 --to 3] [--size N] [--count C] [--rate R]
//! [--seconds S] [--flows K] [--pack P] [--timeline-ms MS] [--one-thread [--direct]
//! [--min-packets N]]` prints one JSON line.
//!
//! `weft-rawload latency-summary FILE` reads the JSON lines of `perf/rawload.sh --latency`'s
//! runs and prints one summary line per size (`weft_perf::raw_load::summary`).

use std::process::ExitCode;

use clap::Parser;
use weft_perf::raw_load::{self, Spec, summary};

#[derive(Parser)]
#[command(about = "raw overlay-packet generator and sink around one weft-dataplane")]
struct Args {
    #[command(flatten)]
    spec: Spec,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("latency-summary") {
        let [_, _, file] = argv.as_slice() else {
            eprintln!("usage: weft-rawload latency-summary FILE");
            return ExitCode::FAILURE;
        };
        return match std::fs::read_to_string(file) {
            Ok(text) => {
                for line in summary::summarise_lines(&text) {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("weft-rawload: {file}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match raw_load::run(&Args::parse().spec) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weft-rawload: {e:#}");
            ExitCode::FAILURE
        }
    }
}
