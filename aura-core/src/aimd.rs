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
//! - **BASELINE**: holds the starting limit to learn the device below its knee: with a target,
//!   [`TARGET_WARMUP_TICKS`] ticks under the target (at most [`WARMUP_TICKS`] in all, rule 9);
//!   without one, [`REFERENCE_TICKS`] ticks, which are also the knee
//!   search's first window (rule 7). Then PROBING.
//! - **PROBING** without a target: the knee search of rule 7 (each depth measured over a window
//!   of several ticks, a geometric climb while throughput gains, a confirming step, then the
//!   smallest measured depth with [`KNEE_SHARE_PERCENT`] % of the best), then SETTLING at the
//!   depth found. Latency does not stop it: a step is judged by what it completes. It goes to
//!   each depth it measures at once, at most doubling the limit in a tick.
//! - **PROBING** with a max-P99 target: increase every tick by +[`AIMD_INCREASE`] or
//!   1/[`PROBE_STEP_DIV`] of the limit, whichever is more (rule 5). Each step's efficiency ratio
//!   ER = Δthroughput / Δlimit is compared with [`ER_EPSILON_PERCENT`]% of the throughput: a
//!   step that gained more is kept, and steps also continue while the P99 is under the target;
//!   [`PLATEAU_CONFIRM`] flat steps in a row mean the knee is behind us: the limit returns to
//!   the last productive step and the phase goes to SETTLING. [`SPIKE_CONFIRM`] rising ticks in
//!   a row go to BACKOFF.
//! - **BACKOFF** (one tick): multiplicative decrease, limit × 4/5 (never below the minimum), then
//!   SETTLING. Without a target (rule 8) the phase that confirmed the rise has first measured
//!   the throughput at the depth in force for [`REFERENCE_TICKS`] ticks; a trim (rule 7) cuts
//!   × [`TRIM_NUM`]/[`TRIM_DEN`] instead.
//! - **SETTLING**: [`SETTLING_TICKS`] ticks for the device to drain to the new depth;
//!   [`SPIKE_CONFIRM`] rising ticks in a row go back to BACKOFF (the original cut again on one);
//!   then STEADY. Without a target, after a cut it first measures the throughput at the new
//!   depth; a cut that does not clearly keep [`CUT_KEEP_PERCENT`] % of it is undone (STEADY for a
//!   tick, then PROBING climbs back to the depth before the cut: rule 8). After a knee search
//!   that stepped over a sharp knee it measures the depth and trims (rule 7).
//! - **STEADY**: holds the limit. Rising ticks go to BACKOFF; after [`REPROBE_INTERVAL`] ticks it
//!   probes again (PROBING), so a knee that moved up is found (without a target, not at the
//!   maximum, where there is nothing above to find); without a target, [`SPIKE_CONFIRM`] ticks in
//!   a row whose mean latency is under [`FALLING_RATIO_NUM`]/[`FALLING_RATIO_DEN`] of the floor
//!   (the device got faster) start a knee search as from a cold start; after
//!   [`STEADY_THRESHOLD`] ticks with an unchanged limit it is CONVERGED.
//! - **CONVERGED**: as STEADY (spikes back off, re-probes every [`REPROBE_INTERVAL`] ticks).
//! - From STEADY or CONVERGED, when pending stays under half the limit for
//!   [`PASSTHROUGH_REENTER_TICKS`] ticks (the gate no longer binds), back to PASSTHROUGH.
//!
//! A tick is "rising" when the limit is above the minimum (nothing is left to cut at it), it has
//! at least [`LOW_IOPS_MIN_SAMPLES`] latency samples and
//! - with a max-P99 target: its P99, or the P99 of the last [`TARGET_WINDOW_NS`], is at or above
//!   the target;
//! - without one: its P99 is at or above [`LATENCY_GUARD_MULT`] × the baseline P99 (the lowest P99
//!   of the last [`BASELINE_WINDOW`] eligible ticks, restarted when a knee search settles, so it
//!   is the P99 of the depth in force; [`DEFAULT_LATENCY_GUARD_NS`] before any), or its mean
//!   latency is at least [`QUEUEING_RATIO_NUM`]/[`QUEUEING_RATIO_DEN`] of the latency floor
//!   (aura's queueing signal, below). Without a target rising ticks are not looked at while
//!   probing.
//!
//! A tick with fewer than [`LOW_IOPS_MIN_SAMPLES`] latency samples is not evaluated: it keeps
//! accumulating, for up to [`MAX_SAMPLE_WINDOW_NS`], so slow devices (an HDD does ~500 IOPS) get
//! longer ticks whose P99 can be trusted. Interval rules (re-probe, converged) count time, not
//! evaluated ticks, so long ticks do not stretch them.
//!
//! # Where aura departs from the original controller, on purpose
//!
//! The constants are the original's. These rules are not, because the original's versions fail
//! the cases this controller exists for (each failure is reproduced in this crate's tests or in
//! `tests/aimd_sim.rs`):
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
//!    counts flat steps (with a target) or judges windows (without, rule 7), and settles on the
//!    knee instead of the spike.
//! 3. **Queueing backs off.** A guard of 10 × the baseline P99 ignores a device that got two or
//!    four times slower (a noisy neighbour, a workload whose knee moved down). aura also counts a
//!    tick as rising when its mean latency is ≥ 1.25 × the latency floor (the lowest mean latency
//!    of the eligible ticks since probing last settled, i.e. at the depth in force or above it):
//!    by Little's law that many requests are waiting in the device's queue rather than being
//!    served. Probing ticks neither feed the floor nor are judged by it: a device whose latency
//!    grows with depth while its throughput grows too (a virtio disk: 35 µs at depth 1, 250 µs
//!    at 32) is climbed as long as the steps pay. Without a target the resulting cut is checked
//!    (rule 8).
//! 4. **Re-probing never stops.** The original re-probed only after a backoff and froze once
//!    CONVERGED, so a knee that moved up was never found. aura re-probes every
//!    [`REPROBE_INTERVAL`] ticks in STEADY and CONVERGED (without a target: one window at the
//!    depth in force, one a 1/[`PROBE_STEP_DIV`] step above; the depth moves only on a clear
//!    gain).
//! 5. **Steps grow with the limit.** A +1 step at depth 40 adds 2.5 % of depth; on a device
//!    whose throughput still grows there (a virtio disk does up to ~128) it gains about 1 %,
//!    under a 10 ms tick's counting noise at 50 k IOPS (1/√500 ≈ 4.5 %), so +1 probing stalls
//!    far below the knee. With a target the climb from BASELINE steps by 1/[`PROBE_STEP_DIV`] of
//!    the limit (at least 1) and re-probes keep +1 steps; without one, rule 7's steps are larger
//!    still, and re-probes step by 1/[`PROBE_STEP_DIV`].
//! 6. **A P99 target is held over a second, not only per tick.** A disk whose tail is rare
//!    multi-ms stalls keeps most 10 ms ticks' P99 under a 2 ms target while the P99 over seconds
//!    is twice it. With a target, a tick is also rising when the P99 of the last
//!    [`TARGET_WINDOW_NS`] reaches it (the window restarts at every cut, so one episode causes
//!    one cut, not a cascade), and probing steps up only while both are under it.
//! 7. **Without a target, the knee is searched for by throughput, over windows.** The goal is the
//!    depth where throughput stops improving. Judged per tick with a latency guard, a soft-knee
//!    device (a virtio disk: +9 % from depth 32 to 64, +6 % to 128, then flat, while its P99
//!    goes from 0.4 ms to 4–7 ms in bursts of multi-ms stalls) was held at depth 4–28, 0.66–0.86
//!    × its best throughput: each step's gain was under a tick's noise, and the guard (10 × the
//!    P99 of depth 4) and rule 3 read Little's-law latency growth as a spike. Now:
//!    - each depth is measured over a window of [`KNEE_WINDOW_MIN_TICKS`] to
//!      [`KNEE_WINDOW_MAX_TICKS`] ticks and at least [`KNEE_MIN_COMPLETIONS`] completions,
//!      extended while its mean is within two standard errors (from the spread of its ticks) of
//!      the threshold it is judged against; the climb only closes a window early when it shows
//!      a gain of [`KNEE_DOUBLE_PERCENT`] % (far below the knee, where time is dearest), and
//!      such a rough window can guide the climb but not set the best nor be the knee;
//!    - the climb (from BASELINE's window at the start depth) doubles the depth while a step
//!      gains ≥ [`KNEE_DOUBLE_PERCENT`] %, adds half of it while it gains ≥
//!      [`KNEE_GAIN_PERCENT`] % over the best window so far, going to each new depth at once
//!      (a closed-loop client fills it within microseconds); a step that did not pay is
//!      confirmed by one more of the same size (on a soft knee two steps gain twice as much,
//!      clear of noise; on a flat plateau noise rarely shows twice a gain it does not have);
//!    - it then settles on the shallowest measured depth with [`KNEE_SHARE_PERCENT`] % of the
//!      best window (its mean less two standard errors within [`KNEE_NOISE_CAP_PERCENT`] %, for
//!      the slow swings a window's spread does not show); when the depth below it had under
//!      [`TRIM_BELOW_PERCENT`] % (a step jumped over a sharp knee) where the line between the two
//!      reaches the share, and from there verified × [`TRIM_NUM`]/[`TRIM_DEN`] cuts ("trims",
//!      rule 8's check) go down while they clearly cost nothing; the guard and the floor restart
//!      at the depth settled on;
//!    - a search from a cold start or after the device got faster first ends in paired
//!      comparisons, "duels" (a trim, when due, follows the depth they keep): a measured depth
//!      with [`DUEL_FROM_PERCENT`] % of the best window and twice that depth alternate for up
//!      to [`DUEL_LEGS`] legs of [`DUEL_LEG_TICKS`] measured ticks (fewer when
//!      [`DUEL_EARLY_PAIRS`] pairs already decide), and the shallower one wins
//!      when it completed [`DUEL_KEEP_PERMILLE`] ‰ of the deeper one's throughput (doubling
//!      the depth buys under 1.5 %). A binary search over such depths (at most [`DUEL_MAX`]
//!      duels; after a sharp-knee jump only depths up to the one estimated inside it) finds
//!      the shallowest winner, where the search settles; if none won, on the deeper depth of
//!      the deepest loser's duel.
//!      Windows measured at different moments differ by the disk's slow swings as much as by
//!      depth (on the virtio disk the search settled anywhere from 72 to 256 from run to run);
//!      legs that alternate every 40 ms see the same swings;
//!    - re-probes (rule 4) move the depth only on a clear gain, and a device too slow for
//!      [`KNEE_MIN_COMPLETIONS`] in the longest window (a disk at a few hundred IOPS) keeps the
//!      depth the search started from.
//!
//!    Simulated (`tests/aimd_sim.rs`, the [`crate::sim::device::virtio`] model with its noise):
//!    the search settles at depth 128–144 (seeds 1–12) in 0.9–2.2 s, where rules 1–6 alone held
//!    depth 17 and 76 %, and the search without duels at 96–256 with 96.7–99.9 % of the best. Sharp knees settle on the knee (NVMe 64, SATA
//!    32, network 16) within 0.6 s.
//! 8. **Without a target, a cut must not cost throughput.** Latency that rises at a fixed depth
//!    is a device that got slower (a neighbour, a phase) — or a burst of stalls, or a neighbour
//!    that more depth out-competes. A confirmed rise first measures the depth in force under the
//!    new conditions ([`REFERENCE_TICKS`] ticks), BACKOFF cuts ×4/5, and SETTLING measures the
//!    cut depth; unless it clearly completes [`CUT_KEEP_PERCENT`] % of what the deeper one did,
//!    the depth was paying for its latency: the cut is undone (the limit climbs back in PROBING
//!    steps) and the new latency becomes the floor. A device whose knee really moved down loses
//!    nothing to each cut and is followed down cut by cut; and a device that got faster (mean
//!    latency under 3/4 of the floor) starts a knee search at once.
//!
//! 9. **A P99 target is a run's P99: the depth that went over it is remembered.** The P99 a
//!    user measures is over the whole run, so every tick spent above the depth the device's
//!    tail allows counts. Simulated on the virtio model with a 1 ms target (5 s from a cold
//!    start), rules 1–6 gave a run P99 of 2.6 ms at 0.83 × the best static depth meeting it:
//!    80 ms at depth 256 before engaging put 2 % of the run over the target, the 1 s window
//!    still held those samples and cut the climb back to depth 4, and every re-probe climbed
//!    into the stall storms again. With a target now:
//!    - a tick over it while a closed-loop client keeps ≥ [`CLOSED_LOOP_MIN_PENDING`] pending
//!      engages at once ([`TARGET_ENGAGE_TICKS`]); the target window restarts on engaging and
//!      when the first climb starts; BASELINE counts only ticks under the target (what
//!      PASSTHROUGH admitted drains for several ticks), [`TARGET_WARMUP_TICKS`] of them;
//!    - a cut that ends a probe (confirmed while PROBING, or in the SETTLING right after it)
//!      sets a ceiling: the lowest depth that had a tick over the target since the probe began.
//!      Re-probes stay under it for [`TARGET_CEILING_MIN_NS`], a hold that doubles (to
//!      [`TARGET_CEILING_MAX_NS`]) when the depth above a lifted ceiling goes over again
//!      within a hold; the gap the ×4/5 cut left under it is re-probed at once, and a probe
//!      that reaches it under the target settles there. Cuts at a depth held for a while (a
//!      stall episode of the device) set no ceiling, which would only walk it down.
//!
//!    Simulated: run P99 0.65–0.9 ms at 0.97–0.99 × the best static depth (6 seeds).
//! 10. **With a target, each depth's share of the tail is remembered.** A run's P99 is under
//!     the target when under 1 % of its completions are over it. Per depth band (half an
//!     octave wide), the controller counts completions and those over the target, decaying by
//!     1/[`TAIL_DECAY_TICKS`] per tick (~10 s). A band that has seen [`TAIL_MIN_SAMPLES`]
//!     completions is judged: over budget when [`TAIL_BUDGET_PERMILLE`] ‰ of them were over
//!     the target.
//!     - A rising tick at a depth whose band is within budget cuts nothing: a stall episode of
//!       the device, which the band's share already counts and a cut could not shorten (on
//!       this VM's disk such episodes walked the depth down by ×4/5 cuts, from 31 to 12 in 3 s,
//!       and each re-probe from there climbed into the stalls again). Once the episodes add up
//!       to the budget the band is over it, and rules 1–6 cut again.
//!     - A probe, or the re-probe that would start it, never steps into a band over budget
//!       whose share is also more than twice the share of the depth in force (a tail the
//!       device has at every depth is no reason to stay low): it holds where it is. At the
//!       minimum the band in force never holds it by itself (the tail there is the device's
//!       own), and a cut from under twice the minimum sets no ceiling (rule 9): a stall storm
//!       right after engaging used to pin a 3.5 s run at depth 4 both ways.
//!     - The climb from BASELINE takes +1 steps once a tick's P99 reaches half the target, so
//!       it does not overshoot far into the depths where the tail begins.
//!
//!     Measured on the virtio disk with `BFFIO --target_p99=1ms` (3 s runs, CPU 0 and 1): the
//!     run's P99 met the target in 17 of 18 runs (0.36–0.96 ms; one 1.12 ms) at a median of
//!     82 k IOPS (51–87 k), against 0 of 8 without rule 10 in the same spells (1.47–2.97 ms, at
//!     83–91 k). Fio's best static depth under 1 ms did 86–91 k (QD32, P99 0.43 ms). The price:
//!     a stall episode early in a run can mark a band over budget and hold the climb below it
//!     until the share decays (at the minimum no longer, see above).
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
/// aura: without a target, a mean latency under floor × NUM/DEN (3/4) at the same depth, on
/// [`SPIKE_CONFIRM`] ticks in a row, means the device got faster and starts a knee search (the
/// mirror of the queueing rule; the floor is a low order statistic, so noise rarely goes a
/// quarter under it).
pub const FALLING_RATIO_NUM: u64 = 3;
/// aura: see [`FALLING_RATIO_NUM`].
pub const FALLING_RATIO_DEN: u64 = 4;

