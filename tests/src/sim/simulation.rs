//! The simulation: nodes, emulated links, flows and the timeline, driven by one event queue in
//! virtual time. Flows to groups and membership events are in [`groups`], the report in
//! [`figures`].

mod figures;
mod groups;

use std::time::Duration;

use weft_shared::config::Config;
use weft_shared::ids::{FlowId, Incarnation, LinkId, NodeId, PathId};
use weft_shared::time::Instant;
use weft_shared::wire::Route;

use crate::linkmodel::{DropCause, LinkModel, Rng, Verdict};
use crate::sim::flow::FlowState;
use crate::sim::group_flow::GroupFlowState;
use crate::sim::log::{Log, LogEvent};
use crate::sim::node::{
    Class, Ctx, FLOOD_FLOW, LinkSet, LinkSlot, Misbehaviour, Output, Packet, Pool, Running,
    StartError,
};
use crate::sim::queue::EventQueue;
use crate::sim::report::{Counters, Report};
use crate::sim::resolve::{Resolved, Resolver};
use crate::sim::scenario::{GroupChange, ReportSpec, Scenario, ScenarioError};
use crate::sim::trace::{Trace, TraceKind, TraceRecord, digest};

/// IPv4 and UDP headers, added to every packet's length on an emulated link.
const IP_UDP_V4: usize = 28;
/// IPv6 and UDP headers.
const IP_UDP_V6: usize = 48;

/// What the queue holds (kept small: the heap moves events around).
#[derive(Debug)]
enum Event {
    /// A packet reaches side `to_side` of network link `net` on `path`.
    Arrive {
        net: u32,
        path: u8,
        to_side: u8,
        packet: Packet,
    },
    /// A node's timers (stale if it is not the node's scheduled wake any more).
    Wake { node: usize },
    /// The next packet of a flow.
    FlowSend { flow: usize },
    /// The next message of a group flow.
    GroupFlowSend { flow: usize },
    /// The next junk packet of a flooding node (stale if `epoch` moved on).
    Flood { node: usize, epoch: u32 },
    /// A timeline event.
    Timeline { index: usize },
    /// A data record a delaying node forwards now (stale after a restart).
    Later {
        node: usize,
        restarts: u32,
        link: LinkId,
        packet: Packet,
    },
}

/// One direction-pair of one path of a network link.
#[derive(Debug)]
struct NetPath {
    /// `dir[s]` carries packets from side `s` to side `1 - s`.
    dir: [LinkModel; 2],
    cut: bool,
}

/// A link of the overlay with its emulated paths.
#[derive(Debug)]
struct NetLink {
    id: LinkId,
    nodes: [NodeId; 2],
    /// Indices into `Simulation::nodes`.
    ends: [usize; 2],
    paths: Vec<NetPath>,
    cut: bool,
    ip_udp: usize,
}

impl NetLink {
    fn refresh(&mut self) {
        for p in &mut self.paths {
            let up = !self.cut && !p.cut;
            p.dir[0].set_up(up);
            p.dir[1].set_up(up);
        }
    }
}

/// A node: its identity, its running software (if up) and how it behaves.
struct SimNode {
    id: NodeId,
    name: String,
    links: LinkSet,
    running: Option<Running>,
    restarts: u32,
    behaviour: Misbehaviour,
    epoch: u32,
    flood_seq: u64,
    /// Hello phases of each incarnation.
    phase: Rng,
    /// Drop decisions of a misbehaving node.
    rng: Rng,
    scheduled_wake: Option<Instant>,
}

/// Why a simulation could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario does not fit the config.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A node's protocols refused to start.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// A deterministic simulation of a Weft overlay.
///
/// Every node runs the real sans-IO protocol code (see [`crate::sim`]); packets are the bytes
/// the real writers produce, carried by [`LinkModel`]s, one per path and direction. Everything
/// random draws from one [`Rng`] seeded with `seed`, forked in a fixed order, so one seed gives
/// one trace.
pub struct Simulation {
    config: Config,
    now: Instant,
    end: Instant,
    queue: EventQueue<Event>,
    nodes: Vec<SimNode>,
    node_ids: Vec<NodeId>,
    net: Vec<NetLink>,
    flows: Vec<FlowState>,
    group_flows: Vec<GroupFlowState>,
    timeline: Vec<(Instant, Resolved, String)>,
    window_starts: Vec<Instant>,
    stats_interval: Duration,
    report_spec: ReportSpec,
    scenario_name: String,
    seed: u64,
    trace: Trace,
    log: Log,
    pool: Pool,
    out: Vec<Output>,
    payload: Vec<u8>,
    counters: Counters,
}

