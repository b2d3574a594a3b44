//! Typed settings, loaded in two layers: defaults in code, then `MAILAPI_*` environment
//! variables. Everything is validated before a service starts, and an error names the variable.
//! Secrets are `SecretString`s: their `Debug` output is redacted, so settings can be logged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::net::TrustedProxies;

/// A setting that could not be used. The message names the environment variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

fn bad(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: SecretString,
    pub database_max_connections: u32,
    /// One server, a Sentinel set or a Cluster: see [`crate::redis::Topology`] for the forms.
    pub redis_url: SecretString,
    /// The longest the API waits for any one Redis command, reconnecting included
    /// (`MAILAPI_REDIS_TIMEOUT_MS`, 250 by default). A command that takes longer, or fails to
    /// connect, marks Redis as away for a second: meanwhile commands fail at once and the API
    /// goes on without it (see [`crate::redis::Breaker`]).
    pub redis_timeout: Duration,
    /// How many keys the send stream is spread over (`MAILAPI_SEND_STREAM_SHARDS`, 1-64). With
    /// 1 it is the one key `<prefix>:{send}`; see [`crate::jobs::Keys::send_stream_shard`].
    pub send_stream_shards: u16,
    /// How many group-committed batches of accepted messages the API writes at the same time
    /// (`MAILAPI_ACCEPT_BATCH_IN_FLIGHT`, 1-64); see `api::send::accept`.
    pub accept_batch_in_flight: usize,
    /// Prefix of every Redis key we use. Each test run gets its own; see [`crate::jobs`].
    pub key_prefix: String,
    pub listen: SocketAddr,
    /// Peers whose `Forwarded` / `X-Forwarded-For` headers the API believes when it names a
    /// request's client (`MAILAPI_TRUSTED_PROXIES`, CIDR ranges; none by default, so every
    /// client is its socket peer). See `api::client_ip`.
    pub trusted_proxies: TrustedProxies,
    pub log_format: LogFormat,
    pub smtp: SmtpSettings,
    pub imap: ImapSettings,
    pub mta_log_path: PathBuf,
    /// Domain of the VERP return path `bounces+<message>@<bounce_domain>`: bounce reports for
    /// every message we send arrive in the `bounces` mailbox there.
    pub bounce_domain: String,
    pub limits: Limits,
    /// Load shedding and slow-client limits of the API's HTTP server (docs/OPERATIONS.md,
    /// "Overload").
    pub server: ServerLimits,
    pub worker: WorkerSettings,
    pub accounts: AccountSettings,
    pub tracing: TracingSettings,
}

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
    pub mx_host: String,
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

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Builds settings from defaults overridden by `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let smtp_command_timeout =
            Duration::from_secs(env.parse("MAILAPI_SMTP_TIMEOUT_SECS", 30u64)?);
        let settings = Settings {
            database_url: env.secret(
                "MAILAPI_DATABASE_URL",
                "postgres://mailapi:mailapi@127.0.0.1:5432/mailapi",
            ),
            database_max_connections: env.parse("MAILAPI_DATABASE_MAX_CONNECTIONS", 16u32)?,
            redis_url: env.secret("MAILAPI_REDIS_URL", "redis://127.0.0.1:6379"),
            redis_timeout: Duration::from_millis(env.parse("MAILAPI_REDIS_TIMEOUT_MS", 250u64)?),
            send_stream_shards: env.parse("MAILAPI_SEND_STREAM_SHARDS", 1u16)?,
            accept_batch_in_flight: env.parse("MAILAPI_ACCEPT_BATCH_IN_FLIGHT", 2usize)?,
            key_prefix: env.string("MAILAPI_KEY_PREFIX", "mailapi"),
            listen: env.parse("MAILAPI_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            trusted_proxies: TrustedProxies::parse(&env.string("MAILAPI_TRUSTED_PROXIES", ""))
                .map_err(|reason| bad("MAILAPI_TRUSTED_PROXIES", reason))?,
            log_format: match env.string("MAILAPI_LOG_FORMAT", "text").as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(bad(
                        "MAILAPI_LOG_FORMAT",
                        format!("`{other}` is not text or json"),
                    ));
                }
            },
            smtp: SmtpSettings {
                host: env.string("MAILAPI_SMTP_HOST", "127.0.0.1"),
                port: env.parse("MAILAPI_SMTP_PORT", 587u16)?,
                username: env.optional("MAILAPI_SMTP_USERNAME"),
                password: env
                    .optional("MAILAPI_SMTP_PASSWORD")
                    .map(SecretString::from),
                max_message_bytes: env.parse("MAILAPI_SMTP_MAX_MESSAGE_BYTES", 10_240_000usize)?,
                pool_size: env.parse("MAILAPI_SMTP_POOL_SIZE", 24u32)?,
                command_timeout: smtp_command_timeout,
            },
            imap: ImapSettings {
                host: env.string("MAILAPI_IMAP_HOST", "127.0.0.1"),
                port: env.parse("MAILAPI_IMAP_PORT", 143u16)?,
                master_user: env.string("MAILAPI_IMAP_MASTER_USER", "mailapi-master"),
                master_password: env
                    .optional("MAILAPI_IMAP_MASTER_PASSWORD")
                    .map(SecretString::from),
            },
            mta_log_path: PathBuf::from(
                env.string("MAILAPI_MTA_LOG_PATH", "/var/log/mailapi/postfix.log"),
            ),
            bounce_domain: env.string("MAILAPI_BOUNCE_DOMAIN", "bounces.mailapi.local"),
            limits: Limits {
                requests_per_minute: env.parse("MAILAPI_RATE_LIMIT_PER_MINUTE", 100u32)?,
                requests_per_hour: env.parse("MAILAPI_RATE_LIMIT_PER_HOUR", 1000u32)?,
                max_recipients: env.parse("MAILAPI_MAX_RECIPIENTS", 100usize)?,
                max_body_bytes: env.parse("MAILAPI_MAX_BODY_BYTES", 16 * 1024 * 1024usize)?,
                token_cache_ttl: Duration::from_millis(
                    env.parse("MAILAPI_TOKEN_CACHE_TTL_MS", 2000u64)?,
                ),
                idempotency_ttl: Duration::from_secs(
                    env.parse("MAILAPI_IDEMPOTENCY_TTL_SECS", 86_400u64)?,
                ),
                auth_failures_per_ip: env.parse("MAILAPI_AUTH_FAILURES_PER_IP", 20u32)?,
                auth_failure_window: Duration::from_secs(
                    env.parse("MAILAPI_AUTH_FAILURE_WINDOW_SECS", 600u64)?,
                ),
            },
            server: ServerLimits {
                max_in_flight: env.parse("MAILAPI_MAX_IN_FLIGHT", 1024usize)?,
                shed_backlog: env.parse("MAILAPI_SHED_BACKLOG", 200_000u64)?,
                shed_oldest_age: Duration::from_secs(
                    env.parse("MAILAPI_SHED_OLDEST_SECS", 600u64)?,
                ),
                sample_every: Duration::from_millis(env.parse("MAILAPI_SHED_SAMPLE_MS", 1000u64)?),
                header_timeout: Duration::from_secs(
                    env.parse("MAILAPI_HEADER_TIMEOUT_SECS", 20u64)?,
                ),
                body_timeout: Duration::from_secs(env.parse("MAILAPI_BODY_TIMEOUT_SECS", 60u64)?),
            },
            worker: WorkerSettings {
                consumer_name: env
                    .optional("MAILAPI_WORKER_NAME")
                    .unwrap_or_else(default_consumer_name),
                concurrency: env.parse("MAILAPI_WORKER_CONCURRENCY", 256usize)?,
                retry_schedule: env
                    .durations("MAILAPI_RETRY_SCHEDULE_SECS", "5,30,120,600,1800,3600")?,
                reclaim_idle: Duration::from_secs(env.parse("MAILAPI_RECLAIM_IDLE_SECS", 300u64)?),
                reconcile_after: Duration::from_secs(
                    env.parse("MAILAPI_RECONCILE_AFTER_SECS", 30u64)?,
                ),
                metrics_listen: match env.string("MAILAPI_WORKER_METRICS_LISTEN", "127.0.0.1:9091")
                {
                    off if off == "off" => None,
                    addr => Some(addr.parse().map_err(|e| {
                        bad("MAILAPI_WORKER_METRICS_LISTEN", format!("`{addr}`: {e}"))
                    })?),
                },
            },
            accounts: AccountSettings {
                signups_per_domain_per_hour: env
                    .parse("MAILAPI_SIGNUPS_PER_DOMAIN_PER_HOUR", 3u32)?,
                signups_per_ip_per_hour: env.parse("MAILAPI_SIGNUPS_PER_IP_PER_HOUR", 10u32)?,
                signup_token_ttl: Duration::from_secs(
                    86_400 * env.parse("MAILAPI_SIGNUP_TOKEN_TTL_DAYS", 30u64)?,
                ),
                mx_host: env.string("MAILAPI_MX_HOST", "mail.mailapi.local"),
                dns_resolver: match env.optional("MAILAPI_DNS_RESOLVER") {
                    None => None,
                    Some(raw) => Some(parse_resolver(&raw).ok_or_else(|| {
                        bad(
                            "MAILAPI_DNS_RESOLVER",
                            format!("`{raw}` is not an IP address or IP:port"),
                        )
                    })?),
                },
            },
            tracing: TracingSettings {
                otlp_endpoint: env
                    .optional("MAILAPI_OTLP_ENDPOINT")
                    .map(|e| e.trim().trim_end_matches('/').to_owned()),
                sample_ratio: env.parse("MAILAPI_OTLP_SAMPLE_RATIO", 1.0f64)?,
                api_service_name: env.string("MAILAPI_OTLP_API_SERVICE_NAME", "mailapi-api"),
                worker_service_name: env
                    .string("MAILAPI_OTLP_WORKER_SERVICE_NAME", "mailapi-worker"),
            },
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let db = self.database_url.expose_secret();
        if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(bad("MAILAPI_DATABASE_URL", "must start with postgres://"));
        }
        self.redis_topology()?;
        if !(1..=crate::jobs::MAX_SEND_STREAM_SHARDS).contains(&self.send_stream_shards) {
            return Err(bad(
                "MAILAPI_SEND_STREAM_SHARDS",
                format!(
                    "must be between 1 and {}",
                    crate::jobs::MAX_SEND_STREAM_SHARDS
                ),
            ));
        }
        if !(1..=64).contains(&self.accept_batch_in_flight) {
            return Err(bad(
                "MAILAPI_ACCEPT_BATCH_IN_FLIGHT",
                "must be between 1 and 64",
            ));
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}', ' ']) {
            return Err(bad(
                "MAILAPI_KEY_PREFIX",
                "must be non-empty without braces or spaces",
            ));
        }
        if crate::address::DomainName::parse(&self.bounce_domain).is_err() {
            return Err(bad("MAILAPI_BOUNCE_DOMAIN", "must be a domain name"));
        }
        if self.database_max_connections == 0 {
            return Err(bad(
                "MAILAPI_DATABASE_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        if self.limits.requests_per_minute == 0 || self.limits.requests_per_hour == 0 {
            return Err(bad(
                "MAILAPI_RATE_LIMIT_PER_MINUTE",
                "rate limits must be at least 1",
            ));
        }
        if self.accounts.signups_per_domain_per_hour == 0
            || self.accounts.signups_per_ip_per_hour == 0
        {
            return Err(bad(
                "MAILAPI_SIGNUPS_PER_DOMAIN_PER_HOUR",
                "signup limits must be at least 1",
            ));
        }
        if self.accounts.signup_token_ttl.is_zero() {
            return Err(bad("MAILAPI_SIGNUP_TOKEN_TTL_DAYS", "must be at least 1"));
        }
        if crate::address::DomainName::parse(&self.accounts.mx_host).is_err() {
            return Err(bad("MAILAPI_MX_HOST", "must be a host name"));
        }
        if self.limits.max_recipients == 0 {
            return Err(bad("MAILAPI_MAX_RECIPIENTS", "must be at least 1"));
        }
        if self.smtp.username.is_some() != self.smtp.password.is_some() {
            return Err(bad(
                "MAILAPI_SMTP_PASSWORD",
                "set both MAILAPI_SMTP_USERNAME and MAILAPI_SMTP_PASSWORD, or neither",
            ));
        }
        if !(10..=10_000).contains(&self.redis_timeout.as_millis()) {
            return Err(bad(
                "MAILAPI_REDIS_TIMEOUT_MS",
                "must be between 10 and 10000",
            ));
        }
        if self.limits.auth_failures_per_ip == 0 {
            return Err(bad("MAILAPI_AUTH_FAILURES_PER_IP", "must be at least 1"));
        }
        if !(1..=86_400).contains(&self.limits.auth_failure_window.as_secs()) {
            return Err(bad(
                "MAILAPI_AUTH_FAILURE_WINDOW_SECS",
                "must be between 1 and 86400",
            ));
        }
        if self.server.max_in_flight == 0 {
            return Err(bad("MAILAPI_MAX_IN_FLIGHT", "must be at least 1"));
        }
        if !(50..=60_000).contains(&self.server.sample_every.as_millis()) {
            return Err(bad(
                "MAILAPI_SHED_SAMPLE_MS",
                "must be between 50 and 60000",
            ));
        }
        for (var, value) in [
            ("MAILAPI_HEADER_TIMEOUT_SECS", self.server.header_timeout),
            ("MAILAPI_BODY_TIMEOUT_SECS", self.server.body_timeout),
        ] {
            if !(1..=3600).contains(&value.as_secs()) {
                return Err(bad(var, "must be between 1 and 3600"));
            }
        }
        if self.smtp.pool_size == 0 {
            return Err(bad("MAILAPI_SMTP_POOL_SIZE", "must be at least 1"));
        }
        if self.worker.concurrency == 0 {
            return Err(bad("MAILAPI_WORKER_CONCURRENCY", "must be at least 1"));
        }
        if self.worker.retry_schedule.is_empty() {
            return Err(bad(
                "MAILAPI_RETRY_SCHEDULE_SECS",
                "needs at least one delay",
            ));
        }
        // The claim in Postgres is what prevents double sends, but a reclaim that fires while the
        // first worker is still inside a legitimate SMTP transaction would make that claim expire
        // too; require a clear margin.
        if self.worker.reclaim_idle <= self.smtp.transaction_timeout() {
            return Err(bad(
                "MAILAPI_RECLAIM_IDLE_SECS",
                format!(
                    "must exceed the longest SMTP transaction ({}s = 6 x MAILAPI_SMTP_TIMEOUT_SECS)",
                    self.smtp.transaction_timeout().as_secs()
                ),
            ));
        }
        self.tracing.validate()?;
        Ok(())
    }

    /// The Redis deployment `MAILAPI_REDIS_URL` names.
    pub fn redis_topology(&self) -> Result<crate::redis::Topology, ConfigError> {
        crate::redis::Topology::parse(self.redis_url.expose_secret())
            .map_err(|reason| bad("MAILAPI_REDIS_URL", reason))
    }

    /// How long a worker's claim on a message lasts: one SMTP transaction plus a margin for
    /// building the message before it and committing the outcome after it.
    pub fn claim_duration(&self) -> Duration {
        self.smtp.transaction_timeout() + Duration::from_secs(5)
    }
}

impl TracingSettings {
    fn validate(&self) -> Result<(), ConfigError> {
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

/// `192.0.2.1`, `192.0.2.1:5353`, `2001:db8::1` or `[2001:db8::1]:5353`; port 53 by default.
fn parse_resolver(raw: &str) -> Option<SocketAddr> {
    let raw = raw.trim();
    raw.parse::<SocketAddr>().ok().or_else(|| {
        raw.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

fn default_consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn optional(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.is_empty())
    }

    fn string(&self, var: &'static str, default: &str) -> String {
        self.optional(var).unwrap_or_else(|| default.to_owned())
    }

    fn secret(&self, var: &'static str, default: &str) -> SecretString {
        SecretString::from(self.string(var, default))
    }

    fn parse<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.optional(var) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| bad(var, format!("`{raw}`: {e}"))),
        }
    }

    fn durations(&self, var: &'static str, default: &str) -> Result<Vec<Duration>, ConfigError> {
        self.string(var, default)
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|e| bad(var, format!("`{s}`: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_valid() {
        let s = load(&[]).unwrap();
        assert_eq!(s.limits.requests_per_minute, 100);
        assert_eq!(s.limits.requests_per_hour, 1000);
        assert_eq!(s.listen.port(), 8080);
    }

    #[test]
    fn errors_name_the_variable() {
        let err = load(&[("MAILAPI_LISTEN", "not-an-address")]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_LISTEN");
        let err = load(&[("MAILAPI_SMTP_PORT", "70000")]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_SMTP_PORT");
        let err = load(&[("MAILAPI_DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_DATABASE_URL");
    }

    #[test]
    fn redis_urls_and_shards_are_checked_at_start() {
        let s = load(&[(
            "MAILAPI_REDIS_URL",
            "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster",
        )])
        .unwrap();
        assert!(matches!(
            s.redis_topology().unwrap(),
            crate::redis::Topology::Sentinel { .. }
        ));
        assert_eq!(s.send_stream_shards, 1);
        let err = load(&[("MAILAPI_REDIS_URL", "redis+sentinel://127.0.0.1:26379")]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_REDIS_URL");
        assert!(err.to_string().contains("master"), "{err}");
        let err = load(&[(
            "MAILAPI_REDIS_URL",
            "redis+cluster://:hunter2@127.0.0.1:7000/3",
        )])
        .unwrap_err();
        assert_eq!(err.var, "MAILAPI_REDIS_URL");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = load(&[("MAILAPI_REDIS_URL", "memcached://127.0.0.1")]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_REDIS_URL");
        for bad in ["0", "65", "x"] {
            let err = load(&[("MAILAPI_SEND_STREAM_SHARDS", bad)]).unwrap_err();
            assert_eq!(err.var, "MAILAPI_SEND_STREAM_SHARDS", "{bad}");
        }
        let s = load(&[("MAILAPI_SEND_STREAM_SHARDS", "3")]).unwrap();
        assert_eq!(s.send_stream_shards, 3);
    }

    #[test]
    fn accept_batches_in_flight_are_bounded() {
        assert_eq!(load(&[]).unwrap().accept_batch_in_flight, 2);
        for bad in ["0", "65", "-1", "x"] {
            let err = load(&[("MAILAPI_ACCEPT_BATCH_IN_FLIGHT", bad)]).unwrap_err();
            assert_eq!(err.var, "MAILAPI_ACCEPT_BATCH_IN_FLIGHT", "{bad}");
        }
        let s = load(&[("MAILAPI_ACCEPT_BATCH_IN_FLIGHT", "1")]).unwrap();
        assert_eq!(s.accept_batch_in_flight, 1);
    }

    #[test]
    fn dns_resolver_takes_an_address_with_or_without_port() {
        assert_eq!(load(&[]).unwrap().accounts.dns_resolver, None);
        let s = load(&[("MAILAPI_DNS_RESOLVER", "127.0.0.1:5353")]).unwrap();
        assert_eq!(
            s.accounts.dns_resolver,
            Some("127.0.0.1:5353".parse().unwrap())
        );
        let s = load(&[("MAILAPI_DNS_RESOLVER", "::1")]).unwrap();
        assert_eq!(s.accounts.dns_resolver, Some("[::1]:53".parse().unwrap()));
        let err = load(&[("MAILAPI_DNS_RESOLVER", "dns.example")]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_DNS_RESOLVER");
    }

    #[test]
    fn trusted_proxies_are_cidr_ranges_and_none_by_default() {
        assert!(load(&[]).unwrap().trusted_proxies.is_empty());
        let s = load(&[("MAILAPI_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::/32")]).unwrap();
        assert!(s.trusted_proxies.contains("10.9.8.7".parse().unwrap()));
        assert!(!s.trusted_proxies.contains("192.0.2.1".parse().unwrap()));
        for bad_value in ["10.0.0.0/33", "10.0.0.1/8", "proxy.internal", "10.0.0.0/8;"] {
            let err = load(&[("MAILAPI_TRUSTED_PROXIES", bad_value)]).unwrap_err();
            assert_eq!(err.var, "MAILAPI_TRUSTED_PROXIES", "{bad_value}");
            assert!(err.to_string().contains("MAILAPI_TRUSTED_PROXIES"), "{err}");
        }
    }

    #[test]
    fn reclaim_must_outlast_smtp() {
        let err = load(&[
            ("MAILAPI_SMTP_TIMEOUT_SECS", "60"),
            ("MAILAPI_RECLAIM_IDLE_SECS", "300"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "MAILAPI_RECLAIM_IDLE_SECS");
    }

    #[test]
    fn tracing_is_off_unless_an_endpoint_is_set() {
        let s = load(&[]).unwrap();
        assert_eq!(s.tracing.otlp_endpoint, None);
        assert_eq!(s.tracing.api_service_name, "mailapi-api");
        assert_eq!(s.tracing.worker_service_name, "mailapi-worker");
        let s = load(&[("MAILAPI_OTLP_ENDPOINT", "http://127.0.0.1:4318/")]).unwrap();
        assert_eq!(
            s.tracing.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4318")
        );
        for bad_endpoint in [
            "127.0.0.1:4318",
            "grpc://collector:4317",
            "http://",
            "http://x/?a",
        ] {
            let err = load(&[("MAILAPI_OTLP_ENDPOINT", bad_endpoint)]).unwrap_err();
            assert_eq!(err.var, "MAILAPI_OTLP_ENDPOINT", "{bad_endpoint}");
        }
        let err = load(&[("MAILAPI_OTLP_SAMPLE_RATIO", "1.5")]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_OTLP_SAMPLE_RATIO");
        let err = load(&[("MAILAPI_OTLP_SAMPLE_RATIO", "half")]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_OTLP_SAMPLE_RATIO");
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let s = load(&[
            ("MAILAPI_SMTP_USERNAME", "u"),
            ("MAILAPI_SMTP_PASSWORD", "hunter2-secret"),
        ])
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2-secret"));
    }
}
