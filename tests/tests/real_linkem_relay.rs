//! `weft-linkem` between two plain UDP sockets ("node A" and "node B") on the test's own
//! loopback block:
//!
//! - latency: each direction delays by its own setting, to within a millisecond or two, also
//!   at 30,000 datagrams per second;
//! - Bernoulli and Gilbert–Elliott loss over 20,000 datagrams: the rate (and mean burst) within
//!   tolerance, and exactly the datagrams an offline `LinkModel` with the same seed loses;
//! - rate limit: the delivered throughput is the configured rate, the queue bounds the delay
//!   and the excess is counted as queue drops;
//! - the control socket: cut, restore and set (through the `ctl` subcommand and the library
//!   client), stats that add up, and clear errors for bad commands.
//!
//! Timing figures get up to three attempts (a fresh relay each), because other processes on a
//! 2-core host can starve the relay or the receiving thread for milliseconds; a relay whose
//! timing is broken fails every attempt. Early delivery and miscounting fail at once.
//!
//! Timelines, several paths and bad command lines are in `real_linkem_timeline.rs`.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod real_linkem_common;

use std::time::{Duration, Instant};

use real_linkem_common::{Bench, percentile, within_attempts};
use weft_shared::time::Instant as SimInstant;
use weft_tests::linkem::config::direction_seed;
use weft_tests::linkem::control::{ControlError, request};
use weft_tests::linkmodel::{LinkModel, LinkParams, LossModel, Verdict};

/// Fails the attempt (returns the message) unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($msg)+));
        }
    };
}

#[test]
fn each_direction_is_delayed_by_its_latency() {
    within_attempts(3, |i| {
        let b = Bench::start(
            &format!("lk-latency-{i}"),
            &["--latency-ms", "10", "--b-to-a", "latency_ms=3"],
        );
        let to_b = b.stream(0, 300, Duration::from_millis(2), 16);
        let to_a = b.stream(1, 300, Duration::from_millis(2), 16);
        for (name, got, want) in [("A to B", &to_b, 10.0), ("B to A", &to_a, 3.0)] {
            ensure!(
                got.arrivals.len() == 300,
                "{name}: {} of 300 arrived",
                got.arrivals.len()
            );
            let mut d = got.delays_ms();
            d.sort_by(f64::total_cmp);
            let (min, median, p95) = (d[0], percentile(&d, 0.5), percentile(&d, 0.95));
            eprintln!(
                "{name}: setting {want} ms: min {min:.3}, median {median:.3}, p95 {p95:.3} ms"
            );
            // Early delivery is a bug whatever the load: no second attempt for it.
            assert!(min >= want - 0.01, "{name}: delivered early: {min} ms");
            ensure!(median < want + 1.0, "{name}: median {median} ms");
            ensure!(p95 < want + 2.0, "{name}: p95 {p95} ms");
        }
        let s = b.relay.stats();
        assert_eq!(s["paths"][0]["a_to_b"]["delivered"], 300);
        assert_eq!(s["paths"][0]["b_to_a"]["params"]["latency_ms"], 3.0);
        Ok(())
    });
}

#[test]
fn latency_holds_at_thirty_thousand_datagrams_per_second() {
    const N: u64 = 30_000;
    within_attempts(3, |i| {
        let b = Bench::start(&format!("lk-fast-{i}"), &["--latency-ms", "5"]);
        let started = Instant::now();
        let cpu_before = b.relay.cpu_time().unwrap();
        let got = b.stream(0, N, Duration::from_nanos(33_333), 200);
        let took = started.elapsed();
        let cpu = b.relay.cpu_time().unwrap() - cpu_before;
        let s = b.relay.stats();
        let ab = &s["paths"][0]["a_to_b"];
        let mut d = got.delays_ms();
        d.sort_by(f64::total_cmp);
        let (median, p99) = (percentile(&d, 0.5), percentile(&d, 0.99));
        let late = ab["late_1ms"].as_u64().unwrap();
        eprintln!(
            "{} of {N} in {took:?} ({:.0}/s), relay CPU {cpu:?}: delay median {median:.3} ms, \
             p99 {p99:.3} ms, max {:.3} ms; relay sent {late} over 1 ms late (worst {} µs)",
            got.arrivals.len(),
            N as f64 / took.as_secs_f64(),
            d.last().unwrap(),
            ab["max_late_us"]
        );
        assert!(d[0] >= 4.99, "delivered early: {} ms", d[0]);
        // A relay that spins instead of sleeping on its timer would use the whole second.
        assert!(
            cpu < Duration::from_millis(800),
            "relay CPU {cpu:?} for 1 s"
        );
        ensure!(ab["offered"] == N, "datagrams lost before the relay: {ab}");
        ensure!(
            got.arrivals.len() as u64 == N,
            "{} arrived after the relay",
            got.arrivals.len()
        );
        ensure!(median < 6.0, "median {median} ms for 5 ms");
        ensure!(p99 < 7.0, "p99 {p99} ms for 5 ms");
        ensure!(late * 100 < N, "{late} datagrams sent over 1 ms late");
        Ok(())
    });
}

