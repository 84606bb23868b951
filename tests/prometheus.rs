//! The Prometheus exporter (`aura_std::prometheus`) on a live engine: I/O through two rings, then
//! the rendered text is checked structurally here and by `promtool check metrics` (skipped, out
//! loud, when promtool is not installed: Debian package `prometheus`).
//!
//! Also the runtime setters (`Engine::set_max_p99_latency_ms`, `set_min_in_flight`,
//! `set_batch_threshold`): refused values, and a fixed batch threshold showing in the metrics.

#![cfg(not(loom))]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aura_std as aura;
use aura_std::{Engine, Error, Options, RingSelect};
use aura_tests::{pattern, skip, tempfile_with};

const READS: usize = 64;
const CHUNK: usize = 4096;

/// Every family, in output order, with its type.
const FAMILIES: [(&str, &str); 23] = [
    ("aura_metrics_schema_info", "gauge"),
    ("aura_ops_completed_total", "counter"),
    ("aura_bytes_transferred_total", "counter"),
    ("aura_adaptive_spills_total", "counter"),
    ("aura_throughput_bytes_per_second", "gauge"),
    ("aura_p99_latency_seconds", "gauge"),
    ("aura_in_flight", "gauge"),
    ("aura_optimal_in_flight", "gauge"),
    ("aura_optimal_batch_size", "gauge"),
    ("aura_ring_count", "gauge"),
    ("aura_ring_ops_completed_total", "counter"),
    ("aura_ring_bytes_transferred_total", "counter"),
    ("aura_ring_in_flight", "gauge"),
    ("aura_ring_in_flight_limit", "gauge"),
    ("aura_ring_batch_threshold", "gauge"),
    ("aura_ring_queue_depth", "gauge"),
    ("aura_ring_p99_latency_seconds", "gauge"),
    ("aura_ring_throughput_bytes_per_second", "gauge"),
    ("aura_ring_aimd_phase", "gauge"),
    ("aura_latency_seconds", "histogram"),
    ("aura_buffer_pool_allocated_bytes", "gauge"),
    ("aura_buffer_pool_buffers", "gauge"),
    ("aura_buffer_pool_shards", "gauge"),
];

/// An engine with two rings (round robin, so both get work) that has completed `READS` reads of
/// `CHUNK` bytes from a temporary file.
fn busy_engine() -> Engine {
    let engine = Engine::with_options(
        Options::new()
            .ring_count(2)
            .queue_depth(64)
            .ring_select(RingSelect::RoundRobin),
    )
    .expect("engine");
    let data = pattern(7, READS * CHUNK);
    let file = tempfile_with("prometheus.dat", &data);
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..READS {
        let buf = engine.allocate_buffer(CHUNK).expect("buffer");
        let done = done.clone();
        let want = data[i * CHUNK..(i + 1) * CHUNK].to_vec();
        engine
            .read_owned(
                file.file.as_raw_fd(),
                buf,
                (i * CHUNK) as u64,
                move |res, buf| {
                    assert_eq!(res.expect("read"), CHUNK);
                    assert!(buf[..] == want[..], "read {i}: wrong bytes");
                    done.fetch_add(1, Ordering::Relaxed);
                },
            )
            .expect("submit");
    }
    engine.drain(10_000).expect("drain");
    assert_eq!(done.load(Ordering::Relaxed), READS);
    engine
}

/// One sample line: metric name, labels in order, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One family block: HELP, TYPE, samples.
#[derive(Debug)]
struct Family {
    name: String,
    kind: String,
    samples: Vec<Sample>,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// Parses `{k="v",...}` (the braces included); escapes `\\`, `\"` and `\n` are allowed in values.
fn parse_labels(s: &str, line: &str) -> Vec<(String, String)> {
    let inner = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or_else(|| panic!("labels not in braces: {line}"));
    let mut labels = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label without =\": {line}"));
        assert!(is_label_name(key), "bad label name {key:?}: {line}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?}: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        };
        assert!(
            labels.iter().all(|(k, _)| k != key),
            "label {key} twice: {line}"
        );
        labels.push((key.to_string(), value));
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
            assert!(!rest.is_empty(), "trailing comma: {line}");
        } else {
            assert!(rest.is_empty(), "junk after label {key}: {line}");
        }
    }
    labels
}

