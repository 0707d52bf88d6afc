//! [`RunDir`]: one run's directory, `results/<run-id>/`, and the name of every file in it.
//!
//! Every reader and writer of a run's files starts from a `RunDir` path accessor, so the
//! names live here only. Formats: `results/README.md`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::file::{FileError, read_json, read_optional, write_json_atomic};
use super::meta::RunMeta;
use super::timeline::TimelineRow;
use crate::metrics::SecondHistograms;

/// `run.json`: what ran and how it ended ([`super::RunMeta`]).
pub const RUN_FILE: &str = "run.json";
/// `experiment.toml`: a copy of the experiment (`shakedown run` / `demo`).
pub const EXPERIMENT_FILE: &str = "experiment.toml";
/// `journal.jsonl`: the chaos journal (`crate::chaos::journal`).
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// `timeline.csv`: one row per second per stream ([`super::timeline`]).
pub const TIMELINE_FILE: &str = "timeline.csv";
/// `latency.hlog`: one HDR histogram per second per stream ([`super::hlog`]).
pub const LATENCY_FILE: &str = "latency.hlog";
/// `harness.csv`: the harness's own timekeeping ([`super::harness`]).
pub const HARNESS_FILE: &str = "harness.csv";
/// `probes.csv`: one row per second, one column per probe ([`super::probes`]).
pub const PROBES_FILE: &str = "probes.csv";
/// `cloudwatch.csv`: the settled datapoints of the `cloudwatch` probes.
pub const CLOUDWATCH_FILE: &str = "cloudwatch.csv";
/// `activities.jsonl`: scaling activities.
pub const ACTIVITIES_FILE: &str = "activities.jsonl";
/// `accepted.jsonl`: every message the target accepted.
pub const ACCEPTED_FILE: &str = "accepted.jsonl";
/// `completions.jsonl`: every completion record.
pub const COMPLETIONS_FILE: &str = "completions.jsonl";
/// `ledger.json`: the end-of-run balance of the message ledger.
pub const LEDGER_FILE: &str = "ledger.json";
/// `bus.json`: the sandbox event bus's counters at the end of the run (`GET /bus/stats`:
/// invocations and billed GB-seconds per function), in sandbox runs with an embedded bus.
pub const BUS_FILE: &str = "bus.json";
/// `sweep.json`: a memory sweep's table (`crate::sweep`), in the directory holding the
/// sweep's runs under `sweep/<size>mb/`.
pub const SWEEP_FILE: &str = "sweep.json";
/// `verdict.json`: one verdict per promise.
pub const VERDICT_FILE: &str = "verdict.json";
/// `junit.xml`: the run's promises (or a `load` run's streams) as JUnit test cases (`crate::ci`).
pub const JUNIT_FILE: &str = "junit.xml";
/// `summary.md`: a short Markdown summary for a pull request or `$GITHUB_STEP_SUMMARY`.
pub const SUMMARY_FILE: &str = "summary.md";
/// `report.html`: the self-contained HTML report (`crate::report`).
pub const REPORT_FILE: &str = "report.html";
/// `commands/`: the output of command faults, one `<name>.log` each.
pub const COMMANDS_DIR: &str = "commands";

