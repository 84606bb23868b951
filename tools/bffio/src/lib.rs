//! BFFIO: an fio-compatible benchmark whose I/O engine is aura's [`aura_std::Engine`].
//!
//! It reads fio's command line and `.fio` job files, runs the jobs through one shared Engine per
//! group and writes fio's normal or JSON report. Unlike fio it does not run `iodepth` blindly:
//! `iodepth` is an upper bound, and the Engine's AIMD controller gates the depth actually in
//! flight down to the knee of the device (or under `target_p99`). `--depth=N` fixes the depth
//! instead, for comparisons.
//!
//! Layout: [`cli`] (command line) and [`jobfile`] (job files) produce raw `key=value` sections;
//! [`options`] types and validates them into [`options::Job`]s; [`runner`] runs them; [`stats`]
//! holds the latency histograms and counters; [`report`] and [`json`] print them.

pub mod cli;
pub mod jobfile;
pub mod json;
pub mod options;
pub mod report;
pub mod runner;
pub mod stats;
pub mod verify;

mod queue;

pub use cli::{run_main, Invocation};

/// The version string printed by `--version` and in the reports.
pub const VERSION: &str = concat!("BFFIO-", env!("CARGO_PKG_VERSION"));

/// Parses `data` as a job file (`data` up to the first `\0\0` separator) followed by command
/// line arguments (the rest, split on NUL bytes), then builds and validates the jobs. Never
/// touches the file system beyond reading includes the job file names; never panics. The fuzz
/// target and the corpus replay test call this.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    let (file, args) = match data.windows(2).position(|w| w == [0, 0]) {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut sections = Vec::new();
    if let Ok(s) = jobfile::parse_bytes(file, "fuzz.fio", &jobfile::IncludePolicy::Deny) {
        sections = s;
    }
    let args: Vec<String> = args
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if let Ok(inv) = cli::parse_args(&args) {
        let mut all = vec![inv.sections[0].clone()];
        all.extend(sections);
        all.extend(inv.sections[1..].iter().cloned());
        if let Ok(built) = options::build_jobs(&all) {
            for job in &built.jobs {
                // The pure parts of running: the I/O sequence of a small plan.
                let plan = runner::FilePlan {
                    path: std::path::PathBuf::from("fuzz"),
                    start: 0,
                    len: job.max_bs().saturating_mul(16),
                    needed: 0,
                    block_device: false,
                    generated: false,
                };
                let mut gen = runner::IoGen::new(job, &[plan], job.randseed, None, Some(64));
                while gen.next_io().is_some() {}
            }
        }
    }
}
