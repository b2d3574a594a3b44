//! `/openapi.json`, `/docs` and `/redoc`: the document is OpenAPI 3.1 and lists exactly the
//! routes the router serves (a route added without an annotation fails here), the two viewers
//! load nothing from another origin, and schemathesis (PyPI) fuzzing every operation with an
//! admin token finds no 5xx and no response outside the documented schemas.

mod routes;
mod schemathesis;
mod viewers;

use serde_json::Value;
use testkit::TestApp;

/// Every (method, path) the router serves, read off `api/src/routes/**/*.rs` by hand. The
/// source scan (routes.rs) keeps this list honest about paths; the document must match it exactly.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/dashboard"),
    ("get", "/dashboard/app.js"),
    ("get", "/dashboard/style.css"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/docs/"),
    ("get", "/docs/{rest}"),
    ("get", "/redoc"),
    ("get", "/redoc/redoc.standalone.js"),
    ("get", "/api/v1/tokens/me"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("post", "/api/v1/mail/send"),
    ("get", "/api/v1/mail/sent"),
    ("get", "/api/v1/mail/{message_id}/status"),
    ("get", "/api/v1/mail/{message_id}/events"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/mailbox/{email}/folders"),
    ("get", "/api/v1/mailbox/{email}/messages"),
    ("get", "/api/v1/mailbox/{email}/messages/{uid}"),
    ("delete", "/api/v1/mailbox/{email}/messages/{uid}"),
    (
        "get",
        "/api/v1/mailbox/{email}/messages/{uid}/attachment/{index}",
    ),
    ("post", "/api/v1/mailbox/{email}/messages/{uid}/flags"),
    ("post", "/api/v1/mailbox/{email}/messages/{uid}/move"),
    ("get", "/api/v1/mailbox/{email}/search"),
    ("get", "/api/v1/domains/pending"),
    ("patch", "/api/v1/domains/{domain}"),
    ("post", "/api/v1/domains/{domain}/approve"),
    ("get", "/api/v1/domains/{domain}/dns"),
    ("post", "/api/v1/domains/{domain}/dns/verify"),
    ("get", "/api/v1/domains/{domain}/users"),
    ("post", "/api/v1/domains/{domain}/users"),
    ("patch", "/api/v1/domains/{domain}/users/{email}"),
    ("delete", "/api/v1/domains/{domain}/users/{email}"),
    ("post", "/api/v1/permissions/bulk"),
    ("get", "/api/v1/permissions"),
    ("delete", "/api/v1/permissions/{id}"),
    ("post", "/api/v1/auth/signup"),
    ("get", "/api/v1/suppressions"),
    ("post", "/api/v1/suppressions"),
    ("delete", "/api/v1/suppressions/{domain}/{email}"),
    ("get", "/api/v1/stats/delivery"),
    ("get", "/api/v1/stats/domain/{domain}"),
    ("get", "/api/v1/queue"),
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks/{id}"),
    ("patch", "/api/v1/webhooks/{id}"),
    ("delete", "/api/v1/webhooks/{id}"),
    ("post", "/api/v1/webhooks/{id}/rotate"),
    ("post", "/api/v1/webhooks/{id}/test"),
    ("get", "/api/v1/webhooks/{id}/attempts"),
    ("get", "/api/v1/webhooks/{id}/dead-letters"),
    ("post", "/api/v1/webhooks/{id}/replay"),
];

/// Routes that answer without a token.
const PUBLIC: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/dashboard",
    "/dashboard/app.js",
    "/dashboard/style.css",
    "/openapi.json",
    "/docs",
    "/docs/",
    "/docs/{rest}",
    "/redoc",
    "/redoc/redoc.standalone.js",
    "/api/v1/auth/signup",
];

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let resp = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("the document is JSON")
}
