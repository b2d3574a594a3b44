-- Delivery and domain statistics (spec sections 9-10), kept as rollups so a query costs the number
-- of buckets in its range, never the number of recipients. docs/STATS.md defines every figure.
--
-- Who maintains them: Postgres itself. Recipient statuses are written by the API's insert, the
-- worker (record_failed), the delivery-log follower and the bounce reader; statement-level triggers with
-- transition tables see all of them, and a batch of N changes costs one upsert per distinct bucket
-- instead of N row triggers. A recipient counts once, in its current status: a change subtracts
-- one from the old status's column and adds one to the new one (deferred -> sent moves the count).
-- Statuses are columns of one row per bucket, not rows: a change is one row update, and a query
-- reads a fifth of the rows.
--
-- What is counted: every recipient whose status is not `pending` (pending = not yet tried, in
-- neither the figures nor the rollups, which also keeps the accept path free of rollup writes).
--
-- Bucket time: the hour (UTC) of the MESSAGE's `created_at`, not of the status change. A message
-- accepted at 10:05 and delivered at 11:30 counts in 10:00; so a period's figures describe the
-- mail accepted in that period, and they never move between buckets as the mail settles (only
-- between statuses). The same choice makes a bucket's key fixed for the life of a recipient.
--
-- Scopes: every change is counted under three scopes: '' (all mail), the sending domain
-- (`messages.from_domain`) and the sender address (`messages.from_email`). A domain never contains
-- '@' and an address always does, so one text column keys all three without ambiguity.
--
-- Granularity: a 30-day range must cost a few thousand rows even for the whole system, so
--   * stats_outbound_hourly       (scope '' and domain): per hour; the summary and the day/hour
--                                 breakdowns read only these rows (720 per month);
--   * stats_outbound_hourly_rcpt  (every scope): per hour and recipient domain; what sender-address
--                                 queries read, and the partial first/last day of a range for the
--                                 other scopes;
--   * stats_outbound_daily_rcpt   (scope '' and domain): per UTC day and recipient domain; the
--                                 whole days of a range for the per-domain breakdown.
-- A sender address keeps only its hourly per-recipient-domain rows: cheap to read for one address
-- (docs/BENCHMARKS-stats.md), while its totals and daily rows would add writes to every change.
--
-- Inbound (inbound_events, insert-only) mirrors that per receiving domain, keyed by the event's
-- `occurred_at` hour and the sender's domain ('<>' for the null sender).
--
-- Keys are `collate "C"`: byte order is all a key needs, and it makes every index comparison of
-- an upsert a memcmp instead of a locale-aware comparison.
--
-- Locking: concurrent writers upsert rows in key order within each statement, so two transactions
-- that each change statuses in one statement never wait on each other in a cycle. Deleting recipients (or messages) does not subtract: the rollups
-- are the statistics' history and outlive any retention job; `stats_rebuild()` recomputes them
-- from the raw rows when wanted.

create table stats_outbound_hourly (
    scope      text collate "C" not null,
    bucket     timestamptz not null,
    sent       bigint      not null default 0,
    bounced    bigint      not null default 0,
    deferred   bigint      not null default 0,
    failed     bigint      not null default 0,
    suppressed bigint      not null default 0,
    constraint stats_outbound_hourly_pkey primary key (scope, bucket)
) with (fillfactor = 80);

create table stats_outbound_hourly_rcpt (
    scope       text collate "C" not null,
    bucket      timestamptz not null,
    rcpt_domain text collate "C" not null,
    sent        bigint      not null default 0,
    bounced     bigint      not null default 0,
    deferred    bigint      not null default 0,
    failed      bigint      not null default 0,
    suppressed  bigint      not null default 0,
    constraint stats_outbound_hourly_rcpt_pkey primary key (scope, bucket, rcpt_domain)
) with (fillfactor = 80);

