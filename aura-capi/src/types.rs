//! The public C types of aura.h, field for field, with their ABI sizes and offsets asserted.
//!
//! C `bool` fields are read as `u8` (any non-zero byte is true), so a struct filled by `memset`
//! or an older compiler can never hold an invalid Rust `bool`. C enums are `c_int`.

use std::os::raw::{c_int, c_void};

use static_assertions::const_assert_eq;

/// `aura_callback_t`: `void (*)(aura_request_t *req, ssize_t result, void *user_data)`.
pub type AuraCallback =
    Option<unsafe extern "C" fn(req: *mut crate::request::Slot, result: isize, ud: *mut c_void)>;

/// `aura_log_fn`: `void (*)(int level, const char *msg, void *userdata)`.
pub type AuraLogFn =
    Option<unsafe extern "C" fn(level: c_int, msg: *const std::os::raw::c_char, ud: *mut c_void)>;

/// `AURA_BUF_UNREGISTERED`.
pub const AURA_BUF_UNREGISTERED: c_int = 0;
/// `AURA_BUF_REGISTERED`.
pub const AURA_BUF_REGISTERED: c_int = 1;

/// `struct aura_buf_fixed`: a registered buffer index and a byte offset into it.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct AuraBufFixed {
    /// Index into the registered buffer table.
    pub index: c_int,
    /// Byte offset into that buffer.
    pub offset: usize,
}

/// The anonymous union of `aura_buf_t`.
#[repr(C)]
#[derive(Copy, Clone)]
pub union AuraBufU {
    /// `AURA_BUF_UNREGISTERED`: the address.
    pub ptr: *mut c_void,
    /// `AURA_BUF_REGISTERED`: index and offset.
    pub fixed: AuraBufFixed,
}

/// `aura_buf_t`.
#[repr(C)]
#[derive(Copy, Clone)]
pub struct AuraBuf {
    /// `aura_buf_type_t`.
    pub kind: c_int,
    /// The pointer or the registered slice.
    pub u: AuraBufU,
}

/// `aura_options_t`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct AuraOptions {
    /// sizeof the caller's struct.
    pub struct_size: usize,
    /// SQ entries per ring (0 = 1024).
    pub queue_depth: c_int,
    /// Rings (0 = per CPU).
    pub ring_count: c_int,
    /// Initial in-flight limit (0 = max(4, qd/4)).
    pub initial_in_flight: c_int,
    /// Minimum in-flight limit (0 = 4).
    pub min_in_flight: c_int,
    /// P99 target in ms (0 = derived).
    pub max_p99_latency_ms: f64,
    /// Buffer alignment (0 = page size).
    pub buffer_alignment: usize,
    /// C bool.
    pub disable_adaptive: u8,
    /// C bool.
    pub enable_sqpoll: u8,
    /// SQPOLL idle time, ms.
    pub sqpoll_idle_ms: c_int,
    /// `aura_ring_select_t`.
    pub ring_select: c_int,
    /// C bool.
    pub single_thread: u8,
    /// -1 tuned, 0 never, > 0 fixed.
    pub batch_threshold: c_int,
    /// Must be zero.
    pub reserved: [u32; 6],
}

/// `aura_stats_t`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct AuraStats {
    /// Completed operations.
    pub ops_completed: i64,
    /// Bytes moved.
    pub bytes_transferred: i64,
    /// Bytes per second.
    pub current_throughput_bps: f64,
    /// Highest ring P99, ms.
    pub p99_latency_ms: f64,
    /// Submitted, not completed.
    pub current_in_flight: c_int,
    /// Sum of ring limits.
    pub optimal_in_flight: c_int,
    /// Sum of ring peaks.
    pub peak_in_flight: c_int,
    /// Mean batch threshold.
    pub optimal_batch_size: c_int,
    /// ADAPTIVE spills.
    pub adaptive_spills: u64,
    /// Zero.
    pub reserved: [u32; 4],
}

/// `aura_ring_stats_t`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct AuraRingStats {
    /// Completed operations.
    pub ops_completed: i64,
    /// Bytes moved.
    pub bytes_transferred: i64,
    /// Pending requests.
    pub pending_count: c_int,
    /// Peak in flight.
    pub peak_in_flight: c_int,
    /// In-flight limit.
    pub in_flight_limit: c_int,
    /// Batch threshold.
    pub batch_threshold: c_int,
    /// Last tick's P99 (ms), -1 when no data.
    pub p99_latency_ms: f64,
    /// Bytes per second.
    pub throughput_bps: f64,
    /// AURA_PHASE_*.
    pub aimd_phase: c_int,
    /// SQ entries.
    pub queue_depth: c_int,
    /// Zero.
    pub reserved: [u32; 4],
}

/// `AURA_HISTOGRAM_BUCKETS`.
pub const HISTOGRAM_BUCKETS: usize = 320;
/// `AURA_HISTOGRAM_TIER_COUNT`.
pub const HISTOGRAM_TIERS: usize = 4;
/// `AURA_HISTOGRAM_MAX_US`.
pub const HISTOGRAM_MAX_US: c_int = 100_000;
/// First microsecond of each tier.
pub const TIER_START_US: [c_int; 4] = [0, 1_000, 5_000, 20_000];
/// Bucket width of each tier, µs.
pub const TIER_WIDTH_US: [c_int; 4] = [10, 50, 250, 1_000];
/// First bucket of each tier.
pub const TIER_BASE_BUCKET: [c_int; 4] = [0, 100, 180, 240];

