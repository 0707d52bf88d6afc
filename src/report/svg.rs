//! Inline SVG charts on one shared time axis: scales and ticks, min/max downsampling, fault
//! shading with labels, scaling-activity markers, verdict evidence boxes; and the latency
//! spectrum (the HDR percentile view). Pure: a [`Chart`] in, SVG text out.
//!
//! Colours come from CSS classes (`s0`...`s7`, `fault`, `ev`...), so the page's light,
//! dark and print styles apply to the charts too.

use std::fmt::Write as _;

use super::html::esc;

/// The SVG's width in user units (the page scales it to the column's width).
pub const WIDTH: f64 = 1000.0;
/// Left margin: room for the y-axis labels.
pub const LEFT: f64 = 64.0;
/// Right margin.
pub const RIGHT: f64 = 16.0;
/// Height of a time chart, axes included.
pub const HEIGHT: f64 = 230.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 24.0;

/// The width of the plot area, in user units: one downsampling column per unit.
pub fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

/// One line of a chart: a value per second of the run (`None`: no data, a gap).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// Palette index (CSS class `s<n>`).
    pub colour: usize,
    pub dashed: bool,
    pub values: Vec<Option<f64>>,
}

/// A point in time marked on a chart (a scaling activity).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Seconds from the run's start.
    pub t: f64,
    /// A short label (`0→2`); empty for an unlabelled tick.
    pub label: String,
    /// Shown on hover.
    pub title: String,
    /// CSS class: `up`, `down`, `launch`, `terminate`.
    pub class: &'static str,
}

/// A shaded window of the run (a fault), labelled on every time chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Shade {
    pub label: String,
    pub start: f64,
    /// `None`: never undone, shaded to the end of the run.
    pub end: Option<f64>,
    pub title: String,
}

/// A verdict's evidence window, boxed on the chart its promise is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The verdict's number in the table (from 1): anchor `ev-<n>`.
    pub n: usize,
    pub from: f64,
    pub to: f64,
    /// `pass`, `fail`, `not-evaluable` (CSS class).
    pub status: &'static str,
}

/// A chart over the run's shared time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Element id, `chart-<id>`.
    pub id: String,
    pub title: String,
    /// The y-axis unit (`req/s`, `ms`...).
    pub unit: String,
    pub log_y: bool,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    pub evidence: Vec<Evidence>,
    /// The seconds `[from, to)` its data should cover (what the page's self-check and the
    /// browser test verify the drawn lines reach).
    pub expect: Option<(f64, f64)>,
    /// A line under the chart (what is missing, how the values were made).
    pub note: Option<String>,
}

impl Chart {
    /// The first and last second with a value in any series (`[first, last + 1)`).
    pub fn data_span(&self) -> Option<(f64, f64)> {
        let first = self
            .series
            .iter()
            .filter_map(|s| s.values.iter().position(Option::is_some))
            .min()?;
        let last = self
            .series
            .iter()
            .filter_map(|s| s.values.iter().rposition(Option::is_some))
            .max()?;
        Some((first as f64, last as f64 + 1.0))
    }
}

/// Maps a value range onto pixels (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub min: f64,
    pub max: f64,
    pub log: bool,
    /// Pixel of `min` and of `max`.
    pub from_px: f64,
    pub to_px: f64,
}

impl Scale {
    /// A scale over `[min, max]` drawn from `from_px` (for `min`) to `to_px` (for `max`);
    /// a log scale needs `min > 0`.
    pub fn new(min: f64, max: f64, log: bool, from_px: f64, to_px: f64) -> Scale {
        let (min, max) = if max > min {
            (min, max)
        } else {
            (min, min + 1.0)
        };
        Scale {
            min,
            max,
            log,
            from_px,
            to_px,
        }
    }

    fn t(&self, v: f64) -> f64 {
        if self.log { v.max(self.min).log10() } else { v }
    }

    /// The pixel of a value (clamped to the scale).
    pub fn px(&self, v: f64) -> f64 {
        let (a, b) = (self.t(self.min), self.t(self.max));
        let f = ((self.t(v) - a) / (b - a)).clamp(0.0, 1.0);
        self.from_px + f * (self.to_px - self.from_px)
    }
}

