#!/usr/bin/env bash
# README command (b), and what CI runs (.ci/run): every test, against the real local stack.
#
#   1. deploy/infra-up.sh (idempotent: installs and starts whatever is missing);
#   2. cargo-nextest and cargo-deny, installed with `cargo install --locked` if missing;
#   3. drop the per-test databases (mailapi_test_*) earlier runs left behind;
#   4. migrate the main database (the one Postfix and Dovecot read);
#   5. static checks: shellcheck over deploy/ and bench/, and tools/structure.py (no import
#      circle between source files, no Rust file over 400 lines, no json! in a route);
#   6. deploy/smoke.sh: the mail stack end to end (SMTP in and out, IMAP, sinks);
#   7. deploy/deny.sh: cargo deny check advisories bans licenses sources, against the offline
#      advisory database snapshot (fails if the snapshot is missing);
#   8. cargo nextest run --workspace --no-fail-fast --features worker/fault-injection, with this script's arguments appended;
#   9. deploy/check-up.sh: README command (a) twice in a row, stopped with Ctrl-C each time
#      (skipped when arguments select tests, i.e. for a partial run).
# Steps 5 to 9 all run even if one fails; the exit status is non-zero if any did.
# Needs no terminal or stdin (CI runs it with CI=true and stdin closed).
#
# Usage (as root):  deploy/test.sh [extra cargo-nextest arguments, e.g. -E 'test(tokens)']
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=lib/toolchain.sh
source "$here/lib/toolchain.sh"

step=0
section() {
    step=$((step + 1))
    printf '\n==== [%s/9] %s ====\n' "$step" "$*"
}
fail() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || fail "run as root: deploy/infra-up.sh installs packages and starts daemons"
exec </dev/null
cd "$repo"
started=$SECONDS

section "local stack: deploy/infra-up.sh"
# The start-up log lives in $LOG_DIR: create it before the first write (a fresh machine has
# neither it nor /etc/mailapi).
ensure_dirs
# Its last lines are the env file, secrets included: keep those out of (CI) logs.
if ! bash "$here/infra-up.sh" >>"$START_LOG" 2>&1; then
    show_tail "$START_LOG" 40
    fail "deploy/infra-up.sh failed (full output: $START_LOG)"
fi
echo "Postgres, Redis, Postfix, Dovecot and the sinks are up (log: $START_LOG)"
# shellcheck source=/dev/null
source "$ENV_FILE"
echo "settings: $ENV_FILE"

section "toolchain"
require_cargo || exit 1
cargo --version
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "cargo-nextest missing: cargo install cargo-nextest --locked"
    cargo install cargo-nextest --locked
fi
cargo nextest --version | head -n 1
if ! cargo deny --version >/dev/null 2>&1; then
    echo "cargo-deny missing: cargo install cargo-deny --locked"
    cargo install cargo-deny --locked
fi
cargo deny --version
# What tests drive the API with: the spec's own PHP and Python examples, an independent DKIM
# verifier (dkimpy; PyNaCl lets it check Ed25519 signatures), a DNS server on loopback for
# the record checks, shellcheck for the scripts, curl for deploy/check-up.sh and libfaketime
# for the checker's worker with a skewed clock.
TEST_PACKAGES=(php-cli php-curl dnsmasq-base chromium shellcheck curl faketime)
ensure_packages "${TEST_PACKAGES[@]}"
# pip leaves requirements that are already met alone (without asking the index), so this costs
# nothing on a machine that has them. schemathesis is held to 4.x:
# api/tests/e2e/openapi/schemathesis.rs names its checks. standardwebhooks checks our webhook
# signatures in testkit/webhook_receiver.py.
TEST_PYTHON_PACKAGES=(requests dkimpy pynacl 'schemathesis>=4.32,<5' standardwebhooks)
python3 -m pip install -q --disable-pip-version-check "${TEST_PYTHON_PACKAGES[@]}" ||
    fail "pip install ${TEST_PYTHON_PACKAGES[*]} failed"

# The spec's Node.js snippets use axios (api/tests/e2e/spec_snippets.rs): installed under target/,
# beside the build, from the npm registry, without a lockfile.
command -v node >/dev/null || ensure_packages nodejs
command -v npm >/dev/null || ensure_packages npm
node_dir=$repo/target/spec-examples
if [[ ! -f $node_dir/node_modules/axios/package.json ]]; then
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --no-package-lock --no-audit --no-fund --silent axios@1 ||
        fail "npm install axios failed"
