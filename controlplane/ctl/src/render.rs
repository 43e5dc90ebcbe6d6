//! Human-readable output of each report: a heading line, then aligned tables ([`crate::table`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use weft_shared::ctl::{GroupRow, StatusReply, TreeEdgeRow};

use crate::report::{
    AuthRow, ConfigSummary, CountersReport, DataplaneInfo, FibReport, GroupsReport, LinksReport,
    Liveness, NodesReport, ReliableReport, RoutesReport, StatusReport,
};
use crate::table::{Align, Table, age_ms, bytes, duration_us, opt, ppm_percent};

/// `show status`.
pub fn status(report: &StatusReport) -> String {
    let s = &report.status;
    let rows = [
        ("node", format!("{} ({})", s.node, s.name)),
        ("incarnation", format!("{:#010x}", s.incarnation)),
        ("uptime", age_ms(s.uptime_ms)),
        ("fib generation", s.fib_generation.to_string()),
        ("fib publishes", s.fib_publishes.to_string()),
        ("updates received", s.updates_received.to_string()),
        ("updates sent", s.updates_sent.to_string()),
        ("retransmissions", s.retransmissions.to_string()),
        ("spf runs", s.spf_runs.to_string()),
        ("last spf", duration_us(s.last_spf_us)),
    ];
    let mut out = String::new();
    for (key, value) in rows {
        let _ = writeln!(out, "{key:<17} {value}");
    }
    out
}

/// `show nodes`: the nodes, then every link they advertise.
pub fn nodes(report: &NodesReport) -> String {
    let mut out = format!(
        "node {} ({}): {} nodes in the link-state database\n",
        report.node,
        report.name,
        report.nodes.len()
    );
    let names: HashMap<u16, &str> = report
        .nodes
        .iter()
        .map(|n| (n.node, n.name.as_str()))
        .collect();
    let mut table = Table::new(&[
        ("NODE", Align::Right),
        ("NAME", Align::Left),
        ("REACHABLE", Align::Left),
        ("INCARNATION", Align::Left),
        ("SEQ", Align::Right),
        ("AGE", Align::Right),
        ("LINKS", Align::Right),
    ]);
    let mut links = Table::new(&[
        ("NODE", Align::Right),
        ("LINK", Align::Right),
        ("NEIGHBOUR", Align::Left),
        ("STATE", Align::Left),
        ("LATENCY", Align::Right),
        ("LOSS", Align::Right),
        ("COST", Align::Right),
    ]);
    for n in &report.nodes {
        table.row(vec![
            n.node.to_string(),
            n.name.clone(),
            yes_no(n.reachable).to_owned(),
            format!("{:#010x}", n.incarnation),
            n.seq.to_string(),
            age_ms(n.age_ms),
            n.links.len().to_string(),
        ]);
        for l in &n.links {
            links.row(vec![
                n.node.to_string(),
                l.link.to_string(),
                named(l.neighbour, names.get(&l.neighbour).copied()),
                if l.up { "up" } else { "down" }.to_owned(),
                duration_us(u64::from(l.latency_us)),
                ppm_percent(l.loss_ppm),
                duration_us(l.cost_us),
            ]);
        }
    }
    out.push_str(&table.render());
    if !links.is_empty() {
        out.push('\n');
        out.push_str(&links.render());
    }
    out
}

/// `show routes`: a status line, then one row per destination.
pub fn routes(report: &RoutesReport) -> String {
    let mut out = format!("node {} ({})", report.node, report.name);
    match &report.status {
        Some(StatusReply {
            fib_generation,
            fib_publishes,
            spf_runs,
            last_spf_us,
            ..
        }) => {
            let _ = writeln!(
                out,
                ": FIB generation {fib_generation} ({fib_publishes} published by this control \
                 plane), {spf_runs} SPF runs, last took {}",
                duration_us(*last_spf_us)
            );
        }
        None => out.push('\n'),
    }
    let mut table = Table::new(&[
        ("DEST", Align::Right),
        ("NAME", Align::Left),
        ("NEXT HOP", Align::Right),
        ("LINK", Align::Right),
        ("METRIC", Align::Right),
        ("PATH", Align::Left),
    ]);
    for r in &report.routes {
        let reachable = !r.path.is_empty();
        table.row(vec![
            r.destination.to_string(),
            r.name.clone(),
            opt(r.next_hop_node),
            opt(r.link),
            if reachable {
                duration_us(r.metric_us)
            } else {
                "unreachable".to_owned()
            },
            r.path
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" > "),
        ]);
    }
    out.push_str(&table.render());
    out
}

