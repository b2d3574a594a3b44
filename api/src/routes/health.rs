//! `/health` (liveness: the process answers) and `/ready` (Postgres and Redis answer).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    success: bool,
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// `ready` or `not_ready`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    Ready,
    NotReady,
}

/// One dependency: `ok` or `unavailable`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Ok,
    Unavailable,
}

impl Check {
    fn of(up: bool) -> Self {
        if up { Check::Ok } else { Check::Unavailable }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReadyChecks {
    postgres: Check,
    redis: Check,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// True when every dependency answers.
    success: bool,
    status: Readiness,
    checks: ReadyChecks,
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    security(()),
    responses((status = 200, description = "Alive: {success, status: ok}", body = Health))
)]
pub async fn health() -> Json<Health> {
    Json(Health {
        success: true,
        status: "ok",
    })
}

#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    security(()),
    responses((status = 200, description = "Postgres and Redis answer: {success, status: ready, checks}", body = Ready), (status = 503, description = "A dependency is down: {success: false, status: not_ready, checks}", body = Ready))
)]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let timeout = Duration::from_secs(2);
    let db = tokio::time::timeout(timeout, sqlx::query("select 1").execute(&state.db)).await;
    let db_ok = matches!(db, Ok(Ok(_)));
    let mut conn = state.redis.clone();
    let ping = tokio::time::timeout(
        timeout,
        deadpool_redis::redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await;
    let redis_ok = matches!(ping, Ok(Ok(_)));
    let ok = db_ok && redis_ok;
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Ready {
            success: ok,
            status: if ok {
                Readiness::Ready
            } else {
                Readiness::NotReady
            },
            checks: ReadyChecks {
                postgres: Check::of(db_ok),
                redis: Check::of(redis_ok),
            },
        }),
    )
}
