//! Tests of the FIB table: builder, lookups, capacity and probe limits, verification.

use std::collections::{HashMap, HashSet};

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

/// A deterministic pseudo-random sequence (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
}

/// `MULTICAST_CAPACITY` distinct random (group, source) keys, source in 1..=1023.
fn random_keys(seed: u64) -> Vec<(GroupId, NodeId)> {
    let mut rng = Rng(seed);
    let mut seen = HashSet::with_capacity(MULTICAST_CAPACITY);
    let mut keys = Vec::with_capacity(MULTICAST_CAPACITY);
    while keys.len() < MULTICAST_CAPACITY {
        let r = rng.next();
        let key = (GroupId(r as u32), node((r >> 32) as u16 % 1023 + 1));
        if seen.insert(key) {
            keys.push(key);
        }
    }
    keys
}

/// A few distinct masks: entry `i` gets `few_masks(i % n)`.
fn few_masks(k: usize) -> LinkMask {
    let mut m = LinkMask::EMPTY;
    for l in [k, k + 7, 3 * k + 100] {
        m.insert(link((l % 512) as u16));
    }
    m
}

/// The longest probe sequence of any occupied multicast slot (1 = found at its home slot).
fn longest_multicast_probe(t: &FibTable) -> usize {
    (0..MULTICAST_SLOTS)
        .filter(|&p| t.multicast_slots[p].source != 0)
        .map(|p| {
            let s = &t.multicast_slots[p];
            (p.wrapping_sub(multicast_home(s.group, s.source)) & (MULTICAST_SLOTS - 1)) + 1
        })
        .max()
        .unwrap_or(0)
}

fn longest_anycast_probe(t: &FibTable) -> usize {
    (0..ANYCAST_SLOTS)
        .filter(|&p| t.anycast_slots[p].target != 0)
        .map(|p| (p.wrapping_sub(anycast_home(t.anycast_slots[p].group)) & (ANYCAST_SLOTS - 1)) + 1)
        .max()
        .unwrap_or(0)
}

#[test]
fn multicast_fills_to_capacity_then_refuses() {
    let mut t = FibTable::new_boxed();
    let mut b = FibBuilder::new(&mut t);
    // 512 groups x 512 sources: exactly the capacity, with clustered keys and 5 distinct masks.
    let key = |i: usize| (GroupId(i as u32 / 512), node((i % 512) as u16 + 1));
    for i in 0..MULTICAST_CAPACITY {
        let (group, source) = key(i);
        b.insert_multicast(group, source, &few_masks(i % 5), i % 3 == 0)
            .expect("fits");
    }
    assert_eq!(b.counts().multicast, MULTICAST_CAPACITY);
    assert_eq!(b.counts().multicast_masks, 5);
    assert_eq!(
        b.insert_multicast(GroupId(9999), node(1), &LinkMask::EMPTY, false),
        Err(FibError::MulticastFull {
            capacity: MULTICAST_CAPACITY
        })
    );
    assert_eq!(
        b.counts().multicast_masks,
        5,
        "a refused insert stores no mask"
    );
    // Replacing an existing key still works when full.
    b.insert_multicast(GroupId(0), node(1), &LinkMask::EMPTY, true)
        .expect("upsert");
    assert_eq!(b.counts().multicast_masks, 6);
    t.verify().expect("consistent");
    for i in 1..MULTICAST_CAPACITY {
        let (group, source) = key(i);
        let r = t.multicast(group, source).expect("hit");
        assert_eq!(*r.links, few_masks(i % 5), "entry {i}");
        assert_eq!(r.local_delivery, i % 3 == 0);
    }
    let r = t.multicast(GroupId(0), node(1)).expect("replaced");
    assert!(r.links.is_empty() && r.local_delivery);
    assert_eq!(t.multicast(GroupId(512), node(1)), None);
    assert_eq!(t.multicast_routes().count(), MULTICAST_CAPACITY);
}

