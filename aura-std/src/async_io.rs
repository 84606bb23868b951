//! Futures for every Engine operation (feature `async`): executor-agnostic, [`Waker`] based, std
//! only.
//!
//! ```no_run
//! # use aura_std as aura;
//! use aura::{Engine, async_io::AsyncEngine};
//!
//! async fn copy_file(engine: &Engine, src: i32, dst: i32) -> aura::Result<()> {
//!     let buf = engine.allocate_buffer(65536)?;
//!     let mut offset = 0i64;
//!     loop {
//!         // SAFETY: `buf` outlives both operations: each is awaited to completion before the
//!         // next line runs, and this future is driven to the end (never dropped half-way).
//!         let n = unsafe { engine.async_read(src, &buf, 65536, offset) }?.await?;
//!         if n == 0 {
//!             break;
//!         }
//!         // SAFETY: as above.
//!         unsafe { engine.async_write(dst, &buf, n, offset) }?.await?;
//!         offset += n as i64;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Every `async_*` method of [`AsyncEngine`] submits the operation at once (exactly like its
//! callback twin on [`Engine`], whose checks and errors it shares) and returns a future that
//! resolves to the operation's result: [`IoFuture`] (`Result<usize>`: bytes, a new fd, or 0) or,
//! for the owned-buffer operations, [`OwnedIoFuture`] (`(Result<usize>, Buffer)`).
//!
//! # Who drives completions
//!
//! A future is woken by its operation's completion callback, and callbacks run only inside
//! [`Engine::poll`], [`Engine::wait`], [`Engine::run`] or [`Engine::drain`]. So **something must
//! drive the engine**; this module starts no thread and knows no executor. Any of these works:
//!
//! - **An event loop**: register [`Engine::poll_fd`] (an eventfd) with the loop, and call
//!   [`Engine::poll`] whenever it is readable. With tokio: wrap the fd in
//!   `tokio::io::unix::AsyncFd` and, in a task, loop on `readable().await`, `clear_ready()`,
//!   `engine.poll()` (see `examples/rust/tokio_pollfd.rs`).
//! - **The executor's idle hook**: a `block_on` that, when the task is pending and not woken,
//!   calls `engine.wait(10)` instead of parking (see `examples/rust/tiny_executor.rs`).
//! - **A thread** that runs [`Engine::run`] (and [`Engine::stop`] at the end).
//!
//! In addition, [`IoFuture::poll`] helps opportunistically, never blocking on I/O: its first poll
//! calls [`Engine::flush`] (a lone submission may wait for a batch to fill; this makes sure it
//! reaches the kernel), and every poll that finds the operation unfinished runs one
//! [`Engine::try_poll`] pass when the engine's eventfd says completions are waiting (always, with
//! [`Options::single_thread`](crate::Options::single_thread), whose completions only appear when
//! the submitting thread enters the kernel). So an executor that re-polls busily makes progress
//! with no driver at all. Inside a completion callback the pass is skipped (`poll` is refused
//! there). The pass never blocks: when another thread is already polling or waiting, it is
//! skipped and that thread runs the completions. Errors of these helper passes are not reported
//! by the future (the driver sees them).
//!
//! # Dropping a future before it completes cancels the operation
//!
//! Dropping an unfinished future calls [`Engine::cancel`] on its request: the kernel is asked to
//! stop the operation, and the request then completes (with [`Error::Cancelled`], or its normal
//! result if it finished first) the next time the engine is driven; nobody is told, since the
//! future is gone. Until that completion the kernel may still access the operation's memory:
//!
//! - **Owned variants** ([`AsyncEngine::async_read_owned`], [`AsyncEngine::async_write_owned`]):
//!   the request owns the [`Buffer`] until its completion, and the buffer goes back to the pool
//!   only then. Dropping, or even leaking, the future is always safe.
//! - **Borrowed variants** (the `unsafe` [`AsyncEngine::async_read`], [`AsyncEngine::async_write`],
//!   [`AsyncEngine::async_readv`], [`AsyncEngine::async_writev`]): dropping the future does **not**
//!   end the kernel's access to the memory. That lasts until the *operation's own* completion has
//!   been processed (not the cancel's), so the caller keeps the memory alive and untouched until
//!   then: for instance until [`Engine::pending_count`] reaches 0 or [`Engine::drain`] returns.
//!   The simplest way to end an operation early and know when the memory is free is
//!   [`IoFuture::cancel`] followed by awaiting the future. Beware of dropping an `async fn` that
//!   owns the buffer while such an operation is pending (a `select!` loser, a timeout): its
//!   buffer is freed while the kernel may still write it. Use the owned variants there.
//!
//! Leaking a future ([`std::mem::forget`]) leaves the operation running to completion; the result
//! is discarded.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use aura_core::sys::fd::{BorrowedFd, RawFd};
use aura_core::IoVec;

