//! Runs the AIMD controller ([`crate::aimd::Aimd`]), or a static depth for comparison, against a
//! simulated [`Device`] in simulated time, and records one [`TickRow`] per controller tick
//! ([`TICK_NS`], 10 ms).
//!
//! # The loop
//!
//! Each tick is cut into sub-steps of `min(1 ms, smallest base_ns of the scenario's profiles)`
//! (80 µs for NVMe, 150 µs for SATA, 500 µs for network storage, 1 ms for a disk; a tick that
//! does not divide evenly gets sub-steps differing by a nanosecond). Sub-steps no longer than a
//! service time keep the device's cap of "at most `in_flight` completions per step" from binding
//! (see [`super::device`]), so the device's throughput is the model's `X(N)` at every depth. Per
//! sub-step:
//!
//! 1. open loop: arrivals join `pending` at the offered rate (with a carry, so the long-run rate is
//!    exact); closed loop: `pending` stays at the depth (every completion is replaced at once);
//! 2. in-flight becomes `max(carried, min(pending, limit))`, where `carried` is what was in the
//!    device after the last sub-step's completions: requests already in the device stay there
//!    when the limit drops, and drain as they complete; the new admissions are reported to the
//!    controller with one [`Aimd::on_submit`];
//! 3. the device runs for the sub-step; every completion goes to the harness's histogram and to
//!    [`Aimd::on_complete`] (its latency sampled on 1 in [`Scenario::sample_every`] completions,
//!    its bytes always), and leaves `pending`.
//!
//! At each tick's end the controller gets [`Aimd::tick`]`(now, pending)` and its new limit holds
//! for the next tick. A static gate holds its depth and reports [`Phase::Passthrough`].
//!
//! # What a row reports
//!
//! A [`TickRow`] with `t_ns = t` describes the tick `[t − 10 ms, t)`: the limit and phase in
//! force during it (decided at its start), the time-weighted mean in-flight count, `pending` at
//! its end, its completions and bytes, and the latency the harness measured itself over every
//! completion of the tick (`p99_ns`, `mean_ns`, and the tick's [`Histogram`] for window
//! statistics, see [`summarize`]) — not the controller's sampled estimate. Latency is the device's
//! (submit to completion); time spent queued behind the gate is not included (it shows as
//! `pending`). `knee` and `max_iops` are the model's truth at the tick's start; `guard_ns` and
//! `latency_floor_ns` are the controller's thresholds after the tick, for plots.
//!
//! The histogram's tiers end at 100 ms: slower completions (an overloaded disk) report as
//! 200 ms. The harness records every completion (no sampling: it is not the bottleneck): a
//! 3-second NVMe run under the controller (2.1 M completions) takes ≈ 15–30 ms in release and
//! ≈ 0.1 s in a debug build, 1.3 KiB of histogram per row included.
//!
//! Everything is integer and deterministic for a given [`Scenario::seed`].

use alloc::vec::Vec;

use super::device::{Device, Event, Profile};
use crate::aimd::{Aimd, AimdOptions, Phase, PLATEAU_CONFIRM, TICK_NS};
use crate::histogram::Histogram;

/// Nanoseconds per second.
const NS_PER_SEC: u64 = 1_000_000_000;

/// The longest device sub-step: 1 ms.
pub const MAX_SUBSTEP_NS: u64 = 1_000_000;

/// The seed of [`Scenario::new`].
pub const DEFAULT_SEED: u64 = 0xA0_2A;

/// Latency sampling of [`Scenario::new`]: 0, i.e. as the controller asks (every completion
/// under 50k IOPS, 1 in 8 above), which is what the Engine does.
pub const DEFAULT_SAMPLE_EVERY: u32 = 0;

/// How the application offers requests.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Load {
    /// `depth` requests always pending: every completion is replaced at once (fio-style).
    ClosedLoop {
        /// Requests the client keeps pending.
        depth: u32,
    },
    /// Requests arrive at a fixed rate whatever the device does, and queue without bound.
    OpenLoop {
        /// Arrivals per second.
        iops: u64,
    },
}

