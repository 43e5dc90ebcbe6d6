//! Link-state routing as a sans-IO state machine: one [`Router`] per node.
//!
//! Inputs: this node's link measurements from its data plane ([`Router::on_link_report`]),
//! link-state messages punted by the data plane ([`Router::on_control`]) and the passing of time
//! ([`Router::on_timer`]). Outputs: control envelopes to inject on a link
//! ([`Router::pop_outgoing`]), and routes plus the decision to publish them as a FIB
//! ([`Router::fib_due`], [`Router::fill_fib`]). No clock, no socket: the control-plane daemon and
//! the simulator drive the same code.
//!
//! The protocol:
//! - Each node originates one advert listing its links (up/down, one-way latency, loss), with
//!   its control plane's incarnation and a sequence number; (incarnation, seq) orders adverts,
//!   so a restarted control plane (a higher incarnation, taken from the wall clock by the
//!   daemon) is never ignored as stale. A node that hears its own advert with a version at or
//!   above its current one (a clock that went back) jumps past it and re-originates.
//! - A node re-originates at once when a link goes up or down, when a metric change passes the
//!   damping thresholds ([`crate::metric::Damping`]), and every `refresh` interval.
//! - A newer advert is stored, acknowledged to the sender, and flooded on every other up link;
//!   every advert sent is retransmitted (backing off from `retransmit_initial` to
//!   `retransmit_max`) until that neighbour acks it or sends something as new. A copy older
//!   than ours is answered with ours.
//! - Full exchange: when a link comes up, and when a neighbour's advert shows a new
//!   incarnation (its control plane restarted), the whole database is sent on that link.
//! - Adverts not refreshed within `max_age` are discarded.
//! - Routes use a link only when both ends advertise it up (the two-way check); its cost is
//!   the larger of the two ends' expected latencies ([`crate::metric`]).
//! - The first FIB waits until the database is synchronised (every up neighbour's advert is
//!   in, and nothing new arrived for `sync_settle`, or `sync_max` passed), so a restarted
//!   control plane never publishes a half-empty FIB over the data plane's good one. Later FIBs
//!   are published when routes change, at most one per `fib_min_interval`.

mod advert;
pub(crate) mod flood;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use weft_shared::DropReason;
use weft_shared::config::{Config, Timers};
use weft_shared::ids::{Incarnation, LinkId, NodeId};
use weft_shared::shm::fib::{FibBuilder, FibError};
use weft_shared::time::Instant;

use crate::metric::{Damping, LinkReport, MetricParams, expected_latency_us};
use crate::spf::{Edge, Graph, Routes};

pub use advert::{
    ADVERT_ENTRY_LEN, ADVERT_HEAD_LEN, Advert, AdvertLink, MAX_ADVERT_LINKS, Message, UpdateId,
    decode, encode_ack,
};
use flood::Pending;

/// Tunables of the link-state protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterParams {
    /// Re-originate this node's advert this often even when nothing changed.
    pub refresh: Duration,
    /// Discard another node's advert not refreshed for this long.
    pub max_age: Duration,
    /// Publish at most one FIB per this interval.
    pub fib_min_interval: Duration,
    /// First retransmission of an unacknowledged advert after this long.
    pub retransmit_initial: Duration,
    /// Retransmissions back off (doubling) up to this interval.
    pub retransmit_max: Duration,
    /// The database counts as synchronised once nothing new arrived for this long…
    pub sync_settle: Duration,
    /// …or, at the latest, this long after start.
    pub sync_max: Duration,
    /// When measured changes are re-advertised.
    pub damping: Damping,
    /// The expected-latency metric's constants.
    pub metric: MetricParams,
    /// Advertise every link down until the first FIB is published: a node whose data plane
    /// has no FIB yet (a fresh start) offers no transit and is not a destination until it can
    /// forward. A control plane restarted over a data plane that still forwards with an older
    /// FIB sets this to `false`, so the node stays in use while its control plane resyncs.
    pub hold_links_until_fib: bool,
}

