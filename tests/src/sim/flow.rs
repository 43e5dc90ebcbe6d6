//! Traffic: constant-rate best-effort unicast flows, and what happened to their packets (sent,
//! delivered, lost, duplicated, latency, link transmissions, and the longest delivery gap after
//! each timeline event).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use weft_shared::ids::{FlowId, NodeId};
use weft_shared::time::Instant;

/// Latencies are recorded in microseconds up to a minute.
const MAX_LATENCY_US: u64 = 60_000_000;

/// One flow while the simulation runs.
#[derive(Clone, Debug)]
pub(crate) struct FlowState {
    pub(crate) name: String,
    pub(crate) src: usize,
    pub(crate) dst: usize,
    pub(crate) src_id: NodeId,
    pub(crate) dst_id: NodeId,
    pub(crate) id: FlowId,
    pub(crate) rate_pps: f64,
    pub(crate) size: usize,
    pub(crate) start: Instant,
    pub(crate) stop: Instant,
    pub(crate) next_seq: u64,
    pub(crate) sent: u64,
    pub(crate) link_tx: u64,
    delivered: u64,
    duplicates: u64,
    /// One bit per sequence number sent.
    seen: Vec<u64>,
    latency: Histogram<u64>,
    last_delivery: Option<Instant>,
    max_gap: Duration,
    /// Longest gap ending in each timeline window (window `i` runs from event `i` to the next).
    window_gaps: Vec<Option<Duration>>,
}

impl FlowState {
    #[allow(
        clippy::too_many_arguments,
        reason = "the resolved flow, field by field"
    )]
    pub(crate) fn new(
        name: String,
        (src, src_id): (usize, NodeId),
        (dst, dst_id): (usize, NodeId),
        id: FlowId,
        rate_pps: f64,
        size: usize,
        (start, stop): (Instant, Instant),
        windows: usize,
    ) -> FlowState {
        // Three significant figures; the bounds are constants, so this cannot fail.
        let latency =
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant, valid bounds");
        FlowState {
            name,
            src,
            dst,
            src_id,
            dst_id,
            id,
            rate_pps,
            size,
            start,
            stop,
            next_seq: 0,
            sent: 0,
            link_tx: 0,
            delivered: 0,
            duplicates: 0,
            seen: Vec::new(),
            latency,
            last_delivery: None,
            max_gap: Duration::ZERO,
            window_gaps: vec![None; windows],
        }
    }

    /// When packet `seq` is due.
    pub(crate) fn send_time(&self, seq: u64) -> Instant {
        let offset_ns = (seq as f64 * 1e9 / self.rate_pps).round() as u64;
        self.start + Duration::from_nanos(offset_ns)
    }

    /// Packet `seq` arrived at `now`; `windows` are the timeline's event times.
    pub(crate) fn on_delivery(
        &mut self,
        now: Instant,
        seq: u64,
        sent_at: Instant,
        windows: &[Instant],
    ) {
        if seq >= self.next_seq {
            return; // not one of ours
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.delivered += 1;
        let us = now.saturating_duration_since(sent_at).as_micros() as u64;
        let _ = self.latency.record(us.clamp(1, MAX_LATENCY_US));
        if let Some(last) = self.last_delivery {
            self.gap(last, now, windows);
        }
        self.last_delivery = Some(now);
    }

    /// Closes the last gap at the end of the run (a flow that never recovered shows it).
    pub(crate) fn finish(&mut self, end: Instant, windows: &[Instant]) {
        let until = end.min(self.stop);
        let from = self.last_delivery.unwrap_or(self.start);
        if until > from {
            self.gap(from, until, windows);
        }
    }

    /// Nothing was delivered between `from` and `now`.
    fn gap(&mut self, from: Instant, now: Instant, windows: &[Instant]) {
        let gap = now.saturating_duration_since(from);
        self.max_gap = self.max_gap.max(gap);
        // The gap counts for every timeline window it overlaps: a failure's outage shows in
        // the failure's window, and a recovery's in the recovery's.
        let window_of = |t: Instant| windows.iter().rposition(|w| *w <= t);
        let Some(last) = window_of(now) else {
            return;
        };
        let first = window_of(from).unwrap_or(0);
        for slot in &mut self.window_gaps[first..=last] {
            *slot = Some(slot.map_or(gap, |g| g.max(gap)));
        }
    }

    pub(crate) fn report(&self, percentiles: &[f64], events: &[(Instant, String)]) -> FlowReport {
        let ms = |us: u64| us as f64 / 1000.0;
        let any = self.delivered > 0;
        FlowReport {
            name: self.name.clone(),
            from: self.src_id.get(),
            to: self.dst_id.get(),
            sent: self.sent,
            delivered: self.delivered,
            lost: self.sent - self.delivered.min(self.sent),
            duplicates: self.duplicates,
            loss: if self.sent == 0 {
                0.0
            } else {
                (self.sent - self.delivered.min(self.sent)) as f64 / self.sent as f64
            },
            latency_ms: percentiles
                .iter()
                .map(|p| Percentile {
                    p: *p,
                    ms: any.then(|| ms(self.latency.value_at_quantile(p / 100.0))),
                })
                .collect(),
            latency_mean_ms: any.then(|| self.latency.mean() / 1000.0),
            latency_max_ms: any.then(|| ms(self.latency.max())),
            link_transmissions: self.link_tx,
            overhead: any.then(|| self.link_tx as f64 / self.delivered as f64),
            max_gap_ms: self.max_gap.as_secs_f64() * 1000.0,
            outages: events
                .iter()
                .zip(&self.window_gaps)
                .enumerate()
                .map(|(i, ((at, what), gap))| Outage {
                    event: i,
                    at_ms: at.as_nanos() as f64 / 1e6,
                    what: what.clone(),
                    outage_ms: gap.map(|g| g.as_secs_f64() * 1000.0),
                })
                .collect(),
        }
    }
}

