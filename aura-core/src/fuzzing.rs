//! Entry points of aura's fuzz targets: each turns arbitrary bytes into calls on aura-core and
//! asserts its invariants.
//!
//! The cargo-fuzz workspace in `fuzz/` calls these from libFuzzer, and `tests/fuzz_replay.rs`
//! replays the committed corpus through them on stable. No input makes them panic except through a
//! failed `assert!`, and a failed assert is a finding: a bug in aura-core, or in an invariant
//! stated here.
//!
//! - [`cq_stream`]: a little program of pushes, submits, waits, reaps, kernel steps and injected
//!   (garbage, duplicate, reserved, extreme) CQEs against a simulated kernel with fuzzed settings,
//!   checked against a model built on [`Slab`]: every real request completes exactly once, stale
//!   and injected CQEs are rejected, reserved CQEs never surface, nothing is lost unless the
//!   overflow list is bounded, and what is lost is counted.
//! - [`sqe_build`]: every builder of [`crate::op`] with fuzzed arguments, compared field by field
//!   with the SQE it must produce, then run through a simulated ring (exactly one CQE, or none when
//!   `CQE_SKIP_SUCCESS` applies); plus [`Probe::decode`] of fuzzed probe replies.
//! - [`aimd`]: the AIMD controller ([`Aimd`]) with fuzzed (possibly invalid) options, fed
//!   completion bursts, submits, ticks whose clock jumps, stalls or runs backwards, and ticks of a
//!   little device model; checked against the documented option rules, the evaluation window,
//!   the bounds, the phase graph and what each phase may do to the limit.
//!
//! The simulated kernel never dereferences the pointers an SQE carries, so pointers here are
//! arbitrary integers.

use alloc::vec::Vec;
use core::ptr;

use crate::aimd::{
    Aimd, AimdOptions, AimdStats, Decision, Phase, CLOSED_LOOP_MIN_PENDING, DEFAULT_MIN_IN_FLIGHT,
    ENGAGE_PENDING_DELTA, LOW_IOPS_MIN_SAMPLES, MAX_BATCH_THRESHOLD, MAX_SAMPLE_WINDOW_NS,
    MIN_BATCH, SAMPLE_ALL_BELOW_IOPS, SAMPLE_EVERY_FAST, TICK_NS,
};
use crate::error::{Errno, Error};
use crate::op::{self, SqeFlags, Target};
#[cfg(not(loom))]
use crate::register::Probe;
use crate::ring::Ring;
use crate::sim::{SimConfig, SimKernel};
use crate::slab::{Slab, Token, RESERVED_USER_DATA};
use crate::sys::abi::{opcode, sqe_flag, Cqe, IoVec, Sqe, Timespec};
#[cfg(not(loom))]
use crate::sys::abi::{ProbeHeader, ProbeOp, IO_URING_OP_SUPPORTED};

/// A cursor over the fuzzer's bytes; reads past the end yield zeros, so every input is a program.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0; N];
        for x in &mut b {
            *x = self.u8();
        }
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }

    /// A `u32`, often an edge value (one selector byte, then four bytes only when needed).
    fn u32_edgy(&mut self) -> u32 {
        match self.u8() % 8 {
            0 => 0,
            1 => 1,
            2 => u32::MAX,
            3 => u32::MAX - 1,
            4 => i32::MAX as u32,
            5 => 1 << 31,
            _ => self.u32(),
        }
    }

    /// A `u64`, often an edge value.
    fn u64_edgy(&mut self) -> u64 {
        match self.u8() % 10 {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => u64::MAX - 1,
            4 => u64::from(u32::MAX),
            5 => 1 << 32,
            6 => 1 << 63,
            7 => i64::MAX as u64,
            _ => self.u64(),
        }
    }

    /// An `i32`, often an edge value.
    fn i32_edgy(&mut self) -> i32 {
        match self.u8() % 8 {
            0 => 0,
            1 => -1,
            2 => i32::MIN,
            3 => i32::MAX,
            4 => -100,
            _ => i32::from_le_bytes(self.bytes()),
        }
    }
}

/// A pointer made from an integer; never dereferenced (only the simulated kernel sees it).
fn fake_ptr(addr: u64) -> *mut u8 {
    ptr::without_provenance_mut(addr as usize)
}

/// The `res` of a CQE for `e` (negated errno).
fn neg(e: Errno) -> i32 {
    -e.raw_os_error()
}

// ------------------------------------------------------------------------------------------------
// cq_stream
// ------------------------------------------------------------------------------------------------

/// How many operations one `cq_stream` input runs at most (keeps every execution short).
const MAX_OPS: usize = 2048;

/// user_data of the `CQE_SKIP_SUCCESS` NOPs, which must never post a CQE. Its index half
/// (`0xffff_fffe`) lies beyond every slab used here, so it never names a request.
const SKIP_USER_DATA: u64 = 0x5c1b_0000_ffff_fffe;

/// The timespec of the TIMEOUT SQEs (static, so the pointer outlives every SQE).
static TIMER: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 1_000,
};

/// Kinds of real requests; a slab value packs the kind (high half) and the `res` a successful
/// completion carries (low half).
mod kind {
    pub(super) const NOP: u64 = 0;
    pub(super) const READ: u64 = 1;
    pub(super) const TIMEOUT: u64 = 2;
    /// ASYNC_CANCEL and TIMEOUT_REMOVE.
    pub(super) const CANCEL: u64 = 3;
}

fn pack(kind: u64, res: i32) -> u64 {
    (kind << 32) | u64::from(res as u32)
}

/// What the test knows about the requests, and what it saw.
struct Model {
    /// The live real requests, keyed by their user_data.
    slab: Slab<u64>,
    /// Per slot index, the highest generation a token was issued with (0: never used).
    max_gen: Vec<u32>,
    /// Real requests pushed: each must complete exactly once.
    issued: u64,
    /// Real requests whose CQE was reaped.
    completed: u64,
    /// Non-reserved CQEs injected (all stale or garbage).
    injected: u64,
    /// CQEs reaped that the slab rejected as stale: injected ones.
    injected_reaped: u64,
    /// At most how many CQEs with the reserved user_data were posted (injected, or the ring's own
    /// timer SQEs): they may be lost, but never surface.
    reserved_posts: u64,
    /// user_data of some completed requests, for injecting duplicates.
    done: Vec<u64>,
}

impl Model {
    fn new(cap: u32) -> Self {
        Model {
            slab: Slab::with_capacity(cap),
            max_gen: alloc::vec![0; cap as usize],
            issued: 0,
            completed: 0,
            injected: 0,
            injected_reaped: 0,
            reserved_posts: 0,
            done: Vec::new(),
        }
    }

    /// Real requests whose CQE has not been reaped (pushed, in flight, parked, ready, or lost).
    fn outstanding(&self) -> u64 {
        self.issued - self.completed
    }

    fn check(&self) {
        assert_eq!(
            u64::from(self.slab.len()),
            self.outstanding(),
            "slab occupancy disagrees with requests issued minus completed"
        );
        assert!(self.injected_reaped <= self.injected);
    }

    /// Inserts a request of `kind` into the slab and pushes the SQE `build` makes for its
    /// user_data. A full slab or SQ skips it.
    fn push(&mut self, ring: &mut Ring, kind: u64, ok_res: i32, build: impl FnOnce(u64) -> Sqe) {
        let Ok(token) = self.slab.insert(pack(kind, ok_res)) else {
            return;
        };
        self.note_issued(token);
        let sqe = build(token.user_data());
        // SAFETY: a simulated kernel runs this ring and never dereferences an SQE's pointers
        // (see `crate::sim`); the only pointer pushed here is `TIMER`, a static.
        if unsafe { ring.sq().push(&sqe) }.is_err() {
            assert!(self.slab.remove(token.user_data()).is_ok());
            return;
        }
        self.issued += 1;
    }

