//! Session messages: typed views that borrow their strings and payloads from a frame.
//!
//! [`ClientMessage`] is what a client sends, [`ServerMessage`] what its node sends; both decode
//! from a [`Frame`](super::Frame) with `decode` and encode through [`Encode`](super::Encode)
//! (the codec and byte layouts are in the `codec` submodule and `docs/session.md`).

use core::fmt;

use super::MAX_ERROR_TEXT_LEN;
use super::error::ErrorCode;
use super::types::{DeliveredTo, FlowHandle, OpenFlow};
use crate::ids::{FlowId, GroupId, NodeId, Port};

/// Message type codes. The high bit is set on messages the server sends; the low bits name the
/// message, so `Goodbye` is 0x09 from a client and 0x89 from the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    /// Client: opens the handshake.
    Hello = 0x01,
    /// Client: bind a port.
    Bind = 0x02,
    /// Client: release a bound port.
    Unbind = 0x03,
    /// Client: open a flow.
    OpenFlow = 0x04,
    /// Client: close a flow.
    CloseFlow = 0x05,
    /// Client: send one message on a flow.
    Send = 0x06,
    /// Client: join a group.
    Join = 0x07,
    /// Client: leave a group.
    Leave = 0x08,
    /// Client: closing the session.
    ClientGoodbye = 0x09,
    /// Server: handshake accepted.
    Welcome = 0x81,
    /// Server: reply to `Bind`.
    Bound = 0x82,
    /// Server: reply to `OpenFlow`.
    FlowOpened = 0x83,
    /// Server: success reply to `Unbind`, `CloseFlow`, `Join`, `Leave`.
    Ok = 0x84,
    /// Server: a message for one of the client's ports or groups.
    Deliver = 0x85,
    /// Server: more credits for a flow.
    Credit = 0x86,
    /// Server: a request failed, or the session is refused.
    Error = 0x87,
    /// Server: closing the session.
    ServerGoodbye = 0x89,
}

impl MsgType {
    /// The type with code `v`, if there is one.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x01 => MsgType::Hello,
            0x02 => MsgType::Bind,
            0x03 => MsgType::Unbind,
            0x04 => MsgType::OpenFlow,
            0x05 => MsgType::CloseFlow,
            0x06 => MsgType::Send,
            0x07 => MsgType::Join,
            0x08 => MsgType::Leave,
            0x09 => MsgType::ClientGoodbye,
            0x81 => MsgType::Welcome,
            0x82 => MsgType::Bound,
            0x83 => MsgType::FlowOpened,
            0x84 => MsgType::Ok,
            0x85 => MsgType::Deliver,
            0x86 => MsgType::Credit,
            0x87 => MsgType::Error,
            0x89 => MsgType::ServerGoodbye,
            _ => return None,
        })
    }

    /// The type's code.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether the server sends this type.
    pub const fn is_from_server(self) -> bool {
        self.as_u8() & 0x80 != 0
    }
}

/// The handshake request. Its layout is frozen across versions so any two builds can negotiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The lowest protocol version the client speaks.
    pub min_version: u16,
    /// The highest protocol version the client speaks.
    pub max_version: u16,
    /// The client's name for logs and `weftctl` (UTF-8, at most
    /// [`MAX_CLIENT_NAME_LEN`](super::MAX_CLIENT_NAME_LEN) bytes).
    pub name: &'a str,
}

/// The handshake reply: the chosen version and the node's limits for this session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The version both sides now speak.
    pub version: u16,
    /// The node the client is attached to.
    pub node: NodeId,
    /// The largest payload the node accepts in `Send` (at most [`MAX_PAYLOAD`](super::MAX_PAYLOAD)).
    pub max_payload: u32,
    /// Credits a new flow starts with, unless `FlowOpened` says otherwise.
    pub default_credits: u32,
    /// Flows the client may hold open at once.
    pub max_flows: u16,
    /// Ports the client may hold bound at once.
    pub max_ports: u16,
    /// Groups the client may have joined at once.
    pub max_groups: u16,
}

/// A message delivered to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deliver<'a> {
    /// The client's port it was addressed to.
    pub local_port: Port,
    /// Whether it was addressed to this node or to a group the client joined.
    pub to: DeliveredTo,
    /// The sending node.
    pub source_node: NodeId,
    /// The sending client's port.
    pub source_port: Port,
    /// The network flow id, chosen by the source node.
    pub flow: FlowId,
    /// The end-to-end sequence number within the flow.
    pub seq: u64,
    /// Time since the source sent it, in microseconds, accumulated hop by hop.
    pub age_us: u32,
    /// The application's bytes.
    pub payload: &'a [u8],
}

/// An error reply (with the failed request's id) or a session refusal (request id 0 or the
/// `Hello`'s id, followed by close).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorMsg<'a> {
    /// What went wrong.
    pub code: ErrorCode,
    /// A number whose meaning depends on the code (a limit, a port, a flow handle, a version
    /// range); see [`ErrorCode`].
    pub detail: u32,
    /// Human-readable text (UTF-8, at most [`MAX_ERROR_TEXT_LEN`] bytes).
    pub text: &'a str,
}