/// A latency percentile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Percentile {
    /// The percentile (0–100].
    pub p: f64,
    /// Its latency in milliseconds (`None` if nothing was delivered).
    pub ms: Option<f64>,
}

/// The longest delivery gap of a flow after one timeline event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outage {
    /// The event's index in the (time-sorted) timeline.
    pub event: usize,
    /// When it happened, in milliseconds.
    pub at_ms: f64,
    /// What it was.
    pub what: String,
    /// The longest gap between two deliveries (or from the last delivery, or the start if
    /// nothing arrived, to the flow's end) that overlaps the time from this event to the
    /// next, in milliseconds; `None` if the flow did not run then. At a steady rate it includes
    /// one packet interval.
    pub outage_ms: Option<f64>,
}

/// What happened to one flow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowReport {
    /// The flow's name.
    pub name: String,
    /// Source node id.
    pub from: u16,
    /// Destination node id.
    pub to: u16,
    /// Packets the source sent (including those it had no route for).
    pub sent: u64,
    /// Distinct packets delivered.
    pub delivered: u64,
    /// `sent − delivered`.
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicates: u64,
    /// `lost / sent`.
    pub loss: f64,
    /// Latency percentiles (send to delivery).
    pub latency_ms: Vec<Percentile>,
    /// Mean latency.
    pub latency_mean_ms: Option<f64>,
    /// Largest latency.
    pub latency_max_ms: Option<f64>,
    /// Data packets of this flow sent on links (every hop, every copy, lost or not).
    pub link_transmissions: u64,
    /// Link transmissions per packet delivered.
    pub overhead: Option<f64>,
    /// The longest gap between deliveries over the whole run (from the last one to the flow's
    /// end included), in milliseconds.
    pub max_gap_ms: f64,
    /// The longest gap after each timeline event.
    pub outages: Vec<Outage>,
}

impl FlowReport {
    /// The latency at percentile `p`, if it was asked for and anything arrived.
    pub fn latency_at(&self, p: f64) -> Option<f64> {
        self.latency_ms
            .iter()
            .find(|x| (x.p - p).abs() < 1e-9)
            .and_then(|x| x.ms)
    }

    /// The outage after timeline event `event`, in milliseconds.
    pub fn outage_after(&self, event: usize) -> Option<f64> {
        self.outages.get(event).and_then(|o| o.outage_ms)
    }
}
