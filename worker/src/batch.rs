//! Group commit for the worker's hot statements.
//!
//! Many submissions finish at nearly the same moment; writing each outcome (and acknowledging
//! each stream entry) on its own costs one round trip and one commit apiece, and the statement
//! triggers that keep the statistics run once per statement. A [`Batcher`] lets every
//! submission wait for its own write as before, while one task writes whatever has queued up
//! meanwhile in a single statement. Nothing waits for a batch to fill: an idle worker writes a
//! batch of one at once, and a busy one writes larger batches because items arrive while the
//! previous statement runs.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

type Reply = oneshot::Sender<Result<(), Arc<anyhow::Error>>>;

/// Hands items to one writer task and waits for the batch that carried each item.
pub struct Batcher<T> {
    tx: mpsc::UnboundedSender<(T, Reply)>,
}

impl<T> Clone for Batcher<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T: Send + 'static> Batcher<T> {
    /// Starts the writer task: it takes up to `max` queued items at a time and passes them to
    /// `write`. Every caller of [`Batcher::run`] in that batch gets its result. The task ends
    /// when the last handle is dropped.
    pub fn spawn<F, Fut>(max: usize, write: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(T, Reply)>();
        let max = max.max(1);
        tokio::spawn(async move {
            let mut items = Vec::with_capacity(max);
            let mut replies = Vec::with_capacity(max);
            while let Some((item, reply)) = rx.recv().await {
                items.push(item);
                replies.push(reply);
                while items.len() < max {
                    match rx.try_recv() {
                        Ok((item, reply)) => {
                            items.push(item);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                let result = write(std::mem::take(&mut items)).await.map_err(Arc::new);
                for reply in replies.drain(..) {
                    // The caller may have gone (its task was aborted); the write stands.
                    let _ = reply.send(result.clone());
                }
            }
        });
        Self { tx }
    }

    /// Queues `item` and waits until the batch holding it has been written.
    pub async fn run(&self, item: T) -> anyhow::Result<()> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((item, reply))
            .map_err(|_| anyhow::anyhow!("the batch writer has stopped"))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::anyhow!("{e:#}")),
            Err(_) => Err(anyhow::anyhow!("the batch writer stopped before writing")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn items_queued_while_a_write_runs_go_out_together() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::spawn(50, move |items: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(items.len());
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(())
            }
        });
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..120 {
            let b = batcher.clone();
            tasks.spawn(async move { b.run(i).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 120);
        assert!(sizes.iter().all(|&n| n <= 50), "{sizes:?}");
        assert!(sizes.len() < 120, "no batching happened: {sizes:?}");
    }

    #[tokio::test]
    async fn every_caller_of_a_failed_batch_sees_the_error() {
        let batcher = Batcher::spawn(10, |items: Vec<u32>| async move {
            if items.contains(&3) {
                anyhow::bail!("boom")
            }
            Ok(())
        });
        assert!(batcher.run(1).await.is_ok());
        let err = batcher.run(3).await.unwrap_err();
        assert!(format!("{err}").contains("boom"));
        assert!(batcher.run(4).await.is_ok());
    }
}
