//! `docker cp` and `docker export`: a container's filesystem read and
//! written from the host, whether the container runs or not.
//!
//! A running container's root filesystem is the overlay its shim mounted at
//! `containers/<id>/rootfs`. A stopped one's is mounted here for the length
//! of one request under `containers/<id>/.cp-<pid>-<n>/`: read-only, with
//! the container's upper directory as the topmost lower layer, or writable
//! on that upper directory with a work directory of its own. It is unmounted
//! when the request ends, however it ends (a daemon that died meanwhile
//! leaves it to the next request on that container to clean up).
//!
//! Paths are resolved as the container would resolve them, never leaving
//! its root (`resolve`); tar is written and checked by `tarball`, and
//! unpacked by the image crate's hardened layer unpacker.
//!
//! Mounts, as Docker's cp sees them: a running container is read and
//! written through its init's `/proc/<pid>/root`, so paths resolve in its
//! own mount namespace (volumes, bind mounts and tmpfs alike). A stopped
//! one's volumes, bind mounts and `/etc` files are reached by redirecting
//! their destinations to their host sources (`mounts`); its tmpfs mounts
//! are empty then, so their paths show the root filesystem beneath, as in
//! Docker. A write below a read-only mount is refused as Docker refuses it.
//!
//! A directory copied whole carries the mounts below it (a stopped
//! container's walk enters their sources).
//!
//! Not covered yet: `copyUIDGID` (`docker cp -a`).

mod mounts;
mod resolve;
mod tarball;

use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;
use servin_api::{Error, ErrorKind};
use servin_image::unpack::{unpack_layer, WhiteoutMode};
use tokio::sync::{mpsc, oneshot};

use super::record::ContainerRecord;
use crate::{Engine, Event};

use self::mounts::{container_mounts, covering, CpMount};
use self::resolve::{locate, path_stat, resolve, split_path, Dir, Redirects};

/// A tar stream written by a blocking task; an `Err` item means it broke off.
pub type TarStream = mpsc::Receiver<io::Result<Bytes>>;

/// Writes the rest of a tar stream once the request has been answered.
type Producer = Box<dyn FnOnce(&mut ChannelWriter) -> io::Result<()> + Send>;

/// The kernel takes one page of mount options; stay clear of it.
const MAX_OPTIONS: usize = 3800;
const TEMP_PREFIX: &str = ".cp-";
/// The label the unpacker puts in its messages, replaced by ours.
const LABEL: &str = "archive";

/// The container's root filesystem, reachable from here while this lives.
struct View {
    root: Dir,
    /// Mount destinations to look up in their sources (a stopped container).
    redirects: Redirects,
    // Dropped after `root`, so nothing of ours keeps the mount busy.
    _mount: Option<TempMount>,
}

/// An overlay mounted for one request: unmounted and removed on drop.
struct TempMount {
    dir: PathBuf,
}

impl TempMount {
    fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        match unmount(&self.merged()) {
            Ok(()) => {
                if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove a copy mount's directory");
                }
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot unmount a copy mount")
            }
        }
    }
}

fn c_string(s: &[u8]) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn mount_overlay(target: &Path, options: &str, read_only: bool) -> io::Result<()> {
    let fs = c_string(b"overlay")?;
    let target = c_string(target.as_os_str().as_bytes())?;
    let options = c_string(options.as_bytes())?;
    let flags = if read_only { libc::MS_RDONLY } else { 0 };
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            fs.as_ptr(),
            target.as_ptr(),
            fs.as_ptr(),
            flags,
            options.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Unmounts `target`, lazily if it is busy; not being mounted is fine.
fn unmount(target: &Path) -> io::Result<()> {
    let path = c_string(target.as_os_str().as_bytes())?;
    for flags in [0, libc::MNT_DETACH] {
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        if unsafe { libc::umount2(path.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL | libc::ENOENT) => return Ok(()),
            Some(libc::EBUSY) => continue,
            _ => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::EBUSY))
}

/// Whether `path` is a mount point in this mount namespace.
fn is_mount_point(path: &Path) -> bool {
    let escaped: String = path
        .to_string_lossy()
        .chars()
        .map(|c| match c {
            ' ' | '\t' | '\n' | '\\' => format!("\\{:03o}", c as u32),
            c => c.to_string(),
        })
        .collect();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(escaped.as_str()))
}

