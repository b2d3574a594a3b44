//! Accepting a validated message: the one path from request to committed message and stream
//! entry, for requests with and without an `Idempotency-Key`.
//!
//! Without a key (most requests), each request hands its message to the [`Accepter`] and waits.
//! A writer stores every message that queued up meanwhile with ONE statement and one commit
//! ([`store::insert_messages`]), then adds the stream entries of those that need a worker, and
//! only then answers each request. An idle API writes a batch of one at once; under load,
//! requests that arrive while a batch commits go out together in the next one, so the commit
//! rate of Postgres stops bounding the accept rate. Up to `MAILAPI_ACCEPT_BATCH_IN_FLIGHT`
//! batches are written at the same time (each holds one database connection while it runs).
//!
//! With a key, the same statement runs in a transaction of its own that first takes the key's
//! lock and looks for an earlier answer ([`idempotency::check`]) and also records this one
//! ([`idempotency::insert`]): a batch cannot hold one request's lock for its neighbours. The
//! stream entry is then added the same way as a batch's (`Waker`).
//!
//! Guarantees are those of one request at a time: a request is answered 202 only after its
//! message is committed; a batch that fails as a whole fails each of its requests (503 when
//! Postgres cannot be reached), and a batch refused for its data is retried message by message,
//! so one bad message cannot fail its neighbours. The `XADD`s run in the writer, not in the
//! request: a client that disconnects after the commit no longer leaves its message to the
//! reconciler.

use std::time::{Duration, SystemTime};

use opentelemetry::Context;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use shared::batch::Batcher;
use shared::db::DbFailure;
use shared::jobs::SendJob;
use shared::redis::RedisConn;
use shared::status::MessageStatus;
use shared::telemetry::Tracer;
use sqlx::PgPool;

use super::enqueue::{self, Stream};
use super::idempotency::{self, IdempotencyKey, Previous};
use super::store::{self, NewMessage, SendResponse};
use crate::error::ApiError;

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
        match shared::db::classify(e) {
            DbFailure::Unreachable => Failure::Unavailable(format!("{e:#}")),
            DbFailure::Conflict | DbFailure::Refused | DbFailure::Other => {
                Failure::Internal(format!("{e:#}"))
            }
        }
    }

    fn is_unavailable(&self) -> bool {
        matches!(self, Failure::Unavailable(_))
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Unavailable(e) => ApiError::Unavailable(anyhow::anyhow!(e)),
            Failure::Internal(e) => ApiError::Internal(anyhow::anyhow!(e)),
        }
    }
}

/// The stored message's status (`pending`, or `failed` when every recipient is suppressed).
pub type Accepted = Result<MessageStatus, Failure>;

/// What became of a request's message.
#[derive(Debug)]
pub enum Outcome {
    /// Stored now, with this status; its stream entry is added when it is `pending`.
    Stored(MessageStatus),
    /// An earlier request with the same `Idempotency-Key` and body stored it: that answer.
    Replayed(SendResponse),
}

/// A request's `Idempotency-Key`, and what its 202 (stored for replays) counts.
pub struct Keyed<'a> {
    pub key: &'a IdempotencyKey,
    pub recipient_count: usize,
}

/// Adds stream entries for stored messages, each in a client span under its request's.
#[derive(Clone)]
struct Waker {
    redis: RedisConn,
    stream: Stream,
    tracer: Tracer,
}

#[derive(Clone)]
pub struct Accepter {
    db: PgPool,
    batcher: Batcher<Accept, Accepted>,
    waker: Waker,
    /// How long an idempotency record answers replays (`MAILAPI_IDEMPOTENCY_TTL_SECS`).
    idempotency_ttl: Duration,
}

