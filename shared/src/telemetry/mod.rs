//! Telemetry shared by both binaries: log output ([`init`]) and traces exported over OTLP
//! ([`Tracer`], off unless `MAILAPI_OTLP_ENDPOINT` is set).
//!
//! Layout: [`trace`] holds the per-service [`Tracer`] and the W3C `traceparent` helpers;
//! `otlp` is the HTTP client the span exporter posts through.

mod otlp;
pub mod trace;

pub use trace::{Tracer, TracerError};

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    // A second init (tests) is not an error worth dying for.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
