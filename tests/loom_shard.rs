//! Loom model of an Engine shard's submit / complete hand-off.
//!
//! The Engine uses std's `Mutex` and real rings, so this models its protocol rather than running
//! its code. A shard is a mutex around a ring (a detached simulated ring) and an
//! [`aura_core::slab::Slab`] of requests, with a pending counter beside it that is read and
//! updated outside the ring's own protocol (relaxed), as `aura-std/src/shard.rs` and `engine.rs`
//! do. Three threads:
//!
//! - the submitter (the model's main thread) locks the shard, inserts the request into the slab,
//!   bumps `pending`, pushes an SQE carrying the slab token, publishes it (dropping the SQ view)
//!   and rings the doorbell (the flush's `io_uring_enter`), then unlocks — `Engine::submit` /
//!   `ShardState::admit`. When done it sets a flag and signals the eventfd (as `Engine::stop`);
//! - the completer reads (clears) the eventfd, locks the shard, reaps the CQEs, removes their
//!   slab entries and decrements `pending`, unlocks, and only then runs the callbacks; when a
//!   pass ran nothing it blocks until the eventfd is readable — `Engine::wait` / `poll_pass` /
//!   `ShardState::reap`. It stops like `Engine::drain`: once the submitter is done and `pending`
//!   reads 0;
//! - the simulated kernel (a detached [`SimKernel`]) sleeps on the doorbell, steps (consumes the
//!   published SQEs, posts their CQEs) and signals the eventfd when it posted, as a ring with a
//!   registered eventfd does.
//!
//! The eventfd and the doorbell are a loom `Mutex<u64>` + `Condvar` each. Every wait blocks (no
//! spinning), so a lost wakeup shows up as a loom deadlock. Request 0's callback submits request
//! 2 from the completer thread (callbacks may submit): were callbacks run under the shard lock,
//! loom would report that deadlock too.
//!
//! Checked in every interleaving: each CQE names a live slab entry (no stale or duplicate
//! `user_data`), each request's callback runs exactly once with its result, `pending` returns to
//! 0, the slab is empty and the ring holds nothing.
//!
//! What is left out: `Ring::submit` on a detached ring publishes nothing (dropping the SQ view
//! did) and only loads indexes, and with those loads in both threads the model no longer ends
//! within 10 minutes; the gate queue, the controller and the CQ overflow path (the CQ here never
//! fills) are not modelled.
//!
//! Only built with `--cfg loom` (normal `cargo test` compiles this file to nothing):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release -p aura-tests --test loom_shard --target-dir target/loom
//! ```
//!
//! Preemption bound and runtime: LOOM_MAX_PREEMPTIONS=2, 3 requests (2 from the submitter, 1 from
//! a callback), 4 SQ / 8 CQ entries: the model takes ~1.6 s on 2 cores (release build; ~3.5 s
//! for `cargo test` with the incremental build). With LOOM_MAX_PREEMPTIONS=3 it takes ~51 s.
//!
//! Sanity check of the model's power: running the callbacks before releasing the shard lock, or
//! clearing the eventfd after the reap instead of before it, makes loom report a deadlock.
#![cfg(loom)]

use aura_core::slab::Slab;
use aura_core::{op, Ring, SimConfig, SimKernel};
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use aura_tests::loom_event::Event;

/// Requests the submitter thread submits.
const FROM_SUBMITTER: usize = 2;
/// All requests: one more is submitted by request 0's callback.
const TOTAL: usize = FROM_SUBMITTER + 1;

/// A completion callback: gets the CQE's result; runs with no lock held.
type Callback = Box<dyn FnOnce(i32) + Send + 'static>;

/// A request slot's contents (the Engine's `Request`, reduced to what the hand-off needs).
struct Request {
    callback: Callback,
}

/// The locked part of a shard.
struct ShardState {
    ring: Ring,
    slab: Slab<Request>,
}

/// One shard: the state behind its mutex, the pending counter, and the two wakeups.
struct Shard {
    state: Mutex<ShardState>,
    /// Requests submitted and not yet reaped (relaxed, as in the Engine).
    pending: AtomicU32,
    /// Rung after SQEs are published.
    doorbell: Event,
    /// Signalled by the kernel when it posted CQEs, and by the submitter when it is done.
    eventfd: Event,
}

/// `Engine::submit`: the slot first, then the SQE carrying the slot's token, all under the lock.
fn submit(shard: &Shard, callback: Callback) {
    let mut st = shard.state.lock().unwrap();
    let Ok(token) = st.slab.insert(Request { callback }) else {
        panic!("slab full");
    };
    // Written only under the shard lock, so a load and a store (as `ShardCounters::
    // add_pending`); readers outside the lock only load it.
    let p = shard.pending.load(Ordering::Relaxed);
    shard.pending.store(p + 1, Ordering::Relaxed);
    {
        let mut sq = st.ring.sq();
        // SAFETY: a NOP carries no pointers.
        if unsafe { sq.push(&op::nop().user_data(token.user_data())) }.is_err() {
            panic!("SQ full");
        }
    } // Dropping the view publishes the tail.
    shard.doorbell.signal();
}

