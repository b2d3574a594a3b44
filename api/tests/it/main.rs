//! The API's tests against Postgres and Redis alone: each starts the real API in this process on
//! a fresh database and key prefix (`testkit::TestApp`). What needs Postfix, Dovecot, a worker
//! or a program besides the API is in `tests/e2e`.
//!
//! One test binary, one module per area (issue 17); nextest runs each test in its own process.
//! Needs `deploy/infra-up.sh` and `source /etc/mailapi/mailapi.env`.

mod abuse_input;
mod accounts;
mod auth_and_tokens;
mod auth_guessing;
mod client_ip;
mod feed;
mod group_commit;
mod page_limits;
mod permissions;
mod rate_limit;
mod request_log;
mod send_injection;
mod send_validation;
mod slow_clients;
mod stats;
mod stats_edges;
mod tenant_isolation;
mod webhooks;
