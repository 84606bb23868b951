//! One ring with its controller, its request slots, its gate queue and its counters.
//!
//! Everything mutable sits behind the shard's mutex; the two atomics beside it (pending and
//! limit) are read without the lock by ring selection and stats. Callbacks never run under the
//! lock: [`ShardState::reap`] hands finished requests out and the engine runs them after
//! unlocking, so a callback may submit (and lock a shard again) freely.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aura_core::aimd::{Aimd, AimdOptions, Phase};
use aura_core::histogram::Histogram;
use aura_core::slab::Slab;
use aura_core::{Cqe, Errno, Ring, Sqe};

use crate::error::{Error, Result};
use crate::request::{Finished, Request};

/// Most CQEs reaped from one ring per pass (then the lock is released for the callbacks).
const REAP_BATCH: usize = 256;

/// The automatic batch threshold while the controller is not gating (PASSTHROUGH, or adaptive
/// tuning off). Submissions are not left waiting for it: while a thread sleeps for completions
/// every submission flushes at once (see [`ShardState::admit`]), and `wait` / `poll` flush
/// before they reap; it only bounds how many SQEs a thread that submits without waiting leaves
/// unsubmitted.
pub(crate) const PASSTHROUGH_BATCH: u32 = 32;

/// The batch threshold in force for an option (-1 = automatic) and the controller's choice.
fn batch_for(option: i32, aimd: Option<&Aimd>) -> u32 {
    match (option, aimd) {
        (-1, Some(a)) if a.phase() != Phase::Passthrough => a.batch_threshold(),
        (-1, _) => PASSTHROUGH_BATCH,
        (n, _) => n.max(0) as u32,
    }
}

/// Counter updates of one batch of CQEs.
#[derive(Default)]
struct Tally {
    reaped: u32,
    ops: u64,
    bytes: u64,
}

/// The time one reap works with: `tick_ns` (read at the start of the engine's pass, so perhaps
/// a little old) decides whether the controller ticks; latencies need the time now, which is
/// `tick_ns` itself when it was just read, else read from the clock once, at the first sampled
/// completion (a reap that finds none reads no clock).
#[derive(Copy, Clone, Debug)]
pub(crate) struct ReapClock {
    pub(crate) tick_ns: u64,
    pub(crate) latency_ns: Option<u64>,
}

impl ReapClock {
    /// `now_ns` was just read: it serves ticks and latencies.
    pub(crate) fn fresh(now_ns: u64) -> Self {
        ReapClock {
            tick_ns: now_ns,
            latency_ns: Some(now_ns),
        }
    }

    /// `tick_ns` was read earlier in the pass: latencies read the clock themselves.
    pub(crate) fn stale(tick_ns: u64) -> Self {
        ReapClock {
            tick_ns,
            latency_ns: None,
        }
    }
}

