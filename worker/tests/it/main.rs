//! The worker's tests against Postgres, Redis and the mail stack: the log follower, the bounce
//! reader, the sharded stream, crash safety with the binary killed and restarted, and the
//! checker's faults. Shared harness: `testkit`.
//!
//! One test binary, one module per area (issue 17); nextest runs each test in its own process.
//! Needs `deploy/infra-up.sh` and `source /etc/mailapi/mailapi.env`.

mod bounces;
mod checker;
mod crash;
mod logtail;
mod stream_shards;
mod webhooks;

/// This build's worker binary, for the tests that run it as a process and kill it. Only the
/// worker's own tests know its path.
const WORKER_BIN: &str = env!("CARGO_BIN_EXE_mailapi-worker");
