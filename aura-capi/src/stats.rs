//! Statistics and diagnostics: engine, ring, histogram and buffer-pool snapshots, phase names,
//! histogram percentiles, and the Prometheus text exporter (aura.h section "Statistics and
//! diagnostics").

use std::os::raw::{c_char, c_int};
use std::sync::atomic::Ordering;

use aura_std::{Engine, Phase};

use crate::error::{EINVAL, ENOBUFS};
use crate::ffi::{boundary, copy_prefix, fail, opt_ref, set_errno, zero_prefix};
use crate::lifecycle::CEngine;
use crate::types::{
    AuraBufferStats, AuraHistogram, AuraRingStats, AuraStats, HISTOGRAM_BUCKETS, HISTOGRAM_MAX_US,
    HISTOGRAM_TIERS, TIER_BASE_BUCKET, TIER_START_US, TIER_WIDTH_US,
};

fn clamp_int(v: u64) -> c_int {
    v.min(c_int::MAX as u64) as c_int
}

/// The `AURA_PHASE_*` number of a controller phase.
pub(crate) fn phase_number(p: Phase) -> c_int {
    c_int::from(aura_std::prometheus::phase_value(p))
}

/// The C snapshot of the engine statistics.
pub(crate) fn engine_stats(e: &Engine) -> AuraStats {
    let s = e.stats();
    AuraStats {
        ops_completed: s.ops_completed.min(i64::MAX as u64) as i64,
        bytes_transferred: s.bytes_transferred.min(i64::MAX as u64) as i64,
        current_throughput_bps: s.throughput_bps,
        p99_latency_ms: s.p99_latency_ms,
        current_in_flight: clamp_int(s.current_in_flight),
        optimal_in_flight: clamp_int(s.optimal_in_flight),
        peak_in_flight: clamp_int(s.peak_in_flight),
        optimal_batch_size: clamp_int(s.optimal_batch_size),
        adaptive_spills: s.adaptive_spills,
        reserved: [0; 4],
    }
}

/// The C snapshot of one ring's statistics.
pub(crate) fn ring_stats(e: &Engine, ring: usize) -> Option<AuraRingStats> {
    let r = e.ring_stats(ring)?;
    Some(AuraRingStats {
        ops_completed: r.ops_completed.min(i64::MAX as u64) as i64,
        bytes_transferred: r.bytes_transferred.min(i64::MAX as u64) as i64,
        pending_count: clamp_int(r.pending_count),
        peak_in_flight: clamp_int(r.peak_in_flight),
        in_flight_limit: clamp_int(r.in_flight_limit),
        batch_threshold: clamp_int(r.batch_threshold),
        p99_latency_ms: r.p99_latency_ms.unwrap_or(-1.0),
        throughput_bps: r.throughput_bps,
        aimd_phase: phase_number(r.phase),
        queue_depth: clamp_int(r.queue_depth),
        reserved: [0; 4],
    })
}

/// An empty histogram with the tier description filled in.
pub(crate) fn empty_histogram() -> AuraHistogram {
    AuraHistogram {
        buckets: [0; HISTOGRAM_BUCKETS],
        overflow: 0,
        total_count: 0,
        max_tracked_us: HISTOGRAM_MAX_US,
        tier_count: HISTOGRAM_TIERS as c_int,
        tier_start_us: TIER_START_US,
        tier_width_us: TIER_WIDTH_US,
        tier_base_bucket: TIER_BASE_BUCKET,
        reserved: [0; 2],
    }
}

/// The C copy of one ring's histogram. The engine's histogram has the same 320-bucket, 4-tier
/// layout (aura-core's histogram module), so buckets copy one for one.
pub(crate) fn histogram(e: &Engine, ring: usize) -> Option<AuraHistogram> {
    let h = e.histogram(ring)?;
    let mut out = empty_histogram();
    out.buckets.copy_from_slice(h.buckets());
    out.overflow = h.overflow();
    out.total_count = h.count().min(u64::from(u32::MAX)) as u32;
    Some(out)
}

