//! The Engine: one ring per CPU, a self-tuning gate per ring, submission from any thread,
//! completion callbacks on the thread that waits.
//!
//! # Threads and locks
//!
//! Each ring lives in a [`Shard`] behind its own mutex. Submissions lock one shard; `poll`,
//! `wait`, `run` and `drain` (one caller at a time: a second one waits its turn) lock each shard
//! in turn to flush, reap and apply the controller's decision, then run the callbacks with no
//! lock held. A callback may submit, cancel or call [`Engine::stop`]; calling `wait`/`poll`/
//! `drain`/`run` from a callback returns [`Error::InvalidArgument`] instead of deadlocking.
//!
//! # Ticks
//!
//! The controller ticks every 10 ms, driven by `poll`/`wait`: a blocked `wait` sleeps in slices
//! of at most 10 ms, so ticks keep coming while anything is in flight; with nothing in flight
//! there is nothing to measure. No extra thread is started.
//!
//! # Completions never stall
//!
//! By default rings are set up without `COOP_TASKRUN`: completions of I/O submitted by one thread
//! and reaped by another are posted at once (the kernel interrupts the submitter to run them),
//! and `wait` sleeps on an eventfd the rings signal. The eventfd is registered on the rings the
//! first time a thread sleeps for completions (or asks for [`Engine::poll_fd`]); until then no
//! batch of completions pays for the kernel's signal. The sleeper registers before its last look
//! at the rings, so a completion posted earlier is seen there and one posted later signals
//! (`tests/loom_eventfd.rs` models it; it relies on the kernel's full barrier between posting a
//! completion and looking for an eventfd, and a sleep lasts 10 ms at most in any case).
//!
//! With [`crate::Options::single_thread`] the rings use `COOP_TASKRUN | TASKRUN_FLAG`; every
//! flush then enters the kernel with GETEVENTS whenever the ring flags pending task work, and
//! `wait` sleeps inside `io_uring_enter` (which runs that work) instead of on the eventfd.
//! Neither spins on the CQ tail alone.
//!
//! # Threads that exit with I/O in flight
//!
//! The kernel charges a request to the thread whose `io_uring_enter` submitted it, and when that
//! thread exits it cancels the requests it can still cancel (those handed to io_uring's worker
//! threads: buffered I/O that would block, fsync, …), which then complete with
//! [`Error::Cancelled`]. Here the submitting thread is whichever flushed the ring: the one that
//! submitted when the batch filled, or any thread in `wait`/`poll`/`flush`. A thread that may
//! have flushed other threads' submissions should keep processing completions (or otherwise stay
//! alive) until that I/O is done; a pool of workers sharing an engine does this by letting every
//! worker reap until all are finished. Nothing is lost silently: every cancelled request's
//! callback says so.

use aura_core::sys::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
mod batch;
mod chain;

pub use batch::Batch;
pub use chain::{Chain, MAX_CHAIN};

use std::cell::Cell;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aura_core::aimd::{AimdOptions, Phase};
use aura_core::op::{self, Target};
use aura_core::{IoVec, Params, Ring, Sqe};

use crate::buffer::{Buffer, BufferPool, BufferRef, BufferStats};
use crate::error::{Error, Result};
use crate::options::{Options, RingSelect};
use crate::request::{
    BufferCallback, Completion, Finished, InlineFn, Keep, PlainCallback, Request, RequestHandle,
};
use crate::shard::{
    FixedInFlight, ReapClock, Shard, ShardCounters, ShardState, FIXED_BUF, FIXED_FILE,
};

thread_local! {
    /// Set while this thread runs completion callbacks.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
    /// The ring this thread submitted to last and how many submissions ago the CPU was read.
    static LOCAL_RING: Cell<(usize, u32)> = const { Cell::new((usize::MAX, 0)) };
    /// THREAD_LOCAL: the engine (by address) and ring this thread claimed.
    static THREAD_RING: Cell<(usize, usize)> = const { Cell::new((0, usize::MAX)) };
    /// xorshift32 state for spill choices.
    static SPILL_RNG: Cell<u32> = const { Cell::new(0) };
}

/// Whether the calling thread is running an aura completion callback.
pub fn in_callback() -> bool {
    IN_CALLBACK.with(Cell::get)
}

/// The most iovecs one readv/writev takes (`IOV_MAX`).
pub const IOV_MAX: usize = 1024;

/// Engine-wide statistics (sums over the rings).
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Completed operations.
    pub ops_completed: u64,
    /// Bytes moved by completed data operations.
    pub bytes_transferred: u64,
    /// Bytes per second over the rings' last controller ticks.
    pub throughput_bps: f64,
    /// The highest ring P99 of the last ticks, in ms (0 when none measured).
    pub p99_latency_ms: f64,
    /// Requests submitted and not completed.
    pub current_in_flight: u64,
    /// Sum of the rings' in-flight limits.
    pub optimal_in_flight: u64,
    /// Sum of the rings' peak in-flight counts.
    pub peak_in_flight: u64,
    /// Mean batch threshold.
    pub optimal_batch_size: u64,
    /// Submissions ADAPTIVE selection sent away from their CPU's ring.
    pub adaptive_spills: u64,
}

/// One ring's statistics.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RingStats {
    /// Completed operations.
    pub ops_completed: u64,
    /// Bytes moved by completed data operations.
    pub bytes_transferred: u64,
    /// Requests submitted to this ring and not completed (in flight + queued behind the gate).
    pub pending_count: u64,
    /// Requests in the kernel now.
    pub in_flight: u64,
    /// The most requests in the kernel at once.
    pub peak_in_flight: u64,
    /// The in-flight limit in force.
    pub in_flight_limit: u64,
    /// SQEs queued before a flush.
    pub batch_threshold: u64,
    /// P99 latency of the last controller tick, in ms (`None`: no data).
    pub p99_latency_ms: Option<f64>,
    /// Bytes per second over the last controller tick.
    pub throughput_bps: f64,
    /// The controller's phase.
    pub phase: Phase,
    /// The queue depth the ring was set up for: the most requests in flight (its CQ has twice
    /// as many entries; its SQ, which holds SQEs only until they are submitted, at most 64 unless
    /// a larger fixed batch threshold needs more).
    pub queue_depth: u64,
    /// CQEs that matched no live request (reported, never dispatched).
    pub stale_cqes: u64,
}

pub(crate) struct Inner {
    shards: Box<[Shard]>,
    options: Options,
    pool: BufferPool,
    eventfd: OwnedFd,
    epoch: Instant,
    shutting_down: AtomicBool,
    stopping: AtomicBool,
    round_robin: AtomicUsize,
    spills: AtomicU64,
    /// Serialises poll / wait / run / drain; holds the list a pass collects finished requests
    /// in (kept between passes, so a pass allocates nothing).
    waiter: Mutex<Vec<Finished>>,
    /// Threads sleeping in `block` for completions: while there is one, submissions flush at
    /// once instead of waiting for a batch (see `ShardState::admit`).
    sleepers: AtomicUsize,
    /// The eventfd is registered on every ring (see [`Inner::ensure_eventfd`]).
    eventfd_on: AtomicBool,
    /// Whether any file is registered (skips the table lookup on every submission otherwise).
    has_files: AtomicBool,
    /// Registered files: fd → fixed index, for automatic fixed-file use.
    files: std::sync::RwLock<Vec<RawFd>>,
    /// Registered buffers (the iovecs given to the kernel).
    buffers: std::sync::RwLock<Vec<IoVec>>,
    /// Requests in flight that use the registered buffers / files (shared with the shards).
    fixed: Arc<FixedInFlight>,
    /// An unregister of the buffers waits for their requests: fixed-buffer submissions get
    /// [`Error::Busy`] meanwhile.
    bufs_draining: AtomicBool,
    /// An unregister of the files waits for their requests: fds are not looked up in the table
    /// meanwhile.
    files_draining: AtomicBool,
}

/// Registered resources one submission uses, counted in flight from before the table lookup
/// until the request's completion (see [`FixedInFlight`]). Dropped before the request holds
/// its slot (any failed submission), it gives the count back.
pub(crate) struct Claim<'a> {
    fixed: &'a FixedInFlight,
    bits: u8,
}

impl<'a> Claim<'a> {
    fn new(fixed: &'a FixedInFlight) -> Self {
        Claim { fixed, bits: 0 }
    }

