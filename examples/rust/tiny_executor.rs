//! A complete executor for aura's futures in 40 lines: `block_on` polls the future, and while it
//! is pending and not woken, drives the engine with `wait(10)` (which runs the completion
//! callbacks that wake it). Reads a file (default /etc/hostname) and prints it.
//! Run: `cargo run -p aura-std --features async --example tiny_executor -- /etc/hostname`

use aura_std as aura;

use aura::{async_io::AsyncEngine, Engine, Error, Result};
use std::future::Future;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

/// Unparks the executor's thread and remembers that it was woken.
struct Flag(Thread, AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.1.store(true, Ordering::Release);
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread, driving `engine` while it waits.
fn block_on<F: Future>(engine: &Engine, fut: F) -> Result<F::Output> {
    let flag = Arc::new(Flag(thread::current(), AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Ok(out);
        }
        while !flag.1.swap(false, Ordering::Acquire) {
            match engine.wait(10) {
                // Nothing of the engine's pending: the future waits on something else.
                Ok(0) if engine.pending_count() == 0 => {
                    thread::park_timeout(Duration::from_millis(10))
                }
                Ok(_) | Err(Error::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/etc/hostname".into());
    let file = std::fs::File::open(&path)?;
    let engine = Engine::new()?;
    let (result, buf) = block_on(&engine, async {
        let buf = engine.allocate_buffer(4096)?;
        Ok::<_, Error>(engine.async_read_owned(file.as_raw_fd(), buf, 0)?.await)
    })??;
    let n = result?;
    println!("read {n} bytes of {path}:");
    print!("{}", String::from_utf8_lossy(&buf[..n]));
    Ok(())
}