/// aura (rule 7): without a target, a knee-search window (one measured depth) closes after at
/// least this many evaluated ticks, and only once its mean is clear of its threshold (see
/// [`KNEE_WINDOW_MAX_TICKS`]) or shows a gain of [`KNEE_DOUBLE_PERCENT`] %: a single 10 ms
/// tick's throughput is too noisy (±4.5 % counting noise at 50 k IOPS, more on a disk with
/// stalls) to see a gain of a few %, but two ticks show a doubling's gain well below the knee,
/// where time spent costs most.
pub const KNEE_WINDOW_MIN_TICKS: u32 = 2;
/// aura: a knee-search window is judged only once it holds this many completions (counting
/// noise 1/√1024 ≈ 3 %, the size of the gains judged); a device that cannot complete that many
/// in [`KNEE_WINDOW_MAX_TICKS`] (under ~6 400 IOPS: a disk) keeps the depth the search started
/// from, as it has no measurable way to tell a better one.
pub const KNEE_MIN_COMPLETIONS: u64 = 1_024;
/// aura: windows that are references (the start depth in BASELINE, the depth a re-probe starts
/// from, the depth in force before a cut) take this many ticks (40 ms): they have no threshold
/// to be clear of, and a later decision leans on them.
pub const REFERENCE_TICKS: u32 = 4;
/// aura: a knee-search window takes at most this many ticks (240 ms): it is extended while its
/// mean lies within two standard errors (from the spread of its ticks) of the threshold it is
/// judged against; a virtio disk's 100 ms throughput swings by 2–7 % (measured), so near the
/// knee most windows run this long, and then the mean decides.
pub const KNEE_WINDOW_MAX_TICKS: u32 = 24;
/// aura: a knee-search step must gain at least this % of the best throughput measured before
/// it for the climb to go on. On a concave throughput curve the next step gains less, so a
/// smaller gain means the depth before it already has ≥ 98 % of what more depth buys.
pub const KNEE_GAIN_PERCENT: u64 = 2;
/// aura: a step that gained at least this % is followed by a doubling (far below the knee,
/// where each doubling still pays), a smaller gain by a step of half the depth (close to it).
pub const KNEE_DOUBLE_PERCENT: u64 = 10;
/// aura: the knee is the smallest measured depth whose throughput is at least this % of the
/// best the search measured (less its noise, [`KNEE_NOISE_CAP_PERCENT`]): 1–3 % below the best
/// costs little, while the depth (and by Little's law the latency) it saves on a soft knee is
/// large (a virtio disk: 98 % at depth ~108, 100 % at 128–256, with 1.2–2.4 × the latency);
/// on a sharp knee 99 % lands on it.
pub const KNEE_SHARE_PERCENT: u64 = 99;
/// aura: after a knee search settles, verified cuts of × NUM/DEN (9/10) check whether less
/// depth does as well: the search's estimate errs deep when a doubling stepped over a sharp
/// knee, and 10 % steps end within 10 % of it.
pub const TRIM_NUM: i64 = 9;
/// aura: see [`TRIM_NUM`].
pub const TRIM_DEN: i64 = 10;
/// aura: a trim follows a knee search only when the deepest depth short of the share had
/// under this % of it: the search's step jumped over a sharp knee (on a soft knee the
/// neighbouring depths are within a few % and a trim would only follow noise).
pub const TRIM_BELOW_PERCENT: u64 = 90;
/// aura: the share test allows this % of the share for the noise a window's own spread does not
/// show (a disk's slow swings move a whole window): a depth qualifies when its lower bound is
/// within it.
pub const KNEE_NOISE_CAP_PERCENT: u64 = 2;
/// aura: without a target, the knee search ends with paired comparisons ("duels") of measured
/// depths whose windows had at least this % of the best window's throughput, each against twice
/// its depth: windows measured at different moments differ by the disk's slow swings (2–7 % per
/// 100 ms on a virtio disk) as much as by depth, so the two depths are measured in alternating
/// legs, where the swings fall on both alike. (At 94 % the simulated virtio disk's depth 128,
/// measured during a slow swing at 92 % of a lucky window at 256, never dueled, and the search
/// settled at 192.)
pub const DUEL_FROM_PERCENT: u64 = 90;
/// aura: the shallower depth wins a duel when, over its legs, it completed at least this ‰ of
/// twice its depth's throughput (the knee: doubling the depth, and by Little's law the latency,
/// would buy under 1.5 %). The search settles on the shallowest winner, or (none won) on the
/// deeper depth of the deepest loser's duel.
pub const DUEL_KEEP_PERMILLE: u64 = 985;
/// aura: the legs of a duel, alternating shallower and deeper (the shallower first; an even
/// number, so it ends at the deeper depth, where the search may settle). With the virtio
/// model's noise 10 legs let depth 96 win against 192 (97.7 %) in 1 of 6 seeds; 16 in none
/// of 12.
pub const DUEL_LEGS: u32 = 16;
const _: () = assert!(DUEL_LEGS % 2 == 0);
/// aura: the measured ticks of one duel leg, after one tick that is not measured (the device
/// filling or draining to the leg's depth).
pub const DUEL_LEG_TICKS: u32 = 3;
/// aura: a duel ends early once this many pairs of legs have a mean ratio four standard errors
/// (from the pairs' spread) away from [`DUEL_KEEP_PERMILLE`]: a sharp knee (depth 64 against
/// 128 on an NVMe model, 100 % ± 0.3 %) or a clear loss needs no 16 legs. (Four standard errors
/// from four pairs: the spread's own estimate has 3 degrees of freedom, where 4 is about the
/// 98 % point of Student's t.)
pub const DUEL_EARLY_PAIRS: u32 = 4;
/// aura: at most this many duels end one knee search (a binary search over the candidates: 3
/// decide among up to 7).
pub const DUEL_MAX: u32 = 3;
/// aura: without a target a cut is kept only if the throughput after it is clearly (two
/// standard errors) at least this % of the throughput measured at the depth before it (under
/// the same conditions, just before the cut): a cut that costs throughput was Little's-law
/// latency of a device that still scales (or a neighbour that depth out-competes), not
/// queueing, and is undone; one within noise is undone too, or noise would walk the depth down
/// a soft knee.
pub const CUT_KEEP_PERCENT: u64 = 99;
/// aura (rule 9): with a max-P99 target, a tick over the target while a closed-loop client keeps
/// at least [`CLOSED_LOOP_MIN_PENDING`] requests pending engages at once instead of after
/// [`ENGAGE_TICKS`]: both signs say the device is queueing past the target, and every tick at the
/// maximum depth spends the run's tail (1 % of a 3 s run is 30 ms; 80 ms at depth 256 on the
/// virtio disk put 2 % of the run's completions over a 1 ms target).
pub const TARGET_ENGAGE_TICKS: u32 = 1;
/// aura (rule 9): with a target BASELINE only has to see the device drain what PASSTHROUGH
/// admitted (the guard is the target, not a multiple of the baseline P99): two ticks (the
/// draining ones are not counted), not [`WARMUP_TICKS`], as ticks at the start depth, far below
/// the knee, cost throughput (on the virtio disk depth 4 does 46 % of its best).
pub const TARGET_WARMUP_TICKS: u32 = SPIKE_CONFIRM;
/// aura (rule 9): after a cut for the target, re-probes stay below the depth that went over it
/// (the ceiling) for this long (4 s: past the first re-probe, 1.1 s after the cut, and the
/// second), so a re-probe fills the gap the ×4/5 cut left without paying the stalls above it
/// again; see [`TARGET_CEILING_MAX_NS`].
pub const TARGET_CEILING_MIN_NS: u64 = 4_000_000_000;
/// aura (rule 9): each cut that comes within twice the hold of the previous one (the ceiling
/// lifted and the depth above it went over the target again) doubles the hold, up to this
/// (64 s): a device whose tail does not move is re-probed above its ceiling ever more rarely,
/// each time at the cost of a few stall-prone ticks; one whose knee moved up is found within the
/// hold.
pub const TARGET_CEILING_MAX_NS: u64 = 64_000_000_000;
/// aura (rule 10): a depth band is over budget when this share (‰) of its completions were over
/// the target: four fifths of the 1 % a P99 allows, leaving the rest to depths still unjudged.
/// The virtio disk's stall episodes alone put 0.6–0.8 % of completions over a 1 ms target at
/// every depth from 16 to 32; at 6 ‰ the depth sat at 15–24, below static depth 32, which meets
/// the same target.
pub const TAIL_BUDGET_PERMILLE: u64 = 8;
/// aura (rule 10): the per-band counts decay by 1/this per tick (a time constant of ~10 s).
pub const TAIL_DECAY_TICKS: u64 = 1024;
/// aura (rule 10): completions a band needs (after decay) before it is judged.
pub const TAIL_MIN_SAMPLES: u64 = 5_000;
/// Half-octave depth bands of rule 10 (depths 1 to 2^16 and above).
const TAIL_BANDS: usize = 34;
/// Depths one knee search may measure (a climb from 1 to 65 536 by doublings and a confirming
/// step takes fewer; a full table settles the search).
const KNEE_POINTS: usize = 32;

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
    /// Cuts undone because they cost throughput (no target; see [`CUT_KEEP_PERCENT`]).
    pub undone_cuts: u64,
    /// Knee searches completed (no target).
    pub knee_searches: u64,
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

