//! One simulated Weft node: the real sans-IO protocol code, driven like the real daemons drive
//! it.
//!
//! A running node holds, per incarnation, what `weft-dataplane` and `weft-controld` hold:
//! - one [`LinkMonitor`] per link (hellos on every path, RTT, loss, up/down, active path), polled
//!   as worker 0's `Monitors` polls them (`dataplane/engine/src/monitors.rs`);
//! - a [`Forwarder`] that runs every received datagram against the node's FIB and link table,
//!   with a [`LinkSender`] writing every packet the node sends;
//! - a link-state [`Router`], fed as the daemon feeds it (`controlplane/daemon/src/daemon.rs`):
//!   punted control envelopes at once, link reports read from the monitors every
//!   `stats_interval` (up = the link has an up path, latency = the active path's smoothed RTT /
//!   2, loss = its hello loss), its timers, and a FIB built with [`Router::fill_fib`] when
//!   [`Router::fib_due`] says so;
//! - next to the router, the group state and the node's local members ([`super::groups`]),
//!   whose routes join the unicast ones in each FIB.
//!
//! The pipeline's output (hellos to the monitors, envelopes to the control plane, deliveries,
//! forwards) is in `super::pipeline`. The node does no I/O: everything it sends goes to the
//! simulation as an output (a packet to send, a delivery, a drop, a log entry).

use std::time::Duration;

use weft_proto::forward::{
    DEFAULT_TTL, Forwarder, LinkInfo, LinkSender, LinkTable, LocalDelivery, hello_repr,
};
use weft_proto::link_monitor::{
    LinkEvent, LinkMonitor, LinkMonitorConfig, LocalIdentity, VersionRange,
};
use weft_routing::link_state::{Router, RouterParams};
use weft_routing::metric::LinkReport;
use weft_shared::DropReason;
use weft_shared::config::Config;
use weft_shared::ids::{FlowId, Incarnation, LinkId, MAX_PATHS_PER_LINK, NodeId, PathId, Port};
use weft_shared::shm::fib::{FibBuilder, FibTable};
use weft_shared::time::Instant;
use weft_shared::wire::{
    DataRepr, Delivery, HelloRepr, LinkProto, OverlayRepr, Route, Strikes, WIRE_VERSION_MAX,
    WIRE_VERSION_MIN,
};

use crate::linkmodel::Rng;
use crate::sim::groups::{self, NodeGroups};
use crate::sim::log::LogEvent;
use crate::sim::pipeline::Out;

/// Size of every packet buffer (above any link MTU the configs allow in practice).
pub(crate) const BUF_LEN: usize = 2048;
/// Most buffers kept for reuse.
const POOL_MAX: usize = 1 << 16;
/// Drop code of a data packet a misbehaving node threw away (pipeline drops use
/// [`DropReason::index`], below 100).
pub const DROP_MISBEHAVIOUR: u64 = 100;
/// Flow id of the junk a flooding node sends.
pub(crate) const FLOOD_FLOW: FlowId = FlowId(u32::MAX);

/// A packet buffer (a thin pointer, so queued events stay small).
pub(crate) type Buf = Box<[u8; BUF_LEN]>;

/// A packet: a fixed-size buffer and the length in use.
#[derive(Debug)]
pub(crate) struct Packet {
    pub(crate) buf: Buf,
    pub(crate) len: u32,
}

impl Packet {
    pub(crate) fn new(buf: Buf, len: usize) -> Packet {
        Packet {
            buf,
            len: u32::try_from(len.min(BUF_LEN)).unwrap_or(0),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len as usize]
    }
}

/// Buffers for reuse, so steady traffic does not allocate.
#[derive(Debug, Default)]
pub(crate) struct Pool(Vec<Buf>);

impl Pool {
    pub(crate) fn take(&mut self) -> Buf {
        self.0.pop().unwrap_or_else(|| Box::new([0; BUF_LEN]))
    }

