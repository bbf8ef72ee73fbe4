//! VM mode's state machine: boots the guest on first use, reports progress,
//! watches its health and restarts it when it dies or hangs, and stops it
//! with the daemon. The provider does the platform work; this decides when.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::Serialize;
use servin_guest::contract::{
    foreign_disk_message, BootArgs, ControlRequest, GuestStats, Share, CONTROL_PORT, ENGINE_PORT,
};
use servin_vm::image::GuestImage;
use servin_vm::{Accelerator, LaunchSpec, VmConfig, VmInstance, VmPaths, VmProvider};
use tokio::sync::{watch, Mutex};

/// How often the health check runs, and how long one engine ping may take:
/// a dead or hung guest is noticed within about five seconds.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
const HEALTH_PING_TIMEOUT: Duration = Duration::from_millis(1500);
const HEALTH_FAILURES: u32 = 2;
/// How long `status` waits for a brief holder of the VM's lock.
const STATUS_LOCK_WAIT: Duration = Duration::from_secs(10);
/// A VM that ran at least this long before it died starts a new series of
/// restarts; shorter lives add to the series and wait [`restart_delay`].
const STABLE_RUN: Duration = Duration::from_secs(120);
/// A guard against a guest that never comes up (TCG boots take seconds to
/// a minute on a loaded machine).
const BOOT_LIMIT: Duration = Duration::from_secs(300);
const POWEROFF_GRACE: Duration = Duration::from_secs(20);

/// Where the VM is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "lowercase")]
pub enum Phase {
    Stopped,
    /// Booting; the detail is the current step.
    Starting(String),
    Running,
    Stopping,
    /// The last start failed; the detail is why.
    Failed(String),
}

struct Inner {
    instance: Option<Box<dyn VmInstance>>,
    booted_at: Option<SystemTime>,
    guest_version: Option<String>,
    /// The config the running VM was started with.
    running_config: Option<VmConfig>,
    /// Set by stop: the health check must not bring it back.
    want_running: bool,
}

/// The daemon's one VM.
pub struct VmManager {
    pub paths: VmPaths,
    provider: Box<dyn VmProvider>,
    inner: Mutex<Inner>,
    phase: watch::Sender<Phase>,
}

/// How long to wait before the `n`th restart in a row of a VM that keeps
/// dying: the first two at once, then 10 s doubling up to 5 minutes.
fn restart_delay(n: u32) -> Duration {
    if n <= 2 {
        return Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1 << (n - 3).min(5));
    Duration::from_secs(secs.min(300))
}

/// What `GET /servin/vm/status` answers.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    #[serde(flatten)]
    pub phase: Phase,
    pub provider: String,
    pub accelerator: Accelerator,
    pub accelerator_note: Option<String>,
    pub cpus: u32,
    pub memory: u64,
    pub disk_size: u64,
    /// Bytes the guest's filesystem uses (from the guest), else None.
    pub disk_used: Option<u64>,
    /// Bytes the disk file takes on the host.
    pub disk_host: Option<u64>,
    pub shares: Vec<String>,
    pub guest_version: Option<String>,
    pub image_version: Option<String>,
    pub booted_at: Option<String>,
    pub host_memory: Option<u64>,
    pub pid: Option<u32>,
    pub data_dir: String,
}

impl VmManager {
    pub fn new(paths: VmPaths, provider: Box<dyn VmProvider>) -> Arc<VmManager> {
        let (phase, _) = watch::channel(Phase::Stopped);
        Arc::new(VmManager {
            paths,
            provider,
            inner: Mutex::new(Inner {
                instance: None,
                booted_at: None,
                guest_version: None,
                running_config: None,
                want_running: false,
            }),
            phase,
        })
    }

    pub fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    fn set_phase(&self, p: Phase) {
        if let Phase::Starting(step) = &p {
            tracing::info!(step = %step, "VM starting");
        }
        self.phase.send_replace(p);
    }

