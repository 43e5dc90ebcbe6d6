//! The control-plane loop: drives the sans-IO [`Router`] (link state) and [`GroupState`]
//! (group membership) with the data plane's punted control packets, its link statistics, the
//! node's local groups and the clock, injects their envelopes, and publishes FIB generations.
//!
//! One thread. Each turn: drain the punt ring (each envelope goes to the machine its kind
//! names); every `stats_interval` read this node's link statistics and its local groups (the
//! groups its clients joined, published by the data plane's session server) from shared
//! memory; run both machines' timers; inject what they want sent (a full inject ring keeps the
//! rest in a bounded backlog for the next turn); publish a FIB when routes or group members
//! changed (a busy reader makes it retry a millisecond later; the data plane is never blocked);
//! then sleep in `poll` on the punt eventfd and the caller's fds until the next deadline.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use weft_routing::groups::{GroupParams, GroupState};
use weft_routing::link_state::{Outgoing, Router, RouterParams};
use weft_routing::metric::LinkReport;
use weft_shared::config::Config;
use weft_shared::ids::{Incarnation, LinkId, NodeId};
use weft_shared::shm::{
    FibWriter, Generation, LinkState, LocalGroups, LocalGroupsReader, Notify, PacketMeta,
    PushError, RingConsumer, RingId, RingProducer, StatsReader,
};
use weft_shared::time::Instant;
use weft_shared::wire::{ControlKind, ControlRepr};

use crate::attach::Attachment;

/// How long a FIB reader may hold the writer back before it is reported stuck.
const STUCK_AFTER: Duration = Duration::from_millis(500);
/// Most envelopes kept waiting for room in the inject ring; older ones beyond are dropped
/// (flooding retransmits them).
const BACKLOG_MAX: usize = 4_096;
/// Most punted packets handled per turn before the rest of the loop runs.
const PUNT_BURST: usize = 256;

/// Counters of the daemon's own work (the router keeps the protocol's).
#[derive(Clone, Copy, Debug, Default)]
pub struct DaemonStats {
    /// FIB generations published.
    pub fib_publishes: u64,
    /// Publish attempts that found a reader still in the spare buffer.
    pub fib_busy: u64,
    /// The last route computation plus FIB build, in microseconds.
    pub last_spf_us: u64,
    /// Punted envelopes handed to the router.
    pub punted: u64,
    /// Punted envelopes the router refused.
    pub refused: u64,
    /// Envelopes injected.
    pub injected: u64,
    /// Envelopes dropped because the backlog was full.
    pub backlog_drops: u64,
    /// Local group sets read from the data plane.
    pub local_group_reads: u64,
    /// Local group sets the group state refused (logged).
    pub local_group_errors: u64,
    /// Multicast (group, source) entries in the last FIB published.
    pub fib_multicast: u64,
    /// Anycast entries in the last FIB published.
    pub fib_anycast: u64,
}

/// The control plane of one node, attached to its data plane.
pub struct Daemon {
    config: Arc<Config>,
    me: NodeId,
    router: Router,
    groups: GroupState,
    /// The last local group set read, and its version (0: none yet).
    local_groups: LocalGroups,
    writer: FibWriter,
    punt: RingConsumer,
    inject: RingProducer,
    attachment: Attachment,
    stats_reader: StatsReader,
    my_links: Vec<LinkId>,
    backlog: VecDeque<Outgoing>,
    stats_interval: Duration,
    next_stats_at: Instant,
    fib_retry_at: Option<Instant>,
    last_fib_at: Option<Instant>,
    stats: DaemonStats,
    started: std::time::Instant,
    log_routes: bool,
}

