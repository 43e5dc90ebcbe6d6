//! One test per error kind: the message names the file and the field path.

use super::*;
use crate::config::*;

#[test]
fn syntax_error_has_line_and_column() {
    let text = edit(
        &base(),
        "cost = 1000\n\n[[link]]",
        "cost = = 1000\n\n[[link]]",
    );
    let e = fails(&text, &["TOML syntax error"]);
    assert!(matches!(e.kind(), ConfigErrorKind::Syntax { .. }));
    let loc = e.location().unwrap();
    assert_eq!(loc.line, line_of(&text, "cost = = 1000", 0));
    assert!(e.to_string().starts_with(&format!("t.toml:{}:", loc.line)));
}

#[test]
fn unknown_field() {
    let text = edit(
        &base(),
        "addr = \"127.0.2.2:7002\"",
        "adr = \"127.0.2.2:7002\"",
    );
    let e = fails(&text, &["node[1].interface[1].adr", "unknown field `adr`"]);
    assert!(matches!(e.kind(), ConfigErrorKind::UnknownField { .. }));
    assert_eq!(e.location().unwrap().line, line_of(&text, "adr =", 0));
}

#[test]
fn unknown_top_level_table() {
    let text = format!("{}\n[timer]\nhello_interval_ms = 5\n", base());
    fails(&text, &["timer", "unknown field `timer`"]);
}

#[test]
fn missing_field() {
    let text = edit(&base(), "addr = \"127.0.1.3:7003\"\n", "");
    let e = fails(
        &text,
        &["node[2].interface[0].addr", "missing required field"],
    );
    assert!(matches!(e.kind(), ConfigErrorKind::MissingField));
    let missing_overlay = edit(&base(), "[overlay]\nname = \"t\"\n", "");
    fails(
        &missing_overlay,
        &["t.toml:1:1: overlay: missing required field"],
    );
    let missing_schema = edit(&base(), "schema = 1\n", "");
    fails(
        &missing_schema,
        &["t.toml:1:1: schema: missing required field"],
    );
}

#[test]
fn wrong_type() {
    let text = edit(
        &base(),
        "id = 7\nnodes = [2, 3]\ncost = 1000",
        "id = 7\nnodes = [2, 3]\ncost = \"1 ms\"",
    );
    let e = fails(&text, &["link[1].cost", "invalid type"]);
    assert!(matches!(e.kind(), ConfigErrorKind::WrongType { .. }));
    assert_eq!(
        e.location().unwrap().line,
        line_of(&text, "cost = \"1 ms\"", 0)
    );
}

#[test]
fn bad_schema_version() {
    let e = fails(
        &edit(&base(), "schema = 1", "schema = 2"),
        &["t.toml:1:10: schema: ", "2", "schema = 1"],
    );
    assert!(matches!(e.kind(), ConfigErrorKind::SchemaVersion { .. }));
    // A newer schema's new keys must not hide the version problem.
    let newer = format!(
        "schema = 2\nfuture_key = true\n{}",
        edit(&base(), "schema = 1\n", "")
    );
    fails(&newer, &["schema: unsupported schema version 2"]);
    fails(
        &edit(&base(), "schema = 1", "schema = \"1\""),
        &["schema: ", "of type string"],
    );
    // The same number spelled in hex is still version 1.
    assert!(parse(&edit(&base(), "schema = 1", "schema = 0x1")).is_ok());
}

#[test]
fn auth_modes() {
    let text = edit(
        &base(),
        "name = \"t\"\n",
        "name = \"t\"\nauth = \"aes-128-gcm\"\n",
    );
    let e = fails(&text, &["overlay.auth", "not supported yet"]);
    assert!(matches!(e.kind(), ConfigErrorKind::NotSupported { .. }));
    let text = edit(
        &base(),
        "name = \"t\"\n",
        "name = \"t\"\nauth = \"rot13\"\n",
    );
    fails(&text, &["overlay.auth", "unknown auth mode \"rot13\""]);
    let text = edit(&base(), "name = \"t\"\n", "name = \"t\"\nauth = \"none\"\n");
    assert_eq!(parse(&text).unwrap().overlay().auth(), Auth::None);
}

