#!/usr/bin/env bash
# Entrypoint of the mailstack container (deploy/docker/mailstack.Dockerfile, compose.yaml):
# configures and starts the smtp-sinks, Dovecot and Postfix with the deploy/lib functions that
# deploy/infra-up.sh uses, then stays in the foreground, printing the mail logs, until stopped.
#
# Differences from infra-up.sh, all made here and not in deploy/lib:
#   - PostgreSQL is the `postgres` service ($PG_HOST), not this container's loopback;
#   - the roles and the database are created over TCP as the superuser ($POSTGRES_PASSWORD)
#     instead of through the local socket;
#   - the secrets come from the environment (compose reads them from .env) instead of being
#     generated, because the api and worker containers need the same values.
# Required environment: DB_PASSWORD MTA_DB_PASSWORD MASTER_PASSWORD SUBMIT_PASSWORD (32 hex
# characters each) and POSTGRES_PASSWORD. Optional: PG_HOST (default postgres), POSTGRES_USER.
# shellcheck source-path=SCRIPTDIR/..
set -euo pipefail

pg_host=${PG_HOST:-postgres}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=lib/postgres.sh
source "$here/lib/postgres.sh"
# shellcheck source=lib/postfix.sh
source "$here/lib/postfix.sh"
# shellcheck source=lib/sinks.sh
source "$here/lib/sinks.sh"
# shellcheck source=lib/dovecot.sh
source "$here/lib/dovecot.sh"
PG_HOST=$pg_host

: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD (the postgres service superuser password) is required}"

# Admin SQL over TCP as the superuser (replaces the socket-based pg_admin of lib/postgres.sh).
pg_admin() {
    PGPASSWORD=$POSTGRES_PASSWORD PGCONNECT_TIMEOUT=5 psql -X -q -v ON_ERROR_STOP=1 \
        -h "$PG_HOST" -p "$PG_PORT" -U "${POSTGRES_USER:-postgres}" -d "${1:-postgres}"
}

# The secrets file load_secrets reads, written from the environment; load_secrets then checks
# that every value is 32 hex characters.
secrets_from_env() {
    local key value
    mkdir -p "$ETC_DIR"
    (umask 077 && : >"$SECRETS_FILE")
    for key in "${SECRET_KEYS[@]}"; do
        value=${!key-}
        [[ -n $value ]] || die "$key is not set (compose.yaml takes it from .env; see the README)"
        printf '%s=%s\n' "$key" "$value" >>"$SECRETS_FILE"
    done
    load_secrets
}

wait_for_postgres() {
    local i
    for ((i = 0; i < 60; i++)); do
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && return 0
        sleep 1
    done
    die "PostgreSQL at $PG_HOST:$PG_PORT does not accept connections after 60 s"
}

# shellcheck disable=SC2317  # invoked by the TERM/INT trap
stop() {
    trap - TERM INT
    log "stopping the mail stack"
    postfix_down
    dovecot_down
    sinks_down
    exit 0
}

ensure_dirs
secrets_from_env
wait_for_postgres
pg_ensure_roles_and_db
pg_check_logins
log "PostgreSQL roles ready on $PG_HOST:$PG_PORT (database $DB_NAME)"

# The worker container reads Postfix's log through the shared volume as another user: create it
# world-readable before postlogd does (postlogd keeps an existing file's mode).
touch "$LOG_DIR/postfix.log" "$LOG_DIR/dovecot.log"
chmod 0644 "$LOG_DIR/postfix.log"

# Same order as infra-up.sh: Postfix last, once its LMTP/auth sockets and the sinks are there.
sinks_up
dovecot_up
postfix_up
trap stop TERM INT
log "mail stack up: 25 (MX), 587 (submission), 143 (IMAP), sinks 2525-2527, all on loopback"

tail -n 0 -F "$LOG_DIR/postfix.log" "$LOG_DIR/dovecot.log" &
# Stay up while both daemons do; a dead one ends the container (and compose restarts it).
while :; do
    sleep 10 &
    wait $! || true
    postfix_running || die "the Postfix master process is gone (see $LOG_DIR/postfix.log)"
    dovecot_running || die "Dovecot is gone (see $LOG_DIR/dovecot.log)"
done
