//! Docker's volume copy-up: a volume that is empty when a container starts
//! gets what the container's filesystem has at the mount's destination, so
//! `-v data:/etc` shows the image's `/etc` rather than an empty folder.
//!
//! The engine reads the container's layers directly (its upper dir over the
//! image's snapshots, in overlayfs's format: a 0:0 character device is a
//! whiteout, `trusted.overlay.opaque=y` hides what lower layers have in a
//! folder) and mounts nothing.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Fills `volume` from `dest` (an absolute path in the container) as the
/// layers (top first) show it, when `volume` is empty and `dest` is a
/// folder there. Files, folders and symlinks keep their mode and owner;
/// other special files are skipped. Returns whether anything was copied.
pub(crate) fn populate(layers: &[PathBuf], dest: &str, volume: &Path) -> io::Result<bool> {
    if fs::read_dir(volume)?.next().is_some() {
        return Ok(false);
    }
    let sources = sources_of(layers, Path::new(dest));
    let Some(top) = sources.first() else {
        return Ok(false);
    };
    copy_merged(&sources, volume)?;
    let m = fs::symlink_metadata(top)?;
    std::os::unix::fs::lchown(volume, Some(m.uid()), Some(m.gid()))?;
    fs::set_permissions(volume, fs::Permissions::from_mode(m.mode() & 0o7777))?;
    set_times(volume, &m)?;
    Ok(true)
}

/// The folders, top layer first, whose union is `dest` in the merged view.
/// A whiteout, a file or a symlink on the way down hides the layers below
/// (a symlink is not followed), and an opaque folder hides them under it.
fn sources_of(layers: &[PathBuf], dest: &Path) -> Vec<PathBuf> {
    let parts: Vec<_> = dest
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    'layers: for layer in layers {
        let mut p = layer.clone();
        let mut last_layer = false;
        for part in &parts {
            p.push(part);
            match fs::symlink_metadata(&p) {
                Err(_) => continue 'layers,
                Ok(m) if !m.is_dir() => break 'layers,
                Ok(_) => last_layer |= is_opaque(&p),
            }
        }
        out.push(p);
        if last_layer {
            break;
        }
    }
    out
}

fn is_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut value = [0u8; 2];
    // SAFETY: both strings are NUL-terminated and outlive the call, and
    // the kernel writes at most `value.len()` bytes into `value`.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

