//! Integration tests of aura-core against the running kernel's io_uring.
//!
//! Every opcode aura builds is run for real and its data checked byte for byte; link chains,
//! registered files and buffers, CQ overflow (nothing may be lost), the setup variants (separate
//! mappings, no EXT_ARG, COOP/DEFER_TASKRUN, SQPOLL), the opcode probe and the RLIMIT_MEMLOCK
//! error are covered too.
//!
//! A test that cannot run here (an opcode or setup flag the kernel lacks, a missing privilege)
//! prints `skipped: <test>: <why>` on stderr and returns, which the harness counts as a pass: run
//! `cargo test -p aura-tests --test ring_live -- --nocapture` to see the skips.
//!
//! Errno values and the open(2) / statx(2) / sync_file_range(2) constants are the Linux x86_64
//! uapi numbers, written out because std does not export them; `errno_constants_match_the_kernel`
//! checks the errno values against aura-core's [`Errno`].

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use aura_core::op::{self, SqeFlags, Target, AT_FDCWD, CURRENT_POSITION};
use aura_core::register::Probe;
use aura_core::sys::abi::{opcode, ProbeHeader, ProbeOp, IO_URING_OP_SUPPORTED};
use aura_core::{Cqe, Errno, Error, Features, IoVec, Params, Ring, SetupFlags, Sqe, Timespec};
use aura_tests::{pattern, skip, temp_path, tempfile, tempfile_with, TempPath};

/// `ENOENT`: no such file, or no such request (cancel, timeout removal).
const ENOENT: i32 = 2;
/// `ENXIO`: nothing registered (eventfd unregistration).
const ENXIO: i32 = 6;
/// `EBADF`: bad file descriptor.
const EBADF: i32 = 9;
/// `EFAULT`: an address outside the registered buffer.
const EFAULT: i32 = 14;
/// `EINVAL`: invalid argument.
const EINVAL: i32 = 22;
/// `ETIME`: a timeout expired.
const ETIME: i32 = 62;
/// `ECANCELED`: the request was cancelled.
const ECANCELED: i32 = 125;

/// `O_RDONLY` (x86_64 uapi).
const O_RDONLY: u32 = 0;
/// `O_WRONLY` (x86_64 uapi).
const O_WRONLY: u32 = 1;
/// `O_RDWR` (x86_64 uapi).
const O_RDWR: u32 = 2;
/// `O_CREAT` (x86_64 uapi, octal 0100).
const O_CREAT: u32 = 0o100;
/// `O_TRUNC` (x86_64 uapi, octal 01000).
const O_TRUNC: u32 = 0o1000;

/// `STATX_SIZE`: ask statx for `stx_size`.
const STATX_SIZE: u32 = 0x200;
/// Byte offset of `stx_mask` (u32) in `struct statx`.
const STX_MASK_OFFSET: usize = 0;
/// Byte offset of `stx_size` (u64) in `struct statx`.
const STX_SIZE_OFFSET: usize = 40;

/// `SYNC_FILE_RANGE_WRITE`: start writeback of dirty pages in the range.
const SYNC_FILE_RANGE_WRITE: u32 = 2;

/// `IORING_OP_FTRUNCATE` (Linux 6.9+).
const IORING_OP_FTRUNCATE: u8 = 55;

/// How long one wait for completions may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(5);

/// Tests run on parallel threads of one process, so a file-descriptor number freed by one test
/// can be handed to another at once. A test that uses a *closed* descriptor number on purpose
/// takes this lock exclusively; every other test holds it shared while it runs.
static FD_NUMBERS: RwLock<()> = RwLock::new(());

/// Holds descriptor numbers stable for a test that only uses descriptors it owns.
fn fds_shared() -> RwLockReadGuard<'static, ()> {
    FD_NUMBERS.read().unwrap_or_else(|e| e.into_inner())
}

/// Keeps every other test from opening descriptors (for a test that reuses a closed number).
fn fds_exclusive() -> RwLockWriteGuard<'static, ()> {
    FD_NUMBERS.write().unwrap_or_else(|e| e.into_inner())
}

/// A default ring of `entries` SQEs.
fn new_ring(entries: u32) -> Ring {
    Ring::new(entries, &Params::new()).expect("io_uring_setup")
}

/// Waits (at most [`PATIENCE`]) for exactly `n` CQEs and returns them in arrival order.
fn reap(ring: &mut Ring, n: usize) -> Vec<Cqe> {
    let deadline = Instant::now() + PATIENCE;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} CQEs after {PATIENCE:?}: {out:?}",
            out.len()
        );
        let missing = u32::try_from(n - out.len()).unwrap_or(u32::MAX);
        ring.submit_and_wait_timeout(missing.min(ring.cq_entries()), 50_000_000)
            .expect("submit_and_wait_timeout");
        out.extend(ring.cq());
    }
    assert_eq!(out.len(), n, "more CQEs than requests: {out:?}");
    out
}

/// Pushes `sqes` (submitting whenever the SQ is full), then reaps one CQE per SQE.
///
/// # Safety
///
/// Every pointer the SQEs carry must stay valid until this returns (it returns once all their
/// CQEs are reaped).
unsafe fn run(ring: &mut Ring, sqes: &[Sqe]) -> Vec<Cqe> {
    // SAFETY: the caller's contract (the CQEs are reaped before this returns).
    unsafe { push_all(ring, sqes) };
    reap(ring, sqes.len())
}

/// Pushes `sqes` (submitting whenever the SQ is full) and submits them, without waiting.
///
/// # Safety
///
/// Every pointer the SQEs carry must stay valid until their CQEs are reaped.
unsafe fn push_all(ring: &mut Ring, sqes: &[Sqe]) {
    for sqe in sqes {
        let deadline = Instant::now() + PATIENCE;
        // SAFETY: the caller's contract.
        while unsafe { ring.sq().push(sqe) }.is_err() {
            assert!(Instant::now() < deadline, "the SQ never drained");
            ring.submit().expect("submit");
        }
    }
    ring.submit().expect("submit");
}

/// Runs one SQE and returns its result.
///
/// # Safety
///
/// As for [`run`].
unsafe fn run1(ring: &mut Ring, sqe: Sqe) -> i32 {
    // SAFETY: the caller's contract.
    let cqes = unsafe { run(ring, &[sqe.user_data(0x5eed)]) };
    res(&cqes, 0x5eed)
}

/// The result of the single CQE carrying `user_data`.
#[track_caller]
fn res(cqes: &[Cqe], user_data: u64) -> i32 {
    let hits: Vec<&Cqe> = cqes.iter().filter(|c| c.user_data == user_data).collect();
    assert_eq!(hits.len(), 1, "one CQE for user_data {user_data}: {cqes:?}");
    hits[0].res
}

/// Asserts that no CQE is ready.
#[track_caller]
fn assert_no_cqe(ring: &mut Ring) {
    let extra: Vec<Cqe> = ring.cq().collect();
    assert!(extra.is_empty(), "unexpected CQEs: {extra:?}");
}

/// A NUL-terminated copy of `path`.
fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path")
}

/// The whole content of the file at `path`.
fn contents(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read back with std")
}

#[test]
fn errno_constants_match_the_kernel() {
    for (ours, e) in [
        (ENOENT, Errno::NOENT),
        (ENXIO, Errno::NXIO),
        (EBADF, Errno::BADF),
        (EFAULT, Errno::FAULT),
        (EINVAL, Errno::INVAL),
        (ETIME, Errno::TIME),
        (ECANCELED, Errno::CANCELED),
    ] {
        assert_eq!(ours, e.raw_os_error(), "{e:?}");
    }
    assert_eq!(opcode::FTRUNCATE, IORING_OP_FTRUNCATE);
}

