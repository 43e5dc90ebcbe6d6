//! spf-bench: how long the control plane takes from a link-state change to a published FIB on
//! a large synthetic overlay.
//!
//! Builds a connected random graph (default 200 nodes, 800 links, seeded: a random spanning
//! tree plus random extra links, costs 1–20 ms), gives one node's [`Router`] every other node's
//! advert through `on_control` (the path punted packets take), then repeatedly changes one
//! remote link's loss (a new advert from its node) and measures, per change:
//! - `spf`: the route computation (`Router::routes`, Dijkstra over the whole graph);
//! - `publish`: building the FIB from the routes and publishing it as a new generation into a
//!   real shared-memory region (`FibWriter::try_publish`), with a registered reader that
//!   enters and quiesces between publishes like an idle worker.
//!
//! Prints a table and, with `--json`, one JSON line.

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use weft_routing::link_state::{Advert, AdvertLink, Router, RouterParams, UpdateId};
use weft_routing::metric::LinkReport;
use weft_routing::spf::{Edge, Graph};
use weft_shared::config::Config;
use weft_shared::ids::{Incarnation, LinkId, NodeId};
use weft_shared::shm::{FibReader, FibWriter, ShmLayout, ShmRegion};
use weft_shared::time::Instant;

/// Route computation and FIB publish time on a synthetic overlay.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Nodes in the graph.
    #[arg(long, default_value_t = 200)]
    nodes: u16,
    /// Links in the graph (at least nodes - 1). The full control-plane path (config, router,
    /// FIB) is measured on the first 512 of them: link ids are 9 bits, because the header's
    /// link bitmask carries 512 links. Route computation alone is measured on all of them.
    #[arg(long, default_value_t = 800)]
    links: u16,
    /// Link-state changes to measure.
    #[arg(long, default_value_t = 1000)]
    changes: u32,
    /// Seed of the graph.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON line at the end.
    #[arg(long)]
    json: bool,
}

/// A link as (id, a, b).
type EdgeEnds = (u16, u16, u16);