/// Copies the union of `sources` (top first) into the folder `to`.
fn copy_merged(sources: &[PathBuf], to: &Path) -> io::Result<()> {
    // Each name as the top-most layer that has it shows it.
    let mut names: BTreeMap<OsString, usize> = BTreeMap::new();
    for (i, dir) in sources.iter().enumerate() {
        for entry in fs::read_dir(dir)? {
            names.entry(entry?.file_name()).or_insert(i);
        }
    }
    for (name, i) in names {
        let from = sources[i].join(&name);
        let target = to.join(&name);
        let m = fs::symlink_metadata(&from)?;
        let ft = m.file_type();
        if ft.is_dir() {
            let mut below = vec![from.clone()];
            if !is_opaque(&from) {
                for lower in &sources[i + 1..] {
                    let p = lower.join(&name);
                    match fs::symlink_metadata(&p) {
                        Err(_) => continue,
                        Ok(lm) if !lm.is_dir() => break,
                        Ok(_) => {
                            let opaque = is_opaque(&p);
                            below.push(p);
                            if opaque {
                                break;
                            }
                        }
                    }
                }
            }
            fs::create_dir(&target)?;
            copy_merged(&below, &target)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &target)?;
        } else if ft.is_file() {
            fs::copy(&from, &target)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        } else {
            // A whiteout (a 0:0 character device) hides the name; devices,
            // FIFOs and sockets are not copied.
            continue;
        }
        std::os::unix::fs::lchown(&target, Some(m.uid()), Some(m.gid()))?;
        if !ft.is_symlink() && m.mode() & 0o6000 != 0 {
            // chown clears set-id bits: put them back.
            fs::set_permissions(&target, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
        set_times(&target, &m)?;
    }
    Ok(())
}

/// Gives `path` (not following a symlink) the access and modification
/// times of `like`.
fn set_times(path: &Path, like: &fs::Metadata) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let times = [
        libc::timespec {
            tv_sec: like.atime(),
            tv_nsec: like.atime_nsec(),
        },
        libc::timespec {
            tv_sec: like.mtime(),
            tv_nsec: like.mtime_nsec(),
        },
    ];
    // SAFETY: a NUL-terminated path and an array of two timespecs, both
    // alive for the call; the kernel only reads them.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(root: &Path, name: &str) -> PathBuf {
        let p = root.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    fn whiteout(p: &Path) {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; mknod touches no memory of ours.
        let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) };
        assert_eq!(r, 0, "mknod needs root");
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                let m = fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    stack.push(p);
                    out.push(format!("{rel}/"));
                } else if m.file_type().is_symlink() {
                    out.push(format!("{rel} -> {}", fs::read_link(&p).unwrap().display()));
                } else {
                    out.push(format!("{rel}={}", fs::read_to_string(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_merged_view_of_the_destination_fills_an_empty_volume() {
        if !nix_is_root() {
            eprintln!("skipped: whiteouts need root (mknod)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (low, mid, up) = (
            layer(t.path(), "low"),
            layer(t.path(), "mid"),
            layer(t.path(), "up"),
        );
        fs::create_dir_all(low.join("etc/app/conf.d")).unwrap();
        fs::write(low.join("etc/app/a"), "low-a").unwrap();
        fs::write(low.join("etc/app/gone"), "x").unwrap();
        fs::write(low.join("etc/app/conf.d/old"), "old").unwrap();
        fs::create_dir_all(mid.join("etc/app/conf.d")).unwrap();
        fs::write(mid.join("etc/app/a"), "mid-a").unwrap();
        fs::write(mid.join("etc/app/conf.d/new"), "new").unwrap();
        std::os::unix::fs::symlink("a", mid.join("etc/app/link")).unwrap();
        let opaque = std::ffi::CString::new(mid.join("etc/app/conf.d").to_str().unwrap()).unwrap();
        // SAFETY: NUL-terminated strings and a 1-byte value that outlive the call.
        let r = unsafe {
            libc::lsetxattr(
                opaque.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(r, 0);
        fs::create_dir_all(up.join("etc/app")).unwrap();
        whiteout(&up.join("etc/app/gone"));
        fs::write(up.join("etc/app/b"), "up-b").unwrap();
        fs::set_permissions(up.join("etc/app"), fs::Permissions::from_mode(0o750)).unwrap();

        let vol = layer(t.path(), "vol");
        let layers = [up.clone(), mid.clone(), low.clone()];
        assert!(populate(&layers, "/etc/app", &vol).unwrap());
        assert_eq!(
            listing(&vol),
            [
                "a=mid-a",
                "b=up-b",
                "conf.d/",
                "conf.d/new=new",
                "link -> a",
            ]
        );
        assert_eq!(fs::metadata(&vol).unwrap().mode() & 0o7777, 0o750);

        // Not empty any more: left alone.
        fs::remove_file(vol.join("b")).unwrap();
        assert!(!populate(&layers, "/etc/app", &vol).unwrap());
        assert!(!vol.join("b").exists());

        // Nothing there, or a whiteout above it: nothing to copy.
        let empty = layer(t.path(), "empty");
        assert!(!populate(&layers, "/nonexistent", &empty).unwrap());
        whiteout(&up.join("etc/gone-dir"));
        fs::create_dir_all(low.join("etc/gone-dir")).unwrap();
        fs::write(low.join("etc/gone-dir/f"), "f").unwrap();
        assert!(!populate(&layers, "/etc/gone-dir", &empty).unwrap());
        assert_eq!(listing(&empty), Vec::<String>::new());
    }

    fn nix_is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }
}
