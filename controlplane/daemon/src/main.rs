//! The `weft-controld` binary: today, `--static-routes` publishes the config's shortest paths
//! into a running data plane and exits.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use weft_controld::static_routes;
use weft_shared::config::Config;
use weft_shared::ids::NodeId;
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
    /// Publish shortest paths over the configured links at their base costs, then exit.
    /// (Link-state routing, which reacts to failures, is not built yet.)
    #[arg(long)]
    static_routes: bool,
    /// How long to keep trying to reach and publish into the data plane, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
}

fn main() -> anyhow::Result<()> {
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
    if !args.static_routes {
        bail!(
            "only --static-routes is built so far: link-state routing comes with the control-plane issue"
        );
    }
    let timeout = Duration::from_millis(args.timeout_ms);
    let origin = std::time::Instant::now();
    let mut now = move || Instant::from_nanos(origin.elapsed().as_nanos() as u64);
    let region = {
        let start = std::time::Instant::now();
        loop {
            match static_routes::open_region(&config, node) {
                Ok(r) => break r,
                Err(_) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    };
    let generation = static_routes::publish(&config, node, region, timeout, &mut now)?;
    println!(
        "node {node}: published static routes as FIB generation {}",
        generation.0
    );
    for (dst, route) in weft_routing::spf::Graph::from_config(&config)
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
