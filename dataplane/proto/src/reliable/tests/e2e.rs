//! The end-to-end machines with scripted time.

use core::time::Duration;

use super::super::{E2eAck, E2eEvent, E2eParams, E2eSendError, E2eSink, E2eSource, SinkOutcome};
use super::ms;

fn params(window: u32) -> E2eParams {
    E2eParams {
        window,
        msg_len: 8,
        ..E2eParams::for_path(Duration::from_millis(50))
    }
}

#[test]
fn the_window_is_the_clients_credit() {
    let mut src = E2eSource::new(params(4));
    assert_eq!(src.credit(), 4);
    for want in 1..=4 {
        assert_eq!(src.handle_send(ms(0), b"m"), Ok(want));
    }
    assert_eq!(src.handle_send(ms(0), b"m"), Err(E2eSendError::WouldBlock));
    // Received but not delivered frees nothing: the receiving client has not taken them.
    src.handle_ack(ms(60), &E2eAck::new(0, 4, 0));
    assert_eq!(src.credit(), 0);
    src.handle_ack(ms(61), &E2eAck::new(3, 4, 0));
    assert_eq!(src.credit(), 3);
    assert_eq!(src.counters().would_block, 1);
    assert_eq!(
        src.handle_send(ms(0), &[0; 9]),
        Err(E2eSendError::TooLarge { len: 9 })
    );
}

#[test]
fn the_source_resends_only_what_the_sink_does_not_hold() {
    let mut src = E2eSource::new(params(16));
    for _ in 0..6 {
        src.handle_send(ms(0), b"m").unwrap();
    }
    // The sink holds 1, 2 and 4; 3, 5 and 6 were on a node that crashed.
    src.handle_ack(ms(60), &E2eAck::new(2, 2, 0b10));
    // Each message falls due one timeout after it was sent.
    let due = src.poll_timeout().unwrap();
    assert_eq!(due, ms(0) + params(16).rto);
    src.handle_timeout(ms(0) + (params(16).rto - Duration::from_millis(1)));
    assert!(src.peek_resend().is_none(), "not before the timeout");
    src.handle_timeout(due);
    let mut resent = Vec::new();
    while let Some((seq, msg)) = src.peek_resend() {
        assert_eq!(msg, b"m");
        resent.push(seq);
        src.commit_resend();
    }
    assert_eq!(resent, [3, 5, 6]);
    assert_eq!(src.counters().resent, 3);
    assert!(src.rto() > params(16).rto, "backs off");
}

#[test]
fn a_resend_pass_waits_for_room() {
    let mut src = E2eSource::new(params(8));
    for _ in 0..3 {
        src.handle_send(ms(0), b"m").unwrap();
    }
    src.handle_timeout(src.poll_timeout().unwrap());
    assert_eq!(src.peek_resend().map(|r| r.0), Some(1));
    // The caller could not send: the same message comes again.
    assert_eq!(src.peek_resend().map(|r| r.0), Some(1));
    src.commit_resend();
    assert_eq!(src.peek_resend().map(|r| r.0), Some(2));
}

#[test]
fn a_flow_without_progress_is_reported_stalled_then_resumed() {
    let p = params(8);
    let mut src = E2eSource::new(p);
    src.handle_send(ms(0), b"m").unwrap();
    let mut now = ms(0);
    while now < ms(0) + p.stall_after {
        now = src
            .poll_timeout()
            .unwrap_or(now + Duration::from_millis(100));
        src.handle_timeout(now);
        while src.peek_resend().is_some() {
            src.commit_resend();
        }
    }
    assert_eq!(src.poll_event(), Some(E2eEvent::Stalled { outstanding: 1 }));
    assert!(src.is_stalled());
    src.handle_ack(now, &E2eAck::new(1, 1, 0));
    assert_eq!(src.poll_event(), Some(E2eEvent::Resumed));
    assert_eq!(src.poll_timeout(), None);
}

#[test]
fn bogus_acks_are_ignored() {
    let mut src = E2eSource::new(params(8));
    src.handle_send(ms(0), b"m").unwrap();
    for (delivered, received) in [(2, 2), (0, 5), (1, 0)] {
        src.handle_ack(ms(1), &E2eAck::new(delivered, received, 0));
    }
    assert_eq!(src.counters().bad_acks, 3);
    assert_eq!(src.outstanding(), 1);
}