    fn add(&mut self, bit: u8) {
        self.fixed.acquire(bit);
        self.bits |= bit;
    }

    fn drop_bit(&mut self, bit: u8) {
        if self.bits & bit != 0 {
            self.fixed.release(bit);
            self.bits &= !bit;
        }
    }

    /// The bits, now owned by a request in its slot (released at its completion).
    pub(crate) fn commit(mut self) -> u8 {
        std::mem::take(&mut self.bits)
    }

    /// The bits, still owned by the claim.
    pub(crate) fn bits(&self) -> u8 {
        self.bits
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.fixed.release(self.bits);
    }
}

/// An owned-buffer submission that did not go through: why, and the buffer back, untouched
/// (nothing reached the kernel). `?` converts it to [`Error`] (dropping the buffer).
#[derive(Debug)]
pub struct Rejected {
    /// Why the submission failed.
    pub error: Error,
    /// The buffer that was to be read into or written from.
    pub buffer: Buffer,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Rejected {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<Rejected> for Error {
    fn from(r: Rejected) -> Error {
        r.error
    }
}

impl From<Rejected> for std::io::Error {
    fn from(r: Rejected) -> std::io::Error {
        r.error.into()
    }
}

/// The aura engine: shareable (`Send + Sync`) by reference or `Arc`; cloning it is cheap and
/// shares the same rings.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rings", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

/// What an unregister lets go of.
#[derive(Copy, Clone, Debug)]
enum Reg {
    Buffers,
    Files,
}

impl Reg {
    fn name(self) -> &'static str {
        match self {
            Reg::Buffers => "buffers",
            Reg::Files => "files",
        }
    }
}

/// The most SQ entries a ring gets without SQPOLL (see [`sq_entries`]): room for the
/// controller's largest batch and for the longest chain.
const SQ_ENTRIES: u32 = 64;
const _: () =
    assert!(SQ_ENTRIES >= aura_core::aimd::MAX_BATCH_THRESHOLD && SQ_ENTRIES as usize >= MAX_CHAIN);

/// SQ entries of a ring for `queue_depth` requests in flight. An SQE occupies its slot only
/// until the kernel consumes it (at the next flush), so the SQ needs room for one batch, not for
/// everything in flight (the CQ does: 2 × the queue depth). A small SQ keeps the slots the
/// submissions write warm in the cache: with 1024 slots, each is rewritten only every 1024
/// submissions, after the I/O in between (a page-cache read copies 4 KiB) evicted it. Room for
/// [`SQ_ENTRIES`] or a larger fixed batch threshold; a full SQ is flushed by the push that finds
/// it full. With SQPOLL the kernel thread drains the SQ on its own schedule: the full depth.
fn sq_entries(options: &Options, queue_depth: u32) -> u32 {
    if options.sqpoll {
        return queue_depth;
    }
    let batch = u32::try_from(options.batch_threshold).unwrap_or(0);
    queue_depth.min(SQ_ENTRIES.max(batch))
}

/// `EEXIST`: a `SINGLE_ISSUER` ring entered by another thread than its issuer.
const EEXIST: i32 = 17;

fn errno(e: aura_core::Errno) -> Error {
    Error::Io(std::io::Error::from_raw_os_error(e.raw_os_error()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in user code never runs under a shard lock, so poisoning only follows an internal
    // bug; the state is still consistent enough to drain.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Engine {
    /// An engine with every default: one ring per CPU in the affinity mask, queue depth 1024,
    /// adaptive depth.
    pub fn new() -> Result<Engine> {
        Self::with_options(Options::new())
    }

    /// An engine with `options` (validated first; the error names the bad field).
    pub fn with_options(options: Options) -> Result<Engine> {
        options.validate()?;
        let qd = options.effective_queue_depth();
        let rings = if options.ring_count == 0 {
            aura_core::sys::affinity_cpus()
                .map(|c| c.len())
                .unwrap_or(1)
                .max(1)
        } else {
            options.ring_count as usize
        };
        let pool = BufferPool::new(options.buffer_alignment)?;
        let eventfd = aura_core::sys::eventfd().map_err(errno)?;
        let eager_eventfd = options.single_thread || options.sqpoll;
        let min = if options.min_in_flight == 0 {
            4.min(qd)
        } else {
            options.min_in_flight
        };
        let max_p99_ns = (options.max_p99_ms * 1e6) as u64;
        let epoch = Instant::now();
        let fixed_in_flight = Arc::new(FixedInFlight::default());
        let mut shards = Vec::with_capacity(rings);
        for _ in 0..rings {
            let mut params = Params::new().cq_entries(qd.saturating_mul(2));
            if options.single_thread && !options.sqpoll {
                // (With SQPOLL the kernel's SQ thread submits: the issuer rules do not apply.)
                // One thread drives the engine: completions need not interrupt anyone, and with
                // DEFER_TASKRUN they are posted in batches when that thread enters the kernel.
                // Set up disabled so the thread that first uses the ring becomes its issuer.
                params = params.coop_taskrun(true).defer_taskrun(true).disabled(true);
            }
            if options.sqpoll {
                params = params.sqpoll(options.sqpoll_idle_ms);
            }
            let ring = Ring::new(sq_entries(&options, qd), &params)?;
            // The eventfd is registered when a thread first sleeps for completions or asks for
            // `poll_fd` (`Inner::ensure_eventfd`): until then nobody watches it, and every batch
            // of completions would pay the kernel's signal (~3 % of a NOP's round trip). A
            // single-thread ring (its issuer is whoever uses it first) or an SQPOLL ring gets it
            // now.
            if eager_eventfd {
                ring.register_eventfd(eventfd.as_raw_fd(), false)?;
            }
            let (aimd, fixed) = if options.disable_adaptive {
                let fixed = if options.initial_in_flight == 0 {
                    qd
                } else {
                    options.initial_in_flight
                };
                (None, fixed)
            } else {
                let o = AimdOptions {
                    max_in_flight: qd,
                    min_in_flight: min,
                    initial_in_flight: options.initial_in_flight,
                    max_p99_ns,
                    batch_threshold: options.batch_threshold.max(0) as u32,
                };
                (Some(o), qd)
            };
            let mut state = ShardState::new(ring, qd, aimd, fixed, options.batch_threshold, epoch)?;
            state.eventfd_registered = eager_eventfd;
            let counters = ShardCounters {
                fixed: fixed_in_flight.clone(),
                ..ShardCounters::default()
            };
            counters.limit.store(state.limit, Ordering::Relaxed);
            shards.push(Shard {
                state: Mutex::new(state),
                counters,
            });
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                shards: shards.into_boxed_slice(),
                options,
                pool,
                eventfd,
                epoch,
                shutting_down: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                round_robin: AtomicUsize::new(0),
                spills: AtomicU64::new(0),
                waiter: Mutex::new(Vec::with_capacity(64)),
                sleepers: AtomicUsize::new(0),
                eventfd_on: AtomicBool::new(eager_eventfd),
                has_files: AtomicBool::new(false),
                files: std::sync::RwLock::new(Vec::new()),
                buffers: std::sync::RwLock::new(Vec::new()),
                fixed: fixed_in_flight,
                bufs_draining: AtomicBool::new(false),
                files_draining: AtomicBool::new(false),
            }),
        })
    }

    /// The options the engine was built with.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// Number of rings.
    pub fn ring_count(&self) -> usize {
        self.inner.shards.len()
    }

    fn now_ns(&self) -> u64 {
        self.inner.epoch.elapsed().as_nanos() as u64
    }

    // ---- buffers ----

    /// An aligned buffer of `size` bytes (1..=128 MiB) from the engine's pool; it goes back to
    /// the pool when dropped.
    pub fn allocate_buffer(&self, size: usize) -> Result<Buffer> {
        self.inner.pool.alloc(size)
    }

    /// The engine's buffer pool.
    pub fn buffer_pool(&self) -> &BufferPool {
        &self.inner.pool
    }

    /// Buffer pool statistics.
    pub fn buffer_stats(&self) -> BufferStats {
        self.inner.pool.stats()
    }

    // ---- ring selection ----

    fn local_ring(&self) -> usize {
        let n = self.inner.shards.len();
        LOCAL_RING.with(|c| {
            let (ring, uses) = c.get();
            if ring < n && uses < 32 {
                c.set((ring, uses + 1));
                ring
            } else {
                let r = aura_core::sys::current_cpu() % n;
                c.set((r, 0));
                r
            }
        })
    }

