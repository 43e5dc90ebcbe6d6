//! Tests of the FIB table: builder, lookups, capacity and probe limits, verification.

use super::*;

fn node(n: u16) -> NodeId {
    NodeId::new(n).expect("node id")
}

fn link(l: u16) -> LinkId {
    LinkId::new(l).expect("link id")
}

#[test]
fn link_mask_sets_and_lists_links() {
    let mut m = LinkMask::EMPTY;
    assert!(m.is_empty());
    for l in [0, 63, 64, 511] {
        m.insert(link(l));
    }
    m.remove(link(63));
    assert_eq!(
        m.iter().map(LinkId::get).collect::<Vec<_>>(),
        vec![0, 64, 511]
    );
    assert_eq!(m.len(), 3);
    assert!(m.contains(link(511)) && !m.contains(link(1)));
}

#[test]
fn unicast_set_replace_remove() {
    let mut t = FibTable::new_boxed();
    let mut b = FibBuilder::new(&mut t);
    assert_eq!(b.table().unicast(node(1)), None);
    b.set_unicast(
        node(1),
        UnicastRoute {
            next_hop: link(0),
            metric_us: 10,
        },
    );
    b.set_unicast(
        node(1023),
        UnicastRoute {
            next_hop: link(511),
            metric_us: 20,
        },
    );
    b.set_unicast(
        node(1),
        UnicastRoute {
            next_hop: link(5),
            metric_us: 11,
        },
    );
    assert_eq!(b.counts().unicast, 2);
    b.remove_unicast(node(1023));
    b.remove_unicast(node(1023));
    assert_eq!(b.counts().unicast, 1);
    t.verify().expect("consistent");
    assert_eq!(
        t.unicast(node(1)),
        Some(UnicastRoute {
            next_hop: link(5),
            metric_us: 11
        })
    );
    assert_eq!(t.unicast(node(1023)), None);
    assert_eq!(t.unicast_routes().count(), 1);
}

#[test]
fn multicast_fills_to_capacity_then_refuses() {
    let mut t = FibTable::new_boxed();
    let mut b = FibBuilder::new(&mut t);
    // 128 groups x 512 sources: exactly the capacity, with clustered keys.
    for i in 0..MULTICAST_CAPACITY {
        let (group, source) = (GroupId(i as u32 / 512), node((i % 512) as u16 + 1));
        let mask = LinkMask::from_words([i as u64, !(i as u64), 0, 0, 0, 0, 0, 1]);
        b.insert_multicast(group, source, &mask, i % 3 == 0)
            .expect("fits");
    }
    assert_eq!(
        b.insert_multicast(GroupId(9999), node(1), &LinkMask::EMPTY, false),
        Err(FibError::MulticastFull {
            capacity: MULTICAST_CAPACITY
        })
    );
    // Replacing an existing key still works when full.
    b.insert_multicast(GroupId(0), node(1), &LinkMask::EMPTY, true)
        .expect("upsert");
    t.verify().expect("consistent");
    for i in (0..MULTICAST_CAPACITY).step_by(97).skip(1) {
        let r = t
            .multicast(GroupId(i as u32 / 512), node((i % 512) as u16 + 1))
            .expect("hit");
        assert_eq!(r.links.words()[0], i as u64);
        assert_eq!(r.local_delivery, i % 3 == 0);
    }
    let r = t.multicast(GroupId(0), node(1)).expect("replaced");
    assert!(r.links.is_empty() && r.local_delivery);
    assert_eq!(t.multicast(GroupId(128), node(1)), None);
    assert_eq!(t.multicast_routes().count(), MULTICAST_CAPACITY);
}