    pub(crate) fn give(&mut self, buf: Buf) {
        if self.0.len() < POOL_MAX {
            self.0.push(buf);
        }
    }
}

/// What a packet carries, for the per-flow figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Hello,
    Control,
    Data { src: NodeId, flow: FlowId, seq: u64 },
}

/// What a node hands back to the simulation.
#[derive(Debug)]
pub(crate) enum Output {
    /// Send on `link` (network index `net`) from side `side`, on `path`.
    Tx {
        net: usize,
        side: usize,
        link: LinkId,
        path: PathId,
        packet: Packet,
        class: Class,
    },
    /// A data packet reached its destination node.
    Deliver {
        flow: FlowId,
        src: NodeId,
        seq: u64,
        sent_at: Instant,
    },
    /// The node dropped a packet (`code`: a [`DropReason::index`] or one of the `DROP_*`).
    Drop {
        link: Option<LinkId>,
        code: u64,
        class: Class,
    },
    /// A misbehaving node forwards this data record on `link` at `at`.
    Later {
        at: Instant,
        link: LinkId,
        packet: Packet,
    },
    /// Something for the event log.
    Log(LogEvent),
}

/// Borrowed simulation state a node call may use.
pub(crate) struct Ctx<'a> {
    pub(crate) pool: &'a mut Pool,
    pub(crate) out: &'a mut Vec<Output>,
    /// Every node of the config (to clear the FIB before a rebuild).
    pub(crate) nodes: &'a [NodeId],
}

/// One of the node's links as its data plane sees it.
#[derive(Clone, Debug)]
pub(crate) struct LinkSlot {
    pub(crate) id: LinkId,
    pub(crate) neighbour: NodeId,
    pub(crate) path_count: u8,
    pub(crate) max_datagram: usize,
    /// Index of the link in the simulation's network.
    pub(crate) net: usize,
    /// This node's side of the link (0: the lower node id).
    pub(crate) side: usize,
    pub(crate) active: Option<PathId>,
    pub(crate) one_way_delay_us: u32,
}

/// The node's links, in config order; the [`LinkTable`] the forwarder consults.
#[derive(Clone, Debug)]
pub(crate) struct LinkSet(pub(crate) Vec<LinkSlot>);

impl LinkSet {
    pub(crate) fn position(&self, id: LinkId) -> Option<usize> {
        self.0.iter().position(|l| l.id == id)
    }

    fn get(&self, id: LinkId) -> Option<&LinkSlot> {
        self.0.iter().find(|l| l.id == id)
    }
}

impl LinkTable for LinkSet {
    #[inline]
    fn link(&self, id: LinkId) -> Option<LinkInfo> {
        self.get(id).map(|l| LinkInfo {
            neighbour: l.neighbour,
            path_count: l.path_count.min(MAX_PATHS_PER_LINK),
            one_way_delay_us: l.one_way_delay_us,
        })
    }
}

/// What a misbehaving node does to forwarded data, resolved against the config.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Misbehaviour {
    Honest,
    DropAll,
    DropFraction(f64),
    Delay(Duration),
    Duplicate(u8),
    Flood {
        to: NodeId,
        interval_ns: u64,
        size: usize,
    },
}

