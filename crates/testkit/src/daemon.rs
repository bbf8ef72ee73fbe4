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

/// Test bridges are named `svtb<tag>0` and `svtb<tag>-<id>`.
pub const TEST_BRIDGE_PREFIX: &str = "svtb";
/// Test veths (host ends) are named `svtv<tag>…`.
pub const TEST_VETH_PREFIX: &str = "svtv";
/// Test nftables tables are named `servintest_<tag>`.
pub const TEST_NFT_PREFIX: &str = "servintest_";

/// The network names a test daemon uses, its own so that daemons running
/// in parallel (and a real servind) do not meet: `--nft-table`,
/// `--bridge-prefix`, `--veth-prefix` and `--bip` (a /24 of 10.200.0.0/13
/// no host route covers).
#[derive(Debug, Clone)]
pub struct TestNetwork {
    pub table: String,
    pub bridge_prefix: String,
    pub veth_prefix: String,
    /// The default bridge's subnet, e.g. `10.201.7.0/24`.
    pub subnet: String,
}

impl TestNetwork {
    fn pick() -> TestNetwork {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let routes = std::process::Command::new("ip")
            .args(["-4", "route", "show", "table", "all"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let mut h = nanos ^ (u64::from(std::process::id()) << 32);
            h ^= COUNT
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 29;
            let tag = format!("{:05x}", h & 0xfffff);
            let (a, b) = (200 + (h >> 20) % 8, (h >> 23) % 256);
            let prefix = format!("10.{a}.{b}.");
            if routes.contains(&prefix) {
                continue;
            }
            return TestNetwork {
                table: format!("{TEST_NFT_PREFIX}{tag}"),
                bridge_prefix: format!("{TEST_BRIDGE_PREFIX}{tag}"),
                veth_prefix: format!("{TEST_VETH_PREFIX}{tag}"),
                subnet: format!("{prefix}0/24"),
            };
        }
    }

    fn args(&self) -> Vec<String> {
        [
            "--nft-table",
            &self.table,
            "--bridge-prefix",
            &self.bridge_prefix,
            "--veth-prefix",
            &self.veth_prefix,
            "--bip",
            &self.subnet,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// This daemon's links still present (bridges and veths).
    pub fn links(&self) -> Vec<String> {
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n.starts_with(&self.bridge_prefix) || n.starts_with(&self.veth_prefix))
            .collect()
    }

    /// Whether this daemon's nftables table is present on the host.
    pub fn table_present(&self) -> bool {
        std::process::Command::new("nft")
            .args(["list", "tables"])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == format!("table ip {}", self.table))
            })
            .unwrap_or(false)
    }

    /// Deletes this daemon's links and table (after the daemon is gone).
    fn clean(&self) {
        for link in self.links() {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &link])
                .stderr(Stdio::null())
                .status();
        }
        if self.table_present() {
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", "ip", &self.table])
                .status();
        }
    }
}

/// A running `servind --data-root TMP/root -H unix://TMP/servin.sock`,
/// logging to `TMP/servind.log`, with network names of its own
/// ([`TestNetwork`]) unless the options pass `--nft-table`. Dropping it
/// stops the daemon, kills whatever still runs from its temp dir, detaches
/// leftover mounts, deletes its bridges, veths and nft table and removes
/// the dir.
pub struct Daemon {
    child: Option<Child>,
    bin: PathBuf,
    opts: DaemonOpts,
    net: Option<TestNetwork>,
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
        let net = (!opts.args.iter().any(|a| a == "--nft-table")).then(TestNetwork::pick);
        let mut daemon = Daemon {
            child: None,
            bin,
            opts,
            net,
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
            .args(self.net.iter().flat_map(TestNetwork::args))
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

    /// The daemon's own network names, unless its options chose them.
    pub fn network(&self) -> Option<&TestNetwork> {
        self.net.as_ref()
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

    /// [`Daemon::restart`] with `extra` arguments added for this and later
    /// starts.
    pub fn restart_with(&mut self, extra: &[&str]) -> Result<()> {
        self.opts.args.extend(extra.iter().map(|a| a.to_string()));
        self.restart()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::terminate(&mut child, Duration::from_secs(10));
        }
        kill_container_cgroups(&self.data_root());
        process::scrub(self.dir.path(), "Daemon drop");
        if let Some(net) = &self.net {
            net.clean();
        }
    }
}

/// Kills what still runs in the cgroups of the daemon's containers
/// (`<hierarchy>/servin/<id>`) and removes those cgroups: a container
/// process (pivoted root, own netns) names no path under the daemon's dir,
/// so a test that fails midway would otherwise leave it running.
/// Starts servind on `data_root` and `socket` with `extra` arguments, for
/// a start that must be refused: returns its stderr once it has exited
/// with a failure. Panics if it still runs after 30 s, or exits 0.
pub fn refused_start(data_root: &Path, socket: &Path, extra: &[&str]) -> String {
    let mut child = Command::new(crate::bin_path("servind").expect("servind is built"))
        .arg("--data-root")
        .arg(data_root)
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn servind");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait for servind").is_none() {
        if Instant::now() > deadline {
            process::kill9(&mut child);
            panic!("servind {extra:?} on {} keeps running", data_root.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("servind's stderr");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "servind {extra:?} exited 0: {stderr}"
    );
    stderr
}

fn kill_container_cgroups(data_root: &Path) {
    let Ok(entries) = std::fs::read_dir(data_root.join("containers")) else {
        return;
    };
    let ids: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let dirs = |id: &str| -> Vec<PathBuf> {
        let mut out = vec![Path::new("/sys/fs/cgroup/servin").join(id)];
        if let Ok(h) = std::fs::read_dir("/sys/fs/cgroup") {
            out.extend(h.flatten().map(|h| h.path().join("servin").join(id)));
        }
        out.into_iter().filter(|d| d.is_dir()).collect()
    };
    let mut killed = false;
    for id in &ids {
        for d in dirs(id) {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                eprintln!("Daemon drop: killing container process {pid} of {id}");
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                killed = true;
            }
        }
    }
    if killed {
        std::thread::sleep(Duration::from_millis(200));
    }
    for id in &ids {
        for d in dirs(id) {
            let _ = std::fs::remove_dir(&d);
        }
    }
}
