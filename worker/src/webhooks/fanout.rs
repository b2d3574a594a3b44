//! Fan-out: reads the event feed in its commit order (the rule of `GET /events`, see
//! `api/src/routes/feed.rs`) and makes one delivery per (endpoint, event) the endpoint wants.
//! One statement does it all, the cursor's move included, under the cursor row's lock: two
//! workers take turns, and a crash either did all of it or none.

use super::Wake;
use crate::context::WorkerContext;
use crate::error::Result;

/// Events read per statement.
const PAGE: i64 = 1000;
/// Which endpoints want an event (`ev`, with its message's sender and token):
/// - enabled, and listing its type or `*`;
/// - not a deferral when the endpoint is `final_only`;
/// - in its scope: all mail, the sender's domain, or the creating token's own mail.
const FAN_OUT: &str = "
with cur as (select xid, event_id from webhook_fanout for update),
ev as (
    select e.id, e.xid, e.type, e.seq, e.message_id, m.from_email, m.token_id
      from delivery_events e join messages m on m.id = e.message_id, cur
     where e.type is not null
       and (e.xid, e.id) > (cur.xid, cur.event_id)
       and e.xid < pg_snapshot_xmin(pg_current_snapshot())
     order by e.xid, e.id
     limit $1),
ins as (
    insert into webhook_deliveries (endpoint_id, event_id, message_id, seq, event_type)
    select w.id, ev.id, ev.message_id, ev.seq, ev.type
      from ev join webhook_endpoints w
        on w.enabled
       and (ev.type = any(w.events) or '*' = any(w.events))
       and not (w.final_only and ev.type = 'recipient.deferred')
       and (w.scope_all
            or w.domain = split_part(ev.from_email, '@', 2)
            or w.scope_email = ev.from_email
            or w.scope_token_id = ev.token_id)
     order by ev.xid, ev.id, w.id
    on conflict (endpoint_id, event_id) do nothing
    returning 1),
moved as (
    update webhook_fanout f set xid = last.xid, event_id = last.id
      from (select xid, id from ev order by xid desc, id desc limit 1) last
     returning 1)
select (select count(*) from ev), (select count(*) from ins), (select count(*) from moved)";

/// One page: whether a full page was read (there may be more at once).
pub async fn step(ctx: &WorkerContext, wake: &Wake) -> Result<bool> {
    let (read, made, _): (i64, i64, i64) = sqlx::query_as(FAN_OUT)
        .bind(PAGE)
        .fetch_one(&ctx.db)
        .await?;
    if made > 0 {
        tracing::debug!(read, made, "webhook deliveries made");
        wake.assemble.notify_one();
    }
    Ok(read >= PAGE)
}
