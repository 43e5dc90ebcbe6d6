//! weftctl as a process: `config check` on good and broken files, `show links|fib|counters`
//! against real `weft-dataplane` processes (one on a named region, one on a memfd reached through
//! its attach socket), and `show nodes|routes` against a stub control plane, or none.
//!
//! The data-plane binary belongs to another package, so `CARGO_BIN_EXE_` cannot name it: the
//! test builds it with the cargo that runs the test, into the same target directory and profile
//! as this test binary, and runs it from there. Every test gets its own loopback addresses
//! (`127.A.B.n`), shm names and temporary directory; the [`Overlay`] guard stops what it started.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use weft_shared::ctl::codec::{decode_request, encode_reply};
use weft_shared::ctl::{AdvertisedLink, CtlReply, CtlRequest, NodeRow, RouteRow, StatusReply};
use weft_shared::ids::{LinkId, NodeId};
use weft_shared::shm::fib::UnicastRoute;
use weft_shared::shm::{FibWriter, LinkState, PublishError, ShmRegion, StatsReader};

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `weft-dataplane` binary, built once per test process into this binary's target dir.
fn dataplane_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // This binary is <target>/<profile dir>/deps/real_weftctl-<hash>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev".to_owned(),
            other => other.to_owned(),
        };
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace())
            .args([
                "build",
                "--quiet",
                "-p",
                "weft-dataplane",
                "--bin",
                "weft-dataplane",
            ])
            .args(["--profile", &profile])
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .unwrap();
        assert!(status.success(), "building weft-dataplane failed");
        let bin = profile_dir.join("weft-dataplane");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
}

/// Runs weftctl with `args`.
fn weftctl(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_weftctl"))
        .args(args)
        .env_remove("WEFT_CONFIG")
        .env_remove("WEFT_ID")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "weftctl panicked: {stderr}");
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Runs weftctl and expects success; returns stdout.
fn weftctl_ok(args: &[&str]) -> String {
    let out = weftctl(args);
    assert!(
        out.status.success(),
        "weftctl {args:?} failed ({}): {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// Runs weftctl with `--json` and parses its one document.
fn weftctl_json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&weftctl_ok(&args)).unwrap()
}

/// Two nodes (1 and 2) joined by link 0 with two paths; node 2 may use a memfd region.
struct Overlay {
    dir: PathBuf,
    config: PathBuf,
    name: String,
    children: Vec<(u16, Child)>,
}