create table stats_outbound_daily_rcpt (
    scope       text collate "C" not null,
    day         date   not null,
    rcpt_domain text collate "C" not null,
    sent        bigint not null default 0,
    bounced     bigint not null default 0,
    deferred    bigint not null default 0,
    failed      bigint not null default 0,
    suppressed  bigint not null default 0,
    constraint stats_outbound_daily_rcpt_pkey primary key (scope, day, rcpt_domain)
) with (fillfactor = 80);

create table stats_inbound_hourly (
    domain   text collate "C" not null,
    bucket   timestamptz not null,
    accepted bigint      not null default 0,
    rejected bigint      not null default 0,
    spam     bigint      not null default 0,
    constraint stats_inbound_hourly_pkey primary key (domain, bucket)
) with (fillfactor = 80);

create table stats_inbound_hourly_sender (
    domain        text collate "C" not null,
    bucket        timestamptz not null,
    sender_domain text collate "C" not null,
    accepted      bigint      not null default 0,
    rejected      bigint      not null default 0,
    spam          bigint      not null default 0,
    constraint stats_inbound_hourly_sender_pkey primary key (domain, bucket, sender_domain)
) with (fillfactor = 80);

create table stats_inbound_daily_sender (
    domain        text collate "C" not null,
    day           date   not null,
    sender_domain text collate "C" not null,
    accepted      bigint not null default 0,
    rejected      bigint not null default 0,
    spam          bigint not null default 0,
    constraint stats_inbound_daily_sender_pkey primary key (domain, day, sender_domain)
) with (fillfactor = 80);

-- Adds `ns[i]` recipients (negative: subtracts) sent by `from_emails[i]` (of `from_domains[i]`)
-- in a message created in hour `buckets[i]`, to `rcpt_domains[i]`, now in `statuses[i]`, to every
-- outbound rollup. The one place the triggers learn which keys a recipient counts under (they only
-- collect deltas); stats_rebuild() builds the same keys set-based.
create function stats_outbound_add(from_domains text[], from_emails text[],
                                   buckets timestamptz[], rcpt_domains text[], statuses text[],
                                   ns integer[])
