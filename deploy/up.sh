#!/usr/bin/env bash
# README command (a): run the Mail API on this machine, in the foreground.
#
#   1. deploy/infra-up.sh: Postgres, Redis, Postfix, Dovecot and the smtp-sinks (idempotent);
#   2. cargo build of mailapi-api and mailapi-worker (release unless MAILAPI_PROFILE=debug);
#   3. migrate the main database and mint a fresh admin token;
#   4. start the worker and the API as children, wait for GET /health, print the API URL, the
#      token and a curl to try, then wait.
# Ctrl-C or SIGTERM stops both children, and the mail-stack daemons (Postfix, Dovecot, the
# smtp-sinks) that this run started because they were not running, and exits 0. Daemons that
# were already running are left as they were; PostgreSQL and Redis belong to the machine and are
# never stopped. If either child dies, the same happens and the script exits non-zero. Each child's output goes to the terminal, every line prefixed
# with [api] or [worker], and is appended to /var/log/mailapi/api.log or worker.log.
#
# Usage (as root):  deploy/up.sh
# Environment:      MAILAPI_LISTEN   address the API binds (default 127.0.0.1:8080)
#                   MAILAPI_PROFILE  release (default) or debug (faster build, slower binaries)
#                   every other MAILAPI_* setting comes from /etc/mailapi/mailapi.env
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=lib/toolchain.sh
source "$here/lib/toolchain.sh"
# shellcheck source=lib/postfix.sh
source "$here/lib/postfix.sh"
# shellcheck source=lib/sinks.sh
source "$here/lib/sinks.sh"
# shellcheck source=lib/dovecot.sh
source "$here/lib/dovecot.sh"

say() { printf '[up] %s\n' "$*" >&2; }
fail() {
    printf '[up] ERROR: %s\n' "$*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || fail "run as root: deploy/infra-up.sh installs packages and starts daemons"

# Settings the caller gave us win over the env file, which does not set them anyway.
listen=${MAILAPI_LISTEN:-127.0.0.1:8080}
profile=${MAILAPI_PROFILE:-release}
case $profile in
release) build_flags=(--release) ;;
debug) build_flags=() ;;
*) fail "MAILAPI_PROFILE must be release or debug, not '$profile'" ;;
esac

# Before anything slow: without a toolchain there is nothing to run.
require_cargo || exit 1

# What runs before we start anything: on the way out, only what this run started is stopped.
started_postfix=1 started_dovecot=1 started_sinks=1
postfix_running && started_postfix=0
dovecot_running && started_dovecot=0
sinks_running && started_sinks=0

say "bringing up the local stack (deploy/infra-up.sh)"
# The start-up log lives in $LOG_DIR: create it before the first write (a fresh machine has
# neither it nor /etc/mailapi).
ensure_dirs
# Its output (which ends with the env file, secrets included) goes to its start-up log.
if ! bash "$here/infra-up.sh" </dev/null >>"$START_LOG" 2>&1; then
    show_tail "$START_LOG" 40
    fail "deploy/infra-up.sh failed (full output: $START_LOG)"
fi
say "local stack up (Postgres, Redis, Postfix, Dovecot, sinks); settings: $ENV_FILE"
# shellcheck source=/dev/null
source "$ENV_FILE"
export MAILAPI_LISTEN=$listen
# tracing writes colour codes unless told not to; the log files should stay plain text.
export NO_COLOR=${NO_COLOR:-1}

# curl: for the health check here and for the command printed at the end.
command -v curl >/dev/null || ensure_packages curl

cd "$repo"
say "building mailapi-api and mailapi-worker ($profile profile; the first release build takes several minutes)"
cargo build "${build_flags[@]}" -p api -p worker
bin_dir=${CARGO_TARGET_DIR:-$repo/target}/$profile
api_bin=$bin_dir/mailapi-api
worker_bin=$bin_dir/mailapi-worker
[[ -x $api_bin && -x $worker_bin ]] || fail "build finished but $api_bin or $worker_bin is missing"

say "migrating the main database"
"$api_bin" migrate >/dev/null

# Only the token goes to stdout; keep just the line that looks like one in case a log line
# slips through.
token=$(RUST_LOG=warn "$api_bin" token create --admin --name "local admin (deploy/up.sh)" |
    grep -E '^mapi_[0-9A-Za-z]+$' | tail -n 1) || true
[[ -n $token ]] || fail "mailapi-api token create printed no token"