fn parse_value(s: &str, line: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s
            .parse()
            .unwrap_or_else(|e| panic!("bad value {s:?} ({e}): {line}")),
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("sample without value: {line}"));
    let (name, labels) = match series.find('{') {
        Some(i) => (&series[..i], parse_labels(&series[i..], line)),
        None => (series, Vec::new()),
    };
    assert!(is_metric_name(name), "bad metric name {name:?}: {line}");
    let value = parse_value(value, line);
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// Parses the whole text, checking the block structure on the way: each family is `# HELP`,
/// `# TYPE`, samples, one blank line; the text ends with that blank line.
fn parse(text: &str) -> Vec<Family> {
    assert!(
        text.ends_with("\n\n"),
        "the last family ends with a blank line"
    );
    let mut families: Vec<Family> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(help) = lines.next() {
        let rest = help
            .strip_prefix("# HELP ")
            .unwrap_or_else(|| panic!("family does not start with # HELP: {help:?}"));
        let (name, help_text) = rest
            .split_once(' ')
            .unwrap_or_else(|| panic!("HELP without text: {help}"));
        assert!(is_metric_name(name), "bad family name {name:?}");
        assert!(!help_text.trim().is_empty(), "empty HELP for {name}");
        let ty = lines
            .next()
            .unwrap_or_else(|| panic!("{name}: text ends after HELP"));
        let kind = ty
            .strip_prefix(&format!("# TYPE {name} "))
            .unwrap_or_else(|| panic!("{name}: HELP not followed by its TYPE: {ty:?}"));
        assert!(
            ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
            "{name}: bad type {kind}"
        );
        let mut samples = Vec::new();
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("{name}: no blank line after the family"));
            if line.is_empty() {
                break;
            }
            assert!(
                !line.starts_with('#'),
                "{name}: comment among samples: {line}"
            );
            let sample = parse_sample(line);
            let base = match kind {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| sample.name.strip_suffix(suffix))
                    .unwrap_or_else(|| panic!("{name}: histogram sample {line}")),
                _ => sample.name.as_str(),
            };
            assert_eq!(base, name, "sample of another family inside {name}: {line}");
            samples.push(sample);
        }
        assert!(!samples.is_empty(), "{name}: no samples");
        assert!(
            families.iter().all(|f| f.name != name),
            "{name}: family appears twice"
        );
        families.push(Family {
            name: name.to_string(),
            kind: kind.to_string(),
            samples,
        });
    }
    families
}

/// The structural checks: families and types exactly as documented, counters end in `_total`,
/// values finite (and counters non-negative), per-ring label sets complete, histograms
/// cumulative with `_count` equal to the `+Inf` bucket. Returns the families by name.
fn check_structure(text: &str, rings: usize) -> BTreeMap<String, Family> {
    let families = parse(text);
    let got: Vec<(&str, &str)> = families
        .iter()
        .map(|f| (f.name.as_str(), f.kind.as_str()))
        .collect();
    assert_eq!(got, FAMILIES, "families and types, in order");
    let ring_labels: BTreeSet<String> = (0..rings).map(|i| i.to_string()).collect();
    for f in &families {
        if f.kind == "counter" {
            assert!(
                f.name.ends_with("_total"),
                "counter {} lacks _total",
                f.name
            );
        } else {
            assert!(
                !f.name.ends_with("_total"),
                "{} {} ends in _total",
                f.kind,
                f.name
            );
        }
        for s in &f.samples {
            assert!(s.value.is_finite(), "{}: non-finite value", s.name);
            if f.kind == "counter" {
                assert!(
                    s.value >= 0.0 && s.value.fract() == 0.0,
                    "{}: {}",
                    s.name,
                    s.value
                );
            }
        }
        if f.name == "aura_metrics_schema_info" {
            assert_eq!(f.samples.len(), 1);
            let s = &f.samples[0];
            assert_eq!(
                s.labels,
                [
                    ("schema".to_string(), "v0".to_string()),
                    ("stability".to_string(), "experimental".to_string())
                ]
            );
            assert_eq!(s.value, 1.0);
        } else if (f.name.starts_with("aura_ring_") && f.name != "aura_ring_count")
            || f.kind == "histogram"
        {
            let seen: BTreeSet<String> = f
                .samples
                .iter()
                .map(|s| s.label("ring").expect("ring label").to_string())
                .collect();
            assert_eq!(seen, ring_labels, "{}: one series per ring", f.name);
            if f.kind != "histogram" {
                assert_eq!(f.samples.len(), rings, "{}", f.name);
                for s in &f.samples {
                    assert_eq!(s.labels.len(), 1, "{}: only the ring label", s.name);
                }
            }
        } else {
            assert_eq!(f.samples.len(), 1, "{}", f.name);
            assert!(f.samples[0].labels.is_empty(), "{}: no labels", f.name);
        }
    }
    let by_name: BTreeMap<String, Family> =
        families.into_iter().map(|f| (f.name.clone(), f)).collect();
    check_histogram(&by_name["aura_latency_seconds"], rings);
    by_name
}