    fn note_issued(&mut self, token: Token) {
        let ud = token.user_data();
        assert!(ud != RESERVED_USER_DATA && ud != 0, "slab issued {ud:#x}");
        let idx = token.index() as usize;
        assert!(
            idx < self.max_gen.len(),
            "slab issued index beyond capacity"
        );
        assert!(
            token.generation() > self.max_gen[idx],
            "slab reissued generation {} of slot {idx}",
            token.generation()
        );
        self.max_gen[idx] = token.generation();
    }

    /// A user_data derived from `ud` that no request can have, now or later: out of range,
    /// generation 0, or a generation the slot has already retired.
    fn never_live(&self, ud: u64) -> u64 {
        if ud == SKIP_USER_DATA {
            return ud ^ 1;
        }
        let t = Token::from_user_data(ud);
        let idx = t.index();
        if idx >= self.slab.capacity() || t.generation() == 0 {
            return ud;
        }
        let max = self.max_gen[idx as usize];
        if t.generation() < max || (t.generation() == max && self.slab.get(ud).is_err()) {
            ud
        } else {
            ud & u64::from(u32::MAX) // generation 0 is never issued
        }
    }

    /// Picks the target of an ASYNC_CANCEL / TIMEOUT_REMOVE: a live request, a completed one, or 0.
    fn cancel_target(&self, input: &mut Input<'_>) -> u64 {
        let sel = input.u8();
        match sel % 4 {
            0 | 1 if !self.slab.is_empty() => {
                let k = usize::from(sel / 4) % self.slab.len() as usize;
                self.slab.iter().nth(k).map_or(0, |(t, _)| t.user_data())
            }
            2 if !self.done.is_empty() => self.done[usize::from(sel / 4) % self.done.len()],
            _ => 0,
        }
    }

    /// Handles one CQE reaped from `cq()`.
    fn reap(&mut self, cqe: Cqe) {
        assert_ne!(
            cqe.user_data, RESERVED_USER_DATA,
            "a CQE with the reserved user_data surfaced from cq()"
        );
        assert_ne!(
            cqe.user_data, SKIP_USER_DATA,
            "a CQE_SKIP_SUCCESS request posted a CQE: {cqe:?}"
        );
        match self.slab.remove(cqe.user_data) {
            Ok(value) => {
                check_real(value, &cqe);
                self.completed += 1;
                if self.done.len() < 64 {
                    self.done.push(cqe.user_data);
                } else {
                    let i = (self.completed % 64) as usize;
                    self.done[i] = cqe.user_data;
                }
            }
            Err(_) => {
                self.injected_reaped += 1;
                assert!(
                    self.injected_reaped <= self.injected,
                    "a CQE no request or injection accounts for: {cqe:?}"
                );
            }
        }
        self.check();
    }

    fn reap_all(&mut self, ring: &mut Ring, max: usize) {
        for cqe in ring.cq().take(max) {
            self.reap(cqe);
        }
    }

    /// The invariants at the end of a run; `lost` is `cq().overflow()`.
    fn finish(&self, lossless: bool, lost: u64) {
        self.check();
        let missing = self.outstanding() + (self.injected - self.injected_reaped);
        if lossless {
            assert_eq!(lost, 0, "CQEs lost although the overflow list is unbounded");
            assert_eq!(
                self.completed, self.issued,
                "real requests never completed although nothing may be lost"
            );
            assert_eq!(
                self.injected_reaped, self.injected,
                "injected CQEs vanished"
            );
        } else {
            assert!(
                missing <= lost && lost <= missing + self.reserved_posts,
                "{missing} CQEs missing, {lost} counted as lost (reserved posts <= {})",
                self.reserved_posts
            );
        }
    }
}

/// Checks a real request's CQE against its slab value.
fn check_real(value: u64, cqe: &Cqe) {
    let kind = value >> 32;
    let ok = value as u32 as i32;
    assert_eq!(cqe.flags, 0, "real CQE with flags: {cqe:?}");
    let canceled = neg(Errno::CANCELED);
    let fine = match kind {
        kind::CANCEL => cqe.res == 0 || cqe.res == neg(Errno::NOENT) || cqe.res == canceled,
        _ => cqe.res == ok || cqe.res == canceled,
    };
    assert!(
        fine,
        "CQE {cqe:?} does not fit request kind {kind} (ok res {ok})"
    );
}

/// Whether `r` is an error a `submit*` call may legitimately return here.
fn acceptable(r: Result<u32, Error>, lossless: bool) -> bool {
    match r {
        Ok(_) => true,
        Err(Error::Os(e)) if e == Errno::BUSY => true,
        // Only when CQEs can be lost can a wait run out of requests to wait for.
        Err(Error::Os(e)) if e == Errno::DEADLK => !lossless,
        Err(_) => false,
    }
}

/// The decoded configuration header of a `cq_stream` input.
struct StreamConfig {
    detached: bool,
    sq_entries: u32,
    slab_cap: u32,
    sim: SimConfig,
}

impl StreamConfig {
    fn decode(input: &mut Input<'_>) -> Self {
        let mode = input.u8();
        let sizes = input.u8();
        let extra = input.u8();
        let seed = input.u16();
        let lossy = mode & 0x10 != 0;
        StreamConfig {
            detached: mode & 1 != 0,
            sq_entries: u32::from(extra & 7) + 1,
            slab_cap: if extra & 0x80 != 0 { 3 } else { 64 },
            sim: SimConfig {
                cq_entries: u32::from(sizes & 15) + 1,
                sq_array: mode & 2 != 0,
                reorder: mode & 4 != 0,
                busy_on_overflow: mode & 8 != 0,
                overflow_limit: if lossy {
                    u32::from(sizes >> 4)
                } else {
                    u32::MAX
                },
                no_ext_arg: mode & 0x20 != 0,
                max_delay: u32::from(mode >> 6),
                seed: u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed,
                inject_eintr: u32::from((extra >> 3) & 3),
                inject_ebusy: u32::from((extra >> 5) & 3),
            },
        }
    }
}

/// Runs a fuzzed program of ring operations against a simulated kernel and checks completion
/// accounting.
///
/// Layout: five configuration bytes (mode flags and max delay; CQ size and overflow limit; SQ
/// size, injected `EINTR`/`EBUSY` and slab size; a 16-bit seed), then one opcode byte per
/// operation followed by its arguments. Bit 0 of the first byte selects a detached kernel that
/// the program steps itself and can inject CQEs into; otherwise the kernel runs inside `submit*`.
#[doc(hidden)]
pub fn cq_stream(data: &[u8]) {
    let mut input = Input::new(data);
    let cfg = StreamConfig::decode(&mut input);
    let lossless = cfg.sim.overflow_limit == u32::MAX;
    let mut model = Model::new(cfg.slab_cap);
    if cfg.detached {
        let (mut ring, mut kernel) = Ring::new_sim_detached(cfg.sq_entries, cfg.sim);
        run_detached(&mut input, &mut model, &mut ring, &mut kernel, lossless);
    } else {
        let mut ring = Ring::new_sim(cfg.sq_entries, cfg.sim);
        run_attached(&mut input, &mut model, &mut ring, lossless);
    }
}

