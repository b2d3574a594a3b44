//! Prometheus metrics shared by both services: one process-wide registry, rendered by each
//! service's `/metrics` route, and the names of every series (documented in docs/OPERATIONS.md).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// HTTP requests by `route` (the matched pattern, never the raw path), `method` and `status`.
pub const HTTP_REQUESTS: &str = "mailapi_http_requests_total";
/// Request latency in seconds by `route` and `method`.
pub const HTTP_DURATION: &str = "mailapi_http_request_duration_seconds";
/// Requests refused by the per-token rate limit, by `window` (minute|hour).
pub const RATE_LIMITED: &str = "mailapi_rate_limit_rejections_total";
/// Times the API found Redis unreachable and went on without it for a while (a timeout, a
/// refused or dropped connection); see `shared::redis::breaker`.
pub const REDIS_UNREACHABLE: &str = "mailapi_redis_unreachable_total";
/// Requests answered 503 `OVERLOADED`, by `reason` (in_flight|backlog|oldest_age).
pub const SHED: &str = "mailapi_requests_shed_total";
/// Due messages not yet submitted, as the API's last backlog sample counted them.
pub const BACKLOG: &str = "mailapi_backlog_messages";
/// Seconds the oldest due message had waited at that sample.
pub const BACKLOG_OLDEST: &str = "mailapi_backlog_oldest_seconds";
/// Messages accepted by `POST /mail/send`.
pub const MESSAGES_ACCEPTED: &str = "mailapi_messages_accepted_total";
/// Messages stored per group-committed insert of the accept path (one sample per statement).
pub const ACCEPT_BATCH_MESSAGES: &str = "mailapi_accept_batch_messages";
/// Time one such statement took, commit included, in seconds.
pub const ACCEPT_BATCH_DURATION: &str = "mailapi_accept_batch_duration_seconds";
/// Entries in the send stream (XLEN), by `shard` (`0` to N-1; `0` when unsharded).
pub const STREAM_LENGTH: &str = "mailapi_stream_length";
/// Entries the consumer group has not read yet (XINFO GROUPS lag), by `shard`.
pub const STREAM_LAG: &str = "mailapi_stream_consumer_group_lag";
/// Entries read but not acknowledged (XINFO GROUPS pending), by `shard`.
pub const STREAM_PENDING: &str = "mailapi_stream_pending_entries";
/// SMTP submissions by `outcome` (accepted|transient|permanent|ambiguous).
pub const SMTP_SUBMISSIONS: &str = "mailapi_smtp_submissions_total";
/// SMTP submission latency in seconds.
pub const SMTP_DURATION: &str = "mailapi_smtp_submission_duration_seconds";
/// Recipient status changes by `status` and `source` (worker|log|dsn|api).
pub const DELIVERIES: &str = "mailapi_deliveries_total";
/// Bytes of the MTA log not yet read by the follower.
pub const LOG_LAG_BYTES: &str = "mailapi_log_follower_lag_bytes";
/// Seconds since the follower last caught up with the end of the log (0 while caught up).
pub const LOG_LAG_SECONDS: &str = "mailapi_log_follower_lag_seconds";
/// Log lines applied by the follower.
pub const LOG_LINES: &str = "mailapi_log_follower_lines_total";
/// IMAP sessions checked out of the API's pool.
pub const IMAP_IN_USE: &str = "mailapi_imap_pool_in_use";
/// Requests that had to wait for an IMAP session, and how long (seconds).
pub const IMAP_WAIT: &str = "mailapi_imap_pool_wait_seconds";

/// Webhook deliveries (one per endpoint and event) not yet delivered or dead-lettered.
pub const WEBHOOK_PENDING: &str = "mailapi_webhook_events_pending";
/// Age in seconds of the oldest such delivery, by `endpoint` (its id).
pub const WEBHOOK_OLDEST: &str = "mailapi_webhook_oldest_pending_seconds";
/// Webhook requests attempted, by `outcome` (success|failure|gone|refused).
pub const WEBHOOK_ATTEMPTS: &str = "mailapi_webhook_attempts_total";
/// Events dead-lettered after their last retry.
pub const WEBHOOK_DEAD: &str = "mailapi_webhook_dead_letters_total";
/// Seconds from an event to its receiver's 2xx (the oldest event of a batch).
pub const WEBHOOK_LATENCY: &str = "mailapi_webhook_delivery_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide recorder on first use and returns the handle that renders it.
/// Several API instances in one process (tests) share it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".to_owned()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ],
            )
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full(ACCEPT_BATCH_MESSAGES.to_owned()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
            )
            .expect("bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; then ours just stays unused.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        // A histogram keeps every sample it is given until they are folded into its buckets,
        // which happens on a render (a scrape) or in upkeep. Without a scraper nothing folded
        // them: the API's RSS grew by ~1 MB a minute at 300 req/s (docs/BENCHMARKS.md, "Soak").
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route, method and status");
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency"
    );
    describe_counter!(RATE_LIMITED, "Requests refused by the per-token rate limit");
    describe_counter!(
        REDIS_UNREACHABLE,
        "Times Redis could not be reached and the API went on without it for a while"
    );
    describe_counter!(SHED, "Requests answered 503 OVERLOADED, by reason");
    describe_gauge!(BACKLOG, "Due messages not yet submitted (last sample)");
    describe_gauge!(
        BACKLOG_OLDEST,
        metrics::Unit::Seconds,
        "How long the oldest due message had waited (last sample)"
    );
    describe_counter!(MESSAGES_ACCEPTED, "Messages accepted by POST /mail/send");
    describe_histogram!(
        ACCEPT_BATCH_MESSAGES,
        "Messages stored per group-committed insert statement"
    );
    describe_histogram!(
        ACCEPT_BATCH_DURATION,
        metrics::Unit::Seconds,
        "Time of one group-committed insert statement, commit included"
    );
    describe_gauge!(STREAM_LENGTH, "Entries in the send stream");
    describe_gauge!(STREAM_LAG, "Entries the consumer group has not read yet");
    describe_gauge!(STREAM_PENDING, "Entries read but not yet acknowledged");
    describe_counter!(SMTP_SUBMISSIONS, "SMTP submissions by outcome");
    describe_histogram!(
        SMTP_DURATION,
        metrics::Unit::Seconds,
        "SMTP submission latency"
    );
    describe_gauge!(
        WEBHOOK_PENDING,
        "Webhook deliveries not yet delivered or dead"
    );
    describe_gauge!(
        WEBHOOK_OLDEST,
        metrics::Unit::Seconds,
        "Age of the oldest pending webhook delivery, by endpoint"
    );
    describe_counter!(WEBHOOK_ATTEMPTS, "Webhook requests attempted, by outcome");
    describe_counter!(WEBHOOK_DEAD, "Webhook events dead-lettered");
    describe_histogram!(
        WEBHOOK_LATENCY,
        metrics::Unit::Seconds,
        "From an event to its receiver's 2xx"
    );
    describe_counter!(DELIVERIES, "Recipient status changes by status and source");
    describe_gauge!(LOG_LAG_BYTES, "Bytes of the MTA log not yet read");
    describe_gauge!(
        LOG_LAG_SECONDS,
        "Seconds since the follower last reached the end of the log"
    );
    describe_counter!(LOG_LINES, "MTA log lines applied by the follower");
    describe_gauge!(IMAP_IN_USE, "IMAP sessions checked out of the pool");
    describe_histogram!(
        IMAP_WAIT,
        metrics::Unit::Seconds,
        "Time spent waiting for an IMAP session"
    );
}
