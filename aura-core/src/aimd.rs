//! The AIMD controller: finds and tracks the in-flight limit of one ring, in fixed-point integers
//! with time passed in.
//!
//! It is pure: completions, submit calls and ticks go in, an in-flight limit, a batch threshold
//! and a phase come out. It reads no clock and makes no syscall, so the same code runs in the
//! Engine, in simulated time against a device model ([`crate::sim::device`]), and in a fuzzer.
//!
//! # Inputs and outputs
//!
//! - [`Aimd::on_complete`] for every completion (its bytes always count; its latency when the
//!   caller sampled it), [`Aimd::on_submit`] for every submit syscall;
//! - [`Aimd::tick`]`(now_ns, pending)` every [`TICK_NS`] (10 ms), with `pending` = requests the
//!   application has handed over and not seen complete (in flight plus queued behind the gate);
//! - out: [`Decision`]: the in-flight `limit` (the gate admits a request while in-flight <
//!   limit), the `batch_threshold` (flush queued SQEs once this many are waiting), and the phase.
//!
//! # The state machine, in words
//!
//! - **PASSTHROUGH** (start): no gating (the limit is the maximum). Leaves for BASELINE after
//!   [`ENGAGE_TICKS`] consecutive ticks of pressure: pending grew by more than
//!   [`ENGAGE_PENDING_DELTA`] per tick (open-loop arrivals above device capacity), or the P99
//!   exceeded the max-P99 target, or (aura's rule, see below) a client kept at least
//!   [`CLOSED_LOOP_MIN_PENDING`] requests pending.
//! - **BASELINE**: holds the starting limit for [`WARMUP_TICKS`] ticks to learn the latency the
//!   device gives below its knee, then PROBING.
//! - **PROBING**: increase every tick by +[`AIMD_INCREASE`] or 1/[`PROBE_STEP_DIV`] of the limit,
//!   whichever is more (aura: see rule 5 below). Each step's efficiency ratio
//!   ER = Δthroughput / Δlimit is compared with [`ER_EPSILON_PERCENT`]% of the throughput: a step
//!   that gained more is kept; [`PLATEAU_CONFIRM`] flat steps in a row mean the knee is behind us:
//!   the limit returns to the last productive step and the phase goes to SETTLING. With a max-P99
//!   target, steps also continue while the P99 is under the target. [`SPIKE_CONFIRM`] rising ticks
//!   in a row go to BACKOFF.
//! - **BACKOFF**: multiplicative decrease, limit × 4/5 (never below the minimum), then SETTLING.
//! - **SETTLING**: [`SETTLING_TICKS`] ticks for the device to drain to the new depth;
//!   [`SPIKE_CONFIRM`] rising ticks in a row go back to BACKOFF (the original cut again on one);
//!   then STEADY.
//! - **STEADY**: holds the limit. Rising ticks go to BACKOFF; after [`REPROBE_INTERVAL`] ticks it
//!   probes again (PROBING), so a knee that moved up is found; after [`STEADY_THRESHOLD`] ticks
//!   with an unchanged limit it is CONVERGED.
//! - **CONVERGED**: as STEADY (spikes back off, re-probes every [`REPROBE_INTERVAL`] ticks).
//! - From STEADY or CONVERGED, when pending stays under half the limit for
//!   [`PASSTHROUGH_REENTER_TICKS`] ticks (the gate no longer binds), back to PASSTHROUGH.
//!
//! A tick is "rising" when the limit is above the minimum (nothing is left to cut at it), it has
//! at least [`LOW_IOPS_MIN_SAMPLES`] latency samples and
//! - with a max-P99 target: its P99 is at or above the target;
//! - without one: its P99 is at or above [`LATENCY_GUARD_MULT`] × the baseline P99 (the lowest P99
//!   of the last [`BASELINE_WINDOW`] eligible ticks; [`DEFAULT_LATENCY_GUARD_NS`] before any), or
//!   its mean latency is at least [`QUEUEING_RATIO_NUM`]/[`QUEUEING_RATIO_DEN`] of the latency
//!   floor (aura's queueing signal, below; not while probing).
//!
//! A tick with fewer than [`LOW_IOPS_MIN_SAMPLES`] latency samples is not evaluated: it keeps
//! accumulating, for up to [`MAX_SAMPLE_WINDOW_NS`], so slow devices (an HDD does ~500 IOPS) get
//! longer ticks whose P99 can be trusted. Interval rules (re-probe, converged) count time, not
//! evaluated ticks, so long ticks do not stretch them.
//!
//! # Where aura departs from the original controller, on purpose
//!
//! The constants are the original's. Four rules are not, because the original's versions fail
//! the cases this controller exists for (each failure is reproduced in this crate's tests):
//!
//! 1. **Closed-loop clients engage.** A client that keeps N requests in flight (fio-style) never
//!    makes pending grow, so the original never left PASSTHROUGH and ran at whatever depth the
//!    client asked (its benchmark reported 256). aura also engages when at least
//!    [`CLOSED_LOOP_MIN_PENDING`] requests stay pending for [`ENGAGE_TICKS`] ticks, starting low
//!    (the minimum in-flight, at least [`DEFAULT_MIN_IN_FLIGHT`]) so BASELINE sees the device
//!    below its knee and PROBING climbs to it. Light load (fewer pending), and memory-speed
//!    completions (P99 under [`CLOSED_LOOP_MIN_P99_NS`], e.g. page-cache reads), keep
//!    PASSTHROUGH and its zero gating cost. After a return to PASSTHROUGH, the closed-loop rule re-engages only
//!    once pending exceeds the limit the device last settled at (the gate would bind again).
//! 2. **Plateaus are detected.** The original reset its plateau count on every tick that had not
//!    moved the limit, so it never saw three flat steps and climbed until a latency spike. aura
//!    steps every probing tick, counts flat steps, and settles on the last productive depth.
//! 3. **Queueing backs off.** A guard of 10 × the baseline P99 ignores a device that got two or
//!    four times slower (a noisy neighbour, a workload whose knee moved down). aura also counts a
//!    tick as rising when its mean latency is ≥ 1.25 × the latency floor (the lowest mean latency
//!    of the eligible ticks since probing last settled, i.e. at the depth in force or above it):
//!    by Little's law that many requests are waiting in the device's queue rather than being
//!    served. Probing ticks neither feed the floor nor are judged by it: a device whose latency
//!    grows with depth while its throughput grows too (a virtio disk: 35 µs at depth 1, 250 µs
//!    at 32) is climbed as long as the steps pay, and the guard still stops a spike.
//! 4. **Re-probing never stops.** The original re-probed only after a backoff and froze once
//!    CONVERGED, so a knee that moved up was never found. aura re-probes every
//!    [`REPROBE_INTERVAL`] ticks in STEADY and CONVERGED (three +1 steps at most when nothing
//!    changed).
//! 5. **The first climb's steps grow with the limit.** A +1 step at depth 40 adds 2.5 % of
//!    depth; on a device whose throughput still grows there (a virtio disk does up to ~128) it
//!    gains about 1 %, under a 10 ms tick's counting noise at 50 k IOPS (1/√500 ≈ 4.5 %), so +1
//!    probing stalls far below the knee. The climb from BASELINE steps by 1/[`PROBE_STEP_DIV`] of
//!    the limit (at least 1), so a step under the knee gains more than the noise; past the knee
//!    the plateau rule returns to the last productive step. Re-probes from a settled depth keep
//!    +1 steps (they check the neighbourhood without leaving it).
//! 6. **A P99 target is held over a second, not only per tick.** A disk whose tail is rare
//!    multi-ms stalls keeps most 10 ms ticks' P99 under a 2 ms target while the P99 over seconds
//!    is twice it. With a target, a tick is also rising when the P99 of the last
//!    [`TARGET_WINDOW_NS`] reaches it (the window restarts at every cut, so one episode causes
//!    one cut, not a cascade), and probing steps up only while both are under it.
//!
//! Also: throughput counts every completion's bytes (the original counted only latency-sampled
//! completions, under-reporting 8×), and stats are computed in PASSTHROUGH too.