/// The pushes both modes share; returns false when `op` is not a push.
fn push_op(op: u8, input: &mut Input<'_>, model: &mut Model, ring: &mut Ring) -> bool {
    match op {
        0 => model.push(ring, kind::NOP, 0, |ud| op::nop().user_data(ud)),
        1 => {
            let len = input.u32_edgy();
            let ok = len.min(i32::MAX as u32) as i32;
            let off = u64::from(input.u8());
            model.push(ring, kind::READ, ok, |ud| {
                op::read(3, ptr::null_mut(), len, off).user_data(ud)
            });
        }
        2 => {
            let count = u32::from(input.u8() & 3);
            model.push(ring, kind::TIMEOUT, neg(Errno::TIME), |ud| {
                op::timeout(&TIMER, count, 0).user_data(ud)
            });
        }
        3 => {
            let target = model.cancel_target(input);
            model.push(ring, kind::CANCEL, 0, |ud| {
                op::async_cancel(target).user_data(ud)
            });
        }
        4 => {
            let target = model.cancel_target(input);
            model.push(ring, kind::CANCEL, 0, |ud| {
                op::timeout_remove(target).user_data(ud)
            });
        }
        5 => {
            // Succeeds, so never posts a CQE (nobody cancels SKIP_USER_DATA).
            let sqe = op::nop()
                .user_data(SKIP_USER_DATA)
                .flags(SqeFlags::CQE_SKIP_SUCCESS);
            // SAFETY: a NOP carries no pointer.
            let _ = unsafe { ring.sq().push(&sqe) };
        }
        _ => return false,
    }
    true
}

/// Number of distinct operation bytes (the opcode byte is taken modulo this).
const STREAM_OPS: u8 = 13;

fn run_attached(input: &mut Input<'_>, model: &mut Model, ring: &mut Ring, lossless: bool) {
    let cq_entries = u64::from(ring.cq_entries());
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        let op = input.u8() % STREAM_OPS;
        if push_op(op, input, model, ring) {
            continue;
        }
        // A wait for more CQEs than will come (or than the CQ holds) blocks forever, on a real
        // kernel too: waits ask for at most the outstanding requests, and at most a full CQ.
        let max_want = model.outstanding().min(cq_entries);
        match op {
            6 | 7 => {
                let r = ring.submit();
                assert!(acceptable(r, lossless), "submit: {r:?}");
            }
            8 => {
                let want = (u64::from(input.u8()) % (max_want + 1)) as u32;
                let r = ring.submit_and_wait(want);
                assert!(acceptable(r, lossless), "submit_and_wait({want}): {r:?}");
                if r.is_ok() {
                    assert!(
                        ring.cq().len() >= want,
                        "submit_and_wait({want}) returned early"
                    );
                }
            }
            9 => {
                let want = u32::from(input.u8());
                let ns = u64::from(input.u8()) * 1000;
                // Without EXT_ARG: one timer SQE and maybe its removal, 2 reserved CQEs at most.
                model.reserved_posts += 2;
                let r = ring.submit_and_wait_timeout(want, ns);
                if want > ring.cq_entries() {
                    // A wait the CQ could never satisfy is refused, never attempted.
                    assert_eq!(
                        r,
                        Err(Error::InvalidArgument("want exceeds the CQ size")),
                        "submit_and_wait_timeout({want})"
                    );
                    model.reserved_posts -= 2;
                } else {
                    assert!(
                        acceptable(r, lossless),
                        "submit_and_wait_timeout({want}): {r:?}"
                    );
                }
            }
            10 => {
                let want = (u64::from(input.u8()) % (max_want + 1)) as u32;
                let r = ring.submit_reaping(want, |cqe| model.reap(cqe));
                assert!(acceptable(r, lossless), "submit_reaping({want}): {r:?}");
            }
            _ => {
                let max = usize::from(input.u8());
                model.reap_all(ring, if max == 0 { usize::MAX } else { max });
            }
        }
        model.check();
    }
    // Drain: reap and wait until the kernel holds nothing (it answers EDEADLK then).
    let mut drained = false;
    for _ in 0..4 * MAX_OPS + 64 {
        model.reap_all(ring, usize::MAX);
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(Error::Os(e)) if e == Errno::DEADLK => {
                drained = true;
                break;
            }
            r => assert!(acceptable(r, lossless), "drain: {r:?}"),
        }
    }
    assert!(drained, "the ring did not drain");
    assert_eq!(ring.sq_unconsumed(), 0);
    let lost = u64::from(ring.cq().overflow());
    model.finish(lossless, lost);
}

fn run_detached(
    input: &mut Input<'_>,
    model: &mut Model,
    ring: &mut Ring,
    kernel: &mut SimKernel,
    lossless: bool,
) {
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        let op = input.u8() % STREAM_OPS;
        if push_op(op, input, model, ring) {
            continue;
        }
        match op {
            6 => {
                // Only publishes: the kernel polls the SQ.
                let r = ring.submit();
                assert!(r.is_ok(), "detached submit: {r:?}");
            }
            7 => {
                // Nobody else runs the kernel: wait only for CQEs already there.
                let ready = ring.cq().len();
                let want = u32::from(input.u8()) % (ready + 1);
                let r = ring.submit_and_wait(want);
                assert!(r.is_ok(), "detached submit_and_wait({want}): {r:?}");
            }
            8 => {
                kernel.step();
            }
            9 => {
                for _ in 0..=(input.u8() & 7) {
                    kernel.step();
                }
            }
            10 => kernel.flush(),
            11 => inject(input, model, kernel),
            _ => {
                let max = usize::from(input.u8());
                model.reap_all(ring, if max == 0 { usize::MAX } else { max });
            }
        }
        model.check();
        assert_eq!(kernel.stats().lost, u64::from(ring.cq().overflow()));
    }
    let mut drained = false;
    for _ in 0..4 * MAX_OPS + 64 {
        model.reap_all(ring, usize::MAX);
        if kernel.in_flight() == 0 && kernel.overflow_len() == 0 && ring.sq_unconsumed() == 0 {
            drained = true;
            break;
        }
        kernel.step();
    }
    assert!(drained, "the simulated kernel did not drain");
    model.reap_all(ring, usize::MAX);
    let lost = u64::from(ring.cq().overflow());
    assert_eq!(kernel.stats().lost, lost, "lost CQEs miscounted");
    model.finish(lossless, lost);
}

/// Injects one CQE no request owns: garbage, a duplicate of a completed request, 0, or the
/// reserved user_data; with edge-value `res` and `flags`.
fn inject(input: &mut Input<'_>, model: &mut Model, kernel: &mut SimKernel) {
    let sel = input.u8();
    let user_data = match sel % 5 {
        0 => model.never_live(input.u64_edgy()),
        1 if !model.done.is_empty() => model.done[usize::from(sel / 5) % model.done.len()],
        2 => RESERVED_USER_DATA,
        3 => u64::MAX - 1,
        _ => 0,
    };
    let res = input.i32_edgy();
    let flags = input.u32_edgy();
    if user_data == RESERVED_USER_DATA {
        model.reserved_posts += 1;
    } else {
        model.injected += 1;
    }
    kernel.inject_cqe(Cqe {
        user_data,
        res,
        flags,
    });
}

// ------------------------------------------------------------------------------------------------
// sqe_build
// ------------------------------------------------------------------------------------------------

/// How many records one `sqe_build` input decodes at most.
const MAX_RECORDS: usize = 512;

/// The record tag of a probe reply (other tags build an SQE).
const PROBE_TAG: u8 = 0xff;

/// Number of SQE builders `sqe_build` picks from.
const BUILDERS: u8 = 20;

/// Builds SQEs with every builder of [`crate::op`] from fuzzed arguments, checks each field, runs
/// each through a simulated ring, and decodes fuzzed probe replies.
///
/// Layout: one configuration byte (SQ size, SQ array), then records: a tag byte (`0xff`: a probe
/// reply; otherwise the builder, modulo 20) and its arguments.
#[doc(hidden)]
pub fn sqe_build(data: &[u8]) {
    let mut input = Input::new(data);
    let cfg = input.u8();
    let config = SimConfig {
        sq_array: cfg & 1 != 0,
        ..SimConfig::default()
    };
    let mut ring = Ring::new_sim(u32::from((cfg >> 1) & 3) + 1, config);
    let mut records = 0;
    while !input.is_empty() && records < MAX_RECORDS {
        records += 1;
        let tag = input.u8();
        if tag == PROBE_TAG {
            #[cfg(not(loom))]
            probe_reply(&mut input, &ring);
        } else {
            build_and_run(tag % BUILDERS, &mut input, &mut ring);
        }
    }
}