#[test]
fn random_keys_fill_to_capacity_and_read_back() {
    let keys = random_keys(1);
    let mut t = FibTable::new_boxed();
    let mut b = FibBuilder::new(&mut t);
    for (i, &(group, source)) in keys.iter().enumerate() {
        b.insert_multicast(group, source, &few_masks(i % 7), i % 2 == 0)
            .expect("fits");
    }
    assert_eq!(
        b.counts(),
        FibCounts {
            unicast: 0,
            multicast: MULTICAST_CAPACITY,
            multicast_masks: 7,
            anycast: 0
        }
    );
    t.verify().expect("consistent");
    for (i, &(group, source)) in keys.iter().enumerate() {
        let r = t.multicast(group, source).expect("hit");
        assert_eq!(
            (*r.links, r.local_delivery),
            (few_masks(i % 7), i % 2 == 0),
            "entry {i}"
        );
    }
    let want: HashMap<_, _> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, (few_masks(i % 7), i % 2 == 0)))
        .collect();
    let mut listed = 0;
    for (group, source, r) in t.multicast_routes() {
        assert_eq!(
            want.get(&(group, source)),
            Some(&(*r.links, r.local_delivery))
        );
        listed += 1;
    }
    assert_eq!(listed, MULTICAST_CAPACITY);
    // Keys that were not inserted miss (a random group is almost surely not in the table).
    let mut rng = Rng(99);
    for _ in 0..1000 {
        let r = rng.next();
        let key = (GroupId(r as u32), node((r >> 32) as u16 % 1023 + 1));
        if !want.contains_key(&key) {
            assert_eq!(t.multicast(key.0, key.1), None);
        }
    }
}

/// The `MAX_PROBE` documentation: the longest probe sequence of a full table, for sequential,
/// clustered and random keys. Prints the measurements (`--nocapture`).
#[test]
fn longest_probe_of_full_tables() {
    let mut worst = 0;
    type Keys = Box<dyn Fn(usize) -> (GroupId, NodeId)>;
    let sets: [(&str, Keys); 4] = [
        (
            "sequential groups",
            Box::new(|i| (GroupId(i as u32), node(1))),
        ),
        (
            "12 sources per group",
            Box::new(|i| (GroupId(i as u32 / 12), node((i % 12) as u16 + 1))),
        ),
        (
            "512 sources per group",
            Box::new(|i| (GroupId(i as u32 / 512), node((i % 512) as u16 + 1))),
        ),
        ("random", {
            let keys = random_keys(7);
            Box::new(move |i| keys[i])
        }),
    ];
    for (name, key) in &sets {
        let mut t = FibTable::new_boxed();
        let mut b = FibBuilder::new(&mut t);
        for i in 0..MULTICAST_CAPACITY {
            let (group, source) = key(i);
            b.insert_multicast(group, source, &few_masks(i % 3), false)
                .expect("fits within MAX_PROBE");
        }
        let longest = longest_multicast_probe(&t);
        println!("multicast, {MULTICAST_CAPACITY} keys, {name}: longest probe {longest}");
        worst = worst.max(longest);
    }
    type Groups = fn(u32) -> u32;
    let anycast_sets: [(&str, Groups); 3] = [
        ("sequential", |g| g),
        ("multiples of 7919", |g| g.wrapping_mul(7919)),
        ("random", |g| mix64(u64::from(g) + 12345) as u32),
    ];
    for (name, group) in anycast_sets {
        let mut t = FibTable::new_boxed();
        let mut b = FibBuilder::new(&mut t);
        let route = AnycastRoute {
            target: node(1),
            next_hop: None,
            metric_us: 0,
        };
        let mut g = 0;
        while b.counts().anycast < ANYCAST_CAPACITY {
            b.insert_anycast(GroupId(group(g)), route)
                .expect("fits within MAX_PROBE");
            g += 1;
        }
        let longest = longest_anycast_probe(&t);
        println!("anycast, {ANYCAST_CAPACITY} groups, {name}: longest probe {longest}");
        worst = worst.max(longest);
    }
    // Far below the bound: a regression of the hash would show here before inserts fail.
    assert!(worst <= MAX_PROBE / 2, "longest probe {worst}");
}

