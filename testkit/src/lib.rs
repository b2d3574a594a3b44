//! What the workspace's tests share, written once: the environment `deploy/infra-up.sh` writes
//! (/etc/mailapi/mailapi.env), a fresh migrated database per test, Redis, the real API served on
//! port 0 ([`TestApp`], after zero-to-production's `spawn_app`), workers in this process or as
//! processes, the accept-all sink's files, the real mail samples of `worker/tests/fixtures/`,
//! the statistics tests' pipeline writes and throwaway Redis topologies.
//!
//! Services come from `deploy/infra-up.sh`; a test that cannot reach one fails with a message
//! saying how to start it. Nothing here skips.
//!
//! A library only (`test = false`): the test binaries are `api/tests/it`, `api/tests/e2e`,
//! `worker/tests/it` and `shared/tests/it`, each taking this crate as a dev-dependency.

pub mod app;
pub mod db;
pub mod env;
pub mod fixtures;
pub mod net;
pub mod process;
pub mod redis;
pub mod sink;
pub mod stats;
pub mod webhooks;
pub mod workers;

pub use app::{TestApp, assert_error};
pub use db::{empty_database, fresh_database};
pub use env::{base_database_url, env, env_or, env_settings, redis_url, settings};
pub use fixtures::fixture;
pub use net::{free_port, free_udp_port};
pub use process::{Proc, worker_command};
pub use redis::require_redis;
pub use sink::sink_counts;
pub use workers::Worker;
