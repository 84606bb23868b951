//! fio-3.x JSON output (`--output-format=json`), and json+ (the clat histogram bins too), with an
//! `"aura"` object per job.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::report::{entries, latency_distribution, rates, ReportEntry, PERCENTILES};
use crate::runner::{AuraSummary, Results};
use crate::stats::{summarize, DirStats, LatStat, DEPTH_LEVELS};

/// `Tue Nov 24 10:00:00 2026` (UTC), as fio prints its timestamps.
pub fn ctime(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = (days + 4).rem_euclid(7) as usize;
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        WD[wd],
        MO[(m - 1) as usize],
        d,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        y
    )
}

fn lat_json(s: &LatStat, percentiles: bool, bins: bool) -> Value {
    let mut m = Map::new();
    m.insert("min".into(), json!(s.min()));
    m.insert("max".into(), json!(s.max));
    m.insert("mean".into(), json!(s.mean()));
    m.insert("stddev".into(), json!(s.stddev()));
    m.insert("N".into(), json!(s.n()));
    if percentiles && s.n() > 0 {
        let mut p = Map::new();
        for &q in &PERCENTILES {
            p.insert(format!("{q:.6}"), json!(s.hist.percentile(q)));
        }
        m.insert("percentile".into(), Value::Object(p));
    }
    if bins && s.n() > 0 {
        let mut b = Map::new();
        for (v, c) in s.hist.nonzero() {
            b.insert(v.to_string(), json!(c));
        }
        m.insert("bins".into(), Value::Object(b));
    }
    Value::Object(m)
}

fn dir_json(d: &DirStats, ms: u64, group_bytes_per_s: f64, plus: bool) -> Value {
    let (bps, iops) = rates(d, ms);
    let bw = summarize(&d.bw_samples);
    let io = summarize(&d.iops_samples);
    let agg = if group_bytes_per_s > 0.0 {
        bps / group_bytes_per_s * 100.0
    } else {
        0.0
    };
    json!({
        "io_bytes": d.bytes,
        "io_kbytes": d.bytes / 1024,
        "bw_bytes": bps.round() as u64,
        "bw": (bps / 1024.0).round() as u64,
        "iops": iops,
        "runtime": if d.ios > 0 { ms } else { 0 },
        "total_ios": d.ios,
        "short_ios": d.short,
        "drop_ios": 0,
        "slat_ns": lat_json(&d.slat, false, false),
        "clat_ns": lat_json(&d.clat, true, plus),
        "lat_ns": lat_json(&d.lat, false, false),
        "bw_min": bw.min.round() as u64,
        "bw_max": bw.max.round() as u64,
        "bw_agg": agg,
        "bw_mean": bw.mean,
        "bw_dev": bw.stddev,
        "bw_samples": bw.n,
        "iops_min": io.min.round() as u64,
        "iops_max": io.max.round() as u64,
        "iops_mean": io.mean,
        "iops_stddev": io.stddev,
        "iops_samples": io.n,
    })
}

fn aura_json(a: &AuraSummary) -> Value {
    json!({
        "mode": a.mode,
        "rings": a.rings,
        "iodepth_cap": a.cap,
        "target_p99_ms": a.target_p99_ms,
        "settled_depth": a.settled_depth,
        "time_to_settle_ms": a.time_to_settle_ms,
        "phase": a.phase,
        "p99_ms": a.p99_ms,
        "spills": a.spills,
        "peak_in_flight": a.peak_in_flight,
        "depth_timeline": a.timeline.iter().map(|&(t, d, i)| json!({"t_ms": t, "depth": d, "in_flight": i})).collect::<Vec<_>>(),
    })
}