#[test]
fn bad_values_name_their_field() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "id = 1\n",
            "id = 0\n",
            &["node[0].id", "out of range 1..=1023"],
        ),
        ("id = 3\n", "id = 1024\n", &["node[2].id", "1024"]),
        (
            "name = \"two\"",
            "name = \"two words\"",
            &["node[id=2].name", "node name"],
        ),
        ("name = \"t\"", "name = \"\"", &["overlay.name"]),
        (
            "name = \"one\"\n",
            "name = \"one\"\ncores = []\n",
            &["node[id=1].cores", "at least one"],
        ),
        (
            "name = \"one\"\n",
            "name = \"one\"\ncores = [0, 1, 0]\n",
            &["node[id=1].cores[2]", "twice"],
        ),
        (
            "name = \"one\"\n",
            "name = \"one\"\ncores = [-1]\n",
            &["node[id=1].cores[0]", "out of range"],
        ),
        (
            "127.0.1.2:7002",
            "127.0.1.2",
            &["node[id=2].interface[0].addr", "IP:port"],
        ),
        (
            "127.0.1.2:7002",
            "127.0.1.2:0",
            &["node[id=2].interface[0].addr", "port 0"],
        ),
        (
            "127.0.1.2:7002",
            "0.0.0.0:7002",
            &["node[id=2].interface[0].addr", "unicast"],
        ),
        (
            "isp = \"a\"\naddr = \"127.0.1.2",
            "isp = \"a b\"\naddr = \"127.0.1.2",
            &["node[id=2].interface[0].isp"],
        ),
        ("id = 7\n", "id = 512\n", &["link[1].id", "0..=511"]),
        (
            "nodes = [2, 3]",
            "nodes = [2, 3, 1]",
            &["link[id=7].nodes", "exactly two"],
        ),
        (
            "nodes = [2, 3]",
            "nodes = [2, 0]",
            &["link[id=7].nodes[1]", "out of range"],
        ),
        (
            "nodes = [2, 3]\ncost = 1000",
            "nodes = [2, 3]\ncost = 0",
            &["link[id=7].cost", "1..=10000000"],
        ),
        (
            "nodes = [2, 3]\n",
            "nodes = [2, 3]\nmtu = 575\n",
            &["link[id=7].mtu", "576"],
        ),
        (
            "nodes = [2, 3]\n",
            "nodes = [2, 3]\npaths = []\n",
            &["link[id=7].paths", "1..=8 paths"],
        ),
        (
            "nodes = [2, 3]\n",
            "nodes = [2, 3]\npaths = [[\"a\"]]\n",
            &["link[id=7].paths[0]", "pair"],
        ),
        (
            "nodes = [2, 3]\n",
            "nodes = [2, 3]\npaths = [[\"a\", \"a\"], [\"a\", \"a\"]]\n",
            &["link[id=7].paths[1]", "twice (also link[id=7].paths[0])"],
        ),
        (
            "name = \"one\"\n",
            "name = \"one\"\nsession_socket = \"run/x.sock\"\n",
            &["node[id=1].session_socket", "absolute"],
        ),
        (
            "name = \"one\"\n",
            "name = \"one\"\nshm_name = \"/weft\"\n",
            &["node[id=1].shm_name", "no '/'"],
        ),
    ];
    for (from, to, fragments) in cases {
        let e = fails(&edit(&base(), from, to), fragments);
        assert!(matches!(e.kind(), ConfigErrorKind::BadValue { .. }), "{e}");
    }
    let long = format!("name = \"one\"\nctl_socket = \"/{}\"\n", "x".repeat(107));
    fails(
        &edit(&base(), "name = \"one\"\n", &long),
        &["node[id=1].ctl_socket", "at most 107"],
    );
}

#[test]
fn interface_count_is_checked() {
    let nine: String = (0..9)
        .map(|i| format!("[[node.interface]]\nisp = \"x{i}\"\naddr = \"127.0.9.{i}:1\"\n"))
        .collect();
    let text = edit(
        &base(),
        "name = \"three\"\n",
        &format!("name = \"three\"\n{nine}"),
    );
    fails(&text, &["node[id=3].interface", "1..=8", "found 11"]);
    let bare = "schema = 1\n[overlay]\nname = \"t\"\n[[node]]\nid = 1\nname = \"one\"\n";
    fails(bare, &["node[id=1].interface", "found 0"]);
}