/// The tier of bucket `i` (0..320).
fn tier_of(i: usize) -> usize {
    (1..HISTOGRAM_TIERS)
        .rev()
        .find(|&t| i >= TIER_BASE_BUCKET[t] as usize)
        .unwrap_or(0)
}

/// Lower bound and width of bucket `i`, in µs.
fn bucket_us(i: usize) -> (f64, f64) {
    let t = tier_of(i);
    let w = f64::from(TIER_WIDTH_US[t]);
    let lo = f64::from(TIER_START_US[t]) + (i - TIER_BASE_BUCKET[t] as usize) as f64 * w;
    (lo, w)
}

/// `aura_histogram_percentile` on a Rust reference: the midpoint (ms) of the bucket holding
/// the `percentile`-th sample counted from the top, 100 ms when it falls in the overflow; -1
/// for an empty histogram or a percentile outside 0..=100.
pub fn percentile(h: &AuraHistogram, pct: f64) -> f64 {
    if !(0.0..=100.0).contains(&pct) || h.total_count == 0 {
        return -1.0;
    }
    let total = f64::from(h.total_count);
    let target = (((100.0 - pct) / 100.0 * total).floor() as u64).max(1);
    let mut seen = u64::from(h.overflow);
    if seen >= target {
        return f64::from(HISTOGRAM_MAX_US) / 1000.0;
    }
    for i in (0..HISTOGRAM_BUCKETS).rev() {
        seen += u64::from(h.buckets[i]);
        if seen >= target {
            let (lo, w) = bucket_us(i);
            return (lo + w / 2.0) / 1000.0;
        }
    }
    -1.0
}

/// `int aura_get_stats(const aura_engine_t *engine, aura_stats_t *stats, size_t size)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `stats` is NULL or writable for `min(size, 72)` bytes.
#[no_mangle]
pub unsafe extern "C" fn aura_get_stats(
    engine: *const CEngine,
    stats: *mut AuraStats,
    size: usize,
) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail(EINVAL);
        };
        if stats.is_null() || size == 0 {
            return fail(EINVAL);
        }
        let s = engine_stats(ce.engine());
        // SAFETY: writable for min(size, sizeof) bytes (this fn's contract).
        unsafe { copy_prefix(&s, stats, size) };
        0
    })
}

/// `int aura_get_ring_count(const aura_engine_t *engine)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_get_ring_count(engine: *const CEngine) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        match unsafe { opt_ref(engine) } {
            Some(ce) => clamp_int(ce.engine().ring_count() as u64),
            None => fail(EINVAL),
        }
    })
}

/// `int aura_pending_count(const aura_engine_t *engine)`: -1 for NULL.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn aura_pending_count(engine: *const CEngine) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        match unsafe { opt_ref(engine) } {
            // Held linked requests are pending too (submitted, not completed).
            Some(ce) => clamp_int(
                ce.engine().pending_count() as u64
                    + ce.shared().held.load(Ordering::Relaxed) as u64,
            ),
            None => fail(EINVAL),
        }
    })
}

/// `int aura_get_ring_stats(const aura_engine_t *engine, int ring_idx, aura_ring_stats_t *stats,
/// size_t size)`: a bad index zeroes the struct prefix and fails with EINVAL.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `stats` is NULL or writable for `min(size, 72)` bytes.
#[no_mangle]
pub unsafe extern "C" fn aura_get_ring_stats(
    engine: *const CEngine,
    ring_idx: c_int,
    stats: *mut AuraRingStats,
    size: usize,
) -> c_int {
    boundary!(-1, {
        if stats.is_null() || size == 0 {
            return fail(EINVAL);
        }
        // SAFETY: this fn's contract.
        let r = unsafe { opt_ref(engine) }
            .and_then(|ce| usize::try_from(ring_idx).ok().map(|i| (ce, i)))
            .and_then(|(ce, i)| ring_stats(ce.engine(), i));
        match r {
            // SAFETY: writable for min(size, sizeof) bytes (this fn's contract).
            Some(s) => unsafe { copy_prefix(&s, stats, size) },
            None => {
                // SAFETY: as above.
                unsafe { zero_prefix(stats, size) };
                return fail(EINVAL);
            }
        }
        0
    })
}

