//! Where an archive path lands under the root, and whether a symlink's
//! target stays inside it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why an archive path cannot be placed under the root.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PathProblem {
    Empty,
    Nul,
    Absolute,
    Escapes,
}

/// Turns an archive path into a path relative to the root, resolving `.`
/// and `..` lexically; the root itself comes back empty.
pub(super) fn normalize(raw: &[u8]) -> Result<PathBuf, PathProblem> {
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
pub(super) fn symlink_escapes(link: &Path, target: &[u8]) -> bool {
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

#[cfg(test)]
mod tests {
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
    fn names_with_nul_bytes_are_refused() {
        assert_eq!(normalize(b"a\0b"), Err(PathProblem::Nul));
    }
}
