//! Filesystem operations relative to open directory descriptors, none of
//! which follows a symlink.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, FcntlArg, OFlag};
use nix::sys::stat::{self, Mode};
use nix::unistd::{self, UnlinkatFlags};

/// A node whose metadata is being set: an open file or directory, or (for
/// symlinks, devices and fifos, which must not be opened) a name in an open
/// directory.
#[derive(Clone, Copy)]
pub(super) enum Node<'a> {
    Fd(RawFd),
    At(RawFd, &'a OsStr),
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Opens the directory `name` in `dir`, refusing a symlink there.
pub(super) fn open_dir_at(dir: RawFd, name: &OsStr) -> nix::Result<OwnedFd> {
    let fd = fcntl::openat(Some(dir), name, DIR_FLAGS, Mode::empty())?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn lstat_at(dir: RawFd, name: &OsStr) -> nix::Result<libc::mode_t> {
    stat::fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW).map(|st| st.st_mode & libc::S_IFMT)
}

/// Lists the names in an open directory, without `.` and `..`.
pub(super) fn list_dir(dir: RawFd) -> nix::Result<Vec<OsString>> {
    // The stream takes over the descriptor it is given: give it a copy.
    let copy = fcntl::fcntl(dir, FcntlArg::F_DUPFD_CLOEXEC(0))?;
    // SAFETY: `copy` is a descriptor we own; on success the stream owns it.
    let stream = unsafe { libc::fdopendir(copy) };
    if stream.is_null() {
        let e = Errno::last();
        let _ = unistd::close(copy);
        return Err(e);
    }
    // SAFETY: `stream` is an open directory stream. The copy shares the
    // original's offset, which need not be at the start.
    unsafe { libc::rewinddir(stream) };
    let mut names = Vec::new();
    let result = loop {
        Errno::clear();
        // SAFETY: `stream` is an open directory stream.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break match Errno::last_raw() {
                0 => Ok(names),
                e => Err(Errno::from_raw(e)),
            };
        }
        // SAFETY: readdir returned a valid entry with a NUL-terminated name,
        // which stays valid until the next call on this stream; it is copied
        // out before that.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    };
    // SAFETY: `stream` is open and not used again; closing it closes `copy`.
    unsafe { libc::closedir(stream) };
    result
}

/// Removes whatever is at `name` in `dir` (a directory with all it holds),
/// never following a symlink.
pub(super) fn remove_at(dir: RawFd, name: &OsStr) -> nix::Result<()> {
    match lstat_at(dir, name) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
        Ok(libc::S_IFDIR) => {
            let sub = open_dir_at(dir, name)?;
            for child in list_dir(sub.as_raw_fd())? {
                remove_at(sub.as_raw_fd(), &child)?;
            }
            unistd::unlinkat(Some(dir), name, UnlinkatFlags::RemoveDir)
        }
        Ok(_) => unistd::unlinkat(Some(dir), name, UnlinkatFlags::NoRemoveDir),
    }
}

pub(super) fn set_xattr(node: Node, name: &[u8], value: &[u8]) -> io::Result<()> {
    let name = CString::new(name)?;
    let res = match node {
        // SAFETY: `name` is NUL-terminated and `value` is valid for `value.len()` bytes during the call.
        Node::Fd(fd) => unsafe {
            libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0)
        },
        Node::At(dir, file) => {
            // The magic link is exactly the directory we hold open, so nothing on
            // the way can have been swapped; `lsetxattr` does not follow `file`.
            let mut path = format!("/proc/self/fd/{dir}/").into_bytes();
            path.extend_from_slice(file.as_bytes());
            let path = CString::new(path)?;
            // SAFETY: both strings are NUL-terminated and `value` is valid for `value.len()` bytes during the call.
            unsafe {
                libc::lsetxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            }
        }
    };
    if res == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use super::*;

    fn open(path: &Path) -> OwnedFd {
        OwnedFd::from(File::open(path).unwrap())
    }

    #[test]
    fn remove_at_never_follows_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
        fs::create_dir_all(root.join("d/sub")).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("canary"), "x").unwrap();
        symlink(&outside, root.join("d/link")).unwrap();
        symlink(&outside, root.join("d/sub/link")).unwrap();
        let fd = open(&root);
        remove_at(fd.as_raw_fd(), OsStr::new("d")).unwrap();
        assert!(!root.join("d").exists());
        assert_eq!(fs::read_to_string(outside.join("canary")).unwrap(), "x");
        remove_at(fd.as_raw_fd(), OsStr::new("missing")).unwrap();
    }

    #[test]
    fn list_dir_starts_from_the_beginning() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["a", "b", "c"] {
            fs::write(tmp.path().join(name), "").unwrap();
        }
        let fd = open(tmp.path());
        let mut first = list_dir(fd.as_raw_fd()).unwrap();
        let mut second = list_dir(fd.as_raw_fd()).unwrap();
        first.sort();
        second.sort();
        assert_eq!(first, ["a", "b", "c"]);
        assert_eq!(second, first);
    }
}
