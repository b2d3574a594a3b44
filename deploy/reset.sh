#!/usr/bin/env bash
# Forget everything the project's scripts made, so that the next deploy/up.sh or deploy/test.sh
# starts like a machine that only has the packages installed. CI runs this first (.ci/run):
# a script that writes into a directory it did not create, or uses a secret, role or user it
# did not make, then fails CI instead of passing on a machine that remembers an earlier run.
#
# Stops (by pid file) what infra-up.sh starts: Postfix, Dovecot, the smtp-sinks. Removes:
#   /var/log/mailapi, /etc/mailapi (secrets and env file), /run/mailapi, the sink spool, the
#   mail store /var/vmail, Postfix's queue (our test mail), the configs rendered into
#   /etc/postfix and /etc/dovecot, the databases owned by the project's roles (mailapi and every
#   mailapi_test_*), the roles, the system users vmail and mailapi-sink, and the project's
#   Redis keys (prefix `mailapi:` and the tests' `test-<hex>:`).
# Keeps: installed packages and tools (apt, pip, cargo), and PostgreSQL and Redis themselves,
# which belong to the machine and keep running.
#
# Usage (as root):  deploy/reset.sh          Idempotent: a second run finds nothing to do.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=lib/postfix.sh
source "$here/lib/postfix.sh"
# shellcheck source=lib/sinks.sh
source "$here/lib/sinks.sh"
# shellcheck source=lib/dovecot.sh
source "$here/lib/dovecot.sh"
# shellcheck source=lib/postgres.sh
source "$here/lib/postgres.sh"

require_root
# Daemon output while stopping goes to a log that is about to be removed; keep it out of the
# way in a temporary file instead of creating /var/log/mailapi.
START_LOG=$(mktemp /tmp/mailapi-reset.XXXXXX)
trap 'rm -f "$START_LOG"' EXIT
# The lock lives in /run/mailapi, removed below; holding it still keeps a concurrent
# infra-up.sh from starting halfway through.
take_lock

log "stopping the mail stack (Postfix, Dovecot, smtp-sinks)"
if command -v postfix >/dev/null; then
    postfix_down
    # Mail our tests queued (deferred deliveries to sink-down.test and the like): a fresh
    # machine has an empty queue. postsuper works with Postfix stopped.
    if [[ -d /var/spool/postfix/deferred ]]; then
        postsuper -d ALL >/dev/null 2>&1 </dev/null || true
    fi
fi
if command -v doveadm >/dev/null; then
    dovecot_down
fi
sinks_down

# --- PostgreSQL: the databases owned by our roles, then the roles ------------------------------
# A machine that just booted may still be replaying its WAL ("the database system is not yet
# accepting connections"), or have its cluster stopped: start it if needed and wait until it
# accepts sessions, so that the databases of an earlier run are really dropped.
if command -v psql >/dev/null && command -v pg_lsclusters >/dev/null; then
    pg_ensure_running
    port=$PG_PORT
    pg() { (cd / && PGOPTIONS="-c client_min_messages=warning" runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -p "$port" "$@"); }
    dbs=$(pg -d postgres -c "select d.datname from pg_database d join pg_roles r on r.oid = d.datdba
                              where r.rolname in ('$DB_USER', '$MTA_DB_USER')
                                 or d.datname = '$DB_NAME' or d.datname like 'mailapi\_test\_%'
                              order by 1") || die "cannot list the databases"
    count=0
    for db in $dbs; do
        [[ $db =~ ^[a-z0-9_]+$ ]] || die "unexpected database name '$db'"
        # FORCE: a leftover session (a test killed mid-run) must not keep the database alive.
        pg -d postgres -c "drop database if exists \"$db\" with (force)" >/dev/null
        count=$((count + 1))
    done
    pg -d postgres -c "drop role if exists $MTA_DB_USER" -c "drop role if exists $DB_USER" >/dev/null ||
        die "dropping the roles $DB_USER and $MTA_DB_USER failed"
    log "PostgreSQL: dropped $count database(s) and the roles $DB_USER, $MTA_DB_USER"
else
    log "PostgreSQL is not installed here: no databases or roles to drop"
fi

# --- Redis: our keys only ------------------------------------------------------------------------
if command -v redis-cli >/dev/null && redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    removed=0
    for pattern in 'mailapi:*' 'test-[0-9a-f]*:*'; do
        keys=$(redis-cli -p "$REDIS_PORT" --scan --pattern "$pattern")
        [[ -n $keys ]] || continue
        printf '%s\n' "$keys" | xargs -d '\n' -n 500 redis-cli -p "$REDIS_PORT" unlink >/dev/null
        removed=$((removed + $(printf '%s\n' "$keys" | wc -l)))
    done
    log "Redis: removed $removed key(s)"
fi

# --- Files, directories and users ----------------------------------------------------------------
rm -f /etc/postfix/main.cf /etc/postfix/master.cf /etc/postfix/transport /etc/postfix/transport.db \
    /etc/postfix/pgsql-virtual-domains.cf /etc/postfix/pgsql-virtual-mailboxes.cf \
    /etc/postfix/pgsql-virtual-aliases.cf
rm -f /etc/dovecot/dovecot.conf /etc/dovecot/mailapi-sql.conf.ext /etc/dovecot/mailapi-master-users \
    /etc/dovecot/mailapi-submit-users.smtp
rm -rf "$LOG_DIR" "$ETC_DIR" "$SINK_DIR" "$VMAIL_DIR" "$RUN_DIR"
for user in vmail "$SINK_USER"; do
    if getent passwd "$user" >/dev/null; then
        userdel "$user" 2>/dev/null || die "userdel $user failed (a process still runs as it?)"
    fi
    if getent group "$user" >/dev/null; then
        groupdel "$user" 2>/dev/null || true
    fi
done
log "removed $LOG_DIR, $ETC_DIR, $SINK_DIR, $VMAIL_DIR, $RUN_DIR, the rendered configs and the users vmail, $SINK_USER"
log "reset done: the next deploy/up.sh or deploy/test.sh starts from the packages alone"
