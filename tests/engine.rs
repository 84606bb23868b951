//! Integration tests of aura-std's [`Engine`] against the running kernel.
//!
//! Every test is real: temp files (or sockets) on this machine, the kernel's io_uring, data
//! checked byte for byte. No mocks.
//!
//! - every operation round-trips through a real file (callback and owned-buffer styles);
//! - four submitting threads share one engine while a fifth only waits: every callback runs
//!   exactly once and the counters return to zero;
//! - cancellation (pending socket reads, a request still queued behind the gate, a race with a
//!   regular-file read, a handle that already completed);
//! - dropping an engine with 10 000 requests in flight runs every callback before anything is
//!   freed (the callbacks own their buffers and check their data; running this file under
//!   valgrind or ASan would confirm no early free, the test itself checks the data and counts);
//! - callbacks that submit, stop the loop, or (wrongly) wait; a panicking callback loses no
//!   other completion and leaves the engine usable;
//! - the engine's eventfd under epoll;
//! - bad input gives the documented errors, naming the bad field;
//! - the AIMD gate engages for a closed-loop client;
//! - CPU placement: pinned to either CPU, O_DIRECT random reads run at the same rate (completions
//!   never stall); three 1.5 s runs per CPU in the order A B B A A B, median per CPU, so drift
//!   and one outlier per CPU do not decide the ratio;
//! - registered buffers and files.
//!
//! A test that cannot run here (O_DIRECT unsupported, a single CPU, an old kernel) prints
//! `skipped: <test>: <why>` on stderr and passes; see `aura_tests::skip`.
//!
//! CPU-heavy tests (the 4-thread stress, the 10 k drop, the gate and the placement test) take
//! [`exclusive`] so that no other test of this file runs beside them (the placement test compares
//! rates, which a neighbour would skew); every other test holds [`shared`].
//!
//! The open(2) / statx(2) / sync_file_range(2) constants are the Linux x86_64 uapi numbers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use aura::{
    Buffer, BufferRef, Engine, Error, IoVec, Options, Phase, RequestHandle, Result, RingSelect,
};
use aura_std as aura;
use aura_tests::{pattern, skip, temp_path, tempfile, tempfile_with, TempPath};

/// `AT_FDCWD`: paths relative to the current directory.
const AT_FDCWD: RawFd = -100;
/// `O_RDONLY`.
const O_RDONLY: u32 = 0;
/// `O_RDWR`.
const O_RDWR: u32 = 0o2;
/// `O_CREAT`.
const O_CREAT: u32 = 0o100;
/// `O_DIRECT` (x86_64).
const O_DIRECT: i32 = 0o40000;
/// `STATX_SIZE`: ask statx for `stx_size`.
const STATX_SIZE: u32 = 0x200;
/// Byte offset of `stx_mask` (u32) in `struct statx`.
const STX_MASK_OFFSET: usize = 0;
/// Byte offset of `stx_size` (u64) in `struct statx`.
const STX_SIZE_OFFSET: usize = 40;
/// `SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER`.
const SYNC_FILE_RANGE_ALL: u32 = 1 | 2 | 4;
/// `ENOENT`.
const ENOENT: i32 = 2;
/// `EINVAL`.
const EINVAL: i32 = 22;

/// How long a test waits for one completion before failing instead of hanging.
const PATIENCE: Duration = Duration::from_secs(5);

/// Heavy tests run alone (write lock); every other test shares (read lock).
static SERIAL: RwLock<()> = RwLock::new(());

/// Held by ordinary tests while they run.
fn shared() -> RwLockReadGuard<'static, ()> {
    SERIAL.read().unwrap_or_else(PoisonError::into_inner)
}

/// Held by CPU-heavy tests: nothing else of this file runs meanwhile.
fn exclusive() -> RwLockWriteGuard<'static, ()> {
    SERIAL.write().unwrap_or_else(PoisonError::into_inner)
}

/// A small engine: one ring of 64 entries.
fn small_engine() -> Engine {
    Engine::with_options(Options::new().ring_count(1).queue_depth(64)).expect("engine")
}

/// Results delivered to callbacks, to check each arrives exactly once.
struct Got<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Got<T> {
    fn clone(&self) -> Self {
        Got(Arc::clone(&self.0))
    }
}

impl<T: Send + 'static> Got<T> {
    fn new() -> Self {
        Got(Arc::new(Mutex::new(Vec::new())))
    }

    fn push(&self, t: T) {
        self.0.lock().unwrap().push(t);
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Got<Result<usize>> {
    /// A plain callback that records its result.
    fn cb(&self) -> impl FnOnce(Result<usize>) + Send + 'static {
        let g = self.clone();
        move |r| g.push(r)
    }
}

impl Got<(Result<usize>, Buffer)> {
    /// An owned-buffer callback that records its result and buffer.
    fn owned(&self) -> impl FnOnce(Result<usize>, Buffer) + Send + 'static {
        let g = self.clone();
        move |r, b| g.push((r, b))
    }
}

/// One `wait` step that tolerates a timeout.
fn step(engine: &Engine, ms: i32) {
    match engine.wait(ms) {
        Ok(_) | Err(Error::TimedOut) => {}
        Err(e) => panic!("wait: {e}"),
    }
}

/// Processes completions until `got` holds `n` results (at most [`PATIENCE`]), drains the
/// engine, checks that nothing more arrived and returns them.
fn settle_n<T: Send + 'static>(engine: &Engine, got: &Got<T>, n: usize) -> Vec<T> {
    let deadline = Instant::now() + PATIENCE;
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} completions after {PATIENCE:?}",
            got.len()
        );
        step(engine, 100);
    }
    engine.drain(5_000).expect("drain");
    let v = got.take();
    assert_eq!(
        v.len(),
        n,
        "callbacks ran {} times for {n} requests",
        v.len()
    );
    v
}

/// [`settle_n`] for one request.
fn settle<T: Send + 'static>(engine: &Engine, got: &Got<T>) -> T {
    settle_n(engine, got, 1).pop().unwrap()
}

/// The bytes of a successful result, or a panic naming the error.
#[track_caller]
fn ok(r: Result<usize>) -> usize {
    r.unwrap_or_else(|e| panic!("operation failed: {e:?}"))
}

/// Checks `r` is `InvalidArgument` whose text names `field`.
#[track_caller]
fn assert_invalid<T: std::fmt::Debug, E: Into<Error>>(r: Result<T, E>, field: &str) {
    match r.map_err(Into::into) {
        Err(Error::InvalidArgument(what)) => {
            assert!(what.contains(field), "{what:?} does not name {field:?}")
        }
        other => panic!("expected InvalidArgument naming {field:?}, got {other:?}"),
    }
}

/// Checks `r` is `Busy` (EBUSY) whose text names `what`.
#[track_caller]
fn assert_busy<T: std::fmt::Debug>(r: Result<T>, field: &str) {
    match r {
        Err(e @ Error::Busy(_)) => {
            assert_eq!(e.errno(), 16);
            let text = e.to_string();
            assert!(text.contains(field), "{text:?} does not name {field:?}")
        }
        other => panic!("expected Busy naming {field:?}, got {other:?}"),
    }
}

/// Checks `r` is the OS error `errno`.
#[track_caller]
fn assert_errno(r: Result<usize>, errno: i32) {
    match r {
        Err(Error::Io(e)) if e.raw_os_error() == Some(errno) => {}
        other => panic!("expected errno {errno}, got {other:?}"),
    }
}

/// A path inside the target directory (on the real disk, unlike a possible tmpfs /tmp), removed
/// when the guard drops.
fn disk_path(name: &str) -> TempPath {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Relaxed);
    TempPath(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("aura-engine-{}-{n}-{name}", std::process::id())),
    )
}

/// Opens `path` read-only with O_DIRECT; `None` when the filesystem refuses O_DIRECT.
fn open_direct(path: &std::path::Path) -> Option<File> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(O_DIRECT)
        .open(path)
    {
        Ok(f) => Some(f),
        Err(e) if e.raw_os_error() == Some(EINVAL) => None,
        Err(e) => panic!("opening {} with O_DIRECT: {e}", path.display()),
    }
}

/// One bit per request: counts how many distinct requests completed and catches duplicates.
struct Bitmap {
    bits: Vec<AtomicU64>,
    duplicates: AtomicU64,
}

