//! The container's root filesystem: an overlay of the image layers with a
//! per-container upper directory, mounted on the host at `STATE_DIR/rootfs`.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::RuntimeError;

/// The kernel takes at most one page of mount options.
const MAX_OPTIONS: usize = 4000;

/// Where the overlay of one container lives.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Image layers, lowest first.
    pub layers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub target: PathBuf,
}

impl Overlay {
    /// The layout inside a container's state directory.
    pub fn in_state_dir(state_dir: &Path, layers: &[PathBuf]) -> Self {
        Overlay {
            layers: layers.to_vec(),
            upper: state_dir.join("upper"),
            work: state_dir.join("work"),
            target: state_dir.join("rootfs"),
        }
    }

    /// `lowerdir=…,upperdir=…,workdir=…` with absolute paths.
    fn options(&self) -> String {
        let lower: Vec<String> = self
            .layers
            .iter()
            .rev()
            .map(|l| l.display().to_string())
            .collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upper.display(),
            self.work.display()
        )
    }

    /// The same options through short symlinks `l/<n>` next to the upper
    /// directory, relative to that directory (as Docker's overlay2 does).
    fn short_options(&self, base: &Path) -> Result<String, RuntimeError> {
        let links = base.join("l");
        let _ = std::fs::remove_dir_all(&links);
        std::fs::create_dir_all(&links)
            .map_err(|e| RuntimeError::io(format!("create {}", links.display()), e))?;
        for (i, layer) in self.layers.iter().enumerate() {
            std::os::unix::fs::symlink(layer, links.join(i.to_string()))
                .map_err(|e| RuntimeError::io(format!("link layer {}", layer.display()), e))?;
        }
        let lower: Vec<String> = (0..self.layers.len())
            .rev()
            .map(|i| format!("l/{i}"))
            .collect();
        let rel = |p: &Path| {
            p.strip_prefix(base)
                .map(|r| r.display().to_string())
                .unwrap_or_else(|_| p.display().to_string())
        };
        Ok(format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            rel(&self.upper),
            rel(&self.work)
        ))
    }

    /// Mounts the overlay. With many layers it changes the process's working
    /// directory for the call: use it only from a single-threaded process.
    pub fn mount(&self) -> Result<(), RuntimeError> {
        if self.layers.is_empty() {
            return Err(RuntimeError::InvalidSpec(
                "Container has no image layers".into(),
            ));
        }
        for l in &self.layers {
            if !l.is_dir() {
                return Err(RuntimeError::InvalidSpec(format!(
                    "Image layer {} is not a directory",
                    l.display()
                )));
            }
        }
        // A shim that died without cleaning up may have left the overlay mounted.
        unmount_all_under(&self.target)?;
        for d in [&self.upper, &self.work, &self.target] {
            std::fs::create_dir_all(d)
                .map_err(|e| RuntimeError::io(format!("create {}", d.display()), e))?;
        }
        let mut opts = self.options();
        let mut restore_cwd = None;
        if opts.len() > MAX_OPTIONS {
            let base = self.upper.parent().unwrap_or(Path::new("/")).to_path_buf();
            opts = self.short_options(&base)?;
            let cwd = std::env::current_dir()
                .map_err(|e| RuntimeError::io("read the working directory", e))?;
            std::env::set_current_dir(&base)
                .map_err(|e| RuntimeError::io(format!("enter {}", base.display()), e))?;
            restore_cwd = Some(cwd);
        }
        let res = mount(
            Some("overlay"),
            &self.target,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        );
        if let Some(cwd) = restore_cwd {
            let _ = std::env::set_current_dir(cwd);
        }
        res.map_err(|e| {
            RuntimeError::sys(
                format!(
                    "mount the overlay root filesystem at {}",
                    self.target.display()
                ),
                e,
            )
        })
    }

    /// Unmounts the overlay if mounted (lazily when busy).
    pub fn unmount(&self) -> Result<(), RuntimeError> {
        unmount_all_under(&self.target)?;
        if let Some(base) = self.upper.parent() {
            let _ = std::fs::remove_dir_all(base.join("l"));
        }
        Ok(())
    }
}

/// Unmounts `path` and every mount below it, deepest first.
pub fn unmount_all_under(path: &Path) -> Result<(), RuntimeError> {
    let mut points: Vec<PathBuf> = mount_points()?
        .into_iter()
        .filter(|p| p.starts_with(path))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        match umount2(&p, MntFlags::empty()) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(nix::Error::EBUSY) => umount2(&p, MntFlags::MNT_DETACH)
                .map_err(|e| RuntimeError::sys(format!("unmount {}", p.display()), e))?,
            Err(e) => return Err(RuntimeError::sys(format!("unmount {}", p.display()), e)),
        }
    }
    Ok(())
}

/// Mount points of this process's mount namespace, from `/proc/self/mountinfo`.
pub fn mount_points() -> Result<Vec<PathBuf>, RuntimeError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| RuntimeError::io("read /proc/self/mountinfo", e))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let d = |k: usize| u32::from(b[i + k] - b'0');
            out.push((d(1) * 64 + d(2) * 8 + d(3)) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_is_highest_first() {
        let o = Overlay::in_state_dir(Path::new("/s"), &["/l/1".into(), "/l/2".into()]);
        assert_eq!(
            o.options(),
            "lowerdir=/l/2:/l/1,upperdir=/s/upper,workdir=/s/work"
        );
    }

    #[test]
    fn short_options_link_each_layer() {
        let d = tempfile::tempdir().unwrap();
        let layers: Vec<PathBuf> = (0..3).map(|i| d.path().join(format!("layer{i}"))).collect();
        let o = Overlay::in_state_dir(&d.path().join("s"), &layers);
        let opts = o.short_options(&d.path().join("s")).unwrap();
        assert_eq!(opts, "lowerdir=l/2:l/1:l/0,upperdir=upper,workdir=work");
        assert_eq!(
            std::fs::read_link(d.path().join("s/l/0")).unwrap(),
            layers[0]
        );
    }

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
