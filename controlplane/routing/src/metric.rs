//! The routing metric: the expected latency of a link given its latency and loss, and the
//! damping that decides when a measured change is worth telling the whole overlay about.
//!
//! The metric is Eq. 1 of the dissemination-graphs paper, as Spines implements it: a packet
//! crosses a link of one-way latency T and loss p on the first try with probability 1 − p,
//! after one hop-by-hop recovery (3T + Δ: send, request, retransmission, detection delay) with
//! probability p − 2p² + p³, and otherwise costs the penalty T_max:
//!
//! `E = (1 − p)·T + (p − 2p² + p³)·(3T + Δ) + (2p² − p³)·T_max`
//!
//! T is the larger of the link's configured base cost and its measured one-way latency (half
//! the active path's RTT): the configured cost is a floor, so on loopback, where measurements
//! are a few microseconds of noise, routes follow the config. Damping: a node re-advertises a
//! link at once when it goes up or down, but a latency or loss change only when it is large
//! (see [`Damping`]) and at most once per hold time, so noise never floods the overlay or flaps
//! routes.

use std::time::Duration;

use weft_shared::time::Instant;

/// Parameters of the expected-latency metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricParams {
    /// Δ, the time to detect a loss before a retransmission is requested (Spines: 10 ms).
    pub detection_delay_us: u64,
    /// T_max, the cost of a packet that is lost even after recovery (100 ms, the codec
    /// threshold of the voice experiments).
    pub loss_penalty_us: u64,
}

impl Default for MetricParams {
    fn default() -> Self {
        MetricParams {
            detection_delay_us: 10_000,
            loss_penalty_us: 100_000,
        }
    }
}

/// One million: loss is carried in parts per million.
pub const PPM: u32 = 1_000_000;

/// The expected latency, in microseconds, of a link with one-way latency `latency_us` and loss
/// `loss_ppm` (clamped to 100 %). Monotonic in both; never below `latency_us` when loss is 0.
pub fn expected_latency_us(latency_us: u64, loss_ppm: u32, params: MetricParams) -> u64 {
    if loss_ppm == 0 {
        return latency_us;
    }
    let p = f64::from(loss_ppm.min(PPM)) / f64::from(PPM);
    let t = latency_us as f64;
    let recovered = p - 2.0 * p * p + p * p * p;
    let failed = 2.0 * p * p - p * p * p;
    let e = (1.0 - p) * t
        + recovered * (3.0 * t + params.detection_delay_us as f64)
        + failed * params.loss_penalty_us as f64;
    // Saturating float-to-int conversion; e is finite and non-negative.
    e.round() as u64
}

/// When a measured latency or loss change is re-advertised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damping {
    /// A latency change smaller than this fraction (in percent) of the advertised value is
    /// ignored.
    pub latency_percent: u32,
    /// A latency change smaller than this many microseconds is ignored, whatever its percent.
    pub latency_floor_us: u32,
    /// A loss change smaller than this (ppm, absolute) is ignored.
    pub loss_step_ppm: u32,
    /// After a metric-only change is advertised, the next one waits at least this long.
    /// Up/down changes are never held.
    pub hold: Duration,
}

impl Default for Damping {
    fn default() -> Self {
        Damping {
            latency_percent: 10,
            latency_floor_us: 1_000,
            loss_step_ppm: 5_000,
            hold: Duration::from_secs(2),
        }
    }
}

/// A link's state as measured by this node's data plane, or as advertised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LinkReport {
    /// Whether some path of the link is up.
    pub up: bool,
    /// One-way latency of the active path, microseconds.
    pub latency_us: u32,
    /// Loss of the active path, parts per million.
    pub loss_ppm: u32,
}

