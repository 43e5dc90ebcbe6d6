//! The config hash follows meaning, not text.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::config::*;

/// `base()` rewritten: comments, blank lines, key order, block order, inline tables, hex
/// integers and spelled-out defaults; the same meaning.
const REFORMATTED: &str = r#"
# A comment at the top.
[[link]]
cost = 1000          # key order differs
nodes = [2, 3]
id = 0x7
paths = [["a", "a"], ["b", "b"]]   # the default, spelled out
mtu = 1500

[[node]]
name = "three"
id = 3
interface = [ { addr = "127.0.1.3:7003", isp = "a" }, { isp = "b", addr = "127.0.2.3:7003" } ]

[overlay]
auth = "none"
name = "t"

[[node]]
id = 1
name = "one"
cores = [0]
session_socket = "/run/weft/node1.sock"
ctl_socket = "/run/weft/node1.ctl"
shm_name = "weft-t-node1"

    [[node.interface]]
    # Interfaces in the other order.
    isp = "b"
    addr = "127.0.2.1:7001"

    [[node.interface]]
    isp = "a"
    addr = "127.0.1.1:7001"

[[node]]
id = 2
name = "two"
[[node.interface]]
isp = "a"
addr = "127.0.1.2:7002"
[[node.interface]]
isp = "b"
addr = "127.0.2.2:7002"

[[link]]
id = 0
nodes = [2, 1]
cost = 1_000

[timers]
hello_interval_ms = 10
path_dead_after_ms = 100
path_up_after_hellos = 3
link_state_refresh_ms = 30000
link_state_max_age_ms = 120000
fib_publish_min_interval_ms = 5
"#;

#[test]
fn reformatting_keeps_the_hash() {
    let reformatted = format!("schema = 1\n{REFORMATTED}");
    let (a, b) = (parse(&base()).unwrap(), parse(&reformatted).unwrap());
    assert_eq!(a, b);
    assert_eq!(a.hash(), b.hash());
}

#[test]
fn every_change_of_meaning_changes_the_hash() {
    let b = base();
    let t = |body: &str| format!("{b}\n[timers]\n{body}\n");
    let variants = [
        edit(
            &b,
            "nodes = [2, 3]\ncost = 1000",
            "nodes = [2, 3]\ncost = 1001",
        ),
        edit(&b, "nodes = [2, 3]\n", "nodes = [2, 3]\nmtu = 1400\n"),
        edit(
            &b,
            "nodes = [2, 3]\n",
            "nodes = [2, 3]\npaths = [[\"b\", \"b\"], [\"a\", \"a\"]]\n",
        ),
        edit(
            &b,
            "nodes = [2, 3]\n",
            "nodes = [2, 3]\npaths = [[\"a\", \"a\"]]\n",
        ),
        edit(&b, "id = 7\n", "id = 8\n"),
        edit(&b, "name = \"two\"", "name = \"deux\""),
        edit(&b, "name = \"t\"", "name = \"u\""),
        edit(&b, "127.0.2.3:7003", "127.0.2.3:7004"),
        edit(&b, "name = \"one\"\n", "name = \"one\"\ncores = [1]\n"),
        edit(&b, "name = \"one\"\n", "name = \"one\"\ncores = [0, 1]\n"),
        edit(
            &b,
            "name = \"one\"\n",
            "name = \"one\"\nsession_socket = \"/tmp/x.sock\"\n",
        ),
        edit(
            &b,
            "name = \"one\"\n",
            "name = \"one\"\nshm_name = \"other\"\n",
        ),
        edit(
            &b,
            "name = \"one\"\n",
            "name = \"one\"\nctl_socket = \"/tmp/x.ctl\"\n",
        ),
        edit(
            &b,
            "isp = \"b\"\naddr = \"127.0.2.3",
            "isp = \"c\"\naddr = \"127.0.2.3",
        ),
        t("hello_interval_ms = 11"),
        t("path_dead_after_ms = 101"),
        t("path_up_after_hellos = 4"),
        t("link_state_refresh_ms = 30001"),
        t("link_state_max_age_ms = 120001"),
        t("fib_publish_min_interval_ms = 0"),
    ];
    let mut hashes = BTreeSet::from([parse(&b).unwrap().hash()]);
    for v in &variants {
        let h = parse(v).unwrap().hash();
        assert!(hashes.insert(h), "hash {h} repeats for variant:\n{v}");
    }
}

