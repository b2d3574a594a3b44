//! `GET /dashboard`: a static page (HTML, JS, CSS compiled into the binary; no CDN, no library)
//! that charts `/api/v1/stats/delivery` with a token the user pastes in, or passes in the URL
//! fragment (`/dashboard#token=...`: a fragment never reaches the server or its logs). The page
//! itself needs no token; every number on it comes from the authenticated API.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// Only our own script, style and API: a pasted token can go nowhere else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(index))
        .route("/dashboard/app.js", get(app_js))
        .route("/dashboard/style.css", get(style_css))
}

/// The dashboard page; it asks for a token and calls the stats API with it.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard", security(()),
    responses((status = 200, description = "Dashboard page", content_type = "text/html", body = String)))]
pub async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

#[utoipa::path(get, path = "/dashboard/app.js", tag = "dashboard", security(()),
    responses((status = 200, description = "Dashboard script", content_type = "text/javascript", body = String)))]
pub async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

#[utoipa::path(get, path = "/dashboard/style.css", tag = "dashboard", security(()),
    responses((status = 200, description = "Dashboard stylesheet", content_type = "text/css", body = String)))]
pub async fn style_css() -> Response {
    asset(STYLE_CSS, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
