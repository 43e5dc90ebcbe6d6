//! Session protocol errors: framing errors (fatal), decode and encode errors, and the stable
//! numeric error codes carried in `Error` messages.

use thiserror::Error;

/// The code of an `Error` message. The numeric values are stable across protocol versions: new
/// codes may be added, none is ever renumbered or reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request was malformed: unknown message type, bad field, bad length, reserved bits.
    BadRequest,
    /// No common protocol version; `detail` holds the server's range (see
    /// [`ErrorMsg::supported_range`](super::ErrorMsg::supported_range)).
    UnsupportedVersion,
    /// A request other than `Hello` arrived before a successful handshake.
    NotConnected,
    /// A frame or payload exceeded a limit; `detail` holds the limit in bytes.
    MessageTooLarge,
    /// The port asked for in `Bind` is bound by another client; `detail` holds the port.
    PortInUse,
    /// The port in `OpenFlow` or `Unbind` is not bound by this client; `detail` holds the port.
    PortNotBound,
    /// The flow handle is not open on this connection; `detail` holds the handle.
    UnknownFlow,
    /// A `Send` found its flow without credit and was dropped; `detail` holds the handle.
    NoCredit,
    /// The client already holds its maximum of bound ports; `detail` holds the limit.
    TooManyPorts,
    /// The client already holds its maximum of open flows; `detail` holds the limit.
    TooManyFlows,
    /// The client already holds its maximum of joined groups; `detail` holds the limit.
    TooManyGroups,
    /// The node does not offer the requested service (protocol, routing mode or parameters).
    Unsupported,
    /// The node is shutting down and takes no new requests.
    ShuttingDown,
    /// The node failed internally; the request may be retried.
    Internal,
    /// A best-effort `Send` was dropped because its destination has no route from this node
    /// right now (a failure not yet routed around); `detail` holds the drop reason's index.
    /// The flow stays usable: later sends go through once a route exists.
    Unreachable,
    /// A code this build does not know (sent by a newer peer); treat it as a generic failure.
    Other(u16),
}

impl ErrorCode {
    /// The code's stable value on the wire.
    pub const fn as_u16(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 1,
            ErrorCode::UnsupportedVersion => 2,
            ErrorCode::NotConnected => 3,
            ErrorCode::MessageTooLarge => 4,
            ErrorCode::PortInUse => 5,
            ErrorCode::PortNotBound => 6,
            ErrorCode::UnknownFlow => 7,
            ErrorCode::NoCredit => 8,
            ErrorCode::TooManyPorts => 9,
            ErrorCode::TooManyFlows => 10,
            ErrorCode::TooManyGroups => 11,
            ErrorCode::Unsupported => 12,
            ErrorCode::ShuttingDown => 13,
            ErrorCode::Internal => 14,
            ErrorCode::Unreachable => 15,
            ErrorCode::Other(v) => v,
        }
    }

    /// The code with wire value `v`; values this build does not know become [`ErrorCode::Other`].
    pub const fn from_u16(v: u16) -> Self {
        match v {
            1 => ErrorCode::BadRequest,
            2 => ErrorCode::UnsupportedVersion,
            3 => ErrorCode::NotConnected,
            4 => ErrorCode::MessageTooLarge,
            5 => ErrorCode::PortInUse,
            6 => ErrorCode::PortNotBound,
            7 => ErrorCode::UnknownFlow,
            8 => ErrorCode::NoCredit,
            9 => ErrorCode::TooManyPorts,
            10 => ErrorCode::TooManyFlows,
            11 => ErrorCode::TooManyGroups,
            12 => ErrorCode::Unsupported,
            13 => ErrorCode::ShuttingDown,
            14 => ErrorCode::Internal,
            15 => ErrorCode::Unreachable,
            other => ErrorCode::Other(other),
        }
    }
}

/// A frame whose length prefix cannot be right. The byte stream is out of sync, so the
/// connection is closed (after a best-effort `Error` with request id 0 and [`FrameError::code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The length field is below [`MIN_FRAME_LEN`](super::MIN_FRAME_LEN): no room for a header.
    #[error("frame length {len} is shorter than the 8-byte header")]
    TooShort {
        /// The length field's value.
        len: u32,
    },
    /// The whole frame (length field included) would exceed the frame size limit.
    #[error("frame of {size} B exceeds the limit of {max} B")]
    TooLarge {
        /// The frame's size in bytes, length field included.
        size: u64,
        /// The limit in bytes.
        max: u32,
    },
}

impl FrameError {
    /// The code for the `Error` sent before closing.
    pub const fn code(self) -> ErrorCode {
        match self {
            FrameError::TooShort { .. } => ErrorCode::BadRequest,
            FrameError::TooLarge { .. } => ErrorCode::MessageTooLarge,
        }
    }

