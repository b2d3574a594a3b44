//! Services as separate processes, for tests that kill them (SIGKILL) and start them again.

use std::path::Path;
use std::process::{Child, Command};

/// A child process, SIGKILLed when dropped so that a failing test leaves none behind.
pub struct Proc(pub Child);

impl Proc {
    /// SIGKILL: no chance to finish or release anything.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The worker binary `bin` (only the worker's own tests know its path:
/// `env!("CARGO_BIN_EXE_mailapi-worker")`) as a crash test runs it: named `name`, quick to give
/// up on SMTP, to reclaim what a killed worker held and to reconcile, and retrying `retries`
/// times a second apart. The caller adds the database, the key prefix and anything else.
pub fn worker_command(bin: &Path, name: &str, retries: usize) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("MAILAPI_WORKER_NAME", name)
        .env("MAILAPI_SMTP_TIMEOUT_SECS", "1")
        .env("MAILAPI_RECLAIM_IDLE_SECS", "8")
        .env("MAILAPI_RECONCILE_AFTER_SECS", "2")
        .env("MAILAPI_RETRY_SCHEDULE_SECS", vec!["1"; retries].join(","))
        .env("RUST_LOG", "warn");
    cmd
}
