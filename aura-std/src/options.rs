//! Engine options: a builder for every knob of the original `aura_options_t`, validated.

use crate::error::{Error, Result};

/// How a submission picks its ring.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum RingSelect {
    /// The ring of the submitting thread's CPU, spilling to the less loaded of two random other
    /// rings when the local one is an outlier (default).
    #[default]
    Adaptive,
    /// Always the ring of the submitting thread's CPU.
    CpuLocal,
    /// Rings in turn.
    RoundRobin,
    /// Each thread keeps the ring it claims at its first submission (rings handed out in turn).
    ///
    /// The rings stay ordinary rings. A `SINGLE_ISSUER | DEFER_TASKRUN` ring posts completions
    /// only when its issuing thread enters the kernel, and refuses (`EEXIST`) any other thread's
    /// enter; here any thread may `wait`, so a thread that submits and lets another wait would
    /// never see its completions. Those rings are used where one thread does both:
    /// [`Options::single_thread`].
    ThreadLocal,
}

/// Engine options. Start from [`Options::new`] (all defaults) and set what you need.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub(crate) queue_depth: u32,
    pub(crate) ring_count: u32,
    pub(crate) initial_in_flight: u32,
    pub(crate) min_in_flight: u32,
    pub(crate) max_p99_ms: f64,
    pub(crate) buffer_alignment: usize,
    pub(crate) disable_adaptive: bool,
    pub(crate) sqpoll: bool,
    pub(crate) sqpoll_idle_ms: u32,
    pub(crate) ring_select: RingSelect,
    pub(crate) single_thread: bool,
    pub(crate) batch_threshold: i32,
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

/// The default queue depth (SQ entries per ring, and the most requests in flight per ring).
pub const DEFAULT_QUEUE_DEPTH: u32 = 1024;
/// The default buffer alignment: the page size, O_DIRECT-ready.
pub const DEFAULT_ALIGNMENT: usize = 4096;

impl Options {
    /// Every option at its default: queue depth 1024, one ring per CPU in the affinity mask,
    /// adaptive depth on, page-aligned buffers, ADAPTIVE ring selection.
    pub fn new() -> Self {
        Options {
            queue_depth: DEFAULT_QUEUE_DEPTH,
            ring_count: 0,
            initial_in_flight: 0,
            min_in_flight: 0,
            max_p99_ms: 0.0,
            buffer_alignment: DEFAULT_ALIGNMENT,
            disable_adaptive: false,
            sqpoll: false,
            sqpoll_idle_ms: 1000,
            ring_select: RingSelect::Adaptive,
            single_thread: false,
            batch_threshold: -1,
        }
    }

    /// SQ entries per ring and the most requests in flight per ring (4..=32768; 0 = 1024).
    pub fn queue_depth(mut self, n: u32) -> Self {
        self.queue_depth = n;
        self
    }

    /// Rings (0 = one per CPU in the affinity mask; at most 1024).
    pub fn ring_count(mut self, n: u32) -> Self {
        self.ring_count = n;
        self
    }

    /// The in-flight limit adaptive tuning starts from (0 = the minimum); with
    /// [`Options::disable_adaptive`], the fixed in-flight limit (0 = the queue depth).
    pub fn initial_in_flight(mut self, n: u32) -> Self {
        self.initial_in_flight = n;
        self
    }

    /// The fewest requests in flight tuning may choose (1..=queue depth; 0 = 4).
    pub fn min_in_flight(mut self, n: u32) -> Self {
        self.min_in_flight = n;
        self
    }

    /// A P99 latency target in milliseconds (0 = none: the controller derives its guard). Must be
    /// finite and ≥ 0.
    pub fn max_p99_latency_ms(mut self, ms: f64) -> Self {
        self.max_p99_ms = ms;
        self
    }

    /// Alignment of pool buffers (a power of two ≥ 8; default 4096).
    pub fn buffer_alignment(mut self, bytes: usize) -> Self {
        self.buffer_alignment = bytes;
        self
    }