    /// Starts the VM unless it runs or is starting; returns at once. Follow
    /// [`VmManager::subscribe`] for progress.
    pub fn kick(self: &Arc<Self>) {
        if matches!(self.phase(), Phase::Running | Phase::Starting(_)) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let _ = me.ensure_running().await;
        });
    }

    /// Returns once the guest engine answers, starting the VM if needed.
    pub async fn ensure_running(self: &Arc<Self>) -> anyhow::Result<()> {
        let mut rx = self.subscribe();
        loop {
            match rx.borrow_and_update().clone() {
                Phase::Running => return Ok(()),
                Phase::Starting(_) | Phase::Stopping => {}
                Phase::Stopped | Phase::Failed(_) => break,
            }
            if rx.changed().await.is_err() {
                anyhow::bail!("The VM manager is gone");
            }
            if let Phase::Failed(why) = &*rx.borrow() {
                anyhow::bail!("{why}");
            }
        }
        self.start().await
    }

    /// Boots the VM (holding the lock, so one start at a time).
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().await;
        if inner.instance.as_ref().is_some_and(|i| i.is_alive()) && self.phase() == Phase::Running {
            return Ok(());
        }
        inner.want_running = true;
        match self.boot(&mut inner).await {
            Ok(()) => {
                self.set_phase(Phase::Running);
                Ok(())
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::error!(error = %message, "VM start failed");
                if let Some(mut i) = inner.instance.take() {
                    tokio::task::spawn_blocking(move || i.stop(Duration::ZERO))
                        .await
                        .ok();
                }
                self.set_phase(Phase::Failed(message));
                Err(e)
            }
        }
    }

    async fn boot(&self, inner: &mut Inner) -> anyhow::Result<()> {
        self.set_phase(Phase::Starting("reading the configuration".into()));
        let config = VmConfig::load(&self.paths.config())?;
        let image = GuestImage::find()?;
        self.set_phase(Phase::Starting("preparing the data disk".into()));
        let paths = self.paths.clone();
        let size = config.disk.0;
        tokio::task::spawn_blocking(move || servin_vm::disk::prepare(&paths, size)).await??;
        let shares: Vec<Share> = config
            .shares
            .iter()
            .enumerate()
            .map(|(n, p)| Share {
                tag: servin_guest::contract::share_tag(n),
                path: p.clone(),
            })
            .collect();
        let spec = LaunchSpec {
            paths: self.paths.clone(),
            cpus: config.cpus,
            memory: config.memory.0,
            kernel: image.kernel.clone(),
            initramfs: image.initramfs.clone(),
            disk: Some(self.paths.disk()),
            shares: config.shares.clone(),
            boot: BootArgs {
                time: SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs()),
                shares,
                engine_port: ENGINE_PORT,
                control_port: CONTROL_PORT,
            },
            vsock: true,
            network: true,
        };
        self.provider.check(&spec)?;
        let (accel, _) = self.provider.accelerator();
        self.set_phase(Phase::Starting(format!(
            "booting the VM ({} CPUs, {}, {accel})",
            config.cpus, config.memory
        )));
        // A fresh console log per boot, so status and errors read this boot.
        let _ = std::fs::remove_file(self.paths.console_log());
        let provider_start = {
            let spec = spec.clone();
            let provider: &dyn VmProvider = &*self.provider;
            tokio::task::block_in_place(|| provider.start(&spec))
        };
        let instance = provider_start?;
        inner.instance = Some(instance);
        self.set_phase(Phase::Starting("waiting for the guest engine".into()));
        let started = std::time::Instant::now();
        loop {
            let inst = inner.instance.as_ref().expect("set above");
            let console = std::fs::read_to_string(self.paths.console_log()).unwrap_or_default();
            let foreign = foreign_disk_message("");
            let foreign = foreign.split(" (found").next().unwrap_or_default();
            if let Some(line) = console.lines().find(|l| l.contains(foreign)) {
                anyhow::bail!(
                    "{} ({}); move it away to let Servin create a new one",
                    line.trim(),
                    self.paths.disk().display()
                );
            }
            if !inst.is_alive() {
                anyhow::bail!(
                    "The VM stopped while booting; the end of its console ({}):\n{}",
                    self.paths.console_log().display(),
                    tail(&console, 15)
                );
            }
            if engine_ping(inst.as_ref(), Duration::from_secs(2)).await {
                break;
            }
            if started.elapsed() > BOOT_LIMIT {
                anyhow::bail!(
                    "The guest engine did not answer within {}s; the end of the console ({}):\n{}",
                    BOOT_LIMIT.as_secs(),
                    self.paths.console_log().display(),
                    tail(&console, 15)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let inst = inner.instance.as_ref().expect("set above");
        inner.guest_version = control(inst.as_ref(), ControlRequest::Ping, Duration::from_secs(5))
            .await
            .ok();
        inner.booted_at = Some(SystemTime::now());
        inner.running_config = Some(config);
        tracing::info!(accelerator = %accel, boot_ms = started.elapsed().as_millis() as u64, "VM ready");
        Ok(())
    }

    /// Powers the guest off (engine stopped, disk synced), then ends QEMU
    /// and the helpers.
    pub async fn stop(self: &Arc<Self>) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().await;
        inner.want_running = false;
        let Some(mut inst) = inner.instance.take() else {
            self.set_phase(Phase::Stopped);
            return Ok(());
        };
        self.set_phase(Phase::Stopping);
        let grace = if inst.is_alive()
            && control(
                inst.as_ref(),
                ControlRequest::Poweroff,
                Duration::from_secs(5),
            )
            .await
            .is_ok()
        {
            POWEROFF_GRACE
        } else {
            Duration::ZERO
        };
        tokio::task::spawn_blocking(move || inst.stop(grace))
            .await
            .context("Cannot stop the VM")?;
        inner.booted_at = None;
        inner.guest_version = None;
        inner.running_config = None;
        self.set_phase(Phase::Stopped);
        tracing::info!("VM stopped");
        Ok(())
    }

    /// A new stream to the guest engine (the bridge splices clients onto
    /// it). The networking issue's port publisher will use this too, to
    /// follow the guest's container events and learn published ports.
    pub async fn connect_engine(self: &Arc<Self>) -> anyhow::Result<UnixStream> {
        self.ensure_running().await?;
        self.connect_port(ENGINE_PORT).await
    }

    /// A new stream to a guest port of the running VM.
    pub async fn connect_port(&self, port: u32) -> anyhow::Result<UnixStream> {
        let inner = self.inner.lock().await;
        let inst = inner
            .instance
            .as_ref()
            .ok_or(servin_vm::VmError::NotRunning)?;
        Ok(tokio::task::block_in_place(|| {
            inst.connect(port, Duration::from_secs(5))
        })?)
    }

    /// Restarts a VM that died or stopped answering, until stopped.
    pub async fn health_loop(self: Arc<Self>) {
        let mut failures = 0;
        // Restarts in a row of a VM that died soon after its boot, and
        // when the last restart booted it.
        let mut crashes = 0u32;
        let mut booted: Option<std::time::Instant> = None;
        loop {
            tokio::time::sleep(HEALTH_INTERVAL).await;
            if self.phase() != Phase::Running {
                failures = 0;
                continue;
            }
            let verdict = {
                let inner = self.inner.lock().await;
                match inner.instance.as_ref() {
                    _ if !inner.want_running => None,
                    None => Some("no VM process".to_string()),
                    Some(i) if !i.is_alive() => Some("the VM process exited".to_string()),
                    Some(i) => {
                        if engine_ping(i.as_ref(), HEALTH_PING_TIMEOUT).await {
                            failures = 0;
                            None
                        } else {
                            failures += 1;
                            (failures >= HEALTH_FAILURES)
                                .then(|| "the guest engine does not answer".to_string())
                        }
                    }
                }
            };
            if let Some(why) = verdict {
                failures = 0;
                let lived = booted.map(|b: std::time::Instant| b.elapsed());
                crashes = if lived.is_some_and(|l| l >= STABLE_RUN) {
                    1
                } else {
                    crashes + 1
                };
                let delay = restart_delay(crashes);
                tracing::error!(reason = %why, crashes, delay_secs = delay.as_secs(), "VM unhealthy: restarting it");
                {
                    let mut inner = self.inner.lock().await;
                    if let Some(mut inst) = inner.instance.take() {
                        let _ =
                            tokio::task::spawn_blocking(move || inst.stop(Duration::ZERO)).await;
                    }
                }
                if !delay.is_zero() {
                    self.set_phase(Phase::Failed(format!(
                        "The VM died {crashes} times in a row ({why}); it starts again in {} s, or at `servin vm start`. Its console: `servin vm logs`.",
                        delay.as_secs()
                    )));
                    tokio::time::sleep(delay).await;
                    if self.phase() == Phase::Running || !self.inner.lock().await.want_running {
                        continue;
                    }
                }
                self.set_phase(Phase::Stopped);
                let _ = self.start().await;
                booted = Some(std::time::Instant::now());
            }
        }
    }

    pub async fn status(&self) -> StatusReport {
        let config = VmConfig::load(&self.paths.config()).unwrap_or_default();
        // A start or stop holds the lock for its whole length: report the
        // phase then, without the instance's details, rather than wait.
        // Otherwise the holders are brief (the health check's ping, a new
        // connection), and a running VM's status must show its pid even
        // when it asks in the middle of one.
        let inner = match self.phase() {
            Phase::Starting(_) | Phase::Stopping => self.inner.try_lock().ok(),
            _ => tokio::time::timeout(STATUS_LOCK_WAIT, self.inner.lock())
                .await
                .ok(),
        };
        let inner = inner.as_deref();
        let (accel_now, note) = self.provider.accelerator();
        let inst = inner.and_then(|i| i.instance.as_ref());
        let stats: Option<GuestStats> = match inst {
            Some(i) if self.phase() == Phase::Running => {
                control(i.as_ref(), ControlRequest::Stats, Duration::from_secs(3))
                    .await
                    .ok()
                    .and_then(|s| serde_json::from_str(&s).ok())
            }
            _ => None,
        };
        let shown = inner
            .and_then(|i| i.running_config.clone())
            .unwrap_or(config);
        let disk_path = self.paths.disk();
        let disk_host = if disk_path.exists() {
            tokio::task::spawn_blocking(move || servin_vm::disk::info(&disk_path).ok())
                .await
                .ok()
                .flatten()
                .map(|i| i.actual_size)
        } else {
            None
        };
        StatusReport {
            phase: self.phase(),
            provider: self.provider.name().to_string(),
            accelerator: inst.map(|i| i.accelerator()).unwrap_or(accel_now),
            accelerator_note: note,
            cpus: shown.cpus,
            memory: shown.memory.0,
            disk_size: stats.map(|s| s.disk_size).unwrap_or(shown.disk.0),
            disk_used: stats.map(|s| s.disk_used),
            disk_host,
            shares: shown
                .shares
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            guest_version: inner.and_then(|i| i.guest_version.clone()),
            image_version: GuestImage::find().ok().map(|i| i.version),
            booted_at: inner
                .and_then(|i| i.booted_at)
                .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339()),
            host_memory: inst.and_then(|i| i.host_memory()),
            pid: inst.and_then(|i| i.pid()),
            data_dir: self.paths.dir.display().to_string(),
        }
    }
}

