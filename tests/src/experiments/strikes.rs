//! NM-Strikes on a continental path: a chain of links, each hop running the real
//! [`RtSender`]/[`RtReceiver`] over [`LinkModel`] links in both directions, into a
//! [`DeadlineBuffer`] at the destination. Deterministic for a seed, in virtual time.
//!
//! The set-up (the paper's live-TV case, IV-A): a flow of `rate_pps` packets per second
//! crosses `links` links of `link_latency` each (4 × 10 ms = 40 ms of propagation) with a
//! `deadline` of 200 ms, so about 160 ms are left for recovery. Each link direction has its own
//! seeded loss model. Nack records travel back over the reverse link model and are lost like
//! data. Intermediate hops forward every accepted packet at once, out of order; only the
//! destination reorders.
//!
//! What each hop knows of a packet's deadline: the `RtMeta::deadline` of link i is the
//! origin plus the deadline less the propagation still ahead after link i, as a hop that knows
//! its route's cost to the destination would compute it from the overlay header's
//! `deadline_us − age_us`.
//!
//! The Gilbert–Elliott chain of [`LinkModel`] moves once per packet offered, so a reverse
//! direction that carried only the sparse Nacks would keep one loss burst across requests sent
//! tens of milliseconds apart, far longer than a burst of 4 packets lasts at 1,000 packets/s on
//! the forward direction. With `reverse_background` (the default) the reverse direction also
//! carries a stream at the flow's rate (as the opposite flow of a two-way session would), so
//! that its bursts last as long in time as the forward ones.
//!
//! # Figures
//!
//! - on-time ratio: messages released by the deadline buffer / messages sent;
//! - link overhead: data packets sent on the links (originals + retransmitted copies) /
//!   originals, over all links: the paper's sender-to-receiver cost, expected 1 + M·p (each
//!   lost packet is requested and answered with M copies);
//! - delivery overhead: data packets sent on all links / (messages on time × links): packets
//!   sent per packet delivered, per link crossed;
//! - latency percentiles of the released messages (release − origin), from the buffer's own
//!   histogram.

use std::time::Duration;

use serde::Serialize;
use weft_proto::realtime::{
    DeadlineBuffer, DeadlineParams, ReceiverLimits, RtMeta, RtReceiver, RtSender, SenderLimits,
};
use weft_shared::time::Instant;
use weft_shared::wire::{Delivery, NackRepr, Strikes};

use super::queue::EventQueue;
use crate::linkmodel::{LinkModel, LinkParams, LossModel, Rng, Verdict};

/// The protocol timing a configuration may override (re-exported for callers without a
/// `weft-proto` dependency).
pub use weft_proto::realtime::RtParams;

/// One experiment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StrikesConfig {
    /// Links in the chain.
    pub links: usize,
    /// One-way latency of each link.
    pub link_latency: Duration,
    /// Extra delay per packet, uniform in `[0, jitter]`; nonzero jitter also reorders.
    pub jitter: Duration,
    /// Loss of the data direction of every link.
    pub loss: LossModel,
    /// Loss of the reverse (Nack) direction of every link.
    pub reverse_loss: LossModel,
    /// N requests and M retransmissions.
    pub strikes: Strikes,
    /// The flow's one-way deadline.
    pub deadline: Duration,
    /// How the destination releases messages.
    pub delivery: Delivery,
    /// Messages per second.
    pub rate_pps: u32,
    /// Messages sent.
    pub packets: u64,
    /// Protocol timing; `None`: [`RtParams::for_link`] of the link latency.
    pub params: Option<RtParams>,
    /// A background stream at the flow's rate on every reverse direction (see the module docs).
    pub reverse_background: bool,
    /// The seed of every link's randomness.
    pub seed: u64,
}

impl StrikesConfig {
    /// The continental path: 4 links of 10 ms, a 200 ms deadline, 1,000 packets/s released as
    /// soon as ordered, the same loss both ways, N = `n`, M = `m`.
    pub fn continental(loss: LossModel, n: u8, m: u8, packets: u64, seed: u64) -> Self {
        StrikesConfig {
            links: 4,
            link_latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss,
            reverse_loss: loss,
            strikes: Strikes::new(n, m).unwrap_or(Strikes::NONE),
            deadline: Duration::from_millis(200),
            delivery: Delivery::AsSoonAsOrdered,
            rate_pps: 1000,
            packets,
            params: None,
            reverse_background: true,
            seed,
        }
    }
}

/// A short name of a loss model: `bernoulli 5%`, `gilbert-elliott 5% burst 4`.
pub fn loss_label(loss: &LossModel) -> String {
    match *loss {
        LossModel::None => "none".to_string(),
        LossModel::Bernoulli { p } => format!("bernoulli {}%", p * 100.0),
        LossModel::GilbertElliott { p_bad_to_good, .. } => format!(
            "gilbert-elliott {:.3}% burst {:.3}",
            loss.average() * 100.0,
            1.0 / p_bad_to_good
        )
        .replace(".000", ""),
    }
}

