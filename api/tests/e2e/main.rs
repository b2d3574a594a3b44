//! The API against the real stack: mail through workers, Postfix and Dovecot to the sink and to
//! mailboxes; Redis topologies of the test's own; and the programs that check what the API
//! serves (dkimpy, dnsmasq, Chromium, schemathesis, the spec's snippets in Python, Node.js and
//! PHP). The API's tests that need only Postgres and Redis are in `tests/it`.
//!
//! One test binary, one module per area (issue 17); nextest runs each test in its own process.
//! Needs `deploy/infra-up.sh`, `source /etc/mailapi/mailapi.env` and the tools deploy/test.sh
//! installs.

mod accounts;
mod dashboard;
mod delivery;
mod dkim;
mod domains_dns;
mod mailbox;
mod metrics;
mod openapi;
mod overload;
mod prefer_wait;
mod redis;
mod scale_out;
mod send;
mod spec_send_example;
mod spec_snippets;
mod traces;
