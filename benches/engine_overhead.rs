//! What the Engine costs over a bare ring: aura-std's `Engine` against an aura-core `Ring` loop
//! doing the same I/O, measured in the same run.
//!
//! Both sides read a 256 MiB file that is in the page cache (written by the bench, synced, then
//! read once; created under `$ENGINE_OVERHEAD_DIR`, default the temp dir, and removed at exit), with
//! page-aligned buffers from an aura-std buffer pool, preallocated.
//!
//! - `engine_overhead/read4k_qd32`: 4 KiB reads at random page offsets, 32 kept in flight: 32 are
//!   submitted up front, then each one is submitted again as soon as its completion is seen.
//!   - bare: a `Ring` (64 SQ entries, `Params::new()`); `submit_and_wait(1)`, reap every CQE,
//!     push one read per reaped slot through one SQ view, repeat.
//!   - Engine: `Engine::with_options(Options::new().ring_count(1))` and the unsafe callback API on
//!     the preallocated buffers; `wait(-1)`, then submit one read per callback that ran (the
//!     callbacks note their slot), repeat.
//!
//!   One criterion iteration is 32 completions (`Throughput::Elements(32)`); completions beyond
//!   the iteration's count are credited to the next one, so the depth never drains.
//! - `engine_overhead/nop_b32`: rounds of 32 NOPs (`IORING_OP_NOP`): per-request overhead with no
//!   kernel work per request beyond the ring itself — the "NOPs at batch 32".
//!   - bare: push 32 NOPs through one SQ view, `submit_and_wait(32)`, reap 32.
//!   - Engine: 32 `Engine::nop` calls, then `wait(-1)` until their 32 callbacks ran.
//! - `engine_overhead/small_b32`: the same rounds with 32 one-byte reads of cached pages (at
//!   random page offsets) instead of NOPs: a little kernel work per request.
//!
//!   One iteration is one round (`Throughput::Elements(32)`).
//!
//! `engine` is the configuration the goals are set for, with one call per operation;
//! `engine-batch` is the same Engine with each round's operations (for the 4 KiB case, the reads
//! resubmitted after each `wait`) handed to one `Engine::batch`. Each case also runs three more
//! Engine variants, to tell the costs apart: `engine-fixed` (adaptive tuning off: in-flight limit = queue depth,
//! batch threshold `MIN_BATCH`), `engine-batch0` (adaptive, but `batch_threshold(0)`: SQEs are
//! flushed only by `wait`/`poll`), and `engine-tuned` (queue depth 64, adaptive off, in-flight
//! limit 32, `batch_threshold(0)`: the Engine set up for this loop). The ring's stats (phase,
//! in-flight limit, batch threshold) are printed on stderr after each Engine bench.
//!
//! After criterion's cases, a paired run of `engine` and of `engine-batch` against the bare loop
//! prints Engine/bare per case on stderr (`engine_overhead: paired read4k_qd32 engine/bare = …`):
//! blocks of each side alternate and the ratio is the median over the pairs (see [`paired`]).
//! `ENGINE_OVERHEAD_CASES` and `ENGINE_OVERHEAD_SIDES` pick what runs.
//!
//! Results: `benches/RESULTS.md`, section "engine_overhead".

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aura_core::op::{self, Target};
use aura_core::{Params, Ring};
use aura_std::{Buffer, BufferPool, BufferRef, Engine, Options};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// The file's size: 256 MiB.
const FILE_SIZE: u64 = 256 << 20;
/// Page size, read size of the 4 KiB case, and the offset granularity of both cases.
const PAGE: u64 = 4096;
/// Reads kept in flight (4 KiB case) and reads per round (small-op case).
const DEPTH: usize = 32;

/// The bench file: written, read once (so it is in the page cache), removed when dropped.
struct CachedFile {
    path: PathBuf,
    file: File,
}

