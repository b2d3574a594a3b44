#!/usr/bin/env bash
# End-to-end smoke test of the running local mail stack (after deploy/infra-up.sh, with the
# app's schema migrated into the `mailapi` database).
#
# Inserts a throwaway domain smoke-<tag>.test with mailboxes alice@ and bounces@, then (in
# lib/smoke.py, Python standard library only): mail in through port 25 -> Dovecot -> IMAP as
# the user and as the master user; relaying and unknown users refused on 25; submission on 587
# with AUTH to the sinks (accept -> exactly one dump file, hard -> status=bounced + report);
# the SASL-only submission user cannot log in to IMAP. Removes its rows and mail at the end.
# Prints PASS/FAIL per check; exits non-zero if any check failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$here/lib/common.sh"

require_root
[[ -r $ENV_FILE ]] || die "$ENV_FILE missing: run deploy/infra-up.sh first"
# shellcheck source=/dev/null
source "$ENV_FILE"
command -v python3 >/dev/null || ensure_packages python3
command -v psql >/dev/null || die "psql missing: run deploy/infra-up.sh first"

app_sql() {
    psql "$MAILAPI_DATABASE_URL" -X -q -At -v ON_ERROR_STOP=1 "$@"
}

# The schema belongs to the app (sqlx migrations); this test does not create it.
views=$(app_sql -c "select count(to_regclass(v)) from unnest(array['public.mta_domains','public.mta_mailboxes','public.mta_aliases']) v") ||
    die "cannot query the mailapi database with MAILAPI_DATABASE_URL"
if [[ $views != 3 ]]; then
    echo "FAIL schema -- the mta_domains/mta_mailboxes/mta_aliases views are missing in the mailapi database: run the app's migrations first"
    exit 2
fi

tag="$(date +%Y%m%d%H%M%S)-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
domain="smoke-$tag.test"
user_password=$(random_secret)
user_hash="{SHA512-CRYPT}$(printf '%s' "$user_password" | openssl passwd -6 -stdin)"

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    app_sql -v domain="$domain" <<'SQL' || echo "warning: could not delete the test rows for $domain" >&2
delete from domains where domain = :'domain';
SQL
    rm -rf "${VMAIL_DIR:?}/$domain"
    # Our dumps in the accept-all sink (other files there belong to other tests: leave them).
    grep -rlF -- "$tag" "$MAILAPI_SINK_DIR" 2>/dev/null | xargs -r rm -f
}
trap cleanup EXIT

app_sql -v domain="$domain" -v hash="$user_hash" <<'SQL' >/dev/null
with d as (
    insert into domains (domain, active) values (:'domain', true) returning id
)
insert into mailboxes (domain_id, local_part, email, password_hash)
select d.id, lp, lp || '@' || :'domain', :'hash'
  from d, unnest(array['alice', 'bounces']) lp;
SQL
echo "smoke test domain: $domain (alice@, bounces@)"

rc=0
SMOKE_DOMAIN=$domain SMOKE_TAG=$tag SMOKE_USER_PASSWORD=$user_password \
    python3 "$here/lib/smoke.py" || rc=$?
exit "$rc"
