//! Typed job options: fio's units (sizes, times, percentages, ranges, booleans), inheritance
//! from `[global]` into each job, and validation.
//!
//! Sizes follow fio's rules: a bare number is bytes; `k`/`m`/`g`/`t`/`p` (any case, optionally
//! followed by `b`) are powers of 1024, and the IEC forms `kib`/`mib`/... are powers of 1000 —
//! fio's compatibility mode (`kb_base=1024`, its default). With `kb_base=1000` the meanings
//! swap to the standard ones (`k` = 1000, `KiB` = 1024). Times default to seconds (`runtime`,
//! `ramp_time`) and take `us`/`ms`/`s`/`m`/`h`/`d`; `target_p99` defaults to milliseconds.

use std::fmt;
use std::time::Duration;

use aura_std::RingSelect;

use crate::jobfile::Section;

/// Whether an option takes a value on the command line.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// A boolean: `--flag` alone means 1; a value must be attached with `=`.
    Flag,
    /// Takes a value (`--key=value` or `--key value`).
    Value,
}

/// Every option BFFIO knows, with its kind. Aliases are resolved by [`canonical`] first.
const KNOWN: &[(&str, OptionKind)] = &[
    ("name", OptionKind::Value),
    ("description", OptionKind::Value),
    ("rw", OptionKind::Value),
    ("rwmixread", OptionKind::Value),
    ("rwmixwrite", OptionKind::Value),
    ("bs", OptionKind::Value),
    ("bsrange", OptionKind::Value),
    ("size", OptionKind::Value),
    ("filesize", OptionKind::Value),
    ("filename", OptionKind::Value),
    ("directory", OptionKind::Value),
    ("nrfiles", OptionKind::Value),
    ("file_service_type", OptionKind::Value),
    ("direct", OptionKind::Flag),
    ("buffered", OptionKind::Flag),
    ("offset", OptionKind::Value),
    ("runtime", OptionKind::Value),
    ("time_based", OptionKind::Flag),
    ("ramp_time", OptionKind::Value),
    ("numjobs", OptionKind::Value),
    ("iodepth", OptionKind::Value),
    ("group_reporting", OptionKind::Flag),
    ("fsync", OptionKind::Value),
    ("end_fsync", OptionKind::Flag),
    ("randseed", OptionKind::Value),
    ("randrepeat", OptionKind::Flag),
    ("io_size", OptionKind::Value),
    ("number_ios", OptionKind::Value),
    ("thread", OptionKind::Flag),
    ("ioengine", OptionKind::Value),
    ("verify", OptionKind::Value),
    ("verify_only", OptionKind::Flag),
    ("do_verify", OptionKind::Flag),
    ("invalidate", OptionKind::Flag),
    ("unlink", OptionKind::Flag),
    ("kb_base", OptionKind::Value),
    ("stonewall", OptionKind::Flag),
    ("new_group", OptionKind::Flag),
    ("target_p99", OptionKind::Value),
    ("ring_select", OptionKind::Value),
    ("sqpoll", OptionKind::Flag),
    ("depth", OptionKind::Value),
];

/// The canonical name of an option key (already normalised), resolving fio's aliases.
pub fn canonical(key: &str) -> &str {
    match key {
        "readwrite" => "rw",
        "blocksize" => "bs",
        "blocksize_range" => "bsrange",
        "io_limit" => "io_size",
        "wait_for_previous" => "stonewall",
        "target_p99_latency" => "target_p99",
        k => k,
    }
}

/// The kind of a (normalised) option key; `None` when BFFIO does not know it.
pub fn kind_of(key: &str) -> Option<OptionKind> {
    let key = canonical(key);
    KNOWN.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

/// An option value that is wrong, or a job that cannot run as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptError {
    /// The option.
    pub key: String,
    /// Its value as written.
    pub value: String,
    /// Why it is refused.
    pub reason: String,
    /// Where it was set.
    pub origin: String,
}

impl fmt::Display for OptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value for {}: '{}': {} ({})",
            self.key, self.value, self.reason, self.origin
        )
    }
}

impl std::error::Error for OptError {}

/// The I/O pattern (`rw=`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Rw {
    /// Sequential reads.
    Read,
    /// Sequential writes.
    Write,
    /// Random reads.
    RandRead,
    /// Random writes.
    RandWrite,
    /// Sequential mixed reads and writes (`rw`/`readwrite`).
    ReadWrite,
    /// Random mixed reads and writes.
    RandRw,
}