/// What decides the in-flight limit.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// The AIMD controller with these options.
    Aimd(AimdOptions),
    /// A fixed in-flight limit.
    Static(u32),
}

/// One simulated run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The device's behaviour at the start.
    pub profile: Profile,
    /// What happens to the device during the run.
    pub events: Vec<Event>,
    /// How requests are offered.
    pub load: Load,
    /// What limits the requests in flight.
    pub gate: Gate,
    /// Simulated time to run, rounded up to whole ticks.
    pub duration_ns: u64,
    /// Seed of the device's latency draws.
    pub seed: u64,
    /// The controller gets the latency of 1 completion in this many (1: all; 0: as the
    /// controller's [`crate::aimd::Decision::sample_every`] asks, as the Engine does).
    pub sample_every: u32,
}

impl Scenario {
    /// A scenario with no events, [`DEFAULT_SEED`] and [`DEFAULT_SAMPLE_EVERY`].
    pub fn new(profile: Profile, load: Load, gate: Gate, duration_ns: u64) -> Self {
        Scenario {
            profile,
            events: Vec::new(),
            load,
            gate,
            duration_ns,
            seed: DEFAULT_SEED,
            sample_every: DEFAULT_SAMPLE_EVERY,
        }
    }

    /// The device sub-step: `min(1 ms, smallest base_ns among the profile and phase changes)`,
    /// at least 1 µs.
    pub fn substep_ns(&self) -> u64 {
        let mut base = self.profile.base_ns;
        for e in &self.events {
            if let Event::PhaseChange { profile, .. } = e {
                base = base.min(profile.base_ns);
            }
        }
        base.clamp(1_000, MAX_SUBSTEP_NS)
    }
}

/// What happened during one tick (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickRow {
    /// The tick's end; the row covers `[t_ns − TICK_NS, t_ns)`.
    pub t_ns: u64,
    /// The controller's phase during the tick ([`Phase::Passthrough`] for a static gate).
    pub phase: Phase,
    /// The in-flight limit during the tick.
    pub limit: u32,
    /// Mean requests in the device over the tick (time-weighted, rounded down).
    pub in_flight: u32,
    /// Requests handed over and not completed at the tick's end (saturating).
    pub pending: u32,
    /// Completions in the tick.
    pub completions: u64,
    /// Completions per second over the tick.
    pub iops: u64,
    /// Bytes completed in the tick.
    pub bytes: u64,
    /// P99 latency of every completion of the tick (harness-measured, a bucket midpoint; 0 if
    /// none).
    pub p99_ns: u64,
    /// Mean latency of every completion of the tick (0 if none).
    pub mean_ns: u64,
    /// The model's effective knee at the tick's start.
    pub knee: u32,
    /// The model's capacity at the tick's start, completions per second.
    pub max_iops: u64,
    /// The controller's latency guard after this tick (its max-P99 target, or 10 × its baseline
    /// P99; [`crate::aimd::AimdStats::guard_ns`]); 0 for a static gate and before it engages.
    pub guard_ns: u64,
    /// The controller's latency floor after this tick (its queueing signal fires at a mean of
    /// 1.25 × this; [`crate::aimd::AimdStats::latency_floor_ns`]); 0 as for `guard_ns`.
    pub latency_floor_ns: u64,
    /// Every completion latency of the tick.
    pub hist: Histogram,
}

/// Statistics over a window of rows ([`summarize`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows in the window.
    pub ticks: u32,
    /// Completions per second over the window.
    pub iops: u64,
    /// Mean of the model's capacity over the window, completions per second.
    pub max_iops: u64,
    /// P99 over every completion of the window (0 if none).
    pub p99_ns: u64,
    /// Mean latency over every completion of the window (0 if none).
    pub mean_ns: u64,
    /// The median limit (the lower middle for an even count).
    pub limit_median: u32,
    /// The smallest limit.
    pub limit_min: u32,
    /// The largest limit.
    pub limit_max: u32,
}