#[test]
fn nop_completes_with_zero() {
    let _fds = fds_shared();
    let mut ring = new_ring(8);
    let sqes: Vec<Sqe> = (1..=20).map(|i| op::nop().user_data(i)).collect();
    // SAFETY: NOPs carry no pointers.
    let cqes = unsafe { run(&mut ring, &sqes) };
    for i in 1..=20 {
        assert_eq!(res(&cqes, i), 0);
    }
    assert_eq!(cqes.iter().map(|c| c.flags).max(), Some(0));
    assert_no_cqe(&mut ring);
}

#[test]
fn full_sq_hands_the_entry_back() {
    let _fds = fds_shared();
    let mut ring = new_ring(4);
    let cap = ring.sq_entries();
    {
        let mut sq = ring.sq();
        for i in 0..cap {
            // SAFETY: NOPs carry no pointers.
            unsafe { sq.push(&op::nop().user_data(u64::from(i))) }.expect("room");
        }
        assert!(sq.is_full());
        let extra = op::nop().user_data(99);
        // SAFETY: as above.
        assert_eq!(unsafe { sq.push(&extra) }, Err(extra));
    }
    assert_eq!(ring.submit().expect("submit"), cap);
    let cqes = reap(&mut ring, cap as usize);
    for i in 0..cap {
        assert_eq!(res(&cqes, u64::from(i)), 0);
    }
    // SAFETY: NOPs carry no pointers.
    assert_eq!(unsafe { run1(&mut ring, op::nop()) }, 0);
}

#[test]
fn write_then_read_back() {
    let _fds = fds_shared();
    let t = tempfile("rw");
    let fd = t.file.as_raw_fd();
    let data = pattern(1, 10_000);
    let tail = pattern(2, 333);
    let mut ring = new_ring(8);
    let sqes = [
        op::write(fd, data.as_ptr(), data.len() as u32, 0).user_data(1),
        op::write(fd, tail.as_ptr(), tail.len() as u32, 20_000).user_data(2),
    ];
    // SAFETY: `data` and `tail` outlive `run`, which reaps both CQEs.
    let cqes = unsafe { run(&mut ring, &sqes) };
    assert_eq!(res(&cqes, 1), 10_000);
    assert_eq!(res(&cqes, 2), 333);

    let disk = contents(&t.path);
    assert_eq!(disk.len(), 20_333);
    assert_eq!(&disk[..10_000], &data[..]);
    assert!(
        disk[10_000..20_000].iter().all(|&b| b == 0),
        "a hole reads as zeros"
    );
    assert_eq!(&disk[20_000..], &tail[..]);

    let mut back = vec![0xEE; 10_000];
    let mut back_tail = vec![0xEE; 400];
    let mut at_eof = vec![0xEE; 16];
    let sqes = [
        op::read(fd, back.as_mut_ptr(), 10_000, 0).user_data(3),
        op::read(fd, back_tail.as_mut_ptr(), 400, 20_000).user_data(4),
        op::read(fd, at_eof.as_mut_ptr(), 16, 20_333).user_data(5),
    ];
    // SAFETY: the three buffers outlive `run`, which reaps every CQE.
    let cqes = unsafe { run(&mut ring, &sqes) };
    assert_eq!(res(&cqes, 3), 10_000);
    assert_eq!(back, data);
    assert_eq!(res(&cqes, 4), 333, "a read across EOF is short");
    assert_eq!(&back_tail[..333], &tail[..]);
    assert!(
        back_tail[333..].iter().all(|&b| b == 0xEE),
        "nothing written past the result"
    );
    assert_eq!(res(&cqes, 5), 0, "a read at EOF returns 0");
    assert!(at_eof.iter().all(|&b| b == 0xEE));
}

#[test]
fn writev_readv_three_iovecs() {
    let _fds = fds_shared();
    let t = tempfile("vec");
    let fd = t.file.as_raw_fd();
    let parts = [pattern(3, 100), pattern(4, 1), pattern(5, 4000)];
    let all: Vec<u8> = parts.concat();
    let wiov: Vec<IoVec> = parts
        .iter()
        .map(|p| IoVec {
            base: p.as_ptr().cast_mut(),
            len: p.len(),
        })
        .collect();
    let mut ring = new_ring(8);
    // SAFETY: `wiov` and the parts it points at outlive the call, which reaps the CQE; the
    // kernel only reads them.
    let n = unsafe { run1(&mut ring, op::writev(fd, wiov.as_ptr(), 3, 512)) };
    assert_eq!(n, 4101);
    let disk = contents(&t.path);
    assert_eq!(disk.len(), 512 + 4101);
    assert!(disk[..512].iter().all(|&b| b == 0));
    assert_eq!(&disk[512..], &all[..]);

    // Split differently on the way back, and ask for more than there is (a short read).
    let mut bufs = [vec![0xAA; 50], vec![0xAA; 2000], vec![0xAA; 3000]];
    let riov: Vec<IoVec> = bufs
        .iter_mut()
        .map(|b| IoVec {
            base: b.as_mut_ptr(),
            len: b.len(),
        })
        .collect();
    // SAFETY: `riov` and the buffers it points at outlive the call, which reaps the CQE.
    let n = unsafe { run1(&mut ring, op::readv(fd, riov.as_ptr(), 3, 512)) };
    assert_eq!(n, 4101);
    assert_eq!(&bufs[0][..], &all[..50]);
    assert_eq!(&bufs[1][..], &all[50..2050]);
    assert_eq!(&bufs[2][..2051], &all[2050..]);
    assert!(bufs[2][2051..].iter().all(|&b| b == 0xAA));
}

/// Page-aligned memory for registered buffers.
#[repr(C, align(4096))]
struct Pages([u8; 4 * 4096]);

#[test]
fn fixed_buffers_write_and_read() {
    let _fds = fds_shared();
    let t = tempfile("fixed-buf");
    let fd = t.file.as_raw_fd();
    let data = pattern(6, 8192);
    // Declared before the ring, so the ring (and its registration) is dropped first.
    let mut pages = Box::new(Pages([0; 4 * 4096]));
    pages.0[..8192].copy_from_slice(&data);
    let ring_len = pages.0.len();
    let mut ring = new_ring(8);
    let iov = [IoVec {
        base: pages.0.as_mut_ptr(),
        len: ring_len,
    }];
    // SAFETY: `pages` is boxed (stable address) and outlives the registration: it is unregistered
    // below, and the ring is dropped before `pages` in any case.
    unsafe { ring.register_buffers(&iov) }.expect("register_buffers");

    let base = pages.0.as_mut_ptr();
    // SAFETY: the source lies inside registered buffer 0, which outlives the call.
    let n = unsafe { run1(&mut ring, op::write_fixed(fd, base, 8192, 0, 0)) };
    assert_eq!(n, 8192);
    assert_eq!(contents(&t.path), data);

    let base = pages.0.as_mut_ptr();
    // SAFETY: the destination lies inside registered buffer 0, which outlives the call.
    let n = unsafe {
        run1(
            &mut ring,
            op::read_fixed(fd, base.wrapping_add(8192), 8192, 0, 0),
        )
    };
    assert_eq!(n, 8192);
    assert_eq!(&pages.0[8192..], &data[..]);

    // An unaligned piece in the middle of the buffer, from the middle of the file.
    pages.0[8192..].fill(0);
    let base = pages.0.as_mut_ptr();
    let dst = base.wrapping_add(8192 + 100);
    // SAFETY: as above.
    let n = unsafe { run1(&mut ring, op::read_fixed(fd, dst, 1000, 3000, 0)) };
    assert_eq!(n, 1000);
    assert_eq!(&pages.0[8292..9292], &data[3000..4000]);
    assert!(pages.0[8192..8292].iter().all(|&b| b == 0));
    assert!(pages.0[9292..].iter().all(|&b| b == 0));

    // A range running past the registered buffer is refused, not performed.
    let base = pages.0.as_mut_ptr();
    // SAFETY: the kernel checks the range against the registration and touches nothing.
    let n = unsafe {
        run1(
            &mut ring,
            op::read_fixed(fd, base.wrapping_add(3 * 4096), 8192, 0, 0),
        )
    };
    assert_eq!(n, -EFAULT);

    ring.unregister_buffers().expect("unregister_buffers");
    let base = pages.0.as_mut_ptr();
    // SAFETY: with no registered buffer the kernel refuses the request without touching memory.
    let n = unsafe { run1(&mut ring, op::read_fixed(fd, base, 16, 0, 0)) };
    assert!(n < 0, "read_fixed after unregistering: {n}");
}

