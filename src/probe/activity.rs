//! `[[target.activities]]`: a system's own record of its scaling decisions, read into
//! `activities.jsonl` the way the sandbox writes its own, so scale-out's desired-change leg
//! and scale-in's flapping leg work on any system whose autoscaler says what it did.
//!
//! A source is a JSON-lines file (read as it grows), a command or an HTTP URL (each answering
//! the whole log, or its recent tail, as JSON lines: lines already taken are recognised and
//! skipped), or an AWS Auto Scaling group (`asg = "workers"`: its DescribeScalingActivities,
//! turned into lines by [`asg_activity_lines`]). Each line is mapped to an activity by JSON
//! pointers:
//!
//! ```toml
//! [[target.activities]]
//! file = "/var/log/scaler.jsonl"   # or: command = "scaler-log --json", url = "http://..."
//! group = "workers"                # or group_pointer = "/asg"
//! time_pointer = "/ts"             # ms or s since the Unix epoch, or RFC 3339 text
//! from_pointer = "/old_desired"    # desired capacity before and after: a scaling activity
//! to_pointer = "/new_desired"
//! ```
//!
//! The mapping is pure ([`ActivitySourceSpec::map_line`]); [`run_sources`] polls once a second.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::results::jsonl::JsonLinesWriter;

/// Most bytes read from a command's or URL's answer.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// One `[[target.activities]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitySourceSpec {
    /// A JSON-lines file the autoscaler appends to.
    pub file: Option<PathBuf>,
    /// A command (run with `sh -c`) printing the log as JSON lines.
    pub command: Option<String>,
    /// A URL answering the log as JSON lines (`GET`).
    pub url: Option<String>,
    /// An AWS Auto Scaling group: its scaling activities (DescribeScalingActivities), each
    /// a launch or terminate, and the desired-capacity change its cause names. The group
    /// is also the activities' group unless `group` says otherwise.
    pub asg: Option<String>,
    /// The group every activity of this source belongs to (what `group` in a scale-out or
    /// scale-in promise names).
    pub group: Option<String>,
    /// JSON pointer to the group name in each line, instead of `group`.
    pub group_pointer: Option<String>,
    /// JSON pointer to the time: a number of ms (or, below 10^11, s) since the Unix epoch,
    /// or RFC 3339 text. Default `/time`.
    #[serde(default = "default_time")]
    pub time_pointer: String,
    /// JSON pointers to desired capacity before and after: a line with both is a scaling
    /// activity. Defaults `/from`, `/to`.
    #[serde(default = "default_from")]
    pub from_pointer: String,
    #[serde(default = "default_to")]
    pub to_pointer: String,
    /// JSON pointer to the activity kind (`scaling`, `launch`, `terminate`), for lines that
    /// are not desired-capacity changes. Default `/kind`.
    #[serde(default = "default_kind")]
    pub kind_pointer: String,
    /// JSON pointer to the instance launched or terminated. Default `/instance`.
    #[serde(default = "default_instance")]
    pub instance_pointer: String,
    /// JSON pointer to a reason, kept as the activity's cause. Default `/cause`.
    #[serde(default = "default_cause")]
    pub cause_pointer: String,
}

fn default_time() -> String {
    "/time".into()
}
fn default_from() -> String {
    "/from".into()
}
fn default_to() -> String {
    "/to".into()
}
fn default_kind() -> String {
    "/kind".into()
}
fn default_instance() -> String {
    "/instance".into()
}
fn default_cause() -> String {
    "/cause".into()
}

/// One line of `activities.jsonl` (the sandbox writes the same).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ActivityLine {
    /// Milliseconds from the run's start.
    pub t_ms: u64,
    pub group: String,
    /// `scaling`, `launch` or `terminate`.
    pub kind: &'static str,
    pub from: Option<u32>,
    pub to: Option<u32>,
    pub instance: Option<String>,
    pub cause: String,
}

impl ActivitySourceSpec {
    /// What is wrong with the table, if anything (exactly one of `file`, `command`, `url`, `asg`;
    /// pointers that start with `/` or are empty).
    pub fn check(&self) -> Result<(), String> {
        self.check_keys().map_err(|(_, e)| e)
    }

