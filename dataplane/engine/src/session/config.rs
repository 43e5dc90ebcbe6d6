//! The session server's settings and the sizes derived from them.

use std::ops::RangeInclusive;
use weft_shared::shm::MAX_LOCAL_GROUPS;

use weft_shared::session::{
    DEFAULT_CREDITS_PER_FLOW, DEFAULT_MAX_FLOWS_PER_CLIENT, DEFAULT_MAX_GROUPS_PER_CLIENT,
    DEFAULT_MAX_PORTS_PER_CLIENT, DEFAULT_RECV_BUF_SIZE, DEFAULT_SOCKET_MODE, FRAME_HEADER_LEN,
    MAX_ERROR_TEXT_LEN, MAX_FRAME_SIZE, MAX_FRAMES_PER_BATCH, MAX_PAYLOAD,
};

/// Default limit on connected clients.
pub const DEFAULT_MAX_CLIENTS: usize = 64;
/// Default size of a client's output buffer: 1 MiB.
pub const DEFAULT_OUT_BUF_BYTES: usize = 1 << 20;
/// Default range `Bind { port: 0 }` picks from (the IANA dynamic range, as for UDP).
pub const DEFAULT_EPHEMERAL_PORTS: RangeInclusive<u16> = 49_152..=65_535;
/// Default largest `k` a k-paths flow may ask for.
pub const DEFAULT_MAX_K_PATHS: u8 = 8;
/// Default largest NM-strikes `n` or `m` a realtime flow may ask for.
pub const DEFAULT_MAX_STRIKES: u8 = 16;

/// The largest reply frame the server writes: an `Error` with a full text.
const MAX_REPLY_FRAME: usize = FRAME_HEADER_LEN + 8 + MAX_ERROR_TEXT_LEN;
/// A `Credit` frame: header plus flow handle and count.
const CREDIT_FRAME: usize = FRAME_HEADER_LEN + 8;

/// Output space kept free for replies: one reply per frame of a batch, one `Credit` per flow a
/// batch touched (at most one per frame), plus a closing `Error` and a `Goodbye`. The server
/// starts a batch only when this much is free, and a `Deliver` may not eat into it, so a reply is
/// never dropped.
pub const REPLY_RESERVE: usize =
    (MAX_FRAMES_PER_BATCH + 2) * MAX_REPLY_FRAME + MAX_FRAMES_PER_BATCH * CREDIT_FRAME;

/// The smallest output buffer: the reply reserve plus one full-size `Deliver`.
pub const MIN_OUT_BUF_BYTES: usize = REPLY_RESERVE + MAX_FRAME_SIZE;

// The default output buffer holds the reserve and more than a full-size Deliver.
const _: () = assert!(MIN_OUT_BUF_BYTES < DEFAULT_OUT_BUF_BYTES);

/// How the session server behaves. [`Default`] gives the protocol's default limits.
///
/// Memory per connected client is about `recv_buf_bytes + out_buf_bytes` plus small tables
/// (`max_flows` flow slots, `max_ports` and `max_groups` entries), allocated when a client slot
/// is first used and kept for the next client of that slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Clients connected at once; one more is accepted, told `Error { Internal }` and closed.
    /// At most 65,535.
    pub max_clients: usize,
    /// Credits (messages) a new flow starts with; announced as `Welcome.default_credits`.
    pub credits_per_flow: u32,
    /// Credits a new reliable flow starts with: its end-to-end window (messages outstanding
    /// until the far end delivers them). They come back as messages are delivered there.
    pub reliable_window: u32,
    /// Size of a client's output buffer (replies and `Deliver`s waiting for the socket); raised
    /// to [`MIN_OUT_BUF_BYTES`] if smaller.
    pub out_buf_bytes: usize,
    /// Size of a client's receive buffer; raised to `MAX_FRAME_SIZE` if smaller.
    pub recv_buf_bytes: usize,
    /// Permission bits of the socket file (see `docs/session.md` §8).
    pub socket_mode: u32,
    /// Largest `Send` payload accepted, announced as `Welcome.max_payload`; at most
    /// `MAX_PAYLOAD`.
    pub max_payload: u32,
    /// Flows a client may hold open at once.
    pub max_flows: u16,
    /// Ports a client may hold bound at once.
    pub max_ports: u16,
    /// Groups a client may have joined at once.
    pub max_groups: u16,
    /// Distinct groups this node's clients may have joined at once (the control plane's view
    /// of the node's membership holds at most [`MAX_LOCAL_GROUPS`]).
    pub max_node_groups: u32,
    /// The ports `Bind { port: 0 }` picks from. Ports in it may also be bound by number.
    pub ephemeral_ports: RangeInclusive<u16>,
    /// Largest `k` for k-paths routing; a larger one is refused with `Unsupported`.
    pub max_k_paths: u8,
    /// Largest NM-strikes `n` and `m`; larger ones are refused with `Unsupported`.
    pub max_strikes: u8,
}

