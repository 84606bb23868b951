//! aura's futures under tokio: the engine's `poll_fd` (an eventfd) is registered with tokio's
//! reactor through `AsyncFd`, and a task runs `engine.poll()` whenever it is readable. The main
//! task reads a file (default /etc/hostname) with up to 8 owned reads of 64 KiB in flight, then
//! prints its size, a checksum, and the text if it is short.
//! Run: `cargo run -p aura-std --features async --example tokio_pollfd -- /etc/hostname`

use aura_std as aura;

use aura::{async_io::AsyncEngine, Engine};
use std::os::unix::io::{AsRawFd, RawFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

const CHUNK: usize = 65536;
const IN_FLIGHT: u64 = 8;

/// The engine's eventfd as tokio sees it (borrowed: the engine owns and closes it).
struct PollFd(RawFd);

impl AsRawFd for PollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Runs the engine's completions whenever its poll_fd is readable, forever.
async fn drive(engine: Engine) -> std::io::Result<()> {
    // SAFETY: the eventfd stays open, and `PollFd` always returns it, while the `AsyncFd` lives:
    // `engine` (which owns the eventfd) is dropped after `fd`, at the end of this function.
    let fd =
        unsafe { AsyncFd::register_with_interest(PollFd(engine.poll_fd()), Interest::READABLE) }
            .map_err(std::io::Error::from)?;
    loop {
        let mut ready = fd.readable().await?;
        // Cleared before the pass, so a completion posted during it makes the fd ready again.
        ready.clear_ready();
        engine.poll()?;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> aura::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/etc/hostname".into());
    let file = std::fs::File::open(&path)?;
    let fd = file.as_raw_fd();
    let engine = Engine::new()?;
    let driver = tokio::spawn(drive(engine.clone()));

    let mut total = 0u64;
    let mut checksum = 0u64;
    let mut text = Vec::new();
    let mut offset = 0u64;
    'file: loop {
        // A window of reads in flight at once, each its own tokio task.
        let reads: Vec<_> = (0..IN_FLIGHT)
            .map(|i| {
                let buf = engine.allocate_buffer(CHUNK)?;
                let read = engine.async_read_owned(fd, buf, offset + i * CHUNK as u64)?;
                Ok(tokio::spawn(read))
            })
            .collect::<aura::Result<_>>()?;
        offset += IN_FLIGHT * CHUNK as u64;
        for read in reads {
            let (result, buf) = read.await.expect("read task panicked");
            let n = result?;
            let data = &buf[..n];
            total += n as u64;
            checksum = data.iter().fold(checksum, |c, &b| {
                c.wrapping_mul(31).wrapping_add(u64::from(b))
            });
            if text.len() < 4096 {
                text.extend_from_slice(&data[..n.min(4096 - text.len())]);
            }
            if n < CHUNK {
                // End of file (the later reads of this window return 0 bytes).
                break 'file;
            }
        }
    }
    driver.abort();

    println!("read {total} bytes of {path} under tokio (checksum {checksum:016x})");
    if total as usize == text.len() {
        print!("{}", String::from_utf8_lossy(&text));
    }
    Ok(())
}