/// Runs `s` and returns one row per tick.
///
/// # Panics
///
/// If `s.gate` holds options [`Aimd::new`] refuses.
pub fn run(s: &Scenario) -> Vec<TickRow> {
    let mut device = Device::new(s.profile, s.events.clone(), s.seed);
    // The controller, or `None` for a static gate.
    let mut aimd = match s.gate {
        Gate::Aimd(opts) => match Aimd::new(opts) {
            Ok(a) => Some(a),
            Err(e) => panic!("invalid AimdOptions: {e}"),
        },
        Gate::Static(_) => None,
    };
    let ticks = s.duration_ns.div_ceil(TICK_NS);
    let substeps = TICK_NS.div_ceil(s.substep_ns());
    let mut sample_every = s.sample_every.max(1);

    let mut pending: u64 = match s.load {
        Load::ClosedLoop { depth } => u64::from(depth),
        Load::OpenLoop { .. } => 0,
    };
    // The controller's first tick only starts its window; a static gate holds its depth.
    let (mut limit, mut phase) = match (&mut aimd, s.gate) {
        (Some(a), _) => {
            let d = a.tick(0, sat_u32(pending));
            (d.limit, d.phase)
        }
        (None, Gate::Static(n)) => (n, Phase::Passthrough),
        (None, Gate::Aimd(_)) => (u32::MAX, Phase::Passthrough), // not reached
    };
    let mut carried: u32 = 0;
    let mut arrival_carry: u64 = 0;
    let mut sample_ctr: u32 = 0;
    let mut rows = Vec::with_capacity(usize::try_from(ticks).unwrap_or(0));

    for tick in 0..ticks {
        let t0 = tick * TICK_NS;
        let mut hist = Histogram::new();
        let (mut completions, mut bytes_total) = (0u64, 0u64);
        let mut in_flight_ns: u128 = 0;
        for i in 0..substeps {
            let start = t0 + i * TICK_NS / substeps;
            let dt = t0 + (i + 1) * TICK_NS / substeps - start;
            if let Load::OpenLoop { iops } = s.load {
                let work = u128::from(arrival_carry) + u128::from(iops) * u128::from(dt);
                pending = pending.saturating_add(
                    u64::try_from(work / u128::from(NS_PER_SEC)).unwrap_or(u64::MAX),
                );
                arrival_carry = (work % u128::from(NS_PER_SEC)) as u64;
            }
            let in_flight = carried.max(sat_u32(pending).min(limit));
            let admitted = in_flight - carried;
            if admitted > 0 {
                if let Some(a) = &mut aimd {
                    a.on_submit(admitted);
                }
            }
            in_flight_ns += u128::from(in_flight) * u128::from(dt);
            let done = match &mut aimd {
                Some(a) => device.step(start, dt, in_flight, &mut |lat, bytes| {
                    hist.record(lat);
                    bytes_total += bytes;
                    sample_ctr += 1;
                    if sample_ctr >= sample_every {
                        sample_ctr = 0;
                        a.on_complete(Some(lat), bytes);
                    } else {
                        a.on_complete(None, bytes);
                    }
                }),
                None => device.step(start, dt, in_flight, &mut |lat, bytes| {
                    hist.record(lat);
                    bytes_total += bytes;
                }),
            };
            completions += u64::from(done);
            carried = in_flight - done;
            if let Load::OpenLoop { .. } = s.load {
                pending -= u64::from(done);
            }
        }
        let t1 = t0 + TICK_NS;
        rows.push(TickRow {
            t_ns: t1,
            phase,
            limit,
            in_flight: sat_u32(
                u64::try_from(in_flight_ns / u128::from(TICK_NS)).unwrap_or(u64::MAX),
            ),
            pending: sat_u32(pending),
            completions,
            iops: completions * NS_PER_SEC / TICK_NS,
            bytes: bytes_total,
            p99_ns: hist.p99_ns().unwrap_or(0),
            mean_ns: hist.mean_ns().unwrap_or(0),
            knee: device.knee_at(t0),
            max_iops: device.max_iops_at(t0),
            guard_ns: 0,
            latency_floor_ns: 0,
            hist,
        });
        if let Some(a) = &mut aimd {
            let d = a.tick(t1, sat_u32(pending));
            limit = d.limit;
            phase = d.phase;
            if s.sample_every == 0 {
                sample_every = d.sample_every;
            }
            if let Some(row) = rows.last_mut() {
                let st = a.stats();
                row.guard_ns = st.guard_ns;
                row.latency_floor_ns = st.latency_floor_ns;
            }
        }
    }
    rows
}

