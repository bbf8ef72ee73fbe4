//! The state of one layer's unpacking, and the creation of each kind of
//! entry in the destination.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, FchmodatFlags, Mode, SFlag};
use nix::unistd;
use tar::EntryType;

use super::fsops::{lstat_at, open_dir_at, remove_at, Node};
use super::metadata::{read_meta, DirMeta, Meta};
use super::path::{normalize, symlink_escapes, PathProblem};
use super::whiteout::classify_whiteout;
use super::{UnpackError, UnpackStats, WhiteoutMode};

/// Why walking down to a directory stopped.
pub(super) enum Blocked {
    Missing,
    Symlink(PathBuf),
    NotDir(PathBuf),
    Io(&'static str, Errno),
}

/// The state of one layer's unpacking.
pub(super) struct Unpacker<'a> {
    pub(super) layer: &'a str,
    root: OwnedFd,
    pub(super) mode: WhiteoutMode,
    pub(super) is_root: bool,
    /// Apply mode only: paths this layer has put in place, which its own
    /// whiteouts must leave alone.
    pub(super) added: HashSet<PathBuf>,
    pub(super) dirs: HashMap<PathBuf, DirMeta>,
    pub(super) stats: UnpackStats,
    pub(super) skipped_devices: u64,
    pub(super) dropped_xattrs: u64,
    pub(super) unset_xattrs: u64,
    buf: Vec<u8>,
}

impl<'a> Unpacker<'a> {
    pub(super) fn new(layer: &'a str, root: OwnedFd, mode: WhiteoutMode) -> Self {
        Self {
            layer,
            root,
            mode,
            is_root: unistd::geteuid().is_root(),
            added: HashSet::new(),
            dirs: HashMap::new(),
            stats: UnpackStats::default(),
            skipped_devices: 0,
            dropped_xattrs: 0,
            unset_xattrs: 0,
            buf: vec![0; 128 * 1024],
        }
    }

    pub(super) fn io(
        &self,
        op: &'static str,
        path: &str,
        source: impl Into<io::Error>,
    ) -> UnpackError {
        UnpackError::Io {
            layer: self.layer.to_owned(),
            path: path.to_owned(),
            op,
            source: source.into(),
        }
    }

