//! The client library against the in-test fake node (`common/mod.rs`): handshake and its
//! errors, requests and typed refusals, credits (blocking, `WouldBlock`, per-flow independence),
//! batching, receiving with timeouts, the bounded receive queue, and the session's end.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]

mod common;

use std::os::unix::net::UnixListener;
use std::thread;
use std::time::{Duration, Instant};

use common::{FakeConfig, FakeNode};
use weft_client::{
    Addr, Client, ClientError, ClientOptions, Disconnect, ReceiveQueueLimits, ServerError, Service,
};
use weft_shared::ids::{GroupId, NodeId, Port};
use weft_shared::session::{DeliveredTo, Destination};

/// The address of `port` on the fake node (node 1).
fn on_node(port: Port) -> Addr {
    Addr {
        node: NodeId::new(1).unwrap(),
        port,
    }
}

/// A connected client with a bound port and a flow to that same port (an echo).
fn echo_client(node: &FakeNode) -> (Client, weft_client::Flow) {
    let mut c = Client::connect(&node.path, "test").unwrap();
    let port = c.bind(Port(0)).unwrap();
    let flow = c
        .open_flow(port, on_node(port), Service::default())
        .unwrap();
    (c, flow)
}

#[test]
fn handshake_reports_the_node_and_its_limits() {
    let node = FakeNode::start(
        "handshake",
        FakeConfig {
            node: 7,
            max_payload: 1000,
            ..FakeConfig::default()
        },
    );
    let c = Client::connect(&node.path, "hello").unwrap();
    assert_eq!(c.node().get(), 7);
    assert_eq!(c.welcome().version, 1);
    assert_eq!(c.welcome().max_payload, 1000);
    assert_eq!(c.path(), node.path.as_path());
}

#[test]
fn version_mismatch_names_both_ranges() {
    let node = FakeNode::start(
        "version",
        FakeConfig {
            versions: (2, 3),
            ..FakeConfig::default()
        },
    );
    let err = Client::connect(&node.path, "old").unwrap_err();
    match &err {
        ClientError::VersionMismatch {
            client, node: n, ..
        } => {
            assert_eq!((*client, *n), ((1, 1), (2, 3)));
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("1..=1") && text.contains("2..=3"), "{text}");
    assert!(text.contains(node.path.to_str().unwrap()), "{text}");
}

#[test]
fn a_missing_node_is_named_by_its_path() {
    let dir = std::env::temp_dir().join(format!("weft-client-{}-missing", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nobody.sock");
    let err = Client::connect(&path, "x").unwrap_err();
    assert!(matches!(err, ClientError::NodeNotRunning { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(path.to_str().unwrap()), "{text}");
    assert!(text.contains("no Weft node is running"), "{text}");

    // A socket file left by a node that stopped: refused, and reported the same way.
    drop(UnixListener::bind(&path).unwrap());
    let err = Client::connect(&path, "x").unwrap_err();
    assert!(matches!(err, ClientError::NodeNotRunning { .. }), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_silent_listener_times_out_the_handshake() {
    let node = FakeNode::start(
        "silent",
        FakeConfig {
            silent: true,
            ..FakeConfig::default()
        },
    );
    let options = ClientOptions {
        handshake_timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    let start = Instant::now();
    let err = Client::connect_with(&node.path, "x", options).unwrap_err();
    assert!(
        matches!(err, ClientError::HandshakeTimeout { .. }),
        "{err:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(190));
    assert!(err.to_string().contains(node.path.to_str().unwrap()));
}

#[test]
fn server_refusals_are_typed_and_keep_the_session() {
    let node = FakeNode::start("refusals", FakeConfig::default());
    let mut a = Client::connect(&node.path, "a").unwrap();
    let mut b = Client::connect(&node.path, "b").unwrap();
    assert_eq!(a.bind(Port(7)).unwrap(), Port(7));
    let err = b.bind(Port(7)).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server(ServerError::PortInUse { port: Port(7) })
        ),
        "{err:?}"
    );
    let err = b
        .open_flow(Port(9), on_node(Port(7)), Service::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server(ServerError::PortNotBound { port: Port(9) })
        ),
        "{err:?}"
    );
    // The session goes on.
    assert_eq!(b.bind(Port(8)).unwrap(), Port(8));
    b.join(GroupId(3)).unwrap();
    b.leave(GroupId(3)).unwrap();
    b.unbind(Port(8)).unwrap();
}

#[test]
fn send_blocks_without_credit_and_resumes_on_credit() {
    let node = FakeNode::start(
        "credit",
        FakeConfig {
            initial_credits: 2,
            replenish: false,
            ..FakeConfig::default()
        },
    );
    let (mut c, flow) = echo_client(&node);
    c.send(&flow, b"m0").unwrap();
    c.send(&flow, b"m1").unwrap();
    assert_eq!(c.credits(&flow), Some(0));

    // Without credit, try_send returns WouldBlock and writes nothing.
    let writes = c.stats().writes;
    assert!(matches!(
        c.try_send(&flow, b"x"),
        Err(ClientError::WouldBlock)
    ));
    assert_eq!(c.stats().writes, writes, "nothing written without credit");
    node.wait_sends(0, 2);
    assert_eq!(node.stats(0).sends, 2);

    // A blocking send waits until the node grants a credit 300 ms later.
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(300));
            node.grant(flow.handle(), 1);
        });
        c.send(&flow, b"m2").unwrap();
    });
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "send returned after {waited:?}"
    );
    node.wait_sends(0, 3);
    assert!(c.stats().credit_stalls >= 2);

    // The echoes, queued while send waited, come back in order.
    let mut buf = [0u8; 16];
    for want in [&b"m0"[..], b"m1", b"m2"] {
        let d = c
            .recv_timeout(&mut buf, Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..d.len], want);
    }
}

