//! The groups of settings each part of the system reads (SMTP, IMAP, limits, the server, sign-up,
//! the worker, tracing), as [`super::Settings`] holds them.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

use super::env::{ConfigError, bad};
use crate::address::DomainName;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Postfix's `message_size_limit`: a message larger than this is refused at accept time.
    pub max_message_bytes: usize,
    /// Pooled connections to the MTA per worker (`MAILAPI_SMTP_POOL_SIZE`, 24 by default).
    /// Each Postfix submission takes tens of milliseconds of its own (cleanup, queue file,
    /// lookups), so the pool bounds a worker's rate to about size / that time: with 8, messages
    /// queued seconds behind the pool at 120 msg/s through Postfix on a 2-core machine; with 24,
    /// a few hundred milliseconds (docs/BENCHMARKS.md, "End to end through Postfix").
    pub pool_size: u32,
    /// Longest time one SMTP command may take; the whole transaction is bounded by
    /// [`SmtpSettings::transaction_timeout`].
    pub command_timeout: Duration,
}

impl SmtpSettings {
    /// Upper bound of one SMTP transaction (connect, MAIL, RCPTs, DATA, final reply).
    pub fn transaction_timeout(&self) -> Duration {
        self.command_timeout * 6
    }
}

#[derive(Debug, Clone)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub master_user: String,
    pub master_password: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub requests_per_minute: u32,
    pub requests_per_hour: u32,
    pub max_recipients: usize,
    pub max_body_bytes: usize,
    /// How long a cached token stays valid in one API process: the upper bound on how long a
    /// revoked token keeps working there.
    pub token_cache_ttl: Duration,
    pub idempotency_ttl: Duration,
    /// Failed token checks (malformed or unknown tokens) one client address may make per window
    /// before it is refused with 429 for the rest of it (`MAILAPI_AUTH_FAILURES_PER_IP`, 20).
    pub auth_failures_per_ip: u32,
    /// That window (`MAILAPI_AUTH_FAILURE_WINDOW_SECS`, 600).
    pub auth_failure_window: Duration,
}

/// How the API protects its latency and its sockets: it answers 503 `OVERLOADED` instead of
/// queueing work it cannot do in time, and it drops clients that send too slowly.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Requests under `/api/v1` one API process works on at once (`MAILAPI_MAX_IN_FLIGHT`,
    /// 1024). The next one is answered 503 `OVERLOADED` at once. `GET /api/v1/queue`, health
    /// and metrics are not counted, so an operator can always look.
    pub max_in_flight: usize,
    /// Sends are refused with 503 `OVERLOADED` while more messages than this are due and not yet
    /// submitted (`MAILAPI_SHED_BACKLOG`, 200000; 0 turns this check off).
    pub shed_backlog: u64,
    /// ... or while the oldest due message has waited longer than this
    /// (`MAILAPI_SHED_OLDEST_SECS`, 600; 0 turns this check off).
    pub shed_oldest_age: Duration,
    /// How often each API process measures the backlog and the drain rate
    /// (`MAILAPI_SHED_SAMPLE_MS`, 1000, 50-60000).
    pub sample_every: Duration,
    /// A connection must deliver a request's whole header within this, counted from when the
    /// server starts waiting for it, idle keep-alive time included (`MAILAPI_HEADER_TIMEOUT_SECS`,
    /// 20, 1-3600); otherwise it is closed.
    pub header_timeout: Duration,
    /// A request's whole body must arrive within this after its header
    /// (`MAILAPI_BODY_TIMEOUT_SECS`, 60, 1-3600); otherwise the answer is 408 `REQUEST_TIMEOUT`.
    pub body_timeout: Duration,
}