impl RouterParams {
    /// The protocol's defaults with the overlay's configured timers.
    pub fn from_timers(timers: &Timers) -> Self {
        RouterParams {
            refresh: timers.link_state_refresh(),
            max_age: timers.link_state_max_age(),
            fib_min_interval: timers.fib_publish_min_interval(),
            retransmit_initial: Duration::from_millis(50),
            retransmit_max: Duration::from_secs(1),
            sync_settle: Duration::from_millis(50),
            sync_max: Duration::from_secs(2),
            damping: Damping::default(),
            metric: MetricParams::default(),
            hold_links_until_fib: true,
        }
    }
}

/// Why a router could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouterError {
    /// The node is not in the config.
    #[error("node {0} is not in the config")]
    UnknownNode(NodeId),
    /// Incarnation 0 is reserved (the wire refuses it).
    #[error("incarnation 0 is reserved")]
    ZeroIncarnation,
    /// The node has more links than one advert can carry.
    #[error("node {node} has {links} links; an advert carries at most {MAX_ADVERT_LINKS}")]
    TooManyLinks {
        /// The node.
        node: NodeId,
        /// Its number of links.
        links: usize,
    },
}

/// A control envelope to send on one of this node's links (its active path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The link to send on.
    pub link: LinkId,
    /// The control envelope (`docs/wire.md`).
    pub envelope: Vec<u8>,
}

/// Counters of the protocol's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Adverts originated by this node.
    pub originated: u64,
    /// Adverts received that were newer than the stored copy.
    pub updates_accepted: u64,
    /// Adverts received that were duplicates or older.
    pub updates_ignored: u64,
    /// Envelopes queued for sending (adverts and acks).
    pub sent: u64,
    /// Adverts sent again for lack of an ack.
    pub retransmissions: u64,
    /// Acks received.
    pub acks_received: u64,
    /// Adverts discarded for age.
    pub aged_out: u64,
    /// Shortest-path computations.
    pub spf_runs: u64,
    /// Messages refused (malformed, unknown link or node).
    pub refused: u64,
}

/// A configured link: its ends and base cost.
#[derive(Clone, Copy, Debug)]
struct LinkInfo {
    id: LinkId,
    ends: [NodeId; 2],
    cost_us: u32,
}

/// One of this node's own links.
#[derive(Clone, Debug)]
struct LocalLink {
    id: LinkId,
    neighbour: NodeId,
    measured: LinkReport,
    advertised: LinkReport,
    /// Adverts sent on this link and not yet acknowledged, by origin.
    pending: BTreeMap<NodeId, Pending>,
}

/// A stored advert and when it arrived.
#[derive(Clone, Debug)]
pub struct StoredAdvert {
    /// The advert.
    pub advert: Advert,
    /// When this version arrived (or was originated).
    pub received_at: Instant,
}

/// One node's link-state router.
#[derive(Debug)]
pub struct Router {
    me: NodeId,
    params: RouterParams,
    nodes: Vec<NodeId>,
    links: Vec<LinkInfo>,
    local: Vec<LocalLink>,
    db: BTreeMap<NodeId, StoredAdvert>,
    incarnation: Incarnation,
    seq: u32,
    last_metric_change: Option<Instant>,
    next_refresh: Instant,
    out: VecDeque<Outgoing>,
    routes: Routes,
    graph_dirty: bool,
    fib_dirty: bool,
    /// The graph when routes were last computed.
    fib_graph: Graph,
    last_fib_at: Option<Instant>,
    started_at: Instant,
    last_news_at: Instant,
    synced: bool,
    holding_links: bool,
    stats: RouterStats,
}

