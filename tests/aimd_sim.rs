//! The AIMD controller proven against the device model, in simulated time (deterministic, no
//! sleeps): convergence from a cold start on every device profile, the latency guard and a
//! max-P99 target, a noisy neighbour, a phase change, engagement for closed- and open-loop load,
//! and bounds under random parameters.

use aura_core::aimd::{AimdOptions, Phase, PROBE_STEP_DIV};
use aura_core::sim::device::{hdd, network, nvme, nvme_knee16, sata_ssd, virtio, Event, Profile};
use aura_core::sim::scenario::{run, settle_time_ns, summarize, Gate, Load, Scenario};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

fn closed_loop(profile: Profile, depth: u32, gate: Gate, secs: u64) -> Scenario {
    Scenario::new(profile, Load::ClosedLoop { depth }, gate, secs * SEC)
}

fn within(limit: u32, knee: u32, percent: u64) -> bool {
    u64::from(limit).abs_diff(u64::from(knee)) * 100 <= u64::from(knee) * percent
}

#[test]
fn converges_from_a_cold_start_on_every_profile() {
    for profile in [nvme(), sata_ssd(), hdd(), network()] {
        let s = closed_loop(profile, 256, Gate::Aimd(AimdOptions::new(256)), 5);
        let rows = run(&s);
        let at = settle_time_ns(&rows, 0, 5 * SEC, 25)
            .unwrap_or_else(|| panic!("{}: never settled", profile.name));
        assert!(at <= 2 * SEC, "{}: settled at {} ms", profile.name, at / MS);
        let next = summarize(&rows, at, at + SEC);
        assert!(
            next.iops * 100 >= next.max_iops * 95,
            "{}: {} IOPS over the second after settling, max {}",
            profile.name,
            next.iops,
            next.max_iops
        );
        // Once converged, the P99 seen stays under the controller's latency guard.
        for r in rows
            .iter()
            .filter(|r| r.t_ns > at && r.guard_ns > 0 && r.completions >= 20)
        {
            assert!(
                r.p99_ns < r.guard_ns,
                "{} at {} ms: P99 {} ns over the guard {} ns",
                profile.name,
                r.t_ns / MS,
                r.p99_ns,
                r.guard_ns
            );
        }
    }
}

/// A soft knee (the virtio disk this project is measured on: throughput grows to depth ~128,
/// each doubling past 32 buying 5–9 %, with ±4 % swings per 100 ms and multi-ms stall storms
/// past depth 48): without a target the controller finds the depth where throughput stops
/// improving, not one where the latency first grows. Over the two seconds after 2 s it
/// completes ≥ 97 % of the device's best (what fio's best static depth gets) at a P99 no higher
/// than static depth 256's (within 10 %), and over the first 3 s, convergence included, ≥ 93 % of static
/// 256's completions. (Rules 1–6 alone settled at depth 17: 76 %.)
#[test]
fn finds_the_soft_knee_of_a_virtio_disk() {
    let mut depths = Vec::new();
    for seed in 1u64..=6 {
        let mut s = closed_loop(virtio(), 256, Gate::Aimd(AimdOptions::new(256)), 4);
        s.seed = seed;
        let rows = run(&s);
        let mut st = closed_loop(virtio(), 256, Gate::Static(256), 4);
        st.seed = seed;
        let fixed = run(&st);
        let after = summarize(&rows, 2 * SEC, 4 * SEC);
        let fixed_after = summarize(&fixed, 2 * SEC, 4 * SEC);
        assert!(
            after.iops * 100 >= after.max_iops * 97,
            "seed {seed}: {} IOPS at limit {} ({}–{}), max {}",
            after.iops,
            after.limit_median,
            after.limit_min,
            after.limit_max,
            after.max_iops
        );
        // (Within 10 %: where it settles near 256 the two P99s are the same depth's, and the
        // stall storms make them differ by a few % either way.)
        assert!(
            after.p99_ns * 10 <= fixed_after.p99_ns * 11,
            "seed {seed}: P99 {} ns vs static 256's {} ns",
            after.p99_ns,
            fixed_after.p99_ns
        );
        depths.push(after.limit_median);
        let whole = summarize(&rows, 0, 3 * SEC);
        let fixed_whole = summarize(&fixed, 0, 3 * SEC);
        assert!(
            whole.iops * 100 >= fixed_whole.iops * 93,
            "seed {seed}: {} IOPS over the run vs static 256's {}",
            whole.iops,
            fixed_whole.iops
        );
    }
    // Typically below the client's depth: the last steps bought nothing (the ±4 % swings can
    // leave one run's search unable to tell 128 from 256).
    depths.sort_unstable();
    assert!(depths[depths.len() / 2] < 192, "{depths:?}");
}

