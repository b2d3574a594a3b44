//! `Prefer: wait=N` (RFC 7240) on `POST /mail/send`: the client asks for the synchronous answer
//! the spec's example shows (`"status": "submitted"` with the MTA's `queue_id`). The request
//! holds its answer until the worker records the submission, at most N seconds (capped at
//! [`MAX_WAIT`]); then it answers with whatever the message is at that moment.
//!
//! - submitted (or already further: sent, partial, bounced): 202 with the real `queue_id`;
//! - refused for good at submission: 500 `SEND_FAILED` with the MTA's reply;
//! - not waiting for a submission at all (every recipient suppressed, and later a future
//!   `send_at`, a held or paused message): at once, with that status;
//! - time ran out, or the server is shutting down: the usual 202 `pending`.
//!
//! Waiting holds no database connection and no worker slot: the request registers with the
//! process's one `LISTEN` connection ([`crate::notify`]) and reads the row when woken.
//!
//! A malformed or unknown preference is ignored, never an error (RFC 7240 §2), and so is
//! `wait=0`.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use shared::status::MessageStatus;
use uuid::Uuid;

use crate::error::ApiError;

use crate::state::AppState;

/// The longest a request is held, whatever it asks for.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// `Preference-Applied` (RFC 7240 §3).
pub const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// The wait a request asked for, capped at [`MAX_WAIT`]; `None` without a usable `wait`.
pub fn requested(headers: &HeaderMap) -> Option<Duration> {
    // Several Prefer fields are one comma-separated list; the first `wait` counts (§2).
    let values = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok());
    for value in values {
        for preference in split_outside_quotes(value, ',') {
            let head = split_outside_quotes(preference, ';')
                .into_iter()
                .next()
                .unwrap_or_default();
            let (name, raw) = match head.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (head.trim(), None),
            };
            if !name.eq_ignore_ascii_case("wait") {
                continue;
            }
            let seconds = raw
                .map(|v| {
                    v.strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v)
                })
                .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            // The first `wait` decides, even when it is unusable.
            return seconds
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(s).min(MAX_WAIT));
        }
    }
    None
}

/// Splits on `sep` where it is not inside a quoted-string (with `\` escapes).
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The `Preference-Applied` value for a wait of `d`.
pub fn applied(d: Duration) -> (HeaderName, HeaderValue) {
    (
        PREFERENCE_APPLIED,
        HeaderValue::from_str(&format!("wait={}", d.as_secs()))
            .unwrap_or(HeaderValue::from_static("wait")),
    )
}

/// Headers that tell caches the answer depends on `Prefer`.
pub fn vary() -> (HeaderName, HeaderValue) {
    (header::VARY, HeaderValue::from_static("prefer"))
}

/// Where a message stands once the wait ends.
pub enum Settled {
    /// Not `pending` (submitted, or any later or non-sending status) or the time ran out.
    Status {
        status: MessageStatus,
        queue_id: Option<String>,
    },
    /// The MTA refused the message at submission (or retries ran out): the reply.
    Failed { reply: String },
}

#[derive(sqlx::FromRow)]
struct Row {
    status: MessageStatus,
    queue_id: Option<String>,
    last_error: Option<String>,
}

/// Waits until message `id` leaves `pending` or `wait` has passed.
pub async fn until_submitted(
    state: &AppState,
    id: Uuid,
    wait: Duration,
) -> Result<Settled, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    // Registered before the first read: a commit after the read wakes us, one before is read.
    let registration = state.notifications.register(id);
    loop {
        let row: Row =
            sqlx::query_as("select status, queue_id, last_error from messages where id = $1")
                .bind(id)
                .fetch_optional(&state.db)
                .await?
                .ok_or(ApiError::MessageNotFound)?;
        if row.status == MessageStatus::Failed {
            // `failed` at accept time (every recipient suppressed) never reaches this loop: the
            // caller answers at once. Here it is the worker's verdict on the submission.
            return Ok(Settled::Failed {
                reply: row
                    .last_error
                    .unwrap_or_else(|| "the mail server refused the message".to_owned()),
            });
        }
        let done = row.status != MessageStatus::Pending
            || registration.is_closing()
            || tokio::time::Instant::now() >= deadline;
        if done {
            return Ok(Settled::Status {
                status: row.status,
                queue_id: row.queue_id,
            });
        }
        tokio::select! {
            _ = registration.notified() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefer(values: &[&str]) -> Option<u64> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("prefer", HeaderValue::from_str(v).unwrap());
        }
        requested(&h).map(|d| d.as_secs())
    }

    #[test]
    fn reads_wait_as_rfc_7240_writes_it() {
        assert_eq!(prefer(&["wait=10"]), Some(10));
        assert_eq!(prefer(&["WAIT = 5"]), Some(5));
        assert_eq!(prefer(&["respond-async, wait=7"]), Some(7));
        assert_eq!(
            prefer(&["return=minimal; foo=\"a,b\", wait=\"3\""]),
            Some(3)
        );
        assert_eq!(prefer(&["handling=lenient", "wait=4"]), Some(4));
        assert_eq!(prefer(&["wait=10; x=y"]), Some(10));
    }

    #[test]
    fn caps_at_thirty_seconds() {
        assert_eq!(prefer(&["wait=31"]), Some(30));
        assert_eq!(
            prefer(&["wait=99999999999"]),
            None,
            "absurd values are malformed"
        );
        assert_eq!(prefer(&["wait=3600"]), Some(30));
    }

    #[test]
    fn ignores_malformed_and_unknown_preferences() {
        assert_eq!(prefer(&[]), None);
        assert_eq!(prefer(&["wait"]), None);
        assert_eq!(prefer(&["wait="]), None);
        assert_eq!(prefer(&["wait=-1"]), None);
        assert_eq!(prefer(&["wait=1.5"]), None);
        assert_eq!(prefer(&["wait=ten"]), None);
        assert_eq!(prefer(&["wait=0"]), None);
        assert_eq!(prefer(&["waiting=5"]), None);
        assert_eq!(prefer(&["x=\"wait=5\""]), None);
        // Only the first occurrence counts (RFC 7240 §2).
        assert_eq!(prefer(&["wait=2, wait=9"]), Some(2));
        assert_eq!(prefer(&["wait=x, wait=9"]), None);
    }
}
