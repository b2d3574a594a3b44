//! `GET /stats/domain/{domain}`: mail sent from and received by one hosted domain.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use shared::address::DomainName;

use super::edges;
use super::period::Period;
use super::rollup::{self, Counts};
use super::{DateParam, PeriodView};
use crate::access::{self, Permission, StatsScope};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::routes::common::Domain;
use crate::routes::common::ErrorBody;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/stats/domain/{domain}", get(domain))
}

/// How many entries `top_recipients` and `top_senders` list.
const TOP: usize = 10;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RangeQuery {
    /// First second counted: ISO 8601 date or date-time (default: 7 days before the end).
    #[param(value_type = Option<DateParam>, inline)]
    start_date: Option<String>,
    /// Last second counted, included: ISO 8601 date-time, or a date for its whole day (default:
    /// now).
    #[param(value_type = Option<DateParam>, inline)]
    end_date: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct DomainCount {
    domain: String,
    count: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Outbound {
    /// Every recipient counted: `delivered + bounced + deferred + rejected`.
    total: i64,
    delivered: i64,
    bounced: i64,
    deferred: i64,
    /// Refused by us or the MTA at submission (suppressed or failed): part of `total`, as in
    /// `/stats/delivery`'s `summary`, shown so the parts add up to it.
    rejected: i64,
    top_recipients: Vec<DomainCount>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct InboundView {
    total: i64,
    accepted: i64,
    rejected: i64,
    spam: i64,
    top_senders: Vec<DomainCount>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct DomainResponse {
    success: bool,
    domain: String,
    period: PeriodView,
    outbound: Outbound,
    inbound: InboundView,
}

/// `GET /stats/domain/{domain}`: mail sent from and received by one hosted domain.
#[utoipa::path(
    get,
    path = "/api/v1/stats/domain/{domain}",
    tag = "stats",
    params(("domain" = Domain, Path, description = "Domain name"), RangeQuery),
    responses((status = 200, description = "Outbound and inbound counts for one domain over the period", body = DomainResponse), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "NOT_FOUND: no such domain", body = ErrorBody))
)]
async fn domain(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(raw): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<DomainResponse>> {
    let period = Period::parse(q.start_date.as_deref(), q.end_date.as_deref(), Utc::now())?;
    let name = DomainName::parse(&raw).map_err(|_| {
        ApiError::invalid(
            "INVALID_DOMAIN",
            Some("domain".to_owned()),
            format!("{raw:?} is not a domain name"),
        )
    })?;
    let domain = access::require_domain(&state.db, &p, Permission::ViewStats, name.as_str())
        .await?
        .domain;
    let scope = StatsScope::Domain(name);
    let split = period.split();

    // Hours from the rollups, corrected from the raw rows at the edges, in one snapshot.
    let mut db = rollup::snapshot(&state.db).await?;
    let (from, to) = period.hours;
    let hours = rollup::outbound_by_hour(&mut db, &scope, from, to).await?;
    let edges = edges::outbound(&mut db, &scope, &period).await?;
    let mut out = Counts::default();
    for c in hours.values().chain(edges.iter().map(|e| &e.counts)) {
        out.add(c);
    }
    let mut by_domain = rollup::outbound_by_rcpt_domain(&mut db, &scope, &split).await?;
    edges::add_to_rcpt_domains(&mut by_domain, &edges);
    let mut recipients: Vec<(String, i64)> =
        by_domain.into_iter().map(|(d, c)| (d, c.total())).collect();
    recipients.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    recipients.truncate(TOP);

    let inbound = rollup::inbound_totals(&mut db, &domain, &period).await?;
    let senders = rollup::inbound_top_senders(&mut db, &domain, &period, TOP as i64).await?;
    let top = |v: Vec<(String, i64)>| {
        v.into_iter()
            .map(|(domain, count)| DomainCount { domain, count })
            .collect()
    };
    Ok(Json(DomainResponse {
        success: true,
        domain,
        period: PeriodView::from(&period),
        outbound: Outbound {
            total: out.total(),
            delivered: out.sent,
            bounced: out.bounced,
            deferred: out.deferred,
            rejected: out.rejected(),
            top_recipients: top(recipients),
        },
        // Spam is mail accepted into a mailbox and flagged: part of `accepted` (docs/STATS.md).
        inbound: InboundView {
            total: inbound.accepted + inbound.spam + inbound.rejected,
            accepted: inbound.accepted + inbound.spam,
            rejected: inbound.rejected,
            spam: inbound.spam,
            top_senders: top(senders),
        },
    }))
}