/// A callback that records its run (and checks the NOP's result).
fn record(runs: &Arc<[AtomicU32; TOTAL]>, id: usize) -> Callback {
    let runs = runs.clone();
    Box::new(move |res| {
        assert_eq!(res, 0, "request {id}");
        runs[id].fetch_add(1, Ordering::Relaxed);
    })
}

/// `ShardState::reap` under the lock: reap, remove the slots; the callbacks go to `out`.
fn reap(shard: &Shard, out: &mut Vec<(Callback, i32)>) {
    let mut st = shard.state.lock().unwrap();
    let ShardState { ring, slab } = &mut *st;
    for cqe in ring.cq() {
        let req = slab
            .remove(cqe.user_data)
            .unwrap_or_else(|e| panic!("CQE {:#x}: {e}", cqe.user_data));
        let p = shard.pending.load(Ordering::Relaxed);
        shard.pending.store(p - 1, Ordering::Relaxed);
        out.push((req.callback, cqe.res));
    }
}

/// The completer: `Engine::drain` — passes of clear eventfd, reap, run the callbacks with no lock
/// held; blocks on the eventfd after a pass that ran nothing; returns once the submitter is done
/// and nothing is pending.
fn completer(shard: Arc<Shard>, submitted_all: Arc<AtomicBool>) {
    let mut done = Vec::new();
    loop {
        shard.eventfd.clear();
        reap(&shard, &mut done);
        let ran = !done.is_empty();
        for (callback, res) in done.drain(..) {
            callback(res);
        }
        // Acquire pairs with the submitter's Release: every increment it made is visible, so a
        // 0 here means every request was reaped (this thread's own submits happened above).
        if submitted_all.load(Ordering::Acquire) && shard.pending.load(Ordering::Relaxed) == 0 {
            return;
        }
        if !ran {
            shard.eventfd.wait(false);
        }
    }
}

/// The simulated kernel's thread: sleeps on the doorbell, steps, signals the eventfd when it
/// posted; returns once all `TOTAL` SQEs were consumed and their CQEs posted into the CQ.
fn kernel_thread(mut kernel: SimKernel, shard: Arc<Shard>) -> SimKernel {
    loop {
        shard.doorbell.wait(true);
        let posted = kernel.stats().posted;
        kernel.step();
        let s = kernel.stats();
        if s.posted > posted {
            shard.eventfd.signal();
        }
        if s.consumed == TOTAL as u64 && s.posted == TOTAL as u64 {
            return kernel;
        }
    }
}

#[test]
fn loom_shard_submit_complete() {
    loom::model(|| {
        let (ring, kernel) = Ring::new_sim_detached(4, SimConfig::default());
        assert_eq!((ring.sq_entries(), ring.cq_entries()), (4, 8));
        let shard = Arc::new(Shard {
            state: Mutex::new(ShardState {
                ring,
                slab: Slab::with_capacity(TOTAL as u32),
            }),
            pending: AtomicU32::new(0),
            doorbell: Event::default(),
            eventfd: Event::default(),
        });
        let runs: Arc<[AtomicU32; TOTAL]> = Arc::new(Default::default());
        let submitted_all = Arc::new(AtomicBool::new(false));

        let k = {
            let shard = shard.clone();
            thread::spawn(move || kernel_thread(kernel, shard))
        };
        let c = {
            let (shard, submitted_all) = (shard.clone(), submitted_all.clone());
            thread::spawn(move || completer(shard, submitted_all))
        };

        // Request 0's callback submits the last request, from the completer thread.
        let chained: Callback = {
            let (shard, runs, first) = (shard.clone(), runs.clone(), record(&runs, 0));
            Box::new(move |res| {
                first(res);
                submit(&shard, record(&runs, TOTAL - 1));
            })
        };
        submit(&shard, chained);
        for id in 1..FROM_SUBMITTER {
            submit(&shard, record(&runs, id));
        }
        submitted_all.store(true, Ordering::Release);
        shard.eventfd.signal();

        c.join().unwrap();
        let kernel = k.join().unwrap();

        for (id, n) in runs.iter().enumerate() {
            assert_eq!(n.load(Ordering::Relaxed), 1, "request {id}: callback runs");
        }
        assert_eq!(shard.pending.load(Ordering::Relaxed), 0);
        let s = kernel.stats();
        assert_eq!(
            (s.consumed, s.posted, s.lost),
            (TOTAL as u64, TOTAL as u64, 0)
        );
        let mut st = shard.state.lock().unwrap();
        assert!(st.slab.is_empty());
        assert_eq!(st.ring.sq_unconsumed(), 0);
        assert!(st.ring.cq().next().is_none());
    });
}
