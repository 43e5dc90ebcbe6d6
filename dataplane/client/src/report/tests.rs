//! Tests of the receive-side counting on synthetic sequences and latencies.

use weft_shared::ids::{NodeId, Port};

use super::*;
use crate::probe::{PROBE_HEADER_LEN, ProbeHeader};

/// A tracker fed `seqs`, with (unique, lost, duplicates, reordered).
fn run(seqs: &[u64]) -> (SeqTracker, (u64, u64, u64, u64)) {
    let mut t = SeqTracker::new();
    for &s in seqs {
        t.record(s);
    }
    let counts = (t.unique(), t.lost(), t.duplicates(), t.reordered());
    (t, counts)
}

#[test]
fn in_order_counts_nothing_wrong() {
    let seqs: Vec<u64> = (0..1000).collect();
    assert_eq!(run(&seqs).1, (1000, 0, 0, 0));
    assert_eq!(run(&[]).1, (0, 0, 0, 0));
}

#[test]
fn gaps_are_losses() {
    // 3, 4, 7 and 8 never come.
    assert_eq!(run(&[0, 1, 2, 5, 6, 9]).1, (6, 4, 0, 0));
    // A receiver that starts late does not count what came before its first message.
    assert_eq!(run(&[100, 101, 103]).1, (3, 1, 0, 0));
}

#[test]
fn duplicates_are_counted_once_each() {
    assert_eq!(run(&[0, 1, 1, 2, 2, 2]).1, (3, 0, 3, 0));
    // A duplicate of a reordered message is still a duplicate.
    assert_eq!(run(&[0, 2, 1, 1]).1, (3, 0, 1, 1));
}

#[test]
fn reordering_fills_gaps() {
    assert_eq!(run(&[0, 2, 1, 3]).1, (4, 0, 0, 1));
    assert_eq!(run(&[0, 5, 3]).1, (3, 3, 0, 1));
    // A late message below the first one extends the range down.
    assert_eq!(run(&[10, 11, 9]).1, (3, 0, 0, 1));
    assert_eq!(run(&[3, 2, 1, 0]).1, (4, 0, 0, 3));
}

#[test]
fn arrival_kinds_are_reported() {
    let mut t = SeqTracker::new();
    assert_eq!(t.record(7), Arrival::InOrder);
    assert_eq!(t.record(9), Arrival::InOrder);
    assert_eq!(t.record(8), Arrival::Reordered);
    assert_eq!(t.record(8), Arrival::Duplicate);
    assert_eq!(t.record(9), Arrival::Duplicate);
}

#[test]
fn the_window_bounds_duplicate_detection() {
    let w = SEQ_WINDOW;
    let seqs: Vec<u64> = (0..=w + 10).collect();
    let (mut t, counts) = run(&seqs);
    assert_eq!(counts, (w + 11, 0, 0, 0));
    // Inside the window: a duplicate.
    assert_eq!(t.record(w + 5), Arrival::Duplicate);
    assert_eq!(t.record(20), Arrival::Duplicate);
    // Beyond it: indistinguishable from a very late message, counted as new and reordered.
    assert_eq!(t.record(5), Arrival::Reordered);
    assert_eq!((t.duplicates(), t.reordered()), (2, 1));
}

#[test]
fn window_bits_are_not_reused_for_other_sequences() {
    let w = SEQ_WINDOW;
    // A jump of a whole window clears every bit: seq 0's bit now belongs to w.
    let (mut t, _) = run(&[0, w]);
    assert_eq!(
        t.record(0),
        Arrival::Reordered,
        "0 is out of the window, not a duplicate"
    );
    // A jump of less than a window clears the bits it passes: 2 was never received.
    let (mut t, _) = run(&[1, w + 1]);
    assert_eq!(t.record(2), Arrival::Reordered);
    let (mut t, _) = run(&[0, 1, 2, 3, 4, 5, w + 4]);
    assert_eq!(
        t.record(w),
        Arrival::Reordered,
        "w shares 0's bit, which the jump cleared"
    );
    assert_eq!(t.record(w), Arrival::Duplicate);
}