fn sat_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The rows of the window: those with `from_ns < t_ns ≤ to_ns` (the ticks that end in it).
fn window(rows: &[TickRow], from_ns: u64, to_ns: u64) -> impl Iterator<Item = &TickRow> {
    rows.iter()
        .filter(move |r| r.t_ns > from_ns && r.t_ns <= to_ns)
}

/// Statistics over the ticks ending in `(from_ns, to_ns]`: mean IOPS, P99 and mean latency over
/// every completion (the ticks' histograms merged), and the limit's median, minimum and maximum.
/// An empty window gives zeros.
pub fn summarize(rows: &[TickRow], from_ns: u64, to_ns: u64) -> Summary {
    let mut hist = Histogram::new();
    let mut limits = Vec::new();
    let (mut completions, mut max_iops) = (0u64, 0u64);
    for r in window(rows, from_ns, to_ns) {
        hist.merge(&r.hist);
        limits.push(r.limit);
        completions += r.completions;
        max_iops += r.max_iops;
    }
    if limits.is_empty() {
        return Summary::default();
    }
    let n = limits.len() as u64;
    limits.sort_unstable();
    Summary {
        ticks: sat_u32(n),
        iops: completions * NS_PER_SEC / (n * TICK_NS),
        max_iops: max_iops / n,
        p99_ns: hist.p99_ns().unwrap_or(0),
        mean_ns: hist.mean_ns().unwrap_or(0),
        limit_median: limits[(limits.len() - 1) / 2],
        limit_min: limits[0],
        limit_max: limits[limits.len() - 1],
    }
}

/// When the limit settled near the model's knee within the ticks ending in `(from_ns, to_ns]`:
/// the start of the first tick from which every later tick of the window has a limit
/// within ±`tolerance_percent` % of its row's `knee`. Once settled, re-probe excursions (PROBING
/// and BACKOFF ticks) may exceed the band by up to [`PLATEAU_CONFIRM`] steps: each re-probe takes
/// at most that many +1 steps before rolling them back. `None` if the window ends outside the
/// band (or is empty).
pub fn settle_time_ns(
    rows: &[TickRow],
    from_ns: u64,
    to_ns: u64,
    tolerance_percent: u32,
) -> Option<u64> {
    let mut settled = None;
    for r in window(rows, from_ns, to_ns) {
        let knee = u64::from(r.knee);
        let band = knee * u64::from(tolerance_percent);
        let limit = u64::from(r.limit);
        let inside = limit.abs_diff(knee) * 100 <= band;
        let excursion = settled.is_some()
            && matches!(r.phase, Phase::Probing | Phase::Backoff)
            && limit >= knee
            && (limit - knee) * 100 <= band + u64::from(PLATEAU_CONFIRM) * 100;
        match (inside || excursion, settled) {
            (true, None) => settled = Some(r.t_ns - TICK_NS),
            (false, _) => settled = None,
            (true, Some(_)) => {}
        }
    }
    settled
}

#[cfg(test)]
mod tests {
    use super::super::device::{hdd, network, nvme, nvme_knee16, sata_ssd};
    use super::*;
    use alloc::vec;