use crate::buffer::{Buffer, BufferRef};
use crate::engine::{in_callback, Engine};
use crate::error::{Error, Result};
use crate::request::RequestHandle;

mod sealed {
    /// Only [`crate::Engine`] implements [`super::AsyncEngine`], so methods can be added.
    pub trait Sealed {}
    impl Sealed for crate::Engine {}
}

/// Future-returning versions of the [`Engine`] operations (feature `async`).
///
/// Each method submits the operation at once, with the same argument checks and errors as its
/// callback twin on [`Engine`] (an `Err` here means nothing was submitted), and returns a future
/// of its result. See the [module documentation](self) for who drives completions and what
/// dropping a future does.
pub trait AsyncEngine: sealed::Sealed {
    /// Reads up to `len` bytes at `offset` of `fd` into `buf` (a [`Buffer`] by reference, or any
    /// [`BufferRef`], registered buffers included); resolves to the bytes read (fewer than `len`
    /// at end of file, 0 there). A negative `offset` is refused with
    /// [`Error::InvalidArgument`]. As [`Engine::read`].
    ///
    /// # Safety
    ///
    /// The memory `buf` refers to must stay valid, and must not be read or written by anyone
    /// else, until the operation has completed: until the future resolves or, if the future is
    /// dropped before that, until the engine has processed the operation's completion (dropping
    /// the future cancels the operation but does not end the kernel's access; see the
    /// [module documentation](self)).
    unsafe fn async_read(
        &self,
        fd: RawFd,
        buf: impl Into<BufferRef>,
        len: usize,
        offset: i64,
    ) -> Result<IoFuture>;

    /// Writes `len` bytes from `buf` at `offset` of `fd`; resolves to the bytes written (a short
    /// write is reported as such, not retried). A negative `offset` is refused with
    /// [`Error::InvalidArgument`]. As [`Engine::write`].
    ///
    /// # Safety
    ///
    /// The memory `buf` refers to must stay valid and unmodified until the operation has
    /// completed, as for [`AsyncEngine::async_read`].
    unsafe fn async_write(
        &self,
        fd: RawFd,
        buf: impl Into<BufferRef>,
        len: usize,
        offset: i64,
    ) -> Result<IoFuture>;

    /// Scatter read into `iov` (the array is copied; the buffers it points at are not). As
    /// [`Engine::readv`].
    ///
    /// # Safety
    ///
    /// The buffers the iovecs point at must stay valid and untouched until the operation has
    /// completed, as for [`AsyncEngine::async_read`].
    unsafe fn async_readv(&self, fd: RawFd, iov: &[IoVec], offset: u64) -> Result<IoFuture>;

    /// Gather write from `iov` (the array is copied; the buffers it points at are not). As
    /// [`Engine::writev`].
    ///
    /// # Safety
    ///
    /// The buffers the iovecs point at must stay valid and unmodified until the operation has
    /// completed, as for [`AsyncEngine::async_read`].
    unsafe fn async_writev(&self, fd: RawFd, iov: &[IoVec], offset: u64) -> Result<IoFuture>;

    /// Safe read of `buf.len()` bytes at `offset` of `fd`: the request owns `buf` while the
    /// kernel writes it, and the future resolves to the result and the buffer (its length
    /// unchanged: the data is `&buf[..n]`). Dropping the future before it resolves is safe: the
    /// operation is cancelled and the buffer goes back to the pool at its completion. On a
    /// submission error `buf` is dropped (back to the pool). As [`Engine::read_owned`].
    fn async_read_owned(&self, fd: RawFd, buf: Buffer, offset: u64) -> Result<OwnedIoFuture>;

    /// Safe write of `buf.len()` bytes at `offset` of `fd`: the request owns `buf` while the
    /// kernel reads it, and the future resolves to the result and the buffer. Dropping the future
    /// is safe, as for [`AsyncEngine::async_read_owned`]. As [`Engine::write_owned`].
    fn async_write_owned(&self, fd: RawFd, buf: Buffer, offset: u64) -> Result<OwnedIoFuture>;