/// The best throughput a static depth achieves while its P99 stays at or under `target_ns`.
fn best_static_under(profile: Profile, target_ns: u64) -> (u32, u64) {
    let mut best = (0, 0);
    for depth in [
        1u32, 2, 4, 8, 12, 16, 24, 32, 48, 64, 80, 96, 112, 128, 160, 192, 256,
    ] {
        let rows = run(&closed_loop(profile, 256, Gate::Static(depth), 2));
        let sum = summarize(&rows, SEC / 2, 2 * SEC);
        if sum.p99_ns <= target_ns && sum.iops > best.1 {
            best = (depth, sum.iops);
        }
    }
    best
}

#[test]
fn holds_an_achievable_p99_target_at_near_best_throughput() {
    for (profile, target_ns) in [
        (nvme(), 250_000),
        (network(), 2_500_000),
        (sata_ssd(), 400_000),
    ] {
        let (depth, best) = best_static_under(profile, target_ns);
        assert!(
            best > 0,
            "{}: target {target_ns} not achievable statically",
            profile.name
        );
        let opts = AimdOptions {
            max_p99_ns: target_ns,
            ..AimdOptions::new(256)
        };
        let rows = run(&closed_loop(profile, 256, Gate::Aimd(opts), 6));
        let sum = summarize(&rows, 2 * SEC, 6 * SEC);
        assert!(
            sum.p99_ns <= target_ns,
            "{}: P99 {} ns over the target {target_ns}",
            profile.name,
            sum.p99_ns
        );
        assert!(
            sum.iops * 100 >= best * 90,
            "{}: {} IOPS, best static depth {depth} gives {best}",
            profile.name,
            sum.iops
        );
    }
}

#[test]
fn noisy_neighbour_backs_off_fast_and_recovers() {
    let onset = 2 * SEC;
    let gone = 4 * SEC;
    let mut s = closed_loop(nvme(), 256, Gate::Aimd(AimdOptions::new(256)), 7);
    s.events.push(Event::NoisyNeighbour {
        start_ns: onset,
        end_ns: gone,
        steal_permille: 500,
    });
    let rows = run(&s);
    let before = summarize(&rows, onset - SEC / 2, onset).limit_median;
    assert!(within(before, 64, 10), "pre-noise depth {before}");
    let first_cut = rows
        .iter()
        .find(|r| r.t_ns > onset && r.limit < before)
        .map(|r| r.t_ns - 10 * MS - onset)
        .expect("never backed off");
    assert!(
        first_cut <= 100 * MS,
        "backed off {} ms after the onset",
        first_cut / MS
    );
    // During the noise it settles at the neighbour-reduced knee (32).
    let during = summarize(&rows, onset + SEC / 2, gone);
    assert!(
        within(during.limit_median, 32, 25),
        "depth during the noise {}",
        during.limit_median
    );
    // After it stops, back within 10% of the pre-noise depth within 2 s, and staying there
    // (but for re-probes, whose one step is 1/8 of the depth: +1 steps gain less than a
    // soft-knee device's noise, rule 5 of the controller's docs).
    let mut recovered = None;
    let div = u64::from(PROBE_STEP_DIV);
    for r in rows.iter().filter(|r| r.t_ns > gone) {
        let reprobe = u64::from(r.limit) * 100 * div <= u64::from(before) * 110 * (div + 1);
        let ok = within(r.limit, before, 10)
            || (r.phase == Phase::Probing && recovered.is_some() && reprobe);
        match (ok, recovered) {
            (true, None) => recovered = Some(r.t_ns - 10 * MS),
            (false, _) => recovered = None,
            _ => {}
        }
    }
    let recovered = recovered.expect("never recovered");
    assert!(
        recovered - gone <= 2 * SEC,
        "recovered {} ms after the noise",
        (recovered - gone) / MS
    );
}

