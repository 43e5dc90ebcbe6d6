//! The supervisor: one thread, one `poll` loop over a signalfd and the children's output pipes.
//!
//! ```text
//!  start ──► data plane spawned ──"node N up"──► controld spawned ──► running
//!               │  exits / times out                                    │
//!               ▼                                                       │ controld exits:
//!           error (exit 1)                      restart after backoff ◄─┘
//!                                               data plane exits: stop controld, error (exit 1)
//!                                               SIGINT/SIGTERM: stop controld, then the data
//!                                               plane; exit 0
//! ```
//!
//! The loop sleeps in `poll` until a signal (SIGINT, SIGTERM, SIGCHLD, read from a signalfd), a
//! line of output or the next deadline (the data plane's start-up timeout, a pending restart, a
//! stop grace period). After every wake-up it forwards output and tries to reap both children,
//! so a coalesced SIGCHLD loses nothing. It never spins: with nothing to do it blocks.
//!
//! **Stopping** (a signal, an error, or the data plane gone): controld gets SIGTERM first and
//! `stop_timeout` to exit, then SIGKILL; then the data plane the same way, so the control plane
//! never sees its data plane vanish under it. A second SIGINT or SIGTERM while stopping kills
//! what is left at once. Both children are always reaped before the launcher returns, and
//! socket files left behind by a killed child are removed.

use std::io::Write as _;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use weft_shared::ids::NodeId;

use crate::backoff::{Backoff, HEALTHY_AFTER};
use crate::child::{Proc, Role};
use crate::error::LaunchError;
use crate::node::NodePlan;
use crate::output::is_up_line;
use crate::{say, sockets};

/// The control plane's state between restarts.
#[derive(Debug)]
enum Controld {
    /// Not started yet (the data plane is starting).
    NotStarted,
    /// Running (or exited and not yet noticed).
    Running(Proc),
    /// Exited; to be restarted at this time.
    Waiting(Instant),
}

/// What one wake-up brought.
#[derive(Debug, Default)]
struct Wake {
    /// SIGINT or SIGTERM arrived.
    stop: Option<Signal>,
    /// The data plane printed its `node N up` line.
    up: bool,
}

/// Runs `plan`'s node (see the module doc). The sockets were reclaimed by the caller.
pub(crate) fn run(plan: &NodePlan) -> Result<(), LaunchError> {
    let mut sup = Supervisor::new(plan)?;
    let result = sup.run();
    sup.stop_all();
    for path in plan.sockets() {
        if let Ok(true) = sockets::remove_if_stale(path, sockets::SETTLE) {
            sup.say(&format!("removed the stale socket {}", path.display()));
        }
    }
    if result.is_ok() {
        sup.say("stopped");
    }
    result
}

struct Supervisor<'a> {
    plan: &'a NodePlan,
    node: NodeId,
    signals: SignalFd,
    dataplane: Option<Proc>,
    controld: Controld,
    backoff: Backoff,
    /// A second stop signal arrived: kill instead of waiting.
    hurry: bool,
}

impl<'a> Supervisor<'a> {
    /// Blocks SIGINT, SIGTERM and SIGCHLD (before any child exists, so no exit is missed) and
    /// reads them from a signalfd from now on.
    fn new(plan: &'a NodePlan) -> Result<Supervisor<'a>, LaunchError> {
        let mut mask = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
            mask.add(s);
        }
        let sys = |what| move |source| LaunchError::Sys { what, source };
        mask.thread_block()
            .map_err(sys("blocking SIGINT, SIGTERM and SIGCHLD"))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(sys("creating a signalfd"))?;
        Ok(Supervisor {
            plan,
            node: plan.node,
            signals,
            dataplane: None,
            controld: Controld::NotStarted,
            backoff: Backoff::new(
                plan.restart_min_backoff,
                plan.restart_max_backoff,
                HEALTHY_AFTER,
            ),
            hurry: false,
        })
    }

    fn say(&self, msg: &str) {
        say(self.node, msg);
    }