/// The SQE a builder taking `target` must start from.
fn expected_base(opcode: u8, target: Target) -> Sqe {
    let mut e = Sqe {
        opcode,
        ..Sqe::default()
    };
    match target {
        Target::Fd(fd) => e.fd = fd,
        Target::Fixed(i) => {
            e.fd = i as i32;
            e.flags = sqe_flag::FIXED_FILE;
        }
    }
    e
}

/// The fuzzed arguments of one builder call.
struct Args {
    target: Target,
    fd: i32,
    addr: u64,
    len: u32,
    off: u64,
    flags: u32,
    mode: u32,
    buf_index: u16,
    ts: Timespec,
}

impl Args {
    fn decode(input: &mut Input<'_>) -> Self {
        let target = if input.u8() & 1 == 0 {
            Target::Fd(input.i32_edgy())
        } else {
            Target::Fixed(input.u32_edgy())
        };
        Args {
            target,
            fd: input.i32_edgy(),
            addr: input.u64_edgy(),
            len: input.u32_edgy(),
            off: input.u64_edgy(),
            flags: input.u32_edgy(),
            mode: input.u32_edgy(),
            buf_index: input.u16(),
            ts: Timespec {
                tv_sec: input.u64_edgy() as i64,
                tv_nsec: input.u64_edgy() as i64,
            },
        }
    }
}

/// Builds one SQE with builder `which`; returns it, the SQE it must equal, and whether the
/// builder took a [`Target`] (which alone may set `FIXED_FILE`).
fn build(which: u8, a: &Args) -> (Sqe, Sqe, bool) {
    let t = a.target;
    let rw = |opcode: u8| {
        let mut e = expected_base(opcode, t);
        e.addr = a.addr;
        e.len = a.len;
        e.off = a.off;
        e
    };
    match which {
        0 => (op::nop(), expected_base(opcode::NOP, Target::Fd(-1)), false),
        1 => (
            op::read(t, fake_ptr(a.addr), a.len, a.off),
            rw(opcode::READ),
            true,
        ),
        2 => (
            op::write(t, fake_ptr(a.addr), a.len, a.off),
            rw(opcode::WRITE),
            true,
        ),
        3 => {
            let iov = fake_ptr(a.addr).cast::<IoVec>();
            (op::readv(t, iov, a.len, a.off), rw(opcode::READV), true)
        }
        4 => {
            let iov = fake_ptr(a.addr).cast::<IoVec>();
            (op::writev(t, iov, a.len, a.off), rw(opcode::WRITEV), true)
        }
        5 => {
            let mut e = rw(opcode::READ_FIXED);
            e.buf_index = a.buf_index;
            let sqe = op::read_fixed(t, fake_ptr(a.addr), a.len, a.off, a.buf_index);
            (sqe, e, true)
        }
        6 => {
            let mut e = rw(opcode::WRITE_FIXED);
            e.buf_index = a.buf_index;
            let sqe = op::write_fixed(t, fake_ptr(a.addr), a.len, a.off, a.buf_index);
            (sqe, e, true)
        }
        7 => (op::fsync(t), expected_base(opcode::FSYNC, t), true),
        8 => {
            let mut e = expected_base(opcode::FSYNC, t);
            e.op_flags = crate::sys::abi::IORING_FSYNC_DATASYNC;
            (op::fdatasync(t), e, true)
        }
        9 => {
            let mut e = expected_base(opcode::OPENAT, Target::Fd(a.fd));
            e.addr = a.addr;
            e.len = a.mode;
            e.op_flags = a.flags;
            (
                op::openat(a.fd, fake_ptr(a.addr), a.flags, a.mode),
                e,
                false,
            )
        }
        10 => {
            let e = match t {
                Target::Fd(fd) => expected_base(opcode::CLOSE, Target::Fd(fd)),
                Target::Fixed(i) => {
                    // fd 0 plus `file_index = slot + 1`; never 0, which would close fd 0.
                    let mut e = expected_base(opcode::CLOSE, Target::Fd(0));
                    e.file_index = i.saturating_add(1) as i32;
                    e
                }
            };
            let sqe = op::close(t);
            if let Target::Fixed(_) = t {
                assert_ne!(sqe.file_index, 0, "close(Fixed) would close fd 0");
            }
            // close() takes a target but never sets FIXED_FILE: a fixed slot goes in file_index.
            (sqe, e, false)
        }
        11 => {
            let mut e = expected_base(opcode::STATX, Target::Fd(a.fd));
            e.addr = a.addr;
            e.len = a.mode;
            e.off = a.off;
            e.op_flags = a.flags;
            let sqe = op::statx(a.fd, fake_ptr(a.addr), a.flags, a.mode, fake_ptr(a.off));
            (sqe, e, false)
        }
        12 => {
            let mut e = expected_base(opcode::FALLOCATE, t);
            e.off = a.off;
            e.addr = a.addr;
            e.len = a.mode;
            (op::fallocate(t, a.mode, a.off, a.addr), e, true)
        }
        13 => {
            let mut e = expected_base(opcode::FTRUNCATE, t);
            e.off = a.off;
            (op::ftruncate(t, a.off), e, true)
        }
        14 => {
            let mut e = expected_base(opcode::SYNC_FILE_RANGE, t);
            e.off = a.off;
            e.len = a.len;
            e.op_flags = a.flags;
            (op::sync_file_range(t, a.off, a.len, a.flags), e, true)
        }
        15 => {
            let mut e = expected_base(opcode::ASYNC_CANCEL, Target::Fd(-1));
            e.addr = a.addr;
            (op::async_cancel(a.addr), e, false)
        }
        16 => {
            let all = a.flags & 1 != 0;
            let mut e = expected_base(opcode::ASYNC_CANCEL, Target::Fd(a.fd));
            e.op_flags = crate::sys::abi::IORING_ASYNC_CANCEL_FD
                | if all {
                    crate::sys::abi::IORING_ASYNC_CANCEL_ALL
                } else {
                    0
                };
            (op::async_cancel_fd(a.fd, all), e, false)
        }
        17 => {
            let mut e = expected_base(opcode::TIMEOUT, Target::Fd(-1));
            e.addr = &a.ts as *const Timespec as u64;
            e.len = 1;
            e.off = u64::from(a.len);
            e.op_flags = a.flags;
            (op::timeout(&a.ts, a.len, a.flags), e, false)
        }
        18 => {
            let mut e = expected_base(opcode::TIMEOUT_REMOVE, Target::Fd(-1));
            e.addr = a.addr;
            (op::timeout_remove(a.addr), e, false)
        }
        _ => {
            let mut e = expected_base(opcode::LINK_TIMEOUT, Target::Fd(-1));
            e.addr = &a.ts as *const Timespec as u64;
            e.len = 1;
            e.op_flags = a.flags;
            (op::link_timeout(&a.ts, a.flags), e, false)
        }
    }
}

/// What the simulated kernel answers for `sqe` on an idle ring (see `crate::sim`).
fn sim_res(sqe: &Sqe) -> i32 {
    if sqe.flags & 0x80 != 0 || !SimKernel::supports(sqe.opcode) {
        return neg(Errno::INVAL);
    }
    match sqe.opcode {
        opcode::READ | opcode::WRITE | opcode::READ_FIXED | opcode::WRITE_FIXED => {
            sqe.len.min(i32::MAX as u32) as i32
        }
        opcode::TIMEOUT => neg(Errno::TIME),
        // Nothing else is in flight.
        opcode::ASYNC_CANCEL | opcode::TIMEOUT_REMOVE => neg(Errno::NOENT),
        _ => 0,
    }
}

