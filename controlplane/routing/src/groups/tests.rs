//! Group states wired together by an in-test network over the reference topology, driven in
//! virtual time (1 ms per message, jumping from event to event): joins, leaves, withdrawals,
//! losses, partitions, restarts and aging.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::*;

fn n(i: u16) -> NodeId {
    NodeId::new(i).unwrap()
}

fn l(i: u16) -> LinkId {
    LinkId::new(i).unwrap()
}

fn g(i: u32) -> GroupId {
    GroupId(i)
}

fn reference() -> Config {
    let text = include_str!("../../../../config/reference.toml");
    Config::from_toml_str(text, "reference.toml").unwrap()
}

const DELAY: Duration = Duration::from_millis(1);

struct Net {
    config: Config,
    params: GroupParams,
    now: Instant,
    nodes: BTreeMap<NodeId, GroupState>,
    /// Nodes whose data plane is down too: their links are down at both ends.
    down: BTreeSet<NodeId>,
    cut: BTreeSet<LinkId>,
    /// (deliver at, to, link, envelope), in delivery order (the delay is constant).
    in_flight: VecDeque<(Instant, NodeId, LinkId, Vec<u8>)>,
    /// Drop every k-th envelope sent (0: none).
    drop_every: u64,
    sent: u64,
    /// What each node was last told its local set is.
    local: BTreeMap<NodeId, BTreeSet<GroupId>>,
}

impl Net {
    fn new() -> Net {
        let config = reference();
        let params = GroupParams::from_timers(config.timers());
        let mut net = Net {
            config,
            params,
            now: Instant::from_millis(1_000),
            nodes: BTreeMap::new(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            in_flight: VecDeque::new(),
            drop_every: 0,
            sent: 0,
            local: BTreeMap::new(),
        };
        for i in 1..=12 {
            net.start(n(i), 100);
        }
        net
    }

    /// Starts (or restarts, keeping its links up) the control plane of `id`.
    fn start(&mut self, id: NodeId, incarnation: u32) {
        let s = GroupState::new(
            &self.config,
            id,
            Incarnation(incarnation),
            self.params,
            self.now,
        )
        .unwrap();
        self.nodes.insert(id, s);
        self.down.remove(&id);
        self.local.insert(id, BTreeSet::new());
        self.refresh_links();
        self.pump();
    }

    /// The node and its links go down.
    fn kill(&mut self, id: NodeId) {
        self.nodes.remove(&id);
        self.local.remove(&id);
        self.down.insert(id);
        self.refresh_links();
    }

    /// The node stops without its neighbours noticing (its links stay up): only aging helps.
    fn vanish(&mut self, id: NodeId) {
        self.nodes.remove(&id);
        self.local.remove(&id);
    }

    fn link_up(&self, link: &weft_shared::config::Link) -> bool {
        !self.cut.contains(&link.id()) && link.nodes().iter().all(|x| !self.down.contains(x))
    }

    /// Tells every node which of its links are up (as the daemon does after link state).
    fn refresh_links(&mut self) {
        let now = self.now;
        let up: Vec<(NodeId, LinkId)> = self
            .config
            .links()
            .iter()
            .filter(|link| self.link_up(link))
            .flat_map(|link| link.nodes().map(|end| (end, link.id())))
            .collect();
        for (id, s) in self.nodes.iter_mut() {
            s.set_links_up(now, up.iter().filter(|(e, _)| e == id).map(|(_, l)| *l));
        }
        self.pump();
    }

    fn set_local(&mut self, id: NodeId, groups: &[u32]) {
        let set: BTreeSet<GroupId> = groups.iter().copied().map(GroupId).collect();
        let now = self.now;
        self.nodes
            .get_mut(&id)
            .unwrap()
            .set_local(now, set.iter().copied())
            .unwrap();
        self.local.insert(id, set);
        self.pump();
    }

    /// Moves every node's outgoing envelopes onto the wire.
    fn pump(&mut self) {
        for (id, s) in self.nodes.iter_mut() {
            while let Some(out) = s.pop_outgoing() {
                self.sent += 1;
                let link = self.config.link(out.link).unwrap();
                let up = !self.cut.contains(&link.id())
                    && link.nodes().iter().all(|x| !self.down.contains(x));
                let lost = self.drop_every > 0 && self.sent % self.drop_every == 0;
                if up && !lost {
                    let to = link.neighbour_of(*id).unwrap();
                    self.in_flight
                        .push_back((self.now + DELAY, to, out.link, out.envelope));
                }
            }
        }
    }

    /// Runs for `d` of virtual time, from event to event.
    fn run(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let next_message = self.in_flight.front().map(|m| m.0);
            let next_timer = self.nodes.values().map(|s| s.next_deadline()).min();
            let next = [next_message, next_timer]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(Instant::FAR_FUTURE);
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            while self.in_flight.front().is_some_and(|m| m.0 <= now) {
                let Some((_, to, link, envelope)) = self.in_flight.pop_front() else {
                    break;
                };
                if let Some(s) = self.nodes.get_mut(&to) {
                    s.on_control(now, link, &envelope).unwrap();
                }
            }
            for s in self.nodes.values_mut() {
                if s.next_deadline() <= now {
                    s.on_timer(now);
                }
            }
            self.pump();
        }
    }