#[test]
fn anycast_fills_to_capacity_then_refuses() {
    let mut t = FibTable::new_boxed();
    let mut b = FibBuilder::new(&mut t);
    for g in 0..ANYCAST_CAPACITY as u32 {
        let next_hop = if g % 2 == 0 {
            None
        } else {
            Some(link((g % 512) as u16))
        };
        let route = AnycastRoute {
            target: node((g % 1023) as u16 + 1),
            next_hop,
            metric_us: g,
        };
        b.insert_anycast(GroupId(g * 7919), route).expect("fits");
    }
    let extra = AnycastRoute {
        target: node(1),
        next_hop: None,
        metric_us: 0,
    };
    assert_eq!(
        b.insert_anycast(GroupId(1), extra),
        Err(FibError::AnycastFull {
            capacity: ANYCAST_CAPACITY
        })
    );
    b.insert_anycast(GroupId(0), extra)
        .expect("upsert when full");
    t.verify().expect("consistent");
    let r = t.anycast(GroupId(3 * 7919)).expect("hit");
    assert_eq!(
        (r.target, r.next_hop, r.metric_us),
        (node(4), Some(link(3)), 3)
    );
    assert_eq!(t.anycast(GroupId(0)), Some(extra));
    assert_eq!(t.anycast(GroupId(5)), None);
}

#[test]
fn clear_copy_and_verify_detects_corruption() {
    let mut a = FibTable::new_boxed();
    let mut b = FibBuilder::new(&mut a);
    b.set_unicast(
        node(2),
        UnicastRoute {
            next_hop: link(1),
            metric_us: 5,
        },
    );
    b.insert_multicast(GroupId(1), node(2), &LinkMask::from_words([3; 8]), true)
        .expect("insert");
    let mut copy = FibTable::new_boxed();
    FibBuilder::new(&mut copy).copy_from(&a);
    copy.verify().expect("copy consistent");
    assert_eq!(copy.unicast(node(2)), a.unicast(node(2)));
    FibBuilder::new(&mut copy).clear();
    assert_eq!(copy.counts(), FibCounts::default());
    assert_eq!(copy.multicast(GroupId(1), node(2)), None);
    copy.verify().expect("empty consistent");
    // Flip one bit of a route: counts still match, the checksum does not.
    a.multicast_routes[0].words[7] ^= 1;
    assert_eq!(a.verify(), Err(FibError::Corrupt { what: "checksum" }));
    a.multicast_slots
        .iter_mut()
        .for_each(|s| s.route = s.route.max(7));
    assert_eq!(
        a.verify(),
        Err(FibError::Corrupt {
            what: "multicast route index"
        })
    );
}

#[test]
fn garbage_values_read_as_no_route() {
    let mut t = FibTable::new_boxed();
    t.unicast[0] = UnicastEntry {
        next_hop: 600,
        flags: UNICAST_VALID,
        metric_us: 1,
    };
    assert_eq!(t.unicast(node(1)), None);
    // A table full of occupied, non-matching slots still ends after MAX_PROBE probes.
    for s in t.multicast_slots.iter_mut() {
        *s = MulticastSlot {
            group: 7,
            source: 9,
            flags: 0,
            route: u32::MAX,
            reserved: 0,
        };
    }
    assert_eq!(t.multicast(GroupId(8), node(9)), None);
    assert_eq!(
        t.multicast(GroupId(7), node(9)),
        None,
        "route index out of range"
    );
}

#[test]
fn probe_limit_is_reported() {
    let mut t = FibTable::new_boxed();
    let home = anycast_home(42);
    // Occupy MAX_PROBE slots from the key's home with other groups.
    for k in 0..MAX_PROBE {
        t.anycast_slots[(home + k) & (ANYCAST_SLOTS - 1)] = AnycastSlot {
            group: 1,
            target: 1,
            next_hop: 0,
            metric_us: 0,
            flags: 0,
            reserved: 0,
        };
    }
    let route = AnycastRoute {
        target: node(2),
        next_hop: None,
        metric_us: 0,
    };
    assert_eq!(
        FibBuilder::new(&mut t).insert_anycast(GroupId(42), route),
        Err(FibError::ProbeLimit {
            table: "anycast",
            probes: MAX_PROBE
        })
    );
}