fn build_and_run(which: u8, input: &mut Input<'_>, ring: &mut Ring) {
    let args = Args::decode(input);
    let (sqe, expected, takes_target) = build(which, &args);
    assert_eq!(core::mem::size_of_val(&sqe), 64);
    assert_eq!(sqe.opcode, expected.opcode, "builder {which}: opcode");
    assert_eq!(sqe.pad2, 0, "builder {which}: pad2");
    assert_eq!(sqe.personality, 0, "builder {which}: personality");
    assert_eq!(sqe.addr3, 0, "builder {which}: addr3");
    assert_eq!(
        sqe.user_data, 0,
        "builder {which}: user_data before user_data()"
    );
    let fixed = matches!(args.target, Target::Fixed(_)) && takes_target;
    assert_eq!(
        sqe.flags & sqe_flag::FIXED_FILE != 0,
        fixed,
        "builder {which}: FIXED_FILE iff Target::Fixed"
    );
    assert_eq!(sqe, expected, "builder {which}: fields");

    // Finish it: user_data, ioprio, extra flags (FIXED_FILE only ever comes from the target).
    let user_data = input.u64_edgy();
    let ioprio = input.u16();
    let extra = input.u8() & !sqe_flag::FIXED_FILE;
    let sqe = sqe
        .user_data(user_data)
        .ioprio(ioprio)
        .flags(SqeFlags::from_bits_retain(extra));
    assert_eq!(sqe.user_data, user_data, "user_data round trip");
    assert_eq!(sqe.ioprio, ioprio);
    assert_eq!(sqe.flags, expected.flags | extra, "flags");
    assert_eq!(sqe.sqe_flags().bits(), sqe.flags);

    // Run it: the ring is idle, so the SQ has room and the kernel posts at once.
    // SAFETY: a simulated kernel runs this ring and never dereferences an SQE's pointers (see
    // `crate::sim`); they are fuzzed integers, or point at `args.ts`, alive until the end.
    let pushed = unsafe { ring.sq().push(&sqe) };
    assert!(pushed.is_ok(), "SQ of an idle ring is full");
    assert_eq!(
        ring.submit(),
        Ok(1),
        "the simulated kernel did not consume the SQE"
    );
    let res = sim_res(&sqe);
    let skipped = sqe.flags & sqe_flag::CQE_SKIP_SUCCESS != 0 && res >= 0;
    let mut seen = 0;
    for cqe in ring.cq() {
        seen += 1;
        assert_eq!(
            cqe,
            Cqe {
                user_data,
                res,
                flags: 0
            },
            "CQE of {sqe:?}"
        );
    }
    // A CQE with the reserved user_data is the ring's own: `cq()` never shows it.
    let want = if skipped || user_data == RESERVED_USER_DATA {
        0
    } else {
        1
    };
    assert_eq!(seen, want, "CQEs posted for {sqe:?}");
    assert_eq!(ring.sq_unconsumed(), 0);
    assert_eq!(ring.cq().len(), 0);
}

/// Decodes a fuzzed probe reply and checks [`Probe::decode`] against a direct reading of it.
#[cfg(not(loom))]
fn probe_reply(input: &mut Input<'_>, ring: &Ring) {
    let header = ProbeHeader {
        last_op: input.u8(),
        ops_len: input.u8(),
        resv: input.u16(),
        resv2: [0; 3],
    };
    let n = usize::from(input.u8());
    let ops: Vec<ProbeOp> = (0..n)
        .map(|_| ProbeOp {
            op: input.u8(),
            resv: 0,
            flags: input.u16(),
            resv2: 0,
        })
        .collect();
    let probe = Probe::decode(&header, &ops);
    assert_eq!(probe.last_op(), header.last_op);
    let in_range = &ops[..ops.len().min(usize::from(header.ops_len))];
    for op in 0..=u8::MAX {
        let listed = in_range
            .iter()
            .any(|o| o.op == op && u32::from(o.flags) & IO_URING_OP_SUPPORTED != 0);
        assert_eq!(probe.supports(op), listed, "probe.supports({op})");
    }
    // A simulated ring's probe reports the simulation's set.
    let sim = ring.probe();
    assert!(sim.is_ok(), "probe of a simulated ring: {sim:?}");
    if let Ok(p) = sim {
        for op in 0..=u8::MAX {
            assert_eq!(p.supports(op), SimKernel::supports(op));
        }
    }
}

// ------------------------------------------------------------------------------------------------
// aimd
// ------------------------------------------------------------------------------------------------

/// How many records one `aimd` input decodes at most.
const AIMD_MAX_RECORDS: usize = 4096;

/// How many completions one `aimd` input feeds at most (keeps every execution short).
const AIMD_MAX_COMPLETIONS: u64 = 1 << 16;

/// How many ticks one `aimd` input runs at most: 20 s of 10 ms ticks.
const AIMD_MAX_TICKS: u32 = 2048;

/// The most completions in one burst or one device tick.
const AIMD_MAX_BURST: u32 = 4096;

/// Drives the AIMD controller with fuzzed options and a fuzzed stream of completions, submits and
/// ticks, and checks it after every tick.
///
/// Layout: five option bytes (`max_in_flight`, `min_in_flight`, `initial_in_flight`,
/// `max_p99_ns`, `batch_threshold`; each a selector, some followed by a value), then records: a
/// tag byte whose low two bits choose the kind and whose upper six bits (`arg`) modify it, and
/// its arguments:
///
/// - `0`: a completion burst: count (`u16` modulo 4097), latency, bytes; `arg & 1` measures the
///   latency of one completion in [`SAMPLE_EVERY_FAST`] only;
/// - `1`: `arg + 1` submits of the same SQE count (an edge-value `u32`);
/// - `2`: a tick: the time step (`+0`, small, 10 ms, 5 ms − 1, 5 ms, 1 s, huge, backwards by a
///   little or a lot, absolute 0 or `u64::MAX`) and the pending count;
/// - `3`: `arg + 1` ticks of 10 ms against a device model: a knee byte (0: none) and a rate byte
///   (completions per tick and unit of depth below the knee), latency, bytes and a pending rule;
///   above the knee the latency grows with the limit (Little's law) and the throughput stays
///   flat. The latency is measured for one completion in the last decision's `sample_every`.
///
/// An input runs at most 4096 records, 2048 ticks and 2¹⁶ completions.
///
/// `Aimd::new` must accept exactly the options its documentation allows (otherwise the input
/// ends there). After every tick: `min <= limit <= max` with `(min, max) = bounds()` as derived
/// from the options, the decision agrees with the accessors, the phase moved along
/// [`Phase::can_become`], PASSTHROUGH runs at the maximum, the batch threshold is the fixed one
/// or within [`MIN_BATCH`]`..=`[`MAX_BATCH_THRESHOLD`], `sample_every` follows its documented
/// rule, a tick is evaluated exactly when its window is long enough (restarting when time goes
/// backwards) and its stats count every completion and byte, and each phase changes the limit
/// only the way it may (BASELINE holds the starting limit, PROBING steps by one or settles lower,
/// BACKOFF cuts, the other phases hold it).
#[doc(hidden)]
pub fn aimd(data: &[u8]) {
    if let Some(r) = aimd_run(data) {
        // Each engagement and each cut happens on its own evaluated tick.
        assert!(
            r.stats.engagements + r.stats.backoffs <= r.stats.ticks,
            "more engagements and backoffs than evaluated ticks: {:?}",
            r.stats
        );
        assert!(r.phases & phase_bit(r.phase) != 0);
    }
}

/// What one `aimd` run reached (for the harness's own tests).
#[derive(Copy, Clone, Debug)]
struct AimdReached {
    /// Bit `phase_bit(p)` is set when a tick ended in phase `p`.
    phases: u8,
    /// The final phase.
    phase: Phase,
    /// The final stats.
    stats: AimdStats,
}

fn phase_bit(p: Phase) -> u8 {
    1 << match p {
        Phase::Passthrough => 0,
        Phase::Baseline => 1,
        Phase::Probing => 2,
        Phase::Steady => 3,
        Phase::Backoff => 4,
        Phase::Settling => 5,
        Phase::Converged => 6,
    }
}

