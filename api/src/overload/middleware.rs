//! The parts of load shedding that run in the request path or beside it: the in-flight limit
//! ([`limit_in_flight`]), the send check ([`check_send`]) and the backlog sampler
//! ([`run_sampler`]). They need the application state, which holds the measurements
//! ([`super::Overload`]); kept apart so that the state does not import them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::overload::{MIN_RETRY_AFTER, ShedReason};
use crate::state::AppState;

/// Measures every `sample_every` until the process stops. A failed measurement keeps the last
/// one, which goes stale (and stops shedding) after `STALE_AFTER` (10 s).
pub async fn run_sampler(state: AppState) {
    let mut tick = tokio::time::interval(state.overload.limits.sample_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = state
            .overload
            .measure(&state.db, &state.redis, &state.keys)
            .await
        {
            tracing::debug!(error = format!("{e:#}"), "could not measure the backlog");
        }
    }
}

/// Middleware: counts requests under `/api/v1` and refuses the one past the limit.
pub async fn limit_in_flight(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/api/v1/") || path == "/api/v1/queue" {
        return next.run(req).await;
    }
    let overload = &state.overload;
    let before = overload.in_flight.fetch_add(1, Ordering::AcqRel);
    let _guard = InFlight(Arc::clone(&state.inner));
    if before >= overload.limits.max_in_flight {
        metrics::counter!(shared::metrics::SHED, "reason" => ShedReason::InFlight.as_str())
            .increment(1);
        return ApiError::Overloaded {
            reason: ShedReason::InFlight.as_str(),
            retry_after_secs: MIN_RETRY_AFTER,
        }
        .into_response();
    }
    next.run(req).await
}

/// Gives the slot back however the request ends (answered, failed, or its client gone).
struct InFlight(Arc<crate::state::Inner>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.overload.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Refuses a send while the backlog is over its thresholds.
pub fn check_send(state: &AppState) -> Result<(), ApiError> {
    match state.overload.shed_send() {
        None => Ok(()),
        Some(shed) => {
            let reason = shed.first_reason().unwrap_or(ShedReason::Backlog).as_str();
            metrics::counter!(shared::metrics::SHED, "reason" => reason).increment(1);
            Err(ApiError::Overloaded {
                reason,
                retry_after_secs: shed.retry_after_secs,
            })
        }
    }
}
