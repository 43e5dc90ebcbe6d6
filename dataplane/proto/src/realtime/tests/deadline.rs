//! The destination's deadline buffer alone, with scripted arrivals and time.

use core::time::Duration;

use weft_shared::time::Instant;
use weft_shared::wire::Delivery;

use super::super::{ArrivalOutcome, DeadlineBuffer, DeadlineParams};
use super::{ms, us};

fn buffer(delivery: Delivery, capacity: u32) -> DeadlineBuffer<u64> {
    DeadlineBuffer::new(
        DeadlineParams {
            deadline: Duration::from_millis(200),
            delivery,
            capacity,
        },
        Some(0),
    )
}

/// Releases due at `now`: (seq, latency in ms).
fn released(b: &mut DeadlineBuffer<u64>, now: Instant) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    while let Some(r) = b.poll_release(now) {
        assert_eq!(r.item, r.seq * 10, "the caller's item comes back");
        out.push((r.seq, r.latency.as_millis() as u64));
    }
    out
}

/// Message `seq` sent at `seq` ms arrives at `at`.
fn arrive(b: &mut DeadlineBuffer<u64>, at: Instant, seq: u64, recovered: bool) -> ArrivalOutcome {
    b.handle_packet(at, seq, ms(seq), recovered, seq * 10)
}

#[test]
fn as_soon_as_ordered_releases_in_order_and_waits_for_gaps() {
    let mut b = buffer(Delivery::AsSoonAsOrdered, 64);
    assert_eq!(arrive(&mut b, ms(40), 0, false), ArrivalOutcome::Buffered);
    assert_eq!(released(&mut b, ms(40)), vec![(0, 40)]);
    // 1 is missing: 2 and 3 wait.
    arrive(&mut b, ms(42), 2, false);
    arrive(&mut b, ms(43), 3, false);
    assert_eq!(released(&mut b, ms(43)), vec![]);
    // The gap is given up at 2's deadline (202 ms) unless 1 arrives first.
    assert_eq!(b.poll_timeout(), Some(ms(202)));
    arrive(&mut b, ms(70), 1, true);
    assert_eq!(released(&mut b, ms(70)), vec![(1, 69), (2, 68), (3, 67)]);
    assert_eq!(b.poll_timeout(), None);
    let s = b.stats();
    assert_eq!((s.on_time, s.recovered, s.late, s.lost), (4, 1, 0, 0));
    assert_eq!(s.latency.count(), 4);
    assert_eq!(s.latency.max(), Some(Duration::from_millis(69)));
}

#[test]
fn at_deadline_releases_at_origin_plus_deadline() {
    let mut b = buffer(Delivery::AtDeadline, 64);
    arrive(&mut b, ms(40), 0, false);
    arrive(&mut b, ms(45), 1, false);
    assert_eq!(released(&mut b, ms(45)), vec![]);
    assert_eq!(b.poll_timeout(), Some(ms(200)));
    assert_eq!(released(&mut b, us(199_999)), vec![]);
    assert_eq!(released(&mut b, ms(200)), vec![(0, 200)]);
    assert_eq!(b.poll_timeout(), Some(ms(201)));
    assert_eq!(released(&mut b, ms(201)), vec![(1, 200)]);
    assert_eq!(b.held(), 0);
}

#[test]
fn gaps_are_given_up_and_late_arrivals_dropped() {
    for delivery in [Delivery::AsSoonAsOrdered, Delivery::AtDeadline] {
        let mut b = buffer(delivery, 64);
        arrive(&mut b, ms(40), 0, false);
        arrive(&mut b, ms(45), 3, false);
        released(&mut b, ms(45));
        released(&mut b, ms(200));
        // 1 and 2 never come by 3's deadline: skipped, lost; 3 released on time.
        assert_eq!(released(&mut b, ms(203)), vec![(3, 200)], "{delivery:?}");
        assert_eq!(b.stats().lost, 2);
        // 2 turns up after 3 was released: late, and no longer lost.
        assert_eq!(arrive(&mut b, ms(204), 2, true), ArrivalOutcome::Late);
        assert_eq!(arrive(&mut b, ms(204), 2, true), ArrivalOutcome::Duplicate);
        assert_eq!(arrive(&mut b, ms(204), 3, false), ArrivalOutcome::Duplicate);
        // 4 arrives after its own deadline: late even though nothing later was released.
        assert_eq!(arrive(&mut b, ms(204), 5, false), ArrivalOutcome::Buffered);
        assert_eq!(arrive(&mut b, us(204_001), 4, false), ArrivalOutcome::Late);
        assert_eq!(
            arrive(&mut b, us(204_002), 4, false),
            ArrivalOutcome::Duplicate
        );
        assert_eq!(released(&mut b, ms(205)), vec![(5, 200)], "{delivery:?}");
        let s = b.stats();
        assert_eq!(
            (s.on_time, s.recovered, s.late, s.lost, s.duplicates),
            (3, 0, 2, 1, 3),
            "{delivery:?}"
        );
    }
}

#[test]
fn the_span_is_bounded_and_an_outage_is_skipped() {
    let mut b = buffer(Delivery::AtDeadline, 64);
    arrive(&mut b, ms(40), 0, false);
    // 64 slots from the head: 63 fits, 64 does not while 0 is held.
    assert_eq!(arrive(&mut b, ms(41), 63, false), ArrivalOutcome::Buffered);
    assert_eq!(arrive(&mut b, ms(41), 64, false), ArrivalOutcome::Overflow);
    assert_eq!(released(&mut b, ms(263)), vec![(0, 263), (63, 200)]);
    assert_eq!(b.stats().lost, 62);
    // Nothing held: a message far ahead (after an outage) moves the buffer on.
    assert_eq!(
        arrive(&mut b, ms(1_000), 1_000, false),
        ArrivalOutcome::Buffered
    );
    assert_eq!(b.stats().lost, 62 + 1_000 - 64);
    assert_eq!(b.next_seq(), Some(1_000));
    assert_eq!(released(&mut b, ms(1_200)), vec![(1_000, 200)]);
    // Anything from before the jump is late.
    assert_eq!(arrive(&mut b, ms(1_201), 500, false), ArrivalOutcome::Late);
    assert_eq!(b.stats().overflow, 1);
}

#[test]
fn without_a_start_the_first_arrival_starts_the_flow() {
    let mut b: DeadlineBuffer<u64> = DeadlineBuffer::new(
        DeadlineParams {
            deadline: Duration::from_millis(200),
            delivery: Delivery::AsSoonAsOrdered,
            capacity: 100,
        },
        None,
    );
    assert_eq!(b.params().capacity, 128);
    assert_eq!(b.next_seq(), None);
    assert_eq!(arrive(&mut b, ms(50), 7, false), ArrivalOutcome::Buffered);
    assert_eq!(released(&mut b, ms(50)), vec![(7, 43)]);
    assert_eq!(arrive(&mut b, ms(50), 6, false), ArrivalOutcome::Late);
    assert_eq!(b.stats().lost, 0);
}
