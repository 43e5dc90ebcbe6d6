//! Groups in a simulated node: the control plane's [`GroupState`] next to its [`Router`], driven
//! as `weft-controld` drives it (`controlplane/daemon/src/daemon.rs`), and the node's local
//! members, which the scenario's `join` and `leave` events change.
//!
//! - A punted control envelope goes to the machine its kind names (`dispatch_control`).
//! - Every `stats_interval` the control plane reads the node's local groups (the data plane's
//!   `local_groups` section, here `NodeGroups::change`'s set) and hands them to
//!   [`GroupState::set_local`] when their version moved; a refused set is counted and logged.
//! - After link reports changed, [`GroupState::set_links_up`] with the links whose report is
//!   up; the group state's timers run next to the router's, and its envelopes are sent after
//!   the router's.
//! - A FIB is published when the router says one is due, or when group members changed since
//!   the last one, the link state is synchronised and the FIB interval has passed
//!   (`NodeGroups::due`). It holds the unicast routes, then every group's multicast and
//!   anycast routes ([`GroupState::fill_fib`] over [`Router::graph`]); a group table that
//!   overflows keeps what fit, the error is logged, and the unicast routes still go out.
//!
//! **Local members belong to one incarnation.** They are the clients of the node's data plane,
//! so a failed node has none, and a restarted one none until the scenario joins again (real
//! clients reconnect and join again too). A join or leave at a failed node is ignored. A
//! group-addressed record delivered where the node has no local member of the group (the FIB
//! still says so for a moment after a leave) is dropped with [`DROP_NO_LOCAL_MEMBER`], as the
//! session server drops it.
//!
//! **Origination** (`first_hops`) follows the engine's `Originate::send`
//! (`dataplane/engine/src/originate.rs`): to a node or an anycast group, the FIB's one next hop
//! (an anycast group whose nearest member is this node is delivered here); to a multicast group,
//! one copy per link of this node's own tree ([`Forwarder::multicast_fanout`]), and a local
//! delivery when this node has members.

use std::collections::BTreeSet;
use std::time::Duration;

use weft_proto::forward::{Forwarder, LinkTable, NextHop};
use weft_routing::groups::{GroupError, GroupParams, GroupState};
use weft_routing::link_state::Router;
use weft_shared::DropReason;
use weft_shared::config::Config;
use weft_shared::ids::{GroupId, Incarnation, LinkId, NodeId};
use weft_shared::session::DeliveredTo;
use weft_shared::shm::fib::{FibBuilder, FibTable, LinkMask};
use weft_shared::time::Instant;
use weft_shared::wire::{ControlKind, ControlRepr, Route};

use crate::sim::log::LogEvent;
use crate::sim::node::{Class, LinkSet, Output};
use crate::sim::scenario::GroupChange;

/// Drop code of a group-addressed record delivered at a node without a local member of the
/// group.
pub const DROP_NO_LOCAL_MEMBER: u64 = 101;

/// One node incarnation's group membership: the control plane's state and the local members.
pub(crate) struct NodeGroups {
    pub(crate) state: GroupState,
    /// Groups with at least one simulated local member.
    local: BTreeSet<GroupId>,
    /// Moves on every change of `local` (the shared-memory section's version).
    version: u64,
    /// The version the control plane last read.
    read_version: u64,
    fib_min_interval: Duration,
    last_fib_at: Option<Instant>,
    /// Multicast copies the pipeline forwarded to tree links.
    pub(crate) copies: u64,
    /// Local sets the group state refused.
    pub(crate) local_refused: u64,
    /// FIBs whose group routes did not all fit.
    pub(crate) fib_errors: u64,
}

impl NodeGroups {
    /// The group state of a fresh control plane of node `me`, with no local member.
    pub(crate) fn new(
        config: &Config,
        me: NodeId,
        incarnation: Incarnation,
        now: Instant,
    ) -> Result<NodeGroups, GroupError> {
        let params = GroupParams::from_timers(config.timers());
        Ok(NodeGroups {
            state: GroupState::new(config, me, incarnation, params, now)?,
            local: BTreeSet::new(),
            version: 0,
            read_version: 0,
            fib_min_interval: config.timers().fib_publish_min_interval(),
            last_fib_at: None,
            copies: 0,
            local_refused: 0,
            fib_errors: 0,
        })
    }

    /// A simulated client joins `group`, or the node's members leave it.
    pub(crate) fn change(&mut self, group: GroupId, change: GroupChange) {
        let changed = match change {
            GroupChange::Join => self.local.insert(group),
            GroupChange::Leave => self.local.remove(&group),
        };
        if changed {
            self.version += 1;
        }
    }

    /// Whether the node has a local member of `group` now.
    pub(crate) fn is_member(&self, group: GroupId) -> bool {
        self.local.contains(&group)
    }

