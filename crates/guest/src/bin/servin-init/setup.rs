//! Mounts, clock, kernel modules, shares, resolv.conf and power off.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use servin_guest::contract::{Share, DATA_MOUNT, DNS_ADDR};
use servin_guest::modules::{module_name, ModulesDep, GUEST_MODULES};
use servin_guest::system::{SYSTEM_FS, SYSTEM_MOUNT, SYSTEM_SERIAL};

use crate::say;

fn mount_fs(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    std::fs::create_dir_all(target).map_err(|e| format!("Cannot create {target}: {e}"))?;
    mount(Some(source), target, Some(fstype), flags, data)
        .map_err(|e| format!("Cannot mount {fstype} on {target}: {e}"))
}

/// Step 1 of the contract.
pub fn mount_basics() -> Result<(), String> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", "/proc", "proc", nosuid_nodev_noexec, None)?;
    mount_fs("sysfs", "/sys", "sysfs", nosuid_nodev_noexec, None)?;
    mount_fs(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    )?;
    // devtmpfs has no /dev/fd family; tools that read a file named
    // /dev/stdin (nft -f -) need them as udev would make them.
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, link);
    }
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0620,ptmxmode=0666"),
    )?;
    mount_fs(
        "shm",
        "/dev/shm",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    mount_fs(
        "tmpfs",
        "/run",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )?;
    mount_fs(
        "tmpfs",
        "/tmp",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    mount_fs(
        "cgroup2",
        "/sys/fs/cgroup",
        "cgroup2",
        nosuid_nodev_noexec,
        None,
    )?;
    let _ = nix::unistd::sethostname("servin");
    Ok(())
}

/// Step 2: the host's time at launch.
pub fn set_clock(seconds: u64) -> Result<(), String> {
    use nix::time::{clock_settime, ClockId};
    let ts = nix::sys::time::TimeSpec::new(seconds as i64, 0);
    clock_settime(ClockId::CLOCK_REALTIME, ts).map_err(|e| e.to_string())
}

/// Step 3: the contract's modules, each after its dependencies, with the
/// `name.param=value` words of the kernel command line as parameters
/// (the kernel only applies those itself to built-in modules); then the
/// system disk on `/usr`. The module files are deleted once loaded: they
/// live in the root tmpfs, that is in guest RAM, and nothing loads them
/// again. An error mounting the system disk is fatal (no engine without
/// it): init prints it and powers off.
pub fn load_modules(cmdline: &str) {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = Path::new("/lib/modules").join(&release);
    let text = match std::fs::read_to_string(dir.join("modules.dep")) {
        Ok(t) => t,
        Err(e) => {
            say!("warning: no modules.dep for kernel {release}: {e}");
            String::new()
        }
    };
    let need_system = !std::fs::read_dir(SYSTEM_MOUNT).is_ok_and(|mut d| d.next().is_some());
    let mut names: Vec<&str> = GUEST_MODULES.to_vec();
    if need_system {
        names.push(SYSTEM_FS);
    }
    load(&dir, &text, &names, cmdline);
    let result = if need_system {
        mount_system()
    } else {
        // An image from before the system disk: /usr is in the initramfs.
        Ok(())
    };
    if let Err(e) = std::fs::remove_dir_all("/lib/modules") {
        say!("warning: cannot remove the loaded modules' files: {e}");
    }
    if let Err(e) = result {
        say!("error: {e}");
        power_off();
    }
}

/// Modules every later one in the load order waits for: the virtio
/// transport (devices appear in order), and `crc32c_generic`, which `ext4`,
/// `jbd2` and `libcrc32c` need but name only as a soft dependency (not in
/// `modules.dep`).
const BARRIERS: &[&str] = &["virtio_mmio", "crc32c_generic"];

/// The order modules are loaded in, on several threads: a module starts
/// once its dependencies (from `modules.dep`) and the barriers before it
/// are loaded (or failed: it then fails on its own, with a message).
struct Plan {
    /// Module paths in load order, each with the paths it waits for.
    steps: Vec<(String, Vec<String>)>,
    started: Vec<bool>,
    finished: HashSet<String>,
}

impl Plan {
    fn new(dep_text: &str, names: &[&str]) -> (Plan, Vec<String>) {
        let dep = ModulesDep::parse(dep_text);
        let (order, missing) = dep.load_order(names);
        let deps_of: HashMap<&str, Vec<String>> = dep_text
            .lines()
            .filter_map(|l| {
                let (path, deps) = l.split_once(':')?;
                Some((
                    path.trim(),
                    deps.split_whitespace().map(str::to_string).collect(),
                ))
            })
            .collect();
        let mut barriers: Vec<String> = Vec::new();
        let steps = order
            .iter()
            .map(|rel| {
                let mut wait: Vec<String> = deps_of
                    .get(rel.as_str())
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|d| order.contains(d))
                    .collect();
                wait.extend(barriers.iter().cloned());
                if BARRIERS.contains(&module_name(rel).as_str()) {
                    barriers.push(rel.clone());
                }
                (rel.clone(), wait)
            })
            .collect::<Vec<_>>();
        let plan = Plan {
            started: vec![false; steps.len()],
            steps,
            finished: HashSet::new(),
        };
        (plan, missing.into_iter().map(str::to_string).collect())
    }

    /// The next module that may start now, marked started.
    fn take(&mut self) -> Option<String> {
        let i = (0..self.steps.len()).find(|&i| {
            !self.started[i] && self.steps[i].1.iter().all(|d| self.finished.contains(d))
        })?;
        self.started[i] = true;
        Some(self.steps[i].0.clone())
    }

    fn done(&mut self, rel: String) {
        self.finished.insert(rel);
    }

    fn all_started(&self) -> bool {
        self.started.iter().all(|s| *s)
    }
}

