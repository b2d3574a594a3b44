//! Typed settings, loaded in two layers: defaults in code, then `MAILAPI_*` environment
//! variables. Everything is validated before a service starts, and an error names the variable.
//! Secrets are `SecretString`s: their `Debug` output is redacted, so settings can be logged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::address::DomainName;
use crate::net::TrustedProxies;

mod env;
mod sections;
#[cfg(test)]
mod tests;

pub use self::env::ConfigError;
use self::env::{Env, bad, default_consumer_name, parse_resolver};
pub use self::sections::{
    AccountSettings, ImapSettings, Limits, LogFormat, ServerLimits, SmtpSettings, TracingSettings,
    WebhookSettings, WorkerSettings,
};

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
    pub bounce_domain: DomainName,
    pub limits: Limits,
    /// Load shedding and slow-client limits of the API's HTTP server (docs/OPERATIONS.md,
    /// "Overload").
    pub server: ServerLimits,
    pub worker: WorkerSettings,
    pub accounts: AccountSettings,
    pub tracing: TracingSettings,
    pub webhooks: WebhookSettings,
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
            bounce_domain: env.domain("MAILAPI_BOUNCE_DOMAIN", "bounces.mailapi.local")?,
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
                mx_host: env.domain("MAILAPI_MX_HOST", "mail.mailapi.local")?,
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
            webhooks: WebhookSettings {
                secret_key: env.optional("MAILAPI_SECRET_KEY").map(SecretString::from),
                allow_private: env.parse("MAILAPI_WEBHOOK_ALLOW_PRIVATE", false)?,
                retry_schedule: env.durations(
                    "MAILAPI_WEBHOOK_RETRY_SCHEDULE_SECS",
                    "5,60,300,1800,7200,21600,43200,86400",
                )?,
                secret_overlap: Duration::from_secs(
                    env.parse("MAILAPI_WEBHOOK_SECRET_OVERLAP_SECS", 86_400u64)?,
                ),
                concurrency_per_endpoint: env.parse("MAILAPI_WEBHOOK_CONCURRENCY", 16usize)?,
                breaker_failures: env.parse("MAILAPI_WEBHOOK_BREAKER_FAILURES", 20u32)?,
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(
                    env.parse("MAILAPI_WEBHOOK_TIMEOUT_SECS", 15u64)?,
                ),
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
        if let Some(key) = &self.webhooks.secret_key {
            crate::secretbox::SecretBox::new(key)
                .map_err(|e| bad("MAILAPI_SECRET_KEY", e.to_string()))?;
        }
        if self.webhooks.retry_schedule.is_empty() || self.webhooks.concurrency_per_endpoint == 0 {
            return Err(bad(
                "MAILAPI_WEBHOOK_RETRY_SCHEDULE_SECS",
                "needs at least one retry, and MAILAPI_WEBHOOK_CONCURRENCY at least 1",
            ));
        }
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