/// `int aura_get_histogram(const aura_engine_t *engine, int ring_idx, aura_histogram_t *hist,
/// size_t size)`: a bad index zeroes the struct prefix and fails with EINVAL.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `hist` is NULL or writable for `min(size, 1352)` bytes.
#[no_mangle]
pub unsafe extern "C" fn aura_get_histogram(
    engine: *const CEngine,
    ring_idx: c_int,
    hist: *mut AuraHistogram,
    size: usize,
) -> c_int {
    boundary!(-1, {
        if hist.is_null() || size == 0 {
            return fail(EINVAL);
        }
        // SAFETY: this fn's contract.
        let h = unsafe { opt_ref(engine) }
            .and_then(|ce| usize::try_from(ring_idx).ok().map(|i| (ce, i)))
            .and_then(|(ce, i)| histogram(ce.engine(), i));
        match h {
            // SAFETY: writable for min(size, sizeof) bytes (this fn's contract).
            Some(h) => unsafe { copy_prefix(&h, hist, size) },
            None => {
                // SAFETY: as above.
                unsafe { zero_prefix(hist, size) };
                return fail(EINVAL);
            }
        }
        0
    })
}

/// `int aura_get_buffer_stats(const aura_engine_t *engine, aura_buffer_stats_t *stats,
/// size_t size)`.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `stats` is NULL or writable for `min(size, 40)` bytes.
#[no_mangle]
pub unsafe extern "C" fn aura_get_buffer_stats(
    engine: *const CEngine,
    stats: *mut AuraBufferStats,
    size: usize,
) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail(EINVAL);
        };
        if stats.is_null() || size == 0 {
            return fail(EINVAL);
        }
        let b = ce.engine().buffer_stats();
        let s = AuraBufferStats {
            total_allocated_bytes: b.total_allocated_bytes,
            total_buffers: b.total_buffers,
            shard_count: clamp_int(b.shard_count as u64),
            reserved: [0; 4],
        };
        // SAFETY: writable for min(size, sizeof) bytes (this fn's contract).
        unsafe { copy_prefix(&s, stats, size) };
        0
    })
}

/// `const char *aura_phase_name(int phase)`: static strings.
#[no_mangle]
pub extern "C" fn aura_phase_name(phase: c_int) -> *const c_char {
    boundary!(c"UNKNOWN".as_ptr(), {
        match phase {
            0 => c"BASELINE",
            1 => c"PROBING",
            2 => c"STEADY",
            3 => c"BACKOFF",
            4 => c"SETTLING",
            5 => c"CONVERGED",
            6 => c"PASSTHROUGH",
            _ => c"UNKNOWN",
        }
        .as_ptr()
    })
}

/// `double aura_histogram_percentile(const aura_histogram_t *hist, double percentile)`.
///
/// # Safety
///
/// `hist` is NULL or a readable `aura_histogram_t`.
#[no_mangle]
pub unsafe extern "C" fn aura_histogram_percentile(hist: *const AuraHistogram, pct: f64) -> f64 {
    boundary!(-1.0, {
        // SAFETY: this fn's contract.
        unsafe { opt_ref(hist) }.map_or(-1.0, |h| percentile(h, pct))
    })
}

/// `int aura_histogram_bucket_upper_bound_us(const aura_histogram_t *hist, int bucket)`: 0 for
/// NULL or an index outside 0..320.
///
/// # Safety
///
/// `hist` is NULL or a readable `aura_histogram_t`.
#[no_mangle]
pub unsafe extern "C" fn aura_histogram_bucket_upper_bound_us(
    hist: *const AuraHistogram,
    bucket: c_int,
) -> c_int {
    boundary!(0, {
        if hist.is_null() || !(0..HISTOGRAM_BUCKETS as c_int).contains(&bucket) {
            return 0;
        }
        let (lo, w) = bucket_us(bucket as usize);
        (lo + w) as c_int
    })
}

