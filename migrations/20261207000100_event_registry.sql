-- The event registry (issue 18): the events senders are told about, read by the pull feed
-- (`GET /api/v1/events`), by `GET /mail/{id}/events` and, later, by webhooks. One table, the one
-- delivery tracking already writes in the same transaction as each status change; extended, not
-- duplicated.
--
-- - `type` is the registry's name of an event (`message.accepted`, `recipient.delivered`...),
--   derived from `event` and whether the row is about a recipient. Rows the registry has no name
--   for (the worker's `retry` of a submission, the message-level `failed` beside each recipient's)
--   stay visible in `GET /mail/{id}/events` with a null type and are not published.
-- - `seq` numbers a message's published events 1, 2, 3... in the order they were written, so a
--   receiver can order them and drop a repeat. Each writer takes the next numbers from
--   `messages.event_seq` while it holds the message's row (every status writer locks it first,
--   see shared/src/delivery.rs), so numbers are never shared or skipped. A check keeps `seq` and
--   `type` null together.
-- - `xid` is the writing transaction's id (`pg_current_xact_id()`, PostgreSQL 13+). The feed
--   pages by `(xid, id)` and only hands out events of transactions older than every transaction
--   still running (`pg_snapshot_xmin`), so an event whose transaction commits late is never
--   skipped by a cursor that has moved past it (api/src/routes/feed.rs).
--
-- Existing rows are numbered here, in id order per message, and get `xid` 1, older than any real
-- transaction (they are all committed). The stored generated column and the numbering rewrite
-- the table: quick at the sizes this has run at, worth a maintenance window on a big one.
alter table messages add column event_seq integer not null default 0;

alter table delivery_events
    add column type text generated always as (
        case
            when recipient_id is null then
                case event
                    when 'accepted' then 'message.accepted'
                    when 'submitted' then 'message.submitted'
                end
            else
                case event
                    when 'sent' then 'recipient.delivered'
                    when 'deferred' then 'recipient.deferred'
                    when 'bounced' then 'recipient.bounced'
                    when 'failed' then 'recipient.failed'
                    when 'suppressed' then 'recipient.suppressed'
                end
        end) stored,
    add column seq integer,
    add column xid xid8;

update delivery_events e
   set seq = n.seq
  from (select id, row_number() over (partition by message_id order by id) as seq
          from delivery_events
         where type is not null) n
 where e.id = n.id;

update delivery_events set xid = '1' where xid is null;

alter table delivery_events
    alter column xid set default pg_current_xact_id(),
    alter column xid set not null;

update messages m
   set event_seq = n.last
  from (select message_id, max(seq) as last from delivery_events group by message_id) n
 where m.id = n.message_id and n.last is not null;

alter table delivery_events
    add constraint delivery_events_seq_type_check check ((seq is null) = (type is null));

create unique index delivery_events_message_seq_idx on delivery_events (message_id, seq);
create index delivery_events_feed_idx on delivery_events (xid, id) where type is not null;