/// Runs one `aimd` input; `None` when its options were (rightly) refused.
fn aimd_run(data: &[u8]) -> Option<AimdReached> {
    let mut input = Input::new(data);
    let opts = aimd_options(&mut input);
    let expected = aimd_expected(&opts);
    let a = match Aimd::new(opts) {
        Ok(a) => {
            assert!(expected.is_some(), "Aimd::new accepted {opts:?}");
            a
        }
        Err(e) => {
            assert!(expected.is_none(), "Aimd::new refused {opts:?}: {e}");
            return None;
        }
    };
    let (min, start) = expected?;
    let mut h = AimdHarness::new(a, opts, min, start);
    let mut records = 0;
    while !input.is_empty() && records < AIMD_MAX_RECORDS && !h.exhausted() {
        records += 1;
        let tag = input.u8();
        let arg = tag >> 2;
        match tag & 3 {
            0 => {
                let count = u32::from(input.u16()) % (AIMD_MAX_BURST + 1);
                let latency = aimd_latency(&mut input);
                let bytes = aimd_bytes(&mut input);
                let every = if arg & 1 != 0 { SAMPLE_EVERY_FAST } else { 1 };
                h.burst(count, latency, bytes, every);
            }
            1 => {
                let sqes = input.u32_edgy();
                for _ in 0..=arg {
                    h.a.on_submit(sqes);
                }
            }
            2 => {
                let now = aimd_time(&mut input, h.now);
                let rule = PendingRule::decode(&mut input);
                let pending = rule.value(h.a.limit(), h.pending);
                h.tick(now, pending);
            }
            _ => {
                let knee = u32::from(input.u8());
                let rate = u32::from(input.u8());
                let latency = aimd_latency(&mut input);
                let bytes = aimd_bytes(&mut input);
                let rule = PendingRule::decode(&mut input);
                for _ in 0..=arg {
                    if h.exhausted() {
                        break;
                    }
                    let limit = h.a.limit();
                    let (count, latency) = device_tick(knee, rate, latency, limit);
                    h.burst(count, latency, bytes, h.sample_every);
                    let now = h.now.saturating_add(TICK_NS);
                    let pending = rule.value(limit, h.pending);
                    h.tick(now, pending);
                }
            }
        }
    }
    Some(AimdReached {
        phases: h.phases,
        phase: h.a.phase(),
        stats: h.a.stats(),
    })
}

/// Decodes the five option bytes; values may be inconsistent (a minimum above the maximum, an
/// initial limit outside them, a huge batch threshold).
fn aimd_options(input: &mut Input<'_>) -> AimdOptions {
    let max_in_flight = match input.u8() % 16 {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 3,
        4 => 4,
        5 => 32,
        6 => 64,
        7 => 256,
        8 => 1024,
        9 => u32::MAX,
        10 => u32::MAX - 1,
        11 => i32::MAX as u32,
        12 => input.u32(),
        13 => u32::from(input.u16()),
        _ => 128,
    };
    let min_in_flight = match input.u8() % 8 {
        0..=2 => 0,
        3 => 1,
        4 => max_in_flight,
        5 => max_in_flight.saturating_add(1),
        6 => input.u32_edgy(),
        _ => u32::from(input.u8()),
    };
    let min = effective_min(max_in_flight, min_in_flight);
    let initial_in_flight = match input.u8() % 8 {
        0..=2 => 0,
        3 => min.saturating_sub(1),
        4 => max_in_flight,
        5 => max_in_flight.saturating_add(1),
        6 => input.u32_edgy(),
        _ => u32::from(input.u8()),
    };
    let max_p99_ns = match input.u8() % 8 {
        0..=3 => 0,
        4 => input.u64_edgy(),
        5 => u64::from(input.u16()) * 1_000,
        6 => 1_000_000,
        _ => u64::MAX,
    };
    let batch_threshold = match input.u8() % 8 {
        0..=4 => 0,
        5 => u32::from(input.u8()),
        6 => input.u32_edgy(),
        // Either side of the largest accepted value.
        _ => MAX_BATCH_THRESHOLD * 1024 + u32::from(input.u8() & 1),
    };
    AimdOptions {
        max_in_flight,
        min_in_flight,
        initial_in_flight,
        max_p99_ns,
        batch_threshold,
    }
}

/// The minimum in force for these options (documented on [`AimdOptions::min_in_flight`]).
fn effective_min(max: u32, min_in_flight: u32) -> u32 {
    if min_in_flight == 0 {
        DEFAULT_MIN_IN_FLIGHT.min(max)
    } else {
        min_in_flight
    }
}

/// The minimum and starting limit `Aimd::new` must derive from `opts`, or `None` when it must
/// refuse them: a zero maximum, a minimum above the maximum, an initial limit outside
/// [minimum, maximum], or a batch threshold above `MAX_BATCH_THRESHOLD × 1024`.
fn aimd_expected(opts: &AimdOptions) -> Option<(u32, u32)> {
    let max = opts.max_in_flight;
    if max == 0 {
        return None;
    }
    let min = effective_min(max, opts.min_in_flight);
    // 0: the minimum, at least DEFAULT_MIN_IN_FLIGHT, never above the maximum.
    let start = if opts.initial_in_flight == 0 {
        min.max(DEFAULT_MIN_IN_FLIGHT).min(max)
    } else {
        opts.initial_in_flight
    };
    let valid = min <= max
        && (min..=max).contains(&start)
        && opts.batch_threshold <= MAX_BATCH_THRESHOLD * 1024;
    valid.then_some((min, start))
}

/// A latency: none (not measured), 0, `u64::MAX`, an edge value, 20 µs to 635 µs, or 1 ms to
/// 128 ms.
fn aimd_latency(input: &mut Input<'_>) -> Option<u64> {
    match input.u8() {
        0 => None,
        1 => Some(0),
        2 => Some(u64::MAX),
        3 => Some(input.u64_edgy()),
        l @ 4..=127 => Some(u64::from(l) * 5_000),
        l => Some(u64::from(l - 127) * 1_000_000),
    }
}

/// A completion's bytes: 0, `u64::MAX`, an edge value, or a multiple of 512 up to 127.5 KiB.
fn aimd_bytes(input: &mut Input<'_>) -> u64 {
    match input.u8() {
        0 => 0,
        1 => u64::MAX,
        2 => input.u64_edgy(),
        b => u64::from(b) << 9,
    }
}

/// The clock of the next tick, from `now`: it may stall, step a little, step a lot, go
/// backwards, or jump to either end.
fn aimd_time(input: &mut Input<'_>, now: u64) -> u64 {
    match input.u8() % 16 {
        0 => now,
        1 => now.saturating_add(u64::from(input.u16()) * 1_000),
        2 => now.saturating_sub(u64::from(input.u32())),
        3 => now.saturating_sub(input.u64_edgy()),
        4 => now.saturating_add(input.u64_edgy()),
        5 => u64::MAX,
        6 => 0,
        7 => now.saturating_add(MAX_SAMPLE_WINDOW_NS),
        8 => now.saturating_add(TICK_NS / 2 - 1),
        9 => now.saturating_add(TICK_NS / 2),
        _ => now.saturating_add(TICK_NS),
    }
}

/// How a tick's pending count is chosen; evaluated at each tick of a device run.
#[derive(Copy, Clone, Debug)]
enum PendingRule {
    Fixed(u32),
    /// Under half the limit (light load).
    Light,
    /// The limit itself.
    AtLimit,
    /// Growing by more than [`ENGAGE_PENDING_DELTA`] per tick (open-loop overload).
    Growth,
}

