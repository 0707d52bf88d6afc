//! The HTML report of real runs (the committed `results/examples/demo-quick` and a fresh
//! `load --sandbox` run), opened in headless Chromium: it loads with no console output, every
//! chart's lines reach the seconds its data covers (the page's own check, `data-check`), and a
//! screenshot is saved under `target/test-artifacts/`.
//!
//! Chromium is Debian's `chromium` (or the path in `SHAKEDOWN_CHROMIUM`; `.ci/run` installs it and sets
//! `SHAKEDOWN_REQUIRE_CHROMIUM=1`); without it these tests say so and pass, unless
//! `SHAKEDOWN_REQUIRE_CHROMIUM` is set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a Chromium call may take before it is killed.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// Chromium: `SHAKEDOWN_CHROMIUM` (a path), else Debian's.
fn chromium() -> Option<PathBuf> {
    let found = match std::env::var_os("SHAKEDOWN_CHROMIUM") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.exists()),
        None => ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
    };
    if found.is_none() {
        assert!(
            std::env::var_os("SHAKEDOWN_REQUIRE_CHROMIUM").is_none(),
            "SHAKEDOWN_REQUIRE_CHROMIUM is set but chromium is not installed (apt-get install -y chromium)"
        );
        eprintln!("skipped: chromium not installed (apt-get install -y chromium to run this test)");
    }
    found
}

/// What Chromium made of a page.
struct Loaded {
    /// The DOM after the page's script ran.
    dom: String,
    /// Console lines (`CONSOLE` in Chromium's log): any is a failure.
    console: Vec<String>,
}

/// Runs Chromium headless on `page` with `extra` arguments, killed after
/// [`CHROMIUM_TIMEOUT`]; returns stdout and stderr.
fn run_chromium(chromium: &Path, page: &Path, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .expect("chromium starts");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if start.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium took more than {CHROMIUM_TIMEOUT:?} on {}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (
        std::fs::read_to_string(out.path()).unwrap(),
        std::fs::read_to_string(err.path()).unwrap(),
    )
}

fn load_page(chromium: &Path, page: &Path) -> Loaded {
    let (dom, log) = run_chromium(
        chromium,
        page,
        &["--enable-logging=stderr", "--v=0", "--dump-dom"],
    );
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    Loaded { dom, console }
}

/// The value of `attr` on the first `<body ...>` tag of the DOM.
fn body_attr(dom: &str, attr: &str) -> Option<String> {
    let start = dom.find("<body")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let key = format!("{attr}=\"");
    let at = tag.find(&key)? + key.len();
    Some(tag[at..at + tag[at..].find('"')?].to_string())
}

/// Every chart of a page and its `data-check` verdict.
fn chart_checks(dom: &str) -> Vec<(String, String)> {
    dom.split("<svg ")
        .skip(1)
        .filter(|s| s.starts_with("class=\"chart"))
        .map(|s| {
            let tag = &s[..s.find('>').unwrap()];
            let get = |k: &str| {
                let key = format!("{k}=\"");
                tag.find(&key).map_or(String::new(), |i| {
                    let v = &tag[i + key.len()..];
                    v[..v.find('"').unwrap()].to_string()
                })
            };
            (get("id"), get("data-check"))
        })
        .collect()
}

/// Checks a loaded report: no console output, no script error, at least `min_charts`
/// charts, each drawn over its data.
fn assert_clean(loaded: &Loaded, min_charts: usize) {
    assert!(
        loaded.console.is_empty(),
        "console output: {:#?}",
        loaded.console
    );
    assert_eq!(body_attr(&loaded.dom, "data-errors"), None);
    let checks = chart_checks(&loaded.dom);
    assert!(checks.len() >= min_charts, "charts: {checks:?}");
    for (id, check) in &checks {
        assert_eq!(check, "ok", "chart {id}");
    }
    assert_eq!(body_attr(&loaded.dom, "data-check").as_deref(), Some("ok"));
}

/// Where the screenshots go: `target/test-artifacts/`.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn screenshot(chromium: &Path, page: &Path, name: &str) -> PathBuf {
    let png = artifacts().join(name);
    let _ = std::fs::remove_file(&png);
    run_chromium(
        chromium,
        page,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,3000",
        ],
    );
    let size = std::fs::metadata(&png).expect("a screenshot").len();
    assert!(size > 10_000, "{} is only {size} bytes", png.display());
    println!("screenshot: {}", png.display());
    png
}

/// A copy of the committed demo run, without its report.
fn demo_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo-quick");
    std::fs::create_dir(&dir).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/examples/demo-quick");
    for entry in std::fs::read_dir(&example).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "report.html" {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    (tmp, dir)
}

#[test]
fn analyze_rewrites_the_report_with_the_new_verdicts() {
    let (_tmp, dir) = demo_copy();
    let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .arg("analyze")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let page = dir.join("report.html");
    assert!(
        stdout.contains(&format!("report: {}", page.display())),
        "{stdout}"
    );
    assert!(
        std::fs::read_to_string(page)
            .unwrap()
            .contains(r#"<span class="badge pass">pass</span>"#)
    );
}

/// A copy of the committed demo run with its report rendered by `shakedown report`.
fn demo_report() -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = demo_copy();
    let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .args(["report", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = dir.join("report.html");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("report: {}", page.display())));
    (tmp, page)
}

