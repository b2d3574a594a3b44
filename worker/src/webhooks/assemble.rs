//! Assembly: turns deliveries into the requests that carry them. A request's body and
//! `webhook-id` are fixed here, once, so every retry sends the same bytes under the same id.
//!
//! Per-message order: a delivery is taken only when no delivery of the same message to the same
//! endpoint with a smaller `seq` is still pending, and no event of that message with a smaller
//! `seq` is still ahead of the fan-out's cursor. So one round takes at most one event per
//! message and endpoint, the smallest; the next one waits until that one's request succeeded
//! or was dead-lettered.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shared::events::{EVENT_COLUMNS, Event};

use super::Wake;
use crate::context::WorkerContext;
use crate::error::Result;

/// Deliveries taken per round.
const ROUND: i64 = 2000;
/// Requests waiting per endpoint, in multiples of `MAILAPI_WEBHOOK_CONCURRENCY`, beyond which
/// no more are made for it.
const AHEAD: usize = 64;

#[derive(sqlx::FromRow)]
struct Ready {
    id: i64,
    endpoint_id: i64,
    event_id: i64,
    batch_size: i32,
}

/// One request to make: its endpoint, its events in order, and the deliveries it carries.
struct Planned {
    endpoint_id: i64,
    deliveries: Vec<i64>,
    events: Vec<i64>,
    batch: bool,
}

/// One round: whether a full round was taken (there may be more at once).
pub async fn step(ctx: &WorkerContext, wake: &Wake) -> Result<bool> {
    let mut tx = ctx.db.begin().await?;
    // Just in time: an endpoint with enough requests already waiting gets no more for now, so
    // a slow or failing receiver's backlog stays as deliveries (one row each) instead of also
    // becoming requests ahead of need.
    let ahead =
        i64::try_from(ctx.settings.webhooks.concurrency_per_endpoint * AHEAD).unwrap_or(i64::MAX);
    let ready: Vec<Ready> = sqlx::query_as(
        "with enough as (
            select endpoint_id from webhook_requests where state = 'pending'
             group by endpoint_id having count(*) >= $2)
         select d.id, d.endpoint_id, d.event_id, w.batch_size
           from webhook_deliveries d join webhook_endpoints w on w.id = d.endpoint_id
          where d.state = 'pending' and d.request_id is null and w.enabled
            and d.endpoint_id not in (select endpoint_id from enough)
            and not exists (
                select 1 from webhook_deliveries p
                 where p.endpoint_id = d.endpoint_id and p.message_id = d.message_id
                   and p.seq < d.seq and p.state = 'pending')
            and not exists (
                select 1 from delivery_events e2, webhook_fanout f
                 where e2.message_id = d.message_id and e2.seq < d.seq
                   and (e2.xid, e2.id) > (f.xid, f.event_id))
          order by d.id
          limit $1
          for update of d skip locked",
    )
    .bind(ROUND)
    .bind(ahead)
    .fetch_all(&mut *tx)
    .await?;
    if ready.is_empty() {
        return Ok(false);
    }
    let plans = plan(&ready);
    let event_ids: Vec<i64> = ready.iter().map(|r| r.event_id).collect();
    let events: Vec<Event> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {EVENT_COLUMNS} from delivery_events e
           left join recipients r on r.id = e.recipient_id
          where e.id = any($1)"
    )))
    .bind(&event_ids)
    .fetch_all(&mut *tx)
    .await?;
    let events: HashMap<i64, Event> = events.into_iter().map(|e| (e.id, e)).collect();
    let ids: Vec<i64> = sqlx::query_scalar(
        "select nextval(pg_get_serial_sequence('webhook_requests', 'id'))
           from generate_series(1, $1)",
    )
    .bind(plans.len() as i64)
    .fetch_all(&mut *tx)
    .await?;
    let mut rows = Rows::default();
    for (plan, request_id) in plans.iter().zip(&ids) {
        rows.push(plan, *request_id, &events);
    }
    sqlx::query(
        "insert into webhook_requests (id, endpoint_id, webhook_id, body, event_count, first_event_at)
         select * from unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::int[],
                              $6::timestamptz[])",
    )
    .bind(&rows.id)
    .bind(&rows.endpoint)
    .bind(&rows.webhook_id)
    .bind(&rows.body)
    .bind(&rows.count)
    .bind(&rows.first_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update webhook_deliveries d set request_id = u.request_id
           from unnest($1::bigint[], $2::bigint[]) as u(id, request_id)
          where d.id = u.id",
    )
    .bind(&rows.delivery)
    .bind(&rows.delivery_request)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    wake.send.notify_one();
    Ok(ready.len() as i64 >= ROUND)
}

