//! `MAILAPI_TRUSTED_PROXIES` against the real API: the per-IP signup limit and the request log
//! see the client a trusted proxy names, and only a trusted proxy. Two loopback addresses play
//! the parts: requests from 127.0.0.2 come "through the proxy" (trusted), requests from
//! 127.0.0.1 come straight from a client that writes its own `X-Forwarded-For`.

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

const PROXY: &str = "127.0.0.2";
const DIRECT: &str = "127.0.0.1";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An HTTP client whose connections come from `local` (a loopback address).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn signup(
    app: &TestApp,
    http: &reqwest::Client,
    domain: &str,
    header: (&str, &str),
) -> reqwest::Response {
    http.post(app.api("/auth/signup"))
        .header(header.0, header.1)
        .json(&json!({
            "domain": domain,
            "email": format!("admin@{domain}"),
            "password": "SecurePassword123",
            "name": "Proxy Test"
        }))
        .send()
        .await
        .unwrap()
}

async fn created(resp: reqwest::Response, what: &str) {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 201, "{what}: {body}");
}

#[tokio::test]
async fn only_a_trusted_proxy_names_the_client_for_the_signup_limit_and_the_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .with_env_filter("mailapi::request=info")
        .init();
    let app = TestApp::spawn(&[
        ("MAILAPI_TRUSTED_PROXIES", "127.0.0.2/32, 10.0.0.0/8"),
        ("MAILAPI_SIGNUPS_PER_IP_PER_HOUR", "2"),
    ])
    .await;
    let proxy = client_from(PROXY);
    let direct = client_from(DIRECT);

    // Through the proxy, each client address has its own limit of 2.
    let xff = "x-forwarded-for";
    created(
        signup(&app, &proxy, "p1.test", (xff, "198.51.100.1")).await,
        "p1",
    )
    .await;
    created(
        signup(&app, &proxy, "p2.test", (xff, "198.51.100.1")).await,
        "p2",
    )
    .await;
    assert_error(
        signup(&app, &proxy, "p3.test", (xff, "198.51.100.1")).await,
        429,
        "RATE_LIMITED",
    )
    .await;
    // A client behind the proxy cannot leave its bucket by naming another address itself: the
    // proxy appends what it saw, and the right-most untrusted address is the client.
    assert_error(
        signup(&app, &proxy, "p4.test", (xff, "203.0.113.77, 198.51.100.1")).await,
        429,
        "RATE_LIMITED",
    )
    .await;
    created(
        signup(&app, &proxy, "p5.test", (xff, "198.51.100.2")).await,
        "p5",
    )
    .await;
    // `Forwarded` (RFC 7239), through a second proxy of ours in 10.0.0.0/8.
    let fwd = r#"for="[2001:db8::7]:4711", for=10.1.2.3"#;
    created(
        signup(&app, &proxy, "p6.test", ("forwarded", fwd)).await,
        "p6",
    )
    .await;
    created(
        signup(&app, &proxy, "p7.test", ("forwarded", fwd)).await,
        "p7",
    )
    .await;
    assert_error(
        signup(&app, &proxy, "p8.test", ("forwarded", fwd)).await,
        429,
        "RATE_LIMITED",
    )
    .await;

    // From an untrusted peer the header is ignored: every signup counts against the peer, so
    // a fresh address per request does not get around the limit.
    created(
        signup(&app, &direct, "d1.test", (xff, "192.0.2.1")).await,
        "d1",
    )
    .await;
    created(
        signup(&app, &direct, "d2.test", (xff, "192.0.2.2")).await,
        "d2",
    )
    .await;
    assert_error(
        signup(&app, &direct, "d3.test", (xff, "192.0.2.3")).await,
        429,
        "RATE_LIMITED",
    )
    .await;
    assert_error(
        signup(&app, &direct, "d4.test", ("forwarded", "for=192.0.2.4")).await,
        429,
        "RATE_LIMITED",
    )
    .await;

    let domains: Vec<String> = sqlx::query_scalar("select domain from domains order by domain")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(
        domains,
        [
            "d1.test", "d2.test", "p1.test", "p2.test", "p5.test", "p6.test", "p7.test"
        ]
    );

    // The request log names the same client: the one the proxy named, or the peer.
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let clients: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["route"] == "/api/v1/auth/signup")
        .map(|v| v["client_ip"].as_str().unwrap_or("(none)").to_owned())
        .collect();
    let mut want = vec!["198.51.100.1"; 4];
    want.push("198.51.100.2");
    want.extend(["2001:db8::7"; 3]);
    want.extend([DIRECT; 4]);
    assert_eq!(clients, want, "{text}");
}
