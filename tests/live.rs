//! Live metrics (`--metrics-addr`) and the terminal (`--output json`, colour), from the
//! built binary: a real run scraped while it goes and parsed with a real exposition-format
//! parser (the `prometheus-parse` crate), the Grafana dashboard's queries checked against
//! the exported metrics, and the JSON document and colour rules of the output.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value};
use support::cli::{shakedown, text};
use support::wait::wait_exit;

/// A free loopback port: bound, read, released.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` over plain HTTP/1.0: the content type and the body, or `None` if nothing
/// answers (yet).
fn get_metrics(port: u16) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    Some((content_type, body.to_owned()))
}

fn parse(body: &str) -> Scrape {
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition text")
}

/// A sample's key: its name and sorted labels.
fn key(s: &prometheus_parse::Sample) -> String {
    let labels: BTreeMap<_, _> = s.labels.iter().collect();
    format!("{}{labels:?}", s.metric)
}

/// The value of a counter or gauge sample named `name` with the labels `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.samples.iter().find_map(|s| {
        let matches = s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
        match (&s.value, matches) {
            (Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v), true) => Some(*v),
            _ => None,
        }
    })
}

/// A sandbox experiment of about 8 s: two event streams, a probe of the web tier, and the
/// web tier stalled from 3 s for 3 s.
fn experiment(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("p.toml"),
        r#"name = "p"
seed = 1
timeout = "2s"
[[stream]]
name = "clicks"
kind = "event"
request = { method = "POST", path = "/events" }
body = { template = '{"type":"click","id":"{id}"}' }
arrival = "uniform"
stages = [ { for = "8s", rate = "20/s" } ]
[[stream]]
name = "views"
kind = "event"
request = { method = "POST", path = "/events" }
body = { template = '{"type":"view","id":"{id}"}' }
arrival = "uniform"
stages = [ { for = "8s", rate = "10/s" } ]
"#,
    )
    .unwrap();
    let exp = dir.join("exp.toml");
    std::fs::write(
        &exp,
        r#"name = "m"
seed = 1
profile = "p.toml"
[target.sandbox]
arch = "queued"
[[probe]]
name = "web"
kind = "ec2"
instances = { tags = { tier = "web" } }
[[fault]]
name = "stall-web"
type = "stall-consumers"
at = "3s"
duration = "3s"
instances = { tags = { tier = "web" } }
percent = 100
[guardrails]
require_tag = "chaos=allowed"
max_instances = 2
[[promise]]
name = "answers"
type = "threshold"
checks = ["p99 < 60s"]
[cooldown]
max = "1s"
"#,
    )
    .unwrap();
    exp
}

