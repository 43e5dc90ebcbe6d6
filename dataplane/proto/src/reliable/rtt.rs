//! Round-trip estimation for retransmission timeouts (RFC 6298: smoothed RTT and its
//! variation, gains 1/8 and 1/4).

use core::time::Duration;

/// Smoothed round trip and its mean deviation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    srtt: Duration,
    rttvar: Duration,
    sampled: bool,
}

impl RttEstimator {
    /// An estimator that assumes `initial` until the first sample.
    pub fn new(initial: Duration) -> Self {
        RttEstimator {
            srtt: initial,
            rttvar: initial / 2,
            sampled: false,
        }
    }

    /// Whether any sample was taken.
    pub fn has_sample(&self) -> bool {
        self.sampled
    }

    /// The smoothed round trip.
    pub fn srtt(&self) -> Duration {
        self.srtt
    }

    /// `srtt + 4 · rttvar`.
    pub fn rto(&self) -> Duration {
        self.srtt.saturating_add(self.rttvar.saturating_mul(4))
    }

    /// Takes one sample.
    pub fn sample(&mut self, rtt: Duration) {
        if !self.sampled {
            self.srtt = rtt;
            self.rttvar = rtt / 2;
            self.sampled = true;
            return;
        }
        let dev = rtt.abs_diff(self.srtt);
        self.rttvar = (self.rttvar * 3 + dev) / 4;
        self.srtt = (self.srtt * 7 + rtt) / 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_on_a_steady_round_trip() {
        let mut e = RttEstimator::new(Duration::from_millis(100));
        assert_eq!(e.rto(), Duration::from_millis(300));
        for _ in 0..64 {
            e.sample(Duration::from_millis(20));
        }
        assert_eq!(e.srtt(), Duration::from_millis(20));
        assert!(e.rto() < Duration::from_millis(21), "{:?}", e.rto());
    }

    #[test]
    fn variation_widens_the_timeout() {
        let mut e = RttEstimator::new(Duration::from_millis(10));
        for i in 0..64 {
            e.sample(Duration::from_millis(if i % 2 == 0 { 10 } else { 30 }));
        }
        assert!(e.rto() > Duration::from_millis(50), "{:?}", e.rto());
    }
}
