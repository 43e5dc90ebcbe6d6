//! The control plane's answers to `weftctl` (`weft_shared::ctl`): its status, the link-state
//! database, the routes and the group state, built from the daemon's state at the time of the
//! request.

use std::collections::BTreeSet;

use weft_routing::groups::{GroupStats, TreeEdge, Trees};
use weft_shared::ctl::codec::json_len;
use weft_shared::ctl::{
    AdvertisedLink, AnycastChoice, CtlReply, CtlRequest, GroupAdvertStats, GroupRow, GroupsReply,
    LocalGroupRow, MAX_GROUP_ROWS, MAX_LOCAL_GROUP_ROWS, MAX_REPLY_LINE, NodeName, NodeRow,
    RouteRow, SourceTree, StatusReply, TreeEdgeRow,
};
use weft_shared::ids::{GroupId, LinkId, NodeId};

use crate::daemon::Daemon;

/// Bytes the rows of a groups reply may take: the reply line's bound less room for the rest
/// (counts, at most [`MAX_LOCAL_GROUP_ROWS`] local rows of at most 42 bytes, and the names of
/// at most 1,023 nodes of at most 60 bytes each: about 110 KB).
const GROUP_ROWS_BUDGET: usize = MAX_REPLY_LINE - 512 * 1024;

/// Answers one request.
pub fn answer(daemon: &mut Daemon, request: &CtlRequest) -> CtlReply {
    match request {
        CtlRequest::Status => CtlReply::Status(status(daemon)),
        CtlRequest::Nodes => CtlReply::Nodes(nodes(daemon)),
        CtlRequest::Routes => CtlReply::Routes(routes(daemon)),
        CtlRequest::Groups => CtlReply::Groups(groups(daemon, None)),
        CtlRequest::Group(group) => CtlReply::Groups(groups(daemon, Some(*group))),
    }
}

fn name_of(daemon: &Daemon, node: NodeId) -> String {
    daemon
        .config()
        .node(node)
        .map(|n| n.name().to_owned())
        .unwrap_or_default()
}

fn status(daemon: &mut Daemon) -> StatusReply {
    let stats = daemon.stats();
    let uptime_ms = daemon.uptime().as_millis() as u64;
    let fib_generation = daemon.fib_generation().0;
    let router = daemon.router();
    let me = router.node();
    let incarnation = router.incarnation().0;
    let r = router.stats();
    let spf_runs = r.spf_runs;
    StatusReply {
        node: me.get(),
        name: name_of(daemon, me),
        incarnation,
        uptime_ms,
        fib_generation,
        fib_publishes: stats.fib_publishes,
        updates_received: r.updates_accepted + r.updates_ignored,
        updates_sent: r.sent,
        retransmissions: r.retransmissions,
        spf_runs,
        last_spf_us: stats.last_spf_us,
    }
}

fn nodes(daemon: &mut Daemon) -> Vec<NodeRow> {
    let now = daemon.now();
    let config = daemon.config().clone();
    let router = daemon.router();
    let reachable: Vec<NodeId> = {
        let routes = router.routes();
        config
            .nodes()
            .iter()
            .map(|n| n.id())
            .filter(|n| routes.to(*n).is_some())
            .collect()
    };
    let mut rows = Vec::new();
    for (origin, stored) in router.database() {
        let links = stored
            .advert
            .links
            .iter()
            .map(|l| AdvertisedLink {
                link: l.link.get(),
                neighbour: config.neighbour(l.link, origin).map_or(0, NodeId::get),
                up: l.report.up,
                latency_us: l.report.latency_us,
                loss_ppm: l.report.loss_ppm,
                cost_us: router.link_cost(l.link).unwrap_or(0),
            })
            .collect();
        rows.push(NodeRow {
            node: origin.get(),
            name: config
                .node(origin)
                .map(|n| n.name().to_owned())
                .unwrap_or_default(),
            reachable: reachable.contains(&origin),
            incarnation: stored.advert.id.incarnation.0,
            seq: stored.advert.id.seq,
            age_ms: (now - stored.received_at).as_millis() as u64,
            links,
        });
    }
    rows
}

