//! Code both services share: configuration, domain types, database access, job types, telemetry.
//!
//! Layout: [`config`] loads and validates settings from defaults and `MAILAPI_*` variables;
//! [`batch`] group-commits hot writes and [`cache`] keeps what is read often for a while; [`address`] holds the parsed e-mail and domain types and
//! [`status`] the message and recipient statuses, [`events`] the names of the events senders
//! are told; [`token`] mints, parses and hashes API
//! tokens; [`password`] makes the password hashes Dovecot verifies; [`outgoing`] is the stored form
//! of an accepted message and builds its MIME; [`dkim`] reads and writes DKIM keys' stored and
//! published forms; [`jobs`] names the Redis stream and its entries;
//! [`redis`] connects to one Redis server, a Sentinel-watched master or a Cluster alike;
//! [`db`] connects and migrates Postgres and sorts its errors; [`telemetry`] sets up logging and the OpenTelemetry
//! tracer; [`metrics`] names every Prometheus series and holds the registry; [`notify`] names
//! the Postgres `NOTIFY` channels; [`secretbox`] seals secrets at rest; [`webhook`] signs
//! webhook requests and decides which URLs may be called; [`net`] parses the CIDR ranges of trusted proxies.

pub mod address;
pub mod batch;
pub mod cache;
pub mod config;
pub mod db;
pub mod delivery;
pub mod dkim;
pub mod events;
pub mod jobs;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod outgoing;
pub mod password;
pub mod redis;
pub mod secretbox;
pub mod status;
pub mod telemetry;
pub mod time;
pub mod token;
pub mod webhook;

/// The migrations in `migrations/`, embedded so both binaries and the tests apply the same ones.
/// A database that already has newer migrations than this binary knows is accepted: during a
/// rolling upgrade (or a rollback) the older pods keep starting. Migrations therefore only ever
/// add (see docs/OPERATIONS.md, "Upgrades").
pub static MIGRATOR: std::sync::LazyLock<sqlx::migrate::Migrator> =
    std::sync::LazyLock::new(|| {
        let mut migrator = sqlx::migrate!("../migrations");
        migrator.set_ignore_missing(true);
        migrator
    });

/// The multi-threaded Tokio runtime of a service binary, its threads named `thread_name`, so a
/// profile of the whole machine tells them from another Tokio program's
/// (`perf report --comm api-rt`).
pub fn runtime(thread_name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(thread_name)
        .build()
}

/// Installs the process-wide rustls crypto provider (ring). Every process that opens TLS clients
/// must call this once at start, tests included; calling it twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A token cancelled on the first SIGINT or SIGTERM, with `message` logged then: how both
/// services learn to stop (they drain what is in flight, then exit).
pub fn shutdown_on_signals(message: &'static str) -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops");
                    let _ = tokio::signal::ctrl_c().await;
                    tracing::info!("{message}");
                    cancel.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("{message}");
        cancel.cancel();
    });
    token
}