    pub(super) fn invalid(&self, path: &str, reason: impl Into<String>) -> UnpackError {
        UnpackError::InvalidEntry {
            layer: self.layer.to_owned(),
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    fn path_error(&self, problem: PathProblem, path: &str) -> UnpackError {
        let (layer, path) = (self.layer.to_owned(), path.to_owned());
        match problem {
            PathProblem::Empty => self.invalid(&path, "its name is empty"),
            PathProblem::Nul => self.invalid(&path, "its name contains a NUL byte"),
            PathProblem::Absolute => UnpackError::AbsolutePath { layer, path },
            PathProblem::Escapes => UnpackError::Escape { layer, path },
        }
    }

    pub(super) fn blocked(&self, blocked: Blocked, path: &str) -> UnpackError {
        let (layer, path) = (self.layer.to_owned(), path.to_owned());
        match blocked {
            Blocked::Symlink(parent) => UnpackError::ThroughSymlink {
                layer,
                path,
                parent: parent.display().to_string(),
            },
            Blocked::NotDir(parent) => UnpackError::NotADirectory {
                layer,
                path,
                parent: parent.display().to_string(),
            },
            Blocked::Missing => self.io("find the parent directory of", &path, Errno::ENOENT),
            Blocked::Io(op, e) => self.io(op, &path, e),
        }
    }

    /// Opens the directory at `rel`, one component at a time without
    /// following symlinks, creating missing ones (0755) if asked.
    pub(super) fn open_dir(&mut self, rel: &Path, create: bool) -> Result<OwnedFd, Blocked> {
        let mut cur = self.root.try_clone().map_err(|e| {
            Blocked::Io(
                "open the root for",
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            )
        })?;
        let mut walked = PathBuf::new();
        for part in rel.iter() {
            walked.push(part);
            cur = match open_dir_at(cur.as_raw_fd(), part) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    stat::mkdirat(Some(cur.as_raw_fd()), part, Mode::from_bits_truncate(0o755))
                        .map_err(|e| Blocked::Io("create a parent directory of", e))?;
                    let fd = open_dir_at(cur.as_raw_fd(), part)
                        .map_err(|e| Blocked::Io("open a parent of", e))?;
                    // The umask must not decide the mode of directories the layer implies.
                    stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755))
                        .map_err(|e| Blocked::Io("set the mode of a parent of", e))?;
                    if self.mode == WhiteoutMode::Apply {
                        self.added.insert(walked.clone());
                    }
                    fd
                }
                Err(Errno::ENOENT) => return Err(Blocked::Missing),
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    return Err(match lstat_at(cur.as_raw_fd(), part) {
                        Ok(libc::S_IFLNK) => Blocked::Symlink(walked),
                        _ => Blocked::NotDir(walked),
                    })
                }
                Err(e) => return Err(Blocked::Io("open a parent of", e)),
            };
        }
        Ok(cur)
    }

    /// Unpacks one entry; returns its path as the archive spells it.
    pub(super) fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
    ) -> Result<String, UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(shown);
        }
        let rel = normalize(&raw).map_err(|p| self.path_error(p, &shown))?;
        let meta = read_meta(entry).map_err(|reason| self.invalid(&shown, reason))?;
        self.stats.entries += 1;
        let is_dir =
            kind == EntryType::Directory || (kind == EntryType::Regular && raw.ends_with(b"/"));

        let Some(name) = rel.file_name() else {
            if !is_dir {
                return Err(self.invalid(&shown, "only a directory can stand for the root"));
            }
            let root = self
                .root
                .try_clone()
                .map_err(|e| self.io("open", &shown, e))?;
            self.own(Node::Fd(root.as_raw_fd()), &meta, &shown)?;
            self.xattrs(Node::Fd(root.as_raw_fd()), &meta, &shown)?;
            self.defer_dir(rel, &meta);
            return Ok(shown);
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        if let Some(whiteout) = classify_whiteout(name) {
            self.whiteout(whiteout, parent_rel, &meta, &shown)?;
            return Ok(shown);
        }
        let parent = self
            .open_dir(parent_rel, true)
            .map_err(|b| self.blocked(b, &shown))?;
        let dir = parent.as_raw_fd();

        match kind {
            _ if is_dir => self.make_dir(dir, name, &rel, &meta, &shown)?,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.write_file(dir, name, entry, &meta, &shown)?
            }
            EntryType::Symlink => self.make_symlink(dir, name, &rel, entry, &meta, &shown)?,
            EntryType::Link => self.make_hardlink(dir, name, &rel, entry, &shown)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.make_node(dir, name, kind, entry, &meta, &shown)?
            }
            other => {
                let reason = format!(
                    "its type '{}' is not supported",
                    other.as_byte().escape_ascii()
                );
                return Err(self.invalid(&shown, reason));
            }
        }
        if self.mode == WhiteoutMode::Apply {
            self.added.insert(rel);
        }
        Ok(shown)
    }

    fn make_dir(
        &mut self,
        dir: RawFd,
        name: &OsStr,
        rel: &Path,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        match lstat_at(dir, name) {
            // A directory over a directory merges with it.
            Ok(libc::S_IFDIR) => {}
            Ok(_) | Err(Errno::ENOENT) => {
                self.clear(dir, name, shown)?;
                // Owner-only until the end: the final mode may forbid us to fill it.
                stat::mkdirat(Some(dir), name, Mode::from_bits_truncate(0o700))
                    .map_err(|e| self.io("create", shown, e))?;
            }
            Err(e) => return Err(self.io("inspect", shown, e)),
        }
        let fd = open_dir_at(dir, name).map_err(|e| self.io("open", shown, e))?;
        self.own(Node::Fd(fd.as_raw_fd()), meta, shown)?;
        self.xattrs(Node::Fd(fd.as_raw_fd()), meta, shown)?;
        self.defer_dir(rel.to_path_buf(), meta);
        Ok(())
    }

    fn write_file<R: Read>(
        &mut self,
        dir: RawFd,
        name: &OsStr,
        entry: &mut tar::Entry<R>,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        self.clear(dir, name, shown)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = fcntl::openat(Some(dir), name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| self.io("create", shown, e))?;
        // SAFETY: `openat` just returned this descriptor and nothing else owns it.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(UnpackError::Read {
                        layer: self.layer.to_owned(),
                        path: shown.to_owned(),
                        source,
                    })
                }
            };
            file.write_all(&self.buf[..n])
                .map_err(|e| self.io("write", shown, e))?;
            self.stats.size += n as u64;
        }
        let node = Node::Fd(file.as_raw_fd());
        // Ownership first: a chown clears setuid bits and file capabilities.
        self.own(node, meta, shown)?;
        stat::fchmod(file.as_raw_fd(), Mode::from_bits_truncate(meta.mode))
            .map_err(|e| self.io("set the mode of", shown, e))?;
        self.xattrs(node, meta, shown)?;
        stat::futimens(file.as_raw_fd(), &meta.atime, &meta.mtime)
            .map_err(|e| self.io("set the times of", shown, e))
    }

    fn make_symlink<R: Read>(
        &mut self,
        dir: RawFd,
        name: &OsStr,
        rel: &Path,
        entry: &tar::Entry<R>,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let target = entry.link_name_bytes().unwrap_or_default();
        if target.is_empty() {
            return Err(self.invalid(shown, "it is a symlink without a target"));
        }
        if symlink_escapes(rel, &target) {
            return Err(UnpackError::SymlinkEscape {
                layer: self.layer.to_owned(),
                path: shown.to_owned(),
                target: String::from_utf8_lossy(&target).into_owned(),
            });
        }
        self.clear(dir, name, shown)?;
        unistd::symlinkat(OsStr::from_bytes(&target), Some(dir), name)
            .map_err(|e| self.io("create", shown, e))?;
        let node = Node::At(dir, name);
        self.own(node, meta, shown)?;
        self.xattrs(node, meta, shown)?;
        self.times(node, meta, shown)
    }

    fn make_hardlink<R: Read>(
        &mut self,
        dir: RawFd,
        name: &OsStr,
        rel: &Path,
        entry: &tar::Entry<R>,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let raw_target = entry.link_name_bytes().unwrap_or_default();
        let target_shown = String::from_utf8_lossy(&raw_target).into_owned();
        let refuse = |reason| UnpackError::HardlinkTarget {
            layer: self.layer.to_owned(),
            path: shown.to_owned(),
            target: target_shown.clone(),
            reason,
        };
        let target = match normalize(&raw_target) {
            Ok(target) => target,
            Err(PathProblem::Empty | PathProblem::Nul) => {
                return Err(self.invalid(shown, "it is a hardlink without a valid target"))
            }
            Err(PathProblem::Absolute | PathProblem::Escapes) => {
                return Err(UnpackError::HardlinkEscape {
                    layer: self.layer.to_owned(),
                    path: shown.to_owned(),
                    target: target_shown,
                })
            }
        };
        if target == rel {
            return Ok(());
        }
        let Some(target_name) = target.file_name() else {
            return Err(refuse("is the root"));
        };
        let target_dir = match self.open_dir(target.parent().unwrap_or(Path::new("")), false) {
            Ok(fd) => fd,
            Err(Blocked::Symlink(_)) => return Err(refuse("resolves through a symlink")),
            Err(Blocked::Missing | Blocked::NotDir(_)) => return Err(refuse("does not exist")),
            Err(Blocked::Io(op, e)) => return Err(self.io(op, shown, e)),
        };
        match lstat_at(target_dir.as_raw_fd(), target_name) {
            Ok(libc::S_IFDIR) => return Err(refuse("is a directory")),
            Ok(_) => {}
            Err(Errno::ENOENT) => return Err(refuse("does not exist")),
            Err(e) => return Err(self.io("inspect the target of", shown, e)),
        }
        self.clear(dir, name, shown)?;
        // Without AT_SYMLINK_FOLLOW a symlink target is linked itself, never followed.
        unistd::linkat(
            Some(target_dir.as_raw_fd()),
            target_name,
            Some(dir),
            name,
            AtFlags::empty(),
        )
        .map_err(|e| self.io("create", shown, e))
    }

    fn make_node<R: Read>(
        &mut self,
        dir: RawFd,
        name: &OsStr,
        kind: EntryType,
        entry: &tar::Entry<R>,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let (sflag, dev) = match kind {
            EntryType::Char => (SFlag::S_IFCHR, self.device_number(entry.header(), shown)?),
            EntryType::Block => (SFlag::S_IFBLK, self.device_number(entry.header(), shown)?),
            _ => (SFlag::S_IFIFO, 0),
        };
        self.clear(dir, name, shown)?;
        match stat::mknodat(
            Some(dir),
            name,
            sflag,
            Mode::from_bits_truncate(meta.mode & 0o777),
            dev,
        ) {
            Ok(()) => {}
            Err(Errno::EPERM) if !self.is_root && sflag != SFlag::S_IFIFO => {
                self.skipped_devices += 1;
                return Ok(());
            }
            Err(e) => return Err(self.io("create", shown, e)),
        }
        let node = Node::At(dir, name);
        self.own(node, meta, shown)?;
        // The node was made here a moment ago: following is no risk, and Linux cannot chmod without it.
        stat::fchmodat(
            Some(dir),
            name,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| self.io("set the mode of", shown, e))?;
        self.xattrs(node, meta, shown)?;
        self.times(node, meta, shown)
    }

    fn device_number(&self, header: &tar::Header, shown: &str) -> Result<libc::dev_t, UnpackError> {
        // Where ustar and GNU headers keep the major and minor numbers.
        let (major_field, minor_field) =
            (&header.as_bytes()[329..337], &header.as_bytes()[337..345]);
        let number = |raw: &[u8], parsed: io::Result<Option<u32>>, what: &str| {
            if raw.iter().all(|b| *b == 0 || *b == b' ') {
                return Ok(0);
            }
            match parsed {
                Ok(n) => Ok(u64::from(n.unwrap_or(0))),
                Err(_) => Err(self.invalid(shown, format!("its device {what} is malformed"))),
            }
        };
        let major = number(major_field, header.device_major(), "major")?;
        let minor = number(minor_field, header.device_minor(), "minor")?;
        Ok(stat::makedev(major, minor))
    }

    /// Removes whatever is at `name` so a new entry can take its place.
    fn clear(&self, dir: RawFd, name: &OsStr, shown: &str) -> Result<(), UnpackError> {
        remove_at(dir, name).map_err(|e| self.io("replace", shown, e))
    }
}
