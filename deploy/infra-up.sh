#!/usr/bin/env bash
# Bring up the Mail API's local mail stack, idempotently:
#   PostgreSQL + Redis (install/start if needed), Postfix + smtp-sinks + Dovecot (install,
#   render config from deploy/postfix and deploy/dovecot, start or reload), then write
#   /etc/mailapi/mailapi.env and print it.
# Safe to run again and again; takes a few seconds when everything is already up. Everything
# listens on loopback only and no mail ever leaves the machine (non-local domains go to sinks).
# Usage: sudo deploy/infra-up.sh        (then: source /etc/mailapi/mailapi.env)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=lib/postgres.sh
source "$here/lib/postgres.sh"
# shellcheck source=lib/redis.sh
source "$here/lib/redis.sh"
# shellcheck source=lib/postfix.sh
source "$here/lib/postfix.sh"
# shellcheck source=lib/sinks.sh
source "$here/lib/sinks.sh"
# shellcheck source=lib/dovecot.sh
source "$here/lib/dovecot.sh"
# shellcheck source=lib/envfile.sh
source "$here/lib/envfile.sh"

trap 'rc=$?; [[ $rc -eq 0 ]] || printf "[infra] FAILED (exit %s); daemon start output: %s\n" "$rc" "$START_LOG" >&2' EXIT

require_root
ensure_dirs
take_lock
started=$SECONDS

# One apt transaction for everything missing (apt-get update only if something is).
ensure_packages "${TOOL_PACKAGES[@]}" "${PG_PACKAGES[@]}" "${REDIS_PACKAGES[@]}" \
    "${POSTFIX_PACKAGES[@]}" "${DOVECOT_PACKAGES[@]}"

load_secrets
postgres_up
redis_up
# Postfix is installed (above) before Dovecot starts: Dovecot's LMTP and auth sockets live in
# Postfix's spool. Postfix itself starts last, when everything it hands mail to (Dovecot's
# sockets, the sinks) is there: a client on 587 before the auth socket exists makes smtpd die
# and Postfix throttle the submission service for 60 s.
sinks_up
dovecot_up
postfix_up
envfile_write

log "stack up in $((SECONDS - started)) s; settings written to $ENV_FILE (mode 600):"
cat "$ENV_FILE"