/// The default end-to-end window of a reliable flow: 1,024 messages (1.4 MB of 1,396-byte
/// messages at each end).
pub(crate) const DEFAULT_RELIABLE_WINDOW: u32 = 1024;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_clients: DEFAULT_MAX_CLIENTS,
            credits_per_flow: DEFAULT_CREDITS_PER_FLOW,
            reliable_window: DEFAULT_RELIABLE_WINDOW,
            out_buf_bytes: DEFAULT_OUT_BUF_BYTES,
            recv_buf_bytes: DEFAULT_RECV_BUF_SIZE,
            socket_mode: DEFAULT_SOCKET_MODE,
            max_payload: MAX_PAYLOAD as u32,
            max_flows: DEFAULT_MAX_FLOWS_PER_CLIENT,
            max_ports: DEFAULT_MAX_PORTS_PER_CLIENT,
            max_groups: DEFAULT_MAX_GROUPS_PER_CLIENT,
            max_node_groups: MAX_LOCAL_GROUPS as u32,
            ephemeral_ports: DEFAULT_EPHEMERAL_PORTS,
            max_k_paths: DEFAULT_MAX_K_PATHS,
            max_strikes: DEFAULT_MAX_STRIKES,
        }
    }
}

impl SessionConfig {
    /// The configuration with every value brought into its legal range: buffers at least their
    /// minimum, `max_payload` at most the protocol's, `max_clients` at most 65,535, and an empty
    /// or port-0 ephemeral range replaced by the default.
    pub(crate) fn normalized(mut self) -> Self {
        self.max_clients = self.max_clients.min(usize::from(u16::MAX));
        self.out_buf_bytes = self.out_buf_bytes.max(MIN_OUT_BUF_BYTES);
        self.recv_buf_bytes = self.recv_buf_bytes.max(MAX_FRAME_SIZE);
        self.max_payload = self.max_payload.min(MAX_PAYLOAD as u32);
        if self.ephemeral_ports.is_empty() || *self.ephemeral_ports.start() == 0 {
            self.ephemeral_ports = DEFAULT_EPHEMERAL_PORTS;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizing_raises_small_buffers_and_fixes_ranges() {
        let c = SessionConfig {
            max_clients: 1 << 20,
            out_buf_bytes: 10,
            recv_buf_bytes: 10,
            max_payload: u32::MAX,
            #[allow(clippy::reversed_empty_ranges, reason = "testing an empty range")]
            ephemeral_ports: 10..=5,
            ..SessionConfig::default()
        }
        .normalized();
        assert_eq!(c.max_clients, 65_535);
        assert_eq!(c.out_buf_bytes, MIN_OUT_BUF_BYTES);
        assert_eq!(c.recv_buf_bytes, MAX_FRAME_SIZE);
        assert_eq!(c.max_payload, MAX_PAYLOAD as u32);
        assert_eq!(c.ephemeral_ports, DEFAULT_EPHEMERAL_PORTS);
        let zero = SessionConfig {
            ephemeral_ports: 0..=10,
            ..SessionConfig::default()
        };
        assert_eq!(zero.normalized().ephemeral_ports, DEFAULT_EPHEMERAL_PORTS);
    }
}
