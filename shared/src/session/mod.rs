//! The session protocol between Weft clients and their local node's data plane.
//!
//! Applications reach the overlay through a Unix stream socket on their own node (path
//! `session_socket` in the config). Everything on that socket is a length-prefixed frame
//! ([`frame`]); the first exchange is a version handshake (`Hello` → `Welcome` or `Error`), after
//! which the client binds ports, opens flows, sends, joins groups, and the node delivers
//! messages and grants credits ([`message`]). The full specification, with byte layouts, is
//! `docs/session.md`.
//!
//! This module is a codec plus a few std socket helpers ([`socket`]); the server (in the engine)
//! and the client library (`weft-client`) drive it. The message path never allocates: frames
//! are encoded into caller-supplied buffers with [`FrameWriter`] and decoded from borrowed bytes
//! with [`FrameReader`], and decoded messages borrow their payloads and strings from the
//! receive buffer.
//!
//! # Error handling, in one place
//!
//! - A bad *frame* (length prefix below [`MIN_FRAME_LEN`] or above the frame limit) is a
//!   [`FrameError`]: the stream can no longer be trusted to be in sync, so the server sends one
//!   `Error` with request id 0 (best effort) and closes the connection.
//! - A well-framed but bad *message* is a [`DecodeError`]: the server replies `Error` with the
//!   request's id and the code from [`DecodeError::code`], and the connection stays open. Before
//!   a successful handshake every error closes the connection.
//! - Decoding never panics, whatever the bytes (shown by proptests in `shared/tests`).
//!
//! # Flow control, for the client library
//!
//! The node grants each flow credits, counted in messages: `FlowOpened` carries the initial
//! grant, `Credit` adds more, and every accepted `Send` consumes one. A `Send` without credit is
//! refused with [`ErrorCode::NoCredit`] for that flow only, so one blocked flow never stalls the
//! client's other flows. The client library keeps a credit counter per flow handle and never
//! sends without credit: a non-blocking send on a flow at zero credit returns `WouldBlock`; a
//! blocking send reads from the socket (queueing `Deliver`s for their ports) until a `Credit`
//! for that flow arrives.

mod codec;
pub mod error;
pub mod frame;
pub mod message;
pub mod socket;
mod types;

pub use error::{DecodeError, EncodeError, ErrorCode, FrameError};
pub use frame::{Encode, Frame, FrameHeader, FrameReader, FrameWriter, RecvBuf, encode_frame};
pub use message::{
    ClientMessage, Deliver, ErrorMsg, ErrorText, Hello, MsgType, ServerMessage, Welcome,
};
pub use socket::{DEFAULT_SOCKET_MODE, SocketError, bind_listener};
pub use types::{
    AddrKind, DeliveredTo, DeliveryMode, Destination, FlowHandle, LinkProtocol, MAX_PACK_DELAY_US,
    OpenFlow, RoutingMode, Strikes,
};

/// The protocol version this build prefers (the highest it speaks).
pub const PROTOCOL_VERSION: u16 = 1;
/// The lowest protocol version this build speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;
/// The highest protocol version this build speaks.
pub const MAX_PROTOCOL_VERSION: u16 = PROTOCOL_VERSION;

/// The first four bytes of every `Hello` body: "WEFT" in ASCII, so a node can tell a Weft client
/// from something else that connected to its socket.
pub const HELLO_MAGIC: u32 = u32::from_be_bytes(*b"WEFT");

/// Bytes before a frame's body: the u32 length plus the 8-byte header it covers.
pub const FRAME_HEADER_LEN: usize = 12;
/// The smallest legal value of a frame's length field: a header with an empty body.
pub const MIN_FRAME_LEN: u32 = 8;
/// The largest whole frame (length field included) either side sends or accepts.
pub const MAX_FRAME_SIZE: usize = 65_536;
/// The largest payload of a `Send` or `Deliver`; a node may announce a smaller one in `Welcome`.
pub const MAX_PAYLOAD: usize = 65_000;
/// The longest client name in `Hello`, in bytes of UTF-8.
pub const MAX_CLIENT_NAME_LEN: usize = 64;
/// The longest text in an `Error`, in bytes of UTF-8.
pub const MAX_ERROR_TEXT_LEN: usize = 256;

/// Frames the server handles from one connection before it turns to other work (other clients,
/// the network); the rest stay in that connection's receive buffer for the next turn.
pub const MAX_FRAMES_PER_BATCH: usize = 64;
/// Default limit on flows a client may hold open at once.
pub const DEFAULT_MAX_FLOWS_PER_CLIENT: u16 = 256;
/// Default limit on ports a client may hold bound at once.
pub const DEFAULT_MAX_PORTS_PER_CLIENT: u16 = 64;
/// Default limit on groups a client may have joined at once.
pub const DEFAULT_MAX_GROUPS_PER_CLIENT: u16 = 64;
/// Default credits (messages) a new flow starts with.
pub const DEFAULT_CREDITS_PER_FLOW: u32 = 64;
/// A receive buffer size that holds several full-size frames (at least [`MAX_FRAME_SIZE`]).
pub const DEFAULT_RECV_BUF_SIZE: usize = 4 * MAX_FRAME_SIZE;

/// The version both sides speak, given the client's and the server's supported ranges: the
/// highest version in both, or `None` if the ranges do not overlap (or either is empty).
pub fn negotiate_version(client: (u16, u16), server: (u16, u16)) -> Option<u16> {
    let low = client.0.max(server.0);
    let high = client.1.min(server.1);
    (low <= high).then_some(high)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate_version((1, 3), (2, 5)), Some(3));
        assert_eq!(negotiate_version((1, 1), (1, 1)), Some(1));
        assert_eq!(negotiate_version((4, 6), (1, 3)), None);
        assert_eq!(negotiate_version((1, 3), (4, 6)), None);
        // An empty (inverted) range never negotiates.
        assert_eq!(negotiate_version((3, 1), (1, 3)), None);
    }

    #[test]
    fn limits_are_consistent() {
        // The largest message (a Deliver: 28 fixed bytes) with a full payload fits in a frame.
        const { assert!(FRAME_HEADER_LEN + 28 + MAX_PAYLOAD <= MAX_FRAME_SIZE) };
        const { assert!(DEFAULT_RECV_BUF_SIZE >= MAX_FRAME_SIZE) };
        assert_eq!(&HELLO_MAGIC.to_be_bytes(), b"WEFT");
    }
}
