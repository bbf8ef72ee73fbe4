//! `servind`: serves the Docker Engine API on unix sockets.

mod error;
mod routes;
mod server;
mod settings;

use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = settings::Args::parse();
    let settings = settings::Settings::resolve(args)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SERVIN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&settings.log_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    if settings.mode == settings::Mode::Vm {
        anyhow::bail!("VM mode is not available in this build yet: start servind with --mode native (or auto)");
    }
    let engine = servin_engine::Engine::open(settings.engine_config())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("Cannot open the engine")?;
    engine.restore();
    server::serve(engine, &settings).await
}
