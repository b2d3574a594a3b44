//! Tracing end to end: an OTLP/HTTP receiver on loopback records what both services export; one
//! send that carries a client's `traceparent` to a local mailbox, through the real Postfix and
//! Dovecot, must come back as ONE trace holding the API's request span (with its insert and
//! XADD children) and the worker's submission, SMTP and delivery-log spans, correctly parented.
//!
//! Isolation: the API and the worker use a database of their own, so this test's log follower
//! holds its own lease (advisory locks are per database) and no follower of a concurrent test on
//! the main database can settle our message without a span. Postfix and Dovecot look domains
//! and mailboxes up in the main database, so the recipient's domain and mailbox are created
//! there too (and removed at the end); the bounce domain is unique, so this worker's bounce
//! reader cannot touch the shared bounce mailbox.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::{Value, json};
use sqlx::PgPool;
use testkit::TestApp;

/// One exported span with its resource's `service.name`.
#[derive(Debug, Clone)]
struct Recorded {
    service: String,
    span: opentelemetry_proto::tonic::trace::v1::Span,
}

impl Recorded {
    fn attr(&self, key: &str) -> Option<String> {
        attr(&self.span.attributes, key)
    }
}

fn attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// A collector stand-in: `POST /v1/traces` with a protobuf body, recorded as it arrives.
async fn start_receiver() -> (String, Arc<Mutex<Vec<Recorded>>>) {
    let received: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    async fn traces(State(received): State<Arc<Mutex<Vec<Recorded>>>>, body: Bytes) -> Vec<u8> {
        let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
        let mut received = received.lock().unwrap();
        for rs in request.resource_spans {
            let resource = rs.resource.unwrap_or_default();
            let service = attr(&resource.attributes, "service.name").unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(Recorded {
                    service: service.clone(),
                    span,
                });
            }
        }
        // An empty ExportTraceServiceResponse: everything accepted.
        Vec::new()
    }
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Starts `db`'s follower position at the current end of the MTA log, so the follower does not
/// first read everything other tests made Postfix log.
async fn follow_from_end(db: &PgPool, log: &std::path::Path) {
    let meta = std::fs::metadata(log).unwrap_or_else(|e| {
        panic!(
            "the MTA log {} is not there ({e}); start the stack with deploy/infra-up.sh",
            log.display()
        )
    });
    sqlx::query("insert into log_positions (log_name, file_id, byte_offset) values ($1, $2, $3)")
        .bind(log.display().to_string())
        .bind(format!("{}:{}", meta.dev(), meta.ino()))
        .bind(i64::try_from(meta.len()).unwrap())
        .execute(db)
        .await
        .unwrap();
}