returns void
language plpgsql
as $$
begin
    insert into stats_outbound_hourly as s (scope, bucket, sent, bounced, deferred, failed,
                                            suppressed)
    select * from (
        select k.scope, d.bucket,
               coalesce(sum(d.n) filter (where d.status = 'sent'), 0) as sent,
               coalesce(sum(d.n) filter (where d.status = 'bounced'), 0) as bounced,
               coalesce(sum(d.n) filter (where d.status = 'deferred'), 0) as deferred,
               coalesce(sum(d.n) filter (where d.status = 'failed'), 0) as failed,
               coalesce(sum(d.n) filter (where d.status = 'suppressed'), 0) as suppressed
          from unnest(from_domains, buckets, statuses, ns) as d(from_domain, bucket, status, n)
         cross join lateral (values (''), (d.from_domain)) as k(scope)
         group by k.scope, d.bucket) g
     where (sent, bounced, deferred, failed, suppressed) <> (0, 0, 0, 0, 0)
     order by scope, bucket
    on conflict (scope, bucket) do update
       set sent = s.sent + excluded.sent, bounced = s.bounced + excluded.bounced,
           deferred = s.deferred + excluded.deferred, failed = s.failed + excluded.failed,
           suppressed = s.suppressed + excluded.suppressed;

    insert into stats_outbound_hourly_rcpt as s (scope, bucket, rcpt_domain, sent, bounced,
                                                 deferred, failed, suppressed)
    select * from (
        select k.scope, d.bucket, d.rcpt_domain,
               coalesce(sum(d.n) filter (where d.status = 'sent'), 0) as sent,
               coalesce(sum(d.n) filter (where d.status = 'bounced'), 0) as bounced,
               coalesce(sum(d.n) filter (where d.status = 'deferred'), 0) as deferred,
               coalesce(sum(d.n) filter (where d.status = 'failed'), 0) as failed,
               coalesce(sum(d.n) filter (where d.status = 'suppressed'), 0) as suppressed
          from unnest(from_domains, from_emails, buckets, rcpt_domains, statuses, ns)
               as d(from_domain, from_email, bucket, rcpt_domain, status, n)
         cross join lateral (values (''), (d.from_domain), (d.from_email)) as k(scope)
         group by k.scope, d.bucket, d.rcpt_domain) g
     where (sent, bounced, deferred, failed, suppressed) <> (0, 0, 0, 0, 0)
     order by scope, bucket, rcpt_domain
    on conflict (scope, bucket, rcpt_domain) do update
       set sent = s.sent + excluded.sent, bounced = s.bounced + excluded.bounced,
           deferred = s.deferred + excluded.deferred, failed = s.failed + excluded.failed,
           suppressed = s.suppressed + excluded.suppressed;

    insert into stats_outbound_daily_rcpt as s (scope, day, rcpt_domain, sent, bounced, deferred,
                                                failed, suppressed)
    select * from (
        select k.scope, (d.bucket at time zone 'UTC')::date as day, d.rcpt_domain,
               coalesce(sum(d.n) filter (where d.status = 'sent'), 0) as sent,
               coalesce(sum(d.n) filter (where d.status = 'bounced'), 0) as bounced,
               coalesce(sum(d.n) filter (where d.status = 'deferred'), 0) as deferred,
               coalesce(sum(d.n) filter (where d.status = 'failed'), 0) as failed,
               coalesce(sum(d.n) filter (where d.status = 'suppressed'), 0) as suppressed
          from unnest(from_domains, buckets, rcpt_domains, statuses, ns)
               as d(from_domain, bucket, rcpt_domain, status, n)
         cross join lateral (values (''), (d.from_domain)) as k(scope)
         group by 1, 2, 3) g
     where (sent, bounced, deferred, failed, suppressed) <> (0, 0, 0, 0, 0)
     order by scope, day, rcpt_domain
    on conflict (scope, day, rcpt_domain) do update
       set sent = s.sent + excluded.sent, bounced = s.bounced + excluded.bounced,
           deferred = s.deferred + excluded.deferred, failed = s.failed + excluded.failed,
           suppressed = s.suppressed + excluded.suppressed;
end
$$;

-- The deltas of a set of (message, recipient domain, status, count) rows, as the arrays
-- stats_outbound_add() takes, with each message's sender and hour looked up once. `offset 0`
-- keeps the lookup a per-message index probe: the planner cannot estimate a transition table
-- and would otherwise sometimes hash the whole messages table for a handful of rows.
create type stats_outbound_delta as (message_id uuid, rcpt_domain text, status text, n integer);

create function stats_outbound_apply(deltas stats_outbound_delta[])
returns void
language plpgsql
as $$
declare
    fds text[];
    fes text[];
    hs timestamptz[];
    rds text[];
    sts text[];
    ns integer[];
begin
    select array_agg(m.from_domain), array_agg(m.from_email), array_agg(m.bucket),
           array_agg(d.rcpt_domain), array_agg(d.status), array_agg(d.n)
      into fds, fes, hs, rds, sts, ns
      from unnest(deltas) d
     cross join lateral (select from_domain, from_email,
                                date_trunc('hour', created_at, 'UTC') as bucket
                           from messages
                          where id = d.message_id
                         offset 0) m;
    if fds is not null then
        perform stats_outbound_add(fds, fes, hs, rds, sts, ns);
    end if;
end
$$;

-- New recipients: the API stores them `pending` (not counted) or `suppressed` (counted at once).
create function stats_recipients_inserted()
returns trigger
language plpgsql
as $$
declare
    deltas stats_outbound_delta[];
begin
    select array_agg((message_id, domain, status, cnt)::stats_outbound_delta)
      into deltas
      from (select message_id, domain, status, count(*)::integer as cnt
              from new_rows
             where status <> 'pending'
             group by message_id, domain, status) d;
    if deltas is not null then
        perform stats_outbound_apply(deltas);
    end if;
    return null;