impl Rw {
    /// fio's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Rw::Read => "read",
            Rw::Write => "write",
            Rw::RandRead => "randread",
            Rw::RandWrite => "randwrite",
            Rw::ReadWrite => "rw",
            Rw::RandRw => "randrw",
        }
    }
    /// Random offsets.
    pub fn is_random(self) -> bool {
        matches!(self, Rw::RandRead | Rw::RandWrite | Rw::RandRw)
    }
    /// Whether any reads are issued.
    pub fn reads(self) -> bool {
        !matches!(self, Rw::Write | Rw::RandWrite)
    }
    /// Whether any writes are issued.
    pub fn writes(self) -> bool {
        !matches!(self, Rw::Read | Rw::RandRead)
    }
}

/// A block-size range (`min == max` for a fixed size).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BsRange {
    /// Smallest block, bytes.
    pub min: u64,
    /// Largest block, bytes.
    pub max: u64,
}

/// A size given in bytes or as a percentage of the file or device.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum SizeSpec {
    /// Bytes.
    Bytes(u64),
    /// Percent (0 < p ≤ 100) of the file's size.
    Percent(f64),
}

/// How a job with several files picks the file of each I/O.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FileService {
    /// Files in turn.
    RoundRobin,
    /// One file until its share of the I/O is done, then the next.
    Sequential,
    /// A random file each time.
    Random,
}

/// How deep the I/O queue runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Depth {
    /// The Engine's controller chooses (`iodepth` is an upper bound).
    Auto,
    /// A fixed in-flight depth per job, with the controller off.
    Fixed(u32),
}

/// The `iodepth` cap when none is given: the controller chooses below it.
pub const AUTO_IODEPTH_CAP: u32 = 256;
/// The largest block size (the Engine's buffer pool serves up to 128 MiB).
pub const MAX_BS: u64 = 128 << 20;

/// One job section, with its options resolved (global defaults, then its own).
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Job name.
    pub name: String,
    /// Report group (raised by `stonewall` / `new_group`).
    pub groupid: u32,
    /// I/O pattern.
    pub rw: Rw,
    /// Percent of reads in mixed workloads.
    pub rwmixread: u32,
    /// Block sizes for reads and writes.
    pub bs: [BsRange; 2],
    /// Total I/O region of the job (`None`: the existing file's size).
    pub size: Option<SizeSpec>,
    /// Per-file size range (default: size / nrfiles).
    pub filesize: Option<BsRange>,
    /// Files given by name (`filename=a:b`).
    pub filenames: Vec<String>,
    /// Directory for generated files.
    pub directory: Option<String>,
    /// Number of generated files.
    pub nrfiles: u32,
    /// File selection per I/O.
    pub file_service: FileService,
    /// O_DIRECT.
    pub direct: bool,
    /// Start of the I/O region in each file.
    pub offset: SizeSpec,
    /// Time limit (after ramp).
    pub runtime: Option<Duration>,
    /// Run for `runtime` even when the work is done (wrapping around).
    pub time_based: bool,
    /// Warm-up whose statistics are discarded.
    pub ramp_time: Duration,
    /// Clones of this job (threads).
    pub numjobs: u32,
    /// Submitted-I/O cap per clone (`None`: [`AUTO_IODEPTH_CAP`] in auto mode).
    pub iodepth: Option<u32>,
    /// Report the group's clones as one.
    pub group_reporting: bool,
    /// fsync after this many writes (0: never).
    pub fsync: u32,
    /// fsync every file when the job ends.
    pub end_fsync: bool,
    /// PRNG seed.
    pub randseed: u64,
    /// Same random sequence on every run.
    pub randrepeat: bool,
    /// Bytes of I/O per clone (default: the region size).
    pub io_size: Option<u64>,
    /// I/O count limit per clone.
    pub number_ios: Option<u64>,
    /// verify=crc32c: written blocks carry a checksummed header, checked on read.
    pub verify: bool,
    /// Only run the verification read pass of a write job.
    pub verify_only: bool,
    /// Run the verification pass after writing (default on with verify).
    pub do_verify: bool,
    /// Drop the file's page cache before the job (buffered I/O).
    pub invalidate: bool,
    /// Remove generated files at the end.
    pub unlink: bool,
    /// 1024 or 1000 (see the module docs).
    pub kb_base: u32,
    /// Wait for earlier jobs to finish (starts a new group).
    pub stonewall: bool,
    /// Starts a new report group.
    pub new_group: bool,
    /// P99 latency target (the Engine's max_p99).
    pub target_p99: Option<Duration>,
    /// Ring selection of the Engine.
    pub ring_select: Option<RingSelect>,
    /// SQPOLL rings.
    pub sqpoll: bool,
    /// Auto (controller) or fixed depth.
    pub depth: Depth,
    /// The options this section set itself, as written (for JSON's "job options").
    pub given: Vec<(String, String)>,
}

