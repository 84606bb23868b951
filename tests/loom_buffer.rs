//! Loom models of the buffer pool's free-list hand-off: a thread's cache (`LocalCache`, what
//! each thread keeps in its `thread_local!`) flushing batches to a shared `Shard` while another
//! thread's cache refills from it. The models drive the pool's real `LocalCache` / `Shard` code
//! (with loom's `Mutex` inside the shard) on stand-in addresses, and check that no buffer is lost
//! or handed out twice: at the end every buffer ever created is in exactly one place (a shard, a
//! cache, or freed to the "allocator").
//!
//! Only built with `--cfg loom` (normal `cargo test` compiles this file to nothing):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" \
//!     cargo test --release -p aura-tests --test loom_buffer --target-dir target/loom
//! ```
//!
//! Exhaustive (no preemption bound): the hand-off is a few lock acquisitions per thread.
#![cfg(loom)]

use std::ptr::NonNull;

use aura_std::buffer::loom_api::{LocalCache, RawBuf, Shard};
use loom::sync::Arc;
use loom::thread;

/// The size class the models use (any class behaves alike).
const CLASS: usize = 3;

/// A stand-in buffer address for id `id` (never dereferenced).
fn raw(id: usize) -> RawBuf {
    RawBuf(NonNull::new(std::ptr::without_provenance_mut(id * 4096)).unwrap())
}

/// The id of a stand-in buffer.
fn id(buf: RawBuf) -> usize {
    buf.0.as_ptr().addr() / 4096
}

/// What one model thread leaves behind.
#[derive(Default)]
struct Outcome {
    /// Ids this thread created ("fresh from the allocator": its cache and the shard were empty).
    minted: Vec<usize>,
    /// Ids this thread freed to the allocator (the shard was full).
    freed: Vec<usize>,
    /// Ids still in this thread's cache at the end.
    cached: Vec<usize>,
}

impl Outcome {
    /// Takes a buffer like the pool does: cache, shard refill, else a fresh one numbered `next`.
    fn take(&mut self, cache: &mut LocalCache, shard: &Shard, next: &mut usize) -> usize {
        match cache.take(CLASS, shard) {
            Some(buf) => id(buf),
            None => {
                *next += 1;
                self.minted.push(*next);
                *next
            }
        }
    }

    /// Gives buffer `b` back to `cache`, recording what overflowed to the allocator.
    fn put(&mut self, cache: &mut LocalCache, shard: &Shard, b: usize) {
        cache.put(CLASS, raw(b), shard, |_, buf| self.freed.push(id(buf)));
    }

    /// Records what is left in `cache`.
    fn finish(&mut self, mut cache: LocalCache) {
        cache.drain_all(|_, buf| self.cached.push(id(buf)));
    }
}

/// Asserts that every buffer of `seeded` and of the threads' `minted` lists is in exactly one
/// place: the shard, a thread's cache, or a thread's `freed` list; and that the shard kept its
/// cap of `shard_cap`.
fn check_conservation(shard: &Shard, shard_cap: usize, seeded: &[usize], outcomes: &[Outcome]) {
    let mut created: Vec<usize> = seeded.to_vec();
    let mut placed = Vec::new();
    shard.drain_all(|_, buf| placed.push(id(buf)));
    assert!(placed.len() <= shard_cap, "the shard grew beyond its cap");
    for o in outcomes {
        created.extend(&o.minted);
        placed.extend(&o.freed);
        placed.extend(&o.cached);
    }
    created.sort_unstable();
    placed.sort_unstable();
    assert_eq!(placed, created, "a buffer was lost or handed out twice");
}

/// A producer allocates three buffers (refilling from the shard or minting) and frees them into
/// its cache, which flushes a batch to the shard; meanwhile a consumer refills from the shard,
/// holds two buffers, frees them and flushes its cache on "thread exit". The shard holds at most
/// `shard_cap` per class, so with a small cap flushes overflow to the allocator.
fn flush_vs_refill(shard_cap: usize) {
    loom::model(move || {
        let shard = Arc::new(Shard::new(shard_cap));
        // Two buffers already in the shard.
        let seeded = [1, 2];
        for &b in &seeded {
            shard.push_one(CLASS, raw(b)).unwrap();
        }

        let producer = {
            let shard = Arc::clone(&shard);
            thread::spawn(move || {
                let mut out = Outcome::default();
                let mut cache = LocalCache::new(2, 2);
                let mut next = 100;
                let held: Vec<usize> = (0..3)
                    .map(|_| out.take(&mut cache, &shard, &mut next))
                    .collect();
                // The third put finds the cache full and flushes both cached buffers first.
                for b in held {
                    out.put(&mut cache, &shard, b);
                }
                assert!(cache.len(CLASS) <= 2);
                out.finish(cache);
                out
            })
        };
        let consumer = {
            let shard = Arc::clone(&shard);
            thread::spawn(move || {
                let mut out = Outcome::default();
                let mut cache = LocalCache::new(2, 1);
                let mut next = 200;
                let a = out.take(&mut cache, &shard, &mut next);
                let b = out.take(&mut cache, &shard, &mut next);
                assert_ne!(a, b, "one buffer handed out twice");
                out.put(&mut cache, &shard, a);
                out.put(&mut cache, &shard, b);
                // Thread exit: the cache goes back to the shard.
                cache.flush_all(&shard, |_, buf| out.freed.push(id(buf)));
                out.finish(cache);
                out
            })
        };
        let outcomes = [producer.join().unwrap(), consumer.join().unwrap()];
        check_conservation(&shard, shard_cap, &seeded, &outcomes);
    });
}

/// Room in the shard for everything: nothing overflows.
#[test]
fn loom_flush_vs_refill() {
    flush_vs_refill(8);
}

/// A shard of 2 per class: the producer's flush and the consumer's exit flush race for room,
/// and the losers go to the allocator.
#[test]
fn loom_flush_vs_refill_overflow() {
    flush_vs_refill(2);
}

/// Two threads each allocate and free repeatedly through their caches (max 1, batch 1: every
/// second free flushes, every miss refills), so batches cross between them through the shard.
#[test]
fn loom_ping_pong() {
    loom::model(|| {
        let shard = Arc::new(Shard::new(2));
        let seeded = [1];
        shard.push_one(CLASS, raw(1)).unwrap();
        let spawn = |base: usize| {
            let shard = Arc::clone(&shard);
            thread::spawn(move || {
                let mut out = Outcome::default();
                let mut cache = LocalCache::new(1, 1);
                let mut next = base;
                for _ in 0..2 {
                    let a = out.take(&mut cache, &shard, &mut next);
                    let b = out.take(&mut cache, &shard, &mut next);
                    assert_ne!(a, b, "one buffer handed out twice");
                    out.put(&mut cache, &shard, a);
                    out.put(&mut cache, &shard, b);
                }
                out.finish(cache);
                out
            })
        };
        let (t1, t2) = (spawn(100), spawn(200));
        let outcomes = [t1.join().unwrap(), t2.join().unwrap()];
        check_conservation(&shard, 2, &seeded, &outcomes);
    });
}
