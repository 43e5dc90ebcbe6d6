//! The link machines with scripted time.

use weft_shared::wire::AckRepr;
use weft_shared::wire::LinkProto;

use super::super::{RelClass, RelSendError, RelSender};
use super::{link_pair, ms};

/// Takes `body` and puts it on the wire (the congestion window is open in these tests).
fn send(
    tx: &mut RelSender,
    now: weft_shared::time::Instant,
    body: &[u8],
) -> Result<u32, RelSendError> {
    let seq = tx.handle_send(now, body)?;
    let t = tx
        .poll_transmit(now)
        .expect("the congestion window is open");
    assert!(!t.retransmission && t.link_seq == seq);
    Ok(seq)
}

fn ack(cum: u32, sack: u64) -> AckRepr {
    AckRepr {
        link_proto: LinkProto::Reliable,
        data_lane: 0,
        cum_ack: cum,
        sack,
    }
}

#[test]
fn sequences_start_at_one_and_acks_free_the_window() {
    let (mut tx, _) = link_pair(4);
    for want in 1..=4 {
        assert_eq!(send(&mut tx, ms(0), b"x"), Ok(want));
    }
    assert_eq!(send(&mut tx, ms(0), b"x"), Err(RelSendError::WindowFull));
    assert_eq!(tx.counters().window_full, 1);
    tx.handle_ack(ms(20), &ack(2, 0));
    assert_eq!(tx.in_flight(), 2);
    assert_eq!(send(&mut tx, ms(20), b"x"), Ok(5));
    assert_eq!(tx.counters().acked, 2);
    assert_eq!(tx.srtt().as_millis(), 20);
}

#[test]
fn too_large_records_are_refused() {
    let (mut tx, _) = link_pair(4);
    assert_eq!(
        send(&mut tx, ms(0), &[0; 17]),
        Err(RelSendError::TooLarge { len: 17 })
    );
}

#[test]
fn an_ack_beyond_what_was_sent_is_ignored() {
    let (mut tx, _) = link_pair(8);
    send(&mut tx, ms(0), b"a").unwrap();
    tx.handle_ack(ms(1), &ack(5, 0));
    assert_eq!(tx.counters().bad_acks, 1);
    assert_eq!(tx.in_flight(), 1);
}

#[test]
fn a_nack_retransmits_the_record_as_first_sent() {
    let (mut tx, _) = link_pair(8);
    send(&mut tx, ms(0), b"one").unwrap();
    send(&mut tx, ms(1), b"two").unwrap();
    tx.handle_nack(ms(12), &[1, 9]);
    let r = tx.poll_transmit(ms(12)).unwrap();
    assert_eq!(
        (r.link_seq, r.record, r.first_sent),
        (1, &b"one"[..], ms(0))
    );
    assert!(tx.poll_transmit(ms(12)).is_none());
    assert_eq!(tx.counters().nack_unknown, 1);
    // A second request while the copy is on its way is ignored.
    tx.handle_nack(ms(14), &[1]);
    assert!(tx.poll_transmit(ms(14)).is_none());
    assert_eq!(tx.counters().nack_recent, 1);
}

#[test]
fn three_later_records_acked_mark_a_record_lost() {
    let (mut tx, _) = link_pair(16);
    for _ in 0..5 {
        send(&mut tx, ms(0), b"r").unwrap();
    }
    // 1 arrived, 2 lost, 3 and 4 arrived: not yet three past it.
    tx.handle_ack(ms(20), &ack(1, 0b110));
    assert!(tx.poll_transmit(ms(20)).is_none());
    // 5 arrived too.
    tx.handle_ack(ms(21), &ack(1, 0b1110));
    assert_eq!(tx.poll_transmit(ms(21)).map(|r| r.link_seq), Some(2));
    assert_eq!(tx.counters().retx_sack, 1);
    tx.handle_ack(ms(41), &ack(5, 0));
    assert_eq!(tx.in_flight(), 0);
}

