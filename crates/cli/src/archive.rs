//! Local tar work for `cp`, as docker's `go-archive` does it: pack a file
//! or folder under a (possibly rebased) name, and unpack a container's tar
//! into a folder with its top name rebased, refusing paths that escape.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

/// `strings.Replace(name, old, new, 1)`, the way docker rebases names.
pub fn rebase(name: &str, old: &str, new: &str) -> String {
    let old = if old == "/" { "" } else { old };
    if old.is_empty() {
        return format!("{new}{name}");
    }
    name.replacen(old, new, 1)
}

/// Go's `filepath.Clean`.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn specifies_current_dir(path: &str) -> bool {
    path == "." || path.ends_with("/.")
}

/// Docker's `SplitPathDirEntry`: parent and last element, keeping a
/// trailing `/.` as the element `.`.
pub fn split_dir_entry(path: &str) -> (String, String) {
    let mut cleaned = clean(path);
    if specifies_current_dir(path) {
        cleaned = format!("{cleaned}/.");
    }
    match cleaned.rfind('/') {
        Some(0) => ("/".into(), cleaned[1..].to_string()),
        Some(i) => (cleaned[..i].to_string(), cleaned[i + 1..].to_string()),
        None => (".".into(), cleaned),
    }
}

/// Docker's `PreserveTrailingDotOrSeparator`.
pub fn preserve_trailing(cleaned: &str, original: &str) -> String {
    let mut out = cleaned.to_string();
    if !specifies_current_dir(&out) && specifies_current_dir(original) {
        if !out.ends_with('/') {
            out.push('/');
        }
        out.push('.');
    }
    if !out.ends_with('/') && original.ends_with('/') {
        out.push('/');
    }
    out
}

/// Whether a path asks for a directory (`x/` or `x/.`).
pub fn asserts_directory(path: &str) -> bool {
    path.ends_with('/') || specifies_current_dir(path)
}

/// What a copy's source or destination is (docker's `CopyInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyInfo {
    pub path: String,
    pub exists: bool,
    pub is_dir: bool,
    pub rebase_name: String,
}

/// How a copy lands: the folder to unpack in and the renaming of the
/// archive's top entry (docker's `PrepareArchiveCopy`).
#[derive(Debug, PartialEq, Eq)]
pub struct Placement {
    pub dst_dir: String,
    /// `(old, new)` for the top name, if it changes.
    pub rename: Option<(String, String)>,
}

pub fn prepare_copy(src: &CopyInfo, dst: &CopyInfo) -> Result<Placement, &'static str> {
    let (dst_dir, dst_base) = split_dir_entry(&dst.path);
    let (_, mut src_base) = split_dir_entry(&src.path);
    if !src.rebase_name.is_empty() {
        src_base = src.rebase_name.clone();
    }
    if dst.exists && dst.is_dir {
        return Ok(Placement {
            dst_dir: dst.path.clone(),
            rename: None,
        });
    }
    if dst.exists && src.is_dir {
        return Err("cannot copy directory");
    }
    if !dst.exists && !src.is_dir && asserts_directory(&dst.path) {
        return Err("no such directory");
    }
    Ok(Placement {
        dst_dir,
        rename: Some((src_base, dst_base)),
    })
}

/// Packs `src` (resolved, with its `rebase_name`) as docker's
/// `TarResource`, renaming its top entry again by `rename`, into `out`.
pub fn pack<W: Write>(src: &CopyInfo, rename: Option<&(String, String)>, out: W) -> io::Result<()> {
    let (dir, base) = split_dir_entry(&src.path);
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let root = Path::new(&dir).join(&base);
    let name_for = |rel: &str| {
        let mut name = if rel.is_empty() {
            base.clone()
        } else if base == "." {
            format!("./{rel}")
        } else {
            format!("{base}/{rel}")
        };
        if !src.rebase_name.is_empty() {
            name = rebase(&name, &base, &src.rebase_name);
        }
        if let Some((old, new)) = rename {
            name = rebase(&name, old, new);
        }
        name
    };
    add_tree(&mut builder, &root, "", &name_for)?;
    builder.into_inner()?.flush()
}

fn add_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    rel: &str,
    name_for: &dyn Fn(&str) -> String,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let name = name_for(rel);
    builder.append_path_with_name(path, &name)?;
    if meta.is_dir() {
        let mut children: Vec<_> = fs::read_dir(path)?.collect::<Result<_, _>>()?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let child_name = child.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                child_name
            } else {
                format!("{rel}/{child_name}")
            };
            add_tree(builder, &child.path(), &child_rel, name_for)?;
        }
    }
    Ok(())
}

