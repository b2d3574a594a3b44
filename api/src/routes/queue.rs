//! `GET /api/v1/queue` (admin): the sending backlog, its drain rate and whether this process is
//! shedding load (`crate::overload`). It is never shed itself, so it answers during overload.

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::require_admin;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::overload::{self, ShedReason};
use crate::routes::common::ErrorBody;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/queue", get(queue))
}

/// The backlog, measured when asked.
#[derive(Serialize, ToSchema)]
pub struct Queue {
    success: bool,
    /// Messages that are due and not yet submitted (retries whose time has not come are not
    /// counted). Counting stops at 1,000,000; `backlog_capped` says so.
    backlog: u64,
    backlog_capped: bool,
    /// How long the oldest due message has waited, in seconds (0 with no backlog).
    oldest_pending_age_seconds: f64,
    /// Stream entries the workers finished per second over the last ten seconds, as this
    /// process measured it; null until it has two readings, or while Redis is away.
    #[schema(required = true)]
    drain_rate_per_second: Option<f64>,
    /// Requests this API process is working on, and its limit.
    in_flight: usize,
    max_in_flight: usize,
    shedding: Shedding,
    thresholds: Thresholds,
    /// When the backlog was measured.
    #[serde(serialize_with = "crate::time::serialize")]
    measured_at: DateTime<Utc>,
}

/// Whether sends are refused now, and why.
#[derive(Serialize, ToSchema)]
pub struct Shedding {
    /// `true` while `POST /mail/send` answers 503 `OVERLOADED`.
    active: bool,
    /// `backlog` and/or `oldest_age`; empty when not shedding.
    reasons: Vec<ShedReason>,
    /// The `Retry-After` a refused send gets now; null when not shedding.
    #[schema(required = true)]
    retry_after_seconds: Option<u64>,
}

/// The configured thresholds; 0 means the check is off.
#[derive(Serialize, ToSchema)]
pub struct Thresholds {
    /// `MAILAPI_SHED_BACKLOG`.
    backlog: u64,
    /// `MAILAPI_SHED_OLDEST_SECS`.
    oldest_pending_age_seconds: u64,
}

/// `GET /api/v1/queue`: the backlog of due messages, how fast it drains, and load shedding.
#[utoipa::path(
    get,
    path = "/api/v1/queue",
    tag = "queue",
    responses((status = 200, description = "The backlog, measured now", body = Queue), (status = 403, description = "ACCESS_DENIED: admin tokens only", body = ErrorBody))
)]
pub async fn queue(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<JsonResponse<Queue>> {
    require_admin(&p)?;
    let overload = &state.overload;
    let sample = overload
        .measure(&state.db, &state.redis, &state.keys)
        .await
        .map_err(|e| match e.downcast::<sqlx::Error>() {
            Ok(e) => ApiError::from(e),
            Err(e) => ApiError::Internal(e),
        })?;
    let limits = overload.limits();
    let verdict = overload::verdict(limits, &sample);
    Ok(JsonResponse(Queue {
        success: true,
        backlog: sample.backlog,
        backlog_capped: sample.backlog >= overload::BACKLOG_COUNT_CAP as u64,
        oldest_pending_age_seconds: (sample.oldest_age_secs * 1000.0).round() / 1000.0,
        drain_rate_per_second: sample.drain_rate.map(|r| (r * 10.0).round() / 10.0),
        in_flight: overload.in_flight(),
        max_in_flight: limits.max_in_flight,
        shedding: Shedding {
            active: verdict.is_some(),
            reasons: verdict
                .map(|v| v.reasons.iter().flatten().copied().collect())
                .unwrap_or_default(),
            retry_after_seconds: verdict.map(|v| v.retry_after_secs),
        },
        thresholds: Thresholds {
            backlog: limits.shed_backlog,
            oldest_pending_age_seconds: limits.shed_oldest_age.as_secs(),
        },
        measured_at: sample.taken_at,
    }))
}