/// `aura_histogram_t`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct AuraHistogram {
    /// Samples per bucket.
    pub buckets: [u32; HISTOGRAM_BUCKETS],
    /// Samples ≥ 100 ms.
    pub overflow: u32,
    /// All samples.
    pub total_count: u32,
    /// 100 000.
    pub max_tracked_us: c_int,
    /// 4.
    pub tier_count: c_int,
    /// Tier starts, µs.
    pub tier_start_us: [c_int; HISTOGRAM_TIERS],
    /// Tier widths, µs.
    pub tier_width_us: [c_int; HISTOGRAM_TIERS],
    /// Tier first buckets.
    pub tier_base_bucket: [c_int; HISTOGRAM_TIERS],
    /// Zero.
    pub reserved: [u32; 2],
}

/// `aura_buffer_stats_t`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct AuraBufferStats {
    /// Bytes allocated (class sizes).
    pub total_allocated_bytes: usize,
    /// Buffers allocated.
    pub total_buffers: usize,
    /// Pool shards.
    pub shard_count: c_int,
    /// Zero.
    pub reserved: [u32; 4],
}

// ABI sizes of spec §1.1 (x86-64 / LP64), and the offsets aura.h's layout implies.
const_assert_eq!(std::mem::size_of::<AuraBuf>(), 24);
const_assert_eq!(std::mem::offset_of!(AuraBuf, u), 8);
const_assert_eq!(std::mem::offset_of!(AuraBufFixed, offset), 8);
const_assert_eq!(std::mem::size_of::<AuraOptions>(), 88);
const_assert_eq!(std::mem::offset_of!(AuraOptions, queue_depth), 8);
const_assert_eq!(std::mem::offset_of!(AuraOptions, ring_count), 12);
const_assert_eq!(std::mem::offset_of!(AuraOptions, initial_in_flight), 16);
const_assert_eq!(std::mem::offset_of!(AuraOptions, min_in_flight), 20);
const_assert_eq!(std::mem::offset_of!(AuraOptions, max_p99_latency_ms), 24);
const_assert_eq!(std::mem::offset_of!(AuraOptions, buffer_alignment), 32);
const_assert_eq!(std::mem::offset_of!(AuraOptions, disable_adaptive), 40);
const_assert_eq!(std::mem::offset_of!(AuraOptions, enable_sqpoll), 41);
const_assert_eq!(std::mem::offset_of!(AuraOptions, sqpoll_idle_ms), 44);
const_assert_eq!(std::mem::offset_of!(AuraOptions, ring_select), 48);
const_assert_eq!(std::mem::offset_of!(AuraOptions, single_thread), 52);
const_assert_eq!(std::mem::offset_of!(AuraOptions, batch_threshold), 56);
const_assert_eq!(std::mem::offset_of!(AuraOptions, reserved), 60);
const_assert_eq!(std::mem::size_of::<AuraStats>(), 72);
const_assert_eq!(std::mem::offset_of!(AuraStats, current_in_flight), 32);
const_assert_eq!(std::mem::offset_of!(AuraStats, adaptive_spills), 48);
const_assert_eq!(std::mem::offset_of!(AuraStats, reserved), 56);
const_assert_eq!(std::mem::size_of::<AuraRingStats>(), 72);
const_assert_eq!(std::mem::offset_of!(AuraRingStats, pending_count), 16);
const_assert_eq!(std::mem::offset_of!(AuraRingStats, p99_latency_ms), 32);
const_assert_eq!(std::mem::offset_of!(AuraRingStats, aimd_phase), 48);
const_assert_eq!(std::mem::offset_of!(AuraRingStats, reserved), 56);
const_assert_eq!(std::mem::size_of::<AuraHistogram>(), 1352);
const_assert_eq!(std::mem::offset_of!(AuraHistogram, overflow), 1280);
const_assert_eq!(std::mem::offset_of!(AuraHistogram, total_count), 1284);
const_assert_eq!(std::mem::offset_of!(AuraHistogram, max_tracked_us), 1288);
const_assert_eq!(std::mem::offset_of!(AuraHistogram, tier_count), 1292);
const_assert_eq!(std::mem::offset_of!(AuraHistogram, tier_start_us), 1296);
const_assert_eq!(std::mem::offset_of!(AuraHistogram, tier_width_us), 1312);
const_assert_eq!(std::mem::offset_of!(AuraHistogram, tier_base_bucket), 1328);
const_assert_eq!(std::mem::offset_of!(AuraHistogram, reserved), 1344);
const_assert_eq!(std::mem::size_of::<AuraBufferStats>(), 40);
const_assert_eq!(std::mem::offset_of!(AuraBufferStats, shard_count), 16);
const_assert_eq!(std::mem::offset_of!(AuraBufferStats, reserved), 20);
// The C `struct iovec` is aura-core's IoVec.
const_assert_eq!(std::mem::size_of::<aura_std::IoVec>(), 16);
const_assert_eq!(std::mem::offset_of!(aura_std::IoVec, len), 8);