/// Unpacks `archive` into `dst_dir`, renaming the top name by `rename`,
/// never writing outside `dst_dir` and never replacing a directory with a
/// file or the reverse (docker's `Untar` with `NoOverwriteDirNonDir`).
pub fn unpack<R: Read>(
    archive: R,
    dst_dir: &Path,
    rename: Option<&(String, String)>,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(archive);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    let root = fs::canonicalize(dst_dir)?;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = match rename {
            Some((old, new)) => rebase(&raw, old, new),
            None => raw.clone(),
        };
        let Some(rel) = relative_inside(&name) else {
            return Err(io::Error::other(format!(
                "invalid tar header: {raw:?} is outside of {:?}",
                dst_dir.display()
            )));
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = root.join(&rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
            if !fs::canonicalize(parent)?.starts_with(&root) {
                return Err(io::Error::other(format!(
                    "invalid tar header: {raw:?} is outside of {:?}",
                    dst_dir.display()
                )));
            }
        }
        let kind = entry.header().entry_type();
        if let Ok(existing) = fs::symlink_metadata(&target) {
            let new_is_dir = kind.is_dir();
            if existing.is_dir() && !new_is_dir {
                return Err(io::Error::other(format!(
                    "cannot overwrite directory {:?} with non-directory {:?}",
                    target.display(),
                    raw
                )));
            }
            if !existing.is_dir() && new_is_dir {
                return Err(io::Error::other(format!(
                    "cannot overwrite non-directory {:?} with directory {:?}",
                    target.display(),
                    raw
                )));
            }
            if !existing.is_dir() {
                fs::remove_file(&target)?;
            }
        }
        if kind.is_hard_link() {
            let link = entry
                .link_name()?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let link = match rename {
                Some((old, new)) => rebase(&link, old, new),
                None => link,
            };
            let source = relative_inside(&link)
                .map(|l| root.join(l))
                .ok_or_else(|| io::Error::other(format!("invalid hardlink {link:?} in tar")))?;
            fs::hard_link(source, &target)?;
            continue;
        }
        if kind.is_dir() && target.is_dir() {
            let mode = entry.header().mode()?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode & 0o7777))?;
            continue;
        }
        entry.unpack(&target)?;
    }
    Ok(())
}

/// A tar name as a relative path that stays inside the destination.
fn relative_inside(name: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Go's `os.FileMode` bits in the API's path stat.
pub mod mode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const IRREGULAR: u32 = 1 << 19;
}

/// A local file's mode in Go's `os.FileMode` bits (type bits only).
pub fn go_mode(meta: &fs::Metadata) -> u32 {
    let ft = meta.file_type();
    let mut m = meta.mode() & 0o777;
    if ft.is_dir() {
        m |= mode::DIR;
    }
    if ft.is_symlink() {
        m |= mode::SYMLINK;
    }
    use std::os::unix::fs::FileTypeExt as _;
    if ft.is_block_device() || ft.is_char_device() {
        m |= mode::DEVICE;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_like_go_archive() {
        assert_eq!(split_dir_entry("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split_dir_entry("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split_dir_entry("/a/b/."), ("/a/b".into(), ".".into()));
        assert_eq!(split_dir_entry("/b"), ("/".into(), "b".into()));
        assert_eq!(preserve_trailing("/x/y", "y/."), "/x/y/.");
        assert_eq!(preserve_trailing("/x/y", "y/"), "/x/y/");
        assert_eq!(clean("a/../../b/./c/"), "../b/c");
        assert_eq!(rebase("dir/file", "dir", "new"), "new/file");
        assert_eq!(rebase("./file", ".", "new"), "new/file");
    }

    #[test]
    fn placements_like_prepare_archive_copy() {
        let file = CopyInfo {
            path: "/src/f".into(),
            exists: true,
            ..Default::default()
        };
        let dir = CopyInfo {
            path: "/src/d".into(),
            exists: true,
            is_dir: true,
            ..Default::default()
        };
        let existing_dir = CopyInfo {
            path: "/dst".into(),
            exists: true,
            is_dir: true,
            ..Default::default()
        };
        let new_path = CopyInfo {
            path: "/dst/new".into(),
            ..Default::default()
        };
        assert_eq!(
            prepare_copy(&file, &existing_dir).unwrap(),
            Placement {
                dst_dir: "/dst".into(),
                rename: None
            }
        );
        assert_eq!(
            prepare_copy(&dir, &new_path).unwrap(),
            Placement {
                dst_dir: "/dst".into(),
                rename: Some(("d".into(), "new".into()))
            }
        );
        let existing_file = CopyInfo {
            path: "/dst/f2".into(),
            exists: true,
            ..Default::default()
        };
        assert_eq!(
            prepare_copy(&dir, &existing_file).unwrap_err(),
            "cannot copy directory"
        );
        let wants_dir = CopyInfo {
            path: "/dst/nope/".into(),
            ..Default::default()
        };
        assert_eq!(
            prepare_copy(&file, &wants_dir).unwrap_err(),
            "no such directory"
        );
    }

    #[test]
    fn pack_then_unpack_renamed() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("d");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/f.txt"), b"hi").unwrap();
        std::os::unix::fs::symlink("sub/f.txt", src.join("link")).unwrap();
        let info = CopyInfo {
            path: src.to_string_lossy().into_owned(),
            exists: true,
            is_dir: true,
            ..Default::default()
        };
        let mut tar = Vec::new();
        pack(&info, Some(&("d".to_string(), "e".to_string())), &mut tar).unwrap();
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        unpack(&tar[..], &out, None).unwrap();
        assert_eq!(fs::read(out.join("e/sub/f.txt")).unwrap(), b"hi");
        assert_eq!(
            fs::read_link(out.join("e/link")).unwrap(),
            PathBuf::from("sub/f.txt")
        );
        // A file may not replace a directory.
        let mut tar2 = Vec::new();
        let f = CopyInfo {
            path: src.join("sub/f.txt").to_string_lossy().into_owned(),
            exists: true,
            ..Default::default()
        };
        pack(&f, Some(&("f.txt".to_string(), "e".to_string())), &mut tar2).unwrap();
        let err = unpack(&tar2[..], &out, None).unwrap_err().to_string();
        assert!(err.starts_with("cannot overwrite directory"), "{err}");
    }

    #[test]
    fn refuses_to_escape() {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let name = b"../evil";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let err = unpack(&tar[..], tmp.path(), None).unwrap_err().to_string();
        assert!(err.contains("is outside of"), "{err}");
        assert!(!tmp.path().parent().unwrap().join("evil").exists());
    }
}
