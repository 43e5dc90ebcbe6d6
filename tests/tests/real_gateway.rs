//! `weft gateway` on real processes: an unmodified application's UDP stream (synthetic
//! MPEG-TS, 7 × 188 B per datagram, as ffmpeg sends it with `pkt_size=1316`) crosses a 4-node
//! overlay from an ingress gateway on node 1 to an egress gateway on node 4:
//!
//! ```text
//!                      2
//!  UDP -> ingress  1 <   > 4  egress -> UDP      links 1-2 and 2-4 cost 10 ms, 1-3 and 3-4
//!                      3                          20 ms: the route from 1 to 4 is 1-2-4
//! ```
//!
//! - every datagram arrives unchanged, in order, none lost or duplicated, and the TS headers
//!   show no continuity-counter error; an oversize datagram is dropped and counted; the
//!   counters both gateways print on SIGTERM say the same;
//! - two mappings per process from TOML files carry two streams at once, one each way;
//! - one ingress on node 1 sends a stream to multicast group 7 with real-time service, and
//!   egresses joined to the group on nodes 3 and 4 (4 behind node 2, which is no member)
//!   each deliver every datagram, unchanged and in order; group messages for another port
//!   are counted and not delivered;
//! - bad options, no node, an address or port in use, a refused service (more strikes than
//!   the node allows) and a node that goes away end the gateway with status 1 and a message
//!   that says what is wrong; `realtime` and `reliable` are accepted.
//!
//! Gateways are `weft gateway` child processes; each test uses its own loopback block
//! (`127.A.B.x`, hosts 100 and up for the applications' UDP sockets).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod real_gateway_common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use real_gateway_common::{
    CountingReceiver, DATAGRAM, GatewayProc, NULL_PID, TsStream, assert_same_stream,
    final_counters, have, path, receive, run_gateway, send_paced, strings, ts_errors,
};
use weft_client::{Client, Service};
use weft_shared::ids::{GroupId, Port};
use weft_shared::session::Destination;
use weft_tests::overlay::{Addrs, LinkSpec, Overlay, Role, Start};

fn diamond(name: &str) -> Overlay {
    let link = |id, a, b, cost_us| LinkSpec { id, a, b, cost_us };
    let links = [
        link(0, 1, 2, 10_000),
        link(1, 1, 3, 20_000),
        link(2, 2, 4, 10_000),
        link(3, 3, 4, 20_000),
    ];
    let o = Overlay::start(name, 4, &links, Start::Separate);
    o.wait_converged(Duration::from_secs(15));
    o
}

#[test]
fn the_ts_generator_and_checker_agree() {
    let mut s = TsStream::datagrams(0x100, 7, 40);
    assert!(s.iter().all(|d| d.len() == DATAGRAM));
    assert_eq!(ts_errors(&s, 0x100), (0, 0));
    assert_eq!(ts_errors(&s, 0x101), (280, 0), "another PID");
    s.remove(3);
    assert_eq!(
        ts_errors(&s, 0x100),
        (0, 1),
        "a lost datagram breaks the counter"
    );
    s.swap(5, 6);
    assert_eq!(
        ts_errors(&s, 0x100).1,
        1 + 3,
        "so do reordered ones, at three boundaries"
    );
}

// ---------------------------------------------------------------------------------------------
// The tests

/// Datagrams of the main stream, and their rate: 2,400 at 400/s (6 s, 4.2 Mbit/s).
const COUNT: usize = 2_400;
const RATE: u64 = 400;

