//! `weft-linkem` from a TOML file with two paths and timelines (one in the file, one from
//! `--timeline`): the cut and restore of one path land on schedule while the other path is
//! untouched, a timed `set` changes its latency, and a timed `quit` ends the relay, which
//! prints its final counters. Then bad command lines and files: each is refused with a message
//! that names the problem.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod real_linkem_common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use real_linkem_common::{TempDir, bin, realtime_thread};
use weft_tests::linkem::process::LinkemProcess;
use weft_tests::overlay::Addrs;

/// Sends one datagram a millisecond from `tx` to `to` for `total`; returns the (send time,
/// arrival time) of each that `rx` got, as offsets from `t0`. Both threads run real-time (best
/// effort) so a busy host does not blur the schedule.
fn stream_1ms(
    tx: UdpSocket,
    to: std::net::SocketAddr,
    rx: UdpSocket,
    t0: Instant,
    total: Duration,
) -> std::thread::JoinHandle<Vec<(Duration, Duration)>> {
    std::thread::spawn(move || {
        realtime_thread();
        rx.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let receiver = std::thread::spawn(move || {
            realtime_thread();
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            let end = t0 + total + Duration::from_millis(300);
            while Instant::now() < end {
                if let Ok((8, _)) = rx.recv_from(&mut buf) {
                    let sent =
                        Duration::from_nanos(u64::from_le_bytes(buf[..8].try_into().unwrap()));
                    got.push((sent, t0.elapsed()));
                }
            }
            got
        });
        let mut i = 0u32;
        while t0.elapsed() < total {
            let due = Duration::from_millis(u64::from(i));
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
            let sent = t0.elapsed().as_nanos() as u64;
            tx.send_to(&sent.to_le_bytes(), to).unwrap();
            i += 1;
        }
        receiver.join().unwrap()
    })
}

fn longest_gap(got: &[(Duration, Duration)]) -> (Duration, Duration) {
    got.windows(2)
        .map(|w| (w[1].1 - w[0].1, w[0].1))
        .max()
        .unwrap()
}