fn routes(daemon: &mut Daemon) -> Vec<RouteRow> {
    let config = daemon.config().clone();
    let router = daemon.router();
    let me = router.node();
    let routes = router.routes();
    config
        .nodes()
        .iter()
        .map(|n| n.id())
        .filter(|d| *d != me)
        .map(|dst| {
            let route = routes.to(dst);
            let link = route.and_then(|r| r.first_hop);
            RouteRow {
                destination: dst.get(),
                name: config
                    .node(dst)
                    .map(|n| n.name().to_owned())
                    .unwrap_or_default(),
                next_hop_node: link.and_then(|l| config.neighbour(l, me)).map(NodeId::get),
                link: link.map(|l| l.get()),
                metric_us: route.map_or(0, |r| r.cost),
                path: routes.path_to(dst).iter().map(|n| n.get()).collect(),
            }
        })
        .collect()
}

/// The group state: counts, local groups, and the rows of every known group (or of `asked`).
fn groups(daemon: &mut Daemon, asked: Option<u32>) -> GroupsReply {
    let config = daemon.config().clone();
    let stats = daemon.stats();
    let mut local = daemon.local_groups().to_vec();
    let (state, router) = daemon.groups_and_router();
    let me = router.node();
    let trees = Trees::new(&router.graph(), me);
    let neighbour = |link: LinkId| config.neighbour(link, me);
    let (groups, truncated, total) = match asked {
        None => {
            let (rows, truncated) =
                group_rows(&trees, state.groups(), false, &neighbour, GROUP_ROWS_BUDGET);
            (rows, truncated, state.group_count())
        }
        Some(group) => {
            let members: Vec<NodeId> = state.members(GroupId(group)).collect();
            let known = (!members.is_empty()).then_some((GroupId(group), members.as_slice()));
            let (rows, truncated) = group_rows(&trees, known, true, &neighbour, GROUP_ROWS_BUDGET);
            (rows, truncated, usize::from(known.is_some()))
        }
    };
    local.sort_unstable();
    let local_total = local.len() as u64;
    let local = local
        .iter()
        .take(MAX_LOCAL_GROUP_ROWS)
        .map(|&(group, members)| LocalGroupRow {
            group: group.0,
            members,
        })
        .collect();
    let name_of = |n: NodeId| {
        config
            .node(n)
            .map(|node| node.name().to_owned())
            .unwrap_or_default()
    };
    GroupsReply {
        node: me.get(),
        name: name_of(me),
        asked_group: asked,
        group_count: state.group_count() as u64,
        fib_multicast: stats.fib_multicast,
        fib_anycast: stats.fib_anycast,
        adverts: advert_stats(state.stats()),
        local,
        local_total,
        names: names(me, &groups, name_of),
        groups,
        total: total as u64,
        truncated,
    }
}

/// The rows of `groups` at the node of `trees`, at most [`MAX_GROUP_ROWS`] taking at most
/// `budget` bytes of JSON, and whether some were left out. With `all_sources`, each row also
/// holds the group's tree from every source this node reaches (as many as fit). `neighbour` is
/// the node across one of this node's links.
fn group_rows<'a>(
    trees: &Trees,
    groups: impl IntoIterator<Item = (GroupId, &'a [NodeId])>,
    all_sources: bool,
    neighbour: &dyn Fn(LinkId) -> Option<NodeId>,
    budget: usize,
) -> (Vec<GroupRow>, bool) {
    let mut rows = Vec::new();
    let mut used = 0;
    for (group, members) in groups {
        if rows.len() == MAX_GROUP_ROWS {
            return (rows, true);
        }
        let mut row = GroupRow {
            group: group.0,
            members: members.iter().map(|m| m.get()).collect(),
            anycast: trees.anycast(members).map(|a| AnycastChoice {
                target: a.target.get(),
                next_hop_node: a.next_hop.and_then(neighbour).map(NodeId::get),
                link: a.next_hop.map(LinkId::get),
                metric_us: a.metric_us,
            }),
            tree: edge_rows(trees.tree_edges(trees.node(), members)),
            trees: Vec::new(),
        };
        // The separating comma included.
        let mut size = json_len(&row) + 1;
        if used + size > budget {
            return (rows, true);
        }
        let mut truncated = false;
        if all_sources {
            for &source in trees.sources() {
                let tree = SourceTree {
                    source: source.get(),
                    edges: edge_rows(trees.tree_edges(source, members)),
                };
                let len = json_len(&tree) + 1;
                if used + size + len > budget {
                    truncated = true;
                    break;
                }
                size += len;
                row.trees.push(tree);
            }
        }
        used += size;
        rows.push(row);
        if truncated {
            return (rows, true);
        }
    }
    (rows, false)
}