impl CachedFile {
    fn create() -> CachedFile {
        let dir = std::env::var_os("ENGINE_OVERHEAD_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!("aura-engine-overhead-{}.dat", std::process::id()));
        let mut file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create the bench file");
        let mut chunk = vec![0u8; 1 << 20];
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        for _ in 0..FILE_SIZE / chunk.len() as u64 {
            file.write_all(&chunk).expect("write the bench file");
        }
        // Written back now, not while the first bench runs (the writeback's disk I/O and
        // kworker time would land in whichever side is measured first).
        file.sync_all().expect("sync the bench file");
        // Read it back once: every page is then in the page cache.
        let mut f = File::open(&path).expect("reopen the bench file");
        let mut total = 0u64;
        loop {
            match f.read(&mut chunk).expect("read the bench file") {
                0 => break,
                n => total += n as u64,
            }
        }
        assert_eq!(total, FILE_SIZE);
        CachedFile { path, file }
    }

    fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// xorshift64: the random page offsets (same sequence for both sides).
struct Rng(u64);

impl Rng {
    fn page_offset(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x % (FILE_SIZE / PAGE)) * PAGE
    }
}

/// `DEPTH` page-aligned 4 KiB buffers and their addresses.
struct Buffers {
    _bufs: Vec<Buffer>,
    ptrs: Vec<*mut u8>,
}

impl Buffers {
    fn new(pool: &BufferPool) -> Buffers {
        let mut bufs: Vec<Buffer> = (0..DEPTH)
            .map(|_| pool.alloc(PAGE as usize).expect("buffer"))
            .collect();
        let ptrs = bufs.iter_mut().map(|b| b.as_mut_ptr()).collect();
        Buffers { _bufs: bufs, ptrs }
    }
}

// ---- bare ring ----

/// The bare ring's closed loop of 4 KiB reads.
struct BareReads {
    ring: Ring,
    fd: i32,
    bufs: Buffers,
    rng: Rng,
    /// Completions counted past what the last iteration needed, for the next one.
    credit: u64,
}

impl BareReads {
    fn new(fd: i32, pool: &BufferPool) -> BareReads {
        let mut r = BareReads {
            ring: Ring::new(2 * DEPTH as u32, &Params::new()).expect("ring"),
            fd,
            bufs: Buffers::new(pool),
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            credit: 0,
        };
        let slots: Vec<u32> = (0..DEPTH as u32).collect();
        r.push(&slots);
        r
    }

    fn push(&mut self, slots: &[u32]) {
        let mut sq = self.ring.sq();
        for &slot in slots {
            let sqe = op::read(
                Target::Fd(self.fd),
                self.bufs.ptrs[slot as usize],
                PAGE as u32,
                self.rng.page_offset(),
            )
            .user_data(u64::from(slot));
            // SAFETY: the buffer lives as long as the ring (both are fields of `self`, the ring
            // is dropped first) and only this slot's read uses it until its CQE is reaped.
            unsafe { sq.push(&sqe) }.expect("SQ has room");
        }
    }

    /// Steps until `n` completions were counted (the surplus goes to the next call).
    fn run(&mut self, n: u64) {
        let mut done = std::mem::take(&mut self.credit);
        while done < n {
            done += black_box(self.step());
        }
        self.credit = done - n;
    }

    /// One `submit_and_wait(1)`, reap, resubmit; returns the completions.
    #[inline(never)]
    fn step(&mut self) -> u64 {
        self.ring.submit_and_wait(1).expect("submit_and_wait");
        let mut slots = [0u32; 2 * DEPTH];
        let mut n = 0;
        for cqe in self.ring.cq() {
            assert_eq!(cqe.res, PAGE as i32, "bare read");
            slots[n] = cqe.user_data as u32;
            n += 1;
        }
        self.push(&slots[..n]);
        n as u64
    }
}

/// Submits the round's `DEPTH` SQEs, waits for their completions and reaps them, each of which
/// must have the result `res`. Returns a checksum of the user data (so nothing is optimised out).
fn submit_and_reap(ring: &mut Ring, res: i32) -> u64 {
    ring.submit_and_wait(DEPTH as u32).expect("submit_and_wait");
    let mut sum = 0;
    for cqe in ring.cq() {
        assert_eq!(cqe.res, res, "bare round");
        sum += 1 + cqe.user_data;
    }
    sum
}

/// The bare ring's rounds of 32 NOPs.
struct BareNop {
    ring: Ring,
}

impl BareNop {
    fn new() -> BareNop {
        BareNop {
            ring: Ring::new(2 * DEPTH as u32, &Params::new()).expect("ring"),
        }
    }