#[test]
fn a_flow_without_credit_does_not_stall_another() {
    let node = FakeNode::start(
        "two-flows",
        FakeConfig {
            initial_credits: 1,
            replenish: false,
            ..FakeConfig::default()
        },
    );
    let mut c = Client::connect(&node.path, "two").unwrap();
    let port = c.bind(Port(0)).unwrap();
    let stuck = c
        .open_flow(port, on_node(port), Service::default())
        .unwrap();
    let free = c
        .open_flow(port, on_node(port), Service::default())
        .unwrap();
    node.grant(free.handle(), 1000);

    c.send(&stuck, b"only one").unwrap();
    assert!(c.try_send(&stuck, b"no").unwrap_err().is_would_block());

    // The other flow sends 500 messages; each try_send either goes or waits briefly for the
    // Credit already on its way. A shared credit pool would stall here and fail the deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0u64;
    while sent < 500 {
        assert!(Instant::now() < deadline, "flow stalled after {sent}");
        match c.try_send(&free, &sent.to_be_bytes()) {
            Ok(()) => sent += 1,
            Err(ClientError::WouldBlock) => c.poll_io(Some(Duration::from_millis(10))).unwrap(),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        c.try_send(&stuck, b"still no")
            .unwrap_err()
            .is_would_block()
    );
    // try_send leaves what a full socket did not take for the next call; write it all.
    c.flush().unwrap();
    node.wait_sends(0, 501);

    let mut buf = [0u8; 16];
    let first = c
        .recv_timeout(&mut buf, Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..first.len], b"only one");
    for want in 0..500u64 {
        let d = c
            .recv_timeout(&mut buf, Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..d.len], &want.to_be_bytes());
    }
}

/// Sends `n` numbered 16-byte messages in one `send_batch` from one client to another, checks
/// they arrive in order, and returns the sender's stats.
fn batch_to_receiver(node: &FakeNode, n: u64) -> weft_client::ClientStats {
    let mut rx = Client::connect(&node.path, "rx").unwrap();
    rx.bind(Port(9)).unwrap();
    let mut tx = Client::connect(&node.path, "tx").unwrap();
    let port = tx.bind(Port(0)).unwrap();
    let flow = tx
        .open_flow(port, on_node(Port(9)), Service::default())
        .unwrap();
    let payloads: Vec<[u8; 16]> = (0..n)
        .map(|i| {
            let mut p = [0u8; 16];
            p[..8].copy_from_slice(&i.to_be_bytes());
            p
        })
        .collect();
    thread::scope(|s| {
        let receiver = s.spawn(move || {
            let mut buf = [0u8; 64];
            for want in 0..n {
                let d = rx
                    .recv_timeout(&mut buf, Duration::from_secs(10))
                    .unwrap()
                    .unwrap();
                assert_eq!(d.len, 16);
                assert_eq!(u64::from_be_bytes(buf[..8].try_into().unwrap()), want);
                assert_eq!(d.seq, want, "the node's sequence follows too");
                assert_eq!(d.to_port, Port(9));
            }
        });
        assert_eq!(tx.send_batch(&flow, &payloads).unwrap(), n as usize);
        receiver.join().unwrap();
    });
    tx.stats()
}

