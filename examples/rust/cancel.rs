//! Starts a read on an empty pipe-like socket pair (it can only wait), cancels it, and prints the
//! result the callback got: `Cancelled`. Then shows that a finished read cannot be cancelled.
//! Run: `cargo run -p aura-std --example cancel`

use aura_std as aura;

use aura::{Engine, Error, Result};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

fn main() -> Result<()> {
    let engine = Engine::new()?;
    // A connected socket pair: nothing is ever written to `_writer`, so a read on `reader` waits.
    let (reader, _writer) = UnixStream::pair()?;
    let result = Arc::new(Mutex::new(None));
    let slot = result.clone();
    let buf = engine.allocate_buffer(64)?;
    let handle = engine.read_owned(reader.as_raw_fd(), buf, 0, move |r, _buf| {
        *slot.lock().unwrap() = Some(r);
    })?;

    // Nothing can arrive: the wait times out and the read is still pending.
    match engine.wait(100) {
        Err(Error::TimedOut) => {
            println!("after 100 ms: {} request pending", engine.pending_count())
        }
        other => println!("unexpected: {other:?}"),
    }

    engine.cancel(handle)?;
    while result.lock().unwrap().is_none() {
        engine.wait(-1)?;
    }
    match result.lock().unwrap().take().expect("the callback ran") {
        Err(Error::Cancelled) => println!("read result: Err(Cancelled): {}", Error::Cancelled),
        other => println!("read result: {other:?} (it finished before the cancel)"),
    }

    // A completed request's handle is stale: cancel refuses it.
    match engine.cancel(handle) {
        Err(e @ Error::InvalidArgument(_)) => println!("cancel again: {e}"),
        other => println!("cancel again: {other:?}"),
    }
    println!("pending now: {}", engine.pending_count());
    Ok(())
}