    const MS: u64 = 1_000_000;

    fn static_closed(profile: Profile, depth: u32, limit: u32, ms: u64) -> Vec<TickRow> {
        run(&Scenario::new(
            profile,
            Load::ClosedLoop { depth },
            Gate::Static(limit),
            ms * MS,
        ))
    }

    #[test]
    fn static_depth_reproduces_the_model() {
        for p in [nvme(), sata_ssd(), network(), hdd()] {
            for n in [1, p.knee / 2, p.knee, 2 * p.knee, 4 * p.knee] {
                let n = n.max(1);
                // Long enough for ~10 000 completions, in whole ticks.
                let ms = (10_000 * p.base_ns / u64::from(n.min(p.knee)) / MS).div_ceil(10) * 10;
                let rows = static_closed(p, 1_000, n, ms);
                let d = Device::new(p, vec![], 0);
                let want_iops = d.iops_at(n, 0);
                let sum = summarize(&rows, 0, ms * MS);
                assert!(
                    sum.iops.abs_diff(want_iops) * 100 <= want_iops,
                    "{} n={n}: {} vs {want_iops}",
                    p.name,
                    sum.iops
                );
                let want_lat = d.mean_latency_ns(n, 0);
                assert!(
                    sum.mean_ns.abs_diff(want_lat) * 50 <= want_lat,
                    "{} n={n}: {} vs {want_lat}",
                    p.name,
                    sum.mean_ns
                );
                assert_eq!((sum.limit_min, sum.limit_max), (n, n));
                for r in &rows {
                    assert_eq!(
                        (r.phase, r.in_flight, r.knee, r.max_iops),
                        (Phase::Passthrough, n, p.knee, d.max_iops_at(0))
                    );
                    assert_eq!(r.pending, 1_000);
                }
            }
        }
    }

    #[test]
    fn closed_loop_below_the_limit_runs_at_the_depth() {
        let rows = static_closed(nvme(), 8, 64, 100);
        let sum = summarize(&rows, 0, 100 * MS);
        assert_eq!(sum.iops, 100_000);
        assert!(rows.iter().all(|r| r.in_flight == 8 && r.pending == 8));
    }

    #[test]
    fn open_loop_below_capacity_keeps_pending_small() {
        // 400 000 IOPS offered to an 800 000 IOPS device with no gate: Little's law says
        // 400 000 × 80 µs = 32 in the device.
        let s = Scenario::new(
            nvme(),
            Load::OpenLoop { iops: 400_000 },
            Gate::Static(u32::MAX),
            300 * MS,
        );
        let rows = run(&s);
        let sum = summarize(&rows, 50 * MS, 300 * MS);
        assert!(sum.iops.abs_diff(400_000) <= 4_000, "{}", sum.iops);
        assert!(
            rows.iter().all(|r| r.pending <= 64),
            "max pending {:?}",
            rows.iter().map(|r| r.pending).max()
        );
        assert!(sum.mean_ns.abs_diff(80_000) < 2_000, "{}", sum.mean_ns);
    }

    #[test]
    fn open_loop_above_capacity_grows_pending() {
        // 1 000 000 IOPS offered to an 800 000 IOPS device: the backlog grows by 200 000 / s.
        let s = Scenario::new(
            nvme(),
            Load::OpenLoop { iops: 1_000_000 },
            Gate::Static(64),
            300 * MS,
        );
        let rows = run(&s);
        let sum = summarize(&rows, 0, 300 * MS);
        assert!(sum.iops.abs_diff(800_000) <= 8_000, "{}", sum.iops);
        let last = rows.last().map_or(0, |r| r.pending);
        assert!(last.abs_diff(60_000) < 1_000, "pending {last}");
        assert!(rows.windows(2).all(|w| w[1].pending > w[0].pending));
        // The gate holds the device at the knee, so its latency stays at the base.
        assert!(sum.mean_ns.abs_diff(80_000) < 2_000, "{}", sum.mean_ns);
    }

