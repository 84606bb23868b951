//! Cost of one AIMD controller tick (the per-ring work done every 10 ms), and of the per-
//! completion bookkeeping (`on_complete` with a sampled latency).
//!
//! - `aimd/tick`: one evaluated tick of a controller that is probing (the busiest phase: a
//!   sample, the windows, the efficiency ratio, a step), with 200 latency samples recorded in the
//!   window beforehand (setup, not timed). Goal: ≤ 200 ns.
//! - `aimd/tick_passthrough`: the same in PASSTHROUGH (a sample and the engagement rules).
//! - `aimd/tick_target`: `tick` with a max-P99 target, which also merges the 1 s target window
//!   (10 histograms) for its P99.
//! - `aimd/on_complete`: one completion with a latency, per element.

use aura_core::aimd::{Aimd, AimdOptions, Phase, TICK_NS};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// A controller driven (closed loop, steady latencies) into `phase`, with its clock at the
/// returned time.
fn controller_in(phase: Phase) -> (Aimd, u64) {
    let mut a = Aimd::new(AimdOptions::new(256)).expect("valid options");
    let mut now = 0;
    a.tick(now, 0);
    let pending = if phase == Phase::Passthrough { 8 } else { 512 };
    for _ in 0..10_000 {
        for i in 0..200u64 {
            a.on_complete(Some(80_000 + (i % 7) * 5_000), 4096);
        }
        now += TICK_NS;
        a.tick(now, pending);
        if a.phase() == phase {
            break;
        }
    }
    assert_eq!(a.phase(), phase);
    (a, now)
}

/// A copy of `base` with one window of 200 samples recorded, ready for its next tick.
fn with_window(base: &Aimd) -> Aimd {
    let mut a = base.clone();
    for i in 0..200u64 {
        a.on_complete(Some(80_000 + (i % 11) * 3_000), 4096);
    }
    a.on_submit(16);
    a
}

fn tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("aimd");
    for (name, phase, pending) in [
        ("tick", Phase::Probing, 512),
        ("tick_passthrough", Phase::Passthrough, 8),
    ] {
        let (base, now) = controller_in(phase);
        g.bench_function(name, |b| {
            // By reference: moving the 2.5 KiB controller into the routine would be timed too.
            b.iter_batched_ref(
                || with_window(&base),
                |a| black_box(a.tick(black_box(now + TICK_NS), pending)),
                BatchSize::SmallInput,
            )
        });
    }
    let (mut base, mut now) = controller_in(Phase::Probing);
    base.set_max_p99_ns(2_000_000);
    // One tick allocates and starts filling the target window (setup, not timed).
    let mut warm = with_window(&base);
    now += TICK_NS;
    warm.tick(now, 512);
    let base = warm;
    g.bench_function("tick_target", |b| {
        b.iter_batched_ref(
            || with_window(&base),
            |a| black_box(a.tick(black_box(now + TICK_NS), 512)),
            BatchSize::SmallInput,
        )
    });
    let (mut a, _) = controller_in(Phase::Probing);
    g.throughput(Throughput::Elements(1));
    g.bench_function("on_complete", |b| {
        let mut lat = 80_000u64;
        b.iter(|| {
            lat = lat
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
                % 3_000_000;
            a.on_complete(Some(black_box(lat)), 4096);
        })
    });
    g.finish();
}

mod harness {
    #![allow(missing_docs)]

    use super::{criterion_group, tick};

    criterion_group!(benches, tick);
}

criterion_main!(harness::benches);
