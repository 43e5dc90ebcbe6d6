//! Real Unix sockets, the real client library: `weft-client` (blocking API, credits, batched
//! sends) against the session server running its loop in a thread, with a loopback sink that
//! delivers messages addressed to this node back to the addressed port.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

mod session_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use session_common::{Harness, NODE};
use weft_client::{Addr, Client, ClientError, ServerError, Service};
use weft_dataplane::session::{DeliverInfo, SessionConfig};
use weft_shared::ids::{NodeId, Port};
use weft_shared::session::{Destination, ErrorCode};

/// Runs the server loop until `stop`, delivering every accepted `Send` to this node back to
/// its destination port (a one-node overlay). Returns the harness for the final checks.
fn serve(mut h: Harness, stop: Arc<AtomicBool>) -> Harness {
    let mut looped = 0;
    while !stop.load(Ordering::Relaxed) {
        h.step();
        for s in &h.sink.sends[looped..] {
            let Destination::Node { node, port } = s.dst else {
                continue;
            };
            assert_eq!(node.get(), NODE, "this test only sends to itself");
            let info = DeliverInfo {
                from_node: node,
                from_port: s.src_port,
                flow: s.flow,
                seq: s.seq,
                age_us: 0,
                group: None,
            };
            h.server.deliver(port, &info, &s.payload).unwrap();
        }
        looped = h.sink.sends.len();
    }
    h
}

#[test]
fn the_client_library_sends_and_receives_through_the_server() {
    let h = Harness::new("weft-client", SessionConfig::default());
    let path = h.path.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let server = thread::spawn({
        let stop = Arc::clone(&stop);
        move || serve(h, stop)
    });

    let mut client = Client::connect(&path, "lib-test").unwrap();
    assert_eq!(client.node().get(), NODE);
    let port = client.bind(Port(0)).unwrap();
    assert!(port.0 >= 49_152, "an ephemeral port: {port}");
    let me = Addr {
        node: NodeId::new(NODE).unwrap(),
        port,
    };
    let flow = client.open_flow(port, me, Service::default()).unwrap();

    // 2,000 messages on 64 credits: the library must wait for Credit frames to get through.
    let payloads: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| format!("message {i} {}", "x".repeat((i % 300) as usize)).into_bytes())
        .collect();
    assert_eq!(client.send_batch(&flow, &payloads).unwrap(), 2000);
    let mut buf = vec![0u8; 2048];
    for (i, want) in payloads.iter().enumerate() {
        let d = client
            .recv_timeout(&mut buf, Duration::from_secs(10))
            .unwrap()
            .unwrap_or_else(|| panic!("message {i} did not come back"));
        assert_eq!((d.from, d.to_port, d.seq), (me, port, i as u64));
        assert_eq!(&buf[..d.len], want.as_slice());
    }

    // A second client cannot take the port; after the first leaves, it can.
    let mut other = Client::connect(&path, "other").unwrap();
    match other.bind(port) {
        Err(ClientError::Server(ServerError::PortInUse { port: p })) => assert_eq!(p, port),
        r => panic!("expected PortInUse, got {r:?}"),
    }
    client.close().unwrap();
    let start = std::time::Instant::now();
    loop {
        match other.bind(port) {
            Ok(p) => break assert_eq!(p, port),
            Err(ClientError::Server(ServerError::PortInUse { .. })) => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "the port was never freed"
                );
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
    other.close().unwrap();

    stop.store(true, Ordering::Relaxed);
    let h = server.join().unwrap();
    let s = h.server.stats();
    assert_eq!((s.sends, s.delivers), (2000, 2000));
    assert_eq!(s.credits_returned, 2000);
    let in_use = s.errors(ErrorCode::PortInUse);
    assert!(in_use >= 1);
    assert_eq!(
        s.errors_sent.iter().sum::<u64>(),
        in_use,
        "no error but PortInUse"
    );
    assert_eq!(s.reply_overflows, 0);
}