#[test]
fn an_mpeg_ts_stream_crosses_the_overlay_unchanged_and_in_order() {
    let name = "gw-ts";
    let o = diamond(name);
    let addrs = Addrs::new(name);
    let player = addrs.host(0, 100, 6000);
    let listen = addrs.host(0, 101, 5000);
    let sink = UdpSocket::bind(player).unwrap();

    let mut egress = GatewayProc::start(&strings(&[
        "--socket",
        &path(&o.session_socket(4)),
        "--port",
        "5000",
        "--deliver",
        &player.to_string(),
        "--json",
    ]));
    egress.wait_ready(1);
    let mut ingress = GatewayProc::start(&strings(&[
        "--socket",
        &path(&o.session_socket(1)),
        "--listen",
        &listen.to_string(),
        "--to",
        "4:5000",
        "--service",
        "best-effort",
        "--json",
    ]));
    let ready = ingress.wait_ready(1).join("\n");
    eprintln!("{ready}");
    // "... at most N B per datagram)": the node's payload limit, which 1,316 B must fit.
    let max_payload: usize = ready
        .split("at most ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no payload limit in {ready:?}"));
    assert!(max_payload >= DATAGRAM, "{ready}");

    let stream = TsStream::datagrams(0x100, 42, COUNT);
    let receiver = receive(sink, COUNT, Duration::from_secs(5));
    // One datagram over the limit first: dropped and counted, the stream unharmed.
    let src = UdpSocket::bind((listen.ip(), 0)).unwrap();
    src.send_to(&vec![0x47; max_payload + 1], listen).unwrap();
    let started = Instant::now();
    send_paced(listen, &stream, RATE);
    let sent_in = started.elapsed();
    let got = receiver.join().unwrap();
    eprintln!(
        "sent {COUNT} datagrams in {sent_in:?} ({RATE}/s), received {}",
        got.len()
    );
    assert_same_stream("node 1 -> node 4", &stream, &got, 0x100);

    let (code, out, err) = ingress.stop();
    assert_eq!(code, 0, "ingress exit status; stderr:\n{err}");
    assert!(err.contains("stopping on SIGTERM"), "{err}");
    assert!(
        err.contains(&format!("dropped a datagram of {} B", max_payload + 1)),
        "the oversize datagram is warned about:\n{err}"
    );
    let i = final_counters(&out, "ingress");
    eprintln!("ingress: {i}");
    assert_eq!(i["role"], "ingress");
    assert_eq!(i["received"], COUNT as u64 + 1);
    assert_eq!(i["dropped_oversize"], 1);
    assert_eq!(i["sent"], COUNT as u64);
    assert_eq!(i["dropped_queue_full"], 0);
    assert_eq!(i["dropped_at_stop"], 0);
    assert_eq!(i["node_dropped"], 0);

    let (code, out, err) = egress.stop();
    assert_eq!(code, 0, "egress exit status; stderr:\n{err}");
    let e = final_counters(&out, "egress");
    eprintln!("egress: {e}");
    assert_eq!(e["delivered"], COUNT as u64);
    assert_eq!(e["delivered_bytes"], (COUNT * DATAGRAM) as u64);
    assert_eq!(e["sent"], COUNT as u64);
    assert_eq!(e["streams"], 1);
    assert_eq!((e["gaps"].clone(), e["late"].clone()), (0.into(), 0.into()));
    assert_eq!(e["send_errors"], 0);
}