    /// `fsync(fd)`: data and metadata; resolves to 0. As [`Engine::fsync`].
    fn async_fsync(&self, fd: RawFd) -> Result<IoFuture>;

    /// `fdatasync(fd)`: data only; resolves to 0. As [`Engine::fdatasync`].
    fn async_fdatasync(&self, fd: RawFd) -> Result<IoFuture>;

    /// `openat(dirfd, path, flags, mode)`; resolves to the new fd (the caller owns it). As
    /// [`Engine::openat`].
    fn async_openat(&self, dirfd: RawFd, path: &str, flags: u32, mode: u32) -> Result<IoFuture>;

    /// `close(fd)`; resolves to 0. As [`Engine::close`].
    fn async_close(&self, fd: RawFd) -> Result<IoFuture>;

    /// `fallocate(fd, mode, offset, len)`; resolves to 0. As [`Engine::fallocate`].
    fn async_fallocate(&self, fd: RawFd, mode: u32, offset: u64, len: u64) -> Result<IoFuture>;

    /// `ftruncate(fd, len)`; resolves to 0 (Linux 6.9+; older kernels resolve to an `EINVAL`
    /// error). As [`Engine::ftruncate`].
    fn async_ftruncate(&self, fd: RawFd, len: u64) -> Result<IoFuture>;

    /// `sync_file_range(fd, offset, nbytes, flags)` (`nbytes` 0 = to the end of the file);
    /// resolves to 0. As [`Engine::sync_file_range`].
    fn async_sync_file_range(
        &self,
        fd: RawFd,
        offset: u64,
        nbytes: u32,
        flags: u32,
    ) -> Result<IoFuture>;
}

/// `offset` as the engine's `u64`, refusing negatives.
fn file_offset(offset: i64) -> Result<u64> {
    u64::try_from(offset).map_err(|_| Error::invalid(format!("offset {offset}: must be >= 0")))
}

/// A plain completion callback that completes `slot`.
fn plain(slot: &Arc<Slot<Result<usize>>>) -> impl FnOnce(Result<usize>) + Send + 'static {
    let slot = Arc::clone(slot);
    move |result| slot.complete(result)
}

/// An owned-buffer completion callback that completes `slot`.
fn owned(
    slot: &Arc<Slot<(Result<usize>, Buffer)>>,
) -> impl FnOnce(Result<usize>, Buffer) + Send + 'static {
    let slot = Arc::clone(slot);
    move |result, buf| slot.complete((result, buf))
}

impl AsyncEngine for Engine {
    unsafe fn async_read(
        &self,
        fd: RawFd,
        buf: impl Into<BufferRef>,
        len: usize,
        offset: i64,
    ) -> Result<IoFuture> {
        let offset = file_offset(offset)?;
        IoFuture::submit(self, |slot| {
            // SAFETY: the caller upholds `Engine::read`'s contract: this fn's `# Safety` is the
            // same promise (the memory outlives the operation's completion).
            unsafe { self.read(fd, buf.into(), len, offset, plain(slot)) }
        })
    }

    unsafe fn async_write(
        &self,
        fd: RawFd,
        buf: impl Into<BufferRef>,
        len: usize,
        offset: i64,
    ) -> Result<IoFuture> {
        let offset = file_offset(offset)?;
        IoFuture::submit(self, |slot| {
            // SAFETY: as in `async_read`: the caller keeps the memory valid and unmodified until
            // the operation completes (`Engine::write`'s contract).
            unsafe { self.write(fd, buf.into(), len, offset, plain(slot)) }
        })
    }

    unsafe fn async_readv(&self, fd: RawFd, iov: &[IoVec], offset: u64) -> Result<IoFuture> {
        IoFuture::submit(self, |slot| {
            // SAFETY: the caller keeps the iovecs' buffers valid and untouched until the
            // operation completes (`Engine::readv`'s contract, promised by this fn's caller).
            unsafe { self.readv(fd, iov, offset, plain(slot)) }
        })
    }

    unsafe fn async_writev(&self, fd: RawFd, iov: &[IoVec], offset: u64) -> Result<IoFuture> {
        IoFuture::submit(self, |slot| {
            // SAFETY: as in `async_readv` (`Engine::writev`'s contract).
            unsafe { self.writev(fd, iov, offset, plain(slot)) }
        })
    }

