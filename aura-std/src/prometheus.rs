//! Engine metrics in the Prometheus text exposition format, version 0.0.4.
//!
//! [`render`] returns the text; [`render_into`] appends it to a `String` you keep (reuse it
//! between scrapes to skip the allocation). Serve it with
//! `Content-Type: text/plain; version=0.0.4` from whatever HTTP server the application already
//! runs (`examples/rust/prometheus_http.rs` shows a minimal one); aura starts no listener.
//!
//! # Schema `v0` (experimental)
//!
//! Before 1.0 families may be added and labels may change;
//! `aura_metrics_schema_info{schema="v0",stability="experimental"} 1` says which schema a scrape
//! follows. Every family is written as `# HELP`, `# TYPE`, its samples, then a blank line. Units
//! are base units: seconds and bytes. The only label is `ring` (the ring index, `0` to
//! `aura_ring_count - 1`), plus `le` on histogram buckets. A non-finite value prints as `0`.
//!
//! | family | type | labels | unit | value |
//! |---|---|---|---|---|
//! | `aura_metrics_schema_info` | gauge | `schema`, `stability` | — | always 1 |
//! | `aura_ops_completed_total` | counter | — | operations | [`Stats::ops_completed`] |
//! | `aura_bytes_transferred_total` | counter | — | bytes | [`Stats::bytes_transferred`] |
//! | `aura_adaptive_spills_total` | counter | — | submissions | [`Stats::adaptive_spills`] |
//! | `aura_throughput_bytes_per_second` | gauge | — | bytes/s | [`Stats::throughput_bps`] |
//! | `aura_p99_latency_seconds` | gauge | — | seconds | highest ring P99 of the last ticks (0: none) |
//! | `aura_in_flight` | gauge | — | requests | submitted, not completed ([`Stats::current_in_flight`]) |
//! | `aura_optimal_in_flight` | gauge | — | requests | sum of the in-flight limits |
//! | `aura_optimal_batch_size` | gauge | — | SQEs | mean batch threshold |
//! | `aura_ring_count` | gauge | — | rings | [`Engine::ring_count`] |
//! | `aura_ring_ops_completed_total` | counter | `ring` | operations | [`RingStats::ops_completed`] |
//! | `aura_ring_bytes_transferred_total` | counter | `ring` | bytes | [`RingStats::bytes_transferred`] |
//! | `aura_ring_in_flight` | gauge | `ring` | requests | in the kernel now ([`RingStats::in_flight`]) |
//! | `aura_ring_in_flight_limit` | gauge | `ring` | requests | the gate's limit |
//! | `aura_ring_batch_threshold` | gauge | `ring` | SQEs | flush threshold (0: never on count) |
//! | `aura_ring_queue_depth` | gauge | `ring` | SQ entries | the ring's size |
//! | `aura_ring_p99_latency_seconds` | gauge | `ring` | seconds | P99 of the last tick; -0.001 when no data |
//! | `aura_ring_throughput_bytes_per_second` | gauge | `ring` | bytes/s | last tick |
//! | `aura_ring_aimd_phase` | gauge | `ring` | — | 0 BASELINE, 1 PROBING, 2 STEADY, 3 BACKOFF, 4 SETTLING, 5 CONVERGED, 6 PASSTHROUGH |
//! | `aura_latency_seconds` | histogram | `ring` (+ `le`) | seconds | [`Engine::histogram`] |
//! | `aura_buffer_pool_allocated_bytes` | gauge | — | bytes | [`BufferStats::total_allocated_bytes`] |
//! | `aura_buffer_pool_buffers` | gauge | — | buffers | [`BufferStats::total_buffers`] |
//! | `aura_buffer_pool_shards` | gauge | — | shards | [`BufferStats::shard_count`] |
//!
//! `peak_in_flight` and `stale_cqes` are not exported (see [`Engine::ring_stats`]).
//!
//! `promtool check metrics` parses the text and reports one lint (exit code 3):
//! `aura_ring_count` is a gauge whose name ends in `_count`, a suffix the linter reserves for
//! histograms and summaries. The name belongs to the schema (it is the original exporter's), so
//! it stays; everything else passes the linter cleanly.
//!
//! # The latency histogram
//!
//! `aura_latency_seconds` is each ring's [tiered histogram](aura_core::histogram) of every
//! latency the ring measured since the engine started (submit to reap; at high IOPS the
//! controller measures one completion in 8, so `_count` counts samples, not operations). The
//! `le` bounds are the tier bucket upper bounds (10 µs steps below 1 ms, 50 µs to 5 ms, 250 µs
//! to 20 ms, 1 ms to 100 ms), printed with six decimals (`le="0.000010"`), and only from the
//! ring's first non-empty bucket on: the buckets below it are all 0, and skipping them keeps an
//! NVMe ring's scrape short. `le="+Inf"` adds the overflow counter (≥ 100 ms) and equals
//! `_count`. `_sum` is estimated from the bucket midpoints, the overflow counted at 0.1 s, so
//! `_sum / _count` is a mean accurate to half a bucket width below 100 ms. A ring with no
//! samples has only its `le="+Inf"` bucket, at 0.
//!
//! # Consistency
//!
//! A scrape reads each ring's counters under that ring's lock, one ring at a time, so values of
//! different rings, and engine-wide sums against per-ring values, may be skewed by what completed
//! in between. Metrics are for trends and alerting, not accounting.

