//! SMTP submission to the MTA over pooled lettre connections, and the one place SMTP
//! outcomes are sorted into accepted / transient / permanent / ambiguous.
//!
//! "Ambiguous" matters for crash safety: a network error or timeout after the DATA command may
//! come after the MTA already queued the message, so such a failure is retried only after the
//! delivery-log check (see `claim.rs`) instead of blindly.

use std::time::Duration;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use secrecy::ExposeSecret;
use shared::config::SmtpSettings;
use tokio::sync::Semaphore;

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

/// Pooled, authenticated SMTP connections to the MTA (lettre's `AsyncSmtpConnection`).
///
/// Our own small pool rather than lettre's `AsyncSmtpTransport` pool, for one reason: lettre
/// connects without `TCP_NODELAY`, and it writes a message's body and its terminating
/// `<CRLF>.<CRLF>` in two writes; Nagle's algorithm then holds the terminator until the MTA
/// acknowledges the body, which it does only after its delayed-ACK timer (~40 ms on Linux),
/// so every submission waited ~40 ms for nothing. Here every connection has `TCP_NODELAY`.
/// As in lettre's pool, a parked connection is checked with `NOOP` before reuse and replaced
/// when the server has closed it, so that is never counted as a failure.
#[derive(Clone)]
pub struct Smtp {
    inner: Arc<Pool>,
}

struct Pool {
    host: String,
    port: u16,
    credentials: Option<Credentials>,
    hello: ClientId,
    command_timeout: Duration,
    transaction_timeout: Duration,
    /// Parked connections and when they were parked (last in, first out).
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    /// One permit per connection that may exist (`MAILAPI_SMTP_POOL_SIZE`).
    slots: Semaphore,
}

/// A parked connection older than this is closed instead of reused (Postfix's smtpd drops idle
/// clients after `smtpd_timeout`, 300 s by default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

impl Smtp {
    pub fn new(settings: &SmtpSettings) -> Self {
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => Some(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            )),
            _ => None,
        };
        Self {
            inner: Arc::new(Pool {
                host: settings.host.clone(),
                port: settings.port,
                credentials,
                hello: ClientId::default(),
                command_timeout: settings.command_timeout,
                transaction_timeout: settings.transaction_timeout(),
                idle: Mutex::new(Vec::new()),
                slots: Semaphore::new(settings.pool_size as usize),
            }),
        }
    }

    /// Submits one message. The whole transaction is bounded by the transaction timeout.
    pub async fn submit(
        &self,
        envelope: &Envelope,
        bytes: &[u8],
    ) -> Result<Accepted, SubmitFailure> {
        let pool = &self.inner;
        let _slot = pool
            .slots
            .acquire()
            .await
            .map_err(|_| SubmitFailure::Transient("the SMTP pool is closed".into()))?;
        // Getting a connection sends nothing of the message: any failure here is transient.
        let mut conn = match tokio::time::timeout(pool.command_timeout, pool.connection()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(SubmitFailure::Transient(format!("Connection error: {e}"))),
            Err(_) => {
                return Err(SubmitFailure::Transient(format!(
                    "Connection error: no SMTP connection within {} s",
                    pool.command_timeout.as_secs()
                )));
            }
        };
        let sent = if crate::fault::is_armed(crate::fault::Step::DuringData) {
            tokio::time::timeout(
                pool.transaction_timeout,
                send_in_halves(&mut conn, envelope, bytes),
            )
            .await
        } else {
            tokio::time::timeout(pool.transaction_timeout, conn.send(envelope, bytes)).await
        };
        match sent {
            // The connection is dropped mid-transaction: never reused.
            Err(_) => Err(SubmitFailure::Ambiguous(format!(
                "SMTP transaction timed out after {} s",
                pool.transaction_timeout.as_secs()
            ))),
            Ok(result) => {
                if !conn.has_broken() {
                    pool.park(conn);
                }
                match result {
                    Ok(response) => {
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
                    Err(e) => Err(classify(&e)),
                }
            }
        }
    }
}

impl Pool {
    /// A parked connection that still answers `NOOP`, or a new one.
    async fn connection(&self) -> Result<AsyncSmtpConnection, String> {
        loop {
            let parked = self.idle.lock().expect("smtp pool").pop();
            let Some((mut conn, parked_at)) = parked else {
                break;
            };
            if parked_at.elapsed() < IDLE_TIMEOUT && conn.test_connected().await {
                return Ok(conn);
            }
            tracing::debug!("replacing a closed or stale pooled SMTP connection");
            conn.abort().await;
        }
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting to {}:{}: {e}", self.host, self.port))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(credentials) = &self.credentials {
            // A refused login is the MTA's answer, not a broken connection: still transient
            // here (the message was not sent), and the log says why.
            if let Err(e) = conn.auth(DEFAULT_MECHANISMS, credentials).await {
                conn.abort().await;
                return Err(format!("SMTP authentication failed: {e}"));
            }
        }
        Ok(conn)
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        self.idle
            .lock()
            .expect("smtp pool")
            .push((conn, Instant::now()));
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
    } else if e.is_transport_shutdown() {
        // The connection was closed before the transaction: no byte of the message was sent.
        // (Failures while connecting never get here: `Pool::connection` reports them itself.)
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

/// `send`, with the message written in two halves and the fault hook between them: the checker
/// kills the process there, mid-DATA (`crate::fault`). Only reached in fault-injection builds.
async fn send_in_halves(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    bytes: &[u8],
) -> Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error> {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    conn.command(Mail::new(envelope.from().cloned(), vec![]))
        .await?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![])).await?;
    }
    conn.command(Data).await?;
    let (first, second) = bytes.split_at(bytes.len() / 2);
    let mut halves = [first, second].into_iter().enumerate().map(|(i, half)| {
        if i == 1 {
            crate::fault::reached(crate::fault::Step::DuringData);
        }
        half
    });
    conn.message_iter(&mut halves).await
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
