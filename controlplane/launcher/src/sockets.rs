//! The node's Unix socket files: telling a live one from one left behind by a dead process.
//!
//! A node owns three socket files: the session socket and its `.attach` sibling (bound by the
//! data plane) and the ctl socket (bound by the control plane). A process killed by SIGKILL
//! leaves its socket files behind, and a later `bind` on the same path fails. The launcher
//! probes each file with a non-blocking `connect`:
//!
//! | `connect` | state | what the launcher does |
//! |---|---|---|
//! | no file | [`SocketState::Absent`] | nothing |
//! | `ECONNREFUSED` | [`SocketState::Stale`] | removes the file |
//! | accepted, or `EAGAIN` (backlog full) | [`SocketState::Live`] | refuses: the node is running |
//! | the path is not a socket | [`SocketState::NotASocket`] | refuses: it is not ours to remove |
//!
//! The probe never blocks (a full backlog answers `EAGAIN`). Connecting to a live data plane's
//! attach socket makes it send its fds once; the launcher drops them with the connection.
//!
//! A socket that answers is probed again every 20 ms for up to [`SETTLE`], and counts as live
//! only if it answers all that time: the listening socket of a data plane killed by SIGKILL was
//! seen to stay connectable for 3 to 6 ms after the process was reaped (most likely while the
//! kernel tears down its io_uring instance, which happens asynchronously). A running node
//! answers throughout, so a real conflict is reported, [`SETTLE`] later.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use weft_shared::ids::NodeId;

use crate::error::LaunchError;

/// What is at a socket path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketState {
    /// Nothing.
    Absent,
    /// A socket file nobody listens on.
    Stale,
    /// A socket with a listener.
    Live,
    /// A file that is not a socket.
    NotASocket,
}

/// How long a socket must keep answering to count as live (see the module doc).
pub const SETTLE: Duration = Duration::from_millis(500);

/// How often a socket that answers is probed again within [`SETTLE`].
const SETTLE_STEP: Duration = Duration::from_millis(20);

/// Probes `path`; if it answers, again every 20 ms for up to `settle`, until it does not.
/// Returns the last state.
pub fn probe_settled(path: &Path, settle: Duration) -> Result<SocketState, LaunchError> {
    let deadline = Instant::now() + settle;
    loop {
        let state = probe(path)?;
        let now = Instant::now();
        if state != SocketState::Live || now >= deadline {
            return Ok(state);
        }
        std::thread::sleep(SETTLE_STEP.min(deadline - now));
    }
}

/// Probes `path` once, without blocking.
pub fn probe(path: &Path) -> Result<SocketState, LaunchError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {}
        Ok(_) => return Ok(SocketState::NotASocket),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SocketState::Absent),
        Err(source) => {
            return Err(LaunchError::SocketFile {
                action: "examining",
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let sys = |source: Errno| LaunchError::SocketFile {
        action: "probing",
        path: path.to_path_buf(),
        source: io::Error::from(source),
    };
    let addr = UnixAddr::new(path).map_err(sys)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(sys)?;
    match connect(fd.as_raw_fd(), &addr) {
        Ok(()) | Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => Ok(SocketState::Live),
        Err(Errno::ECONNREFUSED) => Ok(SocketState::Stale),
        // Removed between the stat and the connect.
        Err(Errno::ENOENT) => Ok(SocketState::Absent),
        Err(e) => Err(sys(e)),
    }
}

/// Removes `path` if it is a stale socket (probed with [`probe_settled`]). Returns whether it
/// removed it; a live socket or a non-socket is left alone (`Ok(false)`).
pub fn remove_if_stale(path: &Path, settle: Duration) -> Result<bool, LaunchError> {
    if probe_settled(path, settle)? != SocketState::Stale {
        return Ok(false);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(LaunchError::SocketFile {
            action: "removing the stale socket",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Before node `node` starts: checks all of `paths` first (with [`probe_settled`]), then removes
/// the stale ones.
///
/// A live socket is [`LaunchError::AlreadyRunning`] and a non-socket [`LaunchError::NotASocket`];
/// in both cases nothing is removed. Returns the files it removed.
pub fn reclaim(
    node: NodeId,
    paths: &[&Path],
    settle: Duration,
) -> Result<Vec<PathBuf>, LaunchError> {
    let mut stale = Vec::new();
    for &path in paths {
        match probe_settled(path, settle)? {
            SocketState::Absent => {}
            SocketState::Stale => stale.push(path),
            SocketState::Live => {
                return Err(LaunchError::AlreadyRunning {
                    node,
                    socket: path.to_path_buf(),
                });
            }
            SocketState::NotASocket => {
                return Err(LaunchError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
        }
    }
    let mut removed = Vec::new();
    for path in stale {
        if remove_if_stale(path, Duration::ZERO)? {
            removed.push(path.to_path_buf());
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn absent_stale_live_and_foreign_files() {
        let dir = std::env::temp_dir().join(format!("weft-sockets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let node = NodeId::new(4).unwrap();
        let (absent, stale, live, plain) = (
            dir.join("absent.sock"),
            dir.join("stale.sock"),
            dir.join("live.sock"),
            dir.join("plain"),
        );
        drop(UnixListener::bind(&stale).unwrap());
        let _listener = UnixListener::bind(&live).unwrap();
        std::fs::write(&plain, "x").unwrap();

        assert_eq!(probe(&absent).unwrap(), SocketState::Absent);
        assert_eq!(probe(&stale).unwrap(), SocketState::Stale);
        assert_eq!(probe(&live).unwrap(), SocketState::Live);
        assert_eq!(probe(&plain).unwrap(), SocketState::NotASocket);

        // A live socket among them: an error, and the stale one is kept.
        let settle = Duration::from_millis(60);
        let t0 = Instant::now();
        assert_eq!(probe_settled(&live, settle).unwrap(), SocketState::Live);
        assert!(
            t0.elapsed() >= settle,
            "a live socket is probed for the whole settle time"
        );
        assert_eq!(probe_settled(&stale, settle).unwrap(), SocketState::Stale);

        let e = reclaim(node, &[&stale, &live], settle)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("node 4 is already running: "), "{e}");
        assert!(stale.exists());
        let e = reclaim(node, &[&stale, &plain], settle)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a socket"), "{e}");
        assert!(stale.exists() && plain.exists());

        assert_eq!(
            reclaim(node, &[&absent, &stale], settle).unwrap(),
            vec![stale.clone()]
        );
        assert!(!stale.exists());
        assert!(!remove_if_stale(&live, settle).unwrap());
        assert!(live.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