use std::fmt::Write;

use aura_core::histogram::{Histogram, CEILING_NS};

use crate::buffer::BufferStats;
use crate::engine::{Engine, RingStats, Stats};
use crate::Phase;

/// The schema the text follows (the `schema` label of `aura_metrics_schema_info`).
pub const SCHEMA: &str = "v0";

/// The Prometheus text format version of the output; serve it as
/// `Content-Type: text/plain; version=0.0.4`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The engine's metrics, in the text exposition format 0.0.4 (see the [module docs](self)).
pub fn render(engine: &Engine) -> String {
    let mut out = String::with_capacity(16 * 1024);
    render_into(engine, &mut out);
    out
}

/// Appends the engine's metrics to `out`, in the text exposition format 0.0.4 (see the
/// [module docs](self)). `out` is not cleared first.
pub fn render_into(engine: &Engine, out: &mut String) {
    let stats = engine.stats();
    let rings: Vec<RingStats> = (0..engine.ring_count())
        .filter_map(|i| engine.ring_stats(i))
        .collect();
    let buffers = engine.buffer_stats();
    let mut w = Writer { out };
    w.globals(&stats, rings.len());
    w.per_ring(&rings);
    w.histograms(engine);
    w.buffer_pool(&buffers);
}

/// The value of `aura_ring_aimd_phase` for a phase.
pub fn phase_value(phase: Phase) -> u8 {
    match phase {
        Phase::Baseline => 0,
        Phase::Probing => 1,
        Phase::Steady => 2,
        Phase::Backoff => 3,
        Phase::Settling => 4,
        Phase::Converged => 5,
        Phase::Passthrough => 6,
    }
}

/// A sample value: an integer, or a float (non-finite prints as 0).
#[derive(Copy, Clone)]
enum Value {
    Int(u64),
    Float(f64),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) if x.is_finite() => write!(f, "{x}"),
            Value::Float(_) => f.write_str("0"),
        }
    }
}

fn int(n: impl Into<u64>) -> Value {
    Value::Int(n.into())
}

fn usize_value(n: usize) -> Value {
    Value::Int(n as u64)
}

struct Writer<'a> {
    out: &'a mut String,
}