fi

section "drop leftover test databases (mailapi_test_*)"
# Only databases nobody is connected to and that are more than 2 minutes old: another test run
# may be between creating a database and connecting to it. The age is that of the database's
# PG_VERSION file, written when the database is created.
leftovers=$(
    cd / && runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres <<'SQL'
select d.datname
  from pg_database d
 where d.datname like 'mailapi\_test\_%'
   and not exists (select 1 from pg_stat_activity a where a.datid = d.oid)
   and coalesce((pg_stat_file('base/' || d.oid || '/PG_VERSION', true)).modification,
                 '-infinity') < now() - interval '2 minutes'
 order by 1;
SQL
) || fail "could not list the test databases"
dropped=0
kept=0
for db in $leftovers; do
    [[ $db =~ ^mailapi_test_[0-9a-z_]+$ ]] || continue
    # Fails harmlessly when a test connected in the meantime.
    if (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres \
        -c "drop database if exists \"$db\"") >/dev/null 2>&1; then
        dropped=$((dropped + 1))
    else
        kept=$((kept + 1))
    fi
done
note=
[[ $kept -eq 0 ]] || note=" ($kept could not be dropped: in use by now)"
echo "dropped $dropped leftover test database(s)$note"

section "migrate the main database"
# RUST_LOG=warn: only its result line, not the migration notices.
RUST_LOG=warn cargo run -q -p api --bin mailapi-api -- migrate

failed=()
status=0

section "static checks: shellcheck over deploy/ and bench/, tools/structure.py"
rc=0
mapfile -t scripts < <(cd "$repo" && {
    ls deploy/*.sh deploy/lib/*.sh deploy/docker/*.sh bench/*.sh
    echo .ci/run
})
# -x -P SCRIPTDIR: follow each script's `source` of its lib files, relative to the script.
shellcheck -x -P SCRIPTDIR "${scripts[@]}" || rc=$?
if [[ $rc -ne 0 ]]; then
    failed+=("shellcheck (exit $rc)")
    status=$rc
else
    echo "shellcheck: ${#scripts[@]} scripts clean"
fi
# No import circle between source files, no Rust file over 400 lines, no json! in a route.
rc=0
python3 "$repo/tools/structure.py" "$repo" || rc=$?
if [[ $rc -ne 0 ]]; then
    failed+=("tools/structure.py (exit $rc)")
    [[ $status -ne 0 ]] || status=$rc
fi

section "mail stack smoke test: deploy/smoke.sh"
rc=0
bash "$here/smoke.sh" || rc=$?
if [[ $rc -ne 0 ]]; then
    failed+=("deploy/smoke.sh (exit $rc)")
    status=$rc
fi

section "supply chain: deploy/deny.sh (cargo deny check advisories bans licenses sources)"
rc=0
bash "$here/deny.sh" || rc=$?
if [[ $rc -ne 0 ]]; then
    failed+=("deploy/deny.sh (exit $rc)")
    [[ $status -ne 0 ]] || status=$rc
fi

# The fault hooks (worker/src/fault.rs) are compiled into this build only, for the checker
# (worker/tests/it/checker/); they do nothing unless a test arms them.
section "tests: cargo nextest run --workspace --no-fail-fast --features worker/fault-injection $*"
rc=0
cargo nextest run --workspace --no-fail-fast --features worker/fault-injection "$@" || rc=$?
if [[ $rc -ne 0 ]]; then
    failed+=("cargo nextest (exit $rc)")
    [[ $status -ne 0 ]] || status=$rc
fi

section "README command (a) twice, Ctrl-C each time: deploy/check-up.sh"
if [[ $# -eq 0 ]]; then
    rc=0
    bash "$here/check-up.sh" || rc=$?
    if [[ $rc -ne 0 ]]; then
        failed+=("deploy/check-up.sh (exit $rc)")
        [[ $status -ne 0 ]] || status=$rc
    fi
else
    echo "skipped: arguments select a subset of the tests ($*)"
fi

printf '\n==== summary (%s s) ====\n' "$((SECONDS - started))"
if [[ ${#failed[@]} -eq 0 ]]; then
    echo "all passed: shellcheck, structure, smoke test, cargo deny, cargo nextest and deploy/up.sh twice"
    exit 0
fi
printf 'FAILED: %s\n' "${failed[@]}"
exit "$status"
