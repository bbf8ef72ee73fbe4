//! Layer unpacking: turns one image layer, a tar stream (plain, gzip or
//! zstd), into a directory tree, realising its whiteouts either for overlayfs
//! or by applying them to an already-populated tree.
//!
//! A layer is untrusted input and this module is a security boundary. Every
//! entry is created relative to directory descriptors opened with
//! `O_NOFOLLOW`, one parent component at a time, and whatever sits at a path
//! is removed before anything new is created there: no entry can reach
//! outside the destination, by `..`, by an absolute path, or through a
//! symlink that an earlier entry (or a lower layer) planted.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, FcntlArg, OFlag};
use nix::sys::stat::{self, FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid, UnlinkatFlags};
use servin_api::ErrorKind;
use tar::EntryType;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Recognises a compressed stream by its first bytes; anything else is
    /// taken for a plain tar.
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if magic.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The compression an OCI or Docker layer media type declares, or `None`
    /// when the media type is not a layer's.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        const LAYER_TYPES: [&str; 2] = [
            "application/vnd.oci.image.layer.",
            "application/vnd.docker.image.rootfs.",
        ];
        if !LAYER_TYPES.iter().any(|prefix| mt.starts_with(prefix)) {
            return None;
        }
        if mt.ends_with("+gzip") || mt.ends_with(".tar.gzip") {
            Some(Compression::Gzip)
        } else if mt.ends_with("+zstd") || mt.ends_with(".tar.zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }
}

/// How whiteouts in the layer are realised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Each layer goes into its own empty dir, to be stacked by overlayfs:
    /// `.wh.NAME` becomes a 0:0 character device NAME, `.wh..wh..opq` sets
    /// xattr `trusted.overlay.opaque=y` on its directory (as containerd's
    /// overlay snapshotter does).
    Overlay,
    /// The layer is applied on top of an already-populated tree (flattening,
    /// e.g. for export): `.wh.NAME` deletes NAME (recursively), `.wh..wh..opq`
    /// empties the directory of entries from lower layers (entries this same
    /// layer adds stay).
    Apply,
}

/// What unpacking a layer wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Bytes of regular-file content written.
    pub size: u64,
    /// Archive entries applied (whiteouts included).
    pub entries: u64,
}

