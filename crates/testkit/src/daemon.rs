//! Our daemon, `servind`, with its own data root and socket in a temp dir.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::http::{self, Request, Response};
use crate::process;

/// How to start `servind`.
#[derive(Debug, Clone, Default)]
pub struct DaemonOpts {
    /// Extra arguments after `--data-root … -H …`, e.g.
    /// `["--insecure-registry", "127.0.0.1:5000"]`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Binary to run instead of the one [`crate::bin_path`] finds.
    pub bin: Option<PathBuf>,
}

impl DaemonOpts {
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// `--insecure-registry ADDR`.
    pub fn insecure_registry(self, addr: &str) -> Self {
        self.arg("--insecure-registry").arg(addr)
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A running `servind --data-root TMP/root -H unix://TMP/servin.sock`,
/// logging to `TMP/servind.log`. Dropping it stops the daemon, kills
/// whatever still runs from its temp dir, detaches leftover mounts and
/// removes the dir.
pub struct Daemon {
    child: Option<Child>,
    bin: PathBuf,
    opts: DaemonOpts,
    // Last field: removed after the process is gone.
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts the daemon and waits until `GET /_ping` answers 200.
    pub fn start(opts: DaemonOpts) -> Result<Daemon> {
        let bin = match &opts.bin {
            Some(bin) => bin.clone(),
            None => crate::bin_path("servind")?,
        };
        let dir = crate::temp_dir("daemon")?;
        let mut daemon = Daemon {
            child: None,
            bin,
            opts,
            dir,
        };
        daemon.spawn()?;
        Ok(daemon)
    }

    fn spawn(&mut self) -> Result<()> {
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--data-root")
            .arg(self.data_root())
            .arg("-H")
            .arg(self.host())
            .args(&self.opts.args)
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("Cannot run {}", self.bin.display()))?;
        let deadline = Instant::now() + crate::timeout(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "servind exited with {status} before answering /_ping\n{}",
                    process::log_tail(&log_path, 30)
                );
            }
            let ping = http::unix(
                &self.socket(),
                &Request::get("/_ping"),
                Duration::from_secs(2),
            );
            if ping.is_ok_and(|r| r.status == 200) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                process::kill9(&mut child);
                bail!(
                    "servind did not answer /_ping on {} in time\n{}",
                    self.socket().display(),
                    process::log_tail(&log_path, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The unix socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("servin.sock")
    }

    /// `unix:///tmp/…/servin.sock`, for `-H` and `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The temp dir holding data root, socket and log; what [`crate::LeakCheck`]
    /// should watch.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("servind.log")
    }

    /// The whole daemon log so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a request over the daemon's socket.
    pub fn request(&self, req: &Request) -> Result<Response> {
        http::unix(&self.socket(), req, crate::timeout(120))
    }

    /// GET `path` over the daemon's socket.
    pub fn get(&self, path: &str) -> Result<Response> {
        self.request(&Request::get(path))
    }

    /// Kills the daemon with SIGKILL and reaps it (a crash, as far as the
    /// daemon can tell). Containers and shims are left alone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill9(&mut child);
        }
    }

    /// Stops the daemon with SIGTERM (SIGKILL after 10 s) and reaps it;
    /// errors if it needed the SIGKILL. The temp dir stays, so a
    /// [`crate::LeakCheck`] can look at it now.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if !process::terminate(&mut child, Duration::from_secs(10)) {
            bail!(
                "servind ignored SIGTERM for 10 s and was killed\n{}",
                process::log_tail(&self.log_path(), 30)
            );
        }
        Ok(())
    }

    /// Stops the daemon (gracefully if it runs) and starts it again with the
    /// same data root, socket and arguments; the log is appended to.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::terminate(&mut child, Duration::from_secs(10));
        }
        process::scrub(self.dir.path(), "Daemon drop");
    }
}
