//! SMTP submission to the MTA over lettre's pooled async transport, and the one place SMTP
//! outcomes are sorted into accepted / transient / permanent / ambiguous.
//!
//! "Ambiguous" matters for crash safety: a network error or timeout after the DATA command may
//! come after the MTA already queued the message, so such a failure is retried only after the
//! delivery-log check (see `claim.rs`) instead of blindly.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;
use shared::config::SmtpSettings;

/// The MTA queued the message.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub queue_id: Option<String>,
    pub reply: String,
}

#[derive(Debug, Clone)]
pub enum SubmitFailure {
    /// Certainly not queued, worth retrying (4xx reply, connection refused or dropped before
    /// the transaction started).
    Transient(String),
    /// Refused for good (5xx reply): retrying cannot help.
    Permanent { reply: String, dsn: Option<String> },
    /// The transaction broke in a way that may have happened after the MTA queued the message.
    Ambiguous(String),
}

impl std::fmt::Display for SubmitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl SubmitFailure {
    pub fn text(&self) -> &str {
        match self {
            SubmitFailure::Transient(t) | SubmitFailure::Ambiguous(t) => t,
            SubmitFailure::Permanent { reply, .. } => reply,
        }
    }
}

#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    transaction_timeout: Duration,
}

impl Smtp {
    pub fn new(settings: &SmtpSettings) -> Self {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            // Loopback to our own Postfix: no TLS (see deploy/postfix/master.cf).
            .tls(Tls::None)
            .timeout(Some(settings.command_timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(settings.pool_size)
                    .idle_timeout(Duration::from_secs(50)),
            );
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Self {
            transport: builder.build(),
            transaction_timeout: settings.transaction_timeout(),
        }
    }

    /// Submits one message. The whole transaction is bounded by the transaction timeout.
    pub async fn submit(
        &self,
        envelope: &Envelope,
        bytes: &[u8],
    ) -> Result<Accepted, SubmitFailure> {
        let sent = tokio::time::timeout(
            self.transaction_timeout,
            self.transport.send_raw(envelope, bytes),
        )
        .await;
        match sent {
            Err(_) => Err(SubmitFailure::Ambiguous(format!(
                "SMTP transaction timed out after {} s",
                self.transaction_timeout.as_secs()
            ))),
            Ok(Ok(response)) => {
                let reply = format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                );
                Ok(Accepted {
                    queue_id: queue_id_from_reply(&reply),
                    reply,
                })
            }
            Ok(Err(e)) => Err(classify(&e)),
        }
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> SubmitFailure {
    let text = e.to_string();
    if e.is_permanent() {
        let dsn = text
            .split_whitespace()
            .find(|w| is_dsn_code(w))
            .map(str::to_owned);
        SubmitFailure::Permanent { reply: text, dsn }
    } else if e.is_transient() {
        SubmitFailure::Transient(text)
    } else if text.starts_with("Connection error") || e.is_transport_shutdown() {
        // Raised while connecting: no byte of the message was sent.
        SubmitFailure::Transient(text)
    } else {
        SubmitFailure::Ambiguous(text)
    }
}

/// `X.Y.Z` with X in 2, 4, 5.
pub fn is_dsn_code(w: &str) -> bool {
    let parts: Vec<&str> = w.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Postfix answers DATA with `250 2.0.0 Ok: queued as 4jYHJZ3hn4z5n5C`: the queue id is the
/// last word after "queued as".
pub fn queue_id_from_reply(reply: &str) -> Option<String> {
    let (_, rest) = reply.rsplit_once("queued as ")?;
    let id = rest.split_whitespace().next()?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids() {
        assert_eq!(
            queue_id_from_reply("250 2.0.0 Ok: queued as 4jYHJZ3hn4z5n5C").as_deref(),
            Some("4jYHJZ3hn4z5n5C")
        );
        assert_eq!(queue_id_from_reply("250 2.0.0 Ok"), None);
        assert_eq!(queue_id_from_reply("250 queued as "), None);
    }

    #[test]
    fn dsn_codes() {
        assert!(is_dsn_code("5.1.1"));
        assert!(is_dsn_code("4.7.10"));
        assert!(!is_dsn_code("550"));
        assert!(!is_dsn_code("5.1"));
        assert!(!is_dsn_code("1.2.3"));
    }
}
