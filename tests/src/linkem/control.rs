//! The control socket of a running relay (server side) and its client.
//!
//! A Unix stream socket; a client writes command lines (`command.rs`) and reads one JSON line
//! per command, on one connection or several. The relay's single thread serves it between
//! datagrams: at most [`MAX_CONNS`] connections at once, each with at most one partial line of
//! [`MAX_LINE`] bytes buffered; a longer line gets an error reply and the connection is closed.
//! A reply is written with a short timeout, so a client that does not read cannot stall the
//! relay for long.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::linkem::command::MAX_LINE;

/// Most control connections open at once; more are closed at once.
pub const MAX_CONNS: usize = 16;

/// How long writing one reply may block the relay.
const WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// A control problem (binding the socket, or a client's exchange).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another process answers on the socket.
    #[error("{0}: another process is listening there")]
    InUse(String),
    /// A socket operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The socket.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The relay's reply is not JSON.
    #[error("{path}: a reply that is not JSON: {line}")]
    BadReply {
        /// The socket.
        path: String,
        /// The reply.
        line: String,
    },
    /// The relay refused the command.
    #[error("{0}")]
    Refused(String),
}

/// One open connection.
struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// The listening control socket and its connections.
pub(crate) struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    conns: Vec<Option<Conn>>,
}

/// What reading a connection gave.
pub(crate) struct Incoming {
    /// Complete lines, in order.
    pub(crate) lines: Vec<String>,
    /// The connection is finished (closed by the peer, an error, or a line too long).
    pub(crate) closed: bool,
    /// The line that was too long, if that closed it.
    pub(crate) overlong: bool,
}

impl ControlServer {
    /// Binds `path` (reclaiming a stale socket file nobody answers on), non-blocking.
    pub(crate) fn bind(path: &Path) -> Result<ControlServer, ControlError> {
        let name = path.display().to_string();
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse(name));
            }
            let _ = std::fs::remove_file(path);
        }
        let io = |source| ControlError::Io {
            path: name.clone(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        Ok(ControlServer {
            listener,
            path: path.to_owned(),
            conns: (0..MAX_CONNS).map(|_| None).collect(),
        })
    }

    /// The listening socket (for epoll).
    pub(crate) fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// Accepts pending connections; returns the slots of new ones (to register with epoll).
    pub(crate) fn accept(&mut self) -> Vec<usize> {
        let mut new = Vec::new();
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let Some(slot) = self.conns.iter().position(Option::is_none) else {
                        // Full: the client sees the connection close.
                        drop(stream);
                        continue;
                    };
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.conns[slot] = Some(Conn {
                        stream,
                        buf: Vec::with_capacity(256),
                    });
                    new.push(slot);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return new,
            }
        }
    }

    /// The stream in `slot`, if open.
    pub(crate) fn stream(&self, slot: usize) -> Option<&UnixStream> {
        self.conns.get(slot)?.as_ref().map(|c| &c.stream)
    }

    /// Reads what `slot` has sent.
    pub(crate) fn read(&mut self, slot: usize) -> Incoming {
        let mut out = Incoming {
            lines: Vec::new(),
            closed: false,
            overlong: false,
        };
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            out.closed = true;
            return out;
        };
        let mut chunk = [0u8; 1024];
        loop {
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    out.closed = true;
                    break;
                }
                Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    out.closed = true;
                    break;
                }
            }
            while let Some(nl) = conn.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = conn.buf.drain(..=nl).collect();
                out.lines
                    .push(String::from_utf8_lossy(&line).trim().to_owned());
            }
            if conn.buf.len() >= MAX_LINE {
                out.overlong = true;
                out.closed = true;
                break;
            }
        }
        // A last command without its newline, at end of input, is still answered.
        if out.closed && !out.overlong && !conn.buf.is_empty() {
            out.lines
                .push(String::from_utf8_lossy(&conn.buf).trim().to_owned());
            conn.buf.clear();
        }
        out
    }

    /// Writes one reply line to `slot`; closes it if that fails.
    pub(crate) fn reply(&mut self, slot: usize, reply: &Value) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let mut line = reply.to_string();
        line.push('\n');
        let ok = conn.stream.set_nonblocking(false).is_ok()
            && conn.stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_ok()
            && conn.stream.write_all(line.as_bytes()).is_ok()
            && conn.stream.set_nonblocking(true).is_ok();
        if !ok {
            self.conns[slot] = None;
        }
    }

    /// Closes `slot`.
    pub(crate) fn close(&mut self, slot: usize) {
        if let Some(c) = self.conns.get_mut(slot) {
            *c = None;
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends one command line to the relay at `socket` and returns its JSON reply; a reply with
/// `"ok": false` is [`ControlError::Refused`] with the relay's message.
pub fn request(socket: &Path, line: &str) -> Result<Value, ControlError> {
    let name = socket.display().to_string();
    let io = |source| ControlError::Io {
        path: name.clone(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    let mut text = line.trim_end().to_owned();
    text.push('\n');
    stream.write_all(text.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .take(64 << 20)
        .read_line(&mut reply)
        .map_err(io)?;
    let value: Value = serde_json::from_str(&reply).map_err(|_| ControlError::BadReply {
        path: name.clone(),
        line: reply.trim_end().to_owned(),
    })?;
    if value["ok"] == Value::Bool(true) {
        Ok(value)
    } else {
        let why = value["error"].as_str().unwrap_or("refused").to_owned();
        Err(ControlError::Refused(why))
    }
}
