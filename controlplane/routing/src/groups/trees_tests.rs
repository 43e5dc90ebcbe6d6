//! Tree and anycast correctness on the 12-node reference topology, checked by forwarding a
//! packet hop by hop through every node's own entries; and the 10,000-group scale test.

use std::collections::{BTreeMap, BTreeSet};

use weft_shared::config::Config;
use weft_shared::shm::fib::{ANYCAST_CAPACITY, FibTable, MULTICAST_CAPACITY};

use super::*;
use crate::spf::Edge;

fn n(i: u16) -> NodeId {
    NodeId::new(i).unwrap()
}

fn l(i: u16) -> LinkId {
    LinkId::new(i).unwrap()
}

fn reference() -> Config {
    let text = include_str!("../../../../config/reference.toml");
    Config::from_toml_str(text, "reference.toml").unwrap()
}

/// Node ids of a small deterministic generator (xorshift), for member sets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `k` distinct nodes of 1..=`nodes`, increasing.
    fn members(&mut self, nodes: u16, k: usize) -> Vec<NodeId> {
        let mut set = BTreeSet::new();
        while set.len() < k {
            set.insert(n((self.next() % u64::from(nodes)) as u16 + 1));
        }
        set.into_iter().collect()
    }
}

/// A packet from `source` forwarded by every node along its own entries. Returns how many
/// copies each node received, which nodes delivered locally, and the edges used.
fn forward(
    config: &Config,
    trees: &BTreeMap<NodeId, Trees>,
    source: NodeId,
    members: &[NodeId],
) -> (BTreeMap<NodeId, usize>, Vec<NodeId>, BTreeSet<TreeEdge>) {
    let mut received: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut delivered = Vec::new();
    let mut edges = BTreeSet::new();
    let mut queue = vec![source];
    while let Some(at) = queue.pop() {
        let Some((links, local)) = trees[&at].multicast(source, members) else {
            continue;
        };
        if local {
            delivered.push(at);
        }
        for link in links.iter() {
            let to = config.link(link).unwrap().neighbour_of(at).unwrap();
            *received.entry(to).or_default() += 1;
            edges.insert(TreeEdge { from: at, to, link });
            queue.push(to);
        }
    }
    delivered.sort();
    (received, delivered, edges)
}

fn all_trees(config: &Config, graph: &Graph) -> BTreeMap<NodeId, Trees> {
    config
        .nodes()
        .iter()
        .map(|x| (x.id(), Trees::new(graph, x.id())))
        .collect()
}

