//! NM-Strikes timing (reorder allowance, request and retransmission spacing) derived from the
//! link's latency, and the memory limits of the sender and receiver.
//!
//! N, M and the deadline are per flow: they travel in every data packet (`strikes`,
//! `deadline_us`, `age_us`). The timing is per link, because it must be measured against that
//! link's round trip, and each packet's schedule is compressed further when its deadline is
//! near (see [`RtParams::request_spacing_for`]).

use core::time::Duration;

use weft_shared::wire::Strikes;

/// The smallest spacing a schedule is compressed to. Closer copies would fall into the same loss
/// burst and buy little.
pub const MIN_SPACING: Duration = Duration::from_millis(1);

/// Per-link timing of the real-time protocol; both ends of a link use the same values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtParams {
    /// The link's one-way delay estimate (half the smoothed hello RTT). A request takes this
    /// long to reach the sender and a retransmission this long to come back.
    pub one_way: Duration,
    /// How long the receiver waits after detecting a gap before its first request, so that a
    /// packet merely reordered (multi-path links, jitter) is not requested.
    pub reorder_allowance: Duration,
    /// Time between two requests for the same missing packet.
    pub request_spacing: Duration,
    /// Time between two retransmissions answering one request.
    pub retransmit_spacing: Duration,
}

impl RtParams {
    /// The defaults for a link with one-way delay `one_way`:
    ///
    /// - reorder allowance `one_way / 5`, within 1..=5 ms: on an overlay link of about 10 ms
    ///   (the paper's design point) 2 ms, longer than the jitter of a healthy path and short
    ///   beside the round trip that recovery costs anyway;
    /// - request and retransmission spacing `one_way` (half the RTT), at least 2 ms.
    ///
    /// Why half the RTT: the patent bounds both waiting times below the RTT (US 11,057,319), and
    /// the paper asks for spacing "as much as possible, but not so much that the deadline is not
    /// met" so that the strikes fall outside one window of correlated loss. With spacing s the
    /// worst-case recovery on one link is `allowance + (N − 1)·s + (M − 1)·s + 2·one_way`: 62 ms
    /// for N = M = 3 on a 10 ms link, so two links of a continental path (40 ms of propagation,
    /// 160 ms left of a 200 ms deadline) can each run the full schedule and still deliver on
    /// time. A spacing of 10 ms is also about ten packets at 1,000 packets/s, well past the
    /// loss bursts of a few packets measured on the Internet.
    pub fn for_link(one_way: Duration) -> Self {
        let allowance = (one_way / 5).clamp(Duration::from_millis(1), Duration::from_millis(5));
        let spacing = one_way.max(Duration::from_millis(2));
        RtParams {
            one_way,
            reorder_allowance: allowance,
            request_spacing: spacing,
            retransmit_spacing: spacing,
        }
    }

    /// The request schedule's worst case on one link with these params: the time from detecting
    /// a gap until the M-th copy answering the N-th request arrives.
    pub fn worst_case_recovery(&self, strikes: Strikes) -> Duration {
        let n = u32::from(strikes.n().saturating_sub(1));
        let m = u32::from(strikes.m().saturating_sub(1));
        self.reorder_allowance
            .saturating_add(self.request_spacing.saturating_mul(n))
            .saturating_add(self.retransmit_spacing.saturating_mul(m))
            .saturating_add(self.one_way.saturating_mul(2))
    }

    /// The request spacing for a gap found with `budget` left before the missing packet's
    /// deadline: the configured spacing, compressed (not below [`MIN_SPACING`]) so that the
    /// first copy answering the N-th request, sent after the sender's M − 1 spacings, can
    /// still arrive in time. The paper: "ideally, the timers will be set such that even the
    /// M-th (final) response to the N-th request will still reach the destination on time."
    pub fn request_spacing_for(&self, budget: Duration, strikes: Strikes) -> Duration {
        let gaps = u32::from(strikes.n().saturating_sub(1));
        let m_gaps = u32::from(strikes.m().saturating_sub(1));
        let fixed = self
            .reorder_allowance
            .saturating_add(self.one_way.saturating_mul(2))
            .saturating_add(self.retransmit_spacing.saturating_mul(m_gaps));
        compress(self.request_spacing, budget.saturating_sub(fixed), gaps)
    }

    /// The retransmission spacing for a request answered with `budget` left before the
    /// packet's deadline at the sender (deadline − now − one_way): the configured spacing,
    /// compressed (not below [`MIN_SPACING`]) so that all M copies leave in time.
    pub fn retransmit_spacing_for(&self, budget: Duration, m: u8) -> Duration {
        compress(
            self.retransmit_spacing,
            budget,
            u32::from(m.saturating_sub(1)),
        )
    }
}

/// `spacing`, or `budget / gaps` if that is smaller, but at least [`MIN_SPACING`] (never more
/// than `spacing`).
fn compress(spacing: Duration, budget: Duration, gaps: u32) -> Duration {
    if gaps == 0 {
        return spacing;
    }
    let fit = budget / gaps;
    spacing.min(fit.max(MIN_SPACING))
}

/// Memory of one [`RtSender`](super::RtSender), allocated once at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderLimits {
    /// Records kept for retransmission (a power of two; rounded up). The oldest is overwritten;
    /// a request for it is then counted as unknown. Size it to rate × the longest deadline.
    pub history: u32,
    /// The largest record body kept, in bytes; bigger records are refused.
    pub record_len: usize,
    /// Retransmission schedules (requests being answered) at once; more are counted and dropped.
    pub schedule: usize,
}

impl Default for SenderLimits {
    /// 1,024 records of up to 1,448 B (a full-size data record): about 200 ms at 5,000
    /// packets/s, 1.5 MB; 256 requests answered at once.
    fn default() -> Self {
        SenderLimits {
            history: 1024,
            record_len: 1448,
            schedule: 256,
        }
    }
}

/// Memory of one [`RtReceiver`](super::RtReceiver), allocated once at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiverLimits {
    /// Sequence numbers tracked for duplicate suppression (a power of two; rounded up). Older
    /// ones are dropped as too old. Size it to rate × the longest deadline.
    pub window: u32,
    /// Missing sequences with requests scheduled at once; more are counted and not requested.
    pub pending: usize,
    /// Requests waiting to be sent in a Nack record; more are counted and dropped.
    pub nack_queue: usize,
}

impl Default for ReceiverLimits {
    /// A window of 4,096 sequences (512 B), 512 missing packets pending, 256 queued requests.
    fn default() -> Self {
        ReceiverLimits {
            window: 4096,
            pending: 512,
            nack_queue: 256,
        }
    }
}
