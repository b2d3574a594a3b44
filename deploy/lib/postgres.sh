# shellcheck shell=bash
# PostgreSQL: the cluster, the application role and database, the read-only MTA role.

PG_VERSION=

# Admin SQL as the postgres superuser over the unix socket (works whatever pg_hba says about
# TCP). SQL comes on stdin. `cd /` because postgres can't read root's working directory.
pg_admin() {
    local db=${1:-postgres}
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d "$db" -p "$PG_PORT")
}

pg_cluster_online() {
    [[ $(pg_lsclusters -h | awk -v v="$PG_VERSION" '$1 == v && $2 == "main" { print $4 }') == online* ]]
}

# Find (or create) the "main" cluster of the newest installed server and start it if it is down.
pg_ensure_running() {
    PG_VERSION=$(pg_lsclusters -h 2>/dev/null | awk '$2 == "main" { print $1 }' | sort -V | tail -n 1)
    if [[ -z $PG_VERSION ]]; then
        # A package installed while its cluster was removed: make a fresh one.
        local versions=(/usr/lib/postgresql/*/bin/postgres)
        PG_VERSION=$(printf '%s\n' "${versions[@]}" | awk -F/ '$5 ~ /^[0-9]+$/ { print $5 }' | sort -V | tail -n 1)
        [[ -n $PG_VERSION ]] || die "no PostgreSQL server under /usr/lib/postgresql"
        log "creating PostgreSQL cluster $PG_VERSION/main"
        run_detached pg_createcluster "$PG_VERSION" main ||
            { show_tail "$START_LOG"; die "pg_createcluster $PG_VERSION main failed"; }
    fi
    local port status
    read -r port status < <(pg_lsclusters -h | awk -v v="$PG_VERSION" '$1 == v && $2 == "main" { print $3, $4 }')
    [[ $port == "$PG_PORT" ]] ||
        die "PostgreSQL cluster $PG_VERSION/main uses port $port, expected $PG_PORT (see /etc/postgresql/$PG_VERSION/main/postgresql.conf)"
    if [[ $status != online* ]]; then
        log "starting PostgreSQL $PG_VERSION/main"
        # --skip-systemctl-redirect: there is no systemd; start the postmaster directly.
        # Something else (the machine's boot) may start it at the same moment: "already
        # running" is then a success.
        run_detached pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start ||
            pg_cluster_online || {
            show_tail "/var/log/postgresql/postgresql-$PG_VERSION-main.log"
            die "pg_ctlcluster $PG_VERSION main start failed"
        }
    fi
    wait_port "$PG_PORT" 30 || die "PostgreSQL does not accept connections on 127.0.0.1:$PG_PORT"
    pg_wait_ready
}

# Wait until the server accepts sessions, not just TCP connections. A postmaster that was
# started at boot after an unclean stop (a machine restored from a snapshot, a kill -9) listens
# at once but answers "the database system is not yet accepting connections" until crash
# recovery has replayed the WAL, which can take minutes after a benchmark. pg_isready: 0 =
# accepting, 1 = rejecting (starting up / recovering), 2 = no answer.
PG_READY_TIMEOUT=${PG_READY_TIMEOUT:-600}
pg_wait_ready() {
    local rc start=$SECONDS next_note=0 waited
    while :; do
        rc=0
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 5 </dev/null || rc=$?
        waited=$((SECONDS - start))
        [[ $rc -eq 0 ]] && break
        if ((waited >= PG_READY_TIMEOUT)); then
            show_tail "/var/log/postgresql/postgresql-$PG_VERSION-main.log"
            die "PostgreSQL on $PG_HOST:$PG_PORT still not accepting sessions after $waited s (pg_isready exit $rc)"
        fi
        if ((waited >= next_note)); then
            log "waiting for PostgreSQL to accept sessions (pg_isready exit $rc: starting up or in crash recovery; $waited s so far)"
            next_note=$((waited + 30))
        fi
        sleep 1
    done
    ((next_note == 0)) || log "PostgreSQL accepts sessions after $waited s"
}

# Roles, database, grants. Values are hex (see random_secret), safe inside SQL literals.
pg_ensure_roles_and_db() {
    pg_admin postgres <<SQL || die "creating the PostgreSQL roles/database failed"
select 'create role $DB_USER' where not exists (select from pg_roles where rolname = '$DB_USER') \gexec
select 'create role $MTA_DB_USER' where not exists (select from pg_roles where rolname = '$MTA_DB_USER') \gexec
-- Re-applied every run so the roles always match /etc/mailapi/secrets.
alter role $DB_USER with login createdb password '$DB_PASSWORD';
alter role $MTA_DB_USER with login nocreatedb nocreaterole password '$MTA_DB_PASSWORD';
-- The MTA role only ever reads; make any write attempt fail even if a grant slips in.
alter role $MTA_DB_USER set default_transaction_read_only = on;
select 'create database $DB_NAME owner $DB_USER' where not exists (select from pg_database where datname = '$DB_NAME') \gexec
alter database $DB_NAME owner to $DB_USER;
grant connect on database $DB_NAME to $MTA_DB_USER;
SQL

    # Inside the database: schema usage (a re-created public schema has no PUBLIC grants) and,
    # once the app has migrated, SELECT on the three views (the migration grants it too, but only
    # if the role existed when it ran).
    pg_admin "$DB_NAME" <<SQL || die "granting the MTA role access to the views failed"
do \$\$
begin
    if exists (select from pg_namespace where nspname = 'public') then
        grant usage on schema public to $MTA_DB_USER;
    end if;
    if to_regclass('public.mta_domains') is not null
       and to_regclass('public.mta_mailboxes') is not null
       and to_regclass('public.mta_aliases') is not null then
        grant select on mta_domains, mta_mailboxes, mta_aliases to $MTA_DB_USER;
    else
        raise notice 'mta_* views not there yet: run the migrations (grants happen then)';
    end if;
end
\$\$;
SQL
}

# Prove that both roles log in the way the app, Postfix and Dovecot will: TCP + password.
pg_check_logins() {
    local user pw
    for user in "$DB_USER" "$MTA_DB_USER"; do
        [[ $user == "$DB_USER" ]] && pw=$DB_PASSWORD || pw=$MTA_DB_PASSWORD
        PGPASSWORD=$pw PGCONNECT_TIMEOUT=5 psql -X -q -At -h "$PG_HOST" -p "$PG_PORT" -U "$user" \
            -d "$DB_NAME" -c 'select 1' </dev/null >/dev/null 2>>"$START_LOG" ||
            { show_tail "$START_LOG" 5; die "role $user cannot log in to $DB_NAME over TCP"; }
    done
}

# The API, the workers, Postfix's and Dovecot's lookups and parallel tests each hold pools of
# connections; Debian's default of 100 runs out under a test suite plus a benchmark. Raising it
# needs a restart, done only when the setting is too low.
PG_MIN_CONNECTIONS=300
pg_ensure_max_connections() {
    local current
    current=$(echo "show max_connections" | (cd / && runuser -u postgres -- psql -X -At -p "$PG_PORT"))
    if ((current < PG_MIN_CONNECTIONS)); then
        log "raising PostgreSQL max_connections from $current to $PG_MIN_CONNECTIONS (restart)"
        echo "alter system set max_connections = $PG_MIN_CONNECTIONS" | pg_admin postgres
        run_detached pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main restart ||
            die "restarting PostgreSQL failed"
        wait_port "$PG_PORT" 30 || die "PostgreSQL did not come back after the restart"
        pg_wait_ready
    fi
}

postgres_up() {
    pg_ensure_running
    pg_ensure_max_connections
    pg_ensure_roles_and_db
    pg_check_logins
    log "PostgreSQL $PG_VERSION ready on $PG_HOST:$PG_PORT (database $DB_NAME)"
}
