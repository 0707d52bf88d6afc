//! shakedown: a load generator and chaos-testing harness for decoupled architectures.
//!
//! A driver replays upload and event traffic against a target while a chaos module
//! injects faults, probes sample the system, and an analyzer checks the architecture's
//! promises from the recorded run (`shakedown run`: [`session::experiment`]). Map of the crate; *pure* modules know nothing of
//! tokio, files or AWS, so they are tested with plain unit tests and proptest:
//!
//! | module | job | pure? |
//! |---|---|---|
//! | [`cli`] | the command line: the subcommands, each with the `Args` of its [`cmd`] file | yes |
//! | [`cmd`] | one thin file per subcommand (`demo`, `run`, `analyze`, `gate`, `report`, `load`, `validate`, `sandbox`, `recover`, `__chaos-run`): its clap `Args` -> options; [`cmd::Outcome`] -> exit code | no |
//! | [`session`] | a run's steps over one struct: run directory, `run.json`, clock, recorder + collector + live view, signals; target and sandbox; watchers; the end-of-run ledger; verdicts on the terminal | no |
//! | [`clock`] | wall-clock stamps: `now_ms`, `unix_ms` (milliseconds since the Unix epoch) | no |
//! | [`config`] | files -> validated plans (`profile`), diagnostics with file:line:col | yes |
//! | [`experiment`] | `chaos/*.toml` -> [`experiment::Experiment`]: target, merged profiles, fault plan, probes, promises, cool-down | yes (reads profiles through a `Files` trait) |
//! | [`units`] | human-readable durations, sizes and rates | yes |
//! | [`template`] | `{id}`/`{seq}`/random-field templates for paths, headers and bodies | yes |
//! | [`schedule`] | the arrival schedule: exact send times from profile + seed, segments | yes |
//! | [`metrics`] | per-second windows, HDR histograms, the sharded recorder, summaries | yes |
//! | [`driver`] | lanes (keep-alive connections), open/closed model, the lean HTTP/1.1 client over TCP or TLS (`connect`: timed connect and handshake), request bodies, the SQS transport (`SendMessageBatch`) | no |
//! | [`errors`] | an error and its sources as one line of text | yes |
//! | [`tls`] | one set of trust options (`ca_file`, `insecure`, client certificate, SNI) -> a rustls client configuration for every HTTP client; TLS failures -> their error classes and hints | no |
//! | [`results`] | `results/<run-id>/`: [`results::RunDir`] names every file of a run directory and owns their readers and writers (JSON lines, CSV rows, `latency.hlog`); run.json, timeline.csv, latency.hlog, harness.csv written as the run goes | no |
//! | [`live`] | progress bar or plain lines during a run | no |
//! | [`term`] | the terminal: human lines to stdout (stderr under `--output json`) through `outln!`, colour (`NO_COLOR`, `--color`), progress bars, the one `--output json` document | no |
//! | [`exporter`] | `--metrics-addr`: the live timeline, probes and fault state as Prometheus metrics on `GET /metrics` | no (its text rendering is pure) |
//! | [`shutdown`] | Ctrl-C / SIGTERM -> a cancellation token handed down the task tree (the one signal handler) | no |
//! | [`aws`] | the AWS layer: target, client builder, errors, selectors, EC2/SQS helpers; used by driver, probes, ledger, chaos, experiment and the sandbox's own clients | no |
//! | [`chaos`] | faults with journaled, verified undos; runner, guardrails, recovery, TCP proxy | no |
//! | [`sandbox`] | the embedded reference system: SQS/EC2-compatible endpoints, balancer, web and worker processes, autoscaling, event bus, completion feed | no |
//! | [`probe`] | `[[probe]]` specs, samplers (SQS, EC2, HTTP, sandbox control, command), `probes.csv`; `[[target.activities]]` (a system's scaling log) | no |
//! | [`ledger`] | accepted ids (bitsets), completion sources, the end-of-run queue census, `accepted.jsonl`/`completions.jsonl`/`ledger.json` | no |
//! | [`analyze`] | recorded run -> verdicts per promise (pass / fail / not evaluable); `load` is its only IO | yes |
//! | [`ci`] | `junit.xml` and `summary.md` of a run; `shakedown gate`: two runs compared by a stated statistical rule; `read` is its only IO | yes (but `read`) |
//! | [`report`] | a run directory -> `report.html`: one self-contained page (inline SVG charts on one time axis, verdicts, latency spectrum, inputs); `read_run` / `write_report` are its only IO | yes (but `read_run`, `write_report`) |
//! | [`sweep`] | a memory sweep (`[sweep]`): per size the latency promise's verdict, billed GB-seconds, invocations and cost; the cheapest size that meets the promise; the table and `sweep.json` (the sub-runs: [`session::sweep`]) | yes |

