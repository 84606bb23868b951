//! End to end: the BFFIO binary on temporary files, every rw mode, verification, several jobs,
//! bad input, output formats and the example job files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_BFFIO");

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("bffio-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn dir(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("BFFIO runs")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "BFFIO failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Checks fio's invariants on one direction object: io_bytes = total_ios × bs, and the fields
/// tools read are present.
fn check_dir(d: &Value, bs: u64) {
    assert_eq!(u(&d["io_bytes"]), u(&d["total_ios"]) * bs, "{d}");
    assert_eq!(u(&d["io_kbytes"]), u(&d["io_bytes"]) / 1024);
    for k in [
        "bw", "bw_bytes", "iops", "runtime", "slat_ns", "clat_ns", "lat_ns", "bw_mean",
    ] {
        assert!(!d[k].is_null(), "missing {k}");
    }
    if u(&d["total_ios"]) > 0 {
        assert_eq!(u(&d["clat_ns"]["N"]), u(&d["total_ios"]));
        assert!(u(&d["clat_ns"]["percentile"]["99.000000"]) >= u(&d["clat_ns"]["min"]));
        assert!(d["iops"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn every_rw_mode_json() {
    let s = Scratch::new("modes");
    for rw in [
        "read",
        "write",
        "randread",
        "randwrite",
        "rw",
        "randrw",
        "readwrite",
    ] {
        let out = run(&[
            "--name=m",
            &format!("--rw={rw}"),
            "--bs=4k",
            "--size=2m",
            &format!("--directory={}", s.dir()),
            "--output-format=json",
            "--iodepth=16",
        ]);
        let v = json_of(&out);
        assert_eq!(v["fio version"].as_str().unwrap(), bffio::VERSION);
        let job = &v["jobs"][0];
        assert_eq!(job["jobname"], "m");
        check_dir(&job["read"], 4096);
        check_dir(&job["write"], 4096);
        let total = u(&job["read"]["io_bytes"]) + u(&job["write"]["io_bytes"]);
        assert_eq!(total, 2 << 20, "{rw}: a size-based job moves size bytes");
        let reads = u(&job["read"]["total_ios"]);
        let writes = u(&job["write"]["total_ios"]);
        match rw {
            "read" | "randread" => assert_eq!(writes, 0),
            "write" | "randwrite" => assert_eq!(reads, 0),
            _ => assert!(
                reads > 0 && writes > 0,
                "{rw}: {reads} reads, {writes} writes"
            ),
        }
        // CPU figures come from getrusage (tick-grained for a job this short: may be 0).
        assert!(job["usr_cpu"].as_f64().unwrap() >= 0.0 && job["sys_cpu"].is_f64());
        let aura = &job["aura"];
        assert!(u(&aura["settled_depth"]) >= 1);
        assert!(aura["phase"].is_string());
    }
}

#[test]
fn random_reads_cover_each_block_once() {
    // A size-based random job visits every block exactly once (no repeats, like fio's map).
    let s = Scratch::new("cover");
    let out = run(&[
        "--name=c",
        "--rw=randread",
        "--bs=4k",
        "--size=1m",
        &format!("--directory={}", s.dir()),
        "--output-format=json",
    ]);
    let v = json_of(&out);
    assert_eq!(u(&v["jobs"][0]["read"]["total_ios"]), 256);
}

#[test]
fn direct_io_and_fixed_depth() {
    let s = Scratch::new("direct");
    let out = run(&[
        "--name=d",
        "--rw=randread",
        "--bs=4k",
        "--size=4m",
        "--direct=1",
        "--depth=8",
        &format!("--directory={}", s.dir()),
        "--output-format=json",
    ]);
    let v = json_of(&out);
    let job = &v["jobs"][0];
    check_dir(&job["read"], 4096);
    assert_eq!(job["aura"]["mode"], "fixed");
    assert_eq!(u(&job["aura"]["settled_depth"]), 8);
    assert!(u(&job["aura"]["peak_in_flight"]) <= 8);
}

#[test]
fn verify_finds_a_corrupted_block() {
    let s = Scratch::new("verify");
    let f = s.path("v.dat");
    let file = format!("--filename={}", f.display());
    let base = [
        "--name=v",
        "--rw=write",
        "--bs=4k",
        "--size=1m",
        "--verify=crc32c",
        &file,
        "--output-format=json",
    ];
    let v = json_of(&run(&base));
    let job = &v["jobs"][0];
    assert_eq!(u(&job["verify"]["good_blocks"]), 256);
    assert_eq!(u(&job["verify"]["bad_blocks"]), 0);
    assert_eq!(u(&job["write"]["total_ios"]), 256);

    // Verify only: still good.
    let mut again: Vec<&str> = base.to_vec();
    again.push("--verify_only=1");
    let v = json_of(&run(&again));
    assert_eq!(u(&v["jobs"][0]["verify"]["good_blocks"]), 256);

    // Corrupt one byte of block 37, then verify again: found, named, exit 1.
    let mut data = std::fs::read(&f).unwrap();
    data[37 * 4096 + 1000] ^= 0x40;
    std::fs::write(&f, &data).unwrap();
    let out = run(&again);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("verify") && err.contains(&(37 * 4096).to_string()),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u(&v["jobs"][0]["verify"]["bad_blocks"]), 1);
    assert_eq!(u(&v["jobs"][0]["verify"]["good_blocks"]), 255);
    assert_ne!(u(&v["jobs"][0]["error"]), 0);

    // A read job with verify checks every block it reads, randomly too.
    let out = run(&[
        "--name=r",
        "--rw=randread",
        "--bs=4k",
        "--verify=crc32c",
        &file,
        "--output-format=json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u(&v["jobs"][0]["verify"]["bad_blocks"]), 1);
}

#[test]
fn several_jobs_finish() {
    let s = Scratch::new("numjobs");
    for n in ["2", "4"] {
        for extra in [
            ["--group_reporting", "--size=2m"],
            ["--thread", "--size=1m"],
        ] {
            let mut args = vec![
                "--name=n".to_string(),
                "--rw=randrw".to_string(),
                "--bs=4k".to_string(),
                format!("--numjobs={n}"),
                format!("--directory={}", s.dir()),
                "--output-format=json".to_string(),
                "--iodepth=32".to_string(),
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let started = std::time::Instant::now();
            let v = json_of(&run(&refs));
            assert!(started.elapsed().as_secs() < 60);
            let jobs = v["jobs"].as_array().unwrap();
            let grouped = extra[0] == "--group_reporting";
            let n: u64 = n.parse().unwrap();
            assert_eq!(jobs.len() as u64, if grouped { 1 } else { n });
            let per = if grouped { 2u64 << 20 } else { 1 << 20 };
            let bytes: u64 = jobs
                .iter()
                .map(|j| u(&j["read"]["io_bytes"]) + u(&j["write"]["io_bytes"]))
                .sum();
            assert_eq!(bytes, per * n, "each clone moves its size");
            for j in jobs {
                check_dir(&j["read"], 4096);
                check_dir(&j["write"], 4096);
            }
        }
    }
}

#[test]
fn time_based_with_ramp_and_several_workers() {
    let s = Scratch::new("time");
    let out = run(&[
        "--name=t",
        "--rw=randread",
        "--bs=4k",
        "--size=4m",
        "--numjobs=2",
        "--group_reporting",
        "--time_based",
        "--runtime=2",
        "--ramp_time=300ms",
        &format!("--directory={}", s.dir()),
        "--output-format=json,normal",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let json_start = text.find('{').unwrap();
    let normal_start = text.find("t: (g=0)").unwrap();
    assert!(json_start < normal_start, "formats in the order asked");
    let v: Value = serde_json::from_str(&text[json_start..normal_start]).unwrap();
    let rt = u(&v["jobs"][0]["job_runtime"]);
    assert!(
        (1900..3000).contains(&rt),
        "runtime {rt} ms excludes the ramp"
    );
    assert!(u(&v["jobs"][0]["read"]["bw_samples"]) >= 3);
}

#[test]
fn invalid_values_exit_1_and_leave_the_target_alone() {
    let s = Scratch::new("invalid");
    let newf = s.path("never-created");
    let out = run(&[
        "--name=x",
        "--rw=write",
        "--bs=12q",
        "--size=1m",
        &format!("--filename={}", newf.display()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bs") && err.contains("12q"), "{err}");
    assert!(!newf.exists(), "nothing may be created");

    let existing = s.path("existing");
    std::fs::write(&existing, vec![7u8; 65536]).unwrap();
    let before = std::fs::metadata(&existing).unwrap().modified().unwrap();
    for bad in [
        "--rwmixread=101",
        "--iodepth=0",
        "--direct=2",
        "--runtime=5parsecs",
    ] {
        let out = run(&[
            "--name=x",
            "--rw=randwrite",
            bad,
            &format!("--filename={}", existing.display()),
        ]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        let (key, value) = bad.trim_start_matches("--").split_once('=').unwrap();
        assert!(err.contains(key) && err.contains(value), "{bad}: {err}");
    }
    // A second job with a bad value stops the first from running too.
    let out = run(&[
        "--rw=write",
        &format!("--filename={}", existing.display()),
        "--name=ok",
        "--name=bad",
        "--numjobs=0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(&existing).unwrap(), vec![7u8; 65536]);
    assert_eq!(
        std::fs::metadata(&existing).unwrap().modified().unwrap(),
        before
    );
}

#[test]
fn unknown_options_warn_and_ioengine_is_noted() {
    let s = Scratch::new("unknown");
    let out = run(&[
        "--name=w",
        "--rw=read",
        "--size=1m",
        "--ioengine=libaio",
        "--norandommap",
        "--iodepth_batch=8",
        &format!("--directory={}", s.dir()),
        "--output-format=json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    json_of(&out);
    assert!(
        err.contains("'norandommap'") && err.contains("'iodepth_batch'"),
        "{err}"
    );
    assert_eq!(err.matches("ioengine").count(), 1, "{err}");
}

#[test]
fn normal_report_and_output_file_and_json_plus() {
    let s = Scratch::new("normal");
    let out = run(&[
        "--name=n",
        "--rw=randrw",
        "--rwmixread=70",
        "--bs=4k",
        "--size=2m",
        "--fsync=8",
        "--end_fsync=1",
        &format!("--directory={}", s.dir()),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "n: (groupid=0, jobs=1): err= 0: pid=",
        "  read: IOPS=",
        "  write: IOPS=",
        "clat percentiles (",
        "99.99th=[",
        "    slat (",
        "     lat (",
        "  cpu          : usr=",
        "  IO depths    : 1=",
        "  aura: depth=auto, settled depth=",
        "fsync/fdatasync/sync_file_range:",
        "Run status group 0 (all jobs):",
        "   READ: bw=",
        "  WRITE: bw=",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(
        !text.contains("Jobs: "),
        "no status line when stdout is not a terminal"
    );

    let report = s.path("report.json");
    let out = run(&[
        "--name=p",
        "--rw=write",
        "--bs=8k",
        "--size=1m",
        "--fsync=4",
        &format!("--directory={}", s.dir()),
        "--output-format=json+",
        &format!("--output={}", report.display()),
    ]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let w = &v["jobs"][0]["write"];
    check_dir(w, 8192);
    let bins: u64 = w["clat_ns"]["bins"]
        .as_object()
        .unwrap()
        .values()
        .map(u)
        .sum();
    assert_eq!(bins, u(&w["total_ios"]));
    assert_eq!(u(&v["jobs"][0]["sync"]["total_ios"]), 128 / 4);
}

#[test]
fn job_files_with_global_include_and_env() {
    let s = Scratch::new("jobfile");
    std::fs::write(
        s.path("common.fio"),
        "[global]\nbs=8k\nsize=${BFFIO_E2E_SIZE}\n",
    )
    .unwrap();
    std::fs::write(
        s.path("main.fio"),
        format!(
            "; two jobs, second waits for the first\ninclude common.fio\ndirectory={}\n\n[first]\nrw=write\n\n[second]\nstonewall\nrw=read\nbs=16k\n",
            s.dir()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg(s.path("main.fio"))
        .arg("--output-format=json")
        .env("BFFIO_E2E_SIZE", "1m")
        .output()
        .unwrap();
    let v = json_of(&out);
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["jobname"], "first");
    assert_eq!(u(&jobs[0]["groupid"]), 0);
    assert_eq!(u(&jobs[1]["groupid"]), 1);
    check_dir(&jobs[0]["write"], 8192);
    check_dir(&jobs[1]["read"], 16384);
    assert_eq!(u(&jobs[1]["read"]["io_bytes"]), 1 << 20);
}

/// The example job files, with sizes and times shrunk and the directory pointed at a scratch one.
#[test]
fn example_job_files_run() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut ran = 0;
    let mut names: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "fio"))
        .collect();
    names.sort();
    for p in names {
        let s = Scratch::new("example");
        let text = std::fs::read_to_string(&p).unwrap();
        let shrunk: String = text
            .lines()
            .map(|l| {
                let key = l.split('=').next().unwrap_or("").trim();
                match key {
                    "size" => "size=4m".to_string(),
                    "runtime" => "runtime=1".to_string(),
                    "ramp_time" => "ramp_time=100ms".to_string(),
                    "directory" => format!("directory={}", s.dir()),
                    "filename" => format!("filename={}", s.path("example.dat").display()),
                    _ => l.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let f = s.path("job.fio");
        std::fs::write(&f, shrunk).unwrap();
        let out = Command::new(BIN)
            .arg(&f)
            .arg("--output-format=json")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!err.contains("unknown"), "{}: {err}", p.display());
        let v = json_of(&out);
        assert!(!v["jobs"].as_array().unwrap().is_empty(), "{}", p.display());
        ran += 1;
    }
    assert!(
        ran >= 3,
        "expected at least three example job files, ran {ran}"
    );
}

/// A worker's io_uring_enter also submits other workers' requests, and the kernel cancels what
/// an exiting thread submitted (ECANCELED / EFAULT on buffered I/O still in its async workers):
/// a worker that finishes first must keep reaping until all are done. Fresh sparse files push
/// buffered writes to the kernel's async workers; without that rule about one run in ten of
/// these failed, so a dozen runs catch it most of the time.
#[test]
fn first_worker_to_finish_does_not_cancel_the_others() {
    for i in 0..12 {
        let s = Scratch::new(&format!("exit{i}"));
        let v = json_of(&run(&[
            "--name=x",
            if i % 2 == 0 {
                "--rw=randrw"
            } else {
                "--rw=randwrite"
            },
            "--bs=4k",
            "--size=4m",
            "--numjobs=4",
            "--iodepth=32",
            &format!("--directory={}", s.dir()),
            "--output-format=json",
        ]));
        for j in v["jobs"].as_array().unwrap() {
            assert_eq!(u(&j["error"]), 0, "{}", j["error_text"]);
        }
    }
}
