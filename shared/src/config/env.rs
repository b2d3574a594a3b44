//! Reading `MAILAPI_*` variables: the error that names one, and typed getters with defaults.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

use crate::address::DomainName;

/// A setting that could not be used. The message names the environment variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

pub(crate) fn bad(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        reason: reason.into(),
    }
}

/// `192.0.2.1`, `192.0.2.1:5353`, `2001:db8::1` or `[2001:db8::1]:5353`; port 53 by default.
pub(crate) fn parse_resolver(raw: &str) -> Option<SocketAddr> {
    let raw = raw.trim();
    raw.parse::<SocketAddr>().ok().or_else(|| {
        raw.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

pub(crate) fn default_consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

pub(crate) struct Env<'a>(pub(crate) &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    pub(crate) fn optional(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.is_empty())
    }

    pub(crate) fn string(&self, var: &'static str, default: &str) -> String {
        self.optional(var).unwrap_or_else(|| default.to_owned())
    }

    pub(crate) fn secret(&self, var: &'static str, default: &str) -> SecretString {
        SecretString::from(self.string(var, default))
    }

    pub(crate) fn parse<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
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

    /// A domain name (lowercased); an error names the variable.
    pub(crate) fn domain(
        &self,
        var: &'static str,
        default: &str,
    ) -> Result<DomainName, ConfigError> {
        let raw = self.string(var, default);
        DomainName::parse(&raw).map_err(|_| bad(var, format!("`{raw}` is not a domain name")))
    }

    pub(crate) fn durations(
        &self,
        var: &'static str,
        default: &str,
    ) -> Result<Vec<Duration>, ConfigError> {
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