    #[inline(never)]
    fn round(&mut self) -> u64 {
        {
            let mut sq = self.ring.sq();
            for slot in 0..DEPTH {
                let sqe = op::nop().user_data(slot as u64);
                // SAFETY: a NOP references no memory.
                unsafe { sq.push(&sqe) }.expect("SQ has room");
            }
        }
        submit_and_reap(&mut self.ring, 0)
    }
}

/// The bare ring's rounds of 32 one-byte reads.
struct BareSmall {
    ring: Ring,
    fd: i32,
    bufs: Buffers,
    rng: Rng,
}

impl BareSmall {
    fn new(fd: i32, pool: &BufferPool) -> BareSmall {
        BareSmall {
            ring: Ring::new(2 * DEPTH as u32, &Params::new()).expect("ring"),
            fd,
            bufs: Buffers::new(pool),
            rng: Rng(0x9E37_79B9_7F4A_7C15),
        }
    }

    #[inline(never)]
    fn round(&mut self) -> u64 {
        {
            let mut sq = self.ring.sq();
            for slot in 0..DEPTH {
                let sqe = op::read(
                    Target::Fd(self.fd),
                    self.bufs.ptrs[slot],
                    1,
                    self.rng.page_offset(),
                )
                .user_data(slot as u64);
                // SAFETY: as in `BareReads::push`; every read of a round is reaped before the
                // next round reuses its buffer.
                unsafe { sq.push(&sqe) }.expect("SQ has room");
            }
        }
        submit_and_reap(&mut self.ring, 1)
    }
}

// ---- Engine ----

thread_local! {
    /// Slots whose read completed (callbacks run on the thread that waits: this one).
    static DONE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// Callbacks that ran (small-op case).
    static RAN: Cell<u64> = const { Cell::new(0) };
}

/// The callback of the 4 KiB read into `slot`'s buffer: notes the slot for resubmission.
fn read_done(slot: u32) -> impl FnOnce(aura_std::Result<usize>) + Send + 'static {
    move |r| {
        assert_eq!(r.ok(), Some(PAGE as usize), "engine read");
        DONE.with(|d| d.borrow_mut().push(slot));
    }
}

/// The Engine's closed loop of 4 KiB reads.
struct EngineReads {
    engine: Engine,
    fd: i32,
    bufs: Buffers,
    rng: Rng,
    /// Completions counted past what the last iteration needed, for the next one.
    credit: u64,
    slots: Vec<u32>,
    /// Each step's reads go through one [`aura_std::Batch`] instead of one call each.
    batched: bool,
}

impl EngineReads {
    fn new(fd: i32, options: Options, batched: bool) -> EngineReads {
        let engine = Engine::with_options(options).expect("engine");
        let bufs = Buffers::new(engine.buffer_pool());
        DONE.with(|d| d.borrow_mut().clear());
        let mut r = EngineReads {
            engine,
            fd,
            bufs,
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            credit: 0,
            slots: Vec::with_capacity(2 * DEPTH),
            batched,
        };
        for slot in 0..DEPTH as u32 {
            r.submit(slot);
        }
        r
    }

    fn submit(&mut self, slot: u32) {
        // SAFETY: the buffer lives until the engine is dropped (`EngineReads` drops its fields in
        // order: the engine, which waits for every callback, before the buffers), and only this
        // slot's read uses it until its callback has run.
        unsafe {
            let buf = BufferRef::from_ptr(self.bufs.ptrs[slot as usize], PAGE as usize);
            self.engine.read(
                self.fd,
                buf,
                PAGE as usize,
                self.rng.page_offset(),
                read_done(slot),
            )
        }
        .expect("engine read");
    }

    /// Submits one read per slot in `slots` through one batch.
    fn submit_batch(&mut self, slots: &[u32]) {
        let mut batch = self.engine.batch();
        for &slot in slots {
            // SAFETY: as in `EngineReads::submit`.
            unsafe {
                let buf = BufferRef::from_ptr(self.bufs.ptrs[slot as usize], PAGE as usize);
                batch.read(
                    self.fd,
                    buf,
                    PAGE as usize,
                    self.rng.page_offset(),
                    read_done(slot),
                )
            }
            .expect("engine read");
        }
        assert_eq!(batch.submit().expect("batch"), slots.len(), "batch submit");
    }

