//! Time-series charts as plain SVG text (stacked panels sharing a time axis), no plotting
//! library.

use std::fmt::Write as _;

const W: f64 = 1000.0;
const PLOT_L: f64 = 80.0;
const PLOT_R: f64 = 720.0;
const LEGEND_X: f64 = 740.0;
const PANEL_H: f64 = 190.0;
const PANEL_GAP: f64 = 55.0;
const TOP: f64 = 80.0;

/// One line of a panel.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Stroke colour.
    pub colour: &'static str,
    /// Stroke width.
    pub width: f64,
    /// SVG dash pattern, if dashed.
    pub dash: Option<&'static str>,
    /// (seconds, value) points; a non-finite value breaks the line.
    pub points: Vec<(f64, f64)>,
}

/// A horizontal reference line.
#[derive(Clone, Debug)]
pub struct HLine {
    /// Its value.
    pub y: f64,
    /// Legend text.
    pub label: String,
    /// Stroke colour.
    pub colour: &'static str,
}

/// One panel: a y axis and its series.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Title above the panel.
    pub title: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic y axis.
    pub log: bool,
    /// Lines.
    pub series: Vec<Series>,
    /// Reference lines.
    pub hlines: Vec<HLine>,
}

/// A chart: panels stacked over a shared time axis, with vertical marks at events.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Title.
    pub title: String,
    /// Line under the title.
    pub subtitle: String,
    /// Time axis end, seconds.
    pub t_max: f64,
    /// Vertical marks: (seconds, label).
    pub marks: Vec<(f64, String)>,
    /// A shaded span (seconds from, to, label), e.g. the warm-up.
    pub shade: Option<(f64, f64, String)>,
    /// Panels, top to bottom.
    pub panels: Vec<Panel>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" step (1, 2 or 5 × 10ᵏ) giving about `n` ticks over `range`.
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

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        let s = format!("{v:.1}");
        s.strip_suffix(".0").map_or(s.clone(), str::to_string)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

impl Chart {
    fn x(&self, t: f64) -> f64 {
        PLOT_L + (PLOT_R - PLOT_L) * (t / self.t_max).clamp(0.0, 1.0)
    }

    /// The SVG text.
    pub fn render(&self) -> String {
        let h = TOP + self.panels.len() as f64 * (PANEL_H + PANEL_GAP) + 10.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"##
        );
        let _ = writeln!(s, r##"<rect width="{W}" height="{h}" fill="#fafafa"/>"##);
        let _ = writeln!(
            s,
            r##"<text x="{}" y="26" font-size="17" font-weight="bold" text-anchor="middle">{}</text>"##,
            W / 2.0,
            esc(&self.title)
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="46" font-size="11.5" text-anchor="middle" fill="#444">{}</text>"##,
            W / 2.0,
            esc(&self.subtitle)
        );
        for (k, p) in self.panels.iter().enumerate() {
            let top = TOP + k as f64 * (PANEL_H + PANEL_GAP);
            self.panel(&mut s, p, top, top + PANEL_H);
        }
        s.push_str("</svg>\n");
        s
    }

