//! Slowloris clients (api/src/server.rs): a header that trickles in is cut off at
//! `MAILAPI_HEADER_TIMEOUT_SECS` however steadily its bytes arrive, and a body that does not
//! arrive within `MAILAPI_BODY_TIMEOUT_SECS` is answered 408 `REQUEST_TIMEOUT` with nothing
//! stored. Idle keep-alive connections are closed by the header deadline too.
//!
//! Seen failing against a broken build before being trusted: served with `axum::serve` (no
//! header timer), the trickling client was still connected after 6 s; without the body
//! deadline the body test read no answer within its 6 s.

use std::time::{Duration, Instant};

use testkit::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (or `limit` passes); returns what was read
/// and when the connection ended, or `None` if it was still open at `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(Vec<u8>, Instant)> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((got, Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_header_that_trickles_in_is_cut_off_at_the_header_timeout() {
    let app = TestApp::spawn(&[("MAILAPI_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    // One header byte every 200 ms, never the blank line that ends the header.
    let trickle = async {
        stream
            .write_all(b"POST /api/v1/mail/send HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        for b in b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if stream.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(6), trickle).await;
    let (_, closed_at) = read_until_closed(&mut stream, Duration::from_secs(6))
        .await
        .expect("the server closes a connection whose header never ends");
    let took = closed_at - started;
    assert!(took < Duration::from_secs(4), "closed after {took:?}");

    // An idle keep-alive connection goes the same way, after its request was answered.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut idle, Duration::from_secs(6))
        .await
        .expect("closed once idle");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408_and_nothing_is_stored() {
    let app = TestApp::spawn(&[("MAILAPI_BODY_TIMEOUT_SECS", "1")]).await;
    app.domain("slow.test", true).await;
    let admin = app.admin_token().await;
    let body = br#"{"from":"s@slow.test","to":["x@sink-ok.test"],"body":{"text":"x"}}"#;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/mail/send HTTP/1.1\r\nHost: x\r\nX-MAILAPI-TOKEN: {admin}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Half the body, then nothing.
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    let started = Instant::now();
    let (answer, closed_at) = read_until_closed(&mut stream, Duration::from_secs(6))
        .await
        .expect("the server answers and closes");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"REQUEST_TIMEOUT""#), "{answer}");
    assert!(closed_at - started < Duration::from_secs(4));
    let stored: i64 = sqlx::query_scalar("select count(*) from messages")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    // Without a token the body is never read: the answer is 401 at once.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /api/v1/mail/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 1000\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_millis(900), stream.read(&mut buf))
        .await
        .expect("answered before the body deadline")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}
