//! Traffic to groups: constant-rate best-effort flows to a multicast or an anycast group, and
//! what happened to their messages at every node that got any (or ever joined): delivered,
//! duplicates, first and last delivery, latency, the longest gap after each timeline event;
//! across all members together: distinct messages delivered, every delivery, the longest gap;
//! and the flow's data packets on each link direction and per message, to compare with the
//! edges of the tree.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use weft_shared::ids::{FlowId, LinkId, NodeId};
use weft_shared::time::Instant;

use crate::sim::flow::{Outage, Percentile};
use crate::sim::scenario::{GroupKind, GroupTarget};

/// Latencies are recorded in microseconds up to a minute.
const MAX_LATENCY_US: u64 = 60_000_000;

/// One bit per sequence number.
#[derive(Clone, Debug, Default)]
struct Bits(Vec<u64>);

impl Bits {
    /// Sets bit `seq`; whether it was clear.
    fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        let fresh = self.0[word] & (1 << bit) == 0;
        self.0[word] |= 1 << bit;
        fresh
    }
}

/// The gaps between deliveries: the longest, and the longest overlapping each timeline window
/// (window `i` runs from event `i` to the next), as [`crate::sim::flow`] counts them.
#[derive(Clone, Debug)]
struct Gaps {
    last: Option<Instant>,
    max: Duration,
    windows: Vec<Option<Duration>>,
}

impl Gaps {
    fn new(windows: usize) -> Gaps {
        Gaps {
            last: None,
            max: Duration::ZERO,
            windows: vec![None; windows],
        }
    }

    fn on_delivery(&mut self, now: Instant, windows: &[Instant]) {
        if let Some(last) = self.last {
            self.gap(last, now, windows);
        }
        self.last = Some(now);
    }

    /// Closes the gap from the last delivery (or `from` if none) to `until`.
    fn finish(&mut self, from: Option<Instant>, until: Instant, windows: &[Instant]) {
        if let Some(from) = self.last.or(from)
            && until > from
        {
            self.gap(from, until, windows);
        }
    }

    fn gap(&mut self, from: Instant, now: Instant, windows: &[Instant]) {
        let gap = now.saturating_duration_since(from);
        self.max = self.max.max(gap);
        let window_of = |t: Instant| windows.iter().rposition(|w| *w <= t);
        let Some(last) = window_of(now) else {
            return;
        };
        let first = window_of(from).unwrap_or(0);
        for slot in &mut self.windows[first..=last] {
            *slot = Some(slot.map_or(gap, |g| g.max(gap)));
        }
    }

    fn outages(&self, events: &[(Instant, String)]) -> Vec<Outage> {
        events
            .iter()
            .zip(&self.windows)
            .enumerate()
            .map(|(i, ((at, what), gap))| Outage {
                event: i,
                at_ms: ms(*at),
                what: what.clone(),
                outage_ms: gap.map(|g| g.as_secs_f64() * 1000.0),
            })
            .collect()
    }
}

/// What one node got of a group flow.
#[derive(Clone, Debug)]
struct Receiver {
    /// It joined the group at some point (so it is reported even if it got nothing).
    joined: bool,
    delivered: u64,
    duplicates: u64,
    seen: Bits,
    latency: Option<Histogram<u64>>,
    first: Option<(Instant, u64)>,
    last: Option<(Instant, u64)>,
    gaps: Gaps,
}

/// One group flow while the simulation runs.
#[derive(Clone, Debug)]
pub(crate) struct GroupFlowState {
    pub(crate) name: String,
    pub(crate) src: usize,
    pub(crate) src_id: NodeId,
    pub(crate) target: GroupTarget,
    pub(crate) id: FlowId,
    pub(crate) rate_pps: f64,
    pub(crate) size: usize,
    pub(crate) start: Instant,
    pub(crate) stop: Instant,
    pub(crate) next_seq: u64,
    pub(crate) sent: u64,
    /// By node, in config order.
    receivers: Vec<Receiver>,
    nodes: Vec<NodeId>,
    seen_anywhere: Bits,
    delivered_anywhere: u64,
    deliveries: u64,
    gaps: Gaps,
    /// By network link (config order) and sending side: packets, and when the last went.
    link_tx: Vec<[(u64, Option<Instant>); 2]>,
    /// By sequence number: the message's packets handed to links.
    copies: Vec<u32>,
}

