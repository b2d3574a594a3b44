//! Group commit of accepted messages (requests without an `Idempotency-Key`).
//!
//! Each request hands its validated message to the [`Accepter`] and waits. A writer stores every
//! message that queued up meanwhile with ONE statement and one commit ([`store::insert_messages`]),
//! then adds the stream entries of those that need a worker, and only then answers each request.
//! An idle API writes a batch of one at once; under load, requests that arrive while a batch
//! commits go out together in the next one, so the commit rate of Postgres stops bounding the
//! accept rate. Up to `MAILAPI_ACCEPT_BATCH_IN_FLIGHT` batches are written at the same time (each
//! holds one database connection while it runs).
//!
//! Guarantees are those of one request at a time: a request is answered 202 only after its
//! message is committed; a batch that fails as a whole fails each of its requests (503 when
//! Postgres cannot be reached), and a batch refused for its data is retried message by message,
//! so one bad message cannot fail its neighbours. The `XADD`s run in the writer, not in the
//! request: a client that disconnects after the commit no longer leaves its message to the
//! reconciler.

use std::time::SystemTime;

use opentelemetry::Context;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use shared::batch::Batcher;
use shared::jobs::SendJob;
use shared::redis::RedisConn;
use sqlx::PgPool;

use super::enqueue::{self, Stream};
use super::store::{self, NewMessage};

/// Most messages one statement stores.
pub const MAX_BATCH: usize = 128;

/// One request's message, and its request span when tracing is on.
pub struct Accept {
    pub message: NewMessage,
    pub span: Option<Context>,
}

/// Why a message was not stored; the request maps it to 503 or 500.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Postgres could not be reached (or the pool had no connection in time).
    Unavailable(String),
    /// Anything else.
    Internal(String),
}

impl Failure {
    fn of(e: &sqlx::Error) -> Failure {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolClosed => Failure::Unavailable(format!("{e:#}")),
            other => Failure::Internal(format!("{other:#}")),
        }
    }

    fn is_unavailable(&self) -> bool {
        matches!(self, Failure::Unavailable(_))
    }
}

/// The stored message's status (`pending`, or `failed` when every recipient is suppressed).
pub type Accepted = Result<String, Failure>;

#[derive(Clone)]
pub struct Accepter {
    batcher: Batcher<Accept, Accepted>,
}

impl Accepter {
    /// Starts the writer; must be called inside the Tokio runtime.
    pub fn spawn(
        db: PgPool,
        redis: RedisConn,
        stream: Stream,
        tracer: shared::telemetry::Tracer,
        in_flight: usize,
    ) -> Self {
        let batcher = Batcher::spawn(MAX_BATCH, in_flight, move |batch: Vec<Accept>| {
            let (db, redis, stream, tracer) =
                (db.clone(), redis.clone(), stream.clone(), tracer.clone());
            async move { Ok(write(&db, &redis, &stream, &tracer, batch).await) }
        });
        Self { batcher }
    }

    /// Stores `accept` (with whatever else is queued) and adds its stream entry; returns once
    /// both are done.
    pub async fn accept(&self, accept: Accept) -> Accepted {
        self.batcher
            .run(accept)
            .await
            .unwrap_or_else(|e| Err(Failure::Internal(format!("{e:#}"))))
    }
}

async fn write(
    db: &PgPool,
    redis: &RedisConn,
    stream: &Stream,
    tracer: &shared::telemetry::Tracer,
    batch: Vec<Accept>,
) -> Vec<Accepted> {
    let started = SystemTime::now();
    let messages: Vec<&NewMessage> = batch.iter().map(|a| &a.message).collect();
    let results = insert_batch(db, &messages).await;
    let stored = SystemTime::now();
    metrics::histogram!(shared::metrics::ACCEPT_BATCH_MESSAGES).record(messages.len() as f64);
    metrics::histogram!(shared::metrics::ACCEPT_BATCH_DURATION).record(
        stored
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64(),
    );
    for (a, r) in batch.iter().zip(&results) {
        if let Some(cx) = &a.span {
            let error = r.as_ref().err().map(|e| format!("{e:?}"));
            span(
                tracer,
                store::INSERT_SPAN,
                store::span_attributes(),
                cx,
                started,
                stored,
                error,
            );
        }
    }
    // Wake a worker for every stored message that needs one, all at once (the connection
    // pipelines them). A failed XADD only delays the message until the reconciler re-adds it.
    let xadds = batch
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, Ok(status) if status == "pending"))
        .map(|(a, _)| async move {
            let job = SendJob {
                message_id: a.message.id,
                traceparent: a.message.traceparent.clone(),
            };
            let start = SystemTime::now();
            let result = enqueue::xadd(redis, stream, &job).await;
            if let Err(e) = &result {
                if shared::redis::breaker::cannot_reach(e) {
                    // Per message: the Redis breaker logs the outage itself, once.
                    tracing::debug!(message_id = %job.message_id, error = %e,
                        "could not add the send job to the stream; the reconciler will re-add it");
                } else {
                    tracing::warn!(message_id = %job.message_id, error = %e,
                        "could not add the send job to the stream; the reconciler will re-add it");
                }
            }
            if let Some(cx) = &a.span {
                let error = result.as_ref().err().map(|e| e.to_string());
                span(
                    tracer,
                    enqueue::XADD_SPAN,
                    enqueue::span_attributes(),
                    cx,
                    start,
                    SystemTime::now(),
                    error,
                );
            }
        });
    futures::future::join_all(xadds).await;
    results
}

/// Inserts the batch in one statement; if Postgres refuses it for anything but being
/// unreachable, inserts message by message so that only the message at fault fails.
pub async fn insert_batch(db: &PgPool, messages: &[&NewMessage]) -> Vec<Accepted> {
    let whole = match db.acquire().await {
        Ok(mut conn) => store::insert_messages(&mut conn, messages)
            .await
            .map_err(|e| Failure::of(&e)),
        Err(e) => Err(Failure::of(&e)),
    };
    match whole {
        Ok(statuses) => statuses.into_iter().map(Ok).collect(),
        Err(e) if e.is_unavailable() || messages.len() == 1 => {
            vec![Err(e); messages.len()]
        }
        Err(e) => {
            tracing::warn!(error = ?e, n = messages.len(),
                "a batch of messages was refused; storing them one by one");
            let mut results = Vec::with_capacity(messages.len());
            for m in messages {
                let one = match db.acquire().await {
                    Ok(mut conn) => store::insert_messages(&mut conn, std::slice::from_ref(m))
                        .await
                        .map(|mut s| s.remove(0))
                        .map_err(|e| Failure::of(&e)),
                    Err(e) => Err(Failure::of(&e)),
                };
                results.push(one);
            }
            results
        }
    }
}

/// A finished client span under the request's span.
fn span(
    tracer: &shared::telemetry::Tracer,
    name: &'static str,
    attributes: Vec<opentelemetry::KeyValue>,
    parent: &Context,
    start: SystemTime,
    end: SystemTime,
    error: Option<String>,
) {
    if let Some(cx) = tracer.start_at(name, SpanKind::Client, parent, attributes, start) {
        let span = cx.span();
        if let Some(e) = error {
            span.set_status(Status::error(e));
        }
        span.end_with_timestamp(end.max(start));
    }
}