    fn async_read_owned(&self, fd: RawFd, buf: Buffer, offset: u64) -> Result<OwnedIoFuture> {
        let op = Op::submit(self, |slot| {
            self.read_owned(fd, buf, offset, owned(slot))
                .map_err(Error::from)
        })?;
        Ok(OwnedIoFuture { op })
    }

    fn async_write_owned(&self, fd: RawFd, buf: Buffer, offset: u64) -> Result<OwnedIoFuture> {
        let op = Op::submit(self, |slot| {
            self.write_owned(fd, buf, offset, owned(slot))
                .map_err(Error::from)
        })?;
        Ok(OwnedIoFuture { op })
    }

    fn async_fsync(&self, fd: RawFd) -> Result<IoFuture> {
        IoFuture::submit(self, |slot| self.fsync(fd, plain(slot)))
    }

    fn async_fdatasync(&self, fd: RawFd) -> Result<IoFuture> {
        IoFuture::submit(self, |slot| self.fdatasync(fd, plain(slot)))
    }

    fn async_openat(&self, dirfd: RawFd, path: &str, flags: u32, mode: u32) -> Result<IoFuture> {
        IoFuture::submit(self, |slot| {
            self.openat(dirfd, path, flags, mode, plain(slot))
        })
    }

    fn async_close(&self, fd: RawFd) -> Result<IoFuture> {
        IoFuture::submit(self, |slot| self.close(fd, plain(slot)))
    }

    fn async_fallocate(&self, fd: RawFd, mode: u32, offset: u64, len: u64) -> Result<IoFuture> {
        IoFuture::submit(self, |slot| {
            self.fallocate(fd, mode, offset, len, plain(slot))
        })
    }

    fn async_ftruncate(&self, fd: RawFd, len: u64) -> Result<IoFuture> {
        IoFuture::submit(self, |slot| self.ftruncate(fd, len, plain(slot)))
    }

    fn async_sync_file_range(
        &self,
        fd: RawFd,
        offset: u64,
        nbytes: u32,
        flags: u32,
    ) -> Result<IoFuture> {
        IoFuture::submit(self, |slot| {
            self.sync_file_range(fd, offset, nbytes, flags, plain(slot))
        })
    }
}

// ---- the shared completion slot ----

