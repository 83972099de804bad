//! Exec into pods, reading stdout and stderr concurrently.
//!
//! kube's attached streams sit on small in-memory pipes; a command that fills stderr
//! while we only read stdout would stall forever, so both are drained at once.
//!
//! The API server reports how a command ended on the exec status channel: `Success`, or
//! `Failure` with a message (`error dialing backend: ...` when it cannot reach the
//! kubelet, `command terminated with non-zero exit code ...`). An empty stdout says
//! nothing by itself, so every failure carries that message.

use std::time::Duration;

use ::kube::api::{Api, AttachParams, AttachedProcess};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Kube, KubeError};

/// What a command run in a pod produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// True when the API reported `Success`.
    pub success: bool,
    /// The API's failure message, if any.
    pub message: Option<String>,
    /// `namespace/pod`, for errors.
    pub pod: String,
}

impl ExecOutput {
    /// The output of a command that succeeded, or an error with the API's status message
    /// and the command's standard error.
    pub fn succeeded(self) -> Result<ExecOutput, KubeError> {
        if self.success {
            return Ok(self);
        }
        let why = self
            .message
            .clone()
            .unwrap_or_else(|| "the API server closed the stream without an exit status".into());
        let stderr = String::from_utf8_lossy(&self.stderr);
        let message = match stderr.trim() {
            "" => why,
            text => format!("{why}; stderr: {}", tail(text, 2000)),
        };
        Err(KubeError::Exec {
            pod: self.pod,
            message,
        })
    }
}

/// The last `max` bytes of `text` (on a character boundary): the end of an error output
/// says why.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// How the API server said a command ended: `None` for `Success`, else its message
/// (or that none came, when the stream closed first).
pub fn status_failure(status: Option<&Status>) -> Option<String> {
    match status {
        Some(s) if s.status.as_deref() == Some("Success") => None,
        Some(Status {
            message: Some(m), ..
        }) if !m.is_empty() => Some(m.clone()),
        Some(s) => Some(format!(
            "exec ended with status {:?}, reason {:?}",
            s.status, s.reason
        )),
        None => Some("the API server closed the stream without an exit status".into()),
    }
}

impl Kube {
    /// Runs `command` in a pod's container, feeding `stdin`, within `limit`.
    ///
    /// Prefer arguments to `stdin` for small inputs: stdin written at once races an exec
    /// that the API server fails early (the kubelet unreachable), and kube 5 then never
    /// receives the failure status, so the call ends only at `limit`, without the cause
    /// (3 of 4 tries against kube-apiserver 1.36; without stdin, 4 of 4 carried it).
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[String],
        stdin: Option<&[u8]>,
        limit: Duration,
    ) -> Result<ExecOutput, KubeError> {
        let who = format!("{namespace}/{pod}");
        let err = |message: String| KubeError::Exec {
            pod: who.clone(),
            message,
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut params = AttachParams::default()
            .stdin(stdin.is_some())
            .stdout(true)
            .stderr(true);
        if let Some(c) = container {
            params = params.container(c);
        }
        let run = async {
            let mut proc = api
                .exec(pod, command.iter().map(String::as_str), &params)
                .await
                .map_err(|e| self.exec_error(&who, e))?;
            if let (Some(input), Some(mut writer)) = (stdin, proc.stdin()) {
                writer
                    .write_all(input)
                    .await
                    .map_err(|e| err(format!("writing stdin: {e}")))?;
                writer
                    .shutdown()
                    .await
                    .map_err(|e| err(format!("closing stdin: {e}")))?;
            }
            let status = proc.take_status();
            let (mut out, mut errs) = (proc.stdout(), proc.stderr());
            let read_out = async {
                let mut buf = Vec::new();
                if let Some(r) = out.as_mut() {
                    let _ = r.read_to_end(&mut buf).await;
                }
                buf
            };
            let read_err = async {
                let mut buf = Vec::new();
                if let Some(r) = errs.as_mut() {
                    let _ = r.read_to_end(&mut buf).await;
                }
                buf
            };
            let (stdout, stderr) = tokio::join!(read_out, read_err);
            let status = match status {
                Some(s) => s.await,
                None => None,
            };
            let joined = proc.join().await;
            let mut message = status_failure(status.as_ref());
            if let (Some(m), Err(e)) = (message.as_mut(), joined) {
                m.push_str(&format!(" ({e})"));
            }
            Ok(ExecOutput {
                stdout,
                stderr,
                success: message.is_none(),
                message,
                pod: who.clone(),
            })
        };
        tokio::time::timeout(limit, run)
            .await
            .map_err(|_| err(format!("did not finish within {limit:?}")))?
    }
}

/// A command running in a pod with stdin, stdout and stderr attached, for long-running streams.
pub struct ExecStream {
    pod: String,
    process: AttachedProcess,
}

impl ExecStream {
    /// Writer to the command's stdin (once).
    pub fn stdin(&mut self) -> Option<impl tokio::io::AsyncWrite + Unpin + use<>> {
        self.process.stdin()
    }

    /// Reader of the command's stdout (once).
    pub fn stdout(&mut self) -> Option<impl tokio::io::AsyncRead + Unpin + Send + use<>> {
        self.process.stdout()
    }

    /// Reader of the command's stderr (once).
    pub fn stderr(&mut self) -> Option<impl tokio::io::AsyncRead + Unpin + Send + use<>> {
        self.process.stderr()
    }

    /// How the command ended, once its stdout has closed: `Ok` for success, else the API
    /// server's message (why a stream that ended early ended). Waits at most `limit`.
    pub async fn outcome(&mut self, limit: Duration) -> Result<(), KubeError> {
        let Some(status) = self.process.take_status() else {
            return Ok(());
        };
        let message = match tokio::time::timeout(limit, status).await {
            Ok(status) => status_failure(status.as_ref()),
            Err(_) => Some(format!("no exit status within {limit:?}")),
        };
        match message {
            None => Ok(()),
            Some(message) => Err(KubeError::Exec {
                pod: self.pod.clone(),
                message,
            }),
        }
    }
}

impl Kube {
    /// Starts `command` in a pod with stdin, stdout and stderr attached and returns at
    /// once, for long-running streams (`tcpdump -w -`). The caller reads stdout and stderr
    /// concurrently as they come (kube's pipes are small) and ends the command by writing
    /// to or closing stdin; [`ExecStream::outcome`] then says how it ended.
    pub async fn exec_stream(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[String],
    ) -> Result<ExecStream, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = AttachParams::default()
            .container(container)
            .stdin(true)
            .stdout(true)
            .stderr(true);
        let who = format!("{namespace}/{pod}");
        let process = api
            .exec(pod, command.iter().map(String::as_str), &params)
            .await
            .map_err(|e| self.exec_error(&who, e))?;
        Ok(ExecStream { pod: who, process })
    }

    /// An exec that failed to start: the API's answer, or that the server was not reached.
    fn exec_error(&self, pod: &str, e: ::kube::Error) -> KubeError {
        match self.api_error(format!("exec in pod {pod}"))(e) {
            KubeError::Api { source, .. } => KubeError::Exec {
                pod: pod.to_string(),
                message: super::describe(&source),
            },
            other => other,
        }
    }
}