impl Damping {
    /// Whether `measured` differs enough from `advertised` to be re-advertised at `now`, given
    /// that the last metric-only change was advertised at `last_metric_change`.
    pub fn should_advertise(
        &self,
        advertised: LinkReport,
        measured: LinkReport,
        last_metric_change: Option<Instant>,
        now: Instant,
    ) -> bool {
        if advertised.up != measured.up {
            return true;
        }
        if !measured.up {
            return false; // a down link's numbers mean nothing
        }
        let held = last_metric_change.is_some_and(|t| now - t < self.hold);
        if held {
            return false;
        }
        let old = u64::from(advertised.latency_us);
        let new = u64::from(measured.latency_us);
        let threshold =
            (old * u64::from(self.latency_percent) / 100).max(u64::from(self.latency_floor_us));
        let latency_moved = old.abs_diff(new) >= threshold;
        let loss_moved = advertised.loss_ppm.abs_diff(measured.loss_ppm) >= self.loss_step_ppm;
        latency_moved || loss_moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_loss_costs_the_latency() {
        assert_eq!(
            expected_latency_us(5_000, 0, MetricParams::default()),
            5_000
        );
    }

    #[test]
    fn loss_matches_equation_one_by_hand() {
        // T = 10 ms, p = 5 %, Δ = 10 ms, T_max = 100 ms:
        // 0.95·10000 + (0.05 − 0.005 + 0.000125)·40000 + (0.005 − 0.000125)·100000
        // = 9500 + 1805 + 487.5 = 11792.5 → 11793 (round half away from zero).
        assert_eq!(
            expected_latency_us(10_000, 50_000, MetricParams::default()),
            11_793
        );
        // Total loss costs the penalty.
        assert_eq!(
            expected_latency_us(10_000, PPM, MetricParams::default()),
            100_000
        );
        assert_eq!(
            expected_latency_us(10_000, u32::MAX, MetricParams::default()),
            100_000
        );
    }

    #[test]
    fn metric_is_monotonic_in_loss() {
        let mut last = 0;
        for ppm in (0..=PPM).step_by(10_000) {
            let e = expected_latency_us(10_000, ppm, MetricParams::default());
            assert!(e >= last, "{ppm} ppm: {e} < {last}");
            last = e;
        }
    }

    fn report(up: bool, latency_us: u32, loss_ppm: u32) -> LinkReport {
        LinkReport {
            up,
            latency_us,
            loss_ppm,
        }
    }

    #[test]
    fn damping_ignores_loopback_noise_but_not_real_changes() {
        let d = Damping::default();
        let now = Instant::from_nanos(10_000_000_000);
        let adv = report(true, 40, 0);
        // Microseconds of noise: never re-advertised.
        for lat in [10, 55, 400, 1_039] {
            assert!(
                !d.should_advertise(adv, report(true, lat, 0), None, now),
                "{lat}"
            );
        }
        assert!(d.should_advertise(adv, report(true, 1_040, 0), None, now));
        // 10 % of a 20 ms link.
        let wan = report(true, 20_000, 0);
        assert!(!d.should_advertise(wan, report(true, 21_999, 0), None, now));
        assert!(d.should_advertise(wan, report(true, 22_000, 0), None, now));
        assert!(d.should_advertise(wan, report(true, 18_000, 0), None, now));
        // Loss steps of half a percent.
        assert!(!d.should_advertise(wan, report(true, 20_000, 4_999), None, now));
        assert!(d.should_advertise(wan, report(true, 20_000, 5_000), None, now));
    }

    #[test]
    fn damping_holds_metric_changes_but_never_up_down() {
        let d = Damping::default();
        let t0 = Instant::from_nanos(10_000_000_000);
        let adv = report(true, 20_000, 0);
        let big = report(true, 40_000, 0);
        let just_now = Some(t0);
        assert!(!d.should_advertise(adv, big, just_now, t0 + Duration::from_millis(1_999)));
        assert!(d.should_advertise(adv, big, just_now, t0 + Duration::from_secs(2)));
        assert!(d.should_advertise(adv, report(false, 0, 0), just_now, t0));
        assert!(d.should_advertise(report(false, 0, 0), adv, just_now, t0));
        // A down link's numbers changing is not news.
        assert!(!d.should_advertise(report(false, 0, 0), report(false, 9, 9), None, t0));
    }
}
