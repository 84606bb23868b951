//! Reads every regular file of a directory (or one given file) in 64 KiB chunks, keeping 32 reads
//! in flight through owned buffers, and prints the bytes read and the rate. After each `wait`,
//! the reads that refill the free places go to the engine together, as one `Engine::batch`.
//! Run: `cargo run --release -p aura-std --example bulk_reader -- /usr/lib`

use aura_std as aura;

use aura::{Buffer, Engine, Result};
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

const CHUNK: usize = 64 * 1024;
const IN_FLIGHT: usize = 32;

fn main() -> Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let meta = std::fs::metadata(&arg).inspect_err(|e| eprintln!("{arg}: {e}"))?;
    let paths: Vec<std::path::PathBuf> = if meta.is_dir() {
        let entries = std::fs::read_dir(&arg)?.filter_map(|e| Some(e.ok()?.path()));
        entries.filter(|p| p.is_file()).collect()
    } else {
        vec![arg.into()]
    };
    // Unreadable files (permissions) are skipped.
    let files: Vec<File> = paths.iter().filter_map(|p| File::open(p).ok()).collect();
    // Every chunk of every file: (fd, offset).
    let mut jobs = VecDeque::new();
    for f in &files {
        let len = f.metadata()?.len();
        jobs.extend((0..len.div_ceil(CHUNK as u64)).map(|i| (f.as_raw_fd(), i * CHUNK as u64)));
    }

    let engine = Engine::new()?;
    let done = Arc::new(Mutex::new(Vec::<(Result<usize>, Buffer)>::new()));
    let mut spare: Vec<Buffer> = Vec::new();
    let (mut in_flight, mut bytes, mut errors) = (0, 0u64, 0);
    let started = Instant::now();
    while !jobs.is_empty() || in_flight > 0 {
        let mut batch = engine.batch();
        while in_flight + batch.len() < IN_FLIGHT {
            let Some((fd, offset)) = jobs.pop_front() else {
                break;
            };
            let buf = spare
                .pop()
                .map_or_else(|| engine.allocate_buffer(CHUNK), Ok)?;
            let done = done.clone();
            batch.read_owned(fd, buf, offset, move |r, b| {
                done.lock().unwrap().push((r, b))
            })?;
        }
        // One ring lock for the whole refill. Were the ring out of request slots, the rest would
        // stay in the batch until completions free some.
        while !batch.is_empty() {
            match batch.submit() {
                Ok(n) => in_flight += n,
                Err(aura::Error::WouldBlock) => {
                    engine.wait(-1)?;
                }
                Err(e) => return Err(e),
            }
        }
        engine.wait(-1)?;
        for (result, buf) in done.lock().unwrap().drain(..) {
            in_flight -= 1;
            match result {
                Ok(n) => bytes += n as u64,
                Err(e) => {
                    errors += 1;
                    eprintln!("read failed: {e}");
                }
            }
            spare.push(buf); // reused for the next chunk
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mb = bytes as f64 / 1e6;
    println!(
        "read {} files, {mb:.1} MB in {secs:.3} s: {:.1} MB/s ({errors} errors, {IN_FLIGHT} \
         reads of {} KiB in flight)",
        files.len(),
        mb / secs.max(1e-9),
        CHUNK / 1024,
    );
    Ok(())
}
