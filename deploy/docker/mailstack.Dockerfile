# syntax=docker/dockerfile:1
# The local mail stack as one container: Postfix (25, 587), Dovecot (IMAP 143, LMTP, SASL) and
# the smtp-sinks (2525-2527), installed and configured by the same deploy/lib functions and
# deploy/postfix + deploy/dovecot templates as deploy/infra-up.sh. Everything listens on the
# container's loopback: compose.yaml runs the api and worker in this container's network
# namespace, so they reach it on 127.0.0.1 exactly as on a machine set up by infra-up.sh.
#   docker build -f deploy/docker/mailstack.Dockerfile -t mailapi-mailstack .

FROM debian:bookworm-slim

# Packages and system users first (the slow, rarely changing layer), from the lib alone.
COPY deploy/lib/ /opt/mailapi/deploy/lib/
RUN bash -euo pipefail -c '\
        source /opt/mailapi/deploy/lib/common.sh; \
        ensure_dirs; \
        ensure_packages "${TOOL_PACKAGES[@]}" "${POSTFIX_PACKAGES[@]}" "${DOVECOT_PACKAGES[@]}" \
            postgresql-client; \
        ensure_system_user vmail "$VMAIL_DIR"; \
        ensure_system_user "$SINK_USER" /nonexistent' \
    && rm -rf /var/lib/apt/lists/* /var/log/mailapi/*

COPY deploy/postfix/ /opt/mailapi/deploy/postfix/
COPY deploy/dovecot/ /opt/mailapi/deploy/dovecot/
COPY deploy/docker/mailstack-entrypoint.sh /opt/mailapi/deploy/docker/
EXPOSE 25 587 143
ENTRYPOINT ["bash", "/opt/mailapi/deploy/docker/mailstack-entrypoint.sh"]
