//! Servin's VM mode, host side.
//!
//! - the settings, [`VmConfig`], in `DATA_ROOT/vm/config.toml`;
//! - where the VM's state lives under `DATA_ROOT/vm/`, [`VmPaths`];
//! - one trait per platform's VMM, [`VmProvider`] and [`VmInstance`]; the
//!   QEMU provider (Linux) is in `qemu`;
//! - reaching a guest port from the host, in [`vsock`].
//!
//! The guest side and what both agree on are in `servin_guest::contract`
//! (`docs/vm-guest-contract.md`).

pub mod bare;
pub mod config;
pub mod disk;
pub mod image;
pub mod provider;
#[cfg(target_os = "linux")]
pub mod qemu;
pub mod size;
pub mod vsock;

use std::path::{Path, PathBuf};

pub use config::VmConfig;
pub use provider::{Accelerator, LaunchSpec, VmInstance, VmProvider};
pub use size::ByteSize;

/// The provider for this platform.
pub fn default_provider() -> Result<Box<dyn VmProvider>, VmError> {
    #[cfg(target_os = "linux")]
    {
        Ok(Box::new(qemu::QemuProvider))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(VmError::Missing {
            what: "a VM provider for this platform".into(),
            fix: "VM mode runs on Linux (QEMU) for now".into(),
        })
    }
}

/// Everything that can go wrong in VM mode, each with what failed and on
/// what (and, for a missing piece, how to get it).
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("Invalid VM configuration in {path}: {message}", path = path.display())]
    InvalidConfig { path: PathBuf, message: String },
    #[error("Invalid VM setting {0}")]
    InvalidSetting(String),
    #[error("VM mode needs {what}, which was not found: {fix}")]
    Missing { what: String, fix: String },
    #[error("The VM's data disk {path} is not Servin's: {reason}; move it away to let Servin create a new one", path = path.display())]
    ForeignDisk { path: PathBuf, reason: String },
    #[error("The VM did not start: {0}")]
    Boot(String),
    #[error("The VM is not running")]
    NotRunning,
    #[error("Cannot reach guest port {port}: {message}")]
    Connect { port: u32, message: String },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl VmError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> VmError {
        VmError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Where the VM's state lives: `DATA_ROOT/vm/`.
#[derive(Debug, Clone)]
pub struct VmPaths {
    pub dir: PathBuf,
}

impl VmPaths {
    pub fn new(data_root: &Path) -> VmPaths {
        VmPaths {
            dir: data_root.join("vm"),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }
    /// Our marker next to the disk: which disk we created, and how.
    pub fn disk_marker(&self) -> PathBuf {
        self.dir.join("disk.servin.json")
    }
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn qmp_socket(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    /// The host side of vsock: `CONNECT <port>` here reaches the guest.
    pub fn vsock_socket(&self) -> PathBuf {
        self.dir.join("vsock.sock")
    }
    /// The vhost-user socket QEMU connects to for the vsock device.
    pub fn vhost_vsock_socket(&self) -> PathBuf {
        self.dir.join("vhost-vsock.sock")
    }
    pub fn virtiofs_socket(&self, n: usize) -> PathBuf {
        self.dir.join(format!("virtiofs-{n}.sock"))
    }
    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pid"))
    }
    /// Written at each boot: when, which accelerator, which image.
    pub fn boot_record(&self) -> PathBuf {
        self.dir.join("boot.json")
    }
}

/// Temp file, fsync, rename: readers see the old content or the new.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), VmError> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| VmError::io(format!("Cannot create {}", dir.display()), e))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        VmError::io(format!("Cannot write {}", path.display()), e)
    })
}