    fn ms(&mut self, ms: u64) {
        self.run(Duration::from_millis(ms));
    }

    /// The membership the local sets imply.
    fn expected(&self) -> BTreeMap<GroupId, Vec<NodeId>> {
        let mut m: BTreeMap<GroupId, Vec<NodeId>> = BTreeMap::new();
        for (id, set) in &self.local {
            for g in set {
                m.entry(*g).or_default().push(*id);
            }
        }
        m
    }

    fn membership(&self, id: NodeId) -> BTreeMap<GroupId, Vec<NodeId>> {
        self.nodes[&id]
            .groups()
            .map(|(g, m)| (g, m.to_vec()))
            .collect()
    }

    /// Every running node knows exactly the membership the local sets imply, and all hold
    /// the same versions of the same buckets.
    fn assert_converged(&self) {
        let expected = self.expected();
        let versions = |s: &GroupState| -> Vec<((NodeId, Bucket), UpdateId)> {
            s.database().map(|(k, b)| (k, b.id)).collect()
        };
        let first = self.nodes.values().next().unwrap();
        for (id, s) in &self.nodes {
            assert_eq!(self.membership(*id), expected, "membership at {id}");
            assert_eq!(versions(s), versions(first), "database at {id}");
        }
    }

    fn total(&self, f: impl Fn(GroupStats) -> u64) -> u64 {
        self.nodes.values().map(|s| f(s.stats())).sum()
    }
}

/// A deterministic local set for node `i`: 40 groups of 1..=300.
fn some_groups(i: u16) -> Vec<u32> {
    (0..40u32)
        .map(|k| 1 + (u32::from(i) * 7_919 + k * 104_729) % 300)
        .collect()
}

fn converged_net() -> Net {
    let mut net = Net::new();
    for i in 1..=12 {
        net.set_local(n(i), &some_groups(i));
    }
    net.ms(500);
    net.assert_converged();
    net
}

#[test]
fn all_nodes_converge_to_the_same_membership_and_go_quiet() {
    let mut net = converged_net();
    let s6 = &net.nodes[&n(6)];
    assert!(s6.group_count() > 200);
    assert_eq!(
        s6.members(g(1)).collect::<Vec<_>>(),
        net.expected().get(&g(1)).cloned().unwrap_or_default()
    );
    assert_eq!(
        s6.local_groups().collect::<BTreeSet<_>>(),
        net.local[&n(6)],
        "local_groups"
    );
    // Quiet once converged: nothing is sent until the first refresh.
    let sent = net.sent;
    net.ms(20_000);
    assert_eq!(net.sent, sent, "no chatter once converged");
    // Refreshes change versions, not membership.
    for s in net.nodes.values_mut() {
        s.fib_published();
    }
    net.ms(30_000);
    assert!(net.sent > sent);
    net.assert_converged();
    assert!(net.nodes.values().all(|s| !s.changed_since_fib()));
}

