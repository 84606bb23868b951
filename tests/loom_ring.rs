//! Loom models of the ring's head/tail protocol: an application thread and a simulated-kernel
//! thread (a detached [`SimKernel`] polling the SQ, like SQPOLL) share one heap ring, and loom
//! explores their interleavings under the C11 memory model, including loom's race detection on
//! the SQE / CQE cells.
//!
//! Only built with `--cfg loom` (normal `cargo test` compiles this file to nothing):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release -p aura-tests --test loom_ring --target-dir target/loom
//! ```
//!
//! Preemption bound and runtime: LOOM_MAX_PREEMPTIONS=2, K = 3 NOPs, 2 SQ entries; on 2 cores
//! (release build) the two models take ~5 s and ~8 s (13 s for the test binary, ~20 s with the
//! incremental build). With LOOM_MAX_PREEMPTIONS=3 the binary takes ~84 s.
//!
//! Sanity check of the models' power: weakening any one of the four index publications (the SQ
//! tail store in `Sq::sync`, the SQ head store in `pop_sqe`, the CQ tail store in `push_cqe`, the
//! CQ head store in `Cq::sync`) from Release to Relaxed makes loom report a causality violation
//! on the SQE / CQE cells.
//!
//! The kernel thread steps until it has consumed all K SQEs *and* posted all K CQEs: with a CQ
//! smaller than K a CQE can still sit on the overflow list after the last SQE was consumed, and
//! only another `step()` (which flushes) moves it into the CQ.
#![cfg(loom)]

use aura_core::{op, Ring, SimConfig, SimKernel};
use loom::thread;

/// NOPs per model, with `user_data` `1..=K`.
const K: u64 = 3;

/// The simulated kernel's thread: steps (consume every published SQE, advance, post, flush the
/// overflow list) until all `K` requests were consumed and all `K` CQEs posted into the CQ.
fn kernel_thread(mut kernel: SimKernel) -> SimKernel {
    loop {
        kernel.step();
        let s = kernel.stats();
        if s.consumed == K && s.posted == K {
            return kernel;
        }
        thread::yield_now();
    }
}

/// The application's side: pushes NOPs `1..=K` as room allows (publishing by dropping the `Sq`),
/// reaps whatever is ready, and yields while it waits. Returns how often each `user_data` was seen.
fn app(ring: &mut Ring) -> [u32; K as usize + 1] {
    let mut seen = [0u32; K as usize + 1];
    let mut next = 1u64;
    let mut got = 0u64;
    while got < K {
        if next <= K {
            let mut sq = ring.sq();
            while next <= K {
                // SAFETY: a NOP carries no pointers.
                match unsafe { sq.push(&op::nop().user_data(next)) } {
                    Ok(()) => next += 1,
                    Err(sqe) => {
                        // Full: the entry is handed back unchanged; retry after the kernel moved.
                        assert_eq!(sqe.user_data, next);
                        break;
                    }
                }
            }
            // Dropping the view publishes the tail (Release).
            drop(sq);
        }
        for cqe in ring.cq() {
            assert_eq!(cqe.res, 0, "NOP {} failed", cqe.user_data);
            let ud = cqe.user_data;
            assert!((1..=K).contains(&ud), "unknown user_data {ud}");
            seen[ud as usize] += 1;
            got += 1;
        }
        if got < K {
            thread::yield_now();
        }
    }
    seen
}

/// One model: a ring of 2 SQ entries and `cq_entries` CQ entries, the kernel on its own thread.
fn run(cq_entries: u32) {
    loom::model(move || {
        let cfg = SimConfig {
            cq_entries,
            ..SimConfig::default()
        };
        let (mut ring, kernel) = Ring::new_sim_detached(2, cfg);
        assert_eq!((ring.sq_entries(), ring.cq_entries()), (2, cq_entries));
        let k = thread::spawn(move || kernel_thread(kernel));
        let seen = app(&mut ring);
        let kernel = k.join().unwrap();
        // Everything the kernel posted was reaped exactly once; nothing is left anywhere.
        assert_eq!(seen[1..], [1; K as usize]);
        let s = kernel.stats();
        assert_eq!((s.consumed, s.posted, s.lost), (K, K, 0));
        assert_eq!((kernel.in_flight(), kernel.overflow_len()), (0, 0));
        assert_eq!(ring.sq_unconsumed(), 0);
        let mut cq = ring.cq();
        assert_eq!(cq.overflow(), 0);
        assert!(cq.next().is_none());
    });
}

/// (a) 2 SQ / 2 CQ entries: the SQ fills (push hands entries back), and the CQ can fill too when
/// the application is slow to reap.
#[test]
fn loom_push_consume_reap() {
    run(2);
}

/// (b) 2 SQ / 1 CQ entry: completions park on the overflow list and the kernel flushes them as the
/// application frees CQ slots.
#[test]
fn loom_cq_overflow_flush() {
    run(1);
}