fn check_histogram(f: &Family, rings: usize) {
    for ring in 0..rings {
        let ring = ring.to_string();
        let of_ring: Vec<&Sample> = f
            .samples
            .iter()
            .filter(|s| s.label("ring") == Some(ring.as_str()))
            .collect();
        let (buckets, rest): (Vec<&Sample>, Vec<&Sample>) = of_ring
            .iter()
            .partition(|s| s.name == "aura_latency_seconds_bucket");
        assert_eq!(rest.len(), 2, "ring {ring}: one _sum and one _count");
        let sum = rest
            .iter()
            .find(|s| s.name == "aura_latency_seconds_sum")
            .expect("_sum");
        let count = rest
            .iter()
            .find(|s| s.name == "aura_latency_seconds_count")
            .expect("_count");
        assert!(!buckets.is_empty());
        let mut prev_le = f64::NEG_INFINITY;
        let mut prev_count = 0.0;
        for b in &buckets {
            assert_eq!(b.labels.len(), 2, "{b:?}");
            assert_eq!(b.labels[0].0, "ring");
            assert_eq!(b.labels[1].0, "le");
            let le_text = b.label("le").expect("le");
            let le = parse_value(le_text, le_text);
            if le.is_finite() {
                // Six decimals, as documented.
                let decimals = le_text.split_once('.').map(|(_, d)| d.len());
                assert_eq!(decimals, Some(6), "le {le_text}");
            }
            assert!(le > prev_le, "ring {ring}: le {le} after {prev_le}");
            assert!(
                b.value >= prev_count,
                "ring {ring}: bucket le={le_text} {} < {prev_count}",
                b.value
            );
            prev_le = le;
            prev_count = b.value;
        }
        assert_eq!(
            buckets.last().and_then(|b| b.label("le")),
            Some("+Inf"),
            "ring {ring}: the last bucket is +Inf"
        );
        assert_eq!(
            count.value, prev_count,
            "ring {ring}: _count == +Inf bucket"
        );
        assert!(sum.value >= 0.0);
        // The first bucket shown is non-empty (empty leading buckets are skipped).
        if buckets.len() > 1 {
            assert!(buckets[0].value > 0.0, "ring {ring}: leading empty bucket");
        }
        if count.value > 0.0 {
            // Every sample is at least 0 and below the top of its bucket: the mean is too.
            assert!(sum.value > 0.0);
        }
    }
}

fn value(families: &BTreeMap<String, Family>, name: &str) -> f64 {
    let f = &families[name];
    assert_eq!(f.samples.len(), 1, "{name}");
    f.samples[0].value
}

fn per_ring(families: &BTreeMap<String, Family>, name: &str, ring: usize) -> f64 {
    let ring = ring.to_string();
    families[name]
        .samples
        .iter()
        .find(|s| s.label("ring") == Some(ring.as_str()))
        .unwrap_or_else(|| panic!("{name}{{ring={ring}}}"))
        .value
}

