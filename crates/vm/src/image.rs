//! Finding the guest image (kernel, initramfs, VERSION) the contract
//! describes.

use std::path::{Path, PathBuf};

use servin_guest::contract::{INITRAMFS_FILE, KERNEL_FILE, VERSION_FILE};

use crate::VmError;

pub const GUEST_DIR_ENV: &str = "SERVIN_GUEST_DIR";
pub const INSTALLED_GUEST_DIR: &str = "/usr/local/lib/servin/guest";

/// A guest image directory whose kernel and initramfs exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestImage {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// The `VERSION` line, or `unknown` when the file is missing.
    pub version: String,
}

impl GuestImage {
    /// Reads the image in `dir`; names the missing file and how to build it.
    pub fn open(dir: &Path) -> Result<GuestImage, VmError> {
        let kernel = dir.join(KERNEL_FILE);
        let initramfs = dir.join(INITRAMFS_FILE);
        for f in [&kernel, &initramfs] {
            if !f.is_file() {
                return Err(VmError::Missing {
                    what: format!("the guest image ({})", f.display()),
                    fix: format!(
                        "build it with scripts/build-guest and install it with scripts/setup, or point {GUEST_DIR_ENV} at a directory holding {KERNEL_FILE} and {INITRAMFS_FILE}"
                    ),
                });
            }
        }
        let version = std::fs::read_to_string(dir.join(VERSION_FILE))
            .ok()
            .and_then(|v| v.lines().next().map(|l| l.trim().to_string()))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into());
        Ok(GuestImage {
            kernel,
            initramfs,
            version,
        })
    }

    /// `$SERVIN_GUEST_DIR`, else the installed image, else `target/guest`
    /// of the source tree the running binary was built in.
    pub fn find() -> Result<GuestImage, VmError> {
        GuestImage::open(&guest_dir())
    }
}

/// The directory [`GuestImage::find`] reads.
pub fn guest_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(GUEST_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let installed = PathBuf::from(INSTALLED_GUEST_DIR);
    if installed.join(KERNEL_FILE).is_file() {
        return installed;
    }
    // target/{debug,release}/servind (or target/debug/deps/x for tests).
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            if dir.file_name().is_some_and(|n| n == "target") {
                return dir.join("guest");
            }
        }
    }
    installed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_image_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = GuestImage::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("vmlinuz") && err.contains("scripts/build-guest"),
            "{err}"
        );
        std::fs::write(dir.path().join("vmlinuz"), "k").unwrap();
        let err = GuestImage::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("initramfs.img"), "{err}");
        std::fs::write(dir.path().join("initramfs.img"), "i").unwrap();
        assert_eq!(GuestImage::open(dir.path()).unwrap().version, "unknown");
        std::fs::write(dir.path().join("VERSION"), "abc123\n").unwrap();
        assert_eq!(GuestImage::open(dir.path()).unwrap().version, "abc123");
    }
}
