# shellcheck shell=bash
# Redis: a throwaway instance on loopback (no persistence; the API's streams are rebuilt from
# PostgreSQL). Left running by infra-down.sh.

redis_ping() {
    [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null </dev/null) == PONG ]]
}

redis_up() {
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