/// Unmounts and removes what an earlier daemon left of its copy mounts.
fn clean_stale(container_dir: &Path) {
    let ours = format!("{TEMP_PREFIX}{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(container_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) && !name.starts_with(&ours) {
            let stale = TempMount { dir: e.path() };
            drop(stale);
        }
    }
}

/// The root directory of process `pid`, in its own mount namespace, if it
/// is the container's (the same directory as the overlay at `rootfs`): a
/// pid reused by another process is never taken for the container.
fn namespace_root(pid: u32, rootfs: &Path) -> Option<Dir> {
    use std::os::unix::fs::MetadataExt;
    let root = Dir::open(Path::new(&format!("/proc/{pid}/root"))).ok()?;
    let (a, b) = (root.stat().ok()?, std::fs::metadata(rootfs).ok()?);
    (a.dev() == b.dev() && a.ino() == b.ino()).then_some(root)
}

fn io_error(what: &str, e: io::Error) -> Error {
    Error::internal(format!("{what}: {e}"))
}

/// Docker's 404 for a path that is not there.
fn not_found(e: io::Error, path: &str, container: &str) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => Error::not_found(format!(
            "Could not find the file {path} in container {container}"
        )),
        _ => Error::internal(format!("Cannot read {path} in container {container}: {e}")),
    }
}

/// Sends what a blocking writer writes to a response body, in chunks.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

/// Runs `job` on a blocking thread: its first result (a stat, or an error)
/// answers the request, then its producer writes the body.
async fn spawn_tar<F>(job: F) -> Result<(Value, TarStream), Error>
where
    F: FnOnce() -> Result<(Value, Producer), Error> + Send + 'static,
{
    let (ready_tx, ready_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let (value, produce) = match job() {
            Ok(v) => v,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let _ = ready_tx.send(Ok(value));
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = produce(&mut w).and_then(|()| w.flush()) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!(error = %e, "a container archive broke off");
            }
            let _ = tx.blocking_send(Err(e));
        }
    });
    let value = ready_rx
        .await
        .map_err(|_| Error::internal("The archive task ended before it started"))??;
    Ok((value, rx))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("Blocking task failed: {e}")))?
}

/// The unpacker's messages speak of a layer; ours of the archive.
fn archive_error(e: &servin_image::unpack::UnpackError) -> Error {
    let err = Error::from_chain(e.kind(), e);
    let message = err
        .message
        .replacen(&format!("Layer {LABEL} "), "The archive ", 1)
        .replacen(&format!("layer {LABEL} "), "the archive ", 1);
    Error::new(err.kind, message)
}

impl Engine {
    /// The container's mounts, from its record.
    fn cp_mounts(&self, rec: &ContainerRecord) -> Vec<CpMount> {
        container_mounts(
            &rec.host_config,
            &rec.anonymous_volumes,
            &self.config().data_root.join("volumes"),
            &self.containers().dir(&rec.id),
        )
    }

