//! `weft gateway` on real processes: an unmodified application's UDP stream (synthetic
//! MPEG-TS, 7 × 188 B per datagram, as ffmpeg sends it with `pkt_size=1316`) crosses a 4-node
//! overlay from an ingress gateway on node 1 to an egress gateway on node 4:
//!
//! ```text
//!                      2
//!  UDP -> ingress  1 <   > 4  egress -> UDP      links 1-2 and 2-4 cost 10 ms, 1-3 and 3-4
//!                      3                          20 ms: the route from 1 to 4 is 1-2-4
//! ```
//!
//! - every datagram arrives unchanged, in order, none lost or duplicated, and the TS headers
//!   show no continuity-counter error; an oversize datagram is dropped and counted; the
//!   counters both gateways print on SIGTERM say the same;
//! - two mappings per process from TOML files carry two streams at once, one each way;
//! - bad options, no node, an address or port in use, a refused service and a node that goes
//!   away end the gateway with status 1 and a message that says what is wrong.
//!
//! Gateways are `weft gateway` child processes; each test uses its own loopback block
//! (`127.A.B.x`, hosts 100 and up for the applications' UDP sockets).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::io::{BufRead as _, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use weft_tests::overlay::{Addrs, LinkSpec, Overlay, Role, Start, bin_dir};

/// Bytes of one MPEG-TS packet.
const TS_PACKET: usize = 188;
/// TS packets per datagram, as ffmpeg's `pkt_size=1316` sends them.
const TS_PER_DATAGRAM: usize = 7;
/// Bytes of one datagram.
const DATAGRAM: usize = TS_PACKET * TS_PER_DATAGRAM;

fn diamond(name: &str) -> Overlay {
    let link = |id, a, b, cost_us| LinkSpec { id, a, b, cost_us };
    let links = [
        link(0, 1, 2, 10_000),
        link(1, 1, 3, 20_000),
        link(2, 2, 4, 10_000),
        link(3, 3, 4, 20_000),
    ];
    let o = Overlay::start(name, 4, &links, Start::Separate);
    o.wait_converged(Duration::from_secs(15));
    o
}

// ---------------------------------------------------------------------------------------------
// A synthetic MPEG-TS stream

/// Makes datagrams of 7 TS packets of one PID: sync byte 0x47, the PID, payload only, a 4-bit
/// continuity counter that grows by one per packet, and a payload that numbers the datagram
/// and fills the rest from a fixed-seed generator (so any change to a byte is seen).
struct TsStream {
    pid: u16,
    cc: u8,
    rng: u64,
    index: u64,
}

impl TsStream {
    fn new(pid: u16, seed: u64) -> TsStream {
        TsStream {
            pid,
            cc: 0,
            rng: seed | 1,
            index: 0,
        }
    }

    fn next_datagram(&mut self) -> Vec<u8> {
        let mut d = Vec::with_capacity(DATAGRAM);
        for k in 0..TS_PER_DATAGRAM {
            let start = u8::from(k == 0);
            d.push(0x47);
            d.push((start << 6) | ((self.pid >> 8) as u8 & 0x1f));
            d.push(self.pid as u8);
            d.push(0x10 | self.cc); // no scrambling, payload only, continuity counter
            self.cc = (self.cc + 1) & 0x0f;
            let mut payload = [0u8; TS_PACKET - 4];
            payload[..8].copy_from_slice(&self.index.to_be_bytes());
            for b in &mut payload[8..] {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                *b = self.rng as u8;
            }
            d.extend_from_slice(&payload);
        }
        self.index += 1;
        d
    }

    fn datagrams(pid: u16, seed: u64, count: usize) -> Vec<Vec<u8>> {
        let mut s = TsStream::new(pid, seed);
        (0..count).map(|_| s.next_datagram()).collect()
    }
}

/// Parses the TS headers of `datagrams` as a receiver would: counts packets without the sync
/// byte, of another PID, or whose continuity counter does not follow the one before.
fn ts_errors(datagrams: &[Vec<u8>], pid: u16) -> (usize, usize) {
    let mut bad_headers = 0;
    let mut cc_errors = 0;
    let mut last_cc: Option<u8> = None;
    for d in datagrams {
        if d.len() % TS_PACKET != 0 {
            bad_headers += 1;
            continue;
        }
        for p in d.chunks(TS_PACKET) {
            let p_pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
            if p[0] != 0x47 || p_pid != pid {
                bad_headers += 1;
                continue;
            }
            let cc = p[3] & 0x0f;
            if last_cc.is_some_and(|l| (l + 1) & 0x0f != cc) {
                cc_errors += 1;
            }
            last_cc = Some(cc);
        }
    }
    (bad_headers, cc_errors)
}