use crate::fixed::Fixed;
use crate::histogram::Histogram;

/// Tick period: 10 ms, short enough to react within 100 ms, long enough for hundreds of samples
/// per tick on an SSD.
pub const TICK_NS: u64 = 10_000_000;
/// Ticks spent in BASELINE before probing: 100 ms to learn the unloaded latency.
pub const WARMUP_TICKS: u32 = 10;
/// Ticks whose P99 form the baseline (its minimum): half a second of history, so one slow tick
/// cannot raise it and a real change moves it within 0.5 s.
pub const BASELINE_WINDOW: usize = 50;
/// Additive increase per probing tick: one request, the finest step the gate can take.
pub const AIMD_INCREASE: u32 = 1;
/// aura: a probing step is at least the limit / this (12.5 %), see rule 5 of the module docs.
pub const PROBE_STEP_DIV: u32 = 8;
/// aura: with a max-P99 target, the target is also checked against the P99 of this long a
/// window (1 s; restarted by every cut), see rule 6 of the module docs.
pub const TARGET_WINDOW_NS: u64 = 1_000_000_000;
/// The window is kept as this many slots (100 ms each).
const TARGET_WINDOW_SLOTS: usize = 10;
/// Multiplicative decrease numerator: limit × 4/5 (the original's ×0.80, in integers).
pub const DECREASE_NUM: i64 = 4;
/// Multiplicative decrease denominator.
pub const DECREASE_DEN: i64 = 5;
/// A probing step must gain more than this percentage of the throughput to count as productive:
/// 1% is above per-tick measurement noise at SSD rates and below the gain of a step under the
/// knee of any device with a knee under ~100.
pub const ER_EPSILON_PERCENT: i64 = 1;
/// Latency guard = this × baseline P99 (when no max-P99 target is set): a spike, not drift.
pub const LATENCY_GUARD_MULT: u64 = 10;
/// Latency guard before any baseline exists: 50 ms, beyond any healthy device.
pub const DEFAULT_LATENCY_GUARD_NS: u64 = 50_000_000;
/// Latency samples a tick needs before it is evaluated (and before its P99 is trusted).
pub const LOW_IOPS_MIN_SAMPLES: u64 = 20;
/// ...unless this much time passed (then the tick is evaluated without a trusted P99). The
/// original evaluated starved ticks after 100 ms, which with 1-in-8 latency sampling left an HDD
/// (~6 samples per 100 ms) with no trusted P99 ever; aura waits up to its documented 1 s maximum.
pub const MAX_SAMPLE_WINDOW_NS: u64 = 1_000_000_000;
/// Initial batch threshold (SQEs queued before a flush).
pub const MIN_BATCH: u32 = 2;
/// Largest batch threshold the tuning reaches.
pub const MAX_BATCH_THRESHOLD: u32 = 64;
/// Aimed-for SQEs per submit syscall: below it the batch threshold grows.
pub const TARGET_SQE_RATIO: i64 = 8;
/// Above 1.5 × the target ratio (12) the batch threshold shrinks.
pub const SHRINK_SQE_RATIO: i64 = 12;
/// Ticks in SETTLING after a change: 100 ms for the device queue to drain to the new depth.
pub const SETTLING_TICKS: u32 = 10;
/// Ticks with an unchanged limit before STEADY is called CONVERGED (5 s).
pub const STEADY_THRESHOLD: u32 = 500;
/// Ticks between re-probes in STEADY / CONVERGED (1 s).
pub const REPROBE_INTERVAL: u32 = 100;
/// Consecutive rising ticks that confirm a spike: one bad tick is noise.
pub const SPIKE_CONFIRM: u32 = 2;
/// Consecutive flat probing steps that confirm the knee.
pub const PLATEAU_CONFIRM: u32 = 3;
/// Consecutive pressure ticks before PASSTHROUGH engages.
pub const ENGAGE_TICKS: u32 = 8;
/// Pending growth per tick that counts as pressure (arrivals outrunning the device).
pub const ENGAGE_PENDING_DELTA: i64 = 16;
/// Ticks of light load before returning to PASSTHROUGH.
pub const PASSTHROUGH_REENTER_TICKS: u32 = 10;
/// Below this many completions per second every latency is measured.
pub const SAMPLE_ALL_BELOW_IOPS: u64 = 50_000;
/// Latency sampling rate above [`SAMPLE_ALL_BELOW_IOPS`]: 1 completion in 8.
pub const SAMPLE_EVERY_FAST: u32 = 8;
/// Default minimum in-flight limit.
pub const DEFAULT_MIN_IN_FLIGHT: u32 = 4;
/// aura: pending requests that make a closed-loop client worth tuning (below this, queueing in
/// the device costs little and PASSTHROUGH's zero overhead wins).
pub const CLOSED_LOOP_MIN_PENDING: u32 = 32;
/// aura: the closed-loop rule engages only when the tick's P99 is at least this (50 µs). Below
/// it requests spend next to no time in flight (a page-cache read completes in a few µs, in
/// the submitting CPU's own time): there is no device queue to keep short, and gating it would
/// only split its batches (measured: 10 % of the Engine's page-cache read rate).
pub const CLOSED_LOOP_MIN_P99_NS: u64 = 50_000;
/// aura: mean latency ≥ floor × NUM/DEN (5/4) counts as queueing (a rising tick): a quarter of
/// the requests in flight are waiting rather than being served. Loose enough for per-tick noise
/// (the floor is a low order statistic of 50 tick means), tight enough that ×4/5 cuts stop at
/// the knee (a cut from 1.25 × knee lands on it).
pub const QUEUEING_RATIO_NUM: u64 = 5;
/// aura: see [`QUEUEING_RATIO_NUM`].
pub const QUEUEING_RATIO_DEN: u64 = 4;

/// The controller's phase.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Not gating: the limit is the maximum.
    Passthrough,
    /// Learning the unloaded latency at the starting limit.
    Baseline,
    /// Additive increase while throughput improves.
    Probing,
    /// Holding the limit; re-probes periodically.
    Steady,
    /// A multiplicative decrease is applied this tick.
    Backoff,
    /// Waiting for the device to drain to a new limit.
    Settling,
    /// Steady for at least [`STEADY_THRESHOLD`] ticks.
    Converged,
}

impl Phase {
    /// Whether the controller may go from `self` to `to` in one tick (staying is always allowed).
    pub fn can_become(self, to: Phase) -> bool {
        use Phase::*;
        self == to
            || matches!(
                (self, to),
                (Passthrough, Baseline)
                    | (Baseline, Probing)
                    | (Probing, Backoff | Settling)
                    | (Backoff, Settling)
                    | (Settling, Backoff | Steady)
                    | (Steady, Backoff | Probing | Converged | Passthrough)
                    | (Converged, Backoff | Probing | Passthrough)
            )
    }