/// Loads `names` (and what they need, first) from `dir`, on as many
/// threads as the guest has CPUs (under TCG a module's load is mostly
/// the CPU relocating and initialising it, and the network ones are
/// independent of the disk ones).
fn load(dir: &Path, dep_text: &str, names: &[&str], cmdline: &str) {
    let (plan, missing) = Plan::new(dep_text, names);
    for m in missing {
        say!("warning: module {m} is not in the image");
    }
    let state = (Mutex::new(plan), Condvar::new());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let (lock, cvar) = &state;
                let mut plan = lock.lock().unwrap_or_else(|e| e.into_inner());
                let rel = loop {
                    if let Some(rel) = plan.take() {
                        break rel;
                    }
                    if plan.all_started() {
                        return;
                    }
                    plan = cvar.wait(plan).unwrap_or_else(|e| e.into_inner());
                };
                drop(plan);
                load_one(dir, &rel, cmdline);
                lock.lock().unwrap_or_else(|e| e.into_inner()).done(rel);
                cvar.notify_all();
            });
        }
    });
}

fn load_one(dir: &Path, rel: &str, cmdline: &str) {
    let name = module_name(rel);
    let params: Vec<&str> = cmdline
        .split_whitespace()
        .filter_map(|w| {
            let (m, p) = w.split_once('.')?;
            (m.replace('-', "_") == name && p.contains('=')).then_some(p)
        })
        .collect();
    let params = CString::new(params.join(" ")).unwrap_or_default();
    let result = std::fs::File::open(dir.join(rel))
        .map_err(|e| e.to_string())
        .and_then(|f| {
            nix::kmod::finit_module(&f, &params, nix::kmod::ModuleInitFlags::empty())
                .map_err(|e| e.to_string())
        });
    match result {
        Ok(()) => {}
        Err(e) if e.contains("EEXIST") || e.contains("exists") => {}
        Err(e) => say!("warning: cannot load module {name}: {e}"),
    }
}