pub mod analyze;
pub mod aws;
pub mod chaos;
pub mod ci;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod driver;
pub mod errors;
pub mod experiment;
pub mod exporter;
pub mod ledger;
pub mod live;
pub mod metrics;
pub mod probe;
pub mod report;
pub mod results;
pub mod sandbox;
pub mod schedule;
pub mod session;
pub mod shutdown;
pub mod sweep;
pub mod template;
pub mod term;
pub mod tls;
pub mod units;

use cli::{Cli, Command};
use cmd::Outcome;

/// Runs a parsed command line and returns the process exit code (see
/// [`cmd::Outcome`]). Errors are printed here, with their cause chain.
pub fn run(cli: Cli) -> u8 {
    let command_line: Vec<String> = std::env::args().collect();
    let threads = cli.threads;
    term::init(cli.command.output_format(), cli.color);
    let name = cli.command.name();
    let code = match cli.command {
        Command::Demo(args) => {
            exit_code(block_on(threads, cmd::demo::demo(args, command_line)).map(Outcome::code))
        }
        Command::Run(args) => {
            exit_code(block_on(threads, cmd::run::run(*args, command_line)).map(Outcome::code))
        }
        Command::Analyze(args) => match cmd::analyze::analyze(&args) {
            Ok(outcome) => outcome.code(),
            Err(e) => report_error(&e),
        },
        Command::Gate(args) => match cmd::gate::gate(&args) {
            Ok(outcome) => outcome.code(),
            Err(e) => {
                eprintln!("error: {e:#}");
                Outcome::Error.code()
            }
        },
        Command::Validate(args) => cmd::validate::validate(&args).code(),
        Command::Report(args) => cmd::report::report(&args).code(),
        Command::Load(args) => {
            exit_code(block_on(threads, cmd::load::load(*args, command_line)).map(Outcome::code))
        }
        Command::Sandbox(args) => {
            exit_code(block_on(threads, cmd::sandbox::sandbox(args)).map(|()| 0))
        }
        Command::SandboxChild { role, config } => sandbox::instance::child_main(&role, &config),
        Command::Recover(args) => exit_code(block_on(threads, cmd::recover::recover(args))),
        Command::ChaosRun(args) => exit_code(block_on(threads, cmd::chaos_run::chaos_run(args))),
    };
    term::emit_document(name, code);
    code
}

/// Prints a command's error with its cause chain (and keeps it for `--output json`);
/// the exit code of an error.
fn report_error(e: &anyhow::Error) -> u8 {
    // A config file's diagnostics start each of their problems with `error:` already.
    match e.downcast_ref::<config::diag::Diagnostics>() {
        Some(diagnostics) if e.chain().count() == 1 => eprintln!("{diagnostics}"),
        _ => eprintln!("error: {e:#}"),
    }
    term::document(|d| d.error = Some(format!("{e:#}")));
    Outcome::Error.code()
}

/// Commands that compute their own exit code; errors were printed by `block_on`.
fn exit_code(result: Result<u8, Outcome>) -> u8 {
    result.unwrap_or_else(Outcome::code)
}

/// Runs a command's future on a fresh runtime; an error is printed and becomes
/// [`Outcome::Error`].
fn block_on<T>(
    threads: Option<usize>,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Result<T, Outcome> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Err(Outcome::Error);
        }
    };
    runtime.block_on(fut).map_err(|e| {
        report_error(&e);
        Outcome::Error
    })
}