    /// Whether the gate is active.
    pub fn is_engaged(self) -> bool {
        self != Phase::Passthrough
    }

    /// A short lowercase name, for stats and logs.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Passthrough => "passthrough",
            Phase::Baseline => "baseline",
            Phase::Probing => "probing",
            Phase::Steady => "steady",
            Phase::Backoff => "backoff",
            Phase::Settling => "settling",
            Phase::Converged => "converged",
        }
    }
}

/// The controller's knobs. Zero means "default" where noted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AimdOptions {
    /// The most requests in flight ever allowed (the ring's queue depth).
    pub max_in_flight: u32,
    /// The fewest requests in flight the controller ever allows (0: [`DEFAULT_MIN_IN_FLIGHT`],
    /// capped at the maximum).
    pub min_in_flight: u32,
    /// The limit AIMD starts from when it engages (0: the minimum, at least
    /// [`DEFAULT_MIN_IN_FLIGHT`]).
    pub initial_in_flight: u32,
    /// Max P99 latency target in ns (0: none). When set it replaces the derived latency guard.
    pub max_p99_ns: u64,
    /// A fixed batch threshold (0: tuned from the SQEs-per-submit ratio; at most 65 536).
    pub batch_threshold: u32,
}

impl AimdOptions {
    /// Options with every knob at its default and `max_in_flight` as the ceiling.
    pub const fn new(max_in_flight: u32) -> Self {
        AimdOptions {
            max_in_flight,
            min_in_flight: 0,
            initial_in_flight: 0,
            max_p99_ns: 0,
            batch_threshold: 0,
        }
    }
}

/// The controller's output for the coming tick.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Admit a request while in-flight < this.
    pub limit: u32,
    /// Flush queued SQEs once this many wait.
    pub batch_threshold: u32,
    /// The phase after this tick.
    pub phase: Phase,
    /// Measure the latency of one completion in this many (1: every one). The controller asks
    /// for every completion when a max-P99 target is set (a per-tick P99 from 1 in 8 samples is
    /// too noisy to hold a target with) or while the ring does under [`SAMPLE_ALL_BELOW_IOPS`]
    /// (where two clock reads per I/O cost nothing that matters and a slow device still yields
    /// enough samples per tick), and 1 in [`SAMPLE_EVERY_FAST`] otherwise (the original's rate).
    pub sample_every: u32,
}

/// What the controller measured and decided, for stats.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct AimdStats {
    /// Ticks evaluated (ticks that accumulated more samples are not counted).
    pub ticks: u64,
    /// Latency samples in the last evaluated tick.
    pub samples: u64,
    /// P99 of the last evaluated tick (the controller's estimate), if it had samples.
    pub p99_ns: Option<u64>,
    /// Mean latency of the last evaluated tick.
    pub mean_ns: Option<u64>,
    /// Bytes per second completed in the last evaluated tick (every completion counted).
    pub throughput_bps: u64,
    /// Completions per second in the last evaluated tick.
    pub iops: u64,
    /// The baseline P99 (lowest of the window), 0 before any.
    pub baseline_p99_ns: u64,
    /// The latency floor (lowest mean latency of the window), 0 before any.
    pub latency_floor_ns: u64,
    /// The latency guard in force.
    pub guard_ns: u64,
    /// Multiplicative decreases applied.
    pub backoffs: u64,
    /// Times the controller left PASSTHROUGH.
    pub engagements: u64,
}

/// A fixed-capacity window of the last [`BASELINE_WINDOW`] values, with its minimum.
#[derive(Clone, Debug)]
struct MinWindow {
    values: [u64; BASELINE_WINDOW],
    len: usize,
    next: usize,
}

impl MinWindow {
    const fn new() -> Self {
        MinWindow {
            values: [0; BASELINE_WINDOW],
            len: 0,
            next: 0,
        }
    }

    fn push(&mut self, v: u64) {
        self.values[self.next] = v;
        self.next = (self.next + 1) % BASELINE_WINDOW;
        self.len = (self.len + 1).min(BASELINE_WINDOW);
    }

    fn min(&self) -> u64 {
        self.values[..self.len].iter().copied().min().unwrap_or(0)
    }

    /// The third-lowest value (the lowest while fewer than three): a floor that one lucky, noisy
    /// tick cannot drag down.
    fn low(&self) -> u64 {
        let mut low = [u64::MAX; 3];
        for &v in &self.values[..self.len] {
            if v < low[2] {
                low[2] = v;
                if low[2] < low[1] {
                    low.swap(1, 2);
                    if low[1] < low[0] {
                        low.swap(0, 1);
                    }
                }
            }
        }
        match self.len {
            0 => 0,
            1 | 2 => low[0],
            _ => low[2],
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.next = 0;
    }
}

/// Integer square root (floor).
fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let mut x = 1u64 << (n.ilog2() / 2 + 1);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// One tick's measurements.
#[derive(Copy, Clone, Debug)]
struct Sample {
    samples: u64,
    completions: u64,
    p99: Option<u64>,
    /// With a max-P99 target: the P99 over the last [`TARGET_WINDOW_NS`] (since the last cut).
    window_p99: Option<u64>,
    mean: Option<u64>,
    throughput: u64,
}

/// The AIMD controller of one ring.
#[derive(Clone, Debug)]
pub struct Aimd {
    max: u32,
    min: u32,
    start: u32,
    max_p99_ns: u64,
    fixed_batch: u32,

    phase: Phase,
    limit: u32,
    batch: u32,

    // The current window.
    hist: Histogram,
    bytes: u64,
    completions: u64,
    sqes: u64,
    submit_calls: u64,
    window_start: u64,
    started: bool,

    prev_pending: u32,
    pressure: u32,
    light: u32,
    /// The closed-loop rule engages only above this pending count (raised after a return to
    /// PASSTHROUGH to the limit the device settled at).
    closed_loop_min: u32,

    baseline: MinWindow,
    floor: MinWindow,
    /// This probe climbs in proportional steps (the first climb after BASELINE).
    coarse: bool,
    /// With a max-P99 target: per-slot latency histograms of the last [`TARGET_WINDOW_NS`]
    /// (allocated when a target is first set), the slot being filled and when it started.
    window: alloc::vec::Vec<Histogram>,
    window_slot: usize,
    window_slot_start: u64,
    prev_throughput: u64,
    prev_limit: u32,
    /// Mean latency of the previous evaluated tick.
    prev_mean: u64,
    best_limit: u32,
    /// The limit the current probe started from.
    probe_start: u32,
    spikes: u32,
    plateau: u32,
    settle: u32,
    steady: u32,
    stable: u32,
    warmup: u32,
    via_backoff: bool,
    /// A spike confirmed while probing: the coming cut goes at least back to `best_limit`.
    cap_at_best: bool,

