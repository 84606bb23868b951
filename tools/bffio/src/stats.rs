//! Measurements: a log-linear latency histogram (≤ 0.4 % error), exact min/max/mean/stddev,
//! bandwidth and IOPS samples, I/O depth levels and CPU usage from `getrusage`.

/// Sub-buckets per power of two: 128, so a bucket spans at most 1/128 of its values and its
/// midpoint is within 0.4 % of any value in it.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Buckets: exact below 256, then 128 per power of two up to 2^64.
pub const BUCKETS: usize = (64 - SUB_BITS as usize) * SUB + SUB;

/// A latency histogram over nanoseconds.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// Empty.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
        }
    }

    /// The bucket of `v`.
    #[inline]
    pub fn index(v: u64) -> usize {
        if v < (2 * SUB) as u64 {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let e = msb - SUB_BITS;
        ((e as usize) << SUB_BITS) + (v >> e) as usize
    }

    /// The lowest value of bucket `i` and its width.
    pub fn bucket_range(i: usize) -> (u64, u64) {
        if i < 2 * SUB {
            return (i as u64, 1);
        }
        let e = (i >> SUB_BITS) - 1;
        let m = (i - (e << SUB_BITS)) as u64;
        (m << e, 1u64 << e)
    }

    /// Adds one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += *b;
        }
        self.total += other.total;
    }

    /// The value at percentile `p` (0..=100): the midpoint of the bucket holding the
    /// ceil(p% × N)-th value (0 when empty).
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0 * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, w) = Self::bucket_range(i);
                return lo + w / 2;
            }
        }
        0
    }

    /// Non-empty buckets as (representative value, count).
    pub fn nonzero(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| {
                let (lo, w) = Self::bucket_range(i);
                (lo + w / 2, c)
            })
    }

    /// Values below `limit` (bucket-exact for limits that are bucket boundaries).
    pub fn count_below(&self, limit: u64) -> u64 {
        let idx = Self::index(limit);
        self.counts[..idx].iter().sum()
    }
}

/// One latency series (slat, clat or lat): histogram plus exact moments.
#[derive(Clone, Debug)]
pub struct LatStat {
    /// The histogram.
    pub hist: Histogram,
    /// Smallest value (ns; u64::MAX when empty).
    pub min: u64,
    /// Largest value (ns).
    pub max: u64,
    sum: u128,
    sumsq: u128,
}

impl Default for LatStat {
    fn default() -> Self {
        LatStat {
            hist: Histogram::new(),
            min: u64::MAX,
            max: 0,
            sum: 0,
            sumsq: 0,
        }
    }
}

impl LatStat {
    /// Adds one latency.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.record(ns);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        self.sum += u128::from(ns);
        self.sumsq += u128::from(ns) * u128::from(ns);
    }
    /// Samples.
    pub fn n(&self) -> u64 {
        self.hist.count()
    }
    /// Minimum (0 when empty).
    pub fn min(&self) -> u64 {
        if self.n() == 0 {
            0
        } else {
            self.min
        }
    }
    /// Mean (0 when empty).
    pub fn mean(&self) -> f64 {
        let n = self.n();
        if n == 0 {
            0.0
        } else {
            self.sum as f64 / n as f64
        }
    }
    /// Sample standard deviation (n − 1), exact integer moments.
    pub fn stddev(&self) -> f64 {
        let n = u128::from(self.n());
        if n < 2 {
            return 0.0;
        }
        let num = n
            .saturating_mul(self.sumsq)
            .saturating_sub(self.sum * self.sum);
        (num as f64 / (n * (n - 1)) as f64).sqrt()
    }
    /// Adds `other`.
    pub fn merge(&mut self, other: &LatStat) {
        self.hist.merge(&other.hist);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.sumsq += other.sumsq;
    }
}

/// Summary of a sample series (bandwidth or IOPS).
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct SampleSummary {
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub stddev: f64,
    /// Samples.
    pub n: usize,
}

/// Summarises `v`.
pub fn summarize(v: &[f64]) -> SampleSummary {
    if v.is_empty() {
        return SampleSummary::default();
    }
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    SampleSummary {
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(0.0, f64::max),
        mean,
        stddev: var.sqrt(),
        n,
    }
}

/// One direction's (read or write) statistics.
#[derive(Clone, Debug, Default)]
pub struct DirStats {
    /// Completed I/Os.
    pub ios: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Short transfers.
    pub short: u64,
    /// Submission latency.
    pub slat: LatStat,
    /// Completion latency.
    pub clat: LatStat,
    /// Total latency.
    pub lat: LatStat,
    /// Bandwidth samples, KiB/s (one per sample window).
    pub bw_samples: Vec<f64>,
    /// IOPS samples.
    pub iops_samples: Vec<f64>,
}

impl DirStats {
    /// Adds `o` (samples are summed pairwise by index, as for a group of clones).
    pub fn merge(&mut self, o: &DirStats) {
        self.ios += o.ios;
        self.bytes += o.bytes;
        self.short += o.short;
        self.slat.merge(&o.slat);
        self.clat.merge(&o.clat);
        self.lat.merge(&o.lat);
        merge_samples(&mut self.bw_samples, &o.bw_samples);
        merge_samples(&mut self.iops_samples, &o.iops_samples);
    }
}