impl ErrorMsg<'_> {
    /// The refusal for a client whose version range does not meet the server's `min..=max`.
    pub const fn unsupported_version(min: u16, max: u16) -> ErrorMsg<'static> {
        ErrorMsg {
            code: ErrorCode::UnsupportedVersion,
            detail: ((min as u32) << 16) | max as u32,
            text: "no common protocol version",
        }
    }

    /// The server's supported version range, for an [`ErrorCode::UnsupportedVersion`] error.
    pub const fn supported_range(&self) -> Option<(u16, u16)> {
        match self.code {
            ErrorCode::UnsupportedVersion => {
                let [a, b, c, d] = self.detail.to_be_bytes();
                Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])))
            }
            _ => None,
        }
    }
}

/// A fixed buffer for an `Error` text, written with `write!` and never allocating. Text beyond
/// [`MAX_ERROR_TEXT_LEN`] bytes is cut at a character boundary; writing never fails.
#[derive(Clone)]
pub struct ErrorText {
    buf: [u8; MAX_ERROR_TEXT_LEN],
    len: usize,
}

impl ErrorText {
    /// An empty text.
    pub const fn new() -> Self {
        ErrorText {
            buf: [0; MAX_ERROR_TEXT_LEN],
            len: 0,
        }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl Default for ErrorText {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ErrorText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Write for ErrorText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MAX_ERROR_TEXT_LEN - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.len..self.len + take),
            s.as_bytes().get(..take),
        ) {
            dst.copy_from_slice(src);
            self.len += take;
        }
        Ok(())
    }
}

/// A message a client sends to its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientMessage<'a> {
    /// Opens the handshake; must be the first message.
    Hello(Hello<'a>),
    /// Binds a port (`Port(0)`: any free port); answered by `Bound`.
    Bind {
        /// The port wanted, or 0.
        port: Port,
    },
    /// Releases a bound port, closing the flows that send from it; answered by `Ok`.
    Unbind {
        /// The port.
        port: Port,
    },
    /// Opens a flow; answered by `FlowOpened`.
    OpenFlow(OpenFlow),
    /// Closes a flow, dropping what it still has queued; answered by `Ok`.
    CloseFlow {
        /// The flow.
        flow: FlowHandle,
    },
    /// Sends one message on a flow, consuming one credit; no reply unless it fails.
    Send {
        /// The flow.
        flow: FlowHandle,
        /// The application's bytes (at most the `Welcome`'s `max_payload`).
        payload: &'a [u8],
    },
    /// Joins a group, so messages to it are delivered to this client; answered by `Ok`.
    Join {
        /// The group.
        group: GroupId,
    },
    /// Leaves a group; answered by `Ok`.
    Leave {
        /// The group.
        group: GroupId,
    },
    /// The client is closing; the node releases its ports, flows and groups.
    Goodbye,
}

/// A message a node sends to a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerMessage<'a> {
    /// Accepts the handshake.
    Welcome(Welcome),
    /// The port bound for a `Bind`.
    Bound {
        /// The port now bound.
        port: Port,
    },
    /// The flow opened for an `OpenFlow`.
    FlowOpened {
        /// The flow's handle on this connection.
        flow: FlowHandle,
        /// Credits (messages) the flow starts with.
        credits: u32,
    },
    /// Success for a request that has nothing else to say.
    Ok,
    /// A message for one of the client's ports or groups.
    Deliver(Deliver<'a>),
    /// More credits for a flow.
    Credit {
        /// The flow.
        flow: FlowHandle,
        /// Credits (messages) added.
        credits: u32,
    },
    /// A request failed, or the session is refused.
    Error(ErrorMsg<'a>),
    /// The node is closing the session.
    Goodbye,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use core::fmt::Write;

    use super::*;

    #[test]
    fn msg_type_codes_round_trip() {
        let mut known = 0;
        for v in 0..=u8::MAX {
            if let Some(t) = MsgType::from_u8(v) {
                assert_eq!(t.as_u8(), v);
                assert_eq!(t.is_from_server(), v >= 0x80);
                known += 1;
            }
        }
        assert_eq!(known, 17);
    }

    #[test]
    fn error_text_truncates_at_a_char_boundary() {
        let mut t = ErrorText::new();
        write!(t, "{}", "a".repeat(MAX_ERROR_TEXT_LEN - 1)).unwrap();
        write!(t, "é and more").unwrap(); // 'é' is 2 bytes: it no longer fits.
        assert_eq!(t.as_str().len(), MAX_ERROR_TEXT_LEN - 1);
        assert!(t.as_str().bytes().all(|b| b == b'a'));
        let mut t = ErrorText::new();
        write!(t, "port {} in use", 80).unwrap();
        assert_eq!(t.as_str(), "port 80 in use");
    }

    #[test]
    fn version_range_rides_in_detail() {
        let e = ErrorMsg::unsupported_version(2, 7);
        assert_eq!(e.detail, 0x0002_0007);
        assert_eq!(e.supported_range(), Some((2, 7)));
        let other = ErrorMsg {
            code: ErrorCode::BadRequest,
            detail: 0x0002_0007,
            text: "",
        };
        assert_eq!(other.supported_range(), None);
    }
}