/// Two gateway processes, each from its own config file, carry one stream each way at once.
/// Both flows are reliable: the test asserts byte-identical streams, which best effort does
/// not promise when a loaded machine deschedules a process (a CI run lost 11 datagrams).
#[test]
fn two_streams_cross_at_once_one_each_way_from_config_files() {
    let name = "gw-two";
    let o = diamond(name);
    let addrs = Addrs::new(name);
    // Stream A: node 1 -> node 4 (overlay port 5001); stream B: node 4 -> node 1 (5002).
    let (listen_a, player_a) = (addrs.host(0, 101, 5001), addrs.host(0, 100, 6001));
    let (listen_b, player_b) = (addrs.host(0, 104, 5002), addrs.host(0, 103, 6002));
    let sink_a = UdpSocket::bind(player_a).unwrap();
    let sink_b = UdpSocket::bind(player_b).unwrap();
    let write = |node: u16, text: String| -> PathBuf {
        let file = o.dir.join(format!("gateway-n{node}.toml"));
        std::fs::write(&file, text).unwrap();
        file
    };
    let n1 = write(
        1,
        format!(
            "socket = {:?}\n\
             [[ingress]]\nlisten = \"{listen_a}\"\nto = \"4:5001\"\nservice = \"reliable\"\n\
             [[egress]]\nport = 5002\ndeliver = \"{player_b}\"\n",
            path(&o.session_socket(1))
        ),
    );
    let n4 = write(
        4,
        format!(
            "[[egress]]\nport = 5001\ndeliver = \"{player_a}\"\n\
             [[ingress]]\nlisten = \"{listen_b}\"\nto = \"1:5002\"\nservice = \"reliable\"\n"
        ),
    );
    let mut g1 = GatewayProc::start(&strings(&[
        "--config",
        &path(&n1),
        "--json",
        "--stats-every-s",
        "1",
    ]));
    // Node 4's file names no socket: the command line's applies.
    let mut g4 = GatewayProc::start(&strings(&[
        "--config",
        &path(&n4),
        "--socket",
        &path(&o.session_socket(4)),
        "--json",
    ]));
    g1.wait_ready(2);
    g4.wait_ready(2);

    let count = 1_500;
    let stream_a = TsStream::datagrams(0x101, 1, count);
    let stream_b = TsStream::datagrams(0x102, 2, count);
    let recv_a = receive(sink_a, count, Duration::from_secs(5));
    let recv_b = receive(sink_b, count, Duration::from_secs(5));
    let b = stream_b.clone();
    let send_b = std::thread::spawn(move || send_paced(listen_b, &b, 300));
    send_paced(listen_a, &stream_a, 300);
    send_b.join().unwrap();
    assert_same_stream(
        "stream A, node 1 -> 4",
        &stream_a,
        &recv_a.join().unwrap(),
        0x101,
    );
    assert_same_stream(
        "stream B, node 4 -> 1",
        &stream_b,
        &recv_b.join().unwrap(),
        0x102,
    );

    let (code1, out1, err1) = g1.stop();
    let (code4, out4, err4) = g4.stop();
    assert_eq!(code1, 0, "{err1}");
    assert_eq!(code4, 0, "{err4}");
    // Node 1's process printed counters while it ran (every second), then the final ones.
    assert!(
        out1.lines().any(|l| l.contains("\"final\":false")),
        "periodic counters:\n{out1}"
    );
    for (out, ingress, egress) in [(&out1, "ingress", "egress"), (&out4, "ingress", "egress")] {
        let i = final_counters(out, ingress);
        let e = final_counters(out, egress);
        assert_eq!(i["sent"], count as u64, "{i}");
        assert_eq!(e["sent"], count as u64, "{e}");
        assert_eq!(e["gaps"], 0, "{e}");
    }
}

