//! The shipped config files parse and have the shape their comments promise.

use std::collections::BTreeSet;

use super::*;
use crate::config::*;
use crate::ids::{LinkId, NodeId};

const EXAMPLE: &str = include_str!("../../../../config/example.toml");
const DEMO: &str = include_str!("../../../../config/demo.toml");

fn id(n: u16) -> NodeId {
    NodeId::new(n).unwrap()
}

/// Whether the nodes other than `removed` stay connected without link `cut`.
fn connected_without(config: &Config, removed: Option<NodeId>, cut: Option<LinkId>) -> bool {
    let alive: Vec<NodeId> = config
        .nodes()
        .iter()
        .map(Node::id)
        .filter(|&n| Some(n) != removed)
        .collect();
    let mut reached = BTreeSet::from([alive[0]]);
    let mut stack = vec![alive[0]];
    while let Some(n) = stack.pop() {
        for end in config.links_of(n) {
            let next = end.neighbour();
            if Some(end.id()) != cut && Some(next) != removed && reached.insert(next) {
                stack.push(next);
            }
        }
    }
    reached.len() == alive.len()
}

/// Each node N has interface a at 127.0.1.N and b at 127.0.2.N, on one port.
fn check_loopback_homing(config: &Config) {
    for node in config.nodes() {
        let n = node.id().get();
        let [a, b] = node.interfaces() else {
            panic!("node {n} needs two interfaces")
        };
        assert_eq!((a.isp().as_str(), b.isp().as_str()), ("a", "b"));
        assert_eq!(a.addr().ip().to_string(), format!("127.0.1.{n}"));
        assert_eq!(b.addr().ip().to_string(), format!("127.0.2.{n}"));
        assert_eq!(a.addr().port(), b.addr().port());
    }
}

#[test]
fn example_is_a_diamond_of_four_nodes() {
    let c = Config::from_toml_str(EXAMPLE, "example.toml").unwrap();
    assert_eq!(c.overlay().name(), "example");
    assert_eq!(c.nodes().len(), 4);
    check_loopback_homing(&c);
    let pairs: BTreeSet<[u16; 2]> = c
        .links()
        .iter()
        .map(|l| l.nodes().map(NodeId::get))
        .collect();
    assert_eq!(pairs, BTreeSet::from([[1, 2], [1, 3], [2, 4], [3, 4]]));
    // Link 0 lists a cross-ISP path as path 2.
    let l0 = c.link(LinkId::new(0).unwrap()).unwrap();
    let ends = l0.paths()[2].ends();
    assert_eq!((ends[0].isp.as_str(), ends[1].isp.as_str()), ("a", "b"));
    assert_eq!(c.node(id(2)).unwrap().shm_name(), "weft-example-node2");
    // The [timers] table claims to hold the defaults: without it the config is the same.
    let start = EXAMPLE.find("# Protocol timers.").unwrap();
    let end = EXAMPLE.find("# One [[node]] block").unwrap();
    let without_timers = format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
    assert_eq!(parse(&without_timers).unwrap().hash(), c.hash());
}

#[test]
fn demo_is_a_ring_of_six_with_two_chords() {
    let c = Config::from_toml_str(DEMO, "demo.toml").unwrap();
    assert_eq!(c.nodes().len(), 6);
    check_loopback_homing(&c);
    for node in c.nodes() {
        let n = node.id().get();
        assert_eq!(
            node.session_socket().to_str(),
            Some(format!("/tmp/weft-demo/node{n}.sock").as_str())
        );
        assert_eq!(
            node.ctl_socket().to_str(),
            Some(format!("/tmp/weft-demo/node{n}.ctl").as_str())
        );
        assert!(c.links_of(node.id()).count() >= 2);
    }
    let pairs: BTreeSet<[u16; 2]> = c
        .links()
        .iter()
        .map(|l| l.nodes().map(NodeId::get))
        .collect();
    let ring = [[1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [1, 6]];
    let expected: BTreeSet<[u16; 2]> = ring.into_iter().chain([[1, 4], [2, 5]]).collect();
    assert_eq!(pairs, expected);
    // Alternative routes: the overlay stays connected when any one node or link fails.
    for node in c.nodes() {
        assert!(
            connected_without(&c, Some(node.id()), None),
            "node {} partitions",
            node.id()
        );
    }
    for link in c.links() {
        assert!(
            connected_without(&c, None, Some(link.id())),
            "link {} partitions",
            link.id()
        );
    }
}

#[test]
fn files_load_from_disk() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    for (name, text) in [("example.toml", EXAMPLE), ("demo.toml", DEMO)] {
        let loaded = Config::load(dir.join(name)).unwrap();
        assert_eq!(loaded, parse(text).unwrap());
    }
}

#[test]
fn demo_round_trips_through_raw_structs() {
    let raw: RawConfig = toml::from_str(DEMO).unwrap();
    let written = toml::to_string(&raw).unwrap();
    let again = Config::from_toml_str(&written, "written.toml").unwrap();
    assert_eq!(again.hash(), parse(DEMO).unwrap().hash());
}
