//! Real Unix sockets: overlay messages delivered to local clients (by port, to multicast and
//! anycast members), unknown ports, and a client that stops reading: its `Deliver`s are dropped
//! while other clients keep receiving, and its replies are never lost.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

mod session_common;

use session_common::{Delivered, Harness, Msg};
use weft_dataplane::session::{DeliverError, DeliverInfo, MIN_OUT_BUF_BYTES, SessionConfig};
use weft_shared::ids::{FlowId, GroupId, NodeId, Port};
use weft_shared::session::{ClientMessage, DeliveredTo};

fn info(seq: u64, group: Option<GroupId>) -> DeliverInfo {
    DeliverInfo {
        from_node: NodeId::new(3).unwrap(),
        from_port: Port(4444),
        flow: FlowId(0xabcd),
        seq,
        age_us: 1234,
        group,
    }
}

fn delivered(m: (u32, Msg)) -> Delivered {
    match m {
        (0, Msg::Deliver(d)) => d,
        other => panic!("expected an unsolicited Deliver, got {other:?}"),
    }
}

#[test]
fn deliver_reaches_the_client_bound_to_the_port() {
    let mut h = Harness::new("deliver", SessionConfig::default());
    let (mut a, _) = h.connect("a");
    let (mut b, _) = h.connect("b");
    h.bind(&mut a, 8000);
    h.bind(&mut b, 8001);
    h.server
        .deliver(Port(8000), &info(42, None), b"hello a")
        .unwrap();
    let d = delivered(h.recv(&mut a));
    assert_eq!(
        d,
        Delivered {
            local_port: Port(8000),
            to: DeliveredTo::Node,
            source_node: NodeId::new(3).unwrap(),
            source_port: Port(4444),
            flow: FlowId(0xabcd),
            seq: 42,
            age_us: 1234,
            payload: b"hello a".to_vec(),
        }
    );
    h.step();
    b.poll();
    assert!(b.inbox.is_empty(), "b's port was not addressed");

    assert_eq!(
        h.server.deliver(Port(8002), &info(1, None), b"nobody"),
        Err(DeliverError::NoSuchPort)
    );
    let empty = h.server.deliver(Port(8001), &info(2, None), b"");
    assert_eq!(empty, Ok(()), "an empty payload is a message too");
    assert_eq!(delivered(h.recv(&mut b)).payload, b"");
    let too_big = vec![0u8; 65_001];
    assert_eq!(
        h.server.deliver(Port(8001), &info(3, None), &too_big),
        Err(DeliverError::PayloadTooLarge)
    );
    let s = h.server.stats();
    assert_eq!(s.delivers, 2);
    assert_eq!(s.deliver_drops(DeliverError::NoSuchPort), 1);
    assert_eq!(s.deliver_drops(DeliverError::PayloadTooLarge), 1);

    // After a client leaves, its port is unknown.
    drop(a);
    h.until("a's close", |h| h.closed.len() == 1);
    assert_eq!(
        h.server.deliver(Port(8000), &info(4, None), b"late"),
        Err(DeliverError::NoSuchPort)
    );
}

#[test]
fn group_messages_reach_every_multicast_member_or_one_anycast_member() {
    let mut h = Harness::new("groups", SessionConfig::default());
    let (mut a, _) = h.connect("a");
    let (mut b, _) = h.connect("b");
    let (mut outsider, _) = h.connect("outsider");
    h.bind(&mut outsider, 900); // Binding the port does not make it a member.
    let g = GroupId(77);
    for c in [&mut a, &mut b] {
        assert_eq!(h.request(c, &ClientMessage::Join { group: g }), Msg::Ok);
    }
    h.server
        .deliver(Port(900), &info(1, Some(g)), b"to all")
        .unwrap();
    for c in [&mut a, &mut b] {
        let d = delivered(h.recv(c));
        assert_eq!(
            (d.to, d.local_port, d.seq),
            (DeliveredTo::Multicast(g), Port(900), 1)
        );
        assert_eq!(d.payload, b"to all");
    }

    h.server
        .deliver_anycast(Port(900), &info(2, Some(g)), b"to one")
        .unwrap();
    let d = delivered(h.recv(&mut a));
    assert_eq!((d.to, d.seq), (DeliveredTo::Anycast(g), 2));
    for _ in 0..5 {
        h.step();
    }
    b.poll();
    outsider.poll();
    assert!(b.inbox.is_empty(), "anycast reached one member only");
    assert!(
        outsider.inbox.is_empty(),
        "a non-member got a group message"
    );

    assert_eq!(
        h.server
            .deliver(Port(900), &info(3, Some(GroupId(78))), b"x"),
        Err(DeliverError::NoSuchPort),
        "no local member"
    );
}