// Writing to a `String` cannot fail: the `fmt::Result`s below are always `Ok`.
impl Writer<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn end(&mut self) {
        self.out.push('\n');
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: Value) {
        self.header(name, kind, help);
        let _ = writeln!(self.out, "{name} {value}");
        self.end();
    }

    /// A family with one sample per ring.
    fn each_ring(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        rings: &[RingStats],
        value: impl Fn(&RingStats) -> Value,
    ) {
        self.header(name, kind, help);
        for (i, r) in rings.iter().enumerate() {
            let _ = writeln!(self.out, "{name}{{ring=\"{i}\"}} {}", value(r));
        }
        self.end();
    }

    fn globals(&mut self, s: &Stats, rings: usize) {
        self.header(
            "aura_metrics_schema_info",
            "gauge",
            "Exporter schema version and stability (always 1).",
        );
        let _ = writeln!(
            self.out,
            "aura_metrics_schema_info{{schema=\"{SCHEMA}\",stability=\"experimental\"}} 1"
        );
        self.end();
        self.single(
            "aura_ops_completed_total",
            "counter",
            "Operations completed, all rings.",
            int(s.ops_completed),
        );
        self.single(
            "aura_bytes_transferred_total",
            "counter",
            "Bytes moved by completed data operations, all rings.",
            int(s.bytes_transferred),
        );
        self.single(
            "aura_adaptive_spills_total",
            "counter",
            "Submissions ADAPTIVE ring selection sent away from their CPU's ring.",
            int(s.adaptive_spills),
        );
        self.single(
            "aura_throughput_bytes_per_second",
            "gauge",
            "Throughput over the rings' last controller ticks, in bytes per second.",
            Value::Float(s.throughput_bps),
        );
        self.single(
            "aura_p99_latency_seconds",
            "gauge",
            "Highest ring P99 latency of the last controller ticks, in seconds (0 when none).",
            Value::Float(s.p99_latency_ms / 1e3),
        );
        self.single(
            "aura_in_flight",
            "gauge",
            "Requests submitted and not completed, all rings.",
            int(s.current_in_flight),
        );
        self.single(
            "aura_optimal_in_flight",
            "gauge",
            "Sum of the rings' tuned in-flight limits.",
            int(s.optimal_in_flight),
        );
        self.single(
            "aura_optimal_batch_size",
            "gauge",
            "Mean of the rings' batch thresholds (SQEs queued before a flush).",
            int(s.optimal_batch_size),
        );
        self.single(
            "aura_ring_count",
            "gauge",
            "Number of io_uring rings.",
            usize_value(rings),
        );
    }

    fn per_ring(&mut self, rings: &[RingStats]) {
        self.each_ring(
            "aura_ring_ops_completed_total",
            "counter",
            "Operations completed per ring.",
            rings,
            |r| int(r.ops_completed),
        );
        self.each_ring(
            "aura_ring_bytes_transferred_total",
            "counter",
            "Bytes moved by completed data operations per ring.",
            rings,
            |r| int(r.bytes_transferred),
        );
        self.each_ring(
            "aura_ring_in_flight",
            "gauge",
            "Requests in the kernel now per ring.",
            rings,
            |r| int(r.in_flight),
        );
        self.each_ring(
            "aura_ring_in_flight_limit",
            "gauge",
            "The in-flight limit in force per ring (tuned by AIMD).",
            rings,
            |r| int(r.in_flight_limit),
        );
        self.each_ring(
            "aura_ring_batch_threshold",
            "gauge",
            "SQEs queued before a flush per ring (0: never on count).",
            rings,
            |r| int(r.batch_threshold),
        );
        self.each_ring(
            "aura_ring_queue_depth",
            "gauge",
            "SQ entries per ring.",
            rings,
            |r| int(r.queue_depth),
        );
        self.each_ring(
            "aura_ring_p99_latency_seconds",
            "gauge",
            "P99 latency of the ring's last controller tick, in seconds (-0.001 when no data).",
            rings,
            |r| Value::Float(r.p99_latency_ms.map_or(-0.001, |ms| ms / 1e3)),
        );
        self.each_ring(
            "aura_ring_throughput_bytes_per_second",
            "gauge",
            "Throughput of the ring's last controller tick, in bytes per second.",
            rings,
            |r| Value::Float(r.throughput_bps),
        );
        self.each_ring(
            "aura_ring_aimd_phase",
            "gauge",
            "AIMD controller phase per ring: 0 BASELINE, 1 PROBING, 2 STEADY, 3 BACKOFF, \
             4 SETTLING, 5 CONVERGED, 6 PASSTHROUGH.",
            rings,
            |r| int(phase_value(r.phase)),
        );
    }

    fn histograms(&mut self, engine: &Engine) {
        self.header(
            "aura_latency_seconds",
            "histogram",
            "Latency (submit to reap) of the completions each ring measured since the engine \
             started, in seconds (sum estimated from bucket midpoints).",
        );
        for ring in 0..engine.ring_count() {
            if let Some(h) = engine.histogram(ring) {
                self.histogram(ring, &h);
            }
        }
        self.end();
    }

    fn histogram(&mut self, ring: usize, h: &Histogram) {
        let name = "aura_latency_seconds";
        let buckets = h.buckets();
        let mut cumulative = 0u64;
        let mut sum_s = 0.0f64;
        if let Some(first) = buckets.iter().position(|&n| n > 0) {
            for (index, &n) in buckets.iter().enumerate().skip(first) {
                cumulative += u64::from(n);
                sum_s += f64::from(n) * Histogram::bucket_midpoint_ns(index) as f64 / 1e9;
                let le = Histogram::bucket_bounds_ns(index).1 as f64 / 1e9;
                let _ = writeln!(
                    self.out,
                    "{name}_bucket{{ring=\"{ring}\",le=\"{le:.6}\"}} {cumulative}"
                );
            }
        }
        let overflow = h.overflow();
        cumulative += u64::from(overflow);
        sum_s += f64::from(overflow) * CEILING_NS as f64 / 1e9;
        let _ = writeln!(
            self.out,
            "{name}_bucket{{ring=\"{ring}\",le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            self.out,
            "{name}_sum{{ring=\"{ring}\"}} {}",
            Value::Float(sum_s)
        );
        let _ = writeln!(self.out, "{name}_count{{ring=\"{ring}\"}} {cumulative}");
    }

    fn buffer_pool(&mut self, b: &BufferStats) {
        self.single(
            "aura_buffer_pool_allocated_bytes",
            "gauge",
            "Bytes the buffer pool holds from the allocator (cached or handed out).",
            usize_value(b.total_allocated_bytes),
        );
        self.single(
            "aura_buffer_pool_buffers",
            "gauge",
            "Buffers the buffer pool holds from the allocator (cached or handed out).",
            usize_value(b.total_buffers),
        );
        self.single(
            "aura_buffer_pool_shards",
            "gauge",
            "Number of buffer pool shards.",
            usize_value(b.shard_count),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aura_core::histogram::BUCKETS;

    #[test]
    fn values_print_prometheus_numbers() {
        assert_eq!(Value::Int(42).to_string(), "42");
        assert_eq!(Value::Float(1.5).to_string(), "1.5");
        assert_eq!(Value::Float(-0.001).to_string(), "-0.001");
        assert_eq!(Value::Float(f64::NAN).to_string(), "0");
        assert_eq!(Value::Float(f64::INFINITY).to_string(), "0");
        assert_eq!(Value::Float(f64::NEG_INFINITY).to_string(), "0");
        assert_eq!(Value::Float(1e21).to_string(), "1000000000000000000000");
    }

    #[test]
    fn histogram_text_is_cumulative_from_the_first_nonempty_bucket() {
        let mut h = Histogram::new();
        h.record(25_000); // bucket 2: [20 µs, 30 µs)
        h.record(27_000);
        h.record(2_000_000); // bucket 120: [2 ms, 2.05 ms)
        h.record(CEILING_NS); // overflow
        let mut out = String::new();
        Writer { out: &mut out }.histogram(1, &h);
        let lines: Vec<&str> = out.lines().collect();
        // Buckets 2..=319, then +Inf, _sum and _count.
        assert_eq!(lines.len(), BUCKETS - 2 + 3, "{out}");
        assert_eq!(
            lines[0],
            "aura_latency_seconds_bucket{ring=\"1\",le=\"0.000030\"} 2"
        );
        assert_eq!(
            lines[120 - 2],
            "aura_latency_seconds_bucket{ring=\"1\",le=\"0.002050\"} 3"
        );
        assert_eq!(
            lines[BUCKETS - 3],
            "aura_latency_seconds_bucket{ring=\"1\",le=\"0.100000\"} 3"
        );
        assert_eq!(
            lines[BUCKETS - 2],
            "aura_latency_seconds_bucket{ring=\"1\",le=\"+Inf\"} 4"
        );
        let sum: f64 = lines[BUCKETS - 1]
            .strip_prefix("aura_latency_seconds_sum{ring=\"1\"} ")
            .unwrap()
            .parse()
            .unwrap();
        let want = 2.0 * 25e-6 + 2.025e-3 + 0.1;
        assert!((sum - want).abs() < 1e-12, "{sum} vs {want}");
        assert_eq!(lines[BUCKETS], "aura_latency_seconds_count{ring=\"1\"} 4");
    }

    #[test]
    fn empty_histogram_has_only_the_inf_bucket() {
        let mut out = String::new();
        Writer { out: &mut out }.histogram(0, &Histogram::new());
        assert_eq!(
            out,
            "aura_latency_seconds_bucket{ring=\"0\",le=\"+Inf\"} 0\n\
             aura_latency_seconds_sum{ring=\"0\"} 0\n\
             aura_latency_seconds_count{ring=\"0\"} 0\n"
        );
    }

    #[test]
    fn phases_map_to_their_documented_numbers() {
        let all = [
            (Phase::Baseline, 0),
            (Phase::Probing, 1),
            (Phase::Steady, 2),
            (Phase::Backoff, 3),
            (Phase::Settling, 4),
            (Phase::Converged, 5),
            (Phase::Passthrough, 6),
        ];
        for (phase, n) in all {
            assert_eq!(phase_value(phase), n, "{phase:?}");
        }
    }
}
