//! `servin save`.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use futures::StreamExt as _;

use super::Ctx;
use crate::usage::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    /// Save only the given platform variant ("os[/arch[/variant]]")
    #[arg(long)]
    platform: Option<String>,
    #[arg(value_name = "IMAGE")]
    args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.min_args(&args.args, 1)?;
    let output = args.output.as_deref().filter(|o| !o.is_empty());
    if output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let mut sink = match output {
        Some(path) => {
            Sink::File(AtomicFile::create(Path::new(path)).context("failed to save image")?)
        }
        None => Sink::Stdout(std::io::stdout()),
    };
    let client = ctx.client().await?;
    let names: Vec<&str> = args.args.iter().map(String::as_str).collect();
    let mut stream = client.docker.export_images(&names);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| client.err(e))?;
        sink.write_all(&chunk)?;
    }
    match sink {
        Sink::File(f) => f.commit().context("failed to save image"),
        Sink::Stdout(mut out) => Ok(out.flush()?),
    }
}

enum Sink {
    File(AtomicFile),
    Stdout(std::io::Stdout),
}

impl Sink {
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.file.write_all(data),
            Sink::Stdout(out) => out.write_all(data),
        }
    }
}

/// Docker's `atomicwriter` checks on where it may write.
fn validate_destination(target: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    if target.as_os_str().is_empty() {
        bail!("file name is empty");
    }
    if let Some(dir) = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && *d != Path::new(".."))
    {
        let shown = dir.display().to_string();
        match std::fs::metadata(dir) {
            Err(e) => {
                return Err(super::path_error("stat", &shown, &e).context("invalid output path"))
            }
            Ok(m) if !m.is_dir() => bail!("invalid output path: stat {shown}: not a directory"),
            Ok(_) => {}
        }
    }
    let kind = match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(
                super::path_error("lstat", &target.display().to_string(), &e)
                    .context("failed to stat output path"),
            )
        }
        Ok(m) => m.file_type(),
    };
    let refusal = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link directly"
    } else if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device file"
    } else {
        "a block device file"
    };
    bail!("cannot write to {refusal}")
}

/// A file that appears at its path, mode 0600, only when complete (docker's
/// `atomicwriter`); dropped uncommitted, it leaves nothing behind.
struct AtomicFile {
    file: std::fs::File,
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicFile {
    fn create(target: &Path) -> Result<AtomicFile> {
        use std::os::unix::fs::OpenOptionsExt as _;
        validate_destination(target)?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".tmp-{name}{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| super::path_error("open", &tmp.display().to_string(), &e))?;
        Ok(AtomicFile {
            file,
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    fn commit(mut self) -> Result<()> {
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, &self.target)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.tar");
        let mut f = AtomicFile::create(&target).unwrap();
        f.file.write_all(b"data").unwrap();
        assert!(!target.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"data");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let other = dir.path().join("other.tar");
        drop(AtomicFile::create(&other).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
