//! NOP round-trip rate: aura-core's ring against the `io-uring` crate, measured in the same run.
//!
//! Each iteration is one round: push `B` NOPs through one SQ view, one `submit_and_wait(B)`, then
//! reap the `B` CQEs through one CQ view. Throughput is reported in NOPs per second. Both libraries
//! get a 256-entry ring with default flags, and a "tuned" ring (COOP_TASKRUN, SINGLE_ISSUER,
//! DEFER_TASKRUN). Results and the ratio table live in `benches/RESULTS.md`.
//!
//! With `NOP_RATE_PAIRED=<blocks>` in the environment, criterion is skipped and a paired run is
//! made instead: short timed blocks of the two libraries alternate (in alternating order) on the
//! same core, and the median and quartiles of the per-pair throughput ratio are printed. Noise
//! that lasts longer than one pair of blocks cancels, which resolves ~1% on a shared machine
//! where separate criterion runs scatter by ±5%.

use std::hint::black_box;
use std::time::Instant;

use aura_benches::{nop_params, NOP_BATCHES, NOP_RING_ENTRIES};
use aura_core::{op, Ring};
use criterion::{BenchmarkId, Criterion, Throughput};
use io_uring::{opcode, IoUring};

/// One aura round of `batch` NOPs; returns the sum of the reaped `user_data`s.
#[inline(never)]
fn aura_round(ring: &mut Ring, batch: u32) -> u64 {
    {
        let mut sq = ring.sq();
        for i in 0..batch {
            // SAFETY: a NOP carries no pointers.
            unsafe { sq.push(&op::nop().user_data(u64::from(i))) }.expect("SQ has room");
        }
    } // Dropping the view publishes the tail.
    ring.submit_and_wait(batch).expect("submit_and_wait");
    let mut n = 0u32;
    let mut sum = 0u64;
    for cqe in ring.cq() {
        sum = sum.wrapping_add(cqe.user_data);
        n += 1;
    }
    assert_eq!(n, batch, "aura: reaped CQEs");
    sum
}

/// One io-uring-crate round of `batch` NOPs; returns the sum of the reaped `user_data`s.
#[inline(never)]
fn uring_round(ring: &mut IoUring, batch: u32) -> u64 {
    {
        let mut sq = ring.submission();
        for i in 0..batch {
            let nop = opcode::Nop::new().build().user_data(u64::from(i));
            // SAFETY: a NOP carries no pointers.
            unsafe { sq.push(&nop) }.expect("SQ has room");
        }
    } // Dropping the view publishes the tail.
    ring.submit_and_wait(batch as usize)
        .expect("submit_and_wait");
    let mut n = 0u32;
    let mut sum = 0u64;
    for cqe in ring.completion() {
        sum = sum.wrapping_add(cqe.user_data());
        n += 1;
    }
    assert_eq!(n, batch, "io-uring: reaped CQEs");
    sum
}

fn aura_ring(tuned: bool) -> Ring {
    let ring = Ring::new(NOP_RING_ENTRIES, &nop_params(tuned)).expect("aura ring");
    assert_eq!(ring.sq_entries(), NOP_RING_ENTRIES);
    ring
}

fn uring_ring(tuned: bool) -> IoUring {
    if tuned {
        IoUring::builder()
            .setup_coop_taskrun()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(NOP_RING_ENTRIES)
            .expect("io-uring tuned ring")
    } else {
        IoUring::new(NOP_RING_ENTRIES).expect("io-uring ring")
    }
}

fn nop_rate(c: &mut Criterion) {
    // Say once what each ring was granted, so a silently dropped flag shows in the log.
    for tuned in [false, true] {
        let a = aura_ring(tuned);
        let u = uring_ring(tuned);
        let p = u.params();
        eprintln!(
            "nop_rate: tuned={tuned} aura flags={:?} cq={}; io-uring sq={} cq={} single_issuer={}",
            a.setup_flags(),
            a.cq_entries(),
            p.sq_entries(),
            p.cq_entries(),
            p.is_setup_single_issuer(),
        );
    }

    let mut g = c.benchmark_group("nop_rate");
    for batch in NOP_BATCHES {
        g.throughput(Throughput::Elements(u64::from(batch)));
        for tuned in [false, true] {
            let mode = if tuned { "tuned" } else { "default" };
            g.bench_with_input(
                BenchmarkId::new(format!("aura-{mode}"), batch),
                &batch,
                |b, &batch| {
                    let mut ring = aura_ring(tuned);
                    b.iter(|| black_box(aura_round(&mut ring, batch)));
                },
            );
            g.bench_with_input(
                BenchmarkId::new(format!("io_uring-{mode}"), batch),
                &batch,
                |b, &batch| {
                    let mut ring = uring_ring(tuned);
                    b.iter(|| black_box(uring_round(&mut ring, batch)));
                },
            );
        }
    }
    g.finish();
}

/// The paired run (see the module docs): `blocks` measured pairs per case, after 10 warm-up pairs.
fn paired(blocks: usize) {
    let q = |v: &mut Vec<f64>, f: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * f) as usize]
    };
    for tuned in [false, true] {
        let mode = if tuned { "tuned" } else { "default" };
        for batch in NOP_BATCHES {
            let mut a = aura_ring(tuned);
            let mut u = uring_ring(tuned);
            // About 20k NOPs (a few ms) per block.
            let rounds = (20_000 / batch).max(50);
            let (mut ratio, mut aura_ops, mut uring_ops) = (vec![], vec![], vec![]);
            for blk in 0..blocks + 10 {
                let (mut ta, mut tu) = (0.0, 0.0);
                for turn in 0..2 {
                    let t = Instant::now();
                    if (turn + blk) % 2 == 0 {
                        for _ in 0..rounds {
                            black_box(aura_round(&mut a, batch));
                        }
                        ta = t.elapsed().as_secs_f64();
                    } else {
                        for _ in 0..rounds {
                            black_box(uring_round(&mut u, batch));
                        }
                        tu = t.elapsed().as_secs_f64();
                    }
                }
                if blk >= 10 {
                    let nops = f64::from(rounds * batch);
                    ratio.push(tu / ta);
                    aura_ops.push(nops / ta);
                    uring_ops.push(nops / tu);
                }
            }
            println!(
                "paired {mode:7} B={batch:3}: aura {:6.2} Mops/s, io-uring {:6.2} Mops/s, \
                 aura/io-uring median {:.3} IQR [{:.3}, {:.3}]",
                q(&mut aura_ops, 0.5) / 1e6,
                q(&mut uring_ops, 0.5) / 1e6,
                q(&mut ratio, 0.5),
                q(&mut ratio, 0.25),
                q(&mut ratio, 0.75),
            );
        }
    }
}

// What `criterion_group!` / `criterion_main!` expand to, written out: the macro's `pub fn` would
// trip the workspace's `missing_docs`.
fn main() {
    if let Some(blocks) = std::env::var("NOP_RATE_PAIRED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        paired(blocks);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    nop_rate(&mut c);
    c.final_summary();
}
