//! The reliable service over a small overlay in virtual time: every node runs the real
//! [`RelSender`](weft_proto::reliable::RelSender)s and
//! [`RelReceiver`](weft_proto::reliable::RelReceiver)s of its links over [`LinkModel`](crate::linkmodel::LinkModel) links in
//! both directions, the source node an [`E2eSource`](weft_proto::reliable::E2eSource) and the
//! destination an [`E2eSink`](weft_proto::reliable::E2eSink) read by a client at a chosen rate.
//! Deterministic for a seed.
//!
//! - **Recovery**: [`Recovery::HopByHop`] runs the ARQ on every link and forwards out of order
//!   (Weft); [`Recovery::EndToEnd`] forwards best effort in the middle and runs the same ARQ
//!   machines once, between the source and the destination, over the whole path (the
//!   baseline of the paper's figure 3).
//! - **Routing**: shortest paths by link latency over the links and nodes believed up; a
//!   failure or repair is believed `detect` after it happens (the link monitors' job in the
//!   data plane), then every node routes around it at once (link-state).
//! - **Faults**: links cut and restored, intermediate nodes crashed and restarted (a restarted
//!   node starts with empty state; its neighbours start their link sequence spaces over, as
//!   the data plane does on a new incarnation).
//! - **Memory**: every machine has the limits it is built with, and the harness checks the
//!   bounds as it runs ([`ReliableReport::max_link_in_flight`], [`ReliableReport::max_held`]).
//!
//! Figures: delivered messages (in order, each once, checked at every delivery), the arrival
//! latency of recovered messages (those a retransmission or resend brought) and the in-order
//! delivery latency of all, goodput, and link counters.

mod engine;

use std::time::Duration;

use serde::Serialize;

use crate::linkmodel::LossModel;

pub use engine::run;

/// How losses are recovered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Recovery {
    /// ARQ on every link, out-of-order forwarding, reorder at the destination (Weft).
    HopByHop,
    /// Best effort in the middle; one ARQ loop between source and destination.
    EndToEnd,
}

/// One overlay link (both directions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetLink {
    /// One end.
    pub a: usize,
    /// The other end.
    pub b: usize,
    /// One-way latency.
    pub latency: Duration,
    /// Loss of each direction.
    pub loss: LossModel,
}

/// A failure injected at a time, repaired after a while.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Both directions of link `link` are cut at `at` and restored `for_` later.
    CutLink {
        /// The link's index in [`ReliableConfig::links`].
        link: usize,
        /// When.
        at: Duration,
        /// How long.
        for_: Duration,
    },
    /// Node `node` crashes at `at` (loses all its state) and restarts `for_` later.
    CrashNode {
        /// The node.
        node: usize,
        /// When.
        at: Duration,
        /// How long it stays down.
        for_: Duration,
    },
}

/// One experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct ReliableConfig {
    /// Nodes `0..nodes`.
    pub nodes: usize,
    /// The links.
    pub links: Vec<NetLink>,
    /// The source node.
    pub src: usize,
    /// The destination node.
    pub dst: usize,
    /// Extra delay per packet, uniform in `[0, jitter]`; nonzero jitter also reorders.
    pub jitter: Duration,
    /// Every link direction's bandwidth (`None`: unlimited).
    pub rate_bps: Option<u64>,
    /// How losses are recovered.
    pub recovery: Recovery,
    /// Messages the source client sends.
    pub messages: u64,
    /// Its rate in messages per second; `None`: as fast as its credit allows.
    pub rate_pps: Option<u32>,
    /// Bytes a data packet takes on a link (for rate limits).
    pub msg_bytes: usize,
    /// The flow's end-to-end window (messages).
    pub e2e_window: u32,
    /// Each link sender's window (records).
    pub link_window: u32,
    /// TCP-like congestion control on every ARQ loop.
    pub congestion_control: bool,
    /// Every ARQ loop paces its transmissions to this rate (`None`: no pacing).
    pub pacing_bps: Option<u64>,
    /// The receiving client's reads per second; `None`: it takes each message at once.
    pub read_pps: Option<u32>,
    /// The receiving client stops reading for this span (start, length), if set.
    pub read_pause: Option<(Duration, Duration)>,
    /// How long a failure or repair takes to be believed.
    pub detect: Duration,
    /// Failures.
    pub faults: Vec<Fault>,
    /// The seed of every link's randomness.
    pub seed: u64,
    /// The run stops here even if messages are outstanding.
    pub time_limit: Duration,
}