/// The time axis shared by every chart: seconds `[0, end]` across the plot area.
pub fn time_scale(end: f64) -> Scale {
    Scale::new(0.0, end.max(1.0), false, LEFT, WIDTH - RIGHT)
}

/// About `n` round tick values covering `[min, max]` (1, 2 or 5 times a power of ten).
pub fn nice_ticks(min: f64, max: f64, n: usize) -> Vec<f64> {
    if max <= min || !min.is_finite() || !max.is_finite() {
        return vec![min];
    }
    let raw = (max - min) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (min / step).ceil() * step;
    (0..=n * 3)
        .map(|i| start + i as f64 * step)
        .take_while(|v| *v <= max + step * 1e-9)
        .collect()
}

/// Ticks of the time axis: round numbers of seconds or minutes.
pub fn time_ticks(end: f64) -> Vec<f64> {
    const STEPS: [f64; 14] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    let step = STEPS
        .iter()
        .copied()
        .find(|s| end / s <= 10.0)
        .unwrap_or(end / 10.0);
    (0..)
        .map(|i| i as f64 * step)
        .take_while(|t| *t <= end + 1e-9)
        .take(64)
        .collect()
}

/// `90s` -> `1m30s`; whole seconds.
pub fn format_time(t: f64) -> String {
    let s = t.round() as i64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// A value for an axis label: `1.5k`, `250`, `0.25`.
pub fn format_value(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Downsamples a per-second series to at most `columns` columns, keeping every column's
/// smallest and largest value (in time order), so no spike is lost. Returns `(second,
/// value)` points at the middle of their second; `None` marks a gap (a column without any
/// value). A series that fits is returned as is.
pub fn downsample(values: &[Option<f64>], columns: usize) -> Vec<Option<(f64, f64)>> {
    let columns = columns.max(1);
    if values.len() <= columns {
        return values
            .iter()
            .enumerate()
            .map(|(s, v)| v.map(|v| (s as f64 + 0.5, v)))
            .collect();
    }
    let per = values.len() as f64 / columns as f64;
    let mut out = Vec::with_capacity(columns * 2);
    for c in 0..columns {
        let a = (c as f64 * per).floor() as usize;
        let b = (((c + 1) as f64 * per).floor() as usize).min(values.len());
        let mut lo: Option<(usize, f64)> = None;
        let mut hi: Option<(usize, f64)> = None;
        for (s, v) in values.iter().enumerate().take(b).skip(a) {
            if let Some(v) = *v {
                if lo.is_none_or(|(_, l)| v < l) {
                    lo = Some((s, v));
                }
                if hi.is_none_or(|(_, h)| v > h) {
                    hi = Some((s, v));
                }
            }
        }
        match (lo, hi) {
            (Some(l), Some(h)) if l.0 == h.0 => out.push(Some((l.0 as f64 + 0.5, l.1))),
            (Some(l), Some(h)) => {
                let (first, second) = if l.0 < h.0 { (l, h) } else { (h, l) };
                out.push(Some((first.0 as f64 + 0.5, first.1)));
                out.push(Some((second.0 as f64 + 0.5, second.1)));
            }
            _ => out.push(None),
        }
    }
    out
}

/// An SVG path (`M x y L x y ...`) through points; a `None` breaks the line.
fn path(points: &[Option<(f64, f64)>], x: &Scale, y: &Scale) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for p in points {
        match p {
            Some((t, v)) => {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1}",
                    if pen_down { "L" } else { "M" },
                    x.px(*t),
                    y.px(*v)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d
}

/// The y range of a chart: from 0 (or, on a log scale, the smallest positive value) to the
/// largest value.
fn y_range(series: &[Series], log: bool) -> (f64, f64) {
    let values = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied());
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !hi.is_finite() {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        let lo = 10f64.powf(lo.log10().floor());
        let hi = 10f64.powf(hi.log10().ceil());
        (lo, if hi > lo { hi } else { lo * 10.0 })
    } else {
        let lo = lo.min(0.0);
        let hi = if hi > lo { hi * 1.05 } else { lo + 1.0 };
        (lo, hi)
    }
}

/// Renders a time chart: the shared axis `[0, end]`, faults shaded and labelled, the
/// series, activity markers and evidence boxes. The `<svg>` carries `data-first`,
/// `data-last` (seconds with data), `data-end`, `data-expect-from`/`-to` and the plot
/// area's `data-left`/`data-width`, which the page's self-check reads.
pub fn render_chart(chart: &Chart, shades: &[Shade], end: f64) -> String {
    let x = time_scale(end);
    let (bottom, top) = (HEIGHT - BOTTOM, TOP);
    let (lo, hi) = y_range(&chart.series, chart.log_y);
    let y = Scale::new(lo, hi, chart.log_y, bottom, top);
    let columns = plot_width() as usize;
    let mut s = String::new();
    let span = chart.data_span();
    let _ = write!(
        s,
        r#"<svg class="chart" id="chart-{id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}" data-end="{end}" data-left="{LEFT}" data-width="{pw}""#,
        id = esc(&chart.id),
        title = esc(&chart.title),
        pw = plot_width(),
    );
    if let Some((a, b)) = span {
        let _ = write!(s, r#" data-first="{a}" data-last="{b}""#);
    }
    if let Some((a, b)) = chart.expect {
        let _ = write!(s, r#" data-expect-from="{a}" data-expect-to="{b}""#);
    }
    s.push('>');
    // Faults first, under everything.
    for (i, f) in shades.iter().enumerate() {
        let x0 = x.px(f.start);
        let x1 = x.px(f.end.unwrap_or(end)).max(x0 + 2.0);
        let open = if f.end.is_none() { " open" } else { "" };
        let _ = write!(
            s,
            r#"<g class="fault{open}"><title>{t}</title><rect x="{x0:.1}" y="{top}" width="{w:.1}" height="{h}"/><text x="{tx:.1}" y="{ty}">{l}</text></g>"#,
            t = esc(&f.title),
            w = x1 - x0,
            h = bottom - top,
            tx = x0 + 3.0,
            ty = top + 11.0 + 11.0 * (i % 3) as f64,
            l = esc(&f.label),
        );
    }
    // Axes and grid.
    s.push_str(r#"<g class="axis">"#);
    let yticks = if chart.log_y {
        let mut v = Vec::new();
        let mut p = lo;
        while p <= hi * 1.0001 && v.len() < 12 {
            v.push(p);
            p *= 10.0;
        }
        v
    } else {
        nice_ticks(lo, hi, 4)
    };
    for v in yticks {
        let py = y.px(v);
        y_gridline(&mut s, py, &format_value(v));
    }
    for t in time_ticks(end) {
        let px = x.px(t);
        let _ = write!(
            s,
            r#"<line x1="{px:.1}" x2="{px:.1}" y1="{bottom}" y2="{b2}"/><text x="{px:.1}" y="{ty}" text-anchor="middle">{l}</text>"#,
            b2 = bottom + 4.0,
            ty = bottom + 16.0,
            l = format_time(t),
        );
    }
    let _ = write!(
        s,
        r#"<line x1="{LEFT}" x2="{x2}" y1="{bottom}" y2="{bottom}"/><text class="unit" x="4" y="14">{u}</text></g>"#,
        x2 = WIDTH - RIGHT,
        u = esc(&chart.unit),
    );
    // Evidence windows of the verdicts about this chart.
    for e in &chart.evidence {
        let x0 = x.px(e.from);
        let x1 = x.px(e.to).max(x0 + 2.0);
        let _ = write!(
            s,
            r##"<g class="ev ev-{n} {st}" id="ev-{n}"><rect x="{x0:.1}" y="{top}" width="{w:.1}" height="{h}"/><text x="{tx:.1}" y="{ty}">#{n}</text></g>"##,
            n = e.n,
            st = e.status,
            w = x1 - x0,
            h = bottom - top,
            tx = x1 - 3.0,
            ty = bottom - 4.0,
        );
    }
    // The series.
    for ser in &chart.series {
        let points = downsample(&ser.values, columns);
        let dash = if ser.dashed { " dashed" } else { "" };
        let _ = write!(
            s,
            r#"<path class="series s{c}{dash}" d="{d}"><title>{n}</title></path>"#,
            c = ser.colour % 8,
            d = path(&points, &x, &y),
            n = esc(&ser.name),
        );
    }
    // Activity markers, on top; a label only where it does not run into the one before.
    let mut last_label = f64::NEG_INFINITY;
    for m in &chart.markers {
        let px = x.px(m.t);
        let _ = write!(
            s,
            r#"<g class="marker {c}"><title>{t}</title><line x1="{px:.1}" x2="{px:.1}" y1="{top}" y2="{bottom}"/>"#,
            c = m.class,
            t = esc(&m.title),
        );
        if !m.label.is_empty() && px - last_label >= 32.0 {
            last_label = px;
            let _ = write!(
                s,
                r#"<text x="{tx:.1}" y="{ty}">{l}</text>"#,
                tx = px + 2.0,
                ty = top - 4.0,
                l = esc(&m.label),
            );
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

/// One curve of the latency spectrum: `(quantile, ms)` points, lowest quantile first.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub name: String,
    pub colour: usize,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// The x position of a quantile on the spectrum's axis: `log10(1 / (1 - q))`, so 90%,
/// 99%, 99.9% are evenly spaced; `q = 1` (the max) is drawn at `cap`.
pub fn spectrum_x(q: f64, cap: f64) -> f64 {
    if q >= 1.0 {
        cap
    } else {
        (1.0 / (1.0 - q)).log10().min(cap)
    }
}

/// Renders the latency spectrum: latency (log scale) by percentile, as HdrHistogram's
/// percentile plots draw it.
pub fn render_spectrum(curves: &[Curve]) -> String {
    const CAP: f64 = 5.0; // 99.999%
    let h = HEIGHT + 40.0;
    let (bottom, top) = (h - BOTTOM, TOP);
    let x = Scale::new(0.0, CAP, false, LEFT, WIDTH - RIGHT);
    let as_series: Vec<Series> = curves
        .iter()
        .map(|c| Series {
            name: c.name.clone(),
            colour: c.colour,
            dashed: c.dashed,
            values: c.points.iter().map(|p| Some(p.1)).collect(),
        })
        .collect();
    let (lo, hi) = y_range(&as_series, true);
    let y = Scale::new(lo, hi, true, bottom, top);
    let mut s = String::new();
    let points: usize = curves.iter().map(|c| c.points.len()).sum();
    let _ = write!(
        s,
        r#"<svg class="chart spectrum" id="chart-spectrum" viewBox="0 0 {WIDTH} {h}" role="img" aria-label="latency by percentile" data-points="{points}"><g class="axis">"#
    );
    let mut p = lo;
    while p <= hi * 1.0001 {
        let py = y.px(p);
        y_gridline(&mut s, py, &format_value(p));
        p *= 10.0;
    }
    for (q, label) in [
        (0.0, "0%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
        (1.0, "max"),
    ] {
        let px = x.px(spectrum_x(q, CAP));
        let _ = write!(
            s,
            r#"<line class="grid" x1="{px:.1}" x2="{px:.1}" y1="{top}" y2="{bottom}"/><text x="{px:.1}" y="{ty}" text-anchor="middle">{label}</text>"#,
            ty = bottom + 16.0,
        );
    }
    let _ = write!(s, r#"<text class="unit" x="4" y="14">ms</text></g>"#);
    for c in curves {
        let pts: Vec<Option<(f64, f64)>> = c
            .points
            .iter()
            .map(|(q, v)| Some((spectrum_x(*q, CAP), *v)))
            .collect();
        let dash = if c.dashed { " dashed" } else { "" };
        let _ = write!(
            s,
            r#"<path class="series s{col}{dash}" d="{d}"><title>{n}</title></path>"#,
            col = c.colour % 8,
            d = path(&pts, &x, &y),
            n = esc(&c.name),
        );
    }
    s.push_str("</svg>");
    s
}

/// A horizontal grid line at `py` with its value's label on the left axis.
fn y_gridline(s: &mut String, py: f64, label: &str) {
    let _ = write!(
        s,
        r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{py:.1}" y2="{py:.1}"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
        x2 = WIDTH - RIGHT,
        tx = LEFT - 4.0,
        ty = py + 4.0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_axis_maps_the_run_onto_the_plot_area() {
        let x = time_scale(100.0);
        assert_eq!(x.px(0.0), LEFT);
        assert_eq!(x.px(100.0), WIDTH - RIGHT);
        assert_eq!(x.px(50.0), LEFT + plot_width() / 2.0);
        // Clamped: a fault past the end stays on the chart.
        assert_eq!(x.px(250.0), WIDTH - RIGHT);
        assert_eq!(
            time_ticks(100.0),
            (0..=10).map(|i| i as f64 * 10.0).collect::<Vec<_>>()
        );
        assert_eq!(
            time_ticks(44.0),
            vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0]
        );
        assert_eq!(time_ticks(3600.0).len(), 7);
        assert_eq!(format_time(90.0), "1m30s");
        assert_eq!(format_time(3600.0), "1h");
    }

    #[test]
    fn value_scales_and_ticks() {
        let y = Scale::new(0.0, 200.0, false, 200.0, 0.0);
        assert_eq!(y.px(0.0), 200.0);
        assert_eq!(y.px(100.0), 100.0);
        let log = Scale::new(1.0, 1000.0, true, 300.0, 0.0);
        assert!((log.px(10.0) - 200.0).abs() < 1e-9);
        assert!((log.px(100.0) - 100.0).abs() < 1e-9);
        assert_eq!(nice_ticks(0.0, 105.0, 4), vec![0.0, 50.0, 100.0]);
        assert_eq!(nice_ticks(0.0, 1.0, 4), vec![0.0, 0.5, 1.0]);
        assert_eq!(format_value(15000.0), "15k");
        assert_eq!(format_value(0.25), "0.25");
    }

    #[test]
    fn downsampling_keeps_every_spike_and_gap() {
        // An hour of 10 with one spike of 900 and one dip to 0, into 100 columns.
        let mut v: Vec<Option<f64>> = vec![Some(10.0); 3600];
        v[1234] = Some(900.0);
        v[2345] = Some(0.0);
        // A column-wide gap.
        for s in v.iter_mut().skip(3600 - 72).take(36) {
            *s = None;
        }
        let d = downsample(&v, 100);
        assert!(d.len() <= 200);
        let values: Vec<f64> = d.iter().flatten().map(|p| p.1).collect();
        assert!(values.contains(&900.0) && values.contains(&0.0));
        let spike = d.iter().flatten().find(|p| p.1 == 900.0).unwrap();
        assert_eq!(spike.0, 1234.5, "the spike stays at its second");
        assert!(d.iter().any(Option::is_none), "the gap stays a gap");
        // A short series is drawn as it is.
        assert_eq!(
            downsample(&[Some(1.0), None], 10),
            vec![Some((0.5, 1.0)), None]
        );
    }

    fn chart(values: Vec<Option<f64>>) -> Chart {
        Chart {
            id: "t".into(),
            title: "t".into(),
            unit: "req/s".into(),
            log_y: false,
            series: vec![Series {
                name: "a".into(),
                colour: 0,
                dashed: false,
                values,
            }],
            markers: vec![],
            evidence: vec![],
            expect: Some((0.0, 3.0)),
            note: None,
        }
    }

    #[test]
    fn faults_are_shaded_at_their_seconds_and_labelled() {
        let shades = [
            Shade {
                label: "kill-web".into(),
                start: 25.0,
                end: Some(50.0),
                title: "t".into(),
            },
            Shade {
                label: "stall".into(),
                start: 75.0,
                end: None,
                title: "t".into(),
            },
        ];
        let svg = render_chart(&chart(vec![Some(1.0); 100]), &shades, 100.0);
        let x25 = time_scale(100.0).px(25.0);
        let w = time_scale(100.0).px(50.0) - x25;
        assert!(
            svg.contains(&format!(r#"<rect x="{x25:.1}" y="{TOP}" width="{w:.1}""#)),
            "{svg}"
        );
        assert!(svg.contains(">kill-web</text>"));
        // Never undone: shaded to the end of the run.
        let x75 = time_scale(100.0).px(75.0);
        let rest = WIDTH - RIGHT - x75;
        assert!(svg.contains(&format!(
            r#"<rect x="{x75:.1}" y="{TOP}" width="{rest:.1}""#
        )));
        assert!(svg.contains(r#"class="fault open""#));
        assert!(svg.contains(r#"data-first="0" data-last="100""#));
    }

    #[test]
    fn spectrum_positions() {
        assert_eq!(spectrum_x(0.0, 5.0), 0.0);
        assert!((spectrum_x(0.99, 5.0) - 2.0).abs() < 1e-9);
        assert_eq!(spectrum_x(1.0, 5.0), 5.0);
    }
}
