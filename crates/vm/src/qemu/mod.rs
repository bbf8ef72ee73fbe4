//! The QEMU provider (Linux): `qemu-system-x86_64 -machine microvm` with
//! direct kernel boot, `vhost-device-vsock` for vsock, `virtiofsd` for
//! shared folders and QEMU's user-mode network.

pub mod args;
mod qmp;
mod spawn;

use std::fs::OpenOptions;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use servin_guest::contract::GUEST_CID;

pub use args::{qemu_args, Virtiofsd};

use crate::provider::{find_on_path, find_tool, Accelerator, LaunchSpec, VmInstance, VmProvider};
use crate::VmError;

pub const QEMU: &str = "qemu-system-x86_64";
/// Forces the accelerator (`kvm` or `tcg`), for hosts where detection is wrong.
pub const ACCEL_ENV: &str = "SERVIN_VM_ACCEL";
const HELPER_START: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Clone, Copy)]
pub struct QemuProvider;

impl QemuProvider {
    fn virtiofsd() -> Option<Virtiofsd> {
        if let Some(p) = find_on_path("virtiofsd") {
            return Some(Virtiofsd::Rust(p));
        }
        let rust = PathBuf::from("/usr/libexec/virtiofsd");
        if rust.is_file() {
            return Some(Virtiofsd::Rust(rust));
        }
        let legacy = PathBuf::from("/usr/lib/qemu/virtiofsd");
        legacy.is_file().then_some(Virtiofsd::Legacy(legacy))
    }
}

/// The accelerator for this host: KVM where it boots a stock kernel, else
/// TCG and the reason.
pub fn detect_accelerator() -> (Accelerator, Option<String>) {
    match std::env::var(ACCEL_ENV).as_deref() {
        Ok("tcg") => return (Accelerator::Tcg, Some(format!("{ACCEL_ENV}=tcg"))),
        Ok("kvm") => return (Accelerator::Kvm, None),
        _ => {}
    }
    if Path::new("/sys/module/kvm_pvm").exists() {
        return (
            Accelerator::Tcg,
            Some("this host's KVM is PVM (kvm_pvm), which cannot boot a stock kernel".into()),
        );
    }
    if !Path::new("/dev/kvm").exists() {
        return (Accelerator::Tcg, Some("there is no /dev/kvm".into()));
    }
    if OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return (
            Accelerator::Tcg,
            Some("/dev/kvm is not writable for this user (add it to the kvm group)".into()),
        );
    }
    (Accelerator::Kvm, None)
}

impl VmProvider for QemuProvider {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn accelerator(&self) -> (Accelerator, Option<String>) {
        detect_accelerator()
    }

    fn check(&self, spec: &LaunchSpec) -> Result<(), VmError> {
        find_tool(
            QEMU,
            "install Debian's qemu-system-x86 package (apt-get install qemu-system-x86)",
        )?;
        for f in [&spec.kernel, &spec.initramfs] {
            if !f.is_file() {
                return Err(VmError::Missing {
                    what: format!("the guest image ({})", f.display()),
                    fix: "build it with scripts/build-guest".into(),
                });
            }
        }
        if spec.vsock {
            find_tool(
                "vhost-device-vsock",
                "install it with `cargo install vhost-device-vsock --locked` (scripts/deps does)",
            )?;
        }
        if !spec.shares.is_empty() && QemuProvider::virtiofsd().is_none() {
            return Err(VmError::Missing {
                what: "virtiofsd".into(),
                fix: "install Debian's qemu-system-common (it ships /usr/lib/qemu/virtiofsd) or `cargo install virtiofsd --locked`".into(),
            });
        }
        for s in &spec.shares {
            if !s.is_dir() {
                return Err(VmError::Boot(format!(
                    "the shared folder {} is not a directory (change it with `servin vm config shares=…`)",
                    s.display()
                )));
            }
        }
        Ok(())
    }

