#!/usr/bin/env bash
# Stop what infra-up.sh started that belongs to the mail stack: the smtp-sinks (by pid file),
# Dovecot and Postfix. PostgreSQL and Redis are left running (shared with other work).
# Queued mail, mailboxes, sink dumps, logs and secrets are kept.
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

require_root
ensure_dirs
take_lock

# Postfix first, so it does not log LMTP/SMTP failures (and defer mail) for deliveries it would
# still attempt while Dovecot and the sinks go away.
if command -v postfix >/dev/null; then
    postfix_down
fi
dovecot_down
sinks_down
log "mail stack stopped (PostgreSQL and Redis left running)"
