//! fio's normal (human-readable) report, the live status line, and the per-job entries both
//! report formats are built from.

use std::fmt::Write as _;
use std::time::Duration;

use crate::options::Job;
use crate::runner::{AuraSummary, Results};
use crate::stats::{summarize, Cpu, DirStats, LatStat, DEPTH_LEVELS};

/// The clat percentiles fio reports.
pub const PERCENTILES: [f64; 17] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95,
    99.99,
];

/// One reported job: a worker, or a merged group under `group_reporting`.
#[derive(Clone, Debug)]
pub struct ReportEntry<'a> {
    /// Job name.
    pub name: &'a str,
    /// Group id.
    pub groupid: u32,
    /// Workers merged into this entry.
    pub jobs: usize,
    /// The (first) job's options.
    pub job: &'a Job,
    /// Read and write statistics.
    pub dirs: [DirStats; 2],
    /// fsync latencies.
    pub sync: LatStat,
    /// Longest measured runtime, ms.
    pub runtime_ms: u64,
    /// Summed runtimes of the merged workers, ms (for CPU percentages).
    pub runtime_sum_ms: u64,
    /// CPU (summed).
    pub cpu: Cpu,
    /// Submissions per depth level.
    pub depth_levels: [u64; 7],
    /// First error.
    pub error: Option<(i32, String)>,
    /// Verification failures.
    pub verify_errors: u64,
    /// Blocks verified.
    pub verified: u64,
    /// The group's Engine summary.
    pub aura: &'a AuraSummary,
}

/// The entries to report: one per worker, or one per group when any of its jobs sets
/// `group_reporting` (fio's rule: the group is reported as one).
pub fn entries(r: &Results) -> Vec<ReportEntry<'_>> {
    let mut out = Vec::new();
    for g in &r.groups {
        let merge = g.workers.iter().any(|w| r.jobs[w.job].group_reporting);
        let mut cur: Option<ReportEntry<'_>> = None;
        for w in &g.workers {
            let job = &r.jobs[w.job];
            let e = ReportEntry {
                name: &job.name,
                groupid: g.groupid,
                jobs: 1,
                job,
                dirs: w.dirs.clone(),
                sync: w.sync.clone(),
                runtime_ms: w.runtime_ms,
                runtime_sum_ms: w.runtime_ms,
                cpu: w.cpu,
                depth_levels: w.depth_levels,
                error: w.error.clone(),
                verify_errors: w.verify_errors,
                verified: w.verified,
                aura: &g.aura,
            };
            if !merge {
                out.push(e);
                continue;
            }
            match &mut cur {
                None => cur = Some(e),
                Some(c) => {
                    c.jobs += 1;
                    for d in 0..2 {
                        c.dirs[d].merge(&e.dirs[d]);
                    }
                    c.sync.merge(&e.sync);
                    c.runtime_ms = c.runtime_ms.max(e.runtime_ms);
                    c.runtime_sum_ms += e.runtime_ms;
                    c.cpu.add(&e.cpu);
                    for (a, b) in c.depth_levels.iter_mut().zip(e.depth_levels) {
                        *a += b;
                    }
                    if c.error.is_none() {
                        c.error = e.error;
                    }
                    c.verify_errors += e.verify_errors;
                    c.verified += e.verified;
                }
            }
        }
        out.extend(cur);
    }
    out
}

/// fio-style number: at most 4 digits before a unit step, 3 significant digits after scaling
/// (`8123`, `14.1k`, `164k`).
pub fn num2str(mut v: f64, base: f64, units: &[&str]) -> String {
    let mut u = 0;
    while v >= 10000.0 && u + 1 < units.len() {
        v /= base;
        u += 1;
    }
    let s = if u == 0 || v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    format!("{s}{}", units[u])
}