/// xorshift64*: a small seeded generator, enough for a synthetic graph.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.nodes < 2 || args.nodes > 1000 || args.links < args.nodes - 1 {
        bail!("need 2 <= nodes <= 1000 and links >= nodes - 1");
    }
    let all_edges = synthetic_edges(args.nodes, args.links, args.seed);
    let graph_spf = spf_alone(&all_edges, args.changes)?;
    let config_links = args.links.min(512);
    let (config, edges) = synthetic_config(args.nodes, &all_edges[..usize::from(config_links)])?;
    let me = NodeId::new(1).context("node 1")?;
    let t0 = Instant::from_millis(1);
    let mut router = Router::new(
        &config,
        me,
        Incarnation(1),
        RouterParams::from_timers(config.timers()),
        t0,
    )?;
    // Node 1's own links are up; every other node's advert arrives on node 1's first link.
    let ingress = config
        .links_of(me)
        .next()
        .map(|l| l.id())
        .context("node 1 has no link")?;
    let up = LinkReport {
        up: true,
        latency_us: 0,
        loss_ppm: 0,
    };
    for l in config.links_of(me) {
        router.on_link_report(t0, l.id(), up);
    }
    let mut seqs = vec![1u32; usize::from(args.nodes) + 1];
    for n in 2..=args.nodes {
        let advert = advert_of(&config, n, seqs[usize::from(n)], None)?;
        router
            .on_control(t0, ingress, &advert.encode())
            .map_err(|e| anyhow::anyhow!("advert of {n}: {e}"))?;
    }
    while router.pop_outgoing().is_some() {}
    let reachable = router.routes().iter().count();
    if reachable != usize::from(args.nodes) - 1 {
        bail!("only {reachable} of {} nodes reachable", args.nodes - 1);
    }

    let layout = ShmLayout::default();
    let region = Arc::new(ShmRegion::create_memfd(&layout, config.hash().get())?);
    let mut writer = FibWriter::attach(region.clone(), Duration::from_secs(1))?;
    let mut reader = FibReader::register(region, 0)?;

    let mut spf = Histogram::<u64>::new(3)?;
    let mut publish = Histogram::<u64>::new(3)?;
    let mut rng = Rng(args.seed ^ 0x5eed);
    let mut now = t0;
    let mut busy = 0u64;
    for _ in 0..args.changes {
        now = now + Duration::from_millis(1);
        // One remote node's link gets a new loss figure: a newer advert from that node.
        let (link, a, b) = edges[rng.below(edges.len() as u64) as usize];
        let origin = if a == 1 { b } else { a };
        seqs[usize::from(origin)] += 1;
        let loss = (rng.below(50) * 1_000) as u32;
        let advert = advert_of(
            &config,
            origin,
            seqs[usize::from(origin)],
            Some((link, loss)),
        )?;
        router
            .on_control(now, ingress, &advert.encode())
            .map_err(|e| anyhow::anyhow!("advert: {e}"))?;
        while router.pop_outgoing().is_some() {}

        let start = StdInstant::now();
        let _ = router.routes();
        let spf_ns = start.elapsed().as_nanos() as u64;
        spf.record(spf_ns.max(1))?;

        reader.quiesce();
        let start = StdInstant::now();
        loop {
            match writer.try_publish(now, |fib| router.fill_fib(fib)) {
                Ok(_) => break,
                Err(_) => busy += 1,
            }
        }
        let publish_ns = start.elapsed().as_nanos() as u64;
        publish.record(publish_ns.max(1))?;
        router.fib_published(now);
        let _ = reader.enter().generation();
    }
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    println!(
        "graph: {} nodes, {} links (seed {}); {} link-state changes",
        args.nodes, args.links, args.seed, args.changes
    );
    println!("{:<46} {:>9} {:>9} {:>9}", "step (µs)", "p50", "p99", "max");
    let spf_label = format!("SPF alone, {} links (spf::Graph)", args.links);
    let router_label = format!("router SPF, {config_links} links (Router::routes)");
    let publish_label = format!("FIB build + publish, {config_links} links");
    for (name, h) in [
        (spf_label.as_str(), &graph_spf),
        (router_label.as_str(), &spf),
        (publish_label.as_str(), &publish),
    ] {
        println!(
            "{:<46} {:>9.1} {:>9.1} {:>9.1}",
            name,
            us(h, 0.5),
            us(h, 0.99),
            h.max() as f64 / 1_000.0
        );
    }
    if busy > 0 {
        println!("({busy} publish attempts found the reader busy)");
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "nodes": args.nodes,
                "links": args.links,
                "router_links": config_links,
                "changes": args.changes,
                "spf_alone_us": {"p50": us(&graph_spf, 0.5), "p99": us(&graph_spf, 0.99), "max": graph_spf.max() as f64 / 1e3},
                "spf_us": {"p50": us(&spf, 0.5), "p99": us(&spf, 0.99), "max": spf.max() as f64 / 1e3},
                "publish_us": {"p50": us(&publish, 0.5), "p99": us(&publish, 0.99), "max": publish.max() as f64 / 1e3},
            })
        );
    }
    Ok(())
}

/// A connected random graph: a random spanning tree (the first `nodes - 1` links, so any
/// prefix of at least that many links is connected), then random extra links between distinct
/// pairs. Links are (index, a, b, cost_us).
fn synthetic_edges(nodes: u16, links: u16, seed: u64) -> Vec<(u16, u16, u16, u32)> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut edges = Vec::new();
    let mut have = std::collections::BTreeSet::new();
    let max_pairs = usize::from(nodes) * usize::from(nodes - 1) / 2;
    for n in 2..=nodes {
        let parent = 1 + rng.below(u64::from(n - 1)) as u16;
        have.insert((parent.min(n), parent.max(n)));
        let cost = 1_000 + rng.below(19_000) as u32;
        edges.push((edges.len() as u16, parent, n, cost));
    }
    while edges.len() < usize::from(links) && have.len() < max_pairs {
        let a = 1 + rng.below(u64::from(nodes)) as u16;
        let b = 1 + rng.below(u64::from(nodes)) as u16;
        if a == b || !have.insert((a.min(b), a.max(b))) {
            continue;
        }
        let cost = 1_000 + rng.below(19_000) as u32;
        edges.push((edges.len() as u16, a, b, cost));
    }
    edges
}

