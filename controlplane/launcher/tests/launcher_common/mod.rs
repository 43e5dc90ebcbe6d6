//! Helpers for `real_launcher.rs`: a per-test scene (temp dir, config on a unique loopback
//! address, shm name, stand-in scripts) and a guard around a running `weft` launcher that
//! collects its output lines and kills what it started.
//!
//! The test process makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), so the launcher's
//! children are reparented to it when the launcher dies. That lets a test reap them and see how
//! they ended (killed by SIGKILL, for the parent-death signal), independently of what PID 1
//! does with orphans.

#![allow(dead_code, reason = "each test uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests unwrap to fail loudly"
)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The `weft` binary under test.
pub(crate) const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// The real data plane, built next to `weft` (`cargo build -p weft-dataplane`).
pub(crate) fn dataplane_bin() -> PathBuf {
    let p = Path::new(WEFT).parent().unwrap().join("weft-dataplane");
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build -p weft-dataplane`",
        p.display()
    );
    p
}

/// A test's own directory, config and stand-in scripts.
pub(crate) struct Scene {
    /// The test's name.
    pub(crate) name: String,
    /// Its temporary directory (sockets, scripts, marker files).
    pub(crate) dir: PathBuf,
    /// The config file.
    pub(crate) config: PathBuf,
    /// The last octet of node 1's address, 127.0.91.<octet>.
    pub(crate) octet: u8,
}

impl Scene {
    /// A fresh directory and a one-node config (node 1 at 127.0.91.`octet`:7001).
    pub(crate) fn new(name: &str, octet: u8) -> Scene {
        // Orphans of the launcher come to this process, which reaps them in `wait_dead`.
        nix::sys::prctl::set_child_subreaper(true).unwrap();
        let dir = std::env::temp_dir().join(format!("weft-l-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let scene = Scene {
            name: name.to_owned(),
            config: dir.join("overlay.toml"),
            dir,
            octet,
        };
        scene.write_config(&format!("127.0.91.{octet}:7001"));
        scene
    }

    /// Rewrites the config with node 1's interface at `addr`.
    pub(crate) fn write_config(&self, addr: &str) {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "schema = 1\n[overlay]\nname = \"{name}\"\n[[node]]\nid = 1\nname = \"n1\"\n\
             session_socket = \"{dir}/n1.sock\"\nctl_socket = \"{dir}/n1.ctl\"\n\
             shm_name = \"{shm}\"\n[[node.interface]]\nisp = \"a\"\naddr = \"{addr}\"",
            name = self.name,
            dir = self.dir.display(),
            shm = self.shm_name(),
        );
        std::fs::write(&self.config, s).unwrap();
    }

    /// Node 1's shm name.
    pub(crate) fn shm_name(&self) -> String {
        format!("weft-ltest-{}-{}", std::process::id(), self.name)
    }

    /// Node 1's session socket.
    pub(crate) fn session(&self) -> PathBuf {
        self.dir.join("n1.sock")
    }

    /// Node 1's attach socket.
    pub(crate) fn attach(&self) -> PathBuf {
        self.dir.join("n1.sock.attach")
    }

    /// Node 1's ctl socket.
    pub(crate) fn ctl(&self) -> PathBuf {
        self.dir.join("n1.ctl")
    }

    /// Writes an executable `/bin/sh` script `name` with `body`.
    pub(crate) fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A stand-in control plane that prints its pid and arguments and then sleeps.
    pub(crate) fn sleeper(&self) -> PathBuf {
        self.script(
            "controld-sleeper",
            "echo \"stand-in pid $$ args: $*\"\necho \"stand-in stderr line\" >&2\nexec sleep 3600",
        )
    }

    /// Starts `weft node --config <config> --id 1` with `extra` arguments.
    pub(crate) fn launch(&self, extra: &[&str]) -> Launcher {
        self.launch_with(Path::new(WEFT), &["--id", "1"], extra)
    }

    /// Starts `bin node --config <config>` with `id_args` and `extra`, with `$WEFT_BIN_DIR`
    /// cleared.
    pub(crate) fn launch_with(&self, bin: &Path, id_args: &[&str], extra: &[&str]) -> Launcher {
        let mut child = Command::new(bin)
            .arg("node")
            .arg("--config")
            .arg(&self.config)
            .args(id_args)
            .args(extra)
            .env_remove("WEFT_BIN_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let shared = Arc::new(Shared::default());
        let readers = [
            reader(child.stdout.take().unwrap(), "out", shared.clone()),
            reader(child.stderr.take().unwrap(), "err", shared.clone()),
        ];
        Launcher {
            child: Some(child),
            shared,
            readers: readers.into_iter().collect(),
            dir: self.dir.clone(),
        }
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(Path::new("/dev/shm").join(self.shm_name()));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Default)]
struct Shared {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

fn reader(
    stream: impl Read + Send + 'static,
    tag: &'static str,
    shared: Arc<Shared>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut buf = Vec::new();
        while let Ok(n) = r.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
            buf.clear();
            shared.lines.lock().unwrap().push(format!("{tag}: {line}"));
            shared.changed.notify_all();
        }
    })
}

/// A running `weft` launcher; SIGKILLs it (and, as a backstop, what it reported starting) on
/// drop, and prints its output if the test failed.
pub(crate) struct Launcher {
    child: Option<Child>,
    shared: Arc<Shared>,
    readers: Vec<std::thread::JoinHandle<()>>,
    dir: PathBuf,
}

impl Launcher {
    /// The launcher's pid.
    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    /// Every output line so far, as `out: ...` (stdout) or `err: ...` (stderr).
    pub(crate) fn lines(&self) -> Vec<String> {
        self.shared.lines.lock().unwrap().clone()
    }

    /// The output so far as one text, for failure messages.
    pub(crate) fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// The number of lines that contain `needle`.
    pub(crate) fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits up to `timeout` for a line for which `f` holds; returns it.
    pub(crate) fn wait_line(&self, timeout: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut lines = self.shared.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| f(l)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no matching line within {timeout:?}:\n{}",
                lines.join("\n")
            );
            lines = self.shared.changed.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Waits for the `weft node 1 running (...)` line; returns (dataplane pid, controld pid).
    pub(crate) fn wait_running(&self) -> (Pid, Pid) {
        let line = self.wait_line(Duration::from_secs(15), |l| {
            l.starts_with("out: weft node 1 running (")
        });
        let nums: Vec<i32> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        // "weft node 1 running (dataplane pid P, controld pid Q)"
        assert_eq!(nums.len(), 3, "{line}");
        (Pid::from_raw(nums[1]), Pid::from_raw(nums[2]))
    }

    /// Sends `sig` to the launcher.
    pub(crate) fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    /// Waits up to `timeout` for the launcher to exit; returns its status and how long it took.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let took = start.elapsed();
                // Let the readers take the last lines (the pipes close once the launcher and its
                // children are gone); bounded, in case a child outlived it.
                let until = Instant::now() + Duration::from_secs(2);
                while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return (status, took);
            }
            assert!(
                start.elapsed() < timeout,
                "the launcher did not exit within {timeout:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every pid the launcher reported (`pid N` in its lines).
    fn reported_pids(&self) -> Vec<Pid> {
        let mut pids = Vec::new();
        for l in self.lines() {
            let mut rest = l.as_str();
            while let Some(i) = rest.find("pid ") {
                rest = &rest[i + 4..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(p) = digits.parse() {
                    pids.push(Pid::from_raw(p));
                }
            }
        }
        pids
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- launcher output ---\n{}", self.text());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Backstop, should the parent-death signal not have worked: kill the pids it reported
        // that still run one of this test's commands.
        for pid in self.reported_pids() {
            if alive(pid) && runs_from(pid, &self.dir) {
                let _ = kill(pid, Signal::SIGKILL);
            }
            let _ = reap_within(pid, Duration::from_secs(2));
        }
    }
}

/// Whether `pid` runs a command that names `dir` (our config or a stand-in script) or is a
/// stand-in's `sleep 3600`.
fn runs_from(pid: Pid, dir: &Path) -> bool {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
    cmd.contains(&*dir.to_string_lossy()) || cmd.trim() == "sleep 3600"
}

/// Whether `pid` exists and is not a zombie.
pub(crate) fn alive(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: "pid (comm) S ...".
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Waits up to `timeout` for `pid` to be gone; reaps it if it is our child (as a subreaper) and
/// returns how it ended then.
pub(crate) fn wait_dead(pid: Pid, timeout: Duration) -> Option<WaitStatus> {
    match reap_within(pid, timeout) {
        Ok(status) => status,
        Err(()) => panic!("pid {pid} still alive after {timeout:?}"),
    }
}

/// [`wait_dead`] without the panic: `Err` if `pid` still runs after `timeout`.
fn reap_within(pid: Pid, timeout: Duration) -> Result<Option<WaitStatus>, ()> {
    let deadline = Instant::now() + timeout;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => return Ok(Some(status)),
            // Not our child: it is someone else's to reap.
            Err(_) if !alive(pid) => return Ok(None),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
