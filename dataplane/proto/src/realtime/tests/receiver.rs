//! The receiver alone, with scripted arrivals and time.

use weft_shared::time::Instant;
use weft_shared::wire::{LinkProto, MAX_NACK_SEQS};

use super::super::{ReceiverLimits, RtReceiver, RxOutcome};
use super::{meta, ms, params, us};

fn receiver(window: u32, pending: usize) -> RtReceiver {
    RtReceiver::new(
        params(),
        ReceiverLimits {
            window,
            pending,
            nack_queue: 64,
        },
    )
}

/// Fires the timers due at `now` and returns the requested sequences, nack by nack.
fn requests(rx: &mut RtReceiver, now: Instant) -> Vec<Vec<u32>> {
    rx.handle_timeout(now);
    let mut out = Vec::new();
    while let Some(nack) = rx.poll_nack() {
        assert_eq!(nack.link_proto(), LinkProto::Realtime);
        out.push(nack.seqs().to_vec());
    }
    out
}

#[test]
fn a_gap_gets_n_spaced_requests_until_the_packet_arrives() {
    let mut rx = receiver(1024, 16);
    let m = meta(3, 1, ms(500));
    assert_eq!(rx.handle_packet(ms(0), 1, m, false), RxOutcome::New);
    assert_eq!(rx.handle_packet(ms(1), 4, m, false), RxOutcome::New);
    // First request after the 2 ms reorder allowance, then every 10 ms.
    assert_eq!(rx.poll_timeout(), Some(ms(3)));
    assert_eq!(requests(&mut rx, us(2_999)), Vec::<Vec<u32>>::new());
    assert_eq!(requests(&mut rx, ms(3)), vec![vec![2, 3]]);
    assert_eq!(rx.poll_timeout(), Some(ms(13)));
    // 3 arrives as a retransmission: its last request is cancelled, 2's continue.
    assert_eq!(
        rx.handle_packet(ms(10), 3, m, true),
        RxOutcome::Filled {
            retransmission: true
        }
    );
    assert_eq!(requests(&mut rx, ms(13)), vec![vec![2]]);
    assert_eq!(requests(&mut rx, ms(23)), vec![vec![2]]);
    assert_eq!(rx.poll_timeout(), None, "N = 3 requests sent");
    assert_eq!(requests(&mut rx, ms(100)), Vec::<Vec<u32>>::new());
    // A late reordered original is still accepted once.
    assert_eq!(
        rx.handle_packet(ms(101), 2, m, false),
        RxOutcome::Filled {
            retransmission: false
        }
    );
    let c = rx.counters();
    assert_eq!((c.missing, c.scheduled, c.requests), (2, 2, 4));
    assert_eq!((c.cancelled, c.filled, c.recovered, c.nacks), (2, 2, 1, 3));
}

#[test]
fn each_sequence_is_accepted_once() {
    let mut rx = receiver(64, 16);
    let m = meta(1, 1, ms(500));
    assert!(rx.handle_packet(ms(0), 10, m, false).is_accepted());
    assert_eq!(rx.handle_packet(ms(0), 10, m, true), RxOutcome::Duplicate);
    assert_eq!(rx.handle_packet(ms(0), 12, m, false), RxOutcome::New);
    assert_eq!(
        rx.handle_packet(ms(0), 11, m, false),
        RxOutcome::Filled {
            retransmission: false
        }
    );
    assert_eq!(rx.handle_packet(ms(0), 11, m, true), RxOutcome::Duplicate);
    // Sequences before the first one seen are accepted if in the window (reordered).
    assert!(rx.handle_packet(ms(0), 9, m, false).is_accepted());
    // A jump past the window: the old ones are now too old, the tracked gap is fillable.
    assert_eq!(rx.handle_packet(ms(1), 100, m, false), RxOutcome::New);
    assert_eq!(rx.handle_packet(ms(1), 12, m, false), RxOutcome::TooOld);
    assert!(rx.handle_packet(ms(1), 40, m, false).is_accepted());
    assert_eq!(rx.handle_packet(ms(1), 40, m, false), RxOutcome::Duplicate);
    let c = rx.counters();
    assert_eq!((c.duplicates, c.too_old), (3, 1));
    // 11, then 13..=99 missing; of the latter 63 tracked (the window less the newest), 24
    // beyond it.
    assert_eq!(c.missing, 88);
    assert_eq!(c.beyond_window, 24);
    assert_eq!(rx.window(), 64);
}

#[test]
fn requests_are_batched_into_nacks_of_at_most_32() {
    let mut rx = receiver(1024, 64);
    let m = meta(1, 1, ms(500));
    rx.handle_packet(ms(0), 1, m, false);
    rx.handle_packet(ms(0), 42, m, false);
    let nacks = requests(&mut rx, ms(2));
    assert_eq!(nacks.len(), 2);
    assert_eq!(nacks[0].len(), MAX_NACK_SEQS);
    assert_eq!(nacks[1].len(), 40 - MAX_NACK_SEQS);
    let all: Vec<u32> = nacks.concat();
    assert_eq!(all, (2..42).collect::<Vec<_>>());
}