impl Overlay {
    fn start(name: &str, memfd_node2: bool) -> Overlay {
        let mut h = DefaultHasher::new();
        (std::process::id(), name).hash(&mut h);
        let x = h.finish();
        let (a, b) = (1 + (x % 250) as u8, 1 + ((x >> 16) % 80) as u8 * 3);
        let dir = std::env::temp_dir().join(format!("weftctl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = format!(
            "schema = 1\n[overlay]\nname = \"{name}\"\n[timers]\nhello_interval_ms = 10\n\
             path_dead_after_ms = 100\n"
        );
        for id in 1..=2u16 {
            text.push_str(&format!(
                "[[node]]\nid = {id}\nname = \"n{id}\"\ncores = [{core}]\n\
                 session_socket = \"{dir}/n{id}.sock\"\nctl_socket = \"{dir}/n{id}.ctl\"\n\
                 shm_name = \"weftctl-{pid}-{name}-n{id}\"\n",
                core = id - 1,
                dir = dir.display(),
                pid = std::process::id(),
            ));
            for (isp, label) in ["a", "b"].iter().enumerate() {
                let ip = Ipv4Addr::new(127, a, b + isp as u8, id as u8);
                text.push_str(&format!(
                    "[[node.interface]]\nisp = \"{label}\"\naddr = \"{ip}:{}\"\n",
                    7000 + id
                ));
            }
        }
        // An authenticated link, so `show links` has key epochs to show.
        text.push_str("[[link]]\nid = 0\nnodes = [1, 2]\ncost = 1000\nkey_file = \"link0.key\"\n");
        let key = dir.join("link0.key");
        std::fs::write(&key, "0 00112233445566778899aabbccddeeff\n").unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let config = dir.join("overlay.toml");
        std::fs::write(&config, text).unwrap();
        let mut overlay = Overlay {
            dir,
            config,
            name: name.to_owned(),
            children: Vec::new(),
        };
        for id in 1..=2u16 {
            let log = std::fs::File::create(overlay.dir.join(format!("n{id}.log"))).unwrap();
            let mut cmd = Command::new(dataplane_bin());
            cmd.arg("--config")
                .arg(&overlay.config)
                .args(["--id", &id.to_string()]);
            if id == 2 && memfd_node2 {
                cmd.arg("--memfd");
            }
            let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
            overlay.children.push((id, child));
        }
        for id in 1..=2u16 {
            overlay.wait_up(id);
        }
        overlay
    }

    fn shm_name(&self, id: u16) -> String {
        format!("weftctl-{}-{}-n{id}", std::process::id(), self.name)
    }

    fn log(&self, id: u16) -> String {
        std::fs::read_to_string(self.dir.join(format!("n{id}.log"))).unwrap_or_default()
    }

    fn pid(&self, id: u16) -> u32 {
        self.children.iter().find(|(n, _)| *n == id).unwrap().1.id()
    }

    fn wait_up(&mut self, id: u16) {
        let attach = self.dir.join(format!("n{id}.sock.attach"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !attach.exists() {
            let (_, child) = self.children.iter_mut().find(|(n, _)| *n == id).unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                panic!("node {id} exited at start-up ({status}):\n{}", self.log(id));
            }
            assert!(
                Instant::now() < deadline,
                "node {id} not up:\n{}",
                self.log(id)
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Node 1's named region.
    fn region1(&self) -> Arc<ShmRegion> {
        Arc::new(ShmRegion::open_named(&self.shm_name(1)).unwrap())
    }

    /// Waits until link 0 is up as node 1 sees it.
    fn wait_link_up(&self) {
        let reader = StatsReader::new(self.region1());
        let deadline = Instant::now() + Duration::from_secs(10);
        let link = LinkId::new(0).unwrap();
        while reader.link(link).map(|s| s.state) != Ok(LinkState::Up) {
            assert!(
                Instant::now() < deadline,
                "link 0 not up:\n{}\n{}",
                self.log(1),
                self.log(2)
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops node `id` with SIGTERM (SIGKILL after 5 s).
    fn stop(&mut self, id: u16) {
        let Some(i) = self.children.iter().position(|(n, _)| *n == id) else {
            return;
        };
        let (_, mut child) = self.children.remove(i);
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn args<'a>(&'a self, id: &'a str, show: &'a str) -> Vec<&'a str> {
        vec![
            "--config",
            self.config.to_str().unwrap(),
            "--id",
            id,
            "show",
            show,
        ]
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- node 1 ---\n{}\n--- node 2 ---\n{}",
                self.log(1),
                self.log(2)
            );
        }
        for id in [1, 2] {
            self.stop(id);
            let _ = ShmRegion::unlink_named(&self.shm_name(id));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Publishes node 1's FIB: node 2 via link 0 at 1000 us. Returns the generation.
fn publish(writer: &mut FibWriter) -> u64 {
    let start = Instant::now();
    loop {
        let now = weft_shared::time::Instant::from_nanos(start.elapsed().as_nanos() as u64);
        let result = writer.try_publish(now, |fib| {
            let route = UnicastRoute {
                next_hop: LinkId::new(0).unwrap(),
                metric_us: 1000,
            };
            fib.set_unicast(NodeId::new(2).unwrap(), route);
            Ok(())
        });
        match result {
            Ok(g) => return g.0,
            Err(PublishError::ReadersBusy { .. }) => thread::sleep(Duration::from_micros(100)),
            Err(e) => panic!("publish: {e}"),
        }
        assert!(start.elapsed() < Duration::from_secs(5), "publish stuck");
    }
}

#[test]
fn config_check_good_and_broken() {
    let demo = workspace().join("config/demo.toml");
    let text = weftctl_ok(&["config", "check", demo.to_str().unwrap()]);
    assert!(text.contains("demo.toml: ok"), "{text}");
    assert!(text.contains("overlay demo"), "{text}");
    assert!(text.contains("6 nodes, 8 links, 20 paths"), "{text}");
    assert!(
        text.contains("amsterdam") && text.contains("/tmp/weft-demo/node6.ctl"),
        "{text}"
    );
    let json = weftctl_json(&["config", "check", demo.to_str().unwrap()]);
    assert_eq!(json["overlay"], "demo");
    assert_eq!(json["nodes"], 6);
    assert_eq!(json["links"], 8);
    assert_eq!(json["hash"].as_str().unwrap().len(), 16);

    let dir = std::env::temp_dir().join(format!("weftctl-{}-broken", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.toml");
    let source = std::fs::read_to_string(&demo).unwrap();
    std::fs::write(&broken, source.replace("nodes = [2, 5]", "nodes = [2, 9]")).unwrap();
    let out = weftctl(&["config", "check", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // file:line:col: field: why (the loader's message).
    assert!(err.starts_with("weftctl: "), "{err}");
    assert!(err.contains("broken.toml:"), "{err}");
    assert!(err.contains("link[id=7].nodes"), "{err}");
    assert!(stdout(&out).is_empty());

    let out = weftctl(&[
        "config",
        "check",
        dir.join("missing.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
    std::fs::remove_dir_all(dir).unwrap();

    // Usage errors are clap's: exit 2.
    assert_eq!(weftctl(&["show", "everything"]).status.code(), Some(2));
}

#[test]
fn show_links_fib_counters_from_real_data_planes() {
    let overlay = Overlay::start("shm", true);
    overlay.wait_link_up();
    let mut writer = FibWriter::attach(overlay.region1(), Duration::from_secs(1)).unwrap();
    let generation = publish(&mut writer);
    // Let a few hellos and their counters accumulate.
    thread::sleep(Duration::from_millis(200));

    // show links, node 1 (named region).
    let text = weftctl_ok(&overlay.args("1", "links"));
    assert!(
        text.contains(&format!("data plane pid {}", overlay.pid(1))),
        "{text}"
    );
    assert!(text.contains("2 n2"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("0 ") && l.contains(" up ")),
        "{text}"
    );
    let json = weftctl_json(&overlay.args("1", "links"));
    assert_eq!(json["node"], 1);
    assert_eq!(json["dataplane"]["pid"], overlay.pid(1));
    let link = &json["links"][0];
    assert_eq!(link["link"], 0);
    assert_eq!(link["neighbour"], 2);
    assert_eq!(link["state"], "up");
    assert!(link["active_path"].is_u64(), "{link}");
    assert!(link["hellos_received"].as_u64().unwrap() > 0, "{link}");
    assert!(link["rtt_us"].as_u64().unwrap() > 0, "{link}");
    // Keyed with epoch 0 at both ends: sealing with 0, and the peer's hellos said 0.
    assert_eq!(link["auth"]["send_epoch"], 0, "{link}");
    assert_eq!(link["auth"]["newest_epoch"], 0, "{link}");
    assert_eq!(link["auth"]["peer_epoch"], 0, "{link}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("0 ") && l.trim_end().ends_with("epoch 0")),
        "{text}"
    );
    let paths = link["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 2);
    assert_eq!(paths[0]["path"], 0);
    assert_eq!(paths[0]["state"], "up");
    assert!(paths[0]["local"].as_str().unwrap().starts_with("a 127."));

    // show links, node 2: its region is a memfd, reached through the attach socket.
    let json = weftctl_json(&overlay.args("2", "links"));
    assert_eq!(json["dataplane"]["pid"], overlay.pid(2));
    assert!(
        json["dataplane"]["region"]
            .as_str()
            .unwrap()
            .ends_with("n2.sock.attach"),
        "{json}"
    );
    assert_eq!(json["links"][0]["state"], "up");

    // show fib.
    let text = weftctl_ok(&overlay.args("1", "fib"));
    assert!(
        text.contains(&format!("FIB generation {generation}: 1 unicast")),
        "{text}"
    );
    assert!(text.contains("checksum ok"), "{text}");
    let json = weftctl_json(&overlay.args("1", "fib"));
    assert_eq!(json["generation"], generation);
    assert_eq!(json["unicast_count"], 1);
    assert_eq!(json["verified"], true);
    let route = &json["unicast"][0];
    assert_eq!(
        (
            &route["destination"],
            &route["link"],
            &route["next_hop_node"],
            &route["metric_us"]
        ),
        (
            &Value::from(2),
            &Value::from(0),
            &Value::from(2),
            &Value::from(1000)
        )
    );
    // Publishing goes on after weftctl read the FIB (it used a spare reader slot, never the
    // writer role), and weftctl then shows the newer generation.
    assert_eq!(publish(&mut writer), generation + 1);
    assert_eq!(publish(&mut writer), generation + 2);
    let json = weftctl_json(&overlay.args("1", "fib"));
    assert_eq!(json["generation"], generation + 2);
    // Node 2 has never had a FIB published.
    let text = weftctl_ok(&overlay.args("2", "fib"));
    assert!(text.contains("FIB generation 0: 0 unicast"), "{text}");

    // show counters.
    let text = weftctl_ok(&overlay.args("1", "counters"));
    assert!(text.contains("received"), "{text}");
    assert!(text.contains("W0 (CORE 0)"), "{text}");
    assert!(
        !text.contains("drop_replayed"),
        "zero counters are hidden: {text}"
    );
    let json = weftctl_json(&overlay.args("1", "counters"));
    let received = json["total"]["received"].as_u64().unwrap();
    assert!(received > 0, "{json}");
    assert_eq!(json["workers"].as_array().unwrap().len(), 1);
    assert_eq!(json["workers"][0]["core"], 0);
    assert!(json["workers"][0]["counters"]["received"].as_u64().unwrap() > 0);
    assert_eq!(json["total"]["drop_replayed"], 0);
}

#[test]
fn show_with_the_data_plane_down() {
    let mut overlay = Overlay::start("down", false);
    overlay.stop(2);
    for show in ["links", "fib", "counters"] {
        let out = weftctl(&overlay.args("2", show));
        assert_eq!(out.status.code(), Some(1), "show {show}");
        let err = stderr(&out);
        assert!(
            err.contains("the data plane of node 2 is not running"),
            "{err}"
        );
        assert!(err.contains("n2.sock.attach"), "{err}");
    }
    // A region left behind by a killed data plane is not mistaken for a live one.
    let mut child = overlay.children.remove(0).1;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(Path::new(&format!("/dev/shm/{}", overlay.shm_name(1))).exists());
    let out = weftctl(&overlay.args("1", "links"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("left over from pid"), "{err}");
}

/// A stub control plane on `socket` answering `connections` requests from `replies`.
fn stub_control_plane(
    socket: &Path,
    connections: usize,
    replies: fn(CtlRequest) -> CtlReply,
) -> thread::JoinHandle<Vec<CtlRequest>> {
    let listener = UnixListener::bind(socket).unwrap();
    thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..connections {
            let (stream, _) = listener.accept().unwrap();
            let mut line = Vec::new();
            BufReader::new(&stream)
                .read_until(b'\n', &mut line)
                .unwrap();
            let request = decode_request(&line).unwrap();
            seen.push(request);
            (&stream)
                .write_all(&encode_reply(&replies(request)).unwrap())
                .unwrap();
        }
        seen
    })
}

fn canned(request: CtlRequest) -> CtlReply {
    match request {
        CtlRequest::Status => CtlReply::Status(StatusReply {
            node: 1,
            name: "n1".into(),
            fib_generation: 41,
            fib_publishes: 40,
            spf_runs: 9,
            last_spf_us: 120,
            ..StatusReply::default()
        }),
        CtlRequest::Nodes => CtlReply::Nodes(vec![
            NodeRow {
                node: 1,
                name: "n1".into(),
                reachable: true,
                incarnation: 0x1234,
                seq: 17,
                age_ms: 1500,
                links: vec![AdvertisedLink {
                    link: 0,
                    neighbour: 2,
                    up: true,
                    latency_us: 250,
                    loss_ppm: 0,
                    cost_us: 250,
                }],
            },
            NodeRow {
                node: 2,
                name: "n2".into(),
                reachable: false,
                ..NodeRow::default()
            },
        ]),
        CtlRequest::Routes => CtlReply::Routes(vec![RouteRow {
            destination: 2,
            name: "n2".into(),
            next_hop_node: Some(2),
            link: Some(0),
            metric_us: 250,
            path: vec![1, 2],
        }]),
        CtlRequest::Groups | CtlRequest::Group(_) => CtlReply::error("no group state"),
    }
}

#[test]
fn show_nodes_and_routes_from_a_control_plane_or_none() {
    let dir = std::env::temp_dir().join(format!("weftctl-{}-ctl", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("overlay.toml");
    let socket = dir.join("n1.ctl");
    let text = std::fs::read_to_string(workspace().join("config/demo.toml"))
        .unwrap()
        .replace("/tmp/weft-demo/node1.ctl", socket.to_str().unwrap());
    std::fs::write(&config, text).unwrap();
    let args = |show: &'static str| {
        vec![
            "--config".to_owned(),
            config.to_str().unwrap().to_owned(),
            "--id".to_owned(),
            "1".to_owned(),
            "show".to_owned(),
            show.to_owned(),
        ]
    };
    let run = |args: Vec<String>| weftctl(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // No control plane: a clear error naming the socket, exit 1.
    let out = run(args("nodes"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the control plane is not running"), "{err}");
    assert!(err.contains(socket.to_str().unwrap()), "{err}");
    assert!(stdout(&out).is_empty());

    // A stub control plane: human, then JSON.
    let stub = stub_control_plane(&socket, 2, canned);
    let out = run(args("nodes"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("2 nodes in the link-state database"),
        "{text}"
    );
    assert!(text.contains("0x00001234"), "{text}");
    assert!(
        text.lines().any(|l| l.contains("2 n2") && l.contains("up")),
        "{text}"
    );
    let mut json_args = args("nodes");
    json_args.push("--json".into());
    let out = run(json_args);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["nodes"][0]["links"][0]["latency_us"], 250);
    assert_eq!(json["nodes"][1]["reachable"], false);
    assert_eq!(stub.join().unwrap(), [CtlRequest::Nodes, CtlRequest::Nodes]);

    // show routes asks for the routes and for the status line.
    std::fs::remove_file(&socket).unwrap();
    let stub = stub_control_plane(&socket, 2, canned);
    let text = String::from_utf8(run(args("routes")).stdout).unwrap();
    assert!(text.contains("FIB generation 41"), "{text}");
    assert!(text.contains("1 > 2"), "{text}");
    assert_eq!(
        stub.join().unwrap(),
        [CtlRequest::Routes, CtlRequest::Status]
    );

    // An error reply is an error, exit 1.
    std::fs::remove_file(&socket).unwrap();
    let stub = stub_control_plane(&socket, 1, |_| CtlReply::error("still starting"));
    let out = run(args("status"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("still starting"), "{}", stderr(&out));
    stub.join().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
