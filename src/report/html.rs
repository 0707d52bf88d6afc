//! The page: one self-contained HTML document (inline CSS with light, dark and print
//! styles, inline SVG charts, a small inline script that only checks the charts). Pure:
//! a [`Report`] in, text out. Every text from the run goes through [`esc`].

use std::fmt::Write as _;

use super::model::{Report, status_class};
use super::svg::{format_time, render_chart, render_spectrum};
use crate::analyze::verdict::Status;

/// Escapes text for HTML element content and attribute values (`&`, `<`, `>`, `"`, `'`).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root{--bg:#fff;--fg:#1d2125;--muted:#5b6470;--grid:#e3e6ea;--panel:#f6f7f9;--border:#d5d9de;
--fault:#f0a020;--pass:#1a7f37;--fail:#c62828;--ne:#8a6d00;
--s0:#1f77b4;--s1:#2ca02c;--s2:#d62728;--s3:#9467bd;--s4:#8c564b;--s5:#e377c2;--s6:#bcbd22;--s7:#7f7f7f}
@media (prefers-color-scheme:dark){:root{--bg:#14171a;--fg:#e3e6ea;--muted:#9aa4af;--grid:#2a3036;
--panel:#1c2024;--border:#3a4148;--fault:#f0b040;--pass:#4ac26b;--fail:#ff6b6b;--ne:#e0c050;
--s0:#5aa9e6;--s1:#6cd36c;--s2:#ff6b6b;--s3:#b99cf0;--s4:#d0a080;--s5:#f39ad8;--s6:#dede50;--s7:#b0b0b0}}
@media print{:root{--bg:#fff;--fg:#000;--muted:#444;--grid:#ddd;--panel:#fff;--border:#999}
nav,.noprint{display:none}figure,table,pre{break-inside:avoid}body{max-width:none;margin:0}
a{color:inherit;text-decoration:none}}
*{box-sizing:border-box}
body{background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;margin:0 auto;padding:16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--border);padding-bottom:4px}
.sub{color:var(--muted);margin:0 0 12px}
nav{font-size:13px;margin:8px 0 16px}nav a{margin-right:12px}
a{color:var(--s0)}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid var(--border);padding:3px 7px;text-align:left;vertical-align:top}
th{background:var(--panel)}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-weight:600;font-size:12px;border:1px solid currentColor}
.pass{color:var(--pass)}.fail{color:var(--fail)}.not-evaluable{color:var(--ne)}
.figs{color:var(--muted);font-size:12px}
figure{margin:10px 0 18px;padding:8px;background:var(--panel);border:1px solid var(--border);border-radius:6px}
figcaption{font-weight:600;margin-bottom:4px}
figure .note{color:var(--muted);font-size:12px;margin:2px 0 0}
svg.chart{width:100%;height:auto;display:block;font-size:11px}
svg.chart text{fill:var(--muted)}
svg.chart .axis line{stroke:var(--muted);stroke-width:1}
svg.chart .axis line.grid{stroke:var(--grid)}
svg.chart .series{fill:none;stroke-width:1.6;stroke-linejoin:round}
svg.chart .dashed{stroke-dasharray:5 3;stroke-width:1.2}
.s0{stroke:var(--s0);color:var(--s0)}.s1{stroke:var(--s1);color:var(--s1)}.s2{stroke:var(--s2);color:var(--s2)}.s3{stroke:var(--s3);color:var(--s3)}
.s4{stroke:var(--s4);color:var(--s4)}.s5{stroke:var(--s5);color:var(--s5)}.s6{stroke:var(--s6);color:var(--s6)}.s7{stroke:var(--s7);color:var(--s7)}
svg.chart .fault rect{fill:var(--fault);fill-opacity:.16;stroke:var(--fault);stroke-opacity:.6}
svg.chart .fault.open rect{fill-opacity:.08;stroke-dasharray:4 3}
svg.chart .fault text{fill:var(--fault);font-weight:600}
svg.chart .ev rect{fill:none;stroke-width:1.5;stroke-dasharray:6 3}
svg.chart .ev.pass rect{stroke:var(--pass)}svg.chart .ev.fail rect{stroke:var(--fail)}svg.chart .ev.not-evaluable rect{stroke:var(--ne)}
svg.chart .ev text{text-anchor:end;font-weight:600}
svg.chart .ev.pass text{fill:var(--pass)}svg.chart .ev.fail text{fill:var(--fail)}svg.chart .ev.not-evaluable text{fill:var(--ne)}
svg.chart .ev:target rect,svg.chart .ev.hl rect{stroke-width:3;fill:currentColor;fill-opacity:.08}
svg.chart .marker line{stroke-width:1;stroke-opacity:.7}
svg.chart .marker.up line{stroke:var(--pass)}svg.chart .marker.down line{stroke:var(--fail)}
svg.chart .marker.launch line,svg.chart .marker.terminate line{stroke:var(--muted);stroke-dasharray:1 3}
svg.chart .marker text{font-size:10px}
ul.legend{list-style:none;margin:4px 0 0;padding:0;font-size:12px}ul.legend li{display:inline-block;margin-right:14px}
ul.legend i{display:inline-block;width:18px;border-top:3px solid currentColor;vertical-align:middle;margin-right:4px}
ul.legend i.dashed{border-top-style:dashed}
pre{background:var(--panel);border:1px solid var(--border);padding:8px;overflow:auto;font-size:12px;white-space:pre-wrap}
.check{color:var(--muted);font-size:12px}
"#;