impl Job {
    fn defaults(name: &str) -> Job {
        let bs = BsRange {
            min: 4096,
            max: 4096,
        };
        Job {
            name: name.to_string(),
            groupid: 0,
            rw: Rw::Read,
            rwmixread: 50,
            bs: [bs, bs],
            size: None,
            filesize: None,
            filenames: Vec::new(),
            directory: None,
            nrfiles: 1,
            file_service: FileService::RoundRobin,
            direct: false,
            offset: SizeSpec::Bytes(0),
            runtime: None,
            time_based: false,
            ramp_time: Duration::ZERO,
            numjobs: 1,
            iodepth: None,
            group_reporting: false,
            fsync: 0,
            end_fsync: false,
            randseed: 0x89,
            randrepeat: true,
            io_size: None,
            number_ios: None,
            verify: false,
            verify_only: false,
            do_verify: true,
            invalidate: true,
            unlink: false,
            kb_base: 1024,
            stonewall: false,
            new_group: false,
            target_p99: None,
            ring_select: None,
            sqpoll: false,
            depth: Depth::Auto,
            given: Vec::new(),
        }
    }

    /// The most I/Os one clone keeps submitted.
    pub fn depth_cap(&self) -> u32 {
        match self.depth {
            Depth::Fixed(n) => n,
            Depth::Auto => self.iodepth.unwrap_or(AUTO_IODEPTH_CAP),
        }
    }

    /// The largest block of either direction.
    pub fn max_bs(&self) -> u64 {
        self.bs[0].max.max(self.bs[1].max)
    }
}

/// Parses a size with fio's suffixes (see the module docs).
pub fn parse_size(s: &str, kb_base: u32) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty".into());
    }
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).map_err(|_| "not a hexadecimal number".into());
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err("not a number".into());
    }
    let suffix = suffix.trim().to_ascii_lowercase();
    let (power, iec) = match suffix.as_str() {
        "" | "b" => (0, false),
        "k" | "kb" => (1, false),
        "m" | "mb" => (2, false),
        "g" | "gb" => (3, false),
        "t" | "tb" => (4, false),
        "p" | "pb" => (5, false),
        "ki" | "kib" => (1, true),
        "mi" | "mib" => (2, true),
        "gi" | "gib" => (3, true),
        "ti" | "tib" => (4, true),
        "pi" | "pib" => (5, true),
        other => return Err(format!("unknown unit '{other}'")),
    };
    // fio's compatibility mode (kb_base=1024) reads SI-looking prefixes as powers of two and IEC
    // ones as powers of ten; kb_base=1000 reads both the standard way.
    let base: u64 = match (kb_base, iec) {
        (1000, false) | (1024, true) => 1000,
        _ => 1024,
    };
    let mult = base
        .checked_pow(power)
        .ok_or_else(|| "too large".to_string())?;
    if let Some((int, frac)) = num.split_once('.') {
        if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
            return Err("not a number".into());
        }
        let int: u64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| "too large".to_string())?
        };
        let whole = int.checked_mul(mult).ok_or("too large")?;
        // The fraction, to the byte (rounded down), without floating point.
        let digits = &frac[..frac.len().min(18)];
        let scale = 10u128.pow(digits.len() as u32);
        let f: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| "not a number".to_string())?
        };
        let part = (f * u128::from(mult) / scale) as u64;
        return whole.checked_add(part).ok_or_else(|| "too large".into());
    }
    let n: u64 = num.parse().map_err(|_| "too large".to_string())?;
    n.checked_mul(mult).ok_or_else(|| "too large".into())
}

/// Parses a time; a bare number is in `default_unit` (nanoseconds per unit).
pub fn parse_time(s: &str, default_unit_ns: u64) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err("not a number".into());
    }
    let unit = match suffix.trim().to_ascii_lowercase().as_str() {
        "" => default_unit_ns,
        "ns" | "nsec" => 1,
        "us" | "usec" => 1_000,
        "ms" | "msec" => 1_000_000,
        "s" | "sec" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" | "hr" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        other => return Err(format!("unknown time unit '{other}'")),
    };
    let n: u64 = num.parse().map_err(|_| "too large".to_string())?;
    let ns = n.checked_mul(unit).ok_or("too large")?;
    Ok(Duration::from_nanos(ns))
}

/// Parses a boolean (`1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`); a bare flag is true.
pub fn parse_bool(v: Option<&str>) -> Result<bool, String> {
    match v.map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(true),
        Some(s) => match s.as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err("expected 0 or 1".into()),
        },
    }
}

