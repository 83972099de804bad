//! Ctrl-C and SIGTERM, so a run can tear down its lab before exiting, then exit with the
//! shell's code for the signal (128 + its number: 130 for SIGINT, 143 for SIGTERM), which
//! is what users and CI expect of an interrupted command.

use std::sync::atomic::{AtomicU8, Ordering};

/// Exit code for SIGINT.
pub const SIGINT_EXIT: u8 = 130;
/// Exit code for SIGTERM.
pub const SIGTERM_EXIT: u8 = 143;

/// The exit code of the first signal received; 0 while none was.
static RECEIVED: AtomicU8 = AtomicU8::new(0);

/// The exit code owed to the first signal received, if any.
pub fn exit_code() -> Option<u8> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        code => Some(code),
    }
}

/// Resolves on the next SIGINT or SIGTERM with its exit code, remembering the first.
pub async fn interrupted() -> u8 {
    let code = wait().await;
    let _ = RECEIVED.compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
    code
}

async fn wait() -> u8 {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => SIGINT_EXIT,
                    _ = term.recv() => SIGTERM_EXIT,
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                SIGINT_EXIT
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        SIGINT_EXIT
    }
}
