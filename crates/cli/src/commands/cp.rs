//! `servin cp`: copy between a container and the local filesystem, a tar
//! over `/containers/{id}/archive` each way, placed as docker places it.

use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::Result;
use base64::Engine as _;
use hyper::Method;
use serde::Deserialize;
use tokio_util::io::SyncIoBridge;

use super::Ctx;
use crate::archive::{self, mode, CopyInfo};
use crate::client::{body_reader, empty_body, reader_body, Client};
use crate::containers;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    quiet: Option<String>,
    #[arg(value_name = "SRC DEST", allow_hyphen_values = true)]
    args: Vec<String>,
}

/// The `X-Docker-Container-Path-Stat` header (`container.PathStat`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PathStat {
    mode: u32,
    #[serde(rename = "linkTarget")]
    link_target: String,
}

/// Docker's `splitCpArg`: `CONTAINER:PATH`, unless it is a local path.
fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.starts_with('.') => (Some(c), p),
        _ => (None, arg),
    }
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    for arg in &args.args {
        usage.reject_flag(Some(arg))?;
    }
    usage.exact_args(&args.args, 2)?;
    if args.args[0].is_empty() {
        anyhow::bail!("source can not be empty");
    }
    if args.args[1].is_empty() {
        anyhow::bail!("destination can not be empty");
    }
    let quiet = match args.quiet.as_deref() {
        Some(v) => crate::opts::units::parse_bool(v).map_err(|e| {
            usage.flag_error(&format!(
                "invalid argument {v:?} for \"-q, --quiet\" flag: {e}"
            ))
        })?,
        None => !std::io::stdout().is_terminal(),
    };
    let (src_container, src) = split_arg(&args.args[0]);
    let (dst_container, dst) = split_arg(&args.args[1]);
    match (src_container, dst_container) {
        (Some(c), None) => {
            let client = ctx.client().await?;
            from_container(client, c, src, dst, args.follow_link, quiet).await
        }
        (None, Some(c)) => {
            let client = ctx.client().await?;
            to_container(client, c, src, dst, &args, quiet).await
        }
        (Some(_), Some(_)) => anyhow::bail!("copying between containers is not supported"),
        (None, None) => anyhow::bail!("must specify at least one container source"),
    }
}

/// `filepath.Abs` keeping a trailing `/` or `/.` (docker's
/// `resolveLocalPath`).
fn resolve_local(path: &str) -> Result<String> {
    let abs = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", std::env::current_dir()?.display())
    };
    Ok(archive::preserve_trailing(&archive::clean(&abs), path))
}

async fn stat_path(client: &Client, container: &str, path: &str) -> Result<PathStat> {
    let resp = client
        .request(
            Method::HEAD,
            &format!("{}/archive", containers::user_path(container)?),
            &[("path", path.to_string())],
            &[],
            empty_body(),
        )
        .await?;
    decode_stat(resp.headers())
}

fn decode_stat(headers: &hyper::HeaderMap) -> Result<PathStat> {
    let encoded = headers
        .get("X-Docker-Container-Path-Stat")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| anyhow::anyhow!("unable to decode container path stat header: {e}"))?;
    crate::client::decode(&raw)
        .map_err(|e| anyhow::anyhow!("unable to decode container path stat header: {e}"))
}

/// Docker's `GetRebaseName`.
fn rebase_name(path: &str, resolved: &str) -> (String, String) {
    let mut resolved = resolved.to_string();
    if (path == "." || path.ends_with("/.")) && !(resolved == "." || resolved.ends_with("/.")) {
        resolved.push_str("/.");
    }
    if path.ends_with('/') && !resolved.ends_with('/') {
        resolved.push('/');
    }
    let base = |p: &str| archive::split_dir_entry(p).1;
    let name = if base(path) != base(&resolved) {
        base(path)
    } else {
        String::new()
    };
    (resolved, name)
}

