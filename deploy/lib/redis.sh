# shellcheck shell=bash
# Redis: a throwaway instance on loopback (no persistence; the API's streams are rebuilt from
# PostgreSQL). Left running by infra-down.sh.

redis_ping() {
    [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null </dev/null) == PONG ]]
}

# A Redis started at boot with persistence answers "LOADING ..." to everything until its dataset
# is in memory: wait for that instead of taking it for something that is not Redis.
redis_wait_loading() {
    local i reply
    for ((i = 0; i < 300; i++)); do
        reply=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null </dev/null || true)
        [[ $reply == LOADING* ]] || return 0
        ((i % 30 == 0)) && log "waiting for Redis to load its dataset ($i s so far)"
        sleep 1
    done
    die "Redis on 127.0.0.1:$REDIS_PORT still loading its dataset after 300 s"
}

redis_up() {
    redis_wait_loading
    if ! redis_ping; then
        if port_listening "$REDIS_PORT"; then
            die "something listens on 127.0.0.1:$REDIS_PORT but does not answer PING like Redis"
        fi
        log "starting Redis on 127.0.0.1:$REDIS_PORT"
        mkdir -p /var/lib/redis /var/log/redis
        # `-::1`: the leading `-` makes the IPv6 bind optional (machines without IPv6).
        run_detached redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
            --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log ||
            { show_tail /var/log/redis/ci.log; die "redis-server failed to start"; }
        local i
        for ((i = 0; i < 50; i++)); do
            redis_ping && break
            sleep 0.1
        done
        redis_ping || { show_tail /var/log/redis/ci.log; die "Redis does not answer PING"; }
    fi
    log "Redis ready on 127.0.0.1:$REDIS_PORT"
}
