//! Log2 latency histograms built in the kernel (`huatuo_log2_slot` in huatuo.h): slot i counts
//! values in [2^i, 2^(i+1)) µs, the last slot is open-ended; exported as Prometheus histograms.

/// HUATUO_LOG2_SLOTS in huatuo.h.
pub const LOG2_SLOTS: usize = 26;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log2Histogram {
    pub slots: Vec<u64>,
    pub sum_ns: u64,
}

impl Log2Histogram {
    pub fn count(&self) -> u64 {
        self.slots.iter().fold(0u64, |a, v| a.wrapping_add(*v))
    }

    /// (upper bound in seconds, count) per closed slot; the open slot only counts in `+Inf`.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        log2_us_buckets(&self.slots)
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }
}

/// Bucket bounds of log2 µs slots.
pub fn log2_us_buckets(slots: &[u64]) -> Vec<(f64, u64)> {
    slots
        .iter()
        .take(slots.len().saturating_sub(1))
        .enumerate()
        .map(|(i, n)| ((1u64 << (i + 1)) as f64 / 1e6, *n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_microsecond_powers_of_two_and_skip_the_open_slot() {
        let mut slots = vec![0u64; LOG2_SLOTS];
        slots[0] = 4;
        slots[10] = 2;
        slots[LOG2_SLOTS - 1] = 1;
        let h = Log2Histogram {
            slots,
            sum_ns: 3_000_000_000,
        };
        let buckets = h.buckets();
        assert_eq!(buckets.len(), LOG2_SLOTS - 1);
        assert_eq!(buckets[0], (2e-6, 4));
        assert_eq!(buckets[10], (2048e-6, 2));
        assert_eq!(h.count(), 7, "the open slot counts in the total");
        assert_eq!(h.sum_seconds(), 3.0);
    }
}