#[test]
fn duplicate_node_id() {
    let e = fails(
        &edit(&base(), "id = 3\n", "id = 1\n"),
        &["node[2].id", "duplicate node id 1", "node[0]"],
    );
    assert!(matches!(
        e.kind(),
        ConfigErrorKind::DuplicateNodeId { id: 1, .. }
    ));
}

#[test]
fn duplicate_node_name() {
    let e = fails(
        &edit(&base(), "name = \"three\"", "name = \"one\""),
        &["node[id=3].name", "node[id=1]"],
    );
    assert!(matches!(
        e.kind(),
        ConfigErrorKind::DuplicateNodeName { .. }
    ));
}

#[test]
fn duplicate_isp_on_a_node() {
    let text = edit(
        &base(),
        "isp = \"b\"\naddr = \"127.0.2.3",
        "isp = \"a\"\naddr = \"127.0.2.3",
    );
    let e = fails(
        &text,
        &["node[id=3].interface[1].isp", "node[id=3].interface[0].isp"],
    );
    assert!(matches!(e.kind(), ConfigErrorKind::DuplicateIsp { .. }));
}

#[test]
fn duplicate_address_names_both() {
    // Same IP and port on two nodes: a port clash.
    let text = edit(&base(), "127.0.2.3:7003", "127.0.1.2:7002");
    let e = fails(
        &text,
        &[
            "node[id=3].interface[1].addr",
            "duplicate address 127.0.1.2:7002",
            "node[id=2].interface[0].addr",
        ],
    );
    assert!(matches!(e.kind(), ConfigErrorKind::DuplicateAddress { .. }));
    assert_eq!(
        e.location().unwrap().line,
        line_of(&text, "127.0.1.2:7002", 1)
    );
    // Within one node.
    let text = edit(&base(), "127.0.2.1:7001", "127.0.1.1:7001");
    fails(
        &text,
        &[
            "node[id=1].interface[1].addr",
            "node[id=1].interface[0].addr",
        ],
    );
    // Same port on different IPs is fine.
    assert!(parse(&edit(&base(), "127.0.2.3:7003", "127.0.2.3:7002")).is_ok());
}

#[test]
fn socket_and_shm_collisions_name_both() {
    let text = edit(
        &base(),
        "name = \"two\"\n",
        "name = \"two\"\nsession_socket = \"/run/weft/node1.ctl\"\n",
    );
    let e = fails(
        &text,
        &[
            "node[id=2].session_socket",
            "/run/weft/node1.ctl",
            "node[id=1].ctl_socket",
        ],
    );
    assert!(matches!(
        e.kind(),
        ConfigErrorKind::DuplicateResource { .. }
    ));
    let text = edit(
        &base(),
        "name = \"two\"\n",
        "name = \"two\"\nctl_socket = \"/run/weft/node2.sock\"\n",
    );
    fails(
        &text,
        &["node[id=2].ctl_socket", "node[id=2].session_socket"],
    );
    let text = edit(
        &base(),
        "name = \"three\"\n",
        "name = \"three\"\nshm_name = \"weft-t-node1\"\n",
    );
    fails(
        &text,
        &[
            "node[id=3].shm_name",
            "shared-memory name",
            "node[id=1].shm_name",
        ],
    );
}

#[test]
fn duplicate_link_id() {
    let e = fails(
        &edit(&base(), "id = 7\n", "id = 0\n"),
        &["link[1].id", "duplicate link id 0", "link[0]"],
    );
    assert!(matches!(
        e.kind(),
        ConfigErrorKind::DuplicateLinkId { id: 0, .. }
    ));
}

#[test]
fn duplicate_link_between_a_pair() {
    let text = format!("{}\n[[link]]\nid = 5\nnodes = [2, 1]\ncost = 1\n", base());
    let e = fails(
        &text,
        &["link[id=5].nodes", "between nodes 1 and 2", "link[id=0]"],
    );
    assert!(matches!(
        e.kind(),
        ConfigErrorKind::DuplicateLink { a: 1, b: 2, .. }
    ));
}