/// What the completion callback and the future share.
struct Slot<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    /// The operation's result, from its completion until the future takes it.
    result: Option<T>,
    /// Set by the completion callback (stays set after the future took the result).
    completed: bool,
    /// The waker of the last poll that found no result.
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    fn new() -> Self {
        Slot {
            state: Mutex::new(State {
                result: None,
                completed: false,
                waker: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding this lock (no user code runs under it).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs in the completion callback: stores the result, then wakes the task outside the lock.
    /// If the future is gone, the result (and an owned buffer in it) is dropped with the last
    /// reference to the slot, right after the callback.
    fn complete(&self, value: T) {
        let waker = {
            let mut st = self.lock();
            st.result = Some(value);
            st.completed = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

// ---- the engine-driving helper ----

/// Whether the engine's eventfd is readable (completions may be waiting), without blocking.
fn completions_signalled(engine: &Engine) -> bool {
    // SAFETY: the eventfd is owned by the engine's shared state, which `engine` keeps alive (and
    // so open) for the whole borrow; `BorrowedFd` only lives within this call.
    let fd = unsafe { BorrowedFd::borrow_raw(engine.poll_fd()) };
    aura_core::sys::poll_readable(fd, Some(0)).unwrap_or(false)
}

/// The opportunistic help a future gives its engine on each poll (module docs, "Who drives
/// completions"): a flush on the first poll, then one non-blocking pass when completions are
/// signalled. Skipped inside completion callbacks.
fn help_drive(engine: &Engine, first_poll: bool) {
    if in_callback() {
        return;
    }
    if first_poll {
        let _ = engine.flush();
    }
    if engine.options().single_thread || completions_signalled(engine) {
        // Never blocks: when another thread is polling or waiting, that thread runs the
        // completions (and wakes this future).
        let _ = engine.try_poll();
    }
}

// ---- the generic operation future ----

/// One submitted operation awaiting its completion.
struct Op<T> {
    engine: Engine,
    handle: RequestHandle,
    slot: Arc<Slot<T>>,
    /// Polled at least once (the first poll flushes).
    polled: bool,
    /// The future has returned `Ready` (the result was taken).
    finished: bool,
}

impl<T> Op<T> {
    fn submit(
        engine: &Engine,
        submit: impl FnOnce(&Arc<Slot<T>>) -> Result<RequestHandle>,
    ) -> Result<Op<T>> {
        let slot = Arc::new(Slot::new());
        let handle = submit(&slot)?;
        Ok(Op {
            engine: engine.clone(),
            handle,
            slot,
            polled: false,
            finished: false,
        })
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        assert!(!self.finished, "aura future polled after it completed");
        if let Some(v) = self.slot.lock().result.take() {
            self.finished = true;
            return Poll::Ready(v);
        }
        help_drive(&self.engine, !self.polled);
        self.polled = true;
        // The callback stores the result and takes the waker under this same lock, so a
        // completion either happened before (the result is here) or will find the waker.
        let mut st = self.slot.lock();
        if let Some(v) = st.result.take() {
            self.finished = true;
            return Poll::Ready(v);
        }
        match &mut st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn completed(&self) -> bool {
        self.finished || self.slot.lock().completed
    }

    fn cancel(&self) -> Result<()> {
        if self.completed() {
            return Ok(());
        }
        match self.engine.cancel(self.handle) {
            // The request completed since: its result is (or is about to be) in the slot.
            Err(Error::InvalidArgument(_)) => Ok(()),
            other => other,
        }
    }
}

impl<T> Drop for Op<T> {
    fn drop(&mut self) {
        // No lock is held here: a cancel of a request still queued behind the gate runs its
        // callback (which locks the slot) synchronously.
        if !self.completed() {
            // Already completed (InvalidArgument) or no slot for the cancel (WouldBlock): either
            // way the request still owns what the kernel uses until its own completion.
            let _ = self.engine.cancel(self.handle);
        }
    }
}

/// The future of an [`AsyncEngine`] operation: resolves to its result (bytes, a new fd, or 0).
///
/// Dropping it before it resolves cancels the operation (see the [module documentation](self)).
/// Polling it after it resolved panics.
pub struct IoFuture {
    op: Op<Result<usize>>,
}

impl IoFuture {
    fn submit(
        engine: &Engine,
        submit: impl FnOnce(&Arc<Slot<Result<usize>>>) -> Result<RequestHandle>,
    ) -> Result<IoFuture> {
        Ok(IoFuture {
            op: Op::submit(engine, submit)?,
        })
    }

    /// The request's handle (for [`Engine::cancel`], or to find its ring).
    pub fn handle(&self) -> RequestHandle {
        self.op.handle
    }

    /// Whether the operation has completed (the future then resolves on its next poll, or has).
    pub fn is_completed(&self) -> bool {
        self.op.completed()
    }

    /// Asks the kernel to stop the operation; the future still resolves, to
    /// [`Error::Cancelled`] (or the operation's result, if it finished first). Once it resolved,
    /// the kernel is done with the operation's memory. Does nothing if it already completed.
    ///
    /// Errors are [`Engine::cancel`]'s, except that "already completed" is `Ok`.
    pub fn cancel(&self) -> Result<()> {
        self.op.cancel()
    }
}

impl Future for IoFuture {
    type Output = Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<usize>> {
        self.get_mut().op.poll(cx)
    }
}

impl fmt::Debug for IoFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoFuture")
            .field("handle", &self.op.handle)
            .field("completed", &self.op.completed())
            .finish_non_exhaustive()
    }
}

/// The future of an owned-buffer operation ([`AsyncEngine::async_read_owned`],
/// [`AsyncEngine::async_write_owned`]): resolves to the result and the buffer.
///
/// Dropping it before it resolves cancels the operation; the request keeps the buffer until its
/// completion, then returns it to the pool. Polling it after it resolved panics.
pub struct OwnedIoFuture {
    op: Op<(Result<usize>, Buffer)>,
}

impl OwnedIoFuture {
    /// The request's handle (for [`Engine::cancel`], or to find its ring).
    pub fn handle(&self) -> RequestHandle {
        self.op.handle
    }

    /// Whether the operation has completed (the future then resolves on its next poll, or has).
    pub fn is_completed(&self) -> bool {
        self.op.completed()
    }

    /// Asks the kernel to stop the operation; the future still resolves, to
    /// [`Error::Cancelled`] (or the operation's result, if it finished first) with the buffer.
    /// Does nothing if it already completed.
    ///
    /// Errors are [`Engine::cancel`]'s, except that "already completed" is `Ok`.
    pub fn cancel(&self) -> Result<()> {
        self.op.cancel()
    }
}

impl Future for OwnedIoFuture {
    type Output = (Result<usize>, Buffer);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(Result<usize>, Buffer)> {
        self.get_mut().op.poll(cx)
    }
}

impl fmt::Debug for OwnedIoFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedIoFuture")
            .field("handle", &self.op.handle)
            .field("completed", &self.op.completed())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::io::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Wake;

    /// Records whether it was woken.
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Polls `fut` until ready, driving `engine` with `wait(10)` in between.
    fn block_on<F: Future>(engine: &Engine, fut: F) -> F::Output {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            while !flag.0.swap(false, Ordering::SeqCst) {
                match engine.wait(10) {
                    Ok(_) | Err(Error::TimedOut) => {}
                    Err(e) => panic!("wait: {e}"),
                }
            }
        }
    }

    fn temp(name: &str, contents: &[u8]) -> (std::path::PathBuf, std::fs::File) {
        let path =
            std::env::temp_dir().join(format!("aura-async-unit-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (path, file)
    }

    #[test]
    fn futures_are_send_sync_unpin_static() {
        fn check<T: Send + Sync + Unpin + 'static>() {}
        check::<IoFuture>();
        check::<OwnedIoFuture>();
    }

    #[test]
    fn negative_offset_is_refused() {
        let engine = Engine::new().unwrap();
        let buf = engine.allocate_buffer(4096).unwrap();
        // SAFETY: nothing is submitted (the offset is refused first).
        let r = unsafe { engine.async_read(0, &buf, 4096, -1) };
        match r {
            Err(Error::InvalidArgument(what)) => assert!(what.contains("offset"), "{what}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        // SAFETY: as above.
        let w = unsafe { engine.async_write(0, &buf, 4096, i64::MIN) };
        assert!(matches!(w, Err(Error::InvalidArgument(_))));
        assert_eq!(engine.pending_count(), 0);
    }

    #[test]
    fn read_write_fsync_round_trip() {
        let engine = Engine::new().unwrap();
        let (path, file) = temp("rw", &[]);
        let fd = file.as_raw_fd();
        let mut out = engine.allocate_buffer(8192).unwrap();
        for (i, b) in out.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let (r, out) = block_on(&engine, engine.async_write_owned(fd, out, 0).unwrap());
        assert_eq!(r.unwrap(), 8192);
        assert_eq!(
            block_on(&engine, engine.async_fsync(fd).unwrap()).unwrap(),
            0
        );
        let buf = engine.allocate_buffer(8192).unwrap();
        // SAFETY: `buf` lives until the future resolved (block_on drives it to the end).
        let n = block_on(
            &engine,
            unsafe { engine.async_read(fd, &buf, 8192, 0) }.unwrap(),
        );
        assert_eq!(n.unwrap(), 8192);
        assert_eq!(&buf[..], &out[..]);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn the_future_completes_while_the_engine_is_driven_elsewhere() {
        let engine = Engine::new().unwrap();
        let (path, file) = temp("driven", b"hello async");
        let fut = engine
            .async_read_owned(file.as_raw_fd(), engine.allocate_buffer(11).unwrap(), 0)
            .unwrap();
        engine.drain(5_000).unwrap();
        assert!(fut.is_completed());
        let (r, buf) = block_on(&engine, fut);
        assert_eq!(r.unwrap(), 11);
        assert_eq!(&buf[..], b"hello async");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn cancel_then_await_resolves_cancelled() {
        let engine = Engine::new().unwrap();
        let (mut a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let buf = engine.allocate_buffer(64).unwrap();
        // SAFETY: `buf` outlives the read: the future is awaited to the end below.
        let fut = unsafe { engine.async_read(a.as_raw_fd(), &buf, 64, 0) }.unwrap();
        engine.flush().unwrap();
        fut.cancel().unwrap();
        let r = block_on(&engine, fut);
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
        assert_eq!(engine.pending_count(), 0);
        drop(buf);
        // The socket still works (and nothing read from it).
        use std::io::Write;
        a.write_all(b"x").unwrap();
    }
}
