//! A worker in the test's own process, run as `mailapi-worker` runs it
//! (`worker::run_until_stopped`), for tests that need mail to go on from the API.

use shared::config::Settings;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running worker. Cancelling `stop` is its SIGTERM; `task` ends when it has stopped. Dropped,
/// it keeps running until `stop` is cancelled or the test's runtime ends.
pub struct Worker {
    pub stop: CancellationToken,
    pub task: JoinHandle<worker::Result<()>>,
}

impl Worker {
    /// Starts a worker on `settings`. A worker that fails says so on stderr (and in `task`).
    pub fn start(settings: Settings) -> Worker {
        let ctx = worker::context::WorkerContext::new(settings).expect("worker context");
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let result = worker::run_until_stopped(ctx, token).await;
            if let Err(e) = &result {
                eprintln!("worker failed: {e:#}");
            }
            result
        });
        Worker { stop, task }
    }

    /// Stops it as SIGTERM would and waits until it has finished, cleanly.
    pub async fn shut_down(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("the worker task")
            .expect("the worker stops cleanly");
    }
}