#[test]
fn reconverges_after_a_phase_change_either_way() {
    let down = 2 * SEC;
    let up = 5 * SEC;
    let mut s = closed_loop(nvme(), 256, Gate::Aimd(AimdOptions::new(256)), 8);
    s.events.push(Event::PhaseChange {
        at_ns: down,
        profile: nvme_knee16(),
    });
    s.events.push(Event::PhaseChange {
        at_ns: up,
        profile: nvme(),
    });
    let rows = run(&s);
    let at = settle_time_ns(&rows, down, up, 25).expect("never settled at the new knee 16");
    assert!(
        at - down <= 2 * SEC,
        "reconverged to 16 after {} ms",
        (at - down) / MS
    );
    let at = settle_time_ns(&rows, up, 8 * SEC, 25).expect("never settled back at 64");
    assert!(
        at - up <= 2 * SEC,
        "reconverged to 64 after {} ms",
        (at - up) / MS
    );
    let after = summarize(&rows, at, at + SEC);
    assert!(after.iops * 100 >= after.max_iops * 95);
}

#[test]
fn closed_loop_demand_engages_and_settles_at_the_knee() {
    let rows = run(&closed_loop(
        nvme(),
        256,
        Gate::Aimd(AimdOptions::new(1024)),
        3,
    ));
    let engaged = rows
        .iter()
        .position(|r| r.phase.is_engaged())
        .expect("never engaged");
    assert!(
        rows[engaged].t_ns <= 200 * MS,
        "engaged at {} ms",
        rows[engaged].t_ns / MS
    );
    let end = summarize(&rows, 2 * SEC, 3 * SEC);
    assert!(
        within(end.limit_median, 64, 25),
        "limit {}",
        end.limit_median
    );
    // The static depth the client asked for would have quadrupled the latency for nothing.
    let fixed = run(&closed_loop(nvme(), 256, Gate::Static(256), 3));
    let fixed = summarize(&fixed, 2 * SEC, 3 * SEC);
    assert!(
        end.iops * 100 >= fixed.iops * 97,
        "{} vs static {}",
        end.iops,
        fixed.iops
    );
    assert!(
        end.mean_ns * 3 < fixed.mean_ns,
        "{} ns vs static {} ns",
        end.mean_ns,
        fixed.mean_ns
    );
}

#[test]
fn open_loop_below_capacity_stays_in_passthrough() {
    for profile in [nvme(), hdd()] {
        let max = u64::from(profile.knee) * SEC / profile.base_ns;
        let s = Scenario::new(
            profile,
            Load::OpenLoop { iops: max / 2 },
            Gate::Aimd(AimdOptions::new(256)),
            3 * SEC,
        );
        let rows = run(&s);
        assert!(
            rows.iter().all(|r| r.phase == Phase::Passthrough),
            "{} engaged",
            profile.name
        );
        let sum = summarize(&rows, SEC, 3 * SEC);
        assert!(
            sum.iops * 100 >= (max / 2) * 98,
            "{}: {} IOPS",
            profile.name,
            sum.iops
        );
    }
}

#[test]
fn open_loop_above_capacity_engages_and_keeps_the_device_busy() {
    let max = 800_000;
    let s = Scenario::new(
        nvme(),
        Load::OpenLoop { iops: max * 3 / 2 },
        Gate::Aimd(AimdOptions::new(1024)),
        3 * SEC,
    );
    let rows = run(&s);
    let engaged = rows
        .iter()
        .position(|r| r.phase.is_engaged())
        .expect("never engaged");
    assert!(rows[engaged].t_ns <= 200 * MS);
    let sum = summarize(&rows, 2 * SEC, 3 * SEC);
    assert!(sum.iops * 100 >= max * 95, "{} IOPS", sum.iops);
    assert!(
        within(sum.limit_median, 64, 25),
        "limit {}",
        sum.limit_median
    );
}