#[test]
fn live_metrics_are_scraped_during_a_run_and_parse_as_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let results = dir.path().join("results");
    let port = free_port();
    let mut child = shakedown()
        .args([
            "run",
            "-q",
            "--run-id",
            "r",
            "--output",
            "json",
            "--metrics-addr",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--results")
        .arg(&results)
        .arg(&exp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Scrape every 300 ms while the run goes (bounded: 90 s, 300 scrapes).
    let began = Instant::now();
    let mut scrapes: Vec<Scrape> = Vec::new();
    let mut content_types = BTreeSet::new();
    for _ in 0..300 {
        if began.elapsed() > Duration::from_secs(90) || child.try_wait().unwrap().is_some() {
            break;
        }
        if let Some((ct, body)) = get_metrics(port) {
            content_types.insert(ct);
            scrapes.push(parse(&body));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_exit(&mut child, Duration::from_secs(60));
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert!(out.status.code().is_some(), "{t}");
    assert_eq!(
        content_types,
        BTreeSet::from(["text/plain; version=0.0.4; charset=utf-8".to_string()])
    );
    let during: Vec<&Scrape> = scrapes
        .iter()
        .filter(|s| value(s, "shakedown_run_phase", &[("phase", "load")]) == Some(1.0))
        .collect();
    assert!(
        during.len() >= 2,
        "{} scrapes during the load: {t}",
        during.len()
    );

    // Stream labels: the profile's streams, on every per-stream metric.
    let last = *during.last().unwrap();
    let streams: BTreeSet<&str> = last
        .samples
        .iter()
        .filter(|s| s.metric == "shakedown_sent_total")
        .filter_map(|s| s.labels.get("stream"))
        .collect();
    assert_eq!(streams, BTreeSet::from(["clicks", "views"]));
    assert!(value(last, "shakedown_sent_total", &[("stream", "clicks")]).unwrap() > 0.0);
    assert_eq!(
        value(
            last,
            "shakedown_run_info",
            &[("kind", "run"), ("run_id", "r")]
        ),
        Some(1.0)
    );

    // Counters never go down from one scrape to the next.
    for pair in scrapes.windows(2) {
        let before: BTreeMap<String, f64> = pair[0]
            .samples
            .iter()
            .filter_map(|s| match s.value {
                Value::Counter(v) => Some((key(s), v)),
                _ => None,
            })
            .collect();
        for s in &pair[1].samples {
            if let (Value::Counter(v), Some(old)) = (&s.value, before.get(&key(s))) {
                assert!(v >= old, "{} went from {old} to {v}", key(s));
            }
        }
    }
    let first = during.first().unwrap();
    let sent = |s: &Scrape| value(s, "shakedown_sent_total", &[("stream", "clicks")]).unwrap();
    assert!(
        sent(last) > sent(first),
        "the counters moved during the load"
    );

    // Histograms: cumulative buckets, +Inf = _count, per stream.
    let mut histograms = 0;
    for s in &last.samples {
        let Value::Histogram(buckets) = &s.value else {
            continue;
        };
        histograms += 1;
        assert_eq!(s.metric, "shakedown_request_duration_seconds");
        let stream = s.labels.get("stream").expect("a stream label");
        let mut sorted = buckets.clone();
        sorted.sort_by(|a, b| a.less_than.total_cmp(&b.less_than));
        assert!(
            sorted.windows(2).all(|w| w[0].count <= w[1].count),
            "{sorted:?}"
        );
        let inf = sorted.last().unwrap();
        assert!(inf.less_than.is_infinite());
        let count = value(
            last,
            "shakedown_request_duration_seconds_count",
            &[("stream", stream)],
        );
        assert_eq!(Some(inf.count), count, "{stream}");
        assert!(inf.count > 0.0);
        assert!(
            value(
                last,
                "shakedown_request_duration_seconds_sum",
                &[("stream", stream)]
            )
            .unwrap()
                > 0.0
        );
    }
    assert_eq!(histograms, 2);

    // The probe and the fault, as the run had them.
    assert!(
        scrapes
            .iter()
            .any(|s| value(s, "shakedown_probe_value", &[("probe", "web")])
                .is_some_and(|v| v >= 1.0)),
        "no probe value: {t}"
    );
    let fault = [("fault", "stall-web"), ("type", "stall-consumers")];
    assert_eq!(
        value(first, "shakedown_fault_active", &fault),
        Some(0.0),
        "{t}"
    );
    assert!(
        scrapes
            .iter()
            .any(|s| value(s, "shakedown_fault_active", &fault) == Some(1.0)),
        "the fault never showed active: {t}"
    );
    let applied = scrapes
        .iter()
        .filter_map(|s| value(s, "shakedown_fault_applied_total", &fault))
        .fold(0.0, f64::max);
    assert_eq!(applied, 1.0);

    // --output json: stdout is one document whose verdicts are verdict.json's.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {t}"));
    let verdict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("r/verdict.json")).unwrap()).unwrap();
    assert_eq!(doc["verdict"], verdict);
    assert_eq!(doc["command"], "run");
    assert_eq!(doc["exit_code"], out.status.code().unwrap());
    assert_eq!(doc["run_dir"], results.join("r").to_str().unwrap());
    assert_eq!(doc["streams"].as_array().unwrap().len(), 2);
    // The lines for people went to stderr.
    assert!(String::from_utf8_lossy(&out.stderr).contains("live metrics: http://127.0.0.1:"));
}

#[test]
fn a_taken_metrics_address_is_an_error_naming_the_flag_before_the_run() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = shakedown()
        .args([
            "load",
            "-q",
            "--target",
            "http://127.0.0.1:9",
            "--rate",
            "5/s",
            "--duration",
            "1s",
        ])
        .args(["--metrics-addr", &addr, "--results"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("--metrics-addr {addr}: cannot listen")),
        "{err}"
    );
    // Nothing ran: no run directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// `load` of 1 s at a closed port (every request refused) into `results`, run id `l`.
fn quick_load(results: &Path, extra: &[&str]) -> Output {
    let closed = free_port();
    shakedown()
        .args([
            "load",
            "-q",
            "--run-id",
            "l",
            "--rate",
            "20/s",
            "--duration",
            "1s",
        ])
        .arg("--target")
        .arg(format!("http://127.0.0.1:{closed}"))
        .arg("--results")
        .arg(results)
        .args(extra)
        .output()
        .unwrap()
}

fn has_escape(o: &Output) -> bool {
    o.stdout.contains(&0x1b) || o.stderr.contains(&0x1b)
}

#[test]
fn output_json_is_one_document_and_colour_follows_no_color_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let load = quick_load(&results, &["--output", "json"]);
    let t = text(&load);
    assert_eq!(load.status.code(), Some(0), "{t}");
    let doc: serde_json::Value = serde_json::from_slice(&load.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {t}"));
    assert_eq!(doc["command"], "load");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["run_dir"], results.join("l").to_str().unwrap());
    assert_eq!(doc["streams"][0]["stream"], "get");
    assert!(
        doc["streams"][0]["errors"]["refused"].as_u64().unwrap() > 0,
        "{doc}"
    );
    assert!(doc.get("verdict").is_none());
    assert!(
        String::from_utf8_lossy(&load.stderr).contains("shakedown load:"),
        "{t}"
    );

    // analyze --output json: the verdicts as written to verdict.json.
    let promises = dir.path().join("promises.toml");
    std::fs::write(
        &promises,
        "[[promise]]\nname = \"answers\"\ntype = \"threshold\"\nchecks = [\"error_rate < 50%\"]\n",
    )
    .unwrap();
    let run = results.join("l");
    let analyze = |extra: &[&str], env: &[(&str, &str)]| {
        let mut c = shakedown();
        c.arg("analyze")
            .arg(&run)
            .arg("--experiment")
            .arg(&promises)
            .args(extra);
        c.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let json = analyze(&["--output", "json"], &[]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", text(&json)));
    let verdict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("verdict.json")).unwrap()).unwrap();
    assert_eq!(doc["verdict"], verdict);
    assert_eq!(doc["verdict"]["verdicts"][0]["status"], "fail", "{doc}");
    assert_eq!(doc["exit_code"], 1);
    assert_eq!(json.status.code(), Some(1));
    assert!(!has_escape(&json), "{}", text(&json));

    // Colour: never into a pipe by default or with NO_COLOR; forced by --color always or
    // CLICOLOR_FORCE (unless NO_COLOR).
    let plain = analyze(&[], &[]);
    assert!(text(&plain).contains("answers"), "{}", text(&plain));
    assert!(!has_escape(&plain));
    assert!(!has_escape(&analyze(&[], &[("NO_COLOR", "1")])));
    assert!(!has_escape(&analyze(
        &[],
        &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")]
    )));
    let forced = analyze(&["--color", "always"], &[("NO_COLOR", "1")]);
    assert!(
        String::from_utf8_lossy(&forced.stdout).contains("\x1b[1;31mFAIL"),
        "{}",
        text(&forced)
    );
    assert!(has_escape(&analyze(&[], &[("CLICOLOR_FORCE", "1")])));
    assert!(!has_escape(&analyze(
        &["--color", "never"],
        &[("CLICOLOR_FORCE", "1")]
    )));
}

/// Every `shakedown_*` name in `text`, with a histogram's `_bucket`/`_sum`/`_count` suffix
/// taken off.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("shakedown_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &text[start..end];
        i = end;
        if name.len() == "shakedown_".len() {
            continue;
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| b.ends_with("_seconds"))
            .unwrap_or(name);
        out.insert(base.to_owned());
    }
    out
}