    fn select(&self) -> usize {
        let shards = &self.inner.shards;
        let n = shards.len();
        if n == 1 {
            return 0;
        }
        match self.inner.options.ring_select {
            RingSelect::RoundRobin => self.inner.round_robin.fetch_add(1, Ordering::Relaxed) % n,
            RingSelect::CpuLocal => self.local_ring(),
            RingSelect::ThreadLocal => THREAD_RING.with(|c| {
                let (engine, ring) = c.get();
                let me = Arc::as_ptr(&self.inner) as usize;
                if engine == me && ring < n {
                    ring
                } else {
                    let ring = self.inner.round_robin.fetch_add(1, Ordering::Relaxed) % n;
                    c.set((me, ring));
                    ring
                }
            }),
            RingSelect::Adaptive => {
                let l = self.local_ring();
                let pending = |i: usize| shards[i].counters.pending.load(Ordering::Relaxed);
                let p = pending(l);
                let limit = shards[l].counters.limit.load(Ordering::Relaxed);
                if u64::from(p) * 4 < u64::from(limit) * 3 {
                    return l;
                }
                let total: u64 = (0..n).map(|i| u64::from(pending(i))).sum();
                let avg = total / n as u64;
                if avg > 0 && u64::from(p) <= 2 * avg {
                    return l;
                }
                self.inner.spills.fetch_add(1, Ordering::Relaxed);
                let (a, b) = SPILL_RNG.with(|s| {
                    let mut x = s.get();
                    if x == 0 {
                        x = 0x5A5A_5A5A ^ (l as u32).wrapping_mul(0x9E37_79B9) ^ 1;
                    }
                    let mut next = || {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x
                    };
                    let a = (l + 1 + next() as usize % (n - 1)) % n;
                    let mut b = (l + 1 + next() as usize % (n - 1)) % n;
                    if n > 2 && b == a {
                        b = if (b + 1) % n == l {
                            (b + 2) % n
                        } else {
                            (b + 1) % n
                        };
                    }
                    s.set(x);
                    (a, b)
                });
                if pending(b) < pending(a) {
                    b
                } else {
                    a
                }
            }
        }
    }

    // ---- submission ----

    fn submit(
        &self,
        sqe: Sqe,
        request: Request,
        claim: Claim<'_>,
        nonblocking: bool,
    ) -> Result<RequestHandle> {
        self.submit_inner(sqe, request, claim, nonblocking)
            .map_err(|failed| failed.0)
    }

