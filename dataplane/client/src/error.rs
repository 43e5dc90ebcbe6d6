//! The client library's errors: [`ClientError`] for everything a call can fail with, and
//! [`ServerError`], the node's `Error` replies as owned, typed values.
//!
//! Errors are typed so that an application can react to the ones it expects (a port in use,
//! no credit in nonblocking mode) and report the rest with a message that says what to do.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use weft_shared::ids::Port;
use weft_shared::session::{
    DecodeError, EncodeError, ErrorCode, ErrorMsg, FlowHandle, FrameError, MAX_PROTOCOL_VERSION,
    MIN_PROTOCOL_VERSION,
};

/// An `Error` the node sent in reply to a request, or to close the session.
///
/// The node's text is kept where the code alone does not say enough.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ServerError {
    /// The node could not parse a request (unknown type, bad field, bad length): a library bug
    /// or a version skew.
    #[error("the node refused a malformed request: {text}")]
    BadRequest {
        /// The message type for an unknown type, else 0.
        detail: u32,
        /// The node's explanation.
        text: String,
    },
    /// The node speaks no version this client speaks; it sent its own range.
    #[error("the node speaks protocol versions {}..={}", range.0, range.1)]
    UnsupportedVersion {
        /// The node's supported versions, `min..=max`.
        range: (u16, u16),
    },
    /// The node saw a request before the handshake completed: a library bug.
    #[error("the node says the session is not open yet")]
    NotConnected,
    /// A payload or frame exceeded the node's limit.
    #[error("message too large for the node (limit {limit} B)")]
    MessageTooLarge {
        /// The limit in bytes.
        limit: u32,
    },
    /// Another client on this node has bound the port.
    #[error("port {port} is in use by another client")]
    PortInUse {
        /// The port.
        port: Port,
    },
    /// The port is not bound by this client (`open_flow` from it, or `unbind`).
    #[error("port {port} is not bound by this client")]
    PortNotBound {
        /// The port.
        port: Port,
    },
    /// The flow is not open on this connection.
    #[error("flow {} is not open on this connection", flow.0)]
    UnknownFlow {
        /// The flow handle.
        flow: FlowHandle,
    },
    /// A `Send` found its flow without credit and was dropped (the library never does this;
    /// seeing it means the library's credit count and the node's disagree).
    #[error("the node dropped a message on flow {}: no credit", flow.0)]
    NoCredit {
        /// The flow handle.
        flow: FlowHandle,
    },
    /// This client already holds as many ports as the node allows.
    #[error("too many ports bound (the node allows {limit})")]
    TooManyPorts {
        /// The node's limit.
        limit: u32,
    },
    /// This client already holds as many flows as the node allows.
    #[error("too many flows open (the node allows {limit})")]
    TooManyFlows {
        /// The node's limit.
        limit: u32,
    },
    /// This client already joined as many groups as the node allows.
    #[error("too many groups joined (the node allows {limit})")]
    TooManyGroups {
        /// The node's limit.
        limit: u32,
    },
    /// The node does not offer the service or parameters asked for.
    #[error("the node does not support this: {text}")]
    Unsupported {
        /// The node's explanation.
        text: String,
    },
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The node failed internally; the request may be retried.
    #[error("the node failed internally: {text}")]
    Internal {
        /// The node's explanation.
        text: String,
    },
    /// A best-effort message was dropped at the local node: its destination has no route
    /// right now. The session and the flow stay usable; send again later.
    #[error("the node dropped a message: its destination is unreachable now ({text})")]
    Unreachable {
        /// The node's explanation.
        text: String,
    },
    /// A code this library does not know (from a newer node): a generic failure.
    #[error("the node returned error code {code} (detail {detail}): {text}")]
    Other {
        /// The numeric code.
        code: u16,
        /// The code-specific detail.
        detail: u32,
        /// The node's explanation.
        text: String,
    },
}