/// Members and tree edges shown per cell of `show groups` (all of them with `--group`).
const GROUP_CELL_ITEMS: usize = 8;

/// `show groups`: counts, the local groups, then one row per group (with `--group`, the trees
/// from every source below it).
pub fn groups(report: &GroupsReport) -> String {
    let g = &report.groups;
    let names: HashMap<u16, &str> = g.names.iter().map(|n| (n.node, n.name.as_str())).collect();
    let name = |id: u16| named(id, names.get(&id).copied());
    let mut out = format!(
        "node {} ({}): {} groups known, {} with local members; last FIB {} multicast, {} anycast \
         entries\n",
        g.node, g.name, g.group_count, g.local_total, g.fib_multicast, g.fib_anycast
    );
    let a = &g.adverts;
    let _ = writeln!(
        out,
        "group adverts: {} originated, {} accepted, {} ignored, {} refused, {} retransmissions",
        a.originated, a.accepted, a.ignored, a.refused, a.retransmissions
    );
    if g.asked_group.is_none() {
        if g.local.is_empty() {
            out.push_str("no local groups\n");
        } else {
            let mut local = Table::new(&[("LOCAL GROUP", Align::Right), ("MEMBERS", Align::Right)]);
            for l in &g.local {
                local.row(vec![l.group.to_string(), l.members.to_string()]);
            }
            out.push_str(&local.render());
            if (g.local.len() as u64) < g.local_total {
                let _ = writeln!(
                    out,
                    "(first {} of {} local groups)",
                    g.local.len(),
                    g.local_total
                );
            }
        }
    }
    let all = g.asked_group.is_some();
    let cell = |items: Vec<String>| {
        let shown = if all { items.len() } else { GROUP_CELL_ITEMS };
        let mut text = items[..shown.min(items.len())].join(", ");
        if items.len() > shown {
            let _ = write!(text, " (+{} more)", items.len() - shown);
        }
        text
    };
    let mut table = Table::new(&[
        ("GROUP", Align::Right),
        ("MEMBERS", Align::Left),
        ("ANYCAST", Align::Left),
        ("NEXT HOP", Align::Right),
        ("LINK", Align::Right),
        ("METRIC", Align::Right),
        ("TREE FROM HERE (FROM>TO/LINK)", Align::Left),
    ]);
    for row in &g.groups {
        let (target, next_hop, link, metric) = match &row.anycast {
            Some(a) => (
                name(a.target),
                opt(a.next_hop_node),
                opt(a.link),
                duration_us(u64::from(a.metric_us)),
            ),
            None => ("-".into(), "-".into(), "-".into(), "unreachable".into()),
        };
        table.row(vec![
            row.group.to_string(),
            cell(row.members.iter().map(|&m| name(m)).collect()),
            target,
            next_hop,
            link,
            metric,
            cell(edges(&row.tree)),
        ]);
    }
    match g.asked_group {
        Some(group) if g.groups.is_empty() => {
            let _ = writeln!(out, "group {group}: no member node known");
            return out;
        }
        None if g.groups.is_empty() => {
            out.push_str("no group has members\n");
            return out;
        }
        _ => out.push_str(&table.render()),
    }
    if g.truncated && g.asked_group.is_none() {
        let _ = writeln!(
            out,
            "(first {} of {} groups: the reply is bounded; --group G shows one)",
            g.groups.len(),
            g.total
        );
    }
    for row in g.groups.iter().filter(|r| !r.trees.is_empty()) {
        out.push_str(&source_trees(row, &name));
    }
    if g.truncated && g.asked_group.is_some() {
        out.push_str("(not every source's tree fits in one reply)\n");
    }
    out
}

/// The trees of one group from each source, one row per source.
fn source_trees(row: &GroupRow, name: &dyn Fn(u16) -> String) -> String {
    let mut table = Table::new(&[
        ("SOURCE", Align::Left),
        ("TREE (FROM>TO/LINK)", Align::Left),
    ]);
    for t in &row.trees {
        let e = edges(&t.edges);
        table.row(vec![
            name(t.source),
            if e.is_empty() {
                "(no other member reachable)".to_owned()
            } else {
                e.join(", ")
            },
        ]);
    }
    format!(
        "multicast trees of group {} by source\n{}",
        row.group,
        table.render()
    )
}