impl Simulation {
    /// Builds the overlay of `config` as `scenario` describes it, with every node started at
    /// time zero. Errors name the scenario file and field.
    pub fn new(config: &Config, scenario: &Scenario, seed: u64) -> Result<Simulation, SimError> {
        let r = Resolver { config, scenario };
        let mut rng = Rng::new(seed);
        let params = r.path_params()?;
        let node_ids: Vec<NodeId> = config.nodes().iter().map(|n| n.id()).collect();
        let index_of = |id: NodeId| node_ids.iter().position(|n| *n == id).unwrap_or(0);
        // 1. Links: a model per path and direction, in config order.
        let mut net = Vec::new();
        for (link, paths) in config.links().iter().zip(params) {
            let v6 = link
                .paths()
                .first()
                .is_some_and(|p| p.ends()[0].addr.is_ipv6());
            let paths = paths
                .into_iter()
                .map(|p| NetPath {
                    dir: [
                        LinkModel::new(p, rng.next_u64()),
                        LinkModel::new(p, rng.next_u64()),
                    ],
                    cut: false,
                })
                .collect();
            let nodes = link.nodes();
            net.push(NetLink {
                id: link.id(),
                nodes,
                ends: [index_of(nodes[0]), index_of(nodes[1])],
                paths,
                cut: false,
                ip_udp: if v6 { IP_UDP_V6 } else { IP_UDP_V4 },
            });
        }
        // 2. Nodes, each with its own generators, in config order.
        let mut nodes = Vec::new();
        for n in config.nodes() {
            let slots = config
                .links_of(n.id())
                .map(|end| {
                    let link = end.link();
                    let ip_udp = net
                        .iter()
                        .find(|l| l.id == end.id())
                        .map_or(IP_UDP_V4, |l| l.ip_udp);
                    LinkSlot {
                        id: end.id(),
                        neighbour: end.neighbour(),
                        path_count: u8::try_from(link.paths().len()).unwrap_or(u8::MAX),
                        max_datagram: usize::from(link.mtu()).saturating_sub(ip_udp),
                        net: config
                            .links()
                            .iter()
                            .position(|l| l.id() == end.id())
                            .unwrap_or(0),
                        side: link.side_of(n.id()).unwrap_or(0),
                        active: None,
                        one_way_delay_us: 0,
                    }
                })
                .collect();
            nodes.push(SimNode {
                id: n.id(),
                name: n.name().to_owned(),
                links: LinkSet(slots),
                running: None,
                restarts: 0,
                behaviour: Misbehaviour::Honest,
                epoch: 0,
                flood_seq: 0,
                phase: rng.fork(),
                rng: rng.fork(),
                scheduled_wake: None,
            });
        }
        // 3. The timeline.
        let timeline = r.timeline()?;
        let window_starts = timeline.iter().map(|(at, _, _)| *at).collect();
        // 4. Flows.
        let end = Instant::ZERO + scenario.duration;
        let mut flows = Vec::new();
        let mut group_flows = Vec::new();
        for (i, f) in scenario.flows.iter().enumerate() {
            let from = r.node(&format!("flow[{i}].from"), &f.from)?;
            if let Some(target) = f.group {
                let windows = (&node_ids[..], net.len(), scenario.timeline_len());
                let src = (index_of(from), from);
                let index = group_flows.len();
                group_flows.push(groups::flow(f, index, src, target, end, windows));
                continue;
            }
            let to = r.node(&format!("flow[{i}].to"), &f.to)?;
            if from == to {
                return Err(ScenarioError::new(
                    &scenario.file,
                    format!("flow[{i}].to"),
                    format!("the flow's source and destination are both node {from}"),
                )
                .into());
            }
            let id = FlowId(u32::try_from(flows.len() + 1).unwrap_or(u32::MAX - 1));
            flows.push(FlowState::new(
                f.name.clone(),
                (index_of(from), from),
                (index_of(to), to),
                id,
                f.rate_pps,
                f.size,
                (Instant::ZERO + f.start, (Instant::ZERO + f.stop).min(end)),
                scenario.timeline_len(),
            ));
        }
        let mut sim = Simulation {
            config: config.clone(),
            now: Instant::ZERO,
            end,
            queue: EventQueue::new(),
            nodes,
            node_ids,
            net,
            flows,
            group_flows,
            timeline,
            window_starts,
            stats_interval: scenario.stats_interval,
            report_spec: scenario.report.clone(),
            scenario_name: scenario.name.clone(),
            seed,
            trace: Trace::new(scenario.report.trace),
            log: Log::default(),
            pool: Pool::default(),
            out: Vec::with_capacity(64),
            payload: vec![0; crate::sim::scenario::MAX_FLOW_SIZE],
            counters: Counters::default(),
        };
        // 5. Start: every node at zero, then the flows and the timeline.
        for i in 0..sim.nodes.len() {
            sim.start_node(i)?;
        }
        for (i, f) in sim.flows.iter().enumerate() {
            sim.queue.push(f.send_time(0), Event::FlowSend { flow: i });
        }
        for (i, f) in sim.group_flows.iter().enumerate() {
            sim.queue
                .push(f.send_time(0), Event::GroupFlowSend { flow: i });
        }
        for (i, (at, _, _)) in sim.timeline.iter().enumerate() {
            sim.queue.push(*at, Event::Timeline { index: i });
        }
        Ok(sim)
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The end of the scenario's duration (flows stop there at the latest).
    pub fn end(&self) -> Instant {
        self.end
    }

    /// The config the overlay runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The packet trace so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The event log so far.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Runs every event up to and including `until`; afterwards `now()` is `until`.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(at) = self.queue.peek_time() {
            if at > until {
                break;
            }
            let Some((at, event)) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.counters.events += 1;
            self.handle(event);
        }
        self.now = self.now.max(until);
    }

    /// Runs the scenario's duration plus its drain time and reports.
    pub fn run(&mut self, drain: Duration) -> Report {
        self.run_until(self.end + drain);
        self.report()
    }

    /// The first-hop link node `node` uses towards `dst` now, if it is up and has a route.
    pub fn next_hop(&self, node: NodeId, dst: NodeId) -> Option<LinkId> {
        let n = self.nodes.iter().find(|n| n.id == node)?;
        n.running.as_ref()?.fib.unicast(dst).map(|r| r.next_hop)
    }

    /// The nodes a packet from `src` to `dst` crosses now, following each node's FIB (at most
    /// as many hops as there are nodes).
    pub fn route(&self, src: NodeId, dst: NodeId) -> Vec<NodeId> {
        let mut path = vec![src];
        let mut at = src;
        while at != dst && path.len() <= self.nodes.len() {
            let Some(link) = self.next_hop(at, dst) else {
                break;
            };
            let Some(next) = self.config.neighbour(link, at) else {
                break;
            };
            path.push(next);
            at = next;
        }
        path
    }

    /// The active path of `link` at `node`, if the node is up and the link has an up path.
    pub fn active_path(&self, node: NodeId, link: LinkId) -> Option<PathId> {
        let n = self.nodes.iter().find(|n| n.id == node)?;
        let r = n.running.as_ref()?;
        r.links.0.iter().find(|l| l.id == link)?.active
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrive {
                net,
                path,
                to_side,
                packet,
            } => self.arrive(net as usize, path, usize::from(to_side), packet),
            Event::Wake { node } => {
                if self.nodes[node].scheduled_wake != Some(self.now) {
                    return; // superseded
                }
                self.nodes[node].scheduled_wake = None;
                self.with_node(node, |r, _, _, now, ctx| {
                    r.wake(now, ctx);
                    true
                });
            }
            Event::FlowSend { flow } => self.flow_send(flow),
            Event::GroupFlowSend { flow } => self.group_flow_send(flow),
            Event::Flood { node, epoch } => self.flood(node, epoch),
            Event::Timeline { index } => self.apply_timeline(index),
            Event::Later {
                node,
                restarts,
                link,
                packet,
            } => {
                if self.nodes[node].restarts == restarts {
                    let body = packet.bytes();
                    self.with_node(node, |r, _, _, _, ctx| {
                        r.send_later(link, body, ctx);
                        false
                    });
                }
                self.pool.give(packet.buf);
            }
        }
    }

    /// Calls `f` on node `i`'s running software (if it is up), reschedules its wake if `f` says
    /// its timers may have changed, then applies what it output.
    fn with_node(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Running, Misbehaviour, &mut Rng, Instant, &mut Ctx<'_>) -> bool,
    ) {
        let node = &mut self.nodes[i];
        let Some(running) = node.running.as_mut() else {
            return;
        };
        let mut ctx = Ctx {
            pool: &mut self.pool,
            out: &mut self.out,
            nodes: &self.node_ids,
        };
        if f(running, node.behaviour, &mut node.rng, self.now, &mut ctx) {
            let next = running.next_wake(self.now);
            if node.scheduled_wake.is_none_or(|s| next < s) {
                node.scheduled_wake = Some(next);
                self.queue.push(next, Event::Wake { node: i });
            }
        }
        self.apply_outputs(i);
    }

    fn apply_outputs(&mut self, i: usize) {
        let mut out = std::mem::take(&mut self.out);
        let node = self.nodes[i].id.get();
        for o in out.drain(..) {
            match o {
                Output::Tx {
                    net,
                    side,
                    link,
                    path,
                    packet,
                    class,
                } => self.transmit(node, net, side, link, path, packet, class),
                Output::Deliver {
                    flow,
                    src,
                    seq,
                    sent_at,
                } => self.deliver(i, flow, src, seq, sent_at),
                Output::Drop { link, code, class } => {
                    self.counters.node_drops += 1;
                    if matches!(class, Class::Data { .. }) {
                        self.counters.data_drops += 1;
                    }
                    self.record(
                        TraceKind::Dropped,
                        node,
                        link.map_or(u16::MAX, |l| l.get()),
                        u8::MAX,
                        code,
                    );
                }
                Output::Later { at, link, packet } => {
                    let restarts = self.nodes[i].restarts;
                    self.queue.push(
                        at,
                        Event::Later {
                            node: i,
                            restarts,
                            link,
                            packet,
                        },
                    );
                }
                Output::Log(e) => self.log.push(self.now, node, e),
            }
        }
        self.out = out;
    }

    #[inline]
    fn record(&mut self, kind: TraceKind, node: u16, link: u16, path: u8, value: u64) {
        self.trace.record(TraceRecord {
            at_ns: self.now.as_nanos(),
            kind,
            node,
            link,
            path,
            value,
        });
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one transmission, field by field"
    )]
    fn transmit(
        &mut self,
        node: u16,
        net: usize,
        side: usize,
        link: LinkId,
        path: PathId,
        packet: Packet,
        class: Class,
    ) {
        self.counters.link_packets += 1;
        let d = digest(packet.bytes());
        self.record(TraceKind::Sent, node, link.get(), path.get(), d);
        if let Class::Data { src, flow, seq } = class {
            self.counters.data_link_packets += 1;
            if let Some(f) = self.flow_of(flow, src) {
                self.flows[f].link_tx += 1;
            } else if let Some(g) = self.group_flow_of(flow, src) {
                self.group_flows[g].on_transmit(self.now, net, side, seq);
            }
        }
        let l = &mut self.net[net];
        let wire_len = packet.len as usize + l.ip_udp;
        let Some(p) = l.paths.get_mut(usize::from(path.get())) else {
            self.pool.give(packet.buf);
            return;
        };
        match p.dir[side].offer(self.now, wire_len) {
            Verdict::Deliver(at) => self.queue.push(
                at,
                Event::Arrive {
                    // At most MAX_LINKS (512) links: the index fits.
                    net: net as u32,
                    path: path.get(),
                    to_side: (1 - side) as u8,
                    packet,
                },
            ),
            Verdict::Drop(cause) => {
                let kind = match cause {
                    DropCause::Loss => TraceKind::LostOnLink,
                    DropCause::Queue => TraceKind::QueueDrop,
                    DropCause::Down => TraceKind::CutDrop,
                };
                self.record(kind, 0, link.get(), path.get(), d);
                self.pool.give(packet.buf);
            }
        }
    }

    fn arrive(&mut self, net: usize, path: u8, to_side: usize, mut packet: Packet) {
        let i = self.net[net].ends[to_side];
        let link = self.net[net].id.get();
        let node = self.nodes[i].id.get();
        if self.nodes[i].running.is_none() {
            self.record(TraceKind::NodeDown, node, link, path, u64::from(packet.len));
            self.pool.give(packet.buf);
            return;
        }
        self.record(TraceKind::Arrived, node, link, path, u64::from(packet.len));
        let buf = packet.bytes_mut();
        self.with_node(i, |r, behaviour, rng, now, ctx| {
            r.handle_datagram(now, buf, behaviour, rng, ctx)
        });
        self.pool.give(packet.buf);
    }

    fn flow_of(&self, flow: FlowId, src: NodeId) -> Option<usize> {
        let i = usize::try_from(flow.0).ok()?.checked_sub(1)?;
        (self.flows.get(i)?.src_id == src).then_some(i)
    }

    fn deliver(&mut self, node: usize, flow: FlowId, src: NodeId, seq: u64, sent_at: Instant) {
        let id = self.nodes[node].id.get();
        if let Some(g) = self.group_flow_of(flow, src) {
            self.counters.delivered += 1;
            self.record(TraceKind::Delivered, id, u16::MAX, u8::MAX, seq);
            let windows = &self.window_starts;
            self.group_flows[g].on_delivery(node, self.now, seq, sent_at, windows);
            return;
        }
        match self
            .flow_of(flow, src)
            .filter(|f| self.flows[*f].dst == node)
        {
            Some(f) => {
                self.counters.delivered += 1;
                self.record(TraceKind::Delivered, id, u16::MAX, u8::MAX, seq);
                let windows = &self.window_starts;
                self.flows[f].on_delivery(self.now, seq, sent_at, windows);
            }
            None => self.counters.stray_deliveries += 1,
        }
    }

    fn flow_send(&mut self, i: usize) {
        let f = &mut self.flows[i];
        if self.now >= f.stop {
            return;
        }
        let seq = f.next_seq;
        f.next_seq += 1;
        f.sent += 1;
        let (src, dst, id, size) = (f.src, f.dst_id, f.id, f.size);
        let next = f.send_time(seq + 1);
        if next < f.stop {
            self.queue.push(next, Event::FlowSend { flow: i });
        }
        self.originate(src, Route::Unicast(dst), id, seq, size);
    }

    fn originate(&mut self, src: usize, route: Route, flow: FlowId, seq: u64, size: usize) {
        let node = self.nodes[src].id.get();
        if self.nodes[src].running.is_none() {
            self.record(TraceKind::NodeDown, node, u16::MAX, u8::MAX, seq);
            return;
        }
        let mut payload = std::mem::take(&mut self.payload);
        payload[..8].copy_from_slice(&self.now.as_nanos().to_le_bytes());
        let body = &payload[..size];
        self.with_node(src, |r, _, _, now, ctx| {
            r.originate(now, route, flow, seq, body, ctx);
            false
        });
        self.payload = payload;
    }

    fn flood(&mut self, i: usize, epoch: u32) {
        let n = &mut self.nodes[i];
        let Misbehaviour::Flood {
            to,
            interval_ns,
            size,
        } = n.behaviour
        else {
            return;
        };
        if n.epoch != epoch || self.now >= self.end {
            return;
        }
        let seq = n.flood_seq;
        n.flood_seq += 1;
        self.counters.flood_packets += 1;
        self.queue.push(
            self.now + Duration::from_nanos(interval_ns),
            Event::Flood { node: i, epoch },
        );
        self.originate(i, Route::Unicast(to), FLOOD_FLOW, seq, size);
    }

    fn start_node(&mut self, i: usize) -> Result<(), StartError> {
        let n = &mut self.nodes[i];
        let incarnation = Incarnation(n.restarts + 1);
        let running = Running::start(
            &self.config,
            n.id,
            &n.links,
            incarnation,
            &mut n.phase,
            self.stats_interval,
            self.now,
        )?;
        n.running = Some(running);
        n.scheduled_wake = Some(self.now);
        self.queue.push(self.now, Event::Wake { node: i });
        Ok(())
    }

    fn apply_timeline(&mut self, index: usize) {
        let (_, action, what) = self.timeline[index].clone();
        self.log
            .push(self.now, 0, LogEvent::Timeline { index, what });
        match action {
            Resolved::CutLink(x) => {
                self.net[x].cut = true;
                self.net[x].refresh();
            }
            Resolved::RestoreLink(x) => {
                self.net[x].cut = false;
                self.net[x].refresh();
            }
            Resolved::CutPath(x, p) => {
                self.net[x].paths[usize::from(p)].cut = true;
                self.net[x].refresh();
            }
            Resolved::RestorePath(x, p) => {
                self.net[x].paths[usize::from(p)].cut = false;
                self.net[x].refresh();
            }
            Resolved::FailNode(x) => {
                let n = &mut self.nodes[x];
                n.running = None;
                n.scheduled_wake = None;
            }
            Resolved::RestartNode(x) => {
                let n = &mut self.nodes[x];
                n.running = None;
                n.scheduled_wake = None;
                n.restarts += 1;
                // The config started once already with these timers, so this cannot fail; if
                // it somehow did, the node stays down and the log says so.
                if self.start_node(x).is_err() {
                    self.counters.failed_restarts += 1;
                }
            }
            Resolved::Join(x, group) => self.membership(x, group, GroupChange::Join),
            Resolved::Leave(x, group) => self.membership(x, group, GroupChange::Leave),
            Resolved::Misbehave(x, m) => {
                let n = &mut self.nodes[x];
                n.behaviour = m;
                n.epoch += 1;
                if matches!(m, Misbehaviour::Flood { .. }) {
                    let epoch = n.epoch;
                    self.queue.push(self.now, Event::Flood { node: x, epoch });
                }
            }
        }
    }
}
