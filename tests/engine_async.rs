//! The `async_io` futures on the live kernel: driven by tokio (an `AsyncFd` on the engine's
//! `poll_fd`) and by a minimal thread-parking executor that calls `engine.wait(10)` when idle;
//! dropping an unfinished future cancels it without freeing memory the kernel may still use;
//! many futures in flight at once each complete exactly once.
#![cfg(not(loom))]

use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use aura_std as aura;

use aura::async_io::AsyncEngine;
use aura::{Engine, Error, Options};
use aura_tests::{pattern, tempfile, tempfile_with};

/// The seed's async `copy_file`, verbatim but for the path to the crate.
async fn copy_file(engine: &Engine, src: i32, dst: i32) -> aura::Result<()> {
    let buf = engine.allocate_buffer(65536)?;
    let mut offset = 0i64;
    loop {
        // SAFETY: `buf` outlives both operations: each is awaited to completion, and the callers
        // below always drive this future to its end.
        let n = unsafe { engine.async_read(src, &buf, 65536, offset) }?.await?;
        if n == 0 {
            break;
        }
        // SAFETY: as above.
        unsafe { engine.async_write(dst, &buf, n, offset) }?.await?;
        offset += n as i64;
    }
    Ok(())
}

const MIB: usize = 1 << 20;

// ---- a minimal executor ----

/// Wakes a parked thread and records that it did.
struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Runs `fut` to completion on this thread. While it is pending and not woken, the engine is
/// driven with `wait(10)` (which runs the completion callbacks that wake it); with nothing
/// pending in the engine the thread parks until woken.
fn block_on<F: Future>(engine: &Engine, fut: F) -> F::Output {
    let state = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        while !state.woken.swap(false, Ordering::Acquire) {
            match engine.wait(10) {
                Ok(0) if engine.pending_count() == 0 => {
                    thread::park_timeout(Duration::from_millis(10))
                }
                Ok(_) | Err(Error::TimedOut) => {}
                Err(e) => panic!("engine.wait: {e}"),
            }
        }
    }
}

/// Polls every future until all are ready; the outputs in order.
struct JoinAll<F: Future> {
    futures: Vec<Option<Pin<Box<F>>>>,
    outputs: Vec<Option<F::Output>>,
}

fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> JoinAll<F> {
    let futures: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let outputs = futures.iter().map(|_| None).collect();
    JoinAll { futures, outputs }
}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<F::Output>> {
        let this = self.get_mut();
        let mut pending = false;
        for (slot, out) in this.futures.iter_mut().zip(this.outputs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        Poll::Ready(this.outputs.iter_mut().map(|o| o.take().unwrap()).collect())
    }
}

// The futures are boxed and the outputs are never pinned.
impl<F: Future> Unpin for JoinAll<F> {}

/// A waker that does nothing (for single manual polls).
fn noop_waker() -> Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    Waker::from(Arc::new(Noop))
}

// ---- tokio ----

/// The engine's eventfd, for `AsyncFd` (not owned: the engine closes it).
struct PollFd(RawFd);

impl AsRawFd for PollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Drives `engine` from tokio: whenever its poll_fd is readable, run its completions.
async fn drive(engine: Engine) -> std::io::Result<()> {
    // SAFETY: the eventfd stays open, and `PollFd` always returns it, while the `AsyncFd` lives:
    // `engine` (which owns the eventfd) is dropped after `afd`, at the end of this function.
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(
            PollFd(engine.poll_fd()),
            tokio::io::Interest::READABLE,
        )
    }
    .map_err(std::io::Error::from)?;
    loop {
        let mut guard = afd.readable().await?;
        // Cleared before the pass, so a completion posted during it makes the fd ready again.
        guard.clear_ready();
        engine.poll()?;
    }
}

/// Runs `fut` on a current-thread tokio runtime with [`drive`] as a task (and a 60 s limit).
fn on_tokio<F: Future>(engine: &Engine, fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let driver = tokio::spawn(drive(engine.clone()));
        let out = tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .expect("timed out after 60 s");
        assert!(
            !driver.is_finished(),
            "the driver stopped: {:?}",
            driver.await
        );
        driver.abort();
        out
    })
}