    /// The `detail` for that `Error`: the limit for an oversized frame, else the length field.
    pub const fn detail(self) -> u32 {
        match self {
            FrameError::TooShort { len } => len,
            FrameError::TooLarge { max, .. } => max,
        }
    }
}

/// A well-framed message that does not decode. The server replies `Error` (with
/// [`DecodeError::code`] and [`DecodeError::detail`]) and keeps the connection, unless the
/// handshake has not completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The message type is unknown, or not one this side receives.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// The body is shorter than the message's fixed part.
    #[error("{msg} body too short: need {needed} B, got {got}")]
    Truncated {
        /// The message being decoded.
        msg: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// A message with a fixed size has bytes after its fixed part.
    #[error("{msg} has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// The message being decoded.
        msg: &'static str,
        /// Bytes beyond the fixed part.
        extra: usize,
    },
    /// Flags or reserved bits that must be zero in this version are set.
    #[error("reserved bits set in {field}")]
    ReservedBitsSet {
        /// The field with the bits set.
        field: &'static str,
    },
    /// A field holds a value outside its range (an unknown enum code, node id 0, ...).
    #[error("bad {field}: {value}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A payload is larger than [`MAX_PAYLOAD`](super::MAX_PAYLOAD).
    #[error("payload of {len} B exceeds the limit of {max} B")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A text field is longer than its limit.
    #[error("{field} of {len} B exceeds the limit of {max} B")]
    TextTooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A text field is not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    BadUtf8 {
        /// The field.
        field: &'static str,
    },
}

impl DecodeError {
    /// The code to reply with.
    pub const fn code(self) -> ErrorCode {
        match self {
            DecodeError::PayloadTooLarge { .. } => ErrorCode::MessageTooLarge,
            _ => ErrorCode::BadRequest,
        }
    }

    /// The `detail` to reply with: the limit for an oversized payload, the type for an unknown
    /// message type, else 0.
    pub fn detail(self) -> u32 {
        match self {
            DecodeError::PayloadTooLarge { max, .. } => u32::try_from(max).unwrap_or(u32::MAX),
            DecodeError::UnknownType(t) => u32::from(t),
            _ => 0,
        }
    }
}

/// A message that cannot be encoded: the caller's buffer is too small or a field is over a limit.
/// Nothing is written to the caller's frame buffer when this is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The buffer has no room for the frame; flush it and try again.
    #[error("buffer full: frame needs {needed} B, {available} B available")]
    BufferFull {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// A payload is larger than [`MAX_PAYLOAD`](super::MAX_PAYLOAD).
    #[error("payload of {len} B exceeds the limit of {max} B")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A text field is longer than its limit.
    #[error("{field} of {len} B exceeds the limit of {max} B")]
    TextTooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field holds a value the wire format cannot carry (e.g. k-paths with k = 0).
    #[error("bad {field}: {value}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_stable_and_round_trip() {
        // These values are part of the protocol (docs/session.md); changing one is a bug.
        let table = [
            (ErrorCode::BadRequest, 1),
            (ErrorCode::UnsupportedVersion, 2),
            (ErrorCode::NotConnected, 3),
            (ErrorCode::MessageTooLarge, 4),
            (ErrorCode::PortInUse, 5),
            (ErrorCode::PortNotBound, 6),
            (ErrorCode::UnknownFlow, 7),
            (ErrorCode::NoCredit, 8),
            (ErrorCode::TooManyPorts, 9),
            (ErrorCode::TooManyFlows, 10),
            (ErrorCode::TooManyGroups, 11),
            (ErrorCode::Unsupported, 12),
            (ErrorCode::ShuttingDown, 13),
            (ErrorCode::Internal, 14),
            (ErrorCode::Unreachable, 15),
        ];
        for (code, value) in table {
            assert_eq!(code.as_u16(), value, "{code:?}");
            assert_eq!(ErrorCode::from_u16(value), code);
        }
        assert_eq!(ErrorCode::from_u16(0), ErrorCode::Other(0));
        assert_eq!(ErrorCode::from_u16(999), ErrorCode::Other(999));
        assert_eq!(ErrorCode::Other(999).as_u16(), 999);
    }

    #[test]
    fn decode_errors_map_to_reply_codes() {
        let big = DecodeError::PayloadTooLarge {
            len: 70_000,
            max: 65_000,
        };
        assert_eq!(
            (big.code(), big.detail()),
            (ErrorCode::MessageTooLarge, 65_000)
        );
        let unknown = DecodeError::UnknownType(0x42);
        assert_eq!(
            (unknown.code(), unknown.detail()),
            (ErrorCode::BadRequest, 0x42)
        );
        let short = FrameError::TooShort { len: 3 };
        assert_eq!((short.code(), short.detail()), (ErrorCode::BadRequest, 3));
        let huge = FrameError::TooLarge {
            size: 1 << 32,
            max: 65_536,
        };
        assert_eq!(
            (huge.code(), huge.detail()),
            (ErrorCode::MessageTooLarge, 65_536)
        );
    }
}