/// Asks the CPU to bring the cache lines of `r` into its cache: a hint with no effect on the
/// program's meaning.
#[inline(always)]
fn prefetch_span<T: ?Sized>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let len = std::mem::size_of_val(r);
        let start = (r as *const T).cast::<u8>();
        let mut off = 0;
        while off < len {
            // SAFETY: `_mm_prefetch` needs SSE, part of every x86_64 target's baseline; a
            // prefetch is a hint that never faults and changes no memory, whatever the address
            // (`wrapping_add` only computes one, inside `r` here).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(off).cast()) };
            off += 64;
        }
        if len > 0 {
            // The last line, which the steps above miss when `r` starts mid-line.
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(len - 1).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// The request uses a registered buffer (`READ_FIXED` / `WRITE_FIXED`).
pub(crate) const FIXED_BUF: u8 = 1;
/// The request names its file by a registered-file index.
pub(crate) const FIXED_FILE: u8 = 2;

/// Requests that use the registered buffers or files, engine-wide, counted from before the
/// submission looks the table up until the request's completion (or its failed submission).
///
/// An unregister sets its draining flag and then waits for its count to reach 0. Both sides use
/// `SeqCst` (a store-then-load on each side, the Dekker pattern): either the submission's
/// increment comes first in the single total order, and the unregister sees it and waits, or
/// the submission's later load of the draining flag sees `true` (or, if the unregister already
/// finished, the emptied table), so no request ever uses a table entry being unregistered.
#[derive(Debug, Default)]
pub(crate) struct FixedInFlight {
    pub(crate) bufs: AtomicUsize,
    pub(crate) files: AtomicUsize,
}

impl FixedInFlight {
    /// Counts one request using what `bits` names.
    pub(crate) fn acquire(&self, bits: u8) {
        if bits & FIXED_BUF != 0 {
            self.bufs.fetch_add(1, Ordering::SeqCst);
        }
        if bits & FIXED_FILE != 0 {
            self.files.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Gives back what [`FixedInFlight::acquire`] counted.
    pub(crate) fn release(&self, bits: u8) {
        if bits & FIXED_BUF != 0 {
            self.bufs.fetch_sub(1, Ordering::SeqCst);
        }
        if bits & FIXED_FILE != 0 {
            self.files.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Counters readable without the shard lock.
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    /// The engine's count of requests using registered buffers and files (shared by all shards).
    pub(crate) fixed: Arc<FixedInFlight>,
    /// Requests handed to this shard and not yet completed (in flight + queued behind the gate).
    /// Written only with the shard lock held ([`ShardCounters::add_pending`],
    /// [`ShardCounters::sub_pending`]); read without it.
    pub(crate) pending: AtomicU32,
    /// The in-flight limit in force.
    pub(crate) limit: AtomicU32,
    /// Completed requests (internal cancels excluded).
    pub(crate) ops: AtomicU64,
    /// Bytes moved by completed data ops (every completion counted).
    pub(crate) bytes: AtomicU64,
}

impl ShardCounters {
    /// Adds `n` requests to `pending`. The caller holds the shard lock (`_locked` is its
    /// state): every writer of `pending` does, so a plain load and store cannot lose an update
    /// and no read-modify-write (a locked instruction, a full barrier on x86) is needed per
    /// request; readers without the lock see each value, in order, as before.
    #[inline]
    pub(crate) fn add_pending(&self, _locked: &mut ShardState, n: u32) {
        let p = self.pending.load(Ordering::Relaxed);
        self.pending.store(p.wrapping_add(n), Ordering::Relaxed);
    }

    /// Takes `n` requests off `pending`; as [`ShardCounters::add_pending`] (shard lock held).
    #[inline]
    pub(crate) fn sub_pending(&self, _locked: &mut ShardState, n: u32) {
        let p = self.pending.load(Ordering::Relaxed);
        self.pending.store(p.wrapping_sub(n), Ordering::Relaxed);
    }
}

/// One ring and everything that goes with it.
pub(crate) struct Shard {
    pub(crate) state: Mutex<ShardState>,
    pub(crate) counters: ShardCounters,
}

/// The locked part of a shard.
pub(crate) struct ShardState {
    pub(crate) ring: Ring,
    pub(crate) slab: Slab<Request>,
    /// The controller (`None` with adaptive tuning disabled).
    pub(crate) aimd: Option<Aimd>,
    /// The in-flight limit in force.
    pub(crate) limit: u32,
    /// Flush once this many SQEs wait (0: never on count).
    pub(crate) batch: u32,
    /// A batch threshold fixed by the options (-1: the controller's).
    pub(crate) batch_option: i32,
    /// Measure 1 completion's latency in this many.
    pub(crate) sample_every: u32,
    sample_ctr: u32,
    /// Requests admitted to a slot but held back by the gate, in order.
    pub(crate) queue: VecDeque<(u64, Sqe)>,
    /// Requests whose SQE went to the ring and whose CQE has not been reaped.
    pub(crate) in_flight: u32,
    /// SQEs pushed but not yet consumed by the kernel.
    pub(crate) unsubmitted: u32,
    pub(crate) peak_in_flight: u32,
    /// The most requests held (in flight + queued) since the last tick.
    pending_peak: u32,
    /// The engine's clock origin (latencies are measured from it).
    epoch: std::time::Instant,
    last_tick_ns: u64,
    /// CQEs whose user_data matched no live request (reported, never dispatched).
    pub(crate) stale_cqes: u64,
    pub(crate) queue_depth: u32,
    /// Every latency this shard measured since the engine started (never reset; exported by
    /// [`crate::Engine::histogram`]).
    pub(crate) latency_hist: Histogram,
    /// The ring was set up disabled (single-thread engines) and not yet enabled: the first
    /// thread that enters it enables it and becomes its issuer.
    disabled: bool,
    /// The engine's eventfd is registered on this ring (see `Inner::ensure_eventfd`).
    pub(crate) eventfd_registered: bool,
}

impl ShardState {
    pub(crate) fn new(
        ring: Ring,
        queue_depth: u32,
        aimd: Option<AimdOptions>,
        fixed_limit: u32,
        batch_option: i32,
        epoch: std::time::Instant,
    ) -> Result<Self> {
        let aimd = match aimd {
            Some(o) => Some(Aimd::new(o).map_err(Error::invalid)?),
            None => None,
        };
        let limit = aimd.as_ref().map_or(fixed_limit, Aimd::limit);
        // Without a controller the samples only feed the histogram: 1 in 8 is plenty.
        let sample_every = if aimd.is_some() {
            1
        } else {
            aura_core::aimd::SAMPLE_EVERY_FAST
        };
        let batch = batch_for(batch_option, aimd.as_ref());
        Ok(ShardState {
            // Room for what may wait behind the gate too: 4 × the queue depth.
            slab: Slab::with_capacity(queue_depth.saturating_mul(4)),
            aimd,
            limit,
            batch,
            batch_option,
            sample_every,
            sample_ctr: 0,
            queue: VecDeque::new(),
            in_flight: 0,
            unsubmitted: 0,
            peak_in_flight: 0,
            pending_peak: 0,
            epoch,
            last_tick_ns: 0,
            stale_cqes: 0,
            queue_depth,
            latency_hist: Histogram::new(),
            disabled: ring
                .setup_flags()
                .contains(aura_core::SetupFlags::R_DISABLED),
            eventfd_registered: false,
            ring,
        })
    }

    /// The controller's phase (PASSTHROUGH when tuning is off).
    pub(crate) fn phase(&self) -> Phase {
        self.aimd.as_ref().map_or(Phase::Passthrough, Aimd::phase)
    }

    /// Whether a request admitted now goes straight to the ring (nothing waits behind the gate
    /// and the in-flight limit allows one more), as [`ShardState::admit`] decides.
    #[inline]
    pub(crate) fn admits_directly(&self) -> bool {
        self.queue.is_empty() && self.in_flight < self.limit
    }

    /// The submit time to stamp on a request whose SQE goes to the ring now: nanoseconds since
    /// the epoch when this data request's latency is sampled (1 in `sample_every`), else 0. The
    /// clock is read only for sampled requests.
    #[inline]
    pub(crate) fn stamp(&mut self, data: bool) -> u64 {
        if !data {
            return 0;
        }
        self.sample_ctr += 1;
        if self.sample_ctr < self.sample_every {
            return 0;
        }
        self.sample_ctr = 0;
        (self.epoch.elapsed().as_nanos() as u64).max(1)
    }

    /// Pushes an admitted SQE to the ring with its request's `user_data`; the request is
    /// already stamped (see [`ShardState::stamp`]).
    // Inlined into its callers so the SQE they build is written straight into the ring: passed
    // by reference, it was stored field by field into a stack temporary and reloaded 16 bytes
    // at a time, a load that spans several stores and stalls store-to-load forwarding.
    #[inline(always)]
    fn push(&mut self, sqe: &Sqe, user_data: u64) -> Result<()> {
        // SAFETY: the SQE's pointers reference memory owned by its request slot (`Keep`) or
        // promised by the caller of an unsafe op to outlive the completion; the slot lives until
        // its CQE is reaped.
        if unsafe { self.ring.sq().push_with_user_data(sqe, user_data) }.is_err() {
            self.flush()?;
            // SAFETY: as above.
            unsafe { self.ring.sq().push_with_user_data(sqe, user_data) }
                .map_err(|_| Error::WouldBlock)?;
        }
        self.in_flight += 1;
        self.unsubmitted += 1;
        self.peak_in_flight = self.peak_in_flight.max(self.in_flight);
        Ok(())
    }

    /// Admits a new request whose slot holds `token`: straight to the ring when `direct` (the
    /// value of [`ShardState::admits_directly`] under this same lock hold, with the request
    /// stamped accordingly), else to the queue. `sqe`'s own `user_data` is ignored: the SQE
    /// carries `token`.
    ///
    /// The SQE is submitted at once when the batch threshold is reached or when a thread sleeps
    /// waiting for completions (`sleepers` > 0: nobody else would flush it soon). The load is
    /// `SeqCst` after the push, pairing with the sleeper's `SeqCst` increment before it flushes
    /// every ring under their locks: either this load sees the sleeper, or the sleeper's flush
    /// (which takes this shard's lock after this admit released it) submits the SQE.
    #[inline]
    pub(crate) fn admit(
        &mut self,
        token: u64,
        sqe: &Sqe,
        direct: bool,
        sleepers: &AtomicUsize,
    ) -> Result<()> {
        debug_assert_eq!(direct, self.admits_directly());
        if direct {
            self.push(sqe, token)?;
            self.flush_if_due(sleepers);
        } else {
            self.queue_admitted(token, sqe);
        }
        self.pending_peak = self.pending_peak.max(self.slab.len());
        Ok(())
    }

    /// Queues a request that the gate holds back (its slot holds `token`).
    #[inline]
    pub(crate) fn queue_admitted(&mut self, token: u64, sqe: &Sqe) {
        self.queue.push_back((token, sqe.user_data(token)));
    }

    /// Pushes the SQEs of a batch's requests that the gate admitted directly (each slot holds
    /// its `token`), in order, through one SQ view (`admit` opens one per request). When the SQ
    /// is full even after a flush, the rest wait behind the gate, first in line: they hold their
    /// slots already, and `admit_queued` pushes them as room comes.
    pub(crate) fn push_direct<'a>(&mut self, items: impl Iterator<Item = (u64, &'a Sqe)>) {
        let mut items = items.peekable();
        loop {
            let mut pushed = 0;
            {
                let mut sq = self.ring.sq();
                while let Some(&(token, sqe)) = items.peek() {
                    // SAFETY: as in `push`: the SQE's memory is owned by its request's slot or
                    // promised by the caller of an unsafe batch operation until the completion.
                    if unsafe { sq.push_with_user_data(sqe, token) }.is_err() {
                        break;
                    }
                    items.next();
                    pushed += 1;
                }
            }
            self.in_flight += pushed;
            self.unsubmitted += pushed;
            self.peak_in_flight = self.peak_in_flight.max(self.in_flight);
            if items.peek().is_none() {
                break;
            }
            // The SQ is full: submit what it holds, and go on if that made room.
            let _ = self.flush();
            if self.ring.sq_unconsumed() >= self.ring.sq_entries() {
                let rest: Vec<(u64, Sqe)> = items.map(|(t, s)| (t, s.user_data(t))).collect();
                for entry in rest.into_iter().rev() {
                    self.queue.push_front(entry);
                }
                break;
            }
        }
        self.pending_peak = self.pending_peak.max(self.slab.len());
    }

    /// Submits pushed SQEs when the batch threshold is reached or a thread sleeps waiting for
    /// completions (see [`ShardState::admit`] for the `SeqCst` pairing with the sleeper).
    /// [`ShardState::admit`] checks after each request, a batch once after its last.
    #[inline]
    pub(crate) fn flush_if_due(&mut self, sleepers: &AtomicUsize) {
        if (self.batch > 0 && self.unsubmitted >= self.batch) || sleepers.load(Ordering::SeqCst) > 0
        {
            // The SQEs are in the ring now: their requests must stay (the kernel may consume
            // them at any time), so a failed flush is not a submission's failure; the next
            // flush in poll / wait retries and reports.
            let _ = self.flush();
        }
    }

    /// Moves queued requests to the ring while the gate allows.
    fn admit_queued(&mut self) -> Result<()> {
        while self.in_flight < self.limit {
            let Some((token, sqe)) = self.queue.pop_front() else {
                break;
            };
            // Stamped as it goes to the ring (its wait in the queue is not its latency).
            let data = self.slab.get(token).is_ok_and(|req| req.data);
            let submit_ns = self.stamp(data);
            if let Err(e) = self.push(&sqe, token) {
                // Still waiting: back to the front, in order.
                self.queue.push_front((token, sqe));
                return Err(e);
            }
            if submit_ns != 0 {
                if let Ok(req) = self.slab.get_mut(token) {
                    req.submit_ns = submit_ns;
                }
            }
        }
        Ok(())
    }

    /// Enables a ring set up disabled: the calling thread becomes its issuer (single-thread
    /// engines use `SINGLE_ISSUER | DEFER_TASKRUN`, and the thread that uses the engine is not
    /// necessarily the one that built it).
    pub(crate) fn ensure_enabled(&mut self) -> Result<()> {
        if self.disabled {
            self.ring.enable()?;
            self.disabled = false;
        }
        Ok(())
    }

    /// Submits pushed SQEs (and enters with GETEVENTS when the ring holds completions back).
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.ensure_enabled()?;
        match self.ring.submit() {
            Ok(n) => {
                if n > 0 {
                    if let Some(a) = &mut self.aimd {
                        a.on_submit(n);
                    }
                }
            }
            // The kernel wants completions reaped first: the SQEs stay published, and the next
            // reap and flush pick them up.
            Err(aura_core::Error::Os(Errno::BUSY | Errno::AGAIN)) => {}
            Err(e) => return Err(e.into()),
        }
        self.unsubmitted = self.ring.sq_unconsumed();
        Ok(())
    }

    /// Runs the controller when a tick is due and applies its decision.
    fn maybe_tick(&mut self, now_ns: u64, pending: u32) {
        let Some(a) = &mut self.aimd else { return };
        if now_ns.saturating_sub(self.last_tick_ns) < aura_core::aimd::TICK_NS {
            return;
        }
        self.last_tick_ns = now_ns;
        // The most requests pending since the last tick: a client that refills only after its
        // completions are processed shows a dip at reap time that is not its demand.
        let pending = pending.max(self.pending_peak);
        self.pending_peak = 0;
        let d = a.tick(now_ns, pending);
        self.limit = d.limit;
        self.sample_every = d.sample_every.max(1);
        self.batch = batch_for(self.batch_option, self.aimd.as_ref());
    }

    /// One pass: tick if due, flush, reap up to a batch of CQEs into `out`, admit queued
    /// requests the gate now allows. Returns the number reaped (internal requests included).
    pub(crate) fn reap(
        &mut self,
        counters: &ShardCounters,
        mut clock: ReapClock,
        out: &mut Vec<Finished>,
    ) -> Result<usize> {
        self.maybe_tick(clock.tick_ns, counters.pending.load(Ordering::Relaxed));
        counters.limit.store(self.limit, Ordering::Relaxed);
        self.flush()?;
        let mut cqes: [Cqe; 64] = [Cqe::default(); 64];
        let mut total = 0;
        while total < REAP_BATCH {
            let mut n = 0;
            {
                let mut cq = self.ring.cq();
                for (slot, cqe) in cqes.iter_mut().zip(&mut cq) {
                    *slot = cqe;
                    n += 1;
                }
            }
            if n == 0 {
                break;
            }
            total += n;
            // Each CQE's request slot and its entry in `out` were last touched before the
            // kernel ran the I/O (which may have evicted them from the cache): ask for them all
            // first, so the misses overlap instead of stalling one CQE after the other.
            for cqe in &cqes[..n] {
                if let Ok(req) = self.slab.get(cqe.user_data) {
                    prefetch_span(req);
                }
            }
            out.reserve(n);
            let spare = out.spare_capacity_mut();
            prefetch_span(&spare[..n]);
            let mut tally = Tally::default();
            for cqe in &cqes[..n] {
                self.complete(counters, &mut tally, cqe, &mut clock, out);
            }
            // One update per batch of CQEs, not three per CQE.
            if tally.reaped > 0 {
                counters.sub_pending(self, tally.reaped);
            }
            if tally.ops > 0 {
                counters.ops.fetch_add(tally.ops, Ordering::Relaxed);
                counters.bytes.fetch_add(tally.bytes, Ordering::Relaxed);
            }
        }
        if !self.queue.is_empty() {
            self.admit_queued()?;
            self.flush()?;
        }
        Ok(total)
    }

    fn complete(
        &mut self,
        counters: &ShardCounters,
        tally: &mut Tally,
        cqe: &Cqe,
        clock: &mut ReapClock,
        out: &mut Vec<Finished>,
    ) {
        out.reserve(1);
        let len = out.len();
        let spare = &mut out.spare_capacity_mut()[0];
        let dst = spare.as_mut_ptr();
        // SAFETY: `dst` points at the vector's first spare slot (room reserved above), valid for
        // writes of a `Finished`; `addr_of_mut!` projects to its `req` field without creating a
        // reference to the uninitialised whole, and `MaybeUninit<Request>` has `Request`'s
        // layout, so the cast pointer is valid and aligned for the slab to write through.
        let req_place = unsafe { &mut *std::ptr::addr_of_mut!((*dst).req).cast() };
        let Ok(req) = self.slab.remove_into(cqe.user_data, req_place) else {
            self.stale_cqes += 1;
            return;
        };
        // From here `req` (in the spare slot) must end up in `out`: nothing below returns or
        // panics before `set_len`, except an internal request, which is dropped explicitly.
        if req.fixed != 0 {
            counters.fixed.release(req.fixed);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        tally.reaped += 1;
        if req.internal {
            // SAFETY: `req` was initialised by `remove_into` and is not in `out` (its length is
            // unchanged): dropped once, here.
            unsafe { std::ptr::drop_in_place(req) };
            return;
        }
        tally.ops += 1;
        let data = req.data;
        let submit_ns = req.submit_ns;
        let bytes = if data && cqe.res > 0 {
            cqe.res as u64
        } else {
            0
        };
        tally.bytes += bytes;
        // SAFETY: the spare slot's `req` is initialised (above); writing `res` completes the
        // `Finished`, and `set_len` then hands it to the vector (`len` < capacity, reserved).
        unsafe {
            std::ptr::addr_of_mut!((*dst).res).write(i64::from(cqe.res));
            out.set_len(len + 1);
        }
        if data {
            let latency = (submit_ns > 0).then(|| {
                let epoch = self.epoch;
                let now_ns = *clock
                    .latency_ns
                    .get_or_insert_with(|| epoch.elapsed().as_nanos() as u64);
                now_ns.saturating_sub(submit_ns)
            });
            if let Some(ns) = latency {
                self.latency_hist.record(ns);
            }
            if let Some(a) = &mut self.aimd {
                a.on_complete(latency, bytes);
            }
        }
    }

    /// Whether the slot of `user_data` is live (its request has not completed).
    pub(crate) fn is_live(&self, user_data: u64) -> bool {
        self.slab.get(user_data).is_ok()
    }

    /// Removes a request still waiting behind the gate (it never reached the kernel).
    pub(crate) fn take_queued(
        &mut self,
        counters: &ShardCounters,
        user_data: u64,
    ) -> Option<Finished> {
        let pos = self.queue.iter().position(|(t, _)| *t == user_data)?;
        self.queue.remove(pos);
        let req = self.slab.remove(user_data).ok()?;
        counters.fixed.release(req.fixed);
        counters.sub_pending(self, 1);
        counters.ops.fetch_add(1, Ordering::Relaxed);
        Some(Finished {
            req,
            res: i64::from(-Errno::CANCELED.raw_os_error()),
        })
    }

    /// Replaces the controller's max-P99 target (0: derived guard); no-op with tuning off.
    pub(crate) fn set_max_p99_ns(&mut self, ns: u64) {
        if let Some(a) = &mut self.aimd {
            a.set_max_p99_ns(ns);
        }
    }

    /// Replaces the controller's minimum in-flight limit; the gate follows at the next tick.
    /// No-op with tuning off (the limit is fixed then).
    pub(crate) fn set_min_in_flight(&mut self, n: u32) {
        if let Some(a) = &mut self.aimd {
            a.set_min_in_flight(n);
        }
    }

    /// Replaces the batch threshold option (-1: the controller's, 0: never on count, > 0:
    /// fixed); the flush threshold in force follows at once.
    pub(crate) fn set_batch_threshold(&mut self, n: i32) {
        self.batch_option = n;
        if let Some(a) = &mut self.aimd {
            a.set_batch_threshold(n.max(0) as u32);
        }
        self.batch = batch_for(n, self.aimd.as_ref());
    }
}