#[test]
fn a_lost_tail_is_resent_on_timeout_with_backoff() {
    let (mut tx, _) = link_pair(8);
    send(&mut tx, ms(0), b"last").unwrap();
    let first = tx.poll_timeout().unwrap();
    assert!(first > ms(20) && first < ms(100), "{first:?}");
    tx.handle_timeout(first);
    assert_eq!(tx.poll_transmit(first).map(|r| r.link_seq), Some(1));
    let second = tx.poll_timeout().unwrap();
    assert!(second - first > first - ms(0), "the timeout doubles");
    assert_eq!(tx.counters().timeouts, 1);
    tx.handle_ack(second, &ack(1, 0));
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn the_receiver_requests_a_gap_after_the_allowance_and_again_until_filled() {
    let (_, mut rx) = link_pair(64);
    assert_eq!(rx.classify(1), RelClass::New);
    rx.accept(ms(0), 1, false);
    rx.accept(ms(1), 3, false);
    assert!(
        rx.poll_nack(ms(1)).is_none(),
        "within the reorder allowance"
    );
    let due = rx.poll_timeout().unwrap();
    let nack = rx.poll_nack(ms(4)).unwrap();
    assert!(due <= ms(4));
    assert_eq!(nack.seqs(), &[2]);
    // Not filled: asked again one re-request interval later.
    assert!(rx.poll_nack(ms(10)).is_none());
    assert_eq!(rx.poll_nack(ms(40)).unwrap().seqs(), &[2]);
    rx.accept(ms(41), 2, true);
    assert!(rx.poll_nack(ms(100)).is_none());
    let c = rx.counters();
    assert_eq!(
        (c.missing, c.requests, c.recovered, c.out_of_order),
        (1, 2, 1, 1)
    );
    assert_eq!(rx.cum_ack(), 3);
}

#[test]
fn acks_carry_the_cumulative_and_selective_state() {
    let (_, mut rx) = link_pair(64);
    for s in [1, 2, 4, 6] {
        rx.accept(ms(0), s, false);
    }
    assert!(rx.poll_ack(ms(0)).is_none(), "delayed up to 1 ms");
    let a = rx.poll_ack(ms(1)).unwrap();
    assert_eq!((a.cum_ack, a.sack), (2, 0b1010));
    assert!(a.covers(4) && !a.covers(3));
}

#[test]
fn duplicates_are_dropped_and_acked_at_once() {
    let (_, mut rx) = link_pair(64);
    rx.accept(ms(0), 1, false);
    let _ = rx.poll_ack(ms(5));
    assert_eq!(rx.classify(1), RelClass::Duplicate);
    rx.duplicate(ms(6), RelClass::Duplicate);
    assert!(rx.poll_ack(ms(6)).is_some());
    assert_eq!(rx.counters().duplicates, 1);
    assert_eq!(rx.classify(0), RelClass::Duplicate);
    assert_eq!(rx.classify(1 + 64), RelClass::BeyondWindow);
}

#[test]
fn a_refused_record_is_not_acked_and_comes_back_on_timeout() {
    let (mut tx, mut rx) = link_pair(8);
    let s1 = send(&mut tx, ms(0), b"a").unwrap();
    let s2 = send(&mut tx, ms(0), b"b").unwrap();
    rx.accept(ms(10), s1, false);
    rx.refuse(ms(10), s2);
    let a = rx.poll_ack(ms(11)).unwrap();
    assert_eq!((a.cum_ack, a.sack), (1, 0));
    tx.handle_ack(ms(21), &a);
    assert_eq!(tx.in_flight(), 1);
    let t = tx.poll_timeout().unwrap();
    tx.handle_timeout(t);
    let r = tx.poll_transmit(t).unwrap();
    assert_eq!((r.link_seq, r.record), (s2, &b"b"[..]));
    assert_eq!(rx.classify(s2), RelClass::New);
    rx.accept(t, s2, true);
    assert_eq!(rx.cum_ack(), 2);
    assert_eq!(rx.counters().refused, 1);
}

#[test]
fn sequences_wrap_around_skipping_zero() {
    let (tx, rx) = link_pair(8);
    let mut tx = tx.starting_at(u32::MAX - 2);
    let mut rx = rx.starting_at(u32::MAX - 2);
    let mut seqs = Vec::new();
    for _ in 0..6 {
        let s = send(&mut tx, ms(0), b"w").unwrap();
        seqs.push(s);
        rx.accept(ms(1), s, false);
    }
    assert_eq!(seqs, [u32::MAX - 2, u32::MAX - 1, u32::MAX, 1, 2, 3]);
    assert_eq!(rx.cum_ack(), 3);
    let a = rx.poll_ack(ms(2)).unwrap();
    tx.handle_ack(ms(2), &a);
    assert_eq!(tx.in_flight(), 0);
    assert_eq!(tx.counters().bad_acks, 0);
}

#[test]
fn reset_abandons_what_was_in_flight() {
    let (mut tx, mut rx) = link_pair(8);
    send(&mut tx, ms(0), b"a").unwrap();
    send(&mut tx, ms(0), b"b").unwrap();
    assert_eq!(tx.reset(), 2);
    rx.accept(ms(0), 5, false);
    rx.reset();
    assert_eq!(send(&mut tx, ms(1), b"c"), Ok(1));
    assert_eq!(rx.classify(1), RelClass::New);
    assert_eq!(rx.pending(), 0);
}

#[test]
fn the_congestion_window_paces_the_wire_and_halves_once_per_loss_event() {
    let (mut tx, _) = link_pair(64);
    for _ in 0..20 {
        tx.handle_send(ms(0), b"c").unwrap();
    }
    let mut first = 0;
    while tx.poll_transmit(ms(0)).is_some() {
        first += 1;
    }
    assert_eq!((first, tx.queued(), tx.cwnd()), (10, 10, 10));
    // Slow start: each ack opens the window by one.
    tx.handle_ack(ms(20), &ack(10, 0));
    assert_eq!(tx.cwnd(), 20);
    let mut second = 0;
    while tx.poll_transmit(ms(20)).is_some() {
        second += 1;
    }
    assert_eq!((second, tx.queued()), (10, 0));
    // Two losses of one window: one halving.
    tx.handle_nack(ms(30), &[11]);
    tx.handle_nack(ms(30), &[12]);
    assert_eq!(tx.counters().loss_events, 1);
    assert_eq!(tx.cwnd(), 5);
    // A timeout closes it to 2.
    let t = tx.poll_timeout().unwrap_or(ms(1000));
    while tx.poll_transmit(ms(30)).is_some() {}
    tx.handle_timeout(t.max(ms(1000)));
    assert_eq!(tx.cwnd(), 2);
}

#[test]
fn pacing_spaces_transmissions_at_the_configured_rate() {
    use super::super::{PACING_OVERHEAD, RelParams, RelSenderLimits};
    let params = RelParams {
        // 1,000 records of 24 B (+ headers) per second.
        pacing_bps: Some(((24 + PACING_OVERHEAD) * 8 * 1000) as u64),
        // No acks come in this test: keep the timeout out of the way.
        min_rto: core::time::Duration::from_secs(10),
        max_rto: core::time::Duration::from_secs(10),
        ..RelParams::for_link(core::time::Duration::from_millis(20))
    };
    let limits = RelSenderLimits {
        window: 256,
        record_len: 24,
    };
    let mut tx = RelSender::new(params, limits);
    for _ in 0..100 {
        tx.handle_send(ms(0), &[0; 24]).unwrap();
    }
    let mut sent = Vec::new();
    let mut now = ms(0);
    while sent.len() < 100 {
        while let Some(t) = tx.poll_transmit(now) {
            assert!(!t.retransmission);
            sent.push(now);
        }
        now = tx.poll_timeout().unwrap().max(now);
    }
    // A burst of about 2 ms at first, then one per millisecond.
    let span = sent[99] - sent[0];
    assert!((95..=99).contains(&span.as_millis()), "{span:?}");
}

#[test]
fn a_record_written_in_place_is_kept_and_sent_and_a_failed_write_numbers_nothing() {
    let (mut tx, _) = link_pair(4);
    let seq = tx.handle_send_with(ms(0), |slot: &mut [u8]| {
        assert_eq!(slot.len(), 16, "the whole slot, record_len bytes");
        slot[..3].copy_from_slice(b"abc");
        Ok::<_, RelSendError>(3)
    });
    assert_eq!(seq, Ok(1));
    let failed = tx.handle_send_with(ms(0), |_: &mut [u8]| {
        Err(RelSendError::TooLarge { len: 99 })
    });
    assert_eq!(failed, Err(RelSendError::TooLarge { len: 99 }));
    assert_eq!(
        tx.handle_send(ms(0), b"d"),
        Ok(2),
        "the failed write took no number"
    );
    let t = tx.poll_transmit(ms(0)).unwrap();
    assert_eq!((t.link_seq, t.record), (1, &b"abc"[..]));
    let t = tx.poll_transmit(ms(0)).unwrap();
    assert_eq!((t.link_seq, t.record), (2, &b"d"[..]));
}
