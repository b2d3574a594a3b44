#!/usr/bin/env bash
# Proves README command (a) as a user meets it: deploy/up.sh, run twice in a row, each time
# stopped with Ctrl-C. Each run must bring the stack and both services up (GET /ready answers,
# the admin token it prints works), and Ctrl-C must stop everything the run started: the API,
# the worker, their log filters, and the mail-stack daemons it had to start. deploy/test.sh runs
# this after the test suite; it leaves the stack running as it found it.
#
# Ctrl-C in a terminal sends SIGINT to the whole foreground process group; so does this script
# (each run is its own process group, thanks to job control).
#
# Usage (as root):  deploy/check-up.sh     Environment: MAILAPI_PROFILE (default debug here).
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

say() { printf '[check-up] %s\n' "$*"; }
fail() {
    printf '[check-up] FAIL: %s\n' "$*" >&2
    exit 1
}

require_root
ensure_dirs
command -v curl >/dev/null || ensure_packages curl
# The debug build is what the test suite just built; a release build would add minutes.
export MAILAPI_PROFILE=${MAILAPI_PROFILE:-debug}
port=18080
while port_listening "$port"; do port=$((port + 1)); done
export MAILAPI_LISTEN=127.0.0.1:$port
url=http://127.0.0.1:$port

# Start from a stopped mail stack, so that the runs have daemons of their own to stop.
bash "$here/infra-down.sh" >>"$START_LOG" 2>&1 || fail "deploy/infra-down.sh failed"

set -m # job control: each background job gets its own process group, as in a terminal
out=$(mktemp /tmp/mailapi-check-up.XXXXXX)
trap 'rm -f "$out"' EXIT

one_run() {
    local n=$1 pid pgid token i rc
    : >"$out"
    bash "$here/up.sh" </dev/null >"$out" 2>&1 &
    pid=$!
    pgid=$(ps -o pgid= -p "$pid" | tr -d ' ')
    # The first run may build the binaries: allow for a cold build.
    for ((i = 0; i < 1800; i++)); do
        grep -q '^ Admin token:' "$out" && break
        pid_alive "$pid" || { cat "$out"; fail "run $n: deploy/up.sh exited before it was up"; }
        sleep 1
    done
    token=$(sed -n 's/^ Admin token: *\(mapi_[0-9A-Za-z]*\).*/\1/p' "$out" | tail -n 1)
    [[ -n $token ]] || { cat "$out"; fail "run $n: no admin token after 30 minutes"; }
    curl -fsS -o /dev/null "$url/ready" || fail "run $n: GET /ready failed"
    curl -fsS -o /dev/null -H "X-MAILAPI-TOKEN: $token" "$url/api/v1/tokens/me" ||
        fail "run $n: the printed admin token does not work"
    if ! { postfix_running && dovecot_running && sinks_running; }; then
        fail "run $n: the mail stack is not running while deploy/up.sh is"
    fi
    say "run $n: up on $url, token works; pressing Ctrl-C"

    kill -INT -- "-$pgid"
    rc=0
    for ((i = 0; i < 600; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    pid_alive "$pid" && { cat "$out"; fail "run $n: deploy/up.sh still runs 60 s after Ctrl-C"; }
    wait "$pid" || rc=$?
    [[ $rc -eq 0 ]] || { cat "$out"; fail "run $n: deploy/up.sh exited $rc after Ctrl-C (want 0)"; }
    if pgrep -g "$pgid" >/dev/null; then
        ps -o pid,args -g "$pgid" >&2 || true
        fail "run $n: processes of deploy/up.sh outlived it"
    fi
    port_listening "$port" && fail "run $n: something still listens on $port"
    postfix_running && fail "run $n: Postfix, which this run started, still runs"
    dovecot_running && fail "run $n: Dovecot, which this run started, still runs"
    sinks_running && fail "run $n: the smtp-sinks, which this run started, still run"
    say "run $n: Ctrl-C stopped the API, the worker and the daemons the run started"
}

one_run 1
one_run 2
set +m

# Leave the stack as deploy/test.sh had it.
bash "$here/infra-up.sh" >>"$START_LOG" 2>&1 || fail "deploy/infra-up.sh failed afterwards"
say "PASS: deploy/up.sh twice in a row, Ctrl-C each time"
