//! The seed's async `copy_file`, nearly verbatim (it returns the bytes copied): copies argv[1] to
//! argv[2] in 64 KiB steps through `async_read`/`async_write`. The engine is driven by a thread
//! running `Engine::run`; the future runs on a minimal `block_on` that parks between polls.
//! Run: `cargo run -p aura-std --features async --example async_copy -- SRC DST`

use aura_std as aura;

use aura::{async_io::AsyncEngine, Engine};
use std::future::Future;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

async fn copy_file(engine: &Engine, src: i32, dst: i32) -> aura::Result<u64> {
    let buf = engine.allocate_buffer(65536)?;
    let mut offset = 0i64;
    loop {
        // SAFETY: `buf` outlives both operations: each is awaited to completion, and `main`
        // drives this future to its end (it is never dropped half-way).
        let n = unsafe { engine.async_read(src, &buf, 65536, offset) }?.await?;
        if n == 0 {
            break;
        }
        // SAFETY: as above.
        unsafe { engine.async_write(dst, &buf, n, offset) }?.await?;
        offset += n as i64;
    }
    Ok(offset as u64)
}

/// Unparks the thread that waits in `block_on`.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` until it is ready, parking in between (spurious unparks only cost a poll).
fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

fn main() -> aura::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, src_path, dst_path] = &args[..] else {
        eprintln!("usage: async_copy SRC DST");
        std::process::exit(2);
    };
    let src = std::fs::File::open(src_path)?;
    let dst = std::fs::File::create(dst_path)?;

    let engine = Engine::new()?;
    // The completion driver: runs callbacks (which wake the future) until `stop`.
    let driver = {
        let engine = engine.clone();
        thread::spawn(move || engine.run())
    };

    let started = Instant::now();
    let copied = block_on(copy_file(&engine, src.as_raw_fd(), dst.as_raw_fd()));
    let elapsed = started.elapsed();
    engine.stop();
    driver.join().expect("the driver thread panicked")?;

    let copied = copied?;
    println!(
        "copied {copied} bytes from {src_path} to {dst_path} in {:.1} ms ({:.0} MiB/s)",
        elapsed.as_secs_f64() * 1e3,
        copied as f64 / (1 << 20) as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}
