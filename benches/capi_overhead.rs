//! What the C API costs over the Rust Engine: the same closed loop of 4 KiB page-cache random
//! reads at depth 32, once through aura-std's `Engine` and once through the `extern "C"`
//! functions of aura-capi (`aura_read` / `aura_wait`, called from Rust exactly as C calls them),
//! measured in the same run.
//!
//! Both sides read a 64 MiB file that is in the page cache (written by the bench, read once;
//! created under `$CAPI_OVERHEAD_DIR`, default the temp dir, removed at exit) into 32 page-aligned
//! pool buffers, with one ring and every other option at its default. 32 reads are submitted up
//! front; each step waits (`wait(-1)` / `aura_wait(e, -1)`), then submits one read per callback
//! that ran. The callbacks do the same work on both sides (note their slot in a thread-local
//! list). One criterion iteration is 32 completions.
//!
//! After the criterion group, an A/B loop alternates the two sides (5 rounds × 200 000 reads
//! each) and prints the ratio of the best ns/read of each side on stderr:
//! `capi_overhead: rust=… ns/op capi=… ns/op ratio=…`.

use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::raw::c_void;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aura::types::{AuraBuf, AuraBufU, AURA_BUF_UNREGISTERED};
use aura::{CEngine, Slot};
use aura_std::{Buffer, BufferRef, Engine, Options};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const FILE_SIZE: u64 = 64 << 20;
const PAGE: u64 = 4096;
const DEPTH: usize = 32;

