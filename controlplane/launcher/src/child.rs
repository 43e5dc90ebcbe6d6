//! Starting, watching and reaping the node's two child processes.
//!
//! Each child is started with:
//!
//! - **an empty signal mask.** The launcher blocks SIGINT, SIGTERM and SIGCHLD to read them from
//!   a signalfd, and a blocked mask survives `exec`; a child that inherited it could not be
//!   stopped with SIGTERM.
//! - **`PR_SET_PDEATHSIG(SIGKILL)`.** When the launcher dies, even by SIGKILL, the kernel kills
//!   its children, so killing the launcher kills the whole node. The signal is tied to the
//!   *thread* that forked, so every child is spawned from the launcher's main (only) thread. If
//!   the launcher died between `fork` and the `prctl`, the child notices that its parent changed
//!   and fails instead of running on as an orphan.
//! - **piped stdout and stderr**, forwarded line by line with a prefix (`output.rs`).
//!
//! Children stay in the launcher's process group, so a terminal's Ctrl-C reaches all three; the
//! launcher then finds both children stopping on their own and only reaps them.

#![allow(
    unsafe_code,
    reason = "CommandExt::pre_exec sets the signal mask and the parent-death signal in the child"
)]

use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::unistd::{Pid, getpid, getppid};

use crate::error::LaunchError;
use crate::output::{LinePipe, Stream};

/// Which of the node's processes a child is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// `weft-dataplane`.
    Dataplane,
    /// `weft-controld`.
    Controld,
}

impl Role {
    /// The binary's file name.
    pub(crate) fn binary(self) -> &'static str {
        match self {
            Role::Dataplane => "weft-dataplane",
            Role::Controld => "weft-controld",
        }
    }

    /// The prefix of its forwarded output lines.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Role::Dataplane => "dataplane",
            Role::Controld => "controld",
        }
    }

    /// Its name in log lines.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Role::Dataplane => "data plane",
            Role::Controld => "controld",
        }
    }
}

/// A started child (of either [`Role`]): its process, its output pipes and, once reaped, how it ended.
#[derive(Debug)]
pub(crate) struct Proc {
    child: Child,
    pid: Pid,
    started: Instant,
    pipes: Vec<LinePipe>,
    /// How it ended (see [`describe`]), once reaped.
    exit: Option<String>,
}

impl Proc {
    /// Starts `bin` with `args` as `role`. Must be called on the launcher's main thread (see the
    /// module doc on `PR_SET_PDEATHSIG`).
    pub(crate) fn spawn(role: Role, bin: &Path, args: &[OsString]) -> Result<Proc, LaunchError> {
        let spawn_err = |source: io::Error| LaunchError::Spawn {
            what: role.binary(),
            path: bin.to_path_buf(),
            source,
        };
        let launcher = getpid();
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before `exec`, where only
        // async-signal-safe calls are allowed. It calls `sigprocmask`, `prctl` and `getppid`
        // (all async-signal-safe system calls), builds an empty `SigSet` on the stack
        // (`sigemptyset`), and returns errors made from an errno without allocating. It touches
        // no lock and no memory shared with the parent.
        unsafe {
            cmd.pre_exec(move || {
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
                prctl::set_pdeathsig(Signal::SIGKILL)?;
                if getppid() != launcher {
                    // The launcher died before the prctl took effect: do not run orphaned.
                    return Err(io::Error::from(Errno::ESRCH));
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let pid = Pid::from_raw(child.id() as i32);
        let mut pipes = Vec::with_capacity(2);
        let sys = |source| LaunchError::Sys {
            what: "making a child's output pipe non-blocking",
            source,
        };
        if let Some(out) = child.stdout.take() {
            pipes.push(LinePipe::new(out.into(), role.prefix(), Stream::Stdout).map_err(sys)?);
        }
        if let Some(err) = child.stderr.take() {
            pipes.push(LinePipe::new(err.into(), role.prefix(), Stream::Stderr).map_err(sys)?);
        }
        Ok(Proc {
            child,
            pid,
            started: Instant::now(),
            pipes,
            exit: None,
        })
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// When it was started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Whether it has not been reaped yet.
    pub(crate) fn is_running(&self) -> bool {
        self.exit.is_none()
    }

    /// Its open output pipes, for `poll`.
    pub(crate) fn pipes(&self) -> impl Iterator<Item = &LinePipe> {
        self.pipes.iter()
    }

    /// Forwards the output it has written so far; `seen` sees every line.
    pub(crate) fn forward_output(&mut self, seen: &mut dyn FnMut(&[u8])) {
        self.pipes.retain_mut(|p| p.read_available(seen));
    }

    /// Reaps it if it has exited; returns how it ended (a phrase, see [`describe`]) the first
    /// time only. Its remaining output is forwarded and its pipes closed then, so a grandchild
    /// that kept them open cannot make the launcher hold them forever.
    pub(crate) fn try_reap(&mut self, seen: &mut dyn FnMut(&[u8])) -> Option<String> {
        if self.exit.is_some() {
            return None;
        }
        let how = match self.child.try_wait() {
            Ok(Some(status)) => describe(status),
            Ok(None) => return None,
            // ECHILD (someone set SIGCHLD to SIG_IGN, so the kernel reaped it) or worse: it
            // cannot be waited for any more, so it counts as gone.
            Err(e) => format!("could not be waited for ({e})"),
        };
        for pipe in self.pipes.drain(..) {
            pipe.drain(seen);
        }
        self.exit = Some(how.clone());
        Some(how)
    }

    /// Sends `signal` unless it was reaped already (so a reused pid is never signalled).
    pub(crate) fn signal(&self, signal: Signal) {
        if self.exit.is_none() {
            let _ = kill(self.pid, signal);
        }
    }

    /// SIGKILLs it and waits for it (SIGKILL cannot be ignored, so this is short).
    pub(crate) fn kill_and_reap(&mut self, seen: &mut dyn FnMut(&[u8])) -> Option<String> {
        self.signal(Signal::SIGKILL);
        if self.exit.is_none() {
            let _ = self.child.wait();
        }
        self.try_reap(seen)
    }
}

/// How a process ended, as a phrase: `exited with status 1`, `was killed by signal SIGKILL`.
pub(crate) fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = Signal::try_from(sig).map_or_else(|_| sig.to_string(), |s| s.to_string());
            let core = if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            };
            format!("was killed by signal {name}{core}")
        }
        None => format!("ended ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_read_as_phrases() {
        assert_eq!(describe(ExitStatus::from_raw(0)), "exited with status 0");
        assert_eq!(
            describe(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(9)),
            "was killed by signal SIGKILL"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(11 | 0x80)),
            "was killed by signal SIGSEGV (core dumped)"
        );
    }
}
