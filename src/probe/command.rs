//! `kind = "command"`: a local command whose standard output starts with a number.

use std::process::Stdio;

use super::ProbeError;
use super::spec::CommandLine;

/// Most bytes of output read from the command.
const MAX_OUTPUT: usize = 64 * 1024;

/// Runs the command once per sample. The child is killed when the sample is dropped
/// (timeout or cancellation), so a hung command never outlives its sample.
#[derive(Debug)]
pub struct CommandSampler {
    command: CommandLine,
}

impl CommandSampler {
    /// A sampler running `command`.
    pub fn new(command: CommandLine) -> Self {
        CommandSampler { command }
    }

    fn build(&self) -> Result<tokio::process::Command, ProbeError> {
        let mut cmd = match &self.command {
            CommandLine::Shell(line) => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(line);
                c
            }
            CommandLine::Argv(argv) => {
                let (program, args) = argv
                    .split_first()
                    .ok_or_else(|| ProbeError::Command("empty command".into()))?;
                let mut c = tokio::process::Command::new(program);
                c.args(args);
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// Runs the command and parses its first word.
    pub async fn sample(&mut self) -> Result<f64, ProbeError> {
        let output = self
            .build()?
            .output()
            .await
            .map_err(|e| ProbeError::Command(e.to_string()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr[..output.stderr.len().min(200)])
                .trim()
                .to_owned();
            return Err(ProbeError::Command(format!("{}: {stderr}", output.status)));
        }
        parse_output(&output.stdout[..output.stdout.len().min(MAX_OUTPUT)])
    }
}

/// The first whitespace-separated word of `stdout`, as a number.
pub fn parse_output(stdout: &[u8]) -> Result<f64, ProbeError> {
    let text = String::from_utf8_lossy(stdout);
    let word = text
        .split_whitespace()
        .next()
        .ok_or_else(|| ProbeError::NotANumber("no output".into()))?;
    word.parse::<f64>()
        .map_err(|_| ProbeError::NotANumber(format!("{word:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_word_is_the_number() {
        assert_eq!(parse_output(b"  42\n").unwrap(), 42.0);
        assert_eq!(parse_output(b"0.25 msgs\nmore").unwrap(), 0.25);
        assert!(parse_output(b"").is_err());
        assert!(parse_output(b"n/a").is_err());
    }
}
