//! Runs the AIMD controller against aura-core's simulated devices ([`aura_core::sim::scenario`])
//! and writes what it did as a CSV and a hand-drawn SVG plot.
//!
//! ```text
//! aimd_sim [--profile nvme|sata|hdd|network|virtio] [--scenario converge|noisy|phase|target]
//!          [--depth N] [--target-p99-us N] [--seconds N] [--sample-every N] [--seed N]
//!          [--out DIR]
//! aimd_sim --table [--depth N] [--seconds N]
//! ```
//!
//! Scenarios (all closed loop at `--depth`, default 256, with the controller's maximum = depth):
//!
//! - `converge`: the device alone;
//! - `noisy`: a neighbour takes half the device during the middle third of the run;
//! - `phase`: the device's knee drops to a quarter during the middle third (NVMe: knee 64 → 16);
//! - `target`: `converge` with a max-P99 target (`--target-p99-us`, default 4 × the base latency).
//!
//! Writes `DIR/<profile>-<scenario>.csv` and `.svg` (DIR defaults to `docs/aimd`) and prints a
//! summary. `--table` prints a markdown convergence table for the five profiles instead.
//! `virtio` is the soft-knee model of this project's virtio disk (`sim::device::virtio`: no
//! sharp knee, throughput noise, stall storms); `--seed` replaces the device's seed.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use aura_core::aimd::{AimdOptions, Phase};
use aura_core::sim::device::{hdd, network, nvme, nvme_knee16, sata_ssd, virtio, Event, Profile};
use aura_core::sim::scenario::{run, settle_time_ns, summarize, Gate, Load, Scenario, TickRow};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

/// Command-line options.
struct Args {
    profile: String,
    scenario: String,
    depth: u32,
    target_p99_us: Option<u64>,
    seconds: Option<u64>,
    sample_every: u32,
    out: PathBuf,
    table: bool,
    seed: Option<u64>,
}

const USAGE: &str =
    "usage: aimd_sim [--profile nvme|sata|hdd|network|virtio] [--scenario converge|noisy|phase|target] \
[--depth N] [--target-p99-us N] [--seconds N] [--sample-every N] [--seed N] [--out DIR] [--table]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        profile: "nvme".into(),
        scenario: "converge".into(),
        depth: 256,
        target_p99_us: None,
        seconds: None,
        sample_every: 0,
        out: PathBuf::from("docs/aimd"),
        table: false,
        seed: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--profile" => a.profile = value()?,
            "--scenario" => a.scenario = value()?,
            "--depth" => a.depth = u32::try_from(num(value()?)?).map_err(|e| e.to_string())?,
            "--target-p99-us" => a.target_p99_us = Some(num(value()?)?),
            "--seconds" => a.seconds = Some(num(value()?)?),
            "--sample-every" => {
                a.sample_every = u32::try_from(num(value()?)?).map_err(|e| e.to_string())?
            }
            "--out" => a.out = PathBuf::from(value()?),
            "--table" => a.table = true,
            "--seed" => a.seed = Some(num(value()?)?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if a.depth == 0 {
        return Err("--depth must be at least 1".into());
    }
    Ok(a)
}

fn profile_named(name: &str) -> Option<Profile> {
    match name {
        "nvme" => Some(nvme()),
        "sata" => Some(sata_ssd()),
        "hdd" => Some(hdd()),
        "network" => Some(network()),
        "virtio" => Some(virtio()),
        _ => None,
    }
}

/// Default run length: long enough for a few re-probes after convergence (disks are slow).
fn default_seconds(p: &Profile) -> u64 {
    if p.base_ns >= MS {
        12
    } else {
        3
    }
}

/// The profile the `phase` scenario switches to: a quarter of the knee.
fn quarter_knee(p: &Profile) -> Profile {
    if *p == nvme() {
        nvme_knee16()
    } else {
        Profile {
            name: "quarter-knee",
            knee: (p.knee / 4).max(1),
            ..*p
        }
    }
}