/// The throughput of one depth, measured over several evaluated ticks (a knee-search window).
#[derive(Copy, Clone, Debug, Default)]
struct TputWindow {
    ticks: u32,
    /// Ticks still to skip (the device draining to a lower depth) before measuring.
    skip: u32,
    bytes: u64,
    ns: u64,
    completions: u64,
    /// Σ and Σ² of the ticks' throughputs (bytes/s), for the standard error of the mean.
    sum: u128,
    sum_sq: u128,
}

impl TputWindow {
    fn restart(&mut self, skip: u32) {
        *self = TputWindow {
            skip,
            ..TputWindow::default()
        };
    }

    /// Adds one tick; `false` while the window still skips ticks.
    fn add(&mut self, s: &Sample) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        self.ticks = self.ticks.saturating_add(1);
        self.bytes = self.bytes.saturating_add(s.bytes);
        self.ns = self.ns.saturating_add(s.elapsed);
        self.completions = self.completions.saturating_add(s.completions);
        let x = u128::from(s.throughput);
        self.sum = self.sum.saturating_add(x);
        self.sum_sq = self.sum_sq.saturating_add(x.saturating_mul(x));
        true
    }

    /// Bytes per second over the window.
    fn mean(&self) -> u64 {
        per_second(self.bytes, self.ns)
    }

    /// The variance of the mean, (bytes/s)², from the spread of the ticks' throughputs.
    fn var_of_mean(&self) -> u128 {
        let n = u128::from(self.ticks);
        if n < 2 {
            return 0;
        }
        let ss = self
            .sum_sq
            .saturating_sub(self.sum.saturating_mul(self.sum) / n);
        ss / (n - 1) / n
    }

    /// Whether the window can be judged against the threshold `x` (whose own estimate has
    /// variance `var`): it has [`KNEE_WINDOW_MIN_TICKS`] and its mean is two standard errors
    /// away from `x`, or it has [`KNEE_WINDOW_MAX_TICKS`].
    fn decided(&self, x: u64, var: u128) -> bool {
        if self.ticks < KNEE_WINDOW_MIN_TICKS {
            return false;
        }
        self.ticks >= KNEE_WINDOW_MAX_TICKS || self.clear_of(x, var)
    }

    /// Whether the window's mean is at least two standard errors from `x` (whose own estimate
    /// has variance `var`).
    fn clear_of(&self, x: u64, var: u128) -> bool {
        let d = u128::from(self.mean().abs_diff(x));
        d.saturating_mul(d) >= self.var_of_mean().saturating_add(var).saturating_mul(4)
    }
}

/// `bytes` over `ns` in bytes per second, saturating (0 over no time).
fn per_second(bytes: u64, ns: u64) -> u64 {
    if ns == 0 {
        return 0;
    }
    u64::try_from(u128::from(bytes) * 1_000_000_000 / u128::from(ns)).unwrap_or(u64::MAX)
}

/// `x × percent / 100`, saturating.
fn percent_of(x: u64, percent: u64) -> u64 {
    u64::try_from(u128::from(x) * u128::from(percent) / 100).unwrap_or(u64::MAX)
}

/// Without a target: a paired comparison of two depths (a duel) that ends a knee search.
#[derive(Copy, Clone, Debug, Default)]
struct Duel {
    /// The shallower depth on trial and the deeper one it is compared with.
    low: u32,
    high: u32,
    /// Legs finished; even legs are at `low`, odd ones at `high`.
    leg: u32,
    /// Ticks of the current leg: the first is skipped, the next [`DUEL_LEG_TICKS`] measured.
    tick: u32,
    /// Bytes and ns measured at `low` (index 0) and at `high` (1).
    bytes: [u64; 2],
    ns: [u64; 2],
    completions: [u64; 2],
    /// Duels this search has run, this one included.
    count: u32,
    /// The deepest candidate that lost its duel (0: none), the shallowest that won (0: none),
    /// and the deeper depth of the deepest loser's duel.
    after: u32,
    kept: u32,
    lost_high: u32,
    /// Candidates are shallower than this (0: the maximum).
    below: u32,
    /// The current leg's bytes and ns, the last shallow leg's rate (bytes/s), and over the
    /// pairs of legs so far: their count, and the Σ and Σ² of their ratios (‰).
    leg_bytes: u64,
    leg_ns: u64,
    low_leg_rate: u64,
    pairs: u32,
    ratio_sum: u64,
    ratio_sq: u128,
}

impl Duel {
    /// Whether the pairs of legs so far already decide the duel ([`DUEL_EARLY_PAIRS`] of them
    /// whose mean ratio is four standard errors from [`DUEL_KEEP_PERMILLE`]); `Some(won)`.
    fn early(&self) -> Option<bool> {
        if self.pairs < DUEL_EARLY_PAIRS {
            return None;
        }
        let n = u128::from(self.pairs);
        let sum = u128::from(self.ratio_sum);
        let ss = self.ratio_sq.saturating_sub(sum * sum / n);
        // (mean − k)² ≥ 16 × var/n, in units of ‰² × n².
        let var_mean_n2 = ss / (n - 1) * n;
        let k = u128::from(DUEL_KEEP_PERMILLE) * n;
        let dev = sum.abs_diff(k);
        (dev.saturating_mul(dev) >= var_mean_n2.saturating_mul(16)).then_some(sum >= k)
    }
}

/// Without a target: where a ×4/5 cut stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Cut {
    /// No cut under way.
    Idle,
    /// A rise confirmed: measuring the throughput at the depth in force before cutting.
    Reference,
    /// Measured (`reference`, variance of its mean `var`): BACKOFF cuts next.
    Ready { reference: u64, var: u128 },
    /// SETTLING: measuring the throughput after the cut from `from`, to compare with the
    /// `reference` measured before it.
    Verify {
        from: u32,
        reference: u64,
        var: u128,
    },
}