    /// Start-up, then supervision until a stop signal (`Ok`) or the data plane's end (`Err`).
    fn run(&mut self) -> Result<(), LaunchError> {
        let plan = self.plan;
        let args = plan.child_args();
        let dataplane = Proc::spawn(Role::Dataplane, &plan.dataplane_bin, &args)?;
        self.say(&format!(
            "started {} (pid {}); waiting for \"node {} up\"",
            crate::bins::show_command(&plan.dataplane_bin, &args),
            dataplane.pid(),
            self.node
        ));
        let dataplane_pid = dataplane.pid();
        self.dataplane = Some(dataplane);

        let deadline = Instant::now() + plan.up_timeout;
        loop {
            let wake = self.wait(Some(deadline))?;
            if let Some(sig) = wake.stop {
                self.say(&format!("stopping on {sig} during start-up"));
                return Ok(());
            }
            if wake.up {
                break;
            }
            if let Some(how) = self.reap_dataplane() {
                return Err(LaunchError::DataplaneStartFailed {
                    node: self.node,
                    status: how,
                });
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::DataplaneUpTimeout {
                    node: self.node,
                    waited_ms: plan.up_timeout.as_millis() as u64,
                });
            }
        }

        let controld = self.spawn_controld()?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "weft node {} running (dataplane pid {dataplane_pid}, controld pid {})",
            self.node,
            controld.pid()
        );
        let _ = out.flush();
        drop(out);
        self.controld = Controld::Running(controld);
        self.supervise()
    }

    /// The running node: restarts controld when it exits, ends when the data plane does.
    fn supervise(&mut self) -> Result<(), LaunchError> {
        loop {
            let deadline = match self.controld {
                Controld::Waiting(at) => Some(at),
                _ => None,
            };
            let wake = self.wait(deadline)?;
            if let Some(sig) = wake.stop {
                self.say(&format!("stopping on {sig}"));
                return Ok(());
            }
            if let Some(how) = self.reap_dataplane() {
                self.say(&format!(
                    "the data plane {how}; stopping controld (restarting the node is left to \
                     the service manager)"
                ));
                return Err(LaunchError::DataplaneExited {
                    node: self.node,
                    status: how,
                });
            }
            self.on_controld_wake();
        }
    }

    /// Notices a controld exit (scheduling its restart) or a restart that is due.
    fn on_controld_wake(&mut self) {
        let now = Instant::now();
        match &mut self.controld {
            Controld::Running(p) => {
                let Some(how) = p.try_reap(&mut |_| {}) else {
                    return;
                };
                let ran = now.saturating_duration_since(p.started());
                let delay = self.backoff.on_exit(ran);
                let msg = format!(
                    "controld (pid {}) {how} after {} ms; restarting it in {} ms",
                    p.pid(),
                    ran.as_millis(),
                    delay.as_millis()
                );
                self.controld = Controld::Waiting(now + delay);
                self.say(&msg);
            }
            Controld::Waiting(at) if now >= *at => match self.spawn_controld() {
                Ok(p) => {
                    self.say(&format!("controld restarted (pid {})", p.pid()));
                    self.controld = Controld::Running(p);
                }
                Err(e) => {
                    let delay = self.backoff.on_exit(Duration::ZERO);
                    self.say(&format!("{e}; trying again in {} ms", delay.as_millis()));
                    self.controld = Controld::Waiting(now + delay);
                }
            },
            Controld::Waiting(_) | Controld::NotStarted => {}
        }
    }

    /// Starts controld, first removing a ctl socket its killed predecessor left behind.
    fn spawn_controld(&self) -> Result<Proc, LaunchError> {
        if let Ok(true) = sockets::remove_if_stale(&self.plan.ctl_socket, sockets::SETTLE) {
            self.say(&format!(
                "removed the stale socket {}",
                self.plan.ctl_socket.display()
            ));
        }
        Proc::spawn(
            Role::Controld,
            &self.plan.controld_bin,
            &self.plan.child_args(),
        )
    }

    /// Reaps the data plane if it exited; how it ended, the first time.
    fn reap_dataplane(&mut self) -> Option<String> {
        self.dataplane.as_mut()?.try_reap(&mut |_| {})
    }

    /// Sleeps until a signal, output or `deadline`; forwards output; reports stop signals and
    /// the data plane's `node N up` line. Children are reaped by the callers.
    fn wait(&mut self, deadline: Option<Instant>) -> Result<Wake, LaunchError> {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(at) => {
                // Round up, so that a wake-up never comes just before the deadline.
                let left = at.saturating_duration_since(Instant::now());
                let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128);
                PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        {
            let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            let procs = self.dataplane.iter().chain(match &self.controld {
                Controld::Running(p) => Some(p),
                _ => None,
            });
            for p in procs {
                fds.extend(
                    p.pipes()
                        .map(|pipe| PollFd::new(pipe.fd(), PollFlags::POLLIN)),
                );
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(source) => {
                    return Err(LaunchError::Sys {
                        what: "poll",
                        source,
                    });
                }
            }
        }
        let mut wake = Wake::default();
        // Drain every pending signal; SIGCHLD only wakes the loop.
        while let Ok(Some(info)) = self.signals.read_signal() {
            if let Ok(s @ (Signal::SIGINT | Signal::SIGTERM)) =
                Signal::try_from(info.ssi_signo as i32)
            {
                wake.stop = Some(s);
            }
        }
        let node = self.node;
        if let Some(p) = &mut self.dataplane {
            p.forward_output(&mut |line| wake.up |= is_up_line(line, node));
        }
        if let Controld::Running(p) = &mut self.controld {
            p.forward_output(&mut |_| {});
        }
        Ok(wake)
    }

    /// The child with `role`, if it was started (and not replaced by a restart since).
    fn proc_mut(&mut self, role: Role) -> Option<&mut Proc> {
        match role {
            Role::Dataplane => self.dataplane.as_mut(),
            Role::Controld => match &mut self.controld {
                Controld::Running(p) => Some(p),
                _ => None,
            },
        }
    }

    /// Stops and reaps both children: controld first, then the data plane.
    fn stop_all(&mut self) {
        self.stop(Role::Controld);
        self.stop(Role::Dataplane);
    }

    /// SIGTERM, up to `stop_timeout` for it to exit (forwarding output meanwhile), then SIGKILL.
    fn stop(&mut self, role: Role) {
        let node = self.node;
        let label = role.label();
        let (hurry, grace) = (self.hurry, self.plan.stop_timeout);
        let deadline = Instant::now() + grace;
        let Some(p) = self.proc_mut(role) else {
            return;
        };
        let pid = p.pid();
        if let Some(how) = p.try_reap(&mut |_| {}) {
            say(node, &format!("{label} (pid {pid}) {how}"));
            return;
        }
        if !p.is_running() {
            return;
        }
        if !hurry {
            say(node, &format!("stopping {label} (pid {pid})"));
            p.signal(Signal::SIGTERM);
        }
        while !self.hurry && Instant::now() < deadline {
            let Ok(wake) = self.wait(Some(deadline)) else {
                break;
            };
            if wake.stop.is_some() {
                say(node, "a second stop signal: killing what is left");
                self.hurry = true;
            }
            let Some(p) = self.proc_mut(role) else {
                return;
            };
            if let Some(how) = p.try_reap(&mut |_| {}) {
                say(node, &format!("{label} (pid {pid}) {how}"));
                return;
            }
        }
        if !self.hurry {
            say(
                node,
                &format!(
                    "{label} (pid {pid}) did not exit within {} ms of SIGTERM; killing it",
                    grace.as_millis()
                ),
            );
        }
        if let Some(how) = self
            .proc_mut(role)
            .and_then(|p| p.kill_and_reap(&mut |_| {}))
        {
            say(node, &format!("{label} (pid {pid}) {how}"));
        }
    }
}