impl Daemon {
    /// Attaches the control plane of `me` to its data plane: becomes the punt consumer, the
    /// inject producer and the FIB writer (taking over from a dead predecessor).
    pub fn new(
        config: Arc<Config>,
        me: NodeId,
        incarnation: Incarnation,
        attachment: Attachment,
        stats_interval: Duration,
    ) -> anyhow::Result<Daemon> {
        let started = std::time::Instant::now();
        let region = attachment.region.clone();
        let writer = FibWriter::attach(region.clone(), STUCK_AFTER)
            .context("becoming the FIB writer (is another weft-controld running?)")?;
        // A data plane that already forwards with a FIB (this is a control-plane restart)
        // keeps being used while we resync; a fresh one is offered only once it has a FIB.
        let params = RouterParams {
            hold_links_until_fib: writer.generation().0 == 0,
            ..RouterParams::from_timers(config.timers())
        };
        let router = Router::new(&config, me, incarnation, params, Instant::ZERO)?;
        let groups = GroupState::new(
            &config,
            me,
            incarnation,
            GroupParams::from_timers(config.timers()),
            Instant::ZERO,
        )?;
        let punt = RingConsumer::attach(region.clone(), RingId::Punt(0))
            .context("becoming the punt ring's consumer")?;
        let inject = RingProducer::attach(region.clone(), RingId::Inject(0))
            .context("becoming the inject ring's producer")?;
        let my_links = config.links_of(me).map(|l| l.id()).collect();
        Ok(Daemon {
            config,
            me,
            router,
            groups,
            local_groups: LocalGroups::default(),
            writer,
            punt,
            inject,
            attachment,
            stats_reader: StatsReader::new(region),
            my_links,
            backlog: VecDeque::new(),
            stats_interval,
            next_stats_at: Instant::ZERO,
            fib_retry_at: None,
            last_fib_at: None,
            stats: DaemonStats::default(),
            started,
            log_routes: true,
        })
    }

    /// Whether route changes are logged to stderr (on by default).
    pub fn set_log_routes(&mut self, on: bool) {
        self.log_routes = on;
    }

    /// The router (for status and the ctl server).
    pub fn router(&mut self) -> &mut Router {
        &mut self.router
    }

    /// The group state (for status and the ctl server).
    pub fn groups(&self) -> &GroupState {
        &self.groups
    }

    /// The group state and the router, together (the trees need the router's graph).
    pub fn groups_and_router(&mut self) -> (&GroupState, &mut Router) {
        (&self.groups, &mut self.router)
    }

    /// The local group set last read from the data plane: `(group, local members)`.
    pub fn local_groups(&self) -> &[(weft_shared::ids::GroupId, u32)] {
        &self.local_groups.groups
    }

    /// The daemon's counters.
    pub fn stats(&self) -> DaemonStats {
        self.stats
    }

