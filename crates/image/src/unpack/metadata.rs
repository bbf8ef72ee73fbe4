//! What an entry carries besides its content: owner, mode, times and
//! extended attributes, read from its header and set on what was created.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{self, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid};

use super::fsops::{set_xattr, Node};
use super::unpacker::{Blocked, Unpacker};
use super::{UnpackError, UnpackStats};

/// Parses a PAX time (`SECONDS[.FRACTION]`, possibly negative).
pub(super) fn parse_pax_time(value: &[u8]) -> Option<TimeSpec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let nanos: i64 = format!("{:0<9}", &frac[..frac.len().min(9)]).parse().ok()?;
    Some(match (negative, nanos) {
        (false, _) => TimeSpec::new(secs, nanos),
        (true, 0) => TimeSpec::new(-secs, 0),
        (true, _) => TimeSpec::new(-secs - 1, 1_000_000_000 - nanos),
    })
}

/// Ownership, permissions, times and xattrs of one entry.
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) atime: TimeSpec,
    pub(super) mtime: TimeSpec,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

pub(super) fn read_meta<R: Read>(entry: &mut tar::Entry<R>) -> Result<Meta, String> {
    let header = entry.header();
    let malformed = |field: &str| format!("its header has a malformed {field}");
    let id =
        |v: u64, field: &str| u32::try_from(v).map_err(|_| format!("its {field} is out of range"));
    // Like Go's archive/tar, which writes most layers, read a blank field as 0.
    let number = |raw: &[u8], parsed: io::Result<u64>, field: &str| {
        if raw.iter().all(|b| *b == 0 || *b == b' ') {
            Ok(0)
        } else {
            parsed.map_err(|_| malformed(field))
        }
    };
    let old = header.as_old();
    let mtime = number(&old.mtime, header.mtime(), "mtime")?;
    let mut meta = Meta {
        mode: number(&old.mode, header.mode().map(u64::from), "mode")? as u32 & 0o7777,
        uid: id(number(&old.uid, header.uid(), "uid")?, "uid")?,
        gid: id(number(&old.gid, header.gid(), "gid")?, "gid")?,
        mtime: TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0),
        atime: TimeSpec::new(0, 0),
        xattrs: Vec::new(),
    };
    let mut atime = None;
    if let Some(extensions) = entry
        .pax_extensions()
        .map_err(|_| malformed("PAX record"))?
    {
        for ext in extensions {
            let ext = ext.map_err(|_| malformed("PAX record"))?;
            let value = ext.value_bytes();
            let number = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
            };
            match ext.key_bytes() {
                b"uid" => meta.uid = id(number().ok_or_else(|| malformed("PAX uid"))?, "uid")?,
                b"gid" => meta.gid = id(number().ok_or_else(|| malformed("PAX gid"))?, "gid")?,
                b"mtime" => {
                    meta.mtime = parse_pax_time(value).ok_or_else(|| malformed("PAX mtime"))?
                }
                b"atime" => {
                    atime = Some(parse_pax_time(value).ok_or_else(|| malformed("PAX atime"))?)
                }
                key => {
                    if let Some(name) = key.strip_prefix(XATTR_PREFIX) {
                        meta.xattrs.push((name.to_vec(), value.to_vec()));
                    }
                }
            }
        }
    }
    meta.atime = atime.unwrap_or(meta.mtime);
    Ok(meta)
}

/// Mode and times of a directory, set once everything inside it is written.
pub(super) struct DirMeta {
    mode: u32,
    atime: TimeSpec,
    mtime: TimeSpec,
}

impl Unpacker<'_> {
    pub(super) fn defer_dir(&mut self, rel: PathBuf, meta: &Meta) {
        let deferred = DirMeta {
            mode: meta.mode,
            atime: meta.atime,
            mtime: meta.mtime,
        };
        self.dirs.insert(rel, deferred);
    }

    pub(super) fn own(&self, node: Node, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        let (uid, gid) = (Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)));
        let res = match node {
            Node::Fd(fd) => unistd::fchown(fd, uid, gid),
            Node::At(dir, name) => {
                unistd::fchownat(Some(dir), name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
            }
        };
        match res {
            Err(Errno::EPERM) if !self.is_root => Ok(()),
            res => res.map_err(|e| self.io("set the owner of", shown, e)),
        }
    }

    pub(super) fn times(&self, node: Node, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        let res = match node {
            Node::Fd(fd) => stat::futimens(fd, &meta.atime, &meta.mtime),
            Node::At(dir, name) => stat::utimensat(
                Some(dir),
                name,
                &meta.atime,
                &meta.mtime,
                UtimensatFlags::NoFollowSymlink,
            ),
        };
        res.map_err(|e| self.io("set the times of", shown, e))
    }

    pub(super) fn xattrs(
        &mut self,
        node: Node,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        for (name, value) in &meta.xattrs {
            // overlayfs reads these as its own metadata (opaque dirs, redirects,
            // metacopy): only our whiteout handling may set them.
            if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                self.dropped_xattrs += 1;
                continue;
            }
            match set_xattr(node, name, value) {
                Ok(()) => {}
                Err(e)
                    if !(name.starts_with(b"trusted.") || name.starts_with(b"security."))
                        && matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOTSUP)) =>
                {
                    self.unset_xattrs += 1;
                }
                Err(e) => return Err(self.io("set an extended attribute on", shown, e)),
            }
        }
        Ok(())
    }

    /// Sets directory modes and times, now that nothing more is written into them.
    pub(super) fn finish(mut self) -> Result<UnpackStats, UnpackError> {
        let mut dirs: Vec<(PathBuf, DirMeta)> =
            std::mem::take(&mut self.dirs).into_iter().collect();
        // Deepest first, so a directory whose mode forbids entry does not stop us reaching those below it.
        dirs.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
        for (rel, meta) in dirs {
            let shown = rel.display().to_string();
            let fd = match self.open_dir(&rel, false) {
                Ok(fd) => fd,
                Err(Blocked::Io(op, e)) => return Err(self.io(op, &shown, e)),
                // A later entry replaced or removed it.
                Err(_) => continue,
            };
            stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(meta.mode))
                .map_err(|e| self.io("set the mode of", &shown, e))?;
            stat::futimens(fd.as_raw_fd(), &meta.atime, &meta.mtime)
                .map_err(|e| self.io("set the times of", &shown, e))?;
        }
        if self.skipped_devices > 0 {
            tracing::warn!(layer = %self.layer, count = self.skipped_devices, "Skipped device nodes: creating them needs root");
        }
        if self.dropped_xattrs > 0 {
            tracing::warn!(layer = %self.layer, count = self.dropped_xattrs, "Dropped overlayfs attributes the layer carried");
        }
        if self.unset_xattrs > 0 {
            tracing::warn!(layer = %self.layer, count = self.unset_xattrs, "Could not set some extended attributes");
        }
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse_with_fractions() {
        assert_eq!(
            parse_pax_time(b"1700000000"),
            Some(TimeSpec::new(1_700_000_000, 0))
        );
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some(TimeSpec::new(1_700_000_000, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"1.0000000019"), Some(TimeSpec::new(1, 1)));
        assert_eq!(
            parse_pax_time(b"-1.25"),
            Some(TimeSpec::new(-2, 750_000_000))
        );
        assert_eq!(parse_pax_time(b"-3"), Some(TimeSpec::new(-3, 0)));
        assert_eq!(parse_pax_time(b""), None);
        assert_eq!(parse_pax_time(b"1e9"), None);
        assert_eq!(parse_pax_time(b".5"), None);
    }
}
