//! `POST /mail/send, GET /mail/{id}/status, GET /mail/sent`.

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
