//! A pair of monitors joined by a tiny seeded channel, stepped to the earliest wakeup
//! (STYLE.md §12(c)): per path one-way latency, uniform jitter, Bernoulli loss and cuts.

use core::time::Duration;

use weft_shared::ids::{MAX_PATHS_PER_LINK, PathId};
use weft_shared::time::Instant;

use super::super::{HelloFields, LinkEvent, LinkMonitor, LinkMonitorConfig, LocalIdentity};

/// splitmix64: small, seeded, good enough for loss and jitter draws.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n) (with a negligible bias for small n).
    pub(super) fn next_below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What the channel does to one path (both directions alike).
#[derive(Clone, Copy, Debug)]
pub(super) struct PathNet {
    pub(super) latency: Duration,
    /// Extra delay drawn uniformly from [0, jitter] per packet (may reorder).
    pub(super) jitter: Duration,
    /// Probability that a packet is lost.
    pub(super) loss: f64,
    /// While set, nothing is delivered on the path (packets arriving then are lost).
    pub(super) cut: bool,
}

impl Default for PathNet {
    fn default() -> Self {
        PathNet {
            latency: Duration::from_millis(5),
            jitter: Duration::ZERO,
            loss: 0.0,
            cut: false,
        }
    }
}

/// One side of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    A,
    B,
}

/// An event as the harness saw it, with the deliveries that side had on each path by then.
#[derive(Clone, Copy, Debug)]
pub(super) struct Logged {
    pub(super) at: Instant,
    pub(super) side: Side,
    pub(super) event: LinkEvent,
    pub(super) delivered: [u64; MAX_PATHS_PER_LINK as usize],
}

struct InFlight {
    at: Instant,
    to: Side,
    path: PathId,
    hello: HelloFields,
}

/// Two monitors, the channel between them and the virtual clock.
pub(super) struct Pair {
    pub(super) a: LinkMonitor,
    pub(super) b: LinkMonitor,
    pub(super) now: Instant,
    pub(super) net: [PathNet; MAX_PATHS_PER_LINK as usize],
    pub(super) log: Vec<Logged>,
    /// Hellos delivered to [A, B] per path.
    pub(super) delivered: [[u64; MAX_PATHS_PER_LINK as usize]; 2],
    in_flight: Vec<InFlight>,
    rng: Rng,
}

impl Pair {
    pub(super) fn new(
        config: LinkMonitorConfig,
        a: LocalIdentity,
        b: LocalIdentity,
        seed: u64,
    ) -> Self {
        // `WEFT_SIM_SEED=0x..` reruns every pair test with another seed.
        let seed = std::env::var("WEFT_SIM_SEED")
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .unwrap_or(seed);
        println!("pair seed {seed:#x} (override with WEFT_SIM_SEED)");
        // The two ends start at different moments, so their phases differ too.
        let b_config = LinkMonitorConfig {
            phase_seed: config.phase_seed ^ 0xb,
            ..config
        };
        Pair {
            a: LinkMonitor::new(config, a, Instant::ZERO).unwrap(),
            b: LinkMonitor::new(b_config, b, Instant::ZERO).unwrap(),
            now: Instant::ZERO,
            net: [PathNet::default(); MAX_PATHS_PER_LINK as usize],
            log: Vec::new(),
            delivered: [[0; MAX_PATHS_PER_LINK as usize]; 2],
            in_flight: Vec::new(),
            rng: Rng::new(seed),
        }
    }

    pub(super) fn monitor(&self, side: Side) -> &LinkMonitor {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    fn monitor_mut(&mut self, side: Side) -> &mut LinkMonitor {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Replaces one side's monitor (a restart), keeping the channel and what is in flight.
    pub(super) fn restart(&mut self, side: Side, config: LinkMonitorConfig, id: LocalIdentity) {
        *self.monitor_mut(side) = LinkMonitor::new(config, id, self.now).unwrap();
    }

    /// Steps to each earliest wakeup (timer or delivery) up to and including `until`.
    pub(super) fn run_until(&mut self, until: Instant) {
        loop {
            let next_delivery = self.in_flight.iter().map(|p| p.at).min();
            let next = [self.a.poll_timeout(), self.b.poll_timeout(), next_delivery]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= until => self.step(self.now.max(at)),
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }

    fn step(&mut self, now: Instant) {
        self.now = now;
        // Deliveries due now, in arrival order.
        while let Some(i) = (0..self.in_flight.len())
            .filter(|&i| self.in_flight[i].at <= now)
            .min_by_key(|&i| self.in_flight[i].at)
        {
            let packet = self.in_flight.swap_remove(i);
            let p = usize::from(packet.path.get());
            if self.net[p].cut {
                continue;
            }
            self.delivered[packet.to as usize][p] += 1;
            let _ = self
                .monitor_mut(packet.to)
                .handle_hello(now, packet.path, &packet.hello);
            self.drain(packet.to);
        }
        for side in [Side::A, Side::B] {
            if self
                .monitor(side)
                .poll_timeout()
                .is_some_and(|at| at <= now)
            {
                self.monitor_mut(side).handle_timeout(now);
            }
            self.drain(side);
        }
    }

    /// Sends what the side has to send and logs its events.
    fn drain(&mut self, side: Side) {
        let now = self.now;
        while let Some((path, hello)) = self.monitor_mut(side).poll_transmit(now) {
            let net = self.net[usize::from(path.get())];
            if self.rng.unit() < net.loss {
                continue;
            }
            let jitter = net.jitter.mul_f64(self.rng.unit());
            let to = if side == Side::A { Side::B } else { Side::A };
            self.in_flight.push(InFlight {
                at: now + net.latency + jitter,
                to,
                path,
                hello,
            });
        }
        while let Some(event) = self.monitor_mut(side).poll_event() {
            let delivered = self.delivered[side as usize];
            self.log.push(Logged {
                at: now,
                side,
                event,
                delivered,
            });
        }
    }

    /// The events of one side, with their times.
    pub(super) fn events(&self, side: Side) -> Vec<(Instant, LinkEvent)> {
        self.log
            .iter()
            .filter(|l| l.side == side)
            .map(|l| (l.at, l.event))
            .collect()
    }
}
