//! Loading settings from a made-up environment: defaults, overrides, and refusals that name
//! their variable.

use super::*;
use std::collections::HashMap;

fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults_are_valid() {
    let s = load(&[]).unwrap();
    assert_eq!(s.limits.requests_per_minute, 100);
    assert_eq!(s.limits.requests_per_hour, 1000);
    assert_eq!(s.listen.port(), 8080);
}

#[test]
fn errors_name_the_variable() {
    let err = load(&[("MAILAPI_LISTEN", "not-an-address")]).unwrap_err();
    assert_eq!(err.var, "MAILAPI_LISTEN");
    let err = load(&[("MAILAPI_SMTP_PORT", "70000")]).unwrap_err();
    assert_eq!(err.var, "MAILAPI_SMTP_PORT");
    let err = load(&[("MAILAPI_DATABASE_URL", "mysql://x")]).unwrap_err();
    assert_eq!(err.var, "MAILAPI_DATABASE_URL");
}

#[test]
fn redis_urls_and_shards_are_checked_at_start() {
    let s = load(&[(
        "MAILAPI_REDIS_URL",
        "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster",
    )])
    .unwrap();
    assert!(matches!(
        s.redis_topology().unwrap(),
        crate::redis::Topology::Sentinel { .. }
    ));
    assert_eq!(s.send_stream_shards, 1);
    let err = load(&[("MAILAPI_REDIS_URL", "redis+sentinel://127.0.0.1:26379")]).unwrap_err();
    assert_eq!(err.var, "MAILAPI_REDIS_URL");
    assert!(err.to_string().contains("master"), "{err}");
    let err = load(&[(
        "MAILAPI_REDIS_URL",
        "redis+cluster://:hunter2@127.0.0.1:7000/3",
    )])
    .unwrap_err();
    assert_eq!(err.var, "MAILAPI_REDIS_URL");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = load(&[("MAILAPI_REDIS_URL", "memcached://127.0.0.1")]).unwrap_err();
    assert_eq!(err.var, "MAILAPI_REDIS_URL");
    for bad in ["0", "65", "x"] {
        let err = load(&[("MAILAPI_SEND_STREAM_SHARDS", bad)]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_SEND_STREAM_SHARDS", "{bad}");
    }
    let s = load(&[("MAILAPI_SEND_STREAM_SHARDS", "3")]).unwrap();
    assert_eq!(s.send_stream_shards, 3);
}

#[test]
fn accept_batches_in_flight_are_bounded() {
    assert_eq!(load(&[]).unwrap().accept_batch_in_flight, 2);
    for bad in ["0", "65", "-1", "x"] {
        let err = load(&[("MAILAPI_ACCEPT_BATCH_IN_FLIGHT", bad)]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_ACCEPT_BATCH_IN_FLIGHT", "{bad}");
    }
    let s = load(&[("MAILAPI_ACCEPT_BATCH_IN_FLIGHT", "1")]).unwrap();
    assert_eq!(s.accept_batch_in_flight, 1);
}

#[test]
fn dns_resolver_takes_an_address_with_or_without_port() {
    assert_eq!(load(&[]).unwrap().accounts.dns_resolver, None);
    let s = load(&[("MAILAPI_DNS_RESOLVER", "127.0.0.1:5353")]).unwrap();
    assert_eq!(
        s.accounts.dns_resolver,
        Some("127.0.0.1:5353".parse().unwrap())
    );
    let s = load(&[("MAILAPI_DNS_RESOLVER", "::1")]).unwrap();
    assert_eq!(s.accounts.dns_resolver, Some("[::1]:53".parse().unwrap()));
    let err = load(&[("MAILAPI_DNS_RESOLVER", "dns.example")]).unwrap_err();
    assert_eq!(err.var, "MAILAPI_DNS_RESOLVER");
}

#[test]
fn trusted_proxies_are_cidr_ranges_and_none_by_default() {
    assert!(load(&[]).unwrap().trusted_proxies.is_empty());
    let s = load(&[("MAILAPI_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::/32")]).unwrap();
    assert!(s.trusted_proxies.contains("10.9.8.7".parse().unwrap()));
    assert!(!s.trusted_proxies.contains("192.0.2.1".parse().unwrap()));
    for bad_value in ["10.0.0.0/33", "10.0.0.1/8", "proxy.internal", "10.0.0.0/8;"] {
        let err = load(&[("MAILAPI_TRUSTED_PROXIES", bad_value)]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_TRUSTED_PROXIES", "{bad_value}");
        assert!(err.to_string().contains("MAILAPI_TRUSTED_PROXIES"), "{err}");
    }
}

#[test]
fn reclaim_must_outlast_smtp() {
    let err = load(&[
        ("MAILAPI_SMTP_TIMEOUT_SECS", "60"),
        ("MAILAPI_RECLAIM_IDLE_SECS", "300"),
    ])
    .unwrap_err();
    assert_eq!(err.var, "MAILAPI_RECLAIM_IDLE_SECS");
}

#[test]
fn tracing_is_off_unless_an_endpoint_is_set() {
    let s = load(&[]).unwrap();
    assert_eq!(s.tracing.otlp_endpoint, None);
    assert_eq!(s.tracing.api_service_name, "mailapi-api");
    assert_eq!(s.tracing.worker_service_name, "mailapi-worker");
    let s = load(&[("MAILAPI_OTLP_ENDPOINT", "http://127.0.0.1:4318/")]).unwrap();
    assert_eq!(
        s.tracing.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4318")
    );
    for bad_endpoint in [
        "127.0.0.1:4318",
        "grpc://collector:4317",
        "http://",
        "http://x/?a",
    ] {
        let err = load(&[("MAILAPI_OTLP_ENDPOINT", bad_endpoint)]).unwrap_err();
        assert_eq!(err.var, "MAILAPI_OTLP_ENDPOINT", "{bad_endpoint}");
    }
    let err = load(&[("MAILAPI_OTLP_SAMPLE_RATIO", "1.5")]).unwrap_err();
    assert_eq!(err.var, "MAILAPI_OTLP_SAMPLE_RATIO");
    let err = load(&[("MAILAPI_OTLP_SAMPLE_RATIO", "half")]).unwrap_err();
    assert_eq!(err.var, "MAILAPI_OTLP_SAMPLE_RATIO");
}

#[test]
fn secrets_are_not_in_debug_output() {
    let s = load(&[
        ("MAILAPI_SMTP_USERNAME", "u"),
        ("MAILAPI_SMTP_PASSWORD", "hunter2-secret"),
    ])
    .unwrap();
    assert!(!format!("{s:?}").contains("hunter2-secret"));
}
