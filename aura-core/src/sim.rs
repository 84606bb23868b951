//! A simulated kernel: the kernel's side of a ring over heap memory, with no syscalls.
//!
//! It consumes SQEs and posts CQEs through the same shared-memory protocol the real kernel uses
//! (Acquire on the application's indexes, Release on its own), so the ring code under test is the
//! production code. Completions can come in order, reordered, delayed, or overflowing a small CQ
//! (parked on an overflow list flushed only by an enter with GETEVENTS, as with
//! `IORING_FEAT_NODROP`), and enters can fail with injected `EINTR` / `EBUSY`. This lets unit
//! tests, Miri, loom models and fuzz targets run the ring without a kernel.
//!
//! What it does not model: it never touches the memory an SQE points at (reads and writes
//! "succeed" with `res = len`), links (`IO_LINK`) do not order or cancel anything, and time is a
//! counter of simulated steps.

pub mod device;
pub mod scenario;

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::error::Errno;
use crate::ring::mem::KernelSide;
use crate::ring::Features;
use crate::sys::abi::{self, opcode, Cqe, Sqe};

/// How the simulated kernel behaves.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// CQ size (0: twice the SQ size, as the kernel does).
    pub cq_entries: u32,
    /// Use an SQ indirection array (the pre-`NO_SQARRAY` layout).
    pub sq_array: bool,
    /// Complete requests in a random order instead of submission order.
    pub reorder: bool,
    /// Each request completes 0..=`max_delay` steps after it was consumed.
    pub max_delay: u32,
    /// Seed of the simulation's random choices.
    pub seed: u64,
    /// How many CQEs the overflow list holds before further ones are lost (`u32::MAX`: never
    /// lose, like `IORING_FEAT_NODROP`).
    pub overflow_limit: u32,
    /// Refuse submissions with `EBUSY` while the overflow list is not empty (older kernels).
    pub busy_on_overflow: bool,
    /// The next this-many waiting enters fail with `EINTR`.
    pub inject_eintr: u32,
    /// The next this-many enters fail with `EBUSY`.
    pub inject_ebusy: u32,
    /// Pretend the kernel lacks `IORING_FEAT_EXT_ARG` (timed waits use a TIMEOUT SQE).
    pub no_ext_arg: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            cq_entries: 0,
            sq_array: false,
            reorder: false,
            max_delay: 0,
            seed: 0x5eed,
            overflow_limit: u32::MAX,
            busy_on_overflow: false,
            inject_eintr: 0,
            inject_ebusy: 0,
            no_ext_arg: false,
        }
    }
}

/// The simulated kernel as the ring's enter path sees it.
pub(crate) trait SimEnter: Send + core::fmt::Debug {
    /// Plays one `io_uring_enter`.
    fn enter(&mut self, to_submit: u32, min: u32, flags: u32, timed: bool) -> Result<u32, Errno>;
}

impl SimEnter for SimKernel {
    fn enter(&mut self, to_submit: u32, min: u32, flags: u32, timed: bool) -> Result<u32, Errno> {
        SimKernel::enter(self, to_submit, min, flags, timed)
    }
}

/// Counters of what the simulated kernel did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Enter calls.
    pub enters: u64,
    /// SQEs consumed (valid or not).
    pub consumed: u64,
    /// SQEs dropped for a bad SQ-array index.
    pub dropped_sqes: u64,
    /// CQEs posted into the CQ.
    pub posted: u64,
    /// CQEs that went to the overflow list.
    pub overflowed: u64,
    /// CQEs lost because the overflow list was full.
    pub lost: u64,
}

#[derive(Copy, Clone, Debug)]
struct InFlight {
    ready_at: u64,
    seq: u64,
    opcode: u8,
    skip_success: bool,
    cqe: Cqe,
}

/// The simulated kernel of one ring.
#[derive(Debug)]
pub struct SimKernel {
    k: KernelSide,
    cfg: SimConfig,
    rng: u64,
    now: u64,
    seq: u64,
    inflight: Vec<InFlight>,
    overflow: VecDeque<Cqe>,
    stats: SimStats,
}

/// Negated errno as a CQE result.
fn neg(e: Errno) -> i32 {
    -e.raw_os_error()
}