// ---- the tests ----

fn check_copy(run: impl FnOnce(&Engine, i32, i32) -> aura::Result<()>) {
    let engine = Engine::new().unwrap();
    // 1 MiB plus a tail, so the last read is short.
    let data = pattern(7, MIB + 1234);
    let src = tempfile_with("async-copy-src", &data);
    let dst = tempfile("async-copy-dst");
    run(&engine, src.file.as_raw_fd(), dst.file.as_raw_fd()).unwrap();
    let copied = std::fs::read(&dst.path).unwrap();
    assert_eq!(copied.len(), data.len());
    assert!(copied == data, "the copy differs from the source");
    assert_eq!(engine.pending_count(), 0);
}

#[test]
fn tokio_owned_write_then_read_back() {
    let engine = Engine::new().unwrap();
    let file = tempfile("async-owned-rw");
    let fd = file.file.as_raw_fd();
    let before = engine.buffer_stats().in_use_buffers;
    on_tokio(&engine, async {
        for i in 0..4u8 {
            let mut buf = engine.allocate_buffer(16384).unwrap();
            buf.copy_from_slice(&pattern(i, 16384));
            let (r, _buf) = engine
                .async_write_owned(fd, buf, u64::from(i) * 16384)
                .unwrap()
                .await;
            assert_eq!(r.unwrap(), 16384);
        }
        assert_eq!(engine.async_fsync(fd).unwrap().await.unwrap(), 0);
        for i in (0..4u8).rev() {
            let buf = engine.allocate_buffer(16384).unwrap();
            let (r, buf) = engine
                .async_read_owned(fd, buf, u64::from(i) * 16384)
                .unwrap()
                .await;
            assert_eq!(r.unwrap(), 16384);
            assert!(buf[..] == pattern(i, 16384)[..], "block {i} differs");
        }
        // Past the end: 0 bytes.
        let buf = engine.allocate_buffer(4096).unwrap();
        let (r, _) = engine.async_read_owned(fd, buf, 65536).unwrap().await;
        assert_eq!(r.unwrap(), 0);
    });
    assert_eq!(engine.pending_count(), 0);
    assert_eq!(engine.buffer_stats().in_use_buffers, before);
}

#[test]
fn tokio_copy_file() {
    check_copy(|engine, src, dst| on_tokio(engine, copy_file(engine, src, dst)));
}

#[test]
fn minimal_executor_copy_file() {
    check_copy(|engine, src, dst| block_on(engine, copy_file(engine, src, dst)));
}

#[test]
fn minimal_executor_on_another_thread_than_the_submitter() {
    // The futures are created here and awaited (and the engine driven) on another thread.
    let engine = Engine::new().unwrap();
    let data = pattern(3, 8192);
    let src = tempfile_with("async-xthread", &data);
    let fut = engine
        .async_read_owned(
            src.file.as_raw_fd(),
            engine.allocate_buffer(8192).unwrap(),
            0,
        )
        .unwrap();
    let e = engine.clone();
    let (r, buf) = thread::spawn(move || block_on(&e, fut)).join().unwrap();
    assert_eq!(r.unwrap(), 8192);
    assert!(buf[..] == data[..]);
}