#[test]
fn a_client_that_stops_reading_loses_delivers_but_never_replies() {
    let cfg = SessionConfig {
        out_buf_bytes: MIN_OUT_BUF_BYTES,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("backlog", cfg);
    let (mut slow, _) = h.connect("slow");
    let (mut fast, _) = h.connect("fast");
    h.bind(&mut slow, 1);
    h.bind(&mut fast, 2);
    let payload = vec![0x5a; 1000];

    // Deliver to both until the slow one's buffers (kernel and ours) are full; fast keeps up.
    let mut seq = 0u64;
    let mut fast_got = Vec::new();
    let mut slow_ok = 0u64;
    loop {
        let r = h.server.deliver(Port(1), &info(seq, None), &payload);
        h.server
            .deliver(Port(2), &info(seq, None), &payload)
            .unwrap();
        h.step();
        fast.poll();
        fast_got.extend(fast.inbox.drain(..).map(|m| delivered(m).seq));
        seq += 1;
        match r {
            Ok(()) => slow_ok += 1,
            Err(DeliverError::ClientBacklogFull) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(seq < 10_000, "the slow client's backlog never filled");
    }
    // The slow client's drops go on; the fast one still receives everything.
    for _ in 0..100 {
        assert_eq!(
            h.server.deliver(Port(1), &info(seq, None), &payload),
            Err(DeliverError::ClientBacklogFull)
        );
        h.server
            .deliver(Port(2), &info(seq, None), &payload)
            .unwrap();
        seq += 1;
        h.step();
        fast.poll();
        fast_got.extend(fast.inbox.drain(..).map(|m| delivered(m).seq));
    }
    h.until("fast to catch up", |_| {
        fast.poll();
        fast_got.extend(fast.inbox.drain(..).map(|m| delivered(m).seq));
        fast_got.len() as u64 == seq
    });
    assert_eq!(
        fast_got,
        (0..seq).collect::<Vec<_>>(),
        "fast got every message in order"
    );
    let s = h.server.stats();
    assert_eq!(s.deliver_drops(DeliverError::ClientBacklogFull), 101);
    assert!(h.server.flush(), "the slow client still has output waiting");

    // The slow client's requests are still handled at once (Delivers leave room for replies),
    // and the reply waits behind its backlog.
    let id = slow.send(&ClientMessage::Bind { port: Port(3) });
    let slow_id = h.watched[0];
    h.until("the slow client's Bind", |h| {
        h.server.client_info(slow_id).unwrap().ports.len() == 2
    });
    let mut got = Vec::new();
    h.until("the slow client's reply", |_| {
        slow.poll();
        got.extend(slow.inbox.drain(..));
        got.iter().any(|(_, m)| !matches!(m, Msg::Deliver(_)))
    });
    let (delivers, rest): (Vec<_>, Vec<_>) = got
        .into_iter()
        .partition(|(_, m)| matches!(m, Msg::Deliver(_)));
    assert_eq!(rest, vec![(id, Msg::Bound(Port(3)))]);
    let seqs: Vec<u64> = delivers.into_iter().map(|m| delivered(m).seq).collect();
    assert_eq!(
        seqs,
        (0..slow_ok).collect::<Vec<_>>(),
        "what was queued arrives in order"
    );
    assert_eq!(h.server.stats().reply_overflows, 0);
}