impl Router {
    /// A router for node `me` of `config`, with the control plane's `incarnation` (nonzero,
    /// higher than any earlier run's), starting at `now` with every link down.
    pub fn new(
        config: &Config,
        me: NodeId,
        incarnation: Incarnation,
        params: RouterParams,
        now: Instant,
    ) -> Result<Router, RouterError> {
        if config.node(me).is_none() {
            return Err(RouterError::UnknownNode(me));
        }
        if incarnation.0 == 0 {
            return Err(RouterError::ZeroIncarnation);
        }
        let mut links: Vec<LinkInfo> = config
            .links()
            .iter()
            .map(|l| LinkInfo {
                id: l.id(),
                ends: l.nodes(),
                cost_us: l.cost_us(),
            })
            .collect();
        links.sort_by_key(|l| l.id);
        let mut local: Vec<LocalLink> = config
            .links_of(me)
            .map(|end| LocalLink {
                id: end.id(),
                neighbour: end.neighbour(),
                measured: LinkReport::default(),
                advertised: LinkReport::default(),
                pending: BTreeMap::new(),
            })
            .collect();
        local.sort_by_key(|l| l.id);
        if local.len() > MAX_ADVERT_LINKS {
            return Err(RouterError::TooManyLinks {
                node: me,
                links: local.len(),
            });
        }
        let mut nodes: Vec<NodeId> = config.nodes().iter().map(|n| n.id()).collect();
        nodes.sort();
        let mut router = Router {
            me,
            params,
            nodes,
            links,
            local,
            db: BTreeMap::new(),
            incarnation,
            seq: 0,
            last_metric_change: None,
            next_refresh: now + params.refresh,
            out: VecDeque::new(),
            routes: Graph::default().shortest_paths(me),
            graph_dirty: true,
            fib_dirty: true,
            fib_graph: Graph::default(),
            last_fib_at: None,
            started_at: now,
            last_news_at: now,
            synced: false,
            holding_links: params.hold_links_until_fib,
            stats: RouterStats::default(),
        };
        router.originate(now);
        Ok(router)
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.me
    }

    /// This control plane's incarnation (it may have jumped past an older run's).
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The protocol's counters.
    pub fn stats(&self) -> RouterStats {
        self.stats
    }

    /// Whether the database counts as synchronised (the first FIB waits for it).
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Every stored advert (this node's own included), by origin.
    pub fn database(&self) -> impl Iterator<Item = (NodeId, &StoredAdvert)> + '_ {
        self.db.iter().map(|(n, s)| (*n, s))
    }

    /// The cost the routes give `link` (the larger of its two ends' expected latencies), or
    /// `None` while the two-way check fails.
    pub fn link_cost(&self, link: LinkId) -> Option<u64> {
        let info = self.links.iter().find(|l| l.id == link)?;
        self.edge(info).map(|e| e.cost)
    }

    /// The measured state of this node's link, as its data plane last reported it.
    pub fn measured(&self, link: LinkId) -> Option<LinkReport> {
        self.local_link(link).map(|l| l.measured)
    }

    /// This node's link `link` changed (or was re-measured): `report` is its data plane's view.
    /// Re-originates when the change is news (up/down, or past the damping thresholds).
    pub fn on_link_report(&mut self, now: Instant, link: LinkId, report: LinkReport) {
        self.on_link_reports(now, &[(link, report)]);
    }

    /// Several of this node's links were measured at once (the daemon reads them all from
    /// shared memory together): applies every report, then re-originates at most once, so no
    /// advert ever shows a half-updated view (e.g. a control plane starting over a running
    /// data plane must not announce "link A up, the others down" on its way to "all up").
    pub fn on_link_reports(&mut self, now: Instant, reports: &[(LinkId, LinkReport)]) {
        let damping = self.params.damping;
        let last_metric_change = self.last_metric_change;
        let mut news = false;
        let mut metric_only = false;
        let mut came_up: Vec<LinkId> = Vec::new();
        for &(link, report) in reports {
            let Some(l) = self.local.iter_mut().find(|l| l.id == link) else {
                continue;
            };
            let was_up = l.measured.up;
            l.measured = report;
            if !damping.should_advertise(l.advertised, report, last_metric_change, now) {
                continue;
            }
            let up_down = l.advertised.up != report.up;
            l.advertised = if report.up {
                report
            } else {
                LinkReport::default()
            };
            if !report.up {
                l.pending.clear();
            }
            if report.up && !was_up {
                came_up.push(link);
            }
            metric_only |= !up_down;
            news = true;
        }
        if !news {
            return;
        }
        if metric_only {
            self.last_metric_change = Some(now);
        }
        self.originate(now);
        for link in came_up {
            self.full_exchange(now, link);
        }
    }

