# shellcheck shell=bash
# Postfix: render /etc/postfix from deploy/postfix/, check it, start or reload.

POSTFIX_MASTER_PID=/var/spool/postfix/pid/master.pid

# Running = the master's pid file names a live `master` process. (Cheaper than `postfix status`,
# which also writes a line to the mail log every time it is asked.)
postfix_running() {
    local pid
    [[ -r $POSTFIX_MASTER_PID ]] || return 1
    pid=$(tr -d ' \n' <"$POSTFIX_MASTER_PID")
    pid_alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == master ]]
}

postfix_render() {
    local f
    install_template "$DEPLOY_DIR/postfix/main.cf" /etc/postfix/main.cf root:root 0644
    install_template "$DEPLOY_DIR/postfix/master.cf" /etc/postfix/master.cf root:root 0644
    # The map definitions carry the MTA role's password: readable by Postfix, not by everyone.
    for f in pgsql-virtual-domains.cf pgsql-virtual-mailboxes.cf pgsql-virtual-aliases.cf; do
        install_template "$DEPLOY_DIR/postfix/$f" "/etc/postfix/$f" root:postfix 0640
    done
    install_template "$DEPLOY_DIR/postfix/transport" /etc/postfix/transport root:root 0644
    if [[ ! -f /etc/postfix/transport.db || /etc/postfix/transport -nt /etc/postfix/transport.db ]]; then
        postmap hash:/etc/postfix/transport </dev/null || die "postmap /etc/postfix/transport failed"
    fi
}

postfix_check() {
    local out
    out=$(postfix check 2>&1 </dev/null) || {
        printf '%s\n' "$out" >&2
        die "postfix check failed (config in /etc/postfix, templates in $DEPLOY_DIR/postfix)"
    }
    # Warnings do not fail the check but mean something is off: show them.
    [[ -z $out ]] || printf '%s\n' "$out" >&2
}

postfix_up() {
    mkdir -p "$LOG_DIR"
    postfix_render
    postfix_check
    if postfix_running; then
        run_detached postfix reload || { show_tail "$START_LOG"; die "postfix reload failed"; }
        log "Postfix reloaded"
    else
        log "starting Postfix"
        run_detached postfix start || { show_tail "$START_LOG"; die "postfix start failed"; }
    fi
    wait_port 25 10 || { show_tail "$LOG_DIR/postfix.log"; die "Postfix does not listen on 127.0.0.1:25"; }
    wait_port 587 10 || { show_tail "$LOG_DIR/postfix.log"; die "Postfix does not listen on 127.0.0.1:587"; }
    log "Postfix ready: 127.0.0.1:25 (MX), 127.0.0.1:587 (submission), log $LOG_DIR/postfix.log"
}

postfix_down() {
    if postfix_running; then
        run_detached postfix stop || die "postfix stop failed"
        log "Postfix stopped"
    else
        log "Postfix was not running"
    fi
}
