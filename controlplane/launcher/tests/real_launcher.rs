//! `weft node` with real processes: the real `weft-dataplane` and stand-in control planes
//! (shell scripts), since the real control plane is being rewritten.
//!
//! Each test has its own directory, shm name and loopback address (127.0.91.x, x = the test's
//! octet) and a guard that kills what it started. Run with
//! `cargo build -p weft-dataplane && cargo nextest run -p weft --test real_launcher`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

mod launcher_common;

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use launcher_common::{Scene, alive, dataplane_bin, wait_dead};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

const SECOND: Duration = Duration::from_secs(1);

/// The node comes up (data plane first, then controld with `--config F --id N`), prints its
/// running line once, and a controld killed by SIGKILL is restarted under a new pid while the
/// data plane keeps running.
#[test]
fn node_comes_up_and_a_killed_controld_is_restarted() {
    let scene = Scene::new("restart", 1);
    let dp = dataplane_bin();
    let standin = scene.sleeper();
    let launcher = scene.launch(&[
        "--dataplane-bin",
        dp.to_str().unwrap(),
        "--controld-bin",
        standin.to_str().unwrap(),
    ]);
    let (dataplane, controld) = launcher.wait_running();
    assert!(alive(dataplane) && alive(controld), "{}", launcher.text());
    assert!(scene.session().exists() && scene.attach().exists());
    // The data plane's "node 1 up" was forwarded (the launcher starts controld only after it;
    // the two come on different pipes, so their order as this test reads them is not
    // meaningful), and controld got the node's arguments.
    launcher.wait_line(5 * SECOND, |l| {
        l.contains("[dataplane]") && l.contains("node 1 up")
    });
    let expect = format!(
        "out: [controld] stand-in pid {controld} args: --config {} --id 1",
        scene.config.display()
    );
    launcher.wait_line(5 * SECOND, |l| l == expect);
    launcher.wait_line(5 * SECOND, |l| l == "err: [controld] stand-in stderr line");

    kill(controld, Signal::SIGKILL).unwrap();
    let restarted = launcher.wait_line(5 * SECOND, |l| l.contains("controld restarted (pid "));
    let new_pid: i32 = restarted
        .rsplit("pid ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .parse()
        .unwrap();
    let new_pid = Pid::from_raw(new_pid);
    assert_ne!(new_pid, controld);
    assert!(alive(new_pid), "{}", launcher.text());
    assert!(!alive(controld));
    assert!(alive(dataplane), "the data plane must keep running");
    assert_eq!(
        launcher.count(&format!(
            "controld (pid {controld}) was killed by signal SIGKILL"
        )),
        1,
        "{}",
        launcher.text()
    );
    launcher.wait_line(5 * SECOND, |l| {
        l.starts_with(&format!("out: [controld] stand-in pid {new_pid} args:"))
    });
    assert_eq!(launcher.count("weft node 1 running"), 1);
}

/// A controld that exits at once is restarted with doubling delays up to the cap, not in a hot
/// loop: over ~1.6 s the delays are 100, 200, 400, 400 ms and it starts about 5 times.
#[test]
fn a_controld_that_exits_at_once_is_restarted_with_backoff() {
    let scene = Scene::new("backoff", 2);
    let starts = scene.dir.join("starts");
    let quitter = scene.script(
        "controld-quitter",
        &format!(
            "echo $$ >> {}\necho \"stand-in exits\"\nexit 1",
            starts.display()
        ),
    );
    let mut launcher = scene.launch(&[
        "--controld-bin",
        quitter.to_str().unwrap(),
        "--restart-max-backoff-ms",
        "400",
    ]);
    launcher.wait_running();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(1600));
    let count = std::fs::read_to_string(&starts).unwrap().lines().count();
    let elapsed = t0.elapsed();
    // Starts at 0, 0.1, 0.3, 0.7, 1.1, 1.5 s: 6 by 1.6 s; a slow machine gets fewer, a hot loop
    // hundreds.
    assert!(
        (3..=7).contains(&count),
        "{count} starts in {elapsed:?}:\n{}",
        launcher.text()
    );
    let delays: Vec<u64> = launcher
        .lines()
        .iter()
        .filter(|l| l.contains("exited with status 1 after"))
        .filter_map(|l| l.split("restarting it in ").nth(1))
        .map(|d| d.trim_end_matches(" ms").parse().unwrap())
        .collect();
    assert!(delays.len() >= 3, "{}", launcher.text());
    let expect = [100, 200, 400, 400, 400, 400, 400];
    assert_eq!(delays, expect[..delays.len()], "{}", launcher.text());
    assert!(launcher.count("out: [controld] stand-in exits") >= 3);

    // Stopping while a restart is pending needs no controld to stop.
    launcher.signal(Signal::SIGTERM);
    let (status, took) = launcher.wait_exit(10 * SECOND);
    assert_eq!(status.code(), Some(0), "{}", launcher.text());
    assert!(took < 5 * SECOND, "{took:?}");
}