impl Bitmap {
    fn new(n: usize) -> Self {
        Bitmap {
            bits: (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            duplicates: AtomicU64::new(0),
        }
    }

    fn mark(&self, i: usize) {
        let bit = 1u64 << (i % 64);
        if self.bits[i / 64].fetch_or(bit, Relaxed) & bit != 0 {
            self.duplicates.fetch_add(1, Relaxed);
        }
    }

    fn count(&self) -> u64 {
        self.bits
            .iter()
            .map(|w| u64::from(w.load(Relaxed).count_ones()))
            .sum()
    }
}

// ---- 1. every operation against a real file ----

#[test]
fn write_then_read_back_with_callbacks() {
    let _g = shared();
    let engine = small_engine();
    let t = tempfile("cb-rw");
    let fd = t.file.as_raw_fd();
    let data = pattern(1, 10_000);

    let mut wbuf = engine.allocate_buffer(data.len()).unwrap();
    wbuf.copy_from_slice(&data);
    let got = Got::new();
    // SAFETY: `wbuf` outlives the request: `settle` waits for its callback.
    unsafe { engine.write(fd, (&wbuf).into(), data.len(), 100, got.cb()) }.unwrap();
    assert_eq!(ok(settle(&engine, &got)), data.len());
    let on_disk = std::fs::read(&t.path).unwrap();
    assert_eq!(on_disk.len(), 100 + data.len());
    assert!(on_disk[..100].iter().all(|&b| b == 0));
    assert_eq!(&on_disk[100..], &data[..]);

    let mut rbuf = engine.allocate_buffer(data.len()).unwrap();
    rbuf.fill(0xEE);
    // SAFETY: as above.
    unsafe { engine.read(fd, (&mut rbuf).into(), data.len(), 100, got.cb()) }.unwrap();
    assert_eq!(ok(settle(&engine, &got)), data.len());
    assert_eq!(&rbuf[..], &data[..]);

    // A plain Vec, read partly (len < the slice's length).
    let mut v = vec![0u8; 4096];
    // SAFETY: `v` outlives the request and nothing touches it until `settle` returns.
    unsafe { engine.read(fd, BufferRef::from_mut_slice(&mut v), 3000, 5100, got.cb()) }.unwrap();
    assert_eq!(ok(settle(&engine, &got)), 3000);
    assert_eq!(&v[..3000], &data[5000..8000]);
    assert!(v[3000..].iter().all(|&b| b == 0), "read past its length");
    assert_eq!(engine.pending_count(), 0);
}

#[test]
fn write_then_read_back_owned() {
    let _g = shared();
    let engine = small_engine();
    let t = tempfile("owned-rw");
    let fd = t.file.as_raw_fd();
    let data = pattern(2, 65536);

    let mut buf = engine.allocate_buffer(data.len()).unwrap();
    buf.copy_from_slice(&data);
    let got = Got::new();
    engine.write_owned(fd, buf, 4096, got.owned()).unwrap();
    let (r, buf) = settle(&engine, &got);
    assert_eq!(ok(r), data.len());
    assert_eq!(&buf[..], &data[..], "the buffer came back intact");
    drop(buf);
    let mut on_disk = vec![0u8; data.len()];
    t.file.read_exact_at(&mut on_disk, 4096).unwrap();
    assert_eq!(on_disk, data);

    let mut buf = engine.allocate_buffer(data.len()).unwrap();
    buf.fill(0);
    engine.read_owned(fd, buf, 4096, got.owned()).unwrap();
    let (r, buf) = settle(&engine, &got);
    assert_eq!(ok(r), data.len());
    assert_eq!(&buf[..], &data[..]);
    drop(buf);
    assert_eq!(engine.buffer_stats().in_use_buffers, 0);
    assert_eq!(engine.pending_count(), 0);
}

#[test]
fn writev_then_readv_three_iovecs() {
    let _g = shared();
    let engine = small_engine();
    let t = tempfile("vec");
    let fd = t.file.as_raw_fd();
    let parts = [pattern(3, 100), pattern(4, 4096), pattern(5, 33)];
    let total: usize = parts.iter().map(Vec::len).sum();

    let iov: Vec<IoVec> = parts
        .iter()
        .map(|p| IoVec {
            base: p.as_ptr().cast_mut(),
            len: p.len(),
        })
        .collect();
    let got = Got::new();
    // SAFETY: `parts` outlives the request (settled below) and is only read by the kernel.
    unsafe { engine.writev(fd, &iov, 512, got.cb()) }.unwrap();
    drop(iov); // the engine copied the array
    assert_eq!(ok(settle(&engine, &got)), total);
    let on_disk = std::fs::read(&t.path).unwrap();
    assert_eq!(&on_disk[512..], &parts.concat()[..]);

    let mut outs = [vec![0u8; 100], vec![0u8; 4096], vec![0u8; 33]];
    let iov: Vec<IoVec> = outs
        .iter_mut()
        .map(|p| IoVec {
            base: p.as_mut_ptr(),
            len: p.len(),
        })
        .collect();
    // SAFETY: `outs` outlives the request and is untouched until it is settled.
    unsafe { engine.readv(fd, &iov, 512, got.cb()) }.unwrap();
    drop(iov);
    assert_eq!(ok(settle(&engine, &got)), total);
    for (out, part) in outs.iter().zip(&parts) {
        assert_eq!(out, part);
    }
}

#[test]
fn fsync_and_fdatasync() {
    let _g = shared();
    let engine = small_engine();
    let mut t = tempfile("sync");
    t.file.write_all(&pattern(6, 8192)).unwrap();
    let fd = t.file.as_raw_fd();
    let got = Got::new();
    engine.fsync(fd, got.cb()).unwrap();
    assert_eq!(ok(settle(&engine, &got)), 0);
    engine.fdatasync(fd, got.cb()).unwrap();
    assert_eq!(ok(settle(&engine, &got)), 0);
}

#[test]
fn nop_completes_with_zero() {
    let _g = shared();
    let engine = small_engine();
    let got = Got::new();
    for _ in 0..3 {
        engine.nop(got.cb()).unwrap();
    }
    let all = settle_n(&engine, &got, 3);
    assert!(all.into_iter().all(|r| ok(r) == 0));
    assert_eq!(engine.pending_count(), 0);
}

#[test]
fn a_batch_writes_then_reads_back() {
    let _g = shared();
    let engine = small_engine();
    let t = tempfile("batch-rw");
    let fd = t.file.as_raw_fd();
    let data = pattern(7, 16 * 4096);

    // 16 owned writes and an fdatasync-free check through the file afterwards.
    let got = Got::new();
    let mut batch = engine.batch();
    assert!(batch.is_empty());
    for i in 0..16 {
        let mut buf = engine.allocate_buffer(4096).unwrap();
        buf.copy_from_slice(&data[i * 4096..][..4096]);
        batch
            .write_owned(fd, buf, (i * 4096) as u64, got.owned())
            .unwrap();
    }
    assert_eq!(batch.len(), 16);
    assert_eq!(batch.submit().unwrap(), 16);
    assert!(batch.is_empty());
    assert_eq!(batch.handles().len(), 16);
    for (r, _buf) in settle_n(&engine, &got, 16) {
        assert_eq!(ok(r), 4096);
    }
    let mut on_disk = vec![0u8; data.len()];
    t.file.read_exact_at(&mut on_disk, 0).unwrap();
    assert_eq!(on_disk, data);

    // The same batch again: 16 plain reads and 16 NOPs, in one submit.
    let mut bufs = vec![vec![0u8; 4096]; 16];
    let plain = Got::new();
    for (i, b) in bufs.iter_mut().enumerate() {
        // SAFETY: `bufs` outlives the reads: `settle_n` waits for every callback, and nothing
        // else touches them meanwhile.
        unsafe {
            batch.read(
                fd,
                BufferRef::from_mut_slice(b),
                4096,
                (i * 4096) as u64,
                plain.cb(),
            )
        }
        .unwrap();
        batch.nop(plain.cb()).unwrap();
    }
    assert_eq!(batch.submit().unwrap(), 32);
    let handles = batch.handles().to_vec();
    assert_eq!(handles.len(), 32);
    drop(batch);
    let results = settle_n(&engine, &plain, 32);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.as_ref().ok() == Some(&4096))
            .count(),
        16
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| r.as_ref().ok() == Some(&0))
            .count(),
        16
    );
    assert_eq!(bufs.concat(), data);
    // Every handle is now stale.
    for h in handles {
        assert!(engine.cancel(h).is_err());
    }
    assert_eq!(engine.pending_count(), 0);
    assert_eq!(engine.buffer_stats().in_use_buffers, 0);
}

#[test]
fn a_batch_larger_than_the_sq_is_submitted_in_sq_sized_parts() {
    let _g = shared();
    // Queue depth 256: 64 SQ entries, an in-flight limit of 256, 1024 slots. A batch of 300
    // NOPs fills the SQ several times over (each time it is flushed and the push goes on), and
    // the 44 over the limit wait behind the gate until completions make room.
    let engine = Engine::with_options(Options::new().ring_count(1).queue_depth(256)).unwrap();
    let got = Got::new();
    let mut batch = engine.batch();
    for _ in 0..300 {
        batch.nop(got.cb()).unwrap();
    }
    assert_eq!(batch.submit().unwrap(), 300);
    assert_eq!(batch.handles().len(), 300);
    let all = settle_n(&engine, &got, 300);
    assert!(all.into_iter().all(|r| ok(r) == 0));
    assert_eq!(engine.pending_count(), 0);
}

#[test]
fn a_batch_checks_each_op_as_it_is_added() {
    let _g = shared();
    let engine = small_engine();
    let mut batch = engine.batch();
    assert_eq!(batch.submit().unwrap(), 0, "an empty batch submits nothing");
    let mut v = vec![0u8; 16];
    // SAFETY: rejected before anything is queued: the kernel never sees `v`.
    let r = unsafe { batch.read(-1, BufferRef::from_mut_slice(&mut v), 16, 0, |_| {}) };
    assert_invalid(r.map(|_| ()), "fd");
    // SAFETY: as above.
    let r = unsafe { batch.read(0, BufferRef::from_mut_slice(&mut v), 0, 0, |_| {}) };
    assert_invalid(r.map(|_| ()), "len");
    assert_invalid(batch.fsync(-3, |_| {}).map(|_| ()), "fd");
    let buf = engine.allocate_buffer(4096).unwrap();
    let rejected = batch.read_owned(-1, buf, 0, |_, _| {}).unwrap_err();
    assert_eq!(rejected.buffer.len(), 4096, "the buffer comes back");
    drop(rejected);
    assert!(batch.is_empty(), "nothing invalid was queued");
    assert_eq!(batch.submit().unwrap(), 0);
    assert_eq!(engine.buffer_stats().in_use_buffers, 0);
}

#[test]
fn a_dropped_batch_discards_its_ops_uncalled() {
    let _g = shared();
    let engine = small_engine();
    let ran = Arc::new(AtomicUsize::new(0));
    let token = Arc::new(());
    let mut batch = engine.batch();
    for _ in 0..8 {
        let (ran, token) = (Arc::clone(&ran), Arc::clone(&token));
        batch
            .nop(move |_| {
                ran.fetch_add(1, SeqCst);
                drop(token);
            })
            .unwrap();
        let buf = engine.allocate_buffer(4096).unwrap();
        batch.read_owned(0, buf, 0, |_, _| {}).unwrap();
    }
    assert_eq!(Arc::strong_count(&token), 9);
    drop(batch);
    assert_eq!(Arc::strong_count(&token), 1, "every callback was dropped");
    assert_eq!(ran.load(SeqCst), 0, "and none was called");
    assert_eq!(
        engine.buffer_stats().in_use_buffers,
        0,
        "owned buffers went back"
    );
    assert_eq!(engine.pending_count(), 0);
    assert_eq!(engine.wait(0).unwrap(), 0);
}

#[test]
fn a_batch_larger_than_the_free_slots_submits_what_fits() {
    let _g = shared();
    // Queue depth 4: 16 request slots.
    let engine = Engine::with_options(Options::new().ring_count(1).queue_depth(4)).unwrap();
    let got = Got::new();
    let mut batch = engine.batch();
    for _ in 0..20 {
        batch.nop(got.cb()).unwrap();
    }
    assert_eq!(batch.submit().unwrap(), 16, "as many as there are slots");
    assert_eq!(batch.len(), 4, "the rest stay in the batch");
    assert_eq!(batch.handles().len(), 16);
    // No slot is free until completions are processed.
    assert!(matches!(batch.submit(), Err(Error::WouldBlock)));
    assert_eq!(batch.len(), 4);
    let first = settle_n(&engine, &got, 16);
    assert!(first.into_iter().all(|r| ok(r) == 0));
    assert_eq!(batch.submit().unwrap(), 4);
    assert!(batch.is_empty());
    drop(batch);
    let rest = settle_n(&engine, &got, 4);
    assert!(rest.into_iter().all(|r| ok(r) == 0));
    assert_eq!(engine.pending_count(), 0);
}

#[test]
fn record_handle_sees_the_handle_before_the_op_returns() {
    let _g = shared();
    let engine = small_engine();
    let slot = aura::HandleSlot::new();
    assert_eq!(slot.get(), None);
    let got = Got::new();
    let h = aura::record_handle(&slot, || engine.nop(got.cb())).unwrap();
    assert_eq!(slot.get(), Some(h));
    ok(settle(&engine, &got));
    // Outside record_handle nothing is recorded.
    slot.clear();
    engine.nop(got.cb()).unwrap();
    ok(settle(&engine, &got));
    assert_eq!(slot.get(), None);
}

#[test]
fn openat_read_close() {
    let _g = shared();
    let engine = small_engine();
    let path = temp_path("openat");
    let _guard = TempPath(path.clone());
    let got = Got::new();
    engine
        .openat(
            AT_FDCWD,
            path.to_str().unwrap(),
            O_CREAT | O_RDWR,
            0o644,
            got.cb(),
        )
        .unwrap();
    let fd = ok(settle(&engine, &got)) as RawFd;
    assert!(fd > 2, "openat returned fd {fd}");
    let meta = std::fs::metadata(&path).expect("openat created the file");
    assert!(meta.is_file());
    let mode = meta.permissions().mode() & 0o777;
    assert_eq!(mode & 0o600, 0o600, "mode {mode:o}");
    assert_eq!(mode & !0o644, 0, "mode {mode:o} beyond 0644");

    let data = pattern(7, 5000);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();
    let mut buf = vec![0u8; 8192];
    // SAFETY: `buf` outlives the request (settled below).
    unsafe { engine.read(fd, BufferRef::from_mut_slice(&mut buf), 8192, 0, got.cb()) }.unwrap();
    assert_eq!(ok(settle(&engine, &got)), data.len());
    assert_eq!(&buf[..data.len()], &data[..]);
    engine.close(fd, got.cb()).unwrap();
    assert_eq!(ok(settle(&engine, &got)), 0);

    // Relative to a directory fd, read-only.
    let dir = File::open(path.parent().unwrap()).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    engine
        .openat(dir.as_raw_fd(), name, O_RDONLY, 0, got.cb())
        .unwrap();
    let fd = ok(settle(&engine, &got)) as RawFd;
    // SAFETY: as above.
    unsafe { engine.read(fd, BufferRef::from_mut_slice(&mut buf), 100, 4000, got.cb()) }.unwrap();
    assert_eq!(ok(settle(&engine, &got)), 100);
    assert_eq!(&buf[..100], &data[4000..4100]);
    engine.close(fd, got.cb()).unwrap();
    assert_eq!(ok(settle(&engine, &got)), 0);

    // Errors come through the callback.
    let missing = temp_path("missing");
    engine
        .openat(AT_FDCWD, missing.to_str().unwrap(), O_RDONLY, 0, got.cb())
        .unwrap();
    assert_errno(settle(&engine, &got), ENOENT);
}

