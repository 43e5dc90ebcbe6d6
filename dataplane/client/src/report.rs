//! What `weft-recv` counts: per-flow sequence tracking (loss, duplicates, reordering) and
//! latency percentiles, and the summary it prints.
//!
//! A flow is one sender flow: (source node, source port, the probe's flow index). Memory is
//! bounded: a window of [`SEQ_WINDOW`] sequence numbers per flow and at most
//! [`MAX_TRACKED_FLOWS`] flows.
//!
//! Definitions, per flow:
//! - **duplicate**: a sequence number already received (detectable within the window);
//! - **reordered**: a new sequence number lower than the highest received so far;
//! - **lost**: sequence numbers between the lowest and the highest received that never came.
//!   Messages lost after the last one received cannot be seen here; compare the count with
//!   `weft-send`'s `sent`. A message older than the window is counted as new and reordered.

use std::collections::HashMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;
use weft_shared::ids::{NodeId, Port};

use crate::probe::ProbeHeader;

/// Sequence numbers behind the highest one for which duplicates are detected.
pub const SEQ_WINDOW: u64 = 4096;
/// Flows tracked at most; messages of further flows are counted as untracked.
pub const MAX_TRACKED_FLOWS: usize = 4096;

const WINDOW_WORDS: usize = (SEQ_WINDOW / 64) as usize;

/// How one arrival relates to the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// New, and the highest so far (or the first).
    InOrder,
    /// New, but lower than the highest so far.
    Reordered,
    /// Already received.
    Duplicate,
}

/// The sequence state of one flow.
#[derive(Clone, Debug)]
pub struct SeqTracker {
    lowest: u64,
    highest: u64,
    /// Bit `s % SEQ_WINDOW` is set if `s` in `(highest - SEQ_WINDOW, highest]` was received.
    seen: [u64; WINDOW_WORDS],
    unique: u64,
    duplicates: u64,
    reordered: u64,
}

impl Default for SeqTracker {
    fn default() -> Self {
        SeqTracker::new()
    }
}

