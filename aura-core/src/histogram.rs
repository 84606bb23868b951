//! A fixed-size, tiered latency histogram: the AIMD controller's view of completion latency.
//!
//! # Tiers
//!
//! | range | bucket width | buckets | indexes |
//! |---|---|---|---|
//! | [0, 1 ms) | 10 µs | 100 | 0–99 |
//! | [1 ms, 5 ms) | 50 µs | 80 | 100–179 |
//! | [5 ms, 20 ms) | 250 µs | 60 | 180–239 |
//! | [20 ms, 100 ms) | 1 ms | 80 | 240–319 |
//! | ≥ 100 ms ([`CEILING_NS`]) | — | one overflow counter | — |
//!
//! These are the tiers of the original AuraIO controller, kept exactly: [`BUCKETS`] = 320 buckets
//! plus the overflow counter.
//!
//! # Why tiers
//!
//! NVMe completions live below a millisecond, where a 10 µs step is the difference the controller
//! must see; HDD seeks and network storage live at milliseconds to tens of milliseconds, where
//! 50 µs–1 ms steps are plenty. Linear 10 µs buckets up to 100 ms would take 10 000 counters;
//! the tiers take 320, so a [`Histogram`] is a fixed 1 320 bytes (≈ 1.3 KiB), allocates nothing,
//! and records in O(1) with no loop: one division to microseconds, then the tier's arithmetic.
//! A latency is placed by its truncated microsecond count; every tier boundary is a whole number
//! of microseconds, so that loses nothing.
//!
//! # Percentiles
//!
//! A percentile is reported as the midpoint of the bucket it falls in (so it is accurate to half
//! a bucket width), and as [`OVERFLOW_NS`] (2 × [`CEILING_NS`] = 200 ms) when it falls in the
//! overflow: beyond the ceiling, guaranteed to trip any latency guard.
//!
//! [`Histogram::percentile_ns`] is the textbook rank rule. [`Histogram::control_p99_ns`] is the
//! original controller's P99 rule, kept bit for bit, including its quirk: with `total` samples it
//! walks down from the top for the `total / 100`th slowest sample when `total ≥ 100`, but for the
//! `ceil(total / 20)`th slowest when `total < 100`. Small windows therefore get a **P95**, not a
//! P99 (a P99 of 30 samples would just be the maximum, one outlier away from a false alarm), and
//! the estimate jumps from the 5th slowest to the slowest sample between 99 and 100 samples.
//!
//! All counters saturate instead of wrapping, so a hostile sample stream cannot panic the
//! controller or wrap a count back to small values.

/// Buckets below [`CEILING_NS`] (the overflow counter is separate).
pub const BUCKETS: usize = 320;

/// The lowest latency that lands in the overflow counter: 100 ms.
pub const CEILING_NS: u64 = 100_000_000;

/// What percentiles report for samples in the overflow: 2 × [`CEILING_NS`] = 200 ms, beyond the
/// ceiling, so it trips any latency guard.
pub const OVERFLOW_NS: u64 = 2 * CEILING_NS;

/// First microsecond of each tier; the fifth entry is the overflow's (the ceiling).
const FIRST_US: [u64; 5] = [0, 1_000, 5_000, 20_000, 100_000];
/// First bucket index of each tier; the fifth entry is [`BUCKETS`], which is not a bucket.
const FIRST_INDEX: [usize; 5] = [0, 100, 180, 240, BUCKETS];
/// Bucket width of each tier, in microseconds.
const WIDTH_US: [u64; 4] = [10, 50, 250, 1_000];
/// Shift of the reciprocal multiplication in [`index_of_us`].
const RECIP_SHIFT: u32 = 32;
/// `ceil(2^32 / width)` per tier, so `offset / width == (offset × RECIP) >> 32` with no divide
/// instruction (exact for every offset inside the tier: checked below). The overflow's entry is 0,
/// which maps every offset to [`BUCKETS`].
const RECIP: [u64; 5] = [
    (1 << RECIP_SHIFT) / WIDTH_US[0] + 1,
    (1 << RECIP_SHIFT) / WIDTH_US[1] + 1,
    (1 << RECIP_SHIFT) / WIDTH_US[2] + 1,
    (1 << RECIP_SHIFT) / WIDTH_US[3] + 1,
    0,
];

