//! Wrappers around axum's extractors whose rejections use our error shape and name the field.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// JSON body. Syntax errors are `INVALID_JSON`; a wrong type or a missing field is
/// `VALIDATION_ERROR` naming the field path (`to[1]`, `body.text`).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(rej) => return Err(body_rejection(rej.status().as_u16(), rej.body_text())),
        };
        parse_json(&bytes).map(Json)
    }
}

fn body_rejection(status: u16, text: String) -> ApiError {
    if status == 413 {
        ApiError::PayloadTooLarge(0)
    } else {
        ApiError::invalid("INVALID_BODY", None, text)
    }
}

/// Parses JSON with the failing field's path in the error. Every body the API takes is an
/// object: serde would also fill a struct from an array of its fields in order (`[null, null]`),
/// which no document allows, so anything else is refused first.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    // Not JSON at all is INVALID_JSON below; JSON that is not an object is a wrong type.
    if !matches!(first, Some(b'{') | None)
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ApiError::validation("body", "must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => {
                ApiError::invalid("INVALID_JSON", None, format!("Malformed JSON: {inner}"))
            }
            serde_json::error::Category::Data => {
                let field = if path == "." { "body".to_owned() } else { path };
                ApiError::validation(field, strip_position(&inner.to_string()))
            }
        }
    })
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Maps axum's JSON rejection (used where the plain extractor is kept) into our shape.
pub fn json_rejection(rej: JsonRejection) -> ApiError {
    match rej {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        other => body_rejection(other.status().as_u16(), other.body_text()),
    }
}

pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| ApiError::invalid("VALIDATION_ERROR", None, e.body_text()))
    }
}

pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e: PathRejection| ApiError::invalid("VALIDATION_ERROR", None, e.body_text()))
    }
}
