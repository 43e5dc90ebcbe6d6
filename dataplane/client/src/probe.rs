//! The probe header `weft-send` puts at the start of each payload, and the clock it uses.
//!
//! ```text
//!  0        4              8                      16                     24
//!  +--------+--------------+----------------------+----------------------+---- filler ----
//!  | "WFTP" | flow index   | sequence (u64)       | send time, ns (u64)  |
//!  +--------+--------------+----------------------+----------------------+----------------
//! ```
//!
//! All fields are big-endian. The send time is `CLOCK_MONOTONIC` in nanoseconds, read just
//! before the batch holding the message is written. Processes on one host share that clock,
//! so `weft-recv` can compute one-way latency from it; across hosts the clocks are unrelated
//! and the latency is only meaningful if they are synchronised (and even then monotonic clocks
//! start at boot, so use it on one host).

use nix::time::{ClockId, clock_gettime};

/// The magic at the start of a probe payload: "WFTP".
pub const PROBE_MAGIC: [u8; 4] = *b"WFTP";

/// Bytes of the probe header, and the smallest payload `weft-send` sends.
pub const PROBE_HEADER_LEN: usize = 24;

/// The header of one probe payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProbeHeader {
    /// Which of the sender's flows carried it (0-based).
    pub flow_index: u32,
    /// Its sequence number within that flow, from 0.
    pub seq: u64,
    /// When it was sent: `CLOCK_MONOTONIC` in nanoseconds.
    pub sent_ns: u64,
}

impl ProbeHeader {
    /// Writes the header at the start of `payload`; `false` (nothing written) if the payload is
    /// shorter than [`PROBE_HEADER_LEN`].
    pub fn write(&self, payload: &mut [u8]) -> bool {
        let Some(head) = payload.first_chunk_mut::<PROBE_HEADER_LEN>() else {
            return false;
        };
        let (magic, rest) = head.split_at_mut(4);
        let (index, rest) = rest.split_at_mut(4);
        let (seq, sent) = rest.split_at_mut(8);
        magic.copy_from_slice(&PROBE_MAGIC);
        index.copy_from_slice(&self.flow_index.to_be_bytes());
        seq.copy_from_slice(&self.seq.to_be_bytes());
        sent.copy_from_slice(&self.sent_ns.to_be_bytes());
        true
    }

    /// Reads the header at the start of `payload`; `None` if it is too short or lacks the
    /// magic.
    pub fn read(payload: &[u8]) -> Option<Self> {
        let head = payload.first_chunk::<PROBE_HEADER_LEN>()?;
        let (magic, rest) = head.split_first_chunk::<4>()?;
        if *magic != PROBE_MAGIC {
            return None;
        }
        let (index, rest) = rest.split_first_chunk::<4>()?;
        let (seq, rest) = rest.split_first_chunk::<8>()?;
        let sent = rest.first_chunk::<8>()?;
        Some(ProbeHeader {
            flow_index: u32::from_be_bytes(*index),
            seq: u64::from_be_bytes(*seq),
            sent_ns: u64::from_be_bytes(*sent),
        })
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (0 if the clock cannot be read, which Linux never
/// does for this clock).
pub fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
        let nanos = u64::try_from(t.tv_nsec()).unwrap_or(0);
        secs.saturating_mul(1_000_000_000).saturating_add(nanos)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_has_fixed_bytes() {
        let h = ProbeHeader {
            flow_index: 2,
            seq: 0x0102_0304_0506_0708,
            sent_ns: 9,
        };
        let mut p = [0xAAu8; 30];
        assert!(h.write(&mut p));
        assert_eq!(&p[..8], b"WFTP\0\0\0\x02");
        assert_eq!(&p[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&p[24..], &[0xAA; 6], "filler untouched");
        assert_eq!(ProbeHeader::read(&p), Some(h));
        assert!(!h.write(&mut [0; 23]));
        assert_eq!(ProbeHeader::read(&p[..23]), None);
        p[0] = b'X';
        assert_eq!(ProbeHeader::read(&p), None);
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
