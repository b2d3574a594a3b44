//! The HTTP client the OTLP span exporter posts through.
//!
//! The SDK's batch span processor exports from an OS thread of its own, outside any Tokio runtime,
//! and blocks that thread on each export. So the client drives its requests on a small runtime of
//! its own rather than the service's: an export never waits for a free thread of the service
//! (a single-threaded test runtime that is itself blocked in the final flush would wait forever),
//! and a slow collector costs the service nothing but that thread. It is the workspace's reqwest
//! with rustls, so an `https://` collector needs no second TLS stack.

use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// Largest collector response we read; OTLP replies are a few bytes (partial-success counts).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

pub(super) struct OtlpHttpClient {
    client: reqwest::Client,
    /// `Option` only so that `Drop` can take it: see there.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for OtlpHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpHttpClient").finish_non_exhaustive()
    }
}

impl OtlpHttpClient {
    /// `timeout` bounds one request, connection included.
    pub(super) fn new(timeout: Duration) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("otlp-export")
            .build()
            .map_err(|e| format!("cannot start the export runtime: {e}"))?;
        // reqwest is built without a crypto provider of its own and panics without one.
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            runtime: Some(runtime),
        })
    }
}

impl Drop for OtlpHttpClient {
    /// The exporter (and this client with it) may be dropped on a thread that runs async code;
    /// dropping a runtime there panics, shutting it down in the background never does.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // `block_on` inside a Tokio runtime would panic. The batch processor never calls us
        // there; refuse rather than panic if some future processor does.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err("OTLP export must run on the batch span processor's thread".into());
        }
        let runtime = self
            .runtime
            .as_ref()
            .ok_or("the export runtime is shut down")?;
        let request = reqwest::Request::try_from(request)?;
        runtime.block_on(async {
            let mut response = self.client.execute(request).await?;
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpError::from("the collector's response is too large"));
                }
                body.extend_from_slice(&chunk);
            }
            let mut out = Response::new(Bytes::from(body));
            *out.status_mut() = response.status();
            *out.headers_mut() = std::mem::take(response.headers_mut());
            Ok(out)
        })
    }
}
