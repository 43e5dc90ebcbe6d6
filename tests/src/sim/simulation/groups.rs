//! The simulation's side of groups: flows to a group (built, sent, and their deliveries and
//! link transmissions found by flow id), membership events, and what a test or a tool may read
//! of a node's group state and FIB.

use weft_routing::groups::{GroupFibCounts, GroupState, Trees};
use weft_shared::ids::{FlowId, GroupId, LinkId, NodeId};
use weft_shared::shm::fib::FibCounts;
use weft_shared::time::Instant;
use weft_shared::wire::Route;

use super::Simulation;
use crate::sim::group_flow::{GroupFlowReport, GroupFlowState};
use crate::sim::node::Running;
use crate::sim::report::GroupSummary;
use crate::sim::scenario::{FlowSpec, GroupChange, GroupKind, GroupTarget};

/// Flow ids of group flows start here (flows to a node count from 1, a flood's junk is
/// `u32::MAX`).
const GROUP_FLOW_BASE: u32 = 1 << 30;

/// The state of group flow `f`, the `index`th of the scenario's group flows, from `src`
/// (index, id) to `target`; `(nodes, links, windows)` are the config's nodes, the number of
/// network links and of timeline events.
pub(super) fn flow(
    f: &FlowSpec,
    index: usize,
    src: (usize, NodeId),
    target: GroupTarget,
    end: Instant,
    (nodes, links, windows): (&[NodeId], usize, usize),
) -> GroupFlowState {
    // A scenario has far fewer flows than 2^30.
    let id = FlowId(GROUP_FLOW_BASE + u32::try_from(index).unwrap_or(0));
    GroupFlowState::new(
        f.name.clone(),
        src,
        target,
        id,
        f.rate_pps,
        f.size,
        (Instant::ZERO + f.start, (Instant::ZERO + f.stop).min(end)),
        (nodes, links, windows),
    )
}

/// What a running node holds of groups, for the report.
pub(super) fn summary(r: &Running) -> GroupSummary {
    let counts = r.fib.counts();
    GroupSummary {
        local: r.groups.local_count(),
        known: r.groups.state.group_count(),
        multicast_routes: counts.multicast,
        anycast_routes: counts.anycast,
        fib_errors: r.groups.fib_errors,
        local_refused: r.groups.local_refused,
        multicast_copies: r.groups.copies,
    }
}

impl Simulation {
    /// The group flow a data packet with `flow` from `src` belongs to.
    pub(super) fn group_flow_of(&self, flow: FlowId, src: NodeId) -> Option<usize> {
        let i = usize::try_from(flow.0.checked_sub(GROUP_FLOW_BASE)?).ok()?;
        (self.group_flows.get(i)?.src_id == src).then_some(i)
    }

    pub(super) fn group_flow_send(&mut self, i: usize) {
        let f = &mut self.group_flows[i];
        if self.now >= f.stop {
            return;
        }
        let seq = f.next_seq;
        f.next_seq += 1;
        f.sent += 1;
        let (src, id, size) = (f.src, f.id, f.size);
        let route = match f.target.kind {
            GroupKind::Multicast => Route::Multicast(f.target.group),
            GroupKind::Anycast => Route::Anycast(f.target.group),
        };
        let next = f.send_time(seq + 1);
        if next < f.stop {
            self.queue
                .push(next, super::Event::GroupFlowSend { flow: i });
        }
        self.originate(src, route, id, seq, size);
    }

    /// A simulated client of node `x` joins `group`, or its members leave (nothing at a
    /// failed node: its clients are gone).
    pub(super) fn membership(&mut self, x: usize, group: GroupId, change: GroupChange) {
        let Some(r) = self.nodes[x].running.as_mut() else {
            return;
        };
        r.groups.change(group, change);
        if change == GroupChange::Join {
            for f in self
                .group_flows
                .iter_mut()
                .filter(|f| f.target.group == group)
            {
                f.on_join(x);
            }
        }
    }

    pub(super) fn group_flow_reports(&self, events: &[(Instant, String)]) -> Vec<GroupFlowReport> {
        let links: Vec<(LinkId, [NodeId; 2])> = self.net.iter().map(|l| (l.id, l.nodes)).collect();
        self.group_flows
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f.finish(self.now.min(self.end), &self.window_starts);
                f.report(&self.report_spec.percentiles, events, &links)
            })
            .collect()
    }

    fn running(&self, node: NodeId) -> Option<&Running> {
        self.nodes.iter().find(|n| n.id == node)?.running.as_ref()
    }

    /// Node `node`'s group state, if it is up.
    pub fn group_state(&self, node: NodeId) -> Option<&GroupState> {
        Some(&self.running(node)?.groups.state)
    }

    /// The entry counts of node `node`'s current FIB, if it is up.
    pub fn fib_counts(&self, node: NodeId) -> Option<FibCounts> {
        Some(self.running(node)?.fib.counts())
    }

    /// The group entries node `node`'s FIB would need for its current group state and link
    /// state (whether or not they fit), if it is up.
    pub fn group_routes_needed(&self, node: NodeId) -> Option<GroupFibCounts> {
        let r = self.running(node)?;
        let trees = Trees::new(&r.router.graph(), node);
        Some(trees.count(r.groups.state.groups()))
    }

    /// Whether node `node` has a local member of `group` now.
    pub fn is_member(&self, node: NodeId, group: GroupId) -> bool {
        self.running(node)
            .is_some_and(|r| r.groups.is_member(group))
    }
}
