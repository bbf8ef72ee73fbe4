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
    tracing::debug!(data_root = %settings.data_root.display(), "servind starting");
    // Held (by the open file) until this process ends, however it ends.
    let _lock = lock_data_root(&settings.data_root)?;

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
    tracing::debug!("engine store open");
    // Before containers are restored: running ones keep their addresses.
    if let Err(e) = engine.open_networks(settings.network.clone()).await {
        tracing::error!(error = %e, "container networking is not available");
    }
    engine.restore();
    tracing::debug!("containers restored");
    server::serve(engine, &settings).await
}

/// Takes `DATA_ROOT/servind.lock`, so a second daemon on the same data
/// root stops with a message instead of sharing its store, sockets and
/// networks (Docker's pid file does the same). The lock is `flock`'s: the
/// kernel drops it when this process ends, even by SIGKILL, so no stale
/// file ever blocks a start. The file holds the owner's pid for the message.
fn lock_data_root(root: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    std::fs::create_dir_all(root).with_context(|| format!("Cannot create {}", root.display()))?;
    let path = root.join("servind.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("Cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = match owner.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            anyhow::bail!(
                "Another servind{owner} is using the data root {}: stop it first, or give this one its own --data-root",
                root.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("Cannot lock {}", path.display()))
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}
