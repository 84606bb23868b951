//! A log-linear latency histogram: 128 sub-buckets per power of two, so a percentile is known
//! to within 0.8 % (the bucket's upper bound is reported, never an under-estimate).

/// Sub-bucket bits: 2⁷ = 128 buckets per power of two.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two above the linear range: values up to 2⁴⁷ ns (about 39 hours).
const OCTAVES: usize = 40;
const BUCKETS: usize = SUB + OCTAVES * SUB;

/// Latency histogram in nanoseconds.
#[derive(Clone)]
pub struct LatHist {
    counts: Box<[u32]>,
    total: u64,
    sum_ns: u128,
    max_ns: u64,
}

impl Default for LatHist {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LatHist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatHist")
            .field("total", &self.total)
            .field("p50_ns", &self.percentile(50.0))
            .field("p99_ns", &self.percentile(99.0))
            .finish()
    }
}

fn index(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let e = 63 - ns.leading_zeros(); // ≥ SUB_BITS
    let shift = e - SUB_BITS;
    let sub = ((ns >> shift) as usize) & (SUB - 1);
    let i = SUB + shift as usize * SUB + sub;
    i.min(BUCKETS - 1)
}

/// The largest value that lands in bucket `i`.
fn upper(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let shift = ((i - SUB) / SUB) as u32;
    let sub = ((i - SUB) % SUB) as u64;
    (((SUB as u64) + sub + 1) << shift) - 1
}

impl LatHist {
    /// An empty histogram (one allocation, here; recording never allocates).
    pub fn new() -> LatHist {
        LatHist {
            counts: vec![0u32; BUCKETS].into_boxed_slice(),
            total: 0,
            sum_ns: 0,
            max_ns: 0,
        }
    }

    /// Records one latency.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let c = &mut self.counts[index(ns)];
        *c = c.saturating_add(1);
        self.total += 1;
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Forgets everything recorded.
    pub fn clear(&mut self) {
        if self.total != 0 {
            self.counts.fill(0);
        }
        self.total = 0;
        self.sum_ns = 0;
        self.max_ns = 0;
    }

    /// Adds `other`'s samples.
    pub fn merge(&mut self, other: &LatHist) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Mean latency in ns (`None` when empty).
    pub fn mean_ns(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum_ns as f64 / self.total as f64)
    }

    /// Largest latency recorded, in ns.
    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    /// The `q`-th percentile (0 < q ≤ 100) in ns: the upper bound of the bucket holding the
    /// sample of rank ⌈q/100 · n⌉ (`None` when empty).
    pub fn percentile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(upper(i).min(self.max_ns));
            }
        }
        Some(self.max_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_within_one_percent() {
        for &v in &[
            0u64,
            1,
            127,
            128,
            129,
            1000,
            55_555,
            1_234_567,
            2_000_000_000,
        ] {
            let i = index(v);
            let up = upper(i);
            assert!(up >= v, "{v}: upper {up}");
            assert!((up - v) as f64 <= v as f64 / 100.0 + 1.0, "{v}: upper {up}");
            if i > 0 {
                assert!(
                    upper(i - 1) < v,
                    "{v}: previous bucket ends at {}",
                    upper(i - 1)
                );
            }
        }
    }

    #[test]
    fn percentiles_of_a_uniform_run() {
        let mut h = LatHist::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p99 = h.percentile(99.0).unwrap() as f64;
        assert!((p99 - 9_900_000.0).abs() / 9_900_000.0 < 0.01, "{p99}");
        let p50 = h.percentile(50.0).unwrap() as f64;
        assert!((p50 - 5_000_000.0).abs() / 5_000_000.0 < 0.01, "{p50}");
        assert_eq!(h.percentile(100.0), Some(10_000_000));
        h.clear();
        assert_eq!(h.percentile(50.0), None);
    }
}
