//! The running relay: one thread, one epoll set, one timerfd.
//!
//! Each path has two UDP sockets. A datagram arriving on the A-side socket is offered to the
//! path's A-to-B [`LinkModel`] at its arrival time (the monotonic clock, as a
//! [`weft_shared::time::Instant`]); if the model delivers it, it is held until the delivery
//! time and then sent from the B-side socket to node B (and the other way round). Held
//! datagrams wait in one heap ordered by delivery time; the timerfd is armed, with an absolute
//! deadline, for the earliest of them or the next timeline entry, so delivery is accurate to
//! the wakeup latency (tens of microseconds), not to a poll timeout's millisecond.
//!
//! Memory is bounded: at most `max_held` datagrams wait per direction (more are `held_drops`),
//! their buffers are reused, and the control socket has a bounded number of connections and
//! line length.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use serde_json::{Value, json};
use weft_shared::time::Instant;

use crate::linkem::command::{Command, Target};
use crate::linkem::config::{RelayConfig, dir_indices, direction_seed};
use crate::linkem::control::{ControlError, ControlServer};
use crate::linkem::stats::{DirCounters, dir_json};
use crate::linkmodel::{DropCause, LinkModel, Verdict};

/// Datagrams read from one socket per wakeup before the others get a turn.
const RECV_BATCH: usize = 64;

/// The socket buffer size asked for (the kernel may give less).
const SOCKET_BUFFER: usize = 4 << 20;

const TOKEN_TIMER: u64 = 0;
const TOKEN_SIGNAL: u64 = 1;
const TOKEN_LISTENER: u64 = 2;
const TOKEN_CONN: u64 = 16;
const TOKEN_SOCKET: u64 = 1 << 32;

/// Why the relay could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A path's socket could not be bound.
    #[error("path {path}: binding {side} {addr}: {source}")]
    Bind {
        /// The path.
        path: String,
        /// `a_side` or `b_side`.
        side: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The control socket.
    #[error("control socket: {0}")]
    Control(#[from] ControlError),
    /// An operating-system call that should not fail did.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: Errno,
    },
}

fn os(what: &'static str) -> impl FnOnce(Errno) -> RelayError {
    move |source| RelayError::Os { what, source }
}

/// The monotonic clock as an [`Instant`] (nanoseconds since boot, the timerfd's clock).
pub fn monotonic_now() -> Result<Instant, RelayError> {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_err(os("reading the monotonic clock"))?;
    let ns = (ts.tv_sec() as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec() as u64);
    Ok(Instant::from_nanos(ns))
}

