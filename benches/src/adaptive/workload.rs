//! The closed-loop client that drives an [`Engine`] against a real file, the background writer
//! that plays the noisy neighbour, and what a run measured.
//!
//! The client is one thread. It owns `cap` pool buffers (allocated once) and keeps as many reads
//! outstanding as it may: up to `cap`, and never more than the ring's in-flight limit, because it
//! submits with [`Engine::try_read_owned`], which refuses (and hands the buffer back) once the ring
//! is at its limit. Then it blocks in [`Engine::wait`] until something completes. So the limit the
//! controller sets is exactly the client's depth, nothing waits in the engine's queue unseen, and
//! the latency measured (the submit time is stored per buffer, the completion time taken when
//! `wait` returns) is what an application sees. No allocation per I/O: the completion callback
//! captures nothing and hands the buffer back through a preallocated thread-local list.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aura_std::{Buffer, BufferPool, Engine, Error, Options, Rejected};

use super::file::xorshift;
use super::hist::LatHist;

/// Client I/O pattern.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// Block size in bytes (a multiple of 4096).
    pub bs: usize,
    /// Random offsets (aligned to `bs`); else sequential, wrapping at the end of the file.
    pub random: bool,
}

impl Pattern {
    /// 4 KiB random reads.
    pub const RAND_4K: Pattern = Pattern {
        bs: 4096,
        random: true,
    };
    /// 128 KiB sequential reads.
    pub const SEQ_128K: Pattern = Pattern {
        bs: 128 << 10,
        random: false,
    };

    /// `"4 KiB random read"` and the like.
    pub fn describe(&self) -> String {
        format!(
            "{} KiB {} read",
            self.bs >> 10,
            if self.random { "random" } else { "sequential" }
        )
    }
}

/// One stretch of a run with a fixed workload.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Short name (`quiet`, `noisy`, …), used in tables and the CSV.
    pub name: &'static str,
    /// How long it lasts.
    pub duration: Duration,
    /// The client's pattern.
    pub pattern: Pattern,
    /// Whether the background writer runs.
    pub noise: bool,
}

/// How the depth is chosen.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Mode {
    /// A fixed depth: the engine's controller off, its limit fixed at this depth, and the client
    /// keeps exactly this many reads in flight.
    Static(u32),
    /// The controller on (queue depth = the client's cap), with an optional max-P99 target in ms.
    Adaptive {
        /// The client's cap (also the engine's queue depth, the controller's maximum).
        cap: u32,
        /// Max-P99 target in ms, if any.
        target_ms: Option<f64>,
    },
}

impl Mode {
    /// The most reads the client keeps outstanding.
    pub fn cap(&self) -> u32 {
        match *self {
            Mode::Static(d) => d,
            Mode::Adaptive { cap, .. } => cap,
        }
    }

    /// `static 64`, `adaptive`, `adaptive (P99 ≤ 2 ms)`.
    pub fn label(&self) -> String {
        match *self {
            Mode::Static(d) => format!("static {d}"),
            Mode::Adaptive {
                target_ms: None, ..
            } => "adaptive".into(),
            Mode::Adaptive {
                target_ms: Some(t), ..
            } => format!("adaptive (P99 target {t} ms)"),
        }
    }

    /// The engine options for this mode: one ring, one thread submitting and waiting.
    pub fn options(&self) -> Options {
        let base = Options::new().ring_count(1).single_thread(true);
        match *self {
            Mode::Static(d) => base
                .queue_depth(d.max(4))
                .min_in_flight(1)
                .initial_in_flight(d)
                .disable_adaptive(true),
            Mode::Adaptive { cap, target_ms } => base
                .queue_depth(cap)
                .max_p99_latency_ms(target_ms.unwrap_or(0.0)),
        }
    }
}

/// A run: a mode and a sequence of segments after a warm-up.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// How the depth is chosen.
    pub mode: Mode,
    /// Time before the first segment (same workload as the first segment), not measured.
    pub warmup: Duration,
    /// The measured segments, in order.
    pub segments: Vec<Segment>,
}