/// The software of one node incarnation.
pub(crate) struct Running {
    pub(crate) incarnation: Incarnation,
    forwarder: Forwarder,
    sender: LinkSender,
    pub(crate) links: LinkSet,
    pub(crate) monitors: Vec<LinkMonitor>,
    /// Each monitor's `poll_timeout` as of the last call on it (`FAR_FUTURE`: none).
    timeouts: Vec<Instant>,
    pub(crate) router: Router,
    /// Group state and local members.
    pub(crate) groups: NodeGroups,
    pub(crate) fib: Box<FibTable>,
    stats_interval: Duration,
    next_stats_at: Instant,
    router_deadline: Instant,
    /// Hellos the monitors refused.
    pub(crate) hellos_ignored: u64,
    /// Control envelopes the router refused.
    pub(crate) control_refused: u64,
    /// FIB generations built.
    pub(crate) fib_publishes: u64,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The link monitor refused the config's timers.
    #[error("node {node}: link monitor settings: {error}")]
    Monitor {
        /// The node.
        node: NodeId,
        /// Why.
        error: weft_proto::link_monitor::LinkMonitorConfigError,
    },
    /// The router could not be built.
    #[error("node {node}: router: {error}")]
    Router {
        /// The node.
        node: NodeId,
        /// Why.
        error: weft_routing::link_state::RouterError,
    },
    /// The group state could not be built.
    #[error("node {node}: group state: {error}")]
    Groups {
        /// The node.
        node: NodeId,
        /// Why.
        error: weft_routing::groups::GroupError,
    },
}

impl Running {
    /// A fresh incarnation `incarnation` (data plane and control plane alike) of node `me`,
    /// starting at `now`; `phase` gives each link monitor its hello phase.
    pub(crate) fn start(
        config: &Config,
        me: NodeId,
        links: &LinkSet,
        incarnation: Incarnation,
        phase: &mut Rng,
        stats_interval: Duration,
        now: Instant,
    ) -> Result<Running, StartError> {
        let local = LocalIdentity {
            incarnation,
            config_hash: config.hash().get(),
            versions: VersionRange {
                min: WIRE_VERSION_MIN,
                max: WIRE_VERSION_MAX,
            },
        };
        let monitors = links
            .0
            .iter()
            .map(|l| {
                // The engine seeds the phase with the link id; processes also start at
                // different times, which the seeded phase stands for here.
                let cfg =
                    LinkMonitorConfig::from_timers(config.timers(), l.path_count, phase.next_u64());
                LinkMonitor::new(cfg, local, now)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| StartError::Monitor { node: me, error })?;
        // A fresh data plane has no FIB: the router holds its links until its first one.
        let params = RouterParams::from_timers(config.timers());
        let router = Router::new(config, me, incarnation, params, now)
            .map_err(|error| StartError::Router { node: me, error })?;
        let groups = NodeGroups::new(config, me, incarnation, now)
            .map_err(|error| StartError::Groups { node: me, error })?;
        // Each control plane reads its statistics on its own phase (processes start apart).
        let stats_ns = u64::try_from(stats_interval.as_nanos()).unwrap_or(u64::MAX);
        let stats_phase = Duration::from_nanos(phase.below(stats_ns));
        let mut links = links.clone();
        for l in &mut links.0 {
            l.active = None;
            l.one_way_delay_us = 0;
        }
        let timeouts = monitors
            .iter()
            .map(|m| m.poll_timeout().unwrap_or(Instant::FAR_FUTURE))
            .collect();
        Ok(Running {
            incarnation,
            timeouts,
            forwarder: Forwarder::new(me),
            sender: LinkSender::new(me, incarnation, 0),
            links,
            monitors,
            router,
            groups,
            fib: FibTable::new_boxed(),
            stats_interval,
            next_stats_at: now + stats_phase,
            router_deadline: now,
            hellos_ignored: 0,
            control_refused: 0,
            fib_publishes: 0,
        })
    }

    /// A datagram arrived: the pipeline, then the monitor a hello went to, then the control
    /// plane if a control envelope was punted. Returns whether the node's timers may have
    /// changed (its wake must be recomputed).
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &mut [u8],
        behaviour: Misbehaviour,
        rng: &mut Rng,
        ctx: &mut Ctx<'_>,
    ) -> bool {
        let mut out = Out {
            now,
            mine: self.incarnation,
            monitors: &mut self.monitors,
            links: &self.links,
            router: &mut self.router,
            groups: &mut self.groups,
            sender: &mut self.sender,
            behaviour,
            rng,
            ctx,
            punted: false,
            hello_to: None,
            hellos_ignored: 0,
            control_refused: 0,
        };
        self.forwarder
            .handle_datagram(now, now, datagram, &self.fib, &self.links, &mut out);
        let (punted, hello_to) = (out.punted, out.hello_to);
        self.hellos_ignored += out.hellos_ignored;
        self.control_refused += out.control_refused;
        if let Some(i) = hello_to {
            self.after_monitor(i, ctx);
        }
        if punted {
            self.control_turn(now, ctx);
        }
        punted || hello_to.is_some()
    }