/// Binds one side of a path, non-blocking, with large buffers, registered with `epoll`.
fn bind_side(
    epoll: &Epoll,
    path: &str,
    side: &'static str,
    addr: SocketAddr,
    token: u64,
) -> Result<(UdpSocket, SocketAddr), RelayError> {
    let bind_err = |source| RelayError::Bind {
        path: path.to_owned(),
        side,
        addr,
        source,
    };
    let s = UdpSocket::bind(addr).map_err(bind_err)?;
    s.set_nonblocking(true).map_err(bind_err)?;
    let local = s.local_addr().map_err(bind_err)?;
    // Best effort: a larger buffer absorbs bursts; the kernel caps it at its maximum.
    let _ = setsockopt(&s, sockopt::RcvBuf, &SOCKET_BUFFER);
    let _ = setsockopt(&s, sockopt::SndBuf, &SOCKET_BUFFER);
    epoll
        .add(s.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
        .map_err(os("epoll_ctl"))?;
    Ok((s, local))
}

/// A datagram waiting for its delivery time.
struct Held {
    at: Instant,
    seq: u64,
    path: usize,
    dir: usize,
    buf: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One direction at run time.
struct Direction {
    model: LinkModel,
    counters: DirCounters,
    held: usize,
}

/// One path at run time. Direction 0 enters on socket 0 (A side) and leaves from socket 1 to
/// `to[1]` (node B); direction 1 the other way.
struct PathRt {
    name: String,
    sockets: [UdpSocket; 2],
    local: [SocketAddr; 2],
    to: [SocketAddr; 2],
    dirs: [Direction; 2],
}

/// A relay with its sockets bound, ready to [`run`](Relay::run).
pub struct Relay {
    config: RelayConfig,
    paths: Vec<PathRt>,
    held: BinaryHeap<Reverse<Held>>,
    pool: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    seq: u64,
    started: Instant,
    next_entry: usize,
    epoll: Epoll,
    timer: TimerFd,
    armed: Option<Instant>,
    signals: Option<SignalFd>,
    control: Option<ControlServer>,
    quit: bool,
}

impl Relay {
    /// Binds every path's sockets and the control socket. With `signals`, SIGINT and SIGTERM
    /// are blocked and end [`run`](Relay::run) (call it from the main thread before others
    /// start).
    pub fn bind(config: RelayConfig, signals: bool) -> Result<Relay, RelayError> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(os("epoll_create"))?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(os("timerfd_create"))?;
        let readable = |token| EpollEvent::new(EpollFlags::EPOLLIN, token);
        epoll
            .add(timer.as_fd(), readable(TOKEN_TIMER))
            .map_err(os("epoll_ctl"))?;
        let mut paths = Vec::with_capacity(config.paths.len());
        for (i, p) in config.paths.iter().enumerate() {
            let token = |side: u64| TOKEN_SOCKET | (i as u64) << 1 | side;
            let (a, a_local) = bind_side(&epoll, &p.name, "a_side", p.a_side, token(0))?;
            let (b, b_local) = bind_side(&epoll, &p.name, "b_side", p.b_side, token(1))?;
            let dir = |d: usize| Direction {
                model: LinkModel::new(p.params[d], direction_seed(config.seed, i, d)),
                counters: DirCounters::default(),
                held: 0,
            };
            paths.push(PathRt {
                name: p.name.clone(),
                sockets: [a, b],
                local: [a_local, b_local],
                to: [p.to_a, p.to_b],
                dirs: [dir(0), dir(1)],
            });
        }
        let control = match &config.control {
            Some(path) => {
                let server = ControlServer::bind(path)?;
                epoll
                    .add(server.listener().as_fd(), readable(TOKEN_LISTENER))
                    .map_err(os("epoll_ctl"))?;
                Some(server)
            }
            None => None,
        };
        let signals = if signals {
            let mut mask = SigSet::empty();
            mask.add(Signal::SIGINT);
            mask.add(Signal::SIGTERM);
            mask.thread_block().map_err(os("blocking signals"))?;
            let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
                .map_err(os("signalfd"))?;
            epoll
                .add(fd.as_fd(), readable(TOKEN_SIGNAL))
                .map_err(os("epoll_ctl"))?;
            Some(fd)
        } else {
            None
        };
        Ok(Relay {
            config,
            paths,
            held: BinaryHeap::new(),
            pool: Vec::new(),
            scratch: vec![0; 65_536],
            seq: 0,
            started: monotonic_now()?,
            next_entry: 0,
            epoll,
            timer,
            armed: None,
            signals,
            control,
            quit: false,
        })
    }

    /// The bound `[a_side, b_side]` addresses of each path, in order (useful with port 0).
    pub fn local_addrs(&self) -> Vec<[SocketAddr; 2]> {
        self.paths.iter().map(|p| p.local).collect()
    }

    /// Relays until a signal, a `quit` command or a `quit` timeline entry. The timeline's clock
    /// starts at the first call.
    pub fn run(&mut self) -> Result<(), RelayError> {
        self.started = monotonic_now()?;
        let mut events = [EpollEvent::empty(); 64];
        loop {
            let now = monotonic_now()?;
            self.run_timeline(now);
            self.flush(now);
            if self.quit {
                return Ok(());
            }
            self.arm()?;
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(e) => return Err(os("epoll_wait")(e)),
            };
            for ev in &events[..n] {
                self.dispatch(ev.data())?;
            }
        }
    }

    fn dispatch(&mut self, token: u64) -> Result<(), RelayError> {
        match token {
            TOKEN_TIMER => {
                // Clears the expiration; the loop re-arms.
                let mut buf = [0u8; 8];
                let _ = nix::unistd::read(&self.timer, &mut buf);
                self.armed = None;
            }
            TOKEN_SIGNAL => {
                if let Some(fd) = &self.signals {
                    while let Ok(Some(info)) = fd.read_signal() {
                        eprintln!("weft-linkem: signal {}, stopping", info.ssi_signo);
                        self.quit = true;
                    }
                }
            }
            TOKEN_LISTENER => self.accept()?,
            t if (TOKEN_CONN..TOKEN_CONN + 64).contains(&t) => {
                self.serve((t - TOKEN_CONN) as usize)
            }
            t if t & TOKEN_SOCKET != 0 => {
                let path = ((t & !TOKEN_SOCKET) >> 1) as usize;
                let side = (t & 1) as usize;
                self.receive(path, side)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads up to a batch of datagrams arriving on `side` of `path`, offering each to the
    /// direction it enters.
    fn receive(&mut self, path: usize, side: usize) -> Result<(), RelayError> {
        let max_held = self.config.max_held;
        for _ in 0..RECV_BATCH {
            let Some(p) = self.paths.get_mut(path) else {
                return Ok(());
            };
            let len = match p.sockets[side].recv_from(&mut self.scratch) {
                Ok((len, _)) => len,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // WouldBlock ends the batch; other errors (ICMP reports) are not ours to count.
                Err(_) => return Ok(()),
            };
            let now = monotonic_now()?;
            let d = &mut p.dirs[side];
            d.counters.offered += 1;
            if d.held >= max_held {
                d.counters.held_drops += 1;
                continue;
            }
            match d.model.offer(now, len) {
                Verdict::Drop(DropCause::Loss) => d.counters.lost += 1,
                Verdict::Drop(DropCause::Queue) => d.counters.queue_drops += 1,
                Verdict::Drop(DropCause::Down) => d.counters.down_drops += 1,
                Verdict::Deliver(at) => {
                    d.held += 1;
                    let mut buf = self.pool.pop().unwrap_or_default();
                    buf.clear();
                    buf.extend_from_slice(&self.scratch[..len]);
                    self.seq += 1;
                    self.held.push(Reverse(Held {
                        at,
                        seq: self.seq,
                        path,
                        dir: side,
                        buf,
                    }));
                }
            }
        }
        Ok(())
    }

    /// Sends every held datagram due at `now`.
    fn flush(&mut self, now: Instant) {
        while self.held.peek().is_some_and(|h| h.0.at <= now) {
            let Some(Reverse(h)) = self.held.pop() else {
                break;
            };
            if let Some(p) = self.paths.get_mut(h.path) {
                let out = 1 - h.dir;
                let d = &mut p.dirs[h.dir];
                d.held = d.held.saturating_sub(1);
                match p.sockets[out].send_to(&h.buf, p.to[out]) {
                    Ok(_) => {
                        d.counters.delivered += 1;
                        d.counters.delivered_bytes += h.buf.len() as u64;
                        let late_us = (now - h.at).as_micros() as u64;
                        d.counters.max_late_us = d.counters.max_late_us.max(late_us);
                        if late_us > 1_000 {
                            d.counters.late_1ms += 1;
                        }
                    }
                    Err(_) => d.counters.send_errors += 1,
                }
            }
            self.pool.push(h.buf);
        }
    }

    fn run_timeline(&mut self, now: Instant) {
        while let Some(entry) = self.config.timeline.get(self.next_entry) {
            if self.started + entry.at > now {
                break;
            }
            let (command, action) = (entry.command.clone(), entry.action.clone());
            self.next_entry += 1;
            let reply = self.execute(&command, now);
            eprintln!(
                "weft-linkem: {} ms: timeline `{action}`: {reply}",
                (now - self.started).as_millis()
            );
        }
    }

    /// Arms the timer for the next held delivery or timeline entry.
    fn arm(&mut self) -> Result<(), RelayError> {
        let next_held = self.held.peek().map(|h| h.0.at);
        let next_entry = self
            .config
            .timeline
            .get(self.next_entry)
            .map(|e| self.started + e.at);
        let deadline = match (next_held, next_entry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if deadline == self.armed {
            return Ok(());
        }
        match deadline {
            Some(at) => {
                // Zero would disarm the timer; the clock is never that early anyway.
                let ns = at.as_nanos().max(1);
                let ts = TimeSpec::from(Duration::from_nanos(ns));
                self.timer
                    .set(
                        Expiration::OneShot(ts),
                        TimerSetTimeFlags::TFD_TIMER_ABSTIME,
                    )
                    .map_err(os("timerfd_settime"))?;
            }
            None => self.timer.unset().map_err(os("timerfd_settime"))?,
        }
        self.armed = deadline;
        Ok(())
    }

    fn accept(&mut self) -> Result<(), RelayError> {
        let Some(server) = self.control.as_mut() else {
            return Ok(());
        };
        for slot in server.accept() {
            if let Some(stream) = server.stream(slot) {
                let ev = EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_CONN + slot as u64);
                if self.epoll.add(stream.as_fd(), ev).is_err() {
                    server.close(slot);
                }
            }
        }
        Ok(())
    }

    fn serve(&mut self, slot: usize) {
        let Some(server) = self.control.as_mut() else {
            return;
        };
        let incoming = server.read(slot);
        for line in incoming.lines.iter().filter(|l| !l.is_empty()) {
            let now = monotonic_now().unwrap_or(self.started);
            let reply = match Command::parse(line) {
                Ok(Command::Stats) => self.stats_json(now),
                Ok(cmd) => {
                    let reply = self.execute(&cmd, now);
                    eprintln!(
                        "weft-linkem: {} ms: control `{line}`: {reply}",
                        (now - self.started).as_millis()
                    );
                    reply
                }
                Err(e) => json!({ "ok": false, "error": e.to_string() }),
            };
            if let Some(server) = self.control.as_mut() {
                server.reply(slot, &reply);
            }
        }
        let Some(server) = self.control.as_mut() else {
            return;
        };
        if incoming.overlong {
            let why = format!(
                "a command line longer than {} bytes",
                super::command::MAX_LINE
            );
            server.reply(slot, &json!({ "ok": false, "error": why }));
        }
        if incoming.closed {
            if let Some(stream) = server.stream(slot) {
                let _ = self.epoll.delete(stream.as_fd());
            }
            server.close(slot);
        }
    }

    /// Carries out `command` and returns its JSON reply.
    pub fn execute(&mut self, command: &Command, now: Instant) -> Value {
        let result = match command {
            Command::Stats => return self.stats_json(now),
            Command::Quit => {
                self.quit = true;
                Ok(0)
            }
            Command::Cut(t) => self.for_target(t, |d| {
                d.model.set_up(false);
                Ok(())
            }),
            Command::Restore(t) => self.for_target(t, |d| {
                d.model.set_up(true);
                Ok(())
            }),
            Command::Set(t, spec) => {
                // Check every direction first, so a refused set changes nothing.
                let check = self.for_target_ref(t, |d| spec.apply(d.model.params()).map(drop));
                match check {
                    Ok(_) => self.for_target(t, |d| {
                        let p = spec.apply(d.model.params()).map_err(|e| e.to_string())?;
                        d.model.set_params(p);
                        Ok(())
                    }),
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(_) if matches!(command, Command::Quit) => json!({ "ok": true }),
            Ok(n) => json!({ "ok": true, "directions": n }),
            Err(e) => json!({ "ok": false, "error": e }),
        }
    }

    fn resolve(&self, t: &Target) -> Result<Vec<usize>, String> {
        match &t.path {
            None => Ok((0..self.paths.len()).collect()),
            Some(name) => self
                .paths
                .iter()
                .position(|p| &p.name == name)
                .map(|i| vec![i])
                .ok_or_else(|| {
                    let names: Vec<&str> = self.paths.iter().map(|p| p.name.as_str()).collect();
                    format!("no path named `{name}` (paths: {})", names.join(", "))
                }),
        }
    }

    fn for_target(
        &mut self,
        t: &Target,
        mut f: impl FnMut(&mut Direction) -> Result<(), String>,
    ) -> Result<usize, String> {
        let mut n = 0;
        for i in self.resolve(t)? {
            for d in dir_indices(t.dirs) {
                f(&mut self.paths[i].dirs[d])?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn for_target_ref<E: ToString>(
        &self,
        t: &Target,
        f: impl Fn(&Direction) -> Result<(), E>,
    ) -> Result<usize, String> {
        let mut n = 0;
        for i in self.resolve(t)? {
            for d in dir_indices(t.dirs) {
                f(&self.paths[i].dirs[d]).map_err(|e| e.to_string())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every path's addresses, state, counters and settings, as the `stats` reply.
    pub fn stats_json(&self, now: Instant) -> Value {
        let paths: Vec<Value> = self
            .paths
            .iter()
            .map(|p| {
                let dir = |d: usize| {
                    let x = &p.dirs[d];
                    dir_json(x.model.is_up(), &x.counters, x.held, &x.model.params())
                };
                json!({
                    "name": p.name,
                    "a_side": p.local[0].to_string(),
                    "b_side": p.local[1].to_string(),
                    "to_a": p.to[0].to_string(),
                    "to_b": p.to[1].to_string(),
                    "a_to_b": dir(0),
                    "b_to_a": dir(1),
                })
            })
            .collect();
        json!({
            "ok": true,
            "uptime_ms": (now - self.started).as_millis() as u64,
            "seed": self.config.seed,
            "max_held": self.config.max_held,
            "paths": paths,
        })
    }
}
