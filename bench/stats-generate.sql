-- Bulk data for bench/stats.sh: :messages messages with :per_message recipients each, spread
-- evenly over the :days days before the current hour, one day per statement. Deterministic (hashes,
-- not random()): 50 sending domains (skewed: d0 sends ~14%), 10 addresses each, 200 recipient
-- domains (skewed: r0 takes ~40%), statuses 90% sent, 3% bounced, 2% deferred, 1% failed,
-- 1% suppressed, 3% pending.
\set ON_ERROR_STOP on
select :messages::bigint as m, :days::int as d, :per_message::int as k \gset
create temp table gen_days as select g as day from generate_series(0, :d - 1) g;
select format($f$
with p as (select %1$s::bigint as m, %2$s::int as d, %3$s::int as day),
msg as (
    insert into messages (id, from_email, from_domain, subject, status, rfc_message_id, payload,
                          size_bytes, created_at, submitted_at)
    select lpad(to_hex(i), 32, '0')::uuid,
           'sender' || (i %% 10) || '@d' || dom || '.bench', 'd' || dom || '.bench', 'bench',
           'submitted', 'bench-' || i, '{}', 2000,
           date_trunc('hour', now()) - make_interval(days => p.d)
               + (i - 1) * (make_interval(days => p.d) / p.m),
           now()
      from p, generate_series(p.day * (p.m / p.d) + 1, (p.day + 1) * (p.m / p.d)) i,
           lateral (select floor(50 * power(((i * 7919) %% 10007) / 10007.0, 2))::int as dom) x
    returning id, created_at)
insert into recipients (message_id, email, domain, kind, status, created_at)
select msg.id, 'u' || k || '-' || substr(msg.id::text, 25) || '@' || rd, rd, 'to',
       case when r < 0.90 then 'sent' when r < 0.93 then 'bounced' when r < 0.95 then 'deferred'
            when r < 0.96 then 'failed' when r < 0.97 then 'suppressed' else 'pending' end,
       msg.created_at
  from msg, generate_series(1, %4$s) k,
       lateral (select 'r' || floor(200 * power(h1, 4))::int || '.bench' as rd, h2 as r
                  from (select abs(hashtext(msg.id::text || k)) / 2147483648.0 as h1,
                               abs(hashtext(k || msg.id::text)) / 2147483648.0 as h2) h) x
$f$, :m, :d, day, :k) from gen_days order by day
\gexec
