# shellcheck shell=bash
# Webhook benchmarks (issue 18), sourced by bench/run.sh: `bench/run.sh webhooks`.
#
# A fast receiver on loopback (worker/examples/webhook_sink.rs: checks every signature, answers
# 204) and one worker. Measured:
#   1. events/s, one event per request: HOOK_EVENTS single-event messages already stored, the
#      worker started, time until the receiver has every event (fan-out, assembly, signing,
#      POST and recording all included);
#   2. events/s with batching (batch_size 100), the same way;
#   3. status change -> received at 1,000 events/s: sends paced at 500/s, each to a suppressed
#      address (two events: message.accepted, recipient.suppressed), received time minus the
#      event's occurred_at in Postgres;
#   4. sending throughput (one worker into smtp-sink) with no endpoint, then with an endpoint
#      for every event whose receiver answers after 10 s;
#   5. accept latency (sends paced at ACCEPT_RATE, a worker submitting) with no endpoint, then
#      with an endpoint for every event on the fast receiver.

HOOK_PORT=${BENCH_HOOK_PORT:-18099}
HOOK_EVENTS=${BENCH_HOOK_EVENTS:-30000}
SINK_BIN=target/release/examples/webhook_sink

# Everything a run leaves: truncated, not deleted (a large delete also holds the feed's horizon
# back for as long as it runs).
hooks_reset() {
    psql "$MAILAPI_DATABASE_URL" -X -q \
        -c "set client_min_messages = warning" -c "truncate messages, webhook_endpoints cascade" \
        -c "update webhook_fanout set xid = '0', event_id = 0"
}

# Registers an endpoint (batch size $1; $3: its events, every one by default) and starts the
# receiver ($2: delay in ms). Sets HOOK_PID.
hooks_endpoint() {
    local batch=$1 delay=$2 events=${3:-'["*"]'} answer secret
    answer=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/webhooks" -H "X-MAILAPI-TOKEN: $TOKEN" \
        -H 'Content-Type: application/json' \
        -d "{\"url\": \"http://127.0.0.1:$HOOK_PORT/hook\", \"events\": $events, \"batch_size\": $batch}")
    secret=$(jq -r .webhook.secret <<<"$answer")
    $SINK_BIN --port "$HOOK_PORT" --secret "$secret" --out "$OUT/hooks-$batch-$delay.txt" --delay-ms "$delay" >/dev/null &
    HOOK_PID=$!
    pids+=("$HOOK_PID")
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$HOOK_PORT/count" >/dev/null && return; sleep 0.1; done
    echo "webhook sink did not start" >&2
    exit 1
}

hooks_count() {
    curl -sf "http://127.0.0.1:$HOOK_PORT/count" | cut -d' ' -f1
}

# $1 messages stored as sent, each with one published event (message.accepted).
hooks_seed() {
    psql "$MAILAPI_DATABASE_URL" -X -q -c "
        with m as (
            insert into messages (id, from_email, from_domain, status, rfc_message_id, payload,
                                  size_bytes, event_seq, completed_at)
            select gen_random_uuid(), 'bench@bench.test', 'bench.test', 'sent',
                   'hook-' || g || '-' || gen_random_uuid() || '@bench.test', '{}', 1, 1, now()
              from generate_series(1, $1) g
            returning id)
        insert into delivery_events (message_id, event, status, source, seq)
        select id, 'accepted', 'pending', 'api', 1 from m"
}

hooks_worker() {
    MAILAPI_SMTP_PORT=$SINK_PORT MAILAPI_SMTP_USERNAME="" MAILAPI_SMTP_PASSWORD="" \
        MAILAPI_SMTP_POOL_SIZE=${BENCH_SMTP_POOL:-32} MAILAPI_WORKER_CONCURRENCY=${BENCH_CONCURRENCY:-256} \
        MAILAPI_DATABASE_MAX_CONNECTIONS=32 MAILAPI_MTA_LOG_PATH=/nonexistent MAILAPI_WORKER_METRICS_LISTEN=off \
        $WORKER >"$OUT/worker-hooks.log" 2>&1 &
    WORKER_PID=$!
    pids+=("$WORKER_PID")
}

hooks_stop() {
    kill "$@" 2>/dev/null || true
    wait "$@" 2>/dev/null || true
}

# Throughput: $1 batch size, $2 events.
hooks_throughput() {
    local batch=$1 n=$2 t0 t1 got=0
    hooks_reset
    hooks_seed "$n"
    hooks_endpoint "$batch" 0
    t0=$(date +%s.%N)
    hooks_worker
    while ((got < n)); do
        sleep 0.2
        got=$(hooks_count)
        if (($(date +%s) - ${t0%.*} > 300)); then echo "not all events arrived ($got of $n)"; break; fi
    done
    t1=$(date +%s.%N)
    hooks_stop "$WORKER_PID" "$HOOK_PID"
    python3 -c "print(f'batch_size $batch: {$got} events in {$t1-$t0:.2f} s = {$got/($t1-$t0):.0f} events/s')"
}

