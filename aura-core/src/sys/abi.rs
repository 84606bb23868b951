//! The kernel's io_uring structures, as plain integers.
//!
//! Every field the kernel writes (CQEs, ring offsets, probe results) is declared here as an integer,
//! never as a Rust enum: a kernel newer than our bindings may report values we do not know (6.18
//! reports opcodes up to 62; rustix's typed probe enum stops at 57), and reading an unknown value
//! into an enum is undefined behaviour. Constants come from `linux-raw-sys`; the layout of every
//! struct is checked against `linux-raw-sys`'s bindgen output with `static_assertions`.
//!
//! Mirrors `include/uapi/linux/io_uring.h`.

use core::mem::{align_of, size_of};
use linux_raw_sys::io_uring as k;
use static_assertions::const_assert_eq;

/// A submission queue entry, exactly as the kernel reads it (64 bytes, no `SQE128`).
///
/// Unions of the C struct appear under one name each; the builders in [`crate::op`] document
/// which union member a field holds for each opcode.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Sqe {
    /// `IORING_OP_*`.
    pub opcode: u8,
    /// `IOSQE_*` flags.
    pub flags: u8,
    /// I/O priority (`ioprio`).
    pub ioprio: u16,
    /// File descriptor, or index into the registered file table with `IOSQE_FIXED_FILE`.
    pub fd: i32,
    /// `off` / `addr2`: file offset, or a second address.
    pub off: u64,
    /// `addr` / `splice_off_in`: buffer or iovec address.
    pub addr: u64,
    /// Buffer length, iovec count, or an op-specific count.
    pub len: u32,
    /// The op-specific flags union (`rw_flags`, `fsync_flags`, `timeout_flags`, `open_flags`, ...).
    pub op_flags: u32,
    /// Returned unchanged in the CQE.
    pub user_data: u64,
    /// `buf_index` / `buf_group`: registered buffer index.
    pub buf_index: u16,
    /// Credentials to issue the request with (`personality`).
    pub personality: u16,
    /// `splice_fd_in` / `file_index`.
    pub file_index: i32,
    /// `addr3`.
    pub addr3: u64,
    /// Reserved (`__pad2`).
    pub pad2: u64,
}

/// A completion queue entry, exactly as the kernel writes it (16 bytes, no `CQE32`).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Cqe {
    /// The `user_data` of the SQE this completes.
    pub user_data: u64,
    /// The result: `>= 0` success (bytes, fd, ...), `< 0` a negated errno.
    pub res: i32,
    /// `IORING_CQE_F_*` bits (kept as an integer: unknown bits are legal).
    pub flags: u32,
}

/// `struct io_sqring_offsets`: where the SQ ring's fields sit in its mapping.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct SqringOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub flags: u32,
    pub dropped: u32,
    pub array: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

/// `struct io_cqring_offsets`: where the CQ ring's fields sit in its mapping.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CqringOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub overflow: u32,
    pub cqes: u32,
    pub flags: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

/// `struct io_uring_params`: setup input and the kernel's answer.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RawParams {
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub flags: u32,
    pub sq_thread_cpu: u32,
    pub sq_thread_idle: u32,
    pub features: u32,
    pub wq_fd: u32,
    pub resv: [u32; 3],
    pub sq_off: SqringOffsets,
    pub cq_off: CqringOffsets,
}

/// `struct io_uring_probe_op`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ProbeOp {
    pub op: u8,
    pub resv: u8,
    pub flags: u16,
    pub resv2: u32,
}

/// `struct io_uring_probe` header (followed by `ops_len` [`ProbeOp`]s).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ProbeHeader {
    pub last_op: u8,
    pub ops_len: u8,
    pub resv: u16,
    pub resv2: [u32; 3],
}

/// `struct io_uring_files_update` (also `io_uring_rsrc_update`).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct FilesUpdate {
    pub offset: u32,
    pub resv: u32,
    pub fds: u64,
}

/// `struct __kernel_timespec`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub tv_nsec: i64,
}

impl Timespec {
    /// A relative timespec of `ns` nanoseconds.
    pub const fn from_nanos(ns: u64) -> Self {
        Timespec {
            tv_sec: (ns / 1_000_000_000) as i64,
            tv_nsec: (ns % 1_000_000_000) as i64,
        }
    }
}

/// `struct iovec`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IoVec {
    /// Start of the buffer.
    pub base: *mut u8,
    /// Its length in bytes.
    pub len: usize,
}

