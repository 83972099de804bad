//! One deadline per wait step, and the poll loop every wait runs under it.
//!
//! A step's `timeout: 5m` over two workloads ends five minutes after the step began, not
//! ten: the deadline is fixed once and shared, and a request still unanswered when it
//! passes is abandoned rather than awaited.

use std::time::Duration;

use tokio::time::Instant;

use super::KubeError;

/// The moment a wait gives up, fixed when the step starts and shared by everything the
/// step waits for.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    /// `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + limit,
            limit,
        }
    }

    /// The whole allowance, as the step gave it.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.at
    }
}

impl From<Duration> for Deadline {
    fn from(limit: Duration) -> Deadline {
        Deadline::after(limit)
    }
}

/// Polls `probe` every `every` until it returns `Ok(value)` or the deadline passes. A
/// request still unanswered at the deadline is abandoned: the deadline bounds the wait,
/// not just the gaps between requests.
pub(super) async fn poll<T, F, Fut>(
    what: &str,
    deadline: Deadline,
    every: Duration,
    mut probe: F,
) -> Result<T, KubeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, String>, KubeError>>,
{
    let timeout = |state: String| KubeError::Timeout {
        what: what.to_string(),
        seconds: deadline.limit().as_secs(),
        state,
    };
    let mut state = "no answer from the API server yet".to_string();
    loop {
        match tokio::time::timeout_at(deadline.at, probe()).await {
            Err(_) => return Err(timeout(state)),
            Ok(answer) => match answer? {
                Ok(value) => return Ok(value),
                Err(seen) => state = seen,
            },
        }
        if deadline.passed() {
            return Err(timeout(state));
        }
        tokio::time::sleep(
            every
                .min(deadline.remaining())
                .max(Duration::from_millis(10)),
        )
        .await;
    }
}