#[test]
fn hash_shows_as_16_hex_digits() {
    assert_eq!(ConfigHash::from_u64(0xab).to_string(), "00000000000000ab");
    let shown = parse(&base()).unwrap().hash().to_string();
    assert_eq!(shown.len(), 16);
    assert!(
        shown
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
}

/// Pins the canonical encoding (the value was reproduced independently from the encoding as
/// written in docs/config.md). If this changes, every deployed node disagrees with every
/// upgraded one, so it may only change together with SCHEMA_VERSION.
#[test]
fn hash_encoding_is_pinned() {
    assert_eq!(
        parse(&base()).unwrap().hash().to_string(),
        "2e98273bbb64063a"
    );
}

proptest! {
    /// Any order of nodes, links and interfaces in the file gives the same config and hash.
    #[test]
    fn block_order_does_not_matter(seed in any::<u64>()) {
        let raw: RawConfig = toml::from_str(&base()).unwrap();
        let reference = Config::try_from(raw.clone()).unwrap();
        let mut shuffled = raw;
        shuffle(&mut shuffled.nodes, seed);
        shuffle(&mut shuffled.links, seed.rotate_left(17));
        for (i, n) in shuffled.nodes.iter_mut().enumerate() {
            shuffle(&mut n.interfaces, seed ^ i as u64);
        }
        let config = Config::try_from(shuffled).unwrap();
        prop_assert_eq!(config.hash(), reference.hash());
        prop_assert_eq!(config, reference);
    }
}

/// A deterministic Fisher-Yates shuffle driven by a xorshift generator seeded with `seed`.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed | 1;
    for i in (1..items.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        items.swap(i, usize::try_from(x % (i as u64 + 1)).unwrap());
    }
}

#[test]
fn key_files_resolve_next_to_the_config_and_enter_the_hash_by_name() {
    let keyed = edit(
        &base(),
        "id = 7\nnodes = [2, 3]\ncost = 1000\n",
        "id = 7\nnodes = [2, 3]\ncost = 1000\nkey_file = \"keys/link7.key\"\n",
    );
    let plain = parse(&base()).unwrap();
    let c = Config::from_toml_str(&keyed, "/etc/weft/overlay.toml").unwrap();
    let link = c.link(crate::ids::LinkId::new(7).unwrap()).unwrap();
    assert_eq!(
        link.key_file(),
        Some(std::path::Path::new("/etc/weft/keys/link7.key"))
    );
    assert_eq!(link.key_file_written(), Some("keys/link7.key"));
    assert_eq!(
        plain
            .link(crate::ids::LinkId::new(0).unwrap())
            .unwrap()
            .key_file(),
        None
    );
    // Which links are keyed is part of the meaning (both ends must agree); where the config
    // file lies is not.
    assert_ne!(c.hash(), plain.hash());
    assert_eq!(parse(&keyed).unwrap().hash(), c.hash());
    let other = edit(&keyed, "link7.key", "other.key");
    assert_ne!(parse(&other).unwrap().hash(), c.hash());
    let empty = edit(&keyed, "\"keys/link7.key\"", "\"\"");
    fails(&empty, &["link[id=7].key_file", "1..=4096 bytes"]);
}

#[test]
fn busy_poll_defaults_off_is_bounded_and_enters_the_hash_when_set() {
    let plain = parse(&base()).unwrap();
    assert!(plain.nodes().iter().all(|n| n.busy_poll().is_zero()));
    let zero = edit(
        &base(),
        "name = \"three\"\n",
        "name = \"three\"\nbusy_poll_us = 0\n",
    );
    assert_eq!(parse(&zero).unwrap().hash(), plain.hash());
    let set = edit(
        &base(),
        "name = \"three\"\n",
        "name = \"three\"\nbusy_poll_us = 200\n",
    );
    let c = parse(&set).unwrap();
    let three = c.node(crate::ids::NodeId::new(3).unwrap()).unwrap();
    assert_eq!(three.busy_poll(), core::time::Duration::from_micros(200));
    assert_ne!(c.hash(), plain.hash());
    for bad in ["1001", "-1"] {
        let wrong = edit(
            &base(),
            "name = \"three\"\n",
            &format!("name = \"three\"\nbusy_poll_us = {bad}\n"),
        );
        fails(&wrong, &["busy_poll_us", "out of range 0..=1000 us"]);
    }
}

#[test]
fn packing_defaults_on_and_only_turning_it_off_enters_the_hash() {
    let plain = parse(&base()).unwrap();
    assert!(plain.nodes().iter().all(|n| n.packing()));
    let spelled = edit(
        &base(),
        "name = \"three\"\n",
        "name = \"three\"\npacking = true\n",
    );
    assert_eq!(parse(&spelled).unwrap().hash(), plain.hash());
    let off = edit(
        &base(),
        "name = \"three\"\n",
        "name = \"three\"\npacking = false\n",
    );
    let c = parse(&off).unwrap();
    let three = c.node(crate::ids::NodeId::new(3).unwrap()).unwrap();
    assert!(!three.packing());
    assert_ne!(c.hash(), plain.hash());
    let wrong = edit(
        &base(),
        "name = \"three\"\n",
        "name = \"three\"\npacking = \"yes\"\n",
    );
    fails(&wrong, &["packing"]);
}