impl PendingRule {
    fn decode(input: &mut Input<'_>) -> Self {
        match input.u8() % 16 {
            0 => PendingRule::Fixed(0),
            1 => PendingRule::Fixed(u32::MAX),
            2 => PendingRule::Fixed(input.u32_edgy()),
            3 => PendingRule::Light,
            4 => PendingRule::AtLimit,
            5 => PendingRule::Growth,
            6 => PendingRule::Fixed(CLOSED_LOOP_MIN_PENDING),
            7 => PendingRule::Fixed(CLOSED_LOOP_MIN_PENDING - 1),
            8 => PendingRule::Fixed(u32::from(input.u8())),
            9 => PendingRule::Fixed(u32::from(input.u16())),
            p => PendingRule::Fixed(64 << (p - 10)),
        }
    }

    fn value(self, limit: u32, prev: u32) -> u32 {
        match self {
            PendingRule::Fixed(n) => n,
            PendingRule::Light => (limit / 2).saturating_sub(1),
            PendingRule::AtLimit => limit,
            PendingRule::Growth => prev.saturating_add(ENGAGE_PENDING_DELTA as u32 + 1),
        }
    }
}

/// One 10 ms tick of the device model at `limit`: the completions it posts and their latency.
/// Without a knee, `rate × 4` completions of `latency`; with one, `rate` per unit of depth up to
/// the knee (flat above it), with the latency scaled by `limit / knee` above it.
fn device_tick(knee: u32, rate: u32, latency: Option<u64>, limit: u32) -> (u32, Option<u64>) {
    if knee == 0 {
        return ((rate * 4).min(AIMD_MAX_BURST), latency);
    }
    let count = u64::from(limit.min(knee)) * u64::from(rate);
    let count = u32::try_from(count.min(u64::from(AIMD_MAX_BURST))).unwrap_or(AIMD_MAX_BURST);
    let latency = latency.map(|l| {
        let scaled = u128::from(l) * u128::from(limit.max(knee)) / u128::from(knee);
        u64::try_from(scaled).unwrap_or(u64::MAX)
    });
    (count, latency)
}