# The URL clients use: a wildcard bind address is reached through loopback.
host=${listen%:*}
port=${listen##*:}
case $host in
0.0.0.0 | '') host=127.0.0.1 ;;
'[::]') host='[::1]' ;;
esac
url="http://$host:$port"
port_listening "$port" && fail "something already listens on port $port (another deploy/up.sh?); stop it or set MAILAPI_LISTEN"

api_pid=
worker_pid=

# Stop both children by pid: SIGTERM (both finish in-flight work), SIGKILL after 20 s.
stop_children() {
    local pid i
    for pid in $worker_pid $api_pid; do
        pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null
    done
    for ((i = 0; i < 200; i++)); do
        pid_alive "$worker_pid" || pid_alive "$api_pid" || break
        sleep 0.1
    done
    for pid in $worker_pid $api_pid; do
        if pid_alive "$pid"; then
            say "pid $pid did not stop within 20 s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    wait 2>/dev/null || true
}

# The mail-stack daemons this run started (not the ones it found running). Postfix first, so it
# does not defer mail to a Dovecot or sink that is already gone.
# shellcheck disable=SC2317  # invoked by the EXIT trap
stop_started_daemons() {
    local stopped=()
    if [[ $started_postfix -eq 1 ]] && postfix_running; then
        (postfix_down) 2>>"$START_LOG" && stopped+=(Postfix)
    fi
    if [[ $started_dovecot -eq 1 ]] && dovecot_running; then
        (dovecot_down) 2>>"$START_LOG" && stopped+=(Dovecot)
    fi
    if [[ $started_sinks -eq 1 ]]; then
        (sinks_down) 2>>"$START_LOG" && stopped+=(smtp-sinks)
    fi
    [[ ${#stopped[@]} -eq 0 ]] || say "stopped what this run started: ${stopped[*]}"
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
on_exit() {
    stop_children
    stop_started_daemons
}

# shellcheck disable=SC2317  # invoked by the INT/TERM trap
on_signal() {
    trap - INT TERM
    say "stopping mailapi-worker and mailapi-api"
    stop_children
    say "stopped"
    exit 0
}
trap on_signal INT TERM
trap on_exit EXIT

# Run a child with its output prefixed on the terminal and appended to its log file. The filter
# ignores INT/TERM, so it keeps relaying the child's last lines while the child shuts down; it
# ends when the child closes its output. \$! is the child's pid.
start_child() {
    local name=$1 label=$2
    shift 2
    printf '\n[up] ---- %s started %s ----\n' "$name" "$(date -u +%FT%TZ)" >>"$LOG_DIR/$name.log"
    "$@" </dev/null > >(
        trap '' INT TERM
        exec sed -u "s/^/$label /" | tee -a "$LOG_DIR/$name.log"
    ) 2>&1 &
}

say "starting mailapi-worker (log: $LOG_DIR/worker.log)"
start_child worker '[worker]' "$worker_bin"
worker_pid=$!
say "starting mailapi-api on $listen (log: $LOG_DIR/api.log)"
start_child api '[api]   ' "$api_bin" serve
api_pid=$!

# Ready = GET /health answers (the API migrates, then binds). Give up if a child dies.
ready=0
for ((i = 0; i < 600; i++)); do
    if ! pid_alive "$api_pid" || ! pid_alive "$worker_pid"; then
        break
    fi
    if curl -fsS -o /dev/null --max-time 2 "$url/health" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [[ $ready -ne 1 ]]; then
    pid_alive "$api_pid" || say "mailapi-api exited during start-up (see above or $LOG_DIR/api.log)"
    pid_alive "$worker_pid" || say "mailapi-worker exited during start-up (see above or $LOG_DIR/worker.log)"
    stop_children
    fail "the API did not answer $url/health"
fi

cat <<EOF

==================================================================================
 Mail API is up:  $url   (health: $url/health, readiness: $url/ready)
 Admin token:     $token
 Try it:
   curl -sS -H 'X-MAILAPI-TOKEN: $token' $url/api/v1/tokens/me
 Logs: this terminal, and $LOG_DIR/api.log, $LOG_DIR/worker.log
 Stop: Ctrl-C
==================================================================================

EOF

# Wait for either child to exit (a signal interrupts the wait and runs on_signal).
set +e
wait -n "$api_pid" "$worker_pid"
rc=$?
set -e
if pid_alive "$api_pid"; then dead=mailapi-worker; else dead=mailapi-api; fi
say "$dead exited (status $rc); stopping the other one"
stop_children
exit $((rc == 0 ? 1 : rc))
