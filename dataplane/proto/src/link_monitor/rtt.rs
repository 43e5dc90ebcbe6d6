//! Round-trip time of one path: smoothed RTT and variation as in RFC 6298, plus the minimum.
//!
//! Samples come from hello echoes (see [`HelloFields`](super::HelloFields)); integer nanoseconds
//! keep the arithmetic exact and free of floats.

use core::time::Duration;

/// Smoothed RTT, RTT variation and minimum RTT of one path, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct RttEstimator {
    srtt_ns: u64,
    rttvar_ns: u64,
    min_ns: u64,
    samples: u64,
}

impl RttEstimator {
    /// Folds in one RTT sample.
    pub(super) fn on_sample(&mut self, rtt: Duration) {
        let r = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        if self.samples == 0 {
            //= https://www.rfc-editor.org/rfc/rfc6298#section-2
            //# (2.2) When the first RTT measurement R is made, the host MUST set
            //#       SRTT <- R
            //#       RTTVAR <- R/2
            self.srtt_ns = r;
            self.rttvar_ns = r / 2;
            self.min_ns = r;
        } else {
            //= https://www.rfc-editor.org/rfc/rfc6298#section-2
            //# (2.3) When a subsequent RTT measurement R' is made, a host MUST set
            //#       RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|
            //#       SRTT <- (1 - alpha) * SRTT + alpha * R'
            //# [...] using alpha=1/8 and beta=1/4
            let deviation = self.srtt_ns.abs_diff(r);
            self.rttvar_ns = (self.rttvar_ns.saturating_mul(3).saturating_add(deviation)) / 4;
            self.srtt_ns = (self.srtt_ns.saturating_mul(7).saturating_add(r)) / 8;
            self.min_ns = self.min_ns.min(r);
        }
        self.samples += 1;
    }

    /// Smoothed RTT, once there is a sample.
    pub(super) fn smoothed(&self) -> Option<Duration> {
        (self.samples > 0).then(|| Duration::from_nanos(self.srtt_ns))
    }

    /// RTT variation, once there is a sample.
    pub(super) fn variation(&self) -> Option<Duration> {
        (self.samples > 0).then(|| Duration::from_nanos(self.rttvar_ns))
    }

    /// Smallest sample since the last reset.
    pub(super) fn min(&self) -> Option<Duration> {
        (self.samples > 0).then(|| Duration::from_nanos(self.min_ns))
    }

    /// Number of samples since the last reset.
    pub(super) fn samples(&self) -> u64 {
        self.samples
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn follows_rfc6298_and_tracks_the_minimum() {
        let mut rtt = RttEstimator::default();
        assert_eq!(rtt.smoothed(), None);
        rtt.on_sample(Duration::from_millis(80));
        assert_eq!(rtt.smoothed(), Some(Duration::from_millis(80)));
        assert_eq!(rtt.variation(), Some(Duration::from_millis(40)));
        rtt.on_sample(Duration::from_millis(40));
        // RTTVAR = 3/4 * 40 + 1/4 * 40 = 40; SRTT = 7/8 * 80 + 1/8 * 40 = 75.
        assert_eq!(rtt.variation(), Some(Duration::from_millis(40)));
        assert_eq!(rtt.smoothed(), Some(Duration::from_millis(75)));
        assert_eq!(rtt.min(), Some(Duration::from_millis(40)));
        for _ in 0..200 {
            rtt.on_sample(Duration::from_millis(10));
        }
        let srtt = rtt.smoothed().map(|d| d.as_micros());
        assert!(
            srtt.is_some_and(|us| (10_000..10_010).contains(&us)),
            "{srtt:?}"
        );
        assert_eq!(rtt.min(), Some(Duration::from_millis(10)));
        assert_eq!(rtt.samples(), 202);
    }
}