/// Stale socket files (a killed node's) are removed at start; SIGTERM stops controld first, then
/// the data plane, within a few seconds, exit status 0, and no socket file is left.
#[test]
fn sigterm_stops_both_and_removes_the_sockets() {
    let scene = Scene::new("sigterm", 3);
    for path in [scene.session(), scene.attach(), scene.ctl()] {
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
    }
    let standin = scene.sleeper();
    let mut launcher = scene.launch(&["--controld-bin", standin.to_str().unwrap()]);
    let (dataplane, controld) = launcher.wait_running();
    assert_eq!(
        launcher.count("removed the stale socket"),
        3,
        "{}",
        launcher.text()
    );
    // A socket left behind by a control plane is removed when the node stops, too.
    drop(UnixListener::bind(scene.ctl()).unwrap());

    launcher.signal(Signal::SIGTERM);
    let (status, took) = launcher.wait_exit(10 * SECOND);
    assert_eq!(status.code(), Some(0), "{}", launcher.text());
    assert!(took < 5 * SECOND, "stopping took {took:?}");
    // The launcher reaped both (they are not ours to reap), and they are gone.
    assert_eq!(wait_dead(dataplane, SECOND), None);
    assert_eq!(wait_dead(controld, SECOND), None);
    for path in [scene.session(), scene.attach(), scene.ctl()] {
        assert!(!path.exists(), "{} left behind", path.display());
    }
    let lines = launcher.lines();
    let pos = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
    assert!(pos("stopping controld") < pos("stopping data plane"));
    assert!(
        pos(&format!(
            "controld (pid {controld}) was killed by signal SIGTERM"
        )) < pos("stopping data plane")
    );
    assert_eq!(
        launcher.count(&format!(
            "data plane (pid {dataplane}) exited with status 0"
        )),
        1
    );
    assert!(
        lines.last().unwrap().ends_with("stopped"),
        "{}",
        launcher.text()
    );
}

/// SIGKILL to the launcher kills both children (parent-death signal), and a new launcher then
/// brings the node up again over the stale sockets.
#[test]
fn sigkill_to_the_launcher_takes_the_whole_node_down() {
    let scene = Scene::new("sigkill", 4);
    let standin = scene.sleeper();
    let mut launcher = scene.launch(&["--controld-bin", standin.to_str().unwrap()]);
    let (dataplane, controld) = launcher.wait_running();
    launcher.signal(Signal::SIGKILL);
    launcher.wait_exit(5 * SECOND);
    // This test process is a subreaper, so the orphans come to it: each was SIGKILLed.
    for pid in [dataplane, controld] {
        match wait_dead(pid, 5 * SECOND) {
            Some(WaitStatus::Signaled(p, Signal::SIGKILL, _)) => assert_eq!(p, pid),
            other => panic!("pid {pid} ended as {other:?}:\n{}", launcher.text()),
        }
    }
    assert!(
        scene.session().exists(),
        "a killed data plane leaves its socket"
    );

    let mut again = scene.launch(&["--controld-bin", standin.to_str().unwrap()]);
    again.wait_running();
    assert!(
        again.count("removed the stale socket") >= 2,
        "{}",
        again.text()
    );
    again.signal(Signal::SIGTERM);
    assert_eq!(
        again.wait_exit(10 * SECOND).0.code(),
        Some(0),
        "{}",
        again.text()
    );
}