#[test]
fn statx_reports_the_size() {
    let _g = shared();
    let engine = small_engine();
    let t = tempfile_with("statx", &pattern(8, 12345));
    let mut out = Box::new([0u8; 256]);
    let got = Got::new();
    // SAFETY: `out` is a writable 256-byte struct statx that outlives the request.
    unsafe {
        engine.statx(
            AT_FDCWD,
            t.path.to_str().unwrap(),
            0,
            STATX_SIZE,
            out.as_mut_ptr(),
            got.cb(),
        )
    }
    .unwrap();
    assert_eq!(ok(settle(&engine, &got)), 0);
    let mask = u32::from_ne_bytes(out[STX_MASK_OFFSET..][..4].try_into().unwrap());
    let size = u64::from_ne_bytes(out[STX_SIZE_OFFSET..][..8].try_into().unwrap());
    assert_ne!(mask & STATX_SIZE, 0, "stx_mask {mask:#x} lacks STATX_SIZE");
    assert_eq!(size, 12345);

    let missing = temp_path("missing-statx");
    // SAFETY: as above.
    unsafe {
        engine.statx(
            AT_FDCWD,
            missing.to_str().unwrap(),
            0,
            STATX_SIZE,
            out.as_mut_ptr(),
            got.cb(),
        )
    }
    .unwrap();
    assert_errno(settle(&engine, &got), ENOENT);
}

#[test]
fn fallocate_grows_ftruncate_shrinks() {
    let _g = shared();
    let engine = small_engine();
    let t = tempfile_with("falloc", &pattern(9, 10_000));
    let fd = t.file.as_raw_fd();
    let got = Got::new();
    engine.fallocate(fd, 0, 0, 1 << 20, got.cb()).unwrap();
    assert_eq!(ok(settle(&engine, &got)), 0);
    assert_eq!(t.file.metadata().unwrap().len(), 1 << 20);
    engine.fallocate(fd, 0, 1 << 20, 4096, got.cb()).unwrap();
    assert_eq!(ok(settle(&engine, &got)), 0);
    assert_eq!(t.file.metadata().unwrap().len(), (1 << 20) + 4096);
    let mut head = vec![0u8; 10_000];
    t.file.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, pattern(9, 10_000), "fallocate kept the data");

    engine.ftruncate(fd, 100, got.cb()).unwrap();
    match settle(&engine, &got) {
        Err(Error::Io(e)) if e.raw_os_error() == Some(EINVAL) => {
            skip(
                "fallocate_grows_ftruncate_shrinks",
                "ftruncate needs Linux 6.9+",
            );
            return;
        }
        r => assert_eq!(ok(r), 0),
    }
    assert_eq!(t.file.metadata().unwrap().len(), 100);
    assert_eq!(std::fs::read(&t.path).unwrap(), pattern(9, 100));
}

#[test]
fn sync_file_range_writes_back() {
    let _g = shared();
    let engine = small_engine();
    let mut t = tempfile("sfr");
    t.file.write_all(&pattern(10, 65536)).unwrap();
    let fd = t.file.as_raw_fd();
    let got = Got::new();
    engine
        .sync_file_range(fd, 0, 8192, SYNC_FILE_RANGE_ALL, got.cb())
        .unwrap();
    assert_eq!(ok(settle(&engine, &got)), 0);
    engine
        .sync_file_range(fd, 8192, 0, SYNC_FILE_RANGE_ALL, got.cb())
        .unwrap();
    assert_eq!(ok(settle(&engine, &got)), 0);
}

#[test]
fn short_read_at_eof_is_reported_short() {
    let _g = shared();
    let engine = small_engine();
    let data = pattern(11, 1000);
    let t = tempfile_with("eof", &data);
    let fd = t.file.as_raw_fd();
    let got = Got::new();
    let mut buf = engine.allocate_buffer(4096).unwrap();
    // SAFETY: `buf` outlives each request (each is settled before the next).
    unsafe { engine.read(fd, (&mut buf).into(), 4096, 0, got.cb()) }.unwrap();
    assert_eq!(ok(settle(&engine, &got)), 1000);
    assert_eq!(&buf[..1000], &data[..]);
    // SAFETY: as above.
    unsafe { engine.read(fd, (&mut buf).into(), 4096, 900, got.cb()) }.unwrap();
    assert_eq!(ok(settle(&engine, &got)), 100);
    assert_eq!(&buf[..100], &data[900..]);
    // SAFETY: as above.
    unsafe { engine.read(fd, (&mut buf).into(), 4096, 1000, got.cb()) }.unwrap();
    assert_eq!(ok(settle(&engine, &got)), 0);

    let got = Got::new();
    engine
        .read_owned(fd, engine.allocate_buffer(4096).unwrap(), 500, got.owned())
        .unwrap();
    let (r, buf) = settle(&engine, &got);
    assert_eq!(ok(r), 500);
    assert_eq!(&buf[..500], &data[500..]);
}

// ---- 2. four submitting threads, one waiting thread ----

/// Requests per submitting thread: the full 100 k also in debug builds (400 k reads take well
/// under a second there: ~500 k reads/s on a 2-CPU VM).
const OPS_PER_THREAD: usize = 100_000;

#[test]
fn four_threads_share_one_engine() {
    let _g = exclusive();
    const THREADS: usize = 4;
    const READ: usize = 512;
    const BLOCKS: usize = 2048; // a 1 MiB file
    let total = THREADS * OPS_PER_THREAD;
    let data = Arc::new(pattern(12, READ * BLOCKS));
    let t = tempfile_with("stress", &data);
    let fd = t.file.as_raw_fd();
    let engine = Engine::new().unwrap();
    let seen = Arc::new(Bitmap::new(total));
    let bad = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let would_block = Arc::new(AtomicU64::new(0));
    let submitting = Arc::new(AtomicUsize::new(THREADS));
    let started = Instant::now();

    std::thread::scope(|s| {
        for th in 0..THREADS {
            let (engine, data, seen, bad, done, would_block, submitting) = (
                &engine,
                &data,
                &seen,
                &bad,
                &done,
                &would_block,
                &submitting,
            );
            s.spawn(move || {
                for i in 0..OPS_PER_THREAD {
                    let id = th * OPS_PER_THREAD + i;
                    let off = (id * 7919 % BLOCKS) * READ;
                    loop {
                        let (data, seen, bad, done) = (
                            Arc::clone(data),
                            Arc::clone(seen),
                            Arc::clone(bad),
                            Arc::clone(done),
                        );
                        let r = if id % 2 == 0 {
                            let buf = engine.allocate_buffer(READ).unwrap();
                            engine
                                .read_owned(fd, buf, off as u64, move |r, buf| {
                                    if !matches!(r, Ok(READ)) || buf[..] != data[off..off + READ] {
                                        bad.fetch_add(1, Relaxed);
                                    }
                                    seen.mark(id);
                                    done.fetch_add(1, Relaxed);
                                })
                                .map_err(Error::from)
                        } else {
                            let mut v = vec![0u8; READ];
                            // SAFETY: the heap block of `v` moves into the callback, which
                            // runs once the read completed; nothing else touches it.
                            let r = unsafe { BufferRef::from_mut_slice(&mut v) };
                            // SAFETY: see above.
                            unsafe {
                                engine.read(fd, r, READ, off as u64, move |r| {
                                    if !matches!(r, Ok(READ)) || v[..] != data[off..off + READ] {
                                        bad.fetch_add(1, Relaxed);
                                    }
                                    seen.mark(id);
                                    done.fetch_add(1, Relaxed);
                                })
                            }
                        };
                        match r {
                            Ok(_) => break,
                            // Every slot is taken: the waiter frees some.
                            Err(Error::WouldBlock) => {
                                would_block.fetch_add(1, Relaxed);
                                std::thread::yield_now();
                            }
                            Err(e) => panic!("submit: {e}"),
                        }
                    }
                }
                submitting.fetch_sub(1, SeqCst);
            });
        }
        // The only thread that processes completions.
        s.spawn(|| {
            let mut polls = 0u64;
            loop {
                if submitting.load(SeqCst) == 0 && engine.pending_count() == 0 {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "stuck: {} done, {} pending",
                    done.load(Relaxed),
                    engine.pending_count()
                );
                polls += 1;
                if polls % 4 == 0 {
                    engine.poll().expect("poll");
                } else {
                    match engine.wait(50) {
                        Ok(0) => std::thread::yield_now(), // nothing pending yet
                        Ok(_) | Err(Error::TimedOut) => {}
                        Err(e) => panic!("wait: {e}"),
                    }
                }
            }
        });
    });
    let elapsed = started.elapsed();

    assert_eq!(done.load(Relaxed), total as u64, "callbacks run");
    assert_eq!(seen.count(), total as u64, "distinct requests completed");
    assert_eq!(seen.duplicates.load(Relaxed), 0, "callbacks run twice");
    assert_eq!(bad.load(Relaxed), 0, "reads with a wrong result or data");
    assert_eq!(engine.pending_count(), 0);
    assert_eq!(engine.buffer_stats().in_use_buffers, 0);
    let stats = engine.stats();
    assert_eq!(stats.ops_completed, total as u64);
    assert_eq!(stats.bytes_transferred, (total * READ) as u64);
    assert_eq!(stats.current_in_flight, 0);
    eprintln!(
        "{total} reads by {THREADS} threads over {} rings in {elapsed:?} ({:.0} k/s), \
         {} WouldBlock retries, {} adaptive spills",
        engine.ring_count(),
        total as f64 / elapsed.as_secs_f64() / 1e3,
        would_block.load(Relaxed),
        stats.adaptive_spills,
    );
}

// ---- 3. cancel ----

#[test]
fn cancel_pending_socket_reads() {
    let _g = shared();
    let engine = small_engine();
    let (a, _b) = UnixStream::pair().unwrap();
    let got = Got::new();
    let mut handles = Vec::new();
    for _ in 0..8 {
        let mut v = vec![0u8; 256];
        // SAFETY: the buffer's heap block moves into the callback, which runs after the read.
        let r = unsafe { BufferRef::from_mut_slice(&mut v) };
        let g = got.clone();
        // SAFETY: as above.
        let h = unsafe {
            engine.read(a.as_raw_fd(), r, 256, 0, move |res| {
                drop(v);
                g.push(res);
            })
        }
        .unwrap();
        handles.push(h);
    }
    // Nothing arrives: the reads are parked in the kernel.
    assert!(matches!(engine.wait(50), Err(Error::TimedOut)));
    assert_eq!(got.len(), 0);
    assert_eq!(engine.pending_count(), 8);
    for h in &handles {
        engine.cancel(*h).unwrap();
    }
    for r in settle_n(&engine, &got, 8) {
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    }
    assert_eq!(
        engine.pending_count(),
        0,
        "internal cancel requests counted out too"
    );
    // The handles are stale now.
    for h in &handles {
        assert_invalid(engine.cancel(*h), "completed");
    }
}