/// `int aura_metrics_prometheus(aura_engine_t *engine, char *buf, size_t size)`: Prometheus
/// text format 0.0.4, NUL-terminated. Returns the bytes written; too small: minus the size
/// needed (including the NUL) with ENOBUFS.
///
/// # Safety
///
/// `engine` is NULL or a live engine; `buf` is NULL or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn aura_metrics_prometheus(
    engine: *mut CEngine,
    buf: *mut c_char,
    size: usize,
) -> c_int {
    boundary!(-1, {
        // SAFETY: this fn's contract.
        let Some(ce) = (unsafe { opt_ref(engine) }) else {
            return fail(EINVAL);
        };
        if buf.is_null() && size > 0 {
            return fail(EINVAL);
        }
        let text = aura_std::prometheus::render(ce.engine());
        let needed = text.len() + 1;
        if needed > c_int::MAX as usize {
            return fail(crate::error::ENOMEM);
        }
        if size < needed {
            set_errno(ENOBUFS);
            return -(needed as c_int);
        }
        // SAFETY: `buf` is writable for `size >= needed` bytes (this fn's contract); `text` is a
        // separate allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            *buf.add(text.len()) = 0;
        }
        text.len() as c_int
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_rank_rule() {
        let mut h = empty_histogram();
        // 100 samples: 99 in bucket 5 ([50, 60) µs), one in bucket 250 ([30, 31) ms).
        h.buckets[5] = 99;
        h.buckets[250] = 1;
        h.total_count = 100;
        assert_eq!(percentile(&h, 99.0), 30.5);
        assert_eq!(percentile(&h, 100.0), 30.5);
        assert_eq!(percentile(&h, 50.0), 0.055);
        assert_eq!(percentile(&h, 101.0), -1.0);
        assert_eq!(percentile(&h, -0.5), -1.0);
        h.overflow = 5;
        h.total_count = 105;
        assert_eq!(percentile(&h, 99.0), 100.0);
        assert_eq!(percentile(&empty_histogram(), 50.0), -1.0);
    }

    #[test]
    fn bucket_bounds_cover_the_four_tiers() {
        let h = empty_histogram();
        let ub = |i| {
            // SAFETY: `h` is a live histogram.
            unsafe { aura_histogram_bucket_upper_bound_us(&h, i) }
        };
        assert_eq!(ub(0), 10);
        assert_eq!(ub(99), 1_000);
        assert_eq!(ub(100), 1_050);
        assert_eq!(ub(179), 5_000);
        assert_eq!(ub(180), 5_250);
        assert_eq!(ub(239), 20_000);
        assert_eq!(ub(240), 21_000);
        assert_eq!(ub(319), 100_000);
        assert_eq!(ub(320), 0);
        assert_eq!(ub(-1), 0);
        // SAFETY: NULL is accepted.
        let null_bound = unsafe { aura_histogram_bucket_upper_bound_us(std::ptr::null(), 3) };
        assert_eq!(null_bound, 0);
    }

    #[test]
    fn the_histogram_layout_matches_the_engines() {
        use aura_core::histogram::Histogram;
        // Every bucket boundary of the C description equals the engine's.
        for i in 0..HISTOGRAM_BUCKETS {
            let (lo, w) = bucket_us(i);
            let mut core = Histogram::new();
            core.record((lo as u64) * 1000);
            core.record(((lo + w) as u64) * 1000 - 1);
            assert_eq!(core.buckets()[i], 2, "bucket {i}");
        }
        assert_eq!(phase_number(Phase::Passthrough), 6);
        assert_eq!(phase_number(Phase::Baseline), 0);
        assert_eq!(phase_number(Phase::Converged), 5);
    }
}
