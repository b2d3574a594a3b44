# shellcheck shell=bash
# SMTP sinks: Postfix's smtp-sink stands in for the rest of the Internet.
#
#   2525  accepts everything and dumps each message into its own file in $SINK_DIR
#   2526  answers 5xx to RCPT (hard bounce)
#   2527  answers 4xx to RCPT (deferral)
#   2528  nothing listens (destination down) - not started on purpose
#
# Tracked by pid files in $RUN_DIR: two smtp-sinks can bind the same port without an error
# (SO_REUSEPORT), so "start one if the port looks free" is not enough - a second start would
# leave two sinks sharing the connections and the dumps.

SINK_BIN=/usr/sbin/smtp-sink
SINK_BACKLOG=256

# The full argument list for the sink on a port (also used to spot a sink started with other
# options, which is then restarted).
sink_args() {
    local port=$1
    local args=(-u "$SINK_USER" -h sink.mailapi.local)
    case $port in
    2525)
        # -d: one file per mail transaction; the template is expanded by strftime and gets a
        # random hex suffix, e.g. 20261125141503.5f3a9c1e. Tests count files per Message-ID.
        args+=(-d "$SINK_DIR/%Y%m%d%H%M%S.") ;;
    # Hard / soft reply to every RCPT. The texts are realistic (and those of the log samples in
    # shared/mail-samples) instead of smtp-sink's default "500 5.3.0 Error: command failed".
    2526) args+=(-f RCPT -B "550 5.1.1 Recipient address rejected: User unknown (smtp-sink)") ;;
    2527) args+=(-r RCPT -b "450 4.2.0 Mailbox busy, try again later (smtp-sink)") ;;
    *) die "no sink defined for port $port" ;;
    esac
    args+=("127.0.0.1:$port" "$SINK_BACKLOG")
    printf '%s\n' "${args[@]}"
}

sink_pidfile() { printf '%s/smtp-sink-%s.pid\n' "$RUN_DIR" "$1"; }

# Does PID run smtp-sink with exactly the arguments we want for PORT?
sink_pid_matches() {
    local pid=$1 port=$2 want have args=()
    pid_alive "$pid" || return 1
    mapfile -t args < <(sink_args "$port")
    want=$(printf '%s\n' "$SINK_BIN" "${args[@]}")
    have=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $have == "$want" ]]
}

sink_stop_pid() {
    local pid=$1 i
    pid_alive "$pid" || return 0
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

sink_up_one() {
    local port=$1 pidfile pid args=()
    pidfile=$(sink_pidfile "$port")
    mapfile -t args < <(sink_args "$port")
    pid=$(cat "$pidfile" 2>/dev/null || true)

    if sink_pid_matches "$pid" "$port" && listener_pids "$port" | grep -qx "$pid"; then
        return 0 # already running as wanted
    fi
    # A sink we started earlier but with other options (or a stale pid file): replace it.
    if pid_alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == smtp-sink ]]; then
        log "restarting smtp-sink on $port (options changed)"
        sink_stop_pid "$pid"
    fi
    rm -f "$pidfile"

    # Anything else on the port? Adopt nothing silently: an smtp-sink without our pid file could
    # have other options, and a foreign program would answer in unknown ways.
    local others
    others=$(listener_pids "$port" | tr '\n' ' ')
    if [[ -n $others ]]; then
        for pid in $others; do
            if sink_pid_matches "$pid" "$port"; then
                # Ours, pid file lost (e.g. /run wiped): adopt it.
                echo "$pid" >"$pidfile"
                log "adopted running smtp-sink on $port (pid $pid)"
                return 0
            fi
        done
        die "127.0.0.1:$port is taken by pid(s) $others (not our smtp-sink); stop it first"
    fi

    log "starting smtp-sink on 127.0.0.1:$port"
    # setsid: own session, so a terminal hang-up or Ctrl-C in the caller does not kill it; no
    # inherited descriptors besides its own log (see run_detached).
    (
        close_extra_fds
        exec setsid "$SINK_BIN" "${args[@]}"
    ) </dev/null >>"$LOG_DIR/smtp-sink-$port.log" 2>&1 &
    local i
    for ((i = 0; i < 50; i++)); do
        pid=$(listener_pids "$port" | head -n 1)
        [[ -n $pid ]] && break
        sleep 0.1
    done
    [[ -n $pid ]] || { show_tail "$LOG_DIR/smtp-sink-$port.log"; die "smtp-sink on $port did not start"; }
    # The pid file holds the process that actually listens (not a wrapper's pid).
    echo "$pid" >"$pidfile"
}

sinks_up() {
    ensure_system_user "$SINK_USER" /nonexistent
    mkdir -p "$SINK_DIR"
    chown "$SINK_USER:$SINK_USER" "$SINK_DIR"
    chmod 755 "$SINK_DIR"
    local port
    for port in "${SINK_PORTS[@]}"; do
        sink_up_one "$port"
    done
    if port_listening "$SINK_DOWN_PORT"; then
        die "127.0.0.1:$SINK_DOWN_PORT must stay closed (the sink-down.test destination) but something listens"
    fi
    log "smtp-sinks ready: 2525 accept (dumps in $SINK_DIR), 2526 5xx, 2527 4xx, 2528 closed"
}

# Is every sink running as ours (by pid file)?
sinks_running() {
    local port pid
    for port in "${SINK_PORTS[@]}"; do
        pid=$(cat "$(sink_pidfile "$port")" 2>/dev/null || true)
        sink_pid_matches "$pid" "$port" || return 1
    done
}

sinks_down() {
    local port pidfile pid
    for port in "${SINK_PORTS[@]}"; do
        pidfile=$(sink_pidfile "$port")
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if pid_alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == smtp-sink ]]; then
            sink_stop_pid "$pid"
            log "smtp-sink on $port stopped"
        fi
        rm -f "$pidfile"
    done
}