#[test]
fn cancel_a_request_queued_behind_the_gate_runs_its_callback_at_once() {
    let _g = shared();
    let engine = Engine::with_options(
        Options::new()
            .ring_count(1)
            .queue_depth(4)
            .disable_adaptive(true),
    )
    .unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let got: Got<(usize, Result<usize>, Buffer)> = Got::new();
    let mut handles = Vec::new();
    for i in 0..6 {
        let g = got.clone();
        let buf = engine.allocate_buffer(8).unwrap();
        let h = engine
            .read_owned(a.as_raw_fd(), buf, 0, move |r, buf| g.push((i, r, buf)))
            .unwrap();
        handles.push(h);
    }
    // Four in the kernel (the fixed limit), two queued.
    let rs = engine.ring_stats(0).unwrap();
    assert_eq!((rs.in_flight, rs.pending_count), (4, 6));
    // try_read refuses instead of queueing.
    let mut x = [0u8; 8];
    // SAFETY: never submitted (WouldBlock), so `x` is never accessed by the kernel.
    let r = unsafe {
        engine.try_read(
            a.as_raw_fd(),
            BufferRef::from_mut_slice(&mut x),
            8,
            0,
            |_| {},
        )
    };
    assert!(matches!(r, Err(Error::WouldBlock)), "{r:?}");

    engine.cancel(handles[5]).unwrap();
    let v = got.take();
    assert_eq!(v.len(), 1, "a queued request's callback runs inside cancel");
    assert_eq!(v[0].0, 5);
    assert!(matches!(v[0].1, Err(Error::Cancelled)));
    assert_eq!(engine.pending_count(), 5);

    // Data for the first reader, then cancel the rest.
    b.write_all(b"aura!!!!").unwrap();
    let deadline = Instant::now() + PATIENCE;
    while got.len() == 0 {
        assert!(Instant::now() < deadline);
        step(&engine, 100);
    }
    let first = got.take();
    assert_eq!(first.len(), 1);
    let (_, r, buf) = &first[0];
    assert!(matches!(r, Ok(8)), "{r:?}");
    assert_eq!(&buf[..], b"aura!!!!");
    let read_by = first[0].0;
    for (i, h) in handles.iter().enumerate().take(5) {
        if i != read_by {
            engine.cancel(*h).unwrap();
        }
    }
    let rest = settle_n(&engine, &got, 4);
    for (i, r, _) in &rest {
        assert!(matches!(r, Err(Error::Cancelled)), "request {i}: {r:?}");
    }
    assert_eq!(engine.pending_count(), 0);
    drop((v, first, rest));
    assert_eq!(engine.buffer_stats().in_use_buffers, 0);
}

#[test]
fn cancel_racing_a_file_read_gives_one_result() {
    let _g = shared();
    let engine = small_engine();
    let data = Arc::new(pattern(13, 1 << 20));
    let t = tempfile_with("race", &data);
    let fd = t.file.as_raw_fd();
    const N: usize = 2000;
    let seen = Arc::new(Bitmap::new(N));
    let (oks, cancelled, bad) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    for i in 0..N {
        let off = (i % 256) * 4096;
        let (data, seen, oks, cancelled, bad) = (
            Arc::clone(&data),
            Arc::clone(&seen),
            Arc::clone(&oks),
            Arc::clone(&cancelled),
            Arc::clone(&bad),
        );
        let buf = engine.allocate_buffer(4096).unwrap();
        let h = engine
            .read_owned(fd, buf, off as u64, move |r, buf| {
                match r {
                    Ok(4096) if buf[..] == data[off..off + 4096] => oks.fetch_add(1, Relaxed),
                    Err(Error::Cancelled) => cancelled.fetch_add(1, Relaxed),
                    _ => bad.fetch_add(1, Relaxed),
                };
                seen.mark(i);
            })
            .unwrap();
        // Nobody reaped since the submission: the request is live, cancel accepts it.
        engine.cancel(h).unwrap();
        if i % 64 == 63 {
            engine.poll().unwrap();
        }
    }
    engine.drain(5_000).unwrap();
    assert_eq!(seen.count(), N as u64);
    assert_eq!(seen.duplicates.load(Relaxed), 0);
    assert_eq!(
        bad.load(Relaxed),
        0,
        "neither Ok(4096) with the data nor Cancelled"
    );
    assert_eq!(oks.load(Relaxed) + cancelled.load(Relaxed), N as u64);
    assert_eq!(engine.pending_count(), 0);
    eprintln!(
        "cancel race: {} completed, {} cancelled",
        oks.load(Relaxed),
        cancelled.load(Relaxed)
    );
}

#[test]
fn cancel_of_a_completed_request_is_invalid() {
    let _g = shared();
    let engine = small_engine();
    let t = tempfile_with("done", &pattern(14, 4096));
    let got = Got::new();
    let h: RequestHandle = engine
        .read_owned(
            t.file.as_raw_fd(),
            engine.allocate_buffer(4096).unwrap(),
            0,
            got.owned(),
        )
        .unwrap();
    let (r, _) = settle(&engine, &got);
    assert_eq!(ok(r), 4096);
    assert_invalid(engine.cancel(h), "completed");
    // Its slot reused by a new request: the old handle still does not match.
    let (a, _b) = UnixStream::pair().unwrap();
    let h2 = engine
        .read_owned(
            a.as_raw_fd(),
            engine.allocate_buffer(8).unwrap(),
            0,
            got.owned(),
        )
        .unwrap();
    assert_invalid(engine.cancel(h), "completed");
    engine.cancel(h2).unwrap();
    let (r, _) = settle(&engine, &got);
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    // A handle naming a ring this engine does not have.
    let two = Engine::with_options(
        Options::new()
            .ring_count(2)
            .queue_depth(8)
            .ring_select(RingSelect::RoundRobin),
    )
    .unwrap();
    let got2 = Got::new();
    let hs: Vec<RequestHandle> = (0..2)
        .map(|_| {
            two.read_owned(
                t.file.as_raw_fd(),
                two.allocate_buffer(16).unwrap(),
                0,
                got2.owned(),
            )
            .unwrap()
        })
        .collect();
    let on_ring_1 = hs.iter().find(|h| h.ring() == 1).expect("round robin");
    assert_invalid(engine.cancel(*on_ring_1), "ring 1");
    settle_n(&two, &got2, 2);
}

// ---- 4. dropping an engine with requests in flight ----

#[test]
fn dropping_the_engine_runs_every_callback_first() {
    let _g = exclusive();
    const N: usize = 10_000;
    const READ: usize = 1024;
    let data = Arc::new(pattern(15, 1 << 20));
    let t = tempfile_with("drop", &data);
    let fd = t.file.as_raw_fd();
    let engine = Engine::with_options(Options::new().ring_count(1).queue_depth(4096)).unwrap();
    let pool = engine.buffer_pool().clone();
    let seen = Arc::new(Bitmap::new(N));
    let good = Arc::new(AtomicU64::new(0));
    for i in 0..N {
        let off = (i * 131 % 1024) * READ;
        let (data, seen, good) = (Arc::clone(&data), Arc::clone(&seen), Arc::clone(&good));
        if i % 2 == 0 {
            let mut v = vec![0u8; READ];
            // SAFETY: the heap block of `v` moves into the callback and lives until it runs;
            // the engine's drop runs it only after the CQE.
            let r = unsafe { BufferRef::from_mut_slice(&mut v) };
            // SAFETY: as above.
            unsafe {
                engine.read(fd, r, READ, off as u64, move |r| {
                    if matches!(r, Ok(READ)) && v[..] == data[off..off + READ] {
                        good.fetch_add(1, Relaxed);
                    }
                    seen.mark(i);
                })
            }
            .unwrap();
        } else {
            let buf = engine.allocate_buffer(READ).unwrap();
            engine
                .read_owned(fd, buf, off as u64, move |r, buf| {
                    if matches!(r, Ok(READ)) && buf[..] == data[off..off + READ] {
                        good.fetch_add(1, Relaxed);
                    }
                    seen.mark(i);
                })
                .unwrap();
        }
    }
    assert_eq!(engine.pending_count(), N, "nothing was reaped yet");
    assert_eq!(seen.count(), 0);
    let started = Instant::now();
    drop(engine);
    let took = started.elapsed();
    assert_eq!(seen.count(), N as u64, "every callback ran during the drop");
    assert_eq!(seen.duplicates.load(Relaxed), 0);
    assert_eq!(good.load(Relaxed), N as u64, "every read saw its data");
    assert_eq!(pool.stats().in_use_buffers, 0);
    eprintln!("drop with {N} in flight took {took:?}");
}

// ---- 5. callbacks that submit, stop, or wait ----

/// Reads block `i` (of 4 KiB) through the same owned buffer, and from its callback the next.
fn chain(
    engine: Engine,
    fd: RawFd,
    buf: Buffer,
    i: usize,
    data: Arc<Vec<u8>>,
    done: Arc<AtomicU64>,
) {
    let next = engine.clone();
    engine
        .read_owned(fd, buf, (i * 4096) as u64, move |r, buf| {
            if r.ok() != Some(4096) || buf[..] != data[i * 4096..][..4096] {
                return; // the chain stops; the test sees the count fall short
            }
            done.fetch_add(1, SeqCst);
            if i + 1 < 1000 {
                chain(next, fd, buf, i + 1, data, done);
            }
        })
        .expect("submit from a callback");
}

#[test]
fn a_callback_submits_the_next_read() {
    let _g = shared();
    let engine = small_engine();
    let data = Arc::new(pattern(16, 1000 * 4096));
    let t = tempfile_with("chain", &data);
    let done = Arc::new(AtomicU64::new(0));
    let buf = engine.allocate_buffer(4096).unwrap();
    chain(
        engine.clone(),
        t.file.as_raw_fd(),
        buf,
        0,
        Arc::clone(&data),
        Arc::clone(&done),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.load(SeqCst) < 1000 && engine.pending_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "chain stuck at {}",
            done.load(SeqCst)
        );
        step(&engine, 100);
    }
    assert_eq!(done.load(SeqCst), 1000);
    assert_eq!(engine.pending_count(), 0);
    assert_eq!(engine.stats().ops_completed, 1000);
    assert_eq!(engine.buffer_stats().in_use_buffers, 0);
}

#[test]
fn a_callback_stops_run() {
    let _g = shared();
    let engine = small_engine();
    let t = tempfile_with("stop", &pattern(17, 4096));
    let fd = t.file.as_raw_fd();
    let ran = Arc::new(AtomicBool::new(false));
    let (e2, ran2) = (engine.clone(), Arc::clone(&ran));
    engine
        .read_owned(fd, engine.allocate_buffer(4096).unwrap(), 0, move |r, _| {
            assert_eq!(r.ok(), Some(4096));
            ran2.store(true, SeqCst);
            e2.stop();
        })
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let e3 = engine.clone();
    std::thread::spawn(move || tx.send(e3.run()).unwrap());
    let r = rx
        .recv_timeout(PATIENCE)
        .expect("run() did not return after a callback called stop()");
    r.unwrap();
    assert!(ran.load(SeqCst));
    assert_eq!(engine.pending_count(), 0);

    // And stop() from another thread ends a run() with nothing to do.
    let (tx, rx) = std::sync::mpsc::channel();
    let e4 = engine.clone();
    std::thread::spawn(move || tx.send(e4.run()).unwrap());
    std::thread::sleep(Duration::from_millis(50));
    engine.stop();
    rx.recv_timeout(PATIENCE)
        .expect("run() ignored stop()")
        .unwrap();
}