fn job_json(e: &ReportEntry<'_>, group_bps: [f64; 2], started: SystemTime, plus: bool) -> Value {
    let mut opts = Map::new();
    for (k, v) in &e.job.given {
        opts.insert(k.clone(), json!(v));
    }
    let secs = e.runtime_sum_ms.max(1) as f64 / 1000.0;
    let total: u64 = e.depth_levels.iter().sum::<u64>().max(1);
    let mut levels = Map::new();
    for (l, c) in DEPTH_LEVELS.iter().zip(e.depth_levels) {
        levels.insert((*l).into(), json!(c as f64 * 100.0 / total as f64));
    }
    let mut lat_all = e.dirs[0].lat.clone();
    lat_all.merge(&e.dirs[1].lat);
    let mut dist = [Map::new(), Map::new(), Map::new()];
    for (unit, label, pct) in latency_distribution(&lat_all) {
        let i = match unit {
            "nsec" => 0,
            "usec" => 1,
            _ => 2,
        };
        dist[i].insert(label.into(), json!(pct));
    }
    let [lns, lus, lms] = dist;
    let start_ms = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "jobname": e.name,
        "groupid": e.groupid,
        "job_start": start_ms,
        "error": e.error.as_ref().map_or(0, |x| x.0),
        "error_text": e.error.as_ref().map(|x| x.1.clone()),
        "eta": 0,
        "elapsed": e.runtime_ms.div_ceil(1000),
        "job options": Value::Object(opts),
        "read": dir_json(&e.dirs[0], e.runtime_ms, group_bps[0], plus),
        "write": dir_json(&e.dirs[1], e.runtime_ms, group_bps[1], plus),
        "trim": dir_json(&DirStats::default(), 0, 0.0, plus),
        "sync": {
            "total_ios": e.sync.n(),
            "lat_ns": lat_json(&e.sync, true, plus),
        },
        "job_runtime": e.runtime_ms,
        "usr_cpu": e.cpu.user_us as f64 / 1e4 / secs,
        "sys_cpu": e.cpu.sys_us as f64 / 1e4 / secs,
        "ctx": e.cpu.ctx,
        "majf": e.cpu.majf,
        "minf": e.cpu.minf,
        "iodepth_level": Value::Object(levels),
        "latency_ns": Value::Object(lns),
        "latency_us": Value::Object(lus),
        "latency_ms": Value::Object(lms),
        "latency_depth": e.job.depth_cap(),
        "latency_target": 0,
        "latency_percentile": 100.0,
        "latency_window": 0,
        "verify": {
            "enabled": e.job.verify,
            "good_blocks": e.verified,
            "bad_blocks": e.verify_errors,
        },
        "aura": aura_json(e.aura),
    })
}

/// Renders the JSON report (`plus`: json+ with clat bins).
pub fn render(r: &Results, plus: bool) -> String {
    let list = entries(r);
    // Each group's aggregate rate per direction, for bw_agg.
    let group_bps = |gid: u32| -> [f64; 2] {
        let mut out = [0.0; 2];
        for e in list.iter().filter(|e| e.groupid == gid) {
            for (d, o) in out.iter_mut().enumerate() {
                *o += rates(&e.dirs[d], e.runtime_ms).0;
            }
        }
        out
    };
    let jobs: Vec<Value> = list
        .iter()
        .map(|e| job_json(e, group_bps(e.groupid), r.started, plus))
        .collect();
    let mut globals = Map::new();
    for (k, v) in &r.global_options {
        globals.insert(k.clone(), json!(v));
    }
    let ts = r
        .started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let doc = json!({
        "fio version": crate::VERSION,
        "timestamp": ts.as_secs(),
        "timestamp_ms": ts.as_millis() as u64,
        "time": ctime(r.started),
        "global options": Value::Object(globals),
        "jobs": jobs,
        "disk_util": [],
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_known_dates() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(ctime(t(0)), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(t(951_782_400)), "Tue Feb 29 00:00:00 2000");
        assert_eq!(ctime(t(1_700_000_000)), "Tue Nov 14 22:13:20 2023");
    }

    #[test]
    fn latency_object_has_fio_fields() {
        let mut s = LatStat::default();
        for v in 1..=1000u64 {
            s.record(v * 1000);
        }
        let v = lat_json(&s, true, true);
        assert_eq!(v["N"], 1000);
        assert_eq!(v["min"], 1000);
        let p99 = v["percentile"]["99.000000"].as_u64().unwrap();
        assert!((p99 as f64 - 990_000.0).abs() / 990_000.0 < 0.01, "{p99}");
        let bins: u64 = v["bins"]
            .as_object()
            .unwrap()
            .values()
            .map(|c| c.as_u64().unwrap())
            .sum();
        assert_eq!(bins, 1000);
    }
}