fn edges(edges: &[TreeEdgeRow]) -> Vec<String> {
    edges
        .iter()
        .map(|e| format!("{}>{}/{}", e.from, e.to, e.link))
        .collect()
}

/// `show links`: each link, its paths indented below it.
pub fn links(report: &LinksReport) -> String {
    let mut out = heading(report.node, &report.name, &report.dataplane);
    let mut table = Table::new(&[
        ("LINK", Align::Right),
        ("PATH", Align::Right),
        ("PEER", Align::Left),
        ("STATE", Align::Left),
        ("ACTIVE", Align::Right),
        ("RTT", Align::Right),
        ("LOSS", Align::Right),
        ("HELLO OUT", Align::Right),
        ("HELLO IN", Align::Right),
        ("PKTS IN", Align::Right),
        ("PKTS OUT", Align::Right),
        ("BYTES IN", Align::Right),
        ("BYTES OUT", Align::Right),
        ("CHANGED", Align::Right),
        ("AUTH", Align::Left),
    ]);
    for l in &report.links {
        let mut row = vec![
            l.link.to_string(),
            String::new(),
            named(l.neighbour, Some(&l.neighbour_name)),
        ];
        row.extend(liveness_cells(&l.liveness, opt(l.active_path)));
        row.extend([
            l.packets_in.to_string(),
            l.packets_out.to_string(),
            bytes(l.bytes_in),
            bytes(l.bytes_out),
            changed(&l.liveness),
            auth_cell(l.auth.as_ref()),
        ]);
        table.row(row);
        for p in &l.paths {
            let mut row = vec![
                String::new(),
                p.path.to_string(),
                format!("{} > {}", p.local, p.remote),
            ];
            row.extend(liveness_cells(&p.liveness, String::new()));
            row.extend([String::new(), String::new(), String::new(), String::new()]);
            row.push(changed(&p.liveness));
            row.push(String::new());
            table.row(row);
        }
    }
    if report.links.is_empty() {
        out.push_str("(the node has no links in the config)\n");
    } else {
        out.push_str(&table.render());
    }
    out
}

/// A link's key epochs: `-` for a plain link, else the send epoch and, when they differ, the
/// newest held and the peer's (a rotation in progress).
fn auth_cell(auth: Option<&AuthRow>) -> String {
    match auth {
        None => "-".into(),
        Some(a) => {
            let peer = a.peer_epoch.map_or("?".into(), |p| p.to_string());
            if a.newest_epoch == a.send_epoch && a.peer_epoch == Some(a.send_epoch) {
                format!("epoch {}", a.send_epoch)
            } else {
                format!(
                    "epoch {} (newest {}, peer {peer})",
                    a.send_epoch, a.newest_epoch
                )
            }
        }
    }
}

/// `show fib`: the generation, its counts, the unicast table.
pub fn fib(report: &FibReport) -> String {
    let mut out = heading(report.node, &report.name, &report.dataplane);
    let _ = writeln!(
        out,
        "FIB generation {}: {} unicast, {} multicast, {} anycast entries; checksum {}",
        report.generation,
        report.unicast_count,
        report.multicast_count,
        report.anycast_count,
        match &report.verify_error {
            None => "ok".to_owned(),
            Some(e) => format!("MISMATCH ({e})"),
        }
    );
    if report.generation == 0 {
        out.push_str("(no FIB was published yet: is the control plane running?)\n");
    }
    if report.unicast.is_empty() {
        return out;
    }
    let mut table = Table::new(&[
        ("DEST", Align::Right),
        ("NAME", Align::Left),
        ("LINK", Align::Right),
        ("NEXT HOP", Align::Right),
        ("METRIC", Align::Right),
    ]);
    for r in &report.unicast {
        table.row(vec![
            r.destination.to_string(),
            r.name.clone(),
            r.link.to_string(),
            opt(r.next_hop_node),
            duration_us(u64::from(r.metric_us)),
        ]);
    }
    out.push_str(&table.render());
    out
}

