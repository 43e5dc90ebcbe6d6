//! The reliable service in virtual time (`weft_tests::experiments::reliable`, `docs/reliable.md`),
//! with the real sans-IO link and end-to-end machines over seeded link models:
//!
//! - the paper's figure 3: on five 10 ms links, a loss recovered hop by hop arrives about
//!   70 ms after it was sent, end to end about 150 ms, and the whole distribution is lower;
//! - on a 3-hop path with 5 % loss on every link everything arrives, in order, once, and
//!   goodput stays near the lossless figure;
//! - random loss, reordering, link cuts and intermediate-node crashes over many seeds: the
//!   delivered stream is always an in-order prefix without duplicate or gap, and complete once
//!   the faults heal;
//! - memory stays within the windows when the receiving client stops reading, and when no path
//!   exists for a long time the source reports the flow stalled and resumes by itself.
//!
//! The statistical tests take their seed from `WEFT_SIM_SEED` when it is set (CI sets a random
//! one and prints it); their bounds hold for any seed.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::time::Duration;

use weft_tests::experiments::reliable::{Fault, Recovery, ReliableConfig, ReliableReport, run};
use weft_tests::linkmodel::{LossModel, Rng};
use weft_tests::sim::seed_from_env;

const MS: Duration = Duration::from_millis(1);

/// Runs one configuration and checks what must hold in every run: nothing delivered out of
/// order, twice or altered.
fn check(cfg: &ReliableConfig) -> ReliableReport {
    let r = run(cfg);
    assert_eq!(r.misordered, 0, "out of order or twice: {r:?}");
    assert_eq!(r.corrupted, 0, "altered: {r:?}");
    assert!(r.delivered <= r.sent, "{r:?}");
    assert!(r.max_held <= u64::from(cfg.e2e_window), "{r:?}");
    assert!(r.max_outstanding <= cfg.e2e_window, "{r:?}");
    assert!(r.max_link_in_flight <= cfg.link_window, "{r:?}");
    r
}

fn bernoulli(p: f64) -> LossModel {
    LossModel::Bernoulli { p }
}

#[test]
fn hop_by_hop_recovery_takes_about_70_ms_where_end_to_end_takes_150() {
    let seed = seed_from_env(1);
    for p in [0.01, 0.05] {
        let chain = |rec| ReliableConfig::chain(5, 10 * MS, bernoulli(p), rec, 20_000, seed);
        let hbh = check(&chain(Recovery::HopByHop));
        let e2e = check(&chain(Recovery::EndToEnd));
        for r in [&hbh, &e2e] {
            assert!(r.complete, "{r:?}");
            assert!(r.recovered as f64 > 20_000.0 * p, "{r:?}");
        }
        let (h, e) = (&hbh.recovered_latency, &e2e.recovered_latency);
        // Detect (the next packet, 1 ms later, after the 2 ms allowance), ask and resend on one
        // 10 ms link: 50 + 1 + 2 + 20 = 73 ms at best; end to end the ask and resend cross the
        // whole path: 50 + 1 + 5 + 100 = 156 ms.
        assert!((70.0..80.0).contains(&h.min_ms), "hop by hop {h:?}");
        assert!((150.0..165.0).contains(&e.min_ms), "end to end {e:?}");
        assert!(h.p50_ms < 80.0 && e.p50_ms > 150.0, "{h:?} {e:?}");
        assert!(h.p99_ms < e.p50_ms, "{h:?} {e:?}");
        let (hd, ed) = (&hbh.delivery_latency, &e2e.delivery_latency);
        assert!(
            hd.p99_ms < ed.p90_ms,
            "head-of-line blocking: {hd:?} {ed:?}"
        );
    }
}

#[test]
fn five_percent_loss_on_every_link_loses_nothing_and_keeps_goodput() {
    let seed = seed_from_env(2);
    // Links of 10 Mbit/s, each ARQ loop paced to 9.5 Mbit/s (its share of the path).
    let path = |loss| ReliableConfig {
        rate_pps: None,
        rate_bps: Some(10_000_000),
        pacing_bps: Some(9_500_000),
        ..ReliableConfig::chain(3, 10 * MS, loss, Recovery::HopByHop, 20_000, seed)
    };
    let clean = check(&path(LossModel::None));
    let lossy = check(&path(bernoulli(0.05)));
    let bursty = check(&path(LossModel::bursty(0.05, 4.0)));
    for r in [&clean, &lossy, &bursty] {
        assert!(r.complete, "{r:?}");
        // The links recovered the losses; an end-to-end resend is rare (a tail lost twice).
        assert!(r.e2e_resent <= 20, "{r:?}");
    }
    assert_eq!(clean.link_retransmissions, 0, "{clean:?}");
    // 10 Mbit/s of 1,000-byte packets: 1,250 per second at most.
    assert!(clean.goodput_bps > 9.0e6, "{clean:?}");
    // Each link loses 5 % of its capacity to retransmissions, not more.
    assert!(lossy.goodput_bps > 0.85 * clean.goodput_bps, "{lossy:?}");
    assert!(bursty.goodput_bps > 0.8 * clean.goodput_bps, "{bursty:?}");
}

