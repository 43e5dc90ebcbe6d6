//! Shortest paths from one node over the overlay graph (Dijkstra), with deterministic ties.
//!
//! The result is what a FIB needs for unicast: for every reachable destination, the first-hop
//! link out of the source and the path's total cost. Among equal-cost paths the one whose first
//! hop has the lowest link id wins, so every run (and every node) computes the same routes no
//! matter in which order links were added: no hash-order dependence.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use weft_shared::config::Config;
use weft_shared::ids::{LinkId, MAX_NODE_ID, NodeId};
use weft_shared::shm::fib::{FibBuilder, UnicastRoute};

/// An undirected edge of the overlay graph with a cost in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The overlay link.
    pub link: LinkId,
    /// One end.
    pub a: NodeId,
    /// The other end.
    pub b: NodeId,
    /// The cost of crossing the link, in microseconds (or any additive unit).
    pub cost: u64,
}

/// The overlay graph: nodes by id, adjacency lists of (neighbour, link, cost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    adjacency: Vec<Vec<(NodeId, LinkId, u64)>>,
}

impl Default for Graph {
    /// The graph with every node and no edge.
    fn default() -> Self {
        Graph::new([])
    }
}

impl Graph {
    /// A graph of the given edges.
    pub fn new(edges: impl IntoIterator<Item = Edge>) -> Self {
        let mut adjacency = vec![Vec::new(); usize::from(MAX_NODE_ID)];
        for e in edges {
            adjacency[e.a.index()].push((e.b, e.link, e.cost));
            adjacency[e.b.index()].push((e.a, e.link, e.cost));
        }
        Graph { adjacency }
    }

    /// The graph of a config, each link at its configured base cost.
    pub fn from_config(config: &Config) -> Self {
        Graph::new(config.links().iter().map(|l| {
            let [a, b] = l.nodes();
            Edge {
                link: l.id(),
                a,
                b,
                cost: u64::from(l.cost_us()),
            }
        }))
    }

    /// Shortest paths from `source` to every node it can reach.
    pub fn shortest_paths(&self, source: NodeId) -> Routes {
        let n = self.adjacency.len();
        let mut best: Vec<Option<Route>> = vec![None; n];
        let mut parent_link: Vec<Option<LinkId>> = vec![None; n];
        let mut done = vec![false; n];
        // Heap of (cost, first-hop link, node): the lexicographic order is the tie-break.
        let mut heap = BinaryHeap::new();
        heap.push(Reverse((0u64, None::<LinkId>, source)));
        best[source.index()] = Some(Route {
            cost: 0,
            first_hop: None,
            hops: 0,
            via: None,
        });
        while let Some(Reverse((cost, first_hop, node))) = heap.pop() {
            if std::mem::replace(&mut done[node.index()], true) {
                continue;
            }
            let hops = best[node.index()].map_or(0, |r| r.hops);
            for &(next, link, edge_cost) in &self.adjacency[node.index()] {
                if done[next.index()] {
                    continue;
                }
                let candidate = Route {
                    cost: cost.saturating_add(edge_cost),
                    first_hop: Some(first_hop.unwrap_or(link)),
                    hops: hops + 1,
                    via: Some(node),
                };
                let better = match best[next.index()] {
                    None => true,
                    Some(old) => (candidate.cost, candidate.first_hop) < (old.cost, old.first_hop),
                };
                if better {
                    best[next.index()] = Some(candidate);
                    parent_link[next.index()] = Some(link);
                    heap.push(Reverse((candidate.cost, candidate.first_hop, next)));
                }
            }
        }
        Routes {
            source,
            best,
            parent_link,
        }
    }
}

/// The best path to one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Total cost.
    pub cost: u64,
    /// The link out of the source; `None` for the source itself.
    pub first_hop: Option<LinkId>,
    /// Number of links on the path.
    pub hops: u32,
    /// The node before the destination on the path; `None` for the source itself.
    pub via: Option<NodeId>,
}

/// Shortest paths from one source.
#[derive(Clone, Debug)]
pub struct Routes {
    source: NodeId,
    best: Vec<Option<Route>>,
    /// For each reached node but the source, the link from its parent (`Route::via`) to it.
    parent_link: Vec<Option<LinkId>>,
}

impl Routes {
    /// The source node.
    pub fn source(&self) -> NodeId {
        self.source
    }

    /// The route to `dst`, or `None` if it is unreachable.
    pub fn to(&self, dst: NodeId) -> Option<Route> {
        self.best.get(dst.index()).copied().flatten()
    }

    /// The parent of `dst` in the shortest-path tree rooted at the source, and the link from
    /// that parent to `dst`; `None` for the source itself and for unreachable nodes. Every node
    /// that computes the tree of the same graph gets the same parents (the tie-breaks depend
    /// on ids and costs only), so a multicast tree can be walked from any node.
    pub fn parent(&self, dst: NodeId) -> Option<(NodeId, LinkId)> {
        let via = self.to(dst)?.via?;
        let link = self.parent_link.get(dst.index()).copied().flatten()?;
        Some((via, link))
    }