fn edge_rows(edges: Vec<TreeEdge>) -> Vec<TreeEdgeRow> {
    edges
        .into_iter()
        .map(|e| TreeEdgeRow {
            from: e.from.get(),
            to: e.to.get(),
            link: e.link.get(),
        })
        .collect()
}

/// The names of this node and of every node `rows` mention, by id.
fn names(me: NodeId, rows: &[GroupRow], name_of: impl Fn(NodeId) -> String) -> Vec<NodeName> {
    let mut ids = BTreeSet::from([me.get()]);
    for row in rows {
        ids.extend(&row.members);
        if let Some(a) = &row.anycast {
            ids.insert(a.target);
            ids.extend(a.next_hop_node);
        }
        let edges = row
            .tree
            .iter()
            .chain(row.trees.iter().flat_map(|t| &t.edges));
        for e in edges {
            ids.extend([e.from, e.to]);
        }
        ids.extend(row.trees.iter().map(|t| t.source));
    }
    ids.into_iter()
        .filter_map(NodeId::new)
        .map(|n| NodeName {
            node: n.get(),
            name: name_of(n),
        })
        .collect()
}

fn advert_stats(s: GroupStats) -> GroupAdvertStats {
    GroupAdvertStats {
        originated: s.originated,
        accepted: s.updates_accepted,
        ignored: s.updates_ignored,
        refused: s.refused,
        sent: s.sent,
        retransmissions: s.retransmissions,
        acks_received: s.acks_received,
        full_exchanges: s.full_exchanges,
        superseded: s.superseded,
        aged_out: s.aged_out,
    }
}

#[cfg(test)]
mod tests {
    use weft_routing::spf::{Edge, Graph};
    use weft_shared::config::Config;
    use weft_shared::ctl::codec::encode_reply;
    use weft_shared::ids::MAX_NODE_ID;

    use super::*;

    fn n(i: u16) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn reference() -> Config {
        let text = include_str!("../../../config/reference.toml");
        Config::from_toml_str(text, "reference.toml").unwrap()
    }

    /// A reply around `rows` with the most the rest can hold: every local row and the
    /// longest name of every possible node.
    fn largest_reply(rows: Vec<GroupRow>, truncated: bool) -> CtlReply {
        CtlReply::Groups(GroupsReply {
            node: MAX_NODE_ID,
            name: "n".repeat(32),
            asked_group: Some(u32::MAX),
            group_count: u64::MAX,
            fib_multicast: u64::MAX,
            fib_anycast: u64::MAX,
            adverts: GroupAdvertStats {
                originated: u64::MAX,
                accepted: u64::MAX,
                ignored: u64::MAX,
                refused: u64::MAX,
                sent: u64::MAX,
                retransmissions: u64::MAX,
                acks_received: u64::MAX,
                full_exchanges: u64::MAX,
                superseded: u64::MAX,
                aged_out: u64::MAX,
            },
            local: vec![
                LocalGroupRow {
                    group: u32::MAX,
                    members: u32::MAX,
                };
                MAX_LOCAL_GROUP_ROWS
            ],
            local_total: u64::MAX,
            groups: rows,
            total: u64::MAX,
            truncated,
            names: (1..=MAX_NODE_ID)
                .map(|node| NodeName {
                    node,
                    name: "n".repeat(32),
                })
                .collect(),
        })
    }