/// A second launcher for a node whose sockets are live fails with a clear error and leaves the
/// running node alone.
#[test]
fn a_second_launcher_for_a_running_node_fails() {
    let scene = Scene::new("twice", 5);
    let standin = scene.sleeper();
    let first = scene.launch(&["--controld-bin", standin.to_str().unwrap()]);
    let (dataplane, controld) = first.wait_running();

    let mut second = scene.launch(&["--controld-bin", standin.to_str().unwrap()]);
    let (status, _) = second.wait_exit(5 * SECOND);
    assert_eq!(status.code(), Some(1), "{}", second.text());
    let expect = format!(
        "err: weft: error: node 1 is already running: {} accepts connections",
        scene.session().display()
    );
    assert_eq!(second.lines(), [expect]);
    assert!(alive(dataplane) && alive(controld));
    assert!(scene.session().exists() && scene.attach().exists());
    assert_eq!(
        first.count("[controld] stand-in pid"),
        1,
        "{}",
        first.text()
    );
}

/// The data plane exiting takes the node down: controld is stopped, the launcher exits 1 and
/// removes the sockets the killed data plane left.
#[test]
fn the_data_plane_exiting_takes_the_node_down() {
    let scene = Scene::new("dpdown", 7);
    let standin = scene.sleeper();
    let mut launcher = scene.launch(&["--controld-bin", standin.to_str().unwrap()]);
    let (dataplane, controld) = launcher.wait_running();
    kill(dataplane, Signal::SIGKILL).unwrap();
    let (status, took) = launcher.wait_exit(10 * SECOND);
    assert_eq!(status.code(), Some(1), "{}", launcher.text());
    assert!(took < 5 * SECOND, "{took:?}");
    assert!(!alive(controld));
    let last = launcher.lines().last().cloned().unwrap();
    assert_eq!(
        last,
        "err: weft: error: the data plane of node 1 was killed by signal SIGKILL: the node is down"
    );
    assert_eq!(
        launcher.count("stopping controld (pid"),
        1,
        "{}",
        launcher.text()
    );
    assert!(!scene.session().exists() && !scene.attach().exists());
}

/// A data plane that fails at start-up, or never reports up, ends the launcher with status 1
/// before any controld is started; the hanging one is stopped.
#[test]
fn a_data_plane_that_fails_or_hangs_at_start_up() {
    let scene = Scene::new("dpfail", 8);
    let marker = scene.dir.join("controld-ran");
    let standin = scene.script("controld-marker", &format!("touch {}", marker.display()));
    let standin = standin.to_str().unwrap();

    // An interface address this host does not have: the data plane cannot bind it.
    scene.write_config("192.0.2.1:7001");
    let mut launcher = scene.launch(&["--controld-bin", standin]);
    let (status, _) = launcher.wait_exit(10 * SECOND);
    assert_eq!(status.code(), Some(1), "{}", launcher.text());
    assert!(
        launcher
            .text()
            .contains("weft: error: the data plane of node 1 exited with status 1 during start-up"),
        "{}",
        launcher.text()
    );
    assert!(launcher.count("err: [dataplane] weft-dataplane:") >= 1);

    scene.write_config(&format!("127.0.91.{}:7001", scene.octet));
    let pidfile = scene.dir.join("hanger.pid");
    let hanger = scene.script(
        "dataplane-hanger",
        &format!("echo $$ > {}\nexec sleep 3600", pidfile.display()),
    );
    let mut launcher = scene.launch(&[
        "--dataplane-bin",
        hanger.to_str().unwrap(),
        "--controld-bin",
        standin,
        "--up-timeout-ms",
        "500",
    ]);
    let (status, took) = launcher.wait_exit(10 * SECOND);
    assert_eq!(status.code(), Some(1), "{}", launcher.text());
    assert!(took < 5 * SECOND, "{took:?}");
    let text = launcher.text();
    assert!(
        text.contains(
            "weft: error: the data plane of node 1 did not report \"node 1 up\" within 500 ms"
        ),
        "{text}"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !alive(Pid::from_raw(pid)),
        "the hanging data plane was not stopped"
    );
    assert!(text.contains("was killed by signal SIGTERM"), "{text}");
    assert!(
        !marker.exists(),
        "controld must not start without a data plane"
    );
}

