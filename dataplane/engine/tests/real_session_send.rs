//! Real Unix sockets: `Send`s reach the sink in order with sequence numbers, credits pace the
//! client per flow, batches are bounded and leftover input is served without a new readiness
//! event, and the sink's refusals are answered.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

mod session_common;

use std::time::Instant;

use session_common::{Harness, LIMIT, Msg, RecordingSink, batch};
use weft_dataplane::session::{ClientStatus, SessionConfig};
use weft_shared::DropReason;
use weft_shared::ids::{NodeId, Port};
use weft_shared::session::{
    ClientMessage, DeliveryMode, Destination, ErrorCode, FlowHandle, LinkProtocol,
    MAX_FRAMES_PER_BATCH, RoutingMode, Strikes,
};

/// The payload of message `i`: its index and a length that varies with it.
fn payload(i: usize) -> Vec<u8> {
    let mut p = format!("msg-{i:05}-").into_bytes();
    p.extend(std::iter::repeat_n((i % 251) as u8, i % 97));
    p
}

/// `n` Sends on `flow` with payloads `payload(first..first + n)`, in one buffer.
fn sends(flow: FlowHandle, first: usize, n: usize) -> Vec<u8> {
    let payloads: Vec<Vec<u8>> = (first..first + n).map(payload).collect();
    let msgs: Vec<ClientMessage<'_>> = payloads
        .iter()
        .map(|p| ClientMessage::Send { flow, payload: p })
        .collect();
    batch(1000, &msgs)
}

