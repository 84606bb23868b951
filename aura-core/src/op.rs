//! Typed SQE builders, one per supported opcode, and the SQE flag set.
//!
//! Each builder starts from an all-zero SQE (so no stale field of an earlier request leaks into
//! a new one), fills exactly the fields its opcode reads, and returns the [`Sqe`]; chain
//! [`Sqe::user_data`] and [`Sqe::flags`] to finish it. Building is safe: pointers are only recorded.
//! Pushing is where the memory contract lives ([`crate::Sq::push`]).
//!
//! Mirrors the `io_uring_prep_*` helpers of liburing and io_uring_enter(2).

use crate::sys::abi::{self, opcode, sqe_flag, IoVec, Sqe, Timespec};

bitflags::bitflags! {
    /// `IOSQE_*` flags of one SQE.
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
    pub struct SqeFlags: u8 {
        /// `fd` is an index into the registered file table.
        const FIXED_FILE = sqe_flag::FIXED_FILE;
        /// Start only after every earlier SQE completed, and hold later ones back.
        const IO_DRAIN = sqe_flag::IO_DRAIN;
        /// The next SQE starts only after this one succeeds; a failure cancels the rest of the chain.
        const IO_LINK = sqe_flag::IO_LINK;
        /// Like `IO_LINK`, but the chain continues even if this one fails.
        const IO_HARDLINK = sqe_flag::IO_HARDLINK;
        /// Issue asynchronously (io-wq) without trying inline first.
        const ASYNC = sqe_flag::ASYNC;
        /// Post no CQE when the request succeeds.
        const CQE_SKIP_SUCCESS = sqe_flag::CQE_SKIP_SUCCESS;
    }
}

/// A file to operate on: a plain descriptor, or an index into the registered file table.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A raw file descriptor.
    Fd(i32),
    /// An index into the ring's registered files (sets `IOSQE_FIXED_FILE`).
    Fixed(u32),
}

impl From<i32> for Target {
    fn from(fd: i32) -> Self {
        Target::Fd(fd)
    }
}

/// The file offset meaning "the file's current position" (for non-seekable files and streams).
pub const CURRENT_POSITION: u64 = u64::MAX;

/// `AT_FDCWD`, for [`openat`] and [`statx`] with a relative path.
pub const AT_FDCWD: i32 = -100;

impl Sqe {
    /// Sets `user_data`, returned unchanged in the CQE.
    #[must_use]
    pub const fn user_data(mut self, user_data: u64) -> Self {
        self.user_data = user_data;
        self
    }

    /// Adds `IOSQE_*` flags (keeps `FIXED_FILE` when the target set it).
    #[must_use]
    pub const fn flags(mut self, flags: SqeFlags) -> Self {
        self.flags |= flags.bits();
        self
    }

    /// Sets the I/O priority.
    #[must_use]
    pub const fn ioprio(mut self, ioprio: u16) -> Self {
        self.ioprio = ioprio;
        self
    }

    /// The `IOSQE_*` flags set.
    pub const fn sqe_flags(&self) -> SqeFlags {
        SqeFlags::from_bits_retain(self.flags)
    }
}

fn base(op: u8, target: Target) -> Sqe {
    let mut sqe = Sqe {
        opcode: op,
        ..Sqe::default()
    };
    match target {
        Target::Fd(fd) => sqe.fd = fd,
        Target::Fixed(i) => {
            sqe.fd = i as i32;
            sqe.flags = sqe_flag::FIXED_FILE;
        }
    }
    sqe
}

fn rw(op: u8, fd: impl Into<Target>, addr: u64, len: u32, offset: u64) -> Sqe {
    let mut sqe = base(op, fd.into());
    sqe.addr = addr;
    sqe.len = len;
    sqe.off = offset;
    sqe
}

/// `IORING_OP_NOP`: completes with 0.
pub fn nop() -> Sqe {
    base(opcode::NOP, Target::Fd(-1))
}

/// `IORING_OP_READ`: read up to `len` bytes at `offset` into `buf`.
pub fn read(fd: impl Into<Target>, buf: *mut u8, len: u32, offset: u64) -> Sqe {
    rw(opcode::READ, fd, buf as u64, len, offset)
}