impl GroupFlowState {
    /// A flow from node `src` (index, id) to `target`; `nodes` are the config's, `links` the
    /// number of network links, `windows` the number of timeline events.
    #[allow(
        clippy::too_many_arguments,
        reason = "the resolved flow, field by field"
    )]
    pub(crate) fn new(
        name: String,
        (src, src_id): (usize, NodeId),
        target: GroupTarget,
        id: FlowId,
        rate_pps: f64,
        size: usize,
        (start, stop): (Instant, Instant),
        (nodes, links, windows): (&[NodeId], usize, usize),
    ) -> GroupFlowState {
        let receiver = Receiver {
            joined: false,
            delivered: 0,
            duplicates: 0,
            seen: Bits::default(),
            latency: None,
            first: None,
            last: None,
            gaps: Gaps::new(windows),
        };
        GroupFlowState {
            name,
            src,
            src_id,
            target,
            id,
            rate_pps,
            size,
            start,
            stop,
            next_seq: 0,
            sent: 0,
            receivers: vec![receiver; nodes.len()],
            nodes: nodes.to_vec(),
            seen_anywhere: Bits::default(),
            delivered_anywhere: 0,
            deliveries: 0,
            gaps: Gaps::new(windows),
            link_tx: vec![[(0, None); 2]; links],
            copies: Vec::new(),
        }
    }

    /// When message `seq` is due.
    pub(crate) fn send_time(&self, seq: u64) -> Instant {
        let offset_ns = (seq as f64 * 1e9 / self.rate_pps).round() as u64;
        self.start + Duration::from_nanos(offset_ns)
    }

    /// Node `node` (index) joined the flow's group.
    pub(crate) fn on_join(&mut self, node: usize) {
        if let Some(r) = self.receivers.get_mut(node) {
            r.joined = true;
        }
    }

    /// A data packet of message `seq` was handed to network link `net` from side `side` at
    /// `now`.
    pub(crate) fn on_transmit(&mut self, now: Instant, net: usize, side: usize, seq: u64) {
        if let Some(slot) = self.link_tx.get_mut(net).and_then(|l| l.get_mut(side)) {
            *slot = (slot.0 + 1, Some(now));
        }
        if seq < self.next_seq {
            let i = seq as usize;
            if self.copies.len() <= i {
                self.copies.resize(i + 1, 0);
            }
            self.copies[i] += 1;
        }
    }

    /// Message `seq` was delivered at node `node` (index) at `now`.
    pub(crate) fn on_delivery(
        &mut self,
        node: usize,
        now: Instant,
        seq: u64,
        sent_at: Instant,
        windows: &[Instant],
    ) {
        if seq >= self.next_seq {
            return; // not one of ours
        }
        let Some(r) = self.receivers.get_mut(node) else {
            return;
        };
        self.deliveries += 1;
        if !r.seen.insert(seq) {
            r.duplicates += 1;
            return;
        }
        r.delivered += 1;
        let us = now.saturating_duration_since(sent_at).as_micros() as u64;
        let latency = r.latency.get_or_insert_with(|| {
            // Three significant figures; the bounds are constants, so this cannot fail.
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant, valid bounds")
        });
        let _ = latency.record(us.clamp(1, MAX_LATENCY_US));
        r.first.get_or_insert((now, seq));
        r.last = Some((now, seq));
        r.gaps.on_delivery(now, windows);
        if self.seen_anywhere.insert(seq) {
            self.delivered_anywhere += 1;
            self.gaps.on_delivery(now, windows);
        }
    }

    /// Closes the open gaps at `end` (a member that stopped receiving shows it).
    pub(crate) fn finish(&mut self, end: Instant, windows: &[Instant]) {
        let until = end.min(self.stop);
        for r in &mut self.receivers {
            r.gaps.finish(None, until, windows);
        }
        self.gaps.finish(Some(self.start), until, windows);
    }

    /// The figures; `links` are the network links' ids and end nodes (side 0, side 1).
    pub(crate) fn report(
        &self,
        percentiles: &[f64],
        events: &[(Instant, String)],
        links: &[(LinkId, [NodeId; 2])],
    ) -> GroupFlowReport {
        let receivers = self
            .nodes
            .iter()
            .zip(&self.receivers)
            .filter(|(_, r)| r.joined || r.delivered + r.duplicates > 0)
            .map(|(n, r)| ReceiverReport {
                node: n.get(),
                joined: r.joined,
                delivered: r.delivered,
                duplicates: r.duplicates,
                first_ms: r.first.map(|(at, _)| ms(at)),
                first_seq: r.first.map(|(_, seq)| seq),
                last_ms: r.last.map(|(at, _)| ms(at)),
                last_seq: r.last.map(|(_, seq)| seq),
                latency_ms: percentiles
                    .iter()
                    .map(|p| Percentile {
                        p: *p,
                        ms: r
                            .latency
                            .as_ref()
                            .map(|h| h.value_at_quantile(p / 100.0) as f64 / 1000.0),
                    })
                    .collect(),
                latency_max_ms: r.latency.as_ref().map(|h| h.max() as f64 / 1000.0),
                max_gap_ms: r.gaps.max.as_secs_f64() * 1000.0,
                outages: r.gaps.outages(events),
            })
            .collect();
        let mut link_counts = Vec::new();
        for ((id, ends), tx) in links.iter().zip(&self.link_tx) {
            for side in 0..2 {
                if let (packets, Some(last)) = tx[side] {
                    link_counts.push(LinkCount {
                        link: id.get(),
                        from: ends[side].get(),
                        to: ends[1 - side].get(),
                        packets,
                        last_ms: ms(last),
                    });
                }
            }
        }
        let mut copies: Vec<u32> = self.copies.clone();
        copies.resize(self.next_seq as usize, 0);
        let mut histogram: Vec<CopyCount> = Vec::new();
        let mut sorted = copies.clone();
        sorted.sort_unstable();
        for c in sorted {
            match histogram.last_mut() {
                Some(h) if h.copies == c => h.messages += 1,
                _ => histogram.push(CopyCount {
                    copies: c,
                    messages: 1,
                }),
            }
        }
        GroupFlowReport {
            name: self.name.clone(),
            from: self.src_id.get(),
            group: self.target.group.0,
            kind: match self.target.kind {
                GroupKind::Multicast => "multicast",
                GroupKind::Anycast => "anycast",
            }
            .to_owned(),
            sent: self.sent,
            delivered_anywhere: self.delivered_anywhere,
            deliveries: self.deliveries,
            receivers,
            link_transmissions: link_counts.iter().map(|l| l.packets).sum(),
            links: link_counts,
            copies: histogram,
            copies_per_message: copies,
            max_gap_ms: self.gaps.max.as_secs_f64() * 1000.0,
            outages: self.gaps.outages(events),
        }
    }
}