    fn panel(&self, s: &mut String, p: &Panel, top: f64, bottom: f64) {
        let values = || {
            p.series
                .iter()
                .flat_map(|se| se.points.iter().map(|pt| pt.1))
                .chain(p.hlines.iter().map(|l| l.y))
                .filter(|v| v.is_finite() && (!p.log || *v > 0.0))
        };
        let vmax = values().fold(0.0f64, f64::max);
        let vmin = values().fold(f64::INFINITY, f64::min);
        // y mapping.
        let (lo, hi) = if p.log {
            let lo = 10f64.powf(vmin.max(1e-9).log10().floor());
            let hi = 10f64.powf(vmax.max(lo * 10.0).log10().ceil());
            (lo, hi)
        } else {
            (0.0, if vmax > 0.0 { vmax * 1.08 } else { 1.0 })
        };
        let y = |v: f64| -> f64 {
            let f = if p.log {
                (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10())
            } else {
                v / hi
            };
            bottom - (bottom - top) * f.clamp(0.0, 1.0)
        };
        let _ = writeln!(
            s,
            r##"<rect x="{PLOT_L}" y="{top}" width="{}" height="{}" fill="#ffffff" stroke="#444"/>"##,
            PLOT_R - PLOT_L,
            bottom - top
        );
        let _ = writeln!(
            s,
            r##"<text x="{PLOT_L}" y="{}" font-size="13" font-weight="bold">{}</text>"##,
            top - 7.0,
            esc(&p.title)
        );
        // Shade and marks.
        if let Some((a, b, label)) = &self.shade {
            let (xa, xb) = (self.x(*a), self.x(*b));
            let _ = writeln!(
                s,
                r##"<rect x="{xa:.1}" y="{top}" width="{:.1}" height="{}" fill="#eeeeee"/>"##,
                (xb - xa).max(0.0),
                bottom - top
            );
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{}" font-size="10" fill="#777" text-anchor="middle">{}</text>"##,
                (xa + xb) / 2.0,
                bottom - 4.0,
                esc(label)
            );
        }
        for (t, label) in &self.marks {
            let xx = self.x(*t);
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{bottom}" stroke="#888" stroke-dasharray="4 3"/>"##
            );
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{}" font-size="10" fill="#555">{}</text>"##,
                xx + 3.0,
                top + 11.0,
                esc(label)
            );
        }
        // Y grid and ticks.
        let mut ticks = Vec::new();
        if p.log {
            let mut d = lo;
            while d <= hi * 1.0001 {
                for m in [1.0, 2.0, 5.0] {
                    if d * m <= hi * 1.0001 {
                        ticks.push(d * m);
                    }
                }
                d *= 10.0;
            }
        } else {
            let step = nice_step(hi, 5.0);
            let mut v = 0.0;
            while v <= hi * 1.0001 {
                ticks.push(v);
                v += step;
            }
        }
        for v in ticks {
            let yy = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{PLOT_L}" y1="{yy:.1}" x2="{PLOT_R}" y2="{yy:.1}" stroke="#e6e6e6"/>"##
            );
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{:.1}" font-size="10.5" text-anchor="end">{}</text>"##,
                PLOT_L - 6.0,
                yy + 4.0,
                fmt_num(v)
            );
        }
        let mid = (top + bottom) / 2.0;
        let _ = writeln!(
            s,
            r##"<text x="20" y="{mid:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 20 {mid:.1})">{}</text>"##,
            esc(&p.y_label)
        );
        // X ticks.
        let xstep = nice_step(self.t_max, 10.0);
        let mut t = 0.0;
        while t <= self.t_max * 1.0001 {
            let xx = self.x(t);
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.1}" y1="{bottom}" x2="{xx:.1}" y2="{}" stroke="#444"/>"##,
                bottom + 4.0
            );
            let _ = writeln!(
                s,
                r##"<text x="{xx:.1}" y="{}" font-size="10.5" text-anchor="middle">{}</text>"##,
                bottom + 16.0,
                fmt_num(t)
            );
            t += xstep;
        }
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" font-size="10.5" text-anchor="middle">seconds</text>"##,
            (PLOT_L + PLOT_R) / 2.0,
            bottom + 30.0
        );
        // Reference lines.
        for (j, l) in p.hlines.iter().enumerate() {
            let yy = y(l.y);
            let _ = writeln!(
                s,
                r##"<line x1="{PLOT_L}" y1="{yy:.1}" x2="{PLOT_R}" y2="{yy:.1}" stroke="{}" stroke-width="1.5" stroke-dasharray="8 4"/>"##,
                l.colour
            );
            let ly = top + 12.0 + 16.0 * (p.series.len() + j) as f64;
            let _ = writeln!(
                s,
                r##"<line x1="{LEGEND_X}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="1.5" stroke-dasharray="8 4"/>"##,
                LEGEND_X + 22.0,
                l.colour
            );
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" font-size="10.5">{}</text>"##,
                LEGEND_X + 28.0,
                ly + 4.0,
                esc(&l.label)
            );
        }
        // Series.
        for (i, se) in p.series.iter().enumerate() {
            let mut path = String::new();
            let mut pen = false;
            for &(t, v) in &se.points {
                if !v.is_finite() || (p.log && v <= 0.0) {
                    pen = false;
                    continue;
                }
                let (xx, yy) = (self.x(t), y(v));
                let _ = write!(path, "{}{xx:.1},{yy:.1}", if pen { "L" } else { "M" });
                pen = true;
            }
            let dash = se
                .dash
                .map_or(String::new(), |d| format!(r#" stroke-dasharray="{d}""#));
            let _ = writeln!(
                s,
                r##"<path d="{path}" fill="none" stroke="{}" stroke-width="{}"{dash} stroke-linejoin="round"/>"##,
                se.colour, se.width
            );
            let ly = top + 12.0 + 16.0 * i as f64;
            let _ = writeln!(
                s,
                r##"<line x1="{LEGEND_X}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="{}"{dash}/>"##,
                LEGEND_X + 22.0,
                se.colour,
                se.width.max(1.5)
            );
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" font-size="10.5">{}</text>"##,
                LEGEND_X + 28.0,
                ly + 4.0,
                esc(&se.label)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_well_formed_svg() {
        let c = Chart {
            title: "t <1>".into(),
            subtitle: "s".into(),
            t_max: 2.0,
            marks: vec![(1.0, "noise on".into())],
            shade: Some((0.0, 0.5, "warm-up".into())),
            panels: vec![Panel {
                title: "p".into(),
                y_label: "µs".into(),
                log: true,
                series: vec![Series {
                    label: "a".into(),
                    colour: "#000",
                    width: 1.0,
                    dash: None,
                    points: vec![(0.0, 10.0), (1.0, f64::NAN), (2.0, 1000.0)],
                }],
                hlines: vec![HLine {
                    y: 500.0,
                    label: "target".into(),
                    colour: "#f00",
                }],
            }],
        };
        let svg = c.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("t &lt;1&gt;"));
        assert_eq!(svg.matches("<path").count(), 1);
    }
}