/// Bad input stops the launcher before anything starts, with exit status 1 and one clear line.
#[test]
fn bad_config_id_or_binaries_exit_1_with_a_clear_message() {
    let scene = Scene::new("badinput", 6);
    let standin = scene.sleeper();
    let standin = standin.to_str().unwrap();
    let config = scene.config.display().to_string();
    let run = |bin: &Path, id: &str, extra: &[&str]| {
        let mut l = scene.launch_with(bin, &["--id", id], extra);
        let (status, took) = l.wait_exit(5 * SECOND);
        assert_eq!(status.code(), Some(1), "{}", l.text());
        assert!(took < 3 * SECOND);
        let lines = l.lines();
        assert_eq!(lines.len(), 1, "{}", l.text());
        lines[0].clone()
    };
    let weft = Path::new(launcher_common::WEFT);
    let ctl = ["--controld-bin", standin];

    let line = run(weft, "9", &ctl);
    assert_eq!(
        line,
        format!("err: weft: error: --id 9: no such node in {config} (its nodes: 1)")
    );
    let line = run(weft, "abc", &ctl);
    assert_eq!(
        line,
        format!(
            "err: weft: error: --id abc: not a node id (an integer 1..=1023) in {config} \
             (its nodes: 1)"
        )
    );
    let line = run(weft, "1", &["--controld-bin", "/nonexistent/controld"]);
    assert!(
        line.starts_with("err: weft: error: cannot find weft-controld: --controld-bin /nonexistent/controld: No such file"),
        "{line}"
    );
    // A launcher with no binaries beside it and no override says what it looked for.
    let lonely = scene.dir.join("bin");
    std::fs::create_dir(&lonely).unwrap();
    std::fs::copy(weft, lonely.join("weft")).unwrap();
    let line = run(&lonely.join("weft"), "1", &ctl);
    assert_eq!(
        line,
        format!(
            "err: weft: error: cannot find weft-dataplane: not found at {}/weft-dataplane \
             (the launcher's directory); build it (cargo build -p weft-dataplane), or give \
             --dataplane-bin PATH or $WEFT_BIN_DIR",
            lonely.display()
        )
    );
    // Something other than a socket where the ctl socket goes is not removed.
    std::fs::write(scene.ctl(), "keep me").unwrap();
    let line = run(weft, "1", &ctl);
    assert_eq!(
        line,
        format!(
            "err: weft: error: {}: exists and is not a socket; refusing to remove it",
            scene.ctl().display()
        )
    );
    assert_eq!(std::fs::read_to_string(scene.ctl()).unwrap(), "keep me");
    std::fs::remove_file(scene.ctl()).unwrap();

    std::fs::write(
        &scene.config,
        "schema = 1\n[overlay]\nname = \"x\"\nbogus = 1\n",
    )
    .unwrap();
    let line = run(weft, "1", &ctl);
    assert!(
        line.starts_with(&format!(
            "err: weft: error: {config}:4:1: overlay.bogus: unknown field"
        )),
        "{line}"
    );
    std::fs::remove_file(&scene.config).unwrap();
    let line = run(weft, "1", &ctl);
    assert!(
        line.starts_with(&format!(
            "err: weft: error: {config}: cannot read the config file"
        )),
        "{line}"
    );
    assert!(!scene.session().exists() && !scene.ctl().exists());
}
