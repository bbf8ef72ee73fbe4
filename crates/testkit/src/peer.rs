//! Docker Engine (Debian's `docker.io`, 20.10) as a reference peer: what
//! Docker does is what Servin should do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::http::{self, Request};
use crate::process;

/// A private `containerd` + `dockerd` in a temp dir, with no iptables
/// rules and no bridge (its network is not what tests compare). Needs root.
/// Dropping it stops dockerd, then containerd, and removes the dir.
pub struct DockerPeer {
    dockerd: Option<Child>,
    containerd: Option<Child>,
    // Last field: removed after the processes are gone.
    dir: tempfile::TempDir,
}

impl DockerPeer {
    /// Starts both daemons; `insecure` registries (`127.0.0.1:PORT`) are
    /// passed as `--insecure-registry` (loopback is plain HTTP anyway).
    pub fn start(insecure: &[&str]) -> Result<DockerPeer> {
        let dir = crate::temp_dir("dockerd")?;
        let d = dir.path().to_path_buf();
        let mut peer = DockerPeer {
            dockerd: None,
            containerd: None,
            dir,
        };
        // CRI off: it is not compared and would open a streaming port.
        std::fs::write(
            d.join("containerd.toml"),
            "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
        )?;
        std::fs::write(d.join("daemon.json"), "{}")?;
        let ctr_sock = d.join("containerd.sock");
        peer.containerd = Some(spawn_logged(
            Command::new("containerd")
                .arg("--config")
                .arg(d.join("containerd.toml"))
                .arg("--root")
                .arg(d.join("ctr-root"))
                .arg("--state")
                .arg(d.join("ctr-state"))
                .arg("--address")
                .arg(&ctr_sock),
            &d.join("containerd.log"),
        )?);
        let containerd = peer.containerd.as_mut().expect("just set");
        wait_until(&d.join("containerd.log"), containerd, || ctr_sock.exists())?;
        let mut cmd = Command::new("dockerd");
        cmd.arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg(format!("--containerd={}", ctr_sock.display()))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("-H")
            .arg(peer.host())
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .args(["--iptables=false", "--bridge=none"]);
        for registry in insecure {
            cmd.args(["--insecure-registry", registry]);
        }
        peer.dockerd = Some(spawn_logged(&mut cmd, &d.join("dockerd.log"))?);
        let socket = peer.socket();
        let dockerd = peer.dockerd.as_mut().expect("just set");
        wait_until(&d.join("dockerd.log"), dockerd, || {
            http::unix(&socket, &Request::get("/_ping"), Duration::from_secs(2))
                .is_ok_and(|r| r.status == 200)
        })?;
        Ok(peer)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// `unix:///tmp/…/docker.sock`, for `-H`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for DockerPeer {
    fn drop(&mut self) {
        if let Some(mut child) = self.dockerd.take() {
            process::terminate(&mut child, Duration::from_secs(15));
        }
        if let Some(mut child) = self.containerd.take() {
            process::terminate(&mut child, Duration::from_secs(5));
        }
        process::scrub(self.dir.path(), "DockerPeer drop");
    }
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    let file = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("Cannot run {cmd:?} (apt-get install docker.io)"))
}

fn wait_until(log: &Path, child: &mut Child, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + crate::timeout(60);
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "Docker peer exited with {status}\n{}",
                process::log_tail(log, 20)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "Docker peer did not come up\n{}",
                process::log_tail(log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