#[test]
fn fsync_and_fdatasync_return_zero() {
    let _fds = fds_shared();
    let t = tempfile("fsync");
    let fd = t.file.as_raw_fd();
    let data = pattern(7, 5000);
    let mut ring = new_ring(8);
    let sqes = [
        op::write(fd, data.as_ptr(), 5000, 0)
            .user_data(1)
            .flags(SqeFlags::IO_LINK),
        op::fsync(fd).user_data(2).flags(SqeFlags::IO_LINK),
        op::fdatasync(fd).user_data(3),
    ];
    // SAFETY: `data` outlives `run`, which reaps every CQE.
    let cqes = unsafe { run(&mut ring, &sqes) };
    assert_eq!(res(&cqes, 1), 5000);
    assert_eq!(res(&cqes, 2), 0);
    assert_eq!(res(&cqes, 3), 0);
    assert_eq!(contents(&t.path), data);
    // SAFETY: no pointers.
    assert_eq!(unsafe { run1(&mut ring, op::fsync(-1)) }, -EBADF);
}

#[test]
fn openat_read_close() {
    // Closes a descriptor twice on purpose: no other test may get that number in between.
    let _fds = fds_exclusive();
    let data = pattern(8, 3000);
    let src = tempfile_with("openat-src", &data);
    let path = c_path(&src.path);
    let mut ring = new_ring(8);

    // SAFETY: `path` outlives the call.
    let fd = unsafe {
        run1(
            &mut ring,
            op::openat(AT_FDCWD, path.as_ptr().cast(), O_RDONLY, 0),
        )
    };
    assert!(fd >= 0, "openat: {fd}");
    let mut buf = vec![0u8; 4000];
    // SAFETY: `buf` outlives the call.
    let n = unsafe { run1(&mut ring, op::read(fd, buf.as_mut_ptr(), 4000, 0)) };
    assert_eq!(n, 3000);
    assert_eq!(&buf[..3000], &data[..]);
    // A read-only descriptor refuses writes.
    // SAFETY: `data` outlives the call.
    let n = unsafe { run1(&mut ring, op::write(fd, data.as_ptr(), 10, 0)) };
    assert_eq!(n, -EBADF);
    // SAFETY: no pointers; `fd` is ours (the ring opened it) and nothing else uses it.
    assert_eq!(unsafe { run1(&mut ring, op::close(fd)) }, 0);
    // Closed for real: closing the number again fails (no test opened a descriptor meanwhile).
    // SAFETY: no pointers.
    assert_eq!(unsafe { run1(&mut ring, op::close(fd)) }, -EBADF);

    // O_CREAT | O_RDWR | O_TRUNC with a mode, then write and read through the new descriptor.
    let new = TempPath(temp_path("openat-new"));
    let new_c = c_path(&new.0);
    let flags = O_CREAT | O_RDWR | O_TRUNC;
    // SAFETY: `new_c` outlives the call.
    let fd = unsafe {
        run1(
            &mut ring,
            op::openat(AT_FDCWD, new_c.as_ptr().cast(), flags, 0o600),
        )
    };
    assert!(fd >= 0, "openat O_CREAT: {fd}");
    assert_eq!(
        // SAFETY: `data` outlives the call.
        unsafe { run1(&mut ring, op::write(fd, data.as_ptr(), 3000, 0)) },
        3000
    );
    buf.fill(0);
    assert_eq!(
        // SAFETY: `buf` outlives the call.
        unsafe { run1(&mut ring, op::read(fd, buf.as_mut_ptr(), 4000, 0)) },
        3000
    );
    assert_eq!(&buf[..3000], &data[..]);
    // SAFETY: no pointers; `fd` is ours.
    assert_eq!(unsafe { run1(&mut ring, op::close(fd)) }, 0);
    assert_eq!(contents(&new.0), data);
    let mode = std::fs::metadata(&new.0)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the mode travels in sqe.len");

    // O_WRONLY | O_TRUNC relative to a directory descriptor: truncates, and refuses reads.
    let dir = File::open(new.0.parent().expect("temp dir")).expect("open temp dir");
    let name = CString::new(new.0.file_name().expect("file name").as_bytes()).expect("no NUL");
    let dirfd = dir.as_raw_fd();
    let flags = O_WRONLY | O_TRUNC;
    // SAFETY: `name` outlives the call.
    let fd = unsafe { run1(&mut ring, op::openat(dirfd, name.as_ptr().cast(), flags, 0)) };
    assert!(fd >= 0, "openat relative to a dirfd: {fd}");
    assert_eq!(std::fs::metadata(&new.0).expect("stat").len(), 0);
    assert_eq!(
        // SAFETY: `buf` outlives the call.
        unsafe { run1(&mut ring, op::read(fd, buf.as_mut_ptr(), 10, 0)) },
        -EBADF
    );
    // SAFETY: no pointers; `fd` is ours.
    assert_eq!(unsafe { run1(&mut ring, op::close(fd)) }, 0);

    // A missing file.
    let missing = c_path(&temp_path("does-not-exist"));
    // SAFETY: `missing` outlives the call.
    let fd = unsafe {
        run1(
            &mut ring,
            op::openat(AT_FDCWD, missing.as_ptr().cast(), O_RDONLY, 0),
        )
    };
    assert_eq!(fd, -ENOENT);
}

/// A `struct statx` buffer (256 bytes, 8-aligned).
#[repr(C, align(8))]
struct StatxBuf([u8; 256]);

#[test]
fn statx_reports_the_size() {
    let _fds = fds_shared();
    let t = tempfile_with("statx", &pattern(9, 12_345));
    let path = c_path(&t.path);
    let mut ring = new_ring(8);
    let mut stx = Box::new(StatxBuf([0xFF; 256]));
    let sqe = op::statx(
        AT_FDCWD,
        path.as_ptr().cast(),
        0,
        STATX_SIZE,
        stx.0.as_mut_ptr(),
    );
    // SAFETY: `path` and `stx` outlive the call.
    assert_eq!(unsafe { run1(&mut ring, sqe) }, 0);
    let mask = u32::from_ne_bytes(stx.0[STX_MASK_OFFSET..][..4].try_into().expect("4 bytes"));
    assert_ne!(mask & STATX_SIZE, 0, "stx_mask {mask:#x} lacks STATX_SIZE");
    let size = u64::from_ne_bytes(stx.0[STX_SIZE_OFFSET..][..8].try_into().expect("8 bytes"));
    assert_eq!(size, 12_345);

    let missing = c_path(&temp_path("statx-missing"));
    let sqe = op::statx(
        AT_FDCWD,
        missing.as_ptr().cast(),
        0,
        STATX_SIZE,
        stx.0.as_mut_ptr(),
    );
    // SAFETY: as above.
    assert_eq!(unsafe { run1(&mut ring, sqe) }, -ENOENT);
}