/// xorshift64*: the property tests' own seeded generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn limits_stay_in_bounds_under_random_models_and_options() {
    let mut rng = Rng(0x0a1d_5eed);
    for case in 0..60 {
        let profile = Profile {
            name: "random",
            base_ns: 1_000 + rng.below(20 * MS),
            knee: 1 + rng.below(300) as u32,
            jitter_permille: rng.below(1001) as u32,
            tail_permille: rng.below(334) as u32,
            bytes_per_io: rng.below(1 << 30),
            ..aura_core::sim::device::SHARP
        };
        let max = 1 + rng.below(1024) as u32;
        let min = if rng.below(3) == 0 {
            0
        } else {
            1 + rng.below(u64::from(max)) as u32
        };
        let floor = if min == 0 { 4.min(max) } else { min };
        let initial = if rng.below(2) == 0 {
            0
        } else {
            floor + rng.below(u64::from(max - floor) + 1) as u32
        };
        let opts = AimdOptions {
            max_in_flight: max,
            min_in_flight: min,
            initial_in_flight: initial,
            max_p99_ns: if rng.below(2) == 0 {
                0
            } else {
                rng.below(200 * MS)
            },
            batch_threshold: rng.below(3) as u32 * rng.below(128) as u32,
        };
        let load = if rng.below(2) == 0 {
            Load::ClosedLoop {
                depth: rng.below(2048) as u32,
            }
        } else {
            Load::OpenLoop {
                iops: rng.below(2_000_000),
            }
        };
        let mut s = Scenario::new(profile, load, Gate::Aimd(opts), SEC + rng.below(SEC));
        if rng.below(2) == 0 {
            let start = rng.below(SEC);
            s.events.push(Event::NoisyNeighbour {
                start_ns: start,
                end_ns: start + rng.below(SEC),
                steal_permille: rng.below(1001) as u32,
            });
        }
        s.seed = rng.next();
        let rows = run(&s);
        let mut prev = Phase::Passthrough;
        for r in &rows {
            assert!(
                r.limit >= floor && r.limit <= max,
                "case {case}: limit {} outside [{floor}, {max}] ({opts:?}, {profile:?})",
                r.limit
            );
            assert!(
                prev.can_become(r.phase),
                "case {case}: {prev:?} -> {:?}",
                r.phase
            );
            prev = r.phase;
        }
    }
}

/// The goal for `--target_p99=1ms` on the virtio disk, in the model: from a cold start,
/// over 5 s (convergence included: the P99 a user measures is the whole run's), the run's P99 is
/// under a 1 ms target and the run completes ≥ 95 % of what the best static depth whose P99
/// meets the target completes over the same 5 s (depth 48, just under the model's stall storms).
/// Rules 1–6 alone: P99 2.6 ms and 0.83 × (80 ms at depth 256 before engaging put 2 % of the
/// run over the target, and the 1 s target window, still holding those samples, cut the climb
/// back to depth 4 for a second); rule 9: P99 0.65–0.9 ms at 0.97–0.99 ×.
#[test]
fn holds_a_1ms_target_on_a_virtio_disk_over_the_whole_run() {
    let target_ns = MS;
    let secs = 5;
    for seed in 1u64..=6 {
        let mut best = (0u32, 0u64, 0u64);
        for depth in [8u32, 16, 24, 32, 40, 48, 56, 64, 96, 128] {
            let mut st = closed_loop(virtio(), 256, Gate::Static(depth), secs);
            st.seed = seed;
            let sum = summarize(&run(&st), 0, secs * SEC);
            if sum.p99_ns <= target_ns && sum.iops > best.1 {
                best = (depth, sum.iops, sum.p99_ns);
            }
        }
        let opts = AimdOptions {
            max_p99_ns: target_ns,
            ..AimdOptions::new(256)
        };
        let mut s = closed_loop(virtio(), 256, Gate::Aimd(opts), secs);
        s.seed = seed;
        let rows = run(&s);
        let sum = summarize(&rows, 0, secs * SEC);
        let late = summarize(&rows, 2 * SEC, secs * SEC);
        assert!(
            sum.p99_ns < target_ns,
            "seed {seed}: P99 {} ns over the 1 ms target (limit {}, {}–{} after 2 s)",
            sum.p99_ns,
            late.limit_median,
            late.limit_min,
            late.limit_max
        );
        assert!(
            sum.iops * 100 >= best.1 * 95,
            "seed {seed}: {} IOPS vs best static depth {} under the target: {}",
            sum.iops,
            best.0,
            best.1
        );
    }
}
