//! Gathers three buffers into one file with `writev`, scatters the file back into three buffers
//! with `readv`, and prints both sides.
//! Run: `cargo run -p aura-std --example vectored`

use aura_std as aura;

use aura::{Engine, IoVec, Result};
use std::os::unix::io::AsRawFd;
use std::sync::{Arc, Mutex};

/// Waits for the one request in flight and returns its result.
fn finish(engine: &Engine, slot: &Arc<Mutex<Option<Result<usize>>>>) -> Result<usize> {
    while slot.lock().unwrap().is_none() {
        engine.wait(-1)?;
    }
    slot.lock().unwrap().take().expect("the callback ran")
}

fn main() -> Result<()> {
    let path = std::env::temp_dir().join(format!("aura-vectored-{}", std::process::id()));
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    let fd = file.as_raw_fd();
    let engine = Engine::new()?;
    let slot = Arc::new(Mutex::new(None));

    let parts: [&[u8]; 3] = [b"Hello, ", b"vectored ", b"world!"];
    let iov: Vec<IoVec> = parts
        .iter()
        .map(|p| IoVec {
            base: p.as_ptr().cast_mut(),
            len: p.len(),
        })
        .collect();
    let s = slot.clone();
    // SAFETY: `parts` are static and only read; `finish` waits for the callback.
    unsafe { engine.writev(fd, &iov, 0, move |r| *s.lock().unwrap() = Some(r))? };
    let written = finish(&engine, &slot)?;
    let shown: Vec<_> = parts.iter().map(|p| String::from_utf8_lossy(p)).collect();
    println!(
        "writev: {written} bytes from {} buffers {shown:?}",
        parts.len()
    );

    let mut outs = [vec![0u8; 5], vec![0u8; 9], vec![0u8; 8]];
    let iov: Vec<IoVec> = outs
        .iter_mut()
        .map(|o| IoVec {
            base: o.as_mut_ptr(),
            len: o.len(),
        })
        .collect();
    let s = slot.clone();
    // SAFETY: `outs` outlives the read and nobody touches it until `finish` returns.
    unsafe { engine.readv(fd, &iov, 0, move |r| *s.lock().unwrap() = Some(r))? };
    let read = finish(&engine, &slot)?;
    println!("readv: {read} bytes into buffers of 5, 9 and 8 bytes:");
    for (i, o) in outs.iter().enumerate() {
        println!("  [{i}] {:?}", String::from_utf8_lossy(o));
    }
    std::fs::remove_file(&path)?;
    Ok(())
}