fn ms(at: Instant) -> f64 {
    at.as_nanos() as f64 / 1e6
}

/// What one node got of a group flow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReceiverReport {
    /// The node.
    pub node: u16,
    /// Whether it joined the group at some point.
    pub joined: bool,
    /// Distinct messages delivered here.
    pub delivered: u64,
    /// Extra copies delivered here (a message delivered twice at this node counts once).
    pub duplicates: u64,
    /// When the first delivery here happened, in milliseconds.
    pub first_ms: Option<f64>,
    /// Its sequence number.
    pub first_seq: Option<u64>,
    /// When the last delivery here happened, in milliseconds.
    pub last_ms: Option<f64>,
    /// Its sequence number.
    pub last_seq: Option<u64>,
    /// Latency percentiles (send to delivery).
    pub latency_ms: Vec<Percentile>,
    /// Largest latency.
    pub latency_max_ms: Option<f64>,
    /// The longest gap between deliveries here, from the first one to the flow's end (the
    /// last delivery to the end included), in milliseconds.
    pub max_gap_ms: f64,
    /// The longest gap here after each timeline event (from this node's first delivery on).
    pub outages: Vec<Outage>,
}

impl ReceiverReport {
    /// The outage here after timeline event `event`, in milliseconds.
    pub fn outage_after(&self, event: usize) -> Option<f64> {
        self.outages.get(event).and_then(|o| o.outage_ms)
    }
}