    /// [`Engine::submit`], handing the request back when it never got a slot.
    fn submit_inner(
        &self,
        sqe: Sqe,
        request: Request,
        claim: Claim<'_>,
        nonblocking: bool,
    ) -> std::result::Result<RequestHandle, Box<(Error, Request)>> {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::Acquire) {
            return Err(Box::new((Error::Shutdown, request)));
        }
        let ring = self.select();
        let shard = &inner.shards[ring];
        let mut st = lock(&shard.state);
        if nonblocking && (st.in_flight >= st.limit || !st.queue.is_empty()) {
            return Err(Box::new((Error::WouldBlock, request)));
        }
        // Stamped when its SQE goes to the ring now; a request held by the gate is stamped when
        // it leaves the queue.
        let direct = st.admits_directly();
        let submit_ns = if direct { st.stamp(request.data) } else { 0 };
        let fixed = claim.bits();
        // Inserted as built, and the two fields set in the slot afterwards (when not 0): a field
        // written into the request just before the move into the slot would be reloaded as part
        // of a wider copy, a load spanning a smaller store that stalls store-to-load forwarding.
        // (`Batch::submit` does the same inline: a shared helper measured ~1 % slower there.)
        let token = match st.slab.insert(request) {
            Ok(t) => t,
            Err(r) => return Err(Box::new((Error::WouldBlock, r))),
        };
        if submit_ns != 0 || fixed != 0 {
            if let Ok(req) = st.slab.get_mut(token.user_data()) {
                req.submit_ns = submit_ns;
                req.fixed = fixed;
            }
        }
        // The slot owns the claim now: its completion releases it.
        claim.commit();
        let user_data = token.user_data();
        shard.counters.add_pending(&mut st, 1);
        // Before the SQE can reach the kernel (and so before the request can complete).
        crate::request::record(RequestHandle {
            ring: ring as u32,
            user_data,
        });
        if let Err(e) = st.admit(user_data, &sqe, direct, &inner.sleepers) {
            // The SQE never reached the kernel: take the slot back. It was inserted under this
            // same lock and nothing else removes a slot whose SQE is not in the ring.
            let Ok(mut back) = st.slab.remove(user_data) else {
                unreachable!("a slot inserted under the shard lock is live")
            };
            shard.counters.sub_pending(&mut st, 1);
            inner.fixed.release(std::mem::take(&mut back.fixed));
            return Err(Box::new((e, back)));
        }
        Ok(RequestHandle {
            ring: ring as u32,
            user_data,
        })
    }

    /// The SQE target for `fd`: its registered-file index when it has one (and the files are not
    /// being unregistered), with the claim that keeps the table entry in use until completion.
    #[inline(always)]
    fn target(&self, fd: RawFd) -> Result<(Target, Claim<'_>)> {
        if fd < 0 {
            return Err(Error::invalid(format!("fd {fd}: must be >= 0")));
        }
        let claim = Claim::new(&self.inner.fixed);
        if !self.inner.has_files.load(Ordering::Acquire) {
            return Ok((Target::Fd(fd), claim));
        }
        self.registered_target(fd, claim)
    }

    /// [`Engine::target`] once files are registered: looks `fd` up in the table.
    #[inline(never)]
    fn registered_target<'a>(
        &'a self,
        fd: RawFd,
        mut claim: Claim<'a>,
    ) -> Result<(Target, Claim<'a>)> {
        // Counted before the draining flag is read (see FixedInFlight).
        claim.add(FIXED_FILE);
        if self.inner.files_draining.load(Ordering::SeqCst) {
            claim.drop_bit(FIXED_FILE);
            return Ok((Target::Fd(fd), claim));
        }
        let files = self
            .inner
            .files
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let target = match files.iter().position(|&f| f == fd) {
            Some(i) => Target::Fixed(i as u32),
            None => {
                claim.drop_bit(FIXED_FILE);
                Target::Fd(fd)
            }
        };
        Ok((target, claim))
    }

    fn check_len(len: usize) -> Result<u32> {
        if len == 0 {
            return Err(Error::invalid("len 0: must be at least 1"));
        }
        u32::try_from(len).map_err(|_| Error::invalid(format!("len {len}: at most u32::MAX")))
    }

    /// The SQE of a read or write (inlined into each op: built in place, not copied out).
    #[inline(always)]
    fn rw_sqe(
        &self,
        write: bool,
        fd: RawFd,
        buf: BufferRef,
        len: usize,
        offset: u64,
    ) -> Result<(Sqe, Claim<'_>)> {
        let (target, claim) = self.target(fd)?;
        let n = Self::check_len(len)?;
        if let Some((index, off)) = buf.fixed_index() {
            return self.fixed_rw_sqe(write, target, claim, index, off, len, n, offset);
        }
        if buf.ptr().is_null() {
            return Err(Error::invalid("buffer: null pointer"));
        }
        if len > buf.len() {
            return Err(Error::invalid(format!(
                "len {len}: beyond the buffer's {} bytes",
                buf.len()
            )));
        }
        let sqe = if write {
            op::write(target, buf.ptr(), n, offset)
        } else {
            op::read(target, buf.ptr(), n, offset)
        };
        Ok((sqe, claim))
    }

    /// [`Engine::rw_sqe`] of a registered buffer (`index`, `off` bytes into it).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn fixed_rw_sqe<'a>(
        &'a self,
        write: bool,
        target: Target,
        mut claim: Claim<'a>,
        index: u16,
        off: usize,
        len: usize,
        n: u32,
        offset: u64,
    ) -> Result<(Sqe, Claim<'a>)> {
        // Counted before the draining flag is read (see FixedInFlight).
        claim.add(FIXED_BUF);
        if self.inner.bufs_draining.load(Ordering::SeqCst) {
            return Err(Error::Busy("registered buffers: being unregistered".into()));
        }
        let bufs = self
            .inner
            .buffers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(iov) = bufs.get(index as usize) else {
            return Err(Error::invalid(format!(
                "fixed buffer {index}: not registered"
            )));
        };
        if off.checked_add(len).is_none_or(|end| end > iov.len) {
            return Err(Error::invalid(format!(
                "fixed buffer {index}: offset {off} + len {len} beyond its {} bytes",
                iov.len
            )));
        }
        let addr = iov.base.wrapping_add(off);
        let sqe = if write {
            op::write_fixed(target, addr, n, offset, index)
        } else {
            op::read_fixed(target, addr, n, offset, index)
        };
        Ok((sqe, claim))
    }

    /// Reads up to `len` bytes at `offset` of `fd` into `buf`; `callback` gets the bytes read
    /// (fewer than `len` at end of file: a short read is reported as such, not retried).
    ///
    /// # Safety
    ///
    /// The memory `buf` points at must stay valid, and must not be read or written by anyone
    /// else, until the callback has run (or the engine is dropped, which waits for it).
    pub unsafe fn read(
        &self,
        fd: RawFd,
        buf: BufferRef,
        len: usize,
        offset: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        let (sqe, claim) = self.rw_sqe(false, fd, buf, len, offset)?;
        self.submit(
            sqe,
            Request::plain(callback, Keep::Nothing, true),
            claim,
            false,
        )
    }

    /// Writes `len` bytes from `buf` at `offset` of `fd`; `callback` gets the bytes written (a
    /// short write is reported as such, not retried).
    ///
    /// # Safety
    ///
    /// As for [`Engine::read`]: `buf` stays valid and unmodified until the callback has run.
    pub unsafe fn write(
        &self,
        fd: RawFd,
        buf: BufferRef,
        len: usize,
        offset: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        let (sqe, claim) = self.rw_sqe(true, fd, buf, len, offset)?;
        self.submit(
            sqe,
            Request::plain(callback, Keep::Nothing, true),
            claim,
            false,
        )
    }

    /// Like [`Engine::read`], but fails with [`Error::WouldBlock`] instead of queueing behind
    /// the gate when the ring is at its in-flight limit.
    ///
    /// # Safety
    ///
    /// As for [`Engine::read`].
    pub unsafe fn try_read(
        &self,
        fd: RawFd,
        buf: BufferRef,
        len: usize,
        offset: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        let (sqe, claim) = self.rw_sqe(false, fd, buf, len, offset)?;
        self.submit(
            sqe,
            Request::plain(callback, Keep::Nothing, true),
            claim,
            true,
        )
    }

    /// Safe read: the engine owns `buf` while the kernel writes it and hands it back to
    /// `callback` with the result; reads `buf.len()` bytes at `offset`.
    ///
    /// When the submission fails, the error comes back with the buffer ([`Rejected`], which
    /// converts to [`Error`] with `?`).
    pub fn read_owned(
        &self,
        fd: RawFd,
        buf: Buffer,
        offset: u64,
        callback: impl FnOnce(Result<usize>, Buffer) + Send + 'static,
    ) -> Result<RequestHandle, Rejected> {
        self.owned(false, fd, buf, offset, InlineFn::new(callback), false)
    }

    /// Like [`Engine::read_owned`], but fails with [`Error::WouldBlock`] (and the buffer back)
    /// instead of queueing behind the gate when the ring is at its in-flight limit.
    pub fn try_read_owned(
        &self,
        fd: RawFd,
        buf: Buffer,
        offset: u64,
        callback: impl FnOnce(Result<usize>, Buffer) + Send + 'static,
    ) -> Result<RequestHandle, Rejected> {
        self.owned(false, fd, buf, offset, InlineFn::new(callback), true)
    }

    /// Safe write: the engine owns `buf` while the kernel reads it and hands it back to
    /// `callback`; writes `buf.len()` bytes at `offset`. A failed submission hands the buffer
    /// back in [`Rejected`], its data untouched.
    pub fn write_owned(
        &self,
        fd: RawFd,
        buf: Buffer,
        offset: u64,
        callback: impl FnOnce(Result<usize>, Buffer) + Send + 'static,
    ) -> Result<RequestHandle, Rejected> {
        self.owned(true, fd, buf, offset, InlineFn::new(callback), false)
    }

    /// Like [`Engine::write_owned`], but fails with [`Error::WouldBlock`] (and the buffer back)
    /// instead of queueing behind the gate when the ring is at its in-flight limit.
    pub fn try_write_owned(
        &self,
        fd: RawFd,
        buf: Buffer,
        offset: u64,
        callback: impl FnOnce(Result<usize>, Buffer) + Send + 'static,
    ) -> Result<RequestHandle, Rejected> {
        self.owned(true, fd, buf, offset, InlineFn::new(callback), true)
    }

    /// The SQE of an owned-buffer read or write of all of `buf` at `offset`, with its claim.
    fn owned_sqe(
        &self,
        write: bool,
        fd: RawFd,
        buf: &mut Buffer,
        offset: u64,
    ) -> Result<(Sqe, Claim<'_>)> {
        let (target, claim) = self.target(fd)?;
        let n = Self::check_len(buf.len())?;
        let sqe = if write {
            op::write(target, buf.as_ptr(), n, offset)
        } else {
            op::read(target, buf.as_mut_ptr(), n, offset)
        };
        Ok((sqe, claim))
    }

    fn owned(
        &self,
        write: bool,
        fd: RawFd,
        mut buf: Buffer,
        offset: u64,
        callback: BufferCallback,
        nonblocking: bool,
    ) -> Result<RequestHandle, Rejected> {
        let (sqe, claim) = match self.owned_sqe(write, fd, &mut buf, offset) {
            Ok(v) => v,
            Err(error) => return Err(Rejected { error, buffer: buf }),
        };
        let req = Request::new(Completion::WithBuffer(callback), Keep::Buffer(buf), true);
        self.submit_inner(sqe, req, claim, nonblocking)
            .map_err(|failed| {
                let (error, req) = *failed;
                match req.keep {
                    Keep::Buffer(buffer) => Rejected { error, buffer },
                    _ => unreachable!("an owned-buffer request keeps its buffer"),
                }
            })
    }

    fn vectored(
        &self,
        write: bool,
        fd: RawFd,
        iov: &[IoVec],
        offset: u64,
        cb: PlainCallback,
    ) -> Result<RequestHandle> {
        let (target, claim) = self.target(fd)?;
        if iov.is_empty() || iov.len() > IOV_MAX {
            return Err(Error::invalid(format!(
                "iovec count {}: must be 1..={IOV_MAX}",
                iov.len()
            )));
        }
        let iov: Box<[IoVec]> = iov.into();
        let sqe = if write {
            op::writev(target, iov.as_ptr(), iov.len() as u32, offset)
        } else {
            op::readv(target, iov.as_ptr(), iov.len() as u32, offset)
        };
        self.submit(
            sqe,
            Request::new(Completion::Plain(cb), Keep::Iovecs(iov), true),
            claim,
            false,
        )
    }

    /// Scatter read into `iov` (copied: the array may be dropped after the call).
    ///
    /// # Safety
    ///
    /// The buffers the iovecs point at stay valid and untouched until the callback has run.
    pub unsafe fn readv(
        &self,
        fd: RawFd,
        iov: &[IoVec],
        offset: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        self.vectored(false, fd, iov, offset, InlineFn::new(callback))
    }

    /// Gather write from `iov` (copied: the array may be dropped after the call).
    ///
    /// # Safety
    ///
    /// As for [`Engine::readv`].
    pub unsafe fn writev(
        &self,
        fd: RawFd,
        iov: &[IoVec],
        offset: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        self.vectored(true, fd, iov, offset, InlineFn::new(callback))
    }

    fn meta(
        &self,
        sqe: Sqe,
        claim: Claim<'_>,
        keep: Keep,
        cb: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        self.submit(sqe, Request::plain(cb, keep, false), claim, false)
    }

    /// [`Engine::meta`] for an operation on `fd` built by `build`.
    fn meta_fd(
        &self,
        fd: RawFd,
        build: impl FnOnce(Target) -> Sqe,
        cb: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        let (target, claim) = self.target(fd)?;
        self.meta(build(target), claim, Keep::Nothing, cb)
    }

    /// A no-op (`IORING_OP_NOP`): completes with `Ok(0)` after a trip through the ring. Useful to
    /// wake a waiting thread or to deliver a result through the normal completion path.
    pub fn nop(
        &self,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        self.meta(
            op::nop(),
            Claim::new(&self.inner.fixed),
            Keep::Nothing,
            callback,
        )
    }

    /// `fsync(fd)`: data and metadata.
    pub fn fsync(
        &self,
        fd: RawFd,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        self.meta_fd(fd, op::fsync, callback)
    }

    /// `fdatasync(fd)`: data only.
    pub fn fdatasync(
        &self,
        fd: RawFd,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        self.meta_fd(fd, op::fdatasync, callback)
    }

    /// `openat(dirfd, path, flags, mode)`; the callback gets the new fd.
    pub fn openat(
        &self,
        dirfd: RawFd,
        path: &str,
        flags: u32,
        mode: u32,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        let path = CString::new(path).map_err(|_| Error::invalid("path: contains a NUL byte"))?;
        let sqe = op::openat(dirfd, path.as_ptr().cast(), flags, mode);
        self.meta(
            sqe,
            Claim::new(&self.inner.fixed),
            Keep::Path(path),
            callback,
        )
    }

    /// `close(fd)` (never through the registered-file table).
    pub fn close(
        &self,
        fd: RawFd,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        if fd < 0 {
            return Err(Error::invalid(format!("fd {fd}: must be >= 0")));
        }
        self.meta(
            op::close(fd),
            Claim::new(&self.inner.fixed),
            Keep::Nothing,
            callback,
        )
    }

    /// `statx(dirfd, path, flags, mask, out)`.
    ///
    /// # Safety
    ///
    /// `out` points at a writable `struct statx` (256 bytes) that stays valid until the callback
    /// has run.
    pub unsafe fn statx(
        &self,
        dirfd: RawFd,
        path: &str,
        flags: u32,
        mask: u32,
        out: *mut u8,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        if out.is_null() {
            return Err(Error::invalid("statx out: null pointer"));
        }
        let path = CString::new(path).map_err(|_| Error::invalid("path: contains a NUL byte"))?;
        let sqe = op::statx(dirfd, path.as_ptr().cast(), flags, mask, out);
        self.meta(
            sqe,
            Claim::new(&self.inner.fixed),
            Keep::Path(path),
            callback,
        )
    }

    /// `fallocate(fd, mode, offset, len)`.
    pub fn fallocate(
        &self,
        fd: RawFd,
        mode: u32,
        offset: u64,
        len: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        if len == 0 {
            return Err(Error::invalid("len 0: must be at least 1"));
        }
        self.meta_fd(fd, |t| op::fallocate(t, mode, offset, len), callback)
    }

    /// `ftruncate(fd, len)` (Linux 6.9+; older kernels complete with `EINVAL`).
    pub fn ftruncate(
        &self,
        fd: RawFd,
        len: u64,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        self.meta_fd(fd, |t| op::ftruncate(t, len), callback)
    }

    /// `sync_file_range(fd, offset, nbytes, flags)` (`nbytes` 0 = to the end of the file).
    pub fn sync_file_range(
        &self,
        fd: RawFd,
        offset: u64,
        nbytes: u32,
        flags: u32,
        callback: impl FnOnce(Result<usize>) + Send + 'static,
    ) -> Result<RequestHandle> {
        self.meta_fd(
            fd,
            |t| op::sync_file_range(t, offset, nbytes, flags),
            callback,
        )
    }

    /// Cancels a request: its callback then gets [`Error::Cancelled`] (or its normal result, if it
    /// finished first). A request still queued behind the gate is cancelled at once. A request
    /// that already completed gives [`Error::InvalidArgument`].
    pub fn cancel(&self, handle: RequestHandle) -> Result<()> {
        let Some(shard) = self.inner.shards.get(handle.ring as usize) else {
            return Err(Error::invalid(format!(
                "ring {}: no such ring",
                handle.ring
            )));
        };
        let finished = {
            let mut st = lock(&shard.state);
            if !st.is_live(handle.user_data) {
                return Err(Error::invalid("request: already completed"));
            }
            match st.take_queued(&shard.counters, handle.user_data) {
                Some(f) => Some(f),
                None => {
                    let mut req = Request::new(Completion::Silent, Keep::Nothing, false);
                    req.internal = true;
                    let token = st.slab.insert(req).map_err(|_| Error::WouldBlock)?;
                    shard.counters.add_pending(&mut st, 1);
                    let sqe = op::async_cancel(handle.user_data).user_data(token.user_data());
                    // A cancel bypasses the gate: it must reach the kernel now.
                    // SAFETY: ASYNC_CANCEL carries no pointer.
                    let pushed = unsafe { st.ring.sq().push(&sqe) }.is_ok() || {
                        let _ = st.flush();
                        // SAFETY: as above.
                        unsafe { st.ring.sq().push(&sqe) }.is_ok()
                    };
                    if !pushed {
                        // Never reached the ring: give the internal slot back.
                        let _ = st.slab.remove(token.user_data());
                        shard.counters.sub_pending(&mut st, 1);
                        return Err(Error::WouldBlock);
                    }
                    st.in_flight += 1;
                    // Published: a failed flush is retried by the next poll / wait.
                    let _ = st.flush();
                    None
                }
            }
        };
        if let Some(f) = finished {
            self.run_callbacks(vec![f]);
        }
        Ok(())
    }

    // ---- completion ----

    /// Runs callbacks; a panic in one reaches the caller after the others ran (see
    /// [`run_finished`]).
    fn run_callbacks(&self, done: impl IntoIterator<Item = Finished>) -> usize {
        let (n, panic) = run_finished(done);
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
        n
    }

    fn not_in_callback(what: &str) -> Result<()> {
        if in_callback() {
            return Err(Error::invalid(format!(
                "{what} from inside a completion callback"
            )));
        }
        Ok(())
    }

    /// One pass over every ring: flush, reap, run callbacks. Returns callbacks run.
    ///
    /// A pass reaps at most one CQ's worth (2 × the queue depth) per ring: callbacks that submit
    /// again (a closed loop whose reads complete at once, from the page cache) would otherwise
    /// keep the pass, and so `poll` or `wait` past its timeout, going forever. What is left is
    /// the next pass's.
    fn poll_pass(&self, done: &mut Vec<Finished>, clear_eventfd: bool) -> Result<usize> {
        if clear_eventfd {
            // `poll` consumes the wakeup (epoll users rely on it); `wait` clears it in `block`.
            let _ = aura_core::sys::eventfd_read(self.inner.eventfd.as_fd());
        }
        let budget = 2 * self.inner.options.effective_queue_depth() as usize;
        let mut total = 0;
        // The clock is read once per pass: the first reap uses it for latencies too, later ones
        // (after callbacks ran) read it again only for a sampled completion.
        let mut clock = ReapClock::fresh(self.now_ns());
        // Whether callbacks ran after the last flush of some ring (so SQEs they pushed may wait).
        let mut unflushed = false;
        let shards = &self.inner.shards;
        for (i, shard) in shards.iter().enumerate() {
            let mut reaped_here = 0;
            loop {
                let reaped = {
                    let mut st = lock(&shard.state);
                    st.reap(&shard.counters, clock, done)
                };
                clock = ReapClock::stale(clock.tick_ns);
                // What was reaped before an error runs too (and anything an earlier pass left).
                let ran = self.run_callbacks(done.drain(..));
                total += ran;
                let reaped = reaped?;
                reaped_here += reaped;
                if reaped == 0 || reaped_here >= budget {
                    // Each reap flushes its ring first, so callbacks followed by another reap of
                    // this ring left nothing here; they may have submitted to the rings before
                    // it, though, and the callbacks that ran last (with nothing reaped: left by
                    // an earlier pass that failed; or cut off by the budget) to any ring.
                    unflushed |= ran > 0 || (i > 0 && reaped_here > 0);
                    break;
                }
            }
        }
        // Callbacks may have submitted to rings this pass already reaped: submit those now, so
        // nothing waits for the next pass.
        if unflushed {
            for shard in shards.iter() {
                let mut st = lock(&shard.state);
                if st.unsubmitted > 0 {
                    st.flush()?;
                }
            }
        }
        self.finish_deferred_unregisters()?;
        Ok(total)
    }

    /// Processes whatever completed, without blocking. Returns the callbacks run.
    pub fn poll(&self) -> Result<usize> {
        Self::not_in_callback("poll")?;
        let mut done = lock(&self.inner.waiter);
        self.poll_pass(&mut done, true)
    }

    /// Like [`Engine::poll`], but returns `Ok(0)` at once when another thread is already
    /// polling or waiting (for futures and event loops that must never block).
    pub fn try_poll(&self) -> Result<usize> {
        Self::not_in_callback("poll")?;
        match self.inner.waiter.try_lock() {
            Ok(mut done) => self.poll_pass(&mut done, true),
            Err(std::sync::TryLockError::Poisoned(g)) => {
                let mut done = g.into_inner();
                self.poll_pass(&mut done, true)
            }
            Err(std::sync::TryLockError::WouldBlock) => Ok(0),
        }
    }

    /// Submits queued SQEs on every ring.
    pub fn flush(&self) -> Result<()> {
        for shard in self.inner.shards.iter() {
            lock(&shard.state).flush()?;
        }
        Ok(())
    }

    /// Requests submitted and not yet completed, over all rings.
    pub fn pending_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.counters.pending.load(Ordering::Relaxed) as usize)
            .sum()
    }

    /// Sleeps until a completion may be ready, at most `slice`.
    fn block(&self, slice: Duration) -> Result<()> {
        // Before the sleep's look at the rings (`sleep`): a completion posted once the eventfd
        // is registered signals it, one posted before is seen there.
        self.inner.ensure_eventfd()?;
        // Announce the sleep, then submit what earlier submissions left in the rings: from now
        // on submissions flush themselves (see `ShardState::admit` for the pairing).
        self.inner.sleepers.fetch_add(1, Ordering::SeqCst);
        let r = self.flush().and_then(|()| self.sleep(slice));
        self.inner.sleepers.fetch_sub(1, Ordering::SeqCst);
        r
    }

    fn sleep(&self, slice: Duration) -> Result<()> {
        let ns = slice.as_nanos() as u64;
        if self.inner.options.single_thread && !self.inner.options.sqpoll {
            // COOP_TASKRUN / DEFER_TASKRUN: completions are posted when this thread enters the
            // kernel. With one ring in flight, sleep inside io_uring_enter on it; with several,
            // on the eventfd below (which the kernel signals when task work is queued).
            let mut busy = self
                .inner
                .shards
                .iter()
                .filter(|s| lock(&s.state).in_flight > 0);
            if let (Some(shard), None) = (busy.next(), busy.next()) {
                let mut st = lock(&shard.state);
                st.ensure_enabled()?;
                st.ring.submit_and_wait_timeout(1, ns)?;
                return Ok(());
            }
        }
        // Clear the eventfd only now, then look again: a CQE posted before the clear is seen
        // here, one posted after it signals the eventfd.
        let _ = aura_core::sys::eventfd_read(self.inner.eventfd.as_fd());
        for shard in self.inner.shards.iter() {
            let mut st = lock(&shard.state);
            if !st.ring.cq().is_empty() || st.ring.needs_getevents() {
                return Ok(());
            }
        }
        aura_core::sys::poll_readable(self.inner.eventfd.as_fd(), Some(ns)).map_err(errno)?;
        Ok(())
    }

    /// Processes completions, blocking up to `timeout_ms` (-1: forever) until at least one
    /// callback ran. Returns the number run; 0 when nothing is pending at all;
    /// [`Error::TimedOut`] when the time ran out first.
    pub fn wait(&self, timeout_ms: i32) -> Result<usize> {
        Self::not_in_callback("wait")?;
        let mut done = lock(&self.inner.waiter);
        let deadline =
            (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        loop {
            let n = self.poll_pass(&mut done, false)?;
            if n > 0 {
                return Ok(n);
            }
            if self.pending_count() == 0 {
                return Ok(0);
            }
            let mut slice = Duration::from_millis(10);
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return Err(Error::TimedOut);
                }
                slice = slice.min(d - now);
            }
            self.block(slice)?;
        }
    }

    /// Waits until nothing is pending or `timeout_ms` (-1: forever) passed. Returns the callbacks
    /// run; [`Error::TimedOut`] at the deadline.
    pub fn drain(&self, timeout_ms: i32) -> Result<usize> {
        Self::not_in_callback("drain")?;
        let deadline =
            (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        let mut total = 0;
        loop {
            let left = match deadline {
                None => -1,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return if self.pending_count() == 0 {
                            Ok(total)
                        } else {
                            Err(Error::TimedOut)
                        };
                    }
                    (d - now).as_millis().min(i32::MAX as u128) as i32
                }
            };
            match self.wait(left) {
                Ok(0) if self.pending_count() == 0 => return Ok(total),
                Ok(n) => total += n,
                Err(Error::TimedOut) => return Err(Error::TimedOut),
                Err(e) => return Err(e),
            }
        }
    }

    /// Processes completions until [`Engine::stop`] is called, then drains what is pending.
    pub fn run(&self) -> Result<()> {
        Self::not_in_callback("run")?;
        while !self.inner.stopping.swap(false, Ordering::AcqRel) {
            match self.wait(100) {
                // Nothing pending: `wait` returned at once. Sleep on the eventfd (which `stop`
                // and completions signal) for one tick slice instead of spinning; the next pass
                // flushes whatever was submitted meanwhile.
                Ok(0) if self.pending_count() == 0 => self.block(Duration::from_millis(10))?,
                Ok(_) | Err(Error::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
        self.drain(10_000).map(|_| ())
    }

    /// Makes [`Engine::run`] return (from any thread, callbacks included).
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        let _ = aura_core::sys::eventfd_write(self.inner.eventfd.as_fd(), 1);
    }

    /// An eventfd that is readable while completions may wait to be processed: register it with
    /// epoll (or tokio's `AsyncFd`) and call [`Engine::poll`] when it fires.
    ///
    /// Submissions are batched: an SQE may wait in the ring until the batch threshold is reached
    /// or `flush`/`poll`/`wait` runs, and it cannot complete (so the fd cannot fire) before it is
    /// submitted. Call [`Engine::flush`] after submitting and before sleeping on this fd (or set
    /// [`crate::Options::batch_threshold`] to 1).
    ///
    /// The first call registers the eventfd on the rings (until then no completion signals it,
    /// which saves every batch of completions the kernel's signal). Completions that were
    /// already waiting then make it readable at once. Should the registration fail (the kernel
    /// is out of memory), the fd is made readable, so the caller polls, and the next call
    /// tries again.
    pub fn poll_fd(&self) -> RawFd {
        match self.inner.ensure_eventfd() {
            Ok(false) => {}
            Ok(true) if self.pending_count() == 0 => {}
            Ok(true) | Err(_) => {
                let _ = aura_core::sys::eventfd_write(self.inner.eventfd.as_fd(), 1);
            }
        }
        self.inner.eventfd.as_raw_fd()
    }

    // ---- registration ----

    /// Registers buffers on every ring for `BufferRef::fixed(index, offset)` I/O.
    ///
    /// # Safety
    ///
    /// The memory the iovecs describe stays valid until [`Engine::unregister_buffers`] or the
    /// engine is dropped.
    pub unsafe fn register_buffers(&self, iov: &[IoVec]) -> Result<()> {
        let mut bufs = self
            .inner
            .buffers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !bufs.is_empty() || self.inner.bufs_draining.load(Ordering::SeqCst) {
            return Err(Error::Busy(
                "buffers: already registered (unregister first)".into(),
            ));
        }
        if iov.is_empty() || iov.len() > u16::MAX as usize {
            return Err(Error::invalid(format!(
                "buffer count {}: must be 1..=65535",
                iov.len()
            )));
        }
        for (i, shard) in self.inner.shards.iter().enumerate() {
            let st = lock(&shard.state);
            // SAFETY: the caller keeps the memory valid while registered (this fn's contract).
            if let Err(e) = unsafe { st.ring.register_buffers(iov) } {
                drop(st);
                for s in &self.inner.shards[..i] {
                    let _ = lock(&s.state).ring.unregister_buffers();
                }
                return Err(e.into());
            }
        }
        bufs.extend_from_slice(iov);
        Ok(())
    }

    /// Unregisters the buffers: new fixed-buffer submissions get [`Error::Busy`] at once, the
    /// requests already using them complete first (completions keep being processed, by this
    /// call or by the thread that waits), then the kernel lets go of the memory. At most 10 s,
    /// then [`Error::TimedOut`] (the buffers stay registered). From inside a callback it cannot
    /// wait, and becomes [`Engine::request_unregister_buffers`].
    pub fn unregister_buffers(&self) -> Result<()> {
        if in_callback() {
            return self.request_unregister_buffers();
        }
        self.start_unregister(Reg::Buffers)?;
        self.finish_unregister_waiting(Reg::Buffers)
    }

    /// Deferred unregister of the buffers: new fixed-buffer submissions get [`Error::Busy`] at
    /// once; the kernel unregister happens now if no request uses them, else on the `poll` /
    /// `wait` / `drain` that completes the last one. Safe from a callback.
    pub fn request_unregister_buffers(&self) -> Result<()> {
        self.start_unregister(Reg::Buffers)?;
        self.try_finish_unregister(Reg::Buffers)
    }

    /// Deferred unregister of the files: fds stop being looked up in the table at once; the
    /// kernel unregister happens when no request uses the table any more (now, or on a later
    /// `poll` / `wait` / `drain`). Safe from a callback.
    pub fn request_unregister_files(&self) -> Result<()> {
        self.start_unregister(Reg::Files)?;
        self.try_finish_unregister(Reg::Files)
    }

    /// Whether an unregister of buffers or files is waiting for its requests.
    pub fn unregister_pending(&self) -> bool {
        self.inner.bufs_draining.load(Ordering::SeqCst)
            || self.inner.files_draining.load(Ordering::SeqCst)
    }

    fn draining_flag(&self, what: Reg) -> &AtomicBool {
        match what {
            Reg::Buffers => &self.inner.bufs_draining,
            Reg::Files => &self.inner.files_draining,
        }
    }

    fn in_use(&self, what: Reg) -> usize {
        match what {
            Reg::Buffers => self.inner.fixed.bufs.load(Ordering::SeqCst),
            Reg::Files => self.inner.fixed.files.load(Ordering::SeqCst),
        }
    }

    /// Marks `what` draining; refuses when nothing is registered or it is draining already.
    fn start_unregister(&self, what: Reg) -> Result<()> {
        let registered = match what {
            Reg::Buffers => !self
                .inner
                .buffers
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_empty(),
            Reg::Files => !self
                .inner
                .files
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_empty(),
        };
        if !registered {
            return Err(Error::invalid(format!("{}: none registered", what.name())));
        }
        if self.draining_flag(what).swap(true, Ordering::SeqCst) {
            return Err(Error::Busy(format!(
                "{}: an unregister is already draining",
                what.name()
            )));
        }
        Ok(())
    }

    /// Finishes a draining unregister if no request uses `what` any more.
    fn try_finish_unregister(&self, what: Reg) -> Result<()> {
        if !self.draining_flag(what).load(Ordering::SeqCst) || self.in_use(what) != 0 {
            return Ok(());
        }
        let result = match what {
            Reg::Buffers => {
                let mut bufs = self
                    .inner
                    .buffers
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut result = Ok(());
                if !bufs.is_empty() {
                    for shard in self.inner.shards.iter() {
                        if let Err(e) = lock(&shard.state).ring.unregister_buffers() {
                            result = Err(e.into());
                        }
                    }
                    bufs.clear();
                }
                result
            }
            Reg::Files => {
                let mut files = self
                    .inner
                    .files
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut result = Ok(());
                if !files.is_empty() {
                    for shard in self.inner.shards.iter() {
                        if let Err(e) = lock(&shard.state).ring.unregister_files() {
                            result = Err(e.into());
                        }
                    }
                    files.clear();
                    self.inner.has_files.store(false, Ordering::Release);
                }
                result
            }
        };
        self.draining_flag(what).store(false, Ordering::SeqCst);
        result
    }

    /// Waits (processing completions when no other thread does) until nothing uses `what`, then
    /// unregisters it; gives up after 10 s.
    fn finish_unregister_waiting(&self, what: Reg) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if !self.draining_flag(what).load(Ordering::SeqCst) {
                // Another thread's poll finished it.
                return Ok(());
            }
            if self.in_use(what) == 0 {
                return self.try_finish_unregister(what);
            }
            if Instant::now() >= deadline {
                self.draining_flag(what).store(false, Ordering::SeqCst);
                return Err(Error::TimedOut);
            }
            match self.inner.waiter.try_lock() {
                Ok(mut done) => {
                    self.poll_pass(&mut done, false)?;
                    if self.in_use(what) != 0 {
                        self.block(Duration::from_millis(10))?;
                    }
                }
                // Another thread processes completions; look again shortly.
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// Finishes deferred unregisters whose requests are done (each poll pass).
    fn finish_deferred_unregisters(&self) -> Result<()> {
        if self.inner.bufs_draining.load(Ordering::Relaxed) {
            self.try_finish_unregister(Reg::Buffers)?;
        }
        if self.inner.files_draining.load(Ordering::Relaxed) {
            self.try_finish_unregister(Reg::Files)?;
        }
        Ok(())
    }

    /// Registers files on every ring; later submissions on these fds use the fixed table.
    pub fn register_files(&self, fds: &[RawFd]) -> Result<()> {
        let mut files = self
            .inner
            .files
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !files.is_empty() || self.inner.files_draining.load(Ordering::SeqCst) {
            return Err(Error::Busy(
                "files: already registered (unregister first)".into(),
            ));
        }
        if fds.is_empty() {
            return Err(Error::invalid("files: empty list"));
        }
        for (i, shard) in self.inner.shards.iter().enumerate() {
            if let Err(e) = lock(&shard.state).ring.register_files(fds) {
                for s in &self.inner.shards[..i] {
                    let _ = lock(&s.state).ring.unregister_files();
                }
                return Err(e.into());
            }
        }
        files.extend_from_slice(fds);
        self.inner.has_files.store(true, Ordering::Release);
        Ok(())
    }

    /// Replaces registered file `index` with `fd` (-1 empties the slot).
    pub fn update_file(&self, index: usize, fd: RawFd) -> Result<()> {
        let mut files = self
            .inner
            .files
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.inner.files_draining.load(Ordering::SeqCst) {
            return Err(Error::Busy("files: being unregistered".into()));
        }
        if index >= files.len() {
            return Err(Error::invalid(format!(
                "file index {index}: {} registered",
                files.len()
            )));
        }
        for shard in self.inner.shards.iter() {
            lock(&shard.state)
                .ring
                .register_files_update(index as u32, &[fd])?;
        }
        files[index] = fd;
        Ok(())
    }

    /// Unregisters the files: fds stop being looked up in the table at once, the requests that
    /// use it complete first, then the kernel drops the table (at most 10 s, as
    /// [`Engine::unregister_buffers`]). From inside a callback it becomes
    /// [`Engine::request_unregister_files`].
    pub fn unregister_files(&self) -> Result<()> {
        if in_callback() {
            return self.request_unregister_files();
        }
        self.start_unregister(Reg::Files)?;
        self.finish_unregister_waiting(Reg::Files)
    }

    // ---- stats ----

    /// One ring's statistics; `None` for a bad index.
    pub fn ring_stats(&self, ring: usize) -> Option<RingStats> {
        let shard = self.inner.shards.get(ring)?;
        let st = lock(&shard.state);
        let a = st.aimd.as_ref().map(|a| a.stats()).unwrap_or_default();
        Some(RingStats {
            ops_completed: shard.counters.ops.load(Ordering::Relaxed),
            bytes_transferred: shard.counters.bytes.load(Ordering::Relaxed),
            pending_count: u64::from(shard.counters.pending.load(Ordering::Relaxed)),
            in_flight: u64::from(st.in_flight),
            peak_in_flight: u64::from(st.peak_in_flight),
            in_flight_limit: u64::from(st.limit),
            batch_threshold: u64::from(st.batch),
            p99_latency_ms: a.p99_ns.map(|ns| ns as f64 / 1e6),
            throughput_bps: a.throughput_bps as f64,
            phase: st.phase(),
            queue_depth: u64::from(st.queue_depth),
            stale_cqes: st.stale_cqes,
        })
    }

    /// Engine-wide statistics.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            adaptive_spills: self.inner.spills.load(Ordering::Relaxed),
            ..Stats::default()
        };
        let n = self.ring_count();
        for i in 0..n {
            let Some(r) = self.ring_stats(i) else {
                continue;
            };
            s.ops_completed += r.ops_completed;
            s.bytes_transferred += r.bytes_transferred;
            s.throughput_bps += r.throughput_bps;
            s.p99_latency_ms = s.p99_latency_ms.max(r.p99_latency_ms.unwrap_or(0.0));
            s.current_in_flight += r.pending_count;
            s.optimal_in_flight += r.in_flight_limit;
            s.peak_in_flight += r.peak_in_flight;
            s.optimal_batch_size += r.batch_threshold;
        }
        s.optimal_batch_size /= n.max(1) as u64;
        s
    }

    /// A copy of one ring's latency histogram: every latency the ring measured since the engine
    /// started (submit to reap, data operations only; at high IOPS the controller measures one
    /// completion in 8, so the count is of samples, not operations). `None` for a bad index.
    pub fn histogram(&self, ring: usize) -> Option<aura_core::histogram::Histogram> {
        let shard = self.inner.shards.get(ring)?;
        let hist = lock(&shard.state).latency_hist.clone();
        Some(hist)
    }

    /// Replaces the max-P99 latency target of every ring, in milliseconds (0: none, the
    /// controller derives its guard), as [`Options::max_p99_latency_ms`] at build time. The
    /// controllers use it from their next tick. Refuses a negative or non-finite value with
    /// [`Error::InvalidArgument`]. No effect with adaptive tuning disabled.
    ///
    /// [`Engine::options`] keeps reporting the value the engine was built with.
    pub fn set_max_p99_latency_ms(&self, ms: f64) -> Result<()> {
        if !ms.is_finite() || ms < 0.0 {
            return Err(Error::invalid(format!(
                "max_p99_latency_ms {ms}: must be finite and >= 0"
            )));
        }
        // A positive target below 1 ns is still a target (the tightest one), not "none".
        let ns = if ms > 0.0 {
            ((ms * 1e6) as u64).max(1)
        } else {
            0
        };
        for shard in self.inner.shards.iter() {
            lock(&shard.state).set_max_p99_ns(ns);
        }
        Ok(())
    }

    /// Replaces the fewest requests in flight tuning may choose on every ring (1..=queue depth,
    /// else [`Error::InvalidArgument`]), as [`Options::min_in_flight`] at build time. A limit
    /// below the new minimum is raised to it at the ring's next tick. No effect with adaptive
    /// tuning disabled (the limit is fixed then).
    ///
    /// [`Engine::options`] keeps reporting the value the engine was built with.
    pub fn set_min_in_flight(&self, n: u32) -> Result<()> {
        let qd = self.inner.options.effective_queue_depth();
        if !(1..=qd).contains(&n) {
            return Err(Error::invalid(format!(
                "min_in_flight {n}: must be 1..=queue_depth ({qd})"
            )));
        }
        for shard in self.inner.shards.iter() {
            lock(&shard.state).set_min_in_flight(n);
        }
        Ok(())
    }

    /// Replaces the batch threshold of every ring, as [`Options::batch_threshold`] at build
    /// time: -1 = tuned by the controller, 0 = never flush on count (only `flush`/`wait`/`poll`
    /// submit), > 0 = fixed (at most 65 536). The flush threshold changes at once; a tuned one
    /// follows the controller from its next tick. Anything else is [`Error::InvalidArgument`].
    ///
    /// [`Engine::options`] keeps reporting the value the engine was built with.
    pub fn set_batch_threshold(&self, n: i32) -> Result<()> {
        let max = aura_core::aimd::MAX_BATCH_THRESHOLD * 1024;
        if n < -1 || n as i64 > i64::from(max) {
            return Err(Error::invalid(format!(
                "batch_threshold {n}: -1 (auto), 0 (never) or 1..={max}"
            )));
        }
        for shard in self.inner.shards.iter() {
            lock(&shard.state).set_batch_threshold(n);
        }
        Ok(())
    }
}

