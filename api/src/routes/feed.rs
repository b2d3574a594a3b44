//! `GET /api/v1/events`: the pull feed. Every published event (one with a registry `type`) the
//! token may see, oldest first, a page at a time; `next_cursor` is where the next page starts.
//! A consumer that was down reads on from its last cursor and misses nothing, without webhooks.
//!
//! The cursor follows commit order, not id order. Ids are taken when a row is inserted, so a
//! transaction that commits late can hold a smaller id than events already handed out. So each
//! event carries its transaction's id (`xid`), the feed orders by `(xid, id)`, and it only hands
//! out events of transactions older than every transaction still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`): those are all finished, and every transaction
//! that commits later has a larger `xid` than anything already returned. The price: an event
//! waits until every transaction that started before it has ended, so a long transaction
//! anywhere on the server (an idle-in-transaction session, a long report) holds the feed back
//! for as long as it runs (docs/OPERATIONS.md).
//!
//! Long polling: with `Prefer: wait=N` (RFC 7240, as for sends) an empty page is answered as
//! soon as an event arrives, or after N seconds (at most 30).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::message_scope;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::routes::common::event::{EVENT_COLUMNS, Event};
use crate::routes::common::{ErrorBody, Page};
use crate::send::wait;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(feed))
}

/// How often a long poll looks for new events.
const POLL_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The `next_cursor` of the previous page (opaque); absent: from the first event.
    #[param(value_type = Option<String>, pattern = "^[0-9]{1,20}-[0-9]{1,19}$")]
    pub after: Option<String>,
    /// Events per page, 1 or more (default 50). A larger value than 200 is capped to 200.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
}

/// A page of the feed.
#[derive(Serialize, ToSchema)]
pub struct FeedPage {
    success: bool,
    /// Oldest first; empty when nothing new has committed.
    events: Vec<Event>,
    /// Pass it as `after` for the next page. The same as `after` when the page is empty.
    #[schema(pattern = "^[0-9]{1,20}-[0-9]{1,19}$", example = "812-10452")]
    next_cursor: String,
}

/// A position in the feed: the last event handed out, as `(transaction id, event id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    xid: u64,
    id: i64,
}

impl Cursor {
    const START: Cursor = Cursor { xid: 0, id: 0 };

    fn parse(raw: &str) -> ApiResult<Cursor> {
        let invalid = || ApiError::validation("after", "is not a cursor this feed gave out");
        let (xid, id) = raw.split_once('-').ok_or_else(invalid)?;
        let digits = |s: &str, most: usize| {
            !s.is_empty() && s.len() <= most && s.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(xid, 20) || !digits(id, 19) {
            return Err(invalid());
        }
        // The longest numbers can be past what the types hold; such a cursor is past every event
        // there can be, so it reads as the largest one.
        let xid: u128 = xid.parse().map_err(|_| invalid())?;
        let id: u128 = id.parse().map_err(|_| invalid())?;
        Ok(Cursor {
            xid: u64::try_from(xid).unwrap_or(u64::MAX),
            id: i64::try_from(id).unwrap_or(i64::MAX),
        })
    }

    fn render(self) -> String {
        format!("{}-{}", self.xid, self.id)
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    event: Event,
    xid: String,
}

/// `GET /events`: published events after `after`, oldest first (commit order).
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "mail",
    params(
        FeedQuery,
        ("Prefer" = Option<String>, Header, description = "RFC 7240. `wait=N` holds an empty page until an event arrives or N seconds (at most 30) have passed, then answers with `Preference-Applied: wait=N`."),
    ),
    responses((status = 200, description = "A page of events the token may see: every message's events for an admin token, a user token's own messages' otherwise", body = FeedPage), (status = 400, description = "VALIDATION_ERROR: `after` is not a cursor, or `limit` is not a whole number of 1 or more", body = ErrorBody))
)]
async fn feed(
    State(state): State<AppState>,
    Auth(p): Auth,
    headers: HeaderMap,
    Query(q): Query<FeedQuery>,
) -> ApiResult<Response> {
    let after = match q.after.as_deref() {
        None => Cursor::START,
        Some(raw) => Cursor::parse(raw)?,
    };
    let page = Page {
        limit: q.limit,
        offset: None,
    };
    let (limit, _) = page.resolve()?;
    let (scope_email, scope_token) = message_scope(&p);
    let wait = wait::requested(&headers);
    let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
    let rows = loop {
        let rows = read_page(&state, after, limit, scope_email.as_deref(), scope_token).await?;
        if !rows.is_empty() || tokio::time::Instant::now() + POLL_EVERY > deadline {
            break rows;
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    let next = match rows.last() {
        Some(last) => Cursor {
            xid: last.xid.parse().map_err(|_| {
                ApiError::Internal(anyhow::anyhow!(
                    "transaction id {:?} is not a number",
                    last.xid
                ))
            })?,
            id: last.event.id,
        },
        None => after,
    };
    let body = FeedPage {
        success: true,
        events: rows.into_iter().map(|r| r.event).collect(),
        next_cursor: next.render(),
    };
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if let Some(wait) = wait {
        let headers = response.headers_mut();
        for (name, value) in [wait::applied(wait), wait::vary()] {
            headers.insert(name, value);
        }
    }
    Ok(response)
}

/// One page after `after`: only events of transactions that have all ended (see the module's
/// comment), in `(xid, id)` order.
async fn read_page(
    state: &AppState,
    after: Cursor,
    limit: i64,
    scope_email: Option<&str>,
    scope_token: i64,
) -> ApiResult<Vec<Row>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {EVENT_COLUMNS}, e.xid::text as xid
           from delivery_events e
           join messages m on m.id = e.message_id
           left join recipients r on r.id = e.recipient_id
          where e.type is not null
            and (e.xid, e.id) > ($1::text::xid8, $2)
            and e.xid < pg_snapshot_xmin(pg_current_snapshot())
            and ($3::text is null or m.from_email = $3 or m.token_id = $4)
          order by e.xid, e.id
          limit $5"
    )))
    .bind(after.xid.to_string())
    .bind(after.id)
    .bind(scope_email)
    .bind(scope_token)
    .bind(limit)
    .fetch_all(&state.db)
    .await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused() {
        let c = Cursor {
            xid: 812,
            id: 10452,
        };
        assert_eq!(Cursor::parse(&c.render()).unwrap(), c);
        assert_eq!(Cursor::parse("0-0").unwrap(), Cursor::START);
        // Past anything that can exist: read as the end.
        assert_eq!(
            Cursor::parse("99999999999999999999-9999999999999999999").unwrap(),
            Cursor {
                xid: u64::MAX,
                id: i64::MAX
            }
        );
        for bad in [
            "",
            "12",
            "-1-2",
            "1--2",
            "a-1",
            "1-a",
            "1-2-3",
            " 1-2",
            "1-99999999999999999999",
        ] {
            assert_eq!(
                Cursor::parse(bad).err().map(|e| e.code()),
                Some("VALIDATION_ERROR"),
                "{bad:?}"
            );
        }
    }
}