    /// Number of groups with a local member.
    pub(crate) fn local_count(&self) -> usize {
        self.local.len()
    }

    /// The control plane's read of the local groups: handed to the group state if they changed
    /// since the last read.
    pub(crate) fn read_local(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.version == self.read_version {
            return;
        }
        self.read_version = self.version;
        if let Err(e) = self.state.set_local(now, self.local.iter().copied()) {
            self.local_refused += 1;
            out.push(Output::Log(LogEvent::LocalGroupsRefused {
                error: e.to_string(),
            }));
        }
    }

    /// Tells the group state which links are up, by the router's reports (after they changed).
    pub(crate) fn links_up(&mut self, now: Instant, router: &Router, links: &LinkSet) {
        let up = links
            .0
            .iter()
            .map(|l| l.id)
            .filter(|&l| router.measured(l).is_some_and(|r| r.up));
        self.state.set_links_up(now, up);
    }

    /// Whether group changes call for a FIB: members changed since the last one, the link
    /// state is synchronised and the FIB interval has passed (the daemon's `groups_due`).
    pub(crate) fn due(&self, router: &Router, now: Instant) -> bool {
        self.state.changed_since_fib()
            && router.synced()
            && self
                .last_fib_at
                .is_none_or(|t| now - t >= self.fib_min_interval)
    }

    /// Writes the group routes into the FIB being built (after the unicast routes); a table
    /// that overflows keeps what fit and the error is logged.
    pub(crate) fn fill_fib(
        &mut self,
        router: &Router,
        fib: &mut FibBuilder<'_>,
        out: &mut Vec<Output>,
    ) {
        if let Err(e) = self.state.fill_fib(&router.graph(), fib) {
            self.fib_errors += 1;
            out.push(Output::Log(LogEvent::GroupRoutesIncomplete {
                error: e.to_string(),
            }));
        }
    }

    /// A FIB went out at `now`.
    pub(crate) fn fib_published(&mut self, now: Instant) {
        self.state.fib_published();
        self.last_fib_at = Some(now);
    }

    /// Hands a delivery to the simulation: always for a record addressed to this node, for one
    /// addressed to a group only if the node has a local member of it.
    pub(crate) fn deliver(
        &self,
        to: DeliveredTo,
        class: Class,
        sent_at: Instant,
        out: &mut Vec<Output>,
    ) {
        let Class::Data { src, flow, seq } = class else {
            return;
        };
        let member = match to {
            DeliveredTo::Node => true,
            DeliveredTo::Multicast(g) | DeliveredTo::Anycast(g) => self.is_member(g),
        };
        out.push(if member {
            Output::Deliver {
                flow,
                src,
                seq,
                sent_at,
            }
        } else {
            Output::Drop {
                link: None,
                code: DROP_NO_LOCAL_MEMBER,
                class,
            }
        });
    }
}

/// Hands a punted control envelope to the machine its kind names (the daemon's
/// `drain_punt`).
pub(crate) fn dispatch_control(
    router: &mut Router,
    groups: &mut GroupState,
    now: Instant,
    link: LinkId,
    envelope: &[u8],
) -> Result<(), DropReason> {
    match ControlRepr::parse(envelope).map(|c| c.kind) {
        Ok(ControlKind::LinkState) => router.on_control(now, link, envelope),
        Ok(ControlKind::GroupState) => groups.on_control(now, link, envelope),
        Err(reason) => Err(reason),
    }
}

/// Where a record this node originates for `route` goes: the links that each get a copy, and
/// whether it is delivered here (an anycast group whose chosen member is this node, a multicast
/// group with members here). A unicast route to this node goes nowhere.
pub(crate) fn first_hops(
    forwarder: &Forwarder,
    route: Route,
    fib: &FibTable,
    links: &impl LinkTable,
) -> Result<(LinkMask, bool), DropReason> {
    if let Route::Multicast(group) = route {
        let fanout = forwarder.multicast_fanout(group, forwarder.node(), fib, links)?;
        return Ok((fanout.links, fanout.local));
    }
    Ok(match forwarder.route_hop(&route, fib, links)? {
        NextHop::Link(link) => {
            let mut mask = LinkMask::EMPTY;
            mask.insert(link);
            (mask, false)
        }
        NextHop::Local => (LinkMask::EMPTY, matches!(route, Route::Anycast(_))),
    })
}

/// How a record addressed by `route` is delivered.
pub(crate) fn delivered_to(route: Route) -> DeliveredTo {
    match route {
        Route::Multicast(g) => DeliveredTo::Multicast(g),
        Route::Anycast(g) => DeliveredTo::Anycast(g),
        Route::Unicast(_) | Route::SourceRouted { .. } => DeliveredTo::Node,
    }
}