async fn from_container(
    client: &Client,
    container: &str,
    src: &str,
    dst: &str,
    follow_link: bool,
    quiet: bool,
) -> Result<()> {
    let dst = if dst == "-" {
        dst.to_string()
    } else {
        resolve_local(dst)?
    };
    validate_output_path(&dst)?;
    let mut src = src.to_string();
    let mut rebase = String::new();
    if follow_link {
        if let Ok(stat) = stat_path(client, container, &src).await {
            if stat.mode & mode::SYMLINK != 0 {
                let mut target = stat.link_target.clone();
                if !target.starts_with('/') {
                    let (parent, _) = archive::split_dir_entry(&src);
                    target = archive::clean(&format!("{parent}/{target}"));
                }
                let (resolved, name) = rebase_name(&src, &target);
                src = resolved;
                rebase = name;
            }
        }
    }
    let resp = client
        .request(
            Method::GET,
            &format!("{}/archive", containers::user_path(container)?),
            &[("path", src.clone())],
            &[],
            empty_body(),
        )
        .await?;
    let stat = decode_stat(resp.headers())
        .map_err(|e| anyhow::anyhow!("unable to get resource stat from response: {e}"))?;
    let body = body_reader(resp.into_body());
    if dst == "-" {
        let mut body = body;
        let mut out = tokio::io::stdout();
        tokio::io::copy(&mut body, &mut out).await?;
        tokio::io::AsyncWriteExt::flush(&mut out).await?;
        return Ok(());
    }
    let src_info = CopyInfo {
        path: src.clone(),
        exists: true,
        is_dir: stat.mode & mode::DIR != 0,
        rebase_name: rebase.clone(),
    };
    let dst_info = destination_info(&dst)?;
    let placement = archive::prepare_copy(&src_info, &dst_info).map_err(anyhow::Error::msg)?;
    // A link followed: its entry carries the target's name first.
    let first = (!rebase.is_empty()).then(|| (archive::split_dir_entry(&src).1, rebase.clone()));
    let rename = match (first, placement.rename) {
        (Some((old, mid)), Some((_, new))) => Some((old, new)).filter(|_| !mid.is_empty()),
        (Some(r), None) => Some(r),
        (None, r) => r,
    };
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = Counting {
        inner: SyncIoBridge::new(body),
        count: counter.clone(),
    };
    let dst_dir = placement.dst_dir.clone();
    tokio::task::spawn_blocking(move || {
        archive::unpack(reader, Path::new(&dst_dir), rename.as_ref())
    })
    .await??;
    if !quiet {
        eprintln!(
            "Successfully copied {} to {dst}",
            crate::format::human_size_with_precision(
                counter.load(std::sync::atomic::Ordering::Relaxed) as f64,
                3
            )
        );
    }
    Ok(())
}

/// Counts the bytes read through it, for "Successfully copied 2.05kB".
struct Counting<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Docker's `ValidateOutputPath`.
fn validate_output_path(path: &str) -> Result<()> {
    if path == "-" {
        return Ok(());
    }
    let (dir, _) = archive::split_dir_entry(&archive::clean(path));
    if dir != "." && !Path::new(&dir).exists() {
        anyhow::bail!("invalid output path: directory {dir:?} does not exist");
    }
    if let Ok(meta) = std::fs::metadata(path) {
        let m = archive::go_mode(&meta);
        if m & (mode::DEVICE | mode::IRREGULAR) != 0 && !meta.is_dir() && !meta.is_file() {
            anyhow::bail!(
                "invalid output path: {path:?} must be a directory or a regular file: got a device"
            );
        }
    }
    Ok(())
}

/// Docker's `CopyInfoDestinationPath`: follows symlinks; a missing path
/// needs an existing parent folder.
fn destination_info(path: &str) -> Result<CopyInfo> {
    let mut path = path.to_string();
    for _ in 0..=10 {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)?.to_string_lossy().into_owned();
                path = if target.starts_with('/') {
                    target
                } else {
                    let (parent, _) = archive::split_dir_entry(&path);
                    archive::clean(&format!("{parent}/{target}"))
                };
            }
            Ok(meta) => {
                return Ok(CopyInfo {
                    path,
                    exists: true,
                    is_dir: meta.is_dir(),
                    rebase_name: String::new(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (parent, _) = archive::split_dir_entry(&path);
                let meta = std::fs::metadata(&parent)
                    .map_err(|e| super::path_error("stat", &parent, &e))?;
                if !meta.is_dir() {
                    anyhow::bail!("not a directory");
                }
                return Ok(CopyInfo {
                    path,
                    ..Default::default()
                });
            }
            Err(e) => return Err(super::path_error("lstat", &path, &e)),
        }
    }
    anyhow::bail!("too many symlinks in {path}")
}