/// Groups ready deliveries by endpoint, in order, into requests of up to its batch size.
fn plan(ready: &[Ready]) -> Vec<Planned> {
    let mut by_endpoint: Vec<(i64, i32, Vec<&Ready>)> = Vec::new();
    for r in ready {
        match by_endpoint.iter_mut().find(|(id, ..)| *id == r.endpoint_id) {
            Some((_, _, list)) => list.push(r),
            None => by_endpoint.push((r.endpoint_id, r.batch_size, vec![r])),
        }
    }
    let mut plans = Vec::new();
    for (endpoint_id, batch_size, list) in by_endpoint {
        let size = usize::try_from(batch_size.max(1)).unwrap_or(1);
        for chunk in list.chunks(size) {
            plans.push(Planned {
                endpoint_id,
                deliveries: chunk.iter().map(|r| r.id).collect(),
                events: chunk.iter().map(|r| r.event_id).collect(),
                batch: size > 1,
            });
        }
    }
    plans
}

/// The columns of the requests and of the deliveries' links to them.
#[derive(Default)]
struct Rows {
    id: Vec<i64>,
    endpoint: Vec<i64>,
    webhook_id: Vec<String>,
    body: Vec<String>,
    count: Vec<i32>,
    first_at: Vec<Option<DateTime<Utc>>>,
    delivery: Vec<i64>,
    delivery_request: Vec<i64>,
}

impl Rows {
    fn push(&mut self, plan: &Planned, request_id: i64, events: &HashMap<i64, Event>) {
        let envelopes: Vec<_> = plan
            .events
            .iter()
            .filter_map(|id| events.get(id))
            .filter_map(Event::envelope)
            .collect();
        let (webhook_id, body) = match (plan.batch, envelopes.as_slice()) {
            (false, [one]) => (format!("evt_{}", one.data.id), serde_json::to_string(one)),
            _ => (
                format!("batch_{request_id}"),
                serde_json::to_string(&envelopes),
            ),
        };
        self.id.push(request_id);
        self.endpoint.push(plan.endpoint_id);
        self.webhook_id.push(webhook_id);
        // Serializing strings, numbers and timestamps cannot fail.
        self.body.push(body.unwrap_or_default());
        self.count.push(envelopes.len() as i32);
        self.first_at
            .push(envelopes.iter().map(|e| e.data.occurred_at).min());
        for d in &plan.deliveries {
            self.delivery.push(*d);
            self.delivery_request.push(request_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_follow_each_endpoints_batch_size_in_order() {
        let r = |id, endpoint_id, batch_size| Ready {
            id,
            endpoint_id,
            event_id: id * 10,
            batch_size,
        };
        let plans = plan(&[r(1, 7, 1), r(2, 8, 2), r(3, 7, 1), r(4, 8, 2), r(5, 8, 2)]);
        let shape: Vec<(i64, Vec<i64>, bool)> = plans
            .iter()
            .map(|p| (p.endpoint_id, p.deliveries.clone(), p.batch))
            .collect();
        assert_eq!(
            shape,
            vec![
                (7, vec![1], false),
                (7, vec![3], false),
                (8, vec![2, 4], true),
                (8, vec![5], true),
            ]
        );
        assert_eq!(plans[2].events, vec![20, 40]);
    }
}
