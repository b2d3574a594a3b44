//! Success bodies of the handlers that build their JSON with `json!`: these structs exist only
//! to describe those shapes in the document (the handlers' output is asserted by the tests, and
//! schemathesis checks every response against these). Timestamps are RFC 3339 strings in UTC.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

pub type Timestamp = String;
/// Free-form member objects (message summaries, DNS records), described in prose.
pub type Object = serde_json::Map<String, serde_json::Value>;

mod accounts;
mod mail;

pub use accounts::*;
pub use mail::*;

#[derive(Serialize, ToSchema)]
pub struct Health {
    success: bool,
    status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    success: bool,
    /// `ready` or `not_ready`.
    status: String,
    checks: ReadyChecks,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyChecks {
    /// `ok` or `unavailable`.
    postgres: String,
    redis: String,
}
