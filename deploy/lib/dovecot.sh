# shellcheck shell=bash
# VMAIL_UID/GID and the *_HASH variables are read by the templates (render's ${!NAME});
# VMAIL_DIR & co. come from common.sh.
# shellcheck disable=SC2034,SC2153
# Dovecot: IMAP on 127.0.0.1:143, LMTP and SASL auth sockets in Postfix's spool.

DOVECOT_PID=/run/dovecot/master.pid
VMAIL_UID=
VMAIL_GID=

dovecot_running() {
    local pid
    [[ -r $DOVECOT_PID ]] || return 1
    pid=$(tr -d ' \n' <"$DOVECOT_PID")
    pid_alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dovecot ]]
}

# The single system user that owns all mail, and the mail root.
vmail_ensure() {
    ensure_system_user vmail "$VMAIL_DIR"
    VMAIL_UID=$(id -u vmail)
    VMAIL_GID=$(id -g vmail)
    mkdir -p "$VMAIL_DIR"
    chown vmail:vmail "$VMAIL_DIR"
    chmod 750 "$VMAIL_DIR"
}

dovecot_render() {
    # Hashes for the passwd-files (deterministic: the file only changes when the secret does).
    MASTER_PASSWORD_HASH="{SHA512-CRYPT}$(sha512_crypt "$MASTER_PASSWORD")"
    SUBMIT_PASSWORD_HASH="{SHA512-CRYPT}$(sha512_crypt "$SUBMIT_PASSWORD")"
    install_template "$DEPLOY_DIR/dovecot/dovecot.conf" /etc/dovecot/dovecot.conf root:root 0644
    # Files with secrets: the auth process reads them as the dovecot group.
    install_template "$DEPLOY_DIR/dovecot/mailapi-sql.conf.ext" /etc/dovecot/mailapi-sql.conf.ext root:dovecot 0640
    install_template "$DEPLOY_DIR/dovecot/mailapi-master-users" /etc/dovecot/mailapi-master-users root:dovecot 0640
    # Only the "smtp" service variant exists (see dovecot.conf, passdb 3).
    install_template "$DEPLOY_DIR/dovecot/mailapi-submit-users" /etc/dovecot/mailapi-submit-users.smtp root:dovecot 0640
    # Validate before (re)starting: a bad config would otherwise only show in the log.
    local out
    out=$(doveconf -n -c /etc/dovecot/dovecot.conf 2>&1 >/dev/null </dev/null) || {
        printf '%s\n' "$out" >&2
        die "Dovecot rejects /etc/dovecot/dovecot.conf (template: $DEPLOY_DIR/dovecot/dovecot.conf)"
    }
}

dovecot_up() {
    # Its LMTP and auth sockets live in Postfix's spool: Postfix must be installed first.
    [[ -d /var/spool/postfix/private ]] || die "/var/spool/postfix/private missing: install Postfix before Dovecot"
    vmail_ensure
    dovecot_render
    mkdir -p "$LOG_DIR"
    if dovecot_running; then
        run_detached doveadm reload || { show_tail "$LOG_DIR/dovecot.log"; die "doveadm reload failed"; }
        log "Dovecot reloaded"
    else
        log "starting Dovecot"
        # run_detached: Dovecot's master keeps the stderr it was started with for its whole
        # life; a caller piping our output would otherwise never see EOF and hang.
        run_detached dovecot -c /etc/dovecot/dovecot.conf ||
            { show_tail "$START_LOG"; show_tail "$LOG_DIR/dovecot.log"; die "dovecot failed to start"; }
    fi
    wait_port 143 10 || { show_tail "$LOG_DIR/dovecot.log"; die "Dovecot does not listen on 127.0.0.1:143"; }
    wait_socket /var/spool/postfix/private/dovecot-lmtp 10 || die "Dovecot LMTP socket missing"
    wait_socket /var/spool/postfix/private/auth 10 || die "Dovecot auth socket missing"
    log "Dovecot ready: IMAP 127.0.0.1:143, LMTP+auth in /var/spool/postfix/private, log $LOG_DIR/dovecot.log"
}

dovecot_down() {
    if dovecot_running; then
        run_detached doveadm stop || die "doveadm stop failed"
        local i
        for ((i = 0; i < 50; i++)); do
            dovecot_running || break
            sleep 0.1
        done
        log "Dovecot stopped"
    else
        log "Dovecot was not running"
    fi
}