#[test]
fn the_ts_generator_and_checker_agree() {
    let mut s = TsStream::datagrams(0x100, 7, 40);
    assert!(s.iter().all(|d| d.len() == DATAGRAM));
    assert_eq!(ts_errors(&s, 0x100), (0, 0));
    assert_eq!(ts_errors(&s, 0x101), (280, 0), "another PID");
    s.remove(3);
    assert_eq!(
        ts_errors(&s, 0x100),
        (0, 1),
        "a lost datagram breaks the counter"
    );
    s.swap(5, 6);
    assert_eq!(
        ts_errors(&s, 0x100).1,
        1 + 3,
        "so do reordered ones, at three boundaries"
    );
}

/// Sends `datagrams` from a fresh socket to `to`, paced at `rate` per second.
fn send_paced(to: SocketAddr, datagrams: &[Vec<u8>], rate: u64) {
    let from = UdpSocket::bind((to.ip(), 0)).unwrap();
    let start = Instant::now();
    for (i, d) in datagrams.iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        assert_eq!(from.send_to(d, to).unwrap(), d.len());
    }
}

/// Receives on `sink` in a thread until `count` datagrams came or nothing came for `idle`.
fn receive(sink: UdpSocket, count: usize, idle: Duration) -> JoinHandle<Vec<Vec<u8>>> {
    std::thread::spawn(move || {
        sink.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let mut last = Instant::now();
        while got.len() < count && last.elapsed() < idle {
            if let Ok(n) = sink.recv(&mut buf) {
                got.push(buf[..n].to_vec());
                last = Instant::now();
            }
        }
        got
    })
}

/// Checks that `got` is exactly `sent` (same datagrams, same bytes, same order) and that its
/// TS headers parse without errors; on a mismatch, says where.
fn assert_same_stream(what: &str, sent: &[Vec<u8>], got: &[Vec<u8>], pid: u16) {
    if let Some(i) = (0..sent.len().min(got.len())).find(|&i| sent[i] != got[i]) {
        let index =
            |d: &[u8]| u64::from_be_bytes(d.get(4..12).unwrap_or(&[0; 8]).try_into().unwrap());
        panic!(
            "{what}: datagram {i} differs (sent #{}, got #{} of {} B)",
            index(&sent[i]),
            index(&got[i]),
            got[i].len()
        );
    }
    assert_eq!(got.len(), sent.len(), "{what}: datagrams received");
    assert_eq!(
        ts_errors(got, pid),
        (0, 0),
        "{what}: TS header and continuity errors"
    );
}

// ---------------------------------------------------------------------------------------------
// `weft gateway` processes

/// A `weft gateway` child process, with its output collected by two threads. Dropping it
/// kills the process.
struct GatewayProc {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(from: impl Read + Send + 'static, into: &Arc<Mutex<String>>) -> JoinHandle<()> {
    let into = Arc::clone(into);
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    })
}

