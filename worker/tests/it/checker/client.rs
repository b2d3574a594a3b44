//! The client: a careful sender, with an idempotency key per message and a retry on the other
//! API process whenever a request fails.

use std::time::{Duration, Instant};

/// What the client knows of one logical message.
#[derive(Debug, Clone)]
pub(super) enum Answer {
    Accepted(uuid::Uuid),
    /// Every attempt failed: the client cannot know whether it was stored.
    GaveUp(String),
}

/// Where message `i` goes: the sink that refuses, for every `bounce_every`-th one.
fn rcpt_domain(i: usize, bounce_every: usize) -> &'static str {
    if bounce_every > 0 && i.is_multiple_of(bounce_every) {
        "sink-hard.test"
    } else {
        "sink-ok.test"
    }
}

/// 503 answers the client got, and how many of them lacked `Retry-After`.
#[derive(Default)]
pub(super) struct Unavailable {
    pub(super) answers: std::sync::atomic::AtomicUsize,
    pub(super) without_retry_after: std::sync::atomic::AtomicUsize,
}

/// Sends message `i` with its idempotency key, retrying failures on the other API process for
/// up to two minutes (longer than any fault lasts).
pub(super) async fn send_one(
    http: &reqwest::Client,
    ports: [u16; 2],
    token: &str,
    domain: &str,
    i: usize,
    unavailable: &Unavailable,
    bounce_every: usize,
) -> Answer {
    let body = serde_json::json!({
        "from": format!("s@{domain}"),
        "to": [format!("r{i}@{}", rcpt_domain(i, bounce_every))],
        "subject": format!("checker {i}"),
        "body": {"text": "x".repeat(500)},
    });
    let mut last = String::new();
    let give_up = Instant::now() + Duration::from_secs(120);
    for attempt in 0.. {
        if Instant::now() > give_up {
            break;
        }
        let port = ports[(i + attempt) % 2];
        let resp = http
            .post(format!("http://127.0.0.1:{port}/api/v1/mail/send"))
            .header("X-MAILAPI-TOKEN", token)
            .header("Idempotency-Key", format!("checker-{i}"))
            .json(&body)
            .send()
            .await;
        match resp {
            Ok(r) if r.status() == 202 => {
                let v: serde_json::Value = r.json().await.unwrap();
                let id = v["message_id"].as_str().unwrap().parse().unwrap();
                return Answer::Accepted(id);
            }
            Ok(r) if r.status().is_client_error() => {
                panic!(
                    "message {i}: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )
            }
            Ok(r) => {
                if r.status() == 503 {
                    use std::sync::atomic::Ordering::Relaxed;
                    unavailable.answers.fetch_add(1, Relaxed);
                    if !r.headers().contains_key("retry-after") {
                        unavailable.without_retry_after.fetch_add(1, Relaxed);
                    }
                }
                last = format!("{}", r.status());
            }
            Err(e) => last = format!("{e}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Answer::GaveUp(last)
}
