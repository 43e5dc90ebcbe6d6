//! Defaults, normalisation and the accessors the data and control planes use.

use super::*;
use crate::config::*;
use crate::ids::{LinkId, NodeId, PathId};

#[test]
fn base_parses() {
    let c = parse(&base()).unwrap();
    assert_eq!(c.nodes().len(), 3);
    assert_eq!(c.links().len(), 2);
}

#[test]
fn defaults_fill_in() {
    let c = parse(&base()).unwrap();
    let t = c.timers();
    assert_eq!(*t, Timers::default());
    assert_eq!(t.hello_interval().as_millis(), 10);
    assert_eq!(t.path_dead_after().as_millis(), 100);
    assert_eq!(t.path_up_after_hellos(), 3);
    assert_eq!(t.link_state_refresh().as_millis(), 30_000);
    assert_eq!(t.link_state_max_age().as_millis(), 120_000);
    assert_eq!(t.fib_publish_min_interval().as_millis(), 5);
    let n2 = c.node(NodeId::new(2).unwrap()).unwrap();
    assert_eq!(n2.cores(), &[0]);
    assert_eq!(
        n2.session_socket(),
        std::path::Path::new("/run/weft/node2.sock")
    );
    assert_eq!(n2.ctl_socket(), std::path::Path::new("/run/weft/node2.ctl"));
    assert_eq!(n2.shm_name(), "weft-t-node2");
    let l = c.link(LinkId::new(7).unwrap()).unwrap();
    assert_eq!(l.mtu(), 1500);
    assert_eq!(l.cost_us(), 1000);
    let isps: Vec<_> = l
        .paths()
        .iter()
        .map(|p| [p.ends()[0].isp.as_str(), p.ends()[1].isp.as_str()])
        .collect();
    assert_eq!(isps, [["a", "a"], ["b", "b"]]);
}

#[test]
fn default_paths_without_a_common_isp_are_every_pair() {
    let text = edit(
        &base(),
        "isp = \"a\"\naddr = \"127.0.1.3",
        "isp = \"c\"\naddr = \"127.0.1.3",
    );
    let text = edit(
        &text,
        "isp = \"b\"\naddr = \"127.0.2.3",
        "isp = \"d\"\naddr = \"127.0.2.3",
    );
    let c = parse(&text).unwrap();
    let l = c.link(LinkId::new(7).unwrap()).unwrap();
    let isps: Vec<_> = l
        .paths()
        .iter()
        .map(|p| [p.ends()[0].isp.as_str(), p.ends()[1].isp.as_str()])
        .collect();
    assert_eq!(isps, [["a", "c"], ["a", "d"], ["b", "c"], ["b", "d"]]);
    let ids: Vec<u8> = l.paths().iter().map(|p| p.id().get()).collect();
    assert_eq!(ids, [0, 1, 2, 3]);
}

#[test]
fn link_ends_are_normalised_to_ascending_node_ids() {
    let forward = edit(
        &base(),
        "nodes = [2, 3]\n",
        "nodes = [2, 3]\npaths = [[\"a\", \"b\"], [\"b\", \"b\"]]\n",
    );
    let reverse = edit(
        &base(),
        "nodes = [2, 3]\n",
        "nodes = [3, 2]\npaths = [[\"b\", \"a\"], [\"b\", \"b\"]]\n",
    );
    let (f, r) = (parse(&forward).unwrap(), parse(&reverse).unwrap());
    assert_eq!(f, r);
    assert_eq!(f.hash(), r.hash());
    let l = f.link(LinkId::new(7).unwrap()).unwrap();
    assert_eq!(
        l.nodes(),
        [NodeId::new(2).unwrap(), NodeId::new(3).unwrap()]
    );
    let p0 = l.path(PathId::new(0).unwrap()).unwrap();
    assert_eq!(p0.ends()[0].addr.to_string(), "127.0.1.2:7002");
    assert_eq!(p0.ends()[1].addr.to_string(), "127.0.2.3:7003");
}

#[test]
fn accessors_give_each_node_its_links_and_path_addresses() {
    let c = parse(&base()).unwrap();
    let two = NodeId::new(2).unwrap();
    let ends: Vec<_> = c.links_of(two).collect();
    assert_eq!(ends.len(), 2);
    assert_eq!(ends[0].id(), LinkId::new(0).unwrap());
    assert_eq!(ends[0].local(), two);
    assert_eq!(ends[0].neighbour(), NodeId::new(1).unwrap());
    assert_eq!(ends[1].neighbour(), NodeId::new(3).unwrap());
    let paths: Vec<_> = ends[0]
        .paths()
        .map(|p| {
            (
                p.id.get(),
                p.local.addr.to_string(),
                p.remote.addr.to_string(),
            )
        })
        .collect();
    assert_eq!(
        paths,
        [
            (0, "127.0.1.2:7002".to_owned(), "127.0.1.1:7001".to_owned()),
            (1, "127.0.2.2:7002".to_owned(), "127.0.2.1:7001".to_owned()),
        ]
    );
    // The local interface index points into the node's interface list.
    let node2 = c.node(two).unwrap();
    for p in ends[1].paths() {
        assert_eq!(node2.interfaces()[p.local.interface].addr(), p.local.addr);
    }
    assert_eq!(c.neighbour(LinkId::new(7).unwrap(), two), NodeId::new(3));
    assert_eq!(
        c.neighbour(LinkId::new(7).unwrap(), NodeId::new(1).unwrap()),
        None
    );
    assert_eq!(c.neighbour(LinkId::new(8).unwrap(), two), None);
    assert_eq!(
        c.link_between(NodeId::new(3).unwrap(), two).map(Link::id),
        LinkId::new(7)
    );
    assert!(
        c.link_between(NodeId::new(1).unwrap(), NodeId::new(3).unwrap())
            .is_none()
    );
    assert_eq!(c.node_by_name("three").map(Node::id), NodeId::new(3));
    assert_eq!(
        node2
            .interface("b")
            .map(Interface::addr)
            .map(|a| a.to_string())
            .as_deref(),
        Some("127.0.2.2:7002")
    );
    assert!(c.node(NodeId::new(4).unwrap()).is_none());
}

#[test]
fn try_from_raw_names_the_inline_file() {
    let mut raw: RawConfig = toml::from_str(&base()).unwrap();
    assert!(Config::try_from(raw.clone()).is_ok());
    raw.links[1].nodes = vec![2, 2];
    let e = Config::try_from(raw).unwrap_err();
    assert_eq!(
        e.to_string(),
        "<inline>: link[id=7].nodes: a link joins node 2 to itself"
    );
    assert_eq!(e.location(), None);
}

#[test]
fn location_counts_characters_not_bytes() {
    assert_eq!(
        Location::of_offset("ab\ncd", 4),
        Location { line: 2, column: 2 }
    );
    assert_eq!(
        Location::of_offset("é = 1", 3),
        Location { line: 1, column: 3 }
    );
    assert_eq!(
        Location::of_offset("x", 99),
        Location { line: 1, column: 2 }
    );
}

#[test]
fn isp_names_are_checked() {
    assert_eq!(
        IspName::new("isp-1_b").map(|i| i.to_string()).as_deref(),
        Some("isp-1_b")
    );
    assert!(IspName::new("").is_none());
    assert!(IspName::new("a b").is_none());
    assert!(IspName::new(&"x".repeat(MAX_ISP_NAME_LEN + 1)).is_none());
    assert!(IspName::new(&"x".repeat(MAX_ISP_NAME_LEN)).is_some());
}
