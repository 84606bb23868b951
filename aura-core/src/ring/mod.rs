//! `Ring`: one io_uring instance — setup with probed features, the mappings, and the enter loop.
//!
//! Mirrors io_uring_setup(2) and io_uring_enter(2). A ring is driven either by the kernel (the
//! normal case) or by aura-core's simulated kernel ([`crate::sim`]) over heap memory, through the
//! same [`Sq`] / [`Cq`] code.
//!
//! ```no_run
//! use aura_core::{op, Params, Ring};
//! # fn main() -> Result<(), aura_core::Error> {
//! let mut ring = Ring::new(8, &Params::new())?;
//! // SAFETY: a NOP carries no pointers.
//! unsafe { ring.sq().push(&op::nop().user_data(7)) }.expect("queue has room");
//! ring.submit_and_wait(1)?;
//! let cqe = ring.cq().next().expect("one completion");
//! assert_eq!((cqe.user_data, cqe.res), (7, 0));
//! # Ok(()) }
//! ```

mod cq;
pub(crate) mod mem;
mod sq;

use alloc::boxed::Box;

pub use cq::Cq;
pub use mem::RingMem;
pub use sq::{QueueFull, Sq};

use crate::error::{Errno, Error, Result};
use crate::sim::{SimConfig, SimEnter, SimKernel};
use crate::slab::RESERVED_USER_DATA;
use crate::sync::Ordering;
use crate::sys::abi::{self, Cqe, Timespec};

bitflags::bitflags! {
    /// `IORING_SETUP_*` flags.
    #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
    pub struct SetupFlags: u32 {
        /// Busy-poll for completions (O_DIRECT on polled block devices only).
        const IOPOLL = abi::IORING_SETUP_IOPOLL;
        /// A kernel thread polls the SQ.
        const SQPOLL = abi::IORING_SETUP_SQPOLL;
        /// Pin the SQPOLL thread to `sq_thread_cpu`.
        const SQ_AFF = abi::IORING_SETUP_SQ_AFF;
        /// `cq_entries` is given.
        const CQSIZE = abi::IORING_SETUP_CQSIZE;
        /// Clamp oversized entry counts instead of failing.
        const CLAMP = abi::IORING_SETUP_CLAMP;
        /// Keep submitting after an SQE fails to prepare.
        const SUBMIT_ALL = abi::IORING_SETUP_SUBMIT_ALL;
        /// Run task work only at kernel transitions (5.19+).
        const COOP_TASKRUN = abi::IORING_SETUP_COOP_TASKRUN;
        /// Flag pending task work in the SQ flags (`IORING_SQ_TASKRUN`).
        const TASKRUN_FLAG = abi::IORING_SETUP_TASKRUN_FLAG;
        /// Only one task submits (6.0+).
        const SINGLE_ISSUER = abi::IORING_SETUP_SINGLE_ISSUER;
        /// Run task work only when the issuer enters with GETEVENTS (6.1+).
        const DEFER_TASKRUN = abi::IORING_SETUP_DEFER_TASKRUN;
        /// No SQ indirection array (6.6+).
        const NO_SQARRAY = abi::IORING_SETUP_NO_SQARRAY;
        /// Start disabled: no submission until [`Ring::enable`] (5.10+). With SINGLE_ISSUER, the
        /// thread that enables the ring becomes its issuer.
        const R_DISABLED = abi::IORING_SETUP_R_DISABLED;
        const _ = !0;
    }
}

bitflags::bitflags! {
    /// `IORING_FEAT_*` bits the kernel reported (unknown bits are kept).
    #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
    pub struct Features: u32 {
        /// SQ and CQ rings share one mapping.
        const SINGLE_MMAP = abi::IORING_FEAT_SINGLE_MMAP;
        /// Overflowing CQEs are kept on a list, not dropped.
        const NODROP = abi::IORING_FEAT_NODROP;
        /// SQE data is consumed at submission.
        const SUBMIT_STABLE = abi::IORING_FEAT_SUBMIT_STABLE;
        /// `io_uring_enter` takes an extended argument (timeouts).
        const EXT_ARG = abi::IORING_FEAT_EXT_ARG;
        /// `IOSQE_CQE_SKIP_SUCCESS` works.
        const CQE_SKIP = abi::IORING_FEAT_CQE_SKIP;
        const _ = !0;
    }
}