/// Sends 20,000 datagrams A to B under `loss` with seed `seed`; checks nothing was lost on the
/// way in or out and that the relay lost exactly what the model with the same seed loses.
/// Returns the loss pattern.
fn loss_run(name: &str, args: &[&str], seed: u64, loss: LossModel) -> Vec<bool> {
    const N: u64 = 20_000;
    let seed_text = seed.to_string();
    let mut all = vec!["--seed", seed_text.as_str()];
    all.extend_from_slice(args);
    let b = Bench::start(name, &all);
    let started = Instant::now();
    let got = b.stream(0, N, Duration::from_micros(50), 16);
    let took = started.elapsed();
    let s = b.relay.stats();
    let ab = &s["paths"][0]["a_to_b"];
    eprintln!(
        "{name}: {N} datagrams in {took:?} ({:.0}/s); relay: {ab}",
        N as f64 / took.as_secs_f64()
    );
    assert_eq!(ab["offered"], N, "datagrams lost before the relay");
    assert_eq!(
        ab["delivered"].as_u64().unwrap(),
        got.arrivals.len() as u64,
        "datagrams lost between the relay and node B"
    );
    let lost = got.lost_pattern(N);
    assert_eq!(
        ab["lost"].as_u64().unwrap(),
        lost.iter().filter(|l| **l).count() as u64
    );
    let params = LinkParams {
        loss,
        ..LinkParams::default()
    };
    let mut model = LinkModel::new(params, direction_seed(seed, 0, 0));
    let expected: Vec<bool> = (0..N)
        .map(|i| {
            let at = SimInstant::from_micros(i * 50);
            matches!(model.offer(at, 16), Verdict::Drop(_))
        })
        .collect();
    assert!(
        lost == expected,
        "the relay's losses differ from the model's with the same seed"
    );
    lost
}

fn rate_and_mean_burst(lost: &[bool]) -> (f64, f64) {
    let mut bursts = Vec::new();
    let mut run = 0u64;
    for &l in lost.iter().chain([false].iter()) {
        if l {
            run += 1;
        } else if run > 0 {
            bursts.push(run);
            run = 0;
        }
    }
    let rate = lost.iter().filter(|l| **l).count() as f64 / lost.len() as f64;
    let mean = bursts.iter().sum::<u64>() as f64 / bursts.len().max(1) as f64;
    (rate, mean)
}

#[test]
fn bernoulli_loss_matches_its_rate_and_the_model() {
    let lost = loss_run(
        "lk-bernoulli",
        &["--loss", "0.1"],
        42,
        LossModel::Bernoulli { p: 0.1 },
    );
    let (rate, burst) = rate_and_mean_burst(&lost);
    eprintln!("Bernoulli 0.1: loss {rate:.4}, mean burst {burst:.3}");
    // σ = sqrt(0.1 · 0.9 / 20,000) ≈ 0.0021: 5σ.
    assert!((rate - 0.1).abs() < 0.0106, "loss {rate}");
    // Independent losses: runs are geometric with mean 1 / 0.9.
    assert!((burst - 1.0 / 0.9).abs() < 0.06, "mean burst {burst}");
}

#[test]
fn gilbert_elliott_loss_comes_in_bursts_of_the_set_mean() {
    let lost = loss_run(
        "lk-gilbert",
        &["--loss", "0.05", "--burst", "4"],
        7,
        LossModel::bursty(0.05, 4.0),
    );
    let (rate, burst) = rate_and_mean_burst(&lost);
    eprintln!("Gilbert 5 %, bursts of 4: loss {rate:.4}, mean burst {burst:.3}");
    // About 250 bursts of mean 4 (σ of the mean ≈ 0.22); the rate varies more than under
    // Bernoulli because losses come in runs.
    assert!((rate - 0.05).abs() < 0.02, "loss {rate}");
    assert!((burst - 4.0).abs() < 0.9, "mean burst {burst}");
}

#[test]
fn the_rate_limit_paces_and_its_queue_tail_drops() {
    within_attempts(3, |i| {
        // 8 Mbit/s = 1,000 B/ms; 1,000-byte datagrams take 1 ms each; 20 kB of queue = 20 ms.
        let b = Bench::start(
            &format!("lk-rate-{i}"),
            &["--rate-bps", "8000000", "--queue-bytes", "20000"],
        );
        // Three times the rate for 0.6 s.
        let got = b.stream(0, 1_800, Duration::from_micros(333), 1_000);
        let s = b.relay.stats();
        let ab = &s["paths"][0]["a_to_b"];
        eprintln!("rate limit: relay {ab}");
        let n = got.arrivals.len();
        let first = got.arrivals.first().unwrap().at;
        let last = got.arrivals.last().unwrap().at;
        let throughput = (n - 1) as f64 * 1_000.0 / (last - first).as_secs_f64();
        let mut d = got.delays_ms();
        d.sort_by(f64::total_cmp);
        let max_delay = *d.last().unwrap();
        eprintln!(
            "delivered {n} in {:?}: {throughput:.0} B/s, longest delay {max_delay:.2} ms",
            last - first
        );
        // Counting holds whatever the timing.
        assert_eq!(ab["offered"], 1_800);
        assert_eq!(ab["delivered"].as_u64().unwrap(), n as u64);
        assert_eq!(
            ab["queue_drops"].as_u64().unwrap() + n as u64,
            ab["offered"].as_u64().unwrap()
        );
        ensure!(
            (throughput - 1e6).abs() < 0.05e6,
            "throughput {throughput} B/s, set 1e6"
        );
        // Queue (20 ms) plus one datagram on the wire plus scheduling slack; without the
        // limit the backlog would grow to over a second.
        ensure!(
            max_delay < 24.0,
            "a queue longer than its limit: {max_delay} ms"
        );
        ensure!(
            (500..=700).contains(&n),
            "{n} delivered (≈ 0.6 s at the rate plus the queue)"
        );
        Ok(())
    });
}

