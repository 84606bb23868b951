//! Every raw syscall aura makes: `io_uring_setup`, `io_uring_enter`, `io_uring_register`, `mmap`,
//! `munmap`, `close` — thin typed wrappers over rustix's `linux_raw` backend (no libc).
//!
//! # Safety
//!
//! This module opts into `unsafe` because the kernel reads and writes memory through the pointers
//! these calls carry. The invariants every caller upholds:
//! - an `enter` that submits SQEs may only do so when every buffer, iovec and timespec those SQEs
//!   point at stays valid until the matching CQE is reaped;
//! - a `register` call's `arg` points at `nr` valid entries of the type the opcode expects;
//! - `munmap` is given exactly a pointer and length that `mmap` returned, once.
//!
//! Kernel-written results come back as plain integers (see [`abi`]).

pub mod abi;

/// The descriptor types these wrappers take and return (rustix's: `std`'s own when rustix is built
/// with its `std` feature, a compatible no_std polyfill otherwise).
pub mod fd {
    pub use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
}

use core::ffi::c_void;
use core::ptr::NonNull;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io_uring as ru;

use crate::error::Errno;
use abi::{RawParams, Timespec};

/// `io_uring_setup(entries, params)`: creates a ring and fills in `params` with the kernel's answer
/// (entry counts, features, ring offsets).
///
/// `IORING_SETUP_ATTACH_WQ` is refused with `EINVAL` here, because it makes the call read `wq_fd`
/// as a file descriptor this wrapper cannot vouch for.
// rustix's params structs are #[non_exhaustive]: they can only be built from Default and then
// assigned field by field.
#[allow(clippy::field_reassign_with_default)]
pub fn setup(entries: u32, params: &mut RawParams) -> Result<OwnedFd, Errno> {
    if params.flags & abi::IORING_SETUP_ATTACH_WQ != 0 {
        return Err(Errno::INVAL);
    }
    let mut p = ru::io_uring_params::default();
    p.sq_entries = params.sq_entries;
    p.cq_entries = params.cq_entries;
    p.flags = ru::IoringSetupFlags::from_bits_retain(params.flags);
    p.sq_thread_cpu = params.sq_thread_cpu;
    p.sq_thread_idle = params.sq_thread_idle;
    // SAFETY: ATTACH_WQ is rejected above, so the kernel never interprets `wq_fd` as a descriptor;
    // `p` is a valid, exclusively borrowed io_uring_params for the duration of the call.
    let fd = unsafe { ru::io_uring_setup(entries, &mut p)? };
    params.sq_entries = p.sq_entries;
    params.cq_entries = p.cq_entries;
    params.flags = p.flags.bits();
    params.features = p.features.bits();
    let so = &p.sq_off;
    params.sq_off = abi::SqringOffsets {
        head: so.head,
        tail: so.tail,
        ring_mask: so.ring_mask,
        ring_entries: so.ring_entries,
        flags: so.flags,
        dropped: so.dropped,
        array: so.array,
        resv1: 0,
        user_addr: 0,
    };
    let co = &p.cq_off;
    params.cq_off = abi::CqringOffsets {
        head: co.head,
        tail: co.tail,
        ring_mask: co.ring_mask,
        ring_entries: co.ring_entries,
        overflow: co.overflow,
        cqes: co.cqes,
        flags: co.flags,
        resv1: 0,
        user_addr: 0,
    };
    Ok(fd)
}

/// `io_uring_enter(fd, to_submit, min_complete, flags, NULL, 0)`.
///
/// # Safety
///
/// Every SQE published in the ring (up to `to_submit` of them) must point only at memory that stays
/// valid, and is not otherwise accessed in a conflicting way, until its CQE is reaped.
pub unsafe fn enter(
    fd: BorrowedFd<'_>,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
) -> Result<u32, Errno> {
    let flags = ru::IoringEnterFlags::from_bits_retain(flags & !abi::IORING_ENTER_EXT_ARG);
    // SAFETY: the caller guarantees every published SQE's memory is valid (this fn's contract);
    // EXT_ARG is masked off above, as this form passes no argument.
    unsafe { ru::io_uring_enter(fd, to_submit, min_complete, flags) }
}

