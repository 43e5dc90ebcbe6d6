//! Real Unix sockets: the session handshake (Welcome, version mismatch, requests before Hello,
//! bad Hellos) and the `max_clients` limit.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

mod session_common;

use session_common::{Harness, Msg, NODE, TestClient};
use weft_dataplane::session::{ClientId, SessionConfig, SessionServer};
use weft_shared::ids::Port;
use weft_shared::session::{ClientMessage, ErrorCode, Hello, MAX_FRAME_SIZE};

#[test]
fn handshake_welcome_carries_the_node_and_its_limits() {
    let cfg = SessionConfig {
        credits_per_flow: 17,
        max_payload: 1_400,
        max_flows: 5,
        max_ports: 6,
        max_groups: 7,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("welcome", cfg);
    let (_c, w) = h.connect("video-sender");
    assert_eq!(w.version, 1);
    assert_eq!(w.node.get(), NODE);
    assert_eq!(w.max_payload, 1_400);
    assert_eq!(w.default_credits, 17);
    assert_eq!((w.max_flows, w.max_ports, w.max_groups), (5, 6, 7));

    let id = h.watched[0];
    let info = h.server.client_info(id).unwrap();
    assert!(info.connected);
    assert_eq!(info.name, "video-sender");
    let peer = info.peer.unwrap();
    assert_eq!(peer.pid, i32::try_from(std::process::id()).unwrap());
    let s = h.server.stats();
    assert_eq!((s.clients, s.accepted, s.handshakes), (1, 1, 1));
}

#[test]
fn version_mismatch_gets_the_servers_range_and_a_close() {
    let mut h = Harness::new("version", SessionConfig::default());
    let mut c = TestClient::connect(&h.path);
    let id = c.send(&ClientMessage::Hello(Hello {
        min_version: 2,
        max_version: 5,
        name: "future",
    }));
    let got = h.wait_closed(&mut c);
    assert_eq!(got.len(), 1, "{got:?}");
    let (rid, msg) = &got[0];
    assert_eq!(*rid, id, "the refusal echoes the Hello's id");
    assert_eq!(msg.code(), Some(ErrorCode::UnsupportedVersion));
    let Msg::Error(_, detail, _) = msg else {
        unreachable!()
    };
    assert_eq!(*detail, 0x0001_0001, "server range 1..=1 in the detail");
    let s = h.server.stats();
    assert_eq!((s.clients, s.closed, s.handshakes), (0, 1, 0));
    assert_eq!(s.errors(ErrorCode::UnsupportedVersion), 1);
    assert_eq!(h.closed.len(), 1);
}

#[test]
fn a_request_before_hello_is_not_connected_and_closes() {
    let mut h = Harness::new("before-hello", SessionConfig::default());
    let mut c = TestClient::connect(&h.path);
    let id = c.send(&ClientMessage::Bind { port: Port(5) });
    let got = h.wait_closed(&mut c);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, id);
    assert_eq!(got[0].1.code(), Some(ErrorCode::NotConnected));
    assert_eq!(h.server.stats().errors(ErrorCode::NotConnected), 1);
}

#[test]
fn a_bad_hello_or_a_stray_protocol_gets_an_error_and_a_close() {
    let mut h = Harness::new("bad-hello", SessionConfig::default());

    // A Hello with the wrong magic.
    let mut c = TestClient::connect(&h.path);
    let mut bytes = session_common::batch(
        9,
        &[ClientMessage::Hello(Hello {
            min_version: 1,
            max_version: 1,
            name: "x",
        })],
    );
    bytes[12] = b'X'; // The magic's first byte.
    c.write_all(&bytes);
    let got = h.wait_closed(&mut c);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].0, got[0].1.code()),
        (9, Some(ErrorCode::BadRequest))
    );

    // Someone speaking HTTP: "GET " read as a length prefix is far over the frame limit.
    let mut c = TestClient::connect(&h.path);
    c.write_all(b"GET / HTTP/1.1\r\nHost: weft\r\n\r\n");
    let got = h.wait_closed(&mut c);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 0, "a framing error is connection-level");
    let Msg::Error(code, detail, _) = &got[0].1 else {
        panic!("{got:?}")
    };
    assert_eq!(
        (*code, *detail),
        (ErrorCode::MessageTooLarge, MAX_FRAME_SIZE as u32)
    );

    // A second Hello after the handshake is a plain bad request; the session goes on.
    let (mut c, _) = h.connect("twice");
    let again = ClientMessage::Hello(Hello {
        min_version: 1,
        max_version: 1,
        name: "twice",
    });
    assert_eq!(
        h.request(&mut c, &again).code(),
        Some(ErrorCode::BadRequest)
    );
    assert_eq!(h.bind(&mut c, 40), Port(40));
    assert_eq!(h.server.stats().clients, 1);
}

#[test]
fn max_clients_is_enforced_and_a_freed_slot_is_reused() {
    let cfg = SessionConfig {
        max_clients: 2,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("max-clients", cfg);
    let (mut a, _) = h.connect("a");
    let (_b, _) = h.connect("b");
    assert_eq!(h.watched, vec![ClientId(0), ClientId(1)]);

    let mut third = TestClient::connect(&h.path);
    let got = h.wait_closed(&mut third);
    assert_eq!(got.len(), 1, "{got:?}");
    let Msg::Error(code, detail, _) = &got[0].1 else {
        panic!("{got:?}")
    };
    assert_eq!((got[0].0, *code, *detail), (0, ErrorCode::Internal, 2));
    let s = h.server.stats();
    assert_eq!((s.clients, s.accepted, s.refused), (2, 2, 1));

    // The two clients are unaffected; when one says Goodbye its slot takes the next client.
    assert_eq!(h.bind(&mut a, 1), Port(1));
    a.send(&ClientMessage::Goodbye);
    assert!(h.wait_closed(&mut a).is_empty());
    assert_eq!(h.closed, vec![ClientId(0)]);
    let (_c, _) = h.connect("c");
    assert_eq!(h.watched, vec![ClientId(1), ClientId(0)], "slot 0 reused");
    assert_eq!(h.server.client_info(ClientId(0)).unwrap().name, "c");
    let s = h.server.stats();
    assert_eq!((s.clients, s.accepted, s.refused, s.closed), (2, 3, 1, 1));
}

#[test]
fn the_socket_file_is_removed_when_the_server_is_dropped() {
    let dir = std::env::temp_dir().join(format!("weft-sessrv-{}-drop", std::process::id()));
    let path = dir.join("s.sock");
    let node = weft_shared::ids::NodeId::new(1).unwrap();
    let server = SessionServer::bind(&path, node, SessionConfig::default()).unwrap();
    assert!(path.exists());
    // A second server on the same path finds the first one alive.
    assert!(SessionServer::bind(&path, node, SessionConfig::default()).is_err());
    drop(server);
    assert!(!path.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