/// `show reliable`: the reliable service per link and per flow end.
pub fn reliable(report: &ReliableReport) -> String {
    let mut out = heading(report.node, &report.name, &report.dataplane);
    let mut links = Table::new(&[
        ("LINK", Align::Right),
        ("TO", Align::Right),
        ("SENT", Align::Right),
        ("RETRANSMITTED", Align::Right),
        ("ACCEPTED", Align::Right),
        ("RECOVERED", Align::Right),
        ("OUT OF ORDER", Align::Right),
        ("DUPLICATES", Align::Right),
        ("REFUSED", Align::Right),
        ("HELD", Align::Right),
    ]);
    for l in &report.links {
        let v = &l.values;
        links.row(vec![
            l.link.to_string(),
            l.neighbour.to_string(),
            v.sent.to_string(),
            v.retransmitted.to_string(),
            v.accepted.to_string(),
            v.recovered.to_string(),
            v.out_of_order.to_string(),
            v.duplicates.to_string(),
            v.refused.to_string(),
            v.held.to_string(),
        ]);
    }
    out.push_str("reliable links (records)\n");
    out.push_str(&links.render());
    if report.flows.is_empty() {
        out.push_str("no reliable flows\n");
        return out;
    }
    let mut flows = Table::new(&[
        ("END", Align::Left),
        ("FLOW", Align::Right),
        ("PEER", Align::Right),
        ("PORT", Align::Right),
        ("MESSAGES", Align::Right),
        ("DELIVERED", Align::Right),
        ("RESENT/REORDERED", Align::Right),
        ("BLOCKED/DUPLICATES", Align::Right),
        ("HELD", Align::Right),
        ("STATE", Align::Left),
    ]);
    for f in &report.flows {
        let source = f.end == 1;
        flows.row(vec![
            if source { "source" } else { "sink" }.to_owned(),
            f.flow.to_string(),
            f.peer.to_string(),
            f.port.to_string(),
            f.messages.to_string(),
            f.delivered.to_string(),
            f.resent_or_reordered.to_string(),
            f.blocked_or_duplicates.to_string(),
            f.held.to_string(),
            if f.stalled != 0 { "stalled" } else { "ok" }.to_owned(),
        ]);
    }
    out.push_str("reliable flows (messages; a source counts resends and sends blocked for credit, a sink arrivals out of order and duplicates)\n");
    out.push_str(&flows.render());
    out
}

/// `show counters`: every counter that is not zero, per worker and in total.
pub fn counters(report: &CountersReport) -> String {
    let mut out = heading(report.node, &report.name, &report.dataplane);
    let mut columns = vec![
        ("COUNTER".to_owned(), Align::Left),
        ("TOTAL".to_owned(), Align::Right),
    ];
    for w in &report.workers {
        columns.push((format!("W{} (CORE {})", w.worker, w.core), Align::Right));
    }
    let titles: Vec<(&str, Align)> = columns.iter().map(|(t, a)| (t.as_str(), *a)).collect();
    let mut table = Table::new(&titles);
    for (name, total) in &report.total.0 {
        let per_worker: Vec<u64> = report
            .workers
            .iter()
            .map(|w| w.counters.get(name).unwrap_or(0))
            .collect();
        if *total == 0 && per_worker.iter().all(|&v| v == 0) {
            continue;
        }
        let mut row = vec![name.clone(), total.to_string()];
        row.extend(per_worker.iter().map(u64::to_string));
        table.row(row);
    }
    if table.is_empty() {
        out.push_str("(every counter is zero)\n");
    } else {
        out.push_str(&table.render());
    }
    out
}

/// `config check`.
pub fn config_summary(summary: &ConfigSummary) -> String {
    let mut out = format!(
        "{}: ok\noverlay {}, config hash {}\n{} nodes, {} links, {} paths\n",
        summary.file, summary.overlay, summary.hash, summary.nodes, summary.links, summary.paths
    );
    let mut table = Table::new(&[
        ("NODE", Align::Right),
        ("NAME", Align::Left),
        ("WORKERS", Align::Right),
        ("LINKS", Align::Right),
        ("CTL SOCKET", Align::Left),
    ]);
    for n in &summary.node_list {
        table.row(vec![
            n.id.to_string(),
            n.name.clone(),
            n.workers.to_string(),
            n.links.to_string(),
            n.ctl_socket.clone(),
        ]);
    }
    out.push_str(&table.render());
    out
}