    /// The container's filesystem: a running one's as its init sees it, a
    /// stopped one's mounted here.
    /// Without `with_mounts` (export), only the root filesystem.
    fn filesystem_view(
        &self,
        rec: &ContainerRecord,
        writable: bool,
        with_mounts: bool,
    ) -> Result<View, Error> {
        let dir = self.containers().dir(&rec.id);
        let rootfs = dir.join("rootfs");
        let redirects = || match with_mounts {
            true => mounts::redirects(&self.cp_mounts(rec)),
            false => Redirects::default(),
        };
        if rec.state.is_running() && is_mount_point(&rootfs) {
            let pid = rec.state.pid().filter(|_| with_mounts);
            if let Some(root) = pid.and_then(|pid| namespace_root(pid, &rootfs)) {
                return Ok(View {
                    root,
                    redirects: Redirects::default(),
                    _mount: None,
                });
            }
            // The process is gone (the container is exiting): its root
            // filesystem, without its mounts.
            let root = Dir::open(&rootfs)
                .map_err(|e| io_error("Cannot open the container's root filesystem", e))?;
            return Ok(View {
                root,
                redirects: redirects(),
                _mount: None,
            });
        }
        clean_stale(&dir);
        let store = self.image_store();
        let image = store.resolve(&rec.image_id)?;
        let mut lower: Vec<PathBuf> = image
            .layers
            .iter()
            .rev()
            .map(|l| store.snapshots().path(&l.diff_id))
            .collect();
        let upper = dir.join("upper");
        std::fs::create_dir_all(&upper)
            .map_err(|e| io_error(&format!("Cannot create {}", upper.display()), e))?;
        let tmp = dir.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            &super::new_id()[..12]
        ));
        std::fs::create_dir(&tmp)
            .map_err(|e| io_error(&format!("Cannot create {}", tmp.display()), e))?;
        let mount = TempMount { dir: tmp.clone() };
        let create = |p: &Path| {
            std::fs::create_dir_all(p)
                .map_err(|e| io_error(&format!("Cannot create {}", p.display()), e))
        };
        create(&mount.merged())?;
        if !writable {
            lower.insert(0, upper.clone());
        }
        let joined = |l: &[PathBuf]| {
            l.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        };
        if joined(&lower).len() > MAX_OPTIONS {
            create(&tmp.join("l"))?;
            for (i, l) in lower.iter_mut().enumerate() {
                let link = tmp.join("l").join(i.to_string());
                std::os::unix::fs::symlink(&*l, &link)
                    .map_err(|e| io_error(&format!("Cannot link {}", l.display()), e))?;
                *l = link;
            }
        }
        let mut options = format!("lowerdir={}", joined(&lower));
        if writable {
            create(&tmp.join("work"))?;
            options.push_str(&format!(
                ",upperdir={},workdir={}",
                upper.display(),
                tmp.join("work").display()
            ));
        }
        mount_overlay(&mount.merged(), &options, !writable).map_err(|e| {
            io_error(
                &format!(
                    "Cannot mount the filesystem of container {}",
                    rec.short_id()
                ),
                e,
            )
        })?;
        let root = Dir::open(&mount.merged())
            .map_err(|e| io_error("Cannot open the container's filesystem", e))?;
        Ok(View {
            root,
            redirects: redirects(),
            _mount: Some(mount),
        })
    }

    /// Unpacks `body` into the directory `path`; returns the container.
    fn extract_archive(
        &self,
        name: &str,
        path: &str,
        no_overwrite_dir_non_dir: bool,
        body: &mut dyn Read,
    ) -> Result<ContainerRecord, Error> {
        let rec = self.containers().get(name)?;
        let view = self.filesystem_view(&rec, true, true)?;
        let t = resolve(&view.root, &view.redirects, path).map_err(|e| not_found(e, path, name))?;
        if let Some(n) = &t.name {
            t.dir.lstat(n).map_err(|e| not_found(e, path, name))?;
            return Err(Error::invalid("extraction point is not a directory"));
        }
        // As Docker: a read-only mount refuses, a writable one accepts even
        // when the root filesystem is read-only.
        match covering(&self.cp_mounts(&rec), &t.rel) {
            Some(m) if m.readonly => {
                return Err(Error::invalid("mounted volume is marked read-only"))
            }
            Some(_) => {}
            None if rec.host_config["ReadonlyRootfs"].as_bool().unwrap_or(false) => {
                return Err(Error::invalid("container rootfs is marked read-only"))
            }
            None => {}
        }
        let refusal = std::rc::Rc::new(std::cell::RefCell::new(None));
        let reader = tarball::OverwriteCheck::new(
            body,
            &t.dir,
            t.container_path(),
            no_overwrite_dir_non_dir,
            refusal.clone(),
        );
        let res = unpack_layer(reader, &t.dir.path(), WhiteoutMode::Apply, LABEL);
        drop(t);
        drop(view);
        match (res, refusal.take()) {
            (Ok(_), _) => Ok(rec),
            (Err(_), Some(message)) => Err(Error::new(ErrorKind::InvalidArgument, message)),
            (Err(e), None) => Err(archive_error(&e)),
        }
    }

    /// `HEAD /containers/{id}/archive`: Docker's stat of `path`.
    pub async fn container_path_stat(&self, name: &str, path: &str) -> Result<Value, Error> {
        let rec = self.containers().get(name)?;
        let (engine, name, path) = (self.clone(), name.to_string(), path.to_string());
        blocking(move || {
            let view = engine.filesystem_view(&rec, false, true)?;
            let (_, meta) = locate(&view.root, &view.redirects, &path)
                .map_err(|e| not_found(e, &path, &name))?;
            Ok(path_stat(&view.root, &view.redirects, &path, &meta))
        })
        .await
    }

    /// `GET /containers/{id}/archive`: the stat of `path` and a tar of it,
    /// its entries named after the path's last component.
    pub async fn container_archive(
        &self,
        name: &str,
        path: &str,
    ) -> Result<(Value, TarStream), Error> {
        let rec = self.containers().get(name)?;
        let (engine, name, path) = (self.clone(), name.to_string(), path.to_string());
        let event_rec = rec.clone();
        let out = spawn_tar(move || {
            let mut view = engine.filesystem_view(&rec, false, true)?;
            let (target, meta) = locate(&view.root, &view.redirects, &path)
                .map_err(|e| not_found(e, &path, &name))?;
            let stat = path_stat(&view.root, &view.redirects, &path, &meta);
            let shown = split_path(&path).2;
            // The root itself is archived as `/`, its entries as `/bin`, …
            let top = if shown == "/" { String::new() } else { shown };
            let produce: Producer = Box::new(move |w| {
                let redirects = std::mem::take(&mut view.redirects);
                let mut tar = tarball::TarWriter::with_mounts(w, redirects, target.rel.clone());
                tar.add(&target.dir, target.name.as_deref(), top.as_bytes())?;
                // Unmounted before the client can see the archive end.
                drop(target);
                drop(view);
                tar.finish()
            });
            Ok((stat, produce))
        })
        .await?;
        self.emit(Event::container("archive-path", &event_rec.id, &event_rec));
        Ok(out)
    }

    /// `GET /containers/{id}/export`: the whole filesystem as a tar.
    pub async fn export_container(&self, name: &str) -> Result<TarStream, Error> {
        let rec = self.containers().get(name)?;
        let engine = self.clone();
        let event_rec = rec.clone();
        let (_, stream) = spawn_tar(move || {
            let view = engine.filesystem_view(&rec, false, false)?;
            let produce: Producer = Box::new(move |w| {
                let mut tar = tarball::TarWriter::new(w);
                tar.add_children(&view.root, None)?;
                drop(view);
                tar.finish()
            });
            Ok((Value::Null, produce))
        })
        .await?;
        self.emit(Event::container("export", &event_rec.id, &event_rec));
        Ok(stream)
    }

    /// `PUT /containers/{id}/archive`: unpacks a tar into the directory
    /// `path` (a symlink to one is followed). Entries cannot leave it.
    pub async fn extract_to_container(
        &self,
        name: &str,
        path: &str,
        no_overwrite_dir_non_dir: bool,
        body: Box<dyn Read + Send>,
    ) -> Result<(), Error> {
        let (engine, name, path) = (self.clone(), name.to_string(), path.to_string());
        let rec = blocking(move || {
            let mut body = body;
            let res = engine.extract_archive(&name, &path, no_overwrite_dir_non_dir, &mut body);
            // Read the body to its end whatever happened (the tar's trailing
            // blocks too): a client still sending would see a broken pipe,
            // not our answer.
            let _ = io::copy(&mut body, &mut io::sink());
            res
        })
        .await?;
        self.emit(Event::container("extract-to-dir", &rec.id, &rec));
        Ok(())
    }
}