struct Built {
    scenario: Scenario,
    /// Times of events, for markers and per-segment summaries.
    marks: Vec<u64>,
    target_ns: u64,
}

fn build(
    profile: Profile,
    scenario: &str,
    depth: u32,
    seconds: u64,
    target_us: Option<u64>,
    sample_every: u32,
) -> Result<Built, String> {
    let duration = seconds * SEC;
    let mut opts = AimdOptions::new(depth);
    let mut events = Vec::new();
    let (third, two_thirds) = (duration / 3, 2 * duration / 3);
    let mut marks = Vec::new();
    let mut target_ns = 0;
    match scenario {
        "converge" => {}
        "noisy" => {
            events.push(Event::NoisyNeighbour {
                start_ns: third,
                end_ns: two_thirds,
                steal_permille: 500,
            });
            marks = vec![third, two_thirds];
        }
        "phase" => {
            events.push(Event::PhaseChange {
                at_ns: third,
                profile: quarter_knee(&profile),
            });
            events.push(Event::PhaseChange {
                at_ns: two_thirds,
                profile,
            });
            marks = vec![third, two_thirds];
        }
        "target" => {
            target_ns = target_us.map_or(4 * profile.base_ns, |us| us * 1_000);
            opts.max_p99_ns = target_ns;
        }
        other => return Err(format!("unknown scenario {other}\n{USAGE}")),
    }
    let mut s = Scenario::new(
        profile,
        Load::ClosedLoop { depth },
        Gate::Aimd(opts),
        duration,
    );
    s.events = events;
    s.sample_every = sample_every;
    Ok(Built {
        scenario: s,
        marks,
        target_ns,
    })
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

fn csv(rows: &[TickRow]) -> String {
    let mut out = String::from(
        "t_ms,phase,limit,in_flight,pending,iops,throughput_mbps,p99_us,mean_us,knee,max_iops\n",
    );
    for r in rows {
        let mbps = r.bytes as f64 * (SEC as f64 / aura_core::aimd::TICK_NS as f64) / 1e6;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.1},{:.1},{:.1},{},{}",
            r.t_ns / MS,
            r.phase.name(),
            r.limit,
            r.in_flight,
            r.pending,
            r.iops,
            mbps,
            us(r.p99_ns),
            us(r.mean_ns),
            r.knee,
            r.max_iops
        );
    }
    out
}

/// What one run did, in numbers.
struct Report {
    settle_ns: Option<u64>,
    limit_median: u32,
    limit_min: u32,
    limit_max: u32,
    iops_pct: f64,
    p99_ns: u64,
    mean_ns: u64,
    knee: u32,
}

/// Settling within `(from, to]`: the settle time (relative to `from`) and the next second's stats
/// (or what is left of the window); the window's last second when the limit never settled.
fn report(rows: &[TickRow], from: u64, to: u64) -> Report {
    let settle = settle_time_ns(rows, from, to, 25);
    let start = settle.unwrap_or_else(|| to.saturating_sub(SEC)).max(from);
    // The device first drains what PASSTHROUGH admitted (an HDD takes ~0.4 s to finish 256):
    // measure from the first tick the device runs at the limit.
    let start = rows
        .iter()
        .find(|r| r.t_ns > start && r.in_flight <= r.limit)
        .map_or(start, |r| r.t_ns - 10 * MS);
    let end = (start + SEC).min(to);
    let sum = summarize(rows, start, end);
    let knee = rows.iter().find(|r| r.t_ns > start).map_or(0, |r| r.knee);
    Report {
        settle_ns: settle.map(|t| t - from),
        limit_median: sum.limit_median,
        limit_min: sum.limit_min,
        limit_max: sum.limit_max,
        iops_pct: if sum.max_iops == 0 {
            0.0
        } else {
            100.0 * sum.iops as f64 / sum.max_iops as f64
        },
        p99_ns: sum.p99_ns,
        mean_ns: sum.mean_ns,
        knee,
    }
}

fn fmt_settle(r: &Report) -> String {
    r.settle_ns.map_or_else(
        || "never (stats: last 1 s)".into(),
        |t| format!("{:.2} s", t as f64 / SEC as f64),
    )
}