    /// [`ActivitySourceSpec::check`], with the key the problem is about (none: the table).
    pub fn check_keys(&self) -> Result<(), (Option<&'static str>, String)> {
        let set = [
            self.file.is_some(),
            self.command.is_some(),
            self.url.is_some(),
            self.asg.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set != 1 {
            return Err((
                None,
                format!(
                    "an activity source takes exactly one of `file`, `command`, `url` or `asg` ({set} given)"
                ),
            ));
        }
        if let Some(url) = &self.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err((
                Some("url"),
                format!("`url` must be an http:// or https:// URL, found `{url}`"),
            ));
        }
        for (key, p) in [
            ("time_pointer", Some(&self.time_pointer)),
            ("from_pointer", Some(&self.from_pointer)),
            ("to_pointer", Some(&self.to_pointer)),
            ("kind_pointer", Some(&self.kind_pointer)),
            ("instance_pointer", Some(&self.instance_pointer)),
            ("cause_pointer", Some(&self.cause_pointer)),
            ("group_pointer", self.group_pointer.as_ref()),
        ] {
            if let Some(p) = p
                && !p.is_empty()
                && !p.starts_with('/')
            {
                return Err((
                    Some(key),
                    format!("`{key}` is a JSON pointer and starts with `/`, found `{p}`"),
                ));
            }
        }
        Ok(())
    }

    /// What the source is, for messages.
    pub fn describe(&self) -> String {
        match (&self.file, &self.command, &self.url, &self.asg) {
            (Some(f), _, _, _) => format!("file {}", f.display()),
            (_, Some(c), _, _) => format!("command `{c}`"),
            (_, _, Some(u), _) => format!("url {u}"),
            (_, _, _, Some(g)) => format!("Auto Scaling group `{g}`"),
            _ => "activity source".into(),
        }
    }

    /// Maps one JSON line to an activity, times relative to `start_ms` (ms since the Unix
    /// epoch). `Ok(None)`: a line that is no activity (no capacity change and no known kind)
    /// or from before the run.
    pub fn map_line(&self, line: &str, start_ms: u64) -> Result<Option<ActivityLine>, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not a JSON line: {e}"))?;
        let at = |p: &str| v.pointer(p).filter(|x| !x.is_null());
        let time =
            at(&self.time_pointer).ok_or_else(|| format!("no time at `{}`", self.time_pointer))?;
        let epoch_ms = epoch_ms(time)?;
        let Some(t_ms) = epoch_ms.checked_sub(start_ms) else {
            return Ok(None);
        };
        let count = |p: &str| -> Result<Option<u32>, String> {
            match at(p) {
                None => Ok(None),
                Some(x) => x
                    .as_u64()
                    .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
                    .and_then(|n| u32::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| format!("`{p}` is not a capacity: {x}")),
            }
        };
        let (from, to) = (count(&self.from_pointer)?, count(&self.to_pointer)?);
        let text = |p: &str| {
            at(p).map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let kind = match (from, to, text(&self.kind_pointer).as_deref()) {
            (Some(_), Some(_), _) => "scaling",
            (_, _, Some("scaling")) => "scaling",
            (_, _, Some("launch")) => "launch",
            (_, _, Some("terminate")) => "terminate",
            _ => return Ok(None),
        };
        let group = match &self.group_pointer {
            Some(p) => text(p).ok_or_else(|| format!("no group at `{p}`"))?,
            None => self
                .group
                .clone()
                .or_else(|| self.asg.clone())
                .unwrap_or_default(),
        };
        Ok(Some(ActivityLine {
            t_ms,
            group,
            kind,
            from,
            to,
            instance: text(&self.instance_pointer),
            cause: text(&self.cause_pointer).unwrap_or_default(),
        }))
    }
}

