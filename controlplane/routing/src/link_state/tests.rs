//! Routers wired together by a tiny in-test network: 1 ms per message, links cut and restored,
//! messages lost on purpose, nodes restarted. Virtual time only.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn n(i: u16) -> NodeId {
    NodeId::new(i).unwrap()
}

fn l(i: u16) -> LinkId {
    LinkId::new(i).unwrap()
}

/// A config of `nodes` nodes and `links` (id, a, b, cost_us).
fn config(nodes: u16, links: &[(u16, u16, u16, u32)]) -> Config {
    let mut t = String::from("schema = 1\n[overlay]\nname = \"t\"\n");
    for i in 1..=nodes {
        t += &format!(
            "[[node]]\nid = {i}\nname = \"n{i}\"\nsession_socket = \"/tmp/t/{i}.sock\"\nctl_socket = \"/tmp/t/{i}.ctl\"\n[[node.interface]]\nisp = \"a\"\naddr = \"127.0.0.{i}:7000\"\n"
        );
    }
    for (id, a, b, cost) in links {
        t += &format!("[[link]]\nid = {id}\nnodes = [{a}, {b}]\ncost = {cost}\n");
    }
    Config::from_toml_str(&t, "t.toml").unwrap()
}

/// The diamond 1-2-4 (links 0, 2 at 5 ms) and 1-3-4 (links 1, 3 at 6 ms).
fn diamond() -> Config {
    config(
        4,
        &[
            (0, 1, 2, 5000),
            (1, 1, 3, 6000),
            (2, 2, 4, 5000),
            (3, 3, 4, 6000),
        ],
    )
}

/// Long enough for a fresh overlay to converge: synchronisation (50 ms without news), the
/// first FIBs, then the links each node offers once its FIB is in.
const CONVERGE_MS: u64 = 200;

struct Net {
    config: Config,
    now: Instant,
    routers: BTreeMap<NodeId, Router>,
    down_nodes: BTreeSet<NodeId>,
    cut: BTreeSet<LinkId>,
    /// (deliver at, to, link, envelope)
    in_flight: Vec<(Instant, NodeId, LinkId, Vec<u8>)>,
    /// Drop every k-th message (0: none).
    drop_every: u64,
    sent: u64,
    published: BTreeMap<NodeId, u64>,
}

impl Net {
    fn new(config: Config) -> Net {
        let mut net = Net {
            config,
            now: Instant::from_millis(1_000),
            routers: BTreeMap::new(),
            down_nodes: BTreeSet::new(),
            cut: BTreeSet::new(),
            in_flight: Vec::new(),
            drop_every: 0,
            sent: 0,
            published: BTreeMap::new(),
        };
        let ids: Vec<NodeId> = net.config.nodes().iter().map(|x| x.id()).collect();
        for id in ids {
            net.start(id, 100);
        }
        net
    }

    fn params(&self) -> RouterParams {
        RouterParams::from_timers(self.config.timers())
    }

    fn start(&mut self, id: NodeId, incarnation: u32) {
        self.start_with(id, incarnation, true);
    }

    /// Starts a router; `fresh_dataplane: false` is a control-plane restart over a data plane
    /// that still forwards with an older FIB.
    fn start_with(&mut self, id: NodeId, incarnation: u32, fresh_dataplane: bool) {
        let params = RouterParams {
            hold_links_until_fib: fresh_dataplane,
            ..self.params()
        };
        let r = Router::new(&self.config, id, Incarnation(incarnation), params, self.now).unwrap();
        self.routers.insert(id, r);
        self.down_nodes.remove(&id);
        self.refresh_links();
    }

    fn kill(&mut self, id: NodeId) {
        self.routers.remove(&id);
        self.down_nodes.insert(id);
        self.in_flight.retain(|m| m.1 != id);
        self.refresh_links();
    }

    fn link_up(&self, link: &weft_shared::config::Link) -> bool {
        !self.cut.contains(&link.id()) && link.nodes().iter().all(|x| !self.down_nodes.contains(x))
    }

