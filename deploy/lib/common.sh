# shellcheck shell=bash
# The constants below are used by the other lib files and, through render's ${!NAME}, by the
# templates: shellcheck cannot see either use.
# shellcheck disable=SC2034
# Shared constants and helpers for deploy/*.sh. Sourced, never executed.
#
# Every function here is idempotent: calling it again when the work is already done changes
# nothing (and is cheap), so infra-up.sh can be run as often as anyone likes.

# --- Layout ------------------------------------------------------------------------------------

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

ETC_DIR=/etc/mailapi
SECRETS_FILE=$ETC_DIR/secrets           # generated passwords, root-only (0600), reused by re-runs
ENV_FILE=$ETC_DIR/mailapi.env           # settings for the API and the worker (0600)
RUN_DIR=/run/mailapi                    # pid files of the smtp-sinks, the lock file
LOG_DIR=/var/log/mailapi                # postfix.log, dovecot.log, sink and start-up logs
SINK_DIR=/var/spool/mailapi-sink        # one file per message received by the accept-all sink
VMAIL_DIR=/var/vmail                    # mailboxes; the `home` column of mta_mailboxes is under it
START_LOG=$LOG_DIR/daemon-start.log     # stdout/stderr of every daemon start and of apt

MYHOSTNAME=mail.mailapi.local           # the machine's own name is not a FQDN (see notes)
DB_NAME=mailapi
DB_USER=mailapi                         # the application's role (owns the database)
MTA_DB_USER=mailapi_mta                 # read-only role Postfix and Dovecot use for the mta_* views
PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT=6379
MASTER_USER=mailapi-master              # Dovecot master user (the API reads any mailbox as it)
SUBMIT_USER=mailapi-submit              # SASL-only credential for the worker on port 587
SINK_USER=mailapi-sink                  # unprivileged user the smtp-sinks run as
MESSAGE_SIZE_LIMIT=10240000

# Sinks: port -> smtp-sink options. 2525 accepts and dumps every message, 2526 answers 5xx to
# RCPT, 2527 answers 4xx to RCPT. 2528 deliberately has no listener ("destination down").
SINK_PORTS=(2525 2526 2527)
SINK_DOWN_PORT=2528

# Packages per component. Installed in one apt transaction (one `apt-get update`, only when
# something is missing).
PG_PACKAGES=(postgresql)
REDIS_PACKAGES=(redis-server)
POSTFIX_PACKAGES=(postfix postfix-pgsql swaks)
DOVECOT_PACKAGES=(dovecot-core dovecot-imapd dovecot-lmtpd dovecot-pgsql)
# Tools the scripts themselves call: openssl (password hashes), iproute2 (ss: who listens on a
# port), util-linux (flock, runuser, setsid), passwd (useradd) - absent from minimal images.
TOOL_PACKAGES=(openssl iproute2 util-linux passwd ca-certificates)

# --- Messages ----------------------------------------------------------------------------------

log() { printf '[infra] %s\n' "$*" >&2; }
die() {
    printf '[infra] ERROR: %s\n' "$*" >&2
    exit 1
}

# Print the last lines of a log file to stderr (context for a failure message).
show_tail() {
    local file=$1 lines=${2:-30}
    if [[ -s $file ]]; then
        printf '[infra] --- last %s lines of %s ---\n' "$lines" "$file" >&2
        tail -n "$lines" "$file" >&2 || true
        printf '[infra] ---\n' >&2
    fi
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "run as root (installs packages, writes /etc, starts daemons)"
}

# --- Locking -----------------------------------------------------------------------------------

# Serialize concurrent runs of infra-up/infra-down (fd 9). Daemons never inherit it: see
# run_detached.
take_lock() {
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/infra.lock"
    flock -w 300 9 || die "another infra-up/infra-down still runs after 300 s ($RUN_DIR/infra.lock)"
}

# Close every file descriptor above 2 in the current (sub)shell: our lock, and whatever pipes
# the caller happened to leave open (CI runners, editors, tool harnesses do).
close_extra_fds() {
    local path fd
    for path in /proc/"$BASHPID"/fd/*; do
        fd=${path##*/}
        if ((fd > 2)); then
            exec {fd}>&-
        fi
    done 2>/dev/null
}

# Run a command (which may leave a daemon behind) with stdin from /dev/null, stdout/stderr
# appended to $START_LOG and no other inherited descriptors. A daemon that keeps an inherited
# pipe open makes `infra-up.sh | cat` hang forever - Dovecot's master keeps the stderr it was
# started with for its whole life - and one keeping fd 9 would hold our lock forever.
run_detached() {
    (
        close_extra_fds
        exec "$@"
    ) </dev/null >>"$START_LOG" 2>&1
}

# --- Packages ----------------------------------------------------------------------------------

pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# Install whatever of the given packages is missing. Runs `apt-get update` only then.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0

    log "installing: ${missing[*]} (apt output: $START_LOG)"
    # "No configuration": the package must not write a main.cf of its own or ask questions;
    # ours comes from deploy/postfix/.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

    # Maintainer scripts must not start daemons with the packages' default configs (Dovecot's
    # listens on every interface): policy-rc.d answering 101 forbids it. Only add one when none
    # exists (Docker images ship their own) and remove only the one we added.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, added by mailapi deploy/infra-up.sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    local rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q &&
            apt-get install -y -q --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
                "${missing[@]}"
    } </dev/null >>"$START_LOG" 2>&1 || rc=$?
    [[ $added_policy -eq 1 ]] && rm -f "$policy"
    if [[ $rc -ne 0 ]]; then
        show_tail "$START_LOG" 40
        die "apt-get install ${missing[*]} failed (exit $rc)"
    fi
    for p in "${missing[@]}"; do
        pkg_installed "$p" || die "package $p still not installed after apt-get install"
    done
}