/// The page's only script: records uncaught errors, and checks that every time chart's
/// lines reach the seconds its data should cover (`data-expect-from`/`-to`), writing the
/// result to `data-check` on each chart and on `<body>` (what the browser test reads).
const SCRIPT: &str = r##"
(function(){
var errors=[];
window.addEventListener('error',function(e){errors.push(String(e.message));document.body.setAttribute('data-errors',errors.join('; '));});
function check(){
var bad=[],n=0;
document.querySelectorAll('svg.chart').forEach(function(svg){
n++;
var paths=svg.querySelectorAll('path.series'),box=null;
paths.forEach(function(p){if(!p.getAttribute('d'))return;var b=p.getBBox();
if(!box){box={x0:b.x,x1:b.x+b.width}}else{box.x0=Math.min(box.x0,b.x);box.x1=Math.max(box.x1,b.x+b.width)}});
var r='ok';
if(!box){r='no data drawn'}
else if(svg.hasAttribute('data-expect-from')){
var end=+svg.getAttribute('data-end'),left=+svg.getAttribute('data-left'),w=+svg.getAttribute('data-width');
var px=function(t){return left+t/end*w};
var tol=Math.max(w/end,1.5)+0.5;
var from=+svg.getAttribute('data-expect-from'),to=+svg.getAttribute('data-expect-to');
if(box.x0>px(from)+tol||box.x1<px(to)-tol){r='drawn '+box.x0.toFixed(1)+'..'+box.x1.toFixed(1)+' px, expected '+px(from).toFixed(1)+'..'+px(to).toFixed(1)}}
svg.setAttribute('data-check',r);
if(r!=='ok')bad.push(svg.id+': '+r);});
document.body.setAttribute('data-charts',String(n));
document.body.setAttribute('data-check',bad.length?'fail: '+bad.join('; '):'ok');
var out=document.getElementById('check');
if(out)out.textContent=bad.length?'chart check: '+bad.join('; '):'chart check: all '+n+' charts drawn over their data';
document.body.setAttribute('data-ready-ms',String(Math.round(performance.now())));
}
document.querySelectorAll('a[href^="#ev-"]').forEach(function(a){a.addEventListener('click',function(){
document.querySelectorAll('.ev.hl').forEach(function(e){e.classList.remove('hl')});
var g=document.getElementById(a.getAttribute('href').slice(1));if(g)g.classList.add('hl');});});
check();
})();
"##;

fn status_badge(s: Status) -> String {
    let text = match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::NotEvaluable => "not evaluable",
    };
    format!(r#"<span class="badge {}">{text}</span>"#, status_class(s))
}

