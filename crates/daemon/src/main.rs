//! `servind`: serves the Docker Engine API on unix sockets.

mod error;
mod routes;
mod server;
mod settings;
mod vm_bridge;
mod vm_manager;
mod vm_ports;
mod vm_relay;

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

    // auto: native on Linux unless `servin vm enable` turned VM mode on.
    let vm_config = servin_vm::VmPaths::new(&settings.data_root).config();
    let use_vm = match settings.mode {
        settings::Mode::Vm => true,
        settings::Mode::Native => false,
        settings::Mode::Auto => {
            !cfg!(target_os = "linux") || servin_vm::VmConfig::load(&vm_config)?.enabled
        }
    };
    if use_vm {
        return vm_bridge::serve(&settings).await;
    }
    let engine = servin_engine::Engine::open(settings.engine_config())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("Cannot open the engine")?;
    // Before containers are restored: running ones keep their addresses.
    if let Err(e) = engine.open_networks(settings.network.clone()).await {
        tracing::error!(error = %e, "container networking is not available");
    }
    engine.restore();
    server::serve(engine, &settings).await
}