#[test]
fn callbacks_that_resubmit_do_not_trap_poll_or_wait() {
    let _g = shared();
    const DEPTH: usize = 64;
    let data = pattern(29, 256 * 4096);
    let t = tempfile_with("trap", &data);
    let engine = Engine::with_options(
        Options::new()
            .ring_count(1)
            .queue_depth(64)
            .disable_adaptive(true),
    )
    .unwrap();
    let st = Arc::new(ClosedLoop {
        fd: t.file.as_raw_fd(),
        blocks: 256,
        data,
        stop: AtomicBool::new(false),
        submitted: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        bad: AtomicU64::new(0),
    });
    for _ in 0..DEPTH {
        let buf = engine.allocate_buffer(4096).unwrap();
        closed_loop_read(engine.clone(), buf, Arc::clone(&st));
    }
    // Every completion submits the next read (page-cache reads complete at once): each call must
    // still come back to its caller promptly. (On another thread, so a regression fails here
    // instead of hanging the test.)
    let (tx, rx) = std::sync::mpsc::channel();
    let e2 = engine.clone();
    std::thread::spawn(move || {
        for i in 0..40 {
            let t0 = Instant::now();
            if i % 2 == 0 {
                e2.poll().unwrap();
            } else {
                step(&e2, 10);
            }
            tx.send(t0.elapsed()).unwrap();
        }
    });
    let mut slowest = Duration::ZERO;
    for i in 0..40 {
        let took = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("poll/wait call {i} did not return within 5 s"));
        assert!(took < Duration::from_secs(1), "call {i} took {took:?}");
        slowest = slowest.max(took);
    }
    st.stop.store(true, Relaxed);
    engine.drain(5_000).unwrap();
    assert_eq!(st.completed.load(Relaxed), st.submitted.load(Relaxed));
    assert_eq!(st.bad.load(Relaxed), 0);
    assert_eq!(engine.pending_count(), 0);
    assert_eq!(engine.buffer_stats().in_use_buffers, 0);
    eprintln!(
        "resubmitting callbacks: {} reads, slowest poll/wait {slowest:?}",
        st.completed.load(Relaxed)
    );
}

/// Nanoseconds the calling thread has spent on a CPU (user + kernel).
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn an_idle_run_sleeps_and_still_serves_submissions() {
    let _g = shared();
    let engine = small_engine();
    let (tx, rx) = std::sync::mpsc::channel();
    let e2 = engine.clone();
    std::thread::spawn(move || {
        let (cpu, wall) = (thread_cpu_ns(), Instant::now());
        let r = e2.run();
        let busy = (thread_cpu_ns() - cpu) as f64 / wall.elapsed().as_nanos() as f64;
        tx.send((r, busy)).unwrap();
    });
    std::thread::sleep(Duration::from_millis(150));
    // A submission from another thread while run() idles is processed by run().
    let data = pattern(28, 4096);
    let t = tempfile_with("idle-run", &data);
    let got = Got::new();
    let buf = engine.allocate_buffer(4096).unwrap();
    engine
        .read_owned(t.file.as_raw_fd(), buf, 0, got.owned())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while got.len() == 0 {
        assert!(
            Instant::now() < deadline,
            "run() did not serve a submission within 1 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let (r, buf) = got.take().pop().unwrap();
    assert_eq!(ok(r), 4096);
    assert_eq!(&buf[..], &data[..]);
    std::thread::sleep(Duration::from_millis(150));
    engine.stop();
    let (r, busy) = rx.recv_timeout(PATIENCE).expect("run() ignored stop()");
    r.unwrap();
    eprintln!("idle run(): its thread was {:.1}% busy", busy * 100.0);
    assert!(
        busy < 0.3,
        "run() kept its thread {:.0}% busy with nothing to do",
        busy * 100.0
    );
}

#[test]
fn waiting_inside_a_callback_is_refused() {
    let _g = shared();
    let engine = small_engine();
    let t = tempfile_with("reent", &pattern(18, 4096));
    let got: Got<(bool, [bool; 4])> = Got::new();
    let (e2, g) = (engine.clone(), got.clone());
    engine
        .read_owned(
            t.file.as_raw_fd(),
            engine.allocate_buffer(16).unwrap(),
            0,
            move |_, _| {
                let refused = [
                    matches!(e2.wait(1000), Err(Error::InvalidArgument(_))),
                    matches!(e2.poll(), Err(Error::InvalidArgument(_))),
                    matches!(e2.drain(1000), Err(Error::InvalidArgument(_))),
                    matches!(e2.run(), Err(Error::InvalidArgument(_))),
                ];
                g.push((aura::in_callback(), refused));
            },
        )
        .unwrap();
    assert!(!aura::in_callback());
    let (inside, refused) = settle(&engine, &got);
    assert!(inside, "in_callback() inside a callback");
    assert_eq!(
        refused, [true; 4],
        "wait / poll / drain / run from a callback"
    );
    assert!(!aura::in_callback());
}

#[test]
fn a_panicking_callback_loses_no_other_completion() {
    let _g = shared();
    let engine = small_engine();
    let data = pattern(27, 3 * 4096);
    let t = tempfile_with("panic", &data);
    let got: Got<(usize, Result<usize>, Buffer)> = Got::new();
    for i in 0..3 {
        let g = got.clone();
        let buf = engine.allocate_buffer(4096).unwrap();
        engine
            .read_owned(t.file.as_raw_fd(), buf, (i * 4096) as u64, move |r, buf| {
                if i == 1 {
                    panic!("callback 1 panics (on purpose)");
                }
                g.push((i, r, buf));
            })
            .unwrap();
    }
    engine.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50)); // all three CQEs are posted: one batch
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.wait(1000)));
    assert!(caught.is_err(), "the callback's panic reaches the waiter");
    assert!(
        !aura::in_callback(),
        "the thread is no longer marked as in a callback"
    );
    // The engine still works from this thread, and the other two callbacks ran once each.
    engine.drain(1000).unwrap();
    let mut v = got.take();
    v.sort_by_key(|(i, _, _)| *i);
    assert_eq!(v.iter().map(|(i, _, _)| *i).collect::<Vec<_>>(), [0, 2]);
    for (i, r, buf) in &v {
        assert!(matches!(r, Ok(4096)), "{r:?}");
        assert_eq!(&buf[..], &data[i * 4096..][..4096]);
    }
    drop(v);
    assert_eq!(engine.pending_count(), 0);
    assert_eq!(engine.buffer_stats().in_use_buffers, 0);
    let got2 = Got::new();
    let buf = engine.allocate_buffer(16).unwrap();
    engine
        .read_owned(t.file.as_raw_fd(), buf, 0, got2.owned())
        .unwrap();
    assert_eq!(ok(settle(&engine, &got2).0), 16);

    // The same during the engine's drop: the drain goes on, then the panic is passed on.
    let got: Got<usize> = Got::new();
    let data = Arc::new(data);
    for i in 0..3 {
        let (g, data) = (got.clone(), Arc::clone(&data));
        let buf = engine.allocate_buffer(4096).unwrap();
        engine
            .read_owned(t.file.as_raw_fd(), buf, (i * 4096) as u64, move |r, buf| {
                if i == 0 {
                    panic!("callback 0 panics during the drop (on purpose)");
                }
                if r.ok() == Some(4096) && buf[..] == data[i * 4096..][..4096] {
                    g.push(i);
                }
            })
            .unwrap();
    }
    let pool = engine.buffer_pool().clone();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(engine)));
    assert!(caught.is_err(), "the callback's panic reaches the dropper");
    let mut v = got.take();
    v.sort_unstable();
    assert_eq!(v, [1, 2], "the other callbacks ran during the drop");
    assert_eq!(pool.stats().in_use_buffers, 0);
}

// ---- 6. the eventfd under epoll ----

/// Whether the engine's eventfd is readable within `ms`, through an epoll instance.
///
/// `EINTR` is retried: without COOP_TASKRUN the kernel interrupts the submitting thread to post
/// its completions (task work), and a blocking `epoll_wait` in that thread returns `EINTR` then.
fn epoll_ready(ep: &rustix::fd::OwnedFd, ms: u64) -> bool {
    use rustix::event::{epoll, Timespec};
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut events = Vec::with_capacity(4);
        match epoll::wait(ep, rustix::buffer::spare_capacity(&mut events), Some(&ts)) {
            Ok(_) => return events.iter().any(|e| e.data.u64() == 7),
            Err(rustix::io::Errno::INTR) if !left.is_zero() => {}
            Err(rustix::io::Errno::INTR) => return false,
            Err(e) => panic!("epoll_wait: {e}"),
        }
    }
}

/// An epoll instance watching `engine`'s eventfd (data 7).
fn epoll_on(engine: &Engine) -> rustix::fd::OwnedFd {
    use rustix::event::epoll;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    // SAFETY: the eventfd lives as long as the engine, which outlives this registration's use
    // (the epoll instance only watches it; closing either end is harmless).
    let efd = unsafe { BorrowedFd::borrow_raw(engine.poll_fd()) };
    epoll::add(
        &ep,
        efd,
        epoll::EventData::new_u64(7),
        epoll::EventFlags::IN,
    )
    .unwrap();
    ep
}

/// Submits an owned file read (flushing when `flush`), waits for epoll to see the eventfd,
/// then checks that `poll` runs exactly that callback with the data.
fn epoll_sees_a_file_read(engine: &Engine, flush: bool) {
    let ep = epoll_on(engine);
    engine.poll().unwrap();
    assert!(!epoll_ready(&ep, 0), "readable with nothing submitted");
    let data = pattern(19, 4096);
    let t = tempfile_with("epoll", &data);
    let got = Got::new();
    let buf = engine.allocate_buffer(4096).unwrap();
    engine
        .read_owned(t.file.as_raw_fd(), buf, 0, got.owned())
        .unwrap();
    if flush {
        engine.flush().unwrap();
    }
    assert!(
        epoll_ready(&ep, 1000),
        "epoll saw nothing within 1 s of the submission"
    );
    assert_eq!(got.len(), 0, "nothing ran before poll()");
    assert_eq!(engine.poll().unwrap(), 1);
    let (r, buf) = got.take().pop().unwrap();
    assert_eq!(ok(r), 4096);
    assert_eq!(&buf[..], &data[..]);
    assert!(!epoll_ready(&ep, 0), "poll() consumed the wakeup");
    assert_eq!(engine.pending_count(), 0);
}

#[test]
fn poll_fd_wakes_epoll() {
    let _g = shared();
    // Default batching: a lone SQE waits for a flush (see `Engine::poll_fd`).
    epoll_sees_a_file_read(&small_engine(), true);
    // Batch threshold 1: every submission goes to the kernel at once, no flush needed.
    let eager = Engine::with_options(
        Options::new()
            .ring_count(1)
            .queue_depth(64)
            .batch_threshold(1),
    )
    .unwrap();
    epoll_sees_a_file_read(&eager, false);

    // A socket read completes later, when data arrives: the eventfd fires then.
    let engine = small_engine();
    let ep = epoll_on(&engine);
    let got = Got::new();
    let (a, mut b) = UnixStream::pair().unwrap();
    let buf = engine.allocate_buffer(5).unwrap();
    engine
        .read_owned(a.as_raw_fd(), buf, 0, got.owned())
        .unwrap();
    engine.flush().unwrap();
    assert!(!epoll_ready(&ep, 100), "readable before any data");
    b.write_all(b"hello").unwrap();
    assert!(
        epoll_ready(&ep, 1000),
        "epoll saw nothing within 1 s of the data"
    );
    assert_eq!(engine.poll().unwrap(), 1);
    let (r, buf) = got.take().pop().unwrap();
    assert_eq!(ok(r), 5);
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn poll_fd_fires_for_completions_posted_before_it_was_asked_for() {
    let _g = shared();
    // The eventfd is registered on the rings only when a thread sleeps for completions or asks
    // for `poll_fd`: completions posted before that did not signal it, and must not be missed.
    let engine = small_engine();
    let got = Got::new();
    engine.nop(got.cb()).unwrap();
    engine.flush().unwrap(); // the NOP completes during the submission
    let ep = epoll_on(&engine);
    assert!(
        epoll_ready(&ep, 0),
        "a completion waiting from before poll_fd left the fd unreadable"
    );
    assert_eq!(engine.poll().unwrap(), 1);
    assert_eq!(ok(got.take().pop().unwrap()), 0);
    assert!(!epoll_ready(&ep, 0), "poll() consumed the wakeup");
    // From now on completions signal it themselves.
    engine.nop(got.cb()).unwrap();
    engine.flush().unwrap();
    assert!(epoll_ready(&ep, 1000), "a later completion did not fire it");
    assert_eq!(engine.poll().unwrap(), 1);
    assert_eq!(engine.pending_count(), 0);
}

#[test]
fn a_wait_that_sleeps_first_registers_the_eventfd_and_wakes_on_data() {
    let _g = shared();
    // Nothing has asked for the eventfd: the first sleep in `wait` registers it, and a socket
    // read completing later (data written by another thread) wakes that sleep.
    let engine = small_engine();
    let got = Got::new();
    let (a, mut b) = UnixStream::pair().unwrap();
    let buf = engine.allocate_buffer(3).unwrap();
    engine
        .read_owned(a.as_raw_fd(), buf, 0, got.owned())
        .unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        b.write_all(b"abc").unwrap();
        b
    });
    let t = Instant::now();
    assert_eq!(engine.wait(5_000).unwrap(), 1);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "wait ran to its timeout"
    );
    let (r, buf) = got.take().pop().unwrap();
    assert_eq!(ok(r), 3);
    assert_eq!(&buf[..], b"abc");
    drop(writer.join().unwrap());
}