#[test]
fn fallocate_extends_and_ftruncate_shrinks() {
    let _fds = fds_shared();
    let data = pattern(10, 100);
    let t = tempfile_with("falloc", &data);
    let fd = t.file.as_raw_fd();
    let mut ring = new_ring(8);
    assert_eq!(
        // SAFETY: no pointers.
        unsafe { run1(&mut ring, op::fallocate(fd, 0, 0, 65_536)) },
        0
    );
    assert_eq!(std::fs::metadata(&t.path).expect("stat").len(), 65_536);
    let disk = contents(&t.path);
    assert_eq!(&disk[..100], &data[..]);
    assert!(disk[100..].iter().all(|&b| b == 0));

    let probe = ring.probe().expect("probe");
    if !probe.supports(IORING_OP_FTRUNCATE) {
        skip(
            "fallocate_extends_and_ftruncate_shrinks",
            "ftruncate not supported by this kernel",
        );
        return;
    }
    // SAFETY: no pointers.
    assert_eq!(unsafe { run1(&mut ring, op::ftruncate(fd, 50)) }, 0);
    assert_eq!(contents(&t.path), &data[..50]);
    // SAFETY: no pointers.
    assert_eq!(unsafe { run1(&mut ring, op::ftruncate(fd, 0)) }, 0);
    assert_eq!(std::fs::metadata(&t.path).expect("stat").len(), 0);
}

#[test]
fn sync_file_range_returns_zero() {
    let _fds = fds_shared();
    let t = tempfile_with("sfr", &pattern(11, 20_000));
    let fd = t.file.as_raw_fd();
    let mut ring = new_ring(8);
    // SAFETY: no pointers.
    let n = unsafe {
        run1(
            &mut ring,
            op::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE),
        )
    };
    assert_eq!(n, 0);
    // SAFETY: no pointers.
    let n = unsafe {
        run1(
            &mut ring,
            op::sync_file_range(fd, 4096, 8192, SYNC_FILE_RANGE_WRITE),
        )
    };
    assert_eq!(n, 0);
    assert_eq!(contents(&t.path), pattern(11, 20_000));
}

#[test]
fn async_cancel_of_a_pending_timeout() {
    let _fds = fds_shared();
    let mut ring = new_ring(8);
    let ts = Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    let start = Instant::now();
    // SAFETY: `ts` outlives every CQE reaped below.
    unsafe { push_all(&mut ring, &[op::timeout(&ts, 0, 0).user_data(1)]) };
    assert_no_cqe(&mut ring);
    // SAFETY: no pointers.
    unsafe { push_all(&mut ring, &[op::async_cancel(1).user_data(2)]) };
    let cqes = reap(&mut ring, 2);
    assert_eq!(res(&cqes, 1), -ECANCELED);
    assert_eq!(res(&cqes, 2), 0);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the timer ran out instead"
    );

    assert_eq!(
        // SAFETY: no pointers.
        unsafe { run1(&mut ring, op::async_cancel(0xdead_beef)) },
        -ENOENT
    );
}

#[test]
fn async_cancel_fd_cancels_pending_reads() {
    let _fds = fds_shared();
    let (a, mut b) = UnixStream::pair().expect("socketpair");
    let fd = a.as_raw_fd();
    let mut ring = new_ring(8);
    let mut buf1 = [0u8; 16];
    let mut buf2 = [0u8; 16];
    let read1 = op::read(fd, buf1.as_mut_ptr(), 16, CURRENT_POSITION).user_data(1);
    // SAFETY: `buf1` outlives the CQE reaped below.
    unsafe { push_all(&mut ring, &[read1]) };
    assert_no_cqe(&mut ring);
    // SAFETY: no pointers.
    unsafe { push_all(&mut ring, &[op::async_cancel_fd(fd, false).user_data(2)]) };
    let cqes = reap(&mut ring, 2);
    if res(&cqes, 2) == -EINVAL {
        assert_eq!(res(&cqes, 1), -EINVAL);
        skip(
            "async_cancel_fd_cancels_pending_reads",
            "IORING_ASYNC_CANCEL_FD not supported by this kernel (5.19+)",
        );
        return;
    }
    assert_eq!(res(&cqes, 1), -ECANCELED);
    assert_eq!(res(&cqes, 2), 0);

    // With ALL, every request on the descriptor goes, and the result counts them.
    let sqes = [
        op::read(fd, buf1.as_mut_ptr(), 16, CURRENT_POSITION).user_data(3),
        op::read(fd, buf2.as_mut_ptr(), 16, CURRENT_POSITION).user_data(4),
    ];
    // SAFETY: `buf1` and `buf2` outlive the CQEs reaped below.
    unsafe { push_all(&mut ring, &sqes) };
    assert_no_cqe(&mut ring);
    // SAFETY: no pointers.
    unsafe { push_all(&mut ring, &[op::async_cancel_fd(fd, true).user_data(5)]) };
    let cqes = reap(&mut ring, 3);
    assert_eq!(res(&cqes, 3), -ECANCELED);
    assert_eq!(res(&cqes, 4), -ECANCELED);
    assert_eq!(res(&cqes, 5), 2);

    // Nothing left to cancel.
    assert_eq!(
        // SAFETY: no pointers.
        unsafe { run1(&mut ring, op::async_cancel_fd(fd, false)) },
        -ENOENT
    );

    // The descriptor still works: a read completes once data arrives.
    let read6 = op::read(fd, buf1.as_mut_ptr(), 16, CURRENT_POSITION).user_data(6);
    // SAFETY: `buf1` outlives the CQE reaped below.
    unsafe { push_all(&mut ring, &[read6]) };
    b.write_all(b"still alive").expect("write to the socket");
    let cqes = reap(&mut ring, 1);
    assert_eq!(res(&cqes, 6), 11);
    assert_eq!(&buf1[..11], b"still alive");
    drop(a);
}

#[test]
fn timeouts_expire_and_count() {
    let _fds = fds_shared();
    let mut ring = new_ring(8);
    let one_ms = Timespec::from_nanos(1_000_000);
    assert_eq!(
        // SAFETY: `one_ms` outlives the call.
        unsafe { run1(&mut ring, op::timeout(&one_ms, 0, 0)) },
        -ETIME
    );

    // A counted timeout completes with 0 once `count` other CQEs were posted.
    let ten_s = Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    let sqes = [
        op::timeout(&ten_s, 1, 0).user_data(1),
        op::nop().user_data(2),
    ];
    // SAFETY: `ten_s` outlives `run`.
    let cqes = unsafe { run(&mut ring, &sqes) };
    assert_eq!(res(&cqes, 1), 0);
    assert_eq!(res(&cqes, 2), 0);
}

#[test]
fn timeout_remove_cancels_a_timeout() {
    let _fds = fds_shared();
    let mut ring = new_ring(8);
    let ten_s = Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    // SAFETY: `ten_s` outlives every CQE reaped below.
    unsafe { push_all(&mut ring, &[op::timeout(&ten_s, 0, 0).user_data(1)]) };
    assert_no_cqe(&mut ring);
    // SAFETY: no pointers.
    unsafe { push_all(&mut ring, &[op::timeout_remove(1).user_data(2)]) };
    let cqes = reap(&mut ring, 2);
    assert_eq!(res(&cqes, 1), -ECANCELED);
    assert_eq!(res(&cqes, 2), 0);
    // SAFETY: no pointers.
    assert_eq!(unsafe { run1(&mut ring, op::timeout_remove(1)) }, -ENOENT);
}

