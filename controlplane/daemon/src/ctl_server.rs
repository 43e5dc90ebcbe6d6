//! The control plane's side of the ctl socket (`docs/weftctl.md`): a non-blocking server for the
//! daemon's single-threaded poll loop.
//!
//! One request per connection: a client writes one JSON line ([`weft_shared::ctl::codec`]), the
//! server answers with one line and closes. The server never blocks and never trusts a client:
//!
//! - at most [`MAX_CONNECTIONS`] connections are open; further ones are accepted and closed at
//!   once, so the listen backlog never fills;
//! - each connection holds at most one request line ([`MAX_REQUEST_LINE`]) and one reply line;
//!   partial reads and partial writes are kept per connection;
//! - a connection that makes no progress for [`IDLE_TIMEOUT`] is dropped;
//! - a malformed, oversize or unknown request gets a [`CtlReply::Error`], never a panic.
//!
//! # Run loop
//!
//! The listener and every open connection are registered in one epoll instance, and
//! [`CtlServer::as_fd`] is that epoll fd: it is readable whenever the server has something to do
//! (a connection to accept, request bytes to read, room to write a reply). Put it in the daemon's
//! `poll` set with `POLLIN`, wake up no later than [`CtlServer::poll_timeout`], and call
//! [`CtlServer::poll`] after every wakeup (calling it when nothing is ready is cheap):
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use std::os::fd::AsFd;
//! use std::time::Instant;
//! use weft_controld::ctl_server::CtlServer;
//! use weft_shared::ctl::{CtlReply, CtlRequest};
//!
//! let mut ctl = CtlServer::bind(std::path::Path::new("/run/weft/node1.ctl"))?;
//! loop {
//!     // ... poll(2) on ctl.as_fd() (POLLIN) and the daemon's other fds, until the earliest of
//!     // ctl.poll_timeout() and the daemon's own timers ...
//!     ctl.poll(Instant::now(), |request| match request {
//!         CtlRequest::Status => CtlReply::error("not ready"),
//!         CtlRequest::Nodes => CtlReply::Nodes(Vec::new()),
//!         CtlRequest::Routes => CtlReply::Routes(Vec::new()),
//!         CtlRequest::Groups | CtlRequest::Group(_) => CtlReply::error("no group state"),
//!     });
//! #   break;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Dropping the server removes its socket file (unless another process replaced it meanwhile).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use weft_shared::ctl::codec::{self, MAX_REQUEST_LINE};
use weft_shared::ctl::{CtlReply, CtlRequest};

/// The most connections open at once; more are accepted and closed at once.
pub const MAX_CONNECTIONS: usize = 16;

/// A connection that makes no progress (no byte read or written) for this long is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Permission bits of the ctl socket: the owner and its group may connect.
pub const SOCKET_MODE: u32 = 0o660;

/// The epoll token of the listener (connections use their slot index).
const LISTENER_TOKEN: u64 = u64::MAX;

/// Bytes read from a connection per `read` call.
const READ_CHUNK: usize = 1024;

/// What the server has done since it was bound, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtlServerStats {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections closed at once because [`MAX_CONNECTIONS`] were open.
    pub refused: u64,
    /// Replies written completely.
    pub answered: u64,
    /// Requests that were malformed, too long or of another version (answered with an error).
    pub bad_requests: u64,
    /// Connections dropped after [`IDLE_TIMEOUT`] without progress.
    pub timed_out: u64,
    /// Connections lost to a socket error or closed by the client before the reply was written.
    pub failed: u64,
}

/// The ctl socket's server. See the module documentation for the run loop.
pub struct CtlServer {
    path: PathBuf,
    /// Device and inode of the socket file we bound, so that drop never removes someone else's.
    file_id: Option<(u64, u64)>,
    listener: UnixListener,
    epoll: Epoll,
    slots: Vec<Option<Conn>>,
    stats: CtlServerStats,
}

/// One client connection.
struct Conn {
    stream: UnixStream,
    phase: Phase,
    last_progress: Instant,
}