/// How to set a ring up. Start from [`Params::new`] (CLAMP on, NO_SQARRAY tried with fallback).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Params {
    flags: SetupFlags,
    cq_entries: u32,
    sq_thread_cpu: u32,
    sq_thread_idle_ms: u32,
    separate_mappings: bool,
    no_ext_arg: bool,
}

impl Default for Params {
    fn default() -> Self {
        Self::new()
    }
}

impl Params {
    /// Defaults: `IORING_SETUP_CLAMP`, and `IORING_SETUP_NO_SQARRAY` when the kernel has it.
    pub const fn new() -> Self {
        Params {
            flags: SetupFlags::CLAMP.union(SetupFlags::NO_SQARRAY),
            cq_entries: 0,
            sq_thread_cpu: 0,
            sq_thread_idle_ms: 0,
            separate_mappings: false,
            no_ext_arg: false,
        }
    }

    fn set(mut self, f: SetupFlags, on: bool) -> Self {
        self.flags.set(f, on);
        self
    }

    /// A CQ of `n` entries (`IORING_SETUP_CQSIZE`; rounded up to a power of two by the kernel).
    pub const fn cq_entries(mut self, n: u32) -> Self {
        self.cq_entries = n;
        self.flags = self.flags.union(SetupFlags::CQSIZE);
        self
    }

    /// Clamp oversized entry counts (on by default).
    pub fn clamp(self, on: bool) -> Self {
        self.set(SetupFlags::CLAMP, on)
    }

    /// Ask for `IORING_SETUP_NO_SQARRAY` (on by default; dropped silently where unsupported).
    pub fn no_sqarray(self, on: bool) -> Self {
        self.set(SetupFlags::NO_SQARRAY, on)
    }

    /// `COOP_TASKRUN | TASKRUN_FLAG` where supported (dropped silently otherwise).
    pub fn coop_taskrun(self, on: bool) -> Self {
        self.set(SetupFlags::COOP_TASKRUN | SetupFlags::TASKRUN_FLAG, on)
    }

    /// `SINGLE_ISSUER` where supported: only the thread that creates the ring may submit.
    pub fn single_issuer(self, on: bool) -> Self {
        self.set(SetupFlags::SINGLE_ISSUER, on)
    }

    /// `DEFER_TASKRUN | SINGLE_ISSUER | TASKRUN_FLAG` where supported: completions are posted only
    /// when the creating thread enters with GETEVENTS (every `submit*` call does when needed).
    pub fn defer_taskrun(self, on: bool) -> Self {
        let f = SetupFlags::DEFER_TASKRUN | SetupFlags::SINGLE_ISSUER | SetupFlags::TASKRUN_FLAG;
        self.set(f, on)
    }

    /// `R_DISABLED`: the ring starts disabled and accepts no submission until [`Ring::enable`];
    /// registrations work meanwhile. With [`Params::defer_taskrun`], the thread that enables it
    /// becomes its only issuer (instead of the thread that created it).
    pub fn disabled(self, on: bool) -> Self {
        self.set(SetupFlags::R_DISABLED, on)
    }

    /// A kernel thread polls the SQ, sleeping after `idle_ms` without work (not dropped if the
    /// kernel refuses: setup fails instead).
    pub fn sqpoll(mut self, idle_ms: u32) -> Self {
        self.flags |= SetupFlags::SQPOLL;
        self.sq_thread_idle_ms = idle_ms;
        self
    }