#[test]
fn a_timeline_cuts_restores_sets_and_quits_on_schedule() {
    let name = "lk-timeline";
    let addrs = Addrs::new(name);
    let dir = TempDir::new(name);
    let node = |isp, host, port| UdpSocket::bind(addrs.host(isp, host, port)).unwrap();
    // Path p0 on ISP a, p1 on ISP b; node A is host 1, node B host 2.
    let (a0, b0, a1, b1) = (
        node(0, 1, 7001),
        node(0, 2, 7002),
        node(1, 1, 7001),
        node(1, 2, 7002),
    );
    let side = |isp, port| addrs.host(isp, 254, port);
    let config = format!(
        r#"
seed = 5
[defaults]
latency_ms = 2

[[path]]
name = "p0"
a_side = "{}"
b_side = "{}"
to_a = "{}"
to_b = "{}"

[[path]]
name = "p1"
a_side = "{}"
b_side = "{}"
to_a = "{}"
to_b = "{}"
[path.b_to_a]
latency_ms = 7

[[timeline]]
at_ms = 300
action = "cut p0"
[[timeline]]
at_ms = 600
action = "restore p0"
"#,
        side(0, 9000),
        side(0, 9001),
        a0.local_addr().unwrap(),
        b0.local_addr().unwrap(),
        side(1, 9000),
        side(1, 9001),
        a1.local_addr().unwrap(),
        b1.local_addr().unwrap(),
    );
    let config_file = dir.0.join("linkem.toml");
    std::fs::write(&config_file, config).unwrap();
    let timeline = dir.0.join("timeline.toml");
    std::fs::write(
        &timeline,
        "[[timeline]]\nat_ms = 800\naction = \"set p1 a-to-b latency_ms=20\"\n\
         [[timeline]]\nat_ms = 1300\naction = \"quit\"\n",
    )
    .unwrap();
    let check = Command::new(bin())
        .arg("check")
        .arg(&config_file)
        .arg("--timeline")
        .arg(&timeline)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(
        text.contains("2 path(s)") && text.contains("4 timeline entries"),
        "{text}"
    );

    let mut relay = LinkemProcess::start(
        &bin(),
        &[
            "--config".into(),
            config_file.display().to_string(),
            "--timeline".into(),
            timeline.display().to_string(),
        ],
        &dir.0.join("linkem.ctl"),
        &dir.0.join("linkem.log"),
    );
    // The relay's clock started a little before it answered: offsets here are a few ms late.
    let t0 = Instant::now();
    let total = Duration::from_millis(1_200);
    let p0 = stream_1ms(a0, side(0, 9000), b0, t0, total);
    let p1 = stream_1ms(a1, side(1, 9000), b1, t0, total);
    let (p0, p1) = (p0.join().unwrap(), p1.join().unwrap());
    let code = relay.wait_exit(Duration::from_secs(3));
    eprintln!("{}", relay.log());
    assert_eq!(code, Some(0), "the timeline's quit ends the relay");

    let (gap0, from0) = longest_gap(&p0);
    eprintln!(
        "p0: {} arrivals, longest gap {gap0:?} from {from0:?}",
        p0.len()
    );
    assert!(
        gap0 > Duration::from_millis(280) && gap0 < Duration::from_millis(330),
        "p0 cut for {gap0:?}, scheduled 300 ms"
    );
    assert!(
        from0 > Duration::from_millis(270) && from0 < Duration::from_millis(320),
        "p0 cut at {from0:?}, scheduled at 300 ms"
    );
    let (gap1, _) = longest_gap(&p1);
    assert!(gap1 < Duration::from_millis(30), "p1 stalled {gap1:?}");
    let delay = |got: &[(Duration, Duration)], from: u64, to: u64| {
        let d: Vec<f64> = got
            .iter()
            .filter(|(s, _)| (from..to).contains(&(s.as_millis() as u64)))
            .map(|(s, a)| (*a - *s).as_secs_f64() * 1e3)
            .collect();
        d.iter().sum::<f64>() / d.len() as f64
    };
    let (before, after) = (delay(&p1, 100, 750), delay(&p1, 850, 1_150));
    eprintln!("p1 A to B: {before:.2} ms before the set, {after:.2} ms after");
    assert!((2.0..3.0).contains(&before), "{before}");
    assert!((20.0..21.0).contains(&after), "{after}");

    let last = relay.final_stats().expect("final counters on stdout");
    let paths = last["paths"].as_array().unwrap();
    assert_eq!(paths[0]["name"], "p0");
    let down = paths[0]["a_to_b"]["down_drops"].as_u64().unwrap();
    assert!(
        (270..=330).contains(&down),
        "{down} down drops in a 300 ms cut"
    );
    assert_eq!(paths[1]["a_to_b"]["down_drops"], 0);
    assert_eq!(paths[1]["b_to_a"]["params"]["latency_ms"], 7.0);
    assert_eq!(paths[1]["a_to_b"]["params"]["latency_ms"], 20.0);
    assert_eq!(paths[0]["a_to_b"]["up"], true);
}