/// A flow's data packets handed to one link in one direction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkCount {
    /// Link id.
    pub link: u16,
    /// Sending node.
    pub from: u16,
    /// Receiving node.
    pub to: u16,
    /// Packets handed to the link (every copy, lost or not).
    pub packets: u64,
    /// When the last of them was, in milliseconds.
    pub last_ms: f64,
}

/// How many messages were handed to links `copies` times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CopyCount {
    /// Link transmissions of one message (over every link).
    pub copies: u32,
    /// Messages with that many.
    pub messages: u64,
}

/// What happened to one group flow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupFlowReport {
    /// The flow's name.
    pub name: String,
    /// Source node id.
    pub from: u16,
    /// The group.
    pub group: u32,
    /// `"multicast"` or `"anycast"`.
    pub kind: String,
    /// Messages the source sent (including those it had no route for, or sent while failed).
    pub sent: u64,
    /// Distinct messages delivered at one node at least.
    pub delivered_anywhere: u64,
    /// Deliveries at every node together, duplicates included (for anycast, equal to
    /// `delivered_anywhere` when every message went to one node once).
    pub deliveries: u64,
    /// Per node that got a delivery or joined the group, in config order.
    pub receivers: Vec<ReceiverReport>,
    /// Data packets of the flow handed to links, every hop and copy.
    pub link_transmissions: u64,
    /// Those per link direction (only the directions that carried any).
    pub links: Vec<LinkCount>,
    /// How many messages were handed to links how many times (by increasing count).
    pub copies: Vec<CopyCount>,
    /// By sequence number: link transmissions of the message.
    #[serde(skip)]
    pub copies_per_message: Vec<u32>,
    /// The longest time without a delivery at any member, over the run, in milliseconds.
    pub max_gap_ms: f64,
    /// Across all members: the longest gap without a delivery anywhere after each timeline
    /// event (an anycast flow's failover outage).
    pub outages: Vec<Outage>,
}

impl GroupFlowReport {
    /// The figures of node `node`, if it got any delivery or joined the group.
    pub fn receiver(&self, node: u16) -> Option<&ReceiverReport> {
        self.receivers.iter().find(|r| r.node == node)
    }

    /// The outage across all members after timeline event `event`, in milliseconds.
    pub fn outage_after(&self, event: usize) -> Option<f64> {
        self.outages.get(event).and_then(|o| o.outage_ms)
    }

    /// Data packets of the flow handed to links from `from` to `to`.
    pub fn packets_between(&self, from: u16, to: u16) -> u64 {
        self.links
            .iter()
            .filter(|l| l.from == from && l.to == to)
            .map(|l| l.packets)
            .sum()
    }

    /// Data packets of the flow handed to links towards `node`.
    pub fn packets_to(&self, node: u16) -> u64 {
        self.links
            .iter()
            .filter(|l| l.to == node)
            .map(|l| l.packets)
            .sum()
    }

    /// When the flow's last data packet towards `node` was handed to a link, in milliseconds.
    pub fn last_packet_to(&self, node: u16) -> Option<f64> {
        self.links
            .iter()
            .filter(|l| l.to == node)
            .map(|l| l.last_ms)
            .reduce(f64::max)
    }
}
