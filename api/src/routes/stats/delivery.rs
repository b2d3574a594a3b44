//! `GET /stats/delivery`: the summary and a breakdown by day, hour or recipient domain, for all
//! mail, a sending domain or a sender address.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use shared::address::{DomainName, EmailAddress};

use super::edges;
use super::period::Period;
use super::rollup::{self, Counts};
use super::{DateParam, PeriodView, SenderParam};
use crate::access::{self, StatsScope};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::routes::common::ErrorBody;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new().route("/stats/delivery", get(delivery))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveryQuery {
    /// First second counted: ISO 8601 date or date-time (default: 7 days before the end).
    #[param(value_type = Option<DateParam>, inline)]
    start_date: Option<String>,
    /// Last second counted, included: ISO 8601 date-time, or a date for its whole day (default:
    /// now).
    #[param(value_type = Option<DateParam>, inline)]
    end_date: Option<String>,
    /// A sender address or a sending domain.
    #[param(value_type = Option<SenderParam>, inline)]
    sender: Option<String>,
    /// `day` (default), `hour` or `domain`.
    #[param(value_type = Option<GroupByParam>, inline)]
    group_by: Option<String>,
}

crate::routes::common::text!(
    GroupByParam,
    "`day` (default), `hour` or `domain`.",
    crate::routes::common::Text {
        pattern: Some(GROUP_BY),
        ..Default::default()
    }
);

/// `GroupBy::parse`: one of the three, blanks around it ignored; empty means `day`.
const GROUP_BY: &str = r"^[\t\n\x0B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(day|hour|domain)?[\t\n\x0B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$";

#[derive(Clone, Copy, PartialEq, Eq)]
enum GroupBy {
    Day,
    Hour,
    Domain,
}

impl GroupBy {
    fn parse(raw: Option<&str>) -> ApiResult<Self> {
        match raw.map(str::trim).unwrap_or_default() {
            "" | "day" => Ok(Self::Day),
            "hour" => Ok(Self::Hour),
            "domain" => Ok(Self::Domain),
            other => Err(ApiError::invalid(
                "INVALID_GROUP_BY",
                Some("group_by".to_owned()),
                format!("group_by: {other:?} is not one of day, hour, domain"),
            )),
        }
    }
}

/// `sender` is an address when it has an `@`, else a domain.
fn parse_sender(raw: Option<&str>) -> ApiResult<Option<StatsScope>> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bad = |_| {
        ApiError::invalid(
            "INVALID_SENDER",
            Some("sender".to_owned()),
            format!("sender: {raw:?} is neither an e-mail address nor a domain name"),
        )
    };
    let scope = if raw.contains('@') {
        StatsScope::Sender(EmailAddress::parse(raw).map_err(bad)?)
    } else {
        StatsScope::Domain(DomainName::parse(raw).map_err(bad)?)
    };
    Ok(Some(scope))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Summary {
    total_sent: i64,
    delivered: i64,
    bounced: i64,
    deferred: i64,
    rejected: i64,
    delivery_rate: f64,
}

impl From<&Counts> for Summary {
    fn from(c: &Counts) -> Self {
        Self {
            total_sent: c.total(),
            delivered: c.sent,
            bounced: c.bounced,
            deferred: c.deferred,
            rejected: c.rejected(),
            delivery_rate: delivery_rate(c.sent, c.total()),
        }
    }
}

/// `delivered / total * 100`, rounded half up to one decimal; 0.0 when nothing was sent.
/// Integer arithmetic, so 94.45 is never 94.4 through a binary fraction.
pub fn delivery_rate(delivered: i64, total: i64) -> f64 {
    if total <= 0 {
        return 0.0;
    }
    let tenths = (i128::from(delivered) * 2000 + i128::from(total)) / (2 * i128::from(total));
    // At most 1000 tenths: exactly representable.
    tenths as f64 / 10.0
}

/// One breakdown row: `date`, `hour` or `domain`, then the four figures the spec shows, where
/// `sent` = delivered + bounced + deferred as in its example, and `rejected`, so that the rows
/// add up to the summary (`total_sent` = the sum of `sent + rejected`).
#[derive(Serialize, utoipa::ToSchema)]
struct Row {
    #[serde(skip_serializing_if = "Option::is_none")]
    date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hour: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    /// Delivered + bounced + deferred: the recipients a receiving server was tried for.
    sent: i64,
    delivered: i64,
    bounced: i64,
    deferred: i64,
    /// Refused before reaching a receiving server (failed or suppressed); not in `sent`.
    rejected: i64,
}