impl ServerError {
    /// The owned, typed form of an `Error` message.
    pub fn from_msg(msg: &ErrorMsg<'_>) -> Self {
        let text = msg.text.to_owned();
        let detail = msg.detail;
        // Details that name a port or a handle are 16 and 32 bits on the wire.
        let port = Port(u16::try_from(detail).unwrap_or(u16::MAX));
        match msg.code {
            ErrorCode::BadRequest => ServerError::BadRequest { detail, text },
            ErrorCode::UnsupportedVersion => ServerError::UnsupportedVersion {
                range: msg.supported_range().unwrap_or((0, 0)),
            },
            ErrorCode::NotConnected => ServerError::NotConnected,
            ErrorCode::MessageTooLarge => ServerError::MessageTooLarge { limit: detail },
            ErrorCode::PortInUse => ServerError::PortInUse { port },
            ErrorCode::PortNotBound => ServerError::PortNotBound { port },
            ErrorCode::UnknownFlow => ServerError::UnknownFlow {
                flow: FlowHandle(detail),
            },
            ErrorCode::NoCredit => ServerError::NoCredit {
                flow: FlowHandle(detail),
            },
            ErrorCode::TooManyPorts => ServerError::TooManyPorts { limit: detail },
            ErrorCode::TooManyFlows => ServerError::TooManyFlows { limit: detail },
            ErrorCode::TooManyGroups => ServerError::TooManyGroups { limit: detail },
            ErrorCode::Unsupported => ServerError::Unsupported { text },
            ErrorCode::ShuttingDown => ServerError::ShuttingDown,
            ErrorCode::Internal => ServerError::Internal { text },
            ErrorCode::Unreachable => ServerError::Unreachable { text },
            ErrorCode::Other(code) => ServerError::Other { code, detail, text },
        }
    }
}

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// The node said `Goodbye`.
    NodeGoodbye,
    /// The node closed the socket without a `Goodbye` (it stopped or crashed).
    EndOfStream,
    /// The session ended after an earlier fatal error (a protocol violation, a connection-level
    /// `Error` from the node, a failed socket call), returned by the call that met it.
    AfterError,
    /// This client closed it.
    Closed,
}

impl core::fmt::Display for Disconnect {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Disconnect::NodeGoodbye => "the node ended the session (Goodbye)",
            Disconnect::EndOfStream => "the node closed the connection",
            Disconnect::AfterError => "the session ended after an earlier error",
            Disconnect::Closed => "the session was closed by this client",
        })
    }
}

