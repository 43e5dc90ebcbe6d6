//! Multicast and anycast routes of the groups at one node: what its FIB needs.
//!
//! - Multicast: a packet from source node S to a group follows S's shortest-path tree
//!   ([`crate::spf`], whose tie-breaks depend only on ids and costs, so every node computes
//!   the same tree from the same link state). At node `me`, the entry (group, S) holds the
//!   links to `me`'s children in S's tree whose subtree contains a member, and local delivery
//!   iff `me` is a member. An entry exists only when it forwards or delivers; member nodes
//!   unreachable from `me` are ignored (a failed node drops out once link state shows it
//!   unreachable), and so are sources unreachable from `me` (their trees cannot reach it).
//! - Anycast: the reachable member with the least path cost from `me` (ties: the lower node
//!   id); `me` itself at cost 0 when it is a member.
//!
//! [`Trees`] computes the shortest-path tree of every source reachable from `me` once, with,
//! for every node `v`, the link from `me` towards `v` in that tree (if `v` is below `me`): a
//! (group, source) entry is then the union of those links over the group's members. Groups
//! with identical member sets share one computation, so 10,000 groups cost a few
//! milliseconds on a 12-node overlay.

use std::collections::{BTreeSet, HashMap};

use weft_shared::ids::{GroupId, LinkId, MAX_NODE_ID, NodeId};
use weft_shared::shm::fib::{AnycastRoute, FibBuilder, FibError, LinkMask};

use crate::spf::{Graph, Routes};

/// Entry counts of the group routes of one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupFibCounts {
    /// Multicast (group, source) entries.
    pub multicast: usize,
    /// Anycast groups.
    pub anycast: usize,
}

/// One directed edge of a multicast tree: `from` forwards to `to` on `link`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreeEdge {
    /// The parent.
    pub from: NodeId,
    /// The child.
    pub to: NodeId,
    /// The link between them.
    pub link: LinkId,
}

/// The shortest-path tree of one source, seen from `me`.
#[derive(Clone, Debug)]
struct SourceTree {
    routes: Routes,
    /// By node index: the link from `me` to its child on the tree path to that node, if the
    /// node is in `me`'s subtree (and is not `me`).
    toward: Vec<Option<LinkId>>,
}

/// What one member set needs at `me`.
#[derive(Clone, Debug, Default)]
struct Entries {
    multicast: Vec<(NodeId, LinkMask, bool)>,
    anycast: Option<AnycastRoute>,
}

/// Every group with the index of its member set's entries.
#[derive(Debug, Default)]
struct Plan {
    groups: Vec<(GroupId, usize)>,
    sets: Vec<Entries>,
}

/// The shortest-path trees of every source reachable from one node, over one graph.
#[derive(Clone, Debug)]
pub struct Trees {
    me: NodeId,
    /// Sources reachable from `me` (`me` included), in increasing order.
    sources: Vec<NodeId>,
    /// By source, in the order of `sources`.
    trees: Vec<SourceTree>,
}

impl Trees {
    /// The trees of `graph` as node `me` needs them: one per source reachable from `me`.
    pub fn new(graph: &Graph, me: NodeId) -> Trees {
        let from_me = graph.shortest_paths(me);
        let mut sources: Vec<NodeId> = from_me.iter().map(|(n, _)| n).collect();
        sources.push(me);
        sources.sort();
        let trees = sources
            .iter()
            .map(|&s| {
                let routes = if s == me {
                    from_me.clone()
                } else {
                    graph.shortest_paths(s)
                };
                let toward = toward(&routes, me);
                SourceTree { routes, toward }
            })
            .collect();
        Trees { me, sources, trees }
    }

    /// The node these routes are for.
    pub fn node(&self) -> NodeId {
        self.me
    }

    /// Every source reachable from this node (itself included), in increasing order.
    pub fn sources(&self) -> &[NodeId] {
        &self.sources
    }

    fn tree(&self, source: NodeId) -> Option<&SourceTree> {
        let i = self.sources.binary_search(&source).ok()?;
        self.trees.get(i)
    }

    fn routes_from_me(&self) -> Option<&Routes> {
        self.tree(self.me).map(|t| &t.routes)
    }

    /// The multicast entry of a group with `members` for packets from `source` at this node:
    /// its out-links and whether to deliver locally; `None` when it would do neither (or
    /// `source` is unreachable).
    pub fn multicast(&self, source: NodeId, members: &[NodeId]) -> Option<(LinkMask, bool)> {
        let tree = self.tree(source)?;
        let mut links = LinkMask::EMPTY;
        let mut local = false;
        for &m in members {
            if m == self.me {
                local = true;
            } else if let Some(link) = tree.toward.get(m.index()).copied().flatten() {
                links.insert(link);
            }
        }
        (local || !links.is_empty()).then_some((links, local))
    }

