//! What the Engine costs over a bare aura-core ring loop doing the same work, in the same run.
//!
//! - `engine_overhead/read4k_qd32`: 4 KiB reads at random 4 KiB-aligned offsets of a 64 MiB file
//!   held in the page cache, 32 in flight, each completion refilled at once. Bare: one ring, 32
//!   buffers, `submit_and_wait(1)`, reap, refill. Engine: `ring_count(1)`, a fixed in-flight
//!   limit of 32 (`disable_adaptive`, so both loops run the same depth), callbacks returning the
//!   slot, `wait(-1)`, refill.
//! - `engine_overhead/small_batch32`: 1-byte reads of the same cached file in batches of 32 (the
//!   Engine has no NOP operation; a 1-byte cached read is the cheapest op it offers). Bare: push
//!   32, `submit_and_wait(32)`, reap 32. Engine: 32 submissions, then `wait` until all 32 ran.
//!
//! Throughput is per operation. Goals: Engine ≥ 0.95 × bare on reads, ≥ 0.80 × on the batch.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aura_core::{op, Params, Ring};
use aura_std::{BufferRef, Engine, Options};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const FILE_SIZE: u64 = 64 << 20;
const DEPTH: usize = 32;
const BLOCK: usize = 4096;

/// A 64 MiB file in the target directory, read once so it sits in the page cache.
fn cached_file() -> File {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("aura-engine-overhead-64m.dat");
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(FILE_SIZE) {
        let mut f = File::create(&path).expect("create the bench file");
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..FILE_SIZE >> 20 {
            f.write_all(&chunk).expect("write the bench file");
        }
    }
    let data = std::fs::read(&path).expect("warm the page cache");
    assert_eq!(data.len() as u64, FILE_SIZE);
    File::open(&path).expect("open the bench file")
}

/// xorshift64: random block offsets, the same sequence for both loops.
struct Offsets(u64);

impl Offsets {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % (FILE_SIZE / BLOCK as u64)) * BLOCK as u64
    }
}

fn bare_reads(ring: &mut Ring, fd: i32, bufs: &mut [Vec<u8>], ops: u64) {
    let mut offs = Offsets(0x9E37_79B9_7F4A_7C15);
    let mut done = 0u64;
    let mut issued = 0u64;
    {
        let mut sq = ring.sq();
        for (slot, buf) in bufs.iter_mut().enumerate() {
            let sqe =
                op::read(fd, buf.as_mut_ptr(), BLOCK as u32, offs.next()).user_data(slot as u64);
            // SAFETY: each buffer outlives its read: we reap every CQE before returning.
            unsafe { sq.push(&sqe) }.expect("room");
            issued += 1;
        }
    }
    while done < ops {
        ring.submit_and_wait(1).expect("submit");
        let mut refill = [0usize; DEPTH];
        let mut n = 0;
        for cqe in ring.cq() {
            assert_eq!(cqe.res, BLOCK as i32);
            refill[n] = cqe.user_data as usize;
            n += 1;
        }
        done += n as u64;
        let mut sq = ring.sq();
        for &slot in &refill[..n] {
            if issued < ops {
                let sqe = op::read(fd, bufs[slot].as_mut_ptr(), BLOCK as u32, offs.next())
                    .user_data(slot as u64);
                // SAFETY: as above.
                unsafe { sq.push(&sqe) }.expect("room");
                issued += 1;
            }
        }
    }
}