async fn status_of(app: &TestApp, token: &str, id: &str) -> Value {
    app.get(&format!("/mail/{id}/status"), Some(token))
        .await
        .json()
        .await
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn one_send_is_one_trace_across_api_and_worker() {
    let (endpoint, received) = start_receiver().await;
    let main_db = PgPool::connect(&testkit::base_database_url())
        .await
        .expect("Postgres (source /etc/mailapi/mailapi.env)");
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let d = format!("trace-{tag}.test");
    let rcpt = format!("rcpt@{d}");
    // What Postfix and Dovecot need to deliver to the mailbox.
    let main_domain: i64 =
        sqlx::query_scalar("insert into domains (domain, active) values ($1, true) returning id")
            .bind(&d)
            .fetch_one(&main_db)
            .await
            .unwrap();
    sqlx::query("insert into mailboxes (domain_id, local_part, email, password_hash) values ($1, 'rcpt', $2, $3)")
        .bind(main_domain)
        .bind(&rcpt)
        .bind(shared::password::hash_password("password123"))
        .execute(&main_db)
        .await
        .unwrap();

    let bounce_domain = format!("bounces-{tag}.test");
    let mut app = TestApp::spawn(&[
        ("MAILAPI_OTLP_ENDPOINT", endpoint.as_str()),
        ("MAILAPI_BOUNCE_DOMAIN", bounce_domain.as_str()),
    ])
    .await;
    let domain_id = app.domain(&d, true).await;
    let sender = app
        .mailbox_with_token(&format!("sender@{d}"), domain_id)
        .await;
    follow_from_end(&app.db, &app.settings.mta_log_path).await;
    let worker = app.start_worker();

    // The client's own trace: the request span must join it.
    let client_trace = uuid::Uuid::new_v4().simple().to_string();
    let client_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let body = json!({"from": format!("sender@{d}"), "to": [rcpt], "subject": "traced",
                      "body": {"text": "hello"}});
    let resp = app
        .http
        .post(app.api("/mail/send"))
        .header("X-MAILAPI-TOKEN", &sender)
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    let id = accepted["message_id"].as_str().unwrap().to_owned();

    let mut last = Value::Null;
    for _ in 0..300 {
        last = status_of(&app, &sender, &id).await;
        if last["recipients"][0]["status"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["recipients"][0]["status"], "sent", "{last}");
    let (queue_id, stored_traceparent): (String, Option<String>) =
        sqlx::query_as("select queue_id, traceparent from messages where id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.db)
            .await
            .unwrap();

    // Both services stop as on SIGTERM; each flushes its spans before returning, so everything
    // must be at the receiver now, without waiting for a batch timer.
    worker.shut_down().await;
    app.stop().await;
    let spans = received.lock().unwrap().clone();

    let api = &app.settings.tracing.api_service_name;
    let wrk = &app.settings.tracing.worker_service_name;
    let mut services_by_trace: HashMap<String, Vec<&str>> = HashMap::new();
    for s in &spans {
        services_by_trace
            .entry(hex(&s.span.trace_id))
            .or_default()
            .push(s.service.as_str());
    }
    let shared_traces: Vec<&String> = services_by_trace
        .iter()
        .filter(|(_, svc)| svc.contains(&api.as_str()) && svc.contains(&wrk.as_str()))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(shared_traces, vec![&client_trace], "spans: {spans:#?}");

    let trace: Vec<&Recorded> = spans
        .iter()
        .filter(|s| hex(&s.span.trace_id) == client_trace)
        .collect();
    let one = |service: &str, name: &str| -> &Recorded {
        let found: Vec<&&Recorded> = trace
            .iter()
            .filter(|s| s.service == service && s.span.name == name)
            .collect();
        assert_eq!(found.len(), 1, "one {service} span `{name}` in {trace:#?}");
        found[0]
    };
    let request = one(api, "POST /api/v1/mail/send");
    assert_eq!(request.span.kind, SpanKind::Server as i32);
    assert_eq!(
        hex(&request.span.parent_span_id),
        client_span,
        "the client's span is the parent"
    );
    assert_eq!(
        request.attr("http.route").as_deref(),
        Some("/api/v1/mail/send")
    );
    assert_eq!(
        request.attr("http.response.status_code").as_deref(),
        Some("202")
    );
    let request_id = hex(&request.span.span_id);
    assert_eq!(
        stored_traceparent,
        Some(format!("00-{client_trace}-{request_id}-01")),
        "the message row holds the request span's traceparent"
    );
    for child in ["insert message", "XADD send stream"] {
        assert_eq!(
            hex(&one(api, child).span.parent_span_id),
            request_id,
            "{child}"
        );
    }

    let submit = one(wrk, "submit message");
    assert_eq!(submit.span.kind, SpanKind::Consumer as i32);
    assert_eq!(
        hex(&submit.span.parent_span_id),
        request_id,
        "the stream entry carried it"
    );
    assert_eq!(submit.attr("mailapi.queue_id"), Some(queue_id.clone()));
    assert_eq!(submit.attr("mailapi.outcome").as_deref(), Some("submitted"));
    let smtp = one(wrk, "smtp submit");
    assert_eq!(smtp.span.parent_span_id, submit.span.span_id);

    let delivery = one(wrk, "mta.delivery");
    assert_eq!(
        hex(&delivery.span.parent_span_id),
        request_id,
        "the message row carried it"
    );
    assert_eq!(delivery.attr("mail.recipient"), Some(rcpt.clone()));
    assert_eq!(delivery.attr("mail.status").as_deref(), Some("sent"));
    assert_eq!(delivery.attr("mail.dsn").as_deref(), Some("2.0.0"));
    assert_eq!(delivery.attr("mailapi.queue_id"), Some(queue_id));
    assert_eq!(delivery.attr("mailapi.message_id"), Some(id));

    sqlx::query("delete from domains where domain = $1")
        .bind(&d)
        .execute(&main_db)
        .await
        .unwrap();
}
