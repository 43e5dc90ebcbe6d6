//! The sender alone, with scripted time and requests.

use super::super::{RtSendError, RtSender, SenderLimits};
use super::{meta, ms, params, us};

fn sender() -> RtSender {
    RtSender::new(
        params(),
        SenderLimits {
            history: 8,
            record_len: 16,
            schedule: 4,
        },
    )
}

/// Drains the copies due at `now`: (seq, copy, first record byte).
fn due(tx: &mut RtSender, now: weft_shared::time::Instant) -> Vec<(u32, u8, u8)> {
    let mut out = Vec::new();
    while let Some(r) = tx.poll_transmit(now) {
        out.push((r.link_seq, r.copy, r.record[0]));
    }
    out
}

#[test]
fn the_first_request_gets_m_spaced_copies_and_later_ones_are_ignored() {
    let mut tx = sender();
    let m = meta(2, 3, ms(500));
    for i in 0..3u8 {
        assert_eq!(
            tx.handle_send(ms(u64::from(i)), m, &[10 + i]),
            Ok(u32::from(i) + 1)
        );
    }
    assert_eq!(tx.poll_timeout(), None);
    tx.handle_nack(ms(20), &[2]);
    assert_eq!(due(&mut tx, ms(20)), vec![(2, 1, 11)], "first copy at once");
    assert_eq!(tx.poll_timeout(), Some(ms(30)));
    // A second request for the same sequence (the receiver's next strike) changes nothing.
    tx.handle_nack(ms(25), &[2]);
    assert_eq!(due(&mut tx, us(29_999)), vec![]);
    assert_eq!(due(&mut tx, ms(30)), vec![(2, 2, 11)]);
    assert_eq!(due(&mut tx, ms(40)), vec![(2, 3, 11)]);
    assert_eq!(tx.poll_timeout(), None);
    assert_eq!(due(&mut tx, ms(100)), vec![]);
    // Even after the schedule ran out, a request for it is a repeat.
    tx.handle_nack(ms(60), &[2]);
    assert_eq!(due(&mut tx, ms(60)), vec![]);
    let c = tx.counters();
    assert_eq!((c.sent, c.retransmitted), (3, 3));
    assert_eq!((c.requested, c.answered, c.repeated), (3, 1, 2));
}

#[test]
fn copies_of_several_requests_come_out_in_due_order() {
    let mut tx = sender();
    let m = meta(1, 2, ms(500));
    for i in 0..4u8 {
        tx.handle_send(ms(0), m, &[i]).unwrap();
    }
    tx.handle_nack(ms(10), &[3, 1]);
    tx.handle_nack(ms(15), &[4]);
    assert_eq!(due(&mut tx, ms(15)), vec![(3, 1, 2), (1, 1, 0), (4, 1, 3)]);
    // Polled late: both second copies of the first nack are due, then the one of the second.
    assert_eq!(due(&mut tx, ms(25)), vec![(3, 2, 2), (1, 2, 0), (4, 2, 3)]);
    assert_eq!(tx.scheduled(), 0);
}

#[test]
fn nothing_is_sent_that_cannot_arrive_in_time() {
    let mut tx = sender();
    // 10 ms one way: a record with a deadline 9 ms away is refused outright.
    assert_eq!(
        tx.handle_send(ms(0), meta(1, 1, ms(9)), &[1]),
        Err(RtSendError::Expired)
    );
    assert_eq!(tx.next_seq(), 1, "no sequence used");
    // Deadline 45 ms, request at 20 ms: 15 ms for three copies, so they are spaced 7.5 ms
    // (compressed from 10) and the third leaves at 35 ms, arriving exactly at 45 ms.
    tx.handle_send(ms(0), meta(1, 3, ms(45)), &[7]).unwrap();
    tx.handle_nack(ms(20), &[1]);
    assert_eq!(due(&mut tx, ms(20)), vec![(1, 1, 7)]);
    assert_eq!(tx.poll_timeout(), Some(us(27_500)));
    assert_eq!(due(&mut tx, us(27_500)), vec![(1, 2, 7)]);
    assert_eq!(due(&mut tx, ms(35)), vec![(1, 3, 7)]);
    // The same, but the caller polls late: copies that would arrive after 45 ms are cut.
    tx.handle_send(ms(0), meta(1, 3, ms(45)), &[8]).unwrap();
    tx.handle_nack(ms(20), &[2]);
    assert_eq!(due(&mut tx, ms(20)), vec![(2, 1, 8)]);
    assert_eq!(due(&mut tx, us(35_001)), vec![]);
    assert_eq!(tx.counters().cut_by_deadline, 2);
    // A request arriving when not even one copy can make it.
    tx.handle_send(ms(0), meta(1, 3, ms(45)), &[9]).unwrap();
    tx.handle_nack(us(35_001), &[3]);
    assert_eq!(due(&mut tx, ms(36)), vec![]);
    let c = tx.counters();
    assert_eq!((c.expired, c.too_late, c.retransmitted), (1, 1, 4));
}

