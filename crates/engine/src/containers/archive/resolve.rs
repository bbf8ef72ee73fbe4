//! Paths inside a container's root filesystem, resolved as the container
//! would resolve them, one component at a time from a descriptor of its
//! root, through `/proc/self/fd`: a symlink the container planted (absolute,
//! or climbing with `..`), even while a copy runs, cannot lead the daemon
//! out of the container's root. And the stat Docker reports for a path.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

const MAX_SYMLINKS: usize = 255;

/// A directory held open with `O_PATH`. Names below it are reached through
/// `/proc/self/fd/N/NAME`, which the kernel looks up from this very
/// directory, whatever has been renamed or replaced above it since.
#[derive(Debug)]
pub(super) struct Dir(File);

impl Dir {
    pub(super) fn open(path: &Path) -> io::Result<Dir> {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(path)
            .map(Dir)
    }

    pub(super) fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }

    pub(super) fn child(&self, name: &OsStr) -> PathBuf {
        self.path().join(name)
    }

    /// The directory `name` below this one; a symlink is refused.
    pub(super) fn dir(&self, name: &OsStr) -> io::Result<Dir> {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(self.child(name))
            .map(Dir)
    }

    pub(super) fn lstat(&self, name: &OsStr) -> io::Result<Metadata> {
        std::fs::symlink_metadata(self.child(name))
    }

    pub(super) fn stat(&self) -> io::Result<Metadata> {
        std::fs::metadata(self.path())
    }

    pub(super) fn try_clone(&self) -> io::Result<Dir> {
        self.0.try_clone().map(Dir)
    }
}

/// Where, on a stopped container, the container would see something other
/// than its root filesystem: its volumes, bind mounts and `/etc` files, by
/// their clean path below the root. (A running container's own mount
/// namespace shows them itself.)
#[derive(Debug, Default)]
pub(super) struct Redirects(Vec<(PathBuf, PathBuf)>);

impl Redirects {
    /// `rel` is the destination below the root; `source` a host path.
    pub(super) fn add(&mut self, rel: PathBuf, source: PathBuf) {
        self.0.push((rel, source));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn source(&self, rel: &Path) -> Option<&Path> {
        // The last mount on a destination hides earlier ones, as in the container.
        self.0
            .iter()
            .rev()
            .find(|(r, _)| r == rel)
            .map(|(_, s)| s.as_path())
    }
}

/// What a redirected `rel` is: a directory to enter, or a file to name.
pub(super) fn redirected(source: &Path, rel: PathBuf) -> io::Result<Target> {
    if std::fs::metadata(source)?.is_dir() {
        return Ok(Target {
            dir: Dir::open(source)?,
            name: None,
            rel,
        });
    }
    let (Some(parent), Some(name)) = (source.parent(), source.file_name()) else {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    };
    Ok(Target {
        dir: Dir::open(parent)?,
        name: Some(name.to_os_string()),
        rel,
    })
}

/// A place in the container's filesystem: a directory, or a name in one.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) dir: Dir,
    pub(super) name: Option<OsString>,
    /// The resolved path below the container's root.
    pub(super) rel: PathBuf,
}

impl Target {
    pub(super) fn metadata(&self) -> io::Result<Metadata> {
        match &self.name {
            Some(n) => self.dir.lstat(n),
            None => self.dir.stat(),
        }
    }

    pub(super) fn container_path(&self) -> String {
        format!("/{}", self.rel.display())
    }
}

fn components(path: &[u8]) -> Vec<OsString> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsStr::from_bytes(c).to_os_string())
        .collect()
}

/// Resolves every component of `path` from `root` as the container would:
/// symlinks are followed (absolute ones from the root) and `..` stops at
/// the root. A missing or non-directory last component comes back as the
/// target's `name`; anywhere else it is an error. A component whose path is
/// redirected continues in the redirect's source.
pub(super) fn resolve(root: &Dir, redirects: &Redirects, path: &str) -> io::Result<Target> {
    let mut stack: Vec<(Dir, OsString)> = Vec::new();
    let mut pending = components(path.as_bytes());
    pending.reverse();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            stack.pop();
            continue;
        }
        let rel: PathBuf = stack
            .iter()
            .map(|(_, n)| n.as_os_str())
            .chain([c.as_os_str()])
            .collect();
        if let Some(source) = redirects.source(&rel) {
            let t = redirected(source, rel)?;
            match t.name {
                None => {
                    stack.push((t.dir, c));
                    continue;
                }
                Some(_) if pending.is_empty() => return Ok(t),
                Some(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            }
        }
        let cur = stack.last().map_or(root, |(d, _)| d);
        let meta = match cur.lstat(&c) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match meta {
            Some(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(cur.child(&c))?;
                if target.is_absolute() {
                    stack.clear();
                }
                pending.extend(components(target.as_os_str().as_bytes()).into_iter().rev());
            }
            Some(m) if m.is_dir() => {
                let d = cur.dir(&c)?;
                stack.push((d, c));
            }
            _ if !pending.is_empty() => {
                let errno = if meta.is_some() {
                    libc::ENOTDIR
                } else {
                    libc::ENOENT
                };
                return Err(io::Error::from_raw_os_error(errno));
            }
            _ => return target(root, stack, Some(c)),
        }
    }
    target(root, stack, None)
}

fn target(
    root: &Dir,
    mut stack: Vec<(Dir, OsString)>,
    name: Option<OsString>,
) -> io::Result<Target> {
    let mut rel: PathBuf = stack.iter().map(|(_, n)| n.as_os_str()).collect();
    if let Some(n) = &name {
        rel.push(n);
    }
    let dir = match stack.pop() {
        Some((d, _)) => d,
        None => root.try_clone()?,
    };
    Ok(Target { dir, name, rel })
}