fn heading(node: u16, name: &str, dp: &DataplaneInfo) -> String {
    format!(
        "node {node} ({name}): data plane pid {}, incarnation {:#010x}, {}\n",
        dp.pid, dp.incarnation, dp.region
    )
}

fn liveness_cells(l: &Liveness, active: String) -> [String; 6] {
    let measured = l.rtt_us != 0 || l.hellos_received != 0;
    [
        l.state.as_str().to_owned(),
        active,
        if measured {
            duration_us(u64::from(l.rtt_us))
        } else {
            "-".to_owned()
        },
        ppm_percent(l.loss_ppm),
        l.hellos_sent.to_string(),
        l.hellos_received.to_string(),
    ]
}

fn changed(l: &Liveness) -> String {
    l.changed_ms_ago
        .map_or_else(|| "never".to_owned(), |ms| format!("{} ago", age_ms(ms)))
}

fn named(id: u16, name: Option<&str>) -> String {
    match name {
        Some(name) if !name.is_empty() => format!("{id} {name}"),
        _ => id.to_string(),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use weft_shared::ctl::{
        AnycastChoice, GroupAdvertStats, GroupsReply, LocalGroupRow, NodeName, RouteRow, SourceTree,
    };

    use super::*;
    use crate::report::{Counters, WorkerRow};

    fn dp() -> DataplaneInfo {
        DataplaneInfo {
            pid: 42,
            incarnation: 7,
            region: "/dev/shm/x".into(),
        }
    }

    #[test]
    fn auth_cells_show_a_rotation_under_way() {
        let a = |send, newest, peer| AuthRow {
            send_epoch: send,
            newest_epoch: newest,
            peer_epoch: peer,
        };
        assert_eq!(auth_cell(None), "-");
        assert_eq!(auth_cell(Some(&a(1, 1, Some(1)))), "epoch 1");
        assert_eq!(
            auth_cell(Some(&a(0, 1, Some(0)))),
            "epoch 0 (newest 1, peer 0)"
        );
        assert_eq!(
            auth_cell(Some(&a(0, 0, None))),
            "epoch 0 (newest 0, peer ?)"
        );
    }

    #[test]
    fn routes_table() {
        let report = RoutesReport {
            node: 1,
            name: "a".into(),
            status: None,
            routes: vec![
                RouteRow {
                    destination: 2,
                    name: "b".into(),
                    next_hop_node: Some(2),
                    link: Some(0),
                    metric_us: 1500,
                    path: vec![1, 2],
                },
                RouteRow {
                    destination: 13,
                    name: "far".into(),
                    next_hop_node: None,
                    link: None,
                    metric_us: u64::MAX,
                    path: vec![],
                },
            ],
        };
        assert_eq!(
            routes(&report),
            "node 1 (a)\n\
             DEST  NAME  NEXT HOP  LINK       METRIC  PATH\n\
             \x20  2  b            2     0       1.50ms  1 > 2\n\
             \x20 13  far          -     -  unreachable\n"
        );
    }

    #[test]
    fn counters_hide_zeros() {
        let row = |received, drops| {
            Counters(vec![
                ("received".into(), received),
                ("drop_no_route".into(), drops),
                ("drop_replayed".into(), 0),
            ])
        };
        let report = CountersReport {
            node: 3,
            name: "c".into(),
            dataplane: dp(),
            workers: vec![
                WorkerRow {
                    worker: 0,
                    core: 2,
                    counters: row(10, 0),
                },
                WorkerRow {
                    worker: 1,
                    core: 5,
                    counters: row(5, 1),
                },
            ],
            total: row(15, 1),
        };
        assert_eq!(
            counters(&report),
            "node 3 (c): data plane pid 42, incarnation 0x00000007, /dev/shm/x\n\
             COUNTER        TOTAL  W0 (CORE 2)  W1 (CORE 5)\n\
             received          15           10            5\n\
             drop_no_route      1            0            1\n"
        );
        let quiet = CountersReport {
            workers: vec![],
            total: row(0, 0),
            ..report
        };
        assert!(counters(&quiet).ends_with("(every counter is zero)\n"));
    }

    fn edge(from: u16, to: u16, link: u16) -> TreeEdgeRow {
        TreeEdgeRow { from, to, link }
    }

    fn groups_report() -> GroupsReport {
        GroupsReport {
            groups: GroupsReply {
                node: 1,
                name: "a".into(),
                asked_group: None,
                group_count: 3,
                fib_multicast: 4,
                fib_anycast: 2,
                adverts: GroupAdvertStats {
                    originated: 3,
                    accepted: 9,
                    ignored: 1,
                    retransmissions: 2,
                    ..GroupAdvertStats::default()
                },
                local: vec![LocalGroupRow {
                    group: 7,
                    members: 2,
                }],
                local_total: 1,
                groups: vec![
                    GroupRow {
                        group: 7,
                        members: vec![1, 4],
                        anycast: Some(AnycastChoice {
                            target: 1,
                            next_hop_node: None,
                            link: None,
                            metric_us: 0,
                        }),
                        tree: vec![edge(1, 2, 0), edge(2, 4, 3)],
                        trees: vec![],
                    },
                    GroupRow {
                        group: 9,
                        members: (2..=11).collect(),
                        anycast: Some(AnycastChoice {
                            target: 2,
                            next_hop_node: Some(2),
                            link: Some(0),
                            metric_us: 1500,
                        }),
                        tree: vec![edge(1, 2, 0)],
                        trees: vec![],
                    },
                    GroupRow {
                        group: 12,
                        members: vec![13],
                        anycast: None,
                        tree: vec![],
                        trees: vec![],
                    },
                ],
                total: 3,
                truncated: false,
                names: vec![
                    NodeName {
                        node: 1,
                        name: "a".into(),
                    },
                    NodeName {
                        node: 2,
                        name: "b".into(),
                    },
                    NodeName {
                        node: 4,
                        name: "d".into(),
                    },
                ],
            },
        }
    }

    #[test]
    fn groups_table() {
        let report = groups_report();
        assert_eq!(
            groups(&report),
            "node 1 (a): 3 groups known, 1 with local members; last FIB 4 multicast, 2 anycast entries\n\
             group adverts: 3 originated, 9 accepted, 1 ignored, 0 refused, 2 retransmissions\n\
             LOCAL GROUP  MEMBERS\n\
             \x20         7        2\n\
             GROUP  MEMBERS                               ANYCAST  NEXT HOP  LINK       METRIC  TREE FROM HERE (FROM>TO/LINK)\n\
             \x20   7  1 a, 4 d                              1 a             -     -          0us  1>2/0, 2>4/3\n\
             \x20   9  2 b, 3, 4 d, 5, 6, 7, 8, 9 (+2 more)  2 b             2     0       1.50ms  1>2/0\n\
             \x20  12  13                                    -               -     -  unreachable\n"
        );
        // Truncated, and nothing known.
        let mut cut = groups_report();
        cut.groups.groups.truncate(1);
        cut.groups.total = 10_000;
        cut.groups.truncated = true;
        assert!(
            groups(&cut).ends_with(
                "(first 1 of 10000 groups: the reply is bounded; --group G shows one)\n"
            ),
            "{}",
            groups(&cut)
        );
        cut.groups.groups.clear();
        cut.groups.local.clear();
        let text = groups(&cut);
        assert!(
            text.contains("no local groups\nno group has members\n"),
            "{text}"
        );
    }

    #[test]
    fn one_group_with_its_trees() {
        let mut report = groups_report();
        let g = &mut report.groups;
        g.asked_group = Some(7);
        g.groups.truncate(1);
        g.groups[0].trees = vec![
            SourceTree {
                source: 1,
                edges: vec![edge(1, 2, 0), edge(2, 4, 3)],
            },
            SourceTree {
                source: 4,
                edges: vec![edge(4, 2, 3), edge(2, 1, 0)],
            },
            SourceTree {
                source: 5,
                edges: vec![],
            },
        ];
        let text = groups(&report);
        assert!(!text.contains("LOCAL GROUP"), "{text}");
        assert!(
            text.ends_with(
                "multicast trees of group 7 by source\n\
                 SOURCE  TREE (FROM>TO/LINK)\n\
                 1 a     1>2/0, 2>4/3\n\
                 4 d     4>2/3, 2>1/0\n\
                 5       (no other member reachable)\n"
            ),
            "{text}"
        );
        report.groups.groups.clear();
        assert!(groups(&report).ends_with("group 7: no member node known\n"));
    }
}
