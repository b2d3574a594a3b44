use anyhow::Context as _;
use clap::{Parser, Subcommand};
use shared::config::Settings;

/// The Mail API HTTP server. Configuration comes from MAILAPI_* environment variables
/// (see the README's configuration reference).
#[derive(Parser)]
#[command(name = "mailapi-api", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API on MAILAPI_LISTEN (the default command).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API tokens directly in the database.
    Token {
        #[command(subcommand)]
        command: api::cli::TokenCommand,
    },
}

fn main() -> anyhow::Result<()> {
    shared::runtime("api-rt")
        .context("starting the Tokio runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    shared::telemetry::init(settings.log_format);
    shared::install_crypto_provider();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let db = shared::db::connect_lazy(&settings)?;
            shared::db::migrate(&db)
                .await
                .context("applying migrations")?;
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("binding MAILAPI_LISTEN={}", settings.listen))?;
            api::run(
                settings,
                listener,
                shared::shutdown_on_signals("shutting down"),
            )
            .await
        }
        Command::Migrate => {
            let db = shared::db::connect_lazy(&settings)?;
            shared::db::migrate(&db)
                .await
                .context("applying migrations")?;
            println!("migrations applied");
            Ok(())
        }
        Command::Token { command } => api::cli::run_token_command(&settings, command).await,
    }
}