/// One link's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LinkFigures {
    /// Originals sent on the link.
    pub originals: u64,
    /// Retransmitted copies sent.
    pub retransmissions: u64,
    /// (originals + retransmissions) / originals.
    pub overhead: f64,
    /// Fraction of the data packets the link model lost.
    pub data_loss: f64,
    /// Missing sequences the receiver found.
    pub missing: u64,
    /// Requests sent (sequences in Nack records).
    pub requests: u64,
    /// Nack records sent.
    pub nacks: u64,
    /// Requests the sender answered (first requests).
    pub answered: u64,
    /// Records refused by the hop's sender as too late to be useful.
    pub expired: u64,
    /// Copies and requests cut because the deadline came too close.
    pub cut_by_deadline: u64,
}

/// The figures of one experiment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StrikesReport {
    /// The loss model (data direction).
    pub loss: String,
    /// Its long-run loss rate p.
    pub p: f64,
    /// N.
    pub n: u8,
    /// M.
    pub m: u8,
    /// The seed.
    pub seed: u64,
    /// Messages sent.
    pub packets: u64,
    /// Released by the deadline buffer.
    pub on_time: u64,
    /// Of those, recovered by a retransmission on some link.
    pub recovered: u64,
    /// Arrived too late (dropped by the buffer).
    pub late: u64,
    /// Never arrived (sent − on time − late).
    pub lost: u64,
    /// on_time / packets.
    pub on_time_ratio: f64,
    /// Data packets on all links / originals on all links.
    pub link_overhead: f64,
    /// 1 + M·p.
    pub expected_overhead: f64,
    /// Data packets on all links / (on time × links).
    pub delivery_overhead: f64,
    /// Latency percentiles of released messages, in ms.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Messages released more than once (must be 0).
    pub released_twice: u64,
    /// Releases of a sequence not above the previous one (must be 0).
    pub out_of_order: u64,
    /// Per link, source first.
    pub links: Vec<LinkFigures>,
}

/// A data packet as the harness carries it: the record body the sender keeps is its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pkt {
    e2e: u64,
    origin: Instant,
    /// Recovered by a retransmission on some link so far.
    recovered: bool,
}

const PKT_LEN: usize = 17;

impl Pkt {
    fn encode(self) -> [u8; PKT_LEN] {
        let mut b = [0; PKT_LEN];
        b[..8].copy_from_slice(&self.e2e.to_be_bytes());
        b[8..16].copy_from_slice(&self.origin.as_nanos().to_be_bytes());
        b[16] = u8::from(self.recovered);
        b
    }

    fn decode(b: &[u8]) -> Pkt {
        let word = |r: std::ops::Range<usize>| {
            let mut w = [0; 8];
            w.copy_from_slice(&b[r]);
            u64::from_be_bytes(w)
        };
        Pkt {
            e2e: word(0..8),
            origin: Instant::from_nanos(word(8..16)),
            recovered: b[16] == 1,
        }
    }
}

/// A component with a timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comp {
    Sender(usize),
    Receiver(usize),
    Dest,
}

#[derive(Clone, Debug)]
enum Ev {
    /// The source sends its next message.
    Source,
    /// A data packet arrives at the far end of `link`.
    Data {
        link: usize,
        seq: u32,
        pkt: Pkt,
        retx: bool,
    },
    /// A Nack arrives at the sending end of `link`.
    Nack { link: usize, nack: NackRepr },
    /// A component's timer.
    Wake(Comp),
}

/// Bytes a data packet takes on the wire (only matters with a rate limit).
const DATA_BYTES: usize = 1_400;

struct Run {
    cfg: StrikesConfig,
    now: Instant,
    queue: EventQueue<Ev>,
    senders: Vec<RtSender>,
    receivers: Vec<RtReceiver>,
    dest: DeadlineBuffer<()>,
    fwd: Vec<LinkModel>,
    rev: Vec<LinkModel>,
    /// Next background packet time per reverse direction.
    background: Vec<Instant>,
    interval: Duration,
    armed: Vec<Option<Instant>>,
    next_source: u64,
    released: Vec<u8>,
    last_released: Option<u64>,
    out_of_order: u64,
    nacks: Vec<u64>,
}

/// Runs one experiment to the end (every timer drained) and reports.
pub fn run(cfg: &StrikesConfig) -> StrikesReport {
    let mut r = Run::new(*cfg);
    r.push(Instant::ZERO, Ev::Source);
    while let Some((at, ev)) = r.queue.pop() {
        r.now = r.now.max(at);
        r.handle(ev);
    }
    r.report()
}

