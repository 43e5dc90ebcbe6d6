//! Emulated links: latency, jitter, Bernoulli and Gilbert–Elliott loss, a rate limit with a
//! bounded queue, and up/down, as a sans-IO model driven by a seeded generator.
//!
//! The same model serves the simulator (virtual time) and `weft-linkem` (real time between
//! real processes), so both lose and delay packets by the same rules. A packet offered at
//! `now` is queued behind earlier ones (serialisation at `rate_bps`, tail drop past
//! `queue_limit_bytes`), then lost with the loss model's probability, else delivered after
//! `latency` plus a uniform jitter in `[0, jitter]`. Unless `reorder` is set, a packet is never
//! delivered before an earlier one (jitter then only stretches gaps, like a real FIFO path).

use std::time::Duration;

use weft_shared::time::Instant;

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same sequence on
/// every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    /// A uniform integer in `[0, n)` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A new generator split off this one (for a sub-component with its own stream).
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

/// How packets are lost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossModel {
    /// Nothing is lost.
    None,
    /// Each packet is lost independently with probability `p`.
    Bernoulli {
        /// Loss probability.
        p: f64,
    },
    /// A two-state Markov chain: in the good state packets are lost with `loss_good`, in the
    /// bad state with `loss_bad`; before each packet the state changes with `p_good_to_bad`
    /// or `p_bad_to_good`.
    GilbertElliott {
        /// Probability of moving from good to bad, per packet.
        p_good_to_bad: f64,
        /// Probability of moving from bad to good, per packet.
        p_bad_to_good: f64,
        /// Loss probability in the good state.
        loss_good: f64,
        /// Loss probability in the bad state.
        loss_bad: f64,
    },
}

impl LossModel {
    /// The Gilbert model (lossless good state, all lost in the bad state) with average loss
    /// `average` and mean burst length `mean_burst` packets: `p_bad_to_good = 1 / mean_burst`,
    /// `p_good_to_bad = average · p_bad_to_good / (1 − average)`.
    pub fn bursty(average: f64, mean_burst: f64) -> LossModel {
        let r = 1.0 / mean_burst.max(1.0);
        let a = average.clamp(0.0, 0.999);
        LossModel::GilbertElliott {
            p_good_to_bad: a * r / (1.0 - a),
            p_bad_to_good: r,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// The long-run loss rate of the model.
    pub fn average(&self) -> f64 {
        match *self {
            LossModel::None => 0.0,
            LossModel::Bernoulli { p } => p,
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let total = p_good_to_bad + p_bad_to_good;
                if total <= 0.0 {
                    return loss_good;
                }
                let bad = p_good_to_bad / total;
                (1.0 - bad) * loss_good + bad * loss_bad
            }
        }
    }
}

/// The parameters of one direction of an emulated link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkParams {
    /// One-way propagation delay.
    pub latency: Duration,
    /// Extra delay, uniform in `[0, jitter]`.
    pub jitter: Duration,
    /// How packets are lost.
    pub loss: LossModel,
    /// Bandwidth in bits per second (`None`: unlimited).
    pub rate_bps: Option<u64>,
    /// Bytes that may wait for the link before tail drop (only with a rate).
    pub queue_limit_bytes: usize,
    /// Let jitter reorder packets (otherwise delivery is FIFO).
    pub reorder: bool,
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: LossModel::None,
            rate_bps: None,
            queue_limit_bytes: 1 << 20,
            reorder: false,
        }
    }
}

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// The loss model lost it.
    Loss,
    /// The queue was full.
    Queue,
    /// The link is down (cut).
    Down,
}

/// What happens to one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It arrives at this time.
    Deliver(Instant),
    /// It never arrives.
    Drop(DropCause),
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Packets offered.
    pub offered: u64,
    /// Packets delivered.
    pub delivered: u64,
    /// Lost by the loss model.
    pub lost: u64,
    /// Dropped at the full queue.
    pub queue_drops: u64,
    /// Dropped while down.
    pub down_drops: u64,
}

/// One direction of an emulated link.
#[derive(Clone, Debug)]
pub struct LinkModel {
    params: LinkParams,
    rng: Rng,
    bad_state: bool,
    up: bool,
    busy_until: Instant,
    last_delivery: Instant,
    counters: LinkCounters,
}