/// Runs `weft-linkem ARGS`, expecting failure; returns (exit code, stderr).
fn refused(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} was accepted: {err}");
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn bad_arguments_and_files_are_refused_clearly() {
    let name = "lk-bad";
    let addrs = Addrs::new(name);
    let dir = TempDir::new(name);
    let a = |port| addrs.host(0, 254, port).to_string();
    let (s0, s1, n1, n2) = (a(9000), a(9001), a(7001), a(7002));
    let base = [
        "relay", "--a-side", &s0, "--b-side", &s1, "--to-a", &n1, "--to-b", &n2,
    ];
    let with = |extra: &[&str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        refused(&v)
    };

    let (code, err) = with(&["--loss", "1.5"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("loss") && err.contains("not a probability"),
        "{err}"
    );
    let (_, err) = with(&["--burst", "3"]);
    assert!(err.contains("burst: needs loss"), "{err}");
    let (_, err) = with(&["--ge", "0.1,0.2,0.3"]);
    assert!(err.contains("four"), "{err}");
    let (_, err) = with(&["--a-to-b", "latency=3"]);
    assert!(
        err.contains("--a-to-b") && err.contains("unknown setting"),
        "{err}"
    );
    let (_, err) = with(&["--latency-ms", "-2"]);
    assert!(err.contains("latency_ms"), "{err}");
    let (code, err) = refused(&["relay", "--a-side", &s0]);
    assert_eq!(code, 2, "a usage error: {err}");
    assert!(err.contains("--b-side"), "{err}");
    let (_, err) = refused(&["relay", "--a-side", "localhost", "--b-side", &s1]);
    assert!(err.contains("invalid socket address"), "{err}");

    let file = dir.0.join("bad.toml");
    let write = |text: &str| std::fs::write(&file, text).unwrap();
    let path = format!("a_side = \"{s0}\"\nb_side = \"{s1}\"\nto_a = \"{n1}\"\nto_b = \"{n2}\"\n");
    let config = file.display().to_string();
    write(&format!("[[path]]\n{path}[path.both]\nlatncy_ms = 3\n"));
    let (_, err) = refused(&["relay", "--config", &config]);
    assert!(
        err.contains("bad.toml") && err.contains("latncy_ms") && err.contains("line 7"),
        "{err}"
    );
    write(&format!(
        "[[path]]\n{path}[[timeline]]\nat_ms = 5\naction = \"cut p7\"\n"
    ));
    let (_, err) = refused(&["check", &config]);
    assert!(
        err.contains("timeline[0].action") && err.contains("p7"),
        "{err}"
    );
    write(&format!("[[path]]\n{path}[[path]]\n{path}"));
    let (_, err) = refused(&["relay", "--config", &config]);
    assert!(
        err.contains("path[1].a_side") && err.contains("bound twice"),
        "{err}"
    );
    write("seed = 1\n");
    let (_, err) = refused(&["relay", "--config", &config]);
    assert!(err.contains("no path"), "{err}");
    let (_, err) = refused(&["relay", "--config", "/nonexistent/linkem.toml"]);
    assert!(err.contains("/nonexistent/linkem.toml"), "{err}");
    write(&format!("[[path]]\n{path}"));
    let (_, err) = refused(&["relay", "--config", &config, "--loss", "0.1"]);
    assert!(err.contains("in the file"), "{err}");

    // A control socket that another relay answers on is not taken over.
    let ctl = dir.0.join("linkem.ctl");
    let ctl_text = ctl.display().to_string();
    let relay = LinkemProcess::start(
        &bin(),
        &["--config".into(), config.clone()],
        &ctl,
        &dir.0.join("linkem.log"),
    );
    let other = addrs.host(1, 254, 9000).to_string();
    let other_b = addrs.host(1, 254, 9001).to_string();
    let (_, err) = refused(&[
        "relay",
        "--a-side",
        &other,
        "--b-side",
        &other_b,
        "--to-a",
        &n1,
        "--to-b",
        &n2,
        "--control",
        &ctl_text,
    ]);
    assert!(err.contains("another process"), "{err}");
    // Nor its UDP ports.
    let (_, err) = refused(&["relay", "--config", &config]);
    assert!(err.contains("binding a_side") && err.contains(&s0), "{err}");
    let (_, err) = refused(&["ctl", &ctl_text, "cut", "p9"]);
    assert!(err.contains("no path named `p9`"), "{err}");
    let (_, err) = refused(&["ctl", "/nonexistent.ctl", "stats"]);
    assert!(err.contains("/nonexistent.ctl"), "{err}");
    assert!(relay.ctl("stats").is_ok(), "the first relay still runs");
}