    /// A link-state control envelope arrived on `link`. A malformed or impossible message is
    /// refused with the reason (the caller counts it); nothing else changes.
    pub fn on_control(
        &mut self,
        now: Instant,
        link: LinkId,
        envelope: &[u8],
    ) -> Result<(), DropReason> {
        let result = self.handle_control(now, link, envelope);
        if result.is_err() {
            self.stats.refused += 1;
        }
        result
    }

    fn handle_control(
        &mut self,
        now: Instant,
        link: LinkId,
        envelope: &[u8],
    ) -> Result<(), DropReason> {
        if self.local_link(link).is_none() {
            return Err(DropReason::BadField {
                field: "control.link",
                value: link.get().into(),
            });
        }
        match decode(envelope)? {
            Message::Ack(id) => {
                self.stats.acks_received += 1;
                if let Some(l) = self.local_link_mut(link) {
                    flood::acknowledge(&mut l.pending, &id.origin, id);
                }
                Ok(())
            }
            Message::Advert(advert) => {
                self.check_advert(&advert)?;
                self.receive_advert(now, link, advert);
                Ok(())
            }
        }
    }

    /// Refuses an advert from a node outside the config or naming links that are not its own.
    fn check_advert(&self, advert: &Advert) -> Result<(), DropReason> {
        let origin = advert.id.origin;
        for l in &advert.links {
            let owned = self
                .links
                .binary_search_by_key(&l.link, |i| i.id)
                .ok()
                .is_some_and(|i| self.links[i].ends.contains(&origin));
            if !owned {
                return Err(DropReason::BadField {
                    field: "link_state.link",
                    value: l.link.get().into(),
                });
            }
        }
        if self.nodes.binary_search(&origin).is_err() {
            return Err(DropReason::BadField {
                field: "control.origin_node",
                value: origin.get().into(),
            });
        }
        Ok(())
    }

    fn receive_advert(&mut self, now: Instant, link: LinkId, advert: Advert) {
        let id = advert.id;
        self.send(link, encode_ack(id));
        if id.origin == self.me {
            // Our own advert from an earlier run (or an echo of the current one).
            if id.version() > (self.incarnation.0, self.seq) {
                self.incarnation = Incarnation(self.incarnation.0.max(id.incarnation.0));
                self.seq = id.seq;
                self.originate(now);
            }
            return;
        }
        let stored = self.db.get(&id.origin).map(|s| s.advert.id);
        match stored.map(|s| s.version().cmp(&id.version())) {
            None | Some(std::cmp::Ordering::Less) => {
                self.stats.updates_accepted += 1;
                let neighbour_restarted = self
                    .local_link(link)
                    .is_some_and(|l| l.neighbour == id.origin)
                    && stored.is_none_or(|s| s.incarnation != id.incarnation);
                if let Some(l) = self.local_link_mut(link) {
                    flood::acknowledge(&mut l.pending, &id.origin, id);
                }
                self.db.insert(
                    id.origin,
                    StoredAdvert {
                        advert,
                        received_at: now,
                    },
                );
                self.graph_dirty = true;
                self.last_news_at = now;
                self.flood(now, id.origin, Some(link));
                if neighbour_restarted {
                    self.full_exchange(now, link);
                }
            }
            Some(std::cmp::Ordering::Equal) => {
                self.stats.updates_ignored += 1;
                if let Some(l) = self.local_link_mut(link) {
                    flood::acknowledge(&mut l.pending, &id.origin, id);
                }
            }
            Some(std::cmp::Ordering::Greater) => {
                // The neighbour is behind: give it our copy.
                self.stats.updates_ignored += 1;
                self.send_stored(now, link, id.origin);
            }
        }
    }

    /// Time passed: retransmissions, refresh, aging, synchronisation.
    pub fn on_timer(&mut self, now: Instant) {
        self.retransmit(now);
        if now >= self.next_refresh {
            self.originate(now);
        }
        let max_age = self.params.max_age;
        let me = self.me;
        let before = self.db.len();
        self.db
            .retain(|origin, s| *origin == me || now - s.received_at <= max_age);
        let aged = before - self.db.len();
        if aged > 0 {
            self.stats.aged_out += aged as u64;
            self.graph_dirty = true;
        }
        self.update_synced(now);
    }

