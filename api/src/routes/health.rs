//! `/health` (liveness: the process answers) and `/ready` (Postgres and Redis answer).

use crate::routes::docs::bodies;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    security(()),
    responses((status = 200, description = "Alive: {success, status: ok}", body = bodies::Health))
)]
pub async fn health() -> Json<Value> {
    Json(json!({ "success": true, "status": "ok" }))
}

#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    security(()),
    responses((status = 200, description = "Postgres and Redis answer: {success, status: ready, checks}", body = bodies::Ready), (status = 503, description = "A dependency is down: {success: false, status: not_ready, checks}", body = bodies::Ready))
)]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
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
    let check = |up: bool| if up { "ok" } else { "unavailable" };
    (
        code,
        Json(json!({
            "success": ok,
            "status": if ok { "ready" } else { "not_ready" },
            "checks": { "postgres": check(db_ok), "redis": check(redis_ok) },
        })),
    )
}
