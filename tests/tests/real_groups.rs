//! Multicast and anycast on a real 6-node overlay (every node a `weft-dataplane` and a
//! `weft-controld`, two ISPs each, on loopback):
//!
//! ```text
//!     1 ──10── 2 ──10── 3        links carry their cost in ms; 1-4 and 2-5 are chords
//!     │ ╲25     ╲25     │10
//!    10   ╲       ╲     │
//!     │     ╲       ╲   │
//!     6 ──10── 5 ──10── 4
//! ```
//!
//! - one source on node 1, member clients on nodes 2–6 (two on node 4): every member client
//!   gets every message exactly once, and the nodes together send exactly one copy per tree
//!   edge per message (5 edges: every node is a member);
//! - a transit member node is killed mid-stream: the other members lose at most a bounded
//!   outage and go on; joins and leaves mid-stream take effect within a bound;
//! - anycast goes to the nearest member node only, and to the next nearest once it fails;
//! - the monitoring shape: 200 sender clients spread over the nodes, three receiver groups,
//!   reliable service: every receiver gets every message of its group once, each endpoint on
//!   one connection.
//!
//! Messages carry a 9-byte tag: a phase byte (0 warm-up, 1 measured) and a big-endian index.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weft_client::{Client, Service};
use weft_shared::ids::{GroupId, Port};
use weft_shared::session::{DeliveredTo, Destination};
use weft_tests::overlay::{EmulatedPath, LinkSpec, Overlay, Start};

const GROUP: u32 = 7;
const DST_PORT: u16 = 4100;
const SRC_PORT: u16 = 4200;
const WARMUP: u8 = 0;
const MEASURED: u8 = 1;

fn ring_links() -> [LinkSpec; 8] {
    let l = |id, a, b, ms: u32| LinkSpec {
        id,
        a,
        b,
        cost_us: ms * 1_000,
    };
    [
        l(0, 1, 2, 10),
        l(1, 2, 3, 10),
        l(2, 3, 4, 10),
        l(3, 4, 5, 10),
        l(4, 5, 6, 10),
        l(5, 6, 1, 10),
        l(6, 1, 4, 25),
        l(7, 2, 5, 25),
    ]
}

fn ring(name: &str) -> Overlay {
    let o = Overlay::start(name, 6, &ring_links(), Start::Separate);
    o.wait_converged(Duration::from_secs(15));
    o
}

fn tag(phase: u8, i: u64) -> [u8; 9] {
    let mut t = [0u8; 9];
    t[0] = phase;
    t[1..].copy_from_slice(&i.to_be_bytes());
    t
}

fn untag(payload: &[u8]) -> Option<(u8, u64)> {
    let t: [u8; 9] = payload.get(..9)?.try_into().ok()?;
    Some((t[0], u64::from_be_bytes(t[1..].try_into().ok()?)))
}

/// What one receiving client got: every measured message's index with its arrival time, and
/// how the messages were addressed.
#[derive(Debug, Default)]
struct Got {
    measured: Vec<(u64, Instant)>,
    warmup: u64,
    addressed: Vec<DeliveredTo>,
    /// Measured indices by sender address.
    by_sender: BTreeMap<String, Vec<u64>>,
}

impl Got {
    /// Measured indices received more than once.
    fn duplicates(&self) -> usize {
        let mut n: BTreeMap<u64, usize> = BTreeMap::new();
        for &(i, _) in &self.measured {
            *n.entry(i).or_default() += 1;
        }
        n.values().filter(|&&c| c > 1).count()
    }

    fn distinct(&self) -> usize {
        let mut v: Vec<u64> = self.measured.iter().map(|&(i, _)| i).collect();
        v.sort_unstable();
        v.dedup();
        v.len()
    }

    /// The longest time between two measured arrivals.
    fn longest_gap(&self) -> Duration {
        let t: Vec<Instant> = self.measured.iter().map(|&(_, t)| t).collect();
        t.windows(2)
            .map(|w| w[1].duration_since(w[0]))
            .max()
            .unwrap_or_default()
    }
}

/// A client that joined a group (or bound a port) and records what arrives until stopped.
struct Receiver {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Got>,
}