#[test]
fn send_batch_of_10000_arrives_in_order_with_few_writes() {
    let node = FakeNode::start(
        "batch",
        FakeConfig {
            initial_credits: 100_000,
            ..FakeConfig::default()
        },
    );
    let stats = batch_to_receiver(&node, 10_000);
    assert_eq!(stats.sends, 10_000);
    // 10,000 frames of 32 B are 320 KB: two 256 KiB buffers, a few writes if the socket fills.
    assert!(stats.writes <= 10, "{stats:?}");
    assert_eq!(stats.credit_stalls, 0);
    // The node (connection 1, the sender) read them in a handful of reads too.
    assert!(node.stats(1).reads <= 40, "{:?}", node.stats(1));
}

#[test]
fn send_batch_writes_once_per_credit_window() {
    // 64 credits, returned as the node handles each read: the batch goes a window at a time.
    let node = FakeNode::start("batch-window", FakeConfig::default());
    let stats = batch_to_receiver(&node, 10_000);
    assert_eq!(stats.sends, 10_000);
    assert!(stats.credit_stalls > 0);
    // At least one write per 64-message window, and not many more.
    assert!(
        (10_000 / 64..=10_000 / 64 * 3).contains(&stats.writes),
        "{stats:?}"
    );
}

#[test]
fn recv_times_out_and_try_recv_does_not_wait() {
    let node = FakeNode::start("timeout", FakeConfig::default());
    let (mut c, flow) = echo_client(&node);
    let mut buf = [0u8; 8];
    let start = Instant::now();
    assert_eq!(
        c.recv_timeout(&mut buf, Duration::from_millis(150))
            .unwrap(),
        None
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(c.try_recv(&mut buf).unwrap(), None);
    c.set_nonblocking(true);
    assert!(c.recv(&mut buf).unwrap_err().is_would_block());

    // A message that is there is returned at once, with its metadata; a short buffer cuts it.
    c.set_nonblocking(false);
    c.send(&flow, b"0123456789").unwrap();
    let d = c
        .recv_timeout(&mut buf, Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!((d.len, d.truncated, &buf), (8, true, b"01234567"));
    assert_eq!(d.from, on_node(flow.local_port()));
    assert_eq!(d.to, DeliveredTo::Node);
}

#[test]
fn messages_that_arrive_during_a_request_are_queued_in_order() {
    let node = FakeNode::start("queued", FakeConfig::default());
    let (mut c, flow) = echo_client(&node);
    for i in 0..3u8 {
        c.send(&flow, &[i]).unwrap();
    }
    // The echoes arrive before the Bound reply and wait in the queue.
    c.bind(Port(77)).unwrap();
    assert_eq!(c.queued(), 3);
    assert_eq!(c.stats().queued, 3);
    let mut buf = [0u8; 4];
    for i in 0..3u8 {
        let d = c.recv(&mut buf).unwrap();
        assert_eq!(&buf[..d.len], &[i]);
    }
    assert_eq!(c.queued(), 0);
}

#[test]
fn a_full_queue_stops_reading_and_loses_nothing() {
    let node = FakeNode::start("queue-full", FakeConfig::default());
    let options = ClientOptions {
        receive_queue: ReceiveQueueLimits {
            messages: 4,
            bytes: 0,
        },
        ..ClientOptions::default()
    };
    let mut c = Client::connect_with(&node.path, "small", options).unwrap();
    let port = c.bind(Port(0)).unwrap();
    let flow = c
        .open_flow(port, on_node(port), Service::default())
        .unwrap();
    for i in 0..10u8 {
        c.send(&flow, &[i]).unwrap();
    }
    // Ten echoes stand before the Bound reply; the queue takes four, then reading stops.
    let err = c.bind(Port(0)).unwrap_err();
    assert!(
        matches!(err, ClientError::ReceiveQueueFull { messages: 4, .. }),
        "{err:?}"
    );
    assert_eq!(c.stats().queue_full, 1);
    // Every message is still there, in order.
    let mut buf = [0u8; 4];
    for i in 0..10u8 {
        let d = c
            .recv_timeout(&mut buf, Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..d.len], &[i]);
    }
    // The abandoned bind's port was released again once its reply came.
    c.poll_io(Some(Duration::from_millis(50))).unwrap();
    node.wait_ports(0, 1);
    assert_eq!(
        c.bind(Port(0)).unwrap().0,
        1001,
        "the released port was not kept"
    );
}

#[test]
fn nonblocking_mode_never_waits() {
    let node = FakeNode::start(
        "nonblocking",
        FakeConfig {
            initial_credits: 1,
            replenish: false,
            ..FakeConfig::default()
        },
    );
    let (mut c, flow) = echo_client(&node);
    c.set_nonblocking(true);
    assert!(c.is_nonblocking());
    c.send(&flow, b"a").unwrap();
    let start = Instant::now();
    assert!(c.send(&flow, b"b").unwrap_err().is_would_block());
    assert!(c.send_batch(&flow, &[b"c"]).unwrap_err().is_would_block());
    assert!(start.elapsed() < Duration::from_secs(1));
    node.grant(flow.handle(), 5);
    // Once the Credit is in, a batch takes what the credits allow and says how many.
    let deadline = Instant::now() + Duration::from_secs(5);
    let sent = loop {
        match c.try_send_batch(&flow, &[&b"1"[..], b"2", b"3", b"4", b"5", b"6", b"7"]) {
            Ok(n) => break n,
            Err(ClientError::WouldBlock) if Instant::now() < deadline => {
                c.poll_io(Some(Duration::from_millis(10))).unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(sent, 5);
    assert!(!c.has_pending_output());
    node.wait_sends(0, 6);
}

#[test]
fn limits_and_closed_flows_are_checked_locally() {
    let node = FakeNode::start(
        "limits",
        FakeConfig {
            max_payload: 100,
            ..FakeConfig::default()
        },
    );
    let (mut c, flow) = echo_client(&node);
    let err = c.send(&flow, &[0; 101]).unwrap_err();
    assert!(
        matches!(err, ClientError::PayloadTooLarge { len: 101, max: 100 }),
        "{err:?}"
    );
    c.send(&flow, &[0; 100]).unwrap();
    c.close_flow(flow).unwrap();
    assert!(matches!(
        c.send(&flow, b"x"),
        Err(ClientError::UnknownFlow(h)) if h == flow.handle()
    ));
    assert!(matches!(
        c.close_flow(flow),
        Err(ClientError::UnknownFlow(_))
    ));
    node.wait_sends(0, 1);
}

#[test]
fn group_messages_reach_members() {
    let node = FakeNode::start("groups", FakeConfig::default());
    let mut member = Client::connect(&node.path, "member").unwrap();
    member.join(GroupId(42)).unwrap();
    let mut tx = Client::connect(&node.path, "tx").unwrap();
    let port = tx.bind(Port(0)).unwrap();
    let dest = Destination::Multicast {
        group: GroupId(42),
        port: Port(5),
    };
    let flow = tx.open_flow(port, dest, Service::reliable()).unwrap();
    tx.send(&flow, b"to the group").unwrap();
    let mut buf = [0u8; 32];
    let d = member
        .recv_timeout(&mut buf, Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..d.len], b"to the group");
    assert_eq!(
        (d.to, d.to_port),
        (DeliveredTo::Multicast(GroupId(42)), Port(5))
    );
}

#[test]
fn dropping_the_client_says_goodbye() {
    let node = FakeNode::start("drop", FakeConfig::default());
    let (c, _flow) = echo_client(&node);
    drop(c);
    let stats = node.wait_closed(0);
    assert!(stats.goodbye, "{stats:?}");

    let c = Client::connect(&node.path, "close").unwrap();
    c.close().unwrap();
    assert!(node.wait_closed(1).goodbye);
}

#[test]
fn the_node_ending_the_session_is_reported_after_queued_messages() {
    let node = FakeNode::start("node-goodbye", FakeConfig::default());
    let (mut c, flow) = echo_client(&node);
    node.inject(0, flow.local_port().0, 0, b"last words");
    node.goodbye(0);
    let mut buf = [0u8; 32];
    let d = c
        .recv_timeout(&mut buf, Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..d.len], b"last words");
    let err = c
        .recv_timeout(&mut buf, Duration::from_secs(5))
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Disconnected(Disconnect::NodeGoodbye)),
        "{err:?}"
    );
    assert!(matches!(
        c.send(&flow, b"x"),
        Err(ClientError::Disconnected(Disconnect::NodeGoodbye))
    ));
}

#[test]
fn linger_waits_until_the_node_returns_every_credit() {
    let node = FakeNode::start(
        "linger",
        FakeConfig {
            initial_credits: 4,
            replenish: false,
            ..FakeConfig::default()
        },
    );
    let (mut c, flow) = echo_client(&node);
    c.send_batch(&flow, &[b"a", b"b"]).unwrap();
    assert!(
        !c.linger(Duration::from_millis(100)).unwrap(),
        "2 credits still out"
    );
    node.grant(flow.handle(), 2);
    assert!(c.linger(Duration::from_secs(5)).unwrap());
}