// SAFETY: an iovec is a plain (address, length) description; moving or sharing the description
// between threads touches no memory. Whoever hands it to the kernel or dereferences it carries the
// obligation that the memory is valid (`Sq::push`, `Ring::register_buffers`).
unsafe impl Send for IoVec {}
// SAFETY: as above: reading the pair from several threads reads only the pair.
unsafe impl Sync for IoVec {}

// Layout checks against linux-raw-sys's bindgen output of the kernel headers.
const_assert_eq!(size_of::<Sqe>(), size_of::<k::io_uring_sqe>());
const_assert_eq!(align_of::<Sqe>(), align_of::<k::io_uring_sqe>());
const_assert_eq!(size_of::<Sqe>(), 64);
const_assert_eq!(size_of::<Cqe>(), size_of::<k::io_uring_cqe>());
const_assert_eq!(align_of::<Cqe>(), align_of::<k::io_uring_cqe>());
const_assert_eq!(size_of::<Cqe>(), 16);
const_assert_eq!(
    size_of::<SqringOffsets>(),
    size_of::<k::io_sqring_offsets>()
);
const_assert_eq!(
    size_of::<CqringOffsets>(),
    size_of::<k::io_cqring_offsets>()
);
const_assert_eq!(size_of::<RawParams>(), size_of::<k::io_uring_params>());
const_assert_eq!(align_of::<RawParams>(), align_of::<k::io_uring_params>());
const_assert_eq!(size_of::<ProbeOp>(), size_of::<k::io_uring_probe_op>());
const_assert_eq!(size_of::<ProbeHeader>(), size_of::<k::io_uring_probe>());
const_assert_eq!(
    size_of::<FilesUpdate>(),
    size_of::<k::io_uring_files_update>()
);
const_assert_eq!(size_of::<Timespec>(), size_of::<k::__kernel_timespec>());
const_assert_eq!(size_of::<IoVec>(), 16);
const_assert_eq!(align_of::<IoVec>(), 8);

macro_rules! offsets_match {
    ($ours:ty, $theirs:ty, { $($f:ident => $g:ident),* $(,)? }) => {
        $( const_assert_eq!(core::mem::offset_of!($ours, $f), core::mem::offset_of!($theirs, $g)); )*
    };
}

offsets_match!(Sqe, k::io_uring_sqe, {
    opcode => opcode, flags => flags, ioprio => ioprio, fd => fd, off => __bindgen_anon_1,
    addr => __bindgen_anon_2, len => len, op_flags => __bindgen_anon_3, user_data => user_data,
    buf_index => __bindgen_anon_4, personality => personality, file_index => __bindgen_anon_5,
});
const_assert_eq!(
    core::mem::offset_of!(Sqe, addr3),
    core::mem::offset_of!(k::io_uring_sqe, __bindgen_anon_6)
);
offsets_match!(Cqe, k::io_uring_cqe, { user_data => user_data, res => res, flags => flags });
offsets_match!(SqringOffsets, k::io_sqring_offsets, {
    head => head, tail => tail, ring_mask => ring_mask, ring_entries => ring_entries,
    flags => flags, dropped => dropped, array => array, resv1 => resv1, user_addr => user_addr,
});
offsets_match!(CqringOffsets, k::io_cqring_offsets, {
    head => head, tail => tail, ring_mask => ring_mask, ring_entries => ring_entries,
    overflow => overflow, cqes => cqes, flags => flags, resv1 => resv1, user_addr => user_addr,
});
offsets_match!(RawParams, k::io_uring_params, {
    sq_entries => sq_entries, cq_entries => cq_entries, flags => flags,
    sq_thread_cpu => sq_thread_cpu, sq_thread_idle => sq_thread_idle, features => features,
    wq_fd => wq_fd, resv => resv, sq_off => sq_off, cq_off => cq_off,
});
offsets_match!(ProbeOp, k::io_uring_probe_op, { op => op, resv => resv, flags => flags, resv2 => resv2 });
offsets_match!(ProbeHeader, k::io_uring_probe, { last_op => last_op, ops_len => ops_len, resv => resv, resv2 => resv2 });
offsets_match!(FilesUpdate, k::io_uring_files_update, { offset => offset, resv => resv, fds => fds });