// The tables describe the tiers of the module docs exactly, and the reciprocals divide exactly.
const _: () = {
    assert!(FIRST_US[4] * 1_000 == CEILING_NS);
    assert!(FIRST_INDEX[4] == BUCKETS);
    let mut t = 0;
    while t < 4 {
        let span = FIRST_US[t + 1] - FIRST_US[t];
        assert!(span % WIDTH_US[t] == 0);
        assert!(FIRST_INDEX[t + 1] - FIRST_INDEX[t] == (span / WIDTH_US[t]) as usize);
        // No width is a power of two, so `2^32 / w + 1` is `ceil(2^32 / w)`, with excess
        // `e = RECIP × w − 2^32 < w`. `(n × RECIP) >> 32 == n / w` holds whenever `n × e < 2^32`.
        assert!((1u64 << RECIP_SHIFT) % WIDTH_US[t] != 0);
        let excess = RECIP[t] * WIDTH_US[t] - (1 << RECIP_SHIFT);
        assert!(excess < WIDTH_US[t]);
        assert!((span - 1) * excess < (1 << RECIP_SHIFT));
        t += 1;
    }
};

/// The bucket of a latency of `us` whole microseconds; [`BUCKETS`] for the overflow.
///
/// Branch-free: the tier is the number of tier boundaries at or below `us`, then one table-driven
/// multiply-shift divides the offset into the tier by the tier's width.
#[inline(always)]
const fn index_of_us(us: u64) -> usize {
    let tier = (us >= FIRST_US[1]) as usize
        + (us >= FIRST_US[2]) as usize
        + (us >= FIRST_US[3]) as usize
        + (us >= FIRST_US[4]) as usize;
    // Inside tiers 0–3 the offset is below 80 000, so the product stays below 2^47; in the
    // overflow tier the reciprocal is 0.
    let offset = us - FIRST_US[tier];
    FIRST_INDEX[tier] + ((offset * RECIP[tier]) >> RECIP_SHIFT) as usize
}

/// The bucket of a latency of `latency_ns`; [`BUCKETS`] for the overflow.
#[inline(always)]
const fn index_of_ns(latency_ns: u64) -> usize {
    index_of_us(latency_ns / 1_000)
}

/// A tiered latency histogram: 320 bucket counters, an overflow counter, and the count, sum,
/// minimum and maximum of the samples (see the [module docs](self)).
///
/// Every counter saturates at its type's maximum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    /// Samples per bucket below the ceiling.
    buckets: [u32; BUCKETS],
    /// Samples at or above [`CEILING_NS`].
    overflow: u32,
    /// Samples recorded.
    count: u64,
    /// Sum of the recorded latencies.
    sum_ns: u64,
    /// Smallest recorded latency; `u64::MAX` while empty.
    min_ns: u64,
    /// Largest recorded latency; 0 while empty.
    max_ns: u64,
}

