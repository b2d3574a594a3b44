//! The HTTP client webhooks go out through: no redirects, connect 5 s, total 15 s, at most
//! 64 KiB of an answer read, and every address checked at connect time. The name is resolved
//! here, by a resolver that refuses loopback, private, link-local and metadata answers unless
//! `MAILAPI_WEBHOOK_ALLOW_PRIVATE=true`, so a DNS answer that changed after registration cannot
//! point a webhook inside the network. A URL naming an IP address is checked before the request.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use shared::config::WebhookSettings;
use shared::webhook::{UrlError, WebhookUrl, resolve_host};

/// The most of an answer's body that is read.
const READ_LIMIT: usize = 64 * 1024;
/// The most of it that is kept with the attempt.
const EXCERPT: usize = 1024;

/// How one request went.
#[derive(Debug)]
pub struct Answer {
    /// The status, if one came.
    pub status: Option<u16>,
    pub latency: Duration,
    /// The first 1 KiB of the body (lossy UTF-8).
    pub excerpt: Option<String>,
    /// Why no status counts: a timeout, a refused connection or address.
    pub error: Option<String>,
    /// Not sent at all: the URL or its address was refused, or the secret could not be used.
    pub refused: bool,
}

/// What an answer means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// 410: the receiver asks us to stop; the endpoint is disabled.
    Gone,
    Failure,
}

impl Answer {
    /// A request that was not sent: `error` says why.
    pub fn refused(error: String) -> Answer {
        Answer {
            status: None,
            latency: Duration::ZERO,
            excerpt: None,
            error: Some(error),
            refused: true,
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self.status {
            Some(s) if (200..300).contains(&s) => Outcome::Success,
            Some(410) => Outcome::Gone,
            _ => Outcome::Failure,
        }
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    allow_private: bool,
}

impl Client {
    pub fn new(settings: &WebhookSettings) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .dns_resolver(Arc::new(CheckedResolver {
                allow_private: settings.allow_private,
            }))
            .user_agent("mailapi-webhooks/1")
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            http,
            allow_private: settings.allow_private,
        })
    }

    /// POSTs `body` to `url` with the Standard Webhooks headers.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: String,
    ) -> Answer {
        let started = Instant::now();
        let parsed = match WebhookUrl::parse(url) {
            Ok(u) => u,
            Err(e) => return Answer::refused(format!("refused URL: {e}")),
        };
        // A name is checked by the resolver at connect time; an IP address is never resolved,
        // so it is checked here, by the same rule.
        let (host, port) = parsed.host_port();
        if host.parse::<IpAddr>().is_ok()
            && let Err(UrlError::Internal(_, ip)) =
                resolve_host(&host, port, self.allow_private).await
        {
            return Answer::refused(format!("refused address {ip}: internal"));
        }
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                // The resolver's refusal of an internal address comes back as a connect error.
                let refused = std::iter::successors(std::error::Error::source(&e), |s| s.source())
                    .any(|s| s.downcast_ref::<UrlError>().is_some());
                return Answer {
                    status: None,
                    latency: started.elapsed(),
                    excerpt: None,
                    error: Some(describe(&e)),
                    refused,
                };
            }
        };
        let status = response.status().as_u16();
        let mut read = Vec::new();
        let mut error = None;
        while read.len() < READ_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => read.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    error = Some(describe(&e));
                    break;
                }
            }
        }
        read.truncate(EXCERPT);
        Answer {
            status: Some(status),
            latency: started.elapsed(),
            excerpt: (!read.is_empty()).then(|| String::from_utf8_lossy(&read).into_owned()),
            error,
            refused: false,
        }
    }
}

/// An error's kind and its causes, without the URL (which the attempt already names).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirect not followed"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

struct CheckedResolver {
    allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = resolve_host(name.as_str(), 0, allow_private)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
