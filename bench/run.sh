#!/usr/bin/env bash
# Benchmarks for the foundation and sending issues, each beside its ceiling measured in the same
# run. Release build; everything on loopback; bounded in time. Needs the local stack
# (deploy/infra-up.sh) and wrk, pgbench, smtp-source (installed here if missing).
#
#   bench/run.sh            # all
#   bench/run.sh tokens     # one of: tokens accept worker logtail latency e2e overload webhooks soak
#                           (soak runs only when named: 30 minutes)
#
# BENCH_API / BENCH_WORKER run other binaries than this checkout's release build (an A/B
# comparison of two builds on the same machine, minutes apart: this VM's speed drifts).
#
# Results are printed; docs/BENCHMARKS.md records them with this command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source /etc/mailapi/mailapi.env
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null
command -v pgbench >/dev/null || apt-get install -y -q postgresql-contrib >/dev/null
cargo build -q --release -p api -p worker
cargo build -q --release -p api --example loadgen
LOADGEN=target/release/examples/loadgen
API=${BENCH_API:-target/release/mailapi-api}
WORKER=${BENCH_WORKER:-target/release/mailapi-worker}
OUT=bench/out
mkdir -p "$OUT"
DURATION=${BENCH_SECONDS:-15}
PORT=${BENCH_PORT:-18080}

# Postfix and Dovecot look domains, mailboxes and aliases up in the main database: it needs its
# tables even where only deploy/infra-up.sh ran (which makes the database, not the schema).
RUST_LOG=warn $API migrate >/dev/null