#[test]
fn demo_report_loads_cleanly_with_every_chart_spanning_its_data() {
    let (_tmp, page) = demo_report();
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch (run text such as queue URLs is only text).
    for fetch in [
        " src=",
        "<link",
        "url(",
        "@import",
        "href=\"http",
        "<iframe",
    ] {
        assert!(!html.contains(fetch), "{fetch} in the report");
    }
    // The charts span the run: the rate chart from second 0 to the timeline's end, the
    // queue and instance charts to the probes' end (44 s).
    assert!(html.contains(r#"id="chart-throughput" viewBox="0 0 1000 230" role="img" aria-label="Intended vs achieved rate" data-end="44""#));
    for id in ["throughput", "errors"] {
        assert!(
            chart_attrs(&html, id).contains(r#"data-first="0" data-last="42""#),
            "{id}"
        );
    }
    for id in ["queue", "instances"] {
        assert!(
            chart_attrs(&html, id).contains(r#"data-first="0" data-last="44""#),
            "{id}"
        );
    }
    // Every verdict links to its evidence box.
    for n in 1..=5 {
        assert!(
            html.contains(&format!(r##"href="#ev-{n}""##)),
            "verdict {n}"
        );
        assert!(html.contains(&format!(r#"id="ev-{n}""#)), "evidence {n}");
    }
    let Some(chromium) = chromium() else { return };
    let start = Instant::now();
    let loaded = load_page(&chromium, &page);
    println!("loaded in {:?}", start.elapsed());
    // rate, errors, latency x2, queue, instances, end-to-end, spectrum; cost is not priced.
    assert_clean(&loaded, 8);
    // Opened, laid out and checked (navigation start -> the script's end) within 2 s.
    let ready: f64 = body_attr(&loaded.dom, "data-ready-ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(ready < 2000.0, "ready after {ready} ms");
    screenshot(&chromium, &page, "report.png");
}

fn chart_attrs<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html.find(&format!("id=\"chart-{id}\"")).unwrap();
    &html[at..at + html[at..].find('>').unwrap()]
}

#[test]
fn the_check_catches_a_script_error_and_a_chart_short_of_its_data() {
    let Some(chromium) = chromium() else { return };
    let (tmp, page) = demo_report();
    let html = std::fs::read_to_string(&page).unwrap();
    // A script error: reported on the console.
    let broken = tmp.path().join("broken.html");
    std::fs::write(
        &broken,
        html.replace("</body>", "<script>notAFunction();</script></body>"),
    )
    .unwrap();
    let loaded = load_page(&chromium, &broken);
    assert!(
        loaded.console.iter().any(|l| l.contains("notAFunction")),
        "{:?}",
        loaded.console
    );
    // A chart whose data should reach further than its lines do.
    let short = tmp.path().join("short.html");
    let attrs = chart_attrs(&html, "queue");
    let to = attrs.split("data-expect-to=\"").nth(1).unwrap();
    let to = &to[..to.find('"').unwrap()];
    std::fs::write(
        &short,
        html.replace(
            attrs,
            &attrs.replace(
                &format!("data-expect-from=\"0\" data-expect-to=\"{to}\""),
                "data-expect-from=\"0\" data-expect-to=\"80\"",
            ),
        ),
    )
    .unwrap();
    let loaded = load_page(&chromium, &short);
    let checks = chart_checks(&loaded.dom);
    let queue = checks.iter().find(|(id, _)| id == "chart-queue").unwrap();
    assert!(queue.1.starts_with("drawn "), "{checks:?}");
    assert!(
        body_attr(&loaded.dom, "data-check")
            .unwrap()
            .starts_with("fail: chart-queue")
    );
}

#[test]
fn a_load_run_writes_its_report_with_rate_errors_and_latency() {
    let results = tempfile::tempdir().unwrap();
    let profile = results.path().join("p.toml");
    std::fs::write(
        &profile,
        r#"
name = "report-test"
seed = 7
[[stream]]
name = "uploads"
kind = "upload"
request = { method = "PUT", path = "/upload/{id}" }
size = { dist = "fixed", size = "2KiB" }
stages = [ { for = "4s", rate = "40/s" } ]
[[stream]]
name = "events"
kind = "event"
request = { method = "POST", path = "/events" }
body = { template = '{"id":"{id}"}' }
stages = [ { for = "4s", rate = "10/s" } ]
"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .args([
            "load",
            "--sandbox",
            "--quiet",
            "--run-id",
            "load",
            "--results",
        ])
        .arg(results.path())
        .arg(&profile)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the load run took more than 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = results.path().join("load");
    let page = dir.join("report.html");
    assert!(
        stdout.contains(&format!("report: {}", page.display())),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for id in [
        "throughput",
        "errors",
        "latency-uploads",
        "latency-events",
        "spectrum",
    ] {
        assert!(html.contains(&format!("id=\"chart-{id}\"")), "{id}");
    }
    assert!(html.contains("No verdicts"));
    let Some(chromium) = chromium() else { return };
    let loaded = load_page(&chromium, &page);
    assert_clean(&loaded, 5);
    screenshot(&chromium, &page, "report-load.png");
}