/// One tick's measurements.
#[derive(Copy, Clone, Debug)]
struct Sample {
    samples: u64,
    completions: u64,
    /// Bytes completed and the tick's length, ns.
    bytes: u64,
    elapsed: u64,
    p99: Option<u64>,
    /// With a max-P99 target: the P99 over the last [`TARGET_WINDOW_NS`] (since the last cut).
    window_p99: Option<u64>,
    /// With a max-P99 target: this tick's samples at or over it.
    over_target: u64,
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
    /// Consecutive ticks whose mean latency fell well under the floor (no target).
    falls: u32,

    /// Without a target: the knee search's current window, the best window of the climb so far
    /// (depth, throughput, variance of its mean), and the depths measured with their
    /// throughputs.
    knee_window: TputWindow,
    /// BASELINE's window (the start depth), the knee search's first.
    baseline_window: TputWindow,
    knee_prev: Option<(u32, u64, u128)>,
    /// The climb's last step, and whether a step that did not pay is being confirmed.
    knee_step: u32,
    knee_confirming: bool,
    knee_points: [(u32, u64, u128); KNEE_POINTS],
    knee_len: usize,
    /// The depth the knee search measures next (reached at the next step, see `ramp_step`).
    knee_ramp_to: u32,
    /// The duel under way at the end of a knee search, if any (`high` 0: none).
    duel: Duel,
    /// Without a target: where a cut stands, and the depth an undone cut returns to.
    cut: Cut,
    undo_to: u32,
    /// The device got faster while SETTLING: search at the next STEADY tick.
    search_now: bool,
    /// After a knee search settled: verified cuts check whether less depth does as well, down
    /// to `trim_floor`.
    trim: bool,
    trim_floor: u32,