    /// Steps until `n` completions were counted (the surplus goes to the next call).
    fn run(&mut self, n: u64) {
        let mut done = std::mem::take(&mut self.credit);
        while done < n {
            done += black_box(self.step());
        }
        self.credit = done - n;
    }

    /// One `wait(-1)`, then one read per callback that ran; returns the completions.
    #[inline(never)]
    fn step(&mut self) -> u64 {
        self.engine.wait(-1).expect("wait");
        let mut slots = std::mem::take(&mut self.slots);
        DONE.with(|d| std::mem::swap(&mut *d.borrow_mut(), &mut slots));
        if self.batched {
            self.submit_batch(&slots);
        } else {
            for &slot in &slots {
                self.submit(slot);
            }
        }
        let n = slots.len() as u64;
        slots.clear();
        self.slots = slots;
        n
    }
}

/// The Engine's rounds of 32 one-byte reads.
struct EngineSmall {
    engine: Engine,
    fd: i32,
    bufs: Buffers,
    rng: Rng,
    /// Each round's reads go through one [`aura_std::Batch`].
    batched: bool,
}

impl EngineSmall {
    fn new(fd: i32, options: Options, batched: bool) -> EngineSmall {
        let engine = Engine::with_options(options).expect("engine");
        let bufs = Buffers::new(engine.buffer_pool());
        EngineSmall {
            engine,
            fd,
            bufs,
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            batched,
        }
    }

    #[inline(never)]
    fn round(&mut self) -> u64 {
        RAN.with(|r| r.set(0));
        if self.batched {
            let mut batch = self.engine.batch();
            for slot in 0..DEPTH {
                // SAFETY: as in `EngineReads::submit`; every read of a round completes before
                // the next round reuses its buffer.
                unsafe {
                    let buf = BufferRef::from_ptr(self.bufs.ptrs[slot], 1);
                    batch.read(self.fd, buf, 1, self.rng.page_offset(), |r| {
                        assert_eq!(r.ok(), Some(1), "engine read");
                        RAN.with(|n| n.set(n.get() + 1));
                    })
                }
                .expect("engine read");
            }
            assert_eq!(batch.submit().expect("batch"), DEPTH, "batch submit");
            return wait_round(&self.engine);
        }
        for slot in 0..DEPTH {
            // SAFETY: as in `EngineReads::submit`; every read of a round completes before the
            // next round reuses its buffer.
            unsafe {
                let buf = BufferRef::from_ptr(self.bufs.ptrs[slot], 1);
                self.engine
                    .read(self.fd, buf, 1, self.rng.page_offset(), |r| {
                        assert_eq!(r.ok(), Some(1), "engine read");
                        RAN.with(|n| n.set(n.get() + 1));
                    })
            }
            .expect("engine read");
        }
        wait_round(&self.engine)
    }
}

/// Waits until the round's `DEPTH` callbacks ran (each counts itself in `RAN`); returns `DEPTH`.
fn wait_round(engine: &Engine) -> u64 {
    while RAN.with(Cell::get) < DEPTH as u64 {
        engine.wait(-1).expect("wait");
    }
    DEPTH as u64
}

/// The Engine's rounds of 32 NOPs.
struct EngineNop {
    engine: Engine,
    /// Each round's NOPs go through one [`aura_std::Batch`].
    batched: bool,
}

impl EngineNop {
    fn new(options: Options, batched: bool) -> EngineNop {
        EngineNop {
            engine: Engine::with_options(options).expect("engine"),
            batched,
        }
    }

    #[inline(never)]
    fn round(&mut self) -> u64 {
        RAN.with(|r| r.set(0));
        if self.batched {
            let mut batch = self.engine.batch();
            for _ in 0..DEPTH {
                batch
                    .nop(|r| {
                        assert_eq!(r.ok(), Some(0), "engine nop");
                        RAN.with(|n| n.set(n.get() + 1));
                    })
                    .expect("engine nop");
            }
            assert_eq!(batch.submit().expect("batch"), DEPTH, "batch submit");
            return wait_round(&self.engine);
        }
        for _ in 0..DEPTH {
            self.engine
                .nop(|r| {
                    assert_eq!(r.ok(), Some(0), "engine nop");
                    RAN.with(|n| n.set(n.get() + 1));
                })
                .expect("engine nop");
        }
        wait_round(&self.engine)
    }
}

