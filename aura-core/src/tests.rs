//! Unit tests of the ring against the simulated kernel: in-order, reordered and delayed
//! completion, full queues, CQ overflow (with and without loss), injected `EINTR` / `EBUSY`, both
//! SQ layouts, timed waits (EXT_ARG and the TIMEOUT-SQE fallback), cancellation, the slab's
//! rejection of garbage completions, and a randomized model test.
//!
//! Nothing here makes a syscall: every ring is simulated, so the whole module runs under Miri.

use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use crate::op;
use crate::ring::Sq;
use crate::sim::SimConfig;
use crate::slab::{Slab, Stale, Token, RESERVED_USER_DATA};
use crate::sync::Ordering;
use crate::sys::abi::{Cqe, Sqe};
use crate::{Errno, Error, Result, Ring};

/// A tiny deterministic xorshift64* generator (no external crates).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// `-errno`, as a CQE's `res`.
fn neg(e: Errno) -> i32 {
    -e.raw_os_error()
}

/// Pushes one SQE.
fn push(sq: &mut Sq<'_>, sqe: &Sqe) -> Result<(), Sqe> {
    // SAFETY: these tests only push NOP, READ, ASYNC_CANCEL and TIMEOUT_REMOVE SQEs to simulated
    // kernels, which never dereference the pointers an SQE carries (READ's buffer is null).
    unsafe { sq.push(sqe) }
}

fn nop(user_data: u64) -> Sqe {
    op::nop().user_data(user_data)
}

/// Pushes NOPs with user_data `*next..=last`, at most `max` of them and as many as fit; returns
/// how many were pushed (published when the `Sq` view drops).
fn push_nops(ring: &mut Ring, next: &mut u64, last: u64, max: u32) -> u32 {
    let mut sq = ring.sq();
    let mut n = 0;
    while n < max && *next <= last {
        if push(&mut sq, &nop(*next)).is_err() {
            break;
        }
        *next += 1;
        n += 1;
    }
    n
}

/// Reaps every ready CQE (all must be successful NOPs) into `seen`; returns how many.
fn reap(ring: &mut Ring, seen: &mut Vec<u64>) -> usize {
    let before = seen.len();
    for cqe in ring.cq() {
        assert_eq!(cqe.res, 0, "user_data {}", cqe.user_data);
        assert_ne!(
            cqe.user_data, RESERVED_USER_DATA,
            "the ring's own CQE was yielded"
        );
        seen.push(cqe.user_data);
    }
    seen.len() - before
}

/// Every CQE ready in the CQ, the ring's own (reserved) ones included, consuming none.
fn raw_ready(ring: &Ring) -> Vec<Cqe> {
    let cq = &ring.mem().cq;
    // Relaxed: only this thread writes the CQ head.
    let head = cq.word(cq.head).load(Ordering::Relaxed);
    // Acquire pairs with the kernel's Release store of the CQ tail.
    let tail = cq.word(cq.tail).load(Ordering::Acquire);
    (0..tail.wrapping_sub(head))
        .map(|i| {
            // SAFETY: the slot lies between our head and the tail read with Acquire.
            unsafe { cq.read(head.wrapping_add(i)) }
        })
        .collect()
}

/// Asserts that `seen` holds each of `1..=n` exactly once.
fn assert_exactly_once(seen: &[u64], n: u64) {
    let mut sorted = seen.to_vec();
    sorted.sort_unstable();
    let want: Vec<u64> = (1..=n).collect();
    assert_eq!(sorted, want, "every user_data exactly once");
}

/// Pushes NOPs `1..=n` over many submit rounds of varying size (reaping after each), then waits
/// for the rest. Returns the user_data in completion order, after checking that each was seen
/// exactly once and nothing is left in flight.
fn run_nops(sq_entries: u32, cfg: SimConfig, n: u64) -> Vec<u64> {
    let mut ring = Ring::new_sim(sq_entries, cfg);
    let mut seen = Vec::new();
    let mut next = 1;
    let mut round = 0u32;
    while next <= n {
        round += 1;
        let batch = 1 + round % ring.sq_entries();
        let pushed = push_nops(&mut ring, &mut next, n, batch);
        assert_eq!(
            pushed,
            batch.min((n + 1 - (next - u64::from(pushed))) as u32)
        );
        assert_eq!(ring.sq_unconsumed(), pushed);
        assert_eq!(ring.submit(), Ok(pushed));
        assert_eq!(ring.sq_unconsumed(), 0);
        reap(&mut ring, &mut seen);
    }
    let mut waits = 0;
    while (seen.len() as u64) < n {
        ring.submit_and_wait(1).unwrap();
        assert!(reap(&mut ring, &mut seen) >= 1);
        waits += 1;
        assert!(waits <= n, "no progress");
    }
    assert_exactly_once(&seen, n);
    // Nothing more: no CQE, and the simulated kernel has nothing left that could complete.
    assert_eq!(ring.submit(), Ok(0));
    assert!(ring.cq().next().is_none());
    assert_eq!(ring.submit_and_wait(1), Err(Error::Os(Errno::DEADLK)));
    assert_eq!(ring.sq().dropped(), 0);
    assert_eq!(ring.cq().overflow(), 0);
    seen
}