/// Parses a size range `a-b` or `a:b` (a single size is `a-a`).
pub fn parse_range(s: &str, kb_base: u32) -> Result<BsRange, String> {
    let (a, b) = match s.split_once(['-', ':']) {
        Some((a, b)) => (parse_size(a, kb_base)?, parse_size(b, kb_base)?),
        None => {
            let a = parse_size(s, kb_base)?;
            (a, a)
        }
    };
    if a > b {
        return Err("range minimum above its maximum".into());
    }
    Ok(BsRange { min: a, max: b })
}

fn parse_count(s: &str, kb_base: u32) -> Result<u64, String> {
    parse_size(s, kb_base)
}

fn parse_u32(s: &str, kb_base: u32, min: u32, max: u32) -> Result<u32, String> {
    let n = parse_count(s, kb_base)?;
    if n < u64::from(min) || n > u64::from(max) {
        return Err(format!("must be {min}..={max}"));
    }
    Ok(n as u32)
}

fn parse_size_or_percent(s: &str, kb_base: u32) -> Result<SizeSpec, String> {
    if let Some(p) = s.trim().strip_suffix('%') {
        let p: f64 = p
            .trim()
            .parse()
            .map_err(|_| "not a percentage".to_string())?;
        if !(p > 0.0 && p <= 100.0) {
            return Err("percentage must be in (0, 100]".into());
        }
        return Ok(SizeSpec::Percent(p));
    }
    parse_size(s, kb_base).map(SizeSpec::Bytes)
}

/// Jobs built from sections, plus what the user should hear about.
#[derive(Clone, Debug)]
pub struct Built {
    /// The jobs, in order.
    pub jobs: Vec<Job>,
    /// Warnings (unknown keys, notes), each once.
    pub warnings: Vec<String>,
    /// Options set in `[global]` sections, as written (JSON's "global options").
    pub global_options: Vec<(String, String)>,
}