impl Run {
    fn new(cfg: StrikesConfig) -> Self {
        let links = cfg.links.max(1);
        let params = cfg.params.unwrap_or(RtParams::for_link(cfg.link_latency));
        let interval = Duration::from_nanos(1_000_000_000 / u64::from(cfg.rate_pps.max(1)));
        // History, window and buffer span: twice the packets of one deadline.
        let span = (cfg.deadline.as_nanos() / interval.as_nanos().max(1)) as u32 * 2 + 64;
        let sender = SenderLimits {
            history: span,
            record_len: PKT_LEN,
            schedule: 1024,
        };
        let receiver = ReceiverLimits {
            window: span,
            pending: 1024,
            nack_queue: 1024,
        };
        let mut rng = Rng::new(cfg.seed);
        let model = |loss| LinkParams {
            latency: cfg.link_latency,
            jitter: cfg.jitter,
            reorder: !cfg.jitter.is_zero(),
            loss,
            ..LinkParams::default()
        };
        let fwd = (0..links)
            .map(|_| LinkModel::new(model(cfg.loss), rng.next_u64()))
            .collect();
        let rev = (0..links)
            .map(|_| LinkModel::new(model(cfg.reverse_loss), rng.next_u64()))
            .collect();
        let dest = DeadlineBuffer::new(
            DeadlineParams {
                deadline: cfg.deadline,
                delivery: cfg.delivery,
                capacity: span,
            },
            Some(0),
        );
        Run {
            cfg: StrikesConfig { links, ..cfg },
            now: Instant::ZERO,
            queue: EventQueue::new(),
            senders: (0..links).map(|_| RtSender::new(params, sender)).collect(),
            receivers: (0..links)
                .map(|_| RtReceiver::new(params, receiver))
                .collect(),
            dest,
            fwd,
            rev,
            background: vec![Instant::ZERO; links],
            interval,
            armed: vec![None; 2 * links + 1],
            next_source: 0,
            released: vec![0; cfg.packets as usize],
            last_released: None,
            out_of_order: 0,
            nacks: vec![0; links],
        }
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.queue.push(at, ev);
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Source => self.on_source(),
            Ev::Data {
                link,
                seq,
                pkt,
                retx,
            } => self.on_data(link, seq, pkt, retx),
            Ev::Nack { link, nack } => {
                self.senders[link].handle_nack(self.now, nack.seqs());
                self.flush_sender(link);
            }
            Ev::Wake(comp) => {
                let id = self.comp_id(comp);
                if self.armed[id] == Some(self.now) {
                    self.armed[id] = None;
                }
                match comp {
                    Comp::Sender(link) => self.flush_sender(link),
                    Comp::Receiver(link) => {
                        self.receivers[link].handle_timeout(self.now);
                        self.flush_receiver(link);
                    }
                    Comp::Dest => self.flush_dest(),
                }
            }
        }
    }

    fn on_source(&mut self) {
        let e2e = self.next_source;
        self.next_source += 1;
        let pkt = Pkt {
            e2e,
            origin: self.now,
            recovered: false,
        };
        self.send_on(0, pkt);
        if self.next_source < self.cfg.packets {
            let ns = self.interval.as_nanos() as u64 * self.next_source;
            let at = Instant::from_nanos(ns);
            self.push(at, Ev::Source);
        }
    }

    /// The meta of `pkt` on `link`: its deadline less the propagation after that link.
    fn meta(&self, link: usize, pkt: Pkt) -> RtMeta {
        let ahead = self.cfg.link_latency * (self.cfg.links - 1 - link) as u32;
        let deadline = pkt.origin + self.cfg.deadline;
        RtMeta {
            strikes: self.cfg.strikes,
            deadline: Instant::from_nanos(
                deadline.as_nanos().saturating_sub(ahead.as_nanos() as u64),
            ),
        }
    }

    /// A hop sends `pkt` on `link` for the first time.
    fn send_on(&mut self, link: usize, pkt: Pkt) {
        let meta = self.meta(link, pkt);
        if let Ok(seq) = self.senders[link].handle_send(self.now, meta, &pkt.encode()) {
            self.offer_data(link, seq, pkt, false);
        }
    }

    fn offer_data(&mut self, link: usize, seq: u32, pkt: Pkt, retx: bool) {
        if let Verdict::Deliver(at) = self.fwd[link].offer(self.now, DATA_BYTES) {
            let ev = Ev::Data {
                link,
                seq,
                pkt,
                retx,
            };
            self.push(at, ev);
        }
    }

    fn on_data(&mut self, link: usize, seq: u32, mut pkt: Pkt, retx: bool) {
        let meta = self.meta(link, pkt);
        let outcome = self.receivers[link].handle_packet(self.now, seq, meta, retx);
        if outcome.is_accepted() {
            pkt.recovered |= retx;
            if link + 1 == self.cfg.links {
                self.dest
                    .handle_packet(self.now, pkt.e2e, pkt.origin, pkt.recovered, ());
                self.flush_dest();
            } else {
                self.send_on(link + 1, pkt);
            }
        }
        self.flush_receiver(link);
    }

    /// Sends the receiver's Nacks back over the reverse direction and re-arms its timer.
    fn flush_receiver(&mut self, link: usize) {
        while let Some(nack) = self.receivers[link].poll_nack() {
            self.nacks[link] += 1;
            if self.cfg.reverse_background {
                while self.background[link] <= self.now {
                    let t = self.background[link];
                    self.rev[link].offer(t, 64);
                    self.background[link] = t + self.interval;
                }
            }
            let bytes = 8 + nack.wire_len();
            if let Verdict::Deliver(at) = self.rev[link].offer(self.now, bytes) {
                self.push(at, Ev::Nack { link, nack });
            }
        }
        let t = self.receivers[link].poll_timeout();
        self.arm(Comp::Receiver(link), t);
    }

    /// Sends the copies due on `link` and re-arms the sender's timer.
    fn flush_sender(&mut self, link: usize) {
        while let Some((seq, pkt)) = self.senders[link]
            .poll_transmit(self.now)
            .map(|r| (r.link_seq, Pkt::decode(r.record)))
        {
            self.offer_data(link, seq, pkt, true);
        }
        let t = self.senders[link].poll_timeout();
        self.arm(Comp::Sender(link), t);
    }

    fn flush_dest(&mut self) {
        while let Some(r) = self.dest.poll_release(self.now) {
            if let Some(count) = self.released.get_mut(r.seq as usize) {
                *count = count.saturating_add(1);
            }
            if self.last_released.is_some_and(|l| r.seq <= l) {
                self.out_of_order += 1;
            }
            self.last_released = Some(r.seq);
        }
        let t = self.dest.poll_timeout();
        self.arm(Comp::Dest, t);
    }

    fn comp_id(&self, comp: Comp) -> usize {
        match comp {
            Comp::Sender(l) => l,
            Comp::Receiver(l) => self.cfg.links + l,
            Comp::Dest => 2 * self.cfg.links,
        }
    }

    /// Makes sure `comp` wakes at `t` (a wake-up already queued for earlier stands).
    fn arm(&mut self, comp: Comp, t: Option<Instant>) {
        let Some(t) = t else {
            return;
        };
        let t = t.max(self.now);
        let id = self.comp_id(comp);
        if self.armed[id].is_none_or(|a| t < a) {
            self.armed[id] = Some(t);
            self.push(t, Ev::Wake(comp));
        }
    }

    fn report(&self) -> StrikesReport {
        let cfg = &self.cfg;
        let stats = self.dest.stats();
        let on_time = self.released.iter().filter(|&&c| c > 0).count() as u64;
        let released_twice = self.released.iter().filter(|&&c| c > 1).count() as u64;
        let links: Vec<LinkFigures> = (0..cfg.links)
            .map(|i| {
                let s = self.senders[i].counters();
                let r = self.receivers[i].counters();
                let f = self.fwd[i].counters();
                LinkFigures {
                    originals: s.sent,
                    retransmissions: s.retransmitted,
                    overhead: ratio(s.sent + s.retransmitted, s.sent),
                    data_loss: ratio(f.lost, f.offered),
                    missing: r.missing,
                    requests: r.requests,
                    nacks: self.nacks[i],
                    answered: s.answered,
                    expired: s.expired,
                    cut_by_deadline: s.cut_by_deadline + s.too_late + r.too_late + r.abandoned,
                }
            })
            .collect();
        let originals: u64 = links.iter().map(|l| l.originals).sum();
        let sent: u64 = links.iter().map(|l| l.originals + l.retransmissions).sum();
        let p = cfg.loss.average();
        let ms = |q: f64| {
            stats
                .latency
                .quantile(q)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        StrikesReport {
            loss: loss_label(&cfg.loss),
            p,
            n: cfg.strikes.n(),
            m: cfg.strikes.m(),
            seed: cfg.seed,
            packets: cfg.packets,
            on_time,
            recovered: stats.recovered,
            late: stats.late,
            lost: cfg.packets - on_time - stats.late.min(cfg.packets - on_time),
            on_time_ratio: ratio(on_time, cfg.packets),
            link_overhead: ratio(sent, originals),
            expected_overhead: 1.0 + f64::from(cfg.strikes.m()) * p,
            delivery_overhead: ratio(sent, on_time * cfg.links as u64),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: stats.latency.max().map_or(0.0, |d| d.as_secs_f64() * 1e3),
            released_twice,
            out_of_order: self.out_of_order,
            links,
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}