#[test]
fn render_is_well_formed_and_matches_the_engine() {
    let engine = busy_engine();
    let text = aura::prometheus::render(&engine);
    let families = check_structure(&text, 2);

    let stats = engine.stats();
    assert_eq!(value(&families, "aura_ring_count"), 2.0);
    assert_eq!(
        value(&families, "aura_ops_completed_total"),
        stats.ops_completed as f64
    );
    assert!(stats.ops_completed >= READS as u64);
    assert_eq!(
        value(&families, "aura_bytes_transferred_total"),
        (READS * CHUNK) as f64
    );
    assert_eq!(value(&families, "aura_in_flight"), 0.0);
    let mut ops = 0.0;
    let mut samples = 0.0;
    for ring in 0..2 {
        let r = engine.ring_stats(ring).expect("ring");
        let ring_ops = per_ring(&families, "aura_ring_ops_completed_total", ring);
        assert_eq!(ring_ops, r.ops_completed as f64);
        assert!(ring_ops > 0.0, "round robin: ring {ring} got reads");
        ops += ring_ops;
        assert_eq!(
            per_ring(&families, "aura_ring_bytes_transferred_total", ring),
            r.bytes_transferred as f64
        );
        assert_eq!(per_ring(&families, "aura_ring_queue_depth", ring), 64.0);
        assert_eq!(
            per_ring(&families, "aura_ring_in_flight_limit", ring),
            r.in_flight_limit as f64
        );
        let phase = per_ring(&families, "aura_ring_aimd_phase", ring);
        assert_eq!(phase, f64::from(aura::prometheus::phase_value(r.phase)));
        let p99 = per_ring(&families, "aura_ring_p99_latency_seconds", ring);
        match r.p99_latency_ms {
            None => assert_eq!(p99, -0.001),
            Some(ms) => assert!((p99 - ms / 1e3).abs() < 1e-12),
        }
        // The histogram holds what the ring measured: at this rate, every read.
        let h = engine.histogram(ring).expect("histogram");
        let count = families["aura_latency_seconds"]
            .samples
            .iter()
            .find(|s| {
                s.name == "aura_latency_seconds_count" && s.label("ring") == Some(&ring.to_string())
            })
            .expect("_count")
            .value;
        assert_eq!(count, h.count() as f64);
        assert!(
            count >= 1.0 && count <= ring_ops,
            "ring {ring}: {count} samples"
        );
        samples += count;
    }
    assert_eq!(ops, stats.ops_completed as f64);
    assert!(samples >= 1.0);
    assert!(engine.histogram(2).is_none());
    let pool = engine.buffer_stats();
    assert_eq!(
        value(&families, "aura_buffer_pool_shards"),
        pool.shard_count as f64
    );
    assert_eq!(
        value(&families, "aura_buffer_pool_buffers"),
        pool.total_buffers as f64
    );

    // render_into appends, and a quiescent engine renders the same text twice.
    let mut out = String::from("# prefix\n");
    aura::prometheus::render_into(&engine, &mut out);
    assert_eq!(out.strip_prefix("# prefix\n"), Some(text.as_str()));
}

#[test]
fn an_idle_engine_renders_too() {
    let engine = Engine::with_options(Options::new().ring_count(1).queue_depth(8)).expect("engine");
    let text = aura::prometheus::render(&engine);
    let families = check_structure(&text, 1);
    assert_eq!(value(&families, "aura_ops_completed_total"), 0.0);
    assert_eq!(
        per_ring(&families, "aura_ring_p99_latency_seconds", 0),
        -0.001
    );
    assert_eq!(
        per_ring(&families, "aura_ring_aimd_phase", 0),
        6.0,
        "PASSTHROUGH"
    );
    // No samples: only the +Inf bucket.
    assert!(text.contains(
        "aura_latency_seconds_bucket{ring=\"0\",le=\"+Inf\"} 0\n\
         aura_latency_seconds_sum{ring=\"0\"} 0\n\
         aura_latency_seconds_count{ring=\"0\"} 0\n"
    ));
}

/// What `promtool check metrics` said: exit code (None: killed), stdout and stderr together.
fn promtool(text: &str) -> Option<(Option<i32>, String)> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("writing to promtool");
    let out = child.wait_with_output().expect("promtool");
    let mut said = String::from_utf8_lossy(&out.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&out.stderr));
    Some((out.status.code(), said))
}

