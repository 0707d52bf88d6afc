//! The built `shakedown` binary as a child process.

use std::process::{Command, Output, Stdio};

/// `shakedown` (the binary cargo built for these tests), run from the package root with no
/// AWS profile and the instance-metadata lookup off; stdin is closed.
pub fn shakedown() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shakedown"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null());
    c
}

/// Runs `shakedown` with `args` to the end.
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    shakedown().args(args).output().expect("run shakedown")
}

/// Runs `command` (usually from [`shakedown`]) to the end from async code: the child is
/// waited for on a blocking thread, not on the runtime's.
pub async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("run the command"))
        .await
        .expect("the command's thread")
}

/// Standard output, then standard error, as one text for assertions and messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Standard output alone.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `shakedown sandbox` as its own process (a system shakedown did not start): its
/// configuration file written to `dir/sandbox.toml`, its instance logs in `dir`, its
/// endpoints read from its first line (`--print-endpoints json`). Dropping it sends SIGTERM
/// (which stops its instances too) and waits.
pub struct SandboxProcess {
    pub child: std::process::Child,
    /// The `--print-endpoints json` document.
    pub endpoints: serde_json::Value,
}

impl SandboxProcess {
    pub fn start(dir: &std::path::Path, config: &str) -> SandboxProcess {
        use std::io::BufRead;
        let path = dir.join("sandbox.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = shakedown()
            .arg("sandbox")
            .arg("--config")
            .arg(&path)
            .arg("--dir")
            .arg(dir)
            .args(["--print-endpoints", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let line = std::io::BufReader::new(stdout)
            .lines()
            .map(Result::unwrap)
            .find(|l| l.starts_with('{'))
            .expect("the endpoints line");
        let endpoints = serde_json::from_str(&line).expect("one JSON line");
        SandboxProcess { child, endpoints }
    }

    /// An endpoint by its key (`web_url`, `sqs_endpoint`, `queue_url`...).
    pub fn endpoint(&self, key: &str) -> String {
        self.endpoints[key]
            .as_str()
            .unwrap_or_else(|| panic!("no `{key}` in {}", self.endpoints))
            .to_owned()
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child (an exited one only makes it fail).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