#[test]
fn distinct_mask_limit_is_enforced_and_unused_masks_are_compacted() {
    let mut t = FibTable::new_boxed();
    let mut b = FibBuilder::new(&mut t);
    let distinct = |i: usize| LinkMask::from_words([i as u64 + 1, 0, 0, 0, 0, 0, 0, 0]);
    let key = |i: usize| (GroupId(i as u32), node(3));
    for i in 0..MULTICAST_MASKS {
        let (group, source) = key(i);
        b.insert_multicast(group, source, &distinct(i), false)
            .expect("fits");
    }
    assert_eq!(b.counts().multicast_masks, MULTICAST_MASKS);
    let before = (b.counts(), b.table().header.checksum);
    let (group, source) = key(MULTICAST_MASKS);
    assert_eq!(
        b.insert_multicast(group, source, &distinct(MULTICAST_MASKS), true),
        Err(FibError::MulticastMasksFull {
            limit: MULTICAST_MASKS
        })
    );
    // Replacing a key's mask with a new one is refused the same way.
    assert_eq!(
        b.insert_multicast(GroupId(0), node(3), &distinct(MULTICAST_MASKS), true),
        Err(FibError::MulticastMasksFull {
            limit: MULTICAST_MASKS
        })
    );
    assert_eq!((b.counts(), b.table().header.checksum), before, "unchanged");
    // A stored mask is still fine, for a new key or an existing one.
    b.insert_multicast(group, source, &distinct(5), true)
        .expect("shares mask 5");
    b.insert_multicast(GroupId(0), node(3), &distinct(1), true)
        .expect("key 0 now shares mask 1; mask 0 is unused");
    assert_eq!(b.counts().multicast_masks, MULTICAST_MASKS);
    b.table().verify().expect("consistent with an unused mask");
    // A new mask now compacts the array (dropping mask 0) and fits.
    b.insert_multicast(GroupId(1 << 20), node(4), &LinkMask::EMPTY, false)
        .expect("fits after compaction");
    assert_eq!(b.counts().multicast_masks, MULTICAST_MASKS);
    assert_eq!(b.counts().multicast, MULTICAST_MASKS + 2);
    drop(b);
    t.verify().expect("consistent after compaction");
    for i in 1..MULTICAST_MASKS {
        let (group, source) = key(i);
        let r = t.multicast(group, source).expect("hit");
        assert_eq!(
            (*r.links, r.local_delivery),
            (distinct(i), false),
            "entry {i}"
        );
    }
    let r = t.multicast(GroupId(0), node(3)).expect("hit");
    assert_eq!((*r.links, r.local_delivery), (distinct(1), true));
    let r = t
        .multicast(GroupId(MULTICAST_MASKS as u32), node(3))
        .expect("hit");
    assert_eq!(*r.links, distinct(5));
    let r = t.multicast(GroupId(1 << 20), node(4)).expect("hit");
    assert_eq!(*r.links, LinkMask::EMPTY);
    // With every stored mask in use, a new one is refused even after compacting.
    let mut b = FibBuilder::new(&mut t);
    assert_eq!(
        b.insert_multicast(GroupId(7), node(7), &distinct(1 << 30), false),
        Err(FibError::MulticastMasksFull {
            limit: MULTICAST_MASKS
        })
    );
    b.clear();
    b.insert_multicast(GroupId(7), node(7), &distinct(1 << 30), false)
        .expect("clear frees every mask");
    assert_eq!(b.counts().multicast_masks, 1);
    t.verify().expect("consistent");
}