#[test]
fn joins_and_leaves_propagate_within_milliseconds() {
    let mut net = converged_net();
    for s in net.nodes.values_mut() {
        s.fib_published();
    }
    let mut five = some_groups(5);
    let left = five.remove(0);
    five.push(1_000_001);
    net.set_local(n(5), &five);
    assert!(net.nodes[&n(5)].changed_since_fib(), "its own change");
    net.ms(30); // the overlay's diameter is a handful of 1 ms hops
    net.assert_converged();
    for s in net.nodes.values() {
        assert!(s.changed_since_fib());
        assert_eq!(s.members(g(1_000_001)).collect::<Vec<_>>(), vec![n(5)]);
        assert!(!s.members(g(left)).any(|x| x == n(5)));
    }
    // Two buckets changed at most: two adverts originated, not the whole set.
    let originated = net.nodes[&n(5)].stats().originated;
    net.set_local(n(5), &five);
    assert_eq!(
        net.nodes[&n(5)].stats().originated,
        originated,
        "no change, nothing sent"
    );
}

#[test]
fn an_emptied_bucket_is_withdrawn_at_once_and_ages_out() {
    let mut net = converged_net();
    net.set_local(n(3), &[]);
    net.ms(30);
    net.assert_converged();
    let buckets = |s: &GroupState| {
        s.database()
            .filter(|((o, _), _)| *o == n(3))
            .map(|(_, b)| b.groups.len())
            .collect::<Vec<_>>()
    };
    let withdrawn = buckets(&net.nodes[&n(9)]);
    assert!(!withdrawn.is_empty() && withdrawn.iter().all(|&c| c == 0));
    // Withdrawals are not refreshed: they are gone after max_age everywhere.
    let max_age = net.params.max_age;
    net.run(max_age + Duration::from_secs(1));
    for s in net.nodes.values() {
        assert!(buckets(s).is_empty());
    }
    net.assert_converged();
}

#[test]
fn lost_envelopes_are_retransmitted() {
    let mut net = Net::new();
    net.drop_every = 3;
    for i in 1..=12 {
        net.set_local(n(i), &some_groups(i));
    }
    net.ms(5_000);
    net.assert_converged();
    assert!(net.total(|s| s.retransmissions) > 0);
    // Changes still get through.
    net.set_local(n(12), &[7, 8, 9]);
    net.set_local(n(1), &[9, 10]);
    net.ms(5_000);
    net.assert_converged();
}

#[test]
fn a_partition_heals_with_a_full_exchange() {
    let mut net = converged_net();
    // Cut Boston (1) off: links 0 (1-2) and 19 (1-6).
    net.cut.extend([l(0), l(19)]);
    net.refresh_links();
    net.set_local(n(1), &[5, 6, 7]);
    net.set_local(n(8), &[5, 6, 8, 400]);
    net.ms(100);
    assert!(
        !net.membership(n(2))
            .get(&g(7))
            .is_some_and(|m| m.contains(&n(1)))
    );
    assert!(!net.membership(n(1)).contains_key(&g(400)));
    net.cut.clear();
    net.refresh_links();
    net.ms(100);
    net.assert_converged();
    assert!(net.total(|s| s.full_exchanges) > 0);
}

#[test]
fn a_restarted_node_replaces_its_old_groups_at_once() {
    let mut net = converged_net();
    net.kill(n(4));
    net.ms(50);
    // The old groups of node 4 stay (nothing says they went) until it is back...
    assert!(net.nodes[&n(1)].groups().any(|(_, m)| m.contains(&n(4))));
    net.start(n(4), 200);
    net.set_local(n(4), &[77, 78]);
    net.ms(50);
    // ...and its new incarnation drops them everywhere, long before max_age.
    net.assert_converged();
    assert!(net.total(|s| s.superseded) > 0);
    // A control-plane-only restart (the links stay up): the neighbours see a new incarnation
    // and send it their whole database.
    net.start(n(7), 300);
    net.set_local(n(7), &[1, 2, 3]);
    net.ms(50);
    net.assert_converged();
}

