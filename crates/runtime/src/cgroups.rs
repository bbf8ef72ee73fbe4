//! The container's cgroups, read and removed by the shim (the OCI runtime
//! creates them and applies the limits, on v1 and v2 alike).

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Map, Value};

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    /// v1 controllers (and `name=…`), empty for the v2 unified hierarchy.
    pub controllers: Vec<String>,
    pub v2: bool,
}

impl Hierarchy {
    fn has(&self, controller: &str) -> bool {
        if self.v2 {
            std::fs::read_to_string(self.mount_point.join("cgroup.controllers"))
                .map(|c| c.split_whitespace().any(|x| x == controller))
                .unwrap_or(false)
        } else {
            self.controllers.iter().any(|c| c == controller)
        }
    }
}

/// All cgroup hierarchies mounted in this mount namespace.
pub fn hierarchies() -> Vec<Hierarchy> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_hierarchies(&text)
}

fn parse_hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let superopts = post.nth(1).unwrap_or("");
        let Some(mount_point) = pre.split(' ').nth(4) else {
            continue;
        };
        let h = match fstype {
            "cgroup2" => Hierarchy {
                mount_point: mount_point.into(),
                controllers: Vec::new(),
                v2: true,
            },
            "cgroup" => Hierarchy {
                mount_point: mount_point.into(),
                controllers: superopts
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains("xattr"))
                    .map(str::to_string)
                    .collect(),
                v2: false,
            },
            _ => continue,
        };
        // The same hierarchy can be mounted twice (e.g. bind mounts): keep the first.
        if !out
            .iter()
            .any(|o| o.v2 == h.v2 && o.controllers == h.controllers)
        {
            out.push(h);
        }
    }
    out
}

/// Where the hierarchy carrying `controller` has the container's cgroup.
fn controller_dir(cgroup_path: &str, controller: &str) -> Option<(PathBuf, bool)> {
    let hs = hierarchies();
    let h = hs
        .iter()
        .find(|h| !h.v2 && h.has(controller))
        .or_else(|| hs.iter().find(|h| h.v2 && h.has(controller)))?;
    Some((join(&h.mount_point, cgroup_path), h.v2))
}

fn join(mount_point: &Path, cgroup_path: &str) -> PathBuf {
    mount_point.join(cgroup_path.trim_start_matches('/'))
}

/// Whether memory+swap limits can be set on this host.
pub fn swap_limit_supported() -> bool {
    match controller_dir("/", "memory") {
        Some((root, false)) => root.join("memory.memsw.limit_in_bytes").exists(),
        Some((_, true)) => true,
        None => false,
    }
}

/// Whether the kernel's OOM killer killed something in the container's cgroup.
pub fn oom_killed(cgroup_path: &str) -> bool {
    let Some((dir, v2)) = controller_dir(cgroup_path, "memory") else {
        return false;
    };
    let (file, key) = if v2 {
        ("memory.events", "oom_kill")
    } else {
        ("memory.oom_control", "oom_kill")
    };
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    flat_keyed(&text).get(key).copied().unwrap_or(0) > 0
}

/// Where shims serialise creating cgroups under a parent with removing
/// empty parents (cgroup parents are host-wide, so is the lock).
const PARENT_LOCK: &str = "/run/servin/cgroup-parents.lock";

/// Held while creating a container (shared) or removing empty parents
/// (exclusive): a parent never vanishes between a runtime's `mkdir` of it
/// and of the container's cgroup inside. A POSIX record lock: unlike
/// `flock`, it does not pass to the container processes cloned meanwhile
/// (which would hold it until they exec).
pub struct ParentLock {
    _file: Option<std::fs::File>,
}

/// Takes the parent lock; without /run/servin (not root) it is a no-op.
pub fn lock_parents(exclusive: bool) -> ParentLock {
    let path = Path::new(PARENT_LOCK);
    let file = path
        .parent()
        .map(std::fs::create_dir_all)
        .and_then(Result::ok)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(path)
                .ok()
        });
    let file = file.filter(|f| {
        // SAFETY: flock is plain old data; all-zero is a valid value.
        let mut l: libc::flock = unsafe { std::mem::zeroed() };
        l.l_type = if exclusive {
            libc::F_WRLCK
        } else {
            libc::F_RDLCK
        } as libc::c_short;
        l.l_whence = libc::SEEK_SET as libc::c_short;
        nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_SETLKW(&l)).is_ok()
    });
    // Closing the file releases the lock.
    ParentLock { _file: file }
}