#[test]
fn updating_a_key_changes_only_its_mask() {
    let (m1, m2) = (few_masks(1), few_masks(2));
    let mut t = FibTable::new_boxed();
    let mut b = FibBuilder::new(&mut t);
    b.insert_multicast(GroupId(1), node(1), &m1, false)
        .expect("a");
    b.insert_multicast(GroupId(1), node(2), &m1, true)
        .expect("b");
    assert_eq!(b.counts().multicast_masks, 1, "shared");
    b.insert_multicast(GroupId(1), node(1), &m2, true)
        .expect("update a");
    assert_eq!(b.counts().multicast_masks, 2);
    let r = b.table().multicast(GroupId(1), node(1)).expect("a");
    assert_eq!((*r.links, r.local_delivery), (m2, true));
    let r = b.table().multicast(GroupId(1), node(2)).expect("b");
    assert_eq!(
        (*r.links, r.local_delivery),
        (m1, true),
        "b keeps the old mask"
    );
    b.table().verify().expect("consistent");
    // Back to m1: m2 stays stored, unused, until the next clear (or compaction).
    b.insert_multicast(GroupId(1), node(1), &m1, false)
        .expect("update a again");
    assert_eq!(b.counts().multicast_masks, 2);
    assert_eq!(b.counts().multicast, 2);
    b.table().verify().expect("consistent");
    // A builder over an existing table (here a copy) finds the stored masks again.
    let mut copy = FibTable::new_boxed();
    let mut c = FibBuilder::new(&mut copy);
    c.copy_from(&t);
    c.insert_multicast(GroupId(2), node(1), &m2, false)
        .expect("reuses m2");
    c.insert_multicast(GroupId(3), node(1), &m1, false)
        .expect("reuses m1");
    assert_eq!(c.counts().multicast_masks, 2);
    assert_eq!(c.counts().multicast, 4);
    copy.verify().expect("consistent");
    let mut again = FibBuilder::new(&mut copy);
    again
        .insert_multicast(GroupId(4), node(1), &m2, false)
        .expect("reuses m2");
    assert_eq!(again.counts().multicast_masks, 2);
    // The checksum covers content, not positions: a rebuild in another order agrees.
    let mut other = FibTable::new_boxed();
    let mut o = FibBuilder::new(&mut other);
    for (g, m) in [(4, m2), (3, m1), (2, m2)] {
        o.insert_multicast(GroupId(g), node(1), &m, false)
            .expect("insert");
    }
    o.insert_multicast(GroupId(1), node(2), &m1, true)
        .expect("insert");
    o.insert_multicast(GroupId(1), node(1), &m1, false)
        .expect("insert");
    assert_eq!(other.header.checksum, copy.header.checksum);
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
    // Flip one bit of a stored mask: counts still match, the checksum does not.
    let good = a.multicast_masks[0];
    a.multicast_masks[0].words[7] ^= 1;
    assert_eq!(a.verify(), Err(FibError::Corrupt { what: "checksum" }));
    a.multicast_masks[0] = good;
    a.verify().expect("restored");
    // A key pointing at another stored mask: the checksum catches it.
    let mut b = FibBuilder::new(&mut a);
    b.insert_multicast(GroupId(2), node(2), &LinkMask::EMPTY, false)
        .expect("second mask");
    assert_eq!(b.counts().multicast_masks, 2);
    let slot = |t: &FibTable| {
        let home = multicast_home(1, 2);
        (0..MAX_PROBE)
            .map(|k| (home + k) & (MULTICAST_SLOTS - 1))
            .find(|&i| t.multicast_slots[i].group == 1 && t.multicast_slots[i].source == 2)
            .expect("slot of (1, 2)")
    };
    let i = slot(&a);
    assert_eq!(a.multicast_slots[i].route, 0);
    a.multicast_slots[i].route = 1;
    assert_eq!(a.verify(), Err(FibError::Corrupt { what: "checksum" }));
    // An index past the stored masks (but inside the array) reads as no route.
    a.multicast_slots[i].route = 2;
    assert_eq!(
        a.verify(),
        Err(FibError::Corrupt {
            what: "multicast mask index"
        })
    );
    assert_eq!(a.multicast(GroupId(1), node(2)), None);
    a.multicast_slots[i].route = u32::MAX;
    assert_eq!(a.multicast(GroupId(1), node(2)), None);
    assert_eq!(a.multicast_routes().count(), 1, "only (2, 2) is listed");
    let mut b = FibBuilder::new(&mut a);
    assert_eq!(
        b.insert_multicast(GroupId(1), node(2), &LinkMask::EMPTY, true),
        Err(FibError::Corrupt {
            what: "multicast mask index"
        })
    );
    a.multicast_slots[i].route = 0;
    a.verify().expect("restored");
    // A mask stored twice, or a mask count past the array.
    a.multicast_masks[1] = a.multicast_masks[0];
    assert_eq!(
        a.verify(),
        Err(FibError::Corrupt {
            what: "duplicate multicast mask"
        })
    );
    a.header.multicast_mask_count = MULTICAST_MASKS as u32 + 1;
    assert_eq!(
        a.verify(),
        Err(FibError::Corrupt {
            what: "multicast mask count"
        })
    );
    assert_eq!(
        a.multicast(GroupId(1), node(2)).map(|r| r.links.words()[0]),
        Some(3)
    );
    // A mask count that is merely too large (an unused garbage mask) changes the checksum.
    a.multicast_masks[1] = LinkMask::EMPTY;
    a.multicast_masks[2] = LinkMask::from_words([9; 8]);
    a.header.multicast_mask_count = 3;
    assert_eq!(a.verify(), Err(FibError::Corrupt { what: "checksum" }));
    a.header.multicast_mask_count = 2;
    a.verify().expect("restored");
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
        "mask index out of range"
    );
    // In range of the array but past the header's mask count: still no route.
    t.multicast_slots.iter_mut().for_each(|s| s.route = 3);
    t.header.multicast_mask_count = 3;
    assert_eq!(t.multicast(GroupId(7), node(9)), None);
    t.header.multicast_mask_count = u32::MAX;
    t.multicast_slots
        .iter_mut()
        .for_each(|s| s.route = MULTICAST_MASKS as u32);
    assert_eq!(t.multicast(GroupId(7), node(9)), None, "past the array");
    assert_eq!(t.multicast_routes().count(), 0);
    assert!(t.verify().is_err());
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
    let home = multicast_home(42, 5);
    for k in 0..MAX_PROBE {
        t.multicast_slots[(home + k) & (MULTICAST_SLOTS - 1)] = MulticastSlot {
            group: 1,
            source: 1,
            flags: 0,
            route: 0,
            reserved: 0,
        };
    }
    let mut b = FibBuilder::new(&mut t);
    assert_eq!(
        b.insert_multicast(GroupId(42), node(5), &LinkMask::EMPTY, true),
        Err(FibError::ProbeLimit {
            table: "multicast",
            probes: MAX_PROBE
        })
    );
    assert_eq!(
        b.counts().multicast_masks,
        0,
        "a refused insert stores no mask"
    );
}