/// One run's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates a fresh directory `root/<run_id>`; appends `-2`, `-3`... if taken.
    pub fn create(root: &Path, run_id: &str) -> io::Result<RunDir> {
        fs::create_dir_all(root)?;
        for n in 1..1000 {
            let name = if n == 1 {
                run_id.to_string()
            } else {
                format!("{run_id}-{n}")
            };
            let path = root.join(&name);
            match fs::create_dir(&path) {
                Ok(()) => return Ok(RunDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "too many runs named {run_id} in {}",
            root.display()
        )))
    }

    /// An existing run directory; an error when `path` is not a directory.
    pub fn open(path: &Path) -> io::Result<RunDir> {
        if path.is_dir() {
            Ok(RunDir::at(path))
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: not a results directory", path.display()),
            ))
        }
    }

    /// The run directory at `path`, existing or not (writers that create it themselves).
    pub fn at(path: &Path) -> RunDir {
        RunDir {
            path: path.to_path_buf(),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory, owned.
    pub fn into_path(self) -> PathBuf {
        self.path
    }

    /// The run id: the directory's name.
    pub fn run_id(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into())
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn run_json(&self) -> PathBuf {
        self.file(RUN_FILE)
    }

    pub fn experiment(&self) -> PathBuf {
        self.file(EXPERIMENT_FILE)
    }

    pub fn journal(&self) -> PathBuf {
        self.file(JOURNAL_FILE)
    }

    pub fn timeline(&self) -> PathBuf {
        self.file(TIMELINE_FILE)
    }

    pub fn latency(&self) -> PathBuf {
        self.file(LATENCY_FILE)
    }

    pub fn harness(&self) -> PathBuf {
        self.file(HARNESS_FILE)
    }

    pub fn probes(&self) -> PathBuf {
        self.file(PROBES_FILE)
    }

    pub fn activities(&self) -> PathBuf {
        self.file(ACTIVITIES_FILE)
    }

    pub fn accepted(&self) -> PathBuf {
        self.file(ACCEPTED_FILE)
    }

    pub fn completions(&self) -> PathBuf {
        self.file(COMPLETIONS_FILE)
    }

    pub fn ledger(&self) -> PathBuf {
        self.file(LEDGER_FILE)
    }

    pub fn bus(&self) -> PathBuf {
        self.file(BUS_FILE)
    }

    pub fn verdict(&self) -> PathBuf {
        self.file(VERDICT_FILE)
    }

    pub fn junit(&self) -> PathBuf {
        self.file(JUNIT_FILE)
    }

    pub fn summary(&self) -> PathBuf {
        self.file(SUMMARY_FILE)
    }

    pub fn report(&self) -> PathBuf {
        self.file(REPORT_FILE)
    }

    /// The log of command fault `name`: `commands/<name>.log`.
    pub fn command_log(&self, name: &str) -> PathBuf {
        self.path.join(COMMANDS_DIR).join(format!("{name}.log"))
    }
}

/// Typed readers and writers of the files. A reader returns `None` when its file does not
/// exist (missing data, not an error); a file that exists must parse, except a torn last line.
impl RunDir {
    /// `run.json`.
    pub fn read_meta(&self) -> Result<Option<RunMeta>, FileError> {
        read_json(&self.run_json())
    }

    /// Rewrites `run.json` atomically.
    pub fn write_meta(&self, meta: &RunMeta) -> Result<(), FileError> {
        write_json_atomic(&self.run_json(), meta)
    }

    /// Writes the copy of the experiment file.
    pub fn write_experiment(&self, text: &str) -> Result<(), FileError> {
        let path = self.experiment();
        fs::write(&path, text).map_err(|e| FileError::io(&path, e))
    }

    /// `timeline.csv`: its rows with their line numbers.
    pub fn read_timeline(&self) -> Result<Option<Vec<(usize, TimelineRow)>>, FileError> {
        let path = self.timeline();
        read_optional(&path)?
            .map(|text| super::timeline::read(&text, &path))
            .transpose()
    }

    /// `probes.csv`: one series per probe, by second.
    pub fn read_probes(&self) -> Result<Option<Series>, FileError> {
        let path = self.probes();
        read_optional(&path)?
            .map(|text| super::probes::read(&text, &path))
            .transpose()
    }

    /// `harness.csv`: `lag_max_ms`, `ticks` and `cpu_busy` (absent in older runs), by second.
    pub fn read_harness(&self) -> Result<Option<Series>, FileError> {
        let path = self.harness();
        read_optional(&path)?
            .map(|text| super::probes::read(&text, &path))
            .transpose()
    }

    /// `latency.hlog`: the encoded histograms, keyed by tag (`<stream>`, `<stream>.service`).
    pub fn read_latency(&self) -> Result<Option<SecondHistograms>, FileError> {
        let path = self.latency();
        read_optional(&path)?
            .map(|text| super::hlog::read(&text, &path))
            .transpose()
    }

    /// `ledger.json`, as any type that reads it.
    pub fn read_ledger<T: DeserializeOwned>(&self) -> Result<Option<T>, FileError> {
        read_json(&self.ledger())
    }

    /// Writes `ledger.json` atomically.
    pub fn write_ledger<T: Serialize>(&self, summary: &T) -> Result<(), FileError> {
        write_json_atomic(&self.ledger(), summary)
    }

    /// Writes `verdict.json` atomically.
    pub fn write_verdict<T: Serialize>(&self, verdicts: &T) -> Result<(), FileError> {
        write_json_atomic(&self.verdict(), verdicts)
    }

    /// `verdict.json`, as any type that reads it.
    pub fn read_verdict<T: DeserializeOwned>(&self) -> Result<Option<T>, FileError> {
        read_json(&self.verdict())
    }

    /// `experiment.toml`'s text.
    pub fn read_experiment(&self) -> Result<Option<String>, FileError> {
        let path = self.experiment();
        read_optional(&path)?
            .map(|b| String::from_utf8(b).map_err(|e| FileError::parse(&path, 0, e.to_string())))
            .transpose()
    }
}

/// Values by name and second (`None`: a gap).
pub type Series = BTreeMap<String, Vec<Option<f64>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_picks_a_free_name_and_open_needs_a_directory() {
        let root = tempfile::tempdir().unwrap();
        let a = RunDir::create(root.path(), "r").unwrap();
        let b = RunDir::create(root.path(), "r").unwrap();
        assert_eq!((a.run_id(), b.run_id()), ("r".into(), "r-2".into()));
        assert_eq!(RunDir::open(b.path()).unwrap(), b);
        assert_eq!(b.timeline(), root.path().join("r-2").join("timeline.csv"));
        assert!(RunDir::open(&root.path().join("nope")).is_err());
    }
}