/// A random fault on the diamond (links 0..7, intermediate nodes 1, 2, 4, 5) within the first
/// `span`, lasting up to 1.5 s.
fn random_fault(rng: &mut Rng, span: Duration) -> Fault {
    let at = Duration::from_millis(rng.below(span.as_millis() as u64));
    let for_ = Duration::from_millis(50 + rng.below(1_450));
    if rng.chance(0.5) {
        Fault::CutLink {
            link: rng.below(7) as usize,
            at,
            for_,
        }
    } else {
        Fault::CrashNode {
            node: [1, 2, 4, 5][rng.below(4) as usize],
            at,
            for_,
        }
    }
}

#[test]
fn loss_reordering_cuts_and_crashes_never_break_order_and_heal_complete() {
    let base = seed_from_env(3);
    let runs = 2_000;
    let mut resent = 0;
    for i in 0..runs {
        let seed = base.wrapping_add(i);
        let mut rng = Rng::new(seed);
        let loss = match rng.below(3) {
            0 => bernoulli(rng.next_f64() * 0.1),
            1 => LossModel::bursty(rng.next_f64() * 0.1, 1.0 + rng.next_f64() * 4.0),
            _ => LossModel::None,
        };
        let faults = (0..rng.below(4))
            .map(|_| random_fault(&mut rng, 2 * MS * 1000))
            .collect();
        let cfg = ReliableConfig {
            jitter: Duration::from_millis(rng.below(6)),
            e2e_window: 64,
            link_window: 64,
            rate_pps: Some(2_000),
            faults,
            time_limit: Duration::from_secs(120),
            ..ReliableConfig::diamond(loss, 2_000, seed)
        };
        let r = check(&cfg);
        assert!(
            r.complete,
            "seed {seed}: incomplete after the faults healed: {cfg:?}\n{r:?}"
        );
        resent += r.e2e_resent;
    }
    assert!(resent > 0, "some crash needed an end-to-end resend");
}

#[test]
fn a_crashed_intermediate_node_loses_nothing() {
    let seed = seed_from_env(4);
    // The route 0-1-3 through node 1, which crashes twice while it holds messages.
    let cfg = ReliableConfig {
        faults: vec![
            Fault::CrashNode {
                node: 1,
                at: 3 * MS * 1000,
                for_: 2 * MS * 1000,
            },
            Fault::CrashNode {
                node: 1,
                at: 7 * MS * 1000,
                for_: 300 * MS,
            },
        ],
        ..ReliableConfig::diamond(bernoulli(0.02), 10_000, seed)
    };
    let r = check(&cfg);
    assert!(r.complete, "{r:?}");
    assert!(
        r.e2e_resent > 0,
        "what node 1 held came again from the source: {r:?}"
    );
    // Detection (100 ms) and the resend timeout (4 · RTT + 100 ms) bound the gap.
    assert!(r.delivery_latency.max_ms < 1_000.0, "{r:?}");
}

#[test]
fn a_receiver_that_stops_reading_holds_memory_to_the_window() {
    let seed = seed_from_env(5);
    let cfg = ReliableConfig {
        rate_pps: Some(5_000),
        e2e_window: 256,
        read_pause: Some((Duration::from_secs(1), Duration::from_secs(5))),
        ..ReliableConfig::chain(
            3,
            10 * MS,
            bernoulli(0.01),
            Recovery::HopByHop,
            40_000,
            seed,
        )
    };
    let r = check(&cfg);
    assert!(r.complete, "{r:?}");
    assert_eq!(r.max_held, 256, "the sink fills its window, no more: {r:?}");
    assert_eq!(r.max_outstanding, 256, "{r:?}");
    assert!(r.stalls >= 1, "the source reported the stall: {r:?}");
    // While the client did not read, the source client was held back (its messages waited
    // for credit), so the latest delivery is about the pause late, not lost.
    assert!(r.delivery_latency.max_ms > 4_000.0, "{r:?}");
}

#[test]
fn no_path_for_ten_seconds_stalls_the_flow_within_bounds_and_it_resumes() {
    let seed = seed_from_env(6);
    let cut = |link| Fault::CutLink {
        link,
        at: Duration::from_secs(1),
        for_: Duration::from_secs(10),
    };
    let cfg = ReliableConfig {
        // Every link out of the source.
        faults: vec![cut(0), cut(2), cut(4)],
        e2e_window: 512,
        ..ReliableConfig::diamond(bernoulli(0.01), 15_000, seed)
    };
    let r = check(&cfg);
    assert!(r.complete, "{r:?}");
    assert!(r.stalls >= 1, "{r:?}");
    assert!(r.max_outstanding <= 512, "{r:?}");
    // Messages the client sent during the outage waited at the source (its credit ran out).
    assert!(r.delivery_latency.max_ms > 9_000.0, "{r:?}");
}
