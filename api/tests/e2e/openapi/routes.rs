//! The document: OpenAPI 3.1, every route the router serves listed (and the list kept honest
//! by the routes' sources), every documented route served.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use testkit::TestApp;

use super::{METHODS, PUBLIC, ROUTES, document};

#[tokio::test]
async fn document_is_openapi_3_1_and_lists_every_route() {
    let app = TestApp::spawn(&[]).await;
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi version {version}");

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                documented.insert((method.to_string(), path.clone()));
                check_operation(path, method, op);
            }
        }
    }
    let expected: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "routes without documentation: {missing:?}"
    );
    assert!(extra.is_empty(), "documented but not in ROUTES: {extra:?}");

    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["type"], "apiKey", "{scheme}");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "X-MAILAPI-TOKEN");
    let error = &doc["components"]["schemas"]["ErrorBody"];
    for field in ["success", "error", "message"] {
        assert!(error["properties"].get(field).is_some(), "{error}");
    }
}

/// Security as the router applies it, and the error shape on every error response.
fn check_operation(path: &str, method: &str, op: &Value) {
    let security = op.get("security").and_then(Value::as_array);
    let open = security.is_some_and(|s| {
        s.iter()
            .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
    });
    assert_eq!(
        open,
        PUBLIC.contains(&path),
        "{method} {path}: security {security:?}"
    );
    let responses = op["responses"].as_object().expect("responses");
    assert!(
        responses
            .keys()
            .any(|s| s.starts_with('2') || s.starts_with('3')),
        "{method} {path} documents no success"
    );
    if path.starts_with("/api/v1/") {
        for status in ["500", "503"] {
            assert!(
                responses.contains_key(status),
                "{method} {path} lacks {status}"
            );
        }
        if !open {
            assert!(responses.contains_key("401"), "{method} {path} lacks 401");
        }
        for (status, resp) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &resp["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
}

/// Every path string given to `.route(` in the routes' sources is in ROUTES (under `/api/v1`
/// for the authenticated modules), so ROUTES cannot fall behind the router.
#[test]
fn routes_list_covers_the_sources() {
    let mut found = Vec::new();
    collect_route_paths(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes"),
        &mut found,
    );
    assert!(found.len() >= 30, "scan found only {found:?}");
    for (file, path) in found {
        let known = ROUTES
            .iter()
            .any(|(_, p)| *p == path || *p == format!("/api/v1{path}"));
        assert!(
            known,
            "{file}: route {path} is not in ROUTES (nor documented)"
        );
    }
}

fn collect_route_paths(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_route_paths(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split(".route(").skip(1) {
                let rest = piece.trim_start();
                if let Some(quoted) = rest.strip_prefix('"')
                    && let Some(end) = quoted.find('"')
                {
                    out.push((path.display().to_string(), quoted[..end].to_owned()));
                }
            }
        }
    }
}

/// Each documented operation is served: with sample parameters, none falls through to the
/// router's 404/405 fallbacks.
#[tokio::test]
async fn every_documented_route_is_served() {
    let app = TestApp::spawn(&[]).await;
    let token = app.admin_token().await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (method, path) in ROUTES {
        let url = app.url(
            &path
                .replace("{rest}", "index.css")
                .replace("{email}", "a@example.com")
                .replace("{domain}", "example.com")
                .replace("{message_id}", "0190b1c2-0000-7000-8000-000000000000")
                .replace("{id}", "999999")
                .replace("{uid}", "1")
                .replace("{index}", "0"),
        );
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = no_redirect
            .request(method.clone(), &url)
            .header("X-MAILAPI-TOKEN", &token)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !body.contains("No such endpoint"),
            "{method} {path} is not routed: {status} {body}"
        );
    }
}