impl ReliableConfig {
    /// A chain `0 – 1 – … – links` of `links` links of `latency` each with `loss` on every
    /// direction (the data's and the feedback's), 1,000 messages/s, unlimited bandwidth.
    pub fn chain(
        links: usize,
        latency: Duration,
        loss: LossModel,
        recovery: Recovery,
        messages: u64,
        seed: u64,
    ) -> Self {
        let links: Vec<NetLink> = (0..links)
            .map(|i| NetLink {
                a: i,
                b: i + 1,
                latency,
                loss,
            })
            .collect();
        ReliableConfig {
            nodes: links.len() + 1,
            src: 0,
            dst: links.len(),
            links,
            jitter: Duration::ZERO,
            rate_bps: None,
            recovery,
            messages,
            rate_pps: Some(1000),
            msg_bytes: 1000,
            e2e_window: 1024,
            link_window: 4096,
            congestion_control: false,
            pacing_bps: None,
            read_pps: None,
            read_pause: None,
            detect: Duration::from_millis(100),
            faults: Vec::new(),
            seed,
            time_limit: Duration::from_secs(3600),
        }
    }

    /// A diamond with a tail: source 0, destination 3, two disjoint paths 0–1–3 (10 ms links)
    /// and 0–2–3 (15 ms links), and a longer detour 0–4–5–3 (20 ms links), all with `loss`.
    pub fn diamond(loss: LossModel, messages: u64, seed: u64) -> Self {
        let l = |a, b, ms| NetLink {
            a,
            b,
            latency: Duration::from_millis(ms),
            loss,
        };
        let links = vec![
            l(0, 1, 10),
            l(1, 3, 10),
            l(0, 2, 15),
            l(2, 3, 15),
            l(0, 4, 20),
            l(4, 5, 20),
            l(5, 3, 20),
        ];
        ReliableConfig {
            nodes: 6,
            links,
            dst: 3,
            ..Self::chain(1, Duration::ZERO, loss, Recovery::HopByHop, messages, seed)
        }
    }
}

/// A latency distribution, in ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// The figures of one experiment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReliableReport {
    /// The recovery.
    pub recovery: Recovery,
    /// The seed.
    pub seed: u64,
    /// Messages sent by the source client.
    pub sent: u64,
    /// Messages delivered to the receiving client (in order, each once: checked).
    pub delivered: u64,
    /// Deliveries out of order or repeated (must be 0).
    pub misordered: u64,
    /// Deliveries whose payload was not the message sent under that sequence (must be 0).
    pub corrupted: u64,
    /// Whether every message was delivered before the time limit.
    pub complete: bool,
    /// Messages a retransmission (link or end to end) brought to the destination.
    pub recovered: u64,
    /// Arrival at the destination − origin, of recovered messages.
    pub recovered_latency: Latency,
    /// In-order delivery − origin, of every message.
    pub delivery_latency: Latency,
    /// Delivered payload bits per second of virtual time, from the first send to the last
    /// delivery.
    pub goodput_bps: f64,
    /// Virtual time of the last delivery.
    pub last_delivery_ms: f64,
    /// Data packets sent on all links (originals, retransmissions, resends).
    pub data_packets: u64,
    /// Link retransmissions.
    pub link_retransmissions: u64,
    /// Duplicates the link receivers dropped.
    pub link_duplicates: u64,
    /// Records refused by a hop for want of room (backpressure).
    pub refused: u64,
    /// End-to-end resends by the source.
    pub e2e_resent: u64,
    /// Duplicates the sink dropped.
    pub sink_duplicates: u64,
    /// Stalls the source reported.
    pub stalls: u64,
    /// The most records any link sender had in flight.
    pub max_link_in_flight: u32,
    /// The most messages the sink held.
    pub max_held: u64,
    /// The most messages the source had outstanding.
    pub max_outstanding: u32,
}