    /// Tells every router the state of its links (as its data plane would).
    fn refresh_links(&mut self) {
        let reports: Vec<(NodeId, LinkId, bool)> = self
            .config
            .links()
            .iter()
            .flat_map(|link| {
                let up = self.link_up(link);
                link.nodes().map(|end| (end, link.id(), up))
            })
            .collect();
        // Like the daemon: one batch of changed links per node.
        let mut batches: BTreeMap<NodeId, Vec<(LinkId, LinkReport)>> = BTreeMap::new();
        for (node, link, up) in reports {
            if let Some(r) = self.routers.get(&node) {
                if r.measured(link).map(|m| m.up) != Some(up) {
                    let report = LinkReport {
                        up,
                        latency_us: if up { 30 } else { 0 },
                        loss_ppm: 0,
                    };
                    batches.entry(node).or_default().push((link, report));
                }
            }
        }
        for (node, batch) in batches {
            if let Some(r) = self.routers.get_mut(&node) {
                r.on_link_reports(self.now, &batch);
            }
        }
    }

    fn step(&mut self) {
        self.now = self.now + Duration::from_millis(1);
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|m| m.0 <= now);
        self.in_flight = later;
        for (_, to, link, envelope) in due {
            if let Some(r) = self.routers.get_mut(&to) {
                r.on_control(now, link, &envelope).unwrap();
            }
        }
        for (id, r) in self.routers.iter_mut() {
            if r.next_deadline() <= now {
                r.on_timer(now);
            }
            while let Some(out) = r.pop_outgoing() {
                self.sent += 1;
                let link = self.config.link(out.link).unwrap();
                let up = !self.cut.contains(&link.id())
                    && link.nodes().iter().all(|x| !self.down_nodes.contains(x));
                let lost = self.drop_every > 0 && self.sent % self.drop_every == 0;
                if up && !lost {
                    let to = link.neighbour_of(*id).unwrap();
                    self.in_flight.push((
                        now + Duration::from_millis(1),
                        to,
                        out.link,
                        out.envelope,
                    ));
                }
            }
            if r.fib_due(now) {
                r.fib_published(now);
                *self.published.entry(*id).or_default() += 1;
            }
        }
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
        }
    }

    fn first_hop(&mut self, from: u16, to: u16) -> Option<LinkId> {
        self.routers
            .get_mut(&n(from))
            .unwrap()
            .routes()
            .to(n(to))
            .and_then(|r| r.first_hop)
    }

    fn path(&mut self, from: u16, to: u16) -> Vec<u16> {
        self.routers
            .get_mut(&n(from))
            .unwrap()
            .routes()
            .path_to(n(to))
            .iter()
            .map(|x| x.get())
            .collect()
    }
}

#[test]
fn diamond_converges_to_the_cheaper_side() {
    let mut net = Net::new(diamond());
    net.run(CONVERGE_MS);
    assert_eq!(net.path(1, 4), vec![1, 2, 4]);
    assert_eq!(net.path(4, 1), vec![4, 2, 1]);
    assert_eq!(net.path(3, 2), vec![3, 1, 2]); // 6+5 = 11 ms both ways round; link 1 < link 3
    let r1 = net.routers.get_mut(&n(1)).unwrap();
    assert_eq!(r1.routes().to(n(4)).unwrap().cost, 10_000);
    assert_eq!(r1.database().count(), 4);
    net.run(100);
    assert!(net.routers[&n(1)].synced());
    assert!(
        net.published[&n(1)] <= 2,
        "one FIB once synchronised, one when all links are offered"
    );
    // Quiet after convergence: nothing but refreshes for the rest of the refresh interval.
    let sent = net.sent;
    net.run(1_000);
    assert_eq!(net.sent, sent, "no chatter once converged");
}

#[test]
fn the_graph_is_the_one_routes_use() {
    let mut net = Net::new(diamond());
    net.run(CONVERGE_MS);
    net.kill(n(3));
    net.run(10);
    let r1 = net.routers.get_mut(&n(1)).unwrap();
    let graph = r1.graph();
    let from_graph: Vec<_> = graph.shortest_paths(n(1)).iter().collect();
    let routes: Vec<_> = r1.routes().iter().collect();
    assert_eq!(from_graph, routes);
    // Only the two-way-checked links: node 3's are gone.
    let other = graph.shortest_paths(n(4));
    assert_eq!(other.parent(n(2)), Some((n(4), l(2))));
    assert_eq!(other.to(n(3)), None);
}