/// The lines of one Auto Scaling activity, in the shape the default pointers read: the
/// desired-capacity change its cause names (`changing the desired capacity from 2 to 4`,
/// at the time the cause starts with; the same line for every activity of one decision, so
/// it is taken once), and the launch or termination itself (by its description).
pub fn asg_activity_lines(a: &aws_sdk_autoscaling::types::Activity) -> Vec<Value> {
    let start = a
        .start_time()
        .map(|t| t.to_millis().unwrap_or(0).max(0) as u64);
    let cause = a.cause().unwrap_or_default();
    let description = a.description().unwrap_or_default();
    let mut lines = Vec::new();
    if let Some((from, to)) = desired_change(cause) {
        let decided = cause
            .strip_prefix("At ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis().max(0) as u64)
            .or(start);
        if let Some(time) = decided {
            lines.push(serde_json::json!({
                "time": time, "from": from, "to": to,
                "cause": cause.split(". ").next().unwrap_or(cause),
            }));
        }
    }
    let kind = if description.starts_with("Launching") {
        Some("launch")
    } else if description.starts_with("Terminating") {
        Some("terminate")
    } else {
        None
    };
    if let (Some(kind), Some(time)) = (kind, start) {
        let instance = description
            .rsplit_once(": ")
            .map(|(_, id)| id.trim().to_owned());
        lines.push(serde_json::json!({
            "time": time, "kind": kind, "instance": instance,
            "cause": description, "activity": a.activity_id(),
        }));
    }
    lines
}

/// `from A to B` after "changing the desired capacity" in an activity's cause.
fn desired_change(cause: &str) -> Option<(u32, u32)> {
    let rest = cause.split("changing the desired capacity from ").nth(1)?;
    let mut words = rest.split_whitespace();
    let from = words.next()?.parse().ok()?;
    (words.next()? == "to").then_some(())?;
    let to = words
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((from, to))
}

/// A JSON time as ms since the Unix epoch: a number of ms (values below 10^11 are seconds),
/// or RFC 3339 text.
fn epoch_ms(v: &Value) -> Result<u64, String> {
    if let Some(n) = v.as_f64() {
        if n < 0.0 {
            return Err(format!("negative time {n}"));
        }
        return Ok(if n < 1e11 { n * 1000.0 } else { n }.round() as u64);
    }
    let text = v.as_str().ok_or_else(|| format!("not a time: {v}"))?;
    if let Ok(n) = text.trim().parse::<f64>() {
        return epoch_ms(&Value::from(n));
    }
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis().max(0) as u64)
        .map_err(|e| format!("`{text}` is not RFC 3339 or epoch time: {e}"))
}

/// What a source has taken so far.
#[derive(Debug, Default)]
struct Cursor {
    /// File: bytes consumed (whole lines only).
    offset: u64,
    /// Command / URL: lines already taken (an answer repeats the log it answered before).
    seen: HashSet<String>,
}

/// What the sources did, for the run's summary.
#[derive(Debug, Default, Clone)]
pub struct ActivityStats {
    pub activities: u64,
    pub skipped_lines: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

/// Polls every source once a second until `cancel` (then once more), appending activities
/// to `path`.
pub async fn run_sources(
    specs: Vec<ActivitySourceSpec>,
    path: PathBuf,
    start_ms: u64,
    http: reqwest::Client,
    autoscaling: Option<aws_sdk_autoscaling::Client>,
    cancel: CancellationToken,
) -> std::io::Result<ActivityStats> {
    let mut out = JsonLinesWriter::append(&path).map_err(std::io::Error::other)?;
    let mut cursors: Vec<Cursor> = specs.iter().map(|_| Cursor::default()).collect();
    let mut stats = ActivityStats::default();
    loop {
        let stopping = cancel.is_cancelled();
        for (spec, cursor) in specs.iter().zip(&mut cursors) {
            match poll(spec, cursor, &http, autoscaling.as_ref()).await {
                Ok(lines) => {
                    let mut batch = Vec::new();
                    for line in lines {
                        match spec.map_line(&line, start_ms) {
                            Ok(Some(a)) => batch.push(a),
                            Ok(None) => stats.skipped_lines += 1,
                            Err(e) => {
                                stats.skipped_lines += 1;
                                stats.last_error = Some(format!("{}: {e}", spec.describe()));
                            }
                        }
                    }
                    stats.activities += batch.len() as u64;
                    out.write_all(&batch).map_err(std::io::Error::other)?;
                }
                Err(e) => {
                    stats.errors += 1;
                    stats.last_error = Some(format!("{}: {e}", spec.describe()));
                }
            }
        }
        if stopping {
            return Ok(stats);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = cancel.cancelled() => {}
        }
    }
}

/// New lines of one source.
async fn poll(
    spec: &ActivitySourceSpec,
    cursor: &mut Cursor,
    http: &reqwest::Client,
    autoscaling: Option<&aws_sdk_autoscaling::Client>,
) -> Result<Vec<String>, String> {
    let answer = if let Some(file) = &spec.file {
        let file = file.clone();
        let offset = cursor.offset;
        let (text, consumed) = tokio::task::spawn_blocking(move || read_from(&file, offset))
            .await
            .map_err(|e| e.to_string())??;
        cursor.offset += consumed;
        return Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect());
    } else if let Some(command) = &spec.command {
        let out = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| "timed out after 10s".to_string())?
        .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("{}: {}", out.status, err.trim()));
        }
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(MAX_ANSWER)]).into_owned()
    } else if let Some(url) = &spec.url {
        let resp = http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| crate::errors::error_chain(&e))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        String::from_utf8_lossy(&body[..body.len().min(MAX_ANSWER)]).into_owned()
    } else if let Some(group) = &spec.asg {
        let client = autoscaling.ok_or_else(|| crate::aws::unserved("Auto Scaling"))?;
        // Newest first; a page covers far more than a second of activities.
        let out = client
            .describe_scaling_activities()
            .auto_scaling_group_name(group)
            .max_records(100)
            .send()
            .await
            .map_err(|e| {
                crate::aws::AwsError::call("autoscaling:DescribeScalingActivities", e)
                    .on(format!("group `{group}`"))
                    .to_string()
            })?;
        let mut lines: Vec<String> = out
            .activities()
            .iter()
            .rev()
            .flat_map(asg_activity_lines)
            .map(|v| v.to_string())
            .collect();
        lines.retain(|l| cursor.seen.insert(l.clone()));
        return Ok(lines);
    } else {
        return Ok(Vec::new());
    };
    Ok(answer
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| cursor.seen.insert((*l).to_owned()))
        .map(str::to_owned)
        .collect())
}