#[test]
fn link_timeout_bounds_a_read() {
    let _fds = fds_shared();
    let (a, mut b) = UnixStream::pair().expect("socketpair");
    let fd = a.as_raw_fd();
    let mut ring = new_ring(8);
    let mut buf = [0u8; 64];

    // No data: the timeout fires and cancels the read.
    let short = Timespec::from_nanos(10_000_000);
    let sqes = [
        op::read(fd, buf.as_mut_ptr(), 64, CURRENT_POSITION)
            .user_data(1)
            .flags(SqeFlags::IO_LINK),
        op::link_timeout(&short, 0).user_data(2),
    ];
    // SAFETY: `buf` and `short` outlive `run`.
    let cqes = unsafe { run(&mut ring, &sqes) };
    assert_eq!(res(&cqes, 1), -ECANCELED);
    assert_eq!(res(&cqes, 2), -ETIME);
    assert!(buf.iter().all(|&b| b == 0));

    // Data ready: the read completes and its timeout is cancelled.
    b.write_all(b"linked data").expect("write to the socket");
    let long = Timespec {
        tv_sec: 5,
        tv_nsec: 0,
    };
    let sqes = [
        op::read(fd, buf.as_mut_ptr(), 64, CURRENT_POSITION)
            .user_data(3)
            .flags(SqeFlags::IO_LINK),
        op::link_timeout(&long, 0).user_data(4),
    ];
    // SAFETY: `buf` and `long` outlive `run`.
    let cqes = unsafe { run(&mut ring, &sqes) };
    assert_eq!(res(&cqes, 3), 11);
    assert_eq!(&buf[..11], b"linked data");
    assert_eq!(res(&cqes, 4), -ECANCELED);
}

