//! Running a little code inside another network namespace: a fresh thread
//! joins the netns (setns affects only the calling thread), does its work,
//! and ends. Sockets made there stay in that netns.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// Opens a netns handle (`/proc/PID/ns/net` or a bind mount of one).
pub fn open(path: &Path) -> Result<OwnedFd> {
    File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| Error::Netns {
            path: path.to_path_buf(),
            source,
        })
}

/// Runs `f` on a new thread inside the netns at `path`.
pub async fn run_in<T, F>(path: &Path, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let fd = open(path)?;
    let path: PathBuf = path.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("servin-netns".into())
        .spawn(move || {
            let joined = setns(&fd, CloneFlags::CLONE_NEWNET).map(|()| f());
            let _ = tx.send(joined);
        })
        .map_err(|source| Error::Netns {
            path: path.clone(),
            source,
        })?;
    let joined = rx.await.map_err(|_| Error::Netns {
        path: path.clone(),
        source: std::io::Error::other("the netns thread panicked"),
    })?;
    joined.map_err(|e| Error::Netns {
        path,
        source: e.into(),
    })
}
