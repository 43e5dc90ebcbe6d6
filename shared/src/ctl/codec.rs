//! The line codec of the ctl protocol: one JSON document per line, with `"v"` and a size bound.
//!
//! A line is the compact JSON of one message followed by `\n`. JSON strings escape control
//! characters, so a newline can only end a line. Both bounds count the newline.
//!
//! - [`encode_request`] / [`decode_request`]: at most [`MAX_REQUEST_LINE`] bytes.
//! - [`encode_reply`] / [`decode_reply`]: at most [`MAX_REPLY_LINE`] bytes.
//! - [`find_line`]: where the first complete line in a receive buffer ends, or an error once the
//!   buffer holds more than the bound without one; readers call it after every read.
//! - [`json_len`]: the encoded size of a part of a reply, for servers that keep a reply under
//!   the bound while they build it.

use std::io;

use serde::{Deserialize, Serialize};

use super::{CTL_VERSION, CtlReply, CtlRequest};

/// The longest request line, newline included. Requests are a few dozen bytes.
pub const MAX_REQUEST_LINE: usize = 4 * 1024;

/// The longest reply line, newline included. The largest reply is `routes` with a full path per
/// destination: a line of 1,023 nodes (the most a config allows) needs about 2.7 MB, so 4 MiB
/// covers every topology. A `groups` reply can need more; its server stops adding rows before
/// this bound (see [`super::GroupsReply`]).
pub const MAX_REPLY_LINE: usize = 4 * 1024 * 1024;

/// Why a line could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The line (or the bytes received so far without a newline) exceeds the bound.
    #[error("line longer than {max} bytes")]
    TooLong {
        /// The bound, newline included.
        max: usize,
    },
    /// The bytes are not UTF-8 JSON of the expected message (the text says where and why).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message carries another protocol version.
    #[error("ctl protocol version {found}, this build speaks {expected}")]
    Version {
        /// The `"v"` received.
        found: u32,
        /// [`CTL_VERSION`].
        expected: u32,
    },
}

/// A request on the wire: `{"v":1,"show":"nodes"}`, or `{"v":1,"show":"groups","group":7}`.
#[derive(Serialize, Deserialize)]
struct RequestLine {
    v: u32,
    show: RequestKind,
    /// Only with `"show":"groups"`: the one group asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<u32>,
}

/// The `"show"` of a request line.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RequestKind {
    Status,
    Nodes,
    Routes,
    Groups,
}

impl RequestLine {
    fn of(request: CtlRequest) -> RequestLine {
        let (show, group) = match request {
            CtlRequest::Status => (RequestKind::Status, None),
            CtlRequest::Nodes => (RequestKind::Nodes, None),
            CtlRequest::Routes => (RequestKind::Routes, None),
            CtlRequest::Groups => (RequestKind::Groups, None),
            CtlRequest::Group(group) => (RequestKind::Groups, Some(group)),
        };
        RequestLine {
            v: CTL_VERSION,
            show,
            group,
        }
    }

    fn request(&self) -> Result<CtlRequest, CodecError> {
        match (self.show, self.group) {
            (RequestKind::Groups, Some(group)) => Ok(CtlRequest::Group(group)),
            (RequestKind::Groups, None) => Ok(CtlRequest::Groups),
            (_, Some(_)) => Err(CodecError::Malformed(
                "\"group\" goes only with \"show\":\"groups\"".to_owned(),
            )),
            (RequestKind::Status, None) => Ok(CtlRequest::Status),
            (RequestKind::Nodes, None) => Ok(CtlRequest::Nodes),
            (RequestKind::Routes, None) => Ok(CtlRequest::Routes),
        }
    }
}

/// A reply on the wire: `{"v":1,"nodes":[..]}` (the variant's key beside `"v"`).
#[derive(Serialize, Deserialize)]
struct ReplyLine {
    v: u32,
    #[serde(flatten)]
    reply: CtlReply,
}

/// Only the version, read first so a message of another version fails as
/// [`CodecError::Version`] rather than as whatever field it changed.
#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Encodes `request` as one line (newline included).
pub fn encode_request(request: CtlRequest) -> Result<Vec<u8>, CodecError> {
    encode(&RequestLine::of(request), MAX_REQUEST_LINE)
}

/// Decodes one request line (with or without its newline).
pub fn decode_request(line: &[u8]) -> Result<CtlRequest, CodecError> {
    decode::<RequestLine>(line, MAX_REQUEST_LINE)?.request()
}

/// Encodes `reply` as one line (newline included); [`CodecError::TooLong`] past
/// [`MAX_REPLY_LINE`].
pub fn encode_reply(reply: &CtlReply) -> Result<Vec<u8>, CodecError> {
    #[derive(Serialize)]
    struct ReplyRef<'a> {
        v: u32,
        #[serde(flatten)]
        reply: &'a CtlReply,
    }
    encode(
        &ReplyRef {
            v: CTL_VERSION,
            reply,
        },
        MAX_REPLY_LINE,
    )
}

/// Decodes one reply line (with or without its newline).
pub fn decode_reply(line: &[u8]) -> Result<CtlReply, CodecError> {
    decode::<ReplyLine>(line, MAX_REPLY_LINE).map(|r| r.reply)
}

/// The length of the first complete line in `buf`, newline included, or `None` if no newline
/// has arrived yet. The caller knows `buf[..from]` holds no newline (it searched it before), so
/// only `buf[from..]` is searched and a reader that calls this after every read stays linear.
/// [`CodecError::TooLong`] if the line, or the incomplete data, is longer than `max`.
pub fn find_line(buf: &[u8], from: usize, max: usize) -> Result<Option<usize>, CodecError> {
    let from = from.min(buf.len());
    match buf[from..].iter().position(|&b| b == b'\n') {
        Some(i) if from + i < max => Ok(Some(from + i + 1)),
        Some(_) => Err(CodecError::TooLong { max }),
        None if buf.len() >= max => Err(CodecError::TooLong { max }),
        None => Ok(None),
    }
}

/// The length of `value`'s compact JSON (as [`encode_reply`] writes it), counted without
/// keeping the text. `usize::MAX` if it cannot be encoded.
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    /// A writer that only counts.
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

fn encode<T: Serialize>(message: &T, max: usize) -> Result<Vec<u8>, CodecError> {
    let mut line = serde_json::to_vec(message).map_err(|e| CodecError::Malformed(e.to_string()))?;
    line.push(b'\n');
    if line.len() > max {
        return Err(CodecError::TooLong { max });
    }
    Ok(line)
}

fn decode<T: for<'de> Deserialize<'de>>(line: &[u8], max: usize) -> Result<T, CodecError> {
    if line.len() > max {
        return Err(CodecError::TooLong { max });
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version: VersionOnly =
        serde_json::from_slice(line).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if version.v != CTL_VERSION {
        return Err(CodecError::Version {
            found: version.v,
            expected: CTL_VERSION,
        });
    }
    serde_json::from_slice(line).map_err(|e| CodecError::Malformed(e.to_string()))
}