/// A byte count or rate in binary units (`640MiB`).
pub fn bytes_bin(v: f64) -> String {
    num2str(v, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
}

/// A byte count or rate in decimal units (`671MB`).
pub fn bytes_dec(v: f64) -> String {
    num2str(v, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"])
}

/// An IOPS figure (`164k`).
pub fn iops_str(v: f64) -> String {
    num2str(v, 1000.0, &["", "k", "M", "G"])
}

/// Bytes per second and IOPS of a direction over `ms`.
pub fn rates(d: &DirStats, ms: u64) -> (f64, f64) {
    if ms == 0 {
        return (0.0, 0.0);
    }
    let s = ms as f64 / 1000.0;
    (d.bytes as f64 / s, d.ios as f64 / s)
}

fn lat_unit(ns: f64) -> (&'static str, f64) {
    if ns < 10_000.0 {
        ("nsec", 1.0)
    } else if ns < 10_000_000.0 {
        ("usec", 1_000.0)
    } else {
        ("msec", 1_000_000.0)
    }
}

fn lat_line(out: &mut String, label: &str, s: &LatStat) {
    if s.n() == 0 {
        return;
    }
    let (unit, div) = lat_unit(s.mean());
    let _ = writeln!(
        out,
        "    {label} ({unit}): min={}, max={}, avg={:.2}, stdev={:.2}",
        (s.min() as f64 / div).round() as u64,
        (s.max as f64 / div).round() as u64,
        s.mean() / div,
        s.stddev() / div
    );
}

fn percentile_block(out: &mut String, s: &LatStat) {
    if s.n() == 0 {
        return;
    }
    let vals: Vec<u64> = PERCENTILES.iter().map(|&p| s.hist.percentile(p)).collect();
    // The unit of the median keeps the typical values readable; the tail just prints wider.
    let (unit, div) = lat_unit(s.hist.percentile(50.0) as f64);
    let shown: Vec<u64> = vals
        .iter()
        .map(|&v| (v as f64 / div).round() as u64)
        .collect();
    let width = shown
        .iter()
        .map(|v| v.to_string().len())
        .max()
        .unwrap_or(1)
        .max(5);
    let _ = writeln!(out, "    clat percentiles ({unit}):");
    for (row, chunk) in PERCENTILES.chunks(4).enumerate() {
        let mut line = String::from("     |");
        for (i, p) in chunk.iter().enumerate() {
            let v = shown[row * 4 + i];
            let _ = write!(line, " {:>5.2}th=[{v:>width$}]", p);
            if row * 4 + i + 1 < PERCENTILES.len() {
                line.push(',');
            }
        }
        let _ = writeln!(out, "{line}");
    }
}

/// (label, upper edge ns) of fio's latency distribution buckets.
pub fn latency_buckets() -> Vec<(&'static str, &'static str, u64)> {
    let mut v = Vec::new();
    for (unit, mult) in [("nsec", 1u64), ("usec", 1_000), ("msec", 1_000_000)] {
        for k in [2u64, 4, 10, 20, 50, 100, 250, 500, 750, 1000] {
            let label: &'static str = match k {
                2 => "2",
                4 => "4",
                10 => "10",
                20 => "20",
                50 => "50",
                100 => "100",
                250 => "250",
                500 => "500",
                750 => "750",
                _ => "1000",
            };
            v.push((unit, label, k * mult));
        }
    }
    v.push(("msec", "2000", 2_000_000_000));
    v.push(("msec", ">=2000", u64::MAX));
    v
}

/// Percent of I/Os per latency bucket: (unit, label, percent).
pub fn latency_distribution(lat: &LatStat) -> Vec<(&'static str, &'static str, f64)> {
    let n = lat.n();
    let mut prev = 0u64;
    latency_buckets()
        .into_iter()
        .map(|(unit, label, edge)| {
            let below = if edge == u64::MAX {
                n
            } else {
                lat.hist.count_below(edge.saturating_add(1))
            };
            let pct = if n == 0 {
                0.0
            } else {
                (below - prev.min(below)) as f64 * 100.0 / n as f64
            };
            prev = below.max(prev);
            (unit, label, pct)
        })
        .collect()
}

fn dir_block(out: &mut String, name: &str, d: &DirStats, ms: u64) {
    let (bps, iops) = rates(d, ms);
    let _ = writeln!(
        out,
        "  {name}: IOPS={}, BW={}/s ({}/s)({}/{}msec)",
        iops_str(iops),
        bytes_bin(bps),
        bytes_dec(bps),
        bytes_bin(d.bytes as f64),
        ms
    );
    lat_line(out, "slat", &d.slat);
    lat_line(out, "clat", &d.clat);
    lat_line(out, " lat", &d.lat);
    percentile_block(out, &d.clat);
    let bw = summarize(&d.bw_samples);
    if bw.n > 0 {
        let _ = writeln!(
            out,
            "   bw (  KiB/s): min={:.0}, max={:.0}, per=100.00%, avg={:.2}, stdev={:.2}, samples={}",
            bw.min, bw.max, bw.mean, bw.stddev, bw.n
        );
        let io = summarize(&d.iops_samples);
        let _ = writeln!(
            out,
            "   iops        : min={:.0}, max={:.0}, avg={:.2}, stdev={:.2}, samples={}",
            io.min, io.max, io.mean, io.stddev, io.n
        );
    }
}

fn bs_desc(job: &Job) -> String {
    let r = |b: crate::options::BsRange| format!("{}B-{}B", b.min, b.max);
    format!(
        "(R) {}, (W) {}, (T) {}",
        r(job.bs[0]),
        r(job.bs[1]),
        r(job.bs[0])
    )
}

fn depth_desc(job: &Job) -> String {
    match job.depth {
        crate::options::Depth::Fixed(n) => format!("depth={n} (fixed)"),
        crate::options::Depth::Auto => format!("iodepth={} (cap; depth=auto)", job.depth_cap()),
    }
}

/// The aura line of an entry.
pub fn aura_line(a: &AuraSummary) -> String {
    let settle = match a.time_to_settle_ms {
        Some(ms) => format!("{:.2}s", ms as f64 / 1000.0),
        None => "-".into(),
    };
    let target = a
        .target_p99_ms
        .map(|t| format!(" (target {t:.3}ms)"))
        .unwrap_or_default();
    let p99 = a
        .p99_ms
        .map(|p| format!("{p:.2}ms"))
        .unwrap_or_else(|| "n/a".into());
    format!(
        "  aura: depth={}, settled depth={} (held within 25% from {settle}), cap={}, rings={}, phase={}, p99={p99}{target}, spills={}, peak in flight={}",
        a.mode, a.settled_depth, a.cap, a.rings, a.phase, a.spills, a.peak_in_flight
    )
}

/// Renders the normal report.
pub fn render(r: &Results) -> String {
    let mut out = String::new();
    let mut seen = Vec::new();
    for job in &r.jobs {
        if seen.contains(&job.name) {
            continue;
        }
        seen.push(job.name.clone());
        let _ = writeln!(
            out,
            "{}: (g={}): rw={}, bs={}, ioengine=aura, {}",
            job.name,
            job.groupid,
            job.rw.as_str(),
            bs_desc(job),
            depth_desc(job)
        );
        if job.numjobs > 1 {
            let _ = writeln!(out, "...");
        }
    }
    let threads: u32 = r.jobs.iter().map(|j| j.numjobs).sum();
    let _ = writeln!(out, "{}", crate::VERSION);
    let _ = writeln!(
        out,
        "Starting {threads} thread{}",
        if threads == 1 { "" } else { "s" }
    );
    let pid = std::process::id();
    let when = crate::json::ctime(r.started);
    let list = entries(r);
    for e in &list {
        let err = e.error.as_ref().map_or(0, |x| x.0);
        let _ = writeln!(
            out,
            "\n{}: (groupid={}, jobs={}): err={:>2}: pid={pid}: {when}",
            e.name, e.groupid, e.jobs, err
        );
        if let Some((_, msg)) = &e.error {
            let _ = writeln!(out, "  error: {msg}");
        }
        for (d, label) in [(0, " read"), (1, "write")] {
            if e.dirs[d].ios > 0 || (d == 0 && e.job.rw.reads()) || (d == 1 && e.job.rw.writes()) {
                if e.dirs[d].ios == 0 && e.dirs[d].bytes == 0 && e.runtime_ms == 0 {
                    continue;
                }
                dir_block(&mut out, label, &e.dirs[d], e.runtime_ms);
            }
        }
        if e.sync.n() > 0 {
            let _ = writeln!(out, "  fsync/fdatasync/sync_file_range:");
            let (unit, div) = lat_unit(e.sync.mean());
            let _ = writeln!(
                out,
                "    sync ({unit}): min={}, max={}, avg={:.2}, stdev={:.2}",
                (e.sync.min() as f64 / div).round() as u64,
                (e.sync.max as f64 / div).round() as u64,
                e.sync.mean() / div,
                e.sync.stddev() / div
            );
        }
        let mut lat_all = e.dirs[0].lat.clone();
        lat_all.merge(&e.dirs[1].lat);
        for unit in ["nsec", "usec", "msec"] {
            let parts: Vec<String> = latency_distribution(&lat_all)
                .into_iter()
                .filter(|(u, _, p)| *u == unit && *p >= 0.01)
                .map(|(_, l, p)| format!("{l}={p:.2}%"))
                .collect();
            if !parts.is_empty() {
                let _ = writeln!(out, "  lat ({unit})   : {}", parts.join(", "));
            }
        }
        let secs = e.runtime_sum_ms.max(1) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "  cpu          : usr={:.2}%, sys={:.2}%, ctx={}, majf={}, minf={}",
            e.cpu.user_us as f64 / 1e4 / secs,
            e.cpu.sys_us as f64 / 1e4 / secs,
            e.cpu.ctx,
            e.cpu.majf,
            e.cpu.minf
        );
        let total: u64 = e.depth_levels.iter().sum::<u64>().max(1);
        let levels: Vec<String> = DEPTH_LEVELS
            .iter()
            .zip(e.depth_levels)
            .map(|(l, c)| format!("{l}={:.1}%", c as f64 * 100.0 / total as f64))
            .collect();
        let _ = writeln!(out, "  IO depths    : {}", levels.join(", "));
        let _ = writeln!(
            out,
            "     issued rwts: total={},{},0,0 short={},{},0,0 dropped=0,0,0,0",
            e.dirs[0].ios, e.dirs[1].ios, e.dirs[0].short, e.dirs[1].short
        );
        if e.job.verify {
            let _ = writeln!(
                out,
                "  verify       : crc32c, {} blocks good, {} bad",
                e.verified, e.verify_errors
            );
        }
        let _ = writeln!(out, "{}", aura_line(e.aura));
    }
    for g in &r.groups {
        let _ = writeln!(out, "\nRun status group {} (all jobs):", g.groupid);
        for (d, label) in [(0, "   READ"), (1, "  WRITE")] {
            let ws: Vec<_> = g.workers.iter().filter(|w| w.dirs[d].ios > 0).collect();
            if ws.is_empty() {
                continue;
            }
            let bytes: u64 = ws.iter().map(|w| w.dirs[d].bytes).sum();
            let run_max = ws.iter().map(|w| w.runtime_ms).max().unwrap_or(0).max(1);
            let run_min = ws.iter().map(|w| w.runtime_ms).min().unwrap_or(0);
            let agg = bytes as f64 / (run_max as f64 / 1000.0);
            let per: Vec<f64> = ws
                .iter()
                .map(|w| w.dirs[d].bytes as f64 / (w.runtime_ms.max(1) as f64 / 1000.0))
                .collect();
            let lo = per.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = per.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "{label}: bw={}/s ({}/s), {}/s-{}/s ({}/s-{}/s), io={} ({}), run={run_min}-{run_max}msec",
                bytes_bin(agg),
                bytes_dec(agg),
                bytes_bin(lo),
                bytes_bin(hi),
                bytes_dec(lo),
                bytes_dec(hi),
                bytes_bin(bytes as f64),
                bytes_dec(bytes as f64)
            );
        }
    }
    out
}