/// A probe payload of flow `index`, sequence `seq`, sent at `sent_ns`.
fn probe(index: u32, seq: u64, sent_ns: u64) -> [u8; PROBE_HEADER_LEN + 8] {
    let mut p = [0u8; PROBE_HEADER_LEN + 8];
    assert!(
        ProbeHeader {
            flow_index: index,
            seq,
            sent_ns
        }
        .write(&mut p)
    );
    p
}

#[test]
fn percentiles_of_known_latencies() {
    let node = NodeId::new(1).unwrap();
    let mut s = RecvStats::new();
    let now = 10_000_000_000;
    // Latencies 1, 2, ..., 1000 us, on one flow, in order.
    for i in 1..=1000u64 {
        s.record(node, Port(5), &probe(0, i, now - i * 1000), 7, now);
    }
    let sum = s.summary(2.0);
    assert_eq!(
        (sum.received, sum.lost, sum.duplicates, sum.reordered),
        (1000, 0, 0, 0)
    );
    assert_eq!(sum.rate, 500.0);
    let l = sum.latency_us;
    assert_eq!(l.count, 1000);
    // hdrhistogram keeps 3 significant digits: within 0.1% (plus one bucket).
    let near = |got: f64, want: f64| (got - want).abs() <= want * 0.002 + 0.01;
    assert!(near(l.p50, 500.0), "{l:?}");
    assert!(near(l.p90, 900.0), "{l:?}");
    assert!(near(l.p99, 990.0), "{l:?}");
    assert!(near(l.p999, 999.0), "{l:?}");
    assert!(near(l.max, 1000.0), "{l:?}");
    assert!(near(sum.node_age_us.p50, 7.0), "{:?}", sum.node_age_us);
}

#[test]
fn flows_are_told_apart_and_oddities_counted() {
    let node = NodeId::new(3).unwrap();
    let mut s = RecvStats::new();
    let now = 1_000_000;
    // Two senders use flow index 0; each is in order, so nothing is lost or reordered.
    for seq in 0..10 {
        s.record(node, Port(1), &probe(0, seq, now), 0, now);
        s.record(node, Port(2), &probe(0, seq, now), 0, now);
    }
    // Flow 1 of port 1: 0, 2, 2, 1, 5: lost 3 and 4, one duplicate, one reordered.
    for seq in [0, 2, 2, 1, 5] {
        s.record(node, Port(1), &probe(1, seq, now), 0, now);
    }
    s.record(node, Port(1), b"not a probe", 0, now);
    s.record(node, Port(1), &probe(2, 0, now + 5), 0, now);
    let sum = s.summary(1.0);
    assert_eq!(sum.flows, 4);
    assert_eq!(sum.received, 27);
    assert_eq!((sum.lost, sum.duplicates, sum.reordered), (2, 1, 1));
    // 2 lost of 25 distinct + 2 lost.
    assert!((sum.loss_pct - 100.0 * 2.0 / 27.0).abs() < 1e-9);
    assert_eq!((sum.not_probes, sum.clock_behind), (1, 1));
    let json = serde_json::to_value(&sum).unwrap();
    for key in [
        "received",
        "lost",
        "duplicates",
        "reordered",
        "latency_us",
        "seconds",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    assert!(json["latency_us"].get("p999").is_some());
    let text = sum.to_string();
    assert!(text.contains("loss") && text.contains("p99.9"), "{text}");
}

#[test]
fn the_longest_gap_between_arrivals_is_reported() {
    let mut stats = RecvStats::new();
    let node = NodeId::new(1).unwrap();
    // Arrivals at 0, 1, 2 ms, then a 250 ms outage, then 253 ms.
    for at_ms in [0u64, 1, 2, 252, 253] {
        stats.record(node, Port(1), b"not a probe", 0, at_ms * 1_000_000);
    }
    let s = stats.summary(1.0);
    assert!((s.max_gap_ms - 250.0).abs() < 1e-9, "{}", s.max_gap_ms);
    assert!(
        s.to_string()
            .contains("longest gap between arrivals: 250.0 ms")
    );
}