const N: u64 = 200;

#[test]
fn completions_in_order() {
    for sq_entries in [1, 2, 8] {
        let seen = run_nops(sq_entries, SimConfig::default(), N);
        let want: Vec<u64> = (1..=N).collect();
        assert_eq!(seen, want, "sq_entries {sq_entries}");
    }
}

#[test]
fn completions_reordered() {
    let in_order: Vec<u64> = (1..=N).collect();
    let mut reordered = 0;
    for seed in 1..=4 {
        let cfg = SimConfig {
            reorder: true,
            seed,
            ..SimConfig::default()
        };
        let seen = run_nops(8, cfg, N);
        if seen != in_order {
            reordered += 1;
        }
    }
    // Batches of up to 8 completions, shuffled: every seed reorders something.
    assert_eq!(reordered, 4);
}

#[test]
fn completions_delayed() {
    for seed in 1..=4 {
        let cfg = SimConfig {
            max_delay: 7,
            seed,
            ..SimConfig::default()
        };
        run_nops(4, cfg, N);
        run_nops(
            4,
            SimConfig {
                reorder: true,
                ..cfg
            },
            N,
        );
    }
    // The delay really holds completions back: after one submit most are still in flight.
    let cfg = SimConfig {
        max_delay: 1000,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(8, cfg);
    let mut next = 1;
    assert_eq!(push_nops(&mut ring, &mut next, 8, 8), 8);
    assert_eq!(ring.submit(), Ok(8));
    let mut seen = Vec::new();
    assert!(reap(&mut ring, &mut seen) < 8);
    while seen.len() < 8 {
        ring.submit_and_wait(1).unwrap();
        reap(&mut ring, &mut seen);
    }
    assert_exactly_once(&seen, 8);
}

#[test]
fn sq_array_layout_matches_no_sqarray() {
    let configs = [
        SimConfig::default(),
        SimConfig {
            reorder: true,
            seed: 3,
            ..SimConfig::default()
        },
        SimConfig {
            max_delay: 4,
            seed: 9,
            cq_entries: 2,
            ..SimConfig::default()
        },
    ];
    for cfg in configs {
        for sq_entries in [1, 4] {
            let plain = run_nops(sq_entries, cfg, N);
            let with_array = run_nops(
                sq_entries,
                SimConfig {
                    sq_array: true,
                    ..cfg
                },
                N,
            );
            assert_eq!(plain, with_array, "{cfg:?}, sq_entries {sq_entries}");
        }
    }
}

#[test]
fn full_sq_hands_the_entry_back() {
    let mut ring = Ring::new_sim(4, SimConfig::default());
    assert_eq!(ring.sq_entries(), 4);
    let mut sq = ring.sq();
    for ud in 1..=4 {
        assert_eq!(push(&mut sq, &nop(ud)), Ok(()));
    }
    assert!(sq.is_full());
    assert_eq!(sq.len(), 4);
    let extra = op::read(3, core::ptr::null_mut(), 512, 4096)
        .user_data(99)
        .flags(op::SqeFlags::ASYNC);
    assert_eq!(push(&mut sq, &extra), Err(extra));
    assert_eq!(sq.len(), 4);
    drop(sq);
    // Still full once published (the kernel consumed nothing yet).
    assert_eq!(ring.sq_unconsumed(), 4);
    assert_eq!(push(&mut ring.sq(), &extra), Err(extra));
    assert_eq!(ring.submit(), Ok(4));
    let mut seen = Vec::new();
    assert_eq!(reap(&mut ring, &mut seen), 4);
    assert_eq!(seen, [1, 2, 3, 4]);
    // Room again.
    assert_eq!(push(&mut ring.sq(), &extra), Ok(()));
    assert_eq!(ring.submit(), Ok(1));
    let cqes: Vec<Cqe> = ring.cq().collect();
    assert_eq!(
        cqes,
        [Cqe {
            user_data: 99,
            res: 512,
            flags: 0
        }]
    );
}

#[test]
fn push_with_user_data_carries_the_given_user_data() {
    let mut ring = Ring::new_sim(2, SimConfig::default());
    let read = op::read(3, core::ptr::null_mut(), 512, 4096).user_data(1);
    let mut sq = ring.sq();
    // SAFETY: as in `push`: a simulated kernel never dereferences the (null) buffer.
    assert_eq!(unsafe { sq.push_with_user_data(&read, 77) }, Ok(()));
    // SAFETY: as above (a NOP carries no pointer).
    assert_eq!(unsafe { sq.push_with_user_data(&nop(5), 78) }, Ok(()));
    // Full: the entry comes back as it was given (its own user_data).
    // SAFETY: as above.
    assert_eq!(unsafe { sq.push_with_user_data(&read, 79) }, Err(read));
    drop(sq);
    assert_eq!(ring.submit(), Ok(2));
    let cqes: Vec<Cqe> = ring.cq().collect();
    let got: Vec<(u64, i32)> = cqes.iter().map(|c| (c.user_data, c.res)).collect();
    // The read completes with its length: only user_data was replaced, the rest is the entry's.
    assert_eq!(got, [(77, 512), (78, 0)]);
}

#[test]
fn push_all_is_all_or_nothing() {
    let mut ring = Ring::new_sim(4, SimConfig::default());
    let three = [nop(10), nop(11), nop(12)];
    let two = [nop(20), nop(21)];
    let mut sq = ring.sq();
    // SAFETY: NOPs carry no pointers.
    assert!(unsafe { sq.push_all(&two) }.is_ok());
    assert_eq!(sq.len(), 2);
    // SAFETY: as above.
    assert!(unsafe { sq.push_all(&three) }.is_err());
    assert_eq!(sq.len(), 2, "a failed push_all pushes nothing");
    // SAFETY: as above.
    assert!(unsafe { sq.push_all(&two) }.is_ok());
    assert!(sq.is_full());
    // SAFETY: as above.
    assert!(unsafe { sq.push_all(&[]) }.is_ok());
    // SAFETY: as above.
    assert!(unsafe { sq.push_all(&three[..1]) }.is_err());
    drop(sq);
    assert_eq!(ring.submit(), Ok(4));
    let mut seen = Vec::new();
    reap(&mut ring, &mut seen);
    assert_eq!(seen, [20, 21, 20, 21]);
    // After the kernel consumed them, the three fit.
    // SAFETY: as above.
    assert!(unsafe { ring.sq().push_all(&three) }.is_ok());
    assert_eq!(ring.submit(), Ok(3));
    seen.clear();
    reap(&mut ring, &mut seen);
    assert_eq!(seen, [10, 11, 12]);
}

/// Submits NOPs `1..=1000` in rounds of 4 with `submit()` only, never reaping.
fn submit_1000_without_reaping(ring: &mut Ring) {
    let mut next = 1;
    while next <= 1000 {
        let pushed = push_nops(ring, &mut next, 1000, 4);
        assert_eq!(pushed, 4);
        assert_eq!(ring.submit(), Ok(4));
    }
}

#[test]
fn cq_overflow_loses_nothing() {
    let cfg = SimConfig {
        cq_entries: 4,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(4, cfg);
    assert_eq!(ring.cq_entries(), 4);
    submit_1000_without_reaping(&mut ring);
    assert!(ring.needs_getevents(), "IORING_SQ_CQ_OVERFLOW must be set");
    assert!(ring.sq().cq_overflow());
    assert_eq!(ring.cq().len(), 4);
    assert_eq!(ring.cq().overflow(), 0);
    let mut seen = Vec::new();
    let mut rounds = 0;
    loop {
        reap(&mut ring, &mut seen);
        if seen.len() == 1000 {
            break;
        }
        ring.submit_and_wait(1).unwrap();
        rounds += 1;
    }
    // 4 in the CQ, then 996 parked, flushed 4 at a time.
    assert_eq!(rounds, 249);
    let want: Vec<u64> = (1..=1000).collect();
    assert_eq!(seen, want);
    assert!(!ring.needs_getevents());
    assert_eq!(ring.cq().overflow(), 0);
    assert_eq!(ring.submit_and_wait(1), Err(Error::Os(Errno::DEADLK)));
}

#[test]
fn cq_overflow_limit_counts_lost() {
    let cfg = SimConfig {
        cq_entries: 4,
        overflow_limit: 3,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(4, cfg);
    submit_1000_without_reaping(&mut ring);
    assert!(ring.needs_getevents());
    // 4 in the CQ, 3 parked, the other 993 lost and counted.
    assert_eq!(ring.cq().overflow(), 993);
    let mut seen = Vec::new();
    loop {
        let got = reap(&mut ring, &mut seen);
        if got == 0 && !ring.needs_getevents() {
            break;
        }
        ring.submit().unwrap();
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(ring.cq().overflow(), 993);
}

#[test]
fn cq_overflow_limit_matches_sim_stats() {
    let cfg = SimConfig {
        cq_entries: 4,
        overflow_limit: 3,
        ..SimConfig::default()
    };
    let (mut ring, mut kernel) = Ring::new_sim_detached(4, cfg);
    let mut next = 1;
    while next <= 1000 {
        assert_eq!(push_nops(&mut ring, &mut next, 1000, 4), 4);
        assert_eq!(kernel.step(), 4);
    }
    let stats = kernel.stats();
    assert_eq!(stats.consumed, 1000);
    assert_eq!(stats.posted, 4);
    assert_eq!(stats.overflowed, 3);
    assert_eq!(stats.lost, 993);
    assert_eq!(u64::from(ring.cq().overflow()), stats.lost);
    assert_eq!(kernel.overflow_len(), 3);
    assert!(ring.needs_getevents());
    let mut seen = Vec::new();
    loop {
        let got = reap(&mut ring, &mut seen);
        kernel.flush();
        if got == 0 && kernel.overflow_len() == 0 {
            break;
        }
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7]);
    assert!(!ring.needs_getevents());
    let stats = kernel.stats();
    assert_eq!((stats.posted, stats.lost), (7, 993));
    assert_eq!(u64::from(ring.cq().overflow()), stats.lost);
}

#[test]
fn eintr_is_retried() {
    let cfg = SimConfig {
        inject_eintr: 3,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(4, cfg);
    push(&mut ring.sq(), &nop(7)).unwrap();
    assert_eq!(ring.submit_and_wait(1), Ok(1));
    let cqes: Vec<Cqe> = ring.cq().collect();
    assert_eq!(
        cqes,
        [Cqe {
            user_data: 7,
            res: 0,
            flags: 0
        }]
    );
    // A timed wait retries EINTR too.
    let cfg = SimConfig {
        inject_eintr: 2,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(4, cfg);
    push(&mut ring.sq(), &nop(8)).unwrap();
    assert_eq!(ring.submit_and_wait_timeout(1, 1_000_000), Ok(1));
    let mut seen = Vec::new();
    assert_eq!(reap(&mut ring, &mut seen), 1);
    assert_eq!(seen, [8]);
}

#[test]
fn ebusy_keeps_sqes_published() {
    let cfg = SimConfig {
        inject_ebusy: 2,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(4, cfg);
    let mut next = 1;
    assert_eq!(push_nops(&mut ring, &mut next, 3, 4), 3);
    assert_eq!(ring.sq_unconsumed(), 3);
    for _ in 0..2 {
        assert_eq!(ring.submit(), Err(Error::Os(Errno::BUSY)));
        assert_eq!(ring.sq_unconsumed(), 3);
        assert!(ring.cq().next().is_none());
    }
    assert_eq!(ring.submit(), Ok(3));
    assert_eq!(ring.sq_unconsumed(), 0);
    assert_eq!(ring.submit(), Ok(0));
    let mut seen = Vec::new();
    assert_eq!(reap(&mut ring, &mut seen), 3);
    assert_eq!(seen, [1, 2, 3]);
    // Submitted exactly once: nothing else ever completes.
    assert_eq!(ring.submit_and_wait(1), Err(Error::Os(Errno::DEADLK)));

    // submit_reaping rides over injected EBUSYs.
    let cfg = SimConfig {
        inject_ebusy: 3,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(4, cfg);
    let mut next = 1;
    assert_eq!(push_nops(&mut ring, &mut next, 4, 4), 4);
    let mut handed = 0;
    assert_eq!(ring.submit_reaping(4, |_| handed += 1), Ok(4));
    assert_eq!(handed, 0, "nothing was ready while the kernel said EBUSY");
    seen.clear();
    assert_eq!(reap(&mut ring, &mut seen), 4);
    assert_eq!(seen, [1, 2, 3, 4]);
}

#[test]
fn submit_reaping_with_busy_on_overflow() {
    const TOTAL: u64 = 100;
    let cfg = SimConfig {
        cq_entries: 2,
        busy_on_overflow: true,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(8, cfg);
    assert_eq!((ring.sq_entries(), ring.cq_entries()), (8, 2));
    let mut seen = Vec::new();
    let mut via_closure = 0u64;
    let mut submitted = 0;
    let mut next = 1;
    let mut busy = 0;
    while next <= TOTAL {
        let pushed = push_nops(&mut ring, &mut next, TOTAL, 8);
        // A plain submit sees the kernel's EBUSY while CQEs are parked (and keeps the SQEs).
        if ring.needs_getevents() {
            match ring.submit() {
                Err(Error::Os(Errno::BUSY)) => {
                    busy += 1;
                    assert_eq!(ring.sq_unconsumed(), pushed);
                }
                other => panic!("expected EBUSY, got {other:?}"),
            }
        }
        submitted += ring
            .submit_reaping(0, |cqe| {
                assert_eq!(cqe.res, 0);
                seen.push(cqe.user_data);
                via_closure += 1;
            })
            .unwrap();
        assert_eq!(ring.sq_unconsumed(), 0);
    }
    while (seen.len() as u64) < TOTAL {
        ring.submit_reaping(1, |cqe| {
            seen.push(cqe.user_data);
            via_closure += 1;
        })
        .unwrap();
        reap(&mut ring, &mut seen);
    }
    assert_eq!(submitted, TOTAL as u32);
    assert!(
        busy > 0 && via_closure > 0,
        "busy {busy}, via closure {via_closure}"
    );
    // No reordering and no loss: the completions come in submission order.
    let want: Vec<u64> = (1..=TOTAL).collect();
    assert_eq!(seen, want);
    assert_eq!(ring.cq().overflow(), 0);
    assert_eq!(ring.submit_and_wait(1), Err(Error::Os(Errno::DEADLK)));
}

#[test]
fn timed_wait_on_an_empty_ring_returns() {
    // EXT_ARG: the simulated wait times out at once.
    let mut ring = Ring::new_sim(4, SimConfig::default());
    assert_eq!(ring.submit_and_wait_timeout(1, 1_000_000), Ok(0));
    assert!(raw_ready(&ring).is_empty());
    assert_eq!(ring.sq_unconsumed(), 0);

    // No EXT_ARG: the internal TIMEOUT SQE fires; its CQE is never yielded.
    let cfg = SimConfig {
        no_ext_arg: true,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(4, cfg);
    assert!(ring.submit_and_wait_timeout(1, 1_000_000).is_ok());
    assert_eq!(ring.sq_unconsumed(), 0);
    assert_eq!(
        raw_ready(&ring),
        [Cqe {
            user_data: RESERVED_USER_DATA,
            res: neg(Errno::TIME),
            flags: 0
        }]
    );
    assert!(ring.cq().next().is_none());
    assert!(raw_ready(&ring).is_empty(), "the timer's CQE was consumed");
    // The ring works normally afterwards.
    push(&mut ring.sq(), &nop(5)).unwrap();
    assert_eq!(ring.submit_and_wait(1), Ok(1));
    let mut seen = Vec::new();
    assert_eq!(reap(&mut ring, &mut seen), 1);
    assert_eq!(seen, [5]);
}

#[test]
fn timed_wait_with_a_ready_cqe_needs_no_timer() {
    let cfg = SimConfig {
        no_ext_arg: true,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(4, cfg);
    push(&mut ring.sq(), &nop(1)).unwrap();
    assert_eq!(ring.submit(), Ok(1));
    assert_eq!(ring.submit_and_wait_timeout(1, 1_000_000), Ok(0));
    assert_eq!(ring.sq_unconsumed(), 0);
    assert_eq!(
        raw_ready(&ring),
        [Cqe {
            user_data: 1,
            res: 0,
            flags: 0
        }]
    );
}

/// Reaps until `want` user CQEs were seen, then checks that only the ring's own CQEs remain in
/// flight: they surface from waits, but `cq()` never yields them.
fn drain_internal(ring: &mut Ring, seen: &mut Vec<u64>, want: usize) {
    let mut rounds = 0;
    loop {
        reap(ring, seen);
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(Error::Os(Errno::DEADLK)) => break,
            Err(e) => panic!("{e:?}"),
        }
        rounds += 1;
        assert!(rounds < 10_000, "no progress");
    }
    assert_eq!(seen.len(), want);
}

#[test]
fn timed_wait_timer_sqe_fallback() {
    let (mut nop_first, mut timer_first) = (0, 0);
    for seed in 0..32 {
        let cfg = SimConfig {
            no_ext_arg: true,
            max_delay: 4,
            seed,
            ..SimConfig::default()
        };
        let mut ring = Ring::new_sim(4, cfg);
        push(&mut ring.sq(), &nop(1)).unwrap();
        assert!(ring.submit_and_wait_timeout(1, 1_000_000).is_ok());
        assert_eq!(ring.sq_unconsumed(), 0);
        let raw = raw_ready(&ring);
        let user: Vec<u64> = raw
            .iter()
            .map(|c| c.user_data)
            .filter(|&u| u != RESERVED_USER_DATA)
            .collect();
        let timer = |res: i32| {
            raw.iter()
                .filter(|c| c.user_data == RESERVED_USER_DATA && c.res == res)
                .count()
        };
        if timer(neg(Errno::CANCELED)) == 1 {
            // The NOP completed first and ended the wait; the timer was removed.
            assert_eq!(user, [1], "seed {seed}");
            assert_eq!(timer(neg(Errno::TIME)), 0, "seed {seed}");
            nop_first += 1;
        } else {
            // The timer expired first (or in the same step as the NOP).
            assert_eq!(timer(neg(Errno::TIME)), 1, "seed {seed}");
            assert!(user.len() <= 1, "seed {seed}");
            timer_first += 1;
        }
        let mut seen = Vec::new();
        drain_internal(&mut ring, &mut seen, 1);
        assert_eq!(seen, [1], "seed {seed}");
    }
    assert!(
        nop_first > 0 && timer_first > 0,
        "{nop_first} / {timer_first}"
    );
}

#[test]
fn timed_wait_timer_sqe_waits_for_want() {
    // One of two NOPs already complete and the timer not yet fired: the fallback must block in
    // the kernel (not spin without entering it) until the timer or the second NOP completes, and
    // return with either both NOPs ready or the timer expired.
    let (mut one_ready_before, mut both, mut expired) = (0, 0, 0);
    for seed in 0..32 {
        let cfg = SimConfig {
            no_ext_arg: true,
            max_delay: 6,
            seed,
            ..SimConfig::default()
        };
        let mut ring = Ring::new_sim(4, cfg);
        let mut next = 1;
        assert_eq!(push_nops(&mut ring, &mut next, 2, 2), 2);
        assert_eq!(ring.submit(), Ok(2));
        let ready_before = raw_ready(&ring).len();
        if ready_before == 1 {
            one_ready_before += 1;
        }
        assert!(ring.submit_and_wait_timeout(2, 1_000_000).is_ok());
        let raw = raw_ready(&ring);
        let user = raw
            .iter()
            .filter(|c| c.user_data != RESERVED_USER_DATA)
            .count();
        let fired = raw
            .iter()
            .any(|c| c.user_data == RESERVED_USER_DATA && c.res == neg(Errno::TIME));
        assert!(user == 2 || fired, "seed {seed}: {raw:?}");
        if fired {
            expired += 1;
        } else {
            both += 1;
        }
        let mut seen = Vec::new();
        drain_internal(&mut ring, &mut seen, 2);
        assert_exactly_once(&seen, 2);
    }
    assert_eq!(both + expired, 32);
    assert!(
        one_ready_before > 0 && both > 0 && expired > 0,
        "{one_ready_before} / {both} / {expired}"
    );
}

#[test]
fn async_cancel_in_flight() {
    let cfg = SimConfig {
        max_delay: 1000,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(4, cfg);
    push(&mut ring.sq(), &nop(1)).unwrap();
    assert_eq!(ring.submit(), Ok(1));
    assert!(
        ring.cq().next().is_none(),
        "the target must still be in flight"
    );
    {
        let mut sq = ring.sq();
        push(&mut sq, &op::async_cancel(1).user_data(2)).unwrap();
        push(&mut sq, &op::async_cancel(99).user_data(3)).unwrap();
    }
    assert_eq!(ring.submit_and_wait(3), Ok(2));
    let mut cqes: Vec<(u64, i32)> = ring.cq().map(|c| (c.user_data, c.res)).collect();
    cqes.sort_unstable();
    assert_eq!(cqes, [(1, -125), (2, 0), (3, neg(Errno::NOENT))]);
    assert_eq!(neg(Errno::CANCELED), -125);
    // The cancelled NOP does not complete a second time.
    assert_eq!(ring.submit_and_wait(1), Err(Error::Os(Errno::DEADLK)));
}

#[test]
fn slab_rejects_garbage_cqes() {
    const TOTAL: u32 = 300;
    const CAP: u32 = 16;
    let cfg = SimConfig {
        cq_entries: 8,
        reorder: true,
        max_delay: 2,
        seed: 7,
        ..SimConfig::default()
    };
    let (mut ring, mut kernel) = Ring::new_sim_detached(8, cfg);
    let mut slab: Slab<u32> = Slab::with_capacity(CAP);
    let mut rng = Rng::new(0xdead_beef);
    let mut dispatched = vec![0u32; TOTAL as usize];
    let mut completed: Vec<u64> = Vec::new();
    let mut stale: BTreeMap<&'static str, u32> = BTreeMap::new();
    let (mut injected, mut injected_reserved) = (0u32, 0u32);
    let mut next = 0u32;
    let mut rounds = 0;
    while dispatched.contains(&0) {
        rounds += 1;
        assert!(rounds < 10_000, "no progress");
        {
            let mut sq = ring.sq();
            while next < TOTAL && !slab.is_full() && !sq.is_full() {
                let token = slab.insert(next).unwrap();
                push(&mut sq, &nop(token.user_data())).unwrap();
                next += 1;
            }
        }
        kernel.step();
        // Garbage, with nothing inserted between injecting and reaping it (so none of it can
        // name a request issued later).
        for _ in 0..rng.below(4) {
            let u = match rng.below(4) {
                0 => rng.next(),
                1 if !completed.is_empty() => completed[rng.below(completed.len() as u64) as usize],
                2 => RESERVED_USER_DATA,
                _ => Token::from_user_data((rng.below(8) << 32) | rng.below(u64::from(CAP)))
                    .user_data(),
            };
            if slab.get(u).is_ok() {
                continue; // names a live request: not garbage
            }
            kernel.inject_cqe(Cqe {
                user_data: u,
                res: rng.next() as i32,
                flags: rng.next() as u32,
            });
            if u == RESERVED_USER_DATA {
                injected_reserved += 1;
            } else {
                injected += 1;
            }
        }
        for cqe in ring.cq() {
            match slab.remove(cqe.user_data) {
                Ok(id) => {
                    assert_eq!((cqe.res, cqe.flags), (0, 0), "a garbage CQE was dispatched");
                    dispatched[id as usize] += 1;
                    completed.push(cqe.user_data);
                }
                Err(e) => {
                    let kind = match e {
                        Stale::OutOfRange => "out of range",
                        Stale::Vacant => "vacant",
                        Stale::WrongGeneration { .. } => "wrong generation",
                        Stale::Reserved => "reserved",
                    };
                    *stale.entry(kind).or_insert(0) += 1;
                }
            }
        }
    }
    // Drain whatever garbage is still parked.
    while kernel.overflow_len() > 0 || kernel.in_flight() > 0 {
        kernel.step();
        for cqe in ring.cq() {
            assert!(slab.remove(cqe.user_data).is_err());
            *stale.entry("late").or_insert(0) += 1;
        }
    }
    assert!(
        dispatched.iter().all(|&d| d == 1),
        "each request exactly once"
    );
    assert!(slab.is_empty());
    let rejected: u32 = stale.values().sum();
    assert_eq!(rejected, injected, "{stale:?}");
    // The ring never shows its reserved user_data; the slab would refuse it anyway.
    assert_eq!(stale.get("reserved"), None);
    assert!(injected_reserved > 0);
    assert_eq!(slab.remove(RESERVED_USER_DATA), Err(Stale::Reserved));
    for kind in ["out of range", "vacant", "wrong generation"] {
        assert!(stale.get(kind).is_some_and(|&n| n > 0), "{kind}: {stale:?}");
    }
    let stats = kernel.stats();
    assert_eq!(stats.consumed, u64::from(TOTAL));
    assert_eq!(
        stats.posted,
        u64::from(TOTAL + injected + injected_reserved)
    );
    assert_eq!(stats.lost, 0);
}

/// The bookkeeping of the randomized model test: what was issued, with which expected result,
/// and what was seen.
struct Model {
    /// Expected `res` of request `i + 1`.
    expected: Vec<i32>,
    /// How often request `i + 1` was seen.
    seen: Vec<u32>,
    seen_total: u64,
}

impl Model {
    fn issue(&mut self, res: i32) -> u64 {
        self.expected.push(res);
        self.seen.push(0);
        self.expected.len() as u64
    }

    fn record(&mut self, cqe: &Cqe) {
        let u = cqe.user_data;
        assert!(
            u >= 1 && u <= self.expected.len() as u64,
            "unknown user_data {u:#x}"
        );
        let i = (u - 1) as usize;
        assert_eq!(cqe.res, self.expected[i], "user_data {u}");
        assert_eq!(self.seen[i], 0, "user_data {u} seen twice");
        self.seen[i] = 1;
        self.seen_total += 1;
    }

    fn issued(&self) -> u64 {
        self.expected.len() as u64
    }
}

/// Pushes up to `max` random requests (NOPs, and READs that complete with their length).
fn model_push(ring: &mut Ring, model: &mut Model, rng: &mut Rng, max: u64) -> u32 {
    let mut sq = ring.sq();
    let mut n = 0;
    for _ in 0..max {
        if sq.is_full() {
            break;
        }
        let (sqe, res) = if rng.one_in(3) {
            let len = rng.below(1 << 16) as u32;
            let sqe = op::read(-1, core::ptr::null_mut(), len, rng.next());
            (sqe, len as i32)
        } else {
            (op::nop(), 0)
        };
        let ud = model.issue(res);
        push(&mut sq, &sqe.user_data(ud)).unwrap();
        n += 1;
    }
    n
}

/// One random ring, driven by a random sequence of operations, then drained.
fn model_run(rng: &mut Rng, ops: u32) {
    let sq_entries = 1u32 << rng.below(4);
    let overflow_limit = if rng.one_in(4) {
        rng.below(4) as u32
    } else {
        u32::MAX
    };
    let lossy = overflow_limit != u32::MAX;
    let cfg = SimConfig {
        cq_entries: [0, 1, 2, 4, 16][rng.below(5) as usize],
        sq_array: rng.one_in(2),
        reorder: rng.one_in(2),
        max_delay: rng.below(5) as u32,
        seed: rng.next(),
        overflow_limit,
        busy_on_overflow: rng.one_in(3),
        inject_eintr: rng.below(3) as u32,
        inject_ebusy: rng.below(3) as u32,
        // A lost timer CQE would make the lost count include the ring's own CQEs.
        no_ext_arg: !lossy && rng.one_in(2),
    };
    let busy_ok = cfg.busy_on_overflow || cfg.inject_ebusy > 0;
    let mut model = Model {
        expected: Vec::new(),
        seen: Vec::new(),
        seen_total: 0,
    };
    if rng.one_in(3) {
        model_run_detached(rng, ops, sq_entries, cfg, &mut model);
        return;
    }
    let mut ring = Ring::new_sim(sq_entries, cfg);
    let cq_entries = ring.cq_entries();
    let outstanding =
        |ring: &mut Ring, m: &Model| m.issued() - m.seen_total - u64::from(ring.cq().overflow());
    // Errors the configuration allows; anything else fails the test.
    let allowed = |r: &Result<u32>| match r {
        Ok(_) => true,
        Err(Error::Os(Errno::BUSY)) => busy_ok,
        Err(Error::Os(Errno::DEADLK)) => lossy,
        Err(_) => false,
    };
    for _ in 0..ops {
        match rng.below(6) {
            0 | 1 => {
                let max = 1 + rng.below(u64::from(sq_entries));
                model_push(&mut ring, &mut model, rng, max);
            }
            2 => {
                let before = ring.sq_unconsumed();
                let r = ring.submit();
                assert!(allowed(&r), "{r:?} with {cfg:?}");
                match r {
                    Ok(n) => assert_eq!((n, ring.sq_unconsumed()), (before, 0)),
                    Err(_) => assert_eq!(ring.sq_unconsumed(), before, "SQEs stay published"),
                }
            }
            3 => {
                let out = outstanding(&mut ring, &model);
                if out > 0 {
                    let want = 1 + rng.below(out.min(u64::from(cq_entries))) as u32;
                    let r = ring.submit_and_wait(want);
                    assert!(allowed(&r), "{r:?} with {cfg:?}");
                    if r.is_ok() {
                        assert!(ring.cq().len() >= want);
                    }
                }
            }
            4 => {
                let want = rng.below(u64::from(cq_entries) + 2) as u32;
                let r = ring.submit_and_wait_timeout(want, 1_000);
                if want > ring.cq_entries() {
                    assert_eq!(r, Err(Error::InvalidArgument("want exceeds the CQ size")));
                } else {
                    assert!(allowed(&r), "{r:?} with {cfg:?}");
                }
            }
            _ => {
                let take = rng.below(4) as usize;
                for cqe in ring.cq().take(take) {
                    model.record(&cqe);
                }
            }
        }
        assert_eq!(ring.sq().dropped(), 0);
    }
    // Drain: every request is seen once, or counted as lost.
    let mut rounds = 0;
    loop {
        for cqe in ring.cq() {
            model.record(&cqe);
        }
        if outstanding(&mut ring, &model) == 0 {
            break;
        }
        let r = ring.submit_and_wait(1);
        assert!(allowed(&r), "{r:?} with {cfg:?}");
        rounds += 1;
        assert!(rounds < 100_000, "no progress with {cfg:?}");
    }
    let lost = u64::from(ring.cq().overflow());
    assert_eq!(model.seen_total + lost, model.issued());
    if !lossy {
        assert_eq!(lost, 0, "{cfg:?}");
        assert_eq!(model.seen_total, model.issued());
    }
}

/// The detached variant: the kernel is stepped by hand between publishing, reaping, flushing and
/// injecting CQEs, and its statistics are checked against the ring's view.
fn model_run_detached(rng: &mut Rng, ops: u32, sq_entries: u32, cfg: SimConfig, model: &mut Model) {
    let (mut ring, mut kernel) = Ring::new_sim_detached(sq_entries, cfg);
    let mut pushed = 0u64;
    for _ in 0..ops {
        match rng.below(6) {
            0 | 1 => {
                let max = 1 + rng.below(u64::from(sq_entries));
                pushed += u64::from(model_push(&mut ring, model, rng, max));
            }
            2 => {
                // submit() on an SQPOLL-like ring only enters for GETEVENTS (the simulated
                // thread never sleeps, so no wakeup is needed; it counts the published SQEs only
                // when it enters): the SQEs stay for the kernel thread.
                let before = ring.sq_unconsumed();
                let r = ring.submit();
                assert!(r == Ok(0) || r == Ok(before), "{r:?}, {before} published");
                assert_eq!(ring.sq_unconsumed(), before);
                assert_eq!(u64::from(kernel.step()), u64::from(before));
            }
            3 => {
                // An injected completion for a request the kernel never saw (the model expects
                // it like any other).
                let res = rng.next() as i32;
                let ud = model.issue(res);
                kernel.inject_cqe(Cqe {
                    user_data: ud,
                    res,
                    flags: 0,
                });
            }
            4 => kernel.flush(),
            _ => {
                let take = rng.below(4) as usize;
                for cqe in ring.cq().take(take) {
                    model.record(&cqe);
                }
            }
        }
        assert_eq!(u64::from(ring.cq().overflow()), kernel.stats().lost);
    }
    let mut rounds = 0;
    loop {
        kernel.step();
        for cqe in ring.cq() {
            model.record(&cqe);
        }
        let lost = u64::from(ring.cq().overflow());
        if model.seen_total + lost == model.issued()
            && kernel.in_flight() == 0
            && kernel.overflow_len() == 0
        {
            break;
        }
        rounds += 1;
        assert!(rounds < 100_000, "no progress with {cfg:?}");
    }
    let stats = kernel.stats();
    assert_eq!(stats.consumed, pushed);
    assert_eq!(stats.posted + stats.lost, model.issued());
    assert_eq!(stats.posted, model.seen_total);
    assert_eq!(u64::from(ring.cq().overflow()), stats.lost);
    if cfg.overflow_limit == u32::MAX {
        assert_eq!(stats.lost, 0);
    }
    assert_eq!(ring.sq_unconsumed(), 0);
}

#[test]
fn randomized_model() {
    let (runs, ops) = if cfg!(miri) { (48, 60) } else { (600, 200) };
    let mut rng = Rng::new(0x00c0_ffee_1234_5678);
    for _ in 0..runs {
        model_run(&mut rng, ops);
    }
}
