//! The fields of a link hello as the monitor sees them, independent of the wire layout.
//!
//! The engine maps these to and from the wire hello record; the monitor never touches bytes.

use weft_shared::ids::Incarnation;

use super::config::VersionRange;

/// One hello, received from the peer or to be sent to it on one path.
///
/// Times are the sender's own monotonic nanoseconds: the two nodes' clocks are not comparable, so
/// RTT comes from the echo (our time, handed back) minus the time the peer held it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloFields {
    /// The sender's hello sequence number on this path; +1 per hello, wrapping.
    pub seq: u32,
    /// When the sender sent this hello, in its own clock (ns); never 0.
    pub tx_time_ns: u64,
    /// The `tx_time_ns` of the last hello the sender received from us on this path, or 0 if it has
    /// none (yet, or since we restarted).
    pub echo_tx_time_ns: u64,
    /// How long the sender held that echoed hello before sending this one (us).
    pub echo_held_us: u32,
    /// The sender's incarnation.
    pub incarnation: Incarnation,
    /// Hash of the sender's overlay config.
    pub config_hash: u64,
    /// Wire versions the sender speaks.
    pub versions: VersionRange,
    /// The sender's loss estimate of our hellos on this path (ppm), if it has one. It is how we
    /// learn the loss of our direction; the wire may leave it out (`None`).
    pub rx_loss_ppm: Option<u32>,
}

/// Why a received hello did not count towards the path's liveness.
///
/// None of these is an error to log per packet; the engine may count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloIgnored {
    /// The path id is not one of this link's paths (`path_count` or above).
    UnknownPath(u8),
    /// The peer's config hash or version range does not match ours (the path is in
    /// [`PathState::Mismatch`](super::PathState::Mismatch)).
    Mismatch,
    /// The hello carries the incarnation the peer had before its latest restart: a straggler.
    StaleIncarnation,
    /// This sequence number was already received.
    Duplicate,
    /// The sequence number is older than the loss window (or than the first one seen).
    TooOld,
}