/// `IORING_OP_WRITE`: write `len` bytes from `buf` at `offset`.
pub fn write(fd: impl Into<Target>, buf: *const u8, len: u32, offset: u64) -> Sqe {
    rw(opcode::WRITE, fd, buf as u64, len, offset)
}

/// `IORING_OP_READV`: scatter read into `count` iovecs.
pub fn readv(fd: impl Into<Target>, iov: *const IoVec, count: u32, offset: u64) -> Sqe {
    rw(opcode::READV, fd, iov as u64, count, offset)
}

/// `IORING_OP_WRITEV`: gather write from `count` iovecs.
pub fn writev(fd: impl Into<Target>, iov: *const IoVec, count: u32, offset: u64) -> Sqe {
    rw(opcode::WRITEV, fd, iov as u64, count, offset)
}

/// `IORING_OP_READ_FIXED`: read into registered buffer `buf_index` (`buf` lies inside it).
pub fn read_fixed(
    fd: impl Into<Target>,
    buf: *mut u8,
    len: u32,
    offset: u64,
    buf_index: u16,
) -> Sqe {
    let mut sqe = rw(opcode::READ_FIXED, fd, buf as u64, len, offset);
    sqe.buf_index = buf_index;
    sqe
}

/// `IORING_OP_WRITE_FIXED`: write from registered buffer `buf_index` (`buf` lies inside it).
pub fn write_fixed(
    fd: impl Into<Target>,
    buf: *const u8,
    len: u32,
    offset: u64,
    buf_index: u16,
) -> Sqe {
    let mut sqe = rw(opcode::WRITE_FIXED, fd, buf as u64, len, offset);
    sqe.buf_index = buf_index;
    sqe
}

/// `IORING_OP_FSYNC`: flush data and metadata.
pub fn fsync(fd: impl Into<Target>) -> Sqe {
    base(opcode::FSYNC, fd.into())
}

/// `IORING_OP_FSYNC` with `IORING_FSYNC_DATASYNC`: flush data (fdatasync).
pub fn fdatasync(fd: impl Into<Target>) -> Sqe {
    let mut sqe = fsync(fd);
    sqe.op_flags = abi::IORING_FSYNC_DATASYNC;
    sqe
}

/// `IORING_OP_OPENAT`: `openat(dirfd, path, flags, mode)`; `path` is NUL-terminated.
pub fn openat(dirfd: i32, path: *const u8, flags: u32, mode: u32) -> Sqe {
    let mut sqe = base(opcode::OPENAT, Target::Fd(dirfd));
    sqe.addr = path as u64;
    sqe.len = mode;
    sqe.op_flags = flags;
    sqe
}

/// `IORING_OP_CLOSE`: closes a descriptor, or (with [`Target::Fixed`]) a registered file slot.
pub fn close(target: impl Into<Target>) -> Sqe {
    match target.into() {
        Target::Fd(fd) => base(opcode::CLOSE, Target::Fd(fd)),
        Target::Fixed(i) => {
            let mut sqe = base(opcode::CLOSE, Target::Fd(0));
            // The kernel reads `file_index - 1` as the slot; 0 means "no slot: close `fd`", so
            // slot u32::MAX must not wrap to 0 (that would close fd 0). Saturated, it names slot
            // u32::MAX - 1, beyond any file table, and the kernel fails the request.
            sqe.file_index = i.saturating_add(1) as i32;
            sqe
        }
    }
}

/// `IORING_OP_STATX`: `statx(dirfd, path, flags, mask, statxbuf)`; `path` is NUL-terminated and
/// `statxbuf` points at a `struct statx` (256 bytes).
pub fn statx(dirfd: i32, path: *const u8, flags: u32, mask: u32, statxbuf: *mut u8) -> Sqe {
    let mut sqe = base(opcode::STATX, Target::Fd(dirfd));
    sqe.addr = path as u64;
    sqe.len = mask;
    sqe.off = statxbuf as u64;
    sqe.op_flags = flags;
    sqe
}