    /// With a target (rule 9): the lowest depth with a tick over the target since the last cut
    /// or probe start (`u32::MAX`: none), the ceiling re-probes stay under (0: none), until when,
    /// the hold in force and when the last cut for the target was applied.
    first_over: u32,
    ceiling: u32,
    ceiling_until: u64,
    ceiling_hold: u64,
    /// A cut set or lowered the ceiling: the next STEADY tick re-probes the gap under it.
    gap_fill: bool,
    /// The coming cut is a probe's: the depth it reached went over the target.
    probe_over: bool,
    /// With a target (rule 10): per depth band, (completions over the target, completions),
    /// decayed by 1/[`TAIL_DECAY_TICKS`] per tick.
    tail: [(u64, u64); TAIL_BANDS],
    now: u64,
    /// Ticks evaluated in BASELINE since it was entered.
    baseline_ticks: u32,

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
            falls: 0,
            knee_window: TputWindow::default(),
            baseline_window: TputWindow::default(),
            knee_prev: None,
            knee_step: 0,
            knee_confirming: false,
            knee_points: [(0, 0, 0); KNEE_POINTS],
            knee_len: 0,
            knee_ramp_to: 0,
            duel: Duel::default(),
            cut: Cut::Idle,
            undo_to: 0,
            search_now: false,
            trim: false,
            trim_floor: u32::MAX,
            first_over: u32::MAX,
            ceiling: 0,
            ceiling_until: 0,
            ceiling_hold: 0,
            gap_fill: false,
            probe_over: false,
            tail: [(0, 0); TAIL_BANDS],
            now: 0,
            baseline_ticks: 0,
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
        self.tail_tick(&s);
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
            && (over_guard || (self.max_p99_ns == 0 && queueing && self.phase != Phase::Probing))
            // Rule 10: at a depth whose share of the tail is within budget, a slow tick is an
            // episode the share already counts.
            && !self.tail_within_budget(self.limit);
        // With a target (rule 9): the lowest depth that went over it, the ceiling a cut sets.
        self.now = now_ns;
        if self.max_p99_ns > 0 && rising && eligible {
            self.first_over = self.first_over.min(self.limit);
        }
        // Without a target, a mean latency well under the floor (of at least three ticks) at the
        // same depth means the device got faster (a neighbour left, the workload changed): its knee may have moved
        // up, so it is searched for at once rather than at the next re-probe.
        let falling = self.max_p99_ns == 0
            && valid
            && self.floor.len >= 3
            && floor > 0
            && self.limit < self.max
            && s.mean.is_some_and(|m| {
                u128::from(m) * u128::from(FALLING_RATIO_DEN)
                    < u128::from(floor) * u128::from(FALLING_RATIO_NUM)
            });

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
                // With a target only ticks under it count (rule 9): what PASSTHROUGH admitted
                // at the maximum depth drains for several ticks on a disk (stalled requests
                // complete up to ~10 ms late) and would cut the climb's first steps; after
                // WARMUP_TICKS the climb starts anyway (a start depth over the target).
                self.baseline_ticks = self.baseline_ticks.saturating_add(1);
                let clean = self.max_p99_ns == 0
                    || (valid && s.p99.is_some_and(|p| p < self.max_p99_ns))
                    || self.baseline_ticks >= WARMUP_TICKS;
                self.warmup += u32::from(!draining && clean);
                // Without a target BASELINE is the knee search's first window (the start
                // depth); the guard it learns is only used once the search has settled.
                let warmup = if self.max_p99_ns == 0 {
                    if !draining {
                        self.baseline_window.add(&s);
                    }
                    REFERENCE_TICKS
                } else {
                    TARGET_WARMUP_TICKS
                };
                if self.warmup >= warmup {
                    self.enter_probing();
                }
            }
            Phase::Probing if self.max_p99_ns == 0 => self.knee_tick(&s),
            Phase::Probing => self.probing_tick(&s, rising, valid, productive),
            Phase::Backoff => {
                let from = self.limit;
                let measured = self.cut;
                self.apply_backoff();
                self.cut = match measured {
                    Cut::Ready { reference, var } if self.limit < from => {
                        // Without a target: SETTLING measures what the cut cost.
                        self.knee_window.restart(1);
                        Cut::Verify {
                            from,
                            reference,
                            var,
                        }
                    }
                    _ => Cut::Idle,
                };
            }
            Phase::Settling => {
                if let Cut::Verify {
                    from,
                    reference,
                    var,
                } = self.cut
                {
                    let keep = percent_of(reference, CUT_KEEP_PERCENT);
                    if self.knee_window.add(&s) && self.knee_window.decided(keep, var) {
                        self.cut = Cut::Idle;
                        self.spikes = 0;
                        self.settle = 0;
                        // A cut is kept only on a clear no-loss: a disk's throughput swings by
                        // several % from one window to the next, and cuts kept on noise would
                        // walk the depth down a soft knee.
                        let w = self.knee_window;
                        let kept = w.mean() >= keep && w.clear_of(keep, var);
                        if kept && self.trim && self.limit > self.min.max(self.trim_floor) {
                            // Trimming: the cut cost nothing, try the next; this window is
                            // its reference.
                            self.cut = Cut::Ready {
                                reference: w.mean(),
                                var: w.var_of_mean(),
                            };
                            self.phase = Phase::Backoff;
                        } else if kept {
                            self.trim = false;
                        }
                        if !kept {
                            self.trim = false;
                            // The cut cost throughput: the depth was paying for its latency.
                            // Back to it (STEADY, then a climb to it), and its latency is the
                            // new floor.
                            self.undo_to = from;
                            self.via_backoff = false;
                            self.floor.clear();
                            self.baseline.clear();
                            self.phase = Phase::Steady;
                            self.steady = 0;
                            self.stats.undone_cuts = self.stats.undone_cuts.saturating_add(1);
                        }
                    }
                } else if self.reference_tick(&s) {
                } else if self.spike(rising) {
                    // Like STEADY, a cut needs SPIKE_CONFIRM rising ticks in a row: one slow
                    // tick (a device stall, common on virtualised disks) must not start a
                    // cascade of ×4/5 cuts down to the minimum.
                    // Right after a probe settled, the depth it reached went over (rule 9).
                    self.probe_over = !self.via_backoff;
                    self.via_backoff = true;
                    self.settle = 0;
                } else if self.fall_check(falling) {
                    // The device got faster while settling (its floor would soon follow and
                    // hide it): STEADY for a tick, then a search.
                    self.phase = Phase::Steady;
                    self.steady = 0;
                    self.search_now = true;
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
                if self.undo_to > self.limit {
                    self.enter_probing();
                } else if self.reference_tick(&s) {
                } else if self.spike(rising) {
                    self.steady = 0;
                } else if self.search_now || self.fall_check(falling) {
                    // The device got faster (a neighbour left, a new workload): search as from
                    // a cold start (doubling steps), not as a re-probe of the neighbourhood.
                    self.search_now = false;
                    self.enter_probing();
                    self.coarse = true;
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
                    // With a target, not at the ceiling (rule 9): the depth above it went over.
                    let room = if self.max_p99_ns > 0 {
                        self.limit < self.probe_cap()
                    } else {
                        self.limit < self.max
                    };
                    // Right after a cut for the target the gap under the new ceiling is
                    // probed at once: the ceiling keeps the probe out of what went over.
                    let due = self.steady >= REPROBE_INTERVAL
                        || (self.gap_fill && self.probe_cap() < self.max);
                    if due && room && !self.tail_worse_above(self.limit.saturating_add(1)) {
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
        let over_target = if self.max_p99_ns > 0 {
            self.hist.count_at_or_above_ns(self.max_p99_ns)
        } else {
            0
        };
        let s = Sample {
            over_target,
            samples,
            completions: self.completions,
            bytes: self.bytes,
            elapsed,
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
        // Rule 9: over the target with a closed-loop queue engages at once.
        let need = if over_target && closed_loop {
            TARGET_ENGAGE_TICKS
        } else {
            ENGAGE_TICKS
        };
        if growth || over_target || closed_loop {
            self.pressure += 1;
            if self.pressure >= need {
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
        self.baseline_ticks = 0;
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
        self.falls = 0;
        self.cut = Cut::Idle;
        // The first BASELINE tick still holds what PASSTHROUGH admitted: not part of the
        // start depth's window.
        self.baseline_window.restart(1);
        self.undo_to = 0;
        self.search_now = false;
        self.trim = false;
        // The target window holds PASSTHROUGH's samples, of the maximum depth: not the start
        // depth's (they would cut it at once).
        self.clear_window();
        self.first_over = u32::MAX;
        self.stats.engagements = self.stats.engagements.saturating_add(1);
    }

    fn enter_probing(&mut self) {
        // The climb from BASELINE takes proportional steps; re-probes from a settled depth
        // check their neighbourhood one request at a time.
        let from_baseline = self.phase == Phase::Baseline;
        self.coarse = from_baseline;
        if from_baseline {
            // With a target the window starts with the climb: BASELINE's first tick still
            // holds the drain of PASSTHROUGH's depth (rule 9).
            self.clear_window();
        }
        self.phase = Phase::Probing;
        self.plateau = 0;
        self.spikes = 0;
        self.falls = 0;
        self.via_backoff = false;
        self.best_limit = self.limit;
        self.probe_start = self.limit;
        self.first_over = u32::MAX;
        self.gap_fill = false;
        // The first probing tick has no step to judge: it takes one.
        self.prev_limit = self.limit;
        // Without a target: a knee search. From BASELINE its first window (the start depth)
        // is already measured and the climb starts at once toward twice it; after an undone
        // cut it first climbs back to the depth before the cut; a re-probe first measures the
        // depth in force.
        self.knee_len = 0;
        self.knee_prev = None;
        self.knee_step = 0;
        self.knee_confirming = false;
        self.knee_ramp_to = 0;
        self.duel = Duel::default();
        self.cut = Cut::Idle;
        self.trim = false;
        self.knee_window.restart(0);
        if self.max_p99_ns == 0 {
            if from_baseline && self.knee_window_from_baseline() {
                return;
            }
            if self.undo_to > self.limit {
                self.knee_ramp_to = self.undo_to;
                self.probe_start = self.undo_to;
            }
        }
        self.undo_to = 0;
    }

    /// Starts the first climb from BASELINE's window; `false` if it measured nothing.
    fn knee_window_from_baseline(&mut self) -> bool {
        // `enter_probing` restarted the window: BASELINE's is in `baseline_window`.
        let w = self.baseline_window;
        if w.ticks == 0 {
            return false;
        }
        self.knee_record(self.limit, w.mean(), w.var_of_mean());
        self.knee_prev = Some((self.limit, w.mean(), w.var_of_mean()));
        self.knee_step = self.limit;
        self.knee_ramp_to = self.limit.saturating_mul(2).min(self.max);
        true
    }

    /// One evaluated PROBING tick without a target: the knee search (rule 7 of the module
    /// docs). Climbs from the depth in force while a window's throughput gains
    /// [`KNEE_GAIN_PERCENT`] over the best window before it (a doubling while the gains are
    /// large), confirms a step that did not pay with one more, then settles on the smallest
    /// depth estimated to give [`KNEE_SHARE_PERCENT`] of the best.
    fn knee_tick(&mut self, s: &Sample) {
        if self.duel.high != 0 {
            self.duel_tick(s);
            return;
        }
        if self.knee_ramp_to > self.limit {
            // Climbing to the next depth to measure: this tick belongs to the one before.
            self.ramp_step();
            return;
        }
        if !self.knee_window.add(s) {
            return;
        }
        let w = self.knee_window;
        // A window needs enough completions for its counting noise (1/√n) to be under the
        // gains it judges; a device too slow to give them within the longest window is left
        // where the search started.
        if w.completions < KNEE_MIN_COMPLETIONS {
            if w.ticks >= KNEE_WINDOW_MAX_TICKS {
                let start = self.probe_start;
                self.knee_settle(start, false);
            }
            return;
        }
        let decided = match self.knee_prev {
            // The first climb goes on as soon as a window's mean shows a large gain
            // ([`KNEE_DOUBLE_PERCENT`]: far below the knee, where time spent is dearest and
            // the exact value will not matter); any other window waits until it is clear of
            // its threshold or as long as allowed.
            Some((_, r, var)) => {
                let thr = percent_of(r, 100 + KNEE_GAIN_PERCENT);
                (self.coarse
                    && w.ticks >= KNEE_WINDOW_MIN_TICKS
                    && w.mean() >= percent_of(r, 100 + KNEE_DOUBLE_PERCENT))
                    || w.decided(thr, var)
            }
            None => w.ticks >= REFERENCE_TICKS,
        };
        if !decided {
            return;
        }
        let mean = w.mean();
        // A window closed early on its mean alone is a rough measure: it guides the climb, but
        // it can neither set the best nor be the knee (its variance is recorded as unbounded).
        let trusted = self.knee_prev.is_none_or(|(_, r, var)| {
            w.ticks >= KNEE_WINDOW_MAX_TICKS
                || w.clear_of(percent_of(r, 100 + KNEE_GAIN_PERCENT), var)
        });
        let var = if trusted { w.var_of_mean() } else { u128::MAX };
        self.knee_record(self.limit, mean, var);
        // The first climb goes on when the window's mean reaches the threshold (a window that
        // ran to its maximum length within noise of it is taken at its mean; a wrong "no" is
        // caught by the confirming step); a re-probe moves the settled depth only on a clear
        // gain (else noise would ratchet it up).
        let gained = self.knee_prev.is_none_or(|(_, r, var)| {
            let thr = percent_of(r, 100 + KNEE_GAIN_PERCENT);
            mean > r && mean >= thr && (self.coarse || w.clear_of(thr, var))
        });
        if gained && self.limit < self.max {
            let step = match self.knee_prev {
                // A search started because the device got faster doubles at once, as from a cold
                // start; a re-probe's first step checks the neighbourhood of a settled depth.
                None if self.coarse => self.limit,
                None => AIMD_INCREASE.max(self.limit / PROBE_STEP_DIV),
                Some((_, r, _)) if mean >= percent_of(r, 100 + KNEE_DOUBLE_PERCENT) => self.limit,
                Some(_) => AIMD_INCREASE.max(self.limit / 2),
            };
            self.knee_prev = Some((self.limit, mean, w.var_of_mean()));
            self.knee_step = step;
            self.knee_confirming = false;
            self.knee_climb(self.limit.saturating_add(step));
            return;
        }
        if !self.coarse && self.knee_prev.is_some_and(|p| p.0 == self.probe_start) {
            // A re-probe whose first step did not pay: the settled depth stands (comparing the
            // two windows' throughputs again would let noise ratchet the depth up).
            self.knee_settle(self.probe_start, false);
            return;
        }
        if !self.knee_confirming && self.limit < self.max {
            // One step that did not pay may be noise: one more step of the same size, judged
            // against the same best, confirms the plateau (on a soft knee the two steps together
            // gain twice as much, well clear of the noise).
            self.knee_confirming = true;
            self.knee_climb(self.limit.saturating_add(self.knee_step.max(1)));
            return;
        }
        let (depth, floor) = self.knee_depth();
        self.trim_floor = floor.unwrap_or(u32::MAX);
        // After a step that jumped over a sharp knee only depths up to the one estimated inside
        // the jump duel (the trims then look below); past a soft knee any measured depth may.
        self.duel.below = if floor.is_some() {
            depth.saturating_add(1)
        } else {
            0
        };
        if self.coarse && self.duel_next() {
            // A first search: the depth is decided by duels (see [`DUEL_FROM_PERCENT`]), and
            // trimmed from there if a step jumped over a sharp knee.
            return;
        }
        self.knee_settle(depth, floor.is_some());
    }

    /// Starts the next duel of the search for the shallowest depth that wins one: a binary
    /// search over the measured depths whose window had [`DUEL_FROM_PERCENT`] of the best
    /// window's throughput, between the deepest one that lost (`after`) and the shallowest one
    /// that won (`kept`), each dueling twice its depth (at most the maximum). Past a winner
    /// only depths at least half of it are tried, so a duel always ends at or above the depth
    /// the search may settle on. `false` when no candidate is left or [`DUEL_MAX`] duels ran.
    fn duel_next(&mut self) -> bool {
        let from = percent_of(self.knee_best(), DUEL_FROM_PERCENT);
        let Duel {
            count,
            after,
            kept,
            below,
            ..
        } = self.duel;
        let floor = after.max(kept.div_ceil(2).saturating_sub(1));
        let under = match (kept, below) {
            (0, 0) => self.max,
            (0, b) => b,
            (k, _) => k,
        };
        // Rough windows (closed early on a large gain) are candidates too: the duel measures
        // them again.
        let mut cands = [0u32; KNEE_POINTS];
        let mut n = 0;
        for p in &self.knee_points[..self.knee_len] {
            if p.1 >= from && p.0 > floor && p.0 < under && !cands[..n].contains(&p.0) {
                cands[n] = p.0;
                n += 1;
            }
        }
        if n == 0 || count >= DUEL_MAX {
            return false;
        }
        cands[..n].sort_unstable();
        let low = cands[(n - 1) / 2];
        self.duel = Duel {
            low,
            high: low.saturating_mul(2).min(self.max),
            count: count + 1,
            after,
            kept,
            below,
            lost_high: self.duel.lost_high,
            ..Duel::default()
        };
        self.limit = low;
        true
    }

    /// One evaluated tick of a duel: measures the leg, alternates the depth, and at the end
    /// judges it (the shallower depth wins with [`DUEL_KEEP_PERMILLE`] ‰ of the deeper one's
    /// throughput), then starts the next duel or settles: on the shallowest winner, else on
    /// the deeper depth of the deepest loser.
    fn duel_tick(&mut self, s: &Sample) {
        let d = &mut self.duel;
        let side = (d.leg % 2) as usize;
        d.tick += 1;
        if d.tick > 1 {
            d.bytes[side] = d.bytes[side].saturating_add(s.bytes);
            d.ns[side] = d.ns[side].saturating_add(s.elapsed);
            d.completions[side] = d.completions[side].saturating_add(s.completions);
            d.leg_bytes = d.leg_bytes.saturating_add(s.bytes);
            d.leg_ns = d.leg_ns.saturating_add(s.elapsed);
        }
        if d.tick <= DUEL_LEG_TICKS {
            return;
        }
        let leg_rate = per_second(d.leg_bytes, d.leg_ns);
        (d.leg_bytes, d.leg_ns) = (0, 0);
        if side == 0 {
            d.low_leg_rate = leg_rate;
        } else if leg_rate > 0 {
            let r = u128::from(d.low_leg_rate) * 1000 / u128::from(leg_rate);
            let r = u64::try_from(r)
                .unwrap_or(u64::MAX)
                .min(u64::from(u32::MAX));
            d.pairs += 1;
            d.ratio_sum = d.ratio_sum.saturating_add(r);
            d.ratio_sq = d.ratio_sq.saturating_add(u128::from(r) * u128::from(r));
        }
        d.tick = 0;
        d.leg += 1;
        let early = if side == 1 { d.early() } else { None };
        if d.leg < DUEL_LEGS && early.is_none() {
            self.limit = if d.leg % 2 == 0 { d.low } else { d.high };
            return;
        }
        // Bytes per second at each depth, compared in u128 (a u64 rate × 1000 cannot overflow).
        let rate = |i: usize| u128::from(per_second(d.bytes[i], d.ns[i].max(1)));
        let low_rate = rate(0) * 1000;
        let high_rate = rate(1) * u128::from(DUEL_KEEP_PERMILLE);
        let measured = d.completions.iter().all(|&c| c >= KNEE_MIN_COMPLETIONS);
        let won = early.unwrap_or(low_rate >= high_rate);
        if measured && won {
            d.kept = d.low;
        } else {
            d.after = d.low;
            d.lost_high = d.high;
        }
        d.high = 0;
        if !self.duel_next() {
            let d = self.duel;
            let depth = if d.kept != 0 { d.kept } else { d.lost_high };
            let trim = self.trim_floor != u32::MAX;
            self.knee_settle(depth, trim);
        }
    }

    /// Climbs toward `depth` (at most the maximum), the first step now.
    fn knee_climb(&mut self, depth: u32) {
        self.knee_ramp_to = depth.min(self.max);
        self.ramp_step();
    }

    /// Goes to the depth to measure next, at once (never more than doubling the limit: a
    /// search step is at most the depth in force, an undone cut's return ×5/4). A closed-loop
    /// client fills the new depth within microseconds, so the next tick measures it; the 1/8
    /// steps the search once took spent 70 of every 100 ms of its climb from depth 4 in
    /// between (~0.4 s under the device's best, ~1.3 % of a 10 s run on the virtio disk).
    fn ramp_step(&mut self) {
        let most = self
            .limit
            .saturating_mul(2)
            .max(self.limit.saturating_add(1));
        self.limit = self.knee_ramp_to.clamp(self.limit, most);
        self.knee_window.restart(0);
    }

    /// Records a measured depth (a full table settles the search at its next decision).
    fn knee_record(&mut self, depth: u32, tput: u64, var: u128) {
        if self.knee_len < KNEE_POINTS {
            self.knee_points[self.knee_len] = (depth, tput, var);
            self.knee_len += 1;
        } else {
            self.knee_confirming = true;
            self.knee_step = 0;
        }
    }

    /// Two standard errors of a point's mean.
    fn two_se(p: &(u32, u64, u128)) -> u64 {
        isqrt(u64::try_from(p.2).unwrap_or(u64::MAX)).saturating_mul(2)
    }

    /// The best throughput measured: the largest mean of the windows that are not rough (a
    /// rough window, closed as soon as its mean showed a large gain, is the luckiest of the
    /// noisy draws). Not the largest lower bound: deep windows are the noisiest (stalls), and
    /// their lower bounds would make a shallow depth look as good.
    fn knee_best(&self) -> u64 {
        self.knee_points[..self.knee_len]
            .iter()
            .filter(|p| p.2 != u128::MAX)
            .map(|p| p.1)
            .max()
            .unwrap_or(0)
    }

    /// Whether a measured depth has `share` ([`KNEE_SHARE_PERCENT`] of the best): its lower
    /// bound (mean less two standard errors) does, within [`KNEE_NOISE_CAP_PERCENT`] % (the
    /// noise a window's own spread does not show: a disk's slow swings).
    fn knee_qualifies(p: &(u32, u64, u128), share: u64) -> bool {
        // A rough window (closed early on its mean, see `knee_tick`) never qualifies: its lower
        // bound is 0.
        p.1.saturating_sub(Self::two_se(p))
            .saturating_add(percent_of(share, KNEE_NOISE_CAP_PERCENT))
            >= share
    }

    /// The knee: the shallowest measured depth with [`KNEE_SHARE_PERCENT`] of the best
    /// throughput; when the deepest depth without it had much less (a step jumped over a sharp
    /// knee), where the line through their throughputs reaches the share (on a concave curve
    /// the line lies under it, so that depth has the share; the trim then looks below).
    ///
    /// Also returns the depth a trim may go down to (one above the short one), when the step
    /// between the two was a jump (the short one under [`TRIM_BELOW_PERCENT`] % of the share: a
    /// sharp knee inside a large step, where the line errs deep); `None` on a soft knee, where
    /// the line is close and noise would walk a trim down.
    fn knee_depth(&self) -> (u32, Option<u32>) {
        let points = &self.knee_points[..self.knee_len];
        let share = percent_of(self.knee_best(), KNEE_SHARE_PERCENT);
        let Some(&(hi, t_hi, _)) = points
            .iter()
            .filter(|p| Self::knee_qualifies(p, share))
            .min_by_key(|p| p.0)
        else {
            return (self.limit, None);
        };
        let Some(&(lo, t_lo, _)) = points
            .iter()
            .filter(|p| p.0 < hi && !Self::knee_qualifies(p, share))
            .max_by_key(|p| p.0)
        else {
            return (hi, None);
        };
        let floor = (t_lo < percent_of(share, TRIM_BELOW_PERCENT)).then_some(lo + 1);
        if floor.is_none() || t_hi <= t_lo || share <= t_lo {
            // A soft knee: the shallowest depth measured to have the share (the line between
            // two depths within a few % of each other is as noisy as they are).
            return (hi, floor);
        }
        let need = u128::from(share.min(t_hi) - t_lo);
        let span = u128::from(hi - lo);
        let up = (span * need).div_ceil(u128::from(t_hi - t_lo));
        let d = u64::from(lo).saturating_add(u64::try_from(up).unwrap_or(u64::MAX));
        let d = u32::try_from(d)
            .unwrap_or(hi)
            .clamp(lo.saturating_add(1), hi);
        (d, floor)
    }

    /// Ends the search at the knee (never above the depth in force): SETTLING there, with the
    /// floor and the baseline (the guard) restarted at that depth. With `trim`, SETTLING then
    /// measures the depth and tries verified ×4/5 cuts while they cost nothing (the estimate
    /// errs deep on a sharp knee).
    fn knee_settle(&mut self, depth: u32, trim: bool) {
        let settled = depth.clamp(self.min, self.limit);
        if settled != self.probe_start {
            self.stable = 0;
        }
        self.knee_ramp_to = 0;
        self.knee_window.restart(u32::from(settled < self.limit));
        self.enter_settling(settled);
        if settled != self.probe_start || trim {
            // A new depth: its own floor and guard (a re-probe that came back keeps them, so
            // a latency rise that began during it is still measured against the old floor).
            self.floor.clear();
            self.baseline.clear();
        }
        self.trim = trim && settled > self.min.max(self.trim_floor);
        // The trim's first reference window starts after the drain tick.
        self.cut = if self.trim { Cut::Reference } else { Cut::Idle };
        self.stats.knee_searches = self.stats.knee_searches.saturating_add(1);
    }

    /// Without a target, counts a rising tick like [`Aimd::spike_check`], but a confirmed rise
    /// first measures the depth in force (`Cut::Reference`) instead of going to BACKOFF.
    fn spike(&mut self, rising: bool) -> bool {
        if self.max_p99_ns > 0 {
            return self.spike_check(rising);
        }
        if rising {
            self.spikes += 1;
            if self.spikes >= SPIKE_CONFIRM {
                self.spikes = 0;
                self.cut = Cut::Reference;
                self.knee_window.restart(0);
                return true;
            }
        } else {
            self.spikes = 0;
        }
        false
    }

    /// A tick of the reference window before a cut: once it has [`REFERENCE_TICKS`], the
    /// phase goes to BACKOFF. `false` when no reference is being measured.
    fn reference_tick(&mut self, s: &Sample) -> bool {
        if self.cut != Cut::Reference {
            return false;
        }
        self.knee_window.add(s);
        if self.knee_window.ticks >= REFERENCE_TICKS {
            self.cut = Cut::Ready {
                reference: self.knee_window.mean(),
                var: self.knee_window.var_of_mean(),
            };
            self.phase = Phase::Backoff;
        }
        true
    }

    /// Counts a falling tick; the second in a row starts a knee search.
    fn fall_check(&mut self, falling: bool) -> bool {
        if falling {
            self.falls += 1;
            if self.falls >= SPIKE_CONFIRM {
                self.falls = 0;
                return true;
            }
        } else {
            self.falls = 0;
        }
        false
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
            self.probe_over = true;
            return;
        }
        if s.completions == 0 {
            return;
        }
        if self.max_p99_ns > 0 {
            // Rule 10: near the target the first climb takes fine steps ...
            if self.coarse && s.p99.is_some_and(|p| p >= self.max_p99_ns / 2) {
                self.coarse = false;
            }
            // ... and no probe steps into a band whose tail is over budget (and worse than
            // here: a tail the device has at every depth is no reason to stay low).
            if self.tail_worse_above(self.next_step()) {
                let spikes = self.spikes;
                self.best_limit = self.limit;
                self.settle_probe();
                // A rising tick already counted still counts toward a cut.
                self.spikes = spikes;
                return;
            }
        }
        let under_target = self.max_p99_ns > 0
            && valid
            && s.p99.is_some_and(|p| p < self.max_p99_ns)
            && s.window_p99.is_none_or(|p| p < self.max_p99_ns);
        let cap = self.probe_cap();
        match productive {
            _ if under_target && self.limit >= cap && cap < self.max => {
                // At the ceiling (rule 9), under the target: this depth is the one to hold.
                self.best_limit = self.limit;
                self.plateau = PLATEAU_CONFIRM;
                self.settle_probe();
            }
            Some(true) => {
                self.best_limit = self.limit;
                self.plateau = 0;
                self.step_up();
            }
            _ if under_target && self.limit < cap => {
                self.plateau = 0;
                self.step_up();
            }
            None if self.limit < cap => self.step_up(),
            _ => {
                self.plateau += 1;
                if self.plateau >= PLATEAU_CONFIRM {
                    self.settle_probe();
                } else {
                    self.step_up();
                }
            }
        }
    }

    /// Ends a probe with a target at `best_limit` (never above the depth in force).
    fn settle_probe(&mut self) {
        let settled = self.best_limit.clamp(self.min, self.limit.max(self.min));
        if settled != self.probe_start {
            // A re-probe that found a new depth restarts the count toward CONVERGED; one that
            // came back to where it started does not.
            self.stable = 0;
        }
        self.enter_settling(settled);
        // The floor restarts at the settled depth.
        self.floor.clear();
    }

    /// A probe ends at `limit`: SETTLING starts there, with the probe's counters cleared.
    fn enter_settling(&mut self, limit: u32) {
        self.limit = limit;
        self.plateau = 0;
        self.spikes = 0;
        self.via_backoff = false;
        self.phase = Phase::Settling;
        self.settle = 0;
    }

    /// The highest depth a probe with a target may step to: one under the ceiling while it
    /// holds (rule 9), else the maximum.
    fn probe_cap(&self) -> u32 {
        if self.max_p99_ns > 0 && self.ceiling > 0 && self.now < self.ceiling_until {
            self.ceiling.saturating_sub(1).clamp(self.min, self.max)
        } else {
            self.max
        }
    }

    /// The depth the next probing step goes to (see [`Aimd::step_up`]).
    fn next_step(&self) -> u32 {
        let step = if self.coarse {
            AIMD_INCREASE.max(self.limit / PROBE_STEP_DIV)
        } else {
            AIMD_INCREASE
        };
        self.limit
            .saturating_add(step)
            .min(self.probe_cap().max(self.limit))
    }

    fn step_up(&mut self) {
        self.limit = self.next_step();
    }

    /// Rule 10: the half-octave band of `depth`.
    fn tail_band(depth: u32) -> usize {
        let d = depth.max(1);
        let octave = d.ilog2();
        // The upper half of the octave: d ≥ 1.5 × 2^octave.
        let upper = octave > 0 && u64::from(d) * 2 >= 3u64 << octave;
        (2 * octave as usize + usize::from(upper)).min(TAIL_BANDS - 1)
    }

    /// Rule 10: decays every band and adds this tick's completions to the band of the depth in
    /// force, or of the one before it when that was deeper (with a target, outside PASSTHROUGH, whose maximum depth the controller did not
    /// choose, and BASELINE, which drains it).
    fn tail_tick(&mut self, s: &Sample) {
        if self.max_p99_ns == 0 {
            return;
        }
        for b in &mut self.tail {
            b.0 -= b.0 / TAIL_DECAY_TICKS;
            b.1 -= b.1 / TAIL_DECAY_TICKS;
        }
        if matches!(self.phase, Phase::Passthrough | Phase::Baseline) || s.samples == 0 {
            return;
        }
        // Right after a cut, the tick's completions are mostly those of the deeper queue: they
        // count for the depth before it.
        let depth = self.limit.max(self.prev_limit);
        let b = &mut self.tail[Self::tail_band(depth)];
        b.0 = b.0.saturating_add(s.over_target);
        b.1 = b.1.saturating_add(s.samples);
    }

    /// Rule 10: `depth`'s band's (completions over the target, completions) once judged (with a
    /// target and [`TAIL_MIN_SAMPLES`] completions), else `None`.
    fn tail_of(&self, depth: u32) -> Option<(u64, u64)> {
        let (over, all) = self.tail[Self::tail_band(depth)];
        (self.max_p99_ns > 0 && all >= TAIL_MIN_SAMPLES).then_some((over, all))
    }

    /// Rule 10: whether `(over, all)` is over [`TAIL_BUDGET_PERMILLE`].
    fn over_budget((over, all): (u64, u64)) -> bool {
        u128::from(over) * 1000 >= u128::from(all) * u128::from(TAIL_BUDGET_PERMILLE)
    }

    /// Rule 10: `depth`'s band has been judged, and its share over the target is within budget.
    fn tail_within_budget(&self, depth: u32) -> bool {
        self.tail_of(depth).is_some_and(|t| !Self::over_budget(t))
    }

    /// Rule 10: whether a climb to `depth` would go where the tail is over budget: its band has
    /// been judged over budget and is the depth in force's, or another one with more than twice
    /// that one's share (0 while unjudged).
    fn tail_worse_above(&self, depth: u32) -> bool {
        let Some(up) = self.tail_of(depth).filter(|&t| Self::over_budget(t)) else {
            return false;
        };
        if Self::tail_band(depth) == Self::tail_band(self.limit) {
            // Over budget where the depth is now: no climb, unless it is the minimum. There the
            // tail is the device's own (no depth is lower), and holding there would only wait
            // for the share to decay: a stall storm right after engaging (a device still
            // draining a deeper queue) put the start band over budget for seconds.
            return self.limit > self.min;
        }
        let (o, a) = self.tail_of(self.limit).unwrap_or((0, 1));
        // up.0 / up.1 > 2 × o / a
        u128::from(up.0) * u128::from(a) > 2 * u128::from(o) * u128::from(up.1)
    }

    fn apply_backoff(&mut self) {
        self.clear_window();
        // A trimming cut (rule 7) is finer than a backoff: it looks for the knee, not relief.
        let (num, den) = if self.trim {
            (TRIM_NUM, TRIM_DEN)
        } else {
            (DECREASE_NUM, DECREASE_DEN)
        };
        let cut = Fixed::from_int(i64::from(self.limit))
            .scale(num, den)
            .to_int();
        let mut cut = u32::try_from(cut).unwrap_or(self.min);
        if self.trim {
            cut = cut.max(self.trim_floor).min(self.limit.saturating_sub(1));
        }
        if self.cap_at_best {
            cut = cut.min(self.best_limit);
            self.cap_at_best = false;
        }
        let from = self.limit;
        self.limit = cut.max(self.min);
        // Only a probe's cut sets a ceiling (rule 9): a cut at a depth held for a while is a
        // stall episode of the device, which a ceiling would only walk down. Nor does a cut from
        // under twice the minimum: that ceiling would pin the limit at the minimum for the whole
        // hold, and what went over there is the device's own tail (a stall storm right after
        // engaging, while the device drained a deeper queue, held a 3.5 s run at depth 4).
        if self.max_p99_ns > 0
            && !self.trim
            && self.limit < from
            && self.probe_over
            && from >= self.min.saturating_mul(2)
        {
            self.set_ceiling(from);
        }
        self.probe_over = false;
        self.plateau = 0;
        self.stable = 0;
        self.via_backoff = true;
        self.phase = Phase::Settling;
        self.settle = 0;
        self.stats.backoffs = self.stats.backoffs.saturating_add(1);
    }

    /// With a target, after a cut from `from` (rule 9): re-probes stay under the lowest depth
    /// that went over the target, for a hold that doubles when cuts recur within twice it.
    fn set_ceiling(&mut self, from: u32) {
        // Above the new limit, so a re-probe has a gap to fill.
        let ceiling = self.first_over.min(from).max(self.limit.saturating_add(1));
        self.first_over = u32::MAX;
        self.gap_fill = true;
        if self.ceiling > 0 && self.now < self.ceiling_until {
            // A cut under a ceiling in force lowers it (the gap-filling probe found the depth
            // under it over the target too); the hold runs on.
            self.ceiling = self.ceiling.min(ceiling);
            return;
        }
        // A new ceiling: the hold doubles when the last one lifted within a hold of this cut
        // (the depth above it went over again), else it starts afresh.
        let recurring =
            self.ceiling > 0 && self.now.saturating_sub(self.ceiling_until) <= self.ceiling_hold;
        self.ceiling_hold = if recurring {
            self.ceiling_hold
                .saturating_mul(2)
                .clamp(TARGET_CEILING_MIN_NS, TARGET_CEILING_MAX_NS)
        } else {
            TARGET_CEILING_MIN_NS
        };
        self.ceiling = ceiling;
        self.ceiling_until = self.now.saturating_add(self.ceiling_hold);
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

    /// Ticks a device of knee `knee` (100 completions per unit of depth below it, `lat` ns)
    /// until the controller is STEADY for two ticks (at most 1000 ticks); returns the limits it
    /// used.
    fn until_steady(a: &mut Aimd, t: &mut u64, knee: u32, lat: u64) -> std::vec::Vec<u32> {
        let mut limits = std::vec::Vec::new();
        let mut steady = 0;
        for _ in 0..1000 {
            let n = u64::from(a.limit().min(knee)) * 100;
            limits.push(tick_with(a, t, n, lat, 4096, 512).limit);
            // Two ticks: an undone cut passes through STEADY for one on its way back up.
            steady = if a.phase() == Phase::Steady {
                steady + 1
            } else {
                0
            };
            if steady >= 2 {
                break;
            }
        }
        assert_eq!(a.phase(), Phase::Steady, "{limits:?}");
        limits
    }

    /// Completions per tick of a soft-knee device at `limit`: 100 per unit of depth up to 32,
    /// then `gain` ‰ more per doubling up to `flat`, and flat beyond.
    fn soft_knee(limit: u32, gain: u64, flat: u32) -> u64 {
        let d = u64::from(limit.max(1));
        if d <= 32 {
            return d * 100;
        }
        // log2(d / 32) in 1/1024ths, from the integer part and a linear fraction.
        let log = |d: u64| {
            let whole = 63 - u64::from((d / 32).leading_zeros());
            let lo = 32u64 << whole;
            whole * 1024 + (d - lo) * 1024 / lo
        };
        let l = log(d).min(log(u64::from(flat)));
        3200 + 3200 * gain * l / 1000 / 1024
    }

    /// Runs a soft-knee device (see [`soft_knee`]) from a cold start until the controller has
    /// been STEADY for two ticks; returns the limit and the limits PROBING used.
    fn settle_on_soft_knee(gain: u64, flat: u32) -> (u32, std::vec::Vec<u32>) {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        let mut limits = std::vec::Vec::new();
        let mut steady = 0;
        for _ in 0..2000 {
            let n = soft_knee(a.limit(), gain, flat);
            let d = tick_with(&mut a, &mut t, n, 500_000, 4096, 512);
            if d.phase == Phase::Probing {
                limits.push(d.limit);
            }
            steady = if d.phase == Phase::Steady {
                steady + 1
            } else {
                0
            };
            if steady >= 2 {
                break;
            }
        }
        assert_eq!(a.phase(), Phase::Steady, "{limits:?}");
        (a.limit(), limits)
    }

    #[test]
    fn a_soft_knee_is_settled_by_duels_at_the_depth_doubling_stops_paying() {
        // +6 % per doubling up to 128, flat beyond; the climb measured 64, 96, 144, 216 and
        // 256. The binary search over the candidates 64, 96, 144 and 216 starts at 96, which
        // loses its duel with 192 (97 %), then 144 wins its duel with 256, and nothing is left
        // between the two.
        let (limit, limits) = settle_on_soft_knee(60, 128);
        assert_eq!(limit, 144, "{limits:?}");
        // Noiseless, each duel is decided by its first four pairs of legs (4 ticks a leg): from
        // the climb's 96 on, the last windows and the two duels take ~70 ticks, not ~135.
        let duel_ticks = limits.iter().skip_while(|&&l| l != 96).count();
        assert!(duel_ticks <= 64 + 8, "{duel_ticks} {limits:?}");
        // The duels alternate the two depths; 64 never duels.
        assert!(
            limits.windows(2).any(|w| w == [96, 192])
                && limits.windows(2).any(|w| w == [256, 144])
                && !limits.windows(2).any(|w| w == [64, 128]),
            "{limits:?}"
        );
        // +8 % per doubling up to 64, flat beyond: 64 wins its duel with 128.
        let (limit, limits) = settle_on_soft_knee(80, 64);
        assert_eq!(limit, 64, "{limits:?}");
        // +3 % per doubling all the way: every duel is lost, the last one's deeper depth stands.
        let (limit, limits) = settle_on_soft_knee(30, 256);
        assert!(limit >= 128, "{limit} {limits:?}");
        // Never more than doubling the limit in a tick.
        assert!(
            limits.windows(2).all(|w| w[1] <= w[0].max(1) * 2),
            "{limits:?}"
        );
    }

    #[test]
    fn probing_climbs_while_throughput_grows_and_settles_at_the_knee() {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        let knee = 20u32;
        let limits = until_steady(&mut a, &mut t, knee, 80_000);
        // Within one trimming step (10 %) of the knee, never under it.
        assert!(
            a.limit() >= knee && a.limit() <= knee + knee / 10,
            "{} {limits:?}",
            a.limit()
        );
        // Without a target the search doubles while a step gains ≥ 10 % (here 16 → 32, +25 %),
        // so its first step past the knee may double the depth (32 → 64), and one more step of
        // that size confirms the plateau (96) before it settles back and trims; it never goes
        // further. (Before rule 7 the climb took 1/8 steps and stayed within 3/2 × the knee; the
        // larger steps are what make it fast and noise-proof on a soft knee.) It goes to each
        // depth at once, never more than doubling the limit in a tick.
        assert_eq!(limits.iter().max(), Some(&96), "{limits:?}");
        assert!(
            limits.windows(2).all(|w| w[1] <= w[0].max(1) * 2),
            "{limits:?}"
        );
    }

    #[test]
    fn tail_bands_are_half_octaves() {
        let bands: [(u32, usize); 14] = [
            (0, 0),
            (1, 0),
            (2, 2),
            (3, 3),
            (4, 4),
            (5, 4),
            (6, 5),
            (8, 6),
            (11, 6),
            (12, 7),
            (32, 10),
            (47, 10),
            (48, 11),
            (u32::MAX, TAIL_BANDS - 1),
        ];
        for (depth, band) in bands {
            assert_eq!(Aimd::tail_band(depth), band, "depth {depth}");
        }
    }

    #[test]
    fn a_stall_episode_within_the_tail_budget_cuts_nothing() {
        // Rule 10, with a 1 ms target: a depth held for a while with its tail under the target.
        let (mut a, mut t) = probing(AimdOptions {
            max_p99_ns: MS,
            ..AimdOptions::new(256)
        });
        until_steady(&mut a, &mut t, 16, 200 * 1000);
        for _ in 0..100 {
            let n = u64::from(a.limit().min(16)) * 100;
            tick_with(&mut a, &mut t, n, 200 * 1000, 4096, 512);
        }
        let held = a.limit();
        let backoffs = a.stats().backoffs;
        let (_, seen) = a.tail[Aimd::tail_band(held)];
        assert!(seen > 100_000, "the depth's band has been judged: {seen}");
        // Two slow ticks in a row (a stall episode: every completion over the target), which
        // rules 1–6 alone answer with a cut, keep the depth's share of the tail within budget
        // (under 0.5 %): no cut.
        let n = seen / 500;
        for _ in 0..2 {
            tick_with(&mut a, &mut t, n, 5 * MS, 4096, 512);
        }
        tick_with(&mut a, &mut t, 1600, 200 * 1000, 4096, 512);
        assert_eq!(
            a.stats().backoffs,
            backoffs,
            "an episode within budget cuts nothing"
        );
        // Episodes that add up past the budget are the depth's doing: rules 1–6 cut again.
        for _ in 0..10 {
            tick_with(&mut a, &mut t, 1600, 5 * MS, 4096, 512);
        }
        assert!(a.stats().backoffs > backoffs, "over budget: cut");
    }

    #[test]
    fn a_stall_storm_at_the_minimum_does_not_hold_the_climb() {
        // Rule 10, with a 1 ms target, from the minimum depth: the first ticks come in a stall
        // storm (30 % of completions over the target), which judges the start band over budget.
        let (mut a, mut t) = probing(AimdOptions {
            max_p99_ns: MS,
            initial_in_flight: 4,
            ..AimdOptions::new(256)
        });
        assert_eq!(a.limit(), a.bounds().0, "starts at the minimum");
        for _ in 0..15 {
            for _ in 0..135 {
                a.on_complete(Some(3 * MS), 4096);
            }
            tick_with(&mut a, &mut t, 315, 100_000, 4096, 512);
        }
        let start = a.tail_of(a.limit()).expect("the start band is judged");
        assert!(Aimd::over_budget(start), "{start:?}");
        // Then the device is clean, and a climb pays. The band's share would take seconds to
        // decay under the budget; the climb must not wait for it.
        let climbed = (0..300).any(|_| {
            let n = u64::from(a.limit().min(32)) * 110;
            tick_with(&mut a, &mut t, n, 100_000, 4096, 512);
            a.limit() >= 8
        });
        assert!(
            climbed,
            "held at {} for 3 s by the storm's share",
            a.limit()
        );
    }

    #[test]
    fn two_rising_ticks_back_off_by_a_fifth() {
        // With a target: without one, probing is judged by throughput windows (rule 7) and a
        // cut first measures the depth in force (`a_cut_that_costs_throughput_is_undone`).
        let (mut a, mut t) = probing(AimdOptions {
            max_p99_ns: 5 * MS,
            ..AimdOptions::new(256)
        });
        // Climb a little with growing throughput.
        for _ in 0..20 {
            let n = u64::from(a.limit()) * 100;
            tick_with(&mut a, &mut t, n, 80_000, 4096, 512);
        }
        let n = u64::from(a.limit()) * 100;
        // Latency far above the guard (the target): one tick ends the climb (rule 10: that
        // tick alone put the depth's band over its tail budget) but cuts nothing ...
        let held = a.limit();
        tick_with(&mut a, &mut t, n, 10 * MS, 4096, 512);
        assert_eq!(a.phase(), Phase::Settling, "the climb holds");
        assert_eq!(a.limit(), held, "one rising tick is noise");
        // ... two in a row do.
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
        until_steady(&mut a, &mut t, 16, 80_000);
        // Settled around 16; now the same depth sees twice the latency (a neighbour).
        let settled = a.limit();
        let undone0 = a.stats().undone_cuts;
        assert_eq!(a.phase(), Phase::Steady);
        // Two rising ticks confirm it; BACKOFF then measures the depth in force for
        // REFERENCE_TICKS ticks, and cuts.
        for _ in 0..SPIKE_CONFIRM + REFERENCE_TICKS {
            tick_with(&mut a, &mut t, 800, 160_000, 4096, 512);
            assert_eq!(a.limit(), settled);
        }
        tick_with(&mut a, &mut t, 800, 160_000, 4096, 512);
        assert!(a.limit() < settled, "{} !< {settled}", a.limit());
        // The smaller depth completes as much (the neighbour halved the device): the cut stays.
        let cut = a.limit();
        for _ in 0..=KNEE_WINDOW_MIN_TICKS {
            tick_with(&mut a, &mut t, 800, 160_000, 4096, 512);
        }
        assert!(a.limit() <= cut, "{} > {cut}", a.limit());
        assert_eq!(a.stats().undone_cuts, undone0);
    }

    #[test]
    fn a_cut_that_costs_throughput_is_undone() {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        until_steady(&mut a, &mut t, 64, 80_000);
        let settled = a.limit();
        assert!((60..=72).contains(&settled), "{settled}");
        // Its latency doubles at the same throughput (a burst of stalls, or a neighbour that
        // depth out-competes): the controller measures, cuts, and the cut loses throughput in
        // proportion (Little's law at a fixed latency), so it is undone.
        let (mut undone, undone0, backoffs0) = (false, a.stats().undone_cuts, a.stats().backoffs);
        for _ in 0..40 {
            let n = u64::from(a.limit().min(64)) * 100;
            tick_with(&mut a, &mut t, n, 160_000, 4096, 512);
            if a.stats().undone_cuts > undone0 {
                undone = true;
                break;
            }
        }
        assert!(undone, "limit {} {:?}", a.limit(), a.stats());
        let backoffs = a.stats().backoffs;
        assert_eq!(backoffs, backoffs0 + 1);
        // It climbs back (1/8 per tick), checks the depth, and its latency is now the floor: no
        // further cuts at the same latency.
        until_steady(&mut a, &mut t, 64, 160_000);
        for _ in 0..50 {
            let n = u64::from(a.limit().min(64)) * 100;
            tick_with(&mut a, &mut t, n, 160_000, 4096, 512);
        }
        assert_eq!(a.stats().backoffs, backoffs);
        assert_eq!(a.limit(), settled);
    }

    #[test]
    fn a_faster_device_is_searched_at_once() {
        let (mut a, mut t) = probing(AimdOptions::new(256));
        until_steady(&mut a, &mut t, 16, 80_000);
        let searches = a.stats().knee_searches;
        // The latency halves at the same depth and the knee moves up to 64: two ticks later a
        // knee search starts, long before the next periodic re-probe.
        for _ in 0..SPIKE_CONFIRM {
            let n = u64::from(a.limit().min(64)) * 100;
            tick_with(&mut a, &mut t, n, 40_000, 4096, 512);
        }
        assert_eq!(a.phase(), Phase::Probing);
        until_steady(&mut a, &mut t, 64, 40_000);
        assert!(a.stats().knee_searches > searches);
        assert!((64..=70).contains(&a.limit()), "{}", a.limit());
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
        // A target makes the 10 ms latencies below cut at once.
        let (mut a, mut t) = probing(AimdOptions {
            max_p99_ns: MS,
            ..AimdOptions::new(64)
        });
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