#[test]
fn nothing_is_requested_that_cannot_make_the_deadline() {
    let mut rx = receiver(1024, 16);
    // One way 10 ms: a request at t (after the 2 ms allowance) brings a copy back at t + 20 ms.
    rx.handle_packet(ms(0), 1, meta(3, 1, ms(20)), false);
    rx.handle_packet(ms(1), 3, meta(3, 1, us(22_999)), false);
    assert_eq!(rx.poll_timeout(), None);
    assert_eq!(rx.counters().too_late, 1);
    // Deadline 28 ms, gap seen at 1 ms: 27 ms left, 22 ms needed by the first request (2 +
    // 20), so the three requests are compressed to 2.5 ms apart and the last still makes it.
    let mut rx = receiver(1024, 16);
    rx.handle_packet(ms(0), 1, meta(3, 1, ms(20)), false);
    rx.handle_packet(ms(1), 3, meta(3, 1, ms(28)), false);
    assert_eq!(requests(&mut rx, ms(3)), vec![vec![2]]);
    assert_eq!(rx.poll_timeout(), Some(us(5_500)));
    assert_eq!(requests(&mut rx, us(5_500)), vec![vec![2]]);
    assert_eq!(requests(&mut rx, ms(8)), vec![vec![2]]);
    // The same, with the timer fired late: the schedule is abandoned, not sent uselessly.
    let mut rx = receiver(1024, 16);
    rx.handle_packet(ms(0), 1, meta(3, 1, ms(20)), false);
    rx.handle_packet(ms(1), 3, meta(3, 1, ms(28)), false);
    assert_eq!(requests(&mut rx, ms(9)), Vec::<Vec<u32>>::new());
    assert_eq!(rx.counters().abandoned, 1);
    assert_eq!(rx.pending(), 0);
}

#[test]
fn strikes_come_from_the_neighbours_of_the_gap() {
    // N = 0 on both sides: the gap is noted but never requested.
    let mut rx = receiver(1024, 16);
    rx.handle_packet(ms(0), 1, meta(0, 3, ms(500)), false);
    rx.handle_packet(ms(0), 3, meta(0, 3, ms(500)), false);
    assert_eq!(rx.poll_timeout(), None);
    assert_eq!(rx.counters().no_strikes, 1);
    // The larger N of the two neighbours, and the later deadline.
    let mut rx = receiver(1024, 16);
    rx.handle_packet(ms(0), 1, meta(1, 1, ms(10)), false);
    rx.handle_packet(ms(0), 3, meta(2, 1, ms(500)), false);
    assert_eq!(requests(&mut rx, ms(2)), vec![vec![2]]);
    assert_eq!(requests(&mut rx, ms(12)), vec![vec![2]]);
    assert_eq!(rx.poll_timeout(), None);
}

#[test]
fn memory_limits_are_enforced_and_counted() {
    let mut rx = RtReceiver::new(
        params(),
        ReceiverLimits {
            window: 1024,
            pending: 4,
            nack_queue: 3,
        },
    );
    let m = meta(2, 1, ms(500));
    rx.handle_packet(ms(0), 1, m, false);
    rx.handle_packet(ms(0), 12, m, false);
    assert_eq!(rx.pending(), 4);
    assert_eq!(rx.counters().pending_full, 6);
    rx.handle_timeout(ms(2));
    assert_eq!(rx.queued(), 3);
    assert_eq!(rx.counters().nack_queue_full, 1);
    assert_eq!(rx.poll_nack().unwrap().seqs().len(), 3);
    assert!(rx.poll_nack().is_none());
    rx.reset();
    assert_eq!((rx.pending(), rx.queued()), (0, 0));
    assert_eq!(rx.handle_packet(ms(3), 12, m, false), RxOutcome::New);
}

#[test]
fn sequences_wrap_through_zero() {
    let mut rx = receiver(1024, 16);
    let m = meta(1, 1, ms(500));
    rx.handle_packet(ms(0), u32::MAX - 1, m, false);
    rx.handle_packet(ms(0), u32::MAX, m, false);
    assert_eq!(rx.handle_packet(ms(0), 1, m, false), RxOutcome::New);
    assert_eq!(requests(&mut rx, ms(2)), vec![vec![0]]);
    assert!(rx.handle_packet(ms(3), 0, m, true).is_accepted());
    assert_eq!(
        rx.handle_packet(ms(3), u32::MAX, m, false),
        RxOutcome::Duplicate
    );
}
