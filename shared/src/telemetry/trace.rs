//! Traces: one [`Tracer`] per service, exporting its spans over OTLP/HTTP in batches.
//!
//! Spans are made with the OpenTelemetry API on a handle that each service's state carries, not
//! through a `tracing` layer (`tracing-opentelemetry`), for two reasons. A resource
//! (`service.name`) belongs to a tracer provider, while a `tracing` subscriber is one per
//! process, and the end-to-end tests run the API and the worker in one process. And with tracing
//! off the handle is empty, so instrumented code does no work at all: no span objects, no
//! context lookups, no extra columns read.
//!
//! A trace crosses process boundaries as a W3C `traceparent`: from a client's request header, to
//! the stream entry and the message row (both carry the request span's), to the worker's
//! submission span and the log follower's delivery spans. See docs/OPERATIONS.md, "Tracing".

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    FutureExt as _, Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider};

use crate::config::TracingSettings;

/// Name of the W3C header, stream field and column that carry the parent span.
pub const TRACEPARENT: &str = "traceparent";
/// Longest one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the final flush may hold up a stopping process.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("OTLP trace exporter (MAILAPI_OTLP_ENDPOINT): {0}")]
pub struct TracerError(String);

/// A service's tracer; cheap to clone. [`Tracer::disabled`] (the default) makes no spans.
#[derive(Clone, Default)]
pub struct Tracer {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl Tracer {
    pub fn disabled() -> Self {
        Self::default()
    }

    /// A tracer exporting to `settings.otlp_endpoint` as `service_name`, or a disabled one when
    /// no endpoint is set. Spans are queued and sent by a background thread in batches
    /// (`OTEL_BSP_*` variables tune it); [`Tracer::shutdown`] sends what is left.
    pub fn new(settings: &TracingSettings, service_name: &str) -> Result<Self, TracerError> {
        let Some(endpoint) = &settings.otlp_endpoint else {
            return Ok(Self::disabled());
        };
        let client = super::otlp::OtlpHttpClient::new(EXPORT_TIMEOUT).map_err(TracerError)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(client)
            .build()
            .map_err(|e| TracerError(e.to_string()))?;
        let resource = Resource::builder_empty()
            .with_service_name(service_name.to_owned())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter).build())
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("mailapi");
        Ok(Self {
            inner: Some(Arc::new(Inner { provider, tracer })),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Starts a span under `parent` and returns `parent` with it as the current span; `None`
    /// when tracing is off. End it with `cx.span().end()` (or let the context drop).
    pub fn start(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: &Context,
        attributes: Vec<KeyValue>,
    ) -> Option<Context> {
        if !self.is_enabled() {
            return None;
        }
        self.start_at(name, kind, parent, attributes, SystemTime::now())
    }

    /// [`Tracer::start`] for a span that began at `start` (before the work it wraps was known
    /// to belong to it, e.g. a statement shared by several).
    pub fn start_at(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: &Context,
        attributes: Vec<KeyValue>,
        start: SystemTime,
    ) -> Option<Context> {
        let inner = self.inner.as_ref()?;
        let span = inner
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&inner.tracer, parent);
        Some(parent.with_span(span))
    }

    /// A finished span under `parent` for something that happened between `start` and `end`
    /// (a line in a log read later, for instance).
    pub fn record(
        &self,
        name: &'static str,
        parent: &Context,
        attributes: Vec<KeyValue>,
        start: SystemTime,
        end: SystemTime,
    ) {
        let Some(inner) = &self.inner else { return };
        let mut span = inner
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&inner.tracer, parent);
        span.end_with_timestamp(end.max(start));
    }

    /// Runs `work` inside a child span of the current one (a client call: a query, a Redis
    /// command); an `Err` marks the span failed. Off: just runs `work` (`attributes` is not
    /// even called).
    pub async fn in_span<T, E: std::fmt::Display>(
        &self,
        name: &'static str,
        attributes: impl FnOnce() -> Vec<KeyValue>,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        if !self.is_enabled() {
            return work.await;
        }
        let parent = Context::current();
        let Some(cx) = self.start(name, SpanKind::Client, &parent, attributes()) else {
            return work.await;
        };
        let result = work.with_context(cx.clone()).await;
        let span = cx.span();
        if let Err(e) = &result {
            span.set_status(Status::error(e.to_string()));
        }
        span.end();
        result
    }

    /// The `traceparent` to hand on for the current span: `None` when tracing is off, even if
    /// a context is current (a client's header is then not passed on either).
    pub fn current_traceparent(&self) -> Option<String> {
        if !self.is_enabled() {
            return None;
        }
        Context::map_current(traceparent)
    }

    /// Sends every queued span and stops the exporter; call once when the service stops. Runs
    /// on a blocking thread so that the export can proceed while this task waits.
    pub async fn shutdown(&self) {
        let Some(inner) = &self.inner else { return };
        let provider = inner.provider.clone();
        let result =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT))
                .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing the last spans failed"),
            Err(e) => tracing::warn!(error = %e, "flushing the last spans failed"),
        }
    }
}

/// The remote parent a W3C `traceparent` (and optional `tracestate`) names; an empty context
/// (a new trace) when it is missing or malformed.
pub fn remote_parent(traceparent: Option<&str>, tracestate: Option<&str>) -> Context {
    let Some(traceparent) = traceparent else {
        return Context::new();
    };
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert(TRACEPARENT.to_owned(), traceparent.to_owned());
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier)
}

/// The W3C `traceparent` of `cx`'s span, `None` when it has no valid one (tracing off). An
/// unsampled span still has one (flags `00`), so the services after it keep its decision.
pub fn traceparent(cx: &Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_round_trips() {
        let cx = remote_parent(Some(TP), None);
        assert!(cx.span().span_context().is_remote());
        assert_eq!(traceparent(&cx).as_deref(), Some(TP));
    }

    #[test]
    fn a_missing_or_malformed_parent_starts_a_new_trace() {
        assert_eq!(traceparent(&remote_parent(None, None)), None);
        assert_eq!(traceparent(&remote_parent(Some("00-zz-yy-01"), None)), None);
    }

    #[test]
    fn disabled_makes_no_spans() {
        let t = Tracer::disabled();
        assert!(!t.is_enabled());
        assert!(
            t.start("x", SpanKind::Server, &Context::new(), Vec::new())
                .is_none()
        );
    }

    #[test]
    fn only_an_enabled_tracer_hands_a_traceparent_on() {
        let _guard = remote_parent(Some(TP), None).attach();
        assert_eq!(Tracer::disabled().current_traceparent(), None);
    }

    #[tokio::test]
    async fn an_enabled_tracer_parents_its_spans_on_the_remote_one() {
        let settings = TracingSettings {
            // Nothing listens there, and nothing is sent: the parent says "not sampled".
            otlp_endpoint: Some("http://127.0.0.1:9".to_owned()),
            sample_ratio: 1.0,
            api_service_name: "a".to_owned(),
            worker_service_name: "w".to_owned(),
        };
        let t = Tracer::new(&settings, "test").unwrap();
        let unsampled = TP.replace("-01", "-00");
        let parent = remote_parent(Some(&unsampled), None);
        let cx = t
            .start("child", SpanKind::Consumer, &parent, Vec::new())
            .unwrap();
        let child = traceparent(&cx).unwrap();
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(
            child.ends_with("-00"),
            "the parent's decision is kept: {child}"
        );
        assert_ne!(child, unsampled, "a new span id under the same trace");
        {
            let _guard = cx.clone().attach();
            assert_eq!(t.current_traceparent(), Some(child));
        }
        cx.span().end();
        t.shutdown().await;
    }
}