impl GatewayProc {
    fn start(args: &[String]) -> GatewayProc {
        let mut child = Command::new(bin_dir().join("weft"))
            .arg("gateway")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting weft gateway: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), &stdout),
            collect(child.stderr.take().unwrap(), &stderr),
        ];
        GatewayProc {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until `mappings` lines say `ready`, and returns them; panics if the process
    /// exits first or takes over 10 s.
    fn wait_ready(&mut self, mappings: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let err = self.stderr();
            let ready: Vec<String> = err
                .lines()
                .filter(|l| l.ends_with(": ready"))
                .map(str::to_owned)
                .collect();
            if ready.len() >= mappings {
                return ready;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("weft gateway exited before it was ready ({status}):\n{err}");
            }
            assert!(Instant::now() < deadline, "weft gateway not ready:\n{err}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `within` for the process to exit on its own; returns its exit code and
    /// output.
    fn wait_exit(mut self, within: Duration) -> (i32, String, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "weft gateway did not exit within {within:?}:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let out = self.stdout.lock().unwrap().clone();
        (status.code().unwrap_or(-1), out, self.stderr())
    }

    /// SIGTERM, then waits for the exit: (exit code, stdout, stderr).
    fn stop(self) -> (i32, String, String) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(10))
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `weft gateway ARGS` to its end (at most 15 s): (exit code, stdout, stderr).
fn run_gateway(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    GatewayProc::start(&args).wait_exit(Duration::from_secs(15))
}

/// The final JSON counters of the mapping whose label starts with `prefix`.
fn final_counters(stdout: &str, prefix: &str) -> Value {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["final"] == true && v["mapping"].as_str().is_some_and(|m| m.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no final counters for {prefix:?} in:\n{stdout}"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

// ---------------------------------------------------------------------------------------------
// The tests

/// Datagrams of the main stream, and their rate: 2,400 at 400/s (6 s, 4.2 Mbit/s).
const COUNT: usize = 2_400;
const RATE: u64 = 400;

#[test]
fn an_mpeg_ts_stream_crosses_the_overlay_unchanged_and_in_order() {
    let name = "gw-ts";
    let o = diamond(name);
    let addrs = Addrs::new(name);
    let player = addrs.host(0, 100, 6000);
    let listen = addrs.host(0, 101, 5000);
    let sink = UdpSocket::bind(player).unwrap();

    let mut egress = GatewayProc::start(&strings(&[
        "--socket",
        &path(&o.session_socket(4)),
        "--port",
        "5000",
        "--deliver",
        &player.to_string(),
        "--json",
    ]));
    egress.wait_ready(1);
    let mut ingress = GatewayProc::start(&strings(&[
        "--socket",
        &path(&o.session_socket(1)),
        "--listen",
        &listen.to_string(),
        "--to",
        "4:5000",
        "--service",
        "best-effort",
        "--json",
    ]));
    let ready = ingress.wait_ready(1).join("\n");
    eprintln!("{ready}");
    // "... at most N B per datagram)": the node's payload limit, which 1,316 B must fit.
    let max_payload: usize = ready
        .split("at most ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no payload limit in {ready:?}"));
    assert!(max_payload >= DATAGRAM, "{ready}");

    let stream = TsStream::datagrams(0x100, 42, COUNT);
    let receiver = receive(sink, COUNT, Duration::from_secs(5));
    // One datagram over the limit first: dropped and counted, the stream unharmed.
    let src = UdpSocket::bind((listen.ip(), 0)).unwrap();
    src.send_to(&vec![0x47; max_payload + 1], listen).unwrap();
    let started = Instant::now();
    send_paced(listen, &stream, RATE);
    let sent_in = started.elapsed();
    let got = receiver.join().unwrap();
    eprintln!(
        "sent {COUNT} datagrams in {sent_in:?} ({RATE}/s), received {}",
        got.len()
    );
    assert_same_stream("node 1 -> node 4", &stream, &got, 0x100);

    let (code, out, err) = ingress.stop();
    assert_eq!(code, 0, "ingress exit status; stderr:\n{err}");
    assert!(err.contains("stopping on SIGTERM"), "{err}");
    assert!(
        err.contains(&format!("dropped a datagram of {} B", max_payload + 1)),
        "the oversize datagram is warned about:\n{err}"
    );
    let i = final_counters(&out, "ingress");
    eprintln!("ingress: {i}");
    assert_eq!(i["role"], "ingress");
    assert_eq!(i["received"], COUNT as u64 + 1);
    assert_eq!(i["dropped_oversize"], 1);
    assert_eq!(i["sent"], COUNT as u64);
    assert_eq!(i["dropped_queue_full"], 0);
    assert_eq!(i["dropped_at_stop"], 0);
    assert_eq!(i["node_dropped"], 0);

    let (code, out, err) = egress.stop();
    assert_eq!(code, 0, "egress exit status; stderr:\n{err}");
    let e = final_counters(&out, "egress");
    eprintln!("egress: {e}");
    assert_eq!(e["delivered"], COUNT as u64);
    assert_eq!(e["delivered_bytes"], (COUNT * DATAGRAM) as u64);
    assert_eq!(e["sent"], COUNT as u64);
    assert_eq!(e["streams"], 1);
    assert_eq!((e["gaps"].clone(), e["late"].clone()), (0.into(), 0.into()));
    assert_eq!(e["send_errors"], 0);
}

#[test]
fn two_streams_cross_at_once_one_each_way_from_config_files() {
    let name = "gw-two";
    let o = diamond(name);
    let addrs = Addrs::new(name);
    // Stream A: node 1 -> node 4 (overlay port 5001); stream B: node 4 -> node 1 (5002).
    let (listen_a, player_a) = (addrs.host(0, 101, 5001), addrs.host(0, 100, 6001));
    let (listen_b, player_b) = (addrs.host(0, 104, 5002), addrs.host(0, 103, 6002));
    let sink_a = UdpSocket::bind(player_a).unwrap();
    let sink_b = UdpSocket::bind(player_b).unwrap();
    let write = |node: u16, text: String| -> PathBuf {
        let file = o.dir.join(format!("gateway-n{node}.toml"));
        std::fs::write(&file, text).unwrap();
        file
    };
    let n1 = write(
        1,
        format!(
            "socket = {:?}\n\
             [[ingress]]\nlisten = \"{listen_a}\"\nto = \"4:5001\"\nservice = \"best-effort\"\n\
             [[egress]]\nport = 5002\ndeliver = \"{player_b}\"\n",
            path(&o.session_socket(1))
        ),
    );
    let n4 = write(
        4,
        format!(
            "[[egress]]\nport = 5001\ndeliver = \"{player_a}\"\n\
             [[ingress]]\nlisten = \"{listen_b}\"\nto = \"1:5002\"\n"
        ),
    );
    let mut g1 = GatewayProc::start(&strings(&[
        "--config",
        &path(&n1),
        "--json",
        "--stats-every-s",
        "1",
    ]));
    // Node 4's file names no socket: the command line's applies.
    let mut g4 = GatewayProc::start(&strings(&[
        "--config",
        &path(&n4),
        "--socket",
        &path(&o.session_socket(4)),
        "--json",
    ]));
    g1.wait_ready(2);
    g4.wait_ready(2);

    let count = 1_500;
    let stream_a = TsStream::datagrams(0x101, 1, count);
    let stream_b = TsStream::datagrams(0x102, 2, count);
    let recv_a = receive(sink_a, count, Duration::from_secs(5));
    let recv_b = receive(sink_b, count, Duration::from_secs(5));
    let b = stream_b.clone();
    let send_b = std::thread::spawn(move || send_paced(listen_b, &b, 300));
    send_paced(listen_a, &stream_a, 300);
    send_b.join().unwrap();
    assert_same_stream(
        "stream A, node 1 -> 4",
        &stream_a,
        &recv_a.join().unwrap(),
        0x101,
    );
    assert_same_stream(
        "stream B, node 4 -> 1",
        &stream_b,
        &recv_b.join().unwrap(),
        0x102,
    );

    let (code1, out1, err1) = g1.stop();
    let (code4, out4, err4) = g4.stop();
    assert_eq!(code1, 0, "{err1}");
    assert_eq!(code4, 0, "{err4}");
    // Node 1's process printed counters while it ran (every second), then the final ones.
    assert!(
        out1.lines().any(|l| l.contains("\"final\":false")),
        "periodic counters:\n{out1}"
    );
    for (out, ingress, egress) in [(&out1, "ingress", "egress"), (&out4, "ingress", "egress")] {
        let i = final_counters(out, ingress);
        let e = final_counters(out, egress);
        assert_eq!(i["sent"], count as u64, "{i}");
        assert_eq!(e["sent"], count as u64, "{e}");
        assert_eq!(e["gaps"], 0, "{e}");
    }
}

#[test]
fn bad_options_and_a_missing_node_fail_with_clear_errors() {
    let addrs = Addrs::new("gw-bad");
    let listen = addrs.host(0, 101, 5000).to_string();
    let dir = std::env::temp_dir().join(format!("weft-{}-gw-bad", std::process::id()));
    let socket = path(&dir.join("no-node.sock"));
    for (args, want) in [
        (
            vec!["--socket", &socket, "--listen", &listen, "--to", "4"],
            "--to: bad address \"4\": expected NODE:PORT",
        ),
        (
            vec!["--socket", &socket, "--listen", &listen, "--to", "0:5000"],
            "--to: bad address \"0:5000\"",
        ),
        (
            vec![
                "--socket",
                &socket,
                "--listen",
                "127.0.0.1",
                "--to",
                "4:5000",
            ],
            "--listen: bad UDP address \"127.0.0.1\"",
        ),
        (
            vec![
                "--socket",
                &socket,
                "--listen",
                &listen,
                "--to",
                "4:1",
                "--service",
                "fast",
            ],
            "--service: bad service \"fast\"",
        ),
        (
            vec![
                "--socket",
                &socket,
                "--port",
                "5000",
                "--deliver",
                "nowhere",
            ],
            "--deliver: bad UDP address",
        ),
        (
            vec!["--listen", &listen, "--to", "4:5000"],
            "--socket PATH is required",
        ),
        (
            vec!["--socket", &socket, "--listen", &listen, "--to", "4:5000"],
            "no Weft node is running at",
        ),
        (
            vec!["--socket", &socket, "--port", "5000", "--deliver", &listen],
            "no Weft node is running at",
        ),
    ] {
        let (code, _, err) = run_gateway(&args);
        eprint!("{err}");
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in:\n{err}");
        assert!(err.starts_with("weft: error: "), "{err}");
    }
    // A config file with a mistake names the file and the field.
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[[ingress]]\nlisten = \"127.0.0.1:1\"\nto = \"x\"\n").unwrap();
    let (code, _, err) = run_gateway(&["--socket", &socket, "--config", &path(&file)]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("bad.toml: ingress[0].to: bad address"),
        "{err}"
    );
}

#[test]
fn addresses_in_use_a_refused_service_and_a_lost_node_fail_cleanly() {
    let name = "gw-fail";
    let link = LinkSpec {
        id: 0,
        a: 1,
        b: 2,
        cost_us: 10_000,
    };
    let mut o = Overlay::start(name, 2, &[link], Start::Separate);
    o.wait_converged(Duration::from_secs(15));
    let addrs = Addrs::new(name);
    let (s1, s2) = (path(&o.session_socket(1)), path(&o.session_socket(2)));
    let player = addrs.host(0, 100, 6000).to_string();

    // A UDP address another program holds.
    let taken = UdpSocket::bind(addrs.host(0, 101, 5000)).unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run_gateway(&["--socket", &s1, "--listen", &taken_addr, "--to", "2:1"]);
    eprint!("{err}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot receive on UDP {taken_addr}: address in use"
        )),
        "{err}"
    );

    // An overlay port another client holds.
    let mut egress = GatewayProc::start(&strings(&[
        "--socket",
        &s2,
        "--port",
        "5000",
        "--deliver",
        &player,
    ]));
    egress.wait_ready(1);
    let (code, _, err) = run_gateway(&["--socket", &s2, "--port", "5000", "--deliver", &player]);
    eprint!("{err}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("binding overlay port 5000 on node 2: port 5000 is in use"),
        "{err}"
    );

    // The real-time service: passed to the node, which runs best effort only today and
    // refuses it with a clear error; once it runs it, the gateway starts.
    let listen = addrs.host(0, 102, 5000).to_string();
    let mut rt = GatewayProc::start(&strings(&[
        "--socket",
        &s1,
        "--listen",
        &listen,
        "--to",
        "2:5000",
        "--service",
        "realtime:150",
    ]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = rt.stderr();
        if err.contains(": ready") {
            assert!(err.contains("(realtime:150:3:2, from 1:"), "{err}");
            let (code, _, err) = rt.stop();
            assert_eq!(code, 0, "{err}");
            break;
        }
        if let Ok(Some(_)) = rt.child.try_wait() {
            let (code, _, err) = rt.wait_exit(Duration::from_secs(1));
            eprintln!("realtime today: {err}");
            assert_eq!(code, 1, "{err}");
            assert!(
                err.contains("opening a flow from 1:")
                    && err.contains("to 2:5000 with service realtime:150:3:2")
                    && err.contains("the node does not support this"),
                "{err}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "neither ready nor failed:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // The node under a running gateway goes away: the gateway says so, prints its counters
    // and exits 1.
    o.kill(2, Role::Dataplane, Signal::SIGKILL);
    let (code, out, err) = egress.wait_exit(Duration::from_secs(5));
    eprintln!("node gone: {err}{out}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error: egress overlay port 5000")
            && err.contains("receiving from the local node: disconnected"),
        "{err}"
    );
    assert!(
        out.contains("egress overlay port 5000 -> udp") && out.contains(": final: delivered=0"),
        "final counters as text:\n{out}"
    );
    drop(taken);
}