    /// The anycast route of a group with `members` at this node: the nearest reachable
    /// member (ties: the lower node id), this node itself if it is one; `None` if no member
    /// is reachable.
    pub fn anycast(&self, members: &[NodeId]) -> Option<AnycastRoute> {
        if members.contains(&self.me) {
            return Some(AnycastRoute {
                target: self.me,
                next_hop: None,
                metric_us: 0,
            });
        }
        let routes = self.routes_from_me()?;
        let (cost, target, next_hop) = members
            .iter()
            .filter_map(|&m| {
                let r = routes.to(m)?;
                Some((r.cost, m, r.first_hop?))
            })
            .min_by_key(|&(cost, m, _)| (cost, m))?;
        Some(AnycastRoute {
            target,
            next_hop: Some(next_hop),
            metric_us: u32::try_from(cost).unwrap_or(u32::MAX),
        })
    }

    /// The multicast tree of a group with `members` from `source`, for display
    /// (`weftctl show groups`): every edge of `source`'s shortest-path tree on a path to a
    /// reachable member, ordered by (from, to). Empty if `source` is unreachable from this
    /// node or no other member is reachable.
    pub fn tree_edges(&self, source: NodeId, members: &[NodeId]) -> Vec<TreeEdge> {
        let Some(tree) = self.tree(source) else {
            return Vec::new();
        };
        let mut edges: BTreeSet<TreeEdge> = BTreeSet::new();
        for &m in members {
            let mut at = m;
            // Parents form a tree, so this climbs at most once per node.
            for _ in 0..MAX_NODE_ID {
                let Some((from, link)) = tree.routes.parent(at) else {
                    break;
                };
                if !edges.insert(TreeEdge { from, to: at, link }) {
                    break; // the rest of the path is in already
                }
                at = from;
            }
        }
        edges.into_iter().collect()
    }

    /// What [`Trees::fill_fib`] would insert for `groups`, without a FIB.
    pub fn count<'a>(
        &self,
        groups: impl IntoIterator<Item = (GroupId, &'a [NodeId])>,
    ) -> GroupFibCounts {
        let plan = self.plan(groups);
        let mut counts = GroupFibCounts::default();
        for e in plan.groups.iter().filter_map(|&(_, i)| plan.sets.get(i)) {
            counts.multicast += e.multicast.len();
            counts.anycast += usize::from(e.anycast.is_some());
        }
        counts
    }

    /// Inserts the multicast entries of every group (each group with its member nodes), then
    /// the anycast entries, into a FIB being built for this node. Fails with the builder's
    /// error ([`FibError::MulticastFull`], [`FibError::AnycastFull`], …) when the table is
    /// full; [`Trees::count`] tells how many entries it would need.
    pub fn fill_fib<'a>(
        &self,
        groups: impl IntoIterator<Item = (GroupId, &'a [NodeId])>,
        fib: &mut FibBuilder<'_>,
    ) -> Result<GroupFibCounts, FibError> {
        let plan = self.plan(groups);
        let mut counts = GroupFibCounts::default();
        for &(group, i) in &plan.groups {
            for (source, links, local) in plan.sets.get(i).map_or(&[][..], |e| &e.multicast) {
                fib.insert_multicast(group, *source, links, *local)?;
                counts.multicast += 1;
            }
        }
        for &(group, i) in &plan.groups {
            if let Some(route) = plan.sets.get(i).and_then(|e| e.anycast) {
                fib.insert_anycast(group, route)?;
                counts.anycast += 1;
            }
        }
        Ok(counts)
    }

    /// The entries of every group, each distinct member set computed once.
    fn plan<'a>(&self, groups: impl IntoIterator<Item = (GroupId, &'a [NodeId])>) -> Plan {
        let mut plan = Plan::default();
        let mut index: HashMap<&'a [NodeId], usize> = HashMap::new();
        for (group, members) in groups {
            let i = *index.entry(members).or_insert_with(|| {
                plan.sets.push(self.entries(members));
                plan.sets.len() - 1
            });
            plan.groups.push((group, i));
        }
        plan
    }

    fn entries(&self, members: &[NodeId]) -> Entries {
        Entries {
            multicast: self
                .sources
                .iter()
                .filter_map(|&s| {
                    let (links, local) = self.multicast(s, members)?;
                    Some((s, links, local))
                })
                .collect(),
            anycast: self.anycast(members),
        }
    }
}

/// For every node, the link from `me` to its child on the tree path to that node, if the node
/// is below `me` in the tree of `routes`.
fn toward(routes: &Routes, me: NodeId) -> Vec<Option<LinkId>> {
    let mut toward = vec![None; usize::from(MAX_NODE_ID)];
    // Parents before children: a node's parent has one hop fewer.
    let mut order: Vec<(u32, NodeId)> = routes.iter().map(|(n, r)| (r.hops, n)).collect();
    order.sort();
    for (_, v) in order {
        let Some((parent, link)) = routes.parent(v) else {
            continue;
        };
        let via = if parent == me {
            Some(link)
        } else {
            toward.get(parent.index()).copied().flatten()
        };
        if let Some(slot) = toward.get_mut(v.index()) {
            *slot = via;
        }
    }
    toward
}

#[cfg(test)]
#[path = "trees_tests.rs"]
mod tests;