fn fmt_lat(ns: u64) -> String {
    if ns >= 10 * MS {
        format!("{:.0} ms", ns as f64 / MS as f64)
    } else if ns >= MS {
        format!("{:.2} ms", ns as f64 / MS as f64)
    } else {
        format!("{:.0} µs", us(ns))
    }
}

fn table(depth: u32, seconds: Option<u64>, sample_every: u32) {
    println!(
        "Closed loop at depth {depth}, `AimdOptions::new({depth})`, latency sampling {}; settled = \
         the first tick after which the limit stays within ±25 % of the knee to the end of the run \
         (re-probes may step up to 3 past it); the next columns cover the second after the device \
         drained to that limit. For the soft-knee virtio model the knee is where its curve \
         flattens (128): the controller settles where more depth stops paying, anywhere from \
         ~96 (97 % of its best) up.\n",
        if sample_every == 0 {
            "as the controller asks (all under 50k IOPS, 1 in 8 above)".to_string()
        } else {
            format!("1 in {sample_every}")
        }
    );
    println!("| profile | knee | settled limit (median, min–max) | time to settle | IOPS next 1 s (% of max) | P99 next 1 s | mean next 1 s |");
    println!("|---|---|---|---|---|---|---|");
    for name in ["nvme", "sata", "hdd", "network", "virtio"] {
        let Some(p) = profile_named(name) else {
            continue;
        };
        let secs = seconds.unwrap_or_else(|| default_seconds(&p));
        let Ok(b) = build(p, "converge", depth, secs, None, sample_every) else {
            continue;
        };
        let rows = run(&b.scenario);
        let r = report(&rows, 0, secs * SEC);
        println!(
            "| {name} | {} | {} ({}–{}) | {} | {:.1} % | {} | {} |",
            p.knee,
            r.limit_median,
            r.limit_min,
            r.limit_max,
            fmt_settle(&r),
            r.iops_pct,
            fmt_lat(r.p99_ns),
            fmt_lat(r.mean_ns)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// SVG
// ---------------------------------------------------------------------------------------------

const W: f64 = 1000.0;
const H: f64 = 900.0;
const PLOT_L: f64 = 80.0;
const PLOT_R: f64 = 790.0;
const LEGEND_X: f64 = 805.0;

fn phase_colour(p: Phase) -> &'static str {
    match p {
        Phase::Passthrough => "#b8b8b8",
        Phase::Baseline => "#f2c14e",
        Phase::Probing => "#5fad56",
        Phase::Steady => "#4d9de0",
        Phase::Backoff => "#e15554",
        Phase::Settling => "#f78c38",
        Phase::Converged => "#7768ae",
    }
}

const PHASES: [Phase; 7] = [
    Phase::Passthrough,
    Phase::Baseline,
    Phase::Probing,
    Phase::Backoff,
    Phase::Settling,
    Phase::Steady,
    Phase::Converged,
];

/// A "nice" tick step (1, 2 or 5 × 10ᵏ) giving about `n` ticks over `range`.
fn nice_step(range: f64, n: f64) -> f64 {
    let raw = (range / n).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn fmt_tick(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else if step >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One series of a panel.
struct Series<'a> {
    label: &'a str,
    colour: &'a str,
    width: f64,
    dash: Option<&'a str>,
    /// Draw as a step function (value holds over each tick).
    step: bool,
    /// (time in s at the tick's start, value); `None` breaks the line.
    points: Vec<(f64, Option<f64>)>,
}

struct Panel<'a> {
    top: f64,
    bottom: f64,
    title: &'a str,
    y_label: &'a str,
    y_max: f64,
    series: Vec<Series<'a>>,
    /// Extra legend-only lines (e.g. "guard 1.9 ms: off scale").
    notes: Vec<String>,
}

struct Plot {
    svg: String,
    t_max: f64,
}

impl Plot {
    fn x(&self, t: f64) -> f64 {
        PLOT_L + (PLOT_R - PLOT_L) * t / self.t_max
    }

    fn panel(&mut self, p: &Panel<'_>) {
        let y = |v: f64| p.bottom - (p.bottom - p.top) * (v / p.y_max).clamp(0.0, 1.02);
        let s = &mut self.svg;
        let _ = writeln!(
            s,
            r##"<rect x="{PLOT_L}" y="{}" width="{}" height="{}" fill="#ffffff" stroke="#444" stroke-width="1"/>"##,
            p.top,
            PLOT_R - PLOT_L,
            p.bottom - p.top
        );
        let _ = writeln!(
            s,
            r##"<text x="{PLOT_L}" y="{}" font-size="13" font-weight="bold">{}</text>"##,
            p.top - 6.0,
            esc(p.title)
        );
        // Y ticks and grid.
        let ystep = nice_step(p.y_max, 5.0);
        let mut v = 0.0;
        while v <= p.y_max * 1.0001 {
            let yy = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{PLOT_L}" y1="{yy:.1}" x2="{PLOT_R}" y2="{yy:.1}" stroke="#e4e4e4" stroke-width="1"/>"##
            );
            let _ = writeln!(
                s,
                r##"<line x1="{}" y1="{yy:.1}" x2="{PLOT_L}" y2="{yy:.1}" stroke="#444"/>"##,
                PLOT_L - 5.0
            );
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                PLOT_L - 8.0,
                yy + 4.0,
                fmt_tick(v, ystep)
            );
            v += ystep;
        }
        let mid = (p.top + p.bottom) / 2.0;
        let _ = writeln!(
            s,
            r##"<text x="22" y="{mid:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 22 {mid:.1})">{}</text>"##,
            esc(p.y_label)
        );
        // X ticks.
        let xstep = nice_step(self.t_max, 10.0);
        let mut t = 0.0;
        while t <= self.t_max * 1.0001 {
            let xx = PLOT_L + (PLOT_R - PLOT_L) * t / self.t_max;
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.1}" y1="{}" x2="{xx:.1}" y2="{}" stroke="#444"/>"##,
                p.bottom,
                p.bottom + 5.0
            );
            let _ = writeln!(
                s,
                r##"<text x="{xx:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
                p.bottom + 17.0,
                fmt_tick(t, xstep)
            );
            t += xstep;
        }
        // Series, clipped to the plot area.
        let (x0, x1) = (PLOT_L, PLOT_R);
        let scale = (PLOT_R - PLOT_L) / self.t_max;
        for (i, se) in p.series.iter().enumerate() {
            let mut path = String::new();
            let mut pen_down = false;
            let mut last: Option<(f64, f64)> = None;
            for &(t, v) in &se.points {
                // Off-scale values break the line rather than run over the panel's edge.
                let Some(v) = v.filter(|v| *v <= p.y_max) else {
                    pen_down = false;
                    last = None;
                    continue;
                };
                let (xx, yy) = (x0 + t * scale, y(v));
                if !pen_down {
                    let _ = write!(path, "M{xx:.1},{yy:.1}");
                    pen_down = true;
                } else if se.step {
                    let _ = write!(path, "H{xx:.1}V{yy:.1}");
                } else {
                    let _ = write!(path, "L{xx:.1},{yy:.1}");
                }
                last = Some((xx, yy));
            }
            if se.step {
                if let Some((lx, _)) = last {
                    let tick_w = scale * aura_core::aimd::TICK_NS as f64 / SEC as f64;
                    let _ = write!(path, "H{:.1}", (lx + tick_w).min(x1));
                }
            }
            let dash = se
                .dash
                .map_or(String::new(), |d| format!(r#" stroke-dasharray="{d}""#));
            let _ = writeln!(
                s,
                r##"<path d="{path}" fill="none" stroke="{}" stroke-width="{}"{dash} stroke-linejoin="round"/>"##,
                se.colour, se.width
            );
            // Legend entry.
            let ly = p.top + 14.0 + 18.0 * i as f64;
            let _ = writeln!(
                s,
                r##"<line x1="{LEGEND_X}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="{}"{dash}/>"##,
                LEGEND_X + 24.0,
                se.colour,
                se.width.max(1.5)
            );
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" font-size="11">{}</text>"##,
                LEGEND_X + 30.0,
                ly + 4.0,
                esc(se.label)
            );
        }
        for (j, note) in p.notes.iter().enumerate() {
            let ly = p.top + 14.0 + 18.0 * (p.series.len() + j) as f64;
            let _ = writeln!(
                s,
                r##"<text x="{LEGEND_X}" y="{}" font-size="10" fill="#555">{}</text>"##,
                ly + 4.0,
                esc(note)
            );
        }
    }
}