#[test]
fn link_chain_runs_in_order() {
    let _fds = fds_shared();
    let t = tempfile("chain");
    let fd = t.file.as_raw_fd();
    let a = pattern(12, 4096);
    let b = pattern(13, 4096);
    let mut ring = new_ring(8);
    for round in 0..16u64 {
        let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let mut back = vec![0u8; 4096];
        let sqes = [
            op::write(fd, first.as_ptr(), 4096, 0)
                .user_data(1)
                .flags(SqeFlags::IO_LINK),
            op::write(fd, second.as_ptr(), 4096, 0)
                .user_data(2)
                .flags(SqeFlags::IO_LINK),
            op::read(fd, back.as_mut_ptr(), 4096, 0).user_data(3),
        ];
        // SAFETY: the patterns and `back` outlive `run`.
        let cqes = unsafe { run(&mut ring, &sqes) };
        assert_eq!(res(&cqes, 1), 4096);
        assert_eq!(res(&cqes, 2), 4096);
        assert_eq!(res(&cqes, 3), 4096);
        assert_eq!(
            &back, second,
            "round {round}: the read saw the second write"
        );
        assert_eq!(
            cqes.iter().map(|c| c.user_data).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }
    // The last round (15, odd) wrote `a` second.
    assert_eq!(contents(&t.path), a);
}

#[test]
fn failed_link_cancels_the_rest() {
    let _fds = fds_shared();
    let mut ring = new_ring(8);
    let mut buf = [0u8; 16];
    let sqes = [
        op::read(-1, buf.as_mut_ptr(), 16, 0)
            .user_data(1)
            .flags(SqeFlags::IO_LINK),
        op::nop().user_data(2).flags(SqeFlags::IO_LINK),
        op::nop().user_data(3),
    ];
    // SAFETY: `buf` outlives `run`.
    let cqes = unsafe { run(&mut ring, &sqes) };
    assert_eq!(res(&cqes, 1), -EBADF);
    assert_eq!(res(&cqes, 2), -ECANCELED);
    assert_eq!(res(&cqes, 3), -ECANCELED);

    // A hard link keeps the chain going past the failure.
    let sqes = [
        op::read(-1, buf.as_mut_ptr(), 16, 0)
            .user_data(4)
            .flags(SqeFlags::IO_HARDLINK),
        op::nop().user_data(5),
    ];
    // SAFETY: `buf` outlives `run`.
    let cqes = unsafe { run(&mut ring, &sqes) };
    assert_eq!(res(&cqes, 4), -EBADF);
    assert_eq!(res(&cqes, 5), 0);
}

#[test]
fn registered_files_read_update_and_close() {
    let _fds = fds_shared();
    let pa = pattern(14, 777);
    let pb = pattern(15, 999);
    let ta = tempfile_with("fixed-a", &pa);
    let tb = tempfile_with("fixed-b", &pb);
    let (fa, fb) = (ta.file.as_raw_fd(), tb.file.as_raw_fd());
    let mut ring = new_ring(8);
    ring.register_files(&[fa, -1]).expect("register_files");
    let mut buf = vec![0u8; 1024];

    // SAFETY: `buf` outlives the call (and each call below).
    let n = unsafe {
        run1(
            &mut ring,
            op::read(Target::Fixed(0), buf.as_mut_ptr(), 1024, 0),
        )
    };
    assert_eq!(n, 777);
    assert_eq!(&buf[..777], &pa[..]);
    // SAFETY: as above.
    let n = unsafe {
        run1(
            &mut ring,
            op::read(Target::Fixed(1), buf.as_mut_ptr(), 1024, 0),
        )
    };
    assert_eq!(n, -EBADF, "an empty slot");

    assert_eq!(ring.register_files_update(0, &[fb]).expect("update"), 1);
    buf.fill(0);
    // SAFETY: as above.
    let n = unsafe {
        run1(
            &mut ring,
            op::read(Target::Fixed(0), buf.as_mut_ptr(), 1024, 0),
        )
    };
    assert_eq!(n, 999, "slot 0 now holds file b");
    assert_eq!(&buf[..999], &pb[..]);

    assert_eq!(ring.register_files_update(1, &[fa]).expect("update"), 1);
    buf.fill(0);
    // SAFETY: as above.
    let n = unsafe {
        run1(
            &mut ring,
            op::read(Target::Fixed(1), buf.as_mut_ptr(), 1024, 0),
        )
    };
    assert_eq!(n, 777, "slot 1 now holds file a");
    assert_eq!(&buf[..777], &pa[..]);

    // Closing slot 0 empties it, and leaves our own descriptor of file b open.
    // SAFETY: no pointers.
    assert_eq!(unsafe { run1(&mut ring, op::close(Target::Fixed(0))) }, 0);
    // SAFETY: as above.
    let n = unsafe {
        run1(
            &mut ring,
            op::read(Target::Fixed(0), buf.as_mut_ptr(), 1024, 0),
        )
    };
    assert_eq!(n, -EBADF, "slot 0 was closed");
    let mut via_std = vec![0u8; 999];
    tb.file
        .read_exact_at(&mut via_std, 0)
        .expect("file b still open");
    assert_eq!(via_std, pb);

    ring.unregister_files().expect("unregister_files");
    // SAFETY: as above.
    let n = unsafe {
        run1(
            &mut ring,
            op::read(Target::Fixed(1), buf.as_mut_ptr(), 1024, 0),
        )
    };
    assert_eq!(n, -EBADF, "no table any more");
}

/// How many NOPs the overflow tests push through an 8-entry CQ.
const OVERFLOW_TOTAL: u64 = 4096;

/// An 8-entry SQ with an 8-entry CQ, on a kernel that keeps overflowing CQEs.
fn overflow_ring() -> Ring {
    let ring = Ring::new(8, &Params::new().cq_entries(8)).expect("io_uring_setup");
    assert_eq!(ring.sq_entries(), 8);
    assert_eq!(ring.cq_entries(), 8);
    assert!(
        ring.features().contains(Features::NODROP),
        "IORING_FEAT_NODROP (5.5+) is required"
    );
    ring
}

/// Pushes NOPs `first..first + 8` (user_data = their number) and submits them.
fn push_nop_batch(ring: &mut Ring, first: u64) {
    {
        let mut sq = ring.sq();
        for ud in first..first + 8 {
            // SAFETY: NOPs carry no pointers.
            unsafe { sq.push(&op::nop().user_data(ud)) }.expect("the SQ has room for a batch");
        }
    }
    assert_eq!(ring.submit().expect("submit"), 8);
}

/// Records a CQE of the overflow tests: a NOP that succeeded, seen for the first time.
fn record(seen: &mut [bool], cqe: Cqe) {
    assert_eq!(cqe.res, 0, "{cqe:?}");
    let slot = seen
        .get_mut(cqe.user_data as usize)
        .unwrap_or_else(|| panic!("unknown user_data {}", cqe.user_data));
    assert!(!*slot, "user_data {} completed twice", cqe.user_data);
    *slot = true;
}

/// Reaps the rest of the overflow tests' CQEs with `submit_and_wait` and checks that each NOP
/// completed exactly once.
fn reap_overflowed(ring: &mut Ring, seen: &mut [bool], mut got: u64) {
    let deadline = Instant::now() + PATIENCE;
    while got < OVERFLOW_TOTAL {
        assert!(Instant::now() < deadline, "{got} of {OVERFLOW_TOTAL} CQEs");
        // Never wait for a CQE that cannot come: something must be in the CQ or on the kernel's
        // overflow list.
        assert!(
            ring.needs_getevents() || !ring.cq().is_empty(),
            "CQEs lost: {got} of {OVERFLOW_TOTAL} reaped, the CQ is empty and nothing overflowed"
        );
        ring.submit_and_wait(1).expect("submit_and_wait");
        for cqe in ring.cq() {
            record(seen, cqe);
            got += 1;
        }
    }
    assert_eq!(got, OVERFLOW_TOTAL);
    assert!(seen[1..].iter().all(|&s| s));
    assert!(!ring.needs_getevents(), "nothing left on the overflow list");
    assert_eq!(ring.cq().overflow(), 0, "the kernel dropped CQEs");
    assert_no_cqe(ring);
}

#[test]
fn cq_overflow_loses_nothing() {
    let _fds = fds_shared();
    let mut ring = overflow_ring();
    // user_data 1..=4096; slot 0 unused.
    let mut seen = vec![false; OVERFLOW_TOTAL as usize + 1];
    for batch in 0..OVERFLOW_TOTAL / 8 {
        push_nop_batch(&mut ring, 1 + batch * 8);
    }
    assert!(ring.needs_getevents(), "4096 CQEs cannot fit an 8-entry CQ");
    reap_overflowed(&mut ring, &mut seen, 0);
}

#[test]
fn cq_overflow_loses_nothing_reaping_as_it_goes() {
    let _fds = fds_shared();
    let mut ring = overflow_ring();
    let mut seen = vec![false; OVERFLOW_TOTAL as usize + 1];
    let mut got = 0;
    for batch in 0..OVERFLOW_TOTAL / 8 {
        push_nop_batch(&mut ring, 1 + batch * 8);
        // Take only a few each time, so the overflow list keeps growing and shrinking.
        for cqe in ring.cq().take(5) {
            record(&mut seen, cqe);
            got += 1;
        }
    }
    reap_overflowed(&mut ring, &mut seen, got);
}

#[test]
fn cq_overflow_with_submit_reaping() {
    let _fds = fds_shared();
    let mut ring = overflow_ring();
    let mut seen = vec![false; OVERFLOW_TOTAL as usize + 1];
    let mut got = 0;
    for batch in 0..OVERFLOW_TOTAL / 8 {
        {
            let mut sq = ring.sq();
            for ud in 1 + batch * 8..1 + batch * 8 + 8 {
                // SAFETY: NOPs carry no pointers.
                unsafe { sq.push(&op::nop().user_data(ud)) }.expect("room");
            }
        }
        let n = ring
            .submit_reaping(0, |cqe| {
                record(&mut seen, cqe);
                got += 1;
            })
            .expect("submit_reaping");
        assert_eq!(n, 8);
    }
    reap_overflowed(&mut ring, &mut seen, got);
}

/// NOPs, a file write + read, and a socket read completed by a later write (an asynchronous
/// completion, delivered through task work): the common work every ring variant must do.
fn exercise(ring: &mut Ring, name: &str) {
    let sqes: Vec<Sqe> = (1..=12).map(|i| op::nop().user_data(i)).collect();
    // SAFETY: NOPs carry no pointers.
    let cqes = unsafe { run(ring, &sqes) };
    for i in 1..=12 {
        assert_eq!(res(&cqes, i), 0);
    }

    let t = tempfile(name);
    let fd = t.file.as_raw_fd();
    let data = pattern(16, 6000);
    assert_eq!(
        // SAFETY: `data` outlives the call.
        unsafe { run1(ring, op::write(fd, data.as_ptr(), 6000, 0)) },
        6000
    );
    let mut back = vec![0u8; 6000];
    assert_eq!(
        // SAFETY: `back` outlives the call.
        unsafe { run1(ring, op::read(fd, back.as_mut_ptr(), 6000, 0)) },
        6000
    );
    assert_eq!(back, data);
    assert_eq!(contents(&t.path), data);

    let (a, mut b) = UnixStream::pair().expect("socketpair");
    let mut buf = [0u8; 32];
    let read = op::read(a.as_raw_fd(), buf.as_mut_ptr(), 32, CURRENT_POSITION).user_data(99);
    // SAFETY: `buf` outlives the CQE reaped below.
    unsafe { push_all(ring, &[read]) };
    assert_no_cqe(ring);
    b.write_all(b"late data").expect("write to the socket");
    let cqes = reap(ring, 1);
    assert_eq!(res(&cqes, 99), 9);
    assert_eq!(&buf[..9], b"late data");

    // A timed wait with nothing in flight returns, with nothing to show.
    ring.submit_and_wait_timeout(1, 2_000_000)
        .expect("timed wait");
    assert_no_cqe(ring);
}

#[test]
fn separate_mappings_ring_works() {
    let _fds = fds_shared();
    let mut ring = Ring::new(8, &Params::new().separate_mappings(true)).expect("io_uring_setup");
    assert!(ring.mem().is_mapped());
    assert!(!ring.mem().single_mapping(), "SQ and CQ rings mapped apart");
    exercise(&mut ring, "separate");
}

#[test]
fn sq_array_ring_works() {
    let _fds = fds_shared();
    let mut ring = Ring::new(8, &Params::new().no_sqarray(false)).expect("io_uring_setup");
    assert!(!ring.setup_flags().contains(SetupFlags::NO_SQARRAY));
    exercise(&mut ring, "sqarray");
}

#[test]
fn no_ext_arg_timed_wait_returns() {
    let _fds = fds_shared();
    let mut ring = Ring::new(8, &Params::new().no_ext_arg(true)).expect("io_uring_setup");
    // Nothing in flight: the internal TIMEOUT SQE ends the wait, and its CQE is never shown.
    let start = Instant::now();
    ring.submit_and_wait_timeout(1, 20_000_000)
        .expect("timed wait");
    eprintln!("no_ext_arg: a 20 ms wait took {:?}", start.elapsed());
    assert_no_cqe(&mut ring);

    // A user CQE ends the wait early, and is the only one shown.
    // SAFETY: NOPs carry no pointers.
    unsafe { ring.sq().push(&op::nop().user_data(7)) }.expect("room");
    let start = Instant::now();
    ring.submit_and_wait_timeout(1, 5_000_000_000)
        .expect("timed wait");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "the NOP ended the wait"
    );
    let cqes: Vec<Cqe> = ring.cq().collect();
    assert_eq!(cqes.len(), 1, "{cqes:?}");
    assert_eq!((cqes[0].user_data, cqes[0].res), (7, 0));

    // Waits keep working afterwards (the internal timer was removed, not leaked).
    for _ in 0..3 {
        ring.submit_and_wait_timeout(1, 5_000_000)
            .expect("timed wait");
        assert_no_cqe(&mut ring);
    }
    exercise(&mut ring, "no-ext-arg");
}