/// `IORING_OP_FALLOCATE`: `fallocate(fd, mode, offset, len)`.
pub fn fallocate(fd: impl Into<Target>, mode: u32, offset: u64, len: u64) -> Sqe {
    let mut sqe = base(opcode::FALLOCATE, fd.into());
    sqe.off = offset;
    sqe.addr = len;
    sqe.len = mode;
    sqe
}

/// `IORING_OP_FTRUNCATE` (Linux 6.9+; probe first): `ftruncate(fd, len)`.
pub fn ftruncate(fd: impl Into<Target>, len: u64) -> Sqe {
    let mut sqe = base(opcode::FTRUNCATE, fd.into());
    sqe.off = len;
    sqe
}

/// `IORING_OP_SYNC_FILE_RANGE`: `sync_file_range(fd, offset, len, flags)`.
pub fn sync_file_range(fd: impl Into<Target>, offset: u64, len: u32, flags: u32) -> Sqe {
    let mut sqe = base(opcode::SYNC_FILE_RANGE, fd.into());
    sqe.off = offset;
    sqe.len = len;
    sqe.op_flags = flags;
    sqe
}

/// `IORING_OP_ASYNC_CANCEL` of the request whose `user_data` is `target` (res 0 when found,
/// `-ENOENT` when not, `-EALREADY` when it is running and cannot be stopped).
pub fn async_cancel(target: u64) -> Sqe {
    let mut sqe = base(opcode::ASYNC_CANCEL, Target::Fd(-1));
    sqe.addr = target;
    sqe
}

/// `IORING_OP_ASYNC_CANCEL` of requests on `fd` (`IORING_ASYNC_CANCEL_FD`, Linux 5.19+; with
/// `all`, every such request and the CQE's `res` counts them).
pub fn async_cancel_fd(fd: i32, all: bool) -> Sqe {
    let mut sqe = base(opcode::ASYNC_CANCEL, Target::Fd(fd));
    sqe.op_flags = abi::IORING_ASYNC_CANCEL_FD | if all { abi::IORING_ASYNC_CANCEL_ALL } else { 0 };
    sqe
}

/// `IORING_OP_ASYNC_CANCEL` of every request in the ring (`IORING_ASYNC_CANCEL_ANY |
/// IORING_ASYNC_CANCEL_ALL`, Linux 5.19+); the CQE's `res` counts them.
pub fn async_cancel_any() -> Sqe {
    let mut sqe = base(opcode::ASYNC_CANCEL, Target::Fd(-1));
    sqe.op_flags = abi::IORING_ASYNC_CANCEL_ANY | abi::IORING_ASYNC_CANCEL_ALL;
    sqe
}

/// `IORING_OP_TIMEOUT`: completes with `-ETIME` after `ts`, or with 0 once `count` other CQEs
/// were posted (`count == 0`: a pure timer). `flags`: `IORING_TIMEOUT_*`. The kernel copies
/// `*ts` when it prepares the request.
pub fn timeout(ts: &Timespec, count: u32, flags: u32) -> Sqe {
    let mut sqe = base(opcode::TIMEOUT, Target::Fd(-1));
    sqe.addr = ts as *const Timespec as u64;
    sqe.len = 1;
    sqe.off = u64::from(count);
    sqe.op_flags = flags;
    sqe
}

/// `IORING_OP_TIMEOUT_REMOVE` of the timeout whose `user_data` is `target`.
pub fn timeout_remove(target: u64) -> Sqe {
    let mut sqe = base(opcode::TIMEOUT_REMOVE, Target::Fd(-1));
    sqe.addr = target;
    sqe
}

/// `IORING_OP_LINK_TIMEOUT`: bounds the previous, `IO_LINK`ed SQE; it is cancelled (`-ECANCELED`)
/// if it has not completed after `ts`.
pub fn link_timeout(ts: &Timespec, flags: u32) -> Sqe {
    let mut sqe = base(opcode::LINK_TIMEOUT, Target::Fd(-1));
    sqe.addr = ts as *const Timespec as u64;
    sqe.len = 1;
    sqe.op_flags = flags;
    sqe
}
