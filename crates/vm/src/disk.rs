//! The data disk: a sparse qcow2 file created by `qemu-img`, recognised as
//! ours by its format and the marker file we write next to it.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::{VmError, VmPaths};

/// What `qemu-img info --output=json` tells us (the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub struct DiskInfo {
    pub format: String,
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    /// Bytes the file takes on the host.
    #[serde(rename = "actual-size", default)]
    pub actual_size: u64,
}

/// Our marker: `disk.servin.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    created_by: String,
    format: String,
}

const CREATED_BY: &str = "servin";

fn qemu_img() -> Result<Command, VmError> {
    crate::provider::find_tool(
        "qemu-img",
        "install Debian's qemu-utils package (apt-get install qemu-utils)",
    )
    .map(Command::new)
}

/// `qemu-img info` of a disk (`-U`: readable while QEMU has it open).
pub fn info(path: &Path) -> Result<DiskInfo, VmError> {
    let out = qemu_img()?
        .args(["info", "-U", "--output=json"])
        .arg(path)
        .output()
        .map_err(|e| VmError::io("Cannot run qemu-img", e))?;
    if !out.status.success() {
        return Err(VmError::ForeignDisk {
            path: path.to_path_buf(),
            reason: format!(
                "qemu-img cannot read it ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| VmError::ForeignDisk {
        path: path.to_path_buf(),
        reason: format!("unexpected qemu-img output: {e}"),
    })
}

/// Makes sure the data disk exists, is ours and is at least `size` bytes
/// (it grows when the config grew; it never shrinks).
pub fn prepare(paths: &VmPaths, size: u64) -> Result<DiskInfo, VmError> {
    let disk = paths.disk();
    let marker_path = paths.disk_marker();
    if !disk.exists() {
        std::fs::create_dir_all(&paths.dir)
            .map_err(|e| VmError::io(format!("Cannot create {}", paths.dir.display()), e))?;
        let out = qemu_img()?
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&disk)
            .arg(size.to_string())
            .output()
            .map_err(|e| VmError::io("Cannot run qemu-img", e))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&disk);
            return Err(VmError::Boot(format!(
                "qemu-img could not create {}: {}",
                disk.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let marker = Marker {
            created_by: CREATED_BY.into(),
            format: "qcow2".into(),
        };
        crate::write_atomic(
            &marker_path,
            &serde_json::to_vec(&marker).expect("serializes"),
        )?;
        return info(&disk);
    }
    let marker: Option<Marker> = std::fs::read(&marker_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if marker.as_ref().map(|m| m.created_by.as_str()) != Some(CREATED_BY) {
        return Err(VmError::ForeignDisk {
            path: disk,
            reason: format!(
                "Servin did not create it (no marker {})",
                marker_path.display()
            ),
        });
    }
    let found = info(&disk)?;
    if found.format != "qcow2" {
        return Err(VmError::ForeignDisk {
            path: disk,
            reason: format!("it is a {} image, not qcow2", found.format),
        });
    }
    if found.virtual_size < size {
        let out = qemu_img()?
            .arg("resize")
            .arg(&disk)
            .arg(size.to_string())
            .output()
            .map_err(|e| VmError::io("Cannot run qemu-img", e))?;
        if !out.status.success() {
            return Err(VmError::Boot(format!(
                "qemu-img could not grow {}: {}",
                disk.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        return info(&disk);
    }
    Ok(found)
}