    fn update_synced(&mut self, now: Instant) {
        if self.synced {
            return;
        }
        let neighbours_in = self
            .local
            .iter()
            .filter(|l| l.measured.up)
            .all(|l| self.db.contains_key(&l.neighbour));
        let settled = now - self.last_news_at >= self.params.sync_settle;
        self.synced = (neighbours_in && settled) || now - self.started_at >= self.params.sync_max;
    }

    /// The earliest time [`Router::on_timer`] (or a FIB publish) has work to do.
    pub fn next_deadline(&self) -> Instant {
        let mut at = self.next_refresh;
        for l in self.local.iter().filter(|l| l.measured.up) {
            for p in l.pending.values() {
                at = at.min(p.next_at);
            }
        }
        for (origin, s) in &self.db {
            if *origin != self.me {
                at = at.min(s.received_at + self.params.max_age + Duration::from_millis(1));
            }
        }
        if !self.synced {
            at = at
                .min(self.last_news_at + self.params.sync_settle)
                .min(self.started_at + self.params.sync_max);
        }
        if self.fib_dirty {
            if let Some(last) = self.last_fib_at {
                at = at.min(last + self.params.fib_min_interval);
            }
        }
        at
    }

    /// The next envelope to send, if any.
    pub fn pop_outgoing(&mut self) -> Option<Outgoing> {
        self.out.pop_front()
    }

    /// The current shortest paths from this node (recomputed if the database changed).
    pub fn routes(&mut self) -> &Routes {
        self.recompute();
        &self.routes
    }

    /// Whether a new FIB should be published now: the database is synchronised, routes
    /// changed since the last publish, and the publish interval has passed.
    pub fn fib_due(&mut self, now: Instant) -> bool {
        self.update_synced(now);
        self.recompute();
        self.synced
            && self.fib_dirty
            && self
                .last_fib_at
                .is_none_or(|t| now - t >= self.params.fib_min_interval)
    }

    /// Writes the unicast routes into a FIB being built.
    pub fn fill_fib(&mut self, fib: &mut FibBuilder<'_>) -> Result<(), FibError> {
        self.recompute();
        self.routes.fill_fib(fib);
        Ok(())
    }

    /// The FIB built by [`Router::fill_fib`] was published at `now`.
    pub fn fib_published(&mut self, now: Instant) {
        self.fib_dirty = false;
        self.last_fib_at = Some(now);
        if self.holding_links {
            // The data plane can forward now: offer this node's links.
            self.holding_links = false;
            self.originate(now);
        }
    }

    fn recompute(&mut self) {
        if !self.graph_dirty {
            return;
        }
        self.graph_dirty = false;
        self.stats.spf_runs += 1;
        let graph = self.graph();
        let routes = graph.shortest_paths(self.me);
        let changed = routes
            .iter()
            .map(|(d, r)| (d, r.first_hop, r.cost))
            .ne(self.routes.iter().map(|(d, r)| (d, r.first_hop, r.cost)));
        // Any change of the graph can move another source's multicast tree or another node's
        // nearest-member choice through this node, even when its own routes stay the same.
        if changed || graph != self.fib_graph {
            self.fib_dirty = true;
        }
        self.fib_graph = graph;
        self.routes = routes;
    }

    /// The overlay graph the routes are computed on: every configured link that passes the
    /// two-way check, at its current cost. Multicast trees and anycast choices
    /// ([`crate::groups::Trees`]) use it so that they agree with the unicast routes.
    pub fn graph(&self) -> Graph {
        Graph::new(self.links.iter().filter_map(|l| self.edge(l)))
    }