// ---- the benches ----

/// The Engine variants: name, options, and whether the loop submits through a `Batch`.
fn engine_variants() -> [(&'static str, Options, bool); 5] {
    let base = || Options::new().ring_count(1);
    [
        ("engine", base(), false),
        ("engine-batch", base(), true),
        ("engine-fixed", base().disable_adaptive(true), false),
        ("engine-batch0", base().batch_threshold(0), false),
        (
            "engine-tuned",
            base()
                .queue_depth(64)
                .disable_adaptive(true)
                .initial_in_flight(DEPTH as u32)
                .batch_threshold(0),
            false,
        ),
    ]
}

fn report(name: &str, case: &str, engine: &Engine) {
    let s = engine.ring_stats(0).expect("ring 0");
    eprintln!(
        "engine_overhead: {case}/{name}: phase={:?} in_flight_limit={} batch_threshold={} \
         peak_in_flight={} ops={}",
        s.phase, s.in_flight_limit, s.batch_threshold, s.peak_in_flight, s.ops_completed
    );
}

fn engine_overhead(c: &mut Criterion) {
    let file = CachedFile::create();
    let fd = file.fd();
    let pool = BufferPool::with_default_alignment();
    let mut g = c.benchmark_group("engine_overhead");
    g.throughput(Throughput::Elements(DEPTH as u64));

    // (a) 4 KiB random reads, 32 in flight.
    {
        let mut bare = BareReads::new(fd, &pool);
        g.bench_function(BenchmarkId::new("read4k_qd32", "bare"), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                bare.run(iters * DEPTH as u64);
                t.elapsed()
            })
        });
    }
    for (name, options, batched) in engine_variants() {
        let mut e = EngineReads::new(fd, options, batched);
        g.bench_function(BenchmarkId::new("read4k_qd32", name), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                e.run(iters * DEPTH as u64);
                t.elapsed()
            })
        });
        report(name, "read4k_qd32", &e.engine);
    }

    // (b) rounds of 32 NOPs.
    {
        let mut bare = BareNop::new();
        g.bench_function(BenchmarkId::new("nop_b32", "bare"), |b| {
            b.iter(|| black_box(bare.round()))
        });
    }
    for (name, options, batched) in engine_variants() {
        let mut e = EngineNop::new(options, batched);
        g.bench_function(BenchmarkId::new("nop_b32", name), |b| {
            b.iter(|| black_box(e.round()))
        });
        report(name, "nop_b32", &e.engine);
    }

    // (c) rounds of 32 one-byte reads.
    {
        let mut bare = BareSmall::new(fd, &pool);
        g.bench_function(BenchmarkId::new("small_b32", "bare"), |b| {
            b.iter(|| black_box(bare.round()))
        });
    }
    for (name, options, batched) in engine_variants() {
        let mut e = EngineSmall::new(fd, options, batched);
        g.bench_function(BenchmarkId::new("small_b32", name), |b| {
            b.iter(|| black_box(e.round()))
        });
        report(name, "small_b32", &e.engine);
    }
    g.finish();
    paired(fd, &pool);
    drop(file);
}

