//! `servin`: a Docker-compatible CLI, a client of the Docker Engine API that
//! `servind` serves. Output, messages and exit statuses follow the stock
//! docker CLI.

mod archive;
mod auth;
mod client;
mod commands;
mod connect;
mod containers;
mod format;
mod opts;
mod progress;
mod signals;
mod stream;
mod template;
mod timestamp;
mod tty;
mod usage;

use std::io::Write as _;

use anyhow::Result;
use clap::{Parser, Subcommand};

use commands::{
    attach, container_prune, cp, create, events, exec, images, import, info, inspect, kill, load,
    logs, network, pause, port, prune, ps, pull, push, rename, restart, rm, rmi, run, save, start,
    stats, stop, tag, top, unpause, version, vm, volume, wait, Ctx,
};
use connect::Host;
use usage::{ClapOutcome, StatusError};

#[derive(Parser, Debug)]
#[command(
    name = "servin",
    about = "A Docker-compatible container engine",
    disable_version_flag = true,
    disable_help_subcommand = true,
    arg_required_else_help = true,
    override_usage = "servin [OPTIONS] COMMAND"
)]
struct Cli {
    /// Daemon socket to connect to (unix:///PATH)
    #[arg(short = 'H', long = "host", value_name = "URL")]
    host: Option<String>,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach local standard input, output, and error streams to a running container
    #[command(override_usage = usage::ATTACH.full)]
    Attach(attach::Args),
    /// Manage containers
    #[command(
        subcommand_required = true,
        arg_required_else_help = true,
        override_usage = "servin container COMMAND"
    )]
    Container {
        #[command(subcommand)]
        command: ContainerCommand,
    },
    /// Copy files/folders between a container and the local filesystem
    #[command(override_usage = usage::CP.full)]
    Cp(cp::Args),
    /// Create a new container
    #[command(override_usage = usage::CREATE.full, disable_help_flag = true)]
    Create(Box<create::Args>),
    /// Get real time events from the server
    #[command(override_usage = usage::EVENTS.full)]
    Events(events::Args),
    /// Execute a command in a running container
    #[command(override_usage = usage::EXEC.full)]
    Exec(exec::Args),
    /// Manage images
    #[command(
        subcommand_required = true,
        arg_required_else_help = true,
        override_usage = "servin image COMMAND"
    )]
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// List images
    #[command(override_usage = usage::IMAGES.full)]
    Images(images::Args),
    /// Import the contents from a tarball to create a filesystem image
    #[command(override_usage = usage::IMPORT.full)]
    Import(import::Args),
    /// Display system-wide information
    #[command(override_usage = usage::INFO.full)]
    Info(info::Args),
    /// Return low-level information on objects
    #[command(override_usage = usage::INSPECT.full)]
    Inspect(inspect::Args),
    /// Kill one or more running containers
    #[command(override_usage = usage::KILL.full)]
    Kill(kill::Args),
    /// Load an image from a tar archive or STDIN
    #[command(override_usage = usage::LOAD.full)]
    Load(load::Args),
    /// Fetch the logs of a container
    #[command(override_usage = usage::LOGS.full)]
    Logs(logs::Args),
    /// Manage networks
    #[command(
        subcommand_required = true,
        arg_required_else_help = true,
        override_usage = "servin network COMMAND"
    )]
    Network(network::Args),
    /// Pause all processes within one or more containers
    #[command(override_usage = usage::PAUSE.full)]
    Pause(pause::Args),
    /// List port mappings or a specific mapping for the container
    #[command(override_usage = usage::PORT.full)]
    Port(port::Args),
    /// List containers
    #[command(override_usage = usage::PS.full)]
    Ps(ps::Args),
    /// Download an image from a registry
    #[command(override_usage = usage::PULL.full)]
    Pull(pull::Args),
    /// Upload an image to a registry
    #[command(override_usage = usage::PUSH.full)]
    Push(push::Args),
    /// Rename a container
    #[command(override_usage = usage::RENAME.full)]
    Rename(rename::Args),
    /// Restart one or more containers
    #[command(override_usage = usage::RESTART.full)]
    Restart(restart::Args),
    /// Remove one or more containers
    #[command(override_usage = usage::RM.full)]
    Rm(rm::Args),
    /// Remove one or more images
    #[command(override_usage = usage::RMI.full)]
    Rmi(rmi::Args),
    /// Create and run a new container from an image
    #[command(override_usage = usage::RUN.full, disable_help_flag = true)]
    Run(Box<run::Args>),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    #[command(override_usage = usage::SAVE.full)]
    Save(save::Args),
    /// Start one or more stopped containers
    #[command(override_usage = usage::START.full)]
    Start(start::Args),
    /// Display a live stream of container(s) resource usage statistics
    #[command(override_usage = usage::STATS.full)]
    Stats(stats::Args),
    /// Stop one or more running containers
    #[command(override_usage = usage::STOP.full)]
    Stop(stop::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    #[command(override_usage = usage::TAG.full)]
    Tag(tag::Args),
    /// Display the running processes of a container
    #[command(override_usage = usage::TOP.full)]
    Top(top::Args),
    /// Unpause all processes within one or more containers
    #[command(override_usage = usage::UNPAUSE.full)]
    Unpause(unpause::Args),
    /// Show the Servin version information
    #[command(override_usage = usage::VERSION.full)]
    Version(version::Args),
    /// Manage the VM that runs containers in VM mode
    #[command(
        subcommand_required = true,
        arg_required_else_help = true,
        override_usage = "servin vm COMMAND"
    )]
    Vm(vm::Args),
    /// Manage volumes
    #[command(
        subcommand_required = true,
        arg_required_else_help = true,
        override_usage = "servin volume COMMAND"
    )]
    Volume {
        #[command(subcommand)]
        command: VolumeCommand,
    },
    /// Block until one or more containers stop, then print their exit codes
    #[command(override_usage = usage::WAIT.full)]
    Wait(wait::Args),
}