#[test]
fn unknown_evicted_and_unsent_sequences_are_counted() {
    let mut tx = sender();
    let m = meta(1, 1, ms(1_000));
    for i in 0..10u8 {
        tx.handle_send(ms(u64::from(i)), m, &[i]).unwrap();
    }
    // History of 8: sequences 1 and 2 were overwritten while still useful.
    assert_eq!(tx.counters().evicted_live, 2);
    tx.handle_nack(ms(20), &[0, 1, 2, 11, 4_000_000_000]);
    assert_eq!(due(&mut tx, ms(20)), vec![]);
    assert_eq!(tx.counters().unknown, 5);
    tx.handle_nack(ms(20), &[3, 10]);
    assert_eq!(due(&mut tx, ms(20)), vec![(3, 1, 2), (10, 1, 9)]);
    // A scheduled copy whose record is overwritten before it is due is not sent.
    let mut tx = sender();
    let m2 = meta(1, 2, ms(1_000));
    tx.handle_send(ms(0), m2, &[0]).unwrap();
    tx.handle_nack(ms(20), &[1]);
    assert_eq!(due(&mut tx, ms(20)), vec![(1, 1, 0)]);
    for _ in 0..8 {
        tx.handle_send(ms(21), m2, &[1]).unwrap();
    }
    assert_eq!(due(&mut tx, ms(30)), vec![]);
    assert_eq!(tx.counters().cut_by_eviction, 1);
}

#[test]
fn limits_are_enforced_and_counted() {
    let mut tx = sender();
    assert_eq!(
        tx.handle_send(ms(0), meta(1, 1, ms(500)), &[0; 17]),
        Err(RtSendError::TooLarge { len: 17 })
    );
    assert_eq!(tx.counters().too_large, 1);
    for _ in 0..6 {
        tx.handle_send(ms(0), meta(1, 2, ms(500)), &[0; 16])
            .unwrap();
    }
    // A schedule of 4: the fifth and sixth requests are dropped.
    tx.handle_nack(ms(10), &[1, 2, 3, 4, 5, 6]);
    assert_eq!(tx.scheduled(), 4);
    assert_eq!(tx.counters().schedule_full, 2);
    // M = 0: a request is noted and nothing is sent.
    let mut tx = sender();
    tx.handle_send(ms(0), meta(3, 0, ms(500)), &[0]).unwrap();
    tx.handle_nack(ms(10), &[1]);
    assert_eq!(due(&mut tx, ms(10)), vec![]);
    assert_eq!(tx.counters().no_strikes, 1);
}

#[test]
fn sequences_wrap_through_zero() {
    let mut tx = sender().starting_at(u32::MAX - 1);
    let m = meta(1, 1, ms(500));
    let seqs: Vec<u32> = (0..4u8)
        .map(|i| tx.handle_send(ms(0), m, &[i]).unwrap())
        .collect();
    assert_eq!(seqs, vec![u32::MAX - 1, u32::MAX, 0, 1]);
    tx.handle_nack(ms(10), &[u32::MAX, 0, 2]);
    assert_eq!(due(&mut tx, ms(10)), vec![(u32::MAX, 1, 1), (0, 1, 2)]);
    assert_eq!(tx.counters().unknown, 1, "2 was never sent");
}
