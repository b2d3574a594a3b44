use anyhow::Context as _;
use clap::Parser;
use shared::config::Settings;

/// The Mail API worker: submits accepted messages over SMTP and tracks their delivery.
/// Configuration comes from MAILAPI_* environment variables (see the README). Any number of
/// workers may run at once against one Postgres and one Redis.
#[derive(Parser)]
#[command(name = "mailapi-worker", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    shared::runtime("worker-rt")
        .context("starting the Tokio runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let _ = Cli::parse();
    let settings = Settings::from_env()?;
    shared::telemetry::init(settings.log_format);
    shared::install_crypto_provider();
    let ctx = worker::context::WorkerContext::new(settings)?;
    shared::db::migrate(&ctx.db)
        .await
        .context("applying migrations")?;
    let shutdown = shared::shutdown_on_signals("stopping: no new jobs; finishing in-flight ones");
    Ok(worker::run_until_stopped(ctx, shutdown).await?)
}