    fn start(&self, spec: &LaunchSpec) -> Result<Box<dyn VmInstance>, VmError> {
        self.check(spec)?;
        let (accel, reason) = detect_accelerator();
        if let Some(reason) = &reason {
            tracing::warn!(reason = %reason, "VM runs under TCG (emulation, slow): {reason}");
        }
        let paths = &spec.paths;
        std::fs::create_dir_all(&paths.dir)
            .map_err(|e| VmError::io(format!("Cannot create {}", paths.dir.display()), e))?;
        kill_leftovers(&paths.dir);
        let mut inst = QemuInstance {
            accel,
            dir: paths.dir.clone(),
            vsock_socket: paths.vsock_socket(),
            qemu: Mutex::new(None),
            helpers: Vec::new(),
        };
        let log_path = paths.dir.join("helpers.log");
        if spec.vsock {
            let sock = paths.vhost_vsock_socket();
            let mut cmd = Command::new(find_tool("vhost-device-vsock", "")?);
            cmd.arg(format!("--guest-cid={GUEST_CID}"))
                .arg(format!("--socket={}", sock.display()))
                .arg(format!("--uds-path={}", paths.vsock_socket().display()));
            inst.start_helper("vsock", cmd, &log_path, &sock)?;
        }
        if !spec.shares.is_empty() {
            let virtiofsd = QemuProvider::virtiofsd().expect("checked");
            for (n, dir) in spec.shares.iter().enumerate() {
                let sock = paths.virtiofs_socket(n);
                let mut cmd = Command::new(virtiofsd.path());
                cmd.args(virtiofsd.args(&sock, dir));
                inst.start_helper(&format!("virtiofsd-{n}"), cmd, &log_path, &sock)?;
            }
        }
        let qemu_log = paths.dir.join("qemu.log");
        let mut cmd = Command::new(find_tool(QEMU, "")?);
        cmd.args(qemu_args(spec, accel)?)
            .stdin(Stdio::null())
            .stdout(open_log(&qemu_log)?)
            .stderr(open_log(&qemu_log)?);
        let child =
            spawn::spawn_owned(cmd).map_err(|e| VmError::io(format!("Cannot run {QEMU}"), e))?;
        write_pid(&paths.pid_file("qemu"), child.id());
        *inst.qemu.lock().expect("not poisoned") = Some(child);
        // QEMU is up once its QMP socket answers; a bad argument or device
        // ends it first.
        let deadline = Instant::now() + HELPER_START;
        loop {
            if !inst.is_alive() {
                return Err(VmError::Boot(format!(
                    "{QEMU} exited: {}",
                    log_tail(&qemu_log)
                )));
            }
            if qmp::Qmp::connect(&paths.qmp_socket(), Duration::from_secs(2)).is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(VmError::Boot(format!("{QEMU} did not open its QMP socket")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::info!(accelerator = %accel, pid = inst.pid().unwrap_or(0), "VM started");
        Ok(Box::new(inst))
    }
}

/// A running QEMU and its helpers, all children of this process.
pub struct QemuInstance {
    accel: Accelerator,
    dir: PathBuf,
    vsock_socket: PathBuf,
    qemu: Mutex<Option<Child>>,
    helpers: Vec<(String, Child)>,
}

impl QemuInstance {
    fn start_helper(
        &mut self,
        name: &str,
        mut cmd: Command,
        log: &Path,
        socket: &Path,
    ) -> Result<(), VmError> {
        let _ = std::fs::remove_file(socket);
        cmd.stdin(Stdio::null())
            .stdout(open_log(log)?)
            .stderr(open_log(log)?);
        let program = cmd.get_program().to_string_lossy().to_string();
        let child =
            spawn::spawn_owned(cmd).map_err(|e| VmError::io(format!("Cannot run {program}"), e))?;
        write_pid(&self.dir.join(format!("{name}.pid")), child.id());
        self.helpers.push((name.to_string(), child));
        let child = &mut self.helpers.last_mut().expect("just pushed").1;
        let deadline = Instant::now() + HELPER_START;
        while !socket.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(VmError::Boot(format!(
                    "{program} exited with {status}: {}",
                    log_tail(log)
                )));
            }
            if Instant::now() >= deadline {
                return Err(VmError::Boot(format!(
                    "{program} did not create {}",
                    socket.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn end_helpers(&mut self) {
        for (name, child) in &mut self.helpers {
            terminate(child, Duration::from_secs(2));
            let _ = std::fs::remove_file(self.dir.join(format!("{name}.pid")));
        }
        self.helpers.clear();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "sock") {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl VmInstance for QemuInstance {
    fn accelerator(&self) -> Accelerator {
        self.accel
    }

    fn pid(&self) -> Option<u32> {
        self.qemu.lock().ok()?.as_ref().map(Child::id)
    }

    fn is_alive(&self) -> bool {
        let mut guard = self.qemu.lock().expect("not poisoned");
        match guard.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn connect(&self, port: u32, timeout: Duration) -> Result<UnixStream, VmError> {
        crate::vsock::connect(&self.vsock_socket, port, timeout)
    }

    fn vmm_status(&self) -> Option<String> {
        let mut q = qmp::Qmp::connect(&self.dir.join("qmp.sock"), Duration::from_secs(2)).ok()?;
        q.status().ok()
    }

    fn host_memory(&self) -> Option<u64> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    fn stop(&mut self, grace: Duration) {
        let qmp_socket = self.dir.join("qmp.sock");
        if let Some(mut child) = self.qemu.lock().expect("not poisoned").take() {
            let deadline = Instant::now() + grace;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            // No grace: the guest is dead or hung (or the stop is forced),
            // so nothing is waited for.
            let term_grace = if grace.is_zero() {
                Duration::ZERO
            } else {
                if matches!(child.try_wait(), Ok(None)) {
                    if let Ok(mut q) = qmp::Qmp::connect(&qmp_socket, Duration::from_secs(2)) {
                        let _ = q.execute("quit");
                    }
                }
                Duration::from_secs(3)
            };
            terminate(&mut child, term_grace);
            let _ = std::fs::remove_file(self.dir.join("qemu.pid"));
        }
        self.end_helpers();
    }
}

impl Drop for QemuInstance {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// SIGTERM, up to `grace` to exit, then SIGKILL; always reaped.
fn terminate(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(None)) {
        // SAFETY: kill(2) on our own unreaped child's pid: it cannot have
        // been reused while we have not waited for it.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn open_log(path: &Path) -> Result<std::fs::File, VmError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| VmError::io(format!("Cannot open {}", path.display()), e))
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    if tail.is_empty() {
        format!("(nothing in {})", path.display())
    } else {
        tail
    }
}

fn write_pid(path: &Path, pid: u32) {
    let _ = std::fs::write(path, format!("{pid}\n"));
}

/// Ends processes a previous daemon left (it was killed before its
/// children's death signal could fire, or they ignored it): any pid file in
/// `dir` whose process still names `dir` on its command line.
fn kill_leftovers(dir: &Path) {
    let needle = dir.display().to_string();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.extension().is_none_or(|e| e != "pid") {
            continue;
        }
        let pid: Option<i32> = std::fs::read_to_string(&p)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if let Some(pid) = pid.filter(|&p| p > 1) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                tracing::warn!(pid, "ending a VM process a previous daemon left");
                // SAFETY: kill(2) with a pid whose command line names our
                // state directory: it is one of ours.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        let _ = std::fs::remove_file(&p);
    }
}
