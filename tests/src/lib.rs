//! Shared helpers for aura's integration tests (temporary files, skip reporting).
//!
//! # Skips
//!
//! A live-kernel test that cannot run on this machine (an opcode the kernel lacks, a privilege
//! it does not have) calls [`skip`] and returns early. The test harness still counts it as
//! passed, so [`skip`] says so out loud: it writes `skipped: <test>: <why>` straight to the
//! process's stderr (not through `eprintln!`, which the harness captures for passing tests), and,
//! when the environment variable `AURA_SKIP_LOG` names a file, appends the same line there. The CI
//! test step sets it and prints the count of skips after the run.

#[cfg(loom)]
pub mod loom_event;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many tests of this process called [`skip`].
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// Tells the reader (loudly, on stderr) that `test` did not run its checks, and why.
///
/// The caller returns right after.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    SKIPPED.fetch_add(1, Ordering::Relaxed);
    let line = format!("skipped: {test}: {why}\n");
    // Written directly, so the test harness's output capture does not swallow it.
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os("AURA_SKIP_LOG") {
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// How many skips this process reported so far.
pub fn skipped() -> usize {
    SKIPPED.load(Ordering::Relaxed)
}

/// A temporary file under [`std::env::temp_dir`], opened read-write, removed when dropped (also
/// when the test panics).
#[derive(Debug)]
pub struct TempFile {
    /// Where the file lives.
    pub path: PathBuf,
    /// The open file (read + write).
    pub file: File,
}

impl TempFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A path that is removed (if it exists) when this guard is dropped.
#[derive(Debug)]
pub struct TempPath(pub PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A temporary file name, unique to this process and call: `aura-<pid>-<n>-<name>` in the
/// temporary directory. Nothing is created.
pub fn temp_path(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("aura-{}-{n}-{name}", std::process::id()))
}

/// Creates a new, empty temporary file (see [`temp_path`]), opened read-write. It is removed when
/// the returned guard is dropped.
pub fn tempfile(name: &str) -> TempFile {
    let path = temp_path(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    TempFile { path, file }
}

/// Like [`tempfile`], with `contents` written to it.
pub fn tempfile_with(name: &str, contents: &[u8]) -> TempFile {
    let t = tempfile(name);
    std::fs::write(&t.path, contents)
        .unwrap_or_else(|e| panic!("writing {}: {e}", t.path.display()));
    t
}

/// `len` bytes of a pattern that differs per `seed` and per position (so a short, shifted or
/// stale transfer never matches).
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(u32::from(seed) * 7 + (i as u32 >> 8)) as u8
        })
        .collect()
}