#[test]
fn a_restart_with_an_older_clock_jumps_past_the_old_incarnation() {
    let mut net = converged_net();
    net.start(n(4), 300);
    net.set_local(n(4), &[50, 51, 52, 53]);
    net.ms(100);
    net.assert_converged();
    // Restart again with a clock that went back, and other groups.
    net.start(n(4), 250);
    net.set_local(n(4), &[60, 61]);
    net.ms(500);
    assert_eq!(net.nodes[&n(4)].incarnation(), Incarnation(300));
    net.assert_converged();
    assert!(net.nodes[&n(1)].members(g(50)).all(|x| x != n(4)));
}

#[test]
fn a_silent_node_ages_out_and_the_others_stay() {
    let mut net = converged_net();
    net.vanish(n(7));
    let max_age = net.params.max_age;
    net.run(max_age + Duration::from_secs(1));
    net.assert_converged();
    assert!(
        net.nodes
            .values()
            .all(|s| s.groups().all(|(_, m)| !m.contains(&n(7))))
    );
    assert!(net.total(|s| s.aged_out) > 0);
    // Refreshes keep everyone else alive.
    net.run(max_age * 2);
    net.assert_converged();
}

#[test]
fn malformed_and_foreign_envelopes_are_refused_and_counted() {
    let mut net = converged_net();
    let now = net.now;
    let before: Vec<_> = net.nodes[&n(1)]
        .database()
        .map(|(k, b)| (k, b.clone()))
        .collect();
    let s1 = net.nodes.get_mut(&n(1)).unwrap();
    let id = |origin: u16| UpdateId {
        origin: n(origin),
        incarnation: Incarnation(999),
        seq: 1,
    };
    let advert = |origin| {
        BucketAdvert {
            id: id(origin),
            bucket: Bucket::of(g(5)),
            groups: vec![g(5)],
        }
        .encode()
    };
    assert!(s1.on_control(now, l(0), &[1, 2, 3]).is_err(), "garbage");
    assert!(
        s1.on_control(now, l(3), &advert(2)).is_err(),
        "not node 1's link"
    );
    assert!(
        s1.on_control(now, l(0), &advert(77)).is_err(),
        "origin not in the config"
    );
    let link_state = crate::link_state::encode_ack(id(2));
    assert!(
        s1.on_control(now, l(0), &link_state).is_err(),
        "link-state kind"
    );
    let mut truncated = advert(2);
    truncated.pop();
    assert!(s1.on_control(now, l(0), &truncated).is_err(), "truncated");
    assert_eq!(s1.stats().refused, 5);
    assert!(s1.pop_outgoing().is_none(), "nothing answered");
    let after: Vec<_> = s1.database().map(|(k, b)| (k, b.clone())).collect();
    assert_eq!(after, before);
}

#[test]
fn an_advert_of_ours_from_the_future_is_overtaken() {
    let mut net = converged_net();
    let s2 = &net.nodes[&n(2)];
    let inc = s2.incarnation();
    let bucket = Bucket::of(g(9_999));
    // A forged (or earlier run's) advert of node 2 with a version far ahead.
    let forged = BucketAdvert {
        id: UpdateId {
            origin: n(2),
            incarnation: inc,
            seq: 1_000,
        },
        bucket,
        groups: vec![g(9_999)],
    };
    let now = net.now;
    // Node 1 takes it (it is newer than what it has) and floods it...
    net.nodes
        .get_mut(&n(1))
        .unwrap()
        .on_control(now, l(0), &forged.encode())
        .unwrap();
    net.pump();
    net.ms(100);
    // ...node 2 hears it and re-originates past it with its real contents.
    let s2 = &net.nodes[&n(2)];
    assert!(s2.database().any(|((o, b), s)| o == n(2)
        && b == bucket
        && s.id.seq > 1_000
        && !s.groups.contains(&g(9_999))));
    net.assert_converged();
    assert!(net.nodes[&n(6)].members(g(9_999)).next().is_none());
    // Heard directly, once, the node moves past it at once.
    let forged = BucketAdvert {
        id: UpdateId {
            seq: 5_000,
            ..forged.id
        },
        ..forged
    };
    let now = net.now;
    let s2 = net.nodes.get_mut(&n(2)).unwrap();
    s2.on_control(now, l(0), &forged.encode()).unwrap();
    let own = s2.database().find(|(k, _)| *k == (n(2), bucket)).unwrap().1;
    assert_eq!(own.id.seq, 5_001);
    assert!(!own.groups.contains(&g(9_999)));
}

