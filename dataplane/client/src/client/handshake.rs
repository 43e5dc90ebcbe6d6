//! Opening a session: connect to the node's socket, send `Hello`, wait for `Welcome`.
//!
//! The handshake runs on a blocking socket with a time limit, so that something that is not a
//! Weft node (or a node that hangs) gives a clear error instead of a hang.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use weft_shared::session::{
    ClientMessage, ErrorCode, Hello, MAX_CLIENT_NAME_LEN, MAX_PROTOCOL_VERSION,
    MIN_PROTOCOL_VERSION, RecvBuf, ServerMessage, Welcome, encode_frame,
};

use crate::error::{ClientError, Disconnect, ProtocolError, ServerError};

/// The request id of the `Hello`; later requests count up from 2.
pub(super) const HELLO_ID: u32 = 1;

/// Sends `Hello` on `stream` and waits up to `timeout` for the reply. Returns the `Welcome`;
/// bytes the node sent after it stay in `rx`.
pub(super) fn handshake(
    stream: &mut UnixStream,
    path: &Path,
    name: &str,
    timeout: Duration,
    rx: &mut RecvBuf,
) -> Result<Welcome, ClientError> {
    let timed_out = || ClientError::HandshakeTimeout {
        path: path.to_path_buf(),
        after: timeout,
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    let hello = ClientMessage::Hello(Hello {
        min_version: MIN_PROTOCOL_VERSION,
        max_version: MAX_PROTOCOL_VERSION,
        name,
    });
    let mut frame = [0u8; 12 + 8 + MAX_CLIENT_NAME_LEN];
    let len = encode_frame(HELLO_ID, &hello, &mut frame)?;
    stream
        .write_all(frame.get(..len).unwrap_or_default())
        .map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
            _ => ClientError::Io(e),
        })?;

    let deadline = Instant::now() + timeout;
    loop {
        if let Some(first) = rx.frames().next() {
            let frame = first.map_err(ProtocolError::from)?;
            let size = 12 + frame.body.len();
            let msg = ServerMessage::decode(&frame).map_err(ProtocolError::from)?;
            let result = match msg {
                ServerMessage::Welcome(w) => check_version(w),
                ServerMessage::Error(e) if e.code == ErrorCode::UnsupportedVersion => {
                    let node = e.supported_range().unwrap_or((0, 0));
                    Err(ClientError::version_mismatch(path.to_path_buf(), node))
                }
                ServerMessage::Error(e) => Err(ClientError::Refused {
                    path: path.to_path_buf(),
                    error: ServerError::from_msg(&e),
                }),
                _ => Err(ProtocolError::NotWelcome {
                    msg_type: frame.msg_type,
                }
                .into()),
            };
            rx.consume(size);
            return result;
        }
        if Instant::now() >= deadline {
            return Err(timed_out());
        }
        match rx.read_from(stream) {
            Ok(0) => return Err(ClientError::Disconnected(Disconnect::EndOfStream)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The node must pick a version this client offered.
fn check_version(w: Welcome) -> Result<Welcome, ClientError> {
    if (MIN_PROTOCOL_VERSION..=MAX_PROTOCOL_VERSION).contains(&w.version) {
        Ok(w)
    } else {
        Err(ProtocolError::BadVersion { version: w.version }.into())
    }
}