#[test]
fn a_dead_node_is_routed_around_and_welcomed_back() {
    let mut net = Net::new(diamond());
    net.run(CONVERGE_MS);
    assert_eq!(net.first_hop(1, 4), Some(l(0)));
    net.kill(n(2));
    net.run(10);
    assert_eq!(net.path(1, 4), vec![1, 3, 4]);
    assert_eq!(net.path(4, 1), vec![4, 3, 1]);
    assert_eq!(net.routers.get_mut(&n(1)).unwrap().routes().to(n(2)), None);
    // The node comes back with a new control plane (higher incarnation). Until its first FIB
    // is published it offers no transit.
    let published = net.published[&n(2)];
    net.start(n(2), 200);
    net.run(20);
    assert_eq!(
        net.published[&n(2)],
        published,
        "no FIB yet: still synchronising"
    );
    assert_eq!(
        net.path(1, 4),
        vec![1, 3, 4],
        "not through a node without a FIB"
    );
    net.run(80);
    assert!(net.published[&n(2)] > published);
    assert_eq!(net.path(1, 4), vec![1, 2, 4]);
    let r2 = net.routers.get_mut(&n(2)).unwrap();
    assert!(r2.synced());
    assert_eq!(r2.database().count(), 4, "full exchange gave it everything");
}

#[test]
fn a_restart_with_an_older_clock_jumps_past_the_old_incarnation() {
    let mut net = Net::new(diamond());
    net.start(n(2), 300); // restart with a higher incarnation
    net.run(CONVERGE_MS);
    // Now restart again with a clock that went back.
    net.start(n(2), 250);
    net.run(100);
    let inc = net.routers[&n(2)].incarnation();
    assert_eq!(
        inc,
        Incarnation(300),
        "adopted the newer incarnation it heard"
    );
    for other in [1, 3, 4] {
        let stored = net.routers[&n(other)]
            .database()
            .find(|(o, _)| *o == n(2))
            .map(|(_, s)| s.advert.id)
            .unwrap();
        assert_eq!(
            stored,
            net.routers[&n(2)]
                .database()
                .find(|(o, _)| *o == n(2))
                .unwrap()
                .1
                .advert
                .id
        );
    }
}

#[test]
fn a_restarted_control_plane_waits_for_sync_before_its_first_fib() {
    let mut net = Net::new(diamond());
    net.run(200);
    let before = net.published[&n(1)];
    net.start_with(n(1), 500, false); // control plane restart: links stay up
    let r1 = net.routers.get_mut(&n(1)).unwrap();
    assert!(!r1.fib_due(net.now), "no FIB from an empty database");
    net.run(3);
    let r1 = net.routers.get_mut(&n(1)).unwrap();
    assert!(!r1.synced(), "settling");
    // Meanwhile the others keep using node 1 (it still forwards with its old FIB): no route
    // elsewhere changes at any moment of the restart.
    for _ in 0..100 {
        assert_eq!(net.path(3, 2), vec![3, 1, 2]);
        assert_eq!(net.path(2, 3), vec![2, 1, 3]);
        net.step();
    }
    assert_eq!(net.published[&n(1)], before + 1);
    assert_eq!(net.path(1, 4), vec![1, 2, 4]);
}

#[test]
fn lost_messages_are_retransmitted() {
    let mut net = Net::new(diamond());
    net.drop_every = 3;
    net.run(2_000);
    assert_eq!(net.path(1, 4), vec![1, 2, 4]);
    assert_eq!(net.path(3, 2), vec![3, 1, 2]);
    let total: u64 = net
        .routers
        .values()
        .map(|r| r.stats().retransmissions)
        .sum();
    assert!(total > 0);
    for r in net.routers.values() {
        assert_eq!(r.database().count(), 4);
    }
}

#[test]
fn a_cut_link_is_removed_only_by_the_two_way_check() {
    let mut net = Net::new(diamond());
    net.run(CONVERGE_MS);
    net.cut.insert(l(2)); // 2-4
    net.refresh_links();
    net.run(10);
    assert_eq!(net.path(1, 4), vec![1, 3, 4]);
    assert_eq!(net.path(2, 4), vec![2, 1, 3, 4]);
    net.cut.clear();
    net.refresh_links();
    net.run(10);
    assert_eq!(net.path(2, 4), vec![2, 4]);
}