/// One 100 ms sample of a run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Seconds since the run started (end of the interval; warm-up included).
    pub t_s: f64,
    /// Index of the segment (`None` during warm-up).
    pub segment: Option<usize>,
    /// The ring's in-flight limit at the sample.
    pub limit: u64,
    /// The lowest limit seen during the interval (read after every `wait`).
    pub limit_min: u64,
    /// The highest limit seen during the interval.
    pub limit_max: u64,
    /// Requests in the kernel at the sample (the ring's count).
    pub in_flight: u64,
    /// The controller's phase (`static` without one).
    pub phase: &'static str,
    /// Completions per second over the interval.
    pub iops: f64,
    /// MiB/s over the interval.
    pub mib_s: f64,
    /// P50 and P99 latency over the interval, µs (`None`: no completion).
    pub p50_us: Option<f64>,
    /// P99 latency over the interval, µs.
    pub p99_us: Option<f64>,
    /// The background writer's MiB/s over the interval.
    pub noise_mib_s: f64,
}

/// What one segment measured.
#[derive(Clone, Debug)]
pub struct SegmentStats {
    /// The segment's name.
    pub name: &'static str,
    /// Reads completed.
    pub ios: u64,
    /// Seconds measured.
    pub secs: f64,
    /// Completions per second.
    pub iops: f64,
    /// MiB/s.
    pub mib_s: f64,
    /// Latency percentiles in µs (`None`: nothing completed).
    pub p50_us: Option<f64>,
    /// P99 in µs.
    pub p99_us: Option<f64>,
    /// P99.9 in µs.
    pub p999_us: Option<f64>,
    /// Mean in µs.
    pub mean_us: Option<f64>,
    /// The limit at the segment's end.
    pub limit_end: u64,
    /// Median of the sampled limits over the segment's second half (the "settled" depth).
    pub limit_settled: u64,
    /// Lowest and highest sampled limit in the segment.
    pub limit_min: u64,
    /// Highest sampled limit in the segment.
    pub limit_max: u64,
    /// The background writer's MiB/s over the segment.
    pub noise_mib_s: f64,
}

/// Everything a run measured.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The mode's label.
    pub label: String,
    /// The mode.
    pub mode: Mode,
    /// 100 ms samples from the start (warm-up included).
    pub samples: Vec<Sample>,
    /// One entry per segment.
    pub segments: Vec<SegmentStats>,
    /// Seconds of warm-up.
    pub warmup_s: f64,
    /// When each segment started, seconds since the run started.
    pub segment_starts: Vec<f64>,
}

/// Sampling interval of the time series.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// The background writer's block size.
pub const NOISE_BS: usize = 128 << 10;

thread_local! {
    /// Completions handed from the callbacks (which run inside `wait` on this thread) to the
    /// client loop; capacity reserved up front.
    static DONE: RefCell<Vec<(aura_std::Result<usize>, Buffer)>> = const { RefCell::new(Vec::new()) };
}