    #[test]
    fn ten_thousand_groups_on_the_reference_overlay() {
        let config = reference();
        let me = n(1);
        let trees = Trees::new(&Graph::from_config(&config), me);
        let neighbour = |link: LinkId| config.neighbour(link, me);
        // Group g has members g % 12 + 1 and (g * 7) % 12 + 1: this node in some of them.
        let members: Vec<(GroupId, Vec<NodeId>)> = (1..=10_000u32)
            .map(|g| {
                let set: BTreeSet<NodeId> = [g % 12 + 1, (g * 7) % 12 + 1]
                    .into_iter()
                    .map(|m| n(m as u16))
                    .collect();
                (GroupId(g), set.into_iter().collect())
            })
            .collect();
        let groups = members.iter().map(|(g, m)| (*g, m.as_slice()));
        let (rows, truncated) = group_rows(&trees, groups, false, &neighbour, GROUP_ROWS_BUDGET);
        assert!(truncated);
        assert_eq!(rows.len(), MAX_GROUP_ROWS);
        assert_eq!(rows[0].group, 1);
        assert_eq!(rows[MAX_GROUP_ROWS - 1].group, MAX_GROUP_ROWS as u32);
        for row in &rows {
            assert!(row.trees.is_empty());
            let anycast = row.anycast.unwrap();
            let tree_to = |m: u16| row.tree.iter().filter(|e| e.to == m).count();
            if row.members.contains(&1) {
                assert_eq!(
                    (anycast.target, anycast.link, anycast.metric_us),
                    (1, None, 0)
                );
            } else {
                assert!(row.members.contains(&anycast.target));
                let link = LinkId::new(anycast.link.unwrap()).unwrap();
                assert_eq!(anycast.next_hop_node, neighbour(link).map(NodeId::get));
            }
            // A tree from this node reaching every other member once, edges from here first.
            for &m in row.members.iter().filter(|&&m| m != 1) {
                assert_eq!(tree_to(m), 1, "{row:?}");
            }
            let others = row.members.iter().any(|&m| m != 1);
            assert_eq!(row.tree.iter().any(|e| e.from == 1), others, "{row:?}");
            assert_eq!(tree_to(1), 0);
        }
        assert!(encode_reply(&largest_reply(rows, truncated)).is_ok());

        // One group: its trees from all 12 sources, each reaching every member but its root.
        let (g, m) = &members[4];
        let (rows, truncated) = group_rows(
            &trees,
            [(*g, m.as_slice())],
            true,
            &neighbour,
            GROUP_ROWS_BUDGET,
        );
        assert!(!truncated);
        assert_eq!(rows.len(), 1);
        let sources: Vec<u16> = rows[0].trees.iter().map(|t| t.source).collect();
        assert_eq!(sources, (1..=12).collect::<Vec<u16>>());
        for t in &rows[0].trees {
            for &member in m.iter().filter(|x| x.get() != t.source) {
                assert_eq!(t.edges.iter().filter(|e| e.to == member.get()).count(), 1);
            }
        }
        assert_eq!(rows[0].trees[0].edges, rows[0].tree);
        let (rows, truncated) = group_rows(&trees, None, true, &neighbour, GROUP_ROWS_BUDGET);
        assert!(rows.is_empty() && !truncated);
    }

    #[test]
    fn the_largest_groups_stay_within_one_reply_line() {
        // The longest trees: a line of 513 nodes over all 512 links; every node of the widest
        // config a member of every group.
        let edges = (1..=512u16).map(|i| Edge {
            link: LinkId::new(i - 1).unwrap(),
            a: n(i),
            b: n(i + 1),
            cost: 1000,
        });
        let me = n(1);
        let trees = Trees::new(&Graph::new(edges), me);
        let neighbour = |link: LinkId| (link.get() == 0).then(|| n(2));
        let everyone: Vec<NodeId> = (1..=MAX_NODE_ID).map(n).collect();
        let groups = (1..=2_000u32).map(|g| (GroupId(g), everyone.as_slice()));
        let (rows, truncated) = group_rows(&trees, groups, false, &neighbour, GROUP_ROWS_BUDGET);
        assert!(truncated);
        assert!(
            rows.len() > 50 && rows.len() < MAX_GROUP_ROWS,
            "{}",
            rows.len()
        );
        assert_eq!(rows[0].tree.len(), 512);
        assert!(encode_reply(&largest_reply(rows, truncated)).is_ok());

        // One such group with the trees of all 513 sources: as many as fit.
        let (rows, truncated) = group_rows(
            &trees,
            [(GroupId(7), everyone.as_slice())],
            true,
            &neighbour,
            GROUP_ROWS_BUDGET,
        );
        assert!(truncated);
        assert_eq!(rows.len(), 1);
        let kept = rows[0].trees.len();
        assert!(kept > 50 && kept < 513, "{kept}");
        assert!(encode_reply(&largest_reply(rows, truncated)).is_ok());
    }
}