#[test]
fn the_control_socket_cuts_restores_sets_and_counts() {
    let b = Bench::start("lk-control", &["--latency-ms", "1"]);
    let sock = b.relay.control().to_owned();
    let control = sock.clone();
    let bin = real_linkem_common::bin();
    // Cut at 300 ms with the `ctl` subcommand, restore at 700 ms with the library client, then
    // set A to B to 30 ms at 1,000 ms.
    let driver = std::thread::spawn(move || {
        let t0 = Instant::now();
        let at = |ms| std::thread::sleep(Duration::from_millis(ms).saturating_sub(t0.elapsed()));
        at(300);
        let out = std::process::Command::new(&bin)
            .args(["ctl"])
            .arg(&control)
            .args(["cut", "p0"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(reply["directions"], 2);
        let cut = t0.elapsed();
        at(700);
        request(&control, "restore").unwrap();
        let restored = t0.elapsed();
        at(1_000);
        request(&control, "set p0 a-to-b latency_ms=30").unwrap();
        (cut, restored, t0.elapsed())
    });
    let got = b.stream(0, 1_500, Duration::from_millis(1), 16);
    let (cut, restored, set) = driver.join().unwrap();
    // The longest silence is the cut.
    let gap = got
        .arrivals
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap();
    eprintln!("cut at {cut:?}, restored at {restored:?}: longest silence {gap:?}");
    let cut_for = restored - cut;
    assert!(
        gap + Duration::from_millis(20) > cut_for && gap < cut_for + Duration::from_millis(30),
        "silence {gap:?} for a cut of {cut_for:?}"
    );
    // After the set, A to B takes 30 ms.
    let late: Vec<f64> = got
        .arrivals
        .iter()
        .filter(|a| a.sent_offset > set + Duration::from_millis(5))
        .map(|a| a.delay_ms())
        .collect();
    assert!(late.len() > 300, "{} arrivals after the set", late.len());
    let mut sorted = late.clone();
    sorted.sort_by(f64::total_cmp);
    let median = percentile(&sorted, 0.5);
    assert!(
        (30.0..31.0).contains(&median),
        "median {median} ms after set"
    );

    let s = request(&sock, "stats").unwrap();
    let ab = &s["paths"][0]["a_to_b"];
    let down = ab["down_drops"].as_u64().unwrap();
    eprintln!("stats: {ab}");
    assert!(
        (cut_for.as_millis() as u64).abs_diff(down) < 40,
        "{down} down drops for a cut of {cut_for:?} at 1/ms"
    );
    let sum: u64 = [
        "delivered",
        "lost",
        "queue_drops",
        "down_drops",
        "held_drops",
        "send_errors",
        "in_flight",
    ]
    .iter()
    .map(|k| ab[*k].as_u64().unwrap())
    .sum();
    assert_eq!(sum, ab["offered"].as_u64().unwrap(), "counters add up");
    assert_eq!(ab["offered"], 1_500);
    assert_eq!(ab["delivered"].as_u64().unwrap(), got.arrivals.len() as u64);
    assert_eq!(ab["up"], true);
    assert_eq!(ab["params"]["latency_ms"], 30.0);
    assert_eq!(s["paths"][0]["b_to_a"]["params"]["latency_ms"], 1.0);

    // Bad commands get an error reply and change nothing.
    let refused = |line: &str| match request(&sock, line) {
        Err(ControlError::Refused(why)) => why,
        other => panic!("`{line}`: {other:?}"),
    };
    assert!(refused("cut nosuch").contains("no path named `nosuch`"));
    assert!(refused("set p0 loss=3").contains("loss"));
    assert!(refused("set p0 lose=0.1").contains("unknown setting"));
    assert!(refused("fly").contains("unknown command"));
    assert!(refused(&"x".repeat(5_000)).contains("longer than"));
    let after = request(&sock, "stats").unwrap();
    assert_eq!(
        after["paths"][0]["a_to_b"]["params"]["loss"]["model"],
        "none"
    );
    let (code, last) = b.relay.stop();
    assert_eq!(code, Some(0), "SIGTERM ends it cleanly");
    let last = last.expect("final counters on stdout");
    assert_eq!(last["paths"][0]["a_to_b"]["offered"], 1_500);
}