#[test]
fn the_sink_delivers_in_order_exactly_once() {
    let mut sink = E2eSink::new(params(8));
    assert_eq!(sink.handle_packet(ms(0), 2, b"two"), SinkOutcome::Accepted);
    assert!(sink.peek_deliver().is_none(), "1 is missing");
    assert_eq!(sink.handle_packet(ms(1), 2, b"two"), SinkOutcome::Duplicate);
    assert_eq!(sink.handle_packet(ms(1), 1, b"one"), SinkOutcome::Accepted);
    let mut got = Vec::new();
    while let Some((seq, msg)) = sink.peek_deliver() {
        got.push((seq, msg.to_vec()));
        sink.consume(ms(2));
    }
    assert_eq!(got, [(1, b"one".to_vec()), (2, b"two".to_vec())]);
    assert_eq!(sink.handle_packet(ms(3), 1, b"one"), SinkOutcome::Duplicate);
    assert_eq!(
        sink.handle_packet(ms(3), 11, b"x"),
        SinkOutcome::BeyondWindow
    );
    assert_eq!(sink.handle_packet(ms(3), 3, &[0; 9]), SinkOutcome::TooLarge);
    assert_eq!(sink.handle_packet(ms(3), 0, b"x"), SinkOutcome::Duplicate);
    let c = sink.counters();
    assert_eq!((c.accepted, c.delivered, c.duplicates), (2, 2, 3));
}

#[test]
fn sink_acks_say_what_is_delivered_and_what_is_held() {
    let mut sink = E2eSink::new(params(16));
    for seq in [1, 2, 3, 5, 7] {
        sink.handle_packet(ms(0), seq, b"m");
    }
    // The client takes one message only.
    sink.consume(ms(0));
    assert!(sink.poll_ack(ms(1)).is_none(), "delayed");
    let ack = sink.poll_ack(ms(5)).unwrap();
    assert_eq!(ack, E2eAck::new(1, 3, 0b1010));
    assert_eq!(sink.held(), 4);
    assert!(sink.poll_ack(ms(100)).is_none(), "nothing changed");
}

#[test]
fn a_message_held_for_order_ages_while_it_waits() {
    let mut sink = E2eSink::new(params(8));
    sink.handle_packet_aged(ms(10), 2, b"two", 1_000);
    sink.handle_packet_aged(ms(30), 1, b"one", 2_000);
    assert_eq!(sink.peek_age(ms(30)), 2_000);
    sink.consume(ms(30));
    // Message 2 arrived 1 ms old and waited 20 ms for message 1.
    assert_eq!(sink.peek_age(ms(30)), 21_000);
}

#[test]
fn a_message_delivered_on_arrival_leaves_the_sink_as_taking_and_consuming_it_would() {
    // One sink keeps every message and delivers it; the other is handed each message that is
    // next in order straight to the client. Their acks and counters must not differ.
    let mut kept = E2eSink::new(params(8));
    let mut direct = E2eSink::new(params(8));
    // 3 arrives early (held), then 1, 2 fill the gap; 4 and 5 come in order after.
    for (t, seq) in [(0, 3), (1, 1), (2, 2), (3, 4), (4, 5)] {
        kept.handle_packet(ms(t), seq, b"m");
        while kept.peek_deliver().is_some() {
            kept.consume(ms(t));
        }
        if direct.is_next_in_order(seq, 1) {
            assert!(seq >= 4, "{seq} went straight through");
            direct.handle_delivered(ms(t), seq);
        } else {
            direct.handle_packet(ms(t), seq, b"m");
            while direct.peek_deliver().is_some() {
                direct.consume(ms(t));
            }
        }
        assert_eq!(direct.ack(), kept.ack(), "after {seq}");
        assert_eq!(direct.poll_ack(ms(t + 10)), kept.poll_ack(ms(t + 10)));
    }
    assert_eq!(direct.counters(), kept.counters());
    assert_eq!(direct.delivered(), 5);
    assert_eq!(direct.held(), 0);
    // 1 and 2 were kept (3 was held); only 4 and 5 went straight through. A duplicate, a
    // message behind a gap, one too large, or any message while something is held is kept.
    assert!(!direct.is_next_in_order(5, 1), "a duplicate");
    assert!(!direct.is_next_in_order(7, 1), "behind a gap");
    assert!(!direct.is_next_in_order(6, 9), "too large");
    direct.handle_packet(ms(20), 7, b"m");
    assert!(!direct.is_next_in_order(6, 1), "7 is held");
}
