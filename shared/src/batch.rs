//! Group commit for hot statements.
//!
//! Many requests (or submissions) finish at nearly the same moment; writing each on its own costs
//! one round trip, one statement and one commit apiece, and statement triggers run once per
//! statement. A [`Batcher`] lets every caller wait for its own write as before, while a writer
//! writes whatever has queued up meanwhile in a single statement. Nothing waits for a batch to
//! fill: an idle service writes a batch of one at once, and a busy one writes larger batches
//! because items arrive while the previous statements run.
//!
//! Up to `in_flight` batches are written at the same time (each on its own task), so a batch
//! that waits for its commit does not hold back the next one; with `in_flight = 1` batches are
//! written strictly one after another.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// A batch's error, shared by every caller in the batch.
type BatchError = Arc<anyhow::Error>;

type Reply<R> = oneshot::Sender<Result<R, BatchError>>;

/// Hands items to a writer and waits for the batch that carried each item.
pub struct Batcher<T, R = ()> {
    tx: mpsc::UnboundedSender<(T, Reply<R>)>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the writer: it takes up to `max` queued items at a time and passes them to
    /// `write`, which returns one result per item, in the items' order. Every caller of
    /// [`Batcher::run`] in that batch gets its own result, or the batch's error when `write`
    /// failed as a whole. The writer ends when the last handle is dropped (after writing what
    /// was queued).
    pub fn spawn<F, Fut>(max: usize, in_flight: usize, write: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Vec<R>>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(T, Reply<R>)>();
        let max = max.max(1);
        let write = Arc::new(write);
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Wait for a free slot first: whatever arrives meanwhile joins this batch.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut items = Vec::with_capacity(max);
                let mut replies = Vec::with_capacity(max);
                let (item, reply) = first;
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
                let write = write.clone();
                tokio::spawn(async move {
                    let n = items.len();
                    let result = write(items).await.and_then(|results| {
                        anyhow::ensure!(
                            results.len() == n,
                            "a batch of {n} items was answered with {} results",
                            results.len()
                        );
                        Ok(results)
                    });
                    drop(slot);
                    match result {
                        Ok(results) => {
                            for (reply, r) in replies.into_iter().zip(results) {
                                // The caller may have gone (its task was aborted); the write
                                // stands.
                                let _ = reply.send(Ok(r));
                            }
                        }
                        Err(e) => {
                            let e = Arc::new(e);
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                });
            }
        });
        Self { tx }
    }

    /// Queues `item` and waits until the batch holding it has been written. A write that
    /// should tell its callers apart on failure returns per-item `Result`s instead of failing.
    pub async fn run(&self, item: T) -> anyhow::Result<R> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((item, reply))
            .map_err(|_| anyhow::anyhow!("the batch writer has stopped"))?;
        match done.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(anyhow::anyhow!("{e:#}")),
            Err(_) => Err(anyhow::anyhow!("the batch writer stopped before writing")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn items_queued_while_a_write_runs_go_out_together() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::spawn(50, 1, move |items: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(items.len());
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(items.iter().map(|i| i * 2).collect())
            }
        });
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..120 {
            let b = batcher.clone();
            tasks.spawn(async move { (i, b.run(i).await) });
        }
        while let Some(r) = tasks.join_next().await {
            let (i, result) = r.unwrap();
            assert_eq!(result.unwrap(), i * 2, "each caller gets its own result");
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 120);
        assert!(sizes.iter().all(|&n| n <= 50), "{sizes:?}");
        assert!(sizes.len() < 120, "no batching happened: {sizes:?}");
    }

    #[tokio::test]
    async fn every_caller_of_a_failed_batch_sees_the_error() {
        let batcher = Batcher::spawn(10, 1, |items: Vec<u32>| async move {
            if items.contains(&3) {
                anyhow::bail!("boom")
            }
            Ok(vec![(); items.len()])
        });
        assert!(batcher.run(1).await.is_ok());
        let err = batcher.run(3).await.unwrap_err();
        assert!(format!("{err}").contains("boom"));
        assert!(batcher.run(4).await.is_ok());
    }

    #[tokio::test]
    async fn a_wrong_number_of_results_is_an_error_not_a_lost_reply() {
        let batcher = Batcher::spawn(10, 1, |_: Vec<u32>| async move { Ok(Vec::<()>::new()) });
        let err = batcher.run(1).await.unwrap_err();
        assert!(
            format!("{err}").contains("answered with 0 results"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn at_most_in_flight_batches_run_at_once() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (r, p) = (running.clone(), peak.clone());
        let batcher = Batcher::spawn(2, 3, move |items: Vec<u32>| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(vec![(); items.len()])
            }
        });
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let b = batcher.clone();
            tasks.spawn(async move { b.run(i).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= 3, "peak {peak}");
        assert!(peak >= 2, "batches never overlapped: peak {peak}");
    }
}