    #[test]
    fn rows_report_events_at_their_ticks() {
        let mut s = Scenario::new(
            nvme(),
            Load::ClosedLoop { depth: 64 },
            Gate::Static(64),
            300 * MS,
        );
        s.events = vec![
            Event::NoisyNeighbour {
                start_ns: 100 * MS,
                end_ns: 200 * MS,
                steal_permille: 500,
            },
            Event::PhaseChange {
                at_ns: 200 * MS,
                profile: nvme_knee16(),
            },
        ];
        let rows = run(&s);
        for r in &rows {
            let (knee, iops) = match r.t_ns {
                t if t <= 100 * MS => (64, 800_000),
                t if t <= 200 * MS => (32, 400_000),
                _ => (16, 200_000),
            };
            assert_eq!((r.knee, r.max_iops), (knee, iops), "t={}", r.t_ns);
            // A static depth of 64 at the reduced knee: capacity throughput, Little's law latency.
            assert!(
                r.iops.abs_diff(iops) <= iops / 50,
                "t={} iops {}",
                r.t_ns,
                r.iops
            );
        }
        let under = summarize(&rows, 110 * MS, 200 * MS);
        assert!(under.mean_ns.abs_diff(160_000) < 3_200, "{}", under.mean_ns);
        let phase = summarize(&rows, 210 * MS, 300 * MS);
        assert!(phase.mean_ns.abs_diff(320_000) < 6_400, "{}", phase.mean_ns);
    }

    #[test]
    fn summarize_and_settle_time_windows() {
        let rows = static_closed(sata_ssd(), 64, 32, 100);
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0].t_ns, 10 * MS);
        let sum = summarize(&rows, 50 * MS, 100 * MS);
        assert_eq!(
            (sum.ticks, sum.limit_median, sum.max_iops),
            (5, 32, 213_333)
        );
        assert!(
            sum.p99_ns > sum.mean_ns && sum.p99_ns < 3 * sum.mean_ns,
            "{sum:?}"
        );
        assert_eq!(summarize(&rows, 100 * MS, 200 * MS), Summary::default());
        // Limit 32 = knee from the first tick.
        assert_eq!(settle_time_ns(&rows, 0, 100 * MS, 25), Some(0));
        assert_eq!(settle_time_ns(&rows, 30 * MS, 100 * MS, 25), Some(30 * MS));
        let far = static_closed(sata_ssd(), 64, 48, 50);
        assert_eq!(settle_time_ns(&far, 0, 50 * MS, 25), None);
        assert_eq!(settle_time_ns(&far, 0, 50 * MS, 50), Some(0));
    }

    #[test]
    fn runs_are_deterministic_and_feed_the_controller() {
        let s = Scenario::new(
            nvme(),
            Load::ClosedLoop { depth: 256 },
            Gate::Aimd(AimdOptions::new(256)),
            200 * MS,
        );
        let a = run(&s);
        assert_eq!(a, run(&s));
        assert_eq!(a.len(), 20);
        // The controller starts in PASSTHROUGH with its maximum as the limit.
        assert_eq!(
            (a[0].phase, a[0].limit, a[0].in_flight),
            (Phase::Passthrough, 256, 256)
        );
        let mut other = s.clone();
        other.seed += 1;
        assert_ne!(a, run(&other));
    }

    #[test]
    fn substep_is_the_smallest_base_up_to_a_millisecond() {
        let mut s = Scenario::new(hdd(), Load::ClosedLoop { depth: 1 }, Gate::Static(1), MS);
        assert_eq!(s.substep_ns(), MS);
        s.events.push(Event::PhaseChange {
            at_ns: 0,
            profile: network(),
        });
        assert_eq!(s.substep_ns(), 500_000);
        s.events.push(Event::PhaseChange {
            at_ns: 0,
            profile: nvme(),
        });
        assert_eq!(s.substep_ns(), 80_000);
    }
}