impl Receiver {
    /// Joins `group` on the node at `socket` and returns once the join was answered.
    fn join(socket: PathBuf, group: u32) -> Receiver {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut client = Client::connect(&socket, "test-member").unwrap();
            client.join(GroupId(group)).unwrap();
            ready_tx.send(()).unwrap();
            let mut got = Got::default();
            let mut buf = vec![0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                let d = match client.recv_timeout(&mut buf, Duration::from_millis(20)) {
                    Ok(Some(d)) => d,
                    Ok(None) => continue,
                    // Its node was killed.
                    Err(weft_client::ClientError::Disconnected(_)) => break,
                    Err(e) => panic!("recv: {e}"),
                };
                got.addressed.push(d.to);
                match untag(&buf[..d.len]) {
                    Some((MEASURED, i)) => {
                        got.measured.push((i, Instant::now()));
                        got.by_sender.entry(d.from.to_string()).or_default().push(i);
                    }
                    Some(_) => got.warmup += 1,
                    None => panic!("an untagged message"),
                }
            }
            got
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the member joined");
        Receiver { stop, handle }
    }

    /// Stops it (its client disconnects, leaving the group) and returns what it got.
    fn finish(self) -> Got {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// A sending client on one node with one flow to `dst`.
struct Sender {
    client: Client,
    flow: weft_client::Flow,
    /// Sends the node refused (no route during a failover), with the last reason.
    refused: u64,
    last_refusal: Option<String>,
}

impl Sender {
    fn open(socket: &PathBuf, port: u16, dst: Destination, service: Service) -> Sender {
        let mut client = Client::connect(socket, "test-sender").unwrap();
        client.bind(Port(port)).unwrap();
        let flow = client.open_flow(Port(port), dst, service).unwrap();
        Sender {
            client,
            flow,
            refused: 0,
            last_refusal: None,
        }
    }

    /// Sends one message. The node's refusal of an earlier one (reported by a later send) is
    /// counted (that message, or this one, is lost; never sent twice); anything else fails.
    fn send(&mut self, phase: u8, i: u64) {
        match self.client.send(&self.flow, &tag(phase, i)) {
            Ok(()) => {}
            Err(weft_client::ClientError::Server(e)) => {
                self.refused += 1;
                self.last_refusal = Some(e.to_string());
            }
            Err(e) => panic!("send: {e}"),
        }
    }

    /// Sends warm-up messages until `ready` says every receiver got one (at most `within`).
    fn warm_up(&mut self, within: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        let mut i = 0;
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "the group never reached everyone"
            );
            self.send(WARMUP, i);
            i += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends measured messages `from..to` at about `rate` per second; `at(i)` runs before
    /// message `i`.
    fn stream(&mut self, from: u64, to: u64, rate: u64, mut at: impl FnMut(u64)) {
        let start = Instant::now();
        for i in from..to {
            at(i);
            let due = start + Duration::from_secs_f64((i - from) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            self.send(MEASURED, i);
        }
    }
}

fn counter(o: &Overlay, node: u16, name: &str) -> u64 {
    let v = o.weftctl_json(node, &["show", "counters"]);
    v["total"][name].as_u64().unwrap_or(0)
}

/// The `mcast_copies` sent since `before` over `nodes`, once they have settled. On a loaded
/// machine the last copies may still be in flight, or their counters not yet published, a moment
/// after the stream ends: this waits (at most 10 s) for the count to reach `expected`, then a
/// little longer, so a surplus copy still shows and fails the caller's assertion.
fn settled_copies(
    o: &Overlay,
    nodes: std::ops::RangeInclusive<u16>,
    before: u64,
    expected: u64,
) -> u64 {
    let read = || {
        nodes
            .clone()
            .map(|n| counter(o, n, "mcast_copies"))
            .sum::<u64>()
            .saturating_sub(before)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while read() < expected && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    read()
}

fn multicast(group: u32) -> Destination {
    Destination::Multicast {
        group: GroupId(group),
        port: Port(DST_PORT),
    }
}

/// Whether a receiver thread's warm-up count reached one; the receivers record in their own
/// threads, so the test watches the data plane's delivery counters instead.
fn delivered_everywhere(o: &Overlay, nodes: &[u16], before: &BTreeMap<u16, u64>) -> bool {
    nodes
        .iter()
        .all(|&n| counter(o, n, "mcast_delivered") > before.get(&n).copied().unwrap_or(0))
}

fn mcast_delivered(o: &Overlay, nodes: &[u16]) -> BTreeMap<u16, u64> {
    nodes
        .iter()
        .map(|&n| (n, counter(o, n, "mcast_delivered")))
        .collect()
}

#[test]
fn every_member_gets_each_message_once_and_each_tree_edge_carries_one_copy() {
    const COUNT: u64 = 2_000;
    let o = ring("grp-mc");
    let member_nodes = [2u16, 3, 4, 5, 6];
    let mut members: Vec<(u16, Receiver)> = member_nodes
        .iter()
        .map(|&n| (n, Receiver::join(o.session_socket(n), GROUP)))
        .collect();
    members.push((4, Receiver::join(o.session_socket(4), GROUP)));
    // A client that did not join gets nothing.
    let mut outsider = Client::connect(o.session_socket(3), "outsider").unwrap();
    outsider.bind(Port(DST_PORT)).unwrap();

    let mut tx = Sender::open(
        &o.session_socket(1),
        SRC_PORT,
        multicast(GROUP),
        Service::default(),
    );
    let before = mcast_delivered(&o, &member_nodes);
    tx.warm_up(Duration::from_secs(10), || {
        delivered_everywhere(&o, &member_nodes, &before)
    });
    o.wait_base_costs(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let copies_before: u64 = (1..=6).map(|n| counter(&o, n, "mcast_copies")).sum();
    tx.stream(0, COUNT, 2_000, |_| {});
    let copies = settled_copies(&o, 1..=6, copies_before, 5 * COUNT);
    assert_eq!(
        tx.refused, 0,
        "the source refused sends: {:?}",
        tx.last_refusal
    );
    // What the source's control plane shows: the members and its tree (5 edges: every other
    // node is a member).
    let shown = o.weftctl_json(1, &["show", "groups"]);
    let row = shown["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == GROUP)
        .unwrap_or_else(|| panic!("group {GROUP} not shown: {shown}"));
    let member_ids: Vec<u64> = row["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_u64().unwrap())
        .collect();
    assert_eq!(member_ids, [2, 3, 4, 5, 6], "{row}");
    assert_eq!(row["tree"].as_array().unwrap().len(), 5, "{row}");
    assert_eq!(
        row["anycast"]["target"], 2,
        "the nearest member from node 1: {row}"
    );
    let local = o.weftctl_json(4, &["show", "groups"]);
    assert_eq!(local["local"][0]["group"], GROUP, "{local}");
    assert_eq!(
        local["local"][0]["members"], 2,
        "two member clients on node 4: {local}"
    );

    for (node, m) in members {
        let got = m.finish();
        eprintln!(
            "node {node}: {} measured ({} distinct), {} warm-up",
            got.measured.len(),
            got.distinct(),
            got.warmup
        );
        assert_eq!(got.duplicates(), 0, "node {node} got duplicates");
        assert_eq!(got.distinct() as u64, COUNT, "node {node} lost messages");
        assert!(
            got.addressed
                .iter()
                .all(|&t| t == DeliveredTo::Multicast(GroupId(GROUP))),
            "node {node}: not addressed to the group"
        );
    }
    let mut buf = [0u8; 64];
    assert!(
        outsider
            .recv_timeout(&mut buf, Duration::from_millis(50))
            .unwrap()
            .is_none(),
        "a client that did not join got a group message"
    );
    // Every other node is a member, so the source's tree has 5 edges: one copy on each.
    eprintln!("copies sent on tree links: {copies} for {COUNT} messages");
    assert_eq!(copies, 5 * COUNT, "copies per message != tree edges");
}

#[test]
fn a_failed_member_node_is_routed_around_and_joins_and_leaves_take_effect() {
    let mut o = ring("grp-fail");
    // Node 2 is transit from 1 towards 3 (1-2-3 costs 20 ms, 1-4-3 35 ms).
    let member_nodes = [2u16, 3, 4];
    let members: Vec<(u16, Receiver)> = member_nodes
        .iter()
        .map(|&n| (n, Receiver::join(o.session_socket(n), GROUP)))
        .collect();
    let mut tx = Sender::open(
        &o.session_socket(1),
        SRC_PORT,
        multicast(GROUP),
        Service::default(),
    );
    let before = mcast_delivered(&o, &member_nodes);
    tx.warm_up(Duration::from_secs(10), || {
        delivered_everywhere(&o, &member_nodes, &before)
    });

    // 1,000 messages/s for 6 s: node 2 dies at 1 s; node 5 joins at 3 s and leaves at 4.5 s.
    // After the leave, node 5 drops the copies still sent to it (`no_members`) until the
    // trees leave it out: sampled every 20 messages.
    let mut late: Option<(Instant, Receiver)> = None;
    let mut left: Option<(Instant, Instant, Got)> = None;
    let mut no_members: Vec<(Instant, u64)> = Vec::new();
    tx.stream(0, 6_000, 1_000, |i| match i {
        1_000 => o.kill_node(2),
        3_000 => late = Some((Instant::now(), Receiver::join(o.session_socket(5), GROUP))),
        4_500 => {
            let (joined_at, r) = late.take().unwrap();
            no_members.push((Instant::now(), counter(&o, 5, "drop_no_members")));
            left = Some((joined_at, Instant::now(), r.finish()));
        }
        i if i > 4_500 && i % 20 == 0 => {
            no_members.push((Instant::now(), counter(&o, 5, "drop_no_members")));
        }
        _ => {}
    });
    std::thread::sleep(Duration::from_millis(300));
    for (node, m) in members {
        let got = m.finish();
        if node == 2 {
            continue;
        }
        let gap = got.longest_gap();
        let lost = 6_000 - got.distinct() as u64;
        eprintln!("node {node}: longest gap {gap:?}, lost {lost} of 6000");
        assert_eq!(got.duplicates(), 0);
        assert!(gap < Duration::from_secs(1), "node {node}: outage {gap:?}");
        assert!(lost < 1_000, "node {node} lost {lost}");
    }
    let (joined_at, left_at, got) = left.unwrap();
    let first = got
        .measured
        .first()
        .map(|&(i, t)| (i, t))
        .expect("the late member got messages");
    let join_latency = first.1.duration_since(joined_at);
    eprintln!(
        "late member: first message {} after {join_latency:?}, {} in all",
        first.0,
        got.measured.len()
    );
    assert!(
        join_latency < Duration::from_secs(1),
        "join took {join_latency:?}"
    );
    assert_eq!(got.duplicates(), 0);
    // The leave: the last sample at which node 5 still dropped copies for want of members.
    let last_copy = no_members
        .windows(2)
        .rfind(|w| w[1].1 > w[0].1)
        .map(|w| w[1].0);
    let leave_latency = last_copy.map_or(Duration::ZERO, |t| t.duration_since(left_at));
    let samples = no_members.len();
    eprintln!(
        "leave: node 5 got copies for {leave_latency:?} after its last member left          ({} dropped, {samples} samples)",
        no_members.last().unwrap().1 - no_members[0].1
    );
    assert!(samples > 20, "too few samples: {samples}");
    assert!(
        leave_latency < Duration::from_secs(1),
        "leave took {leave_latency:?}"
    );
}

#[test]
fn anycast_goes_to_the_nearest_member_only_and_to_the_next_once_it_fails() {
    const COUNT: u64 = 5_000;
    let mut o = ring("grp-any");
    // From node 1: node 2 costs 10 ms, node 4 25 ms (the chord).
    let near = Receiver::join(o.session_socket(2), GROUP);
    let far = Receiver::join(o.session_socket(4), GROUP);
    let mut tx = Sender::open(
        &o.session_socket(1),
        SRC_PORT,
        Destination::Anycast {
            group: GroupId(GROUP),
            port: Port(DST_PORT),
        },
        Service::default(),
    );
    let any = |o: &Overlay| counter(o, 2, "anycast_delivered");
    tx.warm_up(Duration::from_secs(10), || any(&o) > 0);
    std::thread::sleep(Duration::from_millis(200));
    let mut killed_at = None;
    tx.stream(0, COUNT, 1_000, |i| {
        if i == 2_000 {
            killed_at = Some(Instant::now());
            o.kill_node(2);
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let (near, far) = (near.finish(), far.finish());
    eprintln!(
        "near (node 2): {} measured, far (node 4): {} measured",
        near.measured.len(),
        far.measured.len()
    );
    assert!(
        near.addressed
            .iter()
            .chain(&far.addressed)
            .all(|&t| t == DeliveredTo::Anycast(GroupId(GROUP)))
    );
    // Before the failure everything went to the nearest member, and only there.
    let before_far = far.measured.iter().filter(|&&(i, _)| i < 2_000).count();
    assert_eq!(
        before_far, 0,
        "the far member got messages while the near one was up"
    );
    assert!(near.measured.iter().all(|&(i, _)| i < 2_000 + 50));
    // No message went to both.
    let mut all: Vec<u64> = near
        .measured
        .iter()
        .chain(&far.measured)
        .map(|&(i, _)| i)
        .collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "a message was delivered twice");
    // After the failure, the next nearest took over.
    let first_far = far
        .measured
        .first()
        .map(|&(_, t)| t)
        .expect("the far member took over");
    let failover = first_far.duration_since(killed_at.unwrap());
    let lost = COUNT - all.len() as u64;
    eprintln!(
        "anycast failover: first message at the next member {failover:?} after the kill, \
         {lost} lost ({} refused at the source: {:?})",
        tx.refused, tx.last_refusal
    );
    assert!(
        failover < Duration::from_secs(1),
        "failover took {failover:?}"
    );
    // Once it took over it got everything, but for sends the source refused while its own
    // routes were changing.
    let after = COUNT - far.measured[0].0;
    assert!(
        far.distinct() as u64 + tx.refused >= after,
        "the far member lost messages after taking over: {} of {after}",
        far.distinct()
    );
}

#[test]
fn two_hundred_senders_reach_three_receiver_groups_reliably_over_a_lossy_link() {
    const SENDERS: u16 = 200;
    const PER_SENDER: u64 = 25;
    const GROUPS: [u32; 3] = [101, 102, 103];
    // Link 2 (3-4) loses 5 % each way on both paths: recovered hop by hop.
    let lossy = "loss=0.05";
    let emulated = [
        EmulatedPath::new(2, 0, lossy),
        EmulatedPath::new(2, 1, lossy),
    ];
    let o = Overlay::start_emulated("grp-mon", 6, &ring_links(), &emulated);
    o.wait_converged(Duration::from_secs(15));
    let receivers: Vec<(u32, u16, Receiver)> =
        [(101, 3), (101, 6), (102, 4), (103, 2), (103, 5), (103, 1)]
            .into_iter()
            .map(|(g, n)| (g, n, Receiver::join(o.session_socket(n), g)))
            .collect();
    // One connection per sender, spread over the six nodes.
    let mut senders: Vec<(u32, Sender)> = (0..SENDERS)
        .map(|k| {
            let node = k % 6 + 1;
            let group = GROUPS[usize::from(k % 3)];
            let dst = multicast(group);
            (
                group,
                Sender::open(&o.session_socket(node), 5_000 + k, dst, Service::reliable()),
            )
        })
        .collect();
    // Let every node's FIB hold all three groups before sending.
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..PER_SENDER {
        for (_, s) in &mut senders {
            s.send(MEASURED, i);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_secs(2));
    for (g, s) in &senders {
        assert_eq!(
            s.refused, 0,
            "a sender to {g} was refused: {:?}",
            s.last_refusal
        );
    }
    let per_group = |g: u32| senders.iter().filter(|(sg, _)| *sg == g).count() as u64 * PER_SENDER;
    for (group, node, r) in receivers {
        let got = r.finish();
        eprintln!(
            "group {group} at node {node}: {} of {} ({} distinct by index only)",
            got.measured.len(),
            per_group(group),
            got.distinct()
        );
        let senders_of_group = senders.iter().filter(|(sg, _)| *sg == group).count();
        assert_eq!(
            got.by_sender.len(),
            senders_of_group,
            "group {group} at node {node}: senders"
        );
        for (from, mut seqs) in got.by_sender.clone() {
            seqs.sort_unstable();
            let want: Vec<u64> = (0..PER_SENDER).collect();
            assert_eq!(seqs, want, "group {group} at node {node}: from {from}");
        }
        assert_eq!(
            got.measured.len() as u64,
            per_group(group),
            "group {group} at node {node}"
        );
        assert!(
            got.addressed
                .iter()
                .all(|&t| t == DeliveredTo::Multicast(GroupId(group)))
        );
    }
    let recovered: u64 = (1..=6).map(|n| counter(&o, n, "rel_recovered")).sum();
    eprintln!("records recovered on the lossy link: {recovered}");
    assert!(
        recovered > 0,
        "nothing was lost and recovered: the link was not lossy"
    );
}

#[test]
fn a_real_time_multicast_flow_is_recovered_per_tree_link_over_a_lossy_link() {
    const COUNT: u64 = 3_000;
    // Link 0 (1-2) loses 5 % each way on both paths; nodes 2 and 3 are behind it, node 4 is
    // reached on the chord.
    let lossy = "loss=0.05";
    let emulated = [
        EmulatedPath::new(0, 0, lossy),
        EmulatedPath::new(0, 1, lossy),
    ];
    let o = Overlay::start_emulated("grp-rt", 6, &ring_links(), &emulated);
    o.wait_converged(Duration::from_secs(15));
    let member_nodes = [2u16, 3, 4];
    let members: Vec<(u16, Receiver)> = member_nodes
        .iter()
        .map(|&n| (n, Receiver::join(o.session_socket(n), GROUP)))
        .collect();
    let service = Service::realtime(Duration::from_millis(200));
    let mut tx = Sender::open(&o.session_socket(1), SRC_PORT, multicast(GROUP), service);
    let before = mcast_delivered(&o, &member_nodes);
    tx.warm_up(Duration::from_secs(10), || {
        delivered_everywhere(&o, &member_nodes, &before)
    });
    tx.stream(0, COUNT, 1_000, |_| {});
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tx.refused, 0, "{:?}", tx.last_refusal);
    for (node, m) in members {
        let got = m.finish();
        let share = got.distinct() as f64 / COUNT as f64;
        eprintln!(
            "node {node}: {} of {COUNT} on time ({:.3} %)",
            got.distinct(),
            share * 100.0
        );
        assert_eq!(got.duplicates(), 0, "node {node}");
        assert!(share >= 0.995, "node {node}: {share}");
    }
    let retransmitted = counter(&o, 1, "rt_retransmitted");
    let recovered = counter(&o, 2, "rt_recovered");
    eprintln!("node 1 retransmitted {retransmitted}, node 2 recovered {recovered}");
    assert!(
        retransmitted > 0 && recovered > 0,
        "the losses were not recovered"
    );
}

#[test]
fn on_the_reference_topology_one_source_reaches_members_on_five_nodes_once_per_tree_edge() {
    const COUNT: u64 = 1_000;
    // The 12 nodes and 22 links of config/reference.toml, at their base costs (on loopback the
    // measured latency stays under them, so the trees are the base-cost trees).
    let reference = weft_shared::config::Config::load(
        weft_tests::overlay::workspace_root().join("config/reference.toml"),
    )
    .unwrap();
    let links: Vec<LinkSpec> = reference
        .links()
        .iter()
        .map(|l| {
            let [a, b] = l.nodes();
            LinkSpec {
                id: l.id().get(),
                a: a.get(),
                b: b.get(),
                cost_us: l.cost_us(),
            }
        })
        .collect();
    let o = Overlay::start("grp-ref", 12, &links, Start::Separate);
    o.wait_converged(Duration::from_secs(30));
    // Boston sends; members in Miami, Chicago, Dallas, Seattle and Los Angeles.
    let member_nodes = [5u16, 6, 7, 9, 11];
    // The source's tree, computed here from the config alone: the union of the shortest
    // paths' edges from Boston to each member.
    let routes = weft_routing::spf::Graph::from_config(&reference)
        .shortest_paths(weft_shared::ids::NodeId::new(1).unwrap());
    let mut edges = std::collections::BTreeSet::new();
    for &m in &member_nodes {
        let path = routes.path_to(weft_shared::ids::NodeId::new(m).unwrap());
        for w in path.windows(2) {
            edges.insert((w[0], w[1]));
        }
    }
    let members: Vec<(u16, Receiver)> = member_nodes
        .iter()
        .map(|&n| (n, Receiver::join(o.session_socket(n), GROUP)))
        .collect();
    let mut tx = Sender::open(
        &o.session_socket(1),
        SRC_PORT,
        multicast(GROUP),
        Service::default(),
    );
    let before = mcast_delivered(&o, &member_nodes);
    tx.warm_up(Duration::from_secs(20), || {
        delivered_everywhere(&o, &member_nodes, &before)
    });
    o.wait_base_costs(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let copies_before: u64 = (1..=12).map(|n| counter(&o, n, "mcast_copies")).sum();
    tx.stream(0, COUNT, 1_000, |_| {});
    let expected = edges.len() as u64 * COUNT;
    let copies = settled_copies(&o, 1..=12, copies_before, expected);
    eprintln!("{copies} copies for {COUNT} messages; expected {expected}");
    for n in 1..=12 {
        let total = &o.weftctl_json(n, &["show", "counters"])["total"];
        let nonzero: Vec<String> = total
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        eprintln!("node {n} counters: {}", nonzero.join(" "));
    }
    assert_eq!(tx.refused, 0, "{:?}", tx.last_refusal);
    for (node, m) in members {
        let got = m.finish();
        eprintln!("node {node}: {} of {COUNT}", got.distinct());
        assert_eq!(got.duplicates(), 0, "node {node}");
        assert_eq!(got.distinct() as u64, COUNT, "node {node}");
    }
    eprintln!(
        "{copies} copies for {COUNT} messages; the tree from Boston has {} edges",
        edges.len()
    );
    assert_eq!(copies, expected);
}