base=${MAILAPI_DATABASE_URL%/*}
query=
[[ $MAILAPI_DATABASE_URL == *\?* ]] && query="?${MAILAPI_DATABASE_URL#*\?}"
export MAILAPI_DATABASE_URL="$base/mailapi_bench$query"
export MAILAPI_KEY_PREFIX="bench-$$"
export MAILAPI_LISTEN="127.0.0.1:$PORT"
export MAILAPI_RATE_LIMIT_PER_MINUTE=1000000000
export MAILAPI_RATE_LIMIT_PER_HOUR=1000000000
export MAILAPI_LOG_FORMAT=json RUST_LOG=warn

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    redis-cli --scan --pattern "bench-$$:*" | xargs -r redis-cli del >/dev/null
}
trap cleanup EXIT

psql "$base/mailapi$query" -X -q -c "drop database if exists mailapi_bench" -c "create database mailapi_bench" >/dev/null
$API migrate >/dev/null
psql "$MAILAPI_DATABASE_URL" -X -q -c "insert into domains (domain, active) values ('bench.test', true)"
TOKEN=$($API token create --admin --name bench)

start_api() {
    # The accept and worker rows pile up a backlog on purpose (no worker runs while they
    # accept): backlog shedding is off for this API; bench_overload runs its own with it on.
    MAILAPI_SHED_BACKLOG=0 MAILAPI_SHED_OLDEST_SECS=0 $API >"$OUT/api.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return; sleep 0.1; done
    echo "API did not start" >&2; exit 1
}

bench_tokens() {
    echo "== GET /api/v1/tokens/me, 64 connections, ${DURATION}s (auth + Redis rate limit on)"
    wrk -t2 -c64 -d"${DURATION}s" --latency -H "X-MAILAPI-TOKEN: $TOKEN" \
        "http://127.0.0.1:$PORT/api/v1/tokens/me" | tee "$OUT/tokens.txt" | grep -E "Requests/sec|99%|50%|Non-2xx"
}

make_body() {
    # A ~2 KB message.
    python3 -c 'import json; print(json.dumps({"from":"bench@bench.test","to":["r@sink-ok.test"],"subject":"bench","body":{"text":"x"*1900}}))'
}

# The wrk script for sends, with this run's token (the database, and so the token, is new each run).
write_send_lua() {
    local body
    body=$(make_body)
    printf '%s' "$body" >"$OUT/send.json"
    cat >"$OUT/send.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-MAILAPI-TOKEN"] = "$TOKEN"
wrk.body = [[$body]]
LUA
}

# Open-loop load at a fixed rate (api/examples/loadgen.rs): CONNECTIONS keep-alive connections
# sending RATE requests per second in all, spread evenly (no synchronised bursts), latency counted
# from each request's scheduled time. wrk (closed loop) finds the saturation rate; this measures
# the latency a client sees at a given rate below it.
paced_send() {
    local connections=$1 rate=$2 seconds=$3
    $LOADGEN --url "http://127.0.0.1:$PORT/api/v1/mail/send" --body "$OUT/send.json" \
        --header "X-MAILAPI-TOKEN: $TOKEN" --connections "$connections" --rate "$rate" \
        --seconds "$seconds" | tee "$OUT/paced-$connections-$rate.txt"
}

bench_accept() {
    echo "== POST /api/v1/mail/send (2 KB), 64 connections, ${DURATION}s (Postgres commit + XADD)"
    wrk -t2 -c64 -d"${DURATION}s" --latency -s "$OUT/send.lua" \
        "http://127.0.0.1:$PORT/api/v1/mail/send" | tee "$OUT/accept.txt" | grep -E "Requests/sec|99%|50%|Non-2xx"
    echo "== POST /api/v1/mail/send (2 KB), 64 connections paced at ${ACCEPT_RATE:-3000} req/s in all, ${DURATION}s"
    paced_send 64 "${ACCEPT_RATE:-3000}" "$DURATION"
    echo "-- ceiling: redis-benchmark XADD (one entry per command, 50 clients, 200,000 commands)"
    redis-benchmark -q -n 200000 -c 50 XADD "bench-$$:ceiling" MAXLEN '~' 100000 '*' job x | tr '\r' '\n' | tail -n 1
    echo "-- ceiling: pgbench single-row insert commits, 32 clients (connection slots), 10 s"
    psql "$MAILAPI_DATABASE_URL" -X -q -c "create table if not exists pgbench_rows (id bigserial primary key, payload text, created_at timestamptz default now())"
    echo "insert into pgbench_rows (payload) values (repeat('x', 2000));" >"$OUT/insert.sql"
    pgbench -n -c 32 -j 2 -T 10 -f "$OUT/insert.sql" "$MAILAPI_DATABASE_URL" 2>/dev/null | grep -E "^tps|latency average" || true
}

SINK_PORT=2600
# An accept-all sink without -d (no file per message), so that the sink is not the bottleneck.
start_sink() {
    smtp-sink -u mailapi-sink 127.0.0.1:$SINK_PORT 256 >/dev/null 2>&1 &
    pids+=($!)
    sleep 0.5
}

bench_worker() {
    local sink_port=$SINK_PORT n
    n=$(psql "$MAILAPI_DATABASE_URL" -X -At -c "select count(*) from messages where status = 'pending'")
    echo "== one worker submitting $n queued 2 KB messages straight to an accept-all smtp-sink"
    local t0 t1
    t0=$(date +%s.%N)
    MAILAPI_SMTP_PORT=$sink_port MAILAPI_SMTP_USERNAME="" MAILAPI_SMTP_PASSWORD="" \
        MAILAPI_SMTP_POOL_SIZE=${BENCH_SMTP_POOL:-32} MAILAPI_WORKER_CONCURRENCY=${BENCH_CONCURRENCY:-256} MAILAPI_DATABASE_MAX_CONNECTIONS=32 MAILAPI_MTA_LOG_PATH=/nonexistent MAILAPI_WORKER_METRICS_LISTEN=off \
        $WORKER >"$OUT/worker.log" 2>&1 &
    local wpid=$!
    pids+=("$wpid")
    while true; do
        # Cheap (the partial index of pending messages) and not too often: psql itself costs CPU.
        left=$(psql "$MAILAPI_DATABASE_URL" -X -At -c "select exists (select 1 from messages where status = 'pending')")
        [[ $left == f ]] && break
        sleep 0.5
        if (($(date +%s) - ${t0%.*} > 300)); then echo "worker did not finish"; break; fi
    done
    t1=$(date +%s.%N)
    kill $wpid
    python3 -c "print(f'worker: {$n} messages in {$t1-$t0:.2f} s = {$n/($t1-$t0):.0f} msg/s')"
    echo "-- ceiling: smtp-source, 20 sessions, 2 KB, 20000 messages, into the same sink"
    t0=$(date +%s.%N)
    smtp-source -s 20 -l 2048 -m 20000 -f bench@bench.test -t r@sink-ok.test 127.0.0.1:$sink_port
    t1=$(date +%s.%N)
    python3 -c "print(f'smtp-source: 20000 messages in {$t1-$t0:.2f} s = {20000/($t1-$t0):.0f} msg/s')"
}

bench_latency() {
    echo "== 202 -> submitted latency, API under load with one worker submitting to the sink"
    psql "$MAILAPI_DATABASE_URL" -X -q -c "delete from messages"
    MAILAPI_SMTP_PORT=$SINK_PORT MAILAPI_SMTP_USERNAME="" MAILAPI_SMTP_PASSWORD="" \
        MAILAPI_SMTP_POOL_SIZE=${BENCH_SMTP_POOL:-32} MAILAPI_WORKER_CONCURRENCY=${BENCH_CONCURRENCY:-256} MAILAPI_DATABASE_MAX_CONNECTIONS=32 MAILAPI_MTA_LOG_PATH=/nonexistent MAILAPI_WORKER_METRICS_LISTEN=off \
        $WORKER >"$OUT/worker-latency.log" 2>&1 &
    local wpid=$!
    pids+=("$wpid")
    sleep 1
    # Half the accept rate (LATENCY_RATE req/s over LATENCY_CONNECTIONS connections).
    local c=${LATENCY_CONNECTIONS:-64} r=${LATENCY_RATE:-1500}
    echo "-- API paced at $r req/s over $c connections"
    paced_send "$c" "$r" "$DURATION"
    sleep 3
    kill $wpid
    psql "$MAILAPI_DATABASE_URL" -X -At -F ' ' -c "
        select 'submitted', count(*),
               'p50_ms', round(1000 * percentile_cont(0.5) within group (order by extract(epoch from submitted_at - created_at))::numeric, 1),
               'p99_ms', round(1000 * percentile_cont(0.99) within group (order by extract(epoch from submitted_at - created_at))::numeric, 1)
          from messages where submitted_at is not null"
}

bench_logtail() {
    echo "== log follower: lines ingested per second (batched), and log line -> committed status"
    cargo test -q --release -p worker --test it -- --ignored --nocapture \
        logtail::bench:: 2>&1 | grep -E "lines/s|p50|p99" || true
    echo "-- ceiling: pgbench, one client inserting 100-row batches, 10 s"
    psql "$MAILAPI_DATABASE_URL" -X -q -c "create table if not exists pgbench_rows (id bigserial primary key, payload text, created_at timestamptz default now())"
    echo "insert into pgbench_rows (payload) select repeat('x', 200) from generate_series(1, 100);" >"$OUT/insert100.sql"
    pgbench -n -c 1 -T 10 -f "$OUT/insert100.sql" "$MAILAPI_DATABASE_URL" 2>/dev/null |
        awk '/^tps/ { printf "100-row batches: %.0f/s = %.0f rows/s\n", $3, $3 * 100 }' || true
}

# End to end through the real Postfix (issue 22): an approved, DKIM-signed domain, 2 KB messages
# to sink-ok.test through Postfix on 587, one API and one worker with their default settings
# (the worker follows Postfix's log, so "sent" is what the follower recorded). First the ceiling,
# Postfix alone: E2E_SESSIONS (20) SASL sessions submitting E2E_ALONE_MESSAGES (10000) messages,
# timed until Postfix has logged every delivery. Then ours, paced at E2E_RATE req/s (default
# 75 % of that ceiling) for E2E_SECONDS (30): the sustained rate (messages / first 202 to last
# recorded delivery), its ratio to the ceiling, 202 -> sent p50/p99, and the check that no
# message is left non-final while all its recipients are final. With E2E_PROFILE=1 and perf
# installed, the machine is profiled for 10 s mid-run (bench/out/e2e.perf.txt).
POSTFIX_LOG=${MAILAPI_MTA_LOG_PATH:-/var/log/mailapi/postfix.log}

# Lines Postfix logged since byte OFFSET of its log for deliveries to ADDRESS with status=sent.
postfix_sent_since() {
    local offset=$1 address=$2
    tail -c +"$((offset + 1))" "$POSTFIX_LOG" | grep -c "to=<$address>,.*status=sent" || true
}

bench_e2e() {
    local sessions=${E2E_SESSIONS:-20} n=${E2E_ALONE_MESSAGES:-10000} seconds=${E2E_SECONDS:-30}
    local alone_rcpt="alone-$$@sink-ok.test" ours_rcpt="e2e-$$@sink-ok.test"
    cargo build -q --release -p worker --example postfix_alone
    echo "== e2e ceiling: Postfix alone, $sessions SASL sessions on 587, $n 2 KB messages to sink-ok.test, until all are delivered"
    local offset t0 t1 done_count
    offset=$(stat -c %s "$POSTFIX_LOG")
    t0=$(date +%s.%N)
    target/release/examples/postfix_alone --sessions "$sessions" --messages "$n" --to "$alone_rcpt"
    while true; do
        done_count=$(postfix_sent_since "$offset" "$alone_rcpt")
        ((done_count >= n)) && break
        if (($(date +%s) - ${t0%.*} > 600)); then echo "Postfix delivered only $done_count of $n in 600 s"; exit 1; fi
        sleep 0.2
    done
    t1=$(date +%s.%N)
    local alone_rate
    alone_rate=$(python3 -c "print(round($n/($t1-$t0)))")
    echo "postfix alone: $n delivered in $(python3 -c "print(f'{$t1-$t0:.2f}')") s = $alone_rate msg/s"

    local rate=${E2E_RATE:-$(python3 -c "import math; print(math.ceil($alone_rate*0.75))")}
    echo "== e2e: ours through Postfix, an approved DKIM-signed domain, paced at $rate req/s for ${seconds}s"
    # A domain the way users get one: signup, then approval (which makes its DKIM key).
    local domain="e2e-$$.bench.test"
    curl -sf -X POST -H 'Content-Type: application/json' \
        -d "{\"domain\":\"$domain\",\"email\":\"admin@$domain\",\"password\":\"bench-password\",\"name\":\"bench\"}" \
        "http://127.0.0.1:$PORT/api/v1/auth/signup" >/dev/null
    curl -sf -X POST -H "X-MAILAPI-TOKEN: $TOKEN" "http://127.0.0.1:$PORT/api/v1/domains/$domain/approve" >/dev/null
    [[ $(psql "$MAILAPI_DATABASE_URL" -X -At -c "select dkim_private_key is not null from domains where domain = '$domain'") == t ]] ||
        { echo "the approved domain has no DKIM key"; exit 1; }
    python3 -c "import json; print(json.dumps({'from':'admin@$domain','to':['$ours_rcpt'],'subject':'e2e bench','body':{'text':'x'*1900}}))" >"$OUT/e2e.json"
    psql "$MAILAPI_DATABASE_URL" -X -q -c "delete from messages"
    # A sender's database has history: E2E_HISTORY (200000) delivered messages of the last week,
    # each with its recipient and events, analyzed as Postgres's autovacuum would have done
    # (this machine's PostgreSQL runs with autovacuum off). On an empty database every lookup of
    # a few rows scans the whole young table instead, which no deployment with history does.
    local history=${E2E_HISTORY:-200000}
    echo "-- seeding $history delivered messages of history, then VACUUM ANALYZE"
    psql "$MAILAPI_DATABASE_URL" -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
insert into messages (id, token_id, from_email, from_domain, subject, status, rfc_message_id, payload,
                      size_bytes, queue_id, attempts, created_at, submitted_at, completed_at, updated_at)
select gen_random_uuid(), null, 'admin@$domain', '$domain', 'history', 'sent',
       '<history-' || g || '@$domain>', '{}', 2100, 'H' || g, 1,
       now() - interval '7 days' + g * interval '2 seconds', now() - interval '7 days' + g * interval '2 seconds',
       now() - interval '7 days' + g * interval '2 seconds', now() - interval '7 days' + g * interval '2 seconds'
  from generate_series(1, $history) g;
insert into recipients (message_id, email, domain, kind, status, dsn_code, smtp_response, delivered_at,
                        created_at, updated_at)
select id, 'history@sink-ok.test', 'sink-ok.test', 'to', 'sent', '2.0.0', '250 2.0.0 Ok', created_at,
       created_at, created_at
  from messages where subject = 'history';
insert into delivery_events (message_id, event, status, source, occurred_at)
select id, e, e, 'worker', created_at from messages, unnest(array['accepted', 'submitted']) e
 where subject = 'history';
insert into mta_queue_entries (queue_id, rfc_message_id, committed)
select queue_id, rfc_message_id, true from messages where subject = 'history';
SQL
    psql "$MAILAPI_DATABASE_URL" -X -q -c "set client_min_messages = error" -c "vacuum (analyze)" >/dev/null

    MAILAPI_WORKER_METRICS_LISTEN=127.0.0.1:19091 $WORKER >"$OUT/worker-e2e.log" 2>&1 &
    local wpid=$!
    pids+=("$wpid")
    # The follower starts at the beginning of Postfix's log in this new database: let it catch
    # up before the clock starts.
    local lag
    for _ in $(seq 600); do
        lag=$({ curl -sf http://127.0.0.1:19091/metrics || true; } | awk '/^mailapi_log_follower_lag_bytes/ { print $2 }')
        [[ -n $lag && ${lag%.*} -eq 0 ]] && break
        sleep 0.5
    done
    [[ -n $lag && ${lag%.*} -eq 0 ]] || { echo "the log follower did not catch up"; exit 1; }

    # The whole machine for 10 s mid-run (cpu-clock: this VM has no hardware counters): the CPU
    # share of each process, then the hottest functions of the worker, the API and Postgres.
    # Only recorded here: the report is made after the measurement, so that it takes no CPU
    # from the run.
    local perf_pid=
    if [[ ${E2E_PROFILE:-0} == 1 ]] && command -v perf >/dev/null; then
        rm -f "$OUT/e2e.perf" "$OUT/e2e.perf.txt"
        (sleep $((seconds / 2)) && exec perf record -a -e cpu-clock -F 499 -g -o "$OUT/e2e.perf" -- sleep 10 >/dev/null 2>&1) &
        perf_pid=$!
    fi
    local run_started
    run_started=$(psql "$MAILAPI_DATABASE_URL" -X -At -c "select now()")
    $LOADGEN --url "http://127.0.0.1:$PORT/api/v1/mail/send" --body "$OUT/e2e.json" \
        --header "X-MAILAPI-TOKEN: $TOKEN" --connections 64 --rate "$rate" \
        --seconds "$seconds" | tee "$OUT/e2e-paced.txt"
    local open t_end
    t_end=$(($(date +%s) + 180))
    while true; do
        # The run's messages through messages_created_at_idx: scanning all recipients every
        # poll (the history included) took CPU from the drain being measured.
        open=$(psql "$MAILAPI_DATABASE_URL" -X -At -c "
            select count(*) from messages m join recipients r on r.message_id = m.id
             where m.created_at >= '$run_started' and r.status in ('pending', 'deferred')")
        ((open == 0)) && break
        (($(date +%s) > t_end)) && { echo "$open recipients still open 180 s after the load"; break; }
        sleep 1
    done
    psql "$MAILAPI_DATABASE_URL" -X -At -F ' ' -c "
        with r as (select r.status, extract(epoch from r.updated_at - m.created_at) as s,
                          m.created_at, r.updated_at
                     from recipients r join messages m on m.id = r.message_id
                    where m.subject = 'e2e bench')
        select 'messages', count(*),
               'sent', count(*) filter (where status = 'sent'),
               'sustained_msg_per_s', round(count(*) filter (where status = 'sent')
                   / extract(epoch from max(updated_at) - min(created_at))::numeric, 1),
               'ratio_to_postfix_alone', round(count(*) filter (where status = 'sent')
                   / extract(epoch from max(updated_at) - min(created_at))::numeric / $alone_rate, 3),
               'p50_202_to_sent_ms', round(1000 * percentile_cont(0.5) within group (order by s)::numeric, 1),
               'p99_202_to_sent_ms', round(1000 * percentile_cont(0.99) within group (order by s)::numeric, 1),
               'max_ms', round(1000 * max(s)::numeric, 1)
          from r" | tee "$OUT/e2e-result.txt"
    # The same after the first 10 s: the start pays for opening the worker's SMTP pool (each
    # new Postfix smtpd, its SASL login through Dovecot) while the load already runs.
    psql "$MAILAPI_DATABASE_URL" -X -At -F ' ' -c "
        with r as (select extract(epoch from r.updated_at - m.created_at) as s
                     from recipients r join messages m on m.id = r.message_id
                    where m.subject = 'e2e bench'
                      and m.created_at >= (select min(created_at) + interval '10 s' from messages
                                            where subject = 'e2e bench'))
        select 'after_10s: messages', count(*),
               'p50_202_to_sent_ms', round(1000 * percentile_cont(0.5) within group (order by s)::numeric, 1),
               'p99_202_to_sent_ms', round(1000 * percentile_cont(0.99) within group (order by s)::numeric, 1),
               'max_ms', round(1000 * max(s)::numeric, 1)
          from r" | tee -a "$OUT/e2e-result.txt"
    local behind
    behind=$(psql "$MAILAPI_DATABASE_URL" -X -At -c "
        select count(*) from messages m
         where m.status in ('pending', 'submitted')
           and not exists (select 1 from recipients r
                            where r.message_id = m.id and r.status in ('pending', 'deferred'))")
    echo "messages left non-final while all their recipients are final: $behind"
    kill "$wpid"
    if [[ -n $perf_pid ]]; then
        wait "$perf_pid" || true
        {
            echo "## CPU share by process name, 10 s mid-run, both cores (swapper = idle)"
            perf report -i "$OUT/e2e.perf" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -20
            for comm in worker-rt api-rt postgres; do
                echo "## $comm: hottest functions (share of its own samples)"
                perf report -i "$OUT/e2e.perf" --no-children --comm "$comm" --percentage relative \
                    --sort dso,sym --percent-limit 1.5 --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -25
            done
        } >"$OUT/e2e.perf.txt"
        echo "profile: $OUT/e2e.perf.txt"
    fi
    ((behind == 0)) || exit 1
}

# Overload (issue 16). The sustainable rate is the highest paced rate (a ladder of 10 s steps)
# at which accept p99 <= 20 ms, with a worker draining into the accept-all sink meanwhile. Then
# three times that for OVERLOAD_SECONDS (60) over OVERLOAD_CONNECTIONS (512) connections against
# an API that sheds (MAILAPI_MAX_IN_FLIGHT, MAILAPI_SHED_BACKLOG, MAILAPI_SHED_OLDEST_SECS): the
# latency of the 202s and of the 503s apart, and, once the load stops, that every 202 was
# stored and submitted (the backlog drains).
bench_overload() {
    local port=$((PORT + 1)) c=${OVERLOAD_CONNECTIONS:-512} seconds=${OVERLOAD_SECONDS:-60}
    local url="http://127.0.0.1:$port/api/v1/mail/send"
    psql "$MAILAPI_DATABASE_URL" -X -q -c "delete from messages"
    MAILAPI_SMTP_PORT=$SINK_PORT MAILAPI_SMTP_USERNAME="" MAILAPI_SMTP_PASSWORD="" \
        MAILAPI_SMTP_POOL_SIZE=${BENCH_SMTP_POOL:-32} MAILAPI_WORKER_CONCURRENCY=${BENCH_CONCURRENCY:-256} MAILAPI_DATABASE_MAX_CONNECTIONS=32 MAILAPI_MTA_LOG_PATH=/nonexistent MAILAPI_WORKER_METRICS_LISTEN=off \
        $WORKER >"$OUT/worker-overload.log" 2>&1 &
    local wpid=$!
    pids+=("$wpid")
    MAILAPI_LISTEN="127.0.0.1:$port" MAILAPI_MAX_IN_FLIGHT=${OVERLOAD_MAX_IN_FLIGHT:-64} \
        MAILAPI_SHED_BACKLOG=${OVERLOAD_BACKLOG:-20000} MAILAPI_SHED_OLDEST_SECS=${OVERLOAD_OLDEST_SECS:-10} \
        $API >"$OUT/api-overload.log" 2>&1 &
    local apid=$!
    pids+=("$apid")
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    drain() {
        for _ in $(seq 600); do
            [[ $(psql "$MAILAPI_DATABASE_URL" -X -At -c "select exists (select 1 from messages where status = 'pending')") == f ]] && return
            sleep 0.5
        done
        echo "the backlog did not drain in 300 s"; exit 1
    }
    echo "== overload: sustainable rate (accept p99 <= 20 ms, all 202; 64 connections, 10 s steps, a worker draining)"
    local best=0 rate line p99
    for rate in ${OVERLOAD_LADDER:-1000 2000 3000 4000 5000 6000}; do
        line=$($LOADGEN --url "$url" --body "$OUT/send.json" --header "X-MAILAPI-TOKEN: $TOKEN" \
            --connections 64 --rate "$rate" --seconds 10)
        echo "  $rate req/s: $line"
        p99=$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' <<<"$line")
        if [[ $line == *" x 202)"* ]] && python3 -c "import sys; sys.exit(0 if $p99 <= 20 else 1)"; then
            best=$rate
        else
            break
        fi
        drain
    done
    drain
    ((best > 0)) || { echo "no sustainable rate found"; exit 1; }
    local offered=$((best * 3)) before
    before=$(psql "$MAILAPI_DATABASE_URL" -X -At -c "select count(*) from messages")
    echo "== overload: $offered req/s (3 x $best) for ${seconds}s over $c connections; shedding at" \
        "${OVERLOAD_MAX_IN_FLIGHT:-64} in flight, ${OVERLOAD_BACKLOG:-20000} due, ${OVERLOAD_OLDEST_SECS:-10} s oldest"
    $LOADGEN --url "$url" --body "$OUT/send.json" --header "X-MAILAPI-TOKEN: $TOKEN" \
        --connections "$c" --rate "$offered" --seconds "$seconds" --warmup 0 --log "$OUT/overload.tsv"
    curl -s -H "X-MAILAPI-TOKEN: $TOKEN" "http://127.0.0.1:$port/api/v1/queue"; echo
    local t0=$SECONDS
    drain
    echo "backlog drained $((SECONDS - t0)) s after the load stopped"
    local after
    after=$(psql "$MAILAPI_DATABASE_URL" -X -At -c "select count(*) from messages")
    python3 - "$OUT/overload.tsv" $((after - before)) <<'PY'
import sys
rows = [l.split("\t") for l in open(sys.argv[1]) if l.strip()]
stored = int(sys.argv[2])
by = {}
for _, status, us in rows:
    by.setdefault(status, []).append(int(us) / 1000)
for status, lat in sorted(by.items()):
    lat.sort()
    pct = lambda q: lat[min(int(q * len(lat)), len(lat) - 1)]
    print(f"  {status}: {len(lat)} answers ({len(lat) / len(rows):.0%}); p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f} ms, max {lat[-1]:.2f} ms")
every = sorted(float(us) / 1000 for _, _, us in rows)
print(f"  all answers: p99 {every[min(int(0.99 * len(every)), len(every) - 1)]:.2f} ms")
accepted = len(by.get("202", []))
print(f"  202 answers {accepted}, messages stored {stored}: lost {max(accepted - stored, 0)}")
sys.exit(0 if stored >= accepted else 1)
PY
    kill "$wpid" "$apid"
}

# Soak (issue 16, on demand: `bench/run.sh soak`, SOAK_SECONDS=1800 by default). The API and a
# worker (into the accept-all sink) at SOAK_RATE req/s (30 % of the sustainable rate the
# overload ladder finds on this machine; set it for yours) while every 10 s the script samples
# each process's RSS and open file descriptors, Postgres connections and the pending backlog.
# Writes bench/out/soak.tsv and bench/out/soak.svg (RSS over time) and fails if RSS or fds grew
# by more than SOAK_GROWTH_PCT (25) % between the second and the last fifth of the run (the first
# is warm-up).
bench_soak() {
    local port=$((PORT + 2)) seconds=${SOAK_SECONDS:-1800} rate=${SOAK_RATE:-600}
    psql "$MAILAPI_DATABASE_URL" -X -q -c "delete from messages"
    MAILAPI_SMTP_PORT=$SINK_PORT MAILAPI_SMTP_USERNAME="" MAILAPI_SMTP_PASSWORD="" \
        MAILAPI_DATABASE_MAX_CONNECTIONS=32 MAILAPI_MTA_LOG_PATH=/nonexistent MAILAPI_WORKER_METRICS_LISTEN=off \
        $WORKER >"$OUT/worker-soak.log" 2>&1 &
    local wpid=$!
    pids+=("$wpid")
    MAILAPI_LISTEN="127.0.0.1:$port" $API >"$OUT/api-soak.log" 2>&1 &
    local apid=$!
    pids+=("$apid")
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    echo "== soak: $rate req/s for ${seconds}s, sampled every 10 s"
    $LOADGEN --url "http://127.0.0.1:$port/api/v1/mail/send" --body "$OUT/send.json" \
        --header "X-MAILAPI-TOKEN: $TOKEN" --connections 32 --rate "$rate" --seconds "$seconds" \
        >"$OUT/soak-load.txt" &
    local lpid=$!
    printf 't\tapi_rss_kb\tworker_rss_kb\tapi_fds\tworker_fds\tpg_conns\tpending\n' >"$OUT/soak.tsv"
    local t=0
    while kill -0 "$lpid" 2>/dev/null; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" \
            "$(awk '/VmRSS/ {print $2}' "/proc/$apid/status")" "$(awk '/VmRSS/ {print $2}' "/proc/$wpid/status")" \
            "$(find "/proc/$apid/fd" -mindepth 1 -maxdepth 1 | wc -l)" "$(find "/proc/$wpid/fd" -mindepth 1 -maxdepth 1 | wc -l)" \
            "$(psql "$MAILAPI_DATABASE_URL" -X -At -c "select count(*) from pg_stat_activity where datname = 'mailapi_bench'")" \
            "$(psql "$MAILAPI_DATABASE_URL" -X -At -c "select count(*) from messages where status = 'pending'")" >>"$OUT/soak.tsv"
        sleep 10
        t=$((t + 10))
    done
    cat "$OUT/soak-load.txt"
    kill "$wpid" "$apid"
    python3 - "$OUT/soak.tsv" "$OUT/soak.svg" "${SOAK_GROWTH_PCT:-25}" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
rows = [[float(x) for x in r] for r in rows if len(r) == 7 and all(r)]
if len(rows) < 5:
    sys.exit("too few samples")
cols = ["t", "api_rss_kb", "worker_rss_kb", "api_fds", "worker_fds", "pg_conns", "pending"]
# The first fifth is warm-up (pools and caches fill, the allocator finds its size): growth is
# measured from the second fifth to the last.
fifth = max(1, len(rows) // 5)
bad = []
for i, name in enumerate(cols[1:], 1):
    second = sum(r[i] for r in rows[fifth:2 * fifth]) / fifth
    last = sum(r[i] for r in rows[-fifth:]) / fifth
    growth = (last - second) / second * 100 if second else 0.0
    print(f"  {name}: second fifth {second:.0f}, last fifth {last:.0f} ({growth:+.1f} %), max {max(r[i] for r in rows):.0f}")
    if name in ("api_rss_kb", "worker_rss_kb", "api_fds", "worker_fds") and growth > float(sys.argv[3]):
        bad.append(name)
# RSS over time, both processes, as an SVG polyline chart.
w, h, pad = 800, 300, 40
tmax = rows[-1][0] or 1
ymax = max(max(r[1], r[2]) for r in rows) / 1024 * 1.1
def pts(i):
    return " ".join(f"{pad + r[0] / tmax * (w - 2 * pad):.1f},{h - pad - r[i] / 1024 / ymax * (h - 2 * pad):.1f}" for r in rows)
svg = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>
<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>
<text x="{w / 2}" y="{h - 8}" text-anchor="middle">seconds (0 to {tmax:.0f})</text>
<text x="8" y="{pad - 10}">RSS MiB (0 to {ymax:.0f})</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{pts(1)}"/>
<polyline fill="none" stroke="#d62728" stroke-width="2" points="{pts(2)}"/>
<text x="{w - pad - 150}" y="{pad}" fill="#1f77b4">api RSS</text>
<text x="{w - pad - 150}" y="{pad + 16}" fill="#d62728">worker RSS</text>
</svg>
"""
open(sys.argv[2], "w").write(svg)
print(f"  chart: {sys.argv[2]}")
sys.exit(f"grew: {bad}" if bad else 0)
PY
}

# shellcheck source=bench/webhooks.sh
source bench/webhooks.sh

start_api
start_sink
write_send_lua
what=${1:-all}
[[ $what == all || $what == tokens ]] && bench_tokens
[[ $what == all || $what == accept || $what == worker ]] && bench_accept
[[ $what == all || $what == worker ]] && bench_worker
[[ $what == all || $what == logtail ]] && bench_logtail
[[ $what == all || $what == latency ]] && bench_latency
[[ $what == all || $what == e2e ]] && bench_e2e
[[ $what == all || $what == overload ]] && bench_overload
[[ $what == all || $what == webhooks ]] && bench_webhooks
# Half an hour: only when asked for by name.
if [[ $what == soak ]]; then bench_soak; fi
