//! The one place that spawns processes.
//!
//! Every external command (kind, kubectl, istioctl, pip, tshark) goes through
//! [`Exec`], which records the command line, exit status, stdout and stderr of each run
//! in a journal. The journal is written to the artifacts directory, so a failed run
//! shows exactly what was executed. Tests replace real processes with recorded outputs
//! through [`Exec::replay`], which is how the kind path is tested offline.
//!
//! `clippy.toml` forbids `std::process::Command::new` and `tokio::process::Command::new`
//! everywhere else.

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Errors from running a process.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program could not be started at all (usually: not installed).
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line that failed to start.
        command: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{}` exited with {}: {}", .0.command, .0.status_text(), .0.stderr_tail())]
    Failed(Box<Output>),
    /// The program did not finish within its time limit and was killed.
    #[error("`{command}` did not finish within {after:?} and was killed")]
    Timeout {
        /// The command line that timed out.
        command: String,
        /// The time limit.
        after: Duration,
    },
    /// A replayed run was asked for a command that the recording does not hold next.
    #[error("replay expected `{expected}` but the code ran `{actual}`")]
    ReplayMismatch {
        /// The next recorded command.
        expected: String,
        /// The command the code tried to run.
        actual: String,
    },
}

/// One command to run: program, arguments, working directory, environment and input.
#[derive(Debug, Clone, Default)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl Cmd {
    /// A command running `program` with no arguments.
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            ..Cmd::default()
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Adds an environment variable for the child only.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Feeds these bytes to the child's standard input.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Kills the child if it runs longer than this.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// The program name.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments.
    pub fn arguments(&self) -> &[String] {
        &self.args
    }

    /// The command line as a shell would show it, for logs and error messages.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What one finished run produced. This is also the journal's record format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The command line, shell-quoted.
    pub command: String,
    /// The exit code, or `None` when the process was killed by a signal.
    pub status: Option<i32>,
    /// Everything the process wrote to standard output.
    #[serde(with = "lossy_text")]
    pub stdout: Vec<u8>,
    /// Everything the process wrote to standard error.
    #[serde(with = "lossy_text")]
    pub stderr: Vec<u8>,
    /// Wall-clock run time in milliseconds.
    pub millis: u64,
}

impl Output {
    /// True when the process exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Standard output as text, with invalid UTF-8 replaced.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text, with invalid UTF-8 replaced.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn status_text(&self) -> String {
        match self.status {
            Some(code) => format!("exit code {code}"),
            None => "a signal".to_string(),
        }
    }

    /// The last few lines of stderr (or stdout when stderr is empty), for error messages.
    pub fn stderr_tail(&self) -> String {
        let text = if self.stderr.is_empty() {
            self.stdout_text()
        } else {
            self.stderr_text()
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

mod lossy_text {
    //! Serializes process output as text so the journal stays readable.
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(d)?.into_bytes())
    }
}

/// Runs commands and keeps a journal of every run.
///
/// Cloning is cheap and clones share the journal.
#[derive(Debug, Clone, Default)]
pub struct Exec {
    journal: Arc<Mutex<Vec<Output>>>,
    replay: Option<Arc<Mutex<VecDeque<Output>>>>,
}

impl Exec {
    /// An executor that runs real processes.
    pub fn new() -> Self {
        Exec::default()
    }

    /// An executor that answers each command with the next recorded [`Output`] instead
    /// of running anything. The recorded command line must match, so a test notices when
    /// the code starts running something different.
    pub fn replay(recordings: impl IntoIterator<Item = Output>) -> Self {
        Exec {
            journal: Arc::default(),
            replay: Some(Arc::new(Mutex::new(recordings.into_iter().collect()))),
        }
    }

    /// Every run so far, oldest first.
    pub fn journal(&self) -> Vec<Output> {
        self.journal.lock().map(|j| j.clone()).unwrap_or_default()
    }

    /// Runs the command and fails unless it exits with status 0.
    pub async fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let out = self.output(cmd).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(ExecError::Failed(Box::new(out)))
        }
    }

    /// Runs the command and returns its output whatever the exit status.
    pub async fn output(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let out = match &self.replay {
            Some(queue) => next_recording(queue, cmd)?,
            None => spawn(cmd).await?,
        };
        if let Ok(mut journal) = self.journal.lock() {
            journal.push(out.clone());
        }
        Ok(out)
    }
}

/// A child started by [`Exec::spawn`] that runs while the caller does other work (for
/// example, a run a test interrupts). Its output is read as it comes, so it never blocks
/// on a full pipe, and its run is journaled when [`Running::wait`] returns.
#[derive(Debug)]
pub struct Running {
    child: tokio::process::Child,
    command: String,
    start: Instant,
    stdout: tokio::task::JoinHandle<Vec<u8>>,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
    journal: Arc<Mutex<Vec<Output>>>,
}

impl Running {
    /// The operating system's process id, while the child runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the child to exit (killing it after `limit`), then journals and returns
    /// its output whatever the exit status.
    pub async fn wait(mut self, limit: Duration) -> Result<Output, ExecError> {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.map_err(|source| ExecError::Spawn {
                command: self.command.clone(),
                source,
            })?,
            Err(_) => {
                let _ = self.child.kill().await;
                return Err(ExecError::Timeout {
                    command: self.command,
                    after: limit,
                });
            }
        };
        let out = Output {
            command: self.command,
            status: status.code(),
            stdout: self.stdout.await.unwrap_or_default(),
            stderr: self.stderr.await.unwrap_or_default(),
            millis: self.start.elapsed().as_millis() as u64,
        };
        if let Ok(mut journal) = self.journal.lock() {
            journal.push(out.clone());
        }
        Ok(out)
    }
}

impl Exec {
    /// Starts the command and returns at once; see [`Running`]. Standard input is closed.
    /// Not available in replay mode, which has no processes to leave running.
    #[allow(clippy::disallowed_methods)] // This is the one module allowed to spawn processes.
    pub fn spawn(&self, cmd: &Cmd) -> Result<Running, ExecError> {
        use std::process::Stdio;
        use tokio::io::AsyncReadExt;

        let command = cmd.display();
        if self.replay.is_some() {
            return Err(ExecError::ReplayMismatch {
                expected: "<no spawn in replay>".into(),
                actual: command,
            });
        }
        let mut child_cmd = tokio::process::Command::new(&cmd.program);
        child_cmd
            .args(&cmd.args)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &cmd.cwd {
            child_cmd.current_dir(dir);
        }
        let start = Instant::now();
        let mut child = child_cmd.spawn().map_err(|source| ExecError::Spawn {
            command: command.clone(),
            source,
        })?;
        let drain = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut buf).await;
                }
                buf
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        );
        Ok(Running {
            child,
            command,
            start,
            stdout,
            stderr,
            journal: self.journal.clone(),
        })
    }
}

fn next_recording(queue: &Mutex<VecDeque<Output>>, cmd: &Cmd) -> Result<Output, ExecError> {
    let actual = cmd.display();
    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
    match next {
        Some(rec) if rec.command == actual => Ok(rec),
        Some(rec) => Err(ExecError::ReplayMismatch {
            expected: rec.command,
            actual,
        }),
        None => Err(ExecError::ReplayMismatch {
            expected: "<end of recording>".into(),
            actual,
        }),
    }
}

#[allow(clippy::disallowed_methods)] // This is the one module allowed to spawn processes.
async fn spawn(cmd: &Cmd) -> Result<Output, ExecError> {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;

    let command = cmd.display();
    let mut child_cmd = tokio::process::Command::new(&cmd.program);
    child_cmd
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &cmd.cwd {
        child_cmd.current_dir(dir);
    }
    let start = Instant::now();
    let mut child = child_cmd.spawn().map_err(|source| ExecError::Spawn {
        command: command.clone(),
        source,
    })?;
    if let (Some(input), Some(mut pipe)) = (cmd.stdin.clone(), child.stdin.take()) {
        // Writing happens concurrently with reading below, so a child that fills its
        // stdout pipe before reading all of stdin cannot deadlock us.
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
        });
    }
    let waited = child.wait_with_output();
    let result = match cmd.timeout {
        Some(limit) => {
            tokio::time::timeout(limit, waited)
                .await
                .map_err(|_| ExecError::Timeout {
                    command: command.clone(),
                    after: limit,
                })?
        }
        None => waited.await,
    };
    let out = result.map_err(|source| ExecError::Spawn {
        command: command.clone(),
        source,
    })?;
    Ok(Output {
        command,
        status: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
        millis: start.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_status_and_streams() {
        let exec = Exec::new();
        let cmd = Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]);
        let err = exec.run(&cmd).await.unwrap_err();
        let ExecError::Failed(out) = err else {
            panic!("expected Failed, got {err:?}")
        };
        assert_eq!(out.status, Some(3));
        assert_eq!(out.stdout_text(), "out\n");
        assert_eq!(out.stderr_text(), "err\n");
        assert_eq!(exec.journal().len(), 1);
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let err = Exec::new()
            .run(&Cmd::new("meshproof-no-such-tool"))
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Spawn { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn timeout_kills() {
        let cmd = Cmd::new("sleep")
            .arg("5")
            .timeout(Duration::from_millis(100));
        let err = Exec::new().run(&cmd).await.unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn stdin_is_fed() {
        let out = Exec::new()
            .run(&Cmd::new("cat").stdin("hello"))
            .await
            .unwrap();
        assert_eq!(out.stdout, b"hello");
    }

    #[tokio::test]
    async fn replay_checks_the_command_line() {
        let rec = Output {
            command: "kind version".into(),
            status: Some(0),
            stdout: b"kind v0.32.0 go1.25 linux/amd64\n".to_vec(),
            stderr: vec![],
            millis: 1,
        };
        let exec = Exec::replay([rec.clone()]);
        assert_eq!(
            exec.run(&Cmd::new("kind").arg("version")).await.unwrap(),
            rec
        );
        let err = exec
            .run(&Cmd::new("kind").arg("version"))
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::ReplayMismatch { .. }));
    }

    #[tokio::test]
    async fn spawned_children_run_alongside_and_are_journaled() {
        let exec = Exec::new();
        let child = exec.spawn(&Cmd::new("sleep").arg("30")).unwrap();
        let pid = child.id().unwrap();
        exec.run(&Cmd::new("kill").args(["-INT", &pid.to_string()]))
            .await
            .unwrap();
        let out = child.wait(Duration::from_secs(10)).await.unwrap();
        assert_eq!(out.status, None, "killed by SIGINT: {out:?}");
        let talker = exec
            .spawn(&Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 4"]))
            .unwrap();
        let out = talker.wait(Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            (out.status, out.stdout_text(), out.stderr_text()),
            (Some(4), "out\n".into(), "err\n".into())
        );
        assert_eq!(exec.journal().len(), 3);
        let slow = exec.spawn(&Cmd::new("sleep").arg("5")).unwrap();
        assert!(matches!(
            slow.wait(Duration::from_millis(100)).await,
            Err(ExecError::Timeout { .. })
        ));
    }

    #[test]
    fn display_quotes_only_when_needed() {
        let cmd = Cmd::new("kubectl").args(["get", "pods", "-l", "app in (a,b)", "it's"]);
        assert_eq!(
            cmd.display(),
            r#"kubectl get pods -l 'app in (a,b)' 'it'\''s'"#
        );
    }
}
