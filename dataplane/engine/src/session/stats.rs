//! The session server's counters.

use weft_shared::DropReason;
use weft_shared::session::ErrorCode;

use super::DeliverError;

/// Slots in [`SessionStats::errors_sent`]: one per error code value 0..=14, where 0 counts codes
/// this build has no name for.
pub const ERROR_CODE_SLOTS: usize = 15;

/// Counters of a [`SessionServer`](super::SessionServer), since it was bound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Clients connected now (handshake done or not).
    pub clients: u32,
    /// Connections accepted and given a client slot.
    pub accepted: u64,
    /// Connections refused because `max_clients` were connected.
    pub refused: u64,
    /// `accept` calls that failed with an error other than "would block".
    pub accept_errors: u64,
    /// Client connections that ended (by `Goodbye`, end of stream, error or a fatal frame).
    pub closed: u64,
    /// Handshakes completed with `Welcome`.
    pub handshakes: u64,
    /// Frames received from clients.
    pub frames_in: u64,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// `Send`s the sink accepted.
    pub sends: u64,
    /// `Send`s the sink refused, by [`DropReason::index`].
    pub send_drops: [u64; DropReason::COUNT],
    /// `Deliver`s queued to a client.
    pub delivers: u64,
    /// `Deliver`s dropped, by [`DeliverError::index`].
    pub deliver_drops: [u64; DeliverError::COUNT],
    /// `Error` replies sent, by code value (see [`ERROR_CODE_SLOTS`]).
    pub errors_sent: [u64; ERROR_CODE_SLOTS],
    /// Credits returned to clients in `Credit` frames.
    pub credits_returned: u64,
    /// Replies that found no room in the output buffer. The reply reserve makes this impossible;
    /// if it ever counts, the client was closed instead of losing a reply.
    pub reply_overflows: u64,
}

impl SessionStats {
    /// `Error` replies sent with `code`.
    pub fn errors(&self, code: ErrorCode) -> u64 {
        self.errors_sent
            .get(error_slot(code))
            .copied()
            .unwrap_or_default()
    }

    /// `Deliver`s dropped for `reason`.
    pub fn deliver_drops(&self, reason: DeliverError) -> u64 {
        self.deliver_drops
            .get(reason.index())
            .copied()
            .unwrap_or_default()
    }

    /// `Send`s the sink refused for reasons with the same counter as `reason`.
    pub fn send_drops(&self, reason: DropReason) -> u64 {
        self.send_drops
            .get(reason.index())
            .copied()
            .unwrap_or_default()
    }

    /// Counts one `Error` reply with `code`.
    pub(crate) fn count_error(&mut self, code: ErrorCode) {
        if let Some(c) = self.errors_sent.get_mut(error_slot(code)) {
            *c += 1;
        }
    }
}

/// The counter slot of an error code: its value if this build names it, else 0.
fn error_slot(code: ErrorCode) -> usize {
    match code {
        ErrorCode::Other(_) => 0,
        known => usize::from(known.as_u16()).min(ERROR_CODE_SLOTS - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_code_has_its_own_slot() {
        let mut s = SessionStats::default();
        for v in 1..ERROR_CODE_SLOTS as u16 {
            s.count_error(ErrorCode::from_u16(v));
        }
        s.count_error(ErrorCode::Other(999));
        assert!(s.errors_sent.iter().all(|&n| n == 1));
        assert_eq!(s.errors(ErrorCode::NoCredit), 1);
        assert_eq!(s.errors(ErrorCode::Other(5000)), 1);
    }
}