/// The paired comparison (`ENGINE_OVERHEAD_PAIRS`, default 20; 0 skips it): blocks of the bare
/// loop and of the default `engine` alternate, `ENGINE_OVERHEAD_BLOCK` rounds of 32 each
/// (default 2000), and each case prints Engine/bare = bare time / Engine time, the median over the
/// pairs (a slow spell of the machine hits both sides of a pair, or one pair only).
/// `ENGINE_OVERHEAD_CASES` (comma-separated case names, default all) picks the cases,
/// `ENGINE_OVERHEAD_SIDES` (`engine`, `engine-batch`; default both) the Engine sides.
fn paired(fd: i32, pool: &BufferPool) {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let pairs = env("ENGINE_OVERHEAD_PAIRS", 20);
    let block = env("ENGINE_OVERHEAD_BLOCK", 2000).max(1);
    if pairs == 0 {
        return;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0
    };
    let timed = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    let base = || Options::new().ring_count(1);
    let cases = std::env::var("ENGINE_OVERHEAD_CASES").unwrap_or_default();
    let wanted = |case: &str| cases.is_empty() || cases.split(',').any(|c| c == case);

    let sides = std::env::var("ENGINE_OVERHEAD_SIDES").unwrap_or_default();
    for batched in [false, true] {
        let side = if batched { "engine-batch" } else { "engine" };
        if !sides.is_empty() && !sides.split(',').any(|s| s == side) {
            continue;
        }
        if wanted("read4k_qd32") {
            paired_reads(fd, pool, pairs, block, batched, &median, &timed);
        }
        if wanted("nop_b32") {
            let mut bare = BareNop::new();
            let mut engine = EngineNop::new(base(), batched);
            paired_rounds(
                "nop_b32",
                side,
                pairs,
                block,
                &mut || bare.round(),
                &mut || engine.round(),
            );
            report(&format!("{side} (paired)"), "nop_b32", &engine.engine);
        }
        if wanted("small_b32") {
            let mut bare = BareSmall::new(fd, pool);
            let mut engine = EngineSmall::new(fd, base(), batched);
            paired_rounds(
                "small_b32",
                side,
                pairs,
                block,
                &mut || bare.round(),
                &mut || engine.round(),
            );
            report(&format!("{side} (paired)"), "small_b32", &engine.engine);
        }
    }
}

/// The paired comparison of the read case (its own loop: completions, not rounds).
fn paired_reads(
    fd: i32,
    pool: &BufferPool,
    pairs: u64,
    block: u64,
    batched: bool,
    median: &dyn Fn(Vec<f64>) -> f64,
    timed: &dyn Fn(&mut dyn FnMut()) -> f64,
) {
    let side = if batched { "engine-batch" } else { "engine" };
    let mut bare = BareReads::new(fd, pool);
    let mut engine = EngineReads::new(fd, Options::new().ring_count(1), batched);
    // Warm-up: one block each.
    bare.run(block * DEPTH as u64);
    engine.run(block * DEPTH as u64);
    let ratios = (0..pairs)
        .map(|_| {
            let b = timed(&mut || bare.run(block * DEPTH as u64));
            let e = timed(&mut || engine.run(block * DEPTH as u64));
            b / e
        })
        .collect::<Vec<_>>();
    eprintln!(
        "engine_overhead: paired read4k_qd32 {side}/bare = {:.3} (median of {pairs} pairs of \
         {block} rounds)",
        median(ratios)
    );
    report(&format!("{side} (paired)"), "read4k_qd32", &engine.engine);
}

/// The paired comparison of one round-based case: `block` rounds of each side alternate,
/// `pairs` times after one block each of warm-up; prints the median of bare time / Engine time.
fn paired_rounds(
    case: &str,
    side: &str,
    pairs: u64,
    block: u64,
    bare: &mut dyn FnMut() -> u64,
    engine: &mut dyn FnMut() -> u64,
) {
    let mut sink = 0;
    let mut timed = |f: &mut dyn FnMut() -> u64| {
        let t = Instant::now();
        for _ in 0..block {
            sink += f();
        }
        t.elapsed().as_secs_f64()
    };
    timed(bare);
    timed(engine);
    let mut ratios = (0..pairs)
        .map(|_| {
            let b = timed(bare);
            let e = timed(engine);
            b / e
        })
        .collect::<Vec<_>>();
    black_box(sink);
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    eprintln!(
        "engine_overhead: paired {case} {side}/bare = {:.3} (median of {pairs} pairs of \
         {block} rounds)",
        (ratios[(n - 1) / 2] + ratios[n / 2]) / 2.0
    );
}

/// Criterion's defaults for this bench (the command line still overrides them).
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

mod harness {
    #![allow(missing_docs)]

    use super::{config, criterion_group, engine_overhead};

    criterion_group! {
        name = benches;
        config = config();
        targets = engine_overhead
    }
}

criterion_main!(harness::benches);