# --- Files -------------------------------------------------------------------------------------

# Write stdin to DEST with the given owner:group and mode, atomically (temp file + rename, so a
# daemon never reads half a file), and only if the content, owner or mode differs.
install_content() {
    local dest=$1 owner=$2 mode=$3 tmp
    tmp=$(mktemp "$dest.tmp.XXXXXX")
    cat >"$tmp"
    if [[ -f $dest ]] && cmp -s "$tmp" "$dest" &&
        [[ $(stat -c '%U:%G %a' "$dest") == "$owner ${mode#0}" ]]; then
        rm -f "$tmp"
        return 0
    fi
    chown "$owner" "$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$dest"
}

# Render a template: every {{NAME}} is replaced by the value of the shell variable NAME. Fails
# on a placeholder with no (or an empty) variable, so a typo can't produce a silently broken file.
render() {
    local template=$1 text name value
    [[ -f $template ]] || die "template $template is missing"
    text=$(<"$template")
    while [[ $text =~ \{\{([A-Z_][A-Z0-9_]*)\}\} ]]; do
        name=${BASH_REMATCH[1]}
        value=${!name-}
        [[ -n $value ]] || die "template $template uses {{$name}} but \$$name is empty"
        text=${text//"{{$name}}"/"$value"}
    done
    printf '%s\n' "$text"
}

# render TEMPLATE | install_content DEST OWNER MODE, in one call.
install_template() {
    local template=$1 dest=$2 owner=$3 mode=$4 rendered
    rendered=$(render "$template") || exit 1
    printf '%s\n' "$rendered" | install_content "$dest" "$owner" "$mode"
}

# --- Secrets -----------------------------------------------------------------------------------

# 32 random hex characters (128 bits). Hex so that the values need no quoting or escaping in URLs,
# SQL literals, Postfix/Dovecot config files or the env file.
random_secret() {
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

# Load /etc/mailapi/secrets (KEY=value lines), generating any missing key once. Re-runs reuse the
# stored values, so the database roles, the Dovecot files and the env file stay consistent.
SECRET_KEYS=(DB_PASSWORD MTA_DB_PASSWORD MASTER_PASSWORD SUBMIT_PASSWORD SECRET_KEY)
load_secrets() {
    mkdir -p "$ETC_DIR"
    chmod 755 "$ETC_DIR"
    (umask 077 && touch "$SECRETS_FILE")
    chown root:root "$SECRETS_FILE"
    chmod 600 "$SECRETS_FILE"
    local key line value
    for key in "${SECRET_KEYS[@]}"; do
        line=$(grep -E "^$key=" "$SECRETS_FILE" | tail -n 1 || true)
        value=${line#*=}
        if [[ ! $value =~ ^[0-9a-f]{32}$ ]]; then
            [[ -n $line ]] && die "$SECRETS_FILE: $key is not 32 hex characters; fix or delete the line"
            value=$(random_secret)
            printf '%s=%s\n' "$key" "$value" >>"$SECRETS_FILE"
            log "generated $key (stored in $SECRETS_FILE)"
        fi
        printf -v "$key" '%s' "$value"
    done
}

# A SHA512-CRYPT hash for Dovecot's passwd-files. The salt is derived from the password so the
# same password always gives the same line: re-runs leave the file untouched.
sha512_crypt() {
    local password=$1 salt
    salt=$(printf '%s' "$password" | sha256sum | cut -c1-16)
    printf '%s' "$password" | openssl passwd -6 -salt "$salt" -stdin
}

# --- Processes and ports -----------------------------------------------------------------------

pid_alive() {
    [[ -n ${1-} && $1 =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null
}

# PIDs (one per line) of the processes listening on PORT over TCP (none: empty, still status 0).
listener_pids() {
    { ss -Hltnp "sport = :$1" 2>/dev/null || true; } | { grep -oE 'pid=[0-9]+' || true; } | cut -d= -f2 | sort -u
}

# Is something listening on TCP PORT? Asked of the kernel (ss), not by connecting: a probe
# connection would show up in the mail logs ("lost connection after CONNECT") and, on 587 before
# Dovecot's auth socket exists, make smtpd exit and Postfix throttle that service for a minute.
port_listening() {
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
}

# Wait up to SECONDS for something to listen on PORT.
wait_port() {
    local port=$1 seconds=${2:-10} i
    for ((i = 0; i < seconds * 10; i++)); do
        port_listening "$port" && return 0
        sleep 0.1
    done
    return 1
}

wait_socket() {
    local path=$1 seconds=${2:-10} i
    for ((i = 0; i < seconds * 10; i++)); do
        [[ -S $path ]] && return 0
        sleep 0.1
    done
    return 1
}

# Create a system user (and its group) if missing. Prints nothing.
ensure_system_user() {
    local user=$1 home=$2
    getent group "$user" >/dev/null || groupadd --system "$user"
    getent passwd "$user" >/dev/null ||
        useradd --system --gid "$user" --home-dir "$home" --no-create-home \
            --shell /usr/sbin/nologin "$user"
}

ensure_dirs() {
    mkdir -p "$ETC_DIR" "$RUN_DIR" "$LOG_DIR"
    chmod 755 "$RUN_DIR" "$LOG_DIR"
}