#[test]
fn local_sets_are_checked() {
    let mut net = Net::new();
    let now = net.now;
    let s = net.nodes.get_mut(&n(1)).unwrap();
    assert_eq!(s.set_local(now, [g(3), g(0)]), Err(GroupError::ZeroGroup));
    let bucket = Bucket::of(g(1));
    let full: Vec<GroupId> = (1..)
        .map(GroupId)
        .filter(|x| Bucket::of(*x) == bucket)
        .take(MAX_BUCKET_GROUPS + 1)
        .collect();
    assert_eq!(
        s.set_local(now, full.iter().copied()),
        Err(GroupError::BucketFull {
            bucket: bucket.get(),
            groups: MAX_BUCKET_GROUPS + 1
        })
    );
    assert_eq!(s.group_count(), 0, "a refused set changes nothing");
    s.set_local(now, full[..MAX_BUCKET_GROUPS].iter().copied())
        .unwrap();
    assert_eq!(s.group_count(), MAX_BUCKET_GROUPS);
    // The full bucket floods like any other.
    net.local
        .insert(n(1), full[..MAX_BUCKET_GROUPS].iter().copied().collect());
    net.pump();
    net.ms(100);
    net.assert_converged();
}

#[test]
fn new_refuses_what_the_wire_cannot_carry() {
    let config = reference();
    let params = GroupParams::from_timers(config.timers());
    let new = |node, inc| GroupState::new(&config, node, Incarnation(inc), params, Instant::ZERO);
    assert_eq!(new(n(40), 1).err(), Some(GroupError::UnknownNode(n(40))));
    assert_eq!(new(n(1), 0).err(), Some(GroupError::ZeroIncarnation));
    let s = new(n(1), 1).unwrap();
    assert_eq!(
        s.database()
            .map(|(k, b)| (k, b.groups.len()))
            .collect::<Vec<_>>(),
        vec![((n(1), Bucket::MIN), 0)],
        "the incarnation's announcement"
    );
}

#[test]
fn membership_is_the_same_whatever_the_message_order() {
    // Two runs with different loss patterns end with identical membership everywhere.
    let mut a = Net::new();
    let mut b = Net::new();
    b.drop_every = 2;
    for net in [&mut a, &mut b] {
        for i in 1..=12 {
            net.set_local(n(i), &some_groups(i));
        }
    }
    a.ms(500);
    b.ms(10_000);
    a.assert_converged();
    b.assert_converged();
    for i in 1..=12 {
        assert_eq!(a.membership(n(i)), b.membership(n(i)));
    }
}

/// The scale figure of `perf/RESULTS.md`: 10,000 groups joined at one instant on the reference
/// topology (12 nodes, 22 links, 1 ms per hop in this harness), each group with members on 3
/// to 5 nodes; prints the virtual time until every node holds the whole membership, and the
/// envelopes it took.
#[test]
fn ten_thousand_groups_converge() {
    let mut net = Net::new();
    net.ms(100);
    let sent_before = net.sent;
    let mut sets: BTreeMap<u16, Vec<u32>> = BTreeMap::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for group in 1..=10_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let members = 3 + (x % 3) as u16;
        let first = (x >> 8) % 12;
        for k in 0..members {
            let node = ((first + u64::from(k) * 5) % 12) as u16 + 1;
            sets.entry(node).or_default().push(group);
        }
    }
    let start = net.now;
    for (&node, groups) in &sets {
        net.set_local(n(node), groups);
    }
    let expected = net.expected();
    let mut waited = 0;
    while net.nodes.keys().any(|&id| net.membership(id) != expected) {
        net.ms(1);
        waited += 1;
        assert!(waited < 5_000, "not converged after 5 s");
    }
    let took = net.now - start;
    println!(
        "10,000 groups (3-5 member nodes each; {} local groups per node on average): every \
         node holds the whole membership after {took:?} of virtual time (1 ms per hop), \
         {} envelopes",
        sets.values().map(Vec::len).sum::<usize>() / 12,
        net.sent - sent_before
    );
    net.ms(2_000);
    net.assert_converged();
}