/// Why a layer could not be unpacked. Each message names the layer and the
/// offending path as the archive spells it.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// A `..` climbs above the root.
    #[error("Layer {layer} has an entry that escapes the root: {path}")]
    Escape { layer: String, path: String },
    /// An entry names an absolute path.
    #[error("Layer {layer} has an entry with an absolute path: {path}")]
    AbsolutePath { layer: String, path: String },
    /// A relative symlink target climbs above the root.
    #[error("Layer {layer} has a symlink that points outside the root: {path} -> {target}")]
    SymlinkEscape {
        layer: String,
        path: String,
        target: String,
    },
    /// A hardlink target is absolute or climbs above the root.
    #[error("Layer {layer} has a hardlink whose target escapes the root: {path} => {target}")]
    HardlinkEscape {
        layer: String,
        path: String,
        target: String,
    },
    /// A hardlink target is missing, a directory, or reached through a symlink.
    #[error("Layer {layer} has a hardlink whose target {reason}: {path} => {target}")]
    HardlinkTarget {
        layer: String,
        path: String,
        target: String,
        reason: &'static str,
    },
    /// A parent of the entry is a symlink (one the layer planted, or a lower layer's).
    #[error("Layer {layer} has an entry under a symlink: {path} ({parent} is a symlink)")]
    ThroughSymlink {
        layer: String,
        path: String,
        parent: String,
    },
    /// A parent of the entry is neither a directory nor a symlink.
    #[error(
        "Layer {layer} has an entry under something that is not a directory: {path} ({parent})"
    )]
    NotADirectory {
        layer: String,
        path: String,
        parent: String,
    },
    /// The entry is malformed: empty name, bad header field, unsupported type, empty whiteout.
    #[error("Layer {layer} has an invalid entry {path}: {reason}")]
    InvalidEntry {
        layer: String,
        path: String,
        reason: String,
    },
    /// The stream is not a readable tar (or its compression is corrupt).
    #[error("Failed to read layer {layer} at {path}")]
    Read {
        layer: String,
        path: String,
        #[source]
        source: io::Error,
    },
    /// Writing to the destination failed.
    #[error("Failed to {op} {path} from layer {layer}")]
    Io {
        layer: String,
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// Hostile or malformed layers are the client's problem; a failing disk is ours.
    pub fn kind(&self) -> ErrorKind {
        match self {
            UnpackError::Io { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// Reads a (possibly compressed: detect it by magic bytes) tar stream and
/// unpacks it into `dest`, which must exist. `layer` is a label (usually the
/// layer digest) used in error messages.
///
/// Stops at the first hostile entry; the caller discards `dest` on error.
pub fn unpack_layer<R: Read>(
    reader: R,
    dest: &Path,
    mode: WhiteoutMode,
    layer: &str,
) -> Result<UnpackStats, UnpackError> {
    let root = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dest)
        .map_err(|source| UnpackError::Io {
            layer: layer.to_owned(),
            path: dest.display().to_string(),
            op: "open the destination",
            source,
        })?;
    let read_error = |path: String, source| UnpackError::Read {
        layer: layer.to_owned(),
        path,
        source,
    };
    let stream = Decoder::new(reader).map_err(|e| read_error("its start".into(), e))?;
    let mut archive = tar::Archive::new(stream);
    let mut unpacker = Unpacker::new(layer, OwnedFd::from(root), mode);
    let mut last: Option<String> = None;
    for entry in archive
        .entries()
        .map_err(|e| read_error("its start".into(), e))?
    {
        let mut entry = entry.map_err(|e| {
            let at = last
                .as_ref()
                .map_or("its first entry".into(), |p| format!("the entry after {p}"));
            read_error(at, e)
        })?;
        last = Some(unpacker.entry(&mut entry)?);
    }
    unpacker.finish()
}

/// The layer stream with its compression undone.
enum Decoder<R: Read> {
    Plain(BufReader<Peeked<R>>),
    Gzip(flate2::read::MultiGzDecoder<Peeked<R>>),
    Zstd(zstd::Decoder<'static, BufReader<Peeked<R>>>),
}

/// A stream whose first bytes were read to find its compression, put back in front.
type Peeked<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

impl<R: Read> Decoder<R> {
    fn new(mut reader: R) -> io::Result<Self> {
        let mut magic = Vec::with_capacity(ZSTD_MAGIC.len());
        (&mut reader)
            .take(ZSTD_MAGIC.len() as u64)
            .read_to_end(&mut magic)?;
        let compression = Compression::detect(&magic);
        let stream = io::Cursor::new(magic).chain(reader);
        Ok(match compression {
            Compression::None => Decoder::Plain(BufReader::with_capacity(64 * 1024, stream)),
            Compression::Gzip => Decoder::Gzip(flate2::read::MultiGzDecoder::new(stream)),
            Compression::Zstd => Decoder::Zstd(zstd::Decoder::new(stream)?),
        })
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

/// Why an archive path cannot be placed under the root.
#[derive(Debug, PartialEq, Eq)]
enum PathProblem {
    Empty,
    Nul,
    Absolute,
    Escapes,
}

/// Turns an archive path into a path relative to the root, resolving `.`
/// and `..` lexically; the root itself comes back empty.
fn normalize(raw: &[u8]) -> Result<PathBuf, PathProblem> {
    if raw.is_empty() {
        return Err(PathProblem::Empty);
    }
    // PAX records are length-delimited and can smuggle one in.
    if raw.contains(&0) {
        return Err(PathProblem::Nul);
    }
    if raw.starts_with(b"/") {
        return Err(PathProblem::Absolute);
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop().ok_or(PathProblem::Escapes)?;
            }
            part => parts.push(part),
        }
    }
    Ok(parts.into_iter().map(OsStr::from_bytes).collect())
}

/// Whether a symlink at `link` (relative to the root) with this target
/// climbs above the root at any point. Absolute targets are resolved inside
/// the container, so they never do.
fn symlink_escapes(link: &Path, target: &[u8]) -> bool {
    if target.starts_with(b"/") {
        return false;
    }
    let mut depth = link.components().count().saturating_sub(1);
    for part in target.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    false
}

/// What a `.wh.`-prefixed name asks for.
#[derive(Debug, PartialEq, Eq)]
enum Whiteout<'a> {
    /// `.wh..wh..opq`: hide everything lower layers have in this directory.
    Opaque,
    /// `.wh.NAME`: hide NAME.
    Remove(&'a OsStr),
    /// Other `.wh..wh.` names (aufs bookkeeping): meaningless here.
    Meta,
    /// `.wh.`, `.wh..`, `.wh...`: names nothing that can be hidden.
    Invalid,
}

fn classify_whiteout(name: &OsStr) -> Option<Whiteout<'_>> {
    let rest = name.as_bytes().strip_prefix(b".wh.")?;
    Some(match rest {
        b".wh..opq" => Whiteout::Opaque,
        r if r.starts_with(b".wh.") => Whiteout::Meta,
        b"" | b"." | b".." => Whiteout::Invalid,
        r => Whiteout::Remove(OsStr::from_bytes(r)),
    })
}

/// Parses a PAX time (`SECONDS[.FRACTION]`, possibly negative).
fn parse_pax_time(value: &[u8]) -> Option<TimeSpec> {
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
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    atime: TimeSpec,
    mtime: TimeSpec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

fn read_meta<R: Read>(entry: &mut tar::Entry<R>) -> Result<Meta, String> {
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

/// A node whose metadata is being set: an open file or directory, or (for
/// symlinks, devices and fifos, which must not be opened) a name in an open
/// directory.
#[derive(Clone, Copy)]
enum Node<'a> {
    Fd(RawFd),
    At(RawFd, &'a OsStr),
}

/// Why walking down to a directory stopped.
enum Blocked {
    Missing,
    Symlink(PathBuf),
    NotDir(PathBuf),
    Io(&'static str, Errno),
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Opens the directory `name` in `dir`, refusing a symlink there.
fn open_dir_at(dir: RawFd, name: &OsStr) -> nix::Result<OwnedFd> {
    let fd = fcntl::openat(Some(dir), name, DIR_FLAGS, Mode::empty())?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn lstat_at(dir: RawFd, name: &OsStr) -> nix::Result<libc::mode_t> {
    stat::fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW).map(|st| st.st_mode & libc::S_IFMT)
}

/// Lists the names in an open directory, without `.` and `..`.
fn list_dir(dir: RawFd) -> nix::Result<Vec<OsString>> {
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
fn remove_at(dir: RawFd, name: &OsStr) -> nix::Result<()> {
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

/// Apply mode: removes what lower layers left at `name` in `dir` (whose path
/// is `dir_rel`), keeping what this layer added itself (`added`); inside a
/// directory this layer laid over a lower one, it recurses.
fn remove_lower(
    added: &HashSet<PathBuf>,
    dir: RawFd,
    dir_rel: &Path,
    name: &OsStr,
) -> nix::Result<()> {
    let rel = dir_rel.join(name);
    if !added.contains(&rel) {
        return remove_at(dir, name);
    }
    match lstat_at(dir, name) {
        Ok(libc::S_IFDIR) => {
            let sub = open_dir_at(dir, name)?;
            for child in list_dir(sub.as_raw_fd())? {
                remove_lower(added, sub.as_raw_fd(), &rel, &child)?;
            }
            Ok(())
        }
        Ok(_) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_xattr(node: Node, name: &[u8], value: &[u8]) -> io::Result<()> {
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

/// Mode and times of a directory, set once everything inside it is written.
struct DirMeta {
    mode: u32,
    atime: TimeSpec,
    mtime: TimeSpec,
}

/// The state of one layer's unpacking.
struct Unpacker<'a> {
    layer: &'a str,
    root: OwnedFd,
    mode: WhiteoutMode,
    is_root: bool,
    /// Apply mode only: paths this layer has put in place, which its own
    /// whiteouts must leave alone.
    added: HashSet<PathBuf>,
    dirs: HashMap<PathBuf, DirMeta>,
    stats: UnpackStats,
    skipped_devices: u64,
    dropped_xattrs: u64,
    unset_xattrs: u64,
    buf: Vec<u8>,
}

impl<'a> Unpacker<'a> {
    fn new(layer: &'a str, root: OwnedFd, mode: WhiteoutMode) -> Self {
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

    fn io(&self, op: &'static str, path: &str, source: impl Into<io::Error>) -> UnpackError {
        UnpackError::Io {
            layer: self.layer.to_owned(),
            path: path.to_owned(),
            op,
            source: source.into(),
        }
    }

    fn invalid(&self, path: &str, reason: impl Into<String>) -> UnpackError {
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

    fn blocked(&self, blocked: Blocked, path: &str) -> UnpackError {
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
    fn open_dir(&mut self, rel: &Path, create: bool) -> Result<OwnedFd, Blocked> {
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
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<String, UnpackError> {
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

    fn whiteout(
        &mut self,
        whiteout: Whiteout,
        parent_rel: &Path,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        match whiteout {
            Whiteout::Invalid => {
                return Err(self.invalid(shown, "it is a whiteout that names nothing"))
            }
            Whiteout::Meta => return Ok(()),
            Whiteout::Opaque | Whiteout::Remove(_) => {}
        }
        let create = self.mode == WhiteoutMode::Overlay;
        let dir = match self.open_dir(parent_rel, create) {
            Ok(dir) => dir,
            // Nothing below to hide.
            Err(Blocked::Missing) => return Ok(()),
            Err(b) => return Err(self.blocked(b, shown)),
        };
        let fd = dir.as_raw_fd();
        match (self.mode, whiteout) {
            (WhiteoutMode::Overlay, Whiteout::Opaque) => {
                set_xattr(Node::Fd(fd), b"trusted.overlay.opaque", b"y")
                    .map_err(|e| self.io("mark opaque", shown, e))
            }
            (WhiteoutMode::Overlay, Whiteout::Remove(name)) => {
                match stat::mknodat(Some(fd), name, SFlag::S_IFCHR, Mode::empty(), 0) {
                    Ok(()) => self.own(Node::At(fd, name), meta, shown),
                    // This layer has its own entry there, and a whiteout hides only lower ones.
                    Err(Errno::EEXIST) => Ok(()),
                    Err(e) => Err(self.io("create the whiteout", shown, e)),
                }
            }
            (WhiteoutMode::Apply, Whiteout::Opaque) => {
                let names = list_dir(fd).map_err(|e| self.io("list", shown, e))?;
                for name in names {
                    remove_lower(&self.added, fd, parent_rel, &name)
                        .map_err(|e| self.io("remove what is hidden by", shown, e))?;
                }
                Ok(())
            }
            (WhiteoutMode::Apply, Whiteout::Remove(name)) => {
                remove_lower(&self.added, fd, parent_rel, name)
                    .map_err(|e| self.io("remove what is hidden by", shown, e))
            }
            (_, Whiteout::Meta | Whiteout::Invalid) => Ok(()),
        }
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

    fn defer_dir(&mut self, rel: PathBuf, meta: &Meta) {
        let deferred = DirMeta {
            mode: meta.mode,
            atime: meta.atime,
            mtime: meta.mtime,
        };
        self.dirs.insert(rel, deferred);
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

    fn own(&self, node: Node, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
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

    fn times(&self, node: Node, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
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

    fn xattrs(&mut self, node: Node, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
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
    fn finish(mut self) -> Result<UnpackStats, UnpackError> {
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
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn norm(raw: &str) -> Result<PathBuf, PathProblem> {
        normalize(raw.as_bytes())
    }

    #[test]
    fn normalize_strips_dots_and_slashes() {
        assert_eq!(norm("./a/b"), Ok(PathBuf::from("a/b")));
        assert_eq!(norm("a/b/"), Ok(PathBuf::from("a/b")));
        assert_eq!(norm("a//b/./c"), Ok(PathBuf::from("a/b/c")));
        assert_eq!(norm("a/../b"), Ok(PathBuf::from("b")));
        assert_eq!(norm("."), Ok(PathBuf::new()));
        assert_eq!(norm("./"), Ok(PathBuf::new()));
        assert_eq!(norm("a/.."), Ok(PathBuf::new()));
    }

    #[test]
    fn normalize_refuses_climbing_and_absolute_paths() {
        assert_eq!(norm("../etc/passwd"), Err(PathProblem::Escapes));
        assert_eq!(norm("a/../../x"), Err(PathProblem::Escapes));
        assert_eq!(norm("./.."), Err(PathProblem::Escapes));
        assert_eq!(norm("/etc/x"), Err(PathProblem::Absolute));
        assert_eq!(norm(""), Err(PathProblem::Empty));
    }

    #[test]
    fn symlink_targets_may_not_climb_above_the_root() {
        let escapes =
            |link: &str, target: &str| symlink_escapes(Path::new(link), target.as_bytes());
        assert!(!escapes("a/b/l", "../x"));
        assert!(!escapes("a/b/l", "../../x"));
        assert!(escapes("a/b/l", "../../../x"));
        assert!(escapes("evil", "../../../etc"));
        assert!(escapes("l", ".."));
        assert!(!escapes("l", "."));
        assert!(!escapes("bin/sh", "/bin/busybox"));
        assert!(!escapes("a/l", "./../b"));
        // Climbing out and back in is refused too: where it lands depends on the host.
        assert!(escapes("a/l", "../../dest/x"));
        assert!(escapes("a/l", "x/../../.."));
    }

    #[test]
    fn whiteout_names_are_classified() {
        let classify = |name: &'static str| classify_whiteout(OsStr::new(name));
        assert_eq!(classify("file"), None);
        assert_eq!(classify(".whx"), None);
        assert_eq!(
            classify(".wh.file"),
            Some(Whiteout::Remove(OsStr::new("file")))
        );
        assert_eq!(
            classify(".wh..hidden"),
            Some(Whiteout::Remove(OsStr::new(".hidden")))
        );
        assert_eq!(classify(".wh..wh..opq"), Some(Whiteout::Opaque));
        assert_eq!(classify(".wh..wh.plnk"), Some(Whiteout::Meta));
        assert_eq!(classify(".wh."), Some(Whiteout::Invalid));
        assert_eq!(classify(".wh.."), Some(Whiteout::Invalid));
        assert_eq!(classify(".wh..."), Some(Whiteout::Invalid));
    }

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

    #[test]
    fn compression_is_detected_by_magic_and_media_type() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/"), Compression::None);
        assert_eq!(Compression::detect(&[0x1f]), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);
        let mt = Compression::from_media_type;
        assert_eq!(
            mt("application/vnd.oci.image.layer.v1.tar"),
            Some(Compression::None)
        );
        assert_eq!(
            mt("application/vnd.oci.image.layer.v1.tar+gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            mt("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            mt("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            mt("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            mt("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(mt("application/vnd.oci.image.config.v1+json"), None);
        assert_eq!(mt("application/vnd.oci.image.layer.v1.tar+bzip2"), None);
    }

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
    fn remove_lower_keeps_what_this_layer_added() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in ["d/merged/lower", "d/lower"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "d/lower.txt",
            "d/merged/lower.txt",
            "d/merged/new.txt",
            "d/new.txt",
        ] {
            fs::write(root.join(file), "").unwrap();
        }
        let added: HashSet<PathBuf> = ["d/merged", "d/merged/new.txt", "d/new.txt"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let fd = open(&root.join("d"));
        for name in list_dir(fd.as_raw_fd()).unwrap() {
            remove_lower(&added, fd.as_raw_fd(), Path::new("d"), &name).unwrap();
        }
        let mut left: Vec<String> = Vec::new();
        for dir in ["d", "d/merged"] {
            for entry in fs::read_dir(root.join(dir)).unwrap() {
                left.push(format!(
                    "{dir}/{}",
                    entry.unwrap().file_name().to_string_lossy()
                ));
            }
        }
        left.sort();
        assert_eq!(left, ["d/merged", "d/merged/new.txt", "d/new.txt"]);
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

    #[test]
    fn empty_stream_is_an_empty_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = unpack_layer(io::empty(), tmp.path(), WhiteoutMode::Overlay, "empty").unwrap();
        assert_eq!(stats, UnpackStats::default());
    }

    #[test]
    fn garbage_is_a_read_error_naming_the_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let garbage = vec![b'x'; 1024];
        let err = unpack_layer(
            &garbage[..],
            tmp.path(),
            WhiteoutMode::Overlay,
            "sha256:bad",
        )
        .unwrap_err();
        assert!(matches!(err, UnpackError::Read { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "Failed to read layer sha256:bad at its first entry"
        );
        // Truncated gzip: the header promises more than arrives.
        let err = unpack_layer(
            &[0x1f, 0x8b, 8, 0][..],
            tmp.path(),
            WhiteoutMode::Overlay,
            "sha256:bad",
        )
        .unwrap_err();
        assert!(matches!(err, UnpackError::Read { .. }), "{err:?}");
    }

    #[test]
    fn names_with_nul_bytes_are_refused() {
        assert_eq!(normalize(b"a\0b"), Err(PathProblem::Nul));
    }

    fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_mode(0o755);
            match content {
                Some(data) => {
                    header.set_entry_type(EntryType::Regular);
                    header.set_size(data.len() as u64);
                    builder
                        .append_data(&mut header, path, data.as_bytes())
                        .unwrap();
                }
                None => {
                    header.set_entry_type(EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, path, io::empty()).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn apply_mode_opaque_hides_only_lower_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = layer(&[
            ("d/", None),
            ("d/old", Some("old")),
            ("d/sub/", None),
            ("d/sub/old", Some("old")),
        ]);
        unpack_layer(&lower[..], tmp.path(), WhiteoutMode::Apply, "lower").unwrap();
        // New entries both before and after the marker survive it; the
        // merged `d/sub` keeps only what this layer put in it.
        let upper = layer(&[
            ("d/", None),
            ("d/early", Some("new")),
            ("d/sub/", None),
            ("d/sub/new", Some("new")),
            ("d/.wh..wh..opq", Some("")),
            ("d/late", Some("new")),
        ]);
        let stats = unpack_layer(&upper[..], tmp.path(), WhiteoutMode::Apply, "upper").unwrap();
        assert_eq!(stats.entries, 6);
        let mut left: Vec<String> = Vec::new();
        for dir in ["d", "d/sub"] {
            for entry in fs::read_dir(tmp.path().join(dir)).unwrap() {
                left.push(format!(
                    "{dir}/{}",
                    entry.unwrap().file_name().to_string_lossy()
                ));
            }
        }
        left.sort();
        assert_eq!(left, ["d/early", "d/late", "d/sub", "d/sub/new"]);
    }

    #[test]
    fn apply_mode_whiteout_leaves_an_entry_of_the_same_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = layer(&[("gone", Some("old")), ("kept", Some("old"))]);
        unpack_layer(&lower[..], tmp.path(), WhiteoutMode::Apply, "lower").unwrap();
        let upper = layer(&[
            ("kept", Some("new")),
            (".wh.kept", Some("")),
            (".wh.gone", Some("")),
            (".wh.never", Some("")),
        ]);
        unpack_layer(&upper[..], tmp.path(), WhiteoutMode::Apply, "upper").unwrap();
        assert!(!tmp.path().join("gone").exists());
        assert_eq!(fs::read_to_string(tmp.path().join("kept")).unwrap(), "new");
    }
}
