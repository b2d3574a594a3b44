//! `GET /stats/delivery` ([`delivery`]) and `GET /stats/domain/{domain}` ([`domain`]), spec
//! sections 9-10, read from the rollups in [`rollup`] over a [`period`]; the figures are defined in
//! docs/STATS.md. [`dashboard`] serves the page that charts them.

pub mod dashboard;
pub mod delivery;
pub mod domain;
pub mod period;
pub mod rollup;

use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;

use self::period::Period;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(delivery::router())
        .merge(domain::router())
}

/// `period` as the spec shows it: the first second and the last second included.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PeriodView {
    #[serde(serialize_with = "time::serialize")]
    start: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize")]
    end: DateTime<Utc>,
}

impl From<&Period> for PeriodView {
    fn from(p: &Period) -> Self {
        Self {
            start: p.start,
            end: p.last_second(),
        }
    }
}