#[test]
fn metadata_ops() {
    let engine = Engine::new().unwrap();
    let path = aura_tests::temp_path("async-meta");
    let _guard = aura_tests::TempPath(path.clone());
    let path_str = path.to_str().unwrap();
    const AT_FDCWD: i32 = -100;
    const O_RDWR: u32 = 0o2;
    const O_CREAT: u32 = 0o100;
    block_on(&engine, async {
        let fd = engine
            .async_openat(AT_FDCWD, path_str, O_RDWR | O_CREAT, 0o644)
            .unwrap()
            .await
            .unwrap() as i32;
        assert!(fd >= 0);
        engine
            .async_fallocate(fd, 0, 0, 65536)
            .unwrap()
            .await
            .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 65536);
        match engine.async_ftruncate(fd, 4096).unwrap().await {
            Ok(_) => assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096),
            Err(Error::Io(e)) if e.raw_os_error() == Some(22) => aura_tests::skip(
                "metadata_ops/ftruncate",
                "kernel lacks IORING_OP_FTRUNCATE (6.9+)",
            ),
            Err(e) => panic!("ftruncate: {e}"),
        }
        engine.async_fdatasync(fd).unwrap().await.unwrap();
        engine
            .async_sync_file_range(fd, 0, 0, 0)
            .unwrap()
            .await
            .unwrap();
        engine.async_close(fd).unwrap().await.unwrap();
        // The fd is closed now.
        let r = engine.async_fsync(fd).unwrap().await;
        assert!(
            matches!(r, Err(Error::Io(ref e)) if e.raw_os_error() == Some(9)),
            "{r:?}"
        );
    });
}