    stats: AimdStats,
}

/// Why options were refused.
pub type OptionsError = &'static str;

impl Aimd {
    /// A controller in PASSTHROUGH. Refuses `max_in_flight == 0`, a minimum above the maximum
    /// and an initial limit outside [minimum, maximum].
    pub fn new(opts: AimdOptions) -> Result<Aimd, OptionsError> {
        let max = opts.max_in_flight;
        if max == 0 {
            return Err("max_in_flight must be at least 1");
        }
        let min = if opts.min_in_flight == 0 {
            DEFAULT_MIN_IN_FLIGHT.min(max)
        } else {
            opts.min_in_flight
        };
        if min > max {
            return Err("min_in_flight exceeds max_in_flight");
        }
        let start = if opts.initial_in_flight == 0 {
            min.max(DEFAULT_MIN_IN_FLIGHT).min(max)
        } else {
            opts.initial_in_flight
        };
        if start < min || start > max {
            return Err("initial_in_flight outside [min_in_flight, max_in_flight]");
        }
        if opts.batch_threshold > MAX_BATCH_THRESHOLD * 1024 {
            return Err("batch_threshold is unreasonably large");
        }
        Ok(Aimd {
            max,
            min,
            start,
            max_p99_ns: opts.max_p99_ns,
            fixed_batch: opts.batch_threshold,
            phase: Phase::Passthrough,
            limit: max,
            batch: MIN_BATCH,
            hist: Histogram::new(),
            bytes: 0,
            completions: 0,
            sqes: 0,
            submit_calls: 0,
            window_start: 0,
            started: false,
            prev_pending: 0,
            pressure: 0,
            light: 0,
            closed_loop_min: CLOSED_LOOP_MIN_PENDING,
            baseline: MinWindow::new(),
            floor: MinWindow::new(),
            coarse: false,
            window: alloc::vec::Vec::new(),
            window_slot: 0,
            window_slot_start: 0,
            prev_throughput: 0,
            prev_limit: 0,
            prev_mean: 0,
            best_limit: start,
            probe_start: start,
            spikes: 0,
            plateau: 0,
            settle: 0,
            steady: 0,
            stable: 0,
            warmup: 0,
            via_backoff: false,
            cap_at_best: false,
            stats: AimdStats::default(),
        })
    }

    /// Records one submit syscall that carried `sqes` SQEs.
    #[inline]
    pub fn on_submit(&mut self, sqes: u32) {
        self.sqes = self.sqes.saturating_add(u64::from(sqes));
        self.submit_calls = self.submit_calls.saturating_add(1);
    }