/// Mounts the image's system disk (the virtio-blk disk whose serial is
/// `SYSTEM_SERIAL`, erofs) read-only on `/usr`.
fn mount_system() -> Result<(), String> {
    let start = Instant::now();
    let device = loop {
        if let Some(d) = find_disk(SYSTEM_SERIAL) {
            break d;
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "no system disk (a virtio-blk disk with serial {SYSTEM_SERIAL}): the host must attach the image's {}",
                servin_guest::system::SYSTEM_FILE
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let source = format!("/dev/{device}");
    if !wait_for(Path::new(&source), Duration::from_secs(5)) {
        return Err(format!("the system disk {source} has no device node"));
    }
    mount(
        Some(source.as_str()),
        SYSTEM_MOUNT,
        Some(SYSTEM_FS),
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(|e| format!("Cannot mount the system disk {source} on {SYSTEM_MOUNT}: {e}"))
}

/// The block device (`vdb`) whose virtio serial is `serial`.
fn find_disk(serial: &str) -> Option<String> {
    std::fs::read_dir("/sys/block").ok()?.find_map(|e| {
        let e = e.ok()?;
        let s = std::fs::read_to_string(e.path().join("serial")).ok()?;
        (s.trim() == serial).then(|| e.file_name().to_string_lossy().into_owned())
    })
}

/// Waits for a path (a device node the kernel probes asynchronously).
pub fn wait_for(path: &Path, timeout: Duration) -> bool {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Step 5: one virtiofs share at its host path.
pub fn mount_share(share: &Share) -> Result<(), String> {
    let target = share
        .path
        .to_str()
        .ok_or_else(|| format!("Share {} has a path that is not UTF-8", share.tag))?;
    mount_fs(&share.tag, target, "virtiofs", MsFlags::empty(), None)
}

/// `/etc/resolv.conf` (the user-mode network's DNS) and `/etc/hosts`
/// (so `localhost:PORT` registries resolve without DNS).
pub fn write_etc() {
    let [a, b, c, d] = DNS_ADDR;
    let files = [
        ("/etc/resolv.conf", format!("nameserver {a}.{b}.{c}.{d}\n")),
        (
            "/etc/hosts",
            "127.0.0.1\tlocalhost servin\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string(),
        ),
    ];
    for (path, text) in files {
        if let Err(e) = std::fs::write(path, text) {
            say!("warning: cannot write {path}: {e}");
        }
    }
}

/// Syncs, unmounts what holds data and powers off (falls back to a reboot,
/// which a host running QEMU with `-no-reboot` sees as an exit).
pub fn power_off() -> ! {
    use nix::sys::reboot::{reboot, RebootMode};
    nix::unistd::sync();
    if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
        let mut targets: Vec<&str> = mounts
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                let _src = f.next()?;
                let target = f.next()?;
                let fstype = f.next()?;
                (target.starts_with(DATA_MOUNT)
                    || fstype == "virtiofs"
                    || fstype == "overlay"
                    || fstype == "ext4")
                    .then_some(target)
            })
            .collect();
        // Deepest first.
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in targets {
            if umount2(t, MntFlags::empty()).is_err() {
                let _ = umount2(t, MntFlags::MNT_DETACH);
            }
        }
    }
    nix::unistd::sync();
    let _ = reboot(RebootMode::RB_POWER_OFF);
    let _ = reboot(RebootMode::RB_AUTOBOOT);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
a/virtio.ko: a/virtio_ring.ko
a/virtio_ring.ko:
a/virtio_mmio.ko: a/virtio.ko a/virtio_ring.ko
a/virtio_blk.ko: a/virtio.ko a/virtio_ring.ko
b/crc32c_generic.ko:
b/libcrc32c.ko:
b/ext4.ko: b/jbd2.ko
b/jbd2.ko:
c/bridge.ko: c/stp.ko
c/stp.ko:
";

    fn drain(plan: &mut Plan) -> Vec<String> {
        let mut ready = Vec::new();
        while let Some(r) = plan.take() {
            ready.push(module_name(&r));
        }
        ready
    }

    #[test]
    fn modules_wait_for_their_dependencies_and_the_barriers_before_them() {
        let names = [
            "virtio_mmio",
            "virtio_blk",
            "crc32c_generic",
            "ext4",
            "bridge",
            "nope",
        ];
        let (mut plan, missing) = Plan::new(DEP, &names);
        assert_eq!(missing, ["nope"]);
        // Only the leaves are free at first.
        assert_eq!(drain(&mut plan), ["virtio_ring"]);
        plan.done("a/virtio_ring.ko".into());
        assert_eq!(drain(&mut plan), ["virtio"]);
        plan.done("a/virtio.ko".into());
        assert_eq!(drain(&mut plan), ["virtio_mmio"]);
        plan.done("a/virtio_mmio.ko".into());
        // After the transport: the disk driver and crc32c at once, but
        // nothing that comes after crc32c in the order.
        assert_eq!(drain(&mut plan), ["virtio_blk", "crc32c_generic"]);
        plan.done("b/crc32c_generic.ko".into());
        // ext4's jbd2 and bridge's stp together; then ext4 and bridge.
        assert_eq!(drain(&mut plan), ["jbd2", "stp"]);
        assert!(!plan.all_started());
        plan.done("b/jbd2.ko".into());
        plan.done("c/stp.ko".into());
        assert_eq!(drain(&mut plan), ["ext4", "bridge"]);
        assert!(plan.all_started());
    }
}
