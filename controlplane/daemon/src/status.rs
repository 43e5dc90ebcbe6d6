//! The control plane's answers to `weftctl` (`weft_shared::ctl`): its status, the link-state
//! database and the routes, built from the daemon's state at the time of the request.

use weft_shared::ctl::{AdvertisedLink, CtlReply, CtlRequest, NodeRow, RouteRow, StatusReply};
use weft_shared::ids::NodeId;

use crate::daemon::Daemon;

/// Answers one request.
pub fn answer(daemon: &mut Daemon, request: &CtlRequest) -> CtlReply {
    match request {
        CtlRequest::Status => CtlReply::Status(status(daemon)),
        CtlRequest::Nodes => CtlReply::Nodes(nodes(daemon)),
        CtlRequest::Routes => CtlReply::Routes(routes(daemon)),
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
