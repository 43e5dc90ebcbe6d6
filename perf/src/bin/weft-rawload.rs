//! Loads one real `weft-dataplane` with raw overlay link packets, playing both of its
//! neighbours on a line (see `weft_perf::raw_load`): the generator as the source node, the
//! sink as the destination node, each keeping its link up with hellos.
//!
//! `weft-rawload --config F [--from 1 --via 2 --to 3] [--size N] [--count C] [--rate R]
//! [--seconds S] [--flows K] [--pack P] [--timeline-ms MS]` prints one JSON line.

use std::process::ExitCode;

use clap::Parser;
use weft_perf::raw_load::{self, Spec};

#[derive(Parser)]
#[command(about = "raw overlay-packet generator and sink around one weft-dataplane")]
struct Args {
    #[command(flatten)]
    spec: Spec,
}

fn main() -> ExitCode {
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
