-- Rollup maintenance throughput: batched UPDATEs of :batch recipients (consecutive ids, i.e.
-- mail accepted at about the same time, as the delivery-log follower sees it), each committed,
-- through the statement triggers. Four transitions per batch: sent -> pending and pending -> sent
-- touch one rollup key per row; sent -> deferred and deferred -> sent touch two (subtract, add).
-- Variables: batches, batch, first_id (the first recipient id to use).
\set ON_ERROR_STOP on
create temp table if not exists update_timings (kind text, n bigint, secs float8);
truncate update_timings;
select set_config('bench.batches', :'batches', false), set_config('bench.batch', :'batch', false),
       set_config('bench.first_id', :'first_id', false) \gset
do $$
declare
    batches constant int := current_setting('bench.batches')::int;
    size constant int := current_setting('bench.batch')::int;
    lo bigint := current_setting('bench.first_id')::bigint;
    t0 timestamptz;
    k int;
    moved bigint;
begin
    for i in 1..batches loop
        foreach k in array array[0, 1, 2, 3] loop
            t0 := clock_timestamp();
            case k
                when 0 then update recipients set status = 'pending', updated_at = now()
                             where id >= lo and id < lo + size and status = 'sent';
                when 1 then update recipients set status = 'sent', updated_at = now()
                             where id >= lo and id < lo + size and status = 'pending';
                when 2 then update recipients set status = 'deferred', updated_at = now()
                             where id >= lo and id < lo + size and status = 'sent';
                else        update recipients set status = 'sent', updated_at = now()
                             where id >= lo and id < lo + size and status = 'deferred';
            end case;
            get diagnostics moved = row_count;
            commit;
            insert into update_timings
            values ((array['sent->pending', 'pending->sent', 'sent->deferred',
                           'deferred->sent'])[k + 1],
                    moved, extract(epoch from clock_timestamp() - t0));
            commit;
        end loop;
        lo := lo + size;
    end loop;
end
$$;
select kind, count(*) as batches, sum(n) as rows,
       round(sum(n) / sum(secs)) as rows_per_sec,
       round((percentile_cont(0.5) within group (order by secs) * 1000)::numeric, 1) as p50_ms,
       round((percentile_cont(0.95) within group (order by secs) * 1000)::numeric, 1) as p95_ms
  from update_timings group by kind
union all
select 'all', count(*), sum(n), round(sum(n) / sum(secs)), null, null from update_timings
 order by 1;
