//! The environment the tests run in: /etc/mailapi/mailapi.env (sourced), as `deploy/infra-up.sh`
//! writes it, and service settings made from it.

use std::collections::HashMap;

use shared::config::Settings;

/// `var`, or `default` when it is unset or empty.
pub fn env_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A variable of /etc/mailapi/mailapi.env; a test without it fails saying how to get it.
pub fn env(var: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{var} is not set: run deploy/infra-up.sh and `source /etc/mailapi/mailapi.env`")
        })
}

/// The main database: the one Postfix and Dovecot read, and beside which test databases are made.
pub fn base_database_url() -> String {
    env_or(
        "MAILAPI_DATABASE_URL",
        "postgres://mailapi:mailapi@127.0.0.1:5432/mailapi",
    )
}

pub fn redis_url() -> String {
    env_or("MAILAPI_REDIS_URL", "redis://127.0.0.1:6379")
}

/// Settings as a service started in this environment reads them (every `MAILAPI_` variable),
/// with `overrides` on top.
pub fn env_settings(overrides: &[(&str, &str)]) -> Settings {
    let mut map: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MAILAPI_"))
        .collect();
    for (k, v) in overrides {
        map.insert(k.to_string(), v.to_string());
    }
    Settings::from_lookup(|k| map.get(k).cloned())
        .expect("settings from the environment and the test's overrides are valid")
}

/// Settings for a test: its own database and key prefix, plus overrides.
pub fn settings(database_url: &str, prefix: &str, overrides: &[(&str, &str)]) -> Settings {
    let redis = redis_url();
    let mut all = vec![
        ("MAILAPI_DATABASE_URL", database_url),
        ("MAILAPI_REDIS_URL", redis.as_str()),
        ("MAILAPI_KEY_PREFIX", prefix),
        ("MAILAPI_LISTEN", "127.0.0.1:0"),
        ("MAILAPI_TOKEN_CACHE_TTL_MS", "200"),
        // Tests try wrong tokens on purpose, all from 127.0.0.1; only the token-guessing test
        // (api/tests/it/auth_guessing.rs) meets the per-address limit on failed token checks.
        ("MAILAPI_AUTH_FAILURES_PER_IP", "1000000"),
    ];
    all.extend_from_slice(overrides);
    env_settings(&all)
}