/// `GET /_ping` on the guest engine answers `OK`.
async fn engine_ping(inst: &dyn VmInstance, timeout: Duration) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut s = inst
            .connect(ENGINE_PORT, timeout)
            .map_err(std::io::Error::other)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(b"GET /_ping HTTP/1.1\r\nHost: servin\r\nConnection: close\r\n\r\n")?;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        Ok(text.starts_with("HTTP/1.1 200") && text.ends_with("OK"))
    };
    tokio::task::block_in_place(|| attempt().unwrap_or(false))
}

/// One control-port request (PING, STATS, POWEROFF) and its `OK` payload.
async fn control(
    inst: &dyn VmInstance,
    request: ControlRequest,
    timeout: Duration,
) -> anyhow::Result<String> {
    use servin_guest::contract::ControlResponse;
    tokio::task::block_in_place(|| {
        let mut s = inst.connect(CONTROL_PORT, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(request.to_string().as_bytes())?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while s.read(&mut byte)? == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        match ControlResponse::parse(&String::from_utf8_lossy(&line)) {
            Ok(ControlResponse::Ok(rest)) => Ok(rest),
            Ok(ControlResponse::Err(e)) => anyhow::bail!("The guest refused {request:?}: {e}"),
            Err(e) => anyhow::bail!("{e}"),
        }
    })
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vm_that_keeps_dying_is_restarted_ever_more_slowly() {
        let secs: Vec<u64> = (1..=10).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(secs, vec![0, 0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }
}
