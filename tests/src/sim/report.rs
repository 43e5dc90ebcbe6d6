//! What a run produced: per-flow figures (flows to a node and to groups), per-node and per-link
//! summaries, counters and the trace hash, as a serialisable [`Report`] with a human rendering
//! ([`Report::human`]).

use std::fmt::Write as _;

use serde::Serialize;

use crate::sim::flow::FlowReport;
use crate::sim::group_flow::GroupFlowReport;

/// Counters of the whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Events taken from the queue.
    pub events: u64,
    /// Packets handed to links (hellos, control and data).
    pub link_packets: u64,
    /// Data packets handed to links.
    pub data_link_packets: u64,
    /// Flow packets delivered (duplicates included).
    pub delivered: u64,
    /// Deliveries of packets that belong to no flow (a flood's junk).
    pub stray_deliveries: u64,
    /// Packets nodes dropped (pipeline drops, no route, misbehaviour).
    pub node_drops: u64,
    /// Of those, data packets.
    pub data_drops: u64,
    /// Junk packets flooding nodes originated.
    pub flood_packets: u64,
    /// Node restarts that failed to start the protocols.
    pub failed_restarts: u64,
}

/// One direction of one path of a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinkDirReport {
    /// Link id.
    pub link: u16,
    /// Path id.
    pub path: u8,
    /// Sending node.
    pub from: u16,
    /// Receiving node.
    pub to: u16,
    /// Packets offered.
    pub offered: u64,
    /// Packets delivered.
    pub delivered: u64,
    /// Lost by the loss model.
    pub lost: u64,
    /// Dropped at the full queue.
    pub queue_drops: u64,
    /// Dropped while cut.
    pub down_drops: u64,
}

/// A node's groups at the end of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    /// Groups with a local member.
    pub local: usize,
    /// Groups with a member node somewhere, as the node's group state knows them.
    pub known: usize,
    /// Multicast (group, source) entries in its FIB.
    pub multicast_routes: usize,
    /// Anycast entries in its FIB.
    pub anycast_routes: usize,
    /// FIBs published whose group routes did not all fit.
    pub fib_errors: u64,
    /// Local group sets the group state refused.
    pub local_refused: u64,
    /// Multicast copies its pipeline forwarded to tree links.
    pub multicast_copies: u64,
}

/// A node at the end of the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeSummary {
    /// Node id.
    pub id: u16,
    /// Node name.
    pub name: String,
    /// Whether it runs.
    pub up: bool,
    /// Its incarnation, if it runs.
    pub incarnation: Option<u32>,
    /// FIBs published by this incarnation.
    pub fib_publishes: u64,
    /// Unicast routes in its FIB.
    pub routes: usize,
    /// Hellos its monitors refused.
    pub hellos_ignored: u64,
    /// Control envelopes its control plane refused.
    pub control_refused: u64,
    /// Its groups.
    pub groups: GroupSummary,
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Virtual time at the end of the run, in milliseconds.
    pub virtual_ms: f64,
    /// Per flow to a node, in scenario order.
    pub flows: Vec<FlowReport>,
    /// Per flow to a group, in scenario order.
    pub group_flows: Vec<GroupFlowReport>,
    /// The timeline: (time in ms, what).
    pub events: Vec<(f64, String)>,
    /// Per node.
    pub nodes: Vec<NodeSummary>,
    /// Per link direction, when the scenario asks for it.
    pub links: Option<Vec<LinkDirReport>>,
    /// Counters.
    pub counters: Counters,
    /// The trace's hash (hex): equal for equal runs.
    pub trace_hash: String,
    /// Trace records.
    pub trace_records: u64,
}

