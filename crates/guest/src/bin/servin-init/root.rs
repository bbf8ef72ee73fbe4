//! Step 0: leaving the initramfs. The kernel unpacks the image into
//! `rootfs`, the first mount, which can never be unmounted and so cannot
//! be pivoted away from: a container runtime's `pivot_root` fails there
//! with EINVAL. Init therefore moves the system onto a tmpfs of its own
//! first, as `switch_root` does: mount a tmpfs, move every file over
//! (copy, then unlink, so memory use stays flat), make the tmpfs `/` with
//! MS_MOVE and chroot, then exec itself again from the new root.
//!
//! Hand-written (about the size of busybox's `switch_root`) because it runs
//! before anything else exists in the guest; no crate does this for PID 1.

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{mknod, Mode, SFlag};

/// Where the new root is built before it becomes `/`.
const NEW_ROOT: &str = "/.servin-root";
/// The argument init passes itself on the exec from the new root.
pub const SWITCHED_ARG: &str = "--switched-root";

/// Moves the system off the initramfs and execs init again; returns only on
/// error (the caller powers off).
pub fn switch() -> Result<std::convert::Infallible, String> {
    std::fs::create_dir_all(NEW_ROOT).map_err(|e| format!("Cannot create {NEW_ROOT}: {e}"))?;
    mount(
        Some("rootfs"),
        NEW_ROOT,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .map_err(|e| format!("Cannot mount the root tmpfs: {e}"))?;
    let new = Path::new(NEW_ROOT);
    for entry in std::fs::read_dir("/").map_err(|e| format!("Cannot read /: {e}"))? {
        let entry = entry.map_err(|e| format!("Cannot read /: {e}"))?;
        let name = entry.file_name();
        if Path::new("/").join(&name) == new {
            continue;
        }
        move_tree(&entry.path(), &new.join(&name))?;
    }
    std::env::set_current_dir(new).map_err(|e| format!("Cannot enter {NEW_ROOT}: {e}"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| format!("Cannot move the new root onto /: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("Cannot chroot into the new root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("Cannot enter /: {e}"))?;
    let init = CString::new("/init").unwrap_or_default();
    let args = [init.clone(), CString::new(SWITCHED_ARG).unwrap_or_default()];
    let env: [CString; 0] = [];
    match nix::unistd::execve(&init, &args, &env) {
        Ok(never) => match never {},
        Err(e) => Err(format!("Cannot exec /init from the new root: {e}")),
    }
}

/// Copies `src` (file, directory, symlink or device node) to `dest` with
/// its mode and owner, then removes `src`.
fn move_tree(src: &Path, dest: &Path) -> Result<(), String> {
    let err = |what: &str, e: &dyn std::fmt::Display| format!("{what} {}: {e}", src.display());
    let meta = std::fs::symlink_metadata(src).map_err(|e| err("Cannot stat", &e))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        std::fs::create_dir(dest).map_err(|e| err("Cannot create the copy of", &e))?;
        for entry in std::fs::read_dir(src).map_err(|e| err("Cannot read", &e))? {
            let entry = entry.map_err(|e| err("Cannot read", &e))?;
            move_tree(&entry.path(), &dest.join(entry.file_name()))?;
        }
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| err("Cannot set the mode of the copy of", &e))?;
        chown(dest, &meta)?;
        // The directory of a live mount (none at this point) stays.
        let _ = std::fs::remove_dir(src);
        return Ok(());
    }
    if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(|e| err("Cannot read the link", &e))?;
        std::os::unix::fs::symlink(&target, dest).map_err(|e| err("Cannot copy the link", &e))?;
    } else if ft.is_file() {
        std::fs::copy(src, dest).map_err(|e| err("Cannot copy", &e))?;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| err("Cannot set the mode of the copy of", &e))?;
    } else {
        let kind = SFlag::from_bits_truncate(meta.mode() & SFlag::S_IFMT.bits());
        mknod(
            dest,
            kind,
            Mode::from_bits_truncate(meta.mode() & 0o7777),
            meta.rdev(),
        )
        .map_err(|e| err("Cannot copy the node", &e))?;
    }
    chown(dest, &meta)?;
    std::fs::remove_file(src).map_err(|e| err("Cannot remove", &e))?;
    Ok(())
}

fn chown(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    // lchown: a symlink's own owner, never its target's.
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| format!("Cannot set the owner of {}: {e}", path.display()))
}

/// True when init runs from the initramfs (no switch yet).
pub fn on_initramfs() -> bool {
    !std::env::args().any(|a| a == SWITCHED_ARG)
}
