//! The API's self-description: the OpenAPI 3.1 document at `/openapi.json` (generated from the
//! handlers' `#[utoipa::path]` annotations, so it cannot drift from the code), Swagger UI at
//! `/docs` and ReDoc at `/redoc`. All of it is served from the binary: the Swagger UI assets are
//! vendored by `utoipa-swagger-ui` and ReDoc is a pinned copy of the npm package `redoc` 2.5.4's
//! standalone bundle, so neither the build nor a browser fetches anything from elsewhere.

pub mod spec;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

const REDOC_HTML: &str = include_str!("docs/redoc.html");
const REDOC_JS: &str = include_str!("docs/redoc.standalone.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec::ApiDoc::openapi()))
        .route("/redoc", get(redoc))
        .route("/redoc/redoc.standalone.js", get(redoc_js))
}

/// The ReDoc page: loads the bundle below and renders `/openapi.json`.
#[utoipa::path(get, path = "/redoc", tag = "docs", security(()),
    responses((status = 200, description = "ReDoc page", content_type = "text/html", body = String)))]
pub async fn redoc() -> Response {
    asset(REDOC_HTML, "text/html; charset=utf-8")
}

/// ReDoc's standalone bundle (npm `redoc` 2.5.4, MIT, see `docs/redoc.standalone.js.LICENSE.txt`).
#[utoipa::path(get, path = "/redoc/redoc.standalone.js", tag = "docs", security(()),
    responses((status = 200, description = "ReDoc bundle", content_type = "text/javascript", body = String)))]
pub async fn redoc_js() -> Response {
    asset(REDOC_JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// Documents the routes `utoipa-swagger-ui` serves; they carry no annotation of their own.
pub mod swagger {
    /// The OpenAPI document itself.
    #[utoipa::path(get, path = "/openapi.json", tag = "docs", security(()),
        responses((status = 200, description = "This document", body = Object)))]
    pub async fn openapi_json() {}

    /// Swagger UI (redirects to `/docs/`).
    #[utoipa::path(get, path = "/docs", tag = "docs", security(()),
        responses((status = 303, description = "Redirect to /docs/")))]
    pub async fn docs() {}

    /// Swagger UI's page.
    #[utoipa::path(get, path = "/docs/", tag = "docs", security(()),
        responses((status = 200, description = "Swagger UI", content_type = "text/html", body = String)))]
    pub async fn docs_index() {}

    /// Swagger UI's own assets (`index.css`, `swagger-ui-bundle.js`, `swagger-initializer.js`...).
    #[utoipa::path(get, path = "/docs/{rest}", tag = "docs", security(()),
        params(("rest" = String, Path, description = "Asset path")),
        responses((status = 200, description = "Asset"), (status = 404, description = "No such asset")))]
    pub async fn docs_asset() {}
}