/// `path` as Docker reads it: absolute and clean, but keeping a trailing
/// `/` or `/.` (they make the last component count as a directory). Returns
/// the directory part, the last component, and the name Docker reports (Go's
/// `filepath.Base`).
pub(super) fn split_path(path: &str) -> (String, String, String) {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let clean = format!("/{}", parts.join("/"));
    let mut abs = clean.clone();
    if (path == "." || path.ends_with("/.")) && clean != "/" {
        abs.push_str("/.");
    } else if (path == "." || path.ends_with("/.")) && clean == "/" {
        abs.push('.');
    } else if path.ends_with('/') && clean != "/" {
        abs.push('/');
    }
    let cut = abs.rfind('/').map_or(0, |i| i + 1);
    let (dir, base) = abs.split_at(cut);
    let shown = match abs.trim_end_matches('/').rsplit('/').next() {
        Some("") | None => "/".to_string(),
        Some(b) => b.to_string(),
    };
    (dir.to_string(), base.to_string(), shown)
}

/// Finds what `path` names, without following a symlink in its last
/// component unless a trailing `/` or `/.` asks for it (as Docker does).
pub(super) fn locate(
    root: &Dir,
    redirects: &Redirects,
    path: &str,
) -> io::Result<(Target, Metadata)> {
    let (dir, base, _) = split_path(path);
    let t = resolve(root, redirects, &dir)?;
    if let Some(n) = &t.name {
        t.dir.lstat(n)?;
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    let t = match base.as_str() {
        "" | "." => t,
        base => match redirects.source(&t.rel.join(base)) {
            Some(source) => redirected(source, t.rel.join(base))?,
            None => Target {
                name: Some(base.into()),
                rel: t.rel.join(base),
                dir: t.dir,
            },
        },
    };
    let meta = t.metadata()?;
    Ok((t, meta))
}

/// Go's `os.FileMode` bits for a Unix mode, as Docker's stat header has them.
fn go_mode(mode: u32) -> u32 {
    let mut m = mode & 0o777;
    m |= match mode & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        _ => 0,
    };
    for (bit, go) in [
        (libc::S_ISUID, 1 << 23),
        (libc::S_ISGID, 1 << 22),
        (libc::S_ISVTX, 1 << 20),
    ] {
        if mode & bit != 0 {
            m |= go;
        }
    }
    m
}

/// RFC 3339 with as many fractional digits as needed, as Go writes times.
fn go_time(secs: i64, nanos: i64) -> String {
    let t = chrono::DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32)
        .unwrap_or_default();
    let frac = format!(".{:09}", nanos.clamp(0, 999_999_999));
    let frac = frac.trim_end_matches('0').trim_end_matches('.');
    format!("{}{frac}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// Docker's `ContainerPathStat`.
pub(super) fn path_stat(root: &Dir, redirects: &Redirects, path: &str, meta: &Metadata) -> Value {
    let link_target = if meta.file_type().is_symlink() {
        let (dir, base, _) = split_path(path);
        resolve(root, redirects, &format!("{dir}{base}"))
            .map(|t| t.container_path())
            .unwrap_or_default()
    } else {
        String::new()
    };
    json!({
        "name": split_path(path).2,
        "size": meta.size(),
        "mode": go_mode(meta.mode()),
        "mtime": go_time(meta.mtime(), meta.mtime_nsec()),
        "linkTarget": link_target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_split_as_docker_does() {
        let s = |p: &str| split_path(p);
        assert_eq!(
            s("/etc/hosts"),
            ("/etc/".into(), "hosts".into(), "hosts".into())
        );
        assert_eq!(s("etc/"), ("/etc/".into(), "".into(), "etc".into()));
        assert_eq!(s("/etc/."), ("/etc/".into(), ".".into(), ".".into()));
        assert_eq!(s("/"), ("/".into(), "".into(), "/".into()));
        assert_eq!(s("/a/../../b"), ("/".into(), "b".into(), "b".into()));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("real/etc")).unwrap();
        std::fs::write(root.join("real/etc/passwd"), "x").unwrap();
        symlink("/real/etc", root.join("etc")).unwrap();
        symlink("../../../../real", root.join("real/etc/up")).unwrap();
        symlink("/etc/../../../tmp", root.join("escape")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let r = Dir::open(root).unwrap();
        let none = Redirects::default();
        let rel = |p: &str| resolve(&r, &none, p).map(|t| t.rel);
        assert_eq!(rel("/etc/passwd").unwrap(), Path::new("real/etc/passwd"));
        assert_eq!(rel("etc/up/etc").unwrap(), Path::new("real/etc"));
        assert_eq!(rel("/escape").unwrap(), Path::new("tmp"));
        assert!(rel("/loop").is_err());
        assert!(rel("/nope/x").is_err());
        let (t, meta) = locate(&r, &none, "/etc").unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "the last component is not followed"
        );
        assert_eq!(t.rel, Path::new("etc"));
        let stat = path_stat(&r, &none, "/etc", &meta);
        assert_eq!(stat["linkTarget"], "/real/etc");
        assert_eq!(stat["mode"], (1u32 << 27) | 0o777);
        let (_, meta) = locate(&r, &none, "/etc/").unwrap();
        assert!(meta.is_dir(), "a trailing slash follows it");
        assert_eq!(
            locate(&r, &none, "/real/etc/passwd/")
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOTDIR)
        );
    }

    #[test]
    fn go_formats() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), 2147484141);
        assert_eq!(go_time(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(go_time(1, 120_000_000), "1970-01-01T00:00:01.12Z");
    }
}
