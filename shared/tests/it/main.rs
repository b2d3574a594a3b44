//! `shared`'s tests against a real Postgres, each on a fresh `mailapi_test_<uuid>` database
//! (`testkit`) made from MAILAPI_DATABASE_URL (source /etc/mailapi/mailapi.env): the status
//! writes, and migrations from several processes at once.
//!
//! One test binary, one module per area (issue 17); nextest runs each test in its own process.

mod delivery;
mod migrate;
