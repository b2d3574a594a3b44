#!/usr/bin/env bash
# Statistics benchmark (issue 7): 10,000,000 recipient rows generated in SQL, then
#   1. p50/p95 of GET /stats/delivery (group_by day, hour, domain) and GET /stats/domain/{d} for a
#      30-day range, over HTTP against the release build, for all mail, the busiest sending domain
#      and its busiest address;
#   2. one figure checked against a direct count over the raw rows (and how long that count takes);
#   3. rollup maintenance: batched, committed UPDATEs of 1000 and 500 recipients through the
#      statement triggers, one session and two at once.
# Uses its own database (mailapi_stats_bench), dropped at the end. Needs the local stack.
#
#   bench/stats.sh                              # 10M recipients (about 10 minutes here)
#   BENCH_RECIPIENTS=1000000 bench/stats.sh     # a smaller run
#
# docs/BENCHMARKS.md, "Statistics" records the numbers with the command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source /etc/mailapi/mailapi.env
TARGET=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p api
API=$TARGET/release/mailapi-api

RECIPIENTS=${BENCH_RECIPIENTS:-10000000}
PER_MESSAGE=4
MESSAGES=$((RECIPIENTS / PER_MESSAGE))
DAYS=30
REQUESTS=${BENCH_REQUESTS:-100}
PORT=${BENCH_PORT:-18090}
DB=mailapi_stats_bench
base=${MAILAPI_DATABASE_URL%/*}
export MAILAPI_DATABASE_URL="$base/$DB"
export MAILAPI_KEY_PREFIX="statsbench-$$"
export MAILAPI_LISTEN="127.0.0.1:$PORT"
export MAILAPI_RATE_LIMIT_PER_MINUTE=1000000000
export MAILAPI_RATE_LIMIT_PER_HOUR=1000000000
export MAILAPI_LOG_FORMAT=json RUST_LOG=warn
q() { psql "$MAILAPI_DATABASE_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }

api_pid=
cleanup() {
    [[ -n $api_pid ]] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
    psql "$base/mailapi" -X -q -c "drop database if exists $DB" >/dev/null 2>&1 || true
    redis-cli --scan --pattern "statsbench-$$:*" | xargs -r redis-cli del >/dev/null
}
trap cleanup EXIT

step() { printf '\n== %s (t=%ss)\n' "$*" "$SECONDS"; }

step "database $DB, migrations"
psql "$base/mailapi" -X -q -c "drop database if exists $DB" -c "create database $DB" >/dev/null
$API migrate >/dev/null
q -c "insert into domains (domain, active) select 'd' || g || '.bench', true from generate_series(0, 49) g"

step "generate $MESSAGES messages x $PER_MESSAGE = $RECIPIENTS recipients over $DAYS days (triggers off), then stats_rebuild()"
t0=$SECONDS
q -c "alter table recipients disable trigger recipients_stats_insert"
q -v messages="$MESSAGES" -v days="$DAYS" -v per_message="$PER_MESSAGE" \
    -f bench/stats-generate.sql >/dev/null
q -c "alter table recipients enable trigger recipients_stats_insert"
echo "raw rows: $((SECONDS - t0)) s"
t0=$SECONDS
q -c "select stats_rebuild()" >/dev/null
echo "stats_rebuild(): $((SECONDS - t0)) s"
t0=$SECONDS
# 500,000 inbound events through the insert trigger, one statement per day.
q <<SQL
select format(\$f\$
insert into inbound_events (domain, recipient, sender, sender_domain, status, occurred_at)
select 'd' || (i %% 50) || '.bench', 'sender0@d' || (i %% 50) || '.bench', 'x@s' || (i %% 97) || '.test',
       's' || (i %% 97) || '.test',
       case when i %% 20 = 0 then 'rejected' when i %% 20 = 1 then 'spam' else 'accepted' end,
       date_trunc('hour', now()) - interval '$DAYS days' + (i * interval '$DAYS days' / 500000)
  from generate_series(%s * (500000 / $DAYS) + 1, (%s + 1) * (500000 / $DAYS)) i
\$f\$, g, g) from generate_series(0, $DAYS - 1) g
\gexec
SQL
echo "500,000 inbound events through the trigger: $((SECONDS - t0)) s"
q -c "analyze" 2>/dev/null || true
q -c "select relname as table, n_live_tup as rows
        from pg_stat_user_tables
       where relname in ('messages', 'recipients', 'inbound_events') or relname like 'stats\_%'
       order by 1"

step "API (release build) on :$PORT"
$API >"/tmp/stats-bench-api.log" 2>&1 &
api_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
TOKEN=$($API token create --admin --name stats-bench)

start=$(date -u -d "$DAYS days ago" +%Y-%m-%dT%H:%M:%SZ)
end=$(date -u +%Y-%m-%dT%H:%M:%SZ)
range="start_date=$start&end_date=$end"
big_domain=$(q -At -c "select from_domain from messages group by 1 order by count(*) desc limit 1")
big_sender=$(q -At -c "select from_email from messages where from_domain = '$big_domain'
                        group by 1 order by count(*) desc limit 1")

measure() { # name path: REQUESTS sequential requests on one keep-alive connection
    local name=$1 url="http://127.0.0.1:$PORT/api/v1$2" args=()
    curl -sf -o /dev/null -H "X-MAILAPI-TOKEN: $TOKEN" "$url" || { echo "$name: request failed" >&2; exit 1; }
    for _ in $(seq "$REQUESTS"); do args+=(-o /dev/null "$url"); done
    curl -s -H "X-MAILAPI-TOKEN: $TOKEN" -w '%{time_total}\n' "${args[@]}" | sort -n | awk -v name="$name" '
        { t[NR] = $1 * 1000 }
        END { printf "%-44s p50 %6.1f ms   p95 %6.1f ms   max %6.1f ms   (%d requests)\n",
                     name, t[int(NR * 0.5)], t[int(NR * 0.95)], t[NR], NR }'
}

step "p50/p95 over HTTP, 30-day range $start .. $end"
for group in day hour domain; do
    measure "delivery all, group_by=$group" "/stats/delivery?$range&group_by=$group"
    measure "delivery sender=$big_domain, $group" "/stats/delivery?$range&group_by=$group&sender=$big_domain"
    measure "delivery sender=$big_sender, $group" "/stats/delivery?$range&group_by=$group&sender=$big_sender"
done
measure "domain/$big_domain" "/stats/domain/$big_domain?$range"
measure "domain/$big_domain, whole days" "/stats/domain/$big_domain?start_date=${start:0:10}&end_date=${end:0:10}"

# Periods to the second (docs/STATS.md, "Periods"): the same days with both bounds on whole
# hours (rollups only), and with partial edges of different lengths, inside the generated data.
first_day=$(date -u -d "$((DAYS - 1)) days ago" +%Y-%m-%d)
last_day=$(date -u -d "2 days ago" +%Y-%m-%d)
step "periods to the second: $first_day .. $last_day, whole hours against partial edges"
for case in "whole hours|T10:00:00Z|T09:59:59Z" \
            "edges 43+45 min (32 min raw)|T10:17:00Z|T09:44:59Z" \
            "edges 15+15 min (30 min raw)|T10:45:00Z|T09:14:59Z" \
            "edges 29+30 min (59 min raw)|T10:31:00Z|T09:29:59Z"; do
    IFS='|' read -r label from to <<<"$case"
    edges="start_date=$first_day$from&end_date=$last_day$to"
    for group in day domain; do
        measure "all, $group, $label" "/stats/delivery?$edges&group_by=$group"
        measure "$big_domain, $group, $label" "/stats/delivery?$edges&group_by=$group&sender=$big_domain"
    done
    measure "domain/$big_domain, $label" "/stats/domain/$big_domain?$edges"
done
# Exact to the second: the worst case above against a direct count.
edges="start_date=${first_day}T10:31:00Z&end_date=${last_day}T09:29:59Z"
api=$(curl -s -H "X-MAILAPI-TOKEN: $TOKEN" "http://127.0.0.1:$PORT/api/v1/stats/delivery?$edges" |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["total_sent"], s["delivered"], s["rejected"])')
direct=$(q -At -F ' ' -c "
    select count(*) filter (where r.status <> 'pending'), count(*) filter (where r.status = 'sent'),
           count(*) filter (where r.status in ('failed', 'suppressed'))
      from recipients r join messages m on m.id = r.message_id
     where m.created_at >= '${first_day}T10:31:00Z' and m.created_at < '${last_day}T09:30:00Z'")
echo "edges, all mail (total delivered rejected): API $api, direct count $direct"
[[ $api == "$direct" ]] || { echo "MISMATCH" >&2; exit 1; }

step "one figure against a direct count over the raw rows"
api=$(curl -s -H "X-MAILAPI-TOKEN: $TOKEN" "http://127.0.0.1:$PORT/api/v1/stats/delivery?$range&sender=$big_domain" |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["total_sent"], s["delivered"], s["bounced"], s["deferred"], s["rejected"])')
period=$(curl -s -H "X-MAILAPI-TOKEN: $TOKEN" "http://127.0.0.1:$PORT/api/v1/stats/delivery?$range&sender=$big_domain" |
    python3 -c 'import json,sys; p=json.load(sys.stdin)["period"]; print(p["start"], p["end"])')
read -r pstart pend <<<"$period"
t0=$(date +%s%N)
direct=$(q -At -F ' ' -c "
    select count(*) filter (where r.status <> 'pending'), count(*) filter (where r.status = 'sent'),
           count(*) filter (where r.status = 'bounced'), count(*) filter (where r.status = 'deferred'),
           count(*) filter (where r.status in ('failed', 'suppressed'))
      from recipients r join messages m on m.id = r.message_id
     where m.from_domain = '$big_domain' and m.created_at >= '$pstart'
       and m.created_at < timestamptz '$pend' + interval '1 second'")
t1=$(date +%s%N)
echo "API summary (total delivered bounced deferred rejected): $api"
echo "direct count over the raw rows:                          $direct ($(((t1 - t0) / 1000000)) ms)"
[[ $api == "$direct" ]] || { echo "MISMATCH" >&2; exit 1; }

step "rollup maintenance: batched UPDATEs through the triggers"
first=$(q -At -c "select min(id) from recipients")
echo "-- one session, 1000 rows per UPDATE"
q -v batches=50 -v batch=1000 -v first_id="$first" -f bench/stats-updates.sql | grep -v '^$'
echo "-- one session, 500 rows per UPDATE"
q -v batches=50 -v batch=500 -v first_id="$((first + 100000))" -f bench/stats-updates.sql | grep -v '^$'
echo "-- two sessions at once (e.g. log follower and bounce reader), 1000 rows per UPDATE"
t0=$(date +%s%N)
q -v batches=40 -v batch=1000 -v first_id="$((first + 200000))" -f bench/stats-updates.sql >/tmp/stats-bench-s1.txt &
p1=$!
q -v batches=40 -v batch=1000 -v first_id="$((first + 300000))" -f bench/stats-updates.sql >/tmp/stats-bench-s2.txt &
p2=$!
wait $p1 $p2
t1=$(date +%s%N)
rows=$(cat /tmp/stats-bench-s1.txt /tmp/stats-bench-s2.txt | awk -F'|' '$1 ~ /^ all/ { s += $3 } END { print s }')
ms=$(((t1 - t0) / 1000000))
echo "two sessions: $rows status changes in $ms ms = $((rows * 1000 / ms)) per second"

step "rollups still equal the raw rows after the updates"
after=$(q -At -F ' ' -c "
    select count(*) filter (where r.status <> 'pending'), count(*) filter (where r.status = 'sent')
      from recipients r")
rollup=$(q -At -F ' ' -c "
    select sum(sent + bounced + deferred + failed + suppressed), sum(sent)
      from stats_outbound_hourly where scope = ''")
echo "raw: $after   rollup: $rollup"
[[ $after == "$rollup" ]] || { echo "MISMATCH" >&2; exit 1; }
step "done"