// 320 × 4 + 4 + 4 × 8 bytes, padded to 8: the "1.3 KiB" of the module docs.
const _: () = assert!(core::mem::size_of::<Histogram>() == 1_320);

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Self {
            buckets: [0; BUCKETS],
            overflow: 0,
            count: 0,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }

    /// Records one latency sample: O(1), no loop, and one branch (bucket or overflow); the tier
    /// and the divisions compile to compares and multiply-shifts.
    #[inline]
    pub fn record(&mut self, latency_ns: u64) {
        // One branch, on the overflow: predictable (overflows are rare), and measured faster
        // than selecting the counter's address with a conditional move.
        match self.buckets.get_mut(index_of_ns(latency_ns)) {
            Some(bucket) => *bucket = bucket.saturating_add(1),
            None => self.overflow = self.overflow.saturating_add(1),
        }
        self.count = self.count.saturating_add(1);
        self.sum_ns = self.sum_ns.saturating_add(latency_ns);
        self.min_ns = if latency_ns < self.min_ns {
            latency_ns
        } else {
            self.min_ns
        };
        self.max_ns = if latency_ns > self.max_ns {
            latency_ns
        } else {
            self.max_ns
        };
    }

    /// The bucket a latency lands in, or `None` for the overflow (`latency_ns ≥` [`CEILING_NS`]).
    #[inline]
    pub const fn bucket_index(latency_ns: u64) -> Option<usize> {
        match index_of_ns(latency_ns) {
            i if i < BUCKETS => Some(i),
            _ => None,
        }
    }

    /// The latencies bucket `index` holds, `[lo, hi)` in nanoseconds. An `index` of [`BUCKETS`] or
    /// more names the overflow: `(CEILING_NS, u64::MAX)`.
    pub const fn bucket_bounds_ns(index: usize) -> (u64, u64) {
        if index >= BUCKETS {
            return (CEILING_NS, u64::MAX);
        }
        let tier = (index >= FIRST_INDEX[1]) as usize
            + (index >= FIRST_INDEX[2]) as usize
            + (index >= FIRST_INDEX[3]) as usize;
        let lo_us = FIRST_US[tier] + (index - FIRST_INDEX[tier]) as u64 * WIDTH_US[tier];
        (lo_us * 1_000, (lo_us + WIDTH_US[tier]) * 1_000)
    }

    /// The midpoint of bucket `index` in nanoseconds (every width is an even number of
    /// nanoseconds, so it is exact); [`OVERFLOW_NS`] for an `index` of [`BUCKETS`] or more.
    pub const fn bucket_midpoint_ns(index: usize) -> u64 {
        if index >= BUCKETS {
            return OVERFLOW_NS;
        }
        let (lo, hi) = Self::bucket_bounds_ns(index);
        lo + (hi - lo) / 2
    }

    /// Samples recorded (saturating at `u64::MAX`).
    #[inline]
    pub const fn count(&self) -> u64 {
        self.count
    }

    /// Samples at or above [`CEILING_NS`] (saturating at `u32::MAX`).
    #[inline]
    pub const fn overflow(&self) -> u32 {
        self.overflow
    }

    /// The per-bucket counts below the ceiling.
    #[inline]
    pub const fn buckets(&self) -> &[u32; BUCKETS] {
        &self.buckets
    }

    /// The mean latency, rounded down; `None` when empty. Exact until the sum saturates at
    /// `u64::MAX` ns (≈ 584 years of latency), an underestimate after.
    pub const fn mean_ns(&self) -> Option<u64> {
        match self.count {
            0 => None,
            n => Some(self.sum_ns / n),
        }
    }

    /// The smallest recorded latency (exact, not bucketed); `None` when empty.
    pub const fn min_ns(&self) -> Option<u64> {
        match self.count {
            0 => None,
            _ => Some(self.min_ns),
        }
    }

    /// The largest recorded latency (exact, not bucketed); `None` when empty.
    pub const fn max_ns(&self) -> Option<u64> {
        match self.count {
            0 => None,
            _ => Some(self.max_ns),
        }
    }

    /// Samples held by the buckets and the overflow counter.
    ///
    /// Equal to [`count`](Self::count) until a `u32` counter saturates (4 294 967 295 samples in
    /// one bucket); after that the per-bucket counts are what the distribution is, and ranking by
    /// `count` would place ranks past the last recorded sample (a false 200 ms).
    fn total(&self) -> u64 {
        // 321 × u32::MAX < 2^41: the sum cannot overflow.
        let below: u64 = self.buckets.iter().map(|&n| u64::from(n)).sum();
        below + u64::from(self.overflow)
    }

    /// The latency at `per_million` parts per million (500 000 is the median), as a bucket
    /// midpoint; `None` when empty.
    ///
    /// The rank is `ceil(count × per_million / 10⁶)`, at least 1; the result is the midpoint of the
    /// lowest bucket whose cumulative count reaches it, or [`OVERFLOW_NS`] if the rank lands in
    /// the overflow. `per_million` above 10⁶ counts as 10⁶ (the maximum's bucket).
    pub fn percentile_ns(&self, per_million: u32) -> Option<u64> {
        const MILLION: u64 = 1_000_000;
        let total = self.total();
        if total == 0 {
            return None;
        }
        // total < 2^41 and per_million ≤ 2^20: the product fits.
        let per_million = u64::from(per_million).min(MILLION);
        let rank = (total * per_million).div_ceil(MILLION).max(1);
        let mut cumulative = 0u64;
        for (index, &n) in self.buckets.iter().enumerate() {
            cumulative += u64::from(n);
            if cumulative >= rank {
                return Some(Self::bucket_midpoint_ns(index));
            }
        }
        Some(OVERFLOW_NS)
    }

    /// Samples at or above `ns`, as [`control_p99_ns`](Self::control_p99_ns) judges a bucket:
    /// by its midpoint (a bucket counts whole when its midpoint is at or above `ns`), plus the
    /// overflow.
    pub fn count_at_or_above_ns(&self, ns: u64) -> u64 {
        let mut first = index_of_ns(ns).min(BUCKETS);
        if first < BUCKETS && Self::bucket_midpoint_ns(first) < ns {
            first += 1;
        }
        let above: u64 = self.buckets[first..].iter().map(|&n| u64::from(n)).sum();
        above + u64::from(self.overflow)
    }

    /// The median ([`percentile_ns`](Self::percentile_ns) at 500 000 per million).
    pub fn p50_ns(&self) -> Option<u64> {
        self.percentile_ns(500_000)
    }

    /// The 90th percentile ([`percentile_ns`](Self::percentile_ns) at 900 000 per million).
    pub fn p90_ns(&self) -> Option<u64> {
        self.percentile_ns(900_000)
    }

    /// The 99th percentile ([`percentile_ns`](Self::percentile_ns) at 990 000 per million).
    pub fn p99_ns(&self) -> Option<u64> {
        self.percentile_ns(990_000)
    }

    /// The 99.9th percentile ([`percentile_ns`](Self::percentile_ns) at 999 000 per million).
    pub fn p999_ns(&self) -> Option<u64> {
        self.percentile_ns(999_000)
    }

    /// The original controller's P99 estimate: a bucket midpoint, [`OVERFLOW_NS`], or `None` when
    /// empty.
    ///
    /// With `total` samples, `target` is `total / 100` when `total ≥ 100`, else
    /// `ceil(total / 20)` — a P95 for small samples (see the [module docs](self)). Walking down
    /// from the top, starting with the overflow counter: if the overflow alone reaches `target`
    /// the result is [`OVERFLOW_NS`]; otherwise it is the midpoint of the first bucket, from 319
    /// down to 0, where the running sum reaches `target`.
    ///
    /// `total` is [`count`](Self::count) as long as no bucket counter has saturated (see
    /// [`percentile_ns`](Self::percentile_ns)); the final `None` after the walk is defensive and
    /// unreachable.
    pub fn control_p99_ns(&self) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let target = if total >= 100 {
            (total / 100).max(1)
        } else {
            total.div_ceil(20)
        };
        let mut running = u64::from(self.overflow);
        if running >= target {
            return Some(OVERFLOW_NS);
        }
        for (index, &n) in self.buckets.iter().enumerate().rev() {
            running += u64::from(n);
            if running >= target {
                return Some(Self::bucket_midpoint_ns(index));
            }
        }
        None
    }

    /// Adds `other`'s samples to this histogram, as if both sample streams had been recorded
    /// here (every counter saturating).
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
        self.overflow = self.overflow.saturating_add(other.overflow);
        self.count = self.count.saturating_add(other.count);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// Empties the histogram.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// A copy of the histogram, for an observer that reads it while recording continues.
    ///
    /// The controller itself does not copy: it double-buffers. It records into an active
    /// histogram and, at a window boundary, swaps it with the retired one
    /// ([`core::mem::swap`]) and resets the new active one, so the window's analysis reads a
    /// histogram nobody is writing, without copying 1.3 KiB per window.
    pub fn snapshot(&self) -> Histogram {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const MS: u64 = 1_000_000;
    const US: u64 = 1_000;

    fn from_samples(samples: &[u64]) -> Histogram {
        let mut h = Histogram::new();
        for &s in samples {
            h.record(s);
        }
        h
    }

    /// The bucket by plain tier arithmetic with divisions: the reference for the multiply-shift.
    fn reference_index(latency_ns: u64) -> Option<usize> {
        let us = latency_ns / US;
        match us {
            0..1_000 => Some((us / 10) as usize),
            1_000..5_000 => Some(100 + ((us - 1_000) / 50) as usize),
            5_000..20_000 => Some(180 + ((us - 5_000) / 250) as usize),
            20_000..100_000 => Some(240 + ((us - 20_000) / 1_000) as usize),
            _ => None,
        }
    }

    /// What a percentile reports for a sample: its bucket's midpoint, or [`OVERFLOW_NS`].
    fn reported(sample_ns: u64) -> u64 {
        Histogram::bucket_index(sample_ns).map_or(OVERFLOW_NS, Histogram::bucket_midpoint_ns)
    }

    #[test]
    fn count_at_or_above_judges_buckets_by_their_midpoint() {
        // 1 ms opens a 50 µs bucket (midpoint 1.025 ms): its samples count from 1 ms up.
        let h = from_samples(&[990 * US, 999 * US, MS, 1_049 * US, 3 * MS, 200 * MS]);
        assert_eq!(h.count_at_or_above_ns(MS), 4);
        // 995 µs lies in the bucket 990–1000 µs (midpoint 995 µs): counted.
        assert_eq!(h.count_at_or_above_ns(995 * US), 6);
        // 996 µs: that bucket's midpoint is under it, so it does not count.
        assert_eq!(h.count_at_or_above_ns(996 * US), 4);
        // Past the ceiling only the overflow counts; 0 counts everything.
        assert_eq!(h.count_at_or_above_ns(150 * MS), 1);
        assert_eq!(h.count_at_or_above_ns(0), 6);
        assert_eq!(Histogram::new().count_at_or_above_ns(MS), 0);
    }

    #[test]
    fn histogram_tier_boundaries() {
        let cases: [(u64, Option<usize>); 20] = [
            (0, Some(0)),
            (999, Some(0)),
            (9_999, Some(0)),
            (10_000, Some(1)),
            (999_999, Some(99)),
            (1_000_000, Some(100)),
            (1_049_999, Some(100)),
            (1_050_000, Some(101)),
            (4_999_999, Some(179)),
            (5_000_000, Some(180)),
            (5_249_999, Some(180)),
            (5_250_000, Some(181)),
            (19_999_999, Some(239)),
            (20_000_000, Some(240)),
            (20_999_999, Some(240)),
            (21_000_000, Some(241)),
            (99_999_999, Some(319)),
            (100_000_000, None),
            (CEILING_NS * 1_000, None),
            (u64::MAX, None),
        ];
        for (ns, want) in cases {
            assert_eq!(Histogram::bucket_index(ns), want, "{ns} ns");
            assert_eq!(reference_index(ns), want, "reference at {ns} ns");
        }
    }

    #[test]
    fn histogram_index_matches_division_reference_for_every_microsecond() {
        // Every microsecond below the ceiling (and past it), at both ends of the microsecond.
        // Miri gets a stride: the const assertions already prove the reciprocals exact.
        let step = if cfg!(miri) { 97 } else { 1 };
        for us in (0..CEILING_NS / US + 2_000).step_by(step) {
            for ns in [us * US, us * US + 999] {
                assert_eq!(Histogram::bucket_index(ns), reference_index(ns), "{ns} ns");
            }
        }
    }

    #[test]
    fn histogram_bounds_and_midpoints_are_contiguous() {
        let mut expected_lo = 0;
        for index in 0..BUCKETS {
            let (lo, hi) = Histogram::bucket_bounds_ns(index);
            assert_eq!(
                lo,
                expected_lo,
                "bucket {index} starts where {} ends",
                index - 1
            );
            assert!(hi > lo);
            let mid = Histogram::bucket_midpoint_ns(index);
            assert_eq!(mid - lo, hi - mid, "bucket {index}: midpoint centred");
            for ns in [lo, mid, hi - 1] {
                assert_eq!(Histogram::bucket_index(ns), Some(index), "{ns} ns");
            }
            expected_lo = hi;
        }
        assert_eq!(expected_lo, CEILING_NS);
        // Spot checks: one bucket per tier.
        assert_eq!(Histogram::bucket_bounds_ns(0), (0, 10 * US));
        assert_eq!(Histogram::bucket_bounds_ns(99), (990 * US, MS));
        assert_eq!(Histogram::bucket_bounds_ns(100), (MS, 1_050 * US));
        assert_eq!(Histogram::bucket_bounds_ns(180), (5 * MS, 5_250 * US));
        assert_eq!(Histogram::bucket_bounds_ns(240), (20 * MS, 21 * MS));
        assert_eq!(Histogram::bucket_bounds_ns(319), (99 * MS, 100 * MS));
        assert_eq!(Histogram::bucket_midpoint_ns(0), 5 * US);
        assert_eq!(Histogram::bucket_midpoint_ns(100), 1_025 * US);
        assert_eq!(Histogram::bucket_midpoint_ns(180), 5_125 * US);
        assert_eq!(Histogram::bucket_midpoint_ns(319), 99 * MS + 500 * US);
        // Past the last bucket: the overflow.
        assert_eq!(Histogram::bucket_bounds_ns(BUCKETS), (CEILING_NS, u64::MAX));
        assert_eq!(
            Histogram::bucket_bounds_ns(usize::MAX),
            (CEILING_NS, u64::MAX)
        );
        assert_eq!(Histogram::bucket_midpoint_ns(BUCKETS), OVERFLOW_NS);
    }

    #[test]
    fn histogram_empty() {
        let h = Histogram::new();
        assert_eq!(h, Histogram::default());
        assert_eq!(h.count(), 0);
        assert_eq!(h.overflow(), 0);
        assert_eq!(h.mean_ns(), None);
        assert_eq!(h.min_ns(), None);
        assert_eq!(h.max_ns(), None);
        assert_eq!(h.percentile_ns(500_000), None);
        assert_eq!(h.p999_ns(), None);
        assert_eq!(h.control_p99_ns(), None);
        assert!(h.buckets().iter().all(|&n| n == 0));
    }

    #[test]
    fn histogram_record_counts_and_stats() {
        let h = from_samples(&[3 * US, 3 * US + 7, 2 * MS, 150 * MS]);
        assert_eq!(h.count(), 4);
        assert_eq!(h.overflow(), 1);
        assert_eq!(h.buckets()[0], 2);
        assert_eq!(h.buckets()[120], 1);
        assert_eq!(h.buckets().iter().map(|&n| u64::from(n)).sum::<u64>(), 3);
        assert_eq!(h.min_ns(), Some(3 * US));
        assert_eq!(h.max_ns(), Some(150 * MS));
        assert_eq!(h.mean_ns(), Some((6 * US + 7 + 2 * MS + 150 * MS) / 4));
    }

    #[test]
    fn histogram_percentile_single_sample() {
        for sample in [0, 7 * US, 999_999, 3 * MS, 42 * MS, 99_999_999] {
            let h = from_samples(&[sample]);
            for pm in [0, 1, 500_000, 990_000, 1_000_000, u32::MAX] {
                assert_eq!(
                    h.percentile_ns(pm),
                    Some(reported(sample)),
                    "{sample} @ {pm}"
                );
            }
            assert_eq!(h.control_p99_ns(), Some(reported(sample)));
        }
        let h = from_samples(&[CEILING_NS]);
        assert_eq!(h.p50_ns(), Some(OVERFLOW_NS));
        assert_eq!(h.control_p99_ns(), Some(OVERFLOW_NS));
    }

    #[test]
    fn histogram_percentile_uniform() {
        // One sample in each of the 100 first-tier buckets: 5 µs, 15 µs, ..., 995 µs.
        let samples: Vec<u64> = (0..100).map(|i| i * 10 * US + 5 * US).collect();
        let h = from_samples(&samples);
        assert_eq!(h.percentile_ns(0), Some(5 * US));
        assert_eq!(h.percentile_ns(10_000), Some(5 * US)); // rank 1
        assert_eq!(h.percentile_ns(10_001), Some(15 * US)); // rank ceil(1.0001) = 2
        assert_eq!(h.p50_ns(), Some(495 * US)); // rank 50
        assert_eq!(h.p90_ns(), Some(895 * US));
        assert_eq!(h.p99_ns(), Some(985 * US));
        assert_eq!(h.p999_ns(), Some(995 * US)); // rank ceil(99.9) = 100
        assert_eq!(h.percentile_ns(1_000_000), Some(995 * US));
        // 100 samples: target 1, the slowest.
        assert_eq!(h.control_p99_ns(), Some(995 * US));
    }

    #[test]
    fn histogram_percentile_bimodal() {
        // 900 fast NVMe-like completions at 80 µs, 100 slow ones at 12 ms.
        let mut samples = Vec::new();
        samples.extend(core::iter::repeat_n(80 * US, 900));
        samples.extend(core::iter::repeat_n(12 * MS, 100));
        let h = from_samples(&samples);
        let fast = Histogram::bucket_midpoint_ns(8);
        let slow = reported(12 * MS);
        assert_eq!(fast, 85 * US);
        assert_eq!(slow, 12 * MS + 125 * US);
        assert_eq!(h.p50_ns(), Some(fast));
        assert_eq!(h.p90_ns(), Some(fast)); // rank 900 is the last fast sample
        assert_eq!(h.percentile_ns(900_001), Some(slow));
        assert_eq!(h.p99_ns(), Some(slow));
        assert_eq!(h.control_p99_ns(), Some(slow)); // target 10 of 100 slow
        assert_eq!(h.min_ns(), Some(80 * US));
        assert_eq!(h.max_ns(), Some(12 * MS));
        assert_eq!(h.mean_ns(), Some((900 * 80 * US + 100 * 12 * MS) / 1_000));
    }

    #[test]
    fn histogram_percentile_all_overflow() {
        let h = from_samples(&[CEILING_NS, 250 * MS, u64::MAX]);
        assert_eq!(h.overflow(), 3);
        assert!(h.buckets().iter().all(|&n| n == 0));
        for pm in [0, 500_000, 999_000, 1_000_000] {
            assert_eq!(h.percentile_ns(pm), Some(OVERFLOW_NS));
        }
        assert_eq!(h.control_p99_ns(), Some(OVERFLOW_NS));
        assert_eq!(h.max_ns(), Some(u64::MAX));
        assert_eq!(h.mean_ns(), Some(u64::MAX / 3)); // the sum saturated
    }

    #[test]
    fn histogram_control_p99_small_samples() {
        // One sample per bucket 0..n: the k-th slowest sample is in bucket n - k.
        let ladder = |n: u64| -> Histogram {
            let mut h = Histogram::new();
            for i in 0..n {
                h.record(Histogram::bucket_bounds_ns(i as usize).0);
            }
            h
        };
        let kth_slowest = |n: u64, k: u64| Histogram::bucket_midpoint_ns((n - k) as usize);
        // (samples, target)
        let cases: [(u64, u64); 10] = [
            (1, 1),
            (19, 1),
            (20, 1),
            (21, 2),
            (40, 2),
            (41, 3),
            (99, 5),
            (100, 1),
            (199, 1),
            (200, 2),
        ];
        for (n, target) in cases {
            assert_eq!(
                ladder(n).control_p99_ns(),
                Some(kth_slowest(n, target)),
                "{n} samples: target {target}"
            );
        }
        // 19 samples: target 1, so the slowest bucket wins even when it holds a lone outlier.
        let mut h = from_samples(&[50 * US; 18]);
        h.record(30 * MS);
        assert_eq!(h.control_p99_ns(), Some(reported(30 * MS)));
        // 1000 samples: target 10, so 9 outliers are ignored and the 10th is not.
        let mut h = from_samples(&[50 * US; 991]);
        for _ in 0..9 {
            h.record(30 * MS);
        }
        assert_eq!(h.count(), 1_000);
        assert_eq!(h.control_p99_ns(), Some(reported(50 * US)));
        let mut h2 = from_samples(&[50 * US; 990]);
        for _ in 0..10 {
            h2.record(30 * MS);
        }
        assert_eq!(h2.control_p99_ns(), Some(reported(30 * MS)));
        // The overflow counter is checked first: 10 of 1000 in the overflow trips it.
        let mut h3 = from_samples(&[50 * US; 990]);
        for _ in 0..10 {
            h3.record(CEILING_NS);
        }
        assert_eq!(h3.control_p99_ns(), Some(OVERFLOW_NS));
        // 9 of 1000 do not: the walk continues into the buckets.
        let mut h4 = from_samples(&[50 * US; 991]);
        for _ in 0..9 {
            h4.record(CEILING_NS);
        }
        assert_eq!(h4.control_p99_ns(), Some(reported(50 * US)));
        // Overflow plus a bucket together reach the target.
        let mut h5 = from_samples(&[50 * US; 990]);
        for _ in 0..5 {
            h5.record(CEILING_NS);
            h5.record(7 * MS);
        }
        assert_eq!(h5.control_p99_ns(), Some(reported(7 * MS)));
    }

    #[test]
    fn histogram_merge_equals_recording_both_streams() {
        let a = [0, 5 * US, 2 * MS, 2 * MS, 17 * MS, 150 * MS];
        let b = [1, 999_999, 60 * MS, u64::MAX, 3 * US];
        let mut merged = from_samples(&a);
        merged.merge(&from_samples(&b));
        let both: Vec<u64> = a.iter().chain(b.iter()).copied().collect();
        assert_eq!(merged, from_samples(&both));
        // Merging an empty histogram changes nothing, either way round.
        let before = merged.clone();
        merged.merge(&Histogram::new());
        assert_eq!(merged, before);
        let mut empty = Histogram::new();
        empty.merge(&before);
        assert_eq!(empty, before);
    }

    #[test]
    fn histogram_reset_and_snapshot() {
        let mut h = from_samples(&[1, 2 * MS, CEILING_NS]);
        let snap = h.snapshot();
        assert_eq!(snap, h);
        h.record(3 * MS);
        assert_ne!(snap, h);
        assert_eq!(snap.count(), 3);
        h.reset();
        assert_eq!(h, Histogram::new());
        assert_eq!(h.count(), 0);
        assert_eq!(h.min_ns(), None);
        // The controller's double-buffering: swap, then reset the new active one.
        let mut active = from_samples(&[4 * MS]);
        let mut retired = snap;
        core::mem::swap(&mut active, &mut retired);
        active.reset();
        assert_eq!(retired.count(), 1);
        assert_eq!(active, Histogram::new());
    }

    #[test]
    fn histogram_counters_saturate() {
        // Through the public API: 33 doublings of one sample pass u32::MAX (2^33 > 2^32 - 1).
        let mut h = from_samples(&[5 * US, CEILING_NS]);
        for _ in 0..33 {
            let copy = h.snapshot();
            h.merge(&copy);
        }
        assert_eq!(h.buckets()[0], u32::MAX);
        assert_eq!(h.overflow(), u32::MAX);
        assert_eq!(h.count(), 2 << 33); // u64: not saturated
        assert_eq!(h.min_ns(), Some(5 * US));
        assert_eq!(h.max_ns(), Some(CEILING_NS));
        // Percentiles rank the samples the buckets hold (half below, half in the overflow).
        assert_eq!(h.p50_ns(), Some(5 * US));
        assert_eq!(h.percentile_ns(500_001), Some(OVERFLOW_NS));
        assert_eq!(h.control_p99_ns(), Some(OVERFLOW_NS));

        // Directly: every counter one short of its maximum.
        let mut h = Histogram {
            buckets: [u32::MAX - 1; BUCKETS],
            overflow: u32::MAX - 1,
            count: u64::MAX - 1,
            sum_ns: u64::MAX - 10,
            min_ns: 5,
            max_ns: u64::MAX - 1,
        };
        h.record(0);
        h.record(1);
        h.record(CEILING_NS);
        h.record(CEILING_NS);
        h.record(u64::MAX);
        assert_eq!(h.buckets()[0], u32::MAX);
        assert_eq!(h.buckets()[1], u32::MAX - 1);
        assert_eq!(h.overflow(), u32::MAX);
        assert_eq!(h.count(), u64::MAX);
        assert_eq!(h.mean_ns(), Some(1));
        assert_eq!(h.min_ns(), Some(0));
        assert_eq!(h.max_ns(), Some(u64::MAX));
        let copy = h.clone();
        h.merge(&copy);
        assert!(h.buckets().iter().all(|&n| n == u32::MAX));
        assert_eq!(h.overflow(), u32::MAX);
        assert_eq!(h.count(), u64::MAX);
        // Still answers, without overflowing the rank arithmetic.
        assert_eq!(h.percentile_ns(0), Some(Histogram::bucket_midpoint_ns(0)));
        assert_eq!(h.percentile_ns(1_000_000), Some(OVERFLOW_NS));
        // target = 321 × (2^32 − 1) / 100 ≈ 3.2 full counters: overflow, 319, 318, then 317.
        assert_eq!(h.control_p99_ns(), Some(Histogram::bucket_midpoint_ns(317)));
    }

    /// xorshift64: a fixed-seed generator, so a failure reproduces.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// A latency with a roughly log-uniform spread from 0 to 134 ms: every tier and the
        /// overflow get samples.
        fn latency(&mut self) -> u64 {
            let bits = self.next() % 28;
            self.next() % (1 << bits)
        }
    }

    #[test]
    fn histogram_property_matches_sorted_reference() {
        let (trials, max_samples) = if cfg!(miri) { (6, 300) } else { (400, 3_000) };
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for trial in 0..trials {
            let n = 1 + rng.next() % max_samples;
            let mut samples: Vec<u64> = (0..n).map(|_| rng.latency()).collect();
            let h = from_samples(&samples);
            samples.sort_unstable();

            assert_eq!(h.count(), n);
            assert_eq!(h.min_ns(), samples.first().copied());
            assert_eq!(h.max_ns(), samples.last().copied());
            assert_eq!(h.mean_ns(), Some(samples.iter().sum::<u64>() / n));

            let mut per_millions = Vec::from([0, 1, 500_000, 900_000, 990_000, 999_000, 1_000_000]);
            per_millions.extend((0..20).map(|_| (rng.next() % 1_000_001) as u32));
            for pm in per_millions {
                let rank = (n * u64::from(pm)).div_ceil(1_000_000).max(1);
                let reference = samples[(rank - 1) as usize];
                let got = h.percentile_ns(pm).expect("not empty");
                assert_eq!(
                    Histogram::bucket_index(got),
                    Histogram::bucket_index(reference),
                    "trial {trial}: n {n}, {pm} ppm: reference {reference} ns, got {got} ns"
                );
                assert_eq!(got, reported(reference), "trial {trial}: {pm} ppm");
            }

            let target = if n >= 100 { n / 100 } else { n.div_ceil(20) };
            let reference = samples[(n - target) as usize];
            assert_eq!(
                h.control_p99_ns(),
                Some(reported(reference)),
                "trial {trial}: n {n}, target {target}"
            );
        }
    }
}