/// `io_uring_enter2(fd, to_submit, min_complete, flags | IORING_ENTER_EXT_ARG, &arg, sizeof arg)`
/// with `arg.ts = timeout` (Linux 5.11+, `IORING_FEAT_EXT_ARG`). Returns `ETIME` when the wait timed
/// out before anything was submitted.
///
/// # Safety
///
/// As for [`enter`].
#[allow(clippy::field_reassign_with_default)] // non_exhaustive rustix struct, as in `setup`
pub unsafe fn enter_timeout(
    fd: BorrowedFd<'_>,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
    timeout: &Timespec,
) -> Result<u32, Errno> {
    let mut arg = ru::io_uring_getevents_arg::default();
    arg.ts = ru::io_uring_ptr::new((timeout as *const Timespec).cast_mut().cast::<c_void>());
    let flags = ru::IoringEnterFlags::from_bits_retain(flags | abi::IORING_ENTER_EXT_ARG);
    // SAFETY: the caller guarantees every published SQE's memory is valid (this fn's contract);
    // `arg` and the timespec it points at live on this frame for the whole (synchronous) call, and
    // the kernel only reads them.
    unsafe { ru::io_uring_enter_arg(fd, to_submit, min_complete, flags, Some(&arg)) }
}

/// The `io_uring_register` opcodes aura uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum RegisterOp {
    RegisterBuffers,
    UnregisterBuffers,
    RegisterFiles,
    UnregisterFiles,
    RegisterFilesUpdate,
    RegisterEventfd,
    RegisterEventfdAsync,
    UnregisterEventfd,
    RegisterProbe,
    EnableRings,
}

/// `io_uring_register(fd, opcode, arg, nr_args)`.
///
/// # Safety
///
/// `arg` points at `nr` valid entries of the type `op` expects (iovecs, fds, an eventfd, a probe
/// buffer), writable where the kernel writes (probe). For buffers, the registered memory must stay
/// valid until it is unregistered or the ring is closed.
pub unsafe fn register(
    fd: BorrowedFd<'_>,
    op: RegisterOp,
    arg: *const c_void,
    nr: u32,
) -> Result<u32, Errno> {
    use ru::IoringRegisterOp as R;
    let op = match op {
        RegisterOp::RegisterBuffers => R::RegisterBuffers,
        RegisterOp::UnregisterBuffers => R::UnregisterBuffers,
        RegisterOp::RegisterFiles => R::RegisterFiles,
        RegisterOp::UnregisterFiles => R::UnregisterFiles,
        RegisterOp::RegisterFilesUpdate => R::RegisterFilesUpdate,
        RegisterOp::RegisterEventfd => R::RegisterEventfd,
        RegisterOp::RegisterEventfdAsync => R::RegisterEventfdAsync,
        RegisterOp::UnregisterEventfd => R::UnregisterEventfd,
        RegisterOp::RegisterProbe => R::RegisterProbe,
        RegisterOp::EnableRings => R::RegisterEnableRings,
    };
    // SAFETY: the caller guarantees `arg`/`nr` describe valid memory for `op` (this fn's contract).
    unsafe { ru::io_uring_register(fd, op, arg, nr) }
}

/// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset)`: maps one of
/// the ring's regions (`IORING_OFF_SQ_RING`, `IORING_OFF_CQ_RING`, `IORING_OFF_SQES`).
pub fn mmap_ring(fd: BorrowedFd<'_>, len: usize, offset: u64) -> Result<NonNull<u8>, Errno> {
    use rustix::mm::{MapFlags, ProtFlags};
    // SAFETY: a NULL hint lets the kernel choose fresh addresses, so no existing mapping is
    // replaced; the result is only dereferenced by ring/ under the invariants in ring/mem.rs.
    let p = unsafe {
        rustix::mm::mmap(
            core::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED | MapFlags::POPULATE,
            fd,
            offset,
        )?
    };
    NonNull::new(p.cast::<u8>()).ok_or(Errno::FAULT)
}