impl Report {
    /// A summary for people.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scenario {}  seed {}  virtual time {:.3} s  events {}  trace {} ({} records)",
            self.scenario,
            self.seed,
            self.virtual_ms / 1000.0,
            self.counters.events,
            self.trace_hash,
            self.trace_records
        );
        if !self.events.is_empty() {
            let _ = writeln!(s, "\ntimeline:");
            for (i, (at, what)) in self.events.iter().enumerate() {
                let _ = writeln!(s, "  [{i}] {at:>9.1} ms  {what}");
            }
        }
        let _ = writeln!(s, "\nflows:");
        for f in &self.flows {
            let lat: Vec<String> = f
                .latency_ms
                .iter()
                .map(|p| match p.ms {
                    Some(ms) => format!("p{} {ms:.2}", p.p),
                    None => format!("p{} -", p.p),
                })
                .collect();
            let _ = writeln!(
                s,
                "  {} ({} -> {}): sent {} delivered {} lost {} ({:.3} %) dup {}",
                f.name,
                f.from,
                f.to,
                f.sent,
                f.delivered,
                f.lost,
                f.loss * 100.0,
                f.duplicates
            );
            let _ = writeln!(
                s,
                "    latency ms: {}  max {}  | overhead {} link tx/delivered | longest gap {:.1} ms",
                lat.join(" "),
                f.latency_max_ms.map_or("-".into(), |m| format!("{m:.2}")),
                f.overhead.map_or("-".into(), |o| format!("{o:.2}")),
                f.max_gap_ms
            );
            for o in &f.outages {
                if let Some(ms) = o.outage_ms {
                    let _ = writeln!(
                        s,
                        "    after [{}] {} at {:.1} ms: longest gap {ms:.1} ms",
                        o.event, o.what, o.at_ms
                    );
                }
            }
        }
        self.human_groups(&mut s);
        let _ = writeln!(s, "\nnodes:");
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "  {:>3} {:<12} {}  routes {:>3}  FIBs {:>4}  hellos ignored {}  control refused {}",
                n.id,
                n.name,
                if n.up { "up  " } else { "DOWN" },
                n.routes,
                n.fib_publishes,
                n.hellos_ignored,
                n.control_refused
            );
            let g = &n.groups;
            if g.known + g.multicast_routes + g.anycast_routes > 0 {
                let _ = writeln!(
                    s,
                    "      groups: local {} known {}  FIB multicast {} anycast {}  incomplete FIBs {}",
                    g.local, g.known, g.multicast_routes, g.anycast_routes, g.fib_errors
                );
            }
        }
        if let Some(links) = &self.links {
            let _ = writeln!(s, "\nlinks (per path and direction):");
            for l in links {
                let _ = writeln!(
                    s,
                    "  link {:>3} path {} {:>3} -> {:<3} offered {:>8} delivered {:>8} lost {:>6} queue {:>6} cut {:>6}",
                    l.link,
                    l.path,
                    l.from,
                    l.to,
                    l.offered,
                    l.delivered,
                    l.lost,
                    l.queue_drops,
                    l.down_drops
                );
            }
        }
        let c = &self.counters;
        let _ = writeln!(
            s,
            "\ncounters: link packets {} (data {}), delivered {}, node drops {} (data {}), flood {}, stray {}",
            c.link_packets,
            c.data_link_packets,
            c.delivered,
            c.node_drops,
            c.data_drops,
            c.flood_packets,
            c.stray_deliveries
        );
        s
    }

    fn human_groups(&self, s: &mut String) {
        if self.group_flows.is_empty() {
            return;
        }
        let _ = writeln!(s, "\ngroup flows:");
        for f in &self.group_flows {
            let _ = writeln!(
                s,
                "  {} ({} -> {} group {}): sent {} delivered somewhere {} deliveries {} | link tx {} | longest gap {:.1} ms",
                f.name,
                f.from,
                f.kind,
                f.group,
                f.sent,
                f.delivered_anywhere,
                f.deliveries,
                f.link_transmissions,
                f.max_gap_ms
            );
            for r in &f.receivers {
                let at = |ms: Option<f64>| ms.map_or("-".into(), |m| format!("{m:.1}"));
                let _ = writeln!(
                    s,
                    "    node {:>3}: delivered {:>7} dup {} first {} ms last {} ms  p50 {} ms",
                    r.node,
                    r.delivered,
                    r.duplicates,
                    at(r.first_ms),
                    at(r.last_ms),
                    at(r.latency_ms.first().and_then(|p| p.ms))
                );
            }
            let copies: Vec<String> = f
                .copies
                .iter()
                .map(|c| format!("{}x{}", c.messages, c.copies))
                .collect();
            let _ = writeln!(
                s,
                "    link tx per message (messages x copies): {}",
                copies.join(" ")
            );
            for o in &f.outages {
                if let Some(ms) = o.outage_ms {
                    let _ = writeln!(
                        s,
                        "    after [{}] {} at {:.1} ms: longest gap anywhere {ms:.1} ms",
                        o.event, o.what, o.at_ms
                    );
                }
            }
        }
    }
}
