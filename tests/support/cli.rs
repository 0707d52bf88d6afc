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