fn merge_samples(a: &mut Vec<f64>, b: &[f64]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0.0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x += *y;
    }
}

/// Depth levels of fio's "IO depths" line: 1, 2, 4, 8, 16, 32, >=64.
pub const DEPTH_LEVELS: [&str; 7] = ["1", "2", "4", "8", "16", "32", ">=64"];

/// The depth level index of `d` I/Os submitted.
#[inline]
pub fn depth_level(d: u32) -> usize {
    match d {
        0..=1 => 0,
        2..=3 => 1,
        4..=7 => 2,
        8..=15 => 3,
        16..=31 => 4,
        32..=63 => 5,
        _ => 6,
    }
}

/// CPU usage of one thread (or a sum of threads).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    /// User time, µs.
    pub user_us: u64,
    /// System time, µs.
    pub sys_us: u64,
    /// Context switches (voluntary + involuntary).
    pub ctx: u64,
    /// Major faults.
    pub majf: u64,
    /// Minor faults.
    pub minf: u64,
}

impl Cpu {
    /// The calling thread's usage so far (`getrusage(RUSAGE_THREAD)`).
    pub fn thread_now() -> Cpu {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `ru` points at writable memory the size of `struct rusage`; getrusage only
        // writes it (and RUSAGE_THREAD is valid on Linux, where this crate runs).
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) };
        if rc != 0 {
            return Cpu::default();
        }
        // SAFETY: zero-initialised, then filled by a successful getrusage.
        let ru = unsafe { ru.assume_init() };
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        Cpu {
            user_us: us(ru.ru_utime),
            sys_us: us(ru.ru_stime),
            ctx: (ru.ru_nvcsw + ru.ru_nivcsw) as u64,
            majf: ru.ru_majflt as u64,
            minf: ru.ru_minflt as u64,
        }
    }

    /// `self - earlier`, saturating.
    pub fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            user_us: self.user_us.saturating_sub(earlier.user_us),
            sys_us: self.sys_us.saturating_sub(earlier.sys_us),
            ctx: self.ctx.saturating_sub(earlier.ctx),
            majf: self.majf.saturating_sub(earlier.majf),
            minf: self.minf.saturating_sub(earlier.minf),
        }
    }

    /// Adds `o`.
    pub fn add(&mut self, o: &Cpu) {
        self.user_us += o.user_us;
        self.sys_us += o.sys_us;
        self.ctx += o.ctx;
        self.majf += o.majf;
        self.minf += o.minf;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut prev_end = 0;
        for i in 0..BUCKETS - 1 {
            let (lo, w) = Histogram::bucket_range(i);
            assert_eq!(lo, prev_end, "bucket {i}");
            prev_end = lo + w;
            assert_eq!(Histogram::index(lo), i);
            assert_eq!(Histogram::index(lo + w - 1), i);
            // A bucket spans at most 1/128 of its lowest value.
            assert!(lo < 256 || w * 128 <= lo, "bucket {i} too wide");
        }
        assert!(Histogram::index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn percentiles_within_one_percent() {
        let mut h = Histogram::new();
        let mut v: Vec<u64> = (0..100_000u64)
            .map(|i| 1000 + (i * 7919) % 5_000_000)
            .collect();
        for &x in &v {
            h.record(x);
        }
        v.sort_unstable();
        for p in [1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99] {
            let exact = v[((p / 100.0 * v.len() as f64).ceil() as usize).max(1) - 1] as f64;
            let got = h.percentile(p) as f64;
            assert!((got - exact).abs() / exact < 0.01, "p{p}: {got} vs {exact}");
        }
        assert_eq!(Histogram::new().percentile(50.0), 0);
    }

    #[test]
    fn moments_are_exact() {
        let mut s = LatStat::default();
        for x in [2u64, 4, 4, 4, 5, 5, 7, 9] {
            s.record(x);
        }
        assert_eq!(s.min(), 2);
        assert_eq!(s.max, 9);
        assert!((s.mean() - 5.0).abs() < 1e-12);
        assert!((s.stddev() - (32.0f64 / 7.0).sqrt()).abs() < 1e-9);
        let mut t = LatStat::default();
        t.merge(&s);
        assert_eq!(t.n(), 8);
        assert_eq!(LatStat::default().min(), 0);
    }

    #[test]
    fn samples_and_levels() {
        let s = summarize(&[1.0, 2.0, 3.0]);
        assert_eq!((s.min, s.max, s.mean, s.n), (1.0, 3.0, 2.0, 3));
        assert_eq!(summarize(&[]).n, 0);
        assert_eq!(depth_level(1), 0);
        assert_eq!(depth_level(33), 5);
        assert_eq!(depth_level(300), 6);
    }

    #[test]
    fn cpu_is_real() {
        // Work until the thread's CPU time moves (each step kept by `black_box`, so the loop
        // cannot be folded away), with a wall-clock bound: a fixed amount of work once failed
        // to register on a loaded machine.
        let a = Cpu::thread_now();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        loop {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let d = Cpu::thread_now().since(&a);
            if d.user_us + d.sys_us > 0 {
                break;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "no CPU time counted after 5 s of work"
            );
        }
    }
}
