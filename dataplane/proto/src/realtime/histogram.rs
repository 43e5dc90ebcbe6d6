//! A fixed-size latency histogram for per-flow percentiles: log-linear buckets (16 per power of
//! two) over microseconds, so any percentile is within 1/32 (3.1 %) of the true value.

use core::time::Duration;

/// Sub-buckets per power of two.
const SUB: u64 = 16;
/// log2(SUB).
const SUB_BITS: u32 = 4;
/// Buckets: values below 16 µs exactly, then 16 per power of two up to 2^32 µs (71 minutes).
const BUCKETS: usize = (SUB + (32 - SUB_BITS as u64) * SUB) as usize;

/// Counts of latencies, 464 buckets (3.7 KB), no allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS],
    total: u64,
    sum_us: u64,
    max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: [0; BUCKETS],
            total: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

impl LatencyHistogram {
    /// Counts one latency (saturating at 2^32 − 1 µs).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .min(u64::from(u32::MAX));
        self.counts[bucket(us)] += 1;
        self.total += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
    }

    /// Latencies counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest latency counted (exact, in µs).
    pub fn max(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros(self.max_us))
    }

    /// The mean latency.
    pub fn mean(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros(self.sum_us / self.total))
    }

    /// The latency at quantile `q` (0.0..=1.0, e.g. 0.99): the middle of the bucket holding the
    /// ⌈q·count⌉-th smallest value, never above the maximum. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bounds(i);
                let mid = low + width / 2;
                return Some(Duration::from_micros(mid.min(self.max_us)));
            }
        }
        self.max()
    }

    /// Adds `other`'s counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
    }
}

/// The bucket of `us` (< 2^32).
fn bucket(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let e = 63 - us.leading_zeros();
    let sub = (us >> (e - SUB_BITS)) & (SUB - 1);
    (SUB + u64::from(e - SUB_BITS) * SUB + sub) as usize
}

/// The lowest value of bucket `i` and its width, in µs.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, 1);
    }
    let shift = (i - SUB) / SUB;
    let sub = (i - SUB) % SUB;
    ((SUB + sub) << shift, 1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u32() {
        let mut next = 0;
        for i in 0..BUCKETS {
            let (low, width) = bounds(i);
            assert_eq!(low, next, "bucket {i}");
            assert_eq!(bucket(low), i);
            assert_eq!(bucket(low + width - 1), i);
            next = low + width;
        }
        assert_eq!(next, 1 << 32);
        assert_eq!(bucket(u64::from(u32::MAX)), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_a_thirty_second_of_the_sorted_values() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        // A spread of latencies from 3 µs to about 3 s.
        let values: Vec<u64> = (0..20_000u64).map(|i| 3 + i * i * 7 % 3_000_000).collect();
        for &v in &values {
            h.record(Duration::from_micros(v));
        }
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let exact = sorted[rank - 1] as f64;
            let got = h.quantile(q).unwrap().as_micros() as f64;
            assert!(
                (got - exact).abs() <= exact / 32.0 + 0.5,
                "q {q}: {got} vs {exact}"
            );
        }
        assert_eq!(
            h.max(),
            Some(Duration::from_micros(sorted[sorted.len() - 1]))
        );
        assert_eq!(h.count(), 20_000);
        let mut merged = LatencyHistogram::default();
        merged.merge(&h);
        merged.merge(&h);
        assert_eq!(merged.count(), 40_000);
        assert_eq!(merged.quantile(0.5), h.quantile(0.5));
    }
}
