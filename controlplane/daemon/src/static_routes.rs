//! Static routes: the config's graph at base cost, published once as a FIB generation.
//!
//! This is the control plane before link state exists: it knows the configured links but not
//! which are up, so a link failure is survived only by the data plane's own failover between
//! the link's paths, never by a new route.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use weft_routing::spf::Graph;
use weft_shared::config::Config;
use weft_shared::ids::NodeId;
use weft_shared::shm::{FibWriter, Generation, ShmRegion};
use weft_shared::time::Instant;

/// How long a reader may hold the writer back before it is reported stuck.
const STUCK_AFTER: Duration = Duration::from_millis(500);

/// Computes `node`'s shortest paths over `config` and publishes them as the next FIB generation
/// of the data plane whose shared memory is `region`. Retries while readers are busy, up to
/// `timeout`, reading the clock through `now` (this crate is a driver; it may read a clock).
pub fn publish(
    config: &Config,
    node: NodeId,
    region: Arc<ShmRegion>,
    timeout: Duration,
    now: &mut dyn FnMut() -> Instant,
) -> anyhow::Result<Generation> {
    let routes = Graph::from_config(config).shortest_paths(node);
    let mut writer = FibWriter::attach(region, STUCK_AFTER).context("attach as the FIB writer")?;
    let start = now();
    loop {
        let result = writer.try_publish(now(), |fib| {
            routes.fill_fib(fib);
            Ok(())
        });
        match result {
            Ok(generation) => return Ok(generation),
            Err(_) if now() - start < timeout => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => bail!("publishing the FIB failed after {timeout:?}: {e}"),
        }
    }
}

/// Opens the named shared memory of `node`'s data plane (from the config's `shm_name`).
pub fn open_region(config: &Config, node: NodeId) -> anyhow::Result<Arc<ShmRegion>> {
    let n = config
        .node(node)
        .with_context(|| format!("node {node} is not in the config"))?;
    let region = ShmRegion::open_named(n.shm_name()).with_context(|| {
        format!(
            "open shared memory '{}' of node {node}: is its data plane running?",
            n.shm_name()
        )
    })?;
    region
        .check_config_hash(config.hash().get())
        .context("the data plane runs another config")?;
    Ok(Arc::new(region))
}