/// Applies one `key=value` to `job`. `Ok(false)` means the key is unknown.
fn apply(job: &mut Job, key: &str, value: Option<&str>) -> Result<bool, String> {
    let v = || value.ok_or_else(|| "needs a value".to_string());
    let kb = job.kb_base;
    match canonical(key) {
        "name" => {
            let n = v()?;
            if n.trim().is_empty() {
                return Err("empty".into());
            }
            job.name = n.trim().to_string();
        }
        "description" => {
            v()?;
        }
        "rw" => {
            job.rw = match v()?.trim() {
                "read" => Rw::Read,
                "write" => Rw::Write,
                "randread" => Rw::RandRead,
                "randwrite" => Rw::RandWrite,
                "rw" | "readwrite" => Rw::ReadWrite,
                "randrw" => Rw::RandRw,
                s if s.contains(':') => {
                    return Err("the ':<n>' modifier of rw is not supported".into())
                }
                _ => {
                    return Err(
                        "expected read, write, randread, randwrite, rw, readwrite or randrw".into(),
                    )
                }
            }
        }
        "rwmixread" => job.rwmixread = parse_u32(v()?, 1000, 0, 100)?,
        "rwmixwrite" => job.rwmixread = 100 - parse_u32(v()?, 1000, 0, 100)?,
        "bs" | "bsrange" => {
            let s = v()?;
            let parts: Vec<&str> = s.split(',').collect();
            if parts.len() > 3 {
                return Err("at most three sizes (read,write,trim)".into());
            }
            let mut got = [None, None];
            for (i, p) in parts.iter().take(2).enumerate() {
                if !p.trim().is_empty() {
                    got[i] = Some(parse_range(p, kb)?);
                }
            }
            match (got[0], got[1], parts.len()) {
                (Some(r), None, 1) => job.bs = [r, r],
                (r, w, _) => {
                    if let Some(r) = r {
                        job.bs[0] = r;
                    }
                    if let Some(w) = w {
                        job.bs[1] = w;
                    }
                }
            }
        }
        "size" => job.size = Some(parse_size_or_percent(v()?, kb)?),
        "filesize" => job.filesize = Some(parse_range(v()?, kb)?),
        "filename" => {
            let names: Vec<String> = v()?
                .split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if names.is_empty() {
                return Err("empty".into());
            }
            job.filenames = names;
        }
        "directory" => {
            let d = v()?;
            if d.is_empty() {
                return Err("empty".into());
            }
            job.directory = Some(d.to_string());
        }
        "nrfiles" => job.nrfiles = parse_u32(v()?, kb, 1, 4096)?,
        "file_service_type" => {
            let s = v()?.trim();
            let kind = s.split(':').next().unwrap_or("");
            job.file_service = match kind {
                "roundrobin" => FileService::RoundRobin,
                "sequential" => FileService::Sequential,
                "random" => FileService::Random,
                _ => return Err("expected roundrobin, sequential or random".into()),
            };
        }
        "direct" => job.direct = parse_bool(value)?,
        "buffered" => job.direct = !parse_bool(value)?,
        "offset" => job.offset = parse_size_or_percent(v()?, kb)?,
        "runtime" => job.runtime = Some(parse_time(v()?, 1_000_000_000)?),
        "time_based" => job.time_based = parse_bool(value)?,
        "ramp_time" => job.ramp_time = parse_time(v()?, 1_000_000_000)?,
        "numjobs" => job.numjobs = parse_u32(v()?, kb, 1, 1024)?,
        "iodepth" => job.iodepth = Some(parse_u32(v()?, kb, 1, 8192)?),
        "group_reporting" => job.group_reporting = parse_bool(value)?,
        "fsync" => job.fsync = parse_u32(v()?, kb, 0, u32::MAX)?,
        "end_fsync" => job.end_fsync = parse_bool(value)?,
        "randseed" => job.randseed = parse_count(v()?, kb)?,
        "randrepeat" => job.randrepeat = parse_bool(value)?,
        "io_size" => {
            let n = parse_size(v()?, kb)?;
            if n == 0 {
                return Err("must be > 0".into());
            }
            job.io_size = Some(n);
        }
        "number_ios" => {
            let n = parse_count(v()?, kb)?;
            job.number_ios = (n > 0).then_some(n);
        }
        "thread" => {
            parse_bool(value)?;
        }
        "ioengine" => {
            v()?;
        }
        "verify" => {
            job.verify = match v()?.trim() {
                "crc32c" | "crc32c-intel" => true,
                "0" | "none" => false,
                _ => return Err("only crc32c (or none) is supported".into()),
            }
        }
        "verify_only" => job.verify_only = parse_bool(value)?,
        "do_verify" => job.do_verify = parse_bool(value)?,
        "invalidate" => job.invalidate = parse_bool(value)?,
        "unlink" => job.unlink = parse_bool(value)?,
        "kb_base" => {
            job.kb_base = match v()?.trim() {
                "1024" => 1024,
                "1000" => 1000,
                _ => return Err("expected 1024 or 1000".into()),
            }
        }
        "stonewall" => job.stonewall = parse_bool(value)?,
        "new_group" => job.new_group = parse_bool(value)?,
        "target_p99" => {
            let d = parse_time(v()?, 1_000_000)?;
            if d.is_zero() {
                return Err("must be > 0".into());
            }
            if d > Duration::from_secs(3600) {
                return Err("must be at most 1h".into());
            }
            job.target_p99 = Some(d);
        }
        "ring_select" => {
            job.ring_select = Some(match v()?.trim() {
                "adaptive" => RingSelect::Adaptive,
                "cpu_local" | "cpu-local" => RingSelect::CpuLocal,
                "round_robin" | "round-robin" => RingSelect::RoundRobin,
                "thread_local" | "thread-local" => RingSelect::ThreadLocal,
                _ => return Err("expected adaptive, cpu_local, round_robin or thread_local".into()),
            })
        }
        "sqpoll" => job.sqpoll = parse_bool(value)?,
        "depth" => {
            let s = v()?.trim();
            job.depth = if s == "auto" {
                Depth::Auto
            } else {
                Depth::Fixed(
                    parse_u32(s, kb, 1, 8192).map_err(|e| format!("auto or a number: {e}"))?,
                )
            };
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Checks a job's resolved options together.
fn validate(job: &Job) -> Result<(), (String, String, String)> {
    let bad = |k: &str, v: String, why: &str| Err((k.to_string(), v, why.to_string()));
    for (i, r) in job.bs.iter().enumerate() {
        let key = if i == 0 { "bs (read)" } else { "bs (write)" };
        if r.min == 0 {
            return bad(key, r.min.to_string(), "must be > 0");
        }
        if r.max > MAX_BS {
            return bad(key, r.max.to_string(), "at most 128 MiB");
        }
        if job.direct && (r.min % 512 != 0 || r.max % 512 != 0) {
            return bad(
                key,
                format!("{}-{}", r.min, r.max),
                "direct=1 needs multiples of 512",
            );
        }
    }
    if let Some(SizeSpec::Bytes(s)) = job.size {
        if s == 0 {
            return bad("size", "0".into(), "must be > 0");
        }
        if s < job.max_bs() {
            return bad("size", s.to_string(), "smaller than the block size");
        }
    }
    if let Some(fs) = job.filesize {
        if fs.min < job.max_bs() {
            return bad(
                "filesize",
                fs.min.to_string(),
                "smaller than the block size",
            );
        }
    }
    if job.time_based && job.runtime.is_none() {
        return bad("time_based", "1".into(), "needs runtime=");
    }
    if job.filenames.is_empty() && job.size.is_none() && job.filesize.is_none() {
        return bad(
            "size",
            "(unset)".into(),
            "size= (or filesize=) is needed when files are created",
        );
    }
    if job.verify && job.bs.iter().any(|r| r.min != r.max) {
        return bad(
            "verify",
            "crc32c".into(),
            "needs a fixed block size (no bsrange): blocks are checked where they were written",
        );
    }
    if job.verify && job.bs[0] != job.bs[1] && job.rw.reads() && job.rw.writes() {
        return bad(
            "verify",
            "crc32c".into(),
            "needs the same block size for reads and writes",
        );
    }
    if job.verify && job.max_bs() < crate::verify::HEADER_LEN as u64 {
        return bad(
            "verify",
            "crc32c".into(),
            "blocks must be at least 64 bytes",
        );
    }
    if job.verify_only && !job.verify {
        return bad("verify_only", "1".into(), "needs verify=crc32c");
    }
    if job.depth == Depth::Fixed(0) {
        return bad("depth", "0".into(), "must be >= 1");
    }
    Ok(())
}

/// Builds the jobs: `[global]` sections set defaults for the sections after them; each other
/// section is a job. Unknown keys are warnings (named once); bad values are errors.
pub fn build_jobs(sections: &[Section]) -> Result<Built, OptError> {
    let mut global = Job::defaults("global");
    let mut jobs = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut global_options = Vec::new();
    let warn = |w: String, warnings: &mut Vec<String>| {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    };
    let any_job = sections.iter().any(|s| !s.is_global());
    for (si, section) in sections.iter().enumerate() {
        let mut job = if section.is_global() {
            global.clone()
        } else {
            let mut j = global.clone();
            j.name = section.name.clone();
            j.given.clear();
            j
        };
        for e in &section.entries {
            let known = apply(&mut job, &e.key, e.value.as_deref()).map_err(|reason| OptError {
                key: e.key.clone(),
                value: e.value.clone().unwrap_or_else(|| "(flag)".into()),
                reason,
                origin: e.origin.clone(),
            })?;
            if !known {
                warn(
                    format!(
                        "unknown or unsupported option '{}' ignored ({})",
                        e.key, e.origin
                    ),
                    &mut warnings,
                );
                continue;
            }
            if canonical(&e.key) == "ioengine" {
                warn(
                    format!(
                        "ioengine={}: ignored, BFFIO's engine is always aura",
                        e.value.as_deref().unwrap_or("")
                    ),
                    &mut warnings,
                );
            }
            let pair = (e.key.clone(), e.value.clone().unwrap_or_default());
            if section.is_global() {
                global_options.push(pair);
            } else {
                job.given.push(pair);
            }
        }
        if section.is_global() {
            global = job;
            // Options on the command line with no job at all make one job.
            let last = si + 1 == sections.len();
            if last && !any_job && !section.entries.is_empty() && jobs.is_empty() {
                let mut j = global.clone();
                j.name = "job0".into();
                jobs.push(j);
            }
        } else {
            jobs.push(job);
        }
    }
    let mut group = 0;
    for (i, job) in jobs.iter_mut().enumerate() {
        if i > 0 && (job.stonewall || job.new_group) {
            group += 1;
        }
        job.groupid = group;
        if !job.filenames.is_empty() && job.nrfiles > 1 && job.filenames.len() == 1 {
            warn(
                format!(
                    "job {}: nrfiles={} with one filename: using the one file",
                    job.name, job.nrfiles
                ),
                &mut warnings,
            );
        }
        if !job.filenames.is_empty() {
            job.nrfiles = job.filenames.len() as u32;
        }
        if let (Depth::Fixed(n), Some(_)) = (job.depth, job.target_p99) {
            warn(
                format!(
                    "job {}: depth={n} fixes the depth, so target_p99 has no effect",
                    job.name
                ),
                &mut warnings,
            );
        }
        validate(job).map_err(|(key, value, reason)| OptError {
            key,
            value,
            reason,
            origin: format!("job {}", job.name),
        })?;
    }
    Ok(Built {
        jobs,
        warnings,
        global_options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobfile::{parse_bytes, IncludePolicy};

    fn jobs(text: &str) -> Result<Built, OptError> {
        build_jobs(&parse_bytes(text.as_bytes(), "t.fio", &IncludePolicy::Deny).unwrap())
    }

    #[test]
    fn sizes_follow_fio() {
        assert_eq!(parse_size("4096", 1024), Ok(4096));
        assert_eq!(parse_size("4k", 1024), Ok(4096));
        assert_eq!(parse_size("4K", 1024), Ok(4096));
        assert_eq!(parse_size("4KB", 1024), Ok(4096));
        assert_eq!(parse_size("4kib", 1024), Ok(4000));
        assert_eq!(parse_size("4KiB", 1000), Ok(4096));
        assert_eq!(parse_size("4k", 1000), Ok(4000));
        assert_eq!(parse_size("1m", 1024), Ok(1 << 20));
        assert_eq!(parse_size("2g", 1024), Ok(2 << 30));
        assert_eq!(parse_size("1t", 1024), Ok(1 << 40));
        assert_eq!(parse_size("1p", 1024), Ok(1 << 50));
        assert_eq!(parse_size("1.5k", 1024), Ok(1536));
        assert_eq!(parse_size(".5k", 1024), Ok(512));
        assert_eq!(parse_size("0x1000", 1024), Ok(4096));
        assert_eq!(parse_size(" 8b ", 1024), Ok(8));
        for bad in ["", "k", "4q", "1..5k", "-4k", "4 kk", "0xzz", "."] {
            assert!(parse_size(bad, 1024).is_err(), "{bad}");
        }
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(parse_size("99999999999999999999k", 1024).is_err());
        assert!(parse_size("99999999999999999999", 1024).is_err());
        assert!(parse_size("20000000p", 1024).is_err());
        assert_eq!(parse_size("16383p", 1024), Ok(16383 << 50));
        assert!(parse_time("99999999999999999999", 1).is_err());
        assert!(parse_time("999999999999d", 1).is_err());
        let e = jobs("[a]\nbs=99999999999999999999k\n").unwrap_err();
        assert_eq!(e.key, "bs");
        assert_eq!(e.value, "99999999999999999999k");
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("10", 1_000_000_000), Ok(Duration::from_secs(10)));
        assert_eq!(
            parse_time("500ms", 1_000_000_000),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(parse_time("250us", 1), Ok(Duration::from_micros(250)));
        assert_eq!(parse_time("2m", 1), Ok(Duration::from_secs(120)));
        assert_eq!(parse_time("1h", 1), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_time("3", 1_000_000), Ok(Duration::from_millis(3)));
        assert!(parse_time("1x", 1).is_err());
        assert!(parse_time("ms", 1).is_err());
        assert!(parse_time("1.5s", 1).is_err());
    }

    #[test]
    fn ranges_and_bools() {
        assert_eq!(
            parse_range("4k-64k", 1024),
            Ok(BsRange {
                min: 4096,
                max: 65536
            })
        );
        assert_eq!(parse_range("4k:8k", 1024).unwrap().max, 8192);
        assert!(parse_range("64k-4k", 1024).is_err());
        assert_eq!(parse_bool(None), Ok(true));
        assert_eq!(parse_bool(Some("0")), Ok(false));
        assert_eq!(parse_bool(Some("True")), Ok(true));
        assert!(parse_bool(Some("2")).is_err());
    }

    #[test]
    fn inheritance_and_overrides() {
        let b = jobs(
            "[global]\nbs=8k\ndirect=1\nsize=1m\n[a]\nrw=randread\n[b]\nbs=16k\nrw=write\n[global]\nbs=64k\n[c]\n",
        )
        .unwrap();
        assert_eq!(b.jobs.len(), 3);
        assert_eq!(b.jobs[0].bs[0].min, 8192);
        assert!(b.jobs[0].direct);
        assert_eq!(b.jobs[0].rw, Rw::RandRead);
        assert_eq!(b.jobs[1].bs[1].min, 16384);
        assert_eq!(b.jobs[1].rw, Rw::Write);
        assert_eq!(b.jobs[2].bs[0].min, 65536);
        assert_eq!(b.jobs[2].rw, Rw::Read);
        assert_eq!(
            b.jobs[0].given,
            vec![("rw".to_string(), "randread".to_string())]
        );
        assert_eq!(b.global_options.len(), 4);
    }

    #[test]
    fn per_direction_block_sizes() {
        let b =
            jobs("[a]\nsize=1m\nbs=4k,16k\n[b]\nsize=1m\nbs=,8k\n[c]\nsize=1m\nbsrange=4k-64k\n")
                .unwrap();
        assert_eq!(b.jobs[0].bs[0].min, 4096);
        assert_eq!(b.jobs[0].bs[1].min, 16384);
        assert_eq!(b.jobs[1].bs[0].min, 4096);
        assert_eq!(b.jobs[1].bs[1].min, 8192);
        assert_eq!(b.jobs[2].bs[0].max, 65536);
    }

    #[test]
    fn groups_and_bffio_options() {
        let b = jobs(
            "[global]\nsize=1m\n[a]\n[b]\nstonewall\n[c]\ntarget_p99=500us\ndepth=16\nring_select=round_robin\n",
        )
        .unwrap();
        assert_eq!(b.jobs[0].groupid, 0);
        assert_eq!(b.jobs[1].groupid, 1);
        assert_eq!(b.jobs[2].groupid, 1);
        assert_eq!(b.jobs[2].target_p99, Some(Duration::from_micros(500)));
        assert_eq!(b.jobs[2].depth, Depth::Fixed(16));
        assert_eq!(b.jobs[2].depth_cap(), 16);
        assert_eq!(b.jobs[0].depth_cap(), AUTO_IODEPTH_CAP);
        assert_eq!(b.jobs[2].ring_select, Some(RingSelect::RoundRobin));
    }

    #[test]
    fn unknown_keys_warn_once_and_ioengine_is_noted() {
        let b = jobs("[global]\nsize=1m\nfoo=1\n[a]\nfoo=2\nioengine=libaio\n").unwrap();
        assert_eq!(b.warnings.iter().filter(|w| w.contains("'foo'")).count(), 2);
        assert!(b.warnings.iter().any(|w| w.contains("ioengine=libaio")));
    }

    #[test]
    fn invalid_values_name_key_and_value() {
        for (text, key, value) in [
            ("[a]\nsize=1m\nrw=randwhat\n", "rw", "randwhat"),
            ("[a]\nsize=1m\nrwmixread=101\n", "rwmixread", "101"),
            ("[a]\nsize=1m\nnumjobs=0\n", "numjobs", "0"),
            ("[a]\nsize=1m\niodepth=0\n", "iodepth", "0"),
            ("[a]\nsize=1m\ndirect=maybe\n", "direct", "maybe"),
            ("[a]\nsize=1m\nverify=md5\n", "verify", "md5"),
            ("[a]\nsize=1m\ntarget_p99=0\n", "target_p99", "0"),
            ("[a]\nsize=1m\ndepth=deep\n", "depth", "deep"),
            ("[a]\nsize=1m\nbs\n", "bs", "(flag)"),
            ("[a]\nsize=200%\n", "size", "200%"),
            ("[a]\nsize=1m\nruntime=5x\n", "runtime", "5x"),
        ] {
            let e = jobs(text).unwrap_err();
            assert_eq!((e.key.as_str(), e.value.as_str()), (key, value), "{text}");
            let shown = e.to_string();
            assert!(shown.contains(key) && shown.contains(value), "{shown}");
        }
    }

    #[test]
    fn whole_job_validation() {
        assert_eq!(jobs("[a]\nrw=read\n").unwrap_err().key, "size");
        assert_eq!(
            jobs("[a]\nsize=1m\nverify=crc32c\nbsrange=4k-8k\n")
                .unwrap_err()
                .key,
            "verify"
        );
        assert_eq!(jobs("[a]\nsize=1k\nbs=4k\n").unwrap_err().key, "size");
        assert_eq!(
            jobs("[a]\nsize=1m\ntime_based\n").unwrap_err().key,
            "time_based"
        );
        assert_eq!(
            jobs("[a]\nsize=1m\ndirect=1\nbs=1000\n").unwrap_err().key,
            "bs (read)"
        );
        assert_eq!(
            jobs("[a]\nsize=1m\nverify_only\n").unwrap_err().key,
            "verify_only"
        );
        assert!(jobs("[a]\nfilename=/dev/null\n").is_ok());
    }

    #[test]
    fn command_line_options_without_a_job_make_job0() {
        let s = vec![crate::jobfile::Section {
            name: "global".into(),
            entries: vec![crate::jobfile::Entry {
                key: "size".into(),
                value: Some("1m".into()),
                origin: "command line".into(),
            }],
        }];
        let b = build_jobs(&s).unwrap();
        assert_eq!(b.jobs.len(), 1);
        assert_eq!(b.jobs[0].name, "job0");
        assert!(build_jobs(&[]).unwrap().jobs.is_empty());
    }
}