/// One stadium, two broadcasters: the ingress on node 1 sends to `group:7:5000` with real-time
/// service; egresses on nodes 3 and 4 joined group 7 (not binding port 5000) each deliver the
/// whole stream to their own UDP receiver. The tree from node 1 is 1-3 and 1-2-4: node 2
/// copies without being a member.
///
/// The ingress starts first, before any member: node 1 has no tree for the group and drops
/// what it is sent (counted as `node_dropped`, warned about). Then the egresses join, and
/// joins take a moment to reach node 1, so the ingress gets MPEG-TS null packets (PID 0x1fff,
/// which players discard) until both receivers have seen one; then the stream. Meanwhile a
/// client on node 2 sends to the same group's port 5001: both egresses count those messages
/// (`other_port`) and deliver none of them.
#[test]
fn a_stream_to_a_multicast_group_reaches_every_joined_egress_in_order() {
    const GROUP: u32 = 7;
    const OTHER_PORT_MESSAGES: u64 = 50;
    let count = 2_000;
    let name = "gw-mcast";
    let o = diamond(name);
    let addrs = Addrs::new(name);
    let listen = addrs.host(0, 101, 5000);
    let players = [
        (3u16, addrs.host(0, 103, 6000)),
        (4, addrs.host(0, 104, 6000)),
    ];

    // The stadium's ingress starts first: the group has no member yet, so node 1 has no tree
    // and drops what it is sent; the gateway counts it and says why.
    let mut ingress = GatewayProc::start(&strings(&[
        "--socket",
        &path(&o.session_socket(1)),
        "--listen",
        &listen.to_string(),
        "--to",
        "group:7:5000",
        "--service",
        "realtime",
        "--json",
    ]));
    let ready = ingress.wait_ready(1).join("\n");
    eprintln!("{ready}");
    assert!(
        ready.contains("-> overlay group:7:5000 (realtime:200:3:2, from 1:"),
        "{ready}"
    );
    let src = UdpSocket::bind((listen.ip(), 0)).unwrap();
    let mut nulls = TsStream::new(NULL_PID, 9);
    let mut warm_sent = 0u64;
    let no_member = "no member has joined it";
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ingress.stderr().contains(no_member) {
        assert!(
            Instant::now() < deadline,
            "no warning:\n{}",
            ingress.stderr()
        );
        src.send_to(&nulls.next_datagram(), listen).unwrap();
        warm_sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let dropped_before_joins = warm_sent;
    eprintln!(
        "before any join: {}",
        ingress
            .stderr()
            .lines()
            .find(|l| l.contains(no_member))
            .unwrap()
    );

    // The broadcasters join.
    let joined = Instant::now();
    let mut egresses = Vec::new();
    let mut receivers = Vec::new();
    for &(node, player) in &players {
        let sink = UdpSocket::bind(player).unwrap();
        let mut g = GatewayProc::start(&strings(&[
            "--socket",
            &path(&o.session_socket(node)),
            "--join",
            &GROUP.to_string(),
            "--port",
            "5000",
            "--deliver",
            &player.to_string(),
            "--json",
        ]));
        let ready = g.wait_ready(1).join("\n");
        assert!(
            ready.contains(&format!(
                "egress overlay group:7:5000 -> udp {player} (member of group 7 on node {node})"
            )),
            "{ready}"
        );
        egresses.push((node, g));
        receivers.push(CountingReceiver::start(
            sink,
            count,
            Duration::from_secs(5),
            Duration::from_secs(30),
        ));
    }

    // Null packets until both broadcasters see the group's traffic.
    while !receivers.iter().all(|r| r.seen() > 0) {
        assert!(
            joined.elapsed() < Duration::from_secs(20),
            "the group never reached both egresses"
        );
        src.send_to(&nulls.next_datagram(), listen).unwrap();
        warm_sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let reached_in = joined.elapsed();
    eprintln!(
        "both egresses reached {reached_in:?} after the first one started ({warm_sent} null datagrams in all)"
    );

    // Another stream of the group, to port 5001, from a client on node 2.
    let other = std::thread::spawn({
        let socket = o.session_socket(2);
        move || {
            let mut c = Client::connect(&socket, "other-port").unwrap();
            c.bind(Port(4300)).unwrap();
            let dst = Destination::Multicast {
                group: GroupId(GROUP),
                port: Port(5001),
            };
            let flow = c
                .open_flow(
                    Port(4300),
                    dst,
                    Service::realtime(Duration::from_millis(200)),
                )
                .unwrap();
            for i in 0..OTHER_PORT_MESSAGES {
                c.send(&flow, &i.to_be_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            c.linger(Duration::from_secs(1)).unwrap();
        }
    });

    let stream = TsStream::datagrams(0x100, 77, count);
    let started = Instant::now();
    send_paced(listen, &stream, RATE);
    let sent_in = started.elapsed();
    other.join().unwrap();
    let mut warm_received = Vec::new();
    for (r, &(node, _)) in receivers.into_iter().zip(&players) {
        let (warm, got) = r.join();
        eprintln!(
            "node {node}: {warm} null datagrams, then {} of {count} stream datagrams",
            got.len()
        );
        assert_same_stream(
            &format!("node 1 -> group 7 at node {node}"),
            &stream,
            &got,
            0x100,
        );
        warm_received.push(warm as u64);
    }
    eprintln!("sent {count} datagrams in {sent_in:?} ({RATE}/s)");

    let (code, out, err) = ingress.stop();
    assert_eq!(code, 0, "ingress exit status; stderr:\n{err}");
    let i = final_counters(&out, "ingress");
    eprintln!("ingress: {i}");
    let received = warm_sent + count as u64;
    assert_eq!(i["received"], received);
    assert_eq!(i["sent"], received, "every datagram handed to the node");
    assert_eq!(i["dropped_queue_full"], 0);
    assert_eq!(i["dropped_at_stop"], 0);
    let node_dropped = i["node_dropped"].as_u64().unwrap();
    assert!(
        (dropped_before_joins..warm_sent).contains(&node_dropped),
        "the null datagrams before the joins are dropped, and only null datagrams: {i}"
    );
    for ((node, g), warm) in egresses.into_iter().zip(warm_received) {
        let (code, out, err) = g.stop();
        assert_eq!(code, 0, "egress on node {node}; stderr:\n{err}");
        let e = final_counters(&out, "egress");
        eprintln!("egress on node {node}: {e}");
        assert_eq!(e["delivered"], warm + count as u64, "node {node}: {e}");
        assert_eq!(e["sent"], warm + count as u64, "node {node}: {e}");
        assert_eq!(e["streams"], 1, "node {node}: {e}");
        assert_eq!(e["gaps"], 0, "node {node}: {e}");
        assert_eq!(e["late"], 0, "node {node}: {e}");
        assert_eq!(e["other_port"], OTHER_PORT_MESSAGES, "node {node}: {e}");
    }
}

#[test]
fn bad_options_and_a_missing_node_fail_with_clear_errors() {
    let addrs = Addrs::new("gw-bad");
    let listen = addrs.host(0, 101, 5000).to_string();
    let dir = std::env::temp_dir().join(format!("weft-{}-gw-bad", std::process::id()));
    let socket = path(&dir.join("no-node.sock"));
    for (args, want) in [
        (
            vec!["--socket", &socket, "--listen", &listen, "--to", "4"],
            "--to: bad address \"4\": expected NODE:PORT",
        ),
        (
            vec!["--socket", &socket, "--listen", &listen, "--to", "0:5000"],
            "--to: bad address \"0:5000\"",
        ),
        (
            vec![
                "--socket",
                &socket,
                "--listen",
                "127.0.0.1",
                "--to",
                "4:5000",
            ],
            "--listen: bad UDP address \"127.0.0.1\"",
        ),
        (
            vec![
                "--socket",
                &socket,
                "--listen",
                &listen,
                "--to",
                "4:1",
                "--service",
                "fast",
            ],
            "--service: bad service \"fast\"",
        ),
        (
            vec![
                "--socket",
                &socket,
                "--port",
                "5000",
                "--deliver",
                "nowhere",
            ],
            "--deliver: bad UDP address",
        ),
        (
            vec![
                "--socket",
                &socket,
                "--listen",
                &listen,
                "--to",
                "group:0:5000",
            ],
            "--to: bad group address \"group:0:5000\": group 0 is not a group",
        ),
        (
            vec![
                "--socket",
                &socket,
                "--listen",
                &listen,
                "--to",
                "anycast:7",
            ],
            "--to: bad group address \"anycast:7\": no port",
        ),
        (
            vec![
                "--socket",
                &socket,
                "--port",
                "5000",
                "--deliver",
                &listen,
                "--join",
                "0",
            ],
            "--join: bad group \"0\": group 0 is not a group",
        ),
        (
            vec![
                "--socket",
                &socket,
                "--port",
                "5000",
                "--deliver",
                &listen,
                "--join",
                "7",
            ],
            "no Weft node is running at",
        ),
        (
            vec!["--listen", &listen, "--to", "4:5000"],
            "--socket PATH is required",
        ),
        (
            vec!["--socket", &socket, "--listen", &listen, "--to", "4:5000"],
            "no Weft node is running at",
        ),
        (
            vec!["--socket", &socket, "--port", "5000", "--deliver", &listen],
            "no Weft node is running at",
        ),
    ] {
        let (code, _, err) = run_gateway(&args);
        eprint!("{err}");
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in:\n{err}");
        assert!(err.starts_with("weft: error: "), "{err}");
    }
    // A config file with a mistake names the file and the field.
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[[ingress]]\nlisten = \"127.0.0.1:1\"\nto = \"x\"\n").unwrap();
    let (code, _, err) = run_gateway(&["--socket", &socket, "--config", &path(&file)]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("bad.toml: ingress[0].to: bad address"),
        "{err}"
    );
}

#[test]
fn addresses_in_use_a_refused_service_and_a_lost_node_fail_cleanly() {
    let name = "gw-fail";
    let link = LinkSpec {
        id: 0,
        a: 1,
        b: 2,
        cost_us: 10_000,
    };
    let mut o = Overlay::start(name, 2, &[link], Start::Separate);
    o.wait_converged(Duration::from_secs(15));
    let addrs = Addrs::new(name);
    let (s1, s2) = (path(&o.session_socket(1)), path(&o.session_socket(2)));
    let player = addrs.host(0, 100, 6000).to_string();

    // A UDP address another program holds.
    let taken = UdpSocket::bind(addrs.host(0, 101, 5000)).unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run_gateway(&["--socket", &s1, "--listen", &taken_addr, "--to", "2:1"]);
    eprint!("{err}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot receive on UDP {taken_addr}: address in use"
        )),
        "{err}"
    );

    // An overlay port another client holds.
    let mut egress = GatewayProc::start(&strings(&[
        "--socket",
        &s2,
        "--port",
        "5000",
        "--deliver",
        &player,
    ]));
    egress.wait_ready(1);
    let (code, _, err) = run_gateway(&["--socket", &s2, "--port", "5000", "--deliver", &player]);
    eprint!("{err}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("binding overlay port 5000 on node 2: port 5000 is in use"),
        "{err}"
    );

    // The real-time service is passed to the node, which runs it: the gateway starts and
    // names the service with its defaults filled in.
    let listen = addrs.host(0, 102, 5000).to_string();
    let mut rt = GatewayProc::start(&strings(&[
        "--socket",
        &s1,
        "--listen",
        &listen,
        "--to",
        "2:5000",
        "--service",
        "realtime:150",
    ]));
    let ready = rt.wait_ready(1).join("\n");
    assert!(ready.contains("(realtime:150:3:2, from 1:"), "{ready}");
    let (code, _, err) = rt.stop();
    assert_eq!(code, 0, "{err}");
    // The reliable service is run too.
    let listen = addrs.host(0, 103, 5000).to_string();
    let mut rel = GatewayProc::start(&strings(&[
        "--socket",
        &s1,
        "--listen",
        &listen,
        "--to",
        "2:5000",
        "--service",
        "reliable",
    ]));
    let ready = rel.wait_ready(1).join("\n");
    assert!(ready.contains("(reliable, from 1:"), "{ready}");
    let (code, _, err) = rel.stop();
    assert_eq!(code, 0, "{err}");
    // More strikes than the node allows: refused with a clear error.
    let listen = addrs.host(0, 104, 5000).to_string();
    let (code, _, err) = run_gateway(&[
        "--socket",
        &s1,
        "--listen",
        &listen,
        "--to",
        "2:5000",
        "--service",
        "realtime:200:20:20",
    ]);
    eprint!("{err}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("to 2:5000 with service realtime:200:20:20")
            && err.contains("the node does not support this"),
        "{err}"
    );

    // The node under a running gateway goes away: the gateway says so, prints its counters
    // and exits 1.
    o.kill(2, Role::Dataplane, Signal::SIGKILL);
    let (code, out, err) = egress.wait_exit(Duration::from_secs(5));
    eprintln!("node gone: {err}{out}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error: egress overlay port 5000")
            && err.contains("receiving from the local node: disconnected"),
        "{err}"
    );
    assert!(
        out.contains("egress overlay port 5000 -> udp") && out.contains(": final: delivered=0"),
        "final counters as text:\n{out}"
    );
    drop(taken);
}