#[test]
fn adverts_age_out_when_not_refreshed() {
    let mut net = Net::new(diamond());
    net.run(CONVERGE_MS);
    // Node 4 vanishes without its neighbours noticing a link change (its links stay "up" in
    // their data planes): only aging removes it.
    net.routers.remove(&n(4));
    let max_age = net.params().max_age;
    net.run(max_age.as_millis() as u64 + 100);
    assert_eq!(net.routers[&n(1)].database().count(), 3);
    assert!(net.routers[&n(1)].stats().aged_out >= 1);
    assert_eq!(net.routers.get_mut(&n(1)).unwrap().routes().to(n(4)), None);
}

#[test]
fn metric_noise_does_not_reoriginate_but_loss_moves_routes() {
    let mut net = Net::new(diamond());
    net.run(CONVERGE_MS);
    let originated = net.routers[&n(2)].stats().originated;
    for lat in [10, 900, 40, 500] {
        let report = LinkReport {
            up: true,
            latency_us: lat,
            loss_ppm: 100,
        };
        let now = net.now;
        net.routers
            .get_mut(&n(2))
            .unwrap()
            .on_link_report(now, l(2), report);
        net.run(5);
    }
    assert_eq!(net.routers[&n(2)].stats().originated, originated);
    // 20 % loss on 2-4 makes 1-3-4 cheaper.
    let now = net.now;
    let lossy = LinkReport {
        up: true,
        latency_us: 30,
        loss_ppm: 200_000,
    };
    net.routers
        .get_mut(&n(2))
        .unwrap()
        .on_link_report(now, l(2), lossy);
    net.run(10);
    assert_eq!(net.path(1, 4), vec![1, 3, 4]);
    assert!(net.routers[&n(1)].link_cost(l(2)).unwrap() > 5_000);
}

#[test]
fn fib_publishes_are_throttled() {
    let mut cfg_text_links = Vec::new();
    for i in 0..4u16 {
        cfg_text_links.push((i, i + 1, i + 2, 1000));
    }
    let mut net = Net::new(config(5, &cfg_text_links));
    net.run(CONVERGE_MS);
    let before = net.published[&n(1)];
    // Flap link 3 (4-5) every millisecond for 20 ms: at most 20 / 5 + 1 publishes.
    for k in 0..20 {
        if k % 2 == 0 {
            net.cut.insert(l(3));
        } else {
            net.cut.remove(&l(3));
        }
        net.refresh_links();
        net.step();
    }
    net.run(20);
    let publishes = net.published[&n(1)] - before;
    assert!((1..=5).contains(&publishes), "{publishes}");
}

#[test]
fn malformed_and_foreign_messages_are_refused_and_counted() {
    let mut net = Net::new(diamond());
    net.run(CONVERGE_MS);
    let now = net.now;
    let r1 = net.routers.get_mut(&n(1)).unwrap();
    // Garbage.
    assert!(r1.on_control(now, l(0), &[1, 2, 3]).is_err());
    // A link node 1 does not have.
    let ack = encode_ack(UpdateId {
        origin: n(2),
        incarnation: Incarnation(1),
        seq: 1,
    });
    assert!(r1.on_control(now, l(3), &ack).is_err());
    // An advert claiming a link that is not the origin's: node 3 claims link 0 (1-2).
    let forged = Advert {
        id: UpdateId {
            origin: n(3),
            incarnation: Incarnation(999),
            seq: 1,
        },
        links: vec![AdvertLink {
            link: l(0),
            report: LinkReport {
                up: true,
                latency_us: 1,
                loss_ppm: 0,
            },
        }],
    };
    assert!(r1.on_control(now, l(1), &forged.encode()).is_err());
    // An origin outside the config.
    let stranger = Advert {
        id: UpdateId {
            origin: n(77),
            incarnation: Incarnation(1),
            seq: 1,
        },
        links: vec![],
    };
    assert!(r1.on_control(now, l(0), &stranger.encode()).is_err());
    assert_eq!(r1.stats().refused, 4);
    assert_eq!(r1.database().count(), 4);
    net.run(10);
    assert_eq!(net.path(1, 4), vec![1, 2, 4]);
}

#[test]
fn routes_are_the_same_whatever_the_message_order() {
    // Two runs with different loss patterns converge to identical routes everywhere.
    let mut a = Net::new(diamond());
    a.run(500);
    let mut b = Net::new(diamond());
    b.drop_every = 2;
    b.run(3_000);
    for from in 1..=4 {
        for to in 1..=4 {
            assert_eq!(a.path(from, to), b.path(from, to), "{from}->{to}");
        }
    }
}