/// Dijkstra alone over every edge (link ids taken modulo 512: only the tie-break reads them),
/// from a different source each time.
fn spf_alone(edges: &[(u16, u16, u16, u32)], runs: u32) -> anyhow::Result<Histogram<u64>> {
    let graph_edges: Vec<Edge> = edges
        .iter()
        .map(|&(i, a, b, cost)| {
            Ok(Edge {
                link: LinkId::new(i % 512).context("link id")?,
                a: NodeId::new(a).context("node id")?,
                b: NodeId::new(b).context("node id")?,
                cost: u64::from(cost),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let nodes = edges.iter().map(|e| e.1.max(e.2)).max().unwrap_or(1);
    let mut h = Histogram::<u64>::new(3)?;
    let mut reachable = 0usize;
    for r in 0..runs {
        let source = NodeId::new(1 + (r % u32::from(nodes)) as u16).context("source")?;
        let start = StdInstant::now();
        let graph = Graph::new(graph_edges.iter().copied());
        let routes = graph.shortest_paths(source);
        reachable += routes.iter().count();
        h.record((start.elapsed().as_nanos() as u64).max(1))?;
    }
    if reachable != runs as usize * (usize::from(nodes) - 1) {
        bail!("the synthetic graph is not connected");
    }
    Ok(h)
}

/// A config of `nodes` nodes and the given links. Returns the config and its links as
/// (id, a, b).
fn synthetic_config(
    nodes: u16,
    links: &[(u16, u16, u16, u32)],
) -> anyhow::Result<(Config, Vec<EdgeEnds>)> {
    let edges: Vec<EdgeEnds> = links.iter().map(|&(i, a, b, _)| (i, a, b)).collect();
    let mut t = String::from("schema = 1\n[overlay]\nname = \"spf-bench\"\n");
    for n in 1..=nodes {
        let (x, y) = (n / 250, n % 250 + 1);
        t += &format!(
            "[[node]]\nid = {n}\nname = \"n{n}\"\nsession_socket = \"/tmp/spf-bench/{n}.sock\"\nctl_socket = \"/tmp/spf-bench/{n}.ctl\"\n[[node.interface]]\nisp = \"a\"\naddr = \"127.9.{x}.{y}:7000\"\n"
        );
    }
    for &(id, a, b, cost) in links {
        t += &format!("[[link]]\nid = {id}\nnodes = [{a}, {b}]\ncost = {cost}\n");
    }
    let config = Config::from_toml_str(&t, "spf-bench.toml")?;
    Ok((config, edges))
}

/// Node `n`'s advert with every link up, optionally one link at a given loss.
fn advert_of(
    config: &Config,
    n: u16,
    seq: u32,
    lossy: Option<(u16, u32)>,
) -> anyhow::Result<Advert> {
    let node = NodeId::new(n).context("node id")?;
    let mut links: Vec<AdvertLink> = config
        .links_of(node)
        .map(|l| AdvertLink {
            link: l.id(),
            report: LinkReport {
                up: true,
                latency_us: 0,
                loss_ppm: match lossy {
                    Some((id, loss)) if LinkId::new(id) == Some(l.id()) => loss,
                    _ => 0,
                },
            },
        })
        .collect();
    links.sort_by_key(|l| l.link);
    Ok(Advert {
        id: UpdateId {
            origin: node,
            incarnation: Incarnation(7),
            seq,
        },
        links,
    })
}
