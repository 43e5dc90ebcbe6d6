//! A `weft-linkem` process started by a test: the guard that stops it, and its control.
//!
//! Its stderr (start-up lines, every command and timeline action) goes to `<log>`, its stdout
//! (the final counters, one JSON line) to `<log>.stdout`. Dropping the guard sends SIGTERM and
//! reaps the process (SIGKILL after 5 s).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::linkem::control::{ControlError, request};

/// A running relay process.
pub struct LinkemProcess {
    child: Option<Child>,
    control: PathBuf,
    log: PathBuf,
}

impl LinkemProcess {
    /// Starts `bin relay ARGS --control CONTROL --realtime 10` with its output in `log` and
    /// waits (up to 10 s) until the control socket answers. Panics with the log if it exits or
    /// never answers. Real-time priority keeps its timing when tests share a busy host (where
    /// that is not permitted, the relay warns and runs normally).
    pub fn start(bin: &Path, args: &[String], control: &Path, log: &Path) -> LinkemProcess {
        let err = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let out_path = stdout_path(log);
        let out = std::fs::File::create(&out_path)
            .unwrap_or_else(|e| panic!("{}: {e}", out_path.display()));
        let child = Command::new(bin)
            .arg("relay")
            .args(args)
            .arg("--control")
            .arg(control)
            .args(["--realtime", "10"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut p = LinkemProcess {
            child: Some(child),
            control: control.to_owned(),
            log: log.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if request(control, "stats").is_ok() {
                return p;
            }
            if let Some(Ok(Some(status))) = p.child.as_mut().map(Child::try_wait) {
                p.child = None;
                panic!("weft-linkem exited at start-up ({status}):\n{}", p.log());
            }
            assert!(
                Instant::now() < deadline,
                "weft-linkem did not come up:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The CPU time it has used so far (user + system, from `/proc`), if it runs.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // `/proc` counts in USER_HZ, which Linux fixes at 100 for user space.
        Some(Duration::from_millis(ticks * 10))
    }

    /// The control socket.
    pub fn control(&self) -> &Path {
        &self.control
    }

    /// Sends one command line; the reply, or why it failed.
    pub fn ctl(&self, line: &str) -> Result<Value, ControlError> {
        request(&self.control, line)
    }

    /// Sends one command line; panics (with the log) if it is refused.
    pub fn must(&self, line: &str) -> Value {
        self.ctl(line)
            .unwrap_or_else(|e| panic!("weft-linkem `{line}`: {e}\n{}", self.log()))
    }

    /// The `stats` reply.
    pub fn stats(&self) -> Value {
        self.must("stats")
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it with SIGTERM and returns its exit code and the final counters it printed.
    pub fn stop(mut self) -> (Option<i32>, Option<Value>) {
        let code = self.terminate();
        (code, self.final_stats())
    }

    /// Waits up to `within` for it to exit by itself (a `quit` command or timeline entry);
    /// its exit code (`None` if it is still running, or was killed by a signal).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The final counters it printed on stdout when it exited, if it has.
    pub fn final_stats(&self) -> Option<Value> {
        let out = std::fs::read_to_string(stdout_path(&self.log)).unwrap_or_default();
        out.lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
    }

    fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for LinkemProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn stdout_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".stdout");
    PathBuf::from(s)
}