/// `munmap(ptr, len)`.
///
/// # Safety
///
/// `ptr` and `len` are exactly what one [`mmap_ring`] call returned and was given, the region is
/// unmapped only once, and nothing dereferences it afterwards.
pub unsafe fn munmap(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller passes a mapping this module created, once (this fn's contract).
    unsafe { rustix::mm::munmap(ptr.as_ptr().cast::<c_void>(), len) }
}

/// `close(fd)`: consumes the descriptor.
pub fn close(fd: OwnedFd) {
    drop(fd);
}

/// The raw number of a descriptor, for SQEs.
pub fn raw_fd(fd: &impl AsFd) -> i32 {
    use rustix::fd::AsRawFd;
    fd.as_fd().as_raw_fd()
}

/// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`: a counter descriptor, for completion notification.
pub fn eventfd() -> Result<OwnedFd, Errno> {
    use rustix::event::EventfdFlags;
    rustix::event::eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)
}

/// Reads (and so resets) an eventfd's counter; `Ok(0)` when it was zero (`EAGAIN`).
pub fn eventfd_read(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut buf = [0u8; 8];
    match rustix::io::read(fd, &mut buf) {
        Ok(8) => Ok(u64::from_ne_bytes(buf)),
        Ok(_) => Err(Errno::INVAL),
        Err(Errno::AGAIN) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Adds `n` to an eventfd's counter (wakes its pollers).
pub fn eventfd_write(fd: BorrowedFd<'_>, n: u64) -> Result<(), Errno> {
    match rustix::io::write(fd, &n.to_ne_bytes()) {
        Ok(_) | Err(Errno::AGAIN) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `poll([{fd, POLLIN}], 1, timeout)`: whether `fd` became readable within `timeout_ns`
/// (`None`: wait forever). `EINTR` counts as "not yet" (the caller loops with its own deadline).
pub fn poll_readable(fd: BorrowedFd<'_>, timeout_ns: Option<u64>) -> Result<bool, Errno> {
    use rustix::event::{PollFd, PollFlags, Timespec as Ts};
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let ts = timeout_ns.map(|ns| Ts {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as i64,
    });
    match rustix::event::poll(&mut fds, ts.as_ref()) {
        Ok(n) => Ok(n > 0),
        Err(Errno::INTR) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `getcpu(&cpu, NULL, NULL)`: the CPU the calling thread runs on now.
///
/// On x86_64 and aarch64 this is the plain system call, not the vDSO entry rustix's
/// `sched_getcpu` calls: a process run under valgrind has no usable vDSO, and finding one there
/// crashes. (It is called once per 32 submissions, so the ~100 ns a syscall costs more than the
/// vDSO does not matter.) Other architectures use rustix.
pub fn current_cpu() -> usize {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let mut cpu: u32 = 0;
        let ret: isize;
        // SAFETY: getcpu(2) writes one u32 through its first argument, which points at `cpu`,
        // a live local; the other two arguments are NULL (not written). The asm follows the
        // kernel's syscall ABI for the architecture: number and result in the documented
        // registers, and the registers the kernel clobbers declared (rcx/r11 on x86_64).
        unsafe {
            #[cfg(target_arch = "x86_64")]
            core::arch::asm!(
                "syscall",
                inlateout("rax") 309isize => ret, // __NR_getcpu
                in("rdi") &raw mut cpu,
                in("rsi") 0usize,
                in("rdx") 0usize,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
            #[cfg(target_arch = "aarch64")]
            core::arch::asm!(
                "svc 0",
                in("x8") 168usize, // __NR_getcpu
                inlateout("x0") &raw mut cpu as isize => ret,
                in("x1") 0usize,
                in("x2") 0usize,
                options(nostack),
            );
        }
        if ret == 0 {
            return cpu as usize;
        }
    }
    rustix::thread::sched_getcpu()
}

/// The CPUs in the calling thread's affinity mask (`sched_getaffinity`), in order.
pub fn affinity_cpus() -> Result<alloc::vec::Vec<usize>, Errno> {
    let set = rustix::thread::sched_getaffinity(None)?;
    Ok((0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&i| set.is_set(i))
        .collect())
}

/// Pins the calling thread to `cpus` (`sched_setaffinity`).
pub fn set_affinity(cpus: &[usize]) -> Result<(), Errno> {
    let mut set = rustix::thread::CpuSet::new();
    for &c in cpus {
        set.set(c);
    }
    rustix::thread::sched_setaffinity(None, &set)
}
