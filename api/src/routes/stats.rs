//! `GET /stats/delivery` ([`delivery`]) and `GET /stats/domain/{domain}` ([`domain`]), spec
//! sections 9-10, over a [`period`] given to the second: its whole hours read from the rollups in
//! [`rollup`], the partial hours at its [`edges`] counted from the raw rows. The figures are
//! defined in docs/STATS.md. [`dashboard`] serves the page that charts them.

pub mod dashboard;
pub mod delivery;
pub mod domain;
pub mod edges;
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

/// `period` as the spec shows it: the first second and the last second included, which are the
/// requested `start_date` and `end_date` (a date-only end shown as that day's last second).
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