    /// The node's timers: monitors (hellos, dead paths), then the control plane.
    pub(crate) fn wake(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        for i in 0..self.monitors.len() {
            let m = &mut self.monitors[i];
            if m.poll_timeout().is_some_and(|at| at <= now) {
                m.handle_timeout(now);
            }
            while let Some((path, fields)) = self.monitors[i].poll_transmit(now) {
                let hello = hello_repr(&fields, self.monitors[i].peer_incarnation());
                self.send_hello(i, path, &hello, ctx);
            }
            self.after_monitor(i, ctx);
        }
        // The router's deadline is recomputed after everything that changes the router, so a
        // wake for hellos alone has nothing for the control plane.
        if now >= self.next_stats_at || now >= self.router_deadline {
            self.control_turn(now, ctx);
        }
    }

    /// When the node next has timer work (never before `now` + 1 µs).
    pub(crate) fn next_wake(&self, now: Instant) -> Instant {
        let mut at = self.next_stats_at;
        // A router deadline not after `now` (not seen in the scenarios so far) is polled again
        // 1 ms later rather than spun on.
        let router = if self.router_deadline <= now {
            now + Duration::from_millis(1)
        } else {
            self.router_deadline
        };
        at = at.min(router);
        for t in &self.timeouts {
            at = at.min(*t);
        }
        at.max(now + Duration::from_micros(1))
    }

    /// Sends a locally originated best-effort data packet of flow `flow` addressed by `route`
    /// ([`groups::first_hops`]: to a node or an anycast group one copy on the FIB's next hop,
    /// to a multicast group one per link of this node's tree), and delivers it here when it is
    /// addressed to a group with members here.
    pub(crate) fn originate(
        &mut self,
        now: Instant,
        route: Route,
        flow: FlowId,
        seq: u64,
        payload: &[u8],
        ctx: &mut Ctx<'_>,
    ) {
        let me = self.forwarder.node();
        let class = Class::Data { src: me, flow, seq };
        let (links, local) =
            match groups::first_hops(&self.forwarder, route, &self.fib, &self.links) {
                Ok(hops) => hops,
                Err(reason) => {
                    ctx.out.push(Output::Drop {
                        link: None,
                        code: reason.index() as u64,
                        class,
                    });
                    return;
                }
            };
        if local {
            let to = groups::delivered_to(route);
            self.groups.deliver(to, class, now, ctx.out);
        }
        for link in links.iter() {
            let delay = self.links.get(link).map_or(0, |l| l.one_way_delay_us);
            let data = DataRepr {
                overlay: OverlayRepr {
                    route,
                    ttl: DEFAULT_TTL,
                    link_proto: LinkProto::BestEffort,
                    delivery: Delivery::AsSoonAsOrdered,
                    priority: 0,
                    strikes: Strikes::NONE,
                    src: me,
                    src_port: Port(1),
                    dst_port: Port(1),
                    src_incarnation: self.incarnation,
                    flow,
                    seq,
                    deadline_us: None,
                    age_us: delay,
                },
                fragment: None,
                payload,
            };
            send_on_link(
                &self.links,
                &mut self.sender,
                link,
                class,
                ctx,
                |s, buf, link, path, max| s.write_data(buf, link, path, &data, max),
            );
        }
    }