/// Two timed waits in a row on an idle ring, without looking at the CQ in between, must each
/// wait their full time (as they do with EXT_ARG): the first wait's internal timer CQE, still in
/// the CQ because nothing iterated it, must not end the second wait early.
#[test]
fn no_ext_arg_back_to_back_timed_waits_both_wait() {
    let _fds = fds_shared();
    for (name, params) in [
        ("ext_arg", Params::new()),
        ("no_ext_arg", Params::new().no_ext_arg(true)),
    ] {
        let mut ring = Ring::new(8, &params).expect("io_uring_setup");
        for round in 0..2 {
            let start = Instant::now();
            ring.submit_and_wait_timeout(1, 30_000_000)
                .expect("timed wait");
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(29),
                "{name}: wait {round} of 30 ms returned after {took:?}"
            );
        }
        assert_no_cqe(&mut ring);
    }
}

#[test]
fn ext_arg_timed_wait_on_an_empty_ring() {
    let _fds = fds_shared();
    let mut ring = new_ring(8);
    if !ring.features().contains(Features::EXT_ARG) {
        skip(
            "ext_arg_timed_wait_on_an_empty_ring",
            "IORING_FEAT_EXT_ARG not offered by this kernel (5.11+)",
        );
        return;
    }
    let start = Instant::now();
    let n = ring
        .submit_and_wait_timeout(1, 10_000_000)
        .expect("timed wait");
    assert_eq!(n, 0, "nothing to submit");
    assert!(
        start.elapsed() >= Duration::from_millis(9),
        "a timer never fires early: {:?}",
        start.elapsed()
    );
    assert_no_cqe(&mut ring);
}

#[test]
fn coop_taskrun_ring_works() {
    let _fds = fds_shared();
    let mut ring = Ring::new(8, &Params::new().coop_taskrun(true)).expect("io_uring_setup");
    let want = SetupFlags::COOP_TASKRUN | SetupFlags::TASKRUN_FLAG;
    if !ring.setup_flags().contains(want) {
        skip(
            "coop_taskrun_ring_works",
            "IORING_SETUP_COOP_TASKRUN not granted by this kernel (5.19+)",
        );
        return;
    }
    exercise(&mut ring, "coop");
}

#[test]
fn single_issuer_ring_works() {
    let _fds = fds_shared();
    let mut ring = Ring::new(8, &Params::new().single_issuer(true)).expect("io_uring_setup");
    if !ring.setup_flags().contains(SetupFlags::SINGLE_ISSUER) {
        skip(
            "single_issuer_ring_works",
            "IORING_SETUP_SINGLE_ISSUER not granted by this kernel (6.0+)",
        );
        return;
    }
    exercise(&mut ring, "single");
}

#[test]
fn defer_taskrun_ring_works() {
    let _fds = fds_shared();
    let mut ring = Ring::new(8, &Params::new().defer_taskrun(true)).expect("io_uring_setup");
    let want = SetupFlags::DEFER_TASKRUN | SetupFlags::SINGLE_ISSUER;
    if !ring.setup_flags().contains(want) {
        skip(
            "defer_taskrun_ring_works",
            "IORING_SETUP_DEFER_TASKRUN not granted by this kernel (6.1+)",
        );
        return;
    }
    exercise(&mut ring, "defer");
    // The same with the timed waits done by a TIMEOUT SQE.
    let mut ring =
        Ring::new(8, &Params::new().defer_taskrun(true).no_ext_arg(true)).expect("io_uring_setup");
    exercise(&mut ring, "defer-no-ext-arg");
}

#[test]
fn disabled_defer_taskrun_ring_belongs_to_the_thread_that_enables_it() {
    let _fds = fds_shared();
    let name = "disabled_defer_taskrun_ring_belongs_to_the_thread_that_enables_it";
    let mut ring =
        Ring::new(8, &Params::new().defer_taskrun(true).disabled(true)).expect("io_uring_setup");
    if !ring
        .setup_flags()
        .contains(SetupFlags::DEFER_TASKRUN | SetupFlags::R_DISABLED)
    {
        skip(
            name,
            "IORING_SETUP_DEFER_TASKRUN not granted by this kernel (6.1+)",
        );
        return;
    }
    // Disabled: nothing can be submitted yet.
    // SAFETY: a NOP carries no pointer.
    unsafe { ring.sq().push(&op::nop().user_data(1)) }.unwrap();
    assert_eq!(ring.submit(), Err(Error::Os(Errno::BADFD)));
    // Another thread enables it and becomes its issuer: it can submit and reap.
    let ring = std::thread::spawn(move || {
        ring.enable().expect("IORING_REGISTER_ENABLE_RINGS");
        let cqes = reap(&mut ring, 1);
        assert_eq!(res(&cqes, 1), 0);
        // Enabling twice is refused.
        assert_eq!(ring.enable(), Err(Error::Os(Errno::BADFD)));
        ring
    })
    .join()
    .unwrap();
    // This thread is not the issuer.
    let mut ring = ring;
    // SAFETY: as above.
    unsafe { ring.sq().push(&op::nop().user_data(2)) }.unwrap();
    assert_eq!(ring.submit(), Err(Error::Os(Errno::EXIST)));
}

