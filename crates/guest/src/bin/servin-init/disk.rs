//! The data disk (step 4 of the contract): format a blank disk, refuse a
//! foreign one, mount it.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use nix::mount::{mount, MsFlags};
use servin_guest::contract::{foreign_disk_message, DATA_DEVICE, DATA_LABEL, DATA_MOUNT};

use crate::say;

/// What the start of a disk holds.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Blank,
    Ext { label: String },
    Other,
}

/// The ext2/3/4 superblock sits at byte 1024: magic 0xEF53 at offset 56,
/// the 16-byte volume label at offset 120.
fn probe(dev: &Path) -> std::io::Result<Found> {
    let mut f = std::fs::File::open(dev)?;
    let mut head = vec![0u8; 64 * 1024];
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(&mut head)?;
    let sb = &head[1024..2048];
    if sb[56] == 0x53 && sb[57] == 0xEF {
        let label = &sb[120..136];
        let end = label.iter().position(|b| *b == 0).unwrap_or(label.len());
        return Ok(Found::Ext {
            label: String::from_utf8_lossy(&label[..end]).into_owned(),
        });
    }
    if head.iter().all(|b| *b == 0) {
        Ok(Found::Blank)
    } else {
        Ok(Found::Other)
    }
}

pub fn prepare() -> Result<(), String> {
    let dev = Path::new(DATA_DEVICE);
    if !crate::setup::wait_for(dev, Duration::from_secs(30)) {
        return Err(format!("no data disk: {DATA_DEVICE} did not appear"));
    }
    let found = probe(dev).map_err(|e| format!("Cannot read {DATA_DEVICE}: {e}"))?;
    match found {
        Found::Ext { label } if label == DATA_LABEL => {}
        Found::Ext { label } => {
            let label = if label.is_empty() {
                "an ext filesystem without a label".to_string()
            } else {
                label
            };
            say_raw(&foreign_disk_message(&label));
            crate::setup::power_off();
        }
        Found::Other => {
            say_raw(&foreign_disk_message("data that is not ext4"));
            crate::setup::power_off();
        }
        Found::Blank => {
            say!("formatting the data disk");
            // PID 1 reaps nothing yet, so waiting here is safe.
            let out = std::process::Command::new("/sbin/mkfs.ext4")
                .args(["-q", "-F", "-L", DATA_LABEL, "-E", "nodiscard", DATA_DEVICE])
                .output()
                .map_err(|e| format!("Cannot run mkfs.ext4: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "mkfs.ext4 {DATA_DEVICE} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    std::fs::create_dir_all(DATA_MOUNT).map_err(|e| format!("Cannot create {DATA_MOUNT}: {e}"))?;
    mount(
        Some(DATA_DEVICE),
        DATA_MOUNT,
        Some("ext4"),
        MsFlags::MS_NOATIME,
        Some("discard"),
    )
    .map_err(|e| format!("Cannot mount {DATA_DEVICE} on {DATA_MOUNT}: {e}"))?;
    grow();
    Ok(())
}

/// Grows the mounted filesystem to the disk when the host grew the disk
/// (`servin vm config disk=…`): ext4 grows online. A failure is said and
/// the smaller filesystem kept.
fn grow() {
    let device = std::fs::read_to_string("/sys/block/vda/size")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|sectors| sectors * 512);
    let (fs, _) = usage();
    let Some(device) = device else { return };
    // Metadata keeps the filesystem a little under the disk's size.
    if fs == 0 || device <= fs + device / 20 {
        return;
    }
    say!("growing the data disk's filesystem to {} MiB", device >> 20);
    match std::process::Command::new("/usr/sbin/resize2fs")
        .arg(DATA_DEVICE)
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => say!(
            "warning: resize2fs {DATA_DEVICE} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => say!("warning: cannot run resize2fs: {e}"),
    }
}

/// A line that already carries the console prefix.
fn say_raw(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Size and use of the data disk, in bytes.
pub fn usage() -> (u64, u64) {
    match nix::sys::statvfs::statvfs(DATA_MOUNT) {
        Ok(s) => {
            let frag = s.fragment_size();
            let size = s.blocks() * frag;
            let used = (s.blocks() - s.blocks_free()) * frag;
            (size, used)
        }
        Err(_) => (0, 0),
    }
}