// ---- 7. bad input ----

#[test]
fn bad_arguments_are_refused() {
    let _g = shared();
    let engine = small_engine();
    let t = tempfile_with("bad", &pattern(20, 4096));
    let fd = t.file.as_raw_fd();
    let mut buf = engine.allocate_buffer(4096).unwrap();
    let cb = |_: Result<usize>| panic!("a refused request ran its callback");
    let owned_cb = |_: Result<usize>, _: Buffer| panic!("a refused request ran its callback");

    // SAFETY: every call below is refused before submission, so no memory is accessed.
    unsafe {
        assert_invalid(engine.read(-1, (&mut buf).into(), 16, 0, cb), "fd -1");
        assert_invalid(engine.write(-1, (&buf).into(), 16, 0, cb), "fd -1");
        assert_invalid(engine.read(fd, (&mut buf).into(), 0, 0, cb), "len 0");
        assert_invalid(engine.read(fd, (&mut buf).into(), 8192, 0, cb), "len 8192");
        let huge = 1usize << 33;
        let fake = BufferRef::from_ptr(buf.as_mut_ptr(), huge);
        assert_invalid(engine.read(fd, fake, huge, 0, cb), "u32::MAX");
        let null = BufferRef::from_ptr(std::ptr::null_mut(), 16);
        assert_invalid(engine.read(fd, null, 16, 0, cb), "null");
        assert_invalid(
            engine.read(fd, BufferRef::fixed(0, 0), 16, 0, cb),
            "fixed buffer 0",
        );
        assert_invalid(engine.readv(fd, &[], 0, cb), "iovec count 0");
        let many = vec![
            IoVec {
                base: buf.as_mut_ptr(),
                len: 1
            };
            aura::IOV_MAX + 1
        ];
        assert_invalid(engine.readv(fd, &many, 0, cb), "iovec count");
        assert_invalid(engine.readv(-1, &many[..1], 0, cb), "fd -1");
        assert_invalid(
            engine.statx(AT_FDCWD, "/", 0, STATX_SIZE, std::ptr::null_mut(), cb),
            "null",
        );
    }
    assert_invalid(
        engine.read_owned(-1, engine.allocate_buffer(16).unwrap(), 0, owned_cb),
        "fd -1",
    );
    let mut empty = engine.allocate_buffer(16).unwrap();
    empty.set_len(0);
    assert_invalid(engine.read_owned(fd, empty, 0, owned_cb), "len 0");
    assert_invalid(engine.fsync(-1, cb), "fd -1");
    assert_invalid(engine.fdatasync(-1, cb), "fd -1");
    assert_invalid(engine.close(-1, cb), "fd -1");
    assert_invalid(engine.fallocate(fd, 0, 0, 0, cb), "len 0");
    assert_invalid(engine.ftruncate(-1, 0, cb), "fd -1");
    assert_invalid(engine.sync_file_range(-1, 0, 0, 0, cb), "fd -1");
    assert_invalid(engine.openat(AT_FDCWD, "a\0b", O_RDONLY, 0, cb), "NUL");
    assert_invalid(engine.allocate_buffer(0), "");
    assert_eq!(engine.pending_count(), 0);

    assert_eq!(engine.ring_stats(999), None);
    assert!(engine.ring_stats(0).is_some());

    // Registration misuse.
    engine.register_files(&[fd]).unwrap();
    assert_busy(engine.register_files(&[fd]), "already registered");
    assert_invalid(engine.update_file(5, fd), "file index 5");
    engine.unregister_files().unwrap();
    assert_invalid(engine.unregister_files(), "none registered");
    assert_invalid(engine.register_files(&[]), "empty");
    assert_invalid(engine.unregister_buffers(), "none registered");
}

#[test]
fn o_direct_into_an_unaligned_pointer_fails_with_einval() {
    let _g = shared();
    let path = disk_path("direct-unaligned");
    let data = pattern(21, 65536);
    std::fs::write(&path.0, &data).unwrap();
    let Some(file) = open_direct(&path.0) else {
        skip(
            "o_direct_into_an_unaligned_pointer_fails_with_einval",
            "the target directory's filesystem refuses O_DIRECT",
        );
        return;
    };
    let engine = small_engine();
    let fd = file.as_raw_fd();
    let mut buf = engine.allocate_buffer(8192).unwrap();
    let got = Got::new();
    // SAFETY: `buf` (8192 bytes) outlives the request; ptr + 1 .. + 4097 lies inside it.
    let r = unsafe { BufferRef::from_ptr(buf.as_mut_ptr().add(1), 4096) };
    // SAFETY: as above.
    unsafe { engine.read(fd, r, 4096, 0, got.cb()) }.unwrap();
    assert_errno(settle(&engine, &got), EINVAL);
    // The aligned read of the same file works (O_DIRECT itself is fine here).
    // SAFETY: as above.
    unsafe { engine.read(fd, (&mut buf).into(), 8192, 4096, got.cb()) }.unwrap();
    assert_eq!(ok(settle(&engine, &got)), 8192);
    assert_eq!(&buf[..], &data[4096..4096 + 8192]);
}

#[test]
fn options_are_validated_naming_the_field() {
    let _g = shared();
    let bad = |o: Options, field: &str| assert_invalid(Engine::with_options(o), field);
    bad(Options::new().queue_depth(3), "queue_depth");
    bad(Options::new().queue_depth(65536), "queue_depth");
    bad(
        Options::new().queue_depth(64).min_in_flight(65),
        "min_in_flight",
    );
    bad(
        Options::new().queue_depth(64).initial_in_flight(65),
        "initial_in_flight",
    );
    bad(
        Options::new()
            .queue_depth(64)
            .min_in_flight(8)
            .initial_in_flight(4),
        "initial_in_flight",
    );
    bad(Options::new().batch_threshold(-2), "batch_threshold");
    bad(Options::new().buffer_alignment(3), "buffer_alignment");
    bad(Options::new().buffer_alignment(4), "buffer_alignment");
    bad(
        Options::new().max_p99_latency_ms(-1.0),
        "max_p99_latency_ms",
    );
    bad(
        Options::new().max_p99_latency_ms(f64::NAN),
        "max_p99_latency_ms",
    );
    bad(Options::new().ring_count(5000), "ring_count");
    bad(Options::new().sqpoll(true, 0), "sqpoll_idle_ms");
    // The edges that are allowed.
    Engine::with_options(
        Options::new()
            .ring_count(1)
            .queue_depth(4)
            .min_in_flight(4)
            .initial_in_flight(4)
            .batch_threshold(0)
            .buffer_alignment(8)
            .ring_select(RingSelect::ThreadLocal),
    )
    .unwrap();
}

// ---- 8. the gate tunes a closed-loop client ----

/// Shared state of the closed-loop client of the gate test.
struct ClosedLoop {
    fd: RawFd,
    blocks: usize,
    data: Vec<u8>,
    stop: AtomicBool,
    submitted: AtomicU64,
    completed: AtomicU64,
    bad: AtomicU64,
}

/// Reads a pseudo-random 4 KiB block into `buf`; its callback checks the data and, until
/// `stop`, submits the next read itself, so the client keeps the same number pending at every
/// instant (a client that resubmits from its own loop after `wait` returns makes pending dip to
/// zero between passes, and a controller tick may sample the dip).
fn closed_loop_read(engine: Engine, buf: Buffer, st: Arc<ClosedLoop>) {
    let n = st.submitted.fetch_add(1, Relaxed);
    let block = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % st.blocks;
    let off = block * 4096;
    let next = engine.clone();
    engine
        .read_owned(st.fd, buf, off as u64, move |r, buf| {
            if r.ok() != Some(4096) || buf[..] != st.data[off..off + 4096] {
                st.bad.fetch_add(1, Relaxed);
            }
            st.completed.fetch_add(1, Relaxed);
            if !st.stop.load(Relaxed) {
                closed_loop_read(next, buf, st);
            }
        })
        .expect("resubmission");
}

#[test]
fn the_gate_engages_for_a_closed_loop_client() {
    let _g = exclusive();
    const DEPTH: usize = 256;
    const BLOCKS: usize = 4096; // a 16 MiB file
    let data = pattern(22, BLOCKS * 4096);
    let t = tempfile_with("gate", &data);
    let engine = Engine::with_options(Options::new().ring_count(1)).unwrap();
    let qd = engine.options().effective_queue_depth() as u64;
    let st = Arc::new(ClosedLoop {
        fd: t.file.as_raw_fd(),
        blocks: BLOCKS,
        data,
        stop: AtomicBool::new(false),
        submitted: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        bad: AtomicU64::new(0),
    });
    for _ in 0..DEPTH {
        let buf = engine.allocate_buffer(4096).unwrap();
        closed_loop_read(engine.clone(), buf, Arc::clone(&st));
    }
    let started = Instant::now();
    let (mut engaged, mut phases, mut min_limit, mut max_limit) = (false, Vec::new(), u64::MAX, 0);
    while started.elapsed() < Duration::from_millis(1000) {
        step(&engine, 10);
        let rs = engine.ring_stats(0).unwrap();
        assert!(
            rs.in_flight_limit <= qd,
            "limit {} > queue depth {qd}",
            rs.in_flight_limit
        );
        assert!(rs.in_flight <= rs.in_flight_limit.max(DEPTH as u64));
        if phases.last().map(|(_, p)| p) != Some(&rs.phase) {
            phases.push((started.elapsed().as_millis(), rs.phase));
        }
        if started.elapsed() > Duration::from_millis(300) {
            engaged |= rs.phase != Phase::Passthrough;
            min_limit = min_limit.min(rs.in_flight_limit);
            max_limit = max_limit.max(rs.in_flight_limit);
        }
    }
    st.stop.store(true, Relaxed);
    engine.drain(5_000).unwrap();
    let rs = engine.ring_stats(0).unwrap();
    let (submitted, completed) = (st.submitted.load(Relaxed), st.completed.load(Relaxed));
    eprintln!(
        "closed loop of {DEPTH}: {submitted} reads in ~1 s, phases (ms, phase) {phases:?}, \
         limit after 300 ms {min_limit}..={max_limit} (queue depth {qd}), p99 {:?} ms",
        rs.p99_latency_ms
    );
    assert!(engaged, "the gate never left Passthrough: {phases:?}");
    assert_eq!(completed, submitted, "every read completed once");
    assert_eq!(st.bad.load(Relaxed), 0, "reads with a wrong result or data");
    assert_eq!(rs.ops_completed, submitted);
    assert_eq!(engine.stats().ops_completed, submitted);
    assert_eq!(rs.bytes_transferred, submitted * 4096);
    assert_eq!(engine.pending_count(), 0);
    assert_eq!(engine.buffer_stats().in_use_buffers, 0);
}

