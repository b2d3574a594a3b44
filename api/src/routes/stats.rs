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

/// A `start_date`/`end_date` value as `period::Period` reads it: a date, a date-time, or empty
/// (the default). (Whether the period is in order and at most 366 days long depends on both
/// values and the clock: that stays a 400 the document describes only in words.)
pub struct DateParam;

impl utoipa::PartialSchema for DateParam {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{
            AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type,
        };
        let format = |f| {
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .format(Some(SchemaFormat::KnownFormat(f)))
        };
        let empty = ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .max_length(Some(0));
        AnyOfBuilder::new()
            .item(format(KnownFormat::Date))
            .item(format(KnownFormat::DateTime))
            .item(empty)
            .into()
    }
}

impl utoipa::ToSchema for DateParam {}

/// A `sender` value as `delivery::parse_sender` reads it: an address, a domain, or empty.
pub struct SenderParam;

impl utoipa::PartialSchema for SenderParam {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{
            AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type,
        };
        let string = || ObjectBuilder::new().schema_type(SchemaType::new(Type::String));
        AnyOfBuilder::new()
            .item(
                string()
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
                    .max_length(Some(254)),
            )
            .item(
                string()
                    .pattern(Some(crate::routes::common::patterns::DOMAIN))
                    .max_length(Some(253)),
            )
            .item(string().max_length(Some(0)))
            .into()
    }
}

impl utoipa::ToSchema for SenderParam {}

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
