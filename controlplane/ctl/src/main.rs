//! The `weftctl` binary: parse the command line, run it, print the result. Exit status 0 on
//! success, 1 on an error (printed to stderr as `weftctl: ...`), 2 on a usage error.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use weftctl::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match weftctl::run(&cli) {
        Ok(text) => {
            // A closed stdout (`weftctl show fib | head`) is not an error worth reporting.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weftctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