    /// Turns adaptive tuning off: the in-flight limit is then fixed at `initial_in_flight` (or
    /// the queue depth).
    pub fn disable_adaptive(mut self, off: bool) -> Self {
        self.disable_adaptive = off;
        self
    }

    /// A kernel thread polls each ring's SQ, sleeping after `idle_ms` without work.
    pub fn sqpoll(mut self, on: bool, idle_ms: u32) -> Self {
        self.sqpoll = on;
        self.sqpoll_idle_ms = idle_ms;
        self
    }

    /// How submissions pick their ring.
    pub fn ring_select(mut self, mode: RingSelect) -> Self {
        self.ring_select = mode;
        self
    }

    /// The caller promises that one thread submits and waits. Rings then use `SINGLE_ISSUER |
    /// DEFER_TASKRUN` (6.1+; else `COOP_TASKRUN`, 5.19+): completions are posted in batches when
    /// that thread enters the kernel, with no interrupt of the submitter; the engine enters with
    /// GETEVENTS whenever the ring flags pending work. The rings are set up disabled and the
    /// thread that first uses the engine becomes their issuer, so the engine may be built on one
    /// thread and moved to another. Another thread's submission or wait then fails with `EEXIST`;
    /// dropping the engine on another thread while I/O is in flight leaks those requests (their
    /// memory may still be written by the kernel, and only the issuer can reap them).
    pub fn single_thread(mut self, on: bool) -> Self {
        self.single_thread = on;
        self
    }

    /// SQEs queued before a flush: -1 = tuned by the controller, 0 = never flush on count (only
    /// `flush`/`wait`/`poll` submit), > 0 = fixed.
    pub fn batch_threshold(mut self, n: i32) -> Self {
        self.batch_threshold = n;
        self
    }

    /// Checks every field; the error names the first bad one.
    pub(crate) fn validate(&self) -> Result<()> {
        let qd = self.queue_depth;
        if qd != 0 && !(4..=32768).contains(&qd) {
            return Err(Error::invalid(format!(
                "queue_depth {qd}: must be 4..=32768 (or 0 for 1024)"
            )));
        }
        let qd = if qd == 0 { DEFAULT_QUEUE_DEPTH } else { qd };
        if self.ring_count > 1024 {
            return Err(Error::invalid(format!(
                "ring_count {}: at most 1024",
                self.ring_count
            )));
        }
        if self.min_in_flight > qd {
            return Err(Error::invalid(format!(
                "min_in_flight {}: must be 1..=queue_depth ({qd})",
                self.min_in_flight
            )));
        }
        let min = if self.min_in_flight == 0 {
            4.min(qd)
        } else {
            self.min_in_flight
        };
        if self.initial_in_flight != 0 && !(min..=qd).contains(&self.initial_in_flight) {
            return Err(Error::invalid(format!(
                "initial_in_flight {}: must be within min_in_flight..=queue_depth ({min}..={qd})",
                self.initial_in_flight
            )));
        }
        if !self.max_p99_ms.is_finite() || self.max_p99_ms < 0.0 {
            return Err(Error::invalid(format!(
                "max_p99_latency_ms {}: must be finite and >= 0",
                self.max_p99_ms
            )));
        }
        let a = self.buffer_alignment;
        if !a.is_power_of_two() || !(8..=(1 << 30)).contains(&a) {
            return Err(Error::invalid(format!(
                "buffer_alignment {a}: must be a power of two in 8..=1 GiB"
            )));
        }
        if self.batch_threshold < -1 {
            return Err(Error::invalid(format!(
                "batch_threshold {}: -1 (auto), 0 (never) or > 0",
                self.batch_threshold
            )));
        }
        if self.sqpoll && self.sqpoll_idle_ms == 0 {
            return Err(Error::invalid("sqpoll_idle_ms 0: must be at least 1"));
        }
        Ok(())
    }

    /// The queue depth in force.
    pub fn effective_queue_depth(&self) -> u32 {
        if self.queue_depth == 0 {
            DEFAULT_QUEUE_DEPTH
        } else {
            self.queue_depth
        }
    }
}