#[derive(Subcommand, Debug)]
enum VolumeCommand {
    /// Create a volume
    #[command(override_usage = usage::VOLUME_CREATE.full)]
    Create(volume::create::Args),
    /// Display detailed information on one or more volumes
    #[command(override_usage = usage::VOLUME_INSPECT.full)]
    Inspect(volume::inspect::Args),
    /// List volumes
    #[command(visible_alias = "list")]
    #[command(override_usage = usage::VOLUME_LS.full)]
    Ls(volume::ls::Args),
    /// Remove unused local volumes
    #[command(override_usage = usage::VOLUME_PRUNE.full)]
    Prune(volume::prune::Args),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    #[command(override_usage = usage::VOLUME_RM.full)]
    Rm(volume::rm::Args),
}

#[derive(Subcommand, Debug)]
enum ContainerCommand {
    /// Attach local standard input, output, and error streams to a running container
    #[command(override_usage = usage::CONTAINER_ATTACH.full)]
    Attach(attach::Args),
    /// Copy files/folders between a container and the local filesystem
    #[command(override_usage = usage::CONTAINER_CP.full)]
    Cp(cp::Args),
    /// Create a new container
    #[command(override_usage = usage::CONTAINER_CREATE.full, disable_help_flag = true)]
    Create(Box<create::Args>),
    /// Execute a command in a running container
    #[command(override_usage = usage::CONTAINER_EXEC.full)]
    Exec(exec::Args),
    /// Display detailed information on one or more containers
    #[command(override_usage = usage::CONTAINER_INSPECT.full)]
    Inspect(inspect::ContainerArgs),
    /// Kill one or more running containers
    #[command(override_usage = usage::CONTAINER_KILL.full)]
    Kill(kill::Args),
    /// Fetch the logs of a container
    #[command(override_usage = usage::CONTAINER_LOGS.full)]
    Logs(logs::Args),
    /// List containers
    #[command(visible_alias = "ps", visible_alias = "list")]
    #[command(override_usage = usage::CONTAINER_LS.full)]
    Ls(ps::Args),
    /// Pause all processes within one or more containers
    #[command(override_usage = usage::CONTAINER_PAUSE.full)]
    Pause(pause::Args),
    /// List port mappings or a specific mapping for the container
    #[command(override_usage = usage::CONTAINER_PORT.full)]
    Port(port::Args),
    /// Remove all stopped containers
    #[command(override_usage = usage::CONTAINER_PRUNE.full)]
    Prune(container_prune::Args),
    /// Rename a container
    #[command(override_usage = usage::CONTAINER_RENAME.full)]
    Rename(rename::Args),
    /// Restart one or more containers
    #[command(override_usage = usage::CONTAINER_RESTART.full)]
    Restart(restart::Args),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    #[command(override_usage = usage::CONTAINER_RM.full)]
    Rm(rm::Args),
    /// Create and run a new container from an image
    #[command(override_usage = usage::CONTAINER_RUN.full, disable_help_flag = true)]
    Run(Box<run::Args>),
    /// Start one or more stopped containers
    #[command(override_usage = usage::CONTAINER_START.full)]
    Start(start::Args),
    /// Display a live stream of container(s) resource usage statistics
    #[command(override_usage = usage::CONTAINER_STATS.full)]
    Stats(stats::Args),
    /// Stop one or more running containers
    #[command(override_usage = usage::CONTAINER_STOP.full)]
    Stop(stop::Args),
    /// Display the running processes of a container
    #[command(override_usage = usage::CONTAINER_TOP.full)]
    Top(top::Args),
    /// Unpause all processes within one or more containers
    #[command(override_usage = usage::CONTAINER_UNPAUSE.full)]
    Unpause(unpause::Args),
    /// Block until one or more containers stop, then print their exit codes
    #[command(override_usage = usage::CONTAINER_WAIT.full)]
    Wait(wait::Args),
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Import the contents from a tarball to create a filesystem image
    #[command(override_usage = usage::IMAGE_IMPORT.full)]
    Import(import::Args),
    /// Display detailed information on one or more images
    #[command(override_usage = usage::IMAGE_INSPECT.full)]
    Inspect(inspect::ImageArgs),
    /// Load an image from a tar archive or STDIN
    #[command(override_usage = usage::IMAGE_LOAD.full)]
    Load(load::Args),
    /// List images
    #[command(visible_alias = "list")]
    #[command(override_usage = usage::IMAGE_LS.full)]
    Ls(images::Args),
    /// Remove unused images
    #[command(override_usage = usage::IMAGE_PRUNE.full)]
    Prune(prune::Args),
    /// Download an image from a registry
    #[command(override_usage = usage::IMAGE_PULL.full)]
    Pull(pull::Args),
    /// Upload an image to a registry
    #[command(override_usage = usage::IMAGE_PUSH.full)]
    Push(push::Args),
    /// Remove one or more images
    #[command(visible_alias = "rmi", visible_alias = "remove")]
    #[command(override_usage = usage::IMAGE_RM.full)]
    Rm(rmi::Args),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    #[command(override_usage = usage::IMAGE_SAVE.full)]
    Save(save::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    #[command(override_usage = usage::IMAGE_TAG.full)]
    Tag(tag::Args),
}

fn main() {
    // Die of SIGPIPE when a reader goes away (`servin save x | head`), as Go
    // programs do, rather than failing writes with EPIPE.
    // SAFETY: runs first, before any thread exists; setting a signal's
    // disposition to SIG_DFL involves no handler code and no shared memory.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let argv: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(err) => match usage::from_clap(&err, &argv) {
            ClapOutcome::Print(text) => {
                print!("{text}");
                let _ = std::io::stdout().flush();
                std::process::exit(0);
            }
            ClapOutcome::Fail(code, message) => {
                eprintln!("{message}");
                std::process::exit(code);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Failed to start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(run(cli));
    let _ = std::io::stdout().flush();
    if let Err(err) = result {
        std::process::exit(report(&err));
    }
}

/// Prints an error as docker does and returns the exit status.
fn report(err: &anyhow::Error) -> i32 {
    if err.is::<usage::Cancelled>() {
        return 0;
    }
    if let Some(status) = err.downcast_ref::<StatusError>() {
        if !status.message.is_empty() {
            eprintln!("{}", status.message);
        }
        return status.code;
    }
    eprintln!("{err:#}");
    1
}

async fn run_container(ctx: &Ctx, command: ContainerCommand) -> Result<()> {
    use usage as u;
    use ContainerCommand as C;
    match command {
        C::Attach(a) => attach::run(ctx, &u::CONTAINER_ATTACH, a).await,
        C::Cp(a) => cp::run(ctx, &u::CONTAINER_CP, a).await,
        C::Create(a) => create::run(ctx, &u::CONTAINER_CREATE, *a).await,
        C::Exec(a) => exec::run(ctx, &u::CONTAINER_EXEC, a).await,
        C::Inspect(a) => inspect::run_container(ctx, &u::CONTAINER_INSPECT, a).await,
        C::Kill(a) => kill::run(ctx, &u::CONTAINER_KILL, a).await,
        C::Logs(a) => logs::run(ctx, &u::CONTAINER_LOGS, a).await,
        C::Ls(a) => ps::run(ctx, &u::CONTAINER_LS, a).await,
        C::Pause(a) => pause::run(ctx, &u::CONTAINER_PAUSE, a).await,
        C::Port(a) => port::run(ctx, &u::CONTAINER_PORT, a).await,
        C::Prune(a) => container_prune::run(ctx, &u::CONTAINER_PRUNE, a).await,
        C::Rename(a) => rename::run(ctx, &u::CONTAINER_RENAME, a).await,
        C::Restart(a) => restart::run(ctx, &u::CONTAINER_RESTART, a).await,
        C::Rm(a) => rm::run(ctx, &u::CONTAINER_RM, a).await,
        C::Run(a) => run::run(ctx, &u::CONTAINER_RUN, *a).await,
        C::Start(a) => start::run(ctx, &u::CONTAINER_START, a).await,
        C::Stats(a) => stats::run(ctx, &u::CONTAINER_STATS, a).await,
        C::Stop(a) => stop::run(ctx, &u::CONTAINER_STOP, a).await,
        C::Top(a) => top::run(ctx, &u::CONTAINER_TOP, a).await,
        C::Unpause(a) => unpause::run(ctx, &u::CONTAINER_UNPAUSE, a).await,
        C::Wait(a) => wait::run(ctx, &u::CONTAINER_WAIT, a).await,
    }
}

async fn run(cli: Cli) -> Result<()> {
    if cli.version {
        println!("Servin version {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let host = Host::resolve(cli.host.as_deref())?;
    let ctx = Ctx::new(host);
    let Some(command) = cli.command else {
        return Ok(());
    };
    use usage as u;
    match command {
        Command::Attach(a) => attach::run(&ctx, &u::ATTACH, a).await,
        Command::Cp(a) => cp::run(&ctx, &u::CP, a).await,
        Command::Create(a) => create::run(&ctx, &u::CREATE, *a).await,
        Command::Events(a) => events::run(&ctx, &u::EVENTS, a).await,
        Command::Exec(a) => exec::run(&ctx, &u::EXEC, a).await,
        Command::Kill(a) => kill::run(&ctx, &u::KILL, a).await,
        Command::Logs(a) => logs::run(&ctx, &u::LOGS, a).await,
        Command::Pause(a) => pause::run(&ctx, &u::PAUSE, a).await,
        Command::Port(a) => port::run(&ctx, &u::PORT, a).await,
        Command::Ps(a) => ps::run(&ctx, &u::PS, a).await,
        Command::Rename(a) => rename::run(&ctx, &u::RENAME, a).await,
        Command::Restart(a) => restart::run(&ctx, &u::RESTART, a).await,
        Command::Rm(a) => rm::run(&ctx, &u::RM, a).await,
        Command::Run(a) => run::run(&ctx, &u::RUN, *a).await,
        Command::Start(a) => start::run(&ctx, &u::START, a).await,
        Command::Stats(a) => stats::run(&ctx, &u::STATS, a).await,
        Command::Stop(a) => stop::run(&ctx, &u::STOP, a).await,
        Command::Top(a) => top::run(&ctx, &u::TOP, a).await,
        Command::Unpause(a) => unpause::run(&ctx, &u::UNPAUSE, a).await,
        Command::Wait(a) => wait::run(&ctx, &u::WAIT, a).await,
        Command::Volume { command } => match command {
            VolumeCommand::Create(a) => volume::create::run(&ctx, &u::VOLUME_CREATE, a).await,
            VolumeCommand::Inspect(a) => volume::inspect::run(&ctx, &u::VOLUME_INSPECT, a).await,
            VolumeCommand::Ls(a) => volume::ls::run(&ctx, &u::VOLUME_LS, a).await,
            VolumeCommand::Prune(a) => volume::prune::run(&ctx, &u::VOLUME_PRUNE, a).await,
            VolumeCommand::Rm(a) => volume::rm::run(&ctx, &u::VOLUME_RM, a).await,
        },
        Command::Container { command } => run_container(&ctx, command).await,
        Command::Images(a) => images::run(&ctx, &u::IMAGES, a).await,
        Command::Import(a) => import::run(&ctx, &u::IMPORT, a).await,
        Command::Info(a) => info::run(&ctx, &u::INFO, a).await,
        Command::Inspect(a) => inspect::run(&ctx, &u::INSPECT, a).await,
        Command::Load(a) => load::run(&ctx, &u::LOAD, a).await,
        Command::Pull(a) => pull::run(&ctx, &u::PULL, a).await,
        Command::Push(a) => push::run(&ctx, &u::PUSH, a).await,
        Command::Rmi(a) => rmi::run(&ctx, &u::RMI, a).await,
        Command::Save(a) => save::run(&ctx, &u::SAVE, a).await,
        Command::Tag(a) => tag::run(&ctx, &u::TAG, a).await,
        Command::Version(a) => version::run(&ctx, &u::VERSION, a).await,
        Command::Vm(a) => vm::run(&ctx, a).await,
        Command::Network(a) => network::run(&ctx, a).await,
        Command::Image { command } => match command {
            ImageCommand::Import(a) => import::run(&ctx, &u::IMAGE_IMPORT, a).await,
            ImageCommand::Inspect(a) => inspect::run_image(&ctx, &u::IMAGE_INSPECT, a).await,
            ImageCommand::Load(a) => load::run(&ctx, &u::IMAGE_LOAD, a).await,
            ImageCommand::Ls(a) => images::run(&ctx, &u::IMAGE_LS, a).await,
            ImageCommand::Prune(a) => prune::run(&ctx, &u::IMAGE_PRUNE, a).await,
            ImageCommand::Pull(a) => pull::run(&ctx, &u::IMAGE_PULL, a).await,
            ImageCommand::Push(a) => push::run(&ctx, &u::IMAGE_PUSH, a).await,
            ImageCommand::Rm(a) => rmi::run(&ctx, &u::IMAGE_RM, a).await,
            ImageCommand::Save(a) => save::run(&ctx, &u::IMAGE_SAVE, a).await,
            ImageCommand::Tag(a) => tag::run(&ctx, &u::IMAGE_TAG, a).await,
        },
    }
}