    /// Pins the SQPOLL thread to `cpu`.
    pub fn sqpoll_cpu(mut self, cpu: u32) -> Self {
        self.flags |= SetupFlags::SQ_AFF;
        self.sq_thread_cpu = cpu;
        self
    }

    /// Maps the SQ and CQ rings separately even when the kernel offers one mapping (exercises the
    /// pre-5.4 path).
    pub fn separate_mappings(mut self, on: bool) -> Self {
        self.separate_mappings = on;
        self
    }

    /// Never uses `IORING_ENTER_EXT_ARG`: timed waits use a TIMEOUT SQE (the pre-5.11 path).
    pub fn no_ext_arg(mut self, on: bool) -> Self {
        self.no_ext_arg = on;
        self
    }

    /// The flags asked for.
    pub fn flags(&self) -> SetupFlags {
        self.flags
    }
}

/// Who plays the kernel's side of the ring.
#[derive(Debug)]
enum Backend {
    #[cfg(not(loom))]
    Kernel(rustix::fd::OwnedFd),
    /// Behind a trait object so that a program which never builds a simulated ring does not link
    /// the simulator (its code is reachable only through the vtable `new_sim` creates).
    Sim(Box<dyn SimEnter>),
    /// A simulated kernel running elsewhere (another thread) that polls the SQ, like SQPOLL.
    Detached,
}

/// One io_uring instance.
#[derive(Debug)]
pub struct Ring {
    // Field order matters: the mappings must be dropped before the fd is closed.
    mem: RingMem,
    backend: Backend,
    flags: SetupFlags,
    features: Features,
    no_ext_arg: bool,
    /// The timespec of the TIMEOUT SQE used for timed waits without EXT_ARG (stable address).
    timer: Box<Timespec>,
    /// Whether CQ views must skip reserved CQEs: false only for a kernel ring that never pushes a
    /// timer SQE (EXT_ARG in use).
    skip_reserved: bool,
}

/// Optional setup flags, dropped in this order when the kernel says EINVAL.
#[cfg(not(loom))]
const FALLBACKS: [SetupFlags; 4] = [
    SetupFlags::NO_SQARRAY,
    SetupFlags::DEFER_TASKRUN,
    SetupFlags::SINGLE_ISSUER,
    SetupFlags::COOP_TASKRUN.union(SetupFlags::TASKRUN_FLAG),
];

impl Ring {
    /// Sets up a ring of `entries` SQEs (a power of two is used; CLAMP caps it at the kernel's
    /// maximum). Optional flags the kernel rejects are dropped in turn (NO_SQARRAY, DEFER_TASKRUN,
    /// SINGLE_ISSUER, COOP_TASKRUN); see [`Ring::setup_flags`] for what was granted.
    #[cfg(not(loom))]
    pub fn new(entries: u32, params: &Params) -> Result<Ring> {
        use crate::sys;
        if entries == 0 {
            return Err(Error::InvalidArgument("entries must be at least 1"));
        }
        if params.flags.contains(SetupFlags::CQSIZE) && params.cq_entries < entries {
            return Err(Error::InvalidArgument("cq_entries must be >= entries"));
        }
        let mut flags = params.flags;
        let mut drop_next = 0;
        let (fd, raw) = loop {
            let mut raw = abi::RawParams {
                flags: flags.bits(),
                cq_entries: params.cq_entries,
                sq_thread_cpu: params.sq_thread_cpu,
                sq_thread_idle: params.sq_thread_idle_ms,
                ..Default::default()
            };
            match sys::setup(entries, &mut raw) {
                Ok(fd) => break (fd, raw),
                Err(Errno::INVAL) if drop_next < FALLBACKS.len() => {
                    // Drop the next optional flag that is actually set.
                    while drop_next < FALLBACKS.len() && !flags.intersects(FALLBACKS[drop_next]) {
                        drop_next += 1;
                    }
                    if drop_next == FALLBACKS.len() {
                        return Err(Error::Os(Errno::INVAL));
                    }
                    flags.remove(FALLBACKS[drop_next]);
                    if FALLBACKS[drop_next] == SetupFlags::DEFER_TASKRUN {
                        flags.remove(SetupFlags::TASKRUN_FLAG);
                        if params.flags.contains(SetupFlags::COOP_TASKRUN) {
                            flags.insert(SetupFlags::TASKRUN_FLAG);
                        }
                    }
                    drop_next += 1;
                }
                Err(Errno::NOMEM) => return Err(Error::MemlockLimit),
                Err(e) => return Err(Error::Os(e)),
            }
        };
        let features = Features::from_bits_retain(raw.features);
        let single = features.contains(Features::SINGLE_MMAP) && !params.separate_mappings;
        let mem = mem::map(rustix::fd::AsFd::as_fd(&fd), &raw, single)?;
        Ok(Ring {
            mem,
            backend: Backend::Kernel(fd),
            flags: SetupFlags::from_bits_retain(raw.flags),
            features,
            no_ext_arg: params.no_ext_arg,
            timer: Box::new(Timespec::default()),
            skip_reserved: !features.contains(Features::EXT_ARG) || params.no_ext_arg,
        })
    }

