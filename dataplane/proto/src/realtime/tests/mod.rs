//! Tests of the real-time protocol: each state machine alone with scripted time (`sender`,
//! `receiver`, `deadline`), and a sender–receiver pair with a deadline buffer over a seeded lossy,
//! reordering channel, including property tests (`pair`).

mod deadline;
mod pair;
mod receiver;
mod sender;

use core::time::Duration;

use weft_shared::time::Instant;
use weft_shared::wire::Strikes;

use super::{RtMeta, RtParams};

/// A 10 ms link: 2 ms reorder allowance, 10 ms spacings.
fn params() -> RtParams {
    RtParams::for_link(Duration::from_millis(10))
}

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

fn us(v: u64) -> Instant {
    Instant::from_micros(v)
}

fn meta(n: u8, m: u8, deadline: Instant) -> RtMeta {
    RtMeta {
        strikes: Strikes::new(n, m).unwrap(),
        deadline,
    }
}

#[test]
fn defaults_follow_the_link_latency() {
    let p = params();
    assert_eq!(p.one_way, Duration::from_millis(10));
    assert_eq!(p.reorder_allowance, Duration::from_millis(2));
    assert_eq!(p.request_spacing, Duration::from_millis(10));
    assert_eq!(p.retransmit_spacing, Duration::from_millis(10));
    // 2 + 2·10 + 2·10 + 2·10: two hops of a 40 ms path fit in the 160 ms left of 200 ms.
    let s33 = Strikes::new(3, 3).unwrap();
    assert_eq!(p.worst_case_recovery(s33), Duration::from_millis(62));
    // Short and long links: floors and caps.
    let short = RtParams::for_link(Duration::from_micros(300));
    assert_eq!(short.reorder_allowance, Duration::from_millis(1));
    assert_eq!(short.request_spacing, Duration::from_millis(2));
    let long = RtParams::for_link(Duration::from_millis(60));
    assert_eq!(long.reorder_allowance, Duration::from_millis(5));
    assert_eq!(long.retransmit_spacing, Duration::from_millis(60));
    // Compression: the whole schedule fits the budget, never below 1 ms, never above spacing.
    assert_eq!(
        p.request_spacing_for(Duration::from_millis(500), s33),
        Duration::from_millis(10)
    );
    // 42 ms left: 42 − (2 + 20 + 20) = 0 → the floor.
    assert_eq!(
        p.request_spacing_for(Duration::from_millis(42), s33),
        Duration::from_millis(1)
    );
    // 52 ms left: (52 − 42) / 2 = 5 ms.
    assert_eq!(
        p.request_spacing_for(Duration::from_millis(52), s33),
        Duration::from_millis(5)
    );
    assert_eq!(
        p.retransmit_spacing_for(Duration::from_millis(8), 3),
        Duration::from_millis(4)
    );
    assert_eq!(
        p.retransmit_spacing_for(Duration::ZERO, 1),
        Duration::from_millis(10),
        "one copy has no spacing to compress"
    );
}