end
$$;

-- Changed recipients: minus one under the old key, plus one under the new. Transition tables
-- cannot be combined with a column list (`update of status`), so every update fires this and
-- rows whose key did not change (updated_at, smtp_response...) drop out of the join.
create function stats_recipients_updated()
returns trigger
language plpgsql
as $$
declare
    deltas stats_outbound_delta[];
begin
    select array_agg((message_id, domain, status, delta)::stats_outbound_delta)
      into deltas
      from (select v.message_id, v.domain, v.status, sum(v.delta)::integer as delta
              from old_rows o
              join new_rows n on n.id = o.id
             cross join lateral (values (o.message_id, o.domain, o.status, -1),
                                        (n.message_id, n.domain, n.status, 1))
                   as v(message_id, domain, status, delta)
             where (o.message_id, o.domain, o.status) is distinct from
                   (n.message_id, n.domain, n.status)
               and v.status <> 'pending'
             group by v.message_id, v.domain, v.status
            having sum(v.delta) <> 0) d;
    if deltas is not null then
        perform stats_outbound_apply(deltas);
    end if;
    return null;
end
$$;

create trigger recipients_stats_insert
    after insert on recipients
    referencing new table as new_rows
    for each statement execute function stats_recipients_inserted();

create trigger recipients_stats_update
    after update on recipients
    referencing old table as old_rows new table as new_rows
    for each statement execute function stats_recipients_updated();

create function stats_inbound_inserted()
returns trigger
language plpgsql
as $$
begin
    insert into stats_inbound_hourly as s (domain, bucket, accepted, rejected, spam)
    select domain, date_trunc('hour', occurred_at, 'UTC'),
           count(*) filter (where status = 'accepted'), count(*) filter (where status = 'rejected'),
           count(*) filter (where status = 'spam')
      from new_rows
     group by 1, 2
     order by 1, 2
    on conflict (domain, bucket) do update
       set accepted = s.accepted + excluded.accepted, rejected = s.rejected + excluded.rejected,
           spam = s.spam + excluded.spam;

    insert into stats_inbound_hourly_sender as s (domain, bucket, sender_domain, accepted,
                                                  rejected, spam)
    select domain, date_trunc('hour', occurred_at, 'UTC'), coalesce(sender_domain, '<>'),
           count(*) filter (where status = 'accepted'), count(*) filter (where status = 'rejected'),
           count(*) filter (where status = 'spam')
      from new_rows
     group by 1, 2, 3
     order by 1, 2, 3
    on conflict (domain, bucket, sender_domain) do update
       set accepted = s.accepted + excluded.accepted, rejected = s.rejected + excluded.rejected,
           spam = s.spam + excluded.spam;

    insert into stats_inbound_daily_sender as s (domain, day, sender_domain, accepted, rejected,
                                                 spam)
    select domain, (occurred_at at time zone 'UTC')::date, coalesce(sender_domain, '<>'),
           count(*) filter (where status = 'accepted'), count(*) filter (where status = 'rejected'),
           count(*) filter (where status = 'spam')
      from new_rows
     group by 1, 2, 3
     order by 1, 2, 3
    on conflict (domain, day, sender_domain) do update
       set accepted = s.accepted + excluded.accepted, rejected = s.rejected + excluded.rejected,
           spam = s.spam + excluded.spam;
    return null;
end
$$;

create trigger inbound_events_stats_insert
    after insert on inbound_events
    referencing new table as new_rows
    for each statement execute function stats_inbound_inserted();