/// The one lint promtool reports on the schema: `aura_ring_count` is a gauge whose name ends in
/// `_count`, which promlint reserves for histograms and summaries. The name is part of the
/// documented v0 schema (kept from the original exporter), so it stays.
const KNOWN_LINT: &str =
    "aura_ring_count non-histogram and non-summary metrics should not have \"_count\" suffix";

#[test]
fn promtool_check_metrics_accepts_the_text() {
    let engine = busy_engine();
    let text = aura::prometheus::render(&engine);
    let Some((code, said)) = promtool(&text) else {
        skip(
            "promtool_check_metrics_accepts_the_text",
            "promtool not installed",
        );
        return;
    };
    // The whole text: it parses (exit 1 is a parse error), and the only lint is the known one
    // (exit 3 is "lint problems"; promtool prints one line per problem).
    let lints: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    let ok = code == Some(0) && lints.is_empty()
        || code == Some(3) && lints.iter().all(|l| l.trim() == KNOWN_LINT);
    assert!(
        ok,
        "promtool check metrics exited {code:?}:\n{said}\n--- input ---\n{text}"
    );
    // Everything but that family: promtool must be silent and exit 0.
    let start = text
        .find("# HELP aura_ring_count ")
        .expect("aura_ring_count");
    let end = start + text[start..].find("\n\n").expect("blank line") + 2;
    let without = format!("{}{}", &text[..start], &text[end..]);
    let (code, said) = promtool(&without).expect("promtool ran a moment ago");
    assert!(
        code == Some(0) && said.trim().is_empty(),
        "promtool check metrics exited {code:?}:\n{said}\n--- input ---\n{without}"
    );
    eprintln!("promtool check metrics: exit {code:?}, output {said:?} (aura_ring_count aside)");
}

#[test]
fn runtime_setters_validate_and_show_in_the_metrics() {
    let engine = busy_engine();
    let invalid = |r: aura::Result<()>| matches!(r, Err(Error::InvalidArgument(_)));
    // Max P99: finite and >= 0.
    for bad in [-1.0, -0.0001, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(invalid(engine.set_max_p99_latency_ms(bad)), "{bad}");
    }
    engine.set_max_p99_latency_ms(5.0).expect("5 ms");
    engine.set_max_p99_latency_ms(0.0).expect("auto");
    // Min in flight: 1..=queue depth (64).
    assert!(invalid(engine.set_min_in_flight(0)));
    assert!(invalid(engine.set_min_in_flight(65)));
    engine.set_min_in_flight(64).expect("qd");
    engine.set_min_in_flight(1).expect("1");
    // Batch threshold: -1, 0 or 1..=65536.
    assert!(invalid(engine.set_batch_threshold(-2)));
    assert!(invalid(engine.set_batch_threshold(i32::MIN)));
    assert!(invalid(engine.set_batch_threshold(65_537)));
    engine.set_batch_threshold(16).expect("16");
    let families = check_structure(&aura::prometheus::render(&engine), 2);
    for ring in 0..2 {
        assert_eq!(per_ring(&families, "aura_ring_batch_threshold", ring), 16.0);
    }
    assert_eq!(value(&families, "aura_optimal_batch_size"), 16.0);
    engine.set_batch_threshold(0).expect("never");
    assert_eq!(engine.ring_stats(1).expect("ring").batch_threshold, 0);
    engine.set_batch_threshold(-1).expect("auto");
    assert!(engine.ring_stats(0).expect("ring").batch_threshold >= 1);
    // The engine still works after all that.
    let data = pattern(3, CHUNK);
    let file = tempfile_with("prometheus-setters.dat", &data);
    let buf = engine.allocate_buffer(CHUNK).expect("buffer");
    engine
        .read_owned(file.file.as_raw_fd(), buf, 0, move |res, buf| {
            assert_eq!(res.expect("read"), CHUNK);
            assert!(buf[..] == data[..]);
        })
        .expect("submit");
    engine.drain(10_000).expect("drain");
    assert_eq!(
        engine.stats().ops_completed,
        READS as u64 + 1,
        "every read completed"
    );
}