    /// The graph edge of a configured link, if both ends advertise it up.
    fn edge(&self, l: &LinkInfo) -> Option<Edge> {
        let mut cost = 0u64;
        for end in l.ends {
            let report = self.db.get(&end)?.advert.link(l.id)?;
            if !report.up {
                return None;
            }
            let latency = u64::from(report.latency_us).max(u64::from(l.cost_us));
            cost = cost.max(expected_latency_us(
                latency,
                report.loss_ppm,
                self.params.metric,
            ));
        }
        Some(Edge {
            link: l.id,
            a: l.ends[0],
            b: l.ends[1],
            cost: cost.max(1),
        })
    }

    /// Builds and floods a new advert of this node's links.
    fn originate(&mut self, now: Instant) {
        if self.seq == u32::MAX {
            // Sequence space exhausted (after 4 billion updates): move to a new incarnation.
            self.incarnation = Incarnation(self.incarnation.0.saturating_add(1));
            self.seq = 0;
        }
        self.seq += 1;
        self.stats.originated += 1;
        self.next_refresh = now + self.params.refresh;
        let advert = Advert {
            id: UpdateId {
                origin: self.me,
                incarnation: self.incarnation,
                seq: self.seq,
            },
            links: self
                .local
                .iter()
                .map(|l| AdvertLink {
                    link: l.id,
                    report: if self.holding_links {
                        LinkReport::default()
                    } else {
                        l.advertised
                    },
                })
                .collect(),
        };
        self.db.insert(
            self.me,
            StoredAdvert {
                advert,
                received_at: now,
            },
        );
        self.graph_dirty = true;
        self.flood(now, self.me, None);
    }

    /// Sends the stored advert of `origin` on every up link except `except`.
    fn flood(&mut self, now: Instant, origin: NodeId, except: Option<LinkId>) {
        let links: Vec<LinkId> = self
            .local
            .iter()
            .filter(|l| l.measured.up && Some(l.id) != except)
            .map(|l| l.id)
            .collect();
        for link in links {
            self.send_stored(now, link, origin);
        }
    }

    /// Sends the whole database on `link`.
    fn full_exchange(&mut self, now: Instant, link: LinkId) {
        let origins: Vec<NodeId> = self.db.keys().copied().collect();
        for origin in origins {
            self.send_stored(now, link, origin);
        }
    }

    /// Sends the stored advert of `origin` on `link` and expects an ack.
    fn send_stored(&mut self, now: Instant, link: LinkId, origin: NodeId) {
        let Some(stored) = self.db.get(&origin) else {
            return;
        };
        let id = stored.advert.id;
        let envelope = stored.advert.encode();
        let initial = self.params.retransmit_initial;
        if let Some(l) = self.local_link_mut(link) {
            l.pending.insert(origin, Pending::new(id, now, initial));
        }
        self.send(link, envelope);
    }

    fn retransmit(&mut self, now: Instant) {
        let max = self.params.retransmit_max;
        let mut resend: Vec<(LinkId, NodeId)> = Vec::new();
        for l in self.local.iter_mut().filter(|l| l.measured.up) {
            for (origin, p) in l.pending.iter_mut() {
                if p.next_at <= now {
                    p.back_off(now, max);
                    resend.push((l.id, *origin));
                }
            }
        }
        for (link, origin) in resend {
            let Some(stored) = self.db.get(&origin) else {
                if let Some(l) = self.local_link_mut(link) {
                    l.pending.remove(&origin);
                }
                continue;
            };
            let envelope = stored.advert.encode();
            let id = stored.advert.id;
            if let Some(p) = self
                .local_link_mut(link)
                .and_then(|l| l.pending.get_mut(&origin))
            {
                p.id = id; // a newer copy replaced the one first sent
            }
            self.stats.retransmissions += 1;
            self.send(link, envelope);
        }
    }

    fn send(&mut self, link: LinkId, envelope: Vec<u8>) {
        self.stats.sent += 1;
        self.out.push_back(Outgoing { link, envelope });
    }

    fn local_link(&self, link: LinkId) -> Option<&LocalLink> {
        self.local.iter().find(|l| l.id == link)
    }

    fn local_link_mut(&mut self, link: LinkId) -> Option<&mut LocalLink> {
        self.local.iter_mut().find(|l| l.id == link)
    }
}
