//! `weft-send` → fake node → `weft-recv`, as real processes: the tools connect to the in-test
//! fake node's socket, and the test reads their JSON summaries. One run is clean (nothing lost,
//! duplicated or reordered; latency measured), one has the node drop every tenth probe, which
//! `weft-recv` must count exactly. Also checks that the tools refuse unbounded runs.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap and panic to fail loudly"
)]

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{FakeConfig, FakeNode};
use serde_json::Value;

const SEND: &str = env!("CARGO_BIN_EXE_weft-send");
const RECV: &str = env!("CARGO_BIN_EXE_weft-recv");

/// Waits for `child` up to 60 s and returns its output; panics (after killing it) on timeout.
fn finish(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout:\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// The JSON object on the last line of `out`'s stdout.
fn last_json(out: &Output) -> Value {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: last line {line:?} of\n{text}"))
}

/// Runs a receiver on port 9 and a sender of `count` probes on `flows` flows to it; returns
/// both summaries.
fn send_and_receive(node: &FakeNode, count: u64, flows: u32, recv_args: &[&str]) -> (Value, Value) {
    let socket = node.path.to_str().unwrap();
    let recv = Command::new(RECV)
        .args([
            "--socket",
            socket,
            "--port",
            "9",
            "--seconds",
            "30",
            "--json",
        ])
        .args(recv_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The sender starts once the receiver holds its port, or its messages would go nowhere.
    node.wait_bound(9);
    let send = Command::new(SEND)
        .args([
            "--socket", socket, "--to", "1:9", "--size", "100", "--batch", "64",
        ])
        .args(["--count", &count.to_string(), "--flows", &flows.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sent = last_json(&finish(send, "weft-send"));
    let received = last_json(&finish(recv, "weft-recv"));
    (sent, received)
}

#[test]
fn a_clean_run_loses_nothing_and_measures_latency() {
    let node = FakeNode::start("tools-clean", FakeConfig::default());
    let (sent, recv) = send_and_receive(&node, 5000, 2, &["--count", "5000"]);
    assert_eq!(sent["sent"], 5000, "{sent}");
    assert_eq!(sent["flows"], 2);
    assert_eq!(sent["drained"], true);
    assert!(sent["rate"].as_f64().unwrap() > 0.0);
    // Batches, not a write per message.
    assert!(sent["writes"].as_u64().unwrap() < 1000, "{sent}");

    assert_eq!(recv["received"], 5000, "{recv}");
    assert_eq!(recv["flows"], 2);
    assert_eq!(recv["lost"], 0);
    assert_eq!(recv["duplicates"], 0);
    assert_eq!(recv["reordered"], 0);
    assert_eq!(recv["not_probes"], 0);
    let lat = &recv["latency_us"];
    assert_eq!(lat["count"], 5000);
    let (p50, p999, max) = (
        lat["p50"].as_f64().unwrap(),
        lat["p999"].as_f64().unwrap(),
        lat["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p999 && p999 <= max, "{lat}");
    assert!(
        max < 30e6,
        "latency on one host is far below the run time: {lat}"
    );
}

#[test]
fn dropped_probes_are_counted_as_loss() {
    // The node drops every probe whose sequence ends in 5: 200 of 2000 on one flow, none of
    // them the last (a loss after the last message received is invisible to weft-recv).
    let node = FakeNode::start(
        "tools-loss",
        FakeConfig {
            drop_probe_seq: Some((10, 5)),
            ..FakeConfig::default()
        },
    );
    let (sent, recv) = send_and_receive(&node, 2000, 1, &["--idle-exit-ms", "1000"]);
    assert_eq!(sent["sent"], 2000, "{sent}");
    assert_eq!(recv["received"], 1800, "{recv}");
    assert_eq!(recv["lost"], 200);
    assert_eq!(recv["duplicates"], 0);
    let pct = recv["loss_pct"].as_f64().unwrap();
    assert!((pct - 10.0).abs() < 1e-9, "{recv}");
}

#[test]
fn a_paced_run_keeps_to_its_rate() {
    let node = FakeNode::start("tools-rate", FakeConfig::default());
    let socket = node.path.to_str().unwrap();
    let recv = Command::new(RECV)
        .args([
            "--socket",
            socket,
            "--port",
            "9",
            "--count",
            "300",
            "--seconds",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    node.wait_bound(9);
    let start = Instant::now();
    let send = Command::new(SEND)
        .args([
            "--socket", socket, "--to", "1:9", "--rate", "1000", "--count", "300",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sent = last_json(&finish(send, "weft-send"));
    // 300 messages at 1000/s take about 0.3 s; the sender's own clock says so too.
    assert!(start.elapsed() >= Duration::from_millis(280));
    // Paced, not flat out (which is tens of thousands per second); the low end leaves room
    // for a busy machine delaying the sender.
    let rate = sent["rate"].as_f64().unwrap();
    assert!((500.0..=1100.0).contains(&rate), "{sent}");
    // Without --json the summary is for people.
    let out = finish(recv, "weft-recv");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("received  300 messages"), "{text}");
    assert!(text.contains("p99.9"), "{text}");
}

#[test]
fn tools_refuse_runs_without_an_end_and_explain_flags() {
    for (bin, args) in [
        (SEND, &["--socket", "/nonexistent", "--to", "1:9"][..]),
        (RECV, &["--socket", "/nonexistent", "--port", "9"][..]),
    ] {
        let out = Command::new(bin).args(args).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("--count") && err.contains("--seconds"),
            "{err}"
        );
    }
    // A missing node is named by its path.
    let out = Command::new(SEND)
        .args([
            "--socket",
            "/nonexistent/weft.sock",
            "--to",
            "1:9",
            "--count",
            "1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("no Weft node is running at /nonexistent/weft.sock"),
        "{err}"
    );
    // Every flag has help text (the short form puts it on the flag's line).
    for bin in [SEND, RECV] {
        let help = Command::new(bin).arg("-h").output().unwrap();
        let text = String::from_utf8(help.stdout).unwrap();
        for line in text.lines().filter(|l| l.trim_start().starts_with("--")) {
            assert!(
                line.split_whitespace().count() > 2,
                "flag without help in {bin}: {line:?}"
            );
        }
    }
}
