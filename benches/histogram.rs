//! Costs of the AIMD controller's measurement primitives: recording a latency into the tiered
//! [`Histogram`], extracting its percentiles, and one [`Fixed`] `scale` (the ×4/5 decrease).
//!
//! - `histogram/record`: record 4096 pre-generated pseudo-random latencies spanning every tier
//!   and the overflow (tier picked at random per sample, so no branch predictor learns it);
//!   throughput is per recorded sample.
//! - `histogram/control_p99` and `histogram/percentile` (at 990 000 per million): one estimate
//!   from a histogram of 10 000 samples drawn the same way, minus the overflow.
//! - `fixed/scale`: `x.scale(4, 5)` over 4096 assorted values, constants inlined as at the
//!   controller's call site; throughput is per value.

use aura_core::fixed::Fixed;
use aura_core::histogram::{Histogram, CEILING_NS};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// Samples per `record` / `scale` iteration.
const BATCH: usize = 4096;

/// Samples in the histogram the percentile benchmarks read.
const PERCENTILE_SAMPLES: usize = 10_000;

/// xorshift64, fixed seed: every run measures the same inputs.
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

    /// A latency in a tier picked at random (overflow 1 time in 16), uniform within the tier.
    fn latency(&mut self) -> u64 {
        const MS: u64 = 1_000_000;
        let (lo, hi) = match self.next() % 16 {
            0..=3 => (0, MS),
            4..=7 => (MS, 5 * MS),
            8..=10 => (5 * MS, 20 * MS),
            11..=14 => (20 * MS, CEILING_NS),
            _ => (CEILING_NS, 10 * CEILING_NS),
        };
        lo + self.next() % (hi - lo)
    }
}

fn latencies(n: usize, seed: u64) -> Vec<u64> {
    let mut rng = XorShift(seed);
    (0..n).map(|_| rng.latency()).collect()
}

fn histogram(c: &mut Criterion) {
    let batch = latencies(BATCH, 0x9E37_79B9_7F4A_7C15);
    let mut filled = Histogram::new();
    // Below the ceiling only, so both estimates walk buckets instead of stopping at the
    // overflow: the P99 lands near the top, the worst case for `percentile`'s upward walk.
    for ns in latencies(2 * PERCENTILE_SAMPLES, 0x2545_F491_4F6C_DD1D)
        .into_iter()
        .filter(|&ns| ns < CEILING_NS)
        .take(PERCENTILE_SAMPLES)
    {
        filled.record(ns);
    }
    assert_eq!(filled.count(), PERCENTILE_SAMPLES as u64);

    let mut g = c.benchmark_group("histogram");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut h = Histogram::new();
    g.bench_function("record", |b| {
        b.iter(|| {
            for &ns in black_box(&batch[..]) {
                h.record(ns);
            }
        })
    });
    // Read every counter afterwards, so no recorded sample is dead code.
    let held: u64 =
        h.buckets().iter().map(|&n| u64::from(n)).sum::<u64>() + u64::from(h.overflow());
    assert_eq!(held, h.count(), "record: every sample counted once");

    g.throughput(Throughput::Elements(1));
    g.bench_function("control_p99", |b| {
        b.iter(|| black_box(&filled).control_p99_ns())
    });
    g.bench_function("percentile", |b| {
        b.iter(|| black_box(&filled).percentile_ns(black_box(990_000)))
    });
    g.finish();
    eprintln!(
        "histogram: {PERCENTILE_SAMPLES} samples: control_p99 {:?} ns, p99 {:?} ns, p50 {:?} ns",
        filled.control_p99_ns(),
        filled.p99_ns(),
        filled.p50_ns(),
    );
}

fn fixed(c: &mut Criterion) {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    // Assorted magnitudes: fractions up to about ±2^31 in value.
    let values: Vec<Fixed> = (0..BATCH)
        .map(|_| {
            let raw = i64::from_ne_bytes(rng.next().to_ne_bytes());
            Fixed::from_raw(raw >> (rng.next() % 48 + 16))
        })
        .collect();

    let mut g = c.benchmark_group("fixed");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("scale", |b| {
        b.iter(|| {
            black_box(&values[..])
                .iter()
                .fold(Fixed::ZERO, |acc, &x| acc + x.scale(4, 5))
        })
    });
    g.finish();
}

/// The harness: `criterion_group!` expands to an undocumented `pub fn`, which would trip the
/// workspace's `missing_docs`, so it lives in a module that allows it.
mod harness {
    #![allow(missing_docs)]

    use super::{criterion_group, fixed, histogram};

    criterion_group!(benches, histogram, fixed);
}

criterion_main!(harness::benches);