#[test]
fn the_grafana_dashboard_queries_only_exported_metrics_and_every_metric_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exported: BTreeSet<String> = shakedown::exporter::text::METRICS
        .iter()
        .map(|m| m.name.to_owned())
        .collect();
    let docs = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
    for m in shakedown::exporter::text::METRICS {
        assert!(
            docs.contains(&format!("`{}`", m.name)),
            "docs/metrics.md does not document {}",
            m.name
        );
    }
    assert_eq!(
        metric_names(&docs),
        exported,
        "docs/metrics.md names a metric we do not export"
    );

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("docs/grafana/shakedown-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert!(dashboard["title"].is_string());
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 5);
    let mut exprs = Vec::new();
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if k == "expr" {
                        out.push(v.as_str().unwrap().to_owned());
                    } else {
                        collect(v, out);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&dashboard, &mut exprs);
    assert!(exprs.iter().any(|e| e.contains("histogram_quantile")));
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(!used.is_empty());
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics we do not export: {unknown:?}"
    );
}

#[test]
fn the_documented_json_example_is_an_output_document() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/output.md"))
            .unwrap();
    let example = docs
        .split("```json\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a json example in docs/output.md");
    let doc: shakedown::term::OutputDocument = serde_json::from_str(example).unwrap();
    assert_eq!(doc.command, "analyze");
    assert_eq!(doc.verdict.unwrap().verdicts.len(), 1);
}