async fn to_container(
    client: &Client,
    container: &str,
    src: &str,
    dst: &str,
    args: &Args,
    quiet: bool,
) -> Result<()> {
    let src = if src == "-" {
        src.to_string()
    } else {
        resolve_local(src)?
    };
    let mut dst_info = CopyInfo {
        path: dst.to_string(),
        ..Default::default()
    };
    let mut stat = stat_path(client, container, dst).await;
    if let Ok(s) = &stat {
        if s.mode & mode::SYMLINK != 0 {
            let mut target = s.link_target.clone();
            if !target.starts_with('/') {
                let (parent, _) = archive::split_dir_entry(dst);
                target = archive::clean(&format!("{parent}/{target}"));
            }
            dst_info.path = target.clone();
            stat = stat_path(client, container, &target).await;
        }
    }
    if let Ok(s) = &stat {
        if s.mode & mode::DEVICE != 0 {
            anyhow::bail!("destination \"{container}:{dst}\" must be a directory or a regular file: got a device");
        }
        if s.mode & mode::IRREGULAR != 0 {
            anyhow::bail!("destination \"{container}:{dst}\" must be a directory or a regular file: got an irregular file");
        }
        dst_info.exists = true;
        dst_info.is_dir = s.mode & mode::DIR != 0;
    }
    let path = format!("{}/archive", containers::user_path(container)?);
    let mut query = Vec::new();
    if args.archive {
        query.push(("copyUIDGID", "true".to_string()));
    }
    query.push(("noOverwriteDirNonDir", "true".to_string()));
    if src == "-" {
        if !dst_info.is_dir {
            anyhow::bail!("destination \"{container}:{dst}\" must be a directory");
        }
        query.push(("path", dst_info.path.clone()));
        query.sort_by_key(|(k, _)| *k);
        let resp = client
            .request(
                Method::PUT,
                &path,
                &query,
                &[],
                reader_body(tokio::io::stdin()),
            )
            .await?;
        http_body_util::BodyExt::collect(resp.into_body()).await?;
        return Ok(());
    }
    let src_info = source_info(&src, args.follow_link)?;
    let placement = archive::prepare_copy(&src_info, &dst_info).map_err(anyhow::Error::msg)?;
    query.push(("path", placement.dst_dir.clone()));
    query.sort_by_key(|(k, _)| *k);
    let (writer, reader) = tokio::io::duplex(64 * 1024);
    let packer = tokio::task::spawn_blocking(move || {
        let out = SyncIoBridge::new(writer);
        archive::pack(&src_info, placement.rename.as_ref(), out)
    });
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = CountingAsync {
        inner: reader,
        count: counter.clone(),
    };
    let resp = client
        .request(Method::PUT, &path, &query, &[], reader_body(counted))
        .await;
    let packed = packer.await?;
    let resp = resp?;
    packed.map_err(|e| anyhow::anyhow!("{e}"))?;
    http_body_util::BodyExt::collect(resp.into_body()).await?;
    if !quiet {
        eprintln!(
            "Successfully copied {} to {container}:{}",
            crate::format::human_size_with_precision(
                counter.load(std::sync::atomic::Ordering::Relaxed) as f64,
                3
            ),
            dst_info.path
        );
    }
    Ok(())
}

/// Docker's `CopyInfoSourcePath`: the parent folder's links resolved (or
/// the whole path with `-L`), the name kept for the archive.
fn source_info(path: &str, follow_link: bool) -> Result<CopyInfo> {
    let (resolved, rebase) = if follow_link {
        let real = std::fs::canonicalize(path)
            .map_err(|e| super::path_error("lstat", path, &e))?
            .to_string_lossy()
            .into_owned();
        rebase_name(path, &real)
    } else {
        let (dir, base) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        let real_dir = if dir.is_empty() {
            std::env::current_dir()?
        } else {
            std::fs::canonicalize(dir).map_err(|e| super::path_error("lstat", dir, &e))?
        };
        let resolved = format!("{}/{base}", real_dir.display()).replace("//", "/");
        let mut rebase = String::new();
        if path.ends_with('/') {
            let b = archive::split_dir_entry(path).1;
            if b != archive::split_dir_entry(&resolved).1 {
                rebase = b;
            }
        }
        (resolved, rebase)
    };
    let meta = std::fs::symlink_metadata(&resolved)
        .map_err(|e| super::path_error("lstat", &resolved, &e))?;
    Ok(CopyInfo {
        path: resolved,
        exists: true,
        is_dir: meta.is_dir(),
        rebase_name: rebase,
    })
}

/// Counts bytes on their way to the daemon.
struct CountingAsync<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for CountingAsync<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_arguments_like_docker() {
        assert_eq!(split_arg("c1:/etc/hosts"), (Some("c1"), "/etc/hosts"));
        assert_eq!(split_arg("/abs:path"), (None, "/abs:path"));
        assert_eq!(split_arg("./rel:x"), (None, "./rel:x"));
        assert_eq!(split_arg("file"), (None, "file"));
        assert_eq!(split_arg("-"), (None, "-"));
    }

    #[test]
    fn rebase_names_like_docker() {
        assert_eq!(
            rebase_name("/a/link", "/a/target"),
            ("/a/target".into(), "link".into())
        );
        assert_eq!(
            rebase_name("/a/same", "/b/same"),
            ("/b/same".into(), String::new())
        );
        assert_eq!(rebase_name("/a/l/", "/a/t"), ("/a/t/".into(), "l".into()));
    }
}
