//! Reliable-link timing (ack delay, reorder allowance, re-request interval, retransmission
//! timeout) derived from the link's round trip, and the memory limits of each machine.
//!
//! The timing is per link, because it is measured against that link's round trip; both ends of
//! a link derive it from the same link-monitor RTT. The end-to-end layer's timing is per flow
//! and derives from the route's round trip ([`E2eParams::for_path`]).

use core::time::Duration;

/// The shortest retransmission timeout: below this a timer fires on scheduler noise.
pub const MIN_RTO: Duration = Duration::from_millis(2);
/// The longest retransmission timeout a backoff reaches on a link.
pub const MAX_RTO: Duration = Duration::from_secs(1);

/// Per-link timing of the reliable protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelParams {
    /// The round trip before any sample: the link monitor's smoothed hello RTT.
    pub initial_rtt: Duration,
    /// How long the receiver waits after detecting a gap before it asks for the missing packet,
    /// so that a packet merely reordered (jitter, a path change) is not requested.
    pub reorder_allowance: Duration,
    /// How long the receiver waits for a requested packet before it asks again.
    pub renack: Duration,
    /// Requests per missing packet before the receiver leaves it to the sender's timeout.
    pub max_requests: u8,
    /// The longest an accepted packet waits for its ack.
    pub ack_delay: Duration,
    /// An ack goes out at once after this many accepted packets.
    pub ack_every: u32,
    /// The retransmission timeout's floor.
    pub min_rto: Duration,
    /// The retransmission timeout's ceiling (backoff stops doubling there).
    pub max_rto: Duration,
    /// TCP-like congestion control on the link (slow start, additive increase, halving once
    /// per loss event, a window of 2 after a timeout), so that a link takes a fair share of the
    /// Internet path under it and its queue stays short. Off, the window alone limits it, as
    /// in Spines since 5.3 (its TCP fairness is off by default): random loss on a long link
    /// would otherwise cap a flow far below the link's capacity (1.22 / (RTT · √p) packets per
    /// second: 430/s on a 20 ms link with 2 % loss).
    pub congestion_control: bool,
    /// Pace transmissions (retransmissions included) to this many bits per second, counting
    /// each record's length plus [`PACING_OVERHEAD`] bytes of headers: the link's share of
    /// the path under it (Spines caps each link this way). `None`: no pacing.
    pub pacing_bps: Option<u64>,
}

/// Bytes of link, record and overlay headers that pacing adds to each record's length.
pub const PACING_OVERHEAD: usize = 76;

impl RelParams {
    /// The defaults for a link with round trip `rtt` (the link monitor's hello RTT):
    ///
    /// - reorder allowance `rtt / 10`, within 1..=5 ms (2 ms on a 10 ms link: longer than the
    ///   jitter of a healthy path, short beside the round trip a recovery costs anyway);
    /// - re-request after `rtt + allowance + 2 ms`: a request and its answer take one round trip,
    ///   so asking sooner only duplicates the answer;
    /// - ack within 1 ms or after 8 packets: acks free the sender's window, they are not on the
    ///   latency path (losses are found from gaps, not from missing acks);
    /// - retransmission timeout `srtt + 4 · rttvar` (RFC 6298), at least `2 · srtt + 2 ·
    ///   ack_delay` and [`MIN_RTO`], doubling per timeout up to [`MAX_RTO`]. It only covers what requests
    ///   cannot: a lost tail (no later packet shows the gap), lost acks, and packets the next
    ///   hop refused for want of room;
    /// - congestion control off (see [`RelParams::congestion_control`]).
    pub fn for_link(rtt: Duration) -> Self {
        let allowance = (rtt / 10).clamp(Duration::from_millis(1), Duration::from_millis(5));
        RelParams {
            initial_rtt: rtt,
            reorder_allowance: allowance,
            renack: rtt + allowance + Duration::from_millis(2),
            max_requests: 16,
            ack_delay: Duration::from_millis(1),
            ack_every: 8,
            min_rto: MIN_RTO,
            max_rto: MAX_RTO,
            congestion_control: false,
            pacing_bps: None,
        }
    }
}

/// Memory of a [`RelSender`](super::RelSender): fixed at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelSenderLimits {
    /// Records in flight (sent and not yet acked), rounded up to a power of two. A full window
    /// refuses new records: that is the backpressure a hop exerts on what feeds it.
    pub window: u32,
    /// The largest record body kept for retransmission, in bytes.
    pub record_len: usize,
}

impl Default for RelSenderLimits {
    /// 4,096 records of 1,448 B (about 5.9 MB): 33 ms of a 1 Gbit/s link, or a 10 ms link's
    /// bandwidth-delay product at 1.6 Gbit/s.
    fn default() -> Self {
        RelSenderLimits {
            window: 4096,
            record_len: 1448,
        }
    }
}

/// Memory of a [`RelReceiver`](super::RelReceiver): fixed at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelReceiverLimits {
    /// Sequences tracked above the cumulative ack; at least the sender's window.
    pub window: u32,
    /// Missing sequences awaiting a request at once; more are left to the sender's timeout.
    pub pending: usize,
}

impl Default for RelReceiverLimits {
    fn default() -> Self {
        RelReceiverLimits {
            window: 4096,
            pending: 1024,
        }
    }
}

/// Per-flow timing and memory of the end-to-end layer ([`E2eSource`](super::E2eSource),
/// [`E2eSink`](super::E2eSink)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E2eParams {
    /// Messages in flight per flow (sent, not yet delivered to the receiving client). The
    /// source buffers this many, the sink reserves this many: the flow's memory bound at both
    /// ends, and the client's credit.
    pub window: u32,
    /// The largest message, in bytes.
    pub msg_len: usize,
    /// How long after sending a message the source resends it if the sink has not reported
    /// it received: the floor; the source measures the round trip to the sink's report and
    /// waits longer when queues make it longer. Well above a hop-by-hop recovery, so that it
    /// fires only when a node that held messages crashed or a route changed.
    pub rto: Duration,
    /// The resend timeout's ceiling.
    pub max_rto: Duration,
    /// The longest a change at the sink waits for its ack.
    pub ack_delay: Duration,
    /// Without progress for this long while messages are outstanding, the source reports the
    /// flow stalled (no path, or a receiver that stopped reading).
    pub stall_after: Duration,
}

impl E2eParams {
    /// The defaults for a route with round trip `rtt`: a window of 1,024 messages of up to
    /// 1,396 B, resend after `4 · rtt + 100 ms` without progress (a hop-by-hop recovery costs a
    /// few link round trips; Spines uses 150 ms), at most 2 s between resends, acks within 5 ms,
    /// stalled after 2 s.
    pub fn for_path(rtt: Duration) -> Self {
        E2eParams {
            window: 1024,
            msg_len: 1396,
            rto: rtt * 4 + Duration::from_millis(100),
            max_rto: Duration::from_secs(2),
            ack_delay: Duration::from_millis(5),
            stall_after: Duration::from_secs(2),
        }
    }
}