-- Recomputes every rollup from the raw rows (repair, or a bulk load done with the triggers
-- disabled). Takes the tables' write locks first so no trigger adds to a half-built rollup. Set-
-- based (one aggregate of recipients x messages at the finest grain, then each rollup from it):
-- it must list the same keys as stats_outbound_add(); api/tests/stats.rs checks that a rebuild
-- equals what the triggers maintained.
create function stats_rebuild()
returns void
language plpgsql
as $$
begin
    lock table recipients, inbound_events in share mode;
    truncate stats_outbound_hourly, stats_outbound_hourly_rcpt, stats_outbound_daily_rcpt,
             stats_inbound_hourly, stats_inbound_hourly_sender, stats_inbound_daily_sender;
    drop table if exists pg_temp.stats_rebuild_fine;
    create temp table stats_rebuild_fine as
    select m.from_domain, m.from_email, date_trunc('hour', m.created_at, 'UTC') as bucket,
           r.domain as rcpt_domain,
           (count(*) filter (where r.status = 'sent'))::integer as sent,
           (count(*) filter (where r.status = 'bounced'))::integer as bounced,
           (count(*) filter (where r.status = 'deferred'))::integer as deferred,
           (count(*) filter (where r.status = 'failed'))::integer as failed,
           (count(*) filter (where r.status = 'suppressed'))::integer as suppressed
      from recipients r
      join messages m on m.id = r.message_id
     where r.status <> 'pending'
     group by 1, 2, 3, 4;

    -- Ordered inserts leave each table's heap in key order, as hour-by-hour trigger inserts do.
    insert into stats_outbound_hourly (scope, bucket, sent, bounced, deferred, failed, suppressed)
    select k.scope, f.bucket, sum(f.sent), sum(f.bounced), sum(f.deferred), sum(f.failed),
           sum(f.suppressed)
      from stats_rebuild_fine f cross join lateral (values (''), (f.from_domain)) as k(scope)
     group by 1, 2 order by 1, 2;

    insert into stats_outbound_hourly_rcpt (scope, bucket, rcpt_domain, sent, bounced, deferred,
                                            failed, suppressed)
    select k.scope, f.bucket, f.rcpt_domain, sum(f.sent), sum(f.bounced), sum(f.deferred),
           sum(f.failed), sum(f.suppressed)
      from stats_rebuild_fine f
     cross join lateral (values (''), (f.from_domain), (f.from_email)) as k(scope)
     group by 1, 2, 3 order by 1, 2, 3;

    insert into stats_outbound_daily_rcpt (scope, day, rcpt_domain, sent, bounced, deferred,
                                           failed, suppressed)
    select k.scope, (f.bucket at time zone 'UTC')::date, f.rcpt_domain, sum(f.sent),
           sum(f.bounced), sum(f.deferred), sum(f.failed), sum(f.suppressed)
      from stats_rebuild_fine f cross join lateral (values (''), (f.from_domain)) as k(scope)
     group by 1, 2, 3 order by 1, 2, 3;
    drop table stats_rebuild_fine;

    insert into stats_inbound_hourly (domain, bucket, accepted, rejected, spam)
    select domain, date_trunc('hour', occurred_at, 'UTC'),
           count(*) filter (where status = 'accepted'), count(*) filter (where status = 'rejected'),
           count(*) filter (where status = 'spam')
      from inbound_events group by 1, 2 order by 1, 2;
    insert into stats_inbound_hourly_sender (domain, bucket, sender_domain, accepted, rejected,
                                             spam)
    select domain, date_trunc('hour', occurred_at, 'UTC'), coalesce(sender_domain, '<>'),
           count(*) filter (where status = 'accepted'), count(*) filter (where status = 'rejected'),
           count(*) filter (where status = 'spam')
      from inbound_events group by 1, 2, 3 order by 1, 2, 3;
    insert into stats_inbound_daily_sender (domain, day, sender_domain, accepted, rejected, spam)
    select domain, (occurred_at at time zone 'UTC')::date, coalesce(sender_domain, '<>'),
           count(*) filter (where status = 'accepted'), count(*) filter (where status = 'rejected'),
           count(*) filter (where status = 'spam')
      from inbound_events group by 1, 2, 3 order by 1, 2, 3;
end
$$;

-- Rows that existed before this migration.
select stats_rebuild();