#[test]
fn every_member_is_reached_exactly_once_along_the_source_tree() {
    let config = reference();
    let graph = Graph::from_config(&config);
    let trees = all_trees(&config, &graph);
    let mut rng = Rng(0x5eed);
    let mut sets: Vec<Vec<NodeId>> = (1..=12).map(|k| rng.members(12, k)).collect();
    sets.extend((0..20).map(|i| rng.members(12, 1 + i % 4)));
    for members in &sets {
        for source in (1..=12).map(n) {
            let (received, delivered, edges) = forward(&config, &trees, source, members);
            assert_eq!(&delivered, members, "from {source}");
            assert!(received.values().all(|&c| c == 1), "a node got two copies");
            assert!(!received.contains_key(&source), "back to the source");
            // The edges used are exactly the source tree's edges towards the members...
            let spt = graph.shortest_paths(source);
            for e in &edges {
                assert_eq!(spt.parent(e.to), Some((e.from, e.link)), "not an SPT edge");
            }
            let expected: BTreeSet<TreeEdge> = members
                .iter()
                .flat_map(|&m| {
                    spt.path_to(m)
                        .windows(2)
                        .map(|w| {
                            let link = spt.parent(w[1]).unwrap().1;
                            TreeEdge {
                                from: w[0],
                                to: w[1],
                                link,
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(edges, expected, "from {source} to {members:?}");
            // ...and every node computes the same tree for display.
            for t in trees.values() {
                let shown: BTreeSet<TreeEdge> = t.tree_edges(source, members).into_iter().collect();
                assert_eq!(shown, expected);
            }
            // An entry exists exactly where the packet is forwarded or delivered.
            for (&node, t) in &trees {
                let on_tree = node == source && !edges.is_empty()
                    || edges.iter().any(|e| e.from == node)
                    || members.contains(&node);
                assert_eq!(t.multicast(source, members).is_some(), on_tree, "{node}");
            }
        }
    }
}

#[test]
fn a_hand_checked_tree() {
    // From Boston (1) to Miami (5) and Seattle (9): 1-2-3-4-5 (5+5+8+8 = 26 ms; 1-6-4-5 is
    // 13+9+8 = 30) and 1-6-9 (13+20 = 33 ms; 1-2-6-9 is 35).
    let config = reference();
    let trees = Trees::new(&Graph::from_config(&config), n(1));
    let edges: Vec<(u16, u16, u16)> = trees
        .tree_edges(n(1), &[n(5), n(9)])
        .iter()
        .map(|e| (e.from.get(), e.to.get(), e.link.get()))
        .collect();
    assert_eq!(
        edges,
        vec![
            (1, 2, 0),
            (1, 6, 19),
            (2, 3, 1),
            (3, 4, 3),
            (4, 5, 5),
            (6, 9, 20)
        ]
    );
    let (links, local) = trees.multicast(n(1), &[n(5), n(9)]).unwrap();
    assert_eq!(links.iter().collect::<Vec<_>>(), vec![l(0), l(19)]);
    assert!(!local);
    // Boston is not on Washington's tree to Miami: no entry.
    assert_eq!(trees.multicast(n(3), &[n(5)]), None);
}

#[test]
fn anycast_picks_the_nearest_reachable_member() {
    let config = reference();
    let graph = Graph::from_config(&config);
    let mut rng = Rng(77);
    for me in (1..=12).map(n) {
        let trees = Trees::new(&graph, me);
        let routes = graph.shortest_paths(me);
        for k in 1..=5 {
            let members = rng.members(12, k);
            let route = trees.anycast(&members).unwrap();
            if members.contains(&me) {
                assert_eq!(
                    route,
                    AnycastRoute {
                        target: me,
                        next_hop: None,
                        metric_us: 0
                    }
                );
                continue;
            }
            let best = members
                .iter()
                .map(|&m| (routes.to(m).unwrap().cost, m))
                .min()
                .unwrap();
            assert_eq!(route.target, best.1);
            assert_eq!(u64::from(route.metric_us), best.0);
            assert_eq!(route.next_hop, routes.to(best.1).unwrap().first_hop);
        }
    }
    // Ties go to the lower node id: 1-2 and 1-3 both cost 10.
    let e = |link, a, b| Edge {
        link: l(link),
        a: n(a),
        b: n(b),
        cost: 10,
    };
    let tie = Trees::new(&Graph::new([e(0, 1, 3), e(1, 1, 2)]), n(1));
    assert_eq!(tie.anycast(&[n(3), n(2)]).map(|r| r.target), Some(n(2)));
}

#[test]
fn unreachable_members_and_sources_are_ignored() {
    // 1-2-3 and, apart, 4-5.
    let e = |link, a, b| Edge {
        link: l(link),
        a: n(a),
        b: n(b),
        cost: 10,
    };
    let graph = Graph::new([e(0, 1, 2), e(1, 2, 3), e(2, 4, 5)]);
    let t2 = Trees::new(&graph, n(2));
    assert_eq!(t2.sources(), &[n(1), n(2), n(3)]);
    let members = [n(3), n(5)];
    let (links, local) = t2.multicast(n(1), &members).unwrap();
    assert_eq!(
        (links.iter().collect::<Vec<_>>(), local),
        (vec![l(1)], false)
    );
    assert_eq!(t2.multicast(n(4), &members), None, "source unreachable");
    assert_eq!(t2.anycast(&members).map(|r| r.target), Some(n(3)));
    assert_eq!(t2.anycast(&[n(4), n(5)]), None);
    assert_eq!(t2.multicast(n(2), &[n(4), n(5)]), None);
    assert!(t2.tree_edges(n(1), &[n(5)]).is_empty());
    let groups = [(GroupId(1), &members[..]), (GroupId(2), &[n(4)][..])];
    assert_eq!(
        t2.count(groups),
        GroupFibCounts {
            // Group 1: sources 1 and 2 forward on link 1 towards 3; node 3's own packets
            // never pass node 2. Group 2: its only member is unreachable.
            multicast: 2,
            anycast: 1,
        }
    );
}

#[test]
fn fill_fib_writes_the_entries_it_counts() {
    let config = reference();
    let graph = Graph::from_config(&config);
    let trees = Trees::new(&graph, n(6));
    let mut rng = Rng(99);
    let sets: Vec<Vec<NodeId>> = (0..50).map(|i| rng.members(12, 1 + i % 5)).collect();
    // 200 groups over 50 member sets: groups with the same members share the computation.
    let groups: Vec<(GroupId, &[NodeId])> = (0..200u32)
        .map(|g| (GroupId(g + 1), sets[g as usize % 50].as_slice()))
        .collect();
    let mut table = FibTable::new_boxed();
    let mut fib = FibBuilder::new(&mut table);
    let counts = trees.fill_fib(groups.iter().copied(), &mut fib).unwrap();
    assert_eq!(counts, trees.count(groups.iter().copied()));
    assert_eq!(fib.counts().multicast, counts.multicast);
    assert_eq!(fib.counts().anycast, counts.anycast);
    assert_eq!(counts.anycast, 200);
    for &(g, members) in &groups {
        for &s in trees.sources() {
            let entry = fib
                .table()
                .multicast(g, s)
                .map(|r| (*r.links, r.local_delivery));
            assert_eq!(entry, trees.multicast(s, members), "{g} from {s}");
        }
        assert_eq!(fib.table().anycast(g), trees.anycast(members));
    }
}

/// Counts, at every node of the reference topology, the entries of `groups`; returns
/// (per-node multicast counts, per-node anycast counts, seconds for the 12 nodes).
fn count_everywhere(
    config: &Config,
    graph: &Graph,
    groups: &[(GroupId, Vec<NodeId>)],
) -> (Vec<usize>, Vec<usize>, f64) {
    #[allow(
        clippy::disallowed_methods,
        reason = "a test prints the wall time it took; nothing depends on it"
    )]
    let start = std::time::Instant::now();
    let mut multicast = Vec::new();
    let mut anycast = Vec::new();
    for node in config.nodes() {
        let trees = Trees::new(graph, node.id());
        let c = trees.count(groups.iter().map(|(g, m)| (*g, m.as_slice())));
        multicast.push(c.multicast);
        anycast.push(c.anycast);
    }
    (multicast, anycast, start.elapsed().as_secs_f64())
}

#[test]
fn ten_thousand_groups_on_the_reference_topology() {
    let config = reference();
    let graph = Graph::from_config(&config);
    let mut rng = Rng(2024);
    // Sparse: 1 to 4 member nodes per group, uniformly. Dense: every node in every group.
    let sparse: Vec<(GroupId, Vec<NodeId>)> = (1..=10_000u32)
        .map(|g| (GroupId(g), rng.members(12, 1 + (g as usize % 4))))
        .collect();
    let all: Vec<NodeId> = (1..=12).map(n).collect();
    let dense: Vec<(GroupId, Vec<NodeId>)> =
        (1..=10_000u32).map(|g| (GroupId(g), all.clone())).collect();
    for (name, groups) in [
        ("sparse (1-4 members)", &sparse),
        ("dense (12 members)", &dense),
    ] {
        let (multicast, anycast, secs) = count_everywhere(&config, &graph, groups);
        let max = multicast.iter().max().copied().unwrap_or(0);
        if name.starts_with("dense") {
            assert_eq!(multicast, vec![120_000; 12]);
        }
        println!(
            "10,000 groups, {name}: multicast entries per node {multicast:?} (max {max}, \
             capacity {MULTICAST_CAPACITY}), anycast per node {} (capacity {ANYCAST_CAPACITY}); \
             all 12 nodes in {:.1} ms",
            anycast[0],
            secs * 1e3
        );
        assert!(anycast.iter().all(|&a| a == 10_000));
        // Cross-check with the trees themselves: (group, source) has an entry at every node of
        // its tree (the source, if it forwards or is a member, and every node it reaches).
        let head = &groups[..200];
        let brute: usize = head
            .iter()
            .map(|(_, m)| {
                (1..=12)
                    .map(|s| {
                        let edges = Trees::new(&graph, n(s)).tree_edges(n(s), m).len();
                        edges + usize::from(edges > 0 || m.contains(&n(s)))
                    })
                    .sum::<usize>()
            })
            .sum();
        let counted: usize = count_everywhere(&config, &graph, head).0.iter().sum();
        assert_eq!(counted, brute);
    }
    // The builder's limits surface as errors, in the order the entries are inserted.
    #[allow(
        clippy::disallowed_methods,
        reason = "a test prints the wall time it took; nothing depends on it"
    )]
    let start = std::time::Instant::now();
    let trees = Trees::new(&graph, n(6));
    let mut table = FibTable::new_boxed();
    let mut fib = FibBuilder::new(&mut table);
    let result = trees.fill_fib(sparse.iter().map(|(g, m)| (*g, m.as_slice())), &mut fib);
    let secs = start.elapsed().as_secs_f64();
    let need = trees.count(sparse.iter().map(|(g, m)| (*g, m.as_slice())));
    println!(
        "node 6 (chicago), sparse: needs {need:?}; fill_fib in {:.1} ms: {result:?}",
        secs * 1e3
    );
    // The FIB holds them all (262,144 multicast keys, 32,768 anycast groups), and the out-link
    // sets of one node are few (they share masks).
    assert!(need.multicast <= MULTICAST_CAPACITY && need.anycast <= ANYCAST_CAPACITY);
    assert_eq!(result, Ok(need));
    let counts = fib.counts();
    assert_eq!(
        (counts.multicast, counts.anycast),
        (need.multicast, need.anycast)
    );
    println!("distinct out-link masks: {}", counts.multicast_masks);
    assert!(counts.multicast_masks < 1_024, "{counts:?}");
    // For the capacity discussion: how many of those entries only deliver locally, and how
    // many a table with one per-group entry for "any other source" would need.
    let (mut deliver_only, mut with_default) = (0, 0);
    for (_, m) in &sparse {
        let mut values: BTreeMap<(Vec<LinkId>, bool), usize> = BTreeMap::new();
        for &s in trees.sources() {
            if let Some((links, local)) = trees.multicast(s, m) {
                deliver_only += usize::from(links.is_empty());
                *values.entry((links.iter().collect(), local)).or_default() += 1;
            }
        }
        let most = values.values().max().copied().unwrap_or(0);
        let total: usize = values.values().sum();
        with_default += (total - most) + usize::from(most > 0);
    }
    println!(
        "node 6 (chicago), sparse: {deliver_only} entries only deliver locally; \
         with a per-group default entry it would need {with_default}"
    );
}