impl Row {
    fn new(c: &Counts) -> Self {
        Self {
            date: None,
            hour: None,
            domain: None,
            sent: c.attempted(),
            delivered: c.sent,
            bounced: c.bounced,
            deferred: c.deferred,
            rejected: c.rejected(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct DeliveryResponse {
    success: bool,
    period: PeriodView,
    summary: Summary,
    breakdown: Vec<Row>,
}

/// `GET /stats/delivery`.
#[utoipa::path(
    get,
    path = "/api/v1/stats/delivery",
    tag = "stats",
    params(DeliveryQuery),
    responses((status = 200, description = "Delivery counts over the period, grouped by day, hour or domain", body = DeliveryResponse), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody))
)]
async fn delivery(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<Json<DeliveryResponse>> {
    let period = Period::parse(q.start_date.as_deref(), q.end_date.as_deref(), Utc::now())?;
    let group_by = GroupBy::parse(q.group_by.as_deref())?;
    let requested = parse_sender(q.sender.as_deref())?;
    let scope = access::require_stats_scope(&state.db, &p, requested).await?;

    // Hours from the rollups, corrected from the raw rows at the edges, in one snapshot.
    let mut db = rollup::snapshot(&state.db).await?;
    let (from, to) = period.hours;
    let mut hours = rollup::outbound_by_hour(&mut db, &scope, from, to).await?;
    let edges = edges::outbound(&mut db, &scope, &period).await?;
    edges::add_to_hours(&mut hours, &edges);
    let mut summary = Counts::default();
    for c in hours.values() {
        summary.add(c);
    }
    let breakdown = match group_by {
        GroupBy::Hour => period
            .hour_buckets()
            .map(|h| Row {
                hour: Some(time::format(&h)),
                ..Row::new(&hours.get(&h).copied().unwrap_or_default())
            })
            .collect(),
        GroupBy::Day => {
            let mut days: BTreeMap<_, Counts> = period
                .hour_buckets()
                .map(|h| (rollup::day_of(h), Counts::default()))
                .collect();
            for (h, c) in &hours {
                days.entry(rollup::day_of(*h)).or_default().add(c);
            }
            days.iter()
                .rev()
                .map(|(d, c)| Row {
                    date: Some(d.format("%Y-%m-%d").to_string()),
                    ..Row::new(c)
                })
                .collect()
        }
        GroupBy::Domain => {
            let split = match scope {
                StatsScope::Sender(_) => period.hours_only(),
                StatsScope::All | StatsScope::Domain(_) => period.split(),
            };
            let mut by_domain = rollup::outbound_by_rcpt_domain(&mut db, &scope, &split).await?;
            edges::add_to_rcpt_domains(&mut by_domain, &edges);
            let mut rows: Vec<(String, Counts)> = by_domain.into_iter().collect();
            // Busiest first by everything counted, rejected included, as the summary counts.
            rows.sort_by(|a, b| b.1.total().cmp(&a.1.total()).then_with(|| a.0.cmp(&b.0)));
            rows.into_iter()
                .map(|(d, c)| Row {
                    domain: Some(d),
                    ..Row::new(&c)
                })
                .collect()
        }
    };
    Ok(Json(DeliveryResponse {
        success: true,
        period: PeriodView::from(&period),
        summary: Summary::from(&summary),
        breakdown,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_rate_rounds_half_up_to_one_decimal() {
        assert_eq!(delivery_rate(1180, 1250), 94.4);
        assert_eq!(delivery_rate(0, 0), 0.0);
        assert_eq!(delivery_rate(5, 5), 100.0);
        assert_eq!(delivery_rate(1889, 2000), 94.5); // 94.45 exactly
        assert_eq!(delivery_rate(1, 3), 33.3);
        assert_eq!(delivery_rate(2, 3), 66.7);
    }

    #[test]
    fn group_by_and_sender_are_parsed_once() {
        assert!(GroupBy::parse(None).is_ok_and(|g| g == GroupBy::Day));
        assert_eq!(
            GroupBy::parse(Some("week")).err().map(|e| e.code()),
            Some("INVALID_GROUP_BY")
        );
        assert!(matches!(
            parse_sender(Some("A@Example.com")),
            Ok(Some(StatsScope::Sender(e))) if e.as_str() == "a@example.com"
        ));
        assert!(matches!(
            parse_sender(Some("example.com")),
            Ok(Some(StatsScope::Domain(_)))
        ));
        assert_eq!(
            parse_sender(Some("not a sender")).err().map(|e| e.code()),
            Some("INVALID_SENDER")
        );
    }
}
