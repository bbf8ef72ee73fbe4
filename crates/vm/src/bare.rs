//! A trivial guest for testing and timing the launcher without the real
//! guest image: an initramfs whose `/init` (busybox) prints a marker on the
//! console and powers off.

use std::io::Write as _;
use std::path::Path;

use crate::VmError;

/// Writes an uncompressed newc initramfs to `out`: `/bin/busybox` (a static
/// build), `/dev/console`, and an `/init` that prints `marker` and powers
/// off.
pub fn write_initramfs(busybox: &Path, marker: &str, out: &Path) -> Result<(), VmError> {
    let io = |e| VmError::io(format!("Cannot write {}", out.display()), e);
    let bb = std::fs::read(busybox)
        .map_err(|e| VmError::io(format!("Cannot read {}", busybox.display()), e))?;
    let init = format!("#!/bin/busybox sh\n/bin/busybox echo {marker}\n/bin/busybox poweroff -f\n");
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(io)?);
    let mut ino = 1;
    let mut entry = |w: &mut std::io::BufWriter<std::fs::File>,
                     name: &str,
                     mode: u32,
                     data: &[u8],
                     rdev: Option<(u32, u32)>|
     -> std::io::Result<()> {
        let mut b = cpio::newc::Builder::new(name).ino(ino).mode(mode).nlink(1);
        if let Some((major, minor)) = rdev {
            b = b.rdev_major(major).rdev_minor(minor);
        }
        ino += 1;
        let mut fw = b.write(&mut *w, data.len() as u32);
        fw.write_all(data)?;
        fw.finish()?;
        Ok(())
    };
    (|| -> std::io::Result<()> {
        entry(&mut w, "bin", 0o040755, b"", None)?;
        entry(&mut w, "dev", 0o040755, b"", None)?;
        entry(&mut w, "dev/console", 0o020600, b"", Some((5, 1)))?;
        entry(&mut w, "bin/busybox", 0o100755, &bb, None)?;
        entry(&mut w, "init", 0o100755, init.as_bytes(), None)?;
        cpio::newc::trailer(&mut w)?;
        w.flush()
    })()
    .map_err(io)
}