/// The node broke the session protocol. The session is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// A frame's length prefix is impossible: the byte stream is out of step.
    #[error("bad frame from the node: {0}")]
    Frame(#[from] FrameError),
    /// A frame did not decode as a server message.
    #[error("undecodable message from the node: {0}")]
    Decode(#[from] DecodeError),
    /// The node's first reply was neither `Welcome` nor `Error`.
    #[error("the node did not answer Hello with Welcome or Error (got type {msg_type:#04x})")]
    NotWelcome {
        /// The type byte the node sent.
        msg_type: u8,
    },
    /// `Welcome` names a version outside the range this client offered.
    #[error("the node chose protocol version {version}, which this client did not offer")]
    BadVersion {
        /// The version the node chose.
        version: u16,
    },
    /// A reply carries a request id this client is not waiting for.
    #[error("reply (type {msg_type:#04x}) for request id {request_id}, which is not outstanding")]
    UnexpectedReply {
        /// The reply's type byte.
        msg_type: u8,
        /// Its request id.
        request_id: u32,
    },
    /// A reply of the wrong kind for its request (say `Bound` for an `OpenFlow`).
    #[error("reply of type {msg_type:#04x} does not answer a {request}")]
    WrongReply {
        /// The reply's type byte.
        msg_type: u8,
        /// The request it claims to answer.
        request: &'static str,
    },
    /// A second `Welcome` after the handshake.
    #[error("Welcome after the handshake")]
    DuplicateWelcome,
}

/// Why a client call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No node is listening at the socket path: the file is missing, or it is left over from a
    /// node that stopped (connection refused).
    #[error("no Weft node is running at {} ({source}); start the node or check session_socket in its config", path.display())]
    NodeNotRunning {
        /// The socket path.
        path: PathBuf,
        /// The connect error (`NotFound` or `ConnectionRefused`).
        source: io::Error,
    },
    /// The socket exists but this user may not connect: run as the node's user or group.
    #[error("permission denied connecting to {}: run as the node's user or in its group", path.display())]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
        /// The connect error.
        source: io::Error,
    },
    /// Connecting failed for another reason.
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The connect error.
        source: io::Error,
    },
    /// The node and this client share no protocol version; both ranges are given.
    #[error(
        "protocol version mismatch with the node at {}: this client speaks {}..={}, the node speaks {}..={}; upgrade the older side",
        path.display(), client.0, client.1, node.0, node.1
    )]
    VersionMismatch {
        /// The socket path.
        path: PathBuf,
        /// This client's versions, `min..=max`.
        client: (u16, u16),
        /// The node's versions, `min..=max`.
        node: (u16, u16),
    },
    /// The node did not answer `Hello` in time: whatever listens there is not a working node.
    #[error("no handshake reply from {} within {after:?}: is it a Weft node?", path.display())]
    HandshakeTimeout {
        /// The socket path.
        path: PathBuf,
        /// How long the client waited.
        after: Duration,
    },
    /// The node refused the session with an error other than a version mismatch.
    #[error("the node at {} refused the session: {error}", path.display())]
    Refused {
        /// The socket path.
        path: PathBuf,
        /// The node's error.
        error: ServerError,
    },
    /// The node answered a request with an error; the session stays open.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The node broke the protocol; the session is over.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The session has ended; make a new client to reconnect.
    #[error("disconnected: {0}")]
    Disconnected(Disconnect),
    /// The call would have to wait (no credit, no message, socket buffer full) and the client
    /// is in nonblocking mode or this is a `try_` call. Nothing was sent or taken.
    #[error("operation would block")]
    WouldBlock,
    /// A call with a time limit found nothing to do before it passed.
    #[error("timed out")]
    TimedOut,
    /// The queue of delivered messages is full, so the client stopped reading the socket and
    /// this call cannot see the reply or credit it waits for. Nothing was lost: call `recv`
    /// to drain the queue, then retry. (A request made before this was still sent; its late
    /// reply is handled, e.g. a port bound meanwhile is released again.)
    #[error(
        "receive queue full ({messages} messages, {bytes} B): call recv to drain it, then retry"
    )]
    ReceiveQueueFull {
        /// Messages queued.
        messages: usize,
        /// Payload bytes queued.
        bytes: usize,
    },
    /// Too many requests were abandoned (each by a [`ClientError::ReceiveQueueFull`]) whose
    /// replies have not come yet; drain the queue with `recv` first.
    #[error("too many abandoned requests awaiting replies: call recv to drain the queue")]
    TooManyAbandoned,
    /// A payload is larger than the node accepts (its `Welcome.max_payload`).
    #[error("payload of {len} B exceeds the node's limit of {max} B")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The node's limit.
        max: usize,
    },
    /// The flow is not open on this client (closed, or from another client).
    #[error("flow {} is not open on this client", .0.0)]
    UnknownFlow(FlowHandle),
    /// A request could not be encoded (a field the wire cannot carry, a name too long).
    #[error("cannot encode request: {0}")]
    Encode(#[from] EncodeError),
    /// A socket call failed; the session is over.
    #[error("session socket error: {0}")]
    Io(#[from] io::Error),
}

impl ClientError {
    /// Whether this is [`ClientError::WouldBlock`].
    pub fn is_would_block(&self) -> bool {
        matches!(self, ClientError::WouldBlock)
    }

    /// The error for a version mismatch with a node that speaks `node`.
    pub(crate) fn version_mismatch(path: PathBuf, node: (u16, u16)) -> Self {
        ClientError::VersionMismatch {
            path,
            client: (MIN_PROTOCOL_VERSION, MAX_PROTOCOL_VERSION),
            node,
        }
    }

    /// The error for a failed `connect` to `path`, classified so the message says what to do.
    pub(crate) fn connect(path: PathBuf, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                ClientError::NodeNotRunning { path, source }
            }
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { path, source },
            _ => ClientError::Connect { path, source },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use weft_shared::session::ErrorText;

    use super::*;

    #[test]
    fn server_errors_keep_their_detail() {
        let msg = ErrorMsg {
            code: ErrorCode::PortInUse,
            detail: 7,
            text: "",
        };
        assert_eq!(
            ServerError::from_msg(&msg),
            ServerError::PortInUse { port: Port(7) }
        );
        let v = ErrorMsg::unsupported_version(2, 3);
        assert_eq!(
            ServerError::from_msg(&v),
            ServerError::UnsupportedVersion { range: (2, 3) }
        );
        let mut t = ErrorText::new();
        core::fmt::Write::write_str(&mut t, "later").unwrap();
        let other = ErrorMsg {
            code: ErrorCode::Other(99),
            detail: 1,
            text: t.as_str(),
        };
        assert_eq!(
            ServerError::from_msg(&other).to_string(),
            "the node returned error code 99 (detail 1): later"
        );
    }

    #[test]
    fn connect_errors_name_the_path_and_the_cause() {
        let e = ClientError::connect(
            PathBuf::from("/run/weft/x.sock"),
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert!(matches!(e, ClientError::NodeNotRunning { .. }));
        assert!(e.to_string().contains("/run/weft/x.sock"), "{e}");
        let e = ClientError::version_mismatch(PathBuf::from("/s"), (4, 6));
        let text = e.to_string();
        assert!(text.contains("1..=1") && text.contains("4..=6"), "{text}");
    }
}