/// Self-signup limits and what the DNS endpoints publish and query.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// Signup attempts allowed per domain name per hour (the spec says 3).
    pub signups_per_domain_per_hour: u32,
    /// Signup attempts allowed per client IP address per hour.
    pub signups_per_ip_per_hour: u32,
    /// Lifetime of the user token a signup returns.
    pub signup_token_ttl: Duration,
    /// Host name published as the MX of hosted domains and authorised by their SPF record.
    pub mx_host: DomainName,
    /// Resolver used by DNS verification (`MAILAPI_DNS_RESOLVER`, `ip` or `ip:port`); `None`
    /// means the system's resolvers from `/etc/resolv.conf`.
    pub dns_resolver: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Name of this consumer in the stream's consumer group; defaults to host name and pid.
    pub consumer_name: String,
    /// Messages in flight at once (`MAILAPI_WORKER_CONCURRENCY`, 256 by default). A worker is
    /// bound by waiting (claim, SMTP round trips, group commits), not by CPU, so its rate is
    /// about concurrency / per-message latency: 64 fell behind 1,500 msg/s on a loaded
    /// two-core machine where 256 kept up (docs/BENCHMARKS.md).
    pub concurrency: usize,
    /// Seconds to wait before each retry of a transient failure; jitter is added.
    pub retry_schedule: Vec<Duration>,
    /// A stream entry pending this long with a consumer that stopped acknowledging is reclaimed.
    /// Must exceed the longest SMTP transaction, or two workers could hold one message.
    pub reclaim_idle: Duration,
    /// A message still `pending` this long after its due time is put back on the stream.
    pub reconcile_after: Duration,
    /// Where the worker serves `/metrics` and `/health`; `None` (`off`) serves nothing.
    pub metrics_listen: Option<SocketAddr>,
}

/// Webhooks (docs/WEBHOOKS.md): how the worker calls receivers, and the key their secrets are
/// sealed with.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Seals signing secrets at rest (`MAILAPI_SECRET_KEY`, at least 32 characters;
    /// `deploy/infra-up.sh` generates one). Unset: webhooks cannot be registered and the
    /// worker delivers none.
    pub secret_key: Option<SecretString>,
    /// Allow URLs that resolve to loopback, private or link-local addresses
    /// (`MAILAPI_WEBHOOK_ALLOW_PRIVATE`, false by default; the local stack sets it).
    pub allow_private: bool,
    /// Waits before each retry of a failed delivery (`MAILAPI_WEBHOOK_RETRY_SCHEDULE_SECS`);
    /// after the last one fails the event is dead-lettered. Jitter of up to +-20 % is added.
    pub retry_schedule: Vec<Duration>,
    /// How long a rotated-out secret keeps signing beside the new one
    /// (`MAILAPI_WEBHOOK_SECRET_OVERLAP_SECS`, a day by default).
    pub secret_overlap: Duration,
    /// Requests in flight to one endpoint from one worker (`MAILAPI_WEBHOOK_CONCURRENCY`).
    pub concurrency_per_endpoint: usize,
    /// Failed attempts in a row after which an endpoint's breaker opens
    /// (`MAILAPI_WEBHOOK_BREAKER_FAILURES`): it is paused, then probed one request at a time.
    pub breaker_failures: u32,
    /// Connecting to a receiver (5 s).
    pub connect_timeout: Duration,
    /// A whole request, answer included (`MAILAPI_WEBHOOK_TIMEOUT_SECS`, 15 s).
    pub request_timeout: Duration,
}

/// OpenTelemetry traces (docs/OPERATIONS.md, "Tracing"). Off unless an endpoint is set.
#[derive(Debug, Clone)]
pub struct TracingSettings {
    /// Base URL of an OTLP/HTTP receiver (`/v1/traces` is appended), e.g.
    /// `http://127.0.0.1:4318`. `None` (empty or unset) means no exporter and no spans at all.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces kept (0.0 to 1.0). A trace that arrives with a parent (a client's
    /// `traceparent`, or a stream entry) follows its parent's decision instead.
    pub sample_ratio: f64,
    /// `service.name` of the API's spans. Both binaries usually read one environment file, so
    /// each has its own setting.
    pub api_service_name: String,
    /// `service.name` of the worker's spans (submission and delivery log).
    pub worker_service_name: String,
}

impl TracingSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.otlp_endpoint {
            let (scheme, rest) = endpoint.split_once("://").unwrap_or(("", ""));
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if !matches!(scheme, "http" | "https") || host.is_empty() {
                return Err(bad(
                    "MAILAPI_OTLP_ENDPOINT",
                    format!("`{endpoint}` is not an http:// or https:// URL"),
                ));
            }
            if rest.contains(['?', '#']) {
                return Err(bad(
                    "MAILAPI_OTLP_ENDPOINT",
                    "must be a base URL without query or fragment (/v1/traces is appended)",
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(bad(
                "MAILAPI_OTLP_SAMPLE_RATIO",
                format!("`{}` is not between 0 and 1", self.sample_ratio),
            ));
        }
        Ok(())
    }
}
