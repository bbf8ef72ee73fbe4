//! Whiteouts: the `.wh.` names with which a layer hides what lower layers
//! put in place.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{self, Mode, SFlag};

use super::fsops::{list_dir, lstat_at, open_dir_at, remove_at, set_xattr, Node};
use super::metadata::Meta;
use super::unpacker::{Blocked, Unpacker};
use super::{UnpackError, WhiteoutMode};

/// What a `.wh.`-prefixed name asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Whiteout<'a> {
    /// `.wh..wh..opq`: hide everything lower layers have in this directory.
    Opaque,
    /// `.wh.NAME`: hide NAME.
    Remove(&'a OsStr),
    /// Other `.wh..wh.` names (aufs bookkeeping): meaningless here.
    Meta,
    /// `.wh.`, `.wh..`, `.wh...`: names nothing that can be hidden.
    Invalid,
}

pub(super) fn classify_whiteout(name: &OsStr) -> Option<Whiteout<'_>> {
    let rest = name.as_bytes().strip_prefix(b".wh.")?;
    Some(match rest {
        b".wh..opq" => Whiteout::Opaque,
        r if r.starts_with(b".wh.") => Whiteout::Meta,
        b"" | b"." | b".." => Whiteout::Invalid,
        r => Whiteout::Remove(OsStr::from_bytes(r)),
    })
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

impl Unpacker<'_> {
    pub(super) fn whiteout(
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
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};
    use std::io;
    use std::os::fd::OwnedFd;

    use tar::EntryType;

    use super::*;
    use crate::unpack::unpack_layer;

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

    fn open(path: &Path) -> OwnedFd {
        OwnedFd::from(File::open(path).unwrap())
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