impl Accepter {
    /// Starts the writer; must be called inside the Tokio runtime.
    pub fn spawn(
        db: PgPool,
        redis: RedisConn,
        stream: Stream,
        tracer: Tracer,
        in_flight: usize,
        idempotency_ttl: Duration,
    ) -> Self {
        let waker = Waker {
            redis,
            stream,
            tracer,
        };
        let batcher = {
            let (db, waker) = (db.clone(), waker.clone());
            Batcher::spawn(MAX_BATCH, in_flight, move |batch: Vec<Accept>| {
                let (db, waker) = (db.clone(), waker.clone());
                async move { Ok(write(&db, &waker, batch).await) }
            })
        };
        Self {
            db,
            batcher,
            waker,
            idempotency_ttl,
        }
    }

    /// Stores the message and adds its stream entry; returns once both are done. With a key,
    /// a repeated request gets the first one's answer instead, and a reused key with another
    /// body is refused (422).
    pub async fn accept(
        &self,
        accept: Accept,
        keyed: Option<Keyed<'_>>,
    ) -> Result<Outcome, ApiError> {
        let Some(keyed) = keyed else {
            let status = self
                .batcher
                .run(accept)
                .await
                .unwrap_or_else(|e| Err(Failure::Internal(format!("{e:#}"))))?;
            return Ok(Outcome::Stored(status));
        };
        let token_id = accept.message.token_id;
        let mut tx = self.db.begin().await?;
        if let Previous::Replay(stored) = idempotency::check(&mut tx, keyed.key, token_id).await? {
            tx.rollback().await?;
            return Ok(Outcome::Replayed(stored));
        }
        let started = SystemTime::now();
        let inserted = store::insert_messages(&mut tx, &[&accept.message]).await;
        self.waker
            .insert_span(&accept, started, inserted.as_ref().err());
        let status = inserted?.remove(0);
        let id = accept.message.id;
        let response = store::accepted_response(id, status, None, keyed.recipient_count);
        let ttl =
            chrono::Duration::from_std(self.idempotency_ttl).unwrap_or(chrono::Duration::hours(24));
        idempotency::insert(
            &mut tx,
            keyed.key,
            token_id,
            id,
            &response,
            chrono::Utc::now() + ttl,
        )
        .await?;
        tx.commit().await?;
        if status == MessageStatus::Pending {
            self.waker.wake(&accept).await;
        }
        Ok(Outcome::Stored(status))
    }
}

async fn write(db: &PgPool, waker: &Waker, batch: Vec<Accept>) -> Vec<Accepted> {
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
            let (name, attributes) = (store::INSERT_SPAN, store::span_attributes());
            span(&waker.tracer, name, attributes, cx, started, stored, error);
        }
    }
    // Wake a worker for every stored message that needs one, all at once (the connection
    // pipelines them).
    let xadds = batch
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, Ok(MessageStatus::Pending)))
        .map(|(a, _)| waker.wake(a));
    futures::future::join_all(xadds).await;
    results
}

impl Waker {
    /// Adds `accept`'s stream entry. A failed XADD only delays the message until the
    /// reconciler re-adds it, so it is logged, not returned.
    async fn wake(&self, accept: &Accept) {
        let job = SendJob {
            message_id: accept.message.id,
            traceparent: accept.message.traceparent.clone(),
        };
        let start = SystemTime::now();
        let result = enqueue::xadd(&self.redis, &self.stream, &job).await;
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
        if let Some(cx) = &accept.span {
            let error = result.as_ref().err().map(|e| e.to_string());
            let (name, attributes) = (enqueue::XADD_SPAN, enqueue::span_attributes());
            let end = SystemTime::now();
            span(&self.tracer, name, attributes, cx, start, end, error);
        }
    }

    /// The `insert message` span of a request stored on its own (with a key).
    fn insert_span(&self, accept: &Accept, start: SystemTime, error: Option<&sqlx::Error>) {
        if let Some(cx) = &accept.span {
            let error = error.map(|e| format!("{e:#}"));
            let (name, attributes) = (store::INSERT_SPAN, store::span_attributes());
            let end = SystemTime::now();
            span(&self.tracer, name, attributes, cx, start, end, error);
        }
    }
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
    tracer: &Tracer,
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