/// The background writer: one thread writing 128 KiB blocks sequentially with O_DIRECT (one at a
/// time, `pwrite`), wrapping at `size` bytes, while `on` is set.
struct Noise {
    state: Arc<NoiseShared>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

struct NoiseShared {
    /// 0 = idle, 1 = writing, 2 = exit.
    mode: AtomicU8,
    bytes: AtomicU64,
}

impl Noise {
    fn start(file: File, size: u64) -> Result<Noise, String> {
        let state = Arc::new(NoiseShared {
            mode: AtomicU8::new(0),
            bytes: AtomicU64::new(0),
        });
        let s = state.clone();
        let pool = BufferPool::new(4096).map_err(|e| e.to_string())?;
        let mut buf = pool.alloc(NOISE_BS).map_err(|e| e.to_string())?;
        let mut seed = 0x1234_5678_9abc_def1u64;
        for w in buf.as_mut_slice().chunks_exact_mut(8) {
            w.copy_from_slice(&xorshift(&mut seed).to_le_bytes());
        }
        let blocks = (size / NOISE_BS as u64).max(1);
        let thread = std::thread::Builder::new()
            .name("noisy-neighbour".into())
            .spawn(move || {
                use std::os::unix::fs::FileExt;
                let _keep = pool;
                let mut block = 0u64;
                loop {
                    match s.mode.load(Ordering::Acquire) {
                        0 => std::thread::park_timeout(Duration::from_millis(5)),
                        1 => {
                            file.write_all_at(buf.as_slice(), block * NOISE_BS as u64)
                                .map_err(|e| format!("noisy neighbour: write: {e}"))?;
                            s.bytes.fetch_add(NOISE_BS as u64, Ordering::Relaxed);
                            block = (block + 1) % blocks;
                        }
                        _ => return Ok(()),
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Noise {
            state,
            thread: Some(thread),
        })
    }

    fn set(&self, on: bool) {
        self.state
            .mode
            .store(if on { 1 } else { 0 }, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }

    fn stop(mut self) -> Result<(), String> {
        self.state.mode.store(2, Ordering::Release);
        match self.thread.take() {
            Some(t) => {
                t.thread().unpark();
                t.join()
                    .map_err(|_| "noisy neighbour panicked".to_string())?
            }
            None => Ok(()),
        }
    }
}

impl Drop for Noise {
    fn drop(&mut self) {
        self.state.mode.store(2, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// What a run reads and (for the neighbour) writes.
#[derive(Debug)]
pub struct Target<'a> {
    /// The file read (opened O_DIRECT).
    pub file: &'a File,
    /// Its size in bytes (reads stay below it).
    pub size: u64,
    /// The file the neighbour writes (opened O_DIRECT for writing), and how much of it to use.
    pub noise: Option<(&'a File, u64)>,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn median(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

/// Runs `spec` against `target` and returns what it measured.
pub fn run(spec: &RunSpec, target: &Target<'_>) -> Result<RunResult, String> {
    let err = |what: &str, e: Error| format!("{}: {what}: {e}", spec.mode.label());
    let engine = Engine::with_options(spec.mode.options()).map_err(|e| err("engine", e))?;
    let fd = target.file.as_raw_fd();
    // Registered file: what a storage benchmark does (BFFIO and fio's registerfiles); the
    // engine uses it automatically for this fd.
    let _ = engine.register_files(&[fd]);
    let needs_noise = spec.segments.iter().any(|s| s.noise);
    let noise = match (needs_noise, target.noise) {
        (true, Some((f, size))) => Some(Noise::start(
            f.try_clone().map_err(|e| format!("noise file: {e}"))?,
            size,
        )?),
        (true, None) => return Err("a segment needs the neighbour but no file was given".into()),
        _ => None,
    };
    let cap = spec.mode.cap() as usize;
    let max_bs = spec
        .segments
        .iter()
        .map(|s| s.pattern.bs)
        .max()
        .unwrap_or(4096);
    let mut free: Vec<Buffer> = Vec::with_capacity(cap);
    for _ in 0..cap {
        free.push(
            engine
                .allocate_buffer(max_bs)
                .map_err(|e| err("buffer", e))?,
        );
    }
    // Submit time per buffer, found by the buffer's address (sorted once).
    let mut addrs: Vec<usize> = free.iter().map(|b| b.as_ptr() as usize).collect();
    addrs.sort_unstable();
    let slot = |b: &Buffer| {
        addrs
            .binary_search(&(b.as_ptr() as usize))
            .expect("a buffer of this run")
    };
    let mut submit_ns = vec![0u64; cap];
    DONE.with(|d| d.borrow_mut().reserve(cap));

    let mut segment_starts = Vec::with_capacity(spec.segments.len());
    let mut t_acc = spec.warmup;
    let mut ends = Vec::with_capacity(spec.segments.len());
    for s in &spec.segments {
        segment_starts.push(t_acc.as_secs_f64());
        t_acc += s.duration;
        ends.push(t_acc);
    }
    let total = t_acc;

    let mut seg_hist = LatHist::new();
    let mut int_hist = LatHist::new();
    let mut segments: Vec<SegmentStats> = Vec::with_capacity(spec.segments.len());
    let mut samples: Vec<Sample> =
        Vec::with_capacity((total.as_millis() / SAMPLE_INTERVAL.as_millis()) as usize + 8);

    let mut rng = 0x0bad_5eed_1234_5678u64 ^ (spec.mode.cap() as u64);
    let mut seq_off = 0u64;
    let mut cur: Option<usize> = None; // segment index; None = warm-up
    let mut pattern = spec.segments[0].pattern;
    if let Some(n) = &noise {
        n.set(spec.segments[0].noise);
    }
    let mut outstanding = 0usize;
    // Per-interval and per-segment counters.
    let (mut int_ios, mut int_bytes) = (0u64, 0u64);
    let (mut seg_ios, mut seg_bytes) = (0u64, 0u64);
    let mut seg_t0 = Instant::now();
    let mut seg_noise0 = 0u64;
    let mut int_noise0 = 0u64;
    let t0 = Instant::now();
    let mut int_t0 = t0;
    let (mut int_lim_min, mut int_lim_max) = (u64::MAX, 0u64);
    let mut next_sample = SAMPLE_INTERVAL;
    let callback = |res: aura_std::Result<usize>, buf: Buffer| {
        DONE.with(|d| d.borrow_mut().push((res, buf)));
    };
    let mut failure: Option<String> = None;

    let finish_segment = |i: usize,
                          hist: &mut LatHist,
                          ios: u64,
                          bytes: u64,
                          secs: f64,
                          noise_bytes: u64,
                          samples: &[Sample]|
     -> SegmentStats {
        let lims: Vec<u64> = samples
            .iter()
            .filter(|s| s.segment == Some(i))
            .map(|s| s.limit)
            .collect();
        let half = lims[lims.len() / 2..].to_vec();
        let st = SegmentStats {
            name: spec.segments[i].name,
            ios,
            secs,
            iops: ios as f64 / secs,
            mib_s: bytes as f64 / secs / (1 << 20) as f64,
            p50_us: hist.percentile(50.0).map(us),
            p99_us: hist.percentile(99.0).map(us),
            p999_us: hist.percentile(99.9).map(us),
            mean_us: hist.mean_ns().map(|m| m / 1e3),
            limit_end: lims.last().copied().unwrap_or(0),
            limit_settled: median(half),
            limit_min: lims.iter().copied().min().unwrap_or(0),
            limit_max: lims.iter().copied().max().unwrap_or(0),
            noise_mib_s: noise_bytes as f64 / secs / (1 << 20) as f64,
        };
        hist.clear();
        st
    };

    loop {
        let now = t0.elapsed();
        // Segment boundaries.
        let want = if now < spec.warmup {
            None
        } else {
            ends.iter().position(|&e| now < e)
        };
        if want != cur {
            let noise_now = noise.as_ref().map_or(0, Noise::bytes);
            if let Some(i) = cur {
                // Close the segment at the boundary's sample so the series and the table agree.
                let secs = seg_t0.elapsed().as_secs_f64();
                segments.push(finish_segment(
                    i,
                    &mut seg_hist,
                    seg_ios,
                    seg_bytes,
                    secs,
                    noise_now - seg_noise0,
                    &samples,
                ));
            }
            let Some(i) = want else { break };
            cur = Some(i);
            let s = &spec.segments[i];
            if s.pattern != pattern {
                pattern = s.pattern;
                seq_off = 0;
            }
            if let Some(n) = &noise {
                n.set(s.noise);
            }
            seg_hist.clear();
            (seg_ios, seg_bytes) = (0, 0);
            seg_t0 = Instant::now();
            seg_noise0 = noise_now;
        }

        // Submit up to the cap, or until the ring says it is at its limit.
        let stamp = t0.elapsed().as_nanos() as u64;
        let blocks = target.size / pattern.bs as u64;
        while outstanding < cap {
            let Some(mut buf) = free.pop() else { break };
            buf.set_len(pattern.bs);
            let off = if pattern.random {
                (xorshift(&mut rng) % blocks) * pattern.bs as u64
            } else {
                let o = seq_off;
                seq_off += pattern.bs as u64;
                if seq_off + pattern.bs as u64 > target.size {
                    seq_off = 0;
                }
                o
            };
            submit_ns[slot(&buf)] = stamp;
            match engine.try_read_owned(fd, buf, off, callback) {
                Ok(_) => outstanding += 1,
                Err(Rejected {
                    error: Error::WouldBlock,
                    buffer,
                }) => {
                    free.push(buffer);
                    break;
                }
                Err(Rejected { error, buffer }) => {
                    free.push(buffer);
                    failure = Some(err("submit", error));
                    break;
                }
            }
        }
        if failure.is_some() {
            break;
        }

        // The 100 ms time series, sampled after submitting (so `in_flight` shows the depth the
        // client holds). The limit is read every pass to catch its range within the interval.
        let rs = engine.ring_stats(0).expect("ring 0");
        int_lim_min = int_lim_min.min(rs.in_flight_limit);
        int_lim_max = int_lim_max.max(rs.in_flight_limit);
        let now = t0.elapsed();
        if now >= next_sample {
            let secs = int_t0.elapsed().as_secs_f64();
            let noise_now = noise.as_ref().map_or(0, Noise::bytes);
            samples.push(Sample {
                t_s: now.as_secs_f64(),
                segment: cur,
                limit: rs.in_flight_limit,
                limit_min: int_lim_min,
                limit_max: int_lim_max,
                in_flight: rs.in_flight,
                phase: match spec.mode {
                    Mode::Static(_) => "static",
                    Mode::Adaptive { .. } => rs.phase.name(),
                },
                iops: int_ios as f64 / secs,
                mib_s: int_bytes as f64 / secs / (1 << 20) as f64,
                p50_us: int_hist.percentile(50.0).map(us),
                p99_us: int_hist.percentile(99.0).map(us),
                noise_mib_s: (noise_now - int_noise0) as f64 / secs / (1 << 20) as f64,
            });
            int_hist.clear();
            (int_ios, int_bytes) = (0, 0);
            (int_lim_min, int_lim_max) = (u64::MAX, 0);
            int_t0 = Instant::now();
            int_noise0 = noise_now;
            while next_sample <= now {
                next_sample += SAMPLE_INTERVAL;
            }
        }

        // Block until something completes (the engine ticks its controller meanwhile).
        match engine.wait(100) {
            Ok(_) | Err(Error::TimedOut) => {}
            Err(e) => {
                failure = Some(err("wait", e));
                break;
            }
        }
        let done_ns = t0.elapsed().as_nanos() as u64;
        let measuring = cur.is_some();
        DONE.with(|d| {
            for (res, buf) in d.borrow_mut().drain(..) {
                outstanding -= 1;
                let lat = done_ns.saturating_sub(submit_ns[slot(&buf)]);
                match res {
                    Ok(n) if n == buf.len() => {
                        int_ios += 1;
                        int_bytes += n as u64;
                        int_hist.record(lat);
                        if measuring {
                            seg_ios += 1;
                            seg_bytes += n as u64;
                            seg_hist.record(lat);
                        }
                    }
                    Ok(n) => {
                        failure.get_or_insert_with(|| {
                            format!("short read: {n} of {} bytes", buf.len())
                        });
                    }
                    Err(e) => {
                        failure.get_or_insert_with(|| err("read", e));
                    }
                }
                free.push(buf);
            }
        });
        if failure.is_some() {
            break;
        }
    }

    // Stop the neighbour, then let everything in flight finish (unmeasured).
    let noise_result = noise.map_or(Ok(()), Noise::stop);
    let deadline = Instant::now() + Duration::from_secs(30);
    while outstanding > 0 && Instant::now() < deadline {
        match engine.wait(100) {
            Ok(_) | Err(Error::TimedOut) => {}
            Err(e) => {
                failure.get_or_insert_with(|| err("drain", e));
                break;
            }
        }
        DONE.with(|d| {
            for (_, buf) in d.borrow_mut().drain(..) {
                outstanding -= 1;
                free.push(buf);
            }
        });
    }
    if let Some(f) = failure {
        return Err(f);
    }
    noise_result?;
    if outstanding > 0 {
        return Err(format!(
            "{}: {outstanding} reads still in flight after 30 s",
            spec.mode.label()
        ));
    }
    Ok(RunResult {
        label: spec.mode.label(),
        mode: spec.mode,
        samples,
        segments,
        warmup_s: spec.warmup.as_secs_f64(),
        segment_starts,
    })
}
