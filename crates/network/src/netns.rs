//! Network namespaces: pinned sandboxes for containers ([`create`],
//! [`remove`]), and running a little code inside one: a fresh thread joins
//! the netns (setns affects only the calling thread), does its work, and
//! ends. Sockets made there stay in that netns.

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
pub(crate) async fn run_in<T, F>(path: &Path, f: F) -> Result<T>
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

/// Makes a new network namespace and pins it at `path` (an empty file made
/// here) with a bind mount, as `ip netns add` does: the namespace outlives
/// every process in it until [`remove`]. This is the container's network
/// sandbox: the engine builds the network in it before the container's
/// process exists and hands the path to the runtime to join.
pub async fn create(path: &Path) -> Result<()> {
    let err = |source: std::io::Error| Error::Netns {
        path: path.to_path_buf(),
        source,
    };
    std::fs::File::create(path).map_err(err)?;
    let target = path.to_path_buf();
    let made = tokio::task::spawn_blocking(move || {
        // A thread of its own: unshare changes only the calling thread, and
        // this one ends right after.
        std::thread::spawn(move || -> nix::Result<()> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
        })
        .join()
        .unwrap_or(Err(nix::errno::Errno::EINVAL))
    })
    .await
    .unwrap_or(Err(nix::errno::Errno::EINVAL));
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        return Err(err(e.into()));
    }
    Ok(())
}

/// Unpins and deletes a namespace made by [`create`]; the kernel frees it
/// (and the container ends of its veths) when nothing else holds it. A path
/// that is not there is not an error.
pub fn remove(path: &Path) -> Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::Netns {
                path: path.to_path_buf(),
                source: e.into(),
            })
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Netns {
            path: path.to_path_buf(),
            source,
        }),
    }
}
