//! A tour of aura-core on the real kernel: set a ring up, show what the kernel granted and which
//! opcodes it knows, print a file read entirely through the ring (openat, read, close), then time
//! NOP round trips in batches of 32.
//!
//! Run: `cargo run --release -p aura-core --example ring_tour -- /etc/hostname`

use std::ffi::CString;
use std::io::Write;
use std::time::Instant;

use aura_core::op::{self, AT_FDCWD};
use aura_core::{Error, Params, Ring};

const O_RDONLY: u32 = 0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/etc/hostname".to_string());
    let mut ring = Ring::new(64, &Params::new().coop_taskrun(true)).map_err(err)?;
    let probe = ring.probe().map_err(err)?;
    println!(
        "ring: {} SQ / {} CQ entries",
        ring.sq_entries(),
        ring.cq_entries()
    );
    println!("granted setup flags: {:?}", ring.setup_flags());
    println!("kernel features:     {:?}", ring.features());
    println!(
        "one mapping for SQ+CQ: {}; highest opcode the kernel knows: {}; ftruncate op: {}",
        ring.mem().single_mapping(),
        probe.last_op(),
        probe.supports(aura_core::sys::abi::opcode::FTRUNCATE)
    );

    // Open the file through the ring.
    let cpath = CString::new(path.clone())?;
    let open = op::openat(AT_FDCWD, cpath.as_ptr().cast(), O_RDONLY, 0).user_data(1);
    // SAFETY: `cpath` outlives the request: we wait for its CQE below before dropping it.
    unsafe { ring.sq().push(&open) }.map_err(|_| "SQ full")?;
    ring.submit_and_wait(1).map_err(err)?;
    let fd = ring.cq().next().ok_or("no CQE")?.res;
    if fd < 0 {
        return Err(format!("openat {path}: errno {}", -fd).into());
    }

    // Read it in 4 KiB chunks; the last chunk is linked to a close.
    let mut buf = vec![0u8; 4096];
    let mut off = 0u64;
    let mut out = std::io::stdout().lock();
    writeln!(out, "--- {path} (read through io_uring) ---")?;
    loop {
        let read = op::read(fd, buf.as_mut_ptr(), buf.len() as u32, off).user_data(2);
        // SAFETY: `buf` lives until we reaped this read's CQE, just below.
        unsafe { ring.sq().push(&read) }.map_err(|_| "SQ full")?;
        ring.submit_and_wait(1).map_err(err)?;
        let n = ring.cq().next().ok_or("no CQE")?.res;
        if n < 0 {
            return Err(format!("read: errno {}", -n).into());
        }
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n as usize])?;
        off += n as u64;
    }
    writeln!(out, "--- {off} bytes ---")?;
    // SAFETY: close carries no pointer.
    unsafe { ring.sq().push(&op::close(fd).user_data(3)) }.map_err(|_| "SQ full")?;
    ring.submit_and_wait(1).map_err(err)?;
    let closed = ring.cq().next().ok_or("no CQE")?;
    writeln!(out, "close: res {}", closed.res)?;

    // NOP round trips, batched by 32.
    let rounds = 20_000u64;
    let t = Instant::now();
    for _ in 0..rounds {
        {
            let mut sq = ring.sq();
            for i in 0..32 {
                // SAFETY: a NOP carries no pointer.
                unsafe { sq.push(&op::nop().user_data(i)) }.map_err(|_| "SQ full")?;
            }
        }
        ring.submit_and_wait(32).map_err(err)?;
        let done = ring.cq().count();
        assert_eq!(done, 32);
    }
    let secs = t.elapsed().as_secs_f64();
    writeln!(
        out,
        "{} NOPs in {:.3} s: {:.1} M ops/s",
        rounds * 32,
        secs,
        (rounds * 32) as f64 / secs / 1e6
    )?;
    Ok(())
}

fn err(e: Error) -> Box<dyn std::error::Error> {
    e.to_string().into()
}