/// The whole lines of `path` after byte `offset`, and the bytes they take. A file shorter
/// than `offset` was truncated or replaced: it is read again from the start.
fn read_from(path: &std::path::Path, offset: u64) -> Result<(String, u64), String> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((String::new(), 0)),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let offset = if len < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    f.take(MAX_ANSWER as u64)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    let whole = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    buf.truncate(whole);
    Ok((String::from_utf8_lossy(&buf).into_owned(), whole as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ActivitySourceSpec {
        toml::from_str(
            r#"
            file = "/tmp/x.jsonl"
            group = "workers"
            time_pointer = "/ts"
            from_pointer = "/old"
            to_pointer = "/new"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn lines_map_to_activities_by_pointer() {
        let s = spec();
        s.check().unwrap();
        let start = 1_700_000_000_000;
        let a = s
            .map_line(
                r#"{"ts": 1700000004.5, "old": 1, "new": 3, "why": "x"}"#,
                start,
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.t_ms, a.kind, a.from, a.to),
            (4500, "scaling", Some(1), Some(3))
        );
        assert_eq!(a.group, "workers");
        let b = s
            .map_line(
                r#"{"ts": "2023-11-14T22:13:25Z", "kind": "launch", "instance": "w-7"}"#,
                start,
            )
            .unwrap()
            .unwrap();
        assert_eq!((b.t_ms, b.kind), (5000, "launch"));
        assert_eq!(b.instance.as_deref(), Some("w-7"));
        // Not an activity, before the run, or malformed.
        assert_eq!(
            s.map_line(r#"{"ts": 1700000009000, "msg": "tick"}"#, start),
            Ok(None)
        );
        assert_eq!(
            s.map_line(r#"{"ts": 1600000000, "old": 1, "new": 2}"#, start),
            Ok(None)
        );
        assert!(s.map_line("not json", start).is_err());
        assert!(
            s.map_line(r#"{"old": 1, "new": 2}"#, start)
                .unwrap_err()
                .contains("no time")
        );
    }

    #[test]
    fn a_source_needs_exactly_one_origin() {
        let mut s = spec();
        s.url = Some("http://127.0.0.1:1/log".into());
        assert!(s.check().unwrap_err().contains("exactly one"));
        s.file = None;
        s.check().unwrap();
        s.url = Some("ftp://x".into());
        assert!(s.check().is_err());
        s.url = Some("http://x".into());
        s.time_pointer = "ts".into();
        assert!(s.check().unwrap_err().contains("starts with `/`"));
    }

    #[tokio::test]
    async fn a_growing_file_and_a_repeating_command_are_each_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("scaler.jsonl");
        std::fs::write(
            &log,
            "{\"time\": 1000, \"from\": 0, \"to\": 2}\n{\"time\": 2000, \"fr",
        )
        .unwrap();
        let file = ActivitySourceSpec {
            file: Some(log.clone()),
            ..spec_with_defaults()
        };
        let command = ActivitySourceSpec {
            command: Some(format!("cat {}", log.display())),
            ..spec_with_defaults()
        };
        let out = dir.path().join("activities.jsonl");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_sources(
            vec![file, command],
            out.clone(),
            0,
            crate::tls::client_builder().build().unwrap(),
            None,
            cancel.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The torn line is completed, and one more appended.
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(
            &mut f,
            b"om\": 2, \"to\": 1}\n{\"time\": 3000, \"from\": 1, \"to\": 0}\n",
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1300)).await;
        cancel.cancel();
        let stats = task.await.unwrap().unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // 3 activities from each source, none twice.
        assert_eq!(stats.activities, 6, "{text}");
        assert_eq!(lines.len(), 6, "{text}");
        assert_eq!(
            lines.iter().filter(|l| l.contains("\"t_ms\":3000")).count(),
            2,
            "{text}"
        );
    }

    fn aws_activity(
        description: &str,
        cause: &str,
        start: &str,
    ) -> aws_sdk_autoscaling::types::Activity {
        let t = chrono::DateTime::parse_from_rfc3339(start).unwrap();
        aws_sdk_autoscaling::types::Activity::builder()
            .activity_id(format!("a-{description}"))
            .auto_scaling_group_name("workers")
            .description(description)
            .cause(cause)
            .start_time(aws_sdk_autoscaling::primitives::DateTime::from_millis(
                t.timestamp_millis(),
            ))
            .status_code(aws_sdk_autoscaling::types::ScalingActivityStatusCode::Successful)
            .build()
    }

    /// Two launches of one decision (as AWS reports a scale-out from 2 to 4): one scaling
    /// line at the decision's time, and a launch per instance, all in the run's clock.
    #[test]
    fn auto_scaling_activities_become_a_scaling_line_and_a_launch_each() {
        let cause = "At 2026-12-02T10:00:05Z a monitor alarm backlog in state ALARM triggered policy scale-out changing the desired capacity from 2 to 4.  At 2026-12-02T10:00:07Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 2 to 4.";
        let a = aws_activity(
            "Launching a new EC2 instance: i-0aaa",
            cause,
            "2026-12-02T10:00:08Z",
        );
        let b = aws_activity(
            "Launching a new EC2 instance: i-0bbb",
            cause,
            "2026-12-02T10:00:09Z",
        );
        let down = aws_activity(
            "Terminating EC2 instance: i-0aaa",
            "At 2026-12-02T10:05:00Z a user request update of AutoScalingGroup constraints to min: 0, max: 5, desired: 3 changing the desired capacity from 4 to 3.  At 2026-12-02T10:05:01Z an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from 4 to 3.",
            "2026-12-02T10:05:02Z",
        );
        let spec = ActivitySourceSpec {
            asg: Some("workers".into()),
            ..toml::from_str("").unwrap()
        };
        assert!(spec.check().is_ok());
        let start_ms = chrono::DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .timestamp_millis() as u64;
        let mut seen = HashSet::new();
        let lines: Vec<ActivityLine> = [a, b, down]
            .iter()
            .flat_map(asg_activity_lines)
            .map(|v| v.to_string())
            .filter(|l| seen.insert(l.clone()))
            .filter_map(|l| spec.map_line(&l, start_ms).unwrap())
            .collect();
        let summary: Vec<String> = lines
            .iter()
            .map(|l| {
                format!(
                    "{} {} {:?}->{:?} {}",
                    l.t_ms,
                    l.kind,
                    l.from,
                    l.to,
                    l.instance.as_deref().unwrap_or("-")
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                "5000 scaling Some(2)->Some(4) -",
                "8000 launch None->None i-0aaa",
                "9000 launch None->None i-0bbb",
                "300000 scaling Some(4)->Some(3) -",
                "302000 terminate None->None i-0aaa",
            ]
        );
        assert!(lines.iter().all(|l| l.group == "workers"));
        assert!(
            lines[0].cause.contains("triggered policy scale-out"),
            "{}",
            lines[0].cause
        );
    }

    #[test]
    fn a_cause_without_a_desired_change_gives_no_scaling_line() {
        let a = aws_activity(
            "Launching a new EC2 instance: i-0ccc",
            "At 2026-12-02T10:00:05Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 1 to 2.",
            "2026-12-02T10:00:06Z",
        );
        let lines = asg_activity_lines(&a);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["kind"], "launch");
        assert_eq!(
            desired_change("changing the desired capacity from 10 to 12."),
            Some((10, 12))
        );
        assert_eq!(
            desired_change("changing the desired capacity from x to 12"),
            None
        );
    }

    fn spec_with_defaults() -> ActivitySourceSpec {
        toml::from_str("group = \"w\"").unwrap()
    }
}
