//! Test files on a real disk, O_DIRECT opens, and a description of the machine.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use aura_std::BufferPool;

/// `O_DIRECT` on Linux (x86-64, aarch64 and most others; the open fails loudly elsewhere).
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
pub const O_DIRECT: i32 = 0o200000;
/// `O_DIRECT` on Linux (x86-64, aarch64 and most others; the open fails loudly elsewhere).
#[cfg(not(any(target_arch = "aarch64", target_arch = "arm")))]
pub const O_DIRECT: i32 = 0o40000;

/// Opens `path` for O_DIRECT reads (and writes when `write`).
pub fn open_direct(path: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(O_DIRECT)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: O_DIRECT open: {e}", path.display())))
}

/// The mount a path lives on, from `/proc/self/mountinfo`: (mount point, fs type, source).
pub fn mount_of(path: &Path) -> Option<(String, String, String)> {
    let abs = std::fs::canonicalize(path).ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(String, String, String)> = None;
    for line in info.lines() {
        // id parent major:minor root mountpoint options [optional...] - fstype source superopts
        let mut halves = line.splitn(2, " - ");
        let (left, right) = (halves.next()?, halves.next()?);
        let mp = left.split(' ').nth(4)?.replace("\\040", " ");
        let mut r = right.split(' ');
        let (fstype, source) = (r.next()?.to_string(), r.next()?.to_string());
        if abs.starts_with(&mp) && best.as_ref().is_none_or(|b| mp.len() >= b.0.len()) {
            best = Some((mp, fstype, source));
        }
    }
    best
}

/// Refuses a directory on a memory file system (the point is a real disk).
pub fn check_real_disk(dir: &Path) -> Result<String, String> {
    match mount_of(dir) {
        Some((mp, fs, src)) => {
            if matches!(
                fs.as_str(),
                "tmpfs" | "ramfs" | "devtmpfs" | "proc" | "sysfs"
            ) {
                Err(format!(
                    "{} is on {fs} ({mp}): not a disk; pass --dir on a real disk or --file",
                    dir.display()
                ))
            } else {
                Ok(format!("{src} ({fs}, mounted on {mp})"))
            }
        }
        None => Ok("unknown device".into()),
    }
}

/// xorshift64* step.
pub fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// A temporary file, removed when dropped.
#[derive(Debug)]
pub struct TempFile {
    /// Where it is.
    pub path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates `dir/name` of `size` bytes of pseudo-random data (incompressible, so no layer below
/// can shortcut it), written with O_DIRECT in 1 MiB chunks and fsynced. Returns it and the
/// seconds it took.
pub fn create_random_file(dir: &Path, name: &str, size: u64) -> io::Result<(TempFile, f64)> {
    let path = dir.join(name);
    let t = Instant::now();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(O_DIRECT)
        .open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let tmp = TempFile { path };
    let pool = BufferPool::new(4096).map_err(io::Error::from)?;
    let chunk = 1usize << 20;
    let mut buf = pool.alloc(chunk).map_err(io::Error::from)?;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut off = 0u64;
    while off < size {
        let n = chunk.min((size - off) as usize);
        for w in buf.as_mut_slice()[..n].chunks_exact_mut(8) {
            w.copy_from_slice(&xorshift(&mut seed).to_le_bytes());
        }
        f.write_all_at(&buf.as_slice()[..n], off)?;
        off += n as u64;
    }
    f.sync_all()?;
    Ok((tmp, t.elapsed().as_secs_f64()))
}

/// One line describing the machine: CPU model, CPUs, kernel, the CPUs this process may use.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |s| s.trim().to_string());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("?".into(), |s| s.trim().to_string());
    format!(
        "{model}, {cpus} CPUs, Linux {kernel}, this process on CPU(s) {}",
        allowed_cpus()
    )
}

/// `Cpus_allowed_list` of this process (what `taskset` set).
pub fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Cpus_allowed_list"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_mounted() {
        assert!(mount_of(Path::new("/")).is_some());
    }
}
