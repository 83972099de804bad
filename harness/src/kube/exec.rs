//! Exec into pods, reading stdout and stderr concurrently.
//!
//! kube's attached streams sit on small in-memory pipes; a command that fills stderr
//! while we only read stdout would stall forever, so both are drained at once.

use std::time::Duration;

use ::kube::api::{Api, AttachParams};
use k8s_openapi::api::core::v1::Pod;
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
}

impl Kube {
    /// Runs `command` in a pod's container, feeding `stdin`, within `limit`.
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
                .map_err(|e| err(e.to_string()))?;
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
            let success = status.as_ref().and_then(|s| s.status.as_deref()) == Some("Success");
            let message = status.and_then(|s| s.message);
            let _ = proc.join().await;
            Ok(ExecOutput {
                stdout,
                stderr,
                success,
                message,
            })
        };
        tokio::time::timeout(limit, run)
            .await
            .map_err(|_| err(format!("did not finish within {limit:?}")))?
    }
}

impl Kube {
    /// Starts `command` in a pod with stdin, stdout and stderr attached and returns at
    /// once, for long-running streams (`tcpdump -w -`). The caller reads stdout and stderr
    /// concurrently as they come (kube's pipes are small) and ends the command by writing
    /// to or closing stdin.
    pub async fn exec_stream(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[String],
    ) -> Result<::kube::api::AttachedProcess, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = AttachParams::default()
            .container(container)
            .stdin(true)
            .stdout(true)
            .stderr(true);
        api.exec(pod, command.iter().map(String::as_str), &params)
            .await
            .map_err(|e| KubeError::Exec {
                pod: format!("{namespace}/{pod}"),
                message: e.to_string(),
            })
    }
}