/// Opcode numbers (`IORING_OP_*`), as the `u8` an SQE carries.
#[allow(missing_docs)]
pub mod opcode {
    use linux_raw_sys::io_uring::io_uring_op as o;
    pub const NOP: u8 = o::IORING_OP_NOP as u8;
    pub const READV: u8 = o::IORING_OP_READV as u8;
    pub const WRITEV: u8 = o::IORING_OP_WRITEV as u8;
    pub const FSYNC: u8 = o::IORING_OP_FSYNC as u8;
    pub const READ_FIXED: u8 = o::IORING_OP_READ_FIXED as u8;
    pub const WRITE_FIXED: u8 = o::IORING_OP_WRITE_FIXED as u8;
    pub const SYNC_FILE_RANGE: u8 = o::IORING_OP_SYNC_FILE_RANGE as u8;
    pub const TIMEOUT: u8 = o::IORING_OP_TIMEOUT as u8;
    pub const TIMEOUT_REMOVE: u8 = o::IORING_OP_TIMEOUT_REMOVE as u8;
    pub const ASYNC_CANCEL: u8 = o::IORING_OP_ASYNC_CANCEL as u8;
    pub const LINK_TIMEOUT: u8 = o::IORING_OP_LINK_TIMEOUT as u8;
    pub const FALLOCATE: u8 = o::IORING_OP_FALLOCATE as u8;
    pub const OPENAT: u8 = o::IORING_OP_OPENAT as u8;
    pub const CLOSE: u8 = o::IORING_OP_CLOSE as u8;
    pub const STATX: u8 = o::IORING_OP_STATX as u8;
    pub const READ: u8 = o::IORING_OP_READ as u8;
    pub const WRITE: u8 = o::IORING_OP_WRITE as u8;
    pub const FTRUNCATE: u8 = o::IORING_OP_FTRUNCATE as u8;
    /// One past the highest opcode these bindings name; a kernel may report more.
    pub const LAST_KNOWN: u8 = o::IORING_OP_LAST as u8;
}

pub use linux_raw_sys::io_uring::{
    IORING_ASYNC_CANCEL_ALL, IORING_ASYNC_CANCEL_ANY, IORING_ASYNC_CANCEL_FD,
    IORING_ASYNC_CANCEL_USERDATA, IORING_CQE_F_BUFFER, IORING_CQE_F_MORE, IORING_CQE_F_NOTIF,
    IORING_CQ_EVENTFD_DISABLED, IORING_ENTER_EXT_ARG, IORING_ENTER_GETEVENTS, IORING_ENTER_SQ_WAIT,
    IORING_ENTER_SQ_WAKEUP, IORING_FEAT_CQE_SKIP, IORING_FEAT_EXT_ARG, IORING_FEAT_NODROP,
    IORING_FEAT_SINGLE_MMAP, IORING_FEAT_SUBMIT_STABLE, IORING_FSYNC_DATASYNC, IORING_OFF_CQ_RING,
    IORING_OFF_SQES, IORING_OFF_SQ_RING, IORING_SETUP_ATTACH_WQ, IORING_SETUP_CLAMP,
    IORING_SETUP_COOP_TASKRUN, IORING_SETUP_CQSIZE, IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_IOPOLL, IORING_SETUP_NO_SQARRAY, IORING_SETUP_R_DISABLED,
    IORING_SETUP_SINGLE_ISSUER, IORING_SETUP_SQPOLL, IORING_SETUP_SQ_AFF, IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_TASKRUN_FLAG, IORING_SQ_CQ_OVERFLOW, IORING_SQ_NEED_WAKEUP, IORING_SQ_TASKRUN,
    IORING_TIMEOUT_ABS, IORING_TIMEOUT_ETIME_SUCCESS, IO_URING_OP_SUPPORTED,
};

/// `IOSQE_*` bits, as the `u8` an SQE carries.
#[allow(missing_docs)]
pub mod sqe_flag {
    use linux_raw_sys::io_uring::io_uring_sqe_flags_bit as b;
    pub const FIXED_FILE: u8 = 1 << b::IOSQE_FIXED_FILE_BIT as u8;
    pub const IO_DRAIN: u8 = 1 << b::IOSQE_IO_DRAIN_BIT as u8;
    pub const IO_LINK: u8 = 1 << b::IOSQE_IO_LINK_BIT as u8;
    pub const IO_HARDLINK: u8 = 1 << b::IOSQE_IO_HARDLINK_BIT as u8;
    pub const ASYNC: u8 = 1 << b::IOSQE_ASYNC_BIT as u8;
    pub const BUFFER_SELECT: u8 = 1 << b::IOSQE_BUFFER_SELECT_BIT as u8;
    pub const CQE_SKIP_SUCCESS: u8 = 1 << b::IOSQE_CQE_SKIP_SUCCESS_BIT as u8;
}