    /// Records one completion: its bytes always count toward throughput; its latency (submit to
    /// completion, in ns) when the caller measured it.
    #[inline]
    pub fn on_complete(&mut self, latency_ns: Option<u64>, bytes: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.completions = self.completions.saturating_add(1);
        if let Some(ns) = latency_ns {
            self.hist.record(ns);
        }
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The current batch threshold.
    pub fn batch_threshold(&self) -> u32 {
        if self.fixed_batch > 0 {
            self.fixed_batch
        } else {
            self.batch
        }
    }

    /// Whether one more request may go in flight now.
    #[inline]
    pub fn can_submit(&self, in_flight: u32) -> bool {
        in_flight < self.limit
    }

    /// Measurements and decisions so far.
    pub fn stats(&self) -> AimdStats {
        self.stats
    }

    /// The minimum and maximum limits in force.
    pub fn bounds(&self) -> (u32, u32) {
        (self.min, self.max)
    }

    fn decision(&self) -> Decision {
        let sample_every = if self.max_p99_ns > 0 || self.stats.iops < SAMPLE_ALL_BELOW_IOPS {
            1
        } else {
            SAMPLE_EVERY_FAST
        };
        Decision {
            limit: self.limit,
            batch_threshold: self.batch_threshold(),
            phase: self.phase,
            sample_every,
        }
    }

    fn reset_window(&mut self, now_ns: u64) {
        self.hist.reset();
        self.bytes = 0;
        self.completions = 0;
        self.sqes = 0;
        self.submit_calls = 0;
        self.window_start = now_ns;
    }

    /// Advances the controller to `now_ns` with `pending` requests outstanding (in flight plus
    /// queued behind the gate). Call every [`TICK_NS`]; a tick with too few samples only
    /// accumulates. Time going backwards restarts the window.
    pub fn tick(&mut self, now_ns: u64, pending: u32) -> Decision {
        if !self.started || now_ns < self.window_start {
            self.started = true;
            self.prev_pending = pending;
            self.reset_window(now_ns);
            return self.decision();
        }
        let elapsed = now_ns - self.window_start;
        if elapsed < TICK_NS / 2
            || (self.hist.count() < LOW_IOPS_MIN_SAMPLES && elapsed < MAX_SAMPLE_WINDOW_NS)
        {
            return self.decision();
        }
        let dpending = i64::from(pending) - i64::from(self.prev_pending);
        self.prev_pending = pending;
        let s = self.take_sample(elapsed, now_ns);
        if self.phase == Phase::Passthrough {
            self.passthrough_tick(&s, dpending, pending);
            return self.decision();
        }
        self.tune_batch();
        self.sqes = 0;
        self.submit_calls = 0;

        // Right after engaging, the device first drains what PASSTHROUGH admitted (for an HDD at
        // depth 256 that takes ~0.4 s): BASELINE ignores ticks whose latency is still falling.
        let draining = self.phase == Phase::Baseline
            && s.mean.is_some_and(|m| {
                self.prev_mean > 0 && m.saturating_mul(8) < self.prev_mean.saturating_mul(7)
            });
        self.prev_mean = s.mean.unwrap_or(0);
        let after_cut =
            self.phase == Phase::Backoff || (self.phase == Phase::Settling && self.via_backoff);
        let eligible = !(draining || after_cut);
        let valid = s.samples >= LOW_IOPS_MIN_SAMPLES && s.p99.is_some();
        if valid && eligible {
            self.baseline.push(s.p99.unwrap_or(0));
            // The floor is the latency of the depth in force: probing steps move the depth (and
            // on a device whose latency grows with depth while its throughput does too, the
            // latency), so they are not part of it; the window restarts when probing ends.
            if self.phase != Phase::Probing {
                self.floor.push(s.mean.unwrap_or(0));
            }
        }
        let baseline = self.baseline.min();
        let floor = self.floor.low();
        let guard = if self.max_p99_ns > 0 {
            self.max_p99_ns
        } else if baseline > 0 {
            baseline.saturating_mul(LATENCY_GUARD_MULT)
        } else {
            DEFAULT_LATENCY_GUARD_NS
        };
        self.stats.baseline_p99_ns = baseline;
        self.stats.latency_floor_ns = floor;
        self.stats.guard_ns = guard;
        // With a target, the P99 of the last second counts too: a device whose tail is rare
        // multi-ms stalls keeps each 10 ms tick's P99 under the target while the P99 over
        // seconds, the one a user measures, is far above it.
        let over_guard = s.p99.is_some_and(|p| p >= guard)
            || (self.max_p99_ns > 0 && s.window_p99.is_some_and(|p| p >= guard));
        let queueing = floor > 0
            && s.mean.is_some_and(|m| {
                u128::from(m) * u128::from(QUEUEING_RATIO_DEN)
                    >= u128::from(floor) * u128::from(QUEUEING_RATIO_NUM)
            });
        // While probing, a step that raises the latency is judged by its throughput gain (the
        // plateau rule) and by the guard, not by the floor of a smaller depth.
        // At the minimum there is nothing left to cut: a rising tick there is the device's own
        // latency (a stall, a neighbour), and treating it as one would only restart SETTLING and
        // hold off the re-probe that finds the depth again once it passes.
        let rising = valid
            && self.limit > self.min
            && (over_guard || (self.max_p99_ns == 0 && queueing && self.phase != Phase::Probing));

        // The step measured by this tick: the limit changed at the end of the previous tick.
        let dlimit = i64::from(self.limit) - i64::from(self.prev_limit);
        let productive = if self.prev_limit > 0 && dlimit > 0 {
            let gain = Fixed::from_int(i64::try_from(s.throughput).unwrap_or(i64::MAX)).sat_sub(
                Fixed::from_int(i64::try_from(self.prev_throughput).unwrap_or(i64::MAX)),
            );
            let er = gain.div_int(dlimit);
            // A gain must beat 1% and the tick's counting noise (1/sqrt(completions)).
            let noise_div = isqrt(s.completions).clamp(1, 100 / ER_EPSILON_PERCENT as u64) as i64;
            let threshold = Fixed::from_int(i64::try_from(s.throughput).unwrap_or(i64::MAX))
                .div_int(noise_div)
                .div_int(dlimit);
            Some(er > threshold)
        } else {
            None
        };
        self.prev_throughput = s.throughput;
        self.prev_limit = self.limit;

        let before = self.phase;
        match self.phase {
            Phase::Passthrough => {}
            Phase::Baseline => {
                self.warmup += u32::from(!draining);
                if self.warmup >= WARMUP_TICKS {
                    self.enter_probing();
                }
            }
            Phase::Probing => self.probing_tick(&s, rising, valid, productive),
            Phase::Backoff => self.apply_backoff(),
            Phase::Settling => {
                // Like STEADY, a cut needs SPIKE_CONFIRM rising ticks in a row: one slow tick
                // (a device stall, common on virtualised disks) must not start a cascade of
                // ×4/5 cuts down to the minimum.
                if self.spike_check(rising) {
                    self.via_backoff = true;
                    self.settle = 0;
                } else {
                    self.settle += 1;
                    if self.settle >= SETTLING_TICKS {
                        self.phase = Phase::Steady;
                        self.steady = 0;
                    }
                }
            }
            Phase::Steady | Phase::Converged => {
                // Time-based: a long (starved) tick counts for the ticks it spans.
                let spans = u32::try_from(elapsed / TICK_NS).unwrap_or(u32::MAX).max(1);
                self.steady = self.steady.saturating_add(spans);
                self.stable = self.stable.saturating_add(spans);
                if self.spike_check(rising) {
                    self.steady = 0;
                } else if pending.saturating_mul(2) < self.limit {
                    self.light += 1;
                    if self.light >= PASSTHROUGH_REENTER_TICKS {
                        self.closed_loop_min =
                            self.limit.saturating_add(1).max(CLOSED_LOOP_MIN_PENDING);
                        self.phase = Phase::Passthrough;
                        self.limit = self.max;
                        self.light = 0;
                        self.pressure = 0;
                    }
                } else {
                    self.light = 0;
                    if self.steady >= REPROBE_INTERVAL {
                        self.enter_probing();
                    } else if self.phase == Phase::Steady && self.stable >= STEADY_THRESHOLD {
                        self.phase = Phase::Converged;
                    }
                }
            }
        }
        debug_assert!(
            before.can_become(self.phase),
            "{before:?} -> {:?}",
            self.phase
        );
        self.limit = self.limit.clamp(self.min, self.max);
        self.decision()
    }

    fn take_sample(&mut self, elapsed: u64, now_ns: u64) -> Sample {
        let samples = self.hist.count();
        let per_sec = |n: u64| -> u64 {
            // 64-bit division when the product fits (always, below 18 G completions or bytes per
            // tick); the 128-bit one costs several times more in the tick.
            match n.checked_mul(1_000_000_000) {
                Some(v) => v / elapsed.max(1),
                None => {
                    let v = u128::from(n) * 1_000_000_000 / u128::from(elapsed.max(1));
                    u64::try_from(v).unwrap_or(u64::MAX)
                }
            }
        };
        let window_p99 = self.window_p99(now_ns);
        let s = Sample {
            samples,
            completions: self.completions,
            window_p99,
            p99: self.hist.control_p99_ns(),
            mean: self.hist.mean_ns(),
            throughput: per_sec(self.bytes),
        };
        self.stats.ticks = self.stats.ticks.saturating_add(1);
        self.stats.samples = samples;
        self.stats.p99_ns = s.p99;
        self.stats.mean_ns = s.mean;
        self.stats.throughput_bps = s.throughput;
        self.stats.iops = per_sec(self.completions);
        let (sqes, calls) = (self.sqes, self.submit_calls);
        self.reset_window(now_ns);
        self.sqes = sqes;
        self.submit_calls = calls;
        s
    }

    fn tune_batch(&mut self) {
        if self.fixed_batch > 0 || self.submit_calls == 0 {
            return;
        }
        let ratio = Fixed::from_ratio(
            i64::try_from(self.sqes).unwrap_or(i64::MAX),
            i64::try_from(self.submit_calls).unwrap_or(i64::MAX),
        );
        if ratio < Fixed::from_int(TARGET_SQE_RATIO) && self.batch < MAX_BATCH_THRESHOLD {
            self.batch += 1;
        } else if ratio > Fixed::from_int(SHRINK_SQE_RATIO) && self.batch > MIN_BATCH {
            self.batch -= 1;
        }
    }

    fn passthrough_tick(&mut self, s: &Sample, dpending: i64, pending: u32) {
        self.sqes = 0;
        self.submit_calls = 0;
        let growth = dpending > ENGAGE_PENDING_DELTA;
        let over_target = self.max_p99_ns > 0
            && s.samples >= LOW_IOPS_MIN_SAMPLES
            && s.p99.is_some_and(|p| p > self.max_p99_ns);
        let closed_loop = pending >= self.closed_loop_min
            && pending > self.start
            && s.p99.is_some_and(|p| p >= CLOSED_LOOP_MIN_P99_NS);
        if growth || over_target || closed_loop {
            self.pressure += 1;
            if self.pressure >= ENGAGE_TICKS {
                self.engage();
            }
        } else {
            self.pressure = 0;
        }
    }

    fn engage(&mut self) {
        self.phase = Phase::Baseline;
        self.limit = self.start;
        self.best_limit = self.start;
        self.pressure = 0;
        self.light = 0;
        self.warmup = 0;
        self.spikes = 0;
        self.plateau = 0;
        self.settle = 0;
        self.steady = 0;
        self.stable = 0;
        self.via_backoff = false;
        self.baseline.clear();
        self.floor.clear();
        self.prev_throughput = 0;
        self.prev_limit = 0;
        self.stats.engagements = self.stats.engagements.saturating_add(1);
    }

    fn enter_probing(&mut self) {
        // The climb from BASELINE takes proportional steps; re-probes from a settled depth
        // check their neighbourhood one request at a time.
        self.coarse = self.phase == Phase::Baseline;
        self.phase = Phase::Probing;
        self.plateau = 0;
        self.spikes = 0;
        self.via_backoff = false;
        self.best_limit = self.limit;
        self.probe_start = self.limit;
        // The first probing tick has no step to judge: it takes one.
        self.prev_limit = self.limit;
    }

    /// Counts a rising tick; the second in a row moves to BACKOFF.
    fn spike_check(&mut self, rising: bool) -> bool {
        if rising {
            self.spikes += 1;
            if self.spikes >= SPIKE_CONFIRM {
                self.phase = Phase::Backoff;
                self.spikes = 0;
                return true;
            }
        } else {
            self.spikes = 0;
        }
        false
    }

    fn probing_tick(&mut self, s: &Sample, rising: bool, valid: bool, productive: Option<bool>) {
        if self.spike_check(rising) {
            // The steps past the last productive one only added latency: the cut goes at least
            // back to it.
            self.cap_at_best = true;
            return;
        }
        if s.completions == 0 {
            return;
        }
        let under_target = self.max_p99_ns > 0
            && valid
            && s.p99.is_some_and(|p| p < self.max_p99_ns)
            && s.window_p99.is_none_or(|p| p < self.max_p99_ns);
        match productive {
            Some(true) => {
                self.best_limit = self.limit;
                self.plateau = 0;
                self.step_up();
            }
            _ if under_target && self.limit < self.max => {
                self.plateau = 0;
                self.step_up();
            }
            None if self.limit < self.max => self.step_up(),
            _ => {
                self.plateau += 1;
                if self.plateau >= PLATEAU_CONFIRM {
                    let settled = self.best_limit.clamp(self.min, self.max);
                    if settled != self.probe_start {
                        // A re-probe that found a new depth restarts the count toward CONVERGED;
                        // one that came back to where it started does not.
                        self.stable = 0;
                    }
                    self.limit = settled;
                    self.plateau = 0;
                    self.spikes = 0;
                    self.via_backoff = false;
                    self.phase = Phase::Settling;
                    self.settle = 0;
                    // The floor restarts at the settled depth.
                    self.floor.clear();
                } else {
                    self.step_up();
                }
            }
        }
    }

    fn step_up(&mut self) {
        let step = if self.coarse {
            AIMD_INCREASE.max(self.limit / PROBE_STEP_DIV)
        } else {
            AIMD_INCREASE
        };
        self.limit = self.limit.saturating_add(step).min(self.max);
    }

    fn apply_backoff(&mut self) {
        self.clear_window();
        let cut = Fixed::from_int(i64::from(self.limit))
            .scale(DECREASE_NUM, DECREASE_DEN)
            .to_int();
        let mut cut = u32::try_from(cut).unwrap_or(self.min);
        if self.cap_at_best {
            cut = cut.min(self.best_limit);
            self.cap_at_best = false;
        }
        self.limit = cut.max(self.min);
        self.plateau = 0;
        self.stable = 0;
        self.via_backoff = true;
        self.phase = Phase::Settling;
        self.settle = 0;
        self.stats.backoffs = self.stats.backoffs.saturating_add(1);
    }

    /// Replaces the max-P99 latency target (0: none, the controller derives its guard from the
    /// baseline P99 again). Takes effect at the next [`Aimd::tick`]: the guard, the engage rule
    /// and the sampling rate of the next [`Decision`] all follow the new target. The baseline
    /// window is kept, so dropping a target goes straight back to the derived guard.
    pub fn set_max_p99_ns(&mut self, ns: u64) {
        self.max_p99_ns = ns;
        self.clear_window();
    }

    /// Forgets the target window's samples (after a cut they describe a depth no longer used).
    fn clear_window(&mut self) {
        for h in &mut self.window {
            h.reset();
        }
    }

    /// Adds this tick's samples to the target window and returns the window's P99 (controller
    /// rule), `None` without a target or with too few samples.
    fn window_p99(&mut self, now_ns: u64) -> Option<u64> {
        if self.max_p99_ns == 0 {
            return None;
        }
        if self.window.is_empty() {
            self.window = (0..TARGET_WINDOW_SLOTS).map(|_| Histogram::new()).collect();
            self.window_slot_start = now_ns;
        }
        if now_ns.saturating_sub(self.window_slot_start)
            >= TARGET_WINDOW_NS / TARGET_WINDOW_SLOTS as u64
        {
            self.window_slot = (self.window_slot + 1) % TARGET_WINDOW_SLOTS;
            self.window[self.window_slot].reset();
            self.window_slot_start = now_ns;
        }
        self.window[self.window_slot].merge(&self.hist);
        let mut all = Histogram::new();
        for h in &self.window {
            all.merge(h);
        }
        if all.count() < LOW_IOPS_MIN_SAMPLES {
            return None;
        }
        all.control_p99_ns()
    }

    /// Replaces the fewest requests in flight the controller may choose. `n` is clamped into
    /// [1, maximum]; the limit, the limit AIMD starts from when it engages, and the best and
    /// probe-start limits it remembers are then re-clamped into [minimum, maximum], so the next
    /// [`Decision`] never goes below the new minimum.
    pub fn set_min_in_flight(&mut self, n: u32) {
        self.min = n.clamp(1, self.max);
        self.limit = self.limit.clamp(self.min, self.max);
        self.start = self.start.clamp(self.min, self.max);
        self.best_limit = self.best_limit.clamp(self.min, self.max);
        self.probe_start = self.probe_start.clamp(self.min, self.max);
    }

    /// Replaces the batch threshold: `n > 0` fixes it (clamped to at most
    /// [`MAX_BATCH_THRESHOLD`] × 1024, the largest [`Aimd::new`] accepts), 0 hands it back to
    /// tuning from the SQEs-per-submit ratio, which resumes from the last tuned value.
    pub fn set_batch_threshold(&mut self, n: u32) {
        self.fixed_batch = n.min(MAX_BATCH_THRESHOLD * 1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Feeds one 10 ms tick of `n` completions of `lat` ns and `bytes` each, then ticks.
    fn tick_with(
        a: &mut Aimd,
        t: &mut u64,
        n: u64,
        lat: u64,
        bytes: u64,
        pending: u32,
    ) -> Decision {
        for _ in 0..n {
            a.on_complete(Some(lat), bytes);
        }
        *t += TICK_NS;
        a.tick(*t, pending)
    }

    fn started(opts: AimdOptions) -> (Aimd, u64) {
        let mut a = Aimd::new(opts).unwrap();
        a.tick(0, 0);
        (a, 0)
    }

    #[test]
    fn options_are_validated() {
        assert!(Aimd::new(AimdOptions::new(0)).is_err());
        let o = AimdOptions {
            min_in_flight: 9,
            ..AimdOptions::new(8)
        };
        assert_eq!(
            Aimd::new(o).unwrap_err(),
            "min_in_flight exceeds max_in_flight"
        );
        let o = AimdOptions {
            initial_in_flight: 9,
            ..AimdOptions::new(8)
        };
        assert!(Aimd::new(o).is_err());
        let o = AimdOptions {
            initial_in_flight: 2,
            min_in_flight: 3,
            ..AimdOptions::new(8)
        };
        assert!(Aimd::new(o).is_err());
        // A tiny maximum caps the default minimum.
        let a = Aimd::new(AimdOptions::new(2)).unwrap();
        assert_eq!(a.bounds(), (2, 2));
        assert_eq!(a.limit(), 2);
        assert_eq!(a.phase(), Phase::Passthrough);
    }

    #[test]
    fn light_load_stays_in_passthrough() {
        let (mut a, mut t) = started(AimdOptions::new(256));
        for _ in 0..1000 {
            let d = tick_with(&mut a, &mut t, 100, 80_000, 4096, 8);
            assert_eq!(d.phase, Phase::Passthrough);
            assert_eq!(d.limit, 256);
        }
        // Stats are computed in passthrough too, from every completion's bytes.
        let s = a.stats();
        assert_eq!(s.iops, 10_000);
        assert_eq!(s.throughput_bps, 10_000 * 4096);
        assert_eq!(s.engagements, 0);
    }

    #[test]
    fn closed_loop_pending_engages_after_eight_ticks() {
        let (mut a, mut t) = started(AimdOptions::new(256));
        for i in 1..=ENGAGE_TICKS {
            let d = tick_with(&mut a, &mut t, 100, 80_000, 4096, CLOSED_LOOP_MIN_PENDING);
            let want = if i < ENGAGE_TICKS {
                Phase::Passthrough
            } else {
                Phase::Baseline
            };
            assert_eq!(d.phase, want, "tick {i}");
        }
        assert_eq!(a.limit(), DEFAULT_MIN_IN_FLIGHT);
        assert_eq!(a.stats().engagements, 1);

        // One short of the closed-loop threshold never engages.
        let (mut b, mut t) = started(AimdOptions::new(256));
        for _ in 0..100 {
            let d = tick_with(
                &mut b,
                &mut t,
                100,
                80_000,
                4096,
                CLOSED_LOOP_MIN_PENDING - 1,
            );
            assert_eq!(d.phase, Phase::Passthrough);
        }
    }

    #[test]
    fn growing_pending_engages() {
        let (mut a, mut t) = started(AimdOptions::new(1024));
        let mut pending = 0;
        for i in 1..=ENGAGE_TICKS {
            pending += 17;
            let d = tick_with(&mut a, &mut t, 100, 80_000, 4096, pending);
            if i == 1 {
                // pending 17 < 32: only the growth rule can fire.
                assert_eq!(d.phase, Phase::Passthrough);
            }
        }
        assert_eq!(a.phase(), Phase::Baseline);
    }

    #[test]
    fn p99_over_target_engages() {
        let opts = AimdOptions {
            max_p99_ns: MS,
            ..AimdOptions::new(256)
        };
        let (mut a, mut t) = started(opts);
        for _ in 0..ENGAGE_TICKS {
            tick_with(&mut a, &mut t, 100, 2 * MS, 4096, 8);
        }
        assert_eq!(a.phase(), Phase::Baseline);
    }

    #[test]
    fn few_samples_accumulate_until_trusted_or_a_second_passed() {
        let (mut a, mut t) = started(AimdOptions::new(256));
        for _ in 0..19 {
            tick_with(&mut a, &mut t, 1, MS, 4096, 100);
        }
        assert_eq!(a.stats().ticks, 0, "fewer than 20 samples: not evaluated");
        tick_with(&mut a, &mut t, 1, MS, 4096, 100);
        assert_eq!(a.stats().ticks, 1, "20 samples: evaluated");
        assert_eq!(a.stats().iops, 100);
        assert_eq!(a.stats().p99_ns, Some(1_025_000));
        // An idle ring is evaluated once a second, without a P99.
        for _ in 0..99 {
            tick_with(&mut a, &mut t, 0, MS, 4096, 0);
        }
        assert_eq!(a.stats().ticks, 1);
        tick_with(&mut a, &mut t, 0, MS, 4096, 0);
        assert_eq!(a.stats().ticks, 2);
        assert_eq!(a.stats().p99_ns, None);
        assert_eq!(a.stats().iops, 0);
    }

    /// Engages a controller (closed loop) and runs BASELINE to the first PROBING tick.
    fn probing(opts: AimdOptions) -> (Aimd, u64) {
        let (mut a, mut t) = started(opts);
        while a.phase() != Phase::Probing {
            tick_with(&mut a, &mut t, 100, 80_000, 4096, 512);
        }
        (a, t)
    }

    #[test]
    fn probing_climbs_while_throughput_grows_and_settles_at_the_knee() {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        let knee = 20u32;
        let mut limits = [0u32; 64];
        for l in limits.iter_mut() {
            // Throughput grows linearly up to the knee, then stays flat.
            let n = u64::from(a.limit().min(knee)) * 100;
            *l = tick_with(&mut a, &mut t, n, 80_000, 4096, 512).limit;
            if a.phase() == Phase::Settling {
                break;
            }
        }
        assert_eq!(a.phase(), Phase::Settling, "{limits:?}");
        assert_eq!(
            a.limit(),
            knee,
            "rolled back to the last productive step: {limits:?}"
        );
        // The plateau is confirmed PLATEAU_CONFIRM steps past the knee, each at most 1/8 larger.
        assert!(limits.iter().all(|&l| l <= knee * 3 / 2), "{limits:?}");
    }

    #[test]
    fn two_rising_ticks_back_off_by_a_fifth() {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        // Climb a little with growing throughput.
        for _ in 0..20 {
            let n = u64::from(a.limit()) * 100;
            tick_with(&mut a, &mut t, n, 80_000, 4096, 512);
        }
        let n = u64::from(a.limit()) * 100;
        // Latency far above the guard (10 × baseline P99) for two ticks.
        tick_with(&mut a, &mut t, n, 10 * MS, 4096, 512);
        assert_eq!(a.phase(), Phase::Probing, "one rising tick is noise");
        tick_with(&mut a, &mut t, n, 10 * MS, 4096, 512);
        assert_eq!(a.phase(), Phase::Backoff);
        // The cut is applied on the next tick, to the limit in force when the spike was confirmed.
        let before = a.limit();
        let d = tick_with(&mut a, &mut t, n, 10 * MS, 4096, 512);
        assert_eq!(d.limit, (before * 4 / 5).max(DEFAULT_MIN_IN_FLIGHT));
        assert_eq!(d.phase, Phase::Settling);
        assert_eq!(a.stats().backoffs, 1);
        // Still rising in SETTLING: back off again at once, never below the minimum.
        for _ in 0..100 {
            let d = tick_with(&mut a, &mut t, n, 10 * MS, 4096, 512);
            assert!(d.limit >= DEFAULT_MIN_IN_FLIGHT);
        }
        assert_eq!(a.limit(), DEFAULT_MIN_IN_FLIGHT);
    }

    #[test]
    fn queueing_delay_counts_as_rising() {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        for _ in 0..40 {
            let n = u64::from(a.limit().min(16)) * 100;
            tick_with(&mut a, &mut t, n, 80_000, 4096, 512);
        }
        // Settled around 16; now the same depth sees twice the latency (a neighbour).
        let settled = a.limit();
        for _ in 0..3 {
            tick_with(&mut a, &mut t, 800, 160_000, 4096, 512);
        }
        assert!(a.limit() < settled, "{} !< {settled}", a.limit());
    }

    #[test]
    fn steady_reprobes_and_light_load_returns_to_passthrough() {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        let knee = 40u32;
        let mut phases = std::vec::Vec::new();
        for _ in 0..400 {
            let n = u64::from(a.limit().min(knee)) * 100;
            let d = tick_with(&mut a, &mut t, n, 80_000, 4096, 512);
            phases.push(d.phase);
        }
        assert!(phases.contains(&Phase::Steady));
        let steady_then_probe = phases
            .windows(2)
            .filter(|w| w == &[Phase::Steady, Phase::Probing])
            .count();
        assert!(
            steady_then_probe >= 2,
            "re-probes every {REPROBE_INTERVAL} ticks"
        );
        assert!(
            a.limit() >= knee - 1 && a.limit() <= knee + PLATEAU_CONFIRM,
            "{}",
            a.limit()
        );
        // Load drops under half the limit: back to passthrough within 10 ticks of STEADY.
        for _ in 0..200 {
            tick_with(&mut a, &mut t, 100, 80_000, 4096, 2);
            if a.phase() == Phase::Passthrough {
                break;
            }
        }
        assert_eq!(a.phase(), Phase::Passthrough);
        assert_eq!(a.limit(), 256);
        // The closed-loop rule now needs more pending than the limit the device settled at.
        let engaged_before = a.stats().engagements;
        for _ in 0..50 {
            tick_with(&mut a, &mut t, 100, 80_000, 4096, 40);
        }
        assert_eq!(a.phase(), Phase::Passthrough);
        for _ in 0..ENGAGE_TICKS {
            tick_with(&mut a, &mut t, 100, 80_000, 4096, 60);
        }
        assert_eq!(a.phase(), Phase::Baseline);
        assert_eq!(a.stats().engagements, engaged_before + 1);
    }

    #[test]
    fn an_unchanged_limit_converges_and_keeps_reprobing() {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        let knee = 20u32;
        let mut converged_at = None;
        let mut probes_after = 0;
        let mut prev = a.phase();
        for i in 0..1200 {
            let n = u64::from(a.limit().min(knee)) * 100;
            let d = tick_with(&mut a, &mut t, n, 80_000, 4096, 512);
            if d.phase == Phase::Converged && converged_at.is_none() {
                converged_at = Some(i);
            }
            if converged_at.is_some() && prev == Phase::Converged && d.phase == Phase::Probing {
                probes_after += 1;
            }
            prev = d.phase;
        }
        let at = converged_at.expect("never converged");
        assert!(at <= 700, "converged after {at} ticks");
        assert!(
            probes_after >= 3,
            "re-probes from CONVERGED: {probes_after}"
        );
        assert!(a.limit() >= knee && a.limit() <= knee + PLATEAU_CONFIRM);
    }

    #[test]
    fn batch_threshold_follows_sqes_per_submit() {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        let start = a.batch_threshold();
        for _ in 0..10 {
            a.on_submit(1); // 1 SQE per syscall: batch more
            tick_with(&mut a, &mut t, 100, 80_000, 4096, 512);
        }
        assert_eq!(a.batch_threshold(), start + 10);
        for _ in 0..5 {
            for _ in 0..10 {
                a.on_submit(20); // 20 per syscall: batch less
            }
            tick_with(&mut a, &mut t, 100, 80_000, 4096, 512);
        }
        assert_eq!(a.batch_threshold(), start + 5);
        let fixed = AimdOptions {
            batch_threshold: 7,
            ..AimdOptions::new(256)
        };
        let (mut b, mut t) = probing(fixed);
        b.on_submit(1);
        tick_with(&mut b, &mut t, 100, 80_000, 4096, 512);
        assert_eq!(b.batch_threshold(), 7);
    }

    #[test]
    fn clock_going_backwards_restarts_the_window() {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        let ticks = a.stats().ticks;
        let d = a.tick(t - 5 * MS, 512);
        assert_eq!(d.limit, a.limit());
        assert_eq!(a.stats().ticks, ticks);
        t -= 5 * MS;
        tick_with(&mut a, &mut t, 100, 80_000, 4096, 512);
        assert_eq!(a.stats().ticks, ticks + 1);
    }

    #[test]
    fn every_edge_taken_is_documented() {
        use Phase::*;
        let all = [
            Passthrough,
            Baseline,
            Probing,
            Steady,
            Backoff,
            Settling,
            Converged,
        ];
        for p in all {
            assert!(p.can_become(p));
        }
        assert!(!Passthrough.can_become(Probing));
        assert!(!Baseline.can_become(Backoff));
        assert!(!Backoff.can_become(Probing));
    }

    #[test]
    fn set_max_p99_ns_replaces_the_target() {
        let (mut a, mut t) = started(AimdOptions::new(256));
        // No target: 2 ms completions at light load never engage.
        for _ in 0..2 * ENGAGE_TICKS {
            tick_with(&mut a, &mut t, 100, 2 * MS, 4096, 8);
        }
        assert_eq!(a.phase(), Phase::Passthrough);
        // A 1 ms target: the same load is over it, so the controller engages.
        a.set_max_p99_ns(MS);
        for _ in 0..ENGAGE_TICKS {
            tick_with(&mut a, &mut t, 100, 2 * MS, 4096, 8);
        }
        assert_eq!(a.phase(), Phase::Baseline);
        for _ in 0..WARMUP_TICKS {
            tick_with(&mut a, &mut t, 100, 2 * MS, 4096, 512);
        }
        assert_eq!(a.stats().guard_ns, MS, "the target is the guard");
        // Back to 0: the guard is derived from the baseline P99 again (10 × ~2 ms).
        a.set_max_p99_ns(0);
        tick_with(&mut a, &mut t, 100, 2 * MS, 4096, 512);
        let guard = a.stats().guard_ns;
        assert_eq!(guard, a.stats().baseline_p99_ns * LATENCY_GUARD_MULT);
        assert!(guard > 10 * MS, "{guard}");
    }

    #[test]
    fn set_min_in_flight_clamps_and_reclamps_the_limit() {
        let (mut a, mut t) = probing(AimdOptions::new(64));
        assert_eq!(a.bounds(), (DEFAULT_MIN_IN_FLIGHT, 64));
        assert!(a.limit() < 16, "{}", a.limit());
        // Raising the minimum above the limit lifts the limit with it.
        a.set_min_in_flight(16);
        assert_eq!(a.bounds(), (16, 64));
        assert_eq!(a.limit(), 16);
        // And the controller never decides below it, even after backing off.
        for _ in 0..50 {
            let d = tick_with(&mut a, &mut t, 1600, 10 * MS, 4096, 512);
            assert!(d.limit >= 16, "{d:?}");
        }
        assert!(a.stats().backoffs > 0);
        // Out of range: clamped into [1, max].
        a.set_min_in_flight(0);
        assert_eq!(a.bounds(), (1, 64));
        a.set_min_in_flight(1000);
        assert_eq!(a.bounds(), (64, 64));
        assert_eq!(a.limit(), 64);
        // A new engagement starts at (at least) the new minimum.
        let mut b = Aimd::new(AimdOptions::new(256)).unwrap();
        b.set_min_in_flight(40);
        let mut t = 0;
        b.tick(0, 0);
        for _ in 0..ENGAGE_TICKS {
            tick_with(&mut b, &mut t, 100, 80_000, 4096, 512);
        }
        assert_eq!(b.phase(), Phase::Baseline);
        assert_eq!(b.limit(), 40);
    }

    #[test]
    fn set_batch_threshold_fixes_and_releases_it() {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        let tuned = a.batch_threshold();
        a.set_batch_threshold(9);
        assert_eq!(a.batch_threshold(), 9);
        // Fixed: a 1-SQE-per-submit tick does not move it.
        a.on_submit(1);
        let d = tick_with(&mut a, &mut t, 100, 80_000, 4096, 512);
        assert_eq!(d.batch_threshold, 9);
        // 0: tuning resumes from the last tuned value.
        a.set_batch_threshold(0);
        assert_eq!(a.batch_threshold(), tuned);
        a.on_submit(1);
        let d = tick_with(&mut a, &mut t, 100, 80_000, 4096, 512);
        assert_eq!(d.batch_threshold, tuned + 1);
        // Clamped to what `Aimd::new` accepts.
        a.set_batch_threshold(u32::MAX);
        assert_eq!(a.batch_threshold(), MAX_BATCH_THRESHOLD * 1024);
    }
}