#[test]
fn sqpoll_ring_works() {
    let _fds = fds_shared();
    let mut ring = match Ring::new(8, &Params::new().sqpoll(10)) {
        Ok(ring) => ring,
        Err(Error::Os(e)) if e == Errno::PERM || e == Errno::ACCESS => {
            skip("sqpoll_ring_works", &format!("SQPOLL refused: {e}"));
            return;
        }
        Err(e) => panic!("SQPOLL setup: {e}"),
    };
    assert!(ring.setup_flags().contains(SetupFlags::SQPOLL));
    exercise(&mut ring, "sqpoll");

    // Let the poller go to sleep (10 ms idle), then make sure a submission wakes it.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !ring.sq().need_wakeup() {
        assert!(
            Instant::now() < deadline,
            "the SQPOLL thread never went idle"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let sqes: Vec<Sqe> = (100..116).map(|i| op::nop().user_data(i)).collect();
    // SAFETY: NOPs carry no pointers.
    let cqes = unsafe { run(&mut ring, &sqes) };
    for i in 100..116 {
        assert_eq!(res(&cqes, i), 0);
    }
}

#[test]
fn probe_reports_opcodes() {
    let _fds = fds_shared();
    let ring = new_ring(2);
    let probe = ring.probe().expect("probe");
    assert!(probe.supports(opcode::NOP));
    assert!(probe.supports(opcode::READ));
    assert!(
        probe.last_op() >= 40,
        "last_op {} on a 6.x kernel",
        probe.last_op()
    );
    for op in [
        opcode::NOP,
        opcode::READV,
        opcode::WRITEV,
        opcode::FSYNC,
        opcode::READ_FIXED,
        opcode::WRITE_FIXED,
        opcode::SYNC_FILE_RANGE,
        opcode::TIMEOUT,
        opcode::TIMEOUT_REMOVE,
        opcode::ASYNC_CANCEL,
        opcode::LINK_TIMEOUT,
        opcode::FALLOCATE,
        opcode::OPENAT,
        opcode::CLOSE,
        opcode::STATX,
        opcode::READ,
        opcode::WRITE,
    ] {
        assert!(probe.supports(op), "opcode {op}");
    }
    if probe.last_op() < u8::MAX {
        assert!(!probe.supports(u8::MAX));
    }
    assert!(!probe.supports(probe.last_op().saturating_add(1)) || probe.last_op() == u8::MAX);

    // Decoding never trusts `ops_len` beyond the buffer, and takes any opcode number.
    let junk_header = ProbeHeader {
        last_op: u8::MAX,
        ops_len: u8::MAX,
        ..ProbeHeader::default()
    };
    let empty = Probe::decode(&junk_header, &[]);
    assert!((0..=u8::MAX).all(|op| !empty.supports(op)));
    let mut x = 0x1234_5678_u32;
    for _ in 0..2000 {
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let header = ProbeHeader {
            last_op: next() as u8,
            ops_len: next() as u8,
            ..ProbeHeader::default()
        };
        let len = (next() % 300) as usize;
        let ops: Vec<ProbeOp> = (0..len)
            .map(|_| ProbeOp {
                op: next() as u8,
                flags: next() as u16,
                ..ProbeOp::default()
            })
            .collect();
        let p = Probe::decode(&header, &ops);
        assert_eq!(p.last_op(), header.last_op);
        let counted = ops.iter().take(usize::from(header.ops_len));
        for o in counted {
            if u32::from(o.flags) & IO_URING_OP_SUPPORTED != 0 {
                assert!(p.supports(o.op));
            }
        }
    }
}

#[test]
fn eventfd_registration_errors() {
    let _fds = fds_shared();
    let t = tempfile("not-an-eventfd");
    let ring = new_ring(2);
    assert_eq!(
        ring.register_eventfd(-1, false),
        Err(Error::Os(Errno::BADF))
    );
    assert_eq!(
        ring.register_eventfd(t.file.as_raw_fd(), false),
        Err(Error::Os(Errno::INVAL)),
        "a regular file is not an eventfd"
    );
    assert_eq!(
        ring.register_eventfd(t.file.as_raw_fd(), true),
        Err(Error::Os(Errno::INVAL))
    );
    assert_eq!(ring.unregister_eventfd(), Err(Error::Os(Errno::NXIO)));
}

/// A registered eventfd counts posted completions: after 3 NOPs it reads 3 (or more, if the
/// kernel signalled more than once), and after unregistering it stays silent.
#[test]
fn eventfd_signals_completions() {
    use rustix::event::{eventfd, EventfdFlags};
    let _fds = fds_shared();
    let efd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).expect("eventfd");
    let mut ring = new_ring(8);
    ring.register_eventfd(efd.as_raw_fd(), false)
        .expect("register eventfd");
    {
        let mut sq = ring.sq();
        for i in 0..3 {
            // SAFETY: a NOP carries no pointer.
            unsafe { sq.push(&op::nop().user_data(i)) }.expect("room");
        }
    }
    ring.submit_and_wait(3).expect("submit");
    assert_eq!(ring.cq().count(), 3);
    let mut buf = [0u8; 8];
    assert_eq!(rustix::io::read(&efd, &mut buf), Ok(8));
    assert!(
        u64::from_ne_bytes(buf) >= 1,
        "eventfd counted {}",
        u64::from_ne_bytes(buf)
    );
    ring.unregister_eventfd().expect("unregister");
    // SAFETY: a NOP carries no pointer.
    unsafe { ring.sq().push(&op::nop().user_data(9)) }.expect("room");
    ring.submit_and_wait(1).expect("submit");
    assert_eq!(ring.cq().count(), 1);
    assert_eq!(
        rustix::io::read(&efd, &mut buf),
        Err(rustix::io::Errno::AGAIN),
        "silent after unregister"
    );
}

/// Set in the environment of the child that re-runs the memlock test without CAP_IPC_LOCK.
const MEMLOCK_CHILD_ENV: &str = "AURA_RING_LIVE_MEMLOCK_CHILD";

/// The soft `RLIMIT_MEMLOCK` from /proc/self/limits, in bytes; `None` when unlimited.
fn memlock_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .expect("a 'Max locked memory' line");
    let soft = line["Max locked memory".len()..]
        .split_whitespace()
        .next()
        .expect("a soft limit");
    if soft == "unlimited" {
        None
    } else {
        Some(soft.parse().expect("a number of bytes"))
    }
}

/// Whether this process has `CAP_IPC_LOCK` (bit 14) in its effective set.
fn has_cap_ipc_lock() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("a CapEff line");
    let bits = u64::from_str_radix(eff.trim(), 16).expect("hex capabilities");
    bits & (1 << 14) != 0
}

/// Re-runs `memlock_limit_is_reported` in a child that `setpriv` stripped of `CAP_IPC_LOCK`.
/// `Err(why)` when the child could not be started that way; panics when it ran and failed.
fn memlock_in_child_without_cap() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = std::process::Command::new("setpriv")
        .args(["--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "--"])
        .arg(exe)
        .args([
            "--exact",
            "memlock_limit_is_reported",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MEMLOCK_CHILD_ENV, "1")
        .output()
        .map_err(|e| format!("setpriv: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stdout.contains("running 1 test") {
        return Err(format!(
            "setpriv could not drop CAP_IPC_LOCK ({}): {}",
            out.status,
            stderr.trim()
        ));
    }
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the memlock test failed without CAP_IPC_LOCK:\n{stdout}\n{stderr}"
    );
    Ok(())
}

#[test]
fn memlock_limit_is_reported() {
    let _fds = fds_shared();
    let msg = Error::MemlockLimit.to_string();
    assert!(msg.contains("RLIMIT_MEMLOCK"), "{msg}");
    assert_eq!(Error::MemlockLimit.errno(), Errno::NOMEM);

    let child = std::env::var_os(MEMLOCK_CHILD_ENV).is_some();
    let cap = has_cap_ipc_lock();
    assert!(!(child && cap), "setpriv left CAP_IPC_LOCK in place");
    let Some(limit) = memlock_limit() else {
        skip(
            "memlock_limit_is_reported",
            "RLIMIT_MEMLOCK is unlimited here, there is nothing to exceed",
        );
        return;
    };
    // Far beyond the limit (at least 1 MiB), in page units; the kernel takes at most 1 GiB per
    // buffer.
    let size = (limit.saturating_mul(4).max(1 << 20) as usize).next_multiple_of(4096);
    if size > 1 << 30 {
        skip(
            "memlock_limit_is_reported",
            &format!("RLIMIT_MEMLOCK is {limit} bytes, too large to exceed with one buffer"),
        );
        return;
    }
    // Declared before the ring, so the ring (and any registration) is dropped first.
    let buf = vec![0u8; size];
    let ring = new_ring(2);
    let iov = [IoVec {
        base: buf.as_ptr().cast_mut(),
        len: size,
    }];
    // SAFETY: `buf` outlives the registration: it is unregistered below, and the ring is dropped
    // before `buf` in any case. The kernel pins it but nothing writes to it.
    match unsafe { ring.register_buffers(&iov) } {
        Err(Error::MemlockLimit) => {
            eprintln!("memlock: {size} bytes over a {limit}-byte limit refused: {msg}");
        }
        Err(e) => panic!("registering {size} bytes over a {limit}-byte limit: {e:?}"),
        Ok(()) => {
            ring.unregister_buffers().expect("unregister_buffers");
            assert!(
                cap,
                "{size} bytes registered over a {limit}-byte RLIMIT_MEMLOCK without CAP_IPC_LOCK"
            );
            match memlock_in_child_without_cap() {
                Ok(()) => eprintln!("memlock: checked in a child stripped of CAP_IPC_LOCK"),
                Err(why) => skip(
                    "memlock_limit_is_reported",
                    &format!(
                        "running with CAP_IPC_LOCK (root), memlock limit not enforced ({why})"
                    ),
                ),
            }
        }
    }
}

#[test]
fn current_cpu_follows_the_affinity_mask() {
    let cpus = aura_core::sys::affinity_cpus().expect("sched_getaffinity");
    std::thread::spawn(move || {
        for &cpu in &cpus {
            aura_core::sys::set_affinity(&[cpu]).expect("sched_setaffinity");
            assert_eq!(aura_core::sys::current_cpu(), cpu);
        }
    })
    .join()
    .unwrap();
}