    /// A ring driven by aura-core's simulated kernel, which runs inside `submit*` calls (no
    /// syscalls; usable under Miri and in fuzz targets). Sizes are rounded up to powers of two.
    pub fn new_sim(entries: u32, config: SimConfig) -> Ring {
        let (mem, kernel) = Self::sim_mem(entries, &config);
        let features = SimKernel::FEATURES;
        Ring {
            mem,
            backend: Backend::Sim(Box::new(SimKernel::new(kernel, config)) as Box<dyn SimEnter>),
            flags: SetupFlags::empty(),
            features,
            no_ext_arg: config.no_ext_arg,
            timer: Box::new(Timespec::default()),
            skip_reserved: true,
        }
    }

    /// A ring whose simulated kernel is handed back to run on another thread (it polls the SQ like
    /// SQPOLL; `submit*` only publishes). Used by the loom models.
    pub fn new_sim_detached(entries: u32, config: SimConfig) -> (Ring, SimKernel) {
        let (mem, kernel) = Self::sim_mem(entries, &config);
        let ring = Ring {
            mem,
            backend: Backend::Detached,
            flags: SetupFlags::SQPOLL,
            features: SimKernel::FEATURES,
            no_ext_arg: true,
            timer: Box::new(Timespec::default()),
            skip_reserved: true,
        };
        (ring, SimKernel::new(kernel, config))
    }

    fn sim_mem(entries: u32, config: &SimConfig) -> (RingMem, mem::KernelSide) {
        let sq = entries.clamp(1, 1 << 15).next_power_of_two();
        let cq = if config.cq_entries == 0 {
            sq * 2
        } else {
            config.cq_entries
        };
        let cq = cq.clamp(1, 1 << 16).next_power_of_two();
        RingMem::heap(sq, cq, config.sq_array)
    }