thread_local! {
    /// Slots whose read completed, noted by either side's callback.
    static DONE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// The bench file: written, read once (so it is in the page cache), removed when dropped.
struct CachedFile {
    path: PathBuf,
    file: File,
}

impl CachedFile {
    fn create() -> CachedFile {
        let dir = std::env::var_os("CAPI_OVERHEAD_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!("aura-capi-overhead-{}.dat", std::process::id()));
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
        let mut f = File::open(&path).expect("reopen the bench file");
        while f.read(&mut chunk).expect("read the bench file") > 0 {}
        CachedFile { path, file }
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// xorshift64 page offsets (the same sequence on both sides).
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

/// One side of the comparison.
trait Side {
    fn submit(&mut self, slot: u32);
    fn wait(&mut self);
}

/// The closed loop shared by both sides: `n` completions, surplus credited to the next call.
struct Loop<S: Side> {
    side: S,
    credit: u64,
    slots: Vec<u32>,
}

impl<S: Side> Loop<S> {
    fn new(mut side: S) -> Self {
        DONE.with(|d| d.borrow_mut().clear());
        for slot in 0..DEPTH as u32 {
            side.submit(slot);
        }
        Loop {
            side,
            credit: 0,
            slots: Vec::with_capacity(2 * DEPTH),
        }
    }

    fn run(&mut self, n: u64) {
        let mut done = std::mem::take(&mut self.credit);
        while done < n {
            self.side.wait();
            let mut slots = std::mem::take(&mut self.slots);
            DONE.with(|d| std::mem::swap(&mut *d.borrow_mut(), &mut slots));
            for &slot in &slots {
                self.side.submit(slot);
            }
            done += slots.len() as u64;
            slots.clear();
            self.slots = slots;
        }
        self.credit = done - n;
    }
}

/// aura-std's Engine.
struct RustSide {
    engine: Engine,
    fd: i32,
    bufs: Vec<Buffer>,
    rng: Rng,
}

impl Side for RustSide {
    fn submit(&mut self, slot: u32) {
        let ptr = self.bufs[slot as usize].as_mut_ptr();
        // SAFETY: the buffer outlives the engine's drain (RustSide drops the engine first) and
        // only this slot's read uses it until its callback ran.
        unsafe {
            self.engine.read(
                self.fd,
                BufferRef::from_ptr(ptr, PAGE as usize),
                PAGE as usize,
                self.rng.page_offset(),
                move |r| {
                    assert_eq!(r.ok(), Some(PAGE as usize), "engine read");
                    DONE.with(|d| d.borrow_mut().push(slot));
                },
            )
        }
        .expect("engine read");
    }

    fn wait(&mut self) {
        self.engine.wait(-1).expect("wait");
    }
}

/// The C API, through its `extern "C"` functions.
struct CSide {
    engine: *mut CEngine,
    fd: i32,
    bufs: Vec<*mut c_void>,
    rng: Rng,
}

unsafe extern "C" fn c_done(_req: *mut Slot, result: isize, ud: *mut c_void) {
    assert_eq!(result, PAGE as isize, "aura_read");
    DONE.with(|d| d.borrow_mut().push(ud as usize as u32));
}

impl CSide {
    fn new(fd: i32) -> CSide {
        // SAFETY: a whole options struct; the engine is destroyed in Drop.
        unsafe {
            let mut o = std::mem::zeroed();
            aura::lifecycle::aura_options_init(&mut o);
            o.ring_count = 1;
            let engine = aura::lifecycle::aura_create_with_options(&o);
            assert!(!engine.is_null(), "aura_create_with_options");
            let bufs = (0..DEPTH)
                .map(|_| aura::buffers::aura_buffer_alloc(engine, PAGE as usize))
                .collect();
            CSide {
                engine,
                fd,
                bufs,
                rng: Rng(0x9E37_79B9_7F4A_7C15),
            }
        }
    }
}

impl Side for CSide {
    fn submit(&mut self, slot: u32) {
        let buf = AuraBuf {
            kind: AURA_BUF_UNREGISTERED,
            u: AuraBufU {
                ptr: self.bufs[slot as usize],
            },
        };
        // SAFETY: the pool buffer lives until aura_destroy (which drains first); only this
        // slot's read uses it until its callback ran.
        let r = unsafe {
            aura::io::aura_read(
                self.engine,
                self.fd,
                buf,
                PAGE as usize,
                self.rng.page_offset() as i64,
                0,
                Some(c_done),
                slot as usize as *mut c_void,
            )
        };
        assert!(!r.is_null(), "aura_read");
    }

    fn wait(&mut self) {
        // SAFETY: a live engine.
        let n = unsafe { aura::events::aura_wait(self.engine, -1) };
        assert!(n >= 0, "aura_wait");
    }
}

impl Drop for CSide {
    fn drop(&mut self) {
        // SAFETY: the engine is live and used by nothing else; destroy drains, then frees the
        // pool buffers with it.
        unsafe { aura::lifecycle::aura_destroy(self.engine) };
    }
}

fn rust_side(fd: i32) -> RustSide {
    let engine = Engine::with_options(Options::new().ring_count(1)).expect("engine");
    let bufs = (0..DEPTH)
        .map(|_| engine.allocate_buffer(PAGE as usize).expect("buffer"))
        .collect();
    RustSide {
        engine,
        fd,
        bufs,
        rng: Rng(0x9E37_79B9_7F4A_7C15),
    }
}

/// ns per read over `n` reads.
fn time<S: Side>(l: &mut Loop<S>, n: u64) -> f64 {
    let t = Instant::now();
    l.run(n);
    t.elapsed().as_nanos() as f64 / n as f64
}

fn capi_overhead(c: &mut Criterion) {
    let file = CachedFile::create();
    let fd = file.file.as_raw_fd();
    let mut g = c.benchmark_group("capi_overhead");
    g.throughput(Throughput::Elements(DEPTH as u64));
    {
        let mut l = Loop::new(rust_side(fd));
        g.bench_function(BenchmarkId::new("read4k_qd32", "rust"), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                l.run(iters * DEPTH as u64);
                t.elapsed()
            })
        });
    }
    {
        let mut l = Loop::new(CSide::new(fd));
        g.bench_function(BenchmarkId::new("read4k_qd32", "capi"), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                l.run(iters * DEPTH as u64);
                t.elapsed()
            })
        });
    }
    g.finish();

    // A/B: alternate the sides, keep each side's best round.
    let (mut rust, mut capi) = (Loop::new(rust_side(fd)), Loop::new(CSide::new(fd)));
    let (mut best_r, mut best_c) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        best_r = best_r.min(time(&mut rust, 200_000));
        best_c = best_c.min(time(&mut capi, 200_000));
    }
    eprintln!(
        "capi_overhead: rust={best_r:.1} ns/op capi={best_c:.1} ns/op ratio={:.4} ({:+.2} %)",
        best_c / best_r,
        (best_c / best_r - 1.0) * 100.0
    );
    drop((rust, capi));
    drop(file);
}

/// Criterion's defaults for this bench (the command line still overrides them).
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

mod harness {
    #![allow(missing_docs)]
    use super::*;
    criterion_group! {
        name = benches;
        config = config();
        targets = capi_overhead
    }
}
criterion_main!(harness::benches);