# $1 "one": sends paced at 1,000/s, the endpoint taking message.accepted only (one event per
# message); "two": sends paced at 500/s, the endpoint taking every event (message.accepted and
# recipient.suppressed, written in one transaction: the second waits for the first, per
# message order).
hooks_latency() {
    local shape=$1 rate events
    local seconds=${HOOK_LATENCY_SECONDS:-20}
    if [[ $shape == one ]]; then rate=1000 events='["message.accepted"]'; else rate=500 events='["*"]'; fi
    hooks_reset
    psql "$MAILAPI_DATABASE_URL" -X -q -c "insert into suppressions (domain, email, reason)
        values ('bench.test', 'gone@sink-ok.test', 'bench') on conflict do nothing"
    printf '%s' '{"from":"bench@bench.test","to":["gone@sink-ok.test"],"subject":"hook","body":{"text":"x"}}' >"$OUT/hook-send.json"
    hooks_endpoint 1 0 "$events"
    hooks_worker
    sleep 1
    echo "-- sends paced at $rate/s for ${seconds}s, endpoint events $events"
    $LOADGEN --url "http://127.0.0.1:$PORT/api/v1/mail/send" --body "$OUT/hook-send.json" \
        --header "X-MAILAPI-TOKEN: $TOKEN" --connections 32 --rate "$rate" --seconds "$seconds" | tail -n 2
    sleep 3
    hooks_stop "$WORKER_PID" "$HOOK_PID"
    local types="'message.accepted', 'recipient.suppressed'"
    [[ $shape == one ]] && types="'message.accepted'"
    psql "$MAILAPI_DATABASE_URL" -X -At -F ' ' -c "
        select id, extract(epoch from occurred_at) from delivery_events where type in ($types)" >"$OUT/hook-events.txt"
    python3 - "$OUT/hooks-1-0.txt" "$OUT/hook-events.txt" <<'PY'
import sys
arrived = {}
for line in open(sys.argv[1]):
    i, t = line.split()
    arrived.setdefault(int(i), float(t))
occurred = {int(i): float(t) for i, t in (l.split() for l in open(sys.argv[2]) if l.strip())}
lat = sorted(arrived[i] - occurred[i] for i in occurred if i in arrived)
missing = len(set(occurred) - set(arrived))
def q(p): return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print(f"events {len(occurred)}, received {len(lat)}, missing {missing}; "
      f"status change -> received p50 {q(0.5):.0f} ms, p99 {q(0.99):.0f} ms, max {lat[-1]*1000:.0f} ms")
PY
}

# Sending throughput, one worker into smtp-sink: $1 "none" or "slow" (an endpoint for every event
# whose receiver answers after 10 s).
hooks_sending() {
    local mode=$1 n t0 t1 left
    hooks_reset
    # No worker while the backlog is made.
    $LOADGEN --url "http://127.0.0.1:$PORT/api/v1/mail/send" --body "$OUT/send.json" \
        --header "X-MAILAPI-TOKEN: $TOKEN" --connections 64 --rate 2000 --seconds 10 >/dev/null 2>&1 || true
    n=$(psql "$MAILAPI_DATABASE_URL" -X -At -c "select count(*) from messages where status = 'pending'")
    [[ $mode == slow ]] && hooks_endpoint 1 10000
    t0=$(date +%s.%N)
    hooks_worker
    while true; do
        left=$(psql "$MAILAPI_DATABASE_URL" -X -At -c "select exists (select 1 from messages where status = 'pending')")
        [[ $left == f ]] && break
        sleep 0.5
        if (($(date +%s) - ${t0%.*} > 300)); then echo "worker did not finish"; break; fi
    done
    t1=$(date +%s.%N)
    hooks_stop "$WORKER_PID"
    [[ $mode == slow ]] && hooks_stop "$HOOK_PID"
    python3 -c "print(f'sending, webhooks $mode: {$n} messages in {$t1-$t0:.2f} s = {$n/($t1-$t0):.0f} msg/s')"
}

# Accept latency with a worker running: $1 "none" or "all" (an endpoint for every event).
hooks_accept() {
    local mode=$1
    hooks_reset
    [[ $mode == all ]] && hooks_endpoint 1 0
    hooks_worker
    sleep 1
    echo "-- webhooks $mode: sends paced at ${ACCEPT_RATE:-3000}/s over 64 connections, ${DURATION}s"
    paced_send 64 "${ACCEPT_RATE:-3000}" "$DURATION" | tail -n 1
    hooks_stop "$WORKER_PID"
    [[ $mode == all ]] && hooks_stop "$HOOK_PID"
    return 0
}

# BENCH_HOOK_PARTS picks parts (default all): single,batch,latency,sending,accept.
bench_webhooks() {
    local parts=${BENCH_HOOK_PARTS:-single,batch,latency,sending,accept}
    command -v jq >/dev/null || apt-get install -y -q jq >/dev/null
    cargo build -q --release -p worker --example webhook_sink
    echo "== webhooks: one worker, a fast local receiver"
    [[ ,$parts, == *,single,* ]] && hooks_throughput 1 "$HOOK_EVENTS"
    [[ ,$parts, == *,batch,* ]] && hooks_throughput 100 $((HOOK_EVENTS * 2))
    if [[ ,$parts, == *,latency,* ]]; then
        echo "== webhooks: status change -> received at 1,000 events/s, one event per message"
        hooks_latency one
        echo "== webhooks: the same at 1,000 events/s, two events per message in one transaction"
        hooks_latency two
    fi
    if [[ ,$parts, == *,sending,* ]]; then
        echo "== webhooks: sending throughput with no endpoint, then with a receiver answering after 10 s"
        hooks_sending none
        hooks_sending slow
    fi
    if [[ ,$parts, == *,accept,* ]]; then
        echo "== webhooks: accept latency with a worker running, without and with an endpoint for every event"
        hooks_accept none
        hooks_accept all
    fi
    # BENCH_HOOK_KEEP=1 leaves the last part's rows to look at.
    [[ -n ${BENCH_HOOK_KEEP:-} ]] || hooks_reset
}
