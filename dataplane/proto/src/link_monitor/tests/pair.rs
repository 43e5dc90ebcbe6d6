//! Two monitors over the simulated channel: RTT and loss converge to what the channel does, no
//! false downs under loss and jitter, failover time after a cut, recovery, mismatch, restart.

use core::time::Duration;

use weft_shared::ids::Incarnation;
use weft_shared::time::Instant;

use super::super::{LinkEvent, Mismatch, PathDownReason, PathState};
use super::sim::{Pair, PathNet, Rng, Side};
use super::{HASH, config, identity, path};

fn ms(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn pair(paths: u8, seed: u64) -> Pair {
    Pair::new(config(paths), identity(1, HASH), identity(2, HASH), seed)
}

fn within(value: f64, target: f64, tolerance: f64) -> bool {
    (value - target).abs() <= tolerance * target
}

#[test]
fn srtt_converges_to_twice_the_one_way_latency() {
    let mut sim = pair(3, 0x5EED_0001);
    sim.net[1].latency = Duration::from_millis(8);
    // Path 2 adds up to 2 ms of jitter each way: the mean RTT is 2 × (5 + 1) ms.
    sim.net[2].jitter = Duration::from_millis(2);
    sim.run_until(ms(1_000));
    // The smoothed RTT of the jittered path wanders (EWMA with gain 1/8: ±0.2 ms); average it.
    let (mut sum, mut n) = ([0.0; 2], 0.0);
    for t in (1_000..20_000).step_by(7) {
        sim.run_until(ms(t));
        for side in [Side::A, Side::B] {
            let stats = sim.monitor(side).path_stats(path(2)).unwrap();
            sum[side as usize] += f64::from(stats.srtt_us.unwrap());
        }
        n += 1.0;
    }
    for side in [Side::A, Side::B] {
        let m = sim.monitor(side);
        for (p, rtt_us) in [(0, 10_000.0), (1, 16_000.0), (2, 12_000.0)] {
            let stats = m.path_stats(path(p)).unwrap();
            let srtt = f64::from(stats.srtt_us.unwrap());
            println!(
                "{side:?} path {p}: srtt {srtt} us, min {:?} us",
                stats.min_rtt_us
            );
            assert!(
                within(srtt, rtt_us, 0.06),
                "{side:?} path {p}: srtt {srtt} us vs {rtt_us}"
            );
            assert!(
                stats.rtt_samples > 1_500,
                "{side:?} path {p}: {}",
                stats.rtt_samples
            );
        }
        let mean = sum[side as usize] / n;
        println!("{side:?} path 2: mean srtt {mean:.0} us");
        assert!(
            within(mean, 12_000.0, 0.03),
            "{side:?}: mean srtt {mean} us"
        );
        // Without jitter the estimate is exact (hold times travel in whole microseconds).
        let exact = m.path_stats(path(0)).unwrap();
        for us in [exact.srtt_us, exact.min_rtt_us] {
            assert!(
                us.is_some_and(|us| (9_999..=10_000).contains(&us)),
                "{us:?}"
            );
        }
        let owd = m.one_way_delay(path(1)).unwrap();
        assert!(
            owd.abs_diff(Duration::from_millis(8)) < Duration::from_micros(1),
            "{owd:?}"
        );
        let jittered = m.path_stats(path(2)).unwrap().min_rtt_us.unwrap();
        assert!(
            (10_000..10_500).contains(&jittered),
            "min RTT {jittered} us"
        );
    }
}

#[test]
fn loss_estimate_tracks_bernoulli_loss() {
    let mut sim = pair(1, 0x5EED_0002);
    sim.net[0].loss = 0.10;
    let mut rx = Vec::new();
    let mut tx = Vec::new();
    // From 11 s on the window is full (1024 hellos).
    for s in 11..=60 {
        sim.run_until(ms(s * 1_000));
        for side in [Side::A, Side::B] {
            let stats = sim.monitor(side).path_stats(path(0)).unwrap();
            assert_eq!(
                stats.state,
                PathState::Up,
                "10% loss must not take the path down"
            );
            rx.push(f64::from(stats.rx_loss_ppm.unwrap()) / 1e6);
            tx.push(f64::from(stats.tx_loss_ppm.unwrap()) / 1e6);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (lo, hi) = rx
        .iter()
        .fold((1.0f64, 0.0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    println!(
        "rx loss: mean {:.4}, range {lo:.4}..{hi:.4}; tx (peer view) mean {:.4}",
        mean(&rx),
        mean(&tx)
    );
    // One window holds 1024 hellos: its standard deviation at 10 % is 0.94 %. The mean of 50
    // overlapping windows (about 50 s of 1024 hellos at 20 ms, so about one independent window
    // per 20 s) varies by about 0.6 %, and single windows reach 3.3 sigma (6.9 %) with some
    // WEFT_SIM_SEED values (4128110081), so the bounds are 2 % on the mean and 4.5 sigma (4.2 %)
    // on every window: loose enough for any seed, tight enough to catch an estimator that is off.
    assert!((mean(&rx) - 0.10).abs() < 0.02, "mean {}", mean(&rx));
    assert!((mean(&tx) - 0.10).abs() < 0.02, "mean {}", mean(&tx));
    assert!(
        rx.iter().chain(&tx).all(|x| (x - 0.10).abs() <= 0.042),
        "range {lo}..{hi}"
    );
    for side in [Side::A, Side::B] {
        let stats = sim.monitor(side).path_stats(path(0)).unwrap();
        let total = (stats.hellos_received + stats.hellos_missing) as f64;
        let lost = stats.hellos_missing as f64 / total;
        println!(
            "{side:?}: {} of {total} hellos missing ({lost:.4})",
            stats.hellos_missing
        );
        // 6,000 hellos: the standard deviation at 10 % is 0.39 %; 0.02 is 5 sigma.
        assert!(
            (lost - 0.10).abs() < 0.02,
            "{side:?}: cumulative loss {lost}"
        );
    }
}

#[test]
fn no_false_down_over_a_minute_of_loss_and_jitter() {
    let mut sim = pair(3, 0x5EED_0003);
    for net in &mut sim.net {
        *net = PathNet {
            loss: 0.05,
            jitter: Duration::from_millis(20),
            ..PathNet::default()
        };
    }
    sim.run_until(ms(60_000));
    for side in [Side::A, Side::B] {
        let events = sim.events(side);
        println!("{side:?}: {events:?}");
        assert!(
            events.iter().all(|(at, _)| *at < ms(500)),
            "late events: {events:?}"
        );
        // Every path came up exactly once (in whatever order the first hellos made it), none
        // went down, and the link came up once and ended on its preferred path.
        for p in 0..3 {
            let ups = events
                .iter()
                .filter(|(_, e)| *e == LinkEvent::PathUp(path(p)))
                .count();
            assert_eq!(ups, 1, "{side:?} path {p}");
        }
        assert!(
            events
                .iter()
                .all(|(_, e)| !matches!(e, LinkEvent::PathDown { .. }))
        );
        let link_ups = events
            .iter()
            .filter(|(_, e)| *e == LinkEvent::LinkUp)
            .count();
        assert_eq!(link_ups, 1);
        assert!(!events.iter().any(|(_, e)| *e == LinkEvent::LinkDown));
        assert_eq!(sim.monitor(side).active_path(), Some(path(0)));
        for p in 0..3 {
            let stats = sim.monitor(side).path_stats(path(p)).unwrap();
            assert_eq!(stats.state, PathState::Up);
            let loss = f64::from(stats.rx_loss_ppm.unwrap()) / 1e6;
            assert!(loss < 0.12, "{side:?} path {p}: loss {loss}");
        }
    }
}

#[test]
fn a_cut_path_fails_over_in_dead_after_and_comes_back_after_three_hellos() {
    let mut sim = pair(2, 0x5EED_0004);
    let mut rng = Rng::new(0x5EED_0004);
    sim.run_until(ms(1_000));
    assert_eq!(sim.a.active_path(), Some(path(0)));
    assert_eq!(sim.b.active_path(), Some(path(0)));
    let mut detections = Vec::new();
    let mut recoveries = Vec::new();
    for round in 0..20u64 {
        // A cut at a random moment: nothing sent on path 0 arrives from then on, either way.
        let offset = Duration::from_micros(rng.next_below(10_000));
        let cut = ms(2_000 + 1_000 * round) + offset;
        sim.run_until(cut);
        let seen = sim.log.len();
        sim.net[0].cut = true;
        let restore = cut + Duration::from_millis(400);
        sim.run_until(restore);
        sim.net[0].cut = false;
        let at_restore = sim.delivered;
        sim.run_until(restore + Duration::from_millis(200));
        for side in [Side::A, Side::B] {
            let round_log: Vec<_> = sim.log[seen..].iter().filter(|l| l.side == side).collect();
            let kinds: Vec<LinkEvent> = round_log.iter().map(|l| l.event).collect();
            assert_eq!(
                kinds,
                vec![
                    LinkEvent::PathDown {
                        path: path(0),
                        reason: PathDownReason::Silent
                    },
                    LinkEvent::ActivePathChanged {
                        from: Some(path(0)),
                        to: Some(path(1))
                    },
                    LinkEvent::PathUp(path(0)),
                    LinkEvent::ActivePathChanged {
                        from: Some(path(1)),
                        to: Some(path(0))
                    },
                ],
                "round {round} {side:?}"
            );
            assert_eq!(round_log[0].at, round_log[1].at, "failover with the down");
            let detection = round_log[0].at - cut;
            assert!(
                detection >= Duration::from_millis(100) && detection <= Duration::from_millis(110),
                "round {round} {side:?}: detection {detection:?}"
            );
            detections.push(detection);
            let up = round_log[2];
            let hellos = up.delivered[0] - at_restore[side as usize][0];
            assert_eq!(
                hellos, 3,
                "round {round} {side:?}: up after {hellos} hellos"
            );
            recoveries.push(up.at - restore);
        }
    }
    let (min, max) = (
        detections.iter().min().unwrap(),
        detections.iter().max().unwrap(),
    );
    let (rmin, rmax) = (
        recoveries.iter().min().unwrap(),
        recoveries.iter().max().unwrap(),
    );
    println!("detection after cut: {min:?}..{max:?}; back up after restore: {rmin:?}..{rmax:?}");
    assert!(*rmax <= Duration::from_millis(30));
}

#[test]
fn a_config_hash_mismatch_keeps_the_link_down() {
    let mut sim = Pair::new(
        config(2),
        identity(1, HASH),
        identity(2, HASH ^ 1),
        0x5EED_0005,
    );
    sim.run_until(ms(2_000));
    for (side, ours, theirs) in [(Side::A, HASH, HASH ^ 1), (Side::B, HASH ^ 1, HASH)] {
        let mismatch = Mismatch::ConfigHash { ours, theirs };
        let mut kinds: Vec<LinkEvent> = sim.events(side).into_iter().map(|(_, e)| e).collect();
        kinds.sort_by_key(|e| format!("{e:?}"));
        let expected: Vec<LinkEvent> = (0..2)
            .map(|p| LinkEvent::Mismatch {
                path: path(p),
                mismatch,
            })
            .collect();
        assert_eq!(kinds, expected, "{side:?}");
        let m = sim.monitor(side);
        assert!(!m.is_link_up());
        for p in 0..2 {
            assert_eq!(m.path_stats(path(p)).unwrap().state, PathState::Mismatch);
        }
    }
}

#[test]
fn a_peer_restart_is_reported_and_causes_no_loss_spike() {
    let mut sim = pair(2, 0x5EED_0006);
    for net in &mut sim.net {
        net.jitter = Duration::from_millis(3);
    }
    sim.run_until(ms(2_000));
    let seen = sim.log.len();
    let restart_config = super::super::LinkMonitorConfig {
        phase_seed: 99,
        ..config(2)
    };
    sim.restart(Side::B, restart_config, identity(3, HASH));
    let mut t = ms(2_000);
    while t < ms(3_000) {
        t = t + Duration::from_millis(1);
        sim.run_until(t);
        for p in 0..2 {
            let stats = sim.a.path_stats(path(p)).unwrap();
            assert_eq!(stats.state, PathState::Up, "at {t:?}");
            // `None` between the reset and the new incarnation's first hello on this path.
            let loss = stats.rx_loss_ppm;
            assert!(
                matches!(loss, None | Some(0)),
                "loss {loss:?} at {t:?} on path {p}"
            );
            assert_eq!(stats.hellos_missing, 0, "at {t:?} on path {p}");
        }
    }
    let a_events: Vec<LinkEvent> = sim.log[seen..]
        .iter()
        .filter(|l| l.side == Side::A)
        .map(|l| l.event)
        .collect();
    let restarted = LinkEvent::PeerRestarted {
        old: Incarnation(2),
        new: Incarnation(3),
    };
    assert_eq!(a_events, vec![restarted]);
    // The restarted side starts from scratch and is up again within a few hellos.
    let b_events: Vec<(Instant, LinkEvent)> = sim.log[seen..]
        .iter()
        .filter(|l| l.side == Side::B)
        .map(|l| (l.at, l.event))
        .collect();
    let link_up = b_events
        .iter()
        .find(|(_, e)| *e == LinkEvent::LinkUp)
        .unwrap()
        .0;
    assert!(
        link_up - ms(2_000) <= Duration::from_millis(40),
        "B up at {link_up:?}"
    );
    assert!(
        b_events
            .iter()
            .all(|(_, e)| !matches!(e, LinkEvent::PeerRestarted { .. }))
    );
    assert_eq!(sim.b.active_path(), Some(path(0)));
}