// ---- 9. CPU placement: completions never stall ----

/// 4 KiB blocks of the placement test's file (64 MiB).
const PLACEMENT_BLOCKS: usize = 16384;

/// The placement test's 64 MiB file in the target directory (on the real disk), block `b`
/// tagged with `b` in its first 8 bytes. It is kept between runs (rewriting 64 MiB right before
/// measuring would leave the device busy with writeback); `None` when O_DIRECT is refused there.
fn placement_file() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("aura-engine-placement-64m.dat");
    let tag = |b: usize, i: usize| (b as u64) ^ ((i as u64) << 48);
    let intact = |f: &File| {
        f.metadata().map(|m| m.len()).ok() == Some((PLACEMENT_BLOCKS * 4096) as u64)
            && (0..PLACEMENT_BLOCKS).step_by(997).all(|b| {
                let mut w = [0u8; 16];
                f.read_exact_at(&mut w, (b * 4096 + 8) as u64).is_ok()
                    && u64::from_le_bytes(w[8..].try_into().unwrap()) == tag(b, 2)
            })
    };
    if !File::open(&path).is_ok_and(|f| intact(&f)) {
        let tmp = disk_path("placement-new");
        let mut f = File::create(&tmp.0).unwrap();
        let mut chunk = Vec::with_capacity(1 << 20);
        for b in 0..PLACEMENT_BLOCKS {
            for i in 0..512 {
                chunk.extend_from_slice(&tag(b, i).to_le_bytes());
            }
            if chunk.len() == 1 << 20 {
                f.write_all(&chunk).unwrap();
                chunk.clear();
            }
        }
        f.sync_all().unwrap();
        std::fs::rename(&tmp.0, &path).unwrap();
    }
    open_direct(&path).map(|_| path)
}

/// One pinned run: O_DIRECT 4 KiB random reads at QD 32 for `secs` on `cpu`; returns the IOPS
/// and the share of the time the pinned thread was on its CPU (user + kernel).
fn pinned_run(cpu: usize, path: &std::path::Path, blocks: usize, secs: f64) -> (f64, f64) {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        aura_core::sys::set_affinity(&[cpu]).expect("sched_setaffinity");
        let file = open_direct(&path).expect("O_DIRECT worked before");
        let fd = file.as_raw_fd();
        let engine = Engine::with_options(
            Options::new()
                .ring_count(1)
                .queue_depth(32)
                .disable_adaptive(true)
                .initial_in_flight(32),
        )
        .unwrap();
        let back: Got<Buffer> = Got::new();
        let bad = Arc::new(AtomicU64::new(0));
        let mut rng = 0x9E37_79B9u32 ^ cpu as u32;
        let mut submit = |buf: Buffer| {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            let block = rng as usize % blocks;
            let (back, bad) = (back.clone(), Arc::clone(&bad));
            engine
                .read_owned(fd, buf, (block * 4096) as u64, move |r, buf| {
                    let tag = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    if r.ok() != Some(4096) || tag != block as u64 {
                        bad.fetch_add(1, Relaxed);
                    }
                    back.push(buf);
                })
                .unwrap();
        };
        for _ in 0..32 {
            submit(engine.allocate_buffer(4096).unwrap());
        }
        let cpu_ns = || -> u64 {
            let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
            s.split_whitespace().next().unwrap().parse().unwrap()
        };
        let cpu0 = cpu_ns();
        let started = Instant::now();
        let mut done = 0u64;
        while started.elapsed().as_secs_f64() < secs {
            step(&engine, 10);
            for buf in back.take() {
                done += 1;
                submit(buf);
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let busy = (cpu_ns() - cpu0) as f64 / 1e9 / elapsed;
        engine.drain(5_000).unwrap();
        assert_eq!(bad.load(Relaxed), 0, "O_DIRECT reads returned wrong blocks");
        assert_eq!(engine.pending_count(), 0);
        (done as f64 / elapsed, busy)
    })
    .join()
    .expect("pinned run panicked")
}

/// One set of the placement test: three 1.5 s runs per CPU in the order A B B A A B (a device,
/// or a neighbour, whose rate drifts during the set favours neither CPU, and the median drops
/// one outlier per CPU); prints them and returns the two medians.
fn placement_set(c0: usize, c1: usize, path: &std::path::Path) -> (f64, f64) {
    let mut rates = [Vec::new(), Vec::new()];
    let mut busy = [Vec::new(), Vec::new()];
    for which in [0, 1, 1, 0, 0, 1] {
        let cpu = [c0, c1][which];
        let (iops, b) = pinned_run(cpu, path, PLACEMENT_BLOCKS, 1.5);
        rates[which].push(iops);
        busy[which].push(format!("{:.0}%", b * 100.0));
    }
    let median = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0
    };
    let (m0, m1) = (median(&rates[0]), median(&rates[1]));
    let runs = |v: &Vec<f64>| v.iter().map(|r| r.round()).collect::<Vec<_>>();
    eprintln!(
        "O_DIRECT 4 KiB random reads, QD 32: CPU {c0}: median {m0:.0} IOPS (runs {:?}, thread \
         busy {:?}); CPU {c1}: median {m1:.0} IOPS (runs {:?}, busy {:?}); worst/best {:.3}",
        runs(&rates[0]),
        busy[0],
        runs(&rates[1]),
        busy[1],
        m0.min(m1) / m0.max(m1)
    );
    (m0, m1)
}

#[test]
fn o_direct_rate_is_the_same_on_either_cpu() {
    let name = "o_direct_rate_is_the_same_on_either_cpu";
    let _g = exclusive();
    let cpus = aura_core::sys::affinity_cpus().unwrap();
    if cpus.len() < 2 {
        skip(name, "needs two CPUs in the affinity mask");
        return;
    }
    let Some(path) = placement_file() else {
        skip(name, "the target directory's filesystem refuses O_DIRECT");
        return;
    };
    let (c0, c1) = (cpus[0], cpus[1]);
    // Earlier tests (the C suite builds and installs programs) leave dirty pages whose writeback
    // would share the disk and a CPU with the runs below: flush them first.
    rustix::fs::sync();
    pinned_run(c0, &path, PLACEMENT_BLOCKS, 0.3); // warm-up, not counted

    // The virtio disk's own rate drifts by several % within seconds on this shared host (one
    // CI run measured 68.5 k vs 79 k IOPS, then 0.94–0.98 in six runs after it): a set whose
    // ratio misses is measured once more, and the second set decides. A stall like the one this
    // test is for (completions waiting for the next tick: ~8 k IOPS against ~70 k) misses both.
    let mut attempt = 0;
    let (m0, m1, worst, best) = loop {
        attempt += 1;
        let (m0, m1) = placement_set(c0, c1, &path);
        let (worst, best) = (m0.min(m1), m0.max(m1));
        if worst >= 0.9 * best || attempt == 2 {
            break (m0, m1, worst, best);
        }
    };
    assert!(best > 0.0);
    assert!(
        worst >= 0.9 * best,
        "CPU {c0}: {m0:.0} IOPS vs CPU {c1}: {m1:.0} IOPS (worst < 0.9 × best)"
    );
}

// ---- 10. registered buffers and files ----

#[test]
fn registered_buffer_reads_and_writes() {
    let _g = shared();
    let engine = small_engine();
    let data = pattern(23, 65536);
    let t = tempfile_with("regbuf", &data);
    let fd = t.file.as_raw_fd();
    let mut reg = engine.allocate_buffer(65536).unwrap();
    reg.fill(0);
    let iov = IoVec {
        base: reg.as_mut_ptr(),
        len: reg.len(),
    };
    // SAFETY: `reg` stays alive until it is unregistered below.
    match unsafe { engine.register_buffers(&[iov]) } {
        Err(Error::MemlockLimit) => {
            skip(
                "registered_buffer_reads_and_writes",
                "RLIMIT_MEMLOCK too low",
            );
            return;
        }
        r => r.unwrap(),
    }
    // SAFETY: as above (a second registration is refused before touching anything).
    assert_busy(
        unsafe { engine.register_buffers(&[iov]) },
        "already registered",
    );
    let got = Got::new();
    // SAFETY: the registered buffer outlives the request; nothing else touches it meanwhile.
    unsafe { engine.read(fd, BufferRef::fixed(0, 4096), 8192, 1000, got.cb()) }.unwrap();
    assert_eq!(ok(settle(&engine, &got)), 8192);
    assert_eq!(&reg[4096..4096 + 8192], &data[1000..1000 + 8192]);
    assert!(reg[..4096].iter().all(|&b| b == 0));

    // A fixed write from another part of the buffer.
    reg[32768..32768 + 4096].copy_from_slice(&pattern(24, 4096));
    // SAFETY: as above.
    unsafe { engine.write(fd, BufferRef::fixed(0, 32768), 4096, 0, got.cb()) }.unwrap();
    assert_eq!(ok(settle(&engine, &got)), 4096);
    let mut head = vec![0u8; 4096];
    t.file.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, pattern(24, 4096));

    // SAFETY: refused before submission.
    unsafe {
        assert_invalid(
            engine.read(fd, BufferRef::fixed(0, 65000), 4096, 0, got.cb()),
            "beyond",
        );
        assert_invalid(
            engine.read(fd, BufferRef::fixed(1, 0), 16, 0, got.cb()),
            "fixed buffer 1",
        );
    }
    engine.unregister_buffers().unwrap();
    // SAFETY: refused before submission.
    unsafe {
        assert_invalid(
            engine.read(fd, BufferRef::fixed(0, 0), 16, 0, got.cb()),
            "not registered",
        );
    }
    assert_eq!(got.len(), 0);
}

#[test]
fn registered_files_are_used_automatically() {
    let _g = shared();
    let engine = small_engine();
    let (da, db) = (pattern(25, 8192), pattern(26, 8192));
    let (ta, tb) = (
        tempfile_with("regfile-a", &da),
        tempfile_with("regfile-b", &db),
    );
    let got = Got::new();

    // Register a duplicate of A's descriptor, then close the duplicate: a read on its number can
    // only succeed through the registered table (whatever that number refers to now).
    let dup = ta.file.try_clone().unwrap();
    let dup_fd = dup.as_raw_fd();
    engine.register_files(&[dup_fd]).unwrap();
    drop(dup);
    engine
        .read_owned(
            dup_fd,
            engine.allocate_buffer(4096).unwrap(),
            4096,
            got.owned(),
        )
        .unwrap();
    let (r, buf) = settle(&engine, &got);
    assert_eq!(ok(r), 4096);
    assert_eq!(&buf[..], &da[4096..]);

    // Slot 0 now holds B: reads on B's descriptor go through it.
    let fdb = tb.file.as_raw_fd();
    engine.update_file(0, fdb).unwrap();
    engine
        .read_owned(fdb, engine.allocate_buffer(4096).unwrap(), 0, got.owned())
        .unwrap();
    let (r, buf) = settle(&engine, &got);
    assert_eq!(ok(r), 4096);
    assert_eq!(&buf[..], &db[..4096]);
    // A plain (unregistered) descriptor still works beside the table.
    engine
        .read_owned(
            ta.file.as_raw_fd(),
            engine.allocate_buffer(100).unwrap(),
            0,
            got.owned(),
        )
        .unwrap();
    let (r, buf) = settle(&engine, &got);
    assert_eq!(ok(r), 100);
    assert_eq!(&buf[..], &da[..100]);

    engine.unregister_files().unwrap();
    engine.register_files(&[fdb]).unwrap();
    engine.unregister_files().unwrap();
}

// ---- 10b. unregistering while requests use the table ----