impl SeqTracker {
    /// A flow with nothing received.
    pub fn new() -> Self {
        SeqTracker {
            lowest: 0,
            highest: 0,
            seen: [0; WINDOW_WORDS],
            unique: 0,
            duplicates: 0,
            reordered: 0,
        }
    }

    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % SEQ_WINDOW;
        (usize::try_from(i / 64).unwrap_or(0), 1u64 << (i % 64))
    }

    fn is_seen(&self, seq: u64) -> bool {
        let (w, m) = Self::bit(seq);
        self.seen.get(w).is_some_and(|x| x & m != 0)
    }

    fn mark(&mut self, seq: u64) {
        let (w, m) = Self::bit(seq);
        if let Some(x) = self.seen.get_mut(w) {
            *x |= m;
        }
    }

    /// Records one arrival of `seq`.
    pub fn record(&mut self, seq: u64) -> Arrival {
        if self.unique == 0 {
            self.lowest = seq;
            self.highest = seq;
            self.mark(seq);
            self.unique = 1;
            return Arrival::InOrder;
        }
        if seq > self.highest {
            // Forget the bits the window slides past.
            let advance = seq - self.highest;
            if advance >= SEQ_WINDOW {
                self.seen = [0; WINDOW_WORDS];
            } else {
                for s in self.highest + 1..=seq {
                    let (w, m) = Self::bit(s);
                    if let Some(x) = self.seen.get_mut(w) {
                        *x &= !m;
                    }
                }
            }
            self.highest = seq;
            self.mark(seq);
            self.unique += 1;
            return Arrival::InOrder;
        }
        let in_window = self.highest - seq < SEQ_WINDOW;
        if in_window && self.is_seen(seq) {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        if in_window {
            self.mark(seq);
        }
        self.lowest = self.lowest.min(seq);
        self.unique += 1;
        self.reordered += 1;
        Arrival::Reordered
    }

    /// Distinct sequence numbers received.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Duplicates received.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// New sequence numbers that came after a higher one.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Sequence numbers between the lowest and highest received that never came.
    pub fn lost(&self) -> u64 {
        if self.unique == 0 {
            return 0;
        }
        (self.highest - self.lowest + 1).saturating_sub(self.unique)
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of a histogram of nanoseconds, in microseconds.
    pub fn from_ns(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

/// A sender flow as the receiver tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    node: NodeId,
    port: Port,
    index: u32,
}

/// Everything `weft-recv` counts.
#[derive(Debug)]
pub struct RecvStats {
    flows: HashMap<FlowKey, SeqTracker>,
    /// One-way latency from the probe's send time, in ns.
    latency: Histogram<u64>,
    /// The nodes' `age_us`, in ns.
    age: Histogram<u64>,
    received: u64,
    bytes: u64,
    not_probes: u64,
    untracked: u64,
    clock_behind: u64,
    last_arrival_ns: Option<u64>,
    max_gap_ns: u64,
}

/// Largest latency recorded (longer ones are clamped): one hour, in ns.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

impl Default for RecvStats {
    fn default() -> Self {
        RecvStats::new()
    }
}

impl RecvStats {
    /// Empty statistics.
    pub fn new() -> Self {
        // Three significant digits from 1 ns to an hour. The bounds are constants that
        // hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5): no input reaches this.
        let hist =
            || Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant histogram bounds");
        RecvStats {
            flows: HashMap::new(),
            latency: hist(),
            age: hist(),
            received: 0,
            bytes: 0,
            not_probes: 0,
            untracked: 0,
            clock_behind: 0,
            last_arrival_ns: None,
            max_gap_ns: 0,
        }
    }

    /// Records one message from `node:port` with `payload` (the bytes received), the node's
    /// `age_us`, and the receiver's `CLOCK_MONOTONIC` time `now_ns`.
    pub fn record(&mut self, node: NodeId, port: Port, payload: &[u8], age_us: u32, now_ns: u64) {
        self.received += 1;
        self.bytes += payload.len() as u64;
        if let Some(last) = self.last_arrival_ns {
            self.max_gap_ns = self.max_gap_ns.max(now_ns.saturating_sub(last));
        }
        self.last_arrival_ns = Some(now_ns);
        self.age.saturating_record(u64::from(age_us) * 1000);
        let Some(h) = ProbeHeader::read(payload) else {
            self.not_probes += 1;
            return;
        };
        match now_ns.checked_sub(h.sent_ns) {
            Some(ns) => self.latency.saturating_record(ns.max(1)),
            // The sender's clock is ahead: another host.
            None => self.clock_behind += 1,
        }
        let key = FlowKey {
            node,
            port,
            index: h.flow_index,
        };
        let full = self.flows.len() >= MAX_TRACKED_FLOWS;
        match self.flows.get_mut(&key) {
            Some(t) => {
                t.record(h.seq);
            }
            None if full => self.untracked += 1,
            None => {
                let mut t = SeqTracker::new();
                t.record(h.seq);
                self.flows.insert(key, t);
            }
        }
    }

    /// Messages recorded so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The summary, with `seconds` the time the messages took to arrive.
    pub fn summary(&self, seconds: f64) -> RecvSummary {
        let sum = |f: fn(&SeqTracker) -> u64| self.flows.values().map(f).sum::<u64>();
        let lost = sum(SeqTracker::lost);
        let unique = sum(SeqTracker::unique);
        let expected = unique + lost;
        RecvSummary {
            received: self.received,
            bytes: self.bytes,
            seconds,
            rate: if seconds > 0.0 {
                self.received as f64 / seconds
            } else {
                0.0
            },
            flows: self.flows.len(),
            lost,
            loss_pct: if expected > 0 {
                100.0 * lost as f64 / expected as f64
            } else {
                0.0
            },
            duplicates: sum(SeqTracker::duplicates),
            reordered: sum(SeqTracker::reordered),
            not_probes: self.not_probes,
            untracked: self.untracked,
            clock_behind: self.clock_behind,
            latency_us: Percentiles::from_ns(&self.latency),
            node_age_us: Percentiles::from_ns(&self.age),
            max_gap_ms: self.max_gap_ns as f64 / 1e6,
        }
    }
}

/// What `weft-recv` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecvSummary {
    /// Messages received (duplicates included).
    pub received: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Seconds from the first message to the last.
    pub seconds: f64,
    /// Messages per second over `seconds`.
    pub rate: f64,
    /// Sender flows seen.
    pub flows: usize,
    /// Messages missing from sequence gaps (see the module doc).
    pub lost: u64,
    /// `lost` as a percentage of the messages expected (received distinct + lost).
    pub loss_pct: f64,
    /// Messages received more than once.
    pub duplicates: u64,
    /// Messages that came after a higher sequence number of their flow.
    pub reordered: u64,
    /// Messages without a probe header (not from `weft-send`): counted, not tracked.
    pub not_probes: u64,
    /// Probe messages of flows beyond [`MAX_TRACKED_FLOWS`].
    pub untracked: u64,
    /// Probes stamped later than they were received (a sender on another host).
    pub clock_behind: u64,
    /// One-way latency from the probe's `CLOCK_MONOTONIC` send time (same host only).
    pub latency_us: Percentiles,
    /// The nodes' accumulated `age_us` (includes no time in the sending client).
    pub node_age_us: Percentiles,
    /// The longest time between two consecutive arrivals, in ms: at a steady send rate, the
    /// longest outage seen (plus one send interval).
    pub max_gap_ms: f64,
}

impl fmt::Display for RecvSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "received  {} messages ({} B) from {} flow(s) in {:.3} s: {:.0} msg/s",
            self.received, self.bytes, self.flows, self.seconds, self.rate
        )?;
        writeln!(
            f,
            "loss      {} ({:.3} %)   duplicates {}   reordered {}",
            self.lost, self.loss_pct, self.duplicates, self.reordered
        )?;
        writeln!(f, "latency   us  {}", self.latency_us)?;
        writeln!(f, "node age  us  {}", self.node_age_us)?;
        write!(f, "longest gap between arrivals: {:.1} ms", self.max_gap_ms)?;
        if self.not_probes + self.untracked + self.clock_behind > 0 {
            write!(
                f,
                "\nuncounted not-probes {}   untracked {}   clock-behind {}",
                self.not_probes, self.untracked, self.clock_behind
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests;