/// A figure: caption, the SVG, the legend, the note.
fn figure(
    out: &mut String,
    title: &str,
    svg: &str,
    legend: &[(String, usize, bool)],
    note: Option<&str>,
) {
    let _ = write!(
        out,
        "<figure><figcaption>{}</figcaption>{svg}<ul class=\"legend\">",
        esc(title)
    );
    for (name, colour, dashed) in legend {
        let _ = write!(
            out,
            r#"<li class="s{}"><i class="{}"></i>{}</li>"#,
            colour % 8,
            if *dashed { "dashed" } else { "" },
            esc(name)
        );
    }
    out.push_str("</ul>");
    if let Some(n) = note {
        let _ = write!(out, r#"<p class="note">{}</p>"#, esc(n));
    }
    out.push_str("</figure>\n");
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| {
        if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    })
}

/// Renders the whole page.
pub fn render(r: &Report) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let title = format!("shakedown report: {}", r.run_id);
    let _ = writeln!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"color-scheme\" content=\"light dark\"><title>{}</title><style>{STYLE}</style></head>\n<body>",
        esc(&title)
    );
    let _ = write!(o, "<h1>{}</h1>", esc(&title));
    let _ = write!(
        o,
        r#"<p class="sub">{}, {}{}</p>"#,
        if r.kind == "run" {
            "experiment run".to_string()
        } else {
            format!("{} run", esc(&r.kind))
        },
        format_time(r.end),
        r.status
            .as_ref()
            .map_or(String::new(), |s| format!(", {}", esc(s)))
    );
    o.push_str(r##"<nav><a href="#verdicts">verdicts</a><a href="#charts">charts</a><a href="#spectrum">latency spectrum</a><a href="#streams">streams</a><a href="#scaling">scaling</a><a href="#cost">cost</a><a href="#inputs">inputs</a></nav>"##);

    // Verdicts.
    o.push_str("<h2 id=\"verdicts\">Verdicts</h2>\n");
    match &r.verdicts {
        None => o.push_str(
            "<p>No verdicts: this run has no verdict.json (a <code>load</code> run, or one that ended before the analysis).</p>\n",
        ),
        Some((overall, rows)) => {
            let _ = write!(o, "<p>overall: {}</p>", status_badge(*overall));
            o.push_str("<table class=\"verdicts\"><tr><th>#</th><th>promise</th><th>status</th><th>summary</th><th>evidence window</th><th>figures</th></tr>\n");
            for v in rows {
                let window = match (v.window, &v.chart) {
                    (Some([a, b]), Some(_)) => format!(
                        r##"<a href="#ev-{}">{}–{}</a>"##,
                        v.n,
                        format_time(a),
                        format_time(b)
                    ),
                    (Some([a, b]), None) => format!("{}–{}", format_time(a), format_time(b)),
                    (None, _) => "-".into(),
                };
                let figs: Vec<String> = v
                    .figures
                    .iter()
                    .map(|(k, f)| format!("{}={}", esc(k), esc(f)))
                    .collect();
                let _ = writeln!(
                    o,
                    "<tr><td class=\"num\">{}</td><td>{} <span class=\"figs\">({})</span></td><td>{}</td><td>{}{}</td><td>{}</td><td class=\"figs\">{}</td></tr>",
                    v.n,
                    esc(&v.promise),
                    esc(&v.kind),
                    status_badge(v.status),
                    esc(&v.summary),
                    v.reason
                        .as_ref()
                        .filter(|r| **r != v.summary)
                        .map_or(String::new(), |r| format!("<br><span class=\"figs\">{}</span>", esc(r))),
                    window,
                    figs.join(", ")
                );
            }
            o.push_str("</table>\n");
        }
    }

    // Charts.
    o.push_str("<h2 id=\"charts\">Over time</h2>\n");
    if !r.shades.is_empty() {
        let faults: Vec<String> = r.shades.iter().map(|s| esc(&s.title)).collect();
        let _ = write!(
            o,
            "<p class=\"sub\">Shaded: the fault windows ({}).</p>",
            faults.join("; ")
        );
    }
    for c in &r.charts {
        let svg = render_chart(c, &r.shades, r.end);
        let legend: Vec<(String, usize, bool)> = c
            .series
            .iter()
            .map(|s| (s.name.clone(), s.colour, s.dashed))
            .collect();
        figure(&mut o, &c.title, &svg, &legend, c.note.as_deref());
    }
    for line in &r.omitted {
        let _ = write!(o, "<p class=\"sub\">Not charted: {}</p>", esc(line));
    }
    o.push_str("<p class=\"check\" id=\"check\"></p>\n");

    // Spectrum.
    o.push_str("<h2 id=\"spectrum\">Latency spectrum</h2>\n");
    if r.spectrum.is_empty() {
        o.push_str("<p>No latency histograms (latency.hlog) in this run.</p>\n");
    } else {
        let legend: Vec<(String, usize, bool)> = r
            .spectrum
            .iter()
            .map(|c| (c.name.clone(), c.colour, c.dashed))
            .collect();
        figure(
            &mut o,
            "Latency by percentile, whole run (merged HDR histograms)",
            &render_spectrum(&r.spectrum),
            &legend,
            Some(
                "solid: from the intended send time (corrected); dashed: from the actual send (uncorrected)",
            ),
        );
        o.push_str("<table><tr><th>stream</th><th>responses</th>");
        if let Some(first) = r.spectrum_rows.first() {
            for (l, ..) in &first.values {
                let _ = write!(o, "<th>{l} ms</th>");
            }
        }
        o.push_str("</tr>\n");
        for row in &r.spectrum_rows {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"num\">{}</td>",
                esc(&row.stream),
                row.count
            );
            for (_, c, u) in &row.values {
                let _ = write!(
                    o,
                    "<td class=\"num\">{} <span class=\"figs\">({})</span></td>",
                    ms(*c),
                    ms(*u)
                );
            }
            o.push_str("</tr>\n");
        }
        o.push_str("</table><p class=\"sub\">In brackets: uncorrected (service time).</p>\n");
    }

    // Streams.
    o.push_str("<h2 id=\"streams\">Streams</h2>\n<table><tr><th>stream</th><th>intended</th><th>sent</th><th>ok</th><th>failed</th><th>errors by class</th><th>late</th><th>dropped</th><th>error rate</th></tr>\n");
    for s in &r.streams {
        let ended = s.ok + s.failed;
        let rate = if ended == 0 {
            "-".into()
        } else {
            format!("{:.2}%", s.failed as f64 / ended as f64 * 100.0)
        };
        let errors: Vec<String> = s
            .errors
            .iter()
            .map(|(c, n)| format!("{} {n}", esc(c)))
            .collect();
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{rate}</td></tr>",
            esc(&s.stream),
            s.intended,
            s.sent,
            s.ok,
            s.failed,
            if errors.is_empty() {
                "-".into()
            } else {
                errors.join(", ")
            },
            s.late,
            s.dropped
        );
    }
    o.push_str("</table>\n");
    if let Some(l) = &r.ledger_line {
        let _ = writeln!(o, "<p>Message ledger: {}</p>", esc(l));
    }

    // Scaling.
    o.push_str("<h2 id=\"scaling\">Scaling</h2>\n");
    if r.legs.is_empty() && r.activities.is_empty() {
        o.push_str("<p>No scaling promise and no scaling activity recorded.</p>\n");
    }
    for (promise, legs) in &r.legs {
        let legs: Vec<String> = legs
            .iter()
            .map(|(k, v)| format!("{} {} s", esc(k.trim_end_matches("_s")), esc(v)))
            .collect();
        let _ = writeln!(
            o,
            "<p><b>{}</b>: {}</p>",
            esc(promise),
            if legs.is_empty() {
                "-".into()
            } else {
                legs.join(" · ")
            }
        );
    }
    if !r.activities.is_empty() {
        o.push_str("<table><tr><th>time</th><th>group</th><th>activity</th><th>cause</th></tr>\n");
        for (t, g, what, cause) in &r.activities {
            let _ = writeln!(
                o,
                "<tr><td class=\"num\">{:.1}s</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                t,
                esc(g),
                esc(what),
                esc(cause)
            );
        }
        o.push_str("</table>\n");
        if r.more_activities > 0 {
            let _ = write!(
                o,
                "<p class=\"sub\">and {} more (all in activities.jsonl).</p>",
                r.more_activities
            );
        }
    }

    // Cost.
    let _ = writeln!(o, "<h2 id=\"cost\">Cost</h2>\n<p>{}</p>", esc(&r.cost_line));

    // Inputs.
    o.push_str("<h2 id=\"inputs\">Inputs</h2>\n<table>");
    for (k, v) in &r.facts {
        let _ = write!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    o.push_str("</table>\n");
    if !r.stages.is_empty() {
        o.push_str("<table><tr><th>stream</th><th>stages</th></tr>");
        for (s, st) in &r.stages {
            let _ = write!(o, "<tr><td>{}</td><td>{}</td></tr>", esc(s), esc(st));
        }
        o.push_str("</table>\n");
    }
    if let Some(text) = &r.experiment_text {
        let _ = writeln!(o, "<h3>experiment.toml</h3><pre>{}</pre>", esc(text));
    }
    if let Some((path, text)) = &r.profile_text {
        let _ = writeln!(o, "<h3>profile {}</h3><pre>{}</pre>", esc(path), esc(text));
    }
    if !r.notes.is_empty() {
        o.push_str("<h3>Notes</h3><ul>");
        for n in &r.notes {
            let _ = write!(o, "<li>{}</li>", esc(n));
        }
        o.push_str("</ul>\n");
    }
    let _ = writeln!(
        o,
        "<p class=\"sub\">Rendered by shakedown {}; re-render with <code>shakedown report RUN_DIR</code>.</p>",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(o, "<script>{SCRIPT}</script>\n</body></html>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{Report, RunData};

    #[test]
    fn text_from_the_run_cannot_break_the_page() {
        let evil = "</script><b>x</b>\"' & <!--";
        assert_eq!(
            esc(evil),
            "&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;&quot;&#39; &amp; &lt;!--"
        );
        let mut data = RunData {
            run_id: "r</title><script>alert(1)</script>".into(),
            experiment_text: Some(format!("name = \"{evil}\"")),
            profile_text: Some((evil.into(), evil.into())),
            ..RunData::default()
        };
        data.notes.push(evil.into());
        let page = render(&Report::build(data));
        // The only script and the only bold are the page's own.
        assert_eq!(page.matches("<script>").count(), 1, "{page}");
        assert_eq!(page.matches("</script>").count(), 1);
        assert!(!page.contains("<b>x</b>"));
        assert!(!page.contains("<!--"));
        assert!(page.contains("&lt;/script&gt;&lt;b&gt;"));
    }

    #[test]
    fn an_hour_with_spikes_stays_under_5_mb() {
        use crate::analyze::view::{Activity, ActivityKind, Second};
        let mut data = RunData::default();
        for (k, stream) in ["uploads", "events", "clicks"].iter().enumerate() {
            data.view.streams.insert(
                stream.to_string(),
                (0..3600)
                    .map(|s| {
                        Second::simple(
                            50 + (s % 7) as u64,
                            (s % 13 == 0) as u64,
                            10.0 + ((s * 7919 + k) % 97) as f64,
                        )
                    })
                    .collect(),
            );
        }
        for probe in ["backlog", "in_flight", "workers", "web_instances", "dlq"] {
            data.view.probes.insert(
                probe.into(),
                (0..3600).map(|s| Some(((s * 31) % 1000) as f64)).collect(),
            );
        }
        data.view.activities = Some(
            (0..500)
                .map(|i| Activity {
                    t: i as f64 * 7.0,
                    group: "workers".into(),
                    kind: ActivityKind::Scaling,
                    from: Some(i % 5),
                    to: Some((i + 1) % 5),
                    instance: None,
                    cause: "backlog".into(),
                })
                .collect(),
        );
        data.e2e_ms = Some(
            (0..3600)
                .map(|s| (0..100).map(|i| (s + i * 17) as u32).collect())
                .collect(),
        );
        let page = render(&Report::build(data));
        assert!(page.len() < 5 * 1024 * 1024, "{} bytes", page.len());
        assert!(page.contains("chart-e2e") && page.contains("chart-instances"));
    }
}
