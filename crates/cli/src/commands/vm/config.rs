//! `servin vm config [KEY=VALUE…]`, `servin vm enable|disable`: edit
//! `DATA_ROOT/vm/config.toml`.

use std::path::Path;

use anyhow::Result;
use servin_vm::{VmConfig, VmPaths};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Settings to change: cpus=N, memory=SIZE, disk=SIZE, shares=/a,/b
    #[arg(value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

pub fn run(data_root: &Path, args: Args) -> Result<()> {
    let paths = VmPaths::new(data_root);
    let mut config = VmConfig::load(&paths.config())?;
    if args.settings.is_empty() {
        print!("{}", config.to_toml());
        return Ok(());
    }
    config.edit(&args.settings)?;
    let disk = paths.disk();
    if disk.exists() {
        if let Ok(info) = servin_vm::disk::info(&disk) {
            if config.disk.0 < info.virtual_size {
                anyhow::bail!(
                    "Invalid VM setting disk={}: the data disk is already {} and cannot shrink",
                    config.disk,
                    servin_vm::ByteSize(info.virtual_size)
                );
            }
        }
    }
    config.save(&paths.config())?;
    print!("{}", config.to_toml());
    eprintln!(
        "Saved to {}; applied at the VM's next start (`servin vm restart`).",
        paths.config().display()
    );
    Ok(())
}

pub fn set_enabled(data_root: &Path, enabled: bool) -> Result<()> {
    let paths = VmPaths::new(data_root);
    let mut config = VmConfig::load(&paths.config())?;
    config.enabled = enabled;
    config.save(&paths.config())?;
    if enabled {
        eprintln!("VM mode is on: servind (in its default auto mode) runs containers in a VM from its next start.");
    } else {
        eprintln!("VM mode is off: servind (in its default auto mode) runs containers natively from its next start.");
    }
    Ok(())
}