/// Completions per second over `elapsed_ns`, as the controller's stats count them.
fn per_sec(n: u64, elapsed_ns: u64) -> u64 {
    let v = u128::from(n) * 1_000_000_000 / u128::from(elapsed_ns.max(1));
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The controller under test, and a model of its current measurement window.
struct AimdHarness {
    a: Aimd,
    opts: AimdOptions,
    min: u32,
    max: u32,
    start: u32,
    /// The clock of the last tick.
    now: u64,
    /// The pending count of the last tick.
    pending: u32,
    /// The last decision's `sample_every`.
    sample_every: u32,
    /// Completions still allowed in this run.
    budget: u64,
    /// Ticks still allowed in this run.
    ticks_left: u32,
    /// Phases reached (see [`phase_bit`]).
    phases: u8,
    /// The highest limit of the PROBING episode under way (0 outside one).
    probe_high: u32,

    // The window, as the controller must see it.
    started: bool,
    window_start: u64,
    samples: u64,
    latency_sum: u64,
    completions: u64,
    bytes: u64,
}

impl AimdHarness {
    fn new(a: Aimd, opts: AimdOptions, min: u32, start: u32) -> Self {
        let max = opts.max_in_flight;
        assert_eq!(a.bounds(), (min, max), "bounds of {opts:?}");
        assert_eq!(a.limit(), max, "a new controller runs at the maximum");
        assert_eq!(a.phase(), Phase::Passthrough);
        let batch = if opts.batch_threshold > 0 {
            opts.batch_threshold
        } else {
            MIN_BATCH
        };
        assert_eq!(a.batch_threshold(), batch);
        assert_eq!(a.stats(), AimdStats::default());
        AimdHarness {
            a,
            opts,
            min,
            max,
            start,
            now: 0,
            pending: 0,
            sample_every: 1,
            budget: AIMD_MAX_COMPLETIONS,
            ticks_left: AIMD_MAX_TICKS,
            phases: phase_bit(Phase::Passthrough),
            probe_high: 0,
            started: false,
            window_start: 0,
            samples: 0,
            latency_sum: 0,
            completions: 0,
            bytes: 0,
        }
    }

    /// Whether the run used up its completions or ticks.
    fn exhausted(&self) -> bool {
        self.budget == 0 || self.ticks_left == 0
    }

    /// `count` completions of `bytes` each; one in `every` carries `latency`.
    fn burst(&mut self, count: u32, latency: Option<u64>, bytes: u64, every: u32) {
        let count = u64::from(count).min(self.budget);
        self.budget -= count;
        for i in 0..count {
            let lat = latency.filter(|_| i % u64::from(every.max(1)) == 0);
            self.a.on_complete(lat, bytes);
            self.completions = self.completions.saturating_add(1);
            self.bytes = self.bytes.saturating_add(bytes);
            if let Some(ns) = lat {
                self.samples = self.samples.saturating_add(1);
                self.latency_sum = self.latency_sum.saturating_add(ns);
            }
        }
    }

    fn reset_window(&mut self, now: u64) {
        self.window_start = now;
        self.samples = 0;
        self.latency_sum = 0;
        self.completions = 0;
        self.bytes = 0;
    }

    fn tick(&mut self, now: u64, pending: u32) {
        let (limit0, phase0, batch0, stats0) = (
            self.a.limit(),
            self.a.phase(),
            self.a.batch_threshold(),
            self.a.stats(),
        );
        self.ticks_left = self.ticks_left.saturating_sub(1);
        let d = self.a.tick(now, pending);
        self.now = now;
        self.pending = pending;
        self.sample_every = d.sample_every;
        self.phases |= phase_bit(d.phase);
        let stats = self.a.stats();
        self.check_decision(&d, &stats);

        // Which ticks are evaluated: the first, and any whose clock is before the window's start,
        // only restart the window; a window is evaluated once it spans half a tick and holds
        // enough latency samples, or spans MAX_SAMPLE_WINDOW_NS.
        let evaluated = if !self.started || now < self.window_start {
            self.started = true;
            self.reset_window(now);
            false
        } else {
            let elapsed = now - self.window_start;
            if elapsed < TICK_NS / 2
                || (self.samples < LOW_IOPS_MIN_SAMPLES && elapsed < MAX_SAMPLE_WINDOW_NS)
            {
                false
            } else {
                self.check_sample(&stats, elapsed);
                self.reset_window(now);
                true
            }
        };
        if !evaluated {
            assert_eq!(
                stats, stats0,
                "a tick that was not evaluated changed the stats"
            );
            assert_eq!(
                (d.limit, d.phase, d.batch_threshold),
                (limit0, phase0, batch0),
                "a tick that was not evaluated changed the decision"
            );
            return;
        }
        assert_eq!(stats.ticks, stats0.ticks.saturating_add(1));
        self.check_step(phase0, limit0, &d, &stats0, &stats);
        self.probe_high = if d.phase == Phase::Probing {
            self.probe_high.max(d.limit).max(limit0)
        } else {
            0
        };
    }

    /// Checks what must hold after any tick.
    fn check_decision(&self, d: &Decision, stats: &AimdStats) {
        let a = &self.a;
        assert_eq!(a.bounds(), (self.min, self.max), "bounds changed");
        assert!(
            self.min <= d.limit && d.limit <= self.max,
            "limit {} outside [{}, {}]: {d:?}",
            d.limit,
            self.min,
            self.max
        );
        assert_eq!(d.limit, a.limit(), "Decision.limit != limit()");
        assert_eq!(d.phase, a.phase(), "Decision.phase != phase()");
        assert_eq!(d.batch_threshold, a.batch_threshold());
        assert!(a.can_submit(d.limit - 1) && !a.can_submit(d.limit));
        if self.opts.batch_threshold > 0 {
            assert_eq!(d.batch_threshold, self.opts.batch_threshold);
        } else {
            assert!(
                (MIN_BATCH..=MAX_BATCH_THRESHOLD).contains(&d.batch_threshold),
                "batch threshold {}",
                d.batch_threshold
            );
        }
        let every = if self.opts.max_p99_ns > 0 || stats.iops < SAMPLE_ALL_BELOW_IOPS {
            1
        } else {
            SAMPLE_EVERY_FAST
        };
        assert_eq!(d.sample_every, every, "sample_every with {stats:?}");
        match d.phase {
            Phase::Passthrough => assert_eq!(d.limit, self.max, "PASSTHROUGH below the maximum"),
            Phase::Baseline => assert_eq!(d.limit, self.start, "BASELINE off the starting limit"),
            _ => {}
        }
    }

    /// Checks an evaluated tick's stats against the window it closed.
    fn check_sample(&self, stats: &AimdStats, elapsed: u64) {
        assert_eq!(stats.samples, self.samples, "latency samples of the tick");
        assert_eq!(stats.iops, per_sec(self.completions, elapsed), "iops");
        assert_eq!(
            stats.throughput_bps,
            per_sec(self.bytes, elapsed),
            "throughput counts every completion's bytes"
        );
        assert_eq!(
            stats.p99_ns.is_some(),
            self.samples > 0,
            "P99 without samples"
        );
        let mean = self.latency_sum.checked_div(self.samples);
        assert_eq!(stats.mean_ns, mean, "mean latency");
    }

    /// Checks the transition an evaluated tick made.
    fn check_step(
        &self,
        from: Phase,
        limit0: u32,
        d: &Decision,
        stats0: &AimdStats,
        stats: &AimdStats,
    ) {
        let (to, limit) = (d.phase, d.limit);
        assert!(from.can_become(to), "phase {from:?} -> {to:?}");
        let engaged = from == Phase::Passthrough && to == Phase::Baseline;
        assert_eq!(
            stats.engagements,
            stats0.engagements + u64::from(engaged),
            "engagements counted off the PASSTHROUGH -> BASELINE edge"
        );
        let cut = from == Phase::Backoff;
        assert_eq!(
            stats.backoffs,
            stats0.backoffs + u64::from(cut),
            "backoffs counted off the BACKOFF tick"
        );
        match (from, to) {
            (Phase::Passthrough, _) | (_, Phase::Passthrough) => {}
            (Phase::Backoff, _) => assert!(limit <= limit0, "BACKOFF raised {limit0} to {limit}"),
            // With a target a probe steps by 1/8 (or +1); without one the knee search goes to
            // each depth it measures at once, at most doubling the limit.
            (Phase::Probing, Phase::Probing) if self.opts.max_p99_ns > 0 => assert!(
                limit == limit0
                    || limit == limit0 + 1
                    || (limit > limit0
                        && limit - limit0 <= (limit0 / crate::aimd::PROBE_STEP_DIV).max(1)),
                "PROBING stepped {limit0} to {limit}"
            ),
            // ... or, in the duels that end the search, back to a depth it measured.
            (Phase::Probing, Phase::Probing) => assert!(
                limit <= limit0.max(1).saturating_mul(2) || limit <= self.probe_high,
                "PROBING stepped {limit0} to {limit} (highest {})",
                self.probe_high
            ),
            (Phase::Probing, Phase::Settling) => {
                assert!(limit <= limit0, "PROBING settled {limit0} up to {limit}")
            }
            _ => assert_eq!(limit, limit0, "{from:?} -> {to:?} moved the limit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options: a maximum of 256, everything else default.
    const DEFAULTS: [u8; 5] = [7, 0, 0, 0, 0];

    /// A device run of `ticks` (1 to 64) ticks: knee, rate, latency selector, 4 KiB completions,
    /// pending rule (and its argument bytes).
    fn run(ticks: u8, knee: u8, rate: u8, lat: u8, pending: &[u8]) -> Vec<u8> {
        let mut r = alloc::vec![3 | ((ticks - 1) << 2), knee, rate, lat, 8];
        r.extend_from_slice(pending);
        r
    }

    fn reached(p: &[u8]) -> AimdReached {
        aimd_run(p).expect("valid options")
    }

    fn has(r: &AimdReached, p: Phase) -> bool {
        r.phases & phase_bit(p) != 0
    }

    #[test]
    fn options_are_refused_exactly_when_documented() {
        // max 0; min 5 > max 4; initial 5 > max 4; min = max = 4 with initial 3.
        for bad in [
            [0u8, 0, 0, 0, 0],
            [4, 5, 0, 0, 0],
            [4, 0, 5, 0, 0],
            [4, 4, 3, 0, 0],
        ] {
            assert!(aimd_run(&bad).is_none(), "{bad:?}");
        }
        // Batch threshold 65 536 is accepted, 65 537 refused.
        assert!(aimd_run(&[7, 0, 0, 0, 7, 0]).is_some());
        assert!(aimd_run(&[7, 0, 0, 0, 7, 1]).is_none());
        // max 1 caps the default minimum and start; min 1 with initial 1 − 1 = 0 (default) starts
        // at DEFAULT_MIN_IN_FLIGHT.
        assert!(aimd_run(&[1, 0, 0, 0, 0]).is_some());
        assert!(aimd_run(&[4, 3, 3, 0, 0]).is_some());
        // u32::MAX everywhere.
        assert!(aimd_run(&[9, 4, 4, 7, 0]).is_some());
    }

    #[test]
    fn a_closed_loop_engages_probes_and_settles() {
        let mut p = DEFAULTS.to_vec();
        // 64 ticks of 32 pending, a device whose throughput stops growing at depth 20.
        p.extend(run(64, 20, 5, 16, &[6]));
        p.extend(run(64, 20, 5, 16, &[6]));
        let r = reached(&p);
        assert_eq!(r.stats.engagements, 1);
        for ph in [
            Phase::Baseline,
            Phase::Probing,
            Phase::Settling,
            Phase::Steady,
        ] {
            assert!(has(&r, ph), "{ph:?} not reached: {:#b}", r.phases);
        }
    }

    #[test]
    fn latency_spikes_back_off_and_light_load_disengages() {
        // Minimum 1: the device's throughput does not grow with depth, so the limit stays at
        // the start (4), above the minimum, where a spike has something to cut (at the minimum
        // rising ticks are ignored; see the next test).
        let mut p = [7u8, 3, 0, 0, 0].to_vec();
        p.extend(run(64, 20, 5, 16, &[13]));
        // 11 ms latency: far over 10 × the baseline P99.
        p.extend(run(4, 20, 5, 138, &[13]));
        p.extend(run(40, 20, 5, 16, &[13]));
        let r = reached(&p);
        assert!(has(&r, Phase::Backoff), "{:#b}", r.phases);
        assert!(r.stats.backoffs >= 1);
        assert!(has(&r, Phase::Steady), "{:#b}", r.phases);
        // No load: back to PASSTHROUGH, at the maximum, for good.
        p.extend(run(40, 20, 5, 16, &[0]));
        let r = reached(&p);
        assert_eq!(r.stats.engagements, 1);
        assert_eq!(r.phase, Phase::Passthrough);
    }

    #[test]
    fn spikes_at_the_minimum_cut_nothing() {
        let mut p = DEFAULTS.to_vec();
        p.extend(run(64, 20, 5, 16, &[13]));
        p.extend(run(4, 20, 5, 138, &[13]));
        p.extend(run(40, 20, 5, 16, &[13]));
        let r = reached(&p);
        assert!(!has(&r, Phase::Backoff), "{:#b}", r.phases);
        assert_eq!(r.stats.backoffs, 0);
        assert!(has(&r, Phase::Steady), "{:#b}", r.phases);
    }

    #[test]
    fn a_limit_held_at_the_maximum_converges() {
        // max 4: re-probes cannot move the limit, so STEADY becomes CONVERGED.
        let mut p = [4u8, 0, 0, 0, 0].to_vec();
        for _ in 0..10 {
            p.extend(run(64, 4, 10, 16, &[13]));
        }
        let r = reached(&p);
        assert!(has(&r, Phase::Converged), "{:#b}", r.phases);
    }
}