/// Kills every process in the container's cgroups: `cgroup.kill` where the
/// kernel has it (v2, 5.14+), else SIGKILL to each process listed, until
/// none is left or a second has passed.
pub fn kill_all(cgroup_path: &str) {
    for h in hierarchies() {
        let dir = join(&h.mount_point, cgroup_path);
        if !dir.is_dir() || std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
            continue;
        }
        for _ in 0..100 {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Removes the container's cgroup in every hierarchy, then the parent
/// folders named in `cgroup_parent` that are left empty.
pub fn remove(cgroup_path: &str, cgroup_parent: &str) -> Result<(), std::io::Error> {
    let parents = cgroup_parent.split('/').filter(|c| !c.is_empty()).count();
    let mut first_err = None;
    let mut emptied = Vec::new();
    for h in hierarchies() {
        let dir = join(&h.mount_point, cgroup_path);
        match rmdir_retrying(&dir) {
            Ok(()) => emptied.push(dir),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if parents > 0 && !emptied.is_empty() {
        let _lock = lock_parents(true);
        for mut dir in emptied {
            for _ in 0..parents {
                dir.pop();
                // Still in use by another container: leave it (and its parents).
                if std::fs::remove_dir(&dir).is_err() {
                    break;
                }
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Removes a cgroup directory; its last tasks may need a moment to leave.
fn rmdir_retrying(dir: &Path) -> Result<(), std::io::Error> {
    let mut delay = Duration::from_millis(5);
    for attempt in 0.. {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 8 => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, oom_control).
fn flat_keyed(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn read_u64(path: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// Nanoseconds of CPU time the whole host has used (`/proc/stat`), as Docker reports it.
fn system_cpu_usage() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    Some(ticks * (1_000_000_000 / hz))
}

fn online_cpus() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
}

/// Resource usage of the container's cgroup, in the shape of Docker's stats
/// (`memory_stats`, `cpu_stats`, `pids_stats`); the engine adds the rest.
pub fn stats(cgroup_path: &str) -> Value {
    let mut out = json!({
        "read": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    });
    if let Some((dir, v2)) = controller_dir(cgroup_path, "memory") {
        let stat =
            flat_keyed(&std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default());
        let mut m = Map::new();
        let (usage, limit) = if v2 {
            (
                read_u64(&dir.join("memory.current")),
                read_u64(&dir.join("memory.max")),
            )
        } else {
            m.insert(
                "max_usage".into(),
                json!(read_u64(&dir.join("memory.max_usage_in_bytes"))),
            );
            m.insert(
                "failcnt".into(),
                json!(read_u64(&dir.join("memory.failcnt"))),
            );
            (
                read_u64(&dir.join("memory.usage_in_bytes")),
                read_u64(&dir.join("memory.limit_in_bytes")),
            )
        };
        m.insert("usage".into(), json!(usage));
        m.insert("limit".into(), json!(limit));
        m.insert("stats".into(), json!(stat));
        out["memory_stats"] = Value::Object(m);
    }
    let mut cpu_usage = Map::new();
    let mut throttling = Map::new();
    if let Some((dir, true)) = controller_dir(cgroup_path, "cpu") {
        let stat = flat_keyed(&std::fs::read_to_string(dir.join("cpu.stat")).unwrap_or_default());
        let us = |k: &str| stat.get(k).map(|v| v * 1000);
        cpu_usage.insert("total_usage".into(), json!(us("usage_usec")));
        cpu_usage.insert("usage_in_usermode".into(), json!(us("user_usec")));
        cpu_usage.insert("usage_in_kernelmode".into(), json!(us("system_usec")));
        throttling.insert("periods".into(), json!(stat.get("nr_periods")));
        throttling.insert("throttled_periods".into(), json!(stat.get("nr_throttled")));
        throttling.insert("throttled_time".into(), json!(us("throttled_usec")));
    } else {
        if let Some((dir, false)) = controller_dir(cgroup_path, "cpuacct") {
            cpu_usage.insert(
                "total_usage".into(),
                json!(read_u64(&dir.join("cpuacct.usage"))),
            );
            let percpu: Vec<u64> = std::fs::read_to_string(dir.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            cpu_usage.insert("percpu_usage".into(), json!(percpu));
            let stat =
                flat_keyed(&std::fs::read_to_string(dir.join("cpuacct.stat")).unwrap_or_default());
            // SAFETY: sysconf has no memory-safety preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            let ns = |k: &str| stat.get(k).map(|t| t * (1_000_000_000 / hz));
            cpu_usage.insert("usage_in_usermode".into(), json!(ns("user")));
            cpu_usage.insert("usage_in_kernelmode".into(), json!(ns("system")));
        }
        if let Some((dir, false)) = controller_dir(cgroup_path, "cpu") {
            let stat =
                flat_keyed(&std::fs::read_to_string(dir.join("cpu.stat")).unwrap_or_default());
            throttling.insert("periods".into(), json!(stat.get("nr_periods")));
            throttling.insert("throttled_periods".into(), json!(stat.get("nr_throttled")));
            throttling.insert("throttled_time".into(), json!(stat.get("throttled_time")));
        }
    }
    out["cpu_stats"] = json!({
        "cpu_usage": cpu_usage,
        "system_cpu_usage": system_cpu_usage(),
        "online_cpus": online_cpus(),
        "throttling_data": throttling,
    });
    if let Some((dir, _)) = controller_dir(cgroup_path, "pids") {
        out["pids_stats"] = json!({
            "current": read_u64(&dir.join("pids.current")),
            "limit": read_u64(&dir.join("pids.max")),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:13 - cgroup cgroup rw,memory
35 99 0:30 / /mnt/again rw,nosuid shared:13 - cgroup cgroup rw,memory
";

    #[test]
    fn parses_hybrid_layout() {
        let hs = parse_hierarchies(MOUNTINFO);
        assert_eq!(hs.len(), 4);
        assert!(hs[0].v2);
        assert_eq!(hs[1].controllers, vec!["name=systemd"]);
        assert_eq!(hs[2].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(hs[3].mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(
            join(&hs[3].mount_point, "/servin/x"),
            PathBuf::from("/sys/fs/cgroup/memory/servin/x")
        );
    }

    #[test]
    fn reads_oom_counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(flat_keyed(v1).get("oom_kill"), Some(&2));
    }
}