impl Inner {
    /// Registers the eventfd on every ring that does not have it yet. Returns whether it
    /// registered any now.
    ///
    /// Called before a thread sleeps on the eventfd (`Engine::block`, the drain in `drop`) and
    /// by `Engine::poll_fd`, so nothing watches it unregistered. The flag's Release store, after
    /// the last ring's registration returned, pairs with the Acquire load of a later caller:
    /// seeing it set, that caller skips the rings, whose registrations are then complete.
    fn ensure_eventfd(&self) -> Result<bool> {
        if self.eventfd_on.load(Ordering::Acquire) {
            return Ok(false);
        }
        let mut now = false;
        for shard in self.shards.iter() {
            let mut st = lock(&shard.state);
            if !st.eventfd_registered {
                st.ring.register_eventfd(self.eventfd.as_raw_fd(), false)?;
                st.eventfd_registered = true;
                now = true;
            }
        }
        self.eventfd_on.store(true, Ordering::Release);
        Ok(now)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Nothing the kernel may still write is freed before its CQE: drain everything first
        // (callbacks run here), cancelling what has not finished after 10 s.
        self.shutting_down.store(true, Ordering::Release);
        // The drain below sleeps on the eventfd between passes (at most 10 ms each, so a ring
        // that cannot register it is only drained more slowly).
        let _ = self.ensure_eventfd();
        let started = Instant::now();
        let mut cancelled = false;
        let mut panic = None;
        loop {
            let pending: u32 = self
                .shards
                .iter()
                .map(|s| s.counters.pending.load(Ordering::Relaxed))
                .sum();
            if pending == 0 {
                break;
            }
            if !cancelled && started.elapsed() > Duration::from_secs(10) {
                cancelled = true;
                for shard in self.shards.iter() {
                    let mut st = lock(&shard.state);
                    // SAFETY: ASYNC_CANCEL carries no pointer.
                    let _ = unsafe {
                        st.ring.sq().push(
                            &op::async_cancel_any().user_data(aura_core::slab::RESERVED_USER_DATA),
                        )
                    };
                    let _ = st.flush();
                }
            }
            let mut done = Vec::new();
            let mut not_issuer = false;
            for shard in self.shards.iter() {
                let mut st = lock(&shard.state);
                if let Err(Error::Io(e)) = st.reap(&shard.counters, ReapClock::fresh(0), &mut done)
                {
                    // EEXIST: a single-thread engine dropped on another thread than the one
                    // that drove it; only that thread may reap its rings.
                    not_issuer |= e.raw_os_error() == Some(EEXIST);
                }
            }
            if not_issuer {
                // Completions can never be reaped here, and the kernel may still write the
                // requests' memory: leak it rather than free it.
                for shard in self.shards.iter() {
                    let mut st = lock(&shard.state);
                    std::mem::forget(std::mem::replace(
                        &mut st.slab,
                        aura_core::slab::Slab::with_capacity(0),
                    ));
                }
                break;
            }
            // A panicking callback must not cut the drain short (the kernel may still write
            // memory owned by the requests behind it): finish, then pass the first panic on.
            if let (_, Some(p)) = run_finished(done) {
                panic.get_or_insert(p);
            }
            let _ = aura_core::sys::poll_readable(self.eventfd.as_fd(), Some(10_000_000));
            let _ = aura_core::sys::eventfd_read(self.eventfd.as_fd());
        }
        if let Some(p) = panic {
            if !std::thread::panicking() {
                std::panic::resume_unwind(p);
            }
        }
    }
}

/// Runs completion callbacks with the thread marked as running one ([`in_callback`]). A
/// panicking callback does not stop the others (each still runs exactly once) nor leave the
/// thread marked: the first panic's payload is handed back for the caller to resume. Returns the
/// callbacks run.
fn run_finished(
    done: impl IntoIterator<Item = Finished>,
) -> (usize, Option<Box<dyn std::any::Any + Send>>) {
    let was = IN_CALLBACK.with(|c| c.replace(true));
    let mut n = 0;
    let mut panic = None;
    let mut done = done.into_iter();
    // One panic guard around the whole batch, not one per callback: a callback that panics has
    // already been taken from the iterator (it ran, and counts as run), so the guard is set up
    // again for the rest, which each still run exactly once.
    loop {
        let batch = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for f in &mut done {
                n += usize::from(f.run());
            }
        }));
        match batch {
            Ok(()) => break,
            Err(p) => {
                n += 1;
                panic.get_or_insert(p);
            }
        }
    }
    IN_CALLBACK.with(|c| c.set(was));
    (n, panic)
}