    /// Sends a data record held back by a delaying node.
    pub(crate) fn send_later(&mut self, link: LinkId, body: &[u8], ctx: &mut Ctx<'_>) {
        let class = data_class(body);
        send_on_link(
            &self.links,
            &mut self.sender,
            link,
            class,
            ctx,
            |s, buf, link, path, max| s.write_data_record(buf, link, path, body, max),
        );
    }

    fn send_hello(&mut self, i: usize, path: PathId, hello: &HelloRepr, ctx: &mut Ctx<'_>) {
        let Some(slot) = self.links.0.get(i) else {
            return;
        };
        let mut buf = ctx.pool.take();
        match self.sender.write_hello(&mut buf[..], slot.id, path, hello) {
            Ok(len) => ctx.out.push(Output::Tx {
                net: slot.net,
                side: slot.side,
                link: slot.id,
                path,
                packet: Packet::new(buf, len),
                class: Class::Hello,
            }),
            Err(reason) => {
                ctx.pool.give(buf);
                ctx.out.push(Output::Drop {
                    link: Some(slot.id),
                    code: reason.index() as u64,
                    class: Class::Hello,
                });
            }
        }
    }

    /// Copies monitor `i`'s active path and delay into the link table (as worker 0 does), logs
    /// its events and notes its next timeout.
    fn after_monitor(&mut self, i: usize, ctx: &mut Ctx<'_>) {
        let (Some(slot), Some(m)) = (self.links.0.get_mut(i), self.monitors.get_mut(i)) else {
            return;
        };
        while let Some(event) = m.poll_event() {
            let link = slot.id.get();
            let e = match event {
                LinkEvent::PathUp(p) => LogEvent::PathUp {
                    link,
                    path: p.get(),
                },
                LinkEvent::PathDown { path, .. } => LogEvent::PathDown {
                    link,
                    path: path.get(),
                },
                LinkEvent::ActivePathChanged { to, .. } => LogEvent::ActivePath {
                    link,
                    path: to.map(PathId::get),
                },
                LinkEvent::LinkUp => LogEvent::LinkUp { link },
                LinkEvent::LinkDown => LogEvent::LinkDown { link },
                LinkEvent::PeerRestarted { .. } => LogEvent::PeerRestarted { link },
                LinkEvent::Mismatch { path, .. } => LogEvent::Mismatch {
                    link,
                    path: path.get(),
                },
            };
            ctx.out.push(Output::Log(e));
        }
        let active = m.active_path();
        slot.active = active;
        slot.one_way_delay_us = active
            .and_then(|p| m.one_way_delay(p))
            .map_or(0, |d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        self.timeouts[i] = m.poll_timeout().unwrap_or(Instant::FAR_FUTURE);
    }

    /// One turn of the control plane, in the daemon's order: link statistics when due, the
    /// router's timers, its outgoing envelopes, a FIB when due.
    fn control_turn(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if now >= self.next_stats_at {
            self.read_link_stats(now);
            self.groups.read_local(now, ctx.out);
            self.next_stats_at = now + self.stats_interval;
        }
        if self.router.next_deadline() <= now {
            self.router.on_timer(now);
        }
        if self.groups.state.next_deadline() <= now {
            self.groups.state.on_timer(now);
        }
        let groups = &mut self.groups.state;
        while let Some(o) = self.router.pop_outgoing().or_else(|| groups.pop_outgoing()) {
            send_on_link(
                &self.links,
                &mut self.sender,
                o.link,
                Class::Control,
                ctx,
                |s, buf, link, path, max| s.write_control(buf, link, path, &o.envelope, max),
            );
        }
        // The daemon's order: the group condition reads `synced` before `fib_due` updates it.
        let groups_due = self.groups.due(&self.router, now);
        if self.router.fib_due(now) || groups_due {
            self.publish_fib(now, ctx);
        }
        self.router_deadline = self
            .router
            .next_deadline()
            .min(self.groups.state.next_deadline());
    }

    /// What the daemon reads from the statistics the data plane writes: per link, up if it has
    /// an up path, the active path's RTT / 2 and hello loss.
    fn read_link_stats(&mut self, now: Instant) {
        let mut changed = Vec::new();
        for (slot, m) in self.links.0.iter().zip(&self.monitors) {
            let report = match m.active_path().and_then(|p| m.path_stats(p)) {
                Some(s) => LinkReport {
                    up: true,
                    latency_us: s.srtt_us.unwrap_or(0) / 2,
                    loss_ppm: s.rx_loss_ppm.unwrap_or(0),
                },
                None => LinkReport::default(),
            };
            if self.router.measured(slot.id) != Some(report) {
                changed.push((slot.id, report));
            }
        }
        if !changed.is_empty() {
            self.router.on_link_reports(now, &changed);
            self.groups.links_up(now, &self.router, &self.links);
        }
    }

    fn publish_fib(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        let hop = |fib: &FibTable, dst: NodeId| fib.unicast(dst).map(|r| r.next_hop);
        let before: Vec<Option<LinkId>> = ctx.nodes.iter().map(|n| hop(&self.fib, *n)).collect();
        let mut builder = FibBuilder::new(&mut self.fib);
        let counts = builder.counts();
        if counts.multicast + counts.anycast > 0 {
            builder.clear(); // the group tables have no removal
        } else {
            for n in ctx.nodes {
                builder.remove_unicast(*n);
            }
        }
        // Unicast routes cannot fail (only the multicast and anycast tables fill up).
        let _ = self.router.fill_fib(&mut builder);
        self.groups.fill_fib(&self.router, &mut builder, ctx.out);
        self.router.fib_published(now);
        self.groups.fib_published(now);
        self.fib_publishes += 1;
        let mut routes = 0;
        for (n, old) in ctx.nodes.iter().zip(before) {
            let new = hop(&self.fib, *n);
            routes += usize::from(new.is_some());
            if new != old {
                ctx.out.push(Output::Log(LogEvent::RouteChanged {
                    dst: n.get(),
                    next_hop: new.map(LinkId::get),
                }));
            }
        }
        let counts = self.fib.counts();
        ctx.out.push(Output::Log(LogEvent::FibPublished {
            routes,
            multicast: counts.multicast,
            anycast: counts.anycast,
        }));
    }
}

/// The flow a data record belongs to.
pub(crate) fn data_class(body: &[u8]) -> Class {
    match LocalDelivery::parse(body, false) {
        Ok(d) => Class::Data {
            src: d.src,
            flow: d.flow,
            seq: d.seq,
        },
        Err(_) => Class::Control,
    }
}

/// Writes one packet for `link`'s active path with `write` and hands it to the simulation
/// (the engine's `send_on_link`); a link without an up path has no route through it.
pub(crate) fn send_on_link(
    links: &LinkSet,
    sender: &mut LinkSender,
    link: LinkId,
    class: Class,
    ctx: &mut Ctx<'_>,
    write: impl FnOnce(&mut LinkSender, &mut [u8], LinkId, PathId, usize) -> Result<usize, DropReason>,
) {
    let drop = |ctx: &mut Ctx<'_>, code: u64| {
        ctx.out.push(Output::Drop {
            link: Some(link),
            code,
            class,
        });
    };
    let Some(slot) = links.get(link) else {
        return drop(ctx, DropReason::UnknownLink(link.get()).index() as u64);
    };
    let Some(path) = slot.active else {
        return drop(ctx, DropReason::NoRoute.index() as u64);
    };
    let mut buf = ctx.pool.take();
    let max = slot.max_datagram.min(BUF_LEN);
    match write(sender, &mut buf[..], link, path, max) {
        Ok(len) => ctx.out.push(Output::Tx {
            net: slot.net,
            side: slot.side,
            link,
            path,
            packet: Packet::new(buf, len),
            class,
        }),
        Err(reason) => {
            ctx.pool.give(buf);
            drop(ctx, reason.index() as u64);
        }
    }
}