#[test]
fn dropping_an_owned_read_cancels_it_and_keeps_the_buffer_until_its_completion() {
    let engine = Engine::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let before = engine.buffer_stats().in_use_buffers;

    // Polled once (so it is in the kernel, waiting for data), then dropped.
    let mut fut = engine
        .async_read_owned(a.as_raw_fd(), engine.allocate_buffer(4096).unwrap(), 0)
        .unwrap();
    let waker = noop_waker();
    assert!(Pin::new(&mut fut)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    assert_eq!(engine.pending_count(), 1);
    drop(fut);
    // The request (not the dropped future) still owns the buffer: the kernel may write it until
    // the read's own completion, which only the next pass over the engine processes.
    assert_eq!(engine.buffer_stats().in_use_buffers, before + 1);
    assert!(engine.pending_count() >= 1);
    engine.drain(5_000).unwrap();
    assert_eq!(engine.pending_count(), 0);
    assert_eq!(engine.buffer_stats().in_use_buffers, before);

    // Dropped without ever being polled (its SQE possibly not even flushed yet).
    let fut = engine
        .async_read_owned(a.as_raw_fd(), engine.allocate_buffer(4096).unwrap(), 0)
        .unwrap();
    drop(fut);
    engine.drain(5_000).unwrap();
    assert_eq!(engine.pending_count(), 0);
    assert_eq!(engine.buffer_stats().in_use_buffers, before);

    // The cancelled reads consumed nothing: the next bytes go to the next read.
    b.write_all(b"after the cancel").unwrap();
    let (r, buf) = block_on(
        &engine,
        engine
            .async_read_owned(a.as_raw_fd(), engine.allocate_buffer(64).unwrap(), 0)
            .unwrap(),
    );
    let n = r.unwrap();
    assert_eq!(&buf[..n], b"after the cancel");
    assert_eq!(engine.buffer_stats().in_use_buffers, before + 1);
    drop(buf);
    assert_eq!(engine.buffer_stats().in_use_buffers, before);
}

#[test]
fn dropping_a_future_queued_behind_the_gate_completes_it_at_once() {
    // One ring, one request in flight at a time: the second read waits behind the gate, and its
    // cancel (from the drop) runs its callback synchronously, with no lock held.
    let options = Options::new()
        .ring_count(1)
        .disable_adaptive(true)
        .min_in_flight(1)
        .initial_in_flight(1);
    let engine = Engine::with_options(options).unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let before = engine.buffer_stats().in_use_buffers;
    let first = engine
        .async_read_owned(a.as_raw_fd(), engine.allocate_buffer(64).unwrap(), 0)
        .unwrap();
    let second = engine
        .async_read_owned(a.as_raw_fd(), engine.allocate_buffer(64).unwrap(), 0)
        .unwrap();
    assert_eq!(engine.pending_count(), 2);
    drop(second);
    assert_eq!(engine.pending_count(), 1);
    assert_eq!(engine.buffer_stats().in_use_buffers, before + 1);
    b.write_all(b"first").unwrap();
    let (r, buf) = block_on(&engine, first);
    assert_eq!(&buf[..r.unwrap()], b"first");
    drop(buf);
    assert_eq!(engine.pending_count(), 0);
    assert_eq!(engine.buffer_stats().in_use_buffers, before);
}

#[test]
fn cancelling_a_borrowed_read_then_awaiting_it_frees_the_memory() {
    let engine = Engine::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let buf = engine.allocate_buffer(4096).unwrap();
    // SAFETY: `buf` outlives the read: the future is awaited to its end before `buf` drops.
    let fut = unsafe { engine.async_read(a.as_raw_fd(), &buf, 4096, 0) }.unwrap();
    let r = block_on(&engine, async {
        let mut fut = fut;
        // Let it reach the kernel, then cancel it.
        let waker = noop_waker();
        assert!(Pin::new(&mut fut)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        fut.cancel().unwrap();
        fut.await
    });
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    assert_eq!(engine.pending_count(), 0);
    drop(buf);
    b.write_all(b"z").unwrap();
    let mut one = [0u8; 1];
    (&a).read_exact(&mut one).unwrap();
    assert_eq!(&one, b"z");
}

#[test]
fn dropping_many_owned_futures_mid_flight_leaks_nothing() {
    // File reads complete quickly: futures are dropped before, during and after their
    // completion; whichever way it goes, every buffer returns to the pool and nothing stays
    // pending.
    let engine = Engine::new().unwrap();
    let data = pattern(9, 64 * 4096);
    let src = tempfile_with("async-drop-many", &data);
    let before = engine.buffer_stats().in_use_buffers;
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for round in 0..20 {
        let mut futs: Vec<_> = (0..64u64)
            .map(|i| {
                engine
                    .async_read_owned(
                        src.file.as_raw_fd(),
                        engine.allocate_buffer(4096).unwrap(),
                        i * 4096,
                    )
                    .unwrap()
            })
            .collect();
        for (i, f) in futs.iter_mut().enumerate() {
            if (i + round) % 3 != 0 {
                if let Poll::Ready((r, buf)) = Pin::new(f).poll(&mut cx) {
                    assert_eq!(r.unwrap(), 4096);
                    assert!(buf[..] == data[i * 4096..(i + 1) * 4096]);
                    // A finished future is not polled again: drop this one right here.
                    drop(buf);
                }
            }
        }
        // Drop them all: on odd rounds the completed ones first, then (after a pass over the
        // engine) the rest, whether finished-but-unpolled, in flight, or already resolved.
        futs.retain(|f| !f.is_completed() || round % 2 == 0);
        let _ = engine.poll();
        drop(futs);
        engine.drain(5_000).unwrap();
        assert_eq!(engine.pending_count(), 0);
        assert_eq!(engine.buffer_stats().in_use_buffers, before);
    }
}

#[test]
fn a_hundred_concurrent_reads_each_complete_exactly_once() {
    const N: usize = 100;
    const BLOCK: usize = 4096;
    let engine = Engine::new().unwrap();
    let data = pattern(11, N * BLOCK);
    let src = tempfile_with("async-hundred", &data);
    let fd = src.file.as_raw_fd();
    let ops_before = engine.stats().ops_completed;
    let readies: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());

    // Owned reads under the minimal executor, joined.
    let futs = (0..N).map(|i| {
        let fut = engine
            .async_read_owned(
                fd,
                engine.allocate_buffer(BLOCK).unwrap(),
                (i * BLOCK) as u64,
            )
            .unwrap();
        let readies = readies.clone();
        async move {
            let out = fut.await;
            readies[i].fetch_add(1, Ordering::SeqCst);
            out
        }
    });
    let outs = block_on(&engine, join_all(futs));
    for (i, (r, buf)) in outs.into_iter().enumerate() {
        assert_eq!(r.unwrap(), BLOCK);
        assert!(
            buf[..] == data[i * BLOCK..(i + 1) * BLOCK],
            "block {i} differs"
        );
    }
    assert!(readies.iter().all(|c| c.load(Ordering::SeqCst) == 1));
    assert_eq!(engine.stats().ops_completed - ops_before, N as u64);
    assert_eq!(engine.pending_count(), 0);

    // Borrowed reads into buffers that outlive them, joined.
    let bufs: Vec<_> = (0..N)
        .map(|_| engine.allocate_buffer(BLOCK).unwrap())
        .collect();
    let futs: Vec<_> = bufs
        .iter()
        .enumerate()
        .map(|(i, buf)| {
            // SAFETY: `bufs` outlives every read: all are joined to completion below.
            unsafe { engine.async_read(fd, buf, BLOCK, (i * BLOCK) as i64) }.unwrap()
        })
        .collect();
    let results = block_on(&engine, join_all(futs));
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), BLOCK);
        assert!(
            bufs[i][..] == data[i * BLOCK..(i + 1) * BLOCK],
            "block {i} differs"
        );
    }
    assert_eq!(engine.stats().ops_completed - ops_before, 2 * N as u64);

    // Owned reads as 100 tokio tasks.
    let done = Arc::new(AtomicUsize::new(0));
    on_tokio(&engine, async {
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let fut = engine
                    .async_read_owned(
                        fd,
                        engine.allocate_buffer(BLOCK).unwrap(),
                        (i * BLOCK) as u64,
                    )
                    .unwrap();
                let done = done.clone();
                tokio::spawn(async move {
                    let (r, buf) = fut.await;
                    done.fetch_add(1, Ordering::SeqCst);
                    (r, buf)
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let (r, buf) = t.await.unwrap();
            assert_eq!(r.unwrap(), BLOCK);
            assert!(
                buf[..] == data[i * BLOCK..(i + 1) * BLOCK],
                "block {i} differs"
            );
        }
    });
    assert_eq!(done.load(Ordering::SeqCst), N);
    assert_eq!(engine.stats().ops_completed - ops_before, 3 * N as u64);
    assert_eq!(engine.pending_count(), 0);
}

