//! The blocking client of the ctl protocol: one request, one reply, per connection.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::codec::{self, CodecError, MAX_REPLY_LINE};
use super::{CtlReply, CtlRequest};

/// Why [`query`] got no reply.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Nothing listens on the socket (`ENOENT`: no socket file; `ECONNREFUSED`: a file left by
    /// a control plane that is gone).
    #[error("the control plane is not running: nothing listens on {}", socket.display())]
    NotRunning {
        /// The socket path.
        socket: PathBuf,
        /// The connect error.
        #[source]
        source: io::Error,
    },
    /// A read or write waited longer than the timeout.
    #[error("the control plane on {} did not answer within {timeout:?}", socket.display())]
    Timeout {
        /// The socket path.
        socket: PathBuf,
        /// The timeout of each blocking call.
        timeout: Duration,
    },
    /// The control plane closed the connection before a complete reply.
    #[error("the control plane on {} closed the connection without a complete reply", socket.display())]
    Closed {
        /// The socket path.
        socket: PathBuf,
    },
    /// The reply is not a valid reply line (garbage, too long, or another protocol version).
    #[error("bad reply from the control plane on {}", socket.display())]
    BadReply {
        /// The socket path.
        socket: PathBuf,
        /// What was wrong with it.
        #[source]
        source: CodecError,
    },
    /// Any other socket error.
    #[error("{op} {}", socket.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The socket path.
        socket: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Sends `request` to the control plane listening on `path` and returns its reply.
///
/// `timeout` bounds each blocking read and write (a control plane that accepts and never answers
/// costs at most `timeout` per call). Connecting to a Unix socket does not wait for the server
/// unless its listen backlog is full. A [`CtlReply::Error`] is returned as `Ok`: the exchange
/// worked, and the error is the server's answer.
pub fn query(path: &Path, request: CtlRequest, timeout: Duration) -> Result<CtlReply, CtlError> {
    let socket = || path.to_path_buf();
    let io_err = |op: &'static str| {
        move |source: io::Error| match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => CtlError::Timeout {
                socket: path.to_path_buf(),
                timeout,
            },
            _ => CtlError::Io {
                op,
                socket: path.to_path_buf(),
                source,
            },
        }
    };
    let mut stream = UnixStream::connect(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => CtlError::NotRunning {
            socket: socket(),
            source,
        },
        _ => CtlError::Io {
            op: "connect to",
            socket: socket(),
            source,
        },
    })?;
    // A zero duration would be rejected by std; one microsecond is the shortest real timeout.
    let timeout = timeout.max(Duration::from_micros(1));
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io_err("set read timeout on"))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(io_err("set write timeout on"))?;
    let line = codec::encode_request(request).map_err(|source| CtlError::BadReply {
        socket: socket(),
        source,
    })?;
    stream
        .write_all(&line)
        .map_err(io_err("write request to"))?;

    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read reply from")(e)),
        };
        if n == 0 {
            return Err(CtlError::Closed { socket: socket() });
        }
        let start = buf.len();
        buf.extend_from_slice(&chunk[..n]);
        let found =
            codec::find_line(&buf, start, MAX_REPLY_LINE).map_err(|source| CtlError::BadReply {
                socket: socket(),
                source,
            })?;
        if let Some(len) = found {
            return codec::decode_reply(&buf[..len]).map_err(|source| CtlError::BadReply {
                socket: socket(),
                source,
            });
        }
    }
}
