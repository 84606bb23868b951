//! Registers one 64 KiB buffer with the kernel and reads a file (default: this program's own
//! binary) through it in 16 KiB fixed-buffer reads, four at a time in the buffer's four slices;
//! checks the bytes against a plain read.
//! Run: `cargo run -p aura-std --example registered_buffers -- /etc/hostname`

use aura_std as aura;

use aura::{BufferRef, Engine, IoVec, Result};
use std::os::unix::io::AsRawFd;
use std::sync::{Arc, Mutex};

const SLICE: usize = 16 * 1024;
const SLICES: usize = 4;

fn main() -> Result<()> {
    let path = match std::env::args().nth(1) {
        Some(p) => p.into(),
        None => std::env::current_exe()?,
    };
    let file = std::fs::File::open(&path)?;
    let len = file.metadata()?.len();
    let expected = std::fs::read(&path)?;
    let engine = Engine::new()?;
    let mut buf = engine.allocate_buffer(SLICE * SLICES)?;
    let iov = IoVec {
        base: buf.as_mut_ptr(),
        len: buf.len(),
    };
    // SAFETY: `buf` outlives the registration: it is unregistered before `buf` drops.
    unsafe { engine.register_buffers(&[iov])? };

    let (mut offset, mut total, mut mismatches) = (0u64, 0usize, 0usize);
    while offset < len {
        // One read per slice of the registered buffer, all in flight together.
        let results = Arc::new(Mutex::new(Vec::new()));
        let mut sent = 0;
        for s in 0..SLICES {
            let at = offset + (s * SLICE) as u64;
            if at >= len {
                break;
            }
            let results = results.clone();
            // SAFETY: slice `s` of the registered buffer is only touched by this read until its
            // callback ran (we wait for all of them below).
            unsafe {
                engine.read(
                    file.as_raw_fd(),
                    BufferRef::fixed(0, s * SLICE),
                    SLICE,
                    at,
                    move |r| results.lock().unwrap().push((s, at, r)),
                )?;
            }
            sent += 1;
        }
        while results.lock().unwrap().len() < sent {
            engine.wait(-1)?;
        }
        for (s, at, r) in results.lock().unwrap().drain(..) {
            let n = r?;
            let want = &expected[at as usize..][..n];
            mismatches += usize::from(&buf[s * SLICE..][..n] != want);
            total += n;
        }
        offset += (SLICE * SLICES) as u64;
    }
    engine.unregister_buffers()?;
    println!(
        "{}: {total} of {len} bytes read through 1 registered buffer ({} fixed reads of {} KiB), \
         {mismatches} mismatching slices",
        path.display(),
        total.div_ceil(SLICE),
        SLICE / 1024,
    );
    Ok(())
}