    /// The submission queue. Dropping the view publishes what was pushed.
    pub fn sq(&mut self) -> Sq<'_> {
        Sq::new(&self.mem.sq)
    }

    /// The completion queue. Dropping the view hands consumed slots back.
    pub fn cq(&mut self) -> Cq<'_> {
        // Reserved CQEs come only from the timer SQE of `wait_with_timer_sqe` (no EXT_ARG) or a
        // simulated kernel; a kernel ring with EXT_ARG never sees one.
        Cq::with_filter(&self.mem.cq, self.skip_reserved)
    }

    /// Both queues at once.
    pub fn split(&mut self) -> (Sq<'_>, Cq<'_>) {
        (Sq::new(&self.mem.sq), Cq::new(&self.mem.cq))
    }

    /// The setup flags the kernel granted.
    pub fn setup_flags(&self) -> SetupFlags {
        self.flags
    }

    /// The features the kernel reported.
    pub fn features(&self) -> Features {
        self.features
    }

    /// The ring memory (sizes, mapping kind).
    pub fn mem(&self) -> &RingMem {
        &self.mem
    }

    /// SQ size.
    pub fn sq_entries(&self) -> u32 {
        self.mem.sq.entries
    }

    /// CQ size.
    pub fn cq_entries(&self) -> u32 {
        self.mem.cq.entries
    }

    /// The ring's file descriptor (none for a simulated ring).
    #[cfg(not(loom))]
    pub fn as_fd(&self) -> Option<rustix::fd::BorrowedFd<'_>> {
        match &self.backend {
            Backend::Kernel(fd) => Some(rustix::fd::AsFd::as_fd(fd)),
            _ => None,
        }
    }

    /// Published SQEs the kernel has not consumed yet (counted from the kernel's head, so a short
    /// submit is never mistaken for a full one).
    pub fn sq_unconsumed(&self) -> u32 {
        let sq = &self.mem.sq;
        // Relaxed: we are the only writer of the SQ tail.
        let tail = sq.word(sq.tail).load(Ordering::Relaxed);
        // Acquire pairs with the kernel's Release store of the SQ head.
        let head = sq.word(sq.head).load(Ordering::Acquire);
        tail.wrapping_sub(head)
    }

    fn sq_flags(&self) -> u32 {
        let sq = &self.mem.sq;
        // Relaxed: the flags only decide whether to enter; data is ordered by the indexes.
        sq.word(sq.flags).load(Ordering::Relaxed)
    }

    fn cq_ready(&self) -> u32 {
        let cq = &self.mem.cq;
        // Acquire pairs with the kernel's Release store of the CQ tail.
        let tail = cq.word(cq.tail).load(Ordering::Acquire);
        // Relaxed: we are the only writer of the CQ head.
        tail.wrapping_sub(cq.word(cq.head).load(Ordering::Relaxed))
    }

    /// Whether the kernel holds completions that only an enter with GETEVENTS will post
    /// (`IORING_SQ_CQ_OVERFLOW` or `IORING_SQ_TASKRUN`).
    pub fn needs_getevents(&self) -> bool {
        self.sq_flags() & (abi::IORING_SQ_CQ_OVERFLOW | abi::IORING_SQ_TASKRUN) != 0
    }

    fn enter(
        &mut self,
        to_submit: u32,
        min: u32,
        flags: u32,
        ts: Option<&Timespec>,
    ) -> Result<u32, Errno> {
        match &mut self.backend {
            #[cfg(not(loom))]
            Backend::Kernel(fd) => {
                let fd = rustix::fd::AsFd::as_fd(fd);
                match ts {
                    // SAFETY: every SQE in the ring was pushed through `Sq::push`, whose contract
                    // keeps the memory it points at valid until its CQE is reaped.
                    Some(ts) => unsafe { crate::sys::enter_timeout(fd, to_submit, min, flags, ts) },
                    // SAFETY: as above.
                    None => unsafe { crate::sys::enter(fd, to_submit, min, flags) },
                }
            }
            Backend::Sim(k) => k.enter(to_submit, min, flags, ts.is_some()),
            Backend::Detached => Ok(to_submit),
        }
    }

    /// Submits published SQEs; enters with GETEVENTS too when the kernel holds completions back
    /// (CQ overflow, pending task work). Returns how many SQEs the kernel consumed.
    ///
    /// `EBUSY` / `EAGAIN` mean "reap completions, then submit again": the SQEs stay published and
    /// the next call submits them (see [`Ring::submit_reaping`], which does exactly that).
    pub fn submit(&mut self) -> Result<u32> {
        self.submit_and_wait(0)
    }

    /// Submits, then waits until at least `want` CQEs are ready. `EINTR` is retried. A `want`
    /// larger than the CQ is refused with [`Error::InvalidArgument`] (it could never be met).
    #[inline]
    pub fn submit_and_wait(&mut self, want: u32) -> Result<u32> {
        // Fast path: a kernel ring without SQPOLL, one enter that submits everything and finds
        // `want` CQEs ready when it returns (the common case). Anything else takes the loop.
        #[cfg(not(loom))]
        if let Backend::Kernel(fd) = &self.backend {
            if !self.flags.contains(SetupFlags::SQPOLL) && want <= self.mem.cq.entries {
                let fd = rustix::fd::AsFd::as_fd(fd);
                let to_submit = self.sq_unconsumed();
                let waiting = want > self.cq_ready();
                let flags = if waiting || self.needs_getevents() {
                    abi::IORING_ENTER_GETEVENTS
                } else {
                    0
                };
                if to_submit == 0 && flags == 0 {
                    return Ok(0);
                }
                let min = if waiting { want } else { 0 };
                // SAFETY: as in `enter`.
                match unsafe { crate::sys::enter(fd, to_submit, min, flags) } {
                    Ok(n) if want <= self.cq_ready() => return Ok(n),
                    Ok(n) => return self.enter_loop_from(want, None, n),
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(Self::enter_error(e)),
                }
            }
        }
        self.enter_loop(want, None)
    }

    #[cold]
    #[cfg(not(loom))]
    fn enter_error(e: Errno) -> Error {
        Error::Os(e)
    }

    /// Like [`Ring::submit_and_wait`] but gives up after `timeout_ns`; returns normally either
    /// way (look at the CQ). Uses `IORING_ENTER_EXT_ARG` when the kernel has it, otherwise an
    /// internal TIMEOUT SQE (whose CQE is never shown). An `EINTR` restarts the wait with the full
    /// timeout.
    pub fn submit_and_wait_timeout(&mut self, want: u32, timeout_ns: u64) -> Result<u32> {
        if want > self.cq_entries() {
            return Err(Error::InvalidArgument("want exceeds the CQ size"));
        }
        if self.features.contains(Features::EXT_ARG) && !self.no_ext_arg {
            self.enter_loop(want, Some(Timespec::from_nanos(timeout_ns)))
        } else {
            self.wait_with_timer_sqe(want, timeout_ns)
        }
    }

    /// Submits and waits like [`Ring::submit_and_wait`], but when the kernel answers `EBUSY` or
    /// `EAGAIN` (completions must be reaped first) hands every ready CQE to `on_cqe` and retries.
    /// Nothing published is ever dropped or submitted twice. CQEs handed to `on_cqe` count toward
    /// `want` (the retry waits only for the rest, so it never waits for completions that will not
    /// come).
    pub fn submit_reaping(&mut self, mut want: u32, mut on_cqe: impl FnMut(Cqe)) -> Result<u32> {
        let mut rounds = 0u32;
        loop {
            match self.submit_and_wait(want) {
                Err(Error::Os(Errno::BUSY | Errno::AGAIN)) => {
                    let reaped = self.cq().map(&mut on_cqe).count();
                    want = want.saturating_sub(u32::try_from(reaped).unwrap_or(u32::MAX));
                    rounds += 1;
                    if reaped == 0 && rounds > 64 {
                        return Err(Error::Os(Errno::BUSY));
                    }
                }
                other => return other,
            }
        }
    }

    fn enter_loop(&mut self, want: u32, ts: Option<Timespec>) -> Result<u32> {
        self.enter_loop_from(want, ts, 0)
    }

    #[inline(never)]
    fn enter_loop_from(&mut self, want: u32, ts: Option<Timespec>, submitted: u32) -> Result<u32> {
        if want > self.cq_entries() {
            // The CQ can never hold that many: the wait could not end.
            return Err(Error::InvalidArgument("want exceeds the CQ size"));
        }
        let sqpoll = self.flags.contains(SetupFlags::SQPOLL);
        let mut submitted = submitted;
        loop {
            let to_submit = self.sq_unconsumed();
            let mut flags = 0;
            let mut need = to_submit > 0 && !sqpoll;
            if sqpoll && to_submit > 0 && self.sq().need_wakeup() {
                flags |= abi::IORING_ENTER_SQ_WAKEUP;
                need = true;
            }
            let waiting = want > self.cq_ready();
            if waiting || self.needs_getevents() {
                flags |= abi::IORING_ENTER_GETEVENTS;
                need = true;
            }
            if !need {
                return Ok(submitted);
            }
            let min = if waiting { want } else { 0 };
            let tsr = if waiting { ts.as_ref() } else { None };
            match self.enter(to_submit, min, flags, tsr) {
                Ok(n) => {
                    submitted = submitted.saturating_add(if sqpoll { to_submit } else { n });
                    // A wait can end early with the submitted count (a signal, or a short submit);
                    // keep waiting unless a timeout bounds it.
                    if ts.is_none() && want > self.cq_ready() {
                        continue;
                    }
                    return Ok(submitted);
                }
                Err(Errno::INTR) => continue,
                Err(Errno::TIME) if tsr.is_some() => return Ok(submitted),
                Err(e) => return Err(Error::Os(e)),
            }
        }
    }

    /// Timed wait without EXT_ARG: a pure-timer TIMEOUT SQE with the reserved user_data, then
    /// waits for either `want` user CQEs or that timer's expiry. A timer still pending is removed,
    /// and the call returns only once the removal and the timer's own CQE were posted, so no
    /// internal request outlives the call and a later wait cannot mistake an old timer's CQE for
    /// its own (it compares against the expired-timer count it found on entry).
    fn wait_with_timer_sqe(&mut self, want: u32, timeout_ns: u64) -> Result<u32> {
        let mut submitted = 0;
        let start = self.peek();
        if want <= start.user {
            return self.submit();
        }
        // Internal SQEs pushed by this call: not counted in the result.
        let mut internal = 1;
        *self.timer = Timespec::from_nanos(timeout_ns);
        let timer = crate::op::timeout(&self.timer, 0, 0).user_data(RESERVED_USER_DATA);
        // SAFETY: the timespec lives in a Box owned by the ring, so it outlives the SQE (the
        // kernel copies it when it prepares the TIMEOUT).
        if unsafe { self.sq().push(&timer) }.is_err() {
            submitted += self.submit()?;
            // SAFETY: as above.
            unsafe { self.sq().push(&timer) }.map_err(|_| Error::Os(Errno::BUSY))?;
        }
        let fired = loop {
            if !self.wait_for_one_more(&mut submitted)? {
                break false; // the CQ is full: the caller must reap
            }
            let now = self.peek();
            if now.expired > start.expired {
                break true;
            }
            if now.user >= want {
                break false;
            }
        };
        if !fired {
            let before = self.peek().internal;
            let remove =
                crate::op::timeout_remove(RESERVED_USER_DATA).user_data(RESERVED_USER_DATA);
            // SAFETY: TIMEOUT_REMOVE carries no pointer.
            if unsafe { self.sq().push(&remove) }.is_ok() {
                internal += 1;
                // Two internal CQEs follow: the removal's and the timer's (-ECANCELED, or -ETIME
                // if it expired meanwhile).
                while self.peek().internal < before + 2 {
                    if !self.wait_for_one_more(&mut submitted)? {
                        break;
                    }
                }
            }
        }
        Ok(submitted.saturating_sub(internal))
    }

    /// Submits and blocks until the CQ holds one more CQE than now. `false` when the CQ is full
    /// (nothing more can arrive until the caller reaps).
    fn wait_for_one_more(&mut self, submitted: &mut u32) -> Result<bool> {
        let total = self.cq_ready();
        if total >= self.cq_entries() {
            return Ok(false);
        }
        *submitted += self.enter_loop(total + 1, None)?;
        Ok(true)
    }

    fn peek(&mut self) -> cq::PeekCounts {
        Cq::new(&self.mem.cq).peek_counts()
    }
}