/// A pipe: reads on its read end stay in flight until something is written.
fn pipe() -> (File, File) {
    let (r, w) = rustix::pipe::pipe().expect("pipe");
    (File::from(r), File::from(w))
}

/// Registers `buf` as buffer 0, or `None` (after a skip line) when RLIMIT_MEMLOCK forbids it.
fn register_one(engine: &Engine, buf: &mut Buffer, test: &str) -> Option<()> {
    let iov = IoVec {
        base: buf.as_mut_ptr(),
        len: buf.len(),
    };
    // SAFETY: every caller keeps `buf` alive until the buffers are unregistered.
    match unsafe { engine.register_buffers(&[iov]) } {
        Err(Error::MemlockLimit) => {
            skip(test, "RLIMIT_MEMLOCK too low");
            None
        }
        r => {
            r.unwrap();
            Some(())
        }
    }
}

#[test]
fn deferred_buffer_unregister_waits_for_fixed_reads() {
    let _g = shared();
    let engine = small_engine();
    let mut reg = engine.allocate_buffer(8192).unwrap();
    if register_one(
        &engine,
        &mut reg,
        "deferred_buffer_unregister_waits_for_fixed_reads",
    )
    .is_none()
    {
        return;
    }
    let (r, mut w) = pipe();
    let got = Got::new();
    // SAFETY: `reg` outlives the request (it is dropped after the engine drained it).
    unsafe { engine.read(r.as_raw_fd(), BufferRef::fixed(0, 0), 5, 0, got.cb()) }.unwrap();
    engine.flush().unwrap();
    engine.request_unregister_buffers().unwrap();
    // The read is still in flight: the unregister waits; meanwhile fixed submissions are busy
    // and a second unregister or a registration too.
    assert!(engine.unregister_pending());
    // SAFETY: refused before submission.
    assert_busy(
        unsafe { engine.read(r.as_raw_fd(), BufferRef::fixed(0, 0), 5, 0, got.cb()) },
        "being unregistered",
    );
    assert_busy(engine.request_unregister_buffers(), "already draining");
    let iov = IoVec {
        base: reg.as_mut_ptr(),
        len: 8192,
    };
    // SAFETY: refused before touching anything.
    assert_busy(
        unsafe { engine.register_buffers(&[iov]) },
        "already registered",
    );
    assert_eq!(engine.poll().unwrap(), 0);
    assert!(engine.unregister_pending());
    w.write_all(b"hello").unwrap();
    assert_eq!(ok(settle(&engine, &got)), 5);
    assert_eq!(&reg[..5], b"hello");
    // The pass that completed the read finished the unregister.
    assert!(!engine.unregister_pending());
    // SAFETY: refused before submission.
    assert_invalid(
        unsafe { engine.read(r.as_raw_fd(), BufferRef::fixed(0, 0), 5, 0, got.cb()) },
        "not registered",
    );
    // Registered again (the table is free).
    assert!(register_one(
        &engine,
        &mut reg,
        "deferred_buffer_unregister_waits_for_fixed_reads"
    )
    .is_some());
    engine.unregister_buffers().unwrap();
}

#[test]
fn blocking_unregister_completes_fixed_io_first() {
    let _g = shared();
    let engine = small_engine();
    let mut reg = engine.allocate_buffer(4096).unwrap();
    if register_one(
        &engine,
        &mut reg,
        "blocking_unregister_completes_fixed_io_first",
    )
    .is_none()
    {
        return;
    }
    let (r, mut w) = pipe();
    let got = Got::new();
    // SAFETY: `reg` outlives the request: unregister_buffers returns only after its completion.
    unsafe { engine.read(r.as_raw_fd(), BufferRef::fixed(0, 0), 3, 0, got.cb()) }.unwrap();
    engine.flush().unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        w.write_all(b"abc").unwrap();
    });
    let started = Instant::now();
    engine.unregister_buffers().unwrap();
    writer.join().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(40));
    // The callback ran inside unregister_buffers (it processed the completion itself).
    let v = got.take();
    assert_eq!(v.len(), 1);
    assert_eq!(ok(v.into_iter().next().unwrap()), 3);
    assert_eq!(&reg[..3], b"abc");
    assert!(!engine.unregister_pending());
}

#[test]
fn unregister_from_a_callback_is_deferred() {
    let _g = shared();
    let engine = small_engine();
    let mut reg = engine.allocate_buffer(4096).unwrap();
    if register_one(&engine, &mut reg, "unregister_from_a_callback_is_deferred").is_none() {
        return;
    }
    let (r, mut w) = pipe();
    let t = tempfile_with("unreg-cb", &pattern(40, 4096));
    let got = Got::new();
    // SAFETY: `reg` outlives both requests (it is dropped after the engine drained them).
    unsafe { engine.read(r.as_raw_fd(), BufferRef::fixed(0, 0), 2, 0, got.cb()) }.unwrap();
    let e2 = engine.clone();
    let from_cb = Got::new();
    let fc = from_cb.clone();
    engine
        .read_owned(
            t.file.as_raw_fd(),
            engine.allocate_buffer(16).unwrap(),
            0,
            move |res, _buf| {
                ok(res);
                // Inside a callback: cannot wait, so it is deferred (the pipe read is in flight).
                fc.push(e2.unregister_buffers());
            },
        )
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while from_cb.len() == 0 {
        assert!(Instant::now() < deadline);
        step(&engine, 50);
    }
    assert!(from_cb.take().pop().unwrap().is_ok());
    assert!(engine.unregister_pending());
    w.write_all(b"ok").unwrap();
    assert_eq!(ok(settle(&engine, &got)), 2);
    assert!(!engine.unregister_pending());
    assert_invalid(engine.unregister_buffers(), "none registered");
}

#[test]
fn deferred_file_unregister_stops_table_lookups_at_once() {
    let _g = shared();
    let engine = small_engine();
    let (r, mut w) = pipe();
    let t = tempfile_with("unreg-files", &pattern(41, 4096));
    let fd = t.file.as_raw_fd();
    engine.register_files(&[r.as_raw_fd(), fd]).unwrap();
    let got = Got::new();
    let buf = engine.allocate_buffer(4).unwrap();
    engine
        .read_owned(r.as_raw_fd(), buf, 0, got.owned())
        .unwrap();
    engine.flush().unwrap();
    engine.request_unregister_files().unwrap();
    assert!(engine.unregister_pending());
    assert_busy(engine.update_file(1, fd), "being unregistered");
    // The file's fd is no longer looked up: a plain read still works meanwhile.
    let plain = Got::new();
    engine
        .read_owned(fd, engine.allocate_buffer(64).unwrap(), 0, plain.owned())
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while plain.len() == 0 {
        assert!(Instant::now() < deadline);
        step(&engine, 50);
    }
    let (res, b) = plain.take().pop().unwrap();
    assert_eq!(ok(res), 64);
    assert_eq!(&b[..], &pattern(41, 4096)[..64]);
    assert!(engine.unregister_pending());
    w.write_all(b"pipe").unwrap();
    let (res, b) = settle(&engine, &got);
    assert_eq!(ok(res), 4);
    assert_eq!(&b[..], b"pipe");
    assert!(!engine.unregister_pending());
    engine.register_files(&[fd]).unwrap();
    engine.unregister_files().unwrap();
}

#[test]
fn rejected_owned_submissions_hand_the_buffer_back() {
    let _g = shared();
    let engine = small_engine();
    let mut buf = engine.allocate_buffer(4096).unwrap();
    buf.copy_from_slice(&pattern(42, 4096));
    let got = Got::new();
    let rejected = engine.write_owned(-1, buf, 0, got.owned()).unwrap_err();
    assert!(matches!(rejected.error, Error::InvalidArgument(_)));
    assert_eq!(&rejected.buffer[..], &pattern(42, 4096)[..]);
    let mut empty = rejected.buffer;
    empty.set_len(0);
    let rejected = engine.read_owned(0, empty, 0, got.owned()).unwrap_err();
    assert!(rejected.to_string().contains("len 0"));

    // Non-blocking: at the in-flight limit the buffer comes back with WouldBlock.
    let engine = Engine::with_options(
        Options::new()
            .ring_count(1)
            .queue_depth(8)
            .disable_adaptive(true)
            .min_in_flight(1)
            .initial_in_flight(1),
    )
    .unwrap();
    let (r, mut w) = pipe();
    engine
        .read_owned(
            r.as_raw_fd(),
            engine.allocate_buffer(1).unwrap(),
            0,
            got.owned(),
        )
        .unwrap();
    let mut second = engine.allocate_buffer(1).unwrap();
    second[0] = 7;
    let rejected = engine
        .try_read_owned(r.as_raw_fd(), second, 0, got.owned())
        .unwrap_err();
    assert!(matches!(rejected.error, Error::WouldBlock));
    assert_eq!(rejected.buffer[0], 7);
    // `?` turns a Rejected into an Error.
    let through_q = || -> Result<()> {
        engine.try_write_owned(-5, engine.allocate_buffer(1)?, 0, |_, _| {})?;
        Ok(())
    };
    assert!(matches!(through_q(), Err(Error::InvalidArgument(_))));
    w.write_all(b"x").unwrap();
    let (res, _) = settle(&engine, &got);
    assert_eq!(ok(res), 1);
}

// ---- 11. single-thread engines (SINGLE_ISSUER | DEFER_TASKRUN, enabled by their user) ----

#[test]
fn single_thread_engine_built_here_runs_on_another_thread() {
    let _g = shared();
    let data = pattern(50, 65536);
    let t = tempfile_with("single-thread", &data);
    let fd = t.file.as_raw_fd();
    let engine = Engine::with_options(Options::new().ring_count(1).single_thread(true)).unwrap();
    let moved = engine.clone();
    drop(engine);
    let data2 = data.clone();
    std::thread::spawn(move || {
        let engine = moved;
        let got = Got::new();
        for i in 0..16u64 {
            engine
                .read_owned(
                    fd,
                    engine.allocate_buffer(4096).unwrap(),
                    i * 4096,
                    got.owned(),
                )
                .unwrap();
        }
        let v = settle_n(&engine, &got, 16);
        for (r, b) in v {
            assert_eq!(ok(r), 4096);
            let at = data2.chunks(4096).position(|c| c == &b[..]);
            assert!(at.is_some(), "a read returned data from nowhere");
        }
    })
    .join()
    .unwrap();
}

#[test]
fn single_thread_engine_dropped_elsewhere_with_io_in_flight_does_not_hang() {
    let _g = shared();
    let (r, mut w) = pipe();
    let engine = std::thread::spawn(move || {
        let engine =
            Engine::with_options(Options::new().ring_count(1).single_thread(true)).unwrap();
        engine
            .read_owned(
                r.as_raw_fd(),
                engine.allocate_buffer(8).unwrap(),
                0,
                |_, _| {},
            )
            .unwrap();
        engine.flush().unwrap();
        // Keep the pipe's read end open as long as the engine (leaked with its request).
        std::mem::forget(r);
        engine
    })
    .join()
    .unwrap();
    // This thread is not the rings' issuer: its submissions are refused...
    let t = tempfile_with("single-thread-other", &pattern(51, 4096));
    let res = engine.read_owned(
        t.file.as_raw_fd(),
        engine.allocate_buffer(8).unwrap(),
        0,
        |_, _| {},
    );
    // (the SQE waits in the ring; the flush that fails is the next wait's)
    if let Ok(h) = res {
        match engine.wait(100) {
            Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(17)),
            other => panic!("wait from a non-issuer thread: {other:?} (handle {h:?})"),
        }
    }
    // ...and dropping it here returns at once instead of waiting for completions it can never
    // reap (the pipe read is still in flight).
    let started = Instant::now();
    drop(engine);
    assert!(started.elapsed() < Duration::from_secs(5));
    w.write_all(b"late").unwrap();
}