impl LinkModel {
    /// A link with `params`, its randomness from `seed`.
    pub fn new(params: LinkParams, seed: u64) -> LinkModel {
        LinkModel {
            params,
            rng: Rng::new(seed),
            bad_state: false,
            up: true,
            busy_until: Instant::ZERO,
            last_delivery: Instant::ZERO,
            counters: LinkCounters::default(),
        }
    }

    /// The current parameters.
    pub fn params(&self) -> LinkParams {
        self.params
    }

    /// Changes the parameters from now on (packets already accepted keep their fate).
    pub fn set_params(&mut self, params: LinkParams) {
        self.params = params;
    }

    /// Cuts (`false`) or restores (`true`) the link. Packets already in flight still arrive.
    pub fn set_up(&mut self, up: bool) {
        self.up = up;
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The counters so far.
    pub fn counters(&self) -> LinkCounters {
        self.counters
    }

    /// A packet of `len` bytes enters the link at `now`: when it arrives, or why not.
    pub fn offer(&mut self, now: Instant, len: usize) -> Verdict {
        self.counters.offered += 1;
        if !self.up {
            self.counters.down_drops += 1;
            return Verdict::Drop(DropCause::Down);
        }
        // Serialisation behind earlier packets, with a bounded backlog.
        let sent_at = match self.params.rate_bps {
            Some(rate) if rate > 0 => {
                let start = self.busy_until.max(now);
                let backlog_ns = (start - now).as_nanos();
                let backlog_bytes = backlog_ns.saturating_mul(u128::from(rate)) / 8_000_000_000;
                if backlog_bytes > self.params.queue_limit_bytes as u128 {
                    self.counters.queue_drops += 1;
                    return Verdict::Drop(DropCause::Queue);
                }
                let tx_ns = (len as u128 * 8 * 1_000_000_000).div_ceil(u128::from(rate));
                self.busy_until = start + Duration::from_nanos(tx_ns as u64);
                self.busy_until
            }
            _ => now,
        };
        if self.lose() {
            self.counters.lost += 1;
            return Verdict::Drop(DropCause::Loss);
        }
        let jitter_ns = self.params.jitter.as_nanos() as u64;
        let jitter = Duration::from_nanos(self.rng.below(jitter_ns.saturating_add(1)));
        let mut at = sent_at + self.params.latency + jitter;
        if !self.params.reorder {
            at = at.max(self.last_delivery);
        }
        self.last_delivery = self.last_delivery.max(at);
        self.counters.delivered += 1;
        Verdict::Deliver(at)
    }

    fn lose(&mut self) -> bool {
        match self.params.loss {
            LossModel::None => false,
            LossModel::Bernoulli { p } => self.rng.chance(p),
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad_state {
                    p_bad_to_good
                } else {
                    p_good_to_bad
                };
                if self.rng.chance(flip) {
                    self.bad_state = !self.bad_state;
                }
                let p = if self.bad_state { loss_bad } else { loss_good };
                self.rng.chance(p)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    const N: u64 = 1_000_000;

    fn lost_pattern(loss: LossModel, seed: u64) -> Vec<bool> {
        let params = LinkParams {
            loss,
            ..LinkParams::default()
        };
        let mut m = LinkModel::new(params, seed);
        (0..N)
            .map(|i| matches!(m.offer(Instant::from_micros(i), 100), Verdict::Drop(_)))
            .collect()
    }

    fn bursts(pattern: &[bool]) -> (usize, f64) {
        let mut count = 0;
        let mut total = 0;
        let mut run = 0;
        for &lost in pattern.iter().chain([false].iter()) {
            if lost {
                run += 1;
            } else if run > 0 {
                count += 1;
                total += run;
                run = 0;
            }
        }
        (count, total as f64 / count.max(1) as f64)
    }

    #[test]
    fn bernoulli_loses_its_rate_without_bursts() {
        let p = lost_pattern(LossModel::Bernoulli { p: 0.05 }, 7);
        let rate = p.iter().filter(|l| **l).count() as f64 / N as f64;
        // σ = sqrt(p(1-p)/N) ≈ 0.00022: 5σ.
        assert!((rate - 0.05).abs() < 0.0011, "{rate}");
        let (_, mean_burst) = bursts(&p);
        // Geometric bursts: mean 1 / (1 - p) ≈ 1.053.
        assert!((mean_burst - 1.0 / 0.95).abs() < 0.01, "{mean_burst}");
    }

    #[test]
    fn gilbert_elliott_matches_its_average_and_burst_length() {
        let model = LossModel::bursty(0.05, 4.0);
        assert!((model.average() - 0.05).abs() < 1e-12);
        let p = lost_pattern(model, 11);
        let rate = p.iter().filter(|l| **l).count() as f64 / N as f64;
        let (count, mean_burst) = bursts(&p);
        assert!((rate - 0.05).abs() < 0.005, "loss {rate}");
        assert!(
            (mean_burst - 4.0).abs() < 0.2,
            "mean burst {mean_burst} over {count}"
        );
    }

    #[test]
    fn latency_and_uniform_jitter() {
        let params = LinkParams {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(4),
            reorder: true,
            ..LinkParams::default()
        };
        let mut m = LinkModel::new(params, 3);
        let mut sum = 0f64;
        let mut min = u64::MAX;
        let mut max = 0;
        let n = 200_000u64;
        for i in 0..n {
            let now = Instant::from_millis(i);
            let Verdict::Deliver(at) = m.offer(now, 100) else {
                panic!("no loss configured");
            };
            let d = (at - now).as_micros() as u64;
            sum += d as f64;
            min = min.min(d);
            max = max.max(d);
        }
        let mean = sum / n as f64;
        // Uniform on [10, 14] ms: mean 12 ms (σ of the mean ≈ 2.6 µs).
        assert!((mean - 12_000.0).abs() < 20.0, "{mean}");
        assert!(min >= 10_000 && min < 10_010, "{min}");
        assert!(max <= 14_000 && max > 13_990, "{max}");
    }

    #[test]
    fn fifo_unless_reordering_is_allowed() {
        let params = LinkParams {
            latency: Duration::from_millis(1),
            jitter: Duration::from_millis(5),
            ..LinkParams::default()
        };
        let mut m = LinkModel::new(params, 5);
        let mut last = Instant::ZERO;
        for i in 0..10_000 {
            let Verdict::Deliver(at) = m.offer(Instant::from_micros(i * 100), 100) else {
                panic!()
            };
            assert!(at >= last);
            last = at;
        }
    }

    #[test]
    fn rate_limit_paces_and_tail_drops() {
        // 8 Mbit/s = 1 byte/µs; 1,000-byte packets take 1 ms each; 10 kB of queue.
        let params = LinkParams {
            rate_bps: Some(8_000_000),
            queue_limit_bytes: 10_000,
            ..LinkParams::default()
        };
        let mut m = LinkModel::new(params, 1);
        let now = Instant::from_millis(100);
        let mut delivered = Vec::new();
        for _ in 0..100 {
            if let Verdict::Deliver(at) = m.offer(now, 1_000) {
                delivered.push(at);
            }
        }
        // A burst of 100 at once: 1 on the wire + 10 kB queued (≈ 11 packets) get through.
        assert!((10..=12).contains(&delivered.len()), "{}", delivered.len());
        assert_eq!(delivered[0], now + Duration::from_millis(1));
        assert_eq!(delivered[1] - delivered[0], Duration::from_millis(1));
        assert_eq!(m.counters().queue_drops, 100 - delivered.len() as u64);
    }

    #[test]
    fn a_cut_link_drops_until_restored_and_seeds_repeat() {
        let mut m = LinkModel::new(LinkParams::default(), 9);
        m.set_up(false);
        assert_eq!(m.offer(Instant::ZERO, 1), Verdict::Drop(DropCause::Down));
        m.set_up(true);
        assert!(matches!(m.offer(Instant::ZERO, 1), Verdict::Deliver(_)));
        let a = lost_pattern(LossModel::Bernoulli { p: 0.3 }, 42);
        let b = lost_pattern(LossModel::Bernoulli { p: 0.3 }, 42);
        let c = lost_pattern(LossModel::Bernoulli { p: 0.3 }, 43);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
