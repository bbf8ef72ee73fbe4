//! The VMM behind a trait: what every platform's provider does (QEMU on
//! Linux today; Virtualization.framework and Hyper-V later).

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use servin_guest::contract::BootArgs;

use crate::VmError;

/// How guest code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    Kvm,
    /// QEMU's emulator: slow, but boots anywhere.
    Tcg,
}

impl std::fmt::Display for Accelerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
        })
    }
}

/// Everything a provider needs to boot the guest.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The VM's state directory (sockets, pid files, console log).
    pub paths: crate::VmPaths,
    pub cpus: u32,
    pub memory: u64,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// The data disk (qcow2); none for a bare boot.
    pub disk: Option<PathBuf>,
    /// Host folders shared with the guest at the same path (virtiofs tag
    /// `servin<N>` for the Nth).
    pub shares: Vec<PathBuf>,
    /// Servin's kernel command line keys (time, shares, ports); the
    /// provider adds the base and accelerator flags.
    pub boot: BootArgs,
    /// A vsock device (and the host-side socket to reach it).
    pub vsock: bool,
    /// User-mode networking (guest 10.0.2.15, gateway 10.0.2.2).
    pub network: bool,
}

/// A VMM that can boot a guest on this host.
pub trait VmProvider: Send + Sync {
    /// `qemu`, `vz`, …
    fn name(&self) -> &'static str;
    /// Names the first missing piece (binary, device, permission) and how
    /// to get it, without starting anything.
    fn check(&self, spec: &LaunchSpec) -> Result<(), VmError>;
    /// The accelerator a start would use, and why when it is not the fast one.
    fn accelerator(&self) -> (Accelerator, Option<String>);
    /// Boots the guest (create its devices, share its folders, start its
    /// helpers); returns once the VMM runs, not when the guest is ready.
    fn start(&self, spec: &LaunchSpec) -> Result<Box<dyn VmInstance>, VmError>;
}

/// A running VM and the helper processes it owns; dropping it ends them.
pub trait VmInstance: Send + Sync {
    fn accelerator(&self) -> Accelerator;
    /// The VMM's process, while it runs.
    fn pid(&self) -> Option<u32>;
    /// Whether the VMM process is still alive.
    fn is_alive(&self) -> bool;
    /// A new stream to `port` in the guest.
    fn connect(&self, port: u32, timeout: Duration) -> Result<UnixStream, VmError>;
    /// What the VMM says of the guest (`running`, `guest-panicked`, …).
    fn vmm_status(&self) -> Option<String>;
    /// The host memory the VMM process uses (resident), in bytes.
    fn host_memory(&self) -> Option<u64>;
    /// Waits up to `grace` for the guest to power off by itself (after a
    /// POWEROFF on its control port), then ends the VMM and every helper.
    /// A zero grace kills the VMM at once (a dead or hung guest).
    fn stop(&mut self, grace: Duration);
}

/// The path of `name` on PATH, or a [`VmError::Missing`] with `fix`.
pub fn find_tool(name: &str, fix: &str) -> Result<PathBuf, VmError> {
    find_on_path(name).ok_or_else(|| VmError::Missing {
        what: name.to_string(),
        fix: fix.to_string(),
    })
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // Where cargo installs tools for root (vhost-device-vsock).
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