/// The optional check with the real tools: ffmpeg encodes a live test picture and tone to
/// MPEG-TS over UDP into the ingress gateway, and ffmpeg at the egress records what arrives;
/// ffprobe then counts every frame, decoded without an error. Runs only where ffmpeg and
/// ffprobe are installed (the synthetic-stream tests above need neither); where they are not,
/// it says so on stderr, and `WEFT_REQUIRE_FFMPEG=1` turns that into a failure.
#[test]
fn ffmpeg_to_ffprobe_across_the_overlay_if_installed() {
    if !(have("ffmpeg") && have("ffprobe")) {
        assert!(
            std::env::var_os("WEFT_REQUIRE_FFMPEG").is_none(),
            "WEFT_REQUIRE_FFMPEG is set but ffmpeg or ffprobe is not installed"
        );
        eprintln!("NOT RUN: ffmpeg/ffprobe are not installed (apt-get install ffmpeg)");
        return;
    }
    let name = "gw-ffmpeg";
    let o = diamond(name);
    let addrs = Addrs::new(name);
    let player = addrs.host(0, 100, 6000);
    let listen = addrs.host(0, 101, 5000);
    let mut egress = GatewayProc::start(&strings(&[
        "--socket",
        &path(&o.session_socket(4)),
        "--port",
        "5000",
        "--deliver",
        &player.to_string(),
    ]));
    egress.wait_ready(1);
    let mut ingress = GatewayProc::start(&strings(&[
        "--socket",
        &path(&o.session_socket(1)),
        "--listen",
        &listen.to_string(),
        "--to",
        "4:5000",
    ]));
    ingress.wait_ready(1);

    // The receiver records what arrives, without re-encoding; it ends 3 s after the stream.
    let recorded = o.dir.join("received.ts");
    let receiver = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "level+warning",
            "-i",
        ])
        .arg(format!("udp://{player}?timeout=3000000&fifo_size=100000"))
        .args(["-map", "0", "-c", "copy", "-f", "mpegts", "-y"])
        .arg(&recorded)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Built-in encoders only (mpeg2video, mp2), so any ffmpeg build has them.
    let sender = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args(["-t", "4", "-c:v", "mpeg2video", "-b:v", "2M", "-c:a", "mp2"])
        .args(["-f", "mpegts"])
        .arg(format!("udp://{listen}?pkt_size=1316"))
        .output()
        .unwrap();
    assert!(
        sender.status.success(),
        "ffmpeg sender: {}",
        String::from_utf8_lossy(&sender.stderr)
    );
    let received = receiver.wait_with_output().unwrap();
    let rx_log = String::from_utf8_lossy(&received.stderr);
    eprintln!("receiver:\n{rx_log}");
    for bad in ["Continuity check failed", "corrupt", "error while decoding"] {
        assert!(!rx_log.contains(bad), "{bad}:\n{rx_log}");
    }
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&recorded)
        .output()
        .unwrap();
    // One line per section the stream appears in (its program, then itself): "100,".
    let out = String::from_utf8_lossy(&probe.stdout).into_owned();
    let frames = out
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned();
    let probe_err = String::from_utf8_lossy(&probe.stderr);
    eprintln!("ffprobe: {frames} video frames; {probe_err}");
    assert!(probe_err.trim().is_empty(), "ffprobe errors: {probe_err}");
    assert_eq!(frames, "100", "4 s at 25 frames/s");

    let (code, out, err) = ingress.stop();
    assert_eq!(code, 0, "{err}");
    eprintln!("{out}");
    assert!(
        out.contains("dropped_oversize=0 dropped_queue_full=0"),
        "{out}"
    );
    let (code, out, err) = egress.stop();
    assert_eq!(code, 0, "{err}");
    eprintln!("{out}");
    assert!(out.contains("gaps=0 missing=0 late=0"), "{out}");
}