enum Phase {
    /// Collecting the request line; no newline in `buf` yet.
    Reading { buf: Vec<u8> },
    /// Writing the reply line; `out[..sent]` is written.
    Writing { out: Vec<u8>, sent: usize },
}

/// What one step of a connection decided.
enum Step {
    /// Wait for more readiness.
    Keep,
    /// The reply was written completely.
    Done,
    /// The client went away or the socket failed.
    Lost,
}

impl CtlServer {
    /// Binds the ctl socket at `path` (the node's `ctl_socket`).
    ///
    /// A socket file nobody listens on (left by a control plane that died) is removed and
    /// replaced; a socket a live server answers on is an error, and so is a path that exists and
    /// is not a socket (it is left alone). A missing parent directory is created.
    pub fn bind(path: &Path) -> anyhow::Result<CtlServer> {
        let listener = weft_shared::session::bind_listener(path, SOCKET_MODE)
            .with_context(|| format!("bind the ctl socket {}", path.display()))?;
        let file_id = std::fs::symlink_metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let server = CtlServer::from_listener(path, listener, file_id);
        if server.is_err() && file_id.is_some() {
            let _ = std::fs::remove_file(path);
        }
        server
    }

    fn from_listener(
        path: &Path,
        listener: UnixListener,
        file_id: Option<(u64, u64)>,
    ) -> anyhow::Result<CtlServer> {
        listener
            .set_nonblocking(true)
            .context("make the ctl listener non-blocking")?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("epoll_create1")?;
        epoll
            .add(
                &listener,
                EpollEvent::new(EpollFlags::EPOLLIN, LISTENER_TOKEN),
            )
            .context("register the ctl listener with epoll")?;
        Ok(CtlServer {
            path: path.to_path_buf(),
            file_id,
            listener,
            epoll,
            slots: (0..MAX_CONNECTIONS).map(|_| None).collect(),
            stats: CtlServerStats::default(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Counters since bind.
    pub fn stats(&self) -> CtlServerStats {
        self.stats
    }

    /// The latest time by which [`CtlServer::poll`] must run again to drop idle connections on
    /// time; `None` with no connection open.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots
            .iter()
            .flatten()
            .map(|c| c.last_progress + IDLE_TIMEOUT)
            .min()
    }

    /// Does all the work that is possible without blocking: accepts pending connections, reads
    /// request bytes, answers every complete request with `answer`, writes replies, and drops
    /// connections idle for longer than [`IDLE_TIMEOUT`] at `now`. `answer` runs once per
    /// well-formed request; malformed ones are answered with [`CtlReply::Error`] without it.
    pub fn poll(&mut self, now: Instant, mut answer: impl FnMut(&CtlRequest) -> CtlReply) {
        // Level-triggered: this only refreshes the ready list, so the epoll fd reads as readable
        // again exactly when something is left to do. Every connection is stepped below anyway.
        let mut events = [EpollEvent::empty(); MAX_CONNECTIONS + 1];
        let _ = self.epoll.wait(&mut events, EpollTimeout::ZERO);
        self.accept(now);
        for i in 0..self.slots.len() {
            let Some(conn) = self.slots[i].as_mut() else {
                continue;
            };
            let step = conn.step(now, &mut answer, &self.epoll, i as u64, &mut self.stats);
            let idle = now.saturating_duration_since(conn.last_progress) >= IDLE_TIMEOUT;
            match step {
                Step::Done => self.stats.answered += 1,
                Step::Lost => self.stats.failed += 1,
                Step::Keep if idle => self.stats.timed_out += 1,
                Step::Keep => continue,
            }
            if let Some(conn) = self.slots[i].take() {
                let _ = self.epoll.delete(&conn.stream);
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A connection reset before we accepted it; the next one may be fine.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                // WouldBlock: none left. Anything else (EMFILE, ENOBUFS): try on the next poll.
                Err(_) => return,
            };
            let Some(slot) = self.slots.iter().position(Option::is_none) else {
                self.stats.refused += 1;
                continue;
            };
            let registered = stream.set_nonblocking(true).is_ok()
                && self
                    .epoll
                    .add(&stream, EpollEvent::new(EpollFlags::EPOLLIN, slot as u64))
                    .is_ok();
            if !registered {
                self.stats.failed += 1;
                continue;
            }
            self.stats.accepted += 1;
            self.slots[slot] = Some(Conn {
                stream,
                phase: Phase::Reading { buf: Vec::new() },
                last_progress: now,
            });
        }
    }
}

impl Conn {
    /// Reads, answers and writes as far as possible without blocking.
    fn step(
        &mut self,
        now: Instant,
        answer: &mut impl FnMut(&CtlRequest) -> CtlReply,
        epoll: &Epoll,
        token: u64,
        stats: &mut CtlServerStats,
    ) -> Step {
        if let Phase::Reading { buf } = &mut self.phase {
            let line = match read_request(&mut self.stream, buf, now, &mut self.last_progress) {
                ReadOutcome::Pending => return Step::Keep,
                ReadOutcome::Lost => return Step::Lost,
                ReadOutcome::Line(line) => line,
            };
            let reply = match line {
                Ok(line) => match codec::decode_request(&line) {
                    Ok(request) => answer(&request),
                    Err(e) => {
                        stats.bad_requests += 1;
                        CtlReply::error(format!("bad request: {e}"))
                    }
                },
                Err(e) => {
                    stats.bad_requests += 1;
                    CtlReply::error(format!("bad request: {e}"))
                }
            };
            let out = codec::encode_reply(&reply)
                .or_else(|e| codec::encode_reply(&CtlReply::error(format!("reply not sent: {e}"))));
            let Ok(out) = out else {
                return Step::Lost;
            };
            // From now on only writability matters; unread input must not keep waking the loop.
            let mut interest = EpollEvent::new(EpollFlags::EPOLLOUT, token);
            if epoll.modify(&self.stream, &mut interest).is_err() {
                return Step::Lost;
            }
            self.phase = Phase::Writing { out, sent: 0 };
        }
        let Phase::Writing { out, sent } = &mut self.phase else {
            return Step::Keep;
        };
        while *sent < out.len() {
            match self.stream.write(&out[*sent..]) {
                Ok(0) => return Step::Lost,
                Ok(n) => {
                    *sent += n;
                    self.last_progress = now;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Keep,
                Err(_) => return Step::Lost,
            }
        }
        Step::Done
    }
}

enum ReadOutcome {
    /// No complete line yet.
    Pending,
    /// The client closed or the socket failed before a request.
    Lost,
    /// A complete request line, or why there never will be one (too long).
    Line(Result<Vec<u8>, codec::CodecError>),
}

/// Reads what is available into `buf` until a complete line (or end of input) is there.
fn read_request(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
    now: Instant,
    last_progress: &mut Instant,
) -> ReadOutcome {
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        match stream.read(&mut chunk) {
            // End of input: a client that shut down its side after the request, without the
            // newline, is still answered; one that sent nothing is gone.
            Ok(0) if buf.is_empty() => return ReadOutcome::Lost,
            Ok(0) => return ReadOutcome::Line(Ok(std::mem::take(buf))),
            Ok(n) => {
                *last_progress = now;
                let from = buf.len();
                buf.extend_from_slice(&chunk[..n]);
                match codec::find_line(buf, from, MAX_REQUEST_LINE) {
                    Ok(None) => {}
                    Ok(Some(len)) => {
                        buf.truncate(len);
                        return ReadOutcome::Line(Ok(std::mem::take(buf)));
                    }
                    Err(e) => return ReadOutcome::Line(Err(e)),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Pending,
            Err(_) => return ReadOutcome::Lost,
        }
    }
}

impl AsFd for CtlServer {
    /// The epoll fd: readable when [`CtlServer::poll`] has work.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }
}

impl AsRawFd for CtlServer {
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.0.as_raw_fd()
    }
}

impl Drop for CtlServer {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.file_id {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
