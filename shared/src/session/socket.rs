//! Std-only helpers for the session socket: binding the node's listener safely.
//!
//! [`bind_listener`] reclaims a socket file left behind by a node that died, refuses to start
//! next to a live node, never deletes a file that is not a socket, creates the parent
//! directory and sets the socket's permissions.
//!
//! Peer credentials: `UnixStream::peer_cred` (`SO_PEERCRED`) is still unstable in std
//! (`peer_credentials_unix_socket`), so this module does not offer it. The server, which lives
//! in the engine and may use `nix`, reads them with
//! `nix::sys::socket::getsockopt(&stream, sockopt::PeerCredentials)` (safe code) for logs and
//! `weftctl`. Access control is by the socket file's mode and owner, not by credentials.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The default mode of the session socket: owner and group may connect, others may not.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// Mode of a parent directory [`bind_listener`] creates: others may traverse it, so that the
/// socket's own mode is what decides who may connect.
const CREATED_DIR_MODE: u32 = 0o755;

/// Why the session socket could not be bound.
#[derive(Debug, Error)]
pub enum SocketError {
    /// A node already answers on the path.
    #[error("another node is running on {}", path.display())]
    AnotherNodeRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// The path exists and is not a socket; it is left alone.
    #[error("{} exists and is not a socket; not removing it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> SocketError + 'p {
    move |source| SocketError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Binds the session listener at `path` with permission bits `mode` (e.g.
/// [`DEFAULT_SOCKET_MODE`]).
///
/// If `path` exists: a socket that refuses connections (`ECONNREFUSED`, a dead node's leftover)
/// is unlinked and replaced; a socket that accepts is [`SocketError::AnotherNodeRunning`]; any
/// other kind of file is [`SocketError::NotASocket`] and is not touched. Missing parent
/// directories are created (mode 0755). `mode` is applied after `bind`; until then the socket
/// has the process umask's mode, so keep the parent directory private if that window matters.
///
/// Two nodes starting on the same path at the same instant can both see a stale socket; the
/// probe-then-unlink is not atomic. Node start-up is expected to be serialised by its supervisor.
pub fn bind_listener(path: &Path, mode: u32) -> Result<UnixListener, SocketError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(SocketError::AnotherNodeRunning {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                fs::remove_file(path).map_err(io_err("remove stale socket", path))?;
            }
            Err(e) => return Err(io_err("probe existing socket", path)(e)),
        },
        Ok(_) => {
            return Err(SocketError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("stat", path)(e)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(CREATED_DIR_MODE)
            .create(parent)
            .map_err(io_err("create directory", parent))?;
    }
    let listener = UnixListener::bind(path).map_err(io_err("bind", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", path))?;
    Ok(listener)
}