#[test]
fn unknown_node_in_link() {
    let e = fails(
        &edit(&base(), "nodes = [2, 3]", "nodes = [2, 9]"),
        &["link[id=7].nodes[1]", "unknown node 9"],
    );
    assert!(matches!(e.kind(), ConfigErrorKind::UnknownNode { id: 9 }));
}

#[test]
fn link_to_itself() {
    let e = fails(
        &edit(&base(), "nodes = [2, 3]", "nodes = [3, 3]"),
        &["link[id=7].nodes", "node 3 to itself"],
    );
    assert!(matches!(e.kind(), ConfigErrorKind::SelfLink { id: 3 }));
}

#[test]
fn unknown_isp_in_path() {
    let text = edit(
        &base(),
        "nodes = [2, 3]\n",
        "nodes = [2, 3]\npaths = [[\"a\", \"a\"], [\"b\", \"c\"]]\n",
    );
    let e = fails(
        &text,
        &[
            "link[id=7].paths[1]",
            "unknown ISP \"c\" on node 3",
            "has: a, b",
        ],
    );
    assert!(matches!(
        e.kind(),
        ConfigErrorKind::UnknownIsp { node: 3, .. }
    ));
    assert_eq!(e.location().unwrap().line, line_of(&text, "paths = ", 0));
}

#[test]
fn path_ends_must_share_an_ip_family() {
    let text = edit(&base(), "127.0.2.3:7003", "[::1]:7003");
    let text = edit(
        &text,
        "nodes = [2, 3]\n",
        "nodes = [2, 3]\npaths = [[\"a\", \"b\"]]\n",
    );
    fails(&text, &["link[id=7].paths[0]", "IPv4 or both IPv6"]);
}

#[test]
fn timers_inconsistent() {
    let t = |body: &str| format!("{}\n[timers]\n{body}\n", base());
    let e = fails(
        &t("hello_interval_ms = 40"),
        &["timers.path_dead_after_ms", "3 × hello_interval_ms"],
    );
    assert!(matches!(
        e.kind(),
        ConfigErrorKind::TimersInconsistent { .. }
    ));
    // Exactly three intervals is not enough; one more millisecond is.
    fails(
        &t("hello_interval_ms = 20\npath_dead_after_ms = 60"),
        &["timers.path_dead_after_ms"],
    );
    assert!(parse(&t("hello_interval_ms = 20\npath_dead_after_ms = 61")).is_ok());
    fails(
        &t("link_state_refresh_ms = 70000"),
        &["timers.link_state_max_age_ms", "2 × link_state_refresh_ms"],
    );
    fails(
        &t("fib_publish_min_interval_ms = 100"),
        &["timers.fib_publish_min_interval_ms"],
    );
    fails(
        &t("path_up_after_hellos = 0"),
        &["timers.path_up_after_hellos", "out of range 1..=100"],
    );
}

#[test]
fn io_error_names_the_file() {
    let e = Config::load("/nonexistent/weft.toml").unwrap_err();
    assert!(matches!(e.kind(), ConfigErrorKind::Io(_)));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/weft.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn too_many_default_paths_asks_for_an_explicit_list() {
    // Three ISPs each and none in common: 9 pairs, more than 8.
    let mut text = base();
    for n in [2, 3] {
        let extra = format!(
            "[[node.interface]]\nisp = \"z{n}\"\naddr = \"127.0.3.{n}:1\"\n\n\
             [[node.interface]]\nisp = \"a\""
        );
        text = edit(
            &text,
            &format!("[[node.interface]]\nisp = \"a\"\naddr = \"127.0.1.{n}"),
            &format!("{extra}\naddr = \"127.0.1.{n}"),
        );
    }
    let text = edit(
        &text,
        "isp = \"a\"\naddr = \"127.0.1.3",
        "isp = \"q\"\naddr = \"127.0.1.3",
    );
    let text = edit(
        &text,
        "isp = \"b\"\naddr = \"127.0.2.3",
        "isp = \"r\"\naddr = \"127.0.2.3",
    );
    fails(
        &text,
        &["link[id=7].paths", "gives 9 paths", "list paths explicitly"],
    );
}