/// Sums the `Credit`s for each flow in `msgs`; fails on anything else.
fn credits(msgs: &[(u32, Msg)], flow: FlowHandle) -> (u32, usize) {
    let mut total = 0;
    let mut frames = 0;
    for (rid, m) in msgs {
        match m {
            Msg::Credit(f, n) if *f == flow => {
                assert_eq!(*rid, 0, "Credit is unsolicited");
                total += n;
                frames += 1;
            }
            Msg::Credit(..) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    (total, frames)
}

#[test]
fn a_thousand_sends_in_one_write_arrive_in_order_and_credits_come_back() {
    let cfg = SessionConfig {
        credits_per_flow: 1000,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("thousand", cfg);
    let (mut c, _) = h.connect("bulk");
    h.bind(&mut c, 77);
    let mut open = session_common::best_effort(77, 9);
    open.protocol = LinkProtocol::Realtime;
    open.routing = RoutingMode::KPaths(2);
    open.deadline_us = 65_000;
    open.strikes = Strikes { n: 2, m: 3 };
    open.delivery = DeliveryMode::InOrderAsap;
    open.priority = 0;
    let Msg::FlowOpened(flow, credits0) = h.request(&mut c, &ClientMessage::OpenFlow(open)) else {
        panic!()
    };
    assert_eq!(credits0, 1000);

    for round in 0..2 {
        c.write_all(&sends(flow, round * 1000, 1000));
        h.until("1000 sends", |h| h.sink.sends.len() == (round + 1) * 1000);
        // Let the last Credit reach the client.
        let mut got = Vec::new();
        h.until("all credits back", |_| {
            c.poll();
            got.extend(c.inbox.drain(..));
            credits(&got, flow).0 == 1000
        });
        let (total, frames) = credits(&got, flow);
        assert_eq!(total, 1000, "every credit comes back");
        assert!(
            frames >= 1000 / MAX_FRAMES_PER_BATCH,
            "one Credit per batch: {frames}"
        );
    }
    let flow_id = h.sink.opened[0];
    for (i, s) in h.sink.sends.iter().enumerate() {
        assert_eq!(s.seq, i as u64, "seq starts at 0 and counts up");
        assert_eq!(s.payload, payload(i));
        assert_eq!(s.flow, flow_id);
        assert_eq!(s.src_port, Port(77));
        assert_eq!(
            s.dst,
            Destination::Node {
                node: NodeId::new(2).unwrap(),
                port: Port(9)
            }
        );
        assert_eq!(s.service.protocol, LinkProtocol::Realtime);
        assert_eq!(s.service.routing, RoutingMode::KPaths(2));
        assert_eq!(s.service.deadline_us, 65_000);
        assert_eq!(s.service.strikes, Strikes { n: 2, m: 3 });
        assert_eq!(s.service.delivery, DeliveryMode::InOrderAsap);
    }
    let s = h.server.stats();
    assert_eq!((s.sends, s.credits_returned), (2000, 2000));
    assert_eq!(s.errors_sent.iter().sum::<u64>(), 0);
}

#[test]
fn a_flow_without_credit_gets_no_credit_while_another_keeps_sending() {
    let cfg = SessionConfig {
        credits_per_flow: 4,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("no-credit", cfg);
    let (mut c, _) = h.connect("two-flows");
    h.bind(&mut c, 1);
    let (a, _) = h.open_flow(&mut c, 1);
    let (b, _) = h.open_flow(&mut c, 1);
    // Six on a (two too many), interleaved with three on b, in one write: ids 1000..1009.
    let mut msgs = Vec::new();
    for i in 0..6 {
        msgs.push(ClientMessage::Send {
            flow: a,
            payload: b"a",
        });
        if i % 2 == 0 {
            msgs.push(ClientMessage::Send {
                flow: b,
                payload: b"b",
            });
        }
    }
    c.write_all(&batch(1000, &msgs));
    h.until("the sends", |h| h.sink.sends.len() == 7);
    let mut got = Vec::new();
    h.until("the replies", |_| {
        c.poll();
        got.extend(c.inbox.drain(..));
        got.iter()
            .filter(|(_, m)| matches!(m, Msg::Credit(..)))
            .count()
            == 2
    });
    let errors: Vec<_> = got.iter().filter(|(_, m)| m.code().is_some()).collect();
    // a's 5th and 6th sends are frames 6 and 8 of the batch (ids 1006, 1008).
    assert_eq!(
        errors,
        vec![
            &(
                1006,
                Msg::Error(
                    ErrorCode::NoCredit,
                    a.0,
                    format!("flow {:#x} has no credit", a.0)
                )
            ),
            &(
                1008,
                Msg::Error(
                    ErrorCode::NoCredit,
                    a.0,
                    format!("flow {:#x} has no credit", a.0)
                )
            ),
        ]
    );
    assert_eq!(credits(&got_credits(&got), a), (4, 1));
    assert_eq!(credits(&got_credits(&got), b), (3, 1));
    let on_b = h.sink.sends.iter().filter(|s| s.payload == b"b").count();
    assert_eq!(on_b, 3, "b was not held back by a");

    // With its credits back, a sends again, and its seq goes on from 4.
    c.send(&ClientMessage::Send {
        flow: a,
        payload: b"a again",
    });
    h.until("a again", |h| h.sink.sends.len() == 8);
    let last = h.sink.sends.last().unwrap();
    assert_eq!((last.payload.as_slice(), last.seq), (&b"a again"[..], 4));
    assert_eq!(h.server.stats().errors(ErrorCode::NoCredit), 2);
}

fn got_credits(got: &[(u32, Msg)]) -> Vec<(u32, Msg)> {
    got.iter()
        .filter(|(_, m)| matches!(m, Msg::Credit(..)))
        .cloned()
        .collect()
}

#[test]
fn buffered_input_is_served_through_next_pending_without_new_readiness() {
    // An edge-triggered loop: handle_readable once for the one readiness event, then only for
    // clients next_pending names. All 1000 frames must still be handled.
    let cfg = SessionConfig {
        credits_per_flow: 1000,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("pending", cfg);
    let (mut c, _) = h.connect("burst");
    h.bind(&mut c, 5);
    let (flow, _) = h.open_flow(&mut c, 5);
    let id = h.watched[0];
    c.write_all(&sends(flow, 0, 1000));
    let mut sink = RecordingSink::default();
    assert_eq!(h.server.handle_readable(id, &mut sink), ClientStatus::Open);
    assert_eq!(
        sink.sends.len(),
        MAX_FRAMES_PER_BATCH,
        "one bounded batch per call"
    );
    assert!(h.server.has_pending());
    let mut turns = 1;
    let start = Instant::now();
    while sink.sends.len() < 1000 {
        assert!(start.elapsed() < LIMIT, "stalled at {}", sink.sends.len());
        let next = h.server.next_pending(None);
        assert_eq!(next, Some(id), "input left after {}", sink.sends.len());
        assert_eq!(h.server.handle_readable(id, &mut sink), ClientStatus::Open);
        h.server.flush();
        turns += 1;
    }
    assert_eq!(turns, 1000_usize.div_ceil(MAX_FRAMES_PER_BATCH));
    assert_eq!(h.server.next_pending(None), None, "drained");
    assert!(!h.server.has_pending());
    assert!(
        sink.sends
            .iter()
            .enumerate()
            .all(|(i, s)| s.payload == payload(i))
    );
}

#[test]
fn a_refused_send_is_answered_and_the_flow_stays_usable() {
    let cfg = SessionConfig {
        credits_per_flow: 2,
        max_payload: 100,
        ..SessionConfig::default()
    };
    let mut h = Harness::new("refused", cfg);
    let (mut c, _) = h.connect("r");
    h.bind(&mut c, 3);
    let (flow, _) = h.open_flow(&mut c, 3);
    let r = h.request(
        &mut c,
        &ClientMessage::Send {
            flow,
            payload: b"drop me",
        },
    );
    let Msg::Error(code, detail, text) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        (code, detail),
        (ErrorCode::Internal, DropReason::QueueFull.index() as u32)
    );
    assert!(text.contains("queue full"), "{text}");
    assert_eq!(
        h.recv(&mut c),
        (0, Msg::Credit(flow, 1)),
        "the refused Send's credit"
    );
    assert_eq!(h.server.stats().send_drops(DropReason::QueueFull), 1);

    let big = vec![0u8; 101];
    let r = h.request(
        &mut c,
        &ClientMessage::Send {
            flow,
            payload: &big,
        },
    );
    assert_eq!(r.code(), Some(ErrorCode::MessageTooLarge));
    assert!(
        matches!(r, Msg::Error(_, 100, _)),
        "the announced limit: {r:?}"
    );

    // Both credits are available again: two sends go through, and the refused message used no
    // sequence number.
    c.write_all(&batch(
        50,
        &[
            ClientMessage::Send {
                flow,
                payload: b"one",
            },
            ClientMessage::Send {
                flow,
                payload: b"two",
            },
        ],
    ));
    h.until("two sends", |h| h.sink.sends.len() == 2);
    let seqs: Vec<u64> = h.sink.sends.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, vec![0, 1]);
    let mut got = Vec::new();
    h.until("the credit", |_| {
        c.poll();
        got.extend(c.inbox.drain(..));
        credits(&got, flow).0 >= 2
    });
    assert_eq!(
        credits(&got, flow),
        (2, 1),
        "one Credit for the batch of two"
    );
}
