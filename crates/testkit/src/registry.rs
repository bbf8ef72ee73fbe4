//! A real local registry: Debian's `docker-registry` (distribution 2.8) on a
//! free loopback port, storing into a temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::http::{self, Request, Response};
use crate::process;

/// The registry binary; `docker-registry` from Debian.
pub const REGISTRY_BIN: &str = "docker-registry";

/// A running `docker-registry serve` on `127.0.0.1:PORT`, plain HTTP, with
/// deletes enabled. Dropping it stops the process and removes its storage.
pub struct Registry {
    child: Option<Child>,
    addr: String,
    credentials: Option<(String, String)>,
    // Last field: dropped after the process is gone.
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts an open registry (no auth).
    pub fn start() -> Result<Registry> {
        Self::start_inner(None)
    }

    /// Starts a registry that demands HTTP basic auth with one user
    /// (htpasswd file made with `htpasswd -nbB`, from apache2-utils; the
    /// registry accepts bcrypt entries only).
    pub fn start_with_htpasswd(user: &str, pass: &str) -> Result<Registry> {
        Self::start_inner(Some((user.to_string(), pass.to_string())))
    }

    fn start_inner(credentials: Option<(String, String)>) -> Result<Registry> {
        let dir = crate::temp_dir("registry")?;
        if let Some((user, pass)) = &credentials {
            let line = htpasswd_line(user, pass)?;
            std::fs::write(dir.path().join("htpasswd"), line)?;
        }
        // The free port can be taken between our probe and the registry's
        // bind; a few attempts make that race irrelevant.
        let mut last_err = None;
        for _ in 0..5 {
            match Self::spawn(dir.path(), credentials.is_some()) {
                Ok((child, addr)) => {
                    return Ok(Registry {
                        child: Some(child),
                        addr,
                        credentials,
                        dir,
                    })
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    fn spawn(dir: &Path, with_auth: bool) -> Result<(Child, String)> {
        let port = process::free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let config = config_yaml(dir, &addr, with_auth);
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config)?;
        let log_path = dir.join("registry.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(crate::which(REGISTRY_BIN).unwrap_or(REGISTRY_BIN.into()))
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!("Cannot run {REGISTRY_BIN} (apt-get install docker-registry)")
            })?;
        let deadline = Instant::now() + crate::timeout(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "{REGISTRY_BIN} exited with {status} before answering\n{}",
                    process::log_tail(&log_path, 20)
                );
            }
            let probe = http::tcp(&addr, &Request::get("/v2/"), Duration::from_secs(2));
            // 401 is the expected answer of a registry with auth.
            if probe.is_ok_and(|r| r.status == 200 || (with_auth && r.status == 401)) {
                return Ok((child, addr));
            }
            if Instant::now() >= deadline {
                process::kill9(&mut child);
                bail!(
                    "{REGISTRY_BIN} did not answer on {addr}\n{}",
                    process::log_tail(&log_path, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`, the host part of image references pushed here.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT/REPO`, convenient for building references.
    pub fn reference(&self, repo_and_tag: &str) -> String {
        format!("{}/{repo_and_tag}", self.addr)
    }

    /// The user and password of a registry started with htpasswd.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The temp dir holding config, storage (`data/`) and `registry.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// GET `path` (e.g. `/v2/busybox/manifests/latest`) with an `Accept`
    /// header, using the registry's credentials if it has any.
    pub fn get(&self, path: &str, accept: &str) -> Result<Response> {
        self.request(Request::get(path).header("Accept", accept))
    }

    /// Sends a request, adding basic auth when the registry has credentials.
    pub fn request(&self, mut req: Request) -> Result<Response> {
        if let Some((user, pass)) = self.credentials() {
            req = req.header(
                "Authorization",
                format!("Basic {}", STANDARD.encode(format!("{user}:{pass}"))),
            );
        }
        http::tcp(&self.addr, &req, Duration::from_secs(30))
    }

    /// GETs a manifest with every manifest type accepted; returns the
    /// response (check `Docker-Content-Digest` and `Content-Type`).
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<Response> {
        let accept = [
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]
        .join(", ");
        self.get(&format!("/v2/{repo}/manifests/{reference}"), &accept)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::terminate(&mut child, Duration::from_secs(3));
        }
    }
}

fn config_yaml(dir: &Path, addr: &str, with_auth: bool) -> String {
    let data = dir.join("data");
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n",
        data.display()
    );
    if with_auth {
        yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: servin-test\n    path: {}\n",
            dir.join("htpasswd").display()
        ));
    }
    yaml
}

fn htpasswd_line(user: &str, pass: &str) -> Result<String> {
    let out = Command::new("htpasswd")
        .args(["-nbB", user, pass])
        .output()
        .context("Cannot run htpasswd (apt-get install apache2-utils)")?;
    if !out.status.success() {
        bail!(
            "htpasswd failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let line = String::from_utf8(out.stdout)?;
    Ok(format!("{}\n", line.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_listens_on_loopback_only() {
        let yaml = config_yaml(Path::new("/tmp/x"), "127.0.0.1:5000", true);
        assert!(yaml.contains("addr: 127.0.0.1:5000"));
        assert!(yaml.contains("rootdirectory: /tmp/x/data"));
        assert!(yaml.contains("path: /tmp/x/htpasswd"));
    }
}