#[test]
fn tokio_wakes_the_task_on_a_late_completion() {
    // The data arrives 50 ms after the read was submitted, from another thread: only the driver
    // (the AsyncFd on poll_fd) can see the completion and wake the task.
    let engine = Engine::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        b.write_all(b"late").unwrap();
        b
    });
    let (r, buf) = on_tokio(&engine, async {
        engine
            .async_read_owned(a.as_raw_fd(), engine.allocate_buffer(64).unwrap(), 0)
            .unwrap()
            .await
    });
    assert_eq!(&buf[..r.unwrap()], b"late");
    drop(writer.join().unwrap());
}

/// Runs `fut` to completion, parking between polls; it never drives the engine itself.
fn block_on_parking<F: Future>(fut: F) -> F::Output {
    let state = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        while !state.woken.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}

#[test]
fn a_driver_thread_in_run_wakes_a_parked_executor() {
    let engine = Engine::new().unwrap();
    let driver = {
        let engine = engine.clone();
        thread::spawn(move || engine.run())
    };
    let (a, mut b) = UnixStream::pair().unwrap();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        b.write_all(b"from the driver").unwrap();
        b
    });
    let (r, buf) = block_on_parking(
        engine
            .async_read_owned(a.as_raw_fd(), engine.allocate_buffer(64).unwrap(), 0)
            .unwrap(),
    );
    assert_eq!(&buf[..r.unwrap()], b"from the driver");
    // And the seed's copy, with the same driver.
    let data = pattern(5, 300_000);
    let src = tempfile_with("async-run-src", &data);
    let dst = tempfile("async-run-dst");
    block_on_parking(copy_file(
        &engine,
        src.file.as_raw_fd(),
        dst.file.as_raw_fd(),
    ))
    .unwrap();
    assert!(std::fs::read(&dst.path).unwrap() == data);
    engine.stop();
    driver.join().unwrap().unwrap();
    drop(writer.join().unwrap());
}