    /// The FIB generation currently published.
    pub fn fib_generation(&self) -> Generation {
        self.writer.generation()
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The config the daemon runs.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Pid of the data plane writing the link statistics, if it is recorded.
    pub fn dataplane_pid(&self) -> Option<u32> {
        self.stats_reader.writer_pid()
    }

    /// The daemon's clock: time since start, as the router's [`Instant`].
    pub fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// One turn of work, no sleeping. Returns the next time there is work to do by the clock.
    pub fn turn(&mut self) -> Instant {
        let now = self.now();
        self.drain_punt(now);
        if now >= self.next_stats_at {
            self.read_link_stats(now);
            self.read_local_groups(now);
            self.next_stats_at = now + self.stats_interval;
        }
        if self.router.next_deadline() <= now {
            self.router.on_timer(now);
        }
        if self.groups.next_deadline() <= now {
            self.groups.on_timer(now);
        }
        self.inject_outgoing();
        self.maybe_publish(now);
        let mut next = self
            .router
            .next_deadline()
            .min(self.groups.next_deadline())
            .min(self.next_stats_at);
        if let Some(t) = self.fib_retry_at {
            next = next.min(t);
        }
        if !self.backlog.is_empty() {
            next = next.min(now + Duration::from_millis(1));
        }
        next
    }

    /// Sleeps until `deadline`, a punted packet, or one of `extra` fds becoming readable.
    /// Returns which of `extra` are readable.
    pub fn sleep(&mut self, deadline: Instant, extra: &[BorrowedFd<'_>]) -> Vec<bool> {
        let now = self.now();
        let wait = deadline - now;
        let mut ready = vec![false; extra.len()];
        if wait.is_zero() {
            return ready;
        }
        if !self.punt.prepare_sleep() {
            self.punt.finish_sleep();
            return ready; // packets arrived meanwhile
        }
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(extra.len() + 1);
        fds.push(PollFd::new(
            self.attachment.punt_wake.as_fd(),
            PollFlags::POLLIN,
        ));
        for fd in extra {
            fds.push(PollFd::new(*fd, PollFlags::POLLIN));
        }
        let ms = wait.as_micros().div_ceil(1_000).min(1_000) as u16;
        let _ = poll(&mut fds, PollTimeout::from(ms));
        for (i, r) in ready.iter_mut().enumerate() {
            *r = fds[i + 1]
                .revents()
                .is_some_and(|e| e.intersects(PollFlags::POLLIN | PollFlags::POLLHUP));
        }
        drop(fds);
        let _ = self.attachment.punt_wake.drain();
        self.punt.finish_sleep();
        ready
    }

    fn drain_punt(&mut self, now: Instant) {
        let router = &mut self.router;
        let groups = &mut self.groups;
        let stats = &mut self.stats;
        self.punt.pop_burst(PUNT_BURST, |meta, bytes| {
            stats.punted += 1;
            let Some(link) = meta.link else {
                stats.refused += 1;
                return;
            };
            // The data plane checked the envelope's head before punting it.
            let handled = match ControlRepr::parse(bytes).map(|c| c.kind) {
                Ok(ControlKind::LinkState) => router.on_control(now, link, bytes),
                Ok(ControlKind::GroupState) => groups.on_control(now, link, bytes),
                Err(reason) => Err(reason),
            };
            if handled.is_err() {
                stats.refused += 1;
            }
        });
    }

    /// Hands the data plane's local group set to the group state when it changed.
    fn read_local_groups(&mut self, now: Instant) {
        let reader = LocalGroupsReader::new(&self.attachment.region);
        if reader.version() == self.local_groups.version {
            return;
        }
        if reader.read(&mut self.local_groups).is_err() {
            return; // Busy: the next turn tries again.
        }
        self.stats.local_group_reads += 1;
        let set = self.local_groups.groups.iter().map(|&(g, _)| g);
        if let Err(e) = self.groups.set_local(now, set) {
            self.stats.local_group_errors += 1;
            eprintln!("weft-controld: node {}: local groups refused: {e}", self.me);
        }
    }

    fn read_link_stats(&mut self, now: Instant) {
        let mut changed: Vec<(LinkId, LinkReport)> = Vec::new();
        for &link in &self.my_links {
            let report = match self.stats_reader.link(link) {
                Ok(s) => LinkReport {
                    up: s.state == LinkState::Up,
                    latency_us: s.rtt_us / 2,
                    loss_ppm: s.loss_ppm,
                },
                Err(_) => LinkReport::default(),
            };
            if self.router.measured(link) != Some(report) {
                changed.push((link, report));
            }
        }
        if !changed.is_empty() {
            self.router.on_link_reports(now, &changed);
            let up = self
                .my_links
                .iter()
                .copied()
                .filter(|&l| self.router.measured(l).is_some_and(|r| r.up));
            self.groups.set_links_up(now, up);
        }
    }

    fn inject_outgoing(&mut self) {
        while let Some(out) = self
            .router
            .pop_outgoing()
            .or_else(|| self.groups.pop_outgoing())
        {
            if self.backlog.len() >= BACKLOG_MAX {
                self.backlog.pop_front();
                self.stats.backlog_drops += 1;
            }
            self.backlog.push_back(out);
        }
        let mut staged = false;
        while let Some(out) = self.backlog.front() {
            let meta = PacketMeta {
                link: Some(out.link),
                path: None,
                flags: 0,
            };
            match self.inject.stage(meta, &out.envelope) {
                Ok(()) => {
                    staged = true;
                    self.stats.injected += 1;
                    self.backlog.pop_front();
                }
                Err(PushError::Full) => break,
                Err(_) => {
                    // Cannot happen for envelopes the router built (they fit a slot); drop it
                    // rather than wedge the queue.
                    self.stats.backlog_drops += 1;
                    self.backlog.pop_front();
                }
            }
        }
        if staged && self.inject.publish() == Notify::NeedsWakeup {
            let _ = self.attachment.inject_wake.notify();
        }
    }

    fn maybe_publish(&mut self, now: Instant) {
        if self.fib_retry_at.is_some_and(|t| now < t) {
            return;
        }
        self.fib_retry_at = None;
        let spf_start = std::time::Instant::now();
        // Group changes publish too, once the link state is synchronised and at the same
        // pace as route changes.
        let min_interval = self.config.timers().fib_publish_min_interval();
        let groups_due = self.groups.changed_since_fib()
            && self.router.synced()
            && self.last_fib_at.is_none_or(|t| now - t >= min_interval);
        if !self.router.fib_due(now) && !groups_due {
            return;
        }
        let before: Vec<(NodeId, Option<LinkId>)> = self.current_first_hops();
        let router = &mut self.router;
        let groups = &self.groups;
        let graph = router.graph();
        let mut counts = None;
        let built = self.writer.try_publish(now, |fib| {
            router.fill_fib(fib)?;
            // A group table that overflows keeps what fit: unicast routes still go out.
            counts = Some(groups.fill_fib(&graph, fib));
            Ok(())
        });
        match built {
            Ok(generation) => {
                self.router.fib_published(now);
                self.groups.fib_published();
                self.last_fib_at = Some(now);
                match counts {
                    Some(Ok(c)) => {
                        self.stats.fib_multicast = c.multicast as u64;
                        self.stats.fib_anycast = c.anycast as u64;
                    }
                    Some(Err(e)) => eprintln!(
                        "weft-controld: node {}: group routes incomplete: {e}",
                        self.me
                    ),
                    None => {}
                }
                self.stats.fib_publishes += 1;
                self.stats.last_spf_us = spf_start.elapsed().as_micros() as u64;
                if self.log_routes {
                    self.log_publish(generation, &before);
                }
            }
            Err(weft_shared::shm::PublishError::Build(e)) => {
                eprintln!(
                    "weft-controld: node {}: building the FIB failed: {e}",
                    self.me
                );
                self.fib_retry_at = Some(now + Duration::from_millis(100));
            }
            Err(e) => {
                self.stats.fib_busy += 1;
                if self.stats.fib_busy.is_power_of_two() && self.stats.fib_busy > 64 {
                    eprintln!("weft-controld: node {}: FIB publish waits: {e}", self.me);
                }
                self.fib_retry_at = Some(now + Duration::from_millis(1));
            }
        }
    }

    fn current_first_hops(&self) -> Vec<(NodeId, Option<LinkId>)> {
        let view = self.writer.current();
        self.config
            .nodes()
            .iter()
            .map(|n| (n.id(), view.table().unicast(n.id()).map(|r| r.next_hop)))
            .collect()
    }

    fn log_publish(&mut self, generation: Generation, before: &[(NodeId, Option<LinkId>)]) {
        let after = self.current_first_hops();
        let mut changes = Vec::new();
        for ((dst, old), (_, new)) in before.iter().zip(&after) {
            if old != new && *dst != self.me {
                let show =
                    |l: &Option<LinkId>| l.map_or("none".to_owned(), |l| format!("link {l}"));
                changes.push(format!("to {dst}: {} -> {}", show(old), show(new)));
            }
        }
        let reachable = after.iter().filter(|(_, l)| l.is_some()).count();
        eprintln!(
            "weft-controld: node {}: FIB generation {} ({} routes){}{}",
            self.me,
            generation.0,
            reachable,
            if changes.is_empty() { "" } else { "; " },
            changes.join(", ")
        );
    }
}