/// fio's status line: `Jobs: 1 (f=1): [R(1)][45.0%][r=512MiB/s][r=131k IOPS][eta 00m:05s]`.
pub fn status_line(
    job: &Job,
    running: usize,
    bw: [f64; 2],
    iops: [f64; 2],
    elapsed: Duration,
    expected: Option<Duration>,
) -> String {
    let letter = match job.rw {
        crate::options::Rw::Read => "R",
        crate::options::Rw::Write => "W",
        crate::options::Rw::RandRead => "r",
        crate::options::Rw::RandWrite => "w",
        crate::options::Rw::ReadWrite => "M",
        crate::options::Rw::RandRw => "m",
    };
    let (pct, eta) = match expected {
        Some(t) if !t.is_zero() => {
            let p = (elapsed.as_secs_f64() / t.as_secs_f64() * 100.0).min(100.0);
            let left = t.saturating_sub(elapsed).as_secs();
            (
                format!("{p:.1}%"),
                format!("{:02}m:{:02}s", left / 60, left % 60),
            )
        }
        _ => ("-.-%".into(), "--m:--s".into()),
    };
    let mut bws = Vec::new();
    let mut ios = Vec::new();
    if job.rw.reads() {
        bws.push(format!("r={}/s", bytes_bin(bw[0])));
        ios.push(format!("r={}", iops_str(iops[0])));
    }
    if job.rw.writes() {
        bws.push(format!("w={}/s", bytes_bin(bw[1])));
        ios.push(format!("w={}", iops_str(iops[1])));
    }
    format!(
        "Jobs: {running} (f={running}): [{letter}({running})][{pct}][{}][{} IOPS][eta {eta}]",
        bws.join(","),
        ios.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fio_style_numbers() {
        assert_eq!(iops_str(8123.0), "8123");
        assert_eq!(iops_str(14_123.0), "14.1k");
        assert_eq!(iops_str(164_253.0), "164k");
        assert_eq!(bytes_bin(640.0 * 1048576.0), "640MiB");
        assert_eq!(bytes_dec(671_088_640.0), "671MB");
        assert_eq!(bytes_bin(52.2 * 1048576.0), "52.2MiB");
        assert_eq!(bytes_bin(1024.0 * 1048576.0), "1024MiB");
        assert_eq!(bytes_bin(512.0), "512B");
    }

    #[test]
    fn latency_distribution_sums_to_100() {
        let mut s = LatStat::default();
        for v in [1_500u64, 80_000, 120_000, 900_000, 3_000_000, 5_000_000_000] {
            s.record(v);
        }
        let d = latency_distribution(&s);
        let sum: f64 = d.iter().map(|x| x.2).sum();
        assert!((sum - 100.0).abs() < 1e-9, "{sum}");
        let get = |u: &str, l: &str| d.iter().find(|x| x.0 == u && x.1 == l).unwrap().2;
        assert!(get("nsec", "2") == 0.0 && get("usec", "2") > 16.0);
        assert!(get("usec", "100") > 16.0);
        assert!(get("msec", ">=2000") > 16.0);
    }

    #[test]
    fn status_line_shape() {
        let b = crate::options::build_jobs(&[crate::jobfile::Section {
            name: "j".into(),
            entries: vec![crate::jobfile::Entry {
                key: "size".into(),
                value: Some("1m".into()),
                origin: "t".into(),
            }],
        }])
        .unwrap();
        let s = status_line(
            &b.jobs[0],
            1,
            [512.0 * 1048576.0, 0.0],
            [131_072.0, 0.0],
            Duration::from_secs(4),
            Some(Duration::from_secs(10)),
        );
        assert_eq!(
            s,
            "Jobs: 1 (f=1): [R(1)][40.0%][r=512MiB/s][r=131k IOPS][eta 00m:06s]"
        );
    }
}
