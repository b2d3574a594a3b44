//! A fast webhook receiver for `bench/run.sh webhooks`: checks each request's signature
//! (`shared::webhook`, the same HMAC the standard's libraries compute; the tests check ours
//! against the Python package), answers 204 (after `--delay-ms`, for the slow-receiver run), and
//! on SIGTERM writes one line per event received: `<event id> <unix seconds of arrival>`.
//!
//! cargo run --release -p worker --example webhook_sink -- \
//!     --port 18099 --secret whsec_... --out bench/out/hooks.txt [--delay-ms 10000]
//!
//! `GET /count` answers the number of distinct events received so far, and requests that
//! failed verification (`<events> <bad>`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};

#[derive(Default)]
struct Seen {
    arrivals: Vec<(i64, f64)>,
    ids: HashSet<i64>,
    bad: u64,
}

#[derive(Clone)]
struct Sink {
    key: Arc<Vec<u8>>,
    delay: Duration,
    seen: Arc<Mutex<Seen>>,
}

#[tokio::main]
async fn main() {
    let mut port = 18099u16;
    let mut secret = String::new();
    let mut out = String::from("hooks.txt");
    let mut delay_ms = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--port" => port = value.parse().expect("--port"),
            "--secret" => secret = value,
            "--out" => out = value,
            "--delay-ms" => delay_ms = value.parse().expect("--delay-ms"),
            other => panic!("unknown argument {other}"),
        }
    }
    let key = shared::webhook::secret_key(&secret).expect("--secret whsec_...");
    let sink = Sink {
        key: Arc::new(key),
        delay: Duration::from_millis(delay_ms),
        seen: Arc::new(Mutex::new(Seen::default())),
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .route("/count", get(count))
        .with_state(sink.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("listening {port}");
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        term.recv().await;
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .expect("serve");
    let seen = sink.seen.lock().unwrap();
    let lines: String = seen
        .arrivals
        .iter()
        .map(|(id, at)| format!("{id} {at:.6}\n"))
        .collect();
    std::fs::write(&out, lines).expect("write --out");
}

async fn receive(State(sink): State<Sink>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let arrived = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let expected = timestamp
        .parse()
        .map(|t| shared::webhook::sign(&sink.key, &id, t, &body))
        .unwrap_or_default();
    if !signatures.split(' ').any(|s| s == expected) {
        sink.seen.lock().unwrap().bad += 1;
        return StatusCode::BAD_REQUEST;
    }
    if !sink.delay.is_zero() {
        tokio::time::sleep(sink.delay).await;
    }
    let events: Vec<serde_json::Value> = match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(one) => vec![one],
        Err(_) => return StatusCode::BAD_REQUEST,
    };
    let mut seen = sink.seen.lock().unwrap();
    for e in events {
        if let Some(id) = e["data"]["id"].as_i64() {
            seen.arrivals.push((id, arrived));
            seen.ids.insert(id);
        }
    }
    StatusCode::NO_CONTENT
}

async fn count(State(sink): State<Sink>) -> String {
    let seen = sink.seen.lock().unwrap();
    format!("{} {}\n", seen.ids.len(), seen.bad)
}