impl SimKernel {
    /// Features the simulated kernel reports.
    pub const FEATURES: Features = Features::SINGLE_MMAP
        .union(Features::NODROP)
        .union(Features::SUBMIT_STABLE)
        .union(Features::EXT_ARG)
        .union(Features::CQE_SKIP);

    pub(crate) fn new(k: KernelSide, cfg: SimConfig) -> Self {
        SimKernel {
            k,
            cfg,
            rng: cfg.seed | 1,
            now: 0,
            seq: 0,
            inflight: Vec::new(),
            overflow: VecDeque::new(),
            stats: SimStats::default(),
        }
    }

    /// Opcodes the simulated kernel accepts (what its probe reports).
    pub fn supports(op: u8) -> bool {
        matches!(
            op,
            opcode::NOP
                | opcode::READV
                | opcode::WRITEV
                | opcode::FSYNC
                | opcode::READ_FIXED
                | opcode::WRITE_FIXED
                | opcode::SYNC_FILE_RANGE
                | opcode::TIMEOUT
                | opcode::TIMEOUT_REMOVE
                | opcode::ASYNC_CANCEL
                | opcode::FALLOCATE
                | opcode::READ
                | opcode::WRITE
                | opcode::FTRUNCATE
        )
    }

    /// What happened so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Requests consumed whose CQE has not been posted or parked yet.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// CQEs parked on the overflow list.
    pub fn overflow_len(&self) -> usize {
        self.overflow.len()
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn cq_ready(&self) -> u32 {
        self.k.cq_entries() - self.k.cq_space()
    }

    /// Plays one `io_uring_enter`.
    pub(crate) fn enter(
        &mut self,
        to_submit: u32,
        min: u32,
        flags: u32,
        timed: bool,
    ) -> Result<u32, Errno> {
        self.stats.enters += 1;
        let getevents = flags & abi::IORING_ENTER_GETEVENTS != 0;
        if self.cfg.inject_eintr > 0 && getevents && min > 0 {
            self.cfg.inject_eintr -= 1;
            return Err(Errno::INTR);
        }
        if self.cfg.inject_ebusy > 0 {
            self.cfg.inject_ebusy -= 1;
            return Err(Errno::BUSY);
        }
        if getevents {
            self.flush_overflow();
        }
        if self.cfg.busy_on_overflow && !self.overflow.is_empty() && to_submit > 0 {
            return Err(Errno::BUSY);
        }
        let consumed = self.consume(to_submit);
        self.advance();
        if getevents {
            self.flush_overflow();
            while self.cq_ready() < min {
                if self.inflight.is_empty() && self.overflow.is_empty() {
                    // Nothing can ever complete: a real kernel would sleep until the timeout (or
                    // forever); the simulation answers at once instead of hanging.
                    return match (timed, consumed) {
                        (true, 0) => Err(Errno::TIME),
                        (true, n) => Ok(n),
                        (false, _) => Err(Errno::DEADLK),
                    };
                }
                if self.cq_ready() == self.k.cq_entries() {
                    break; // the CQ is full: the waiter must reap first
                }
                self.advance();
                self.flush_overflow();
            }
        }
        Ok(consumed)
    }

    /// One step of a kernel thread polling the SQ (detached mode): consumes every published SQE,
    /// advances time by one step and posts what is ready. Returns the SQEs consumed.
    pub fn step(&mut self) -> u32 {
        let n = self.consume(u32::MAX);
        self.flush_overflow();
        self.advance();
        self.flush_overflow();
        n
    }

    fn consume(&mut self, max: u32) -> u32 {
        let mut n = 0;
        while n < max {
            let Some(got) = self.k.pop_sqe() else { break };
            n += 1;
            self.stats.consumed += 1;
            match got {
                Ok(sqe) => self.execute(&sqe),
                Err(()) => self.stats.dropped_sqes += 1,
            }
        }
        n
    }

    fn execute(&mut self, sqe: &Sqe) {
        const KNOWN_FLAGS: u8 = abi::sqe_flag::FIXED_FILE
            | abi::sqe_flag::IO_DRAIN
            | abi::sqe_flag::IO_LINK
            | abi::sqe_flag::IO_HARDLINK
            | abi::sqe_flag::ASYNC
            | abi::sqe_flag::BUFFER_SELECT
            | abi::sqe_flag::CQE_SKIP_SUCCESS;
        let res = if sqe.flags & !KNOWN_FLAGS != 0 || !Self::supports(sqe.opcode) {
            neg(Errno::INVAL)
        } else {
            match sqe.opcode {
                opcode::READ | opcode::WRITE | opcode::READ_FIXED | opcode::WRITE_FIXED => {
                    sqe.len.min(i32::MAX as u32) as i32
                }
                opcode::READV | opcode::WRITEV => 0,
                opcode::TIMEOUT => neg(Errno::TIME),
                opcode::ASYNC_CANCEL => self.cancel(sqe.addr, None),
                opcode::TIMEOUT_REMOVE => self.cancel(sqe.addr, Some(opcode::TIMEOUT)),
                _ => 0,
            }
        };
        let delay = if self.cfg.max_delay == 0 {
            0
        } else {
            self.next_rand() % (u64::from(self.cfg.max_delay) + 1)
        };
        // A pure timer (TIMEOUT with count 0) fires one step later at the earliest.
        let delay = if sqe.opcode == opcode::TIMEOUT {
            delay.max(1)
        } else {
            delay
        };
        self.seq += 1;
        self.inflight.push(InFlight {
            ready_at: self.now + delay,
            seq: self.seq,
            opcode: sqe.opcode,
            skip_success: sqe.flags & abi::sqe_flag::CQE_SKIP_SUCCESS != 0,
            cqe: Cqe {
                user_data: sqe.user_data,
                res,
                flags: 0,
            },
        });
    }

    /// Cancels the first in-flight request with `user_data == target` (of opcode `only`, if
    /// given): its CQE is posted now with `-ECANCELED`. Returns the cancel's own result.
    fn cancel(&mut self, target: u64, only: Option<u8>) -> i32 {
        let found = self
            .inflight
            .iter()
            .position(|r| r.cqe.user_data == target && only.is_none_or(|op| op == r.opcode));
        match found {
            Some(i) => {
                let mut r = self.inflight.remove(i);
                r.cqe.res = neg(Errno::CANCELED);
                self.post(r.cqe);
                0
            }
            None => neg(Errno::NOENT),
        }
    }

    fn advance(&mut self) {
        self.now += 1;
        let now = self.now;
        let mut ready: Vec<InFlight> = Vec::new();
        self.inflight.retain(|r| {
            if r.ready_at <= now {
                ready.push(*r);
                false
            } else {
                true
            }
        });
        if self.cfg.reorder {
            for i in (1..ready.len()).rev() {
                let j = (self.next_rand() % (i as u64 + 1)) as usize;
                ready.swap(i, j);
            }
        } else {
            ready.sort_by_key(|r| r.seq);
        }
        for r in ready {
            if !(r.skip_success && r.cqe.res >= 0) {
                self.post(r.cqe);
            }
        }
    }

    fn post(&mut self, cqe: Cqe) {
        if self.overflow.is_empty() && self.k.push_cqe(cqe) {
            self.stats.posted += 1;
        } else if (self.overflow.len() as u64) < u64::from(self.cfg.overflow_limit) {
            self.overflow.push_back(cqe);
            self.stats.overflowed += 1;
            self.k.set_sq_flags(abi::IORING_SQ_CQ_OVERFLOW, true);
        } else {
            self.stats.lost += 1;
            self.k.add_overflow(1);
        }
    }

    fn flush_overflow(&mut self) {
        while let Some(cqe) = self.overflow.front().copied() {
            if !self.k.push_cqe(cqe) {
                break;
            }
            self.overflow.pop_front();
            self.stats.posted += 1;
        }
        if self.overflow.is_empty() {
            self.k.set_sq_flags(abi::IORING_SQ_CQ_OVERFLOW, false);
        }
    }

    /// Posts an arbitrary CQE, as a buggy or hostile kernel might (garbage or duplicate
    /// `user_data`, extreme `res` and `flags`): it goes through the same CQ / overflow path as
    /// every other completion. For fuzzing and fault-injection tests.
    pub fn inject_cqe(&mut self, cqe: Cqe) {
        self.post(cqe);
    }

    /// Moves parked overflow CQEs into the CQ as far as space allows (what an enter with
    /// GETEVENTS does).
    pub fn flush(&mut self) {
        self.flush_overflow();
    }

    /// SQ size of the simulated ring.
    pub fn sq_entries(&self) -> u32 {
        self.k.sq_entries()
    }
}
