//! The seed's Rust quick start: read a file (default /etc/hostname) through the Engine and print
//! it. Run: `cargo run -p aura-std --example quickstart -- /etc/hostname`

use aura_std as aura;

use aura::{Engine, Result};
use std::os::unix::io::AsRawFd;
use std::sync::{Arc, Mutex};

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/etc/hostname".into());
    let file = std::fs::File::open(&path)?;
    let fd = file.as_raw_fd();

    let engine = Engine::new()?;
    let buf = engine.allocate_buffer(4096)?;
    let read = Arc::new(Mutex::new(None));
    let slot = read.clone();

    // SAFETY: `buf` stays alive and untouched until the callback has run (we wait for it).
    unsafe {
        engine.read(fd, (&buf).into(), 4096, 0, move |result| {
            match &result {
                Ok(n) => println!("Read {n} bytes"),
                Err(e) => eprintln!("Error: {e}"),
            }
            *slot.lock().unwrap() = Some(result);
        })?;
    }

    engine.wait(-1)?;
    if let Some(Ok(n)) = *read.lock().unwrap() {
        print!("{}", String::from_utf8_lossy(&buf[..n]));
    }
    Ok(())
}