fn engine_reads(engine: &Engine, fd: i32, bufs: &[aura_std::Buffer], ops: u64) {
    let mut offs = Offsets(0x9E37_79B9_7F4A_7C15);
    let free = Arc::new(Mutex::new((0..DEPTH).collect::<Vec<usize>>()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut issued = 0u64;
    while (done.load(Ordering::Relaxed) as u64) < ops {
        let slots: Vec<usize> = std::mem::take(&mut *free.lock().unwrap());
        for slot in slots {
            if issued >= ops {
                break;
            }
            let (free, done) = (free.clone(), done.clone());
            // SAFETY: the buffers outlive every read: we wait until all of them completed.
            unsafe {
                engine.read(
                    fd,
                    BufferRef::from(&bufs[slot]),
                    BLOCK,
                    offs.next(),
                    move |r| {
                        assert_eq!(r.expect("read"), BLOCK);
                        done.fetch_add(1, Ordering::Relaxed);
                        free.lock().unwrap().push(slot);
                    },
                )
            }
            .expect("submit");
            issued += 1;
        }
        engine.wait(-1).expect("wait");
    }
}

fn bare_batches(ring: &mut Ring, fd: i32, buf: &mut [u8], batches: u64) {
    for b in 0..batches {
        {
            let mut sq = ring.sq();
            for i in 0..32u64 {
                let sqe = op::read(
                    fd,
                    buf[i as usize..].as_mut_ptr(),
                    1,
                    (b * 32 + i) % FILE_SIZE,
                )
                .user_data(i);
                // SAFETY: `buf` outlives the batch: we reap all 32 before the next.
                unsafe { sq.push(&sqe) }.expect("room");
            }
        }
        ring.submit_and_wait(32).expect("submit");
        assert_eq!(ring.cq().count(), 32);
    }
}

fn engine_batches(engine: &Engine, fd: i32, buf: &aura_std::Buffer, batches: u64) {
    let done = Arc::new(AtomicUsize::new(0));
    for b in 0..batches {
        for i in 0..32u64 {
            let done = done.clone();
            // SAFETY: `buf` outlives the batch: we wait for all 32 callbacks before the next.
            let r = unsafe { BufferRef::from_ptr(buf.as_ptr().add(i as usize).cast_mut(), 1) };
            // SAFETY: as above.
            unsafe {
                engine.read(fd, r, 1, (b * 32 + i) % FILE_SIZE, move |_| {
                    done.fetch_add(1, Ordering::Relaxed);
                })
            }
            .expect("submit");
        }
        while done.load(Ordering::Relaxed) < ((b + 1) * 32) as usize {
            engine.wait(-1).expect("wait");
        }
    }
}

fn fixed_depth_engine() -> Engine {
    let opts = Options::new()
        .ring_count(1)
        .queue_depth(64)
        .disable_adaptive(true)
        .initial_in_flight(DEPTH as u32)
        .batch_threshold(0);
    Engine::with_options(opts).expect("engine")
}

fn overhead(c: &mut Criterion) {
    let file = cached_file();
    let fd = file.as_raw_fd();
    let mut g = c.benchmark_group("engine_overhead");
    g.throughput(Throughput::Elements(1));

    let mut ring = Ring::new(64, &Params::new()).expect("ring");
    let mut bufs: Vec<Vec<u8>> = (0..DEPTH).map(|_| vec![0u8; BLOCK]).collect();
    g.bench_function("read4k_qd32/bare", |b| {
        b.iter_custom(|n| {
            let t = Instant::now();
            bare_reads(&mut ring, fd, &mut bufs, n.max(DEPTH as u64));
            t.elapsed().mul_f64(n as f64 / n.max(DEPTH as u64) as f64)
        })
    });
    let engine = fixed_depth_engine();
    let ebufs: Vec<aura_std::Buffer> = (0..DEPTH)
        .map(|_| engine.allocate_buffer(BLOCK).expect("buffer"))
        .collect();
    g.bench_function("read4k_qd32/engine", |b| {
        b.iter_custom(|n| {
            let t = Instant::now();
            engine_reads(&engine, fd, &ebufs, n.max(DEPTH as u64));
            t.elapsed().mul_f64(n as f64 / n.max(DEPTH as u64) as f64)
        })
    });

    let mut small = vec![0u8; 64];
    g.bench_function("small_batch32/bare", |b| {
        b.iter_custom(|n| {
            let batches = n.div_ceil(32).max(1);
            let t = Instant::now();
            bare_batches(&mut ring, fd, &mut small, batches);
            per_op(t.elapsed(), n, batches)
        })
    });
    let ebuf = engine.allocate_buffer(64).expect("buffer");
    g.bench_function("small_batch32/engine", |b| {
        b.iter_custom(|n| {
            let batches = n.div_ceil(32).max(1);
            let t = Instant::now();
            engine_batches(&engine, fd, &ebuf, batches);
            per_op(t.elapsed(), n, batches)
        })
    });
    g.finish();
}

/// Scales the time of `batches` × 32 operations to `n` operations.
fn per_op(elapsed: Duration, n: u64, batches: u64) -> Duration {
    elapsed.mul_f64(n as f64 / (batches * 32) as f64)
}

mod harness {
    #![allow(missing_docs)]

    use super::{criterion_group, overhead};

    criterion_group!(benches, overhead);
}

criterion_main!(harness::benches);