    /// The nodes of the path to `dst`, from the source to `dst` inclusive; empty if `dst` is
    /// unreachable.
    pub fn path_to(&self, dst: NodeId) -> Vec<NodeId> {
        let mut path = Vec::new();
        let mut at = Some(dst);
        while let Some(node) = at {
            let Some(route) = self.to(node) else {
                return Vec::new();
            };
            path.push(node);
            if path.len() > self.best.len() {
                return Vec::new(); // cannot happen: parents form a tree
            }
            at = route.via;
        }
        path.reverse();
        path
    }

    /// Writes a unicast FIB entry for every reachable destination: the first-hop link and the
    /// path cost (saturated to the entry's 32 bits).
    pub fn fill_fib(&self, fib: &mut FibBuilder<'_>) {
        for (dst, route) in self.iter() {
            if let Some(next_hop) = route.first_hop {
                let metric_us = u32::try_from(route.cost).unwrap_or(u32::MAX);
                fib.set_unicast(
                    dst,
                    UnicastRoute {
                        next_hop,
                        metric_us,
                    },
                );
            }
        }
    }

    /// Every reachable destination other than the source, in node id order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, Route)> + '_ {
        self.best.iter().enumerate().filter_map(|(i, r)| {
            let id = NodeId::new(u16::try_from(i + 1).ok()?)?;
            let r = (*r)?;
            (id != self.source).then_some((id, r))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u16) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn l(i: u16) -> LinkId {
        LinkId::new(i).unwrap()
    }

    fn e(link: u16, a: u16, b: u16, cost: u64) -> Edge {
        Edge {
            link: l(link),
            a: n(a),
            b: n(b),
            cost,
        }
    }

    #[test]
    fn line_and_unreachable() {
        let g = Graph::new([e(0, 1, 2, 10), e(1, 2, 3, 5)]);
        let r = g.shortest_paths(n(1));
        assert_eq!(
            r.to(n(3)),
            Some(Route {
                cost: 15,
                first_hop: Some(l(0)),
                hops: 2,
                via: Some(n(2)),
            })
        );
        assert_eq!(
            r.to(n(1)),
            Some(Route {
                cost: 0,
                first_hop: None,
                hops: 0,
                via: None,
            })
        );
        assert_eq!(r.to(n(4)), None);
        assert_eq!(r.path_to(n(3)), vec![n(1), n(2), n(3)]);
        assert_eq!(r.parent(n(3)), Some((n(2), l(1))));
        assert_eq!(r.parent(n(2)), Some((n(1), l(0))));
        assert_eq!(r.parent(n(1)), None);
        assert_eq!(r.parent(n(4)), None);
        assert_eq!(r.path_to(n(1)), vec![n(1)]);
        assert!(r.path_to(n(4)).is_empty());
        assert_eq!(
            r.iter().map(|(d, _)| d.get()).collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[test]
    fn cheaper_detour_beats_direct_link() {
        // 1-3 direct costs 30; 1-2-3 costs 20.
        let g = Graph::new([e(0, 1, 3, 30), e(1, 1, 2, 10), e(2, 2, 3, 10)]);
        let r = g.shortest_paths(n(1)).to(n(3)).unwrap();
        assert_eq!((r.cost, r.first_hop, r.hops), (20, Some(l(1)), 2));
    }

    #[test]
    fn ties_pick_the_lowest_first_hop_link_whatever_the_insertion_order() {
        // A diamond 1-{2,3}-4 with equal costs: link 3 (via 2) and link 1 (via 3) tie; link 1 wins.
        let edges = [
            e(3, 1, 2, 10),
            e(4, 2, 4, 10),
            e(1, 1, 3, 10),
            e(2, 3, 4, 10),
        ];
        for rotation in 0..edges.len() {
            let mut es = edges.to_vec();
            es.rotate_left(rotation);
            let r = Graph::new(es.clone())
                .shortest_paths(n(1))
                .to(n(4))
                .unwrap();
            assert_eq!(r.first_hop, Some(l(1)), "rotation {rotation}");
            es.reverse();
            let r = Graph::new(es).shortest_paths(n(1)).to(n(4)).unwrap();
            assert_eq!(r.first_hop, Some(l(1)), "reversed rotation {rotation}");
        }
    }

    #[test]
    fn demo_config_routes_are_hand_checked() {
        let text = include_str!("../../../config/demo.toml");
        let config = Config::from_toml_str(text, "demo.toml").unwrap();
        let g = Graph::from_config(&config);
        // Ring 1-2-3-4-5-6-1 at 5000 us, chords 1-4 (link 6) and 2-5 (link 7) at 8000 us.
        let r = g.shortest_paths(n(1));
        assert_eq!(
            r.to(n(4)).map(|r| (r.cost, r.first_hop)),
            Some((8000, Some(l(6))))
        );
        assert_eq!(r.to(n(2)).map(|r| r.cost), Some(5000));
        assert_eq!(r.to(n(3)).map(|r| r.cost), Some(10_000));
        assert_eq!(r.to(n(5)).map(|r| r.cost), Some(10_000));
        assert_eq!(r.iter().count(), 5);
    }
}
