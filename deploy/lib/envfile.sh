# shellcheck shell=bash
# The settings file the API, the worker and the tests source: /etc/mailapi/mailapi.env.

envfile_write() {
    install_content "$ENV_FILE" root:root 0600 <<ENV
# Mail API local stack settings - written by deploy/infra-up.sh; do not edit (re-run it).
# Secrets come from $SECRETS_FILE.
# sslmode=disable: loopback needs no TLS, and TLS records make large statements stall (sqlx sets
# no TCP_NODELAY), which cut log ingestion to a third.
export MAILAPI_DATABASE_URL=postgres://$DB_USER:$DB_PASSWORD@$PG_HOST:$PG_PORT/$DB_NAME?sslmode=disable
export MAILAPI_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export MAILAPI_SMTP_HOST=127.0.0.1
export MAILAPI_SMTP_PORT=587
export MAILAPI_SMTP_USERNAME=$SUBMIT_USER
export MAILAPI_SMTP_PASSWORD=$SUBMIT_PASSWORD
export MAILAPI_SMTP_MAX_MESSAGE_BYTES=$MESSAGE_SIZE_LIMIT
export MAILAPI_IMAP_HOST=127.0.0.1
export MAILAPI_IMAP_PORT=143
export MAILAPI_IMAP_MASTER_USER=$MASTER_USER
export MAILAPI_IMAP_MASTER_PASSWORD=$MASTER_PASSWORD
export MAILAPI_MTA_LOG_PATH=$LOG_DIR/postfix.log
export MAILAPI_MX_HOST=127.0.0.1
export MAILAPI_MX_PORT=25
export MAILAPI_SINK_DIR=$SINK_DIR
# Seals webhook signing secrets at rest (docs/WEBHOOKS.md).
export MAILAPI_SECRET_KEY=$SECRET_KEY
# Everything on this stack is loopback, webhook receivers included; production leaves it false.
export MAILAPI_WEBHOOK_ALLOW_PRIVATE=true
ENV
}