fn svg(title: &str, subtitle: &str, rows: &[TickRow], marks: &[u64], target_ns: u64) -> String {
    let tick_s = aura_core::aimd::TICK_NS as f64 / SEC as f64;
    let t_max = rows.last().map_or(1.0, |r| r.t_ns as f64 / SEC as f64);
    let start = |r: &TickRow| r.t_ns as f64 / SEC as f64 - tick_s;
    let mut plot = Plot {
        svg: String::new(),
        t_max,
    };
    let _ = writeln!(
        plot.svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"##
    );
    let _ = writeln!(
        plot.svg,
        r##"<rect width="{W}" height="{H}" fill="#fafafa"/>"##
    );
    let _ = writeln!(
        plot.svg,
        r##"<text x="{}" y="26" font-size="18" font-weight="bold" text-anchor="middle">{}</text>"##,
        W / 2.0,
        esc(title)
    );
    let _ = writeln!(
        plot.svg,
        r##"<text x="{}" y="44" font-size="12" text-anchor="middle" fill="#444">{}</text>"##,
        W / 2.0,
        esc(subtitle)
    );

    // Phase band.
    let (band_top, band_h) = (62.0, 16.0);
    let _ = writeln!(
        plot.svg,
        r##"<text x="{}" y="{}" font-size="11" text-anchor="end">phase</text>"##,
        PLOT_L - 8.0,
        band_top + 12.0
    );
    let mut i = 0;
    while i < rows.len() {
        let mut j = i;
        while j + 1 < rows.len() && rows[j + 1].phase == rows[i].phase {
            j += 1;
        }
        let (xa, xb) = (
            plot.x(start(&rows[i])),
            plot.x(rows[j].t_ns as f64 / SEC as f64),
        );
        let _ = writeln!(
            plot.svg,
            r##"<rect x="{xa:.1}" y="{band_top}" width="{:.1}" height="{band_h}" fill="{}"/>"##,
            (xb - xa).max(0.5),
            phase_colour(rows[i].phase)
        );
        i = j + 1;
    }
    let _ = writeln!(
        plot.svg,
        r##"<rect x="{PLOT_L}" y="{band_top}" width="{}" height="{band_h}" fill="none" stroke="#444"/>"##,
        PLOT_R - PLOT_L
    );
    // Phase legend, in two columns to the right of the band.
    for (k, ph) in PHASES.iter().enumerate() {
        let (col, line) = (k % 2, k / 2);
        let lx = LEGEND_X + 95.0 * col as f64;
        let ly = 52.0 + 13.0 * line as f64;
        let _ = writeln!(
            plot.svg,
            r##"<rect x="{lx}" y="{ly}" width="10" height="10" fill="{}"/>"##,
            phase_colour(*ph)
        );
        let _ = writeln!(
            plot.svg,
            r##"<text x="{}" y="{}" font-size="10">{}</text>"##,
            lx + 14.0,
            ly + 9.0,
            ph.name()
        );
    }

    // Panel 1: limit and knee.
    let limit_max = rows
        .iter()
        .map(|r| r.limit.max(r.knee).max(r.in_flight))
        .max()
        .unwrap_or(1) as f64;
    let p1 = Panel {
        top: 125.0,
        bottom: 355.0,
        title: "In-flight limit vs the model's knee",
        y_label: "requests",
        y_max: limit_max * 1.08,
        series: vec![
            Series {
                label: "in flight (mean)",
                colour: "#9ecae1",
                width: 1.2,
                dash: None,
                step: true,
                points: rows
                    .iter()
                    .map(|r| (start(r), Some(f64::from(r.in_flight))))
                    .collect(),
            },
            Series {
                label: "knee (model)",
                colour: "#d62728",
                width: 2.0,
                dash: Some("7 4"),
                step: true,
                points: rows
                    .iter()
                    .map(|r| (start(r), Some(f64::from(r.knee))))
                    .collect(),
            },
            Series {
                label: "AIMD limit",
                colour: "#1f4e9c",
                width: 2.0,
                dash: None,
                step: true,
                points: rows
                    .iter()
                    .map(|r| (start(r), Some(f64::from(r.limit))))
                    .collect(),
            },
        ],
        notes: vec![],
    };
    // Panel 2: IOPS vs max.
    let iops_max = rows
        .iter()
        .map(|r| r.iops.max(r.max_iops))
        .max()
        .unwrap_or(1) as f64;
    let (div, unit) = if iops_max >= 10_000.0 {
        (1_000.0, "kIOPS")
    } else {
        (1.0, "IOPS")
    };
    let p2 = Panel {
        top: 400.0,
        bottom: 600.0,
        title: "Throughput vs the model's capacity",
        y_label: unit,
        y_max: iops_max * 1.08 / div,
        series: vec![
            Series {
                label: "max IOPS (model)",
                colour: "#d62728",
                width: 2.0,
                dash: Some("7 4"),
                step: true,
                points: rows
                    .iter()
                    .map(|r| (start(r), Some(r.max_iops as f64 / div)))
                    .collect(),
            },
            Series {
                label: "IOPS (per tick)",
                colour: "#2ca02c",
                width: 1.5,
                dash: None,
                step: false,
                points: rows
                    .iter()
                    .map(|r| (start(r) + tick_s / 2.0, Some(r.iops as f64 / div)))
                    .collect(),
            },
        ],
        notes: vec![],
    };
    // Panel 3: latency vs guard.
    let p99_max = rows
        .iter()
        .map(|r| r.p99_ns)
        .max()
        .unwrap_or(1)
        .max(target_ns) as f64
        / 1e3;
    let y3 = p99_max * 1.1;
    let (div3, unit3) = if y3 >= 10_000.0 {
        (1_000.0, "ms")
    } else {
        (1.0, "µs")
    };
    let y3 = y3 / div3;
    let to_y = |ns: u64| {
        if ns == 0 {
            None
        } else {
            Some(ns as f64 / 1e3 / div3)
        }
    };
    let guard_label = if target_ns > 0 {
        "max-P99 target (guard)"
    } else {
        "guard (10 × baseline P99)"
    };
    let mut notes = Vec::new();
    if let Some(g) = rows.iter().map(|r| r.guard_ns).filter(|&g| g > 0).max() {
        if g as f64 / 1e3 / div3 > y3 {
            notes.push(format!("guard up to {} (off scale)", fmt_lat(g)));
        }
    }
    let p3 = Panel {
        top: 645.0,
        bottom: 845.0,
        title: "Latency (harness-measured, every completion) vs the controller's thresholds",
        y_label: unit3,
        y_max: y3,
        series: vec![
            Series {
                label: "P99",
                colour: "#ff7f0e",
                width: 1.6,
                dash: None,
                step: false,
                points: rows
                    .iter()
                    .map(|r| (start(r) + tick_s / 2.0, to_y(r.p99_ns)))
                    .collect(),
            },
            Series {
                label: "mean",
                colour: "#8c564b",
                width: 1.2,
                dash: None,
                step: false,
                points: rows
                    .iter()
                    .map(|r| (start(r) + tick_s / 2.0, to_y(r.mean_ns)))
                    .collect(),
            },
            Series {
                label: guard_label,
                colour: "#d62728",
                width: 1.6,
                dash: Some("7 4"),
                step: true,
                points: rows.iter().map(|r| (start(r), to_y(r.guard_ns))).collect(),
            },
            Series {
                label: "1.25 × latency floor (mean)",
                colour: "#7f7f7f",
                width: 1.4,
                dash: Some("2 3"),
                step: true,
                points: rows
                    .iter()
                    .map(|r| (start(r), to_y(r.latency_floor_ns * 5 / 4)))
                    .collect(),
            },
        ],
        notes,
    };
    plot.panel(&p1);
    plot.panel(&p2);
    plot.panel(&p3);
    // Event markers across the panels.
    for &m in marks {
        let xx = plot.x(m as f64 / SEC as f64);
        for (top, bottom) in [
            (p1.top, p1.bottom),
            (p2.top, p2.bottom),
            (p3.top, p3.bottom),
        ] {
            let _ = writeln!(
                plot.svg,
                r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{bottom}" stroke="#000" stroke-width="1" stroke-dasharray="1 3"/>"##
            );
        }
    }
    let _ = writeln!(
        plot.svg,
        r##"<text x="{}" y="{}" font-size="12" text-anchor="middle">time (s)</text>"##,
        (PLOT_L + PLOT_R) / 2.0,
        H - 22.0
    );
    plot.svg.push_str("</svg>\n");
    plot.svg
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.table {
        table(args.depth, args.seconds, args.sample_every);
        return ExitCode::SUCCESS;
    }
    let Some(profile) = profile_named(&args.profile) else {
        eprintln!("unknown profile {}\n{USAGE}", args.profile);
        return ExitCode::from(2);
    };
    let seconds = args.seconds.unwrap_or_else(|| default_seconds(&profile));
    let b = match build(
        profile,
        &args.scenario,
        args.depth,
        seconds,
        args.target_p99_us,
        args.sample_every,
    ) {
        Ok(mut b) => {
            if let Some(seed) = args.seed {
                b.scenario.seed = seed;
            }
            b
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let rows = run(&b.scenario);
    let elapsed = started.elapsed();
    let total: u64 = rows.iter().map(|r| r.completions).sum();

    let name = format!("{}-{}", args.profile, args.scenario);
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("{}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    let title = format!(
        "AIMD on a simulated {} device: {} scenario",
        args.profile, args.scenario
    );
    let subtitle = format!(
        "knee {}, base {}, closed loop depth {}, latency sampling {}, seed {:#x}",
        profile.knee,
        fmt_lat(profile.base_ns),
        args.depth,
        match b.scenario.sample_every {
            0 => "as the controller asks".to_string(),
            n => format!("1 in {n}"),
        },
        b.scenario.seed
    );
    let subtitle = match args.scenario.as_str() {
        "noisy" => format!("{subtitle}; neighbour takes 50 % during the dotted interval"),
        "phase" => format!("{subtitle}; knee ÷ 4 during the dotted interval"),
        "target" => format!("{subtitle}; max-P99 target {}", fmt_lat(b.target_ns)),
        _ => subtitle,
    };
    for (ext, body) in [
        ("csv", csv(&rows)),
        ("svg", svg(&title, &subtitle, &rows, &b.marks, b.target_ns)),
    ] {
        let path = args.out.join(format!("{name}.{ext}"));
        if let Err(e) = std::fs::write(&path, body) {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    println!("{total} completions simulated in {elapsed:.2?}");

    let end = seconds * SEC;
    let mut bounds = vec![0];
    bounds.extend(&b.marks);
    bounds.push(end);
    for w in bounds.windows(2) {
        let r = report(&rows, w[0], w[1]);
        println!(
            "[{:.1} s, {:.1} s): knee {}, settled (±25 %) after {}, next 1 s: limit {} ({}–{}), IOPS {:.1} % of max, P99 {}, mean {}",
            w[0] as f64 / SEC as f64,
            w[1] as f64 / SEC as f64,
            r.knee,
            fmt_settle(&r),
            r.limit_median,
            r.limit_min,
            r.limit_max,
            r.iops_pct,
            fmt_lat(r.p99_ns),
            fmt_lat(r.mean_ns)
        );
    }
    ExitCode::SUCCESS
}
