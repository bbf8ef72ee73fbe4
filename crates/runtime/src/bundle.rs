//! The OCI bundle: `config.json` for the container, and the `process.json`
//! of an exec, built the way Docker builds them.

use std::path::Path;

use oci_spec::runtime::{Process, Spec};
use serde_json::{json, Value};

use crate::caps;
use crate::error::RuntimeError;
use crate::paths::clean;
use crate::seccomp;
use crate::spec::{ContainerSpec, MountSpec, NetworkMode, ProcessSpec, Resources};
use crate::users::ExecUser;

/// Docker's `PATH` when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Where `--init` puts the init binary in the container, as Docker does.
pub const INIT_IN_CONTAINER: &str = "/sbin/docker-init";

/// Directories of the host's `/dev` whose nodes a privileged container does
/// not get: the runtime makes its own `pts`, `shm` and `mqueue`.
const HOST_DEV_SKIP: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// What the host can enforce, probed once by the shim.
#[derive(Debug, Clone, Copy)]
pub struct HostSupport {
    /// Memory+swap limits can be set (v1 `memory.memsw.*`, v2 `memory.swap.max`).
    pub swap_limit: bool,
}

/// The environment a process gets: the spec's, plus `PATH` and `HOME` when unset.
pub fn process_env(p: &ProcessSpec, user: &ExecUser) -> Vec<String> {
    let mut env = p.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    env
}

/// The working directory a process starts in.
pub fn process_cwd(p: &ProcessSpec) -> String {
    if p.cwd.is_empty() {
        "/".into()
    } else {
        clean(&p.cwd)
    }
}

/// The OCI `process` object for `p`.
pub fn process(
    p: &ProcessSpec,
    user: &ExecUser,
    capabilities: &[String],
    no_new_privileges: bool,
) -> Result<Process, RuntimeError> {
    let mut user_json = json!({ "uid": user.uid, "gid": user.gid });
    if !user.additional_gids.is_empty() {
        user_json["additionalGids"] = json!(user.additional_gids);
    }
    let mut v = json!({
        "terminal": p.tty,
        "user": user_json,
        "args": p.args,
        "env": process_env(p, user),
        "cwd": process_cwd(p),
        "capabilities": {
            "bounding": capabilities,
            "effective": capabilities,
            "permitted": capabilities,
        },
    });
    // Only when set: libcontainer 0.7 takes a present `false` like `true`
    // and loads the seccomp filter after dropping capabilities, which the
    // kernel refuses without CAP_SYS_ADMIN or no_new_privs.
    if no_new_privileges {
        v["noNewPrivileges"] = json!(true);
    }
    serde_json::from_value(v)
        .map_err(|e| RuntimeError::InvalidSpec(format!("Invalid OCI process: {e}")))
}

/// The OCI runtime spec (`config.json`) for the container.
pub fn spec(
    c: &ContainerSpec,
    user: &ExecUser,
    rootfs: &Path,
    host: HostSupport,
) -> Result<Spec, RuntimeError> {
    let capabilities = caps::effective_set(c.privileged, &c.cap_add, &c.cap_drop)?;
    let mut main = c.process.clone();
    if main.init {
        // The init runs the command as its child: `docker-init -- CMD...`.
        main.args = [INIT_IN_CONTAINER.to_string(), "--".to_string()]
            .into_iter()
            .chain(main.args)
            .collect();
    }
    let process = process(&main, user, &capabilities, c.no_new_privileges)?;
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    match &c.network {
        NetworkMode::Host => {}
        NetworkMode::Join(path) => namespaces.push(json!({"type": "network", "path": path})),
        NetworkMode::None | NetworkMode::Private => namespaces.push(json!({"type": "network"})),
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": c.cgroup_path(),
        "resources": resources(&c.resources, c.privileged, host)?,
    });
    if c.privileged {
        linux["devices"] = json!(host_devices(Path::new("/dev")));
    } else {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if let Some(filter) = seccomp::linux_seccomp(&c.seccomp, c.privileged, &capabilities)? {
        linux["seccomp"] = filter;
    }
    let mut sysctl = serde_json::Map::new();
    if c.network != NetworkMode::Host {
        sysctl.insert("net.ipv4.ip_unprivileged_port_start".into(), json!("0"));
        sysctl.insert("net.ipv4.ping_group_range".into(), json!("0 2147483647"));
    }
    for (k, v) in &c.sysctls {
        sysctl.insert(k.clone(), json!(v));
    }
    if !sysctl.is_empty() {
        linux["sysctl"] = Value::Object(sysctl);
    }
    let mut v = json!({
        "ociVersion": "1.0.2",
        "root": { "path": rootfs, "readonly": c.readonly_rootfs },
        "hostname": c.hostname,
        "mounts": mounts(c),
        "linux": linux,
    });
    if !c.domainname.is_empty() {
        v["domainname"] = json!(c.domainname);
    }
    let mut spec: Spec = serde_json::from_value(v)
        .map_err(|e| RuntimeError::InvalidSpec(format!("Invalid OCI runtime spec: {e}")))?;
    spec.set_process(Some(process));
    Ok(spec)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({ "destination": dest, "type": typ, "source": source, "options": options })
}

/// Docker's standard mounts, then the user's (parents first), then the
/// `/etc` files the engine wrote.
fn mounts(c: &ContainerSpec) -> Vec<Value> {
    let sys_mode = if c.privileged { "rw" } else { "ro" };
    let standard = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        ),
    ];
    let user_dests: Vec<String> = c.mounts.iter().map(|m| clean(m.destination())).collect();
    let mut out: Vec<Value> = standard
        .into_iter()
        .filter(|m| !user_dests.iter().any(|d| m["destination"] == json!(d)))
        .collect();

    let mut user: Vec<&MountSpec> = c.mounts.iter().collect();
    user.sort_by_key(|m| clean(m.destination()).matches('/').count());
    for m in user {
        out.push(match m {
            MountSpec::Bind {
                source,
                destination,
                readonly,
            } => json!({
                "destination": clean(destination),
                "type": "bind",
                "source": source,
                "options": ["rbind", "rprivate", if *readonly { "ro" } else { "rw" }],
            }),
            MountSpec::Tmpfs {
                destination,
                options,
            } => json!({
                "destination": clean(destination),
                "type": "tmpfs",
                "source": "tmpfs",
                "options": tmpfs_options(options),
            }),
        });
    }

    if let (true, Some(init)) = (c.process.init, &c.init_path) {
        out.push(json!({
            "destination": INIT_IN_CONTAINER,
            "type": "bind",
            "source": init,
            "options": ["rbind", "rprivate", "ro"],
        }));
    }

    let etc_mode = if c.readonly_rootfs { "ro" } else { "rw" };
    for (dest, file) in [
        ("/etc/resolv.conf", &c.etc_resolv_conf),
        ("/etc/hostname", &c.etc_hostname),
        ("/etc/hosts", &c.etc_hosts),
    ] {
        if let Some(file) = file {
            if !user_dests.iter().any(|d| d == dest) {
                out.push(json!({
                    "destination": dest,
                    "type": "bind",
                    "source": file,
                    "options": ["rbind", "rprivate", etc_mode],
                }));
            }
        }
    }
    out
}

/// Docker's `--tmpfs` defaults (`noexec,nosuid,nodev`) adjusted by the user's options.
fn tmpfs_options(user: &[String]) -> Vec<String> {
    let mut opts: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
    for o in user
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
    {
        let negated = format!("no{o}");
        if let Some(pos) = opts.iter().position(|x| *x == negated) {
            opts.remove(pos);
        }
        if let Some(plain) = o.strip_prefix("no") {
            opts.retain(|x| x != plain);
        }
        if !opts.iter().any(|x| x == o) {
            opts.push(o.to_string());
        }
    }
    opts
}

fn resources(r: &Resources, privileged: bool, host: HostSupport) -> Result<Value, RuntimeError> {
    let mut out = json!({ "devices": devices(privileged) });
    if let Some(limit) = r.memory.filter(|m| *m > 0) {
        let mut memory = json!({ "limit": limit });
        let swap = match r.memory_swap {
            Some(-1) => Some(-1),
            Some(s) if s > 0 && s < limit => {
                return Err(RuntimeError::InvalidSpec(
                    "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
                ))
            }
            Some(s) if s > 0 => Some(s),
            _ => Some(limit * 2),
        };
        if host.swap_limit {
            memory["swap"] = json!(swap);
        }
        out["memory"] = memory;
    } else if r.memory_swap.is_some_and(|s| s > 0) {
        return Err(RuntimeError::InvalidSpec(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        ));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = r.cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(q) = r.cpu_quota.filter(|q| *q != 0) {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(p) = r.cpu_period.filter(|p| *p > 0) {
        cpu.insert("period".into(), json!(p));
    }
    if !cpu.is_empty() {
        out["cpu"] = Value::Object(cpu);
    }
    if let Some(l) = r.pids_limit.filter(|l| *l > 0) {
        out["pids"] = json!({ "limit": l });
    }
    Ok(out)
}

/// Docker's device cgroup allowlist; everything for privileged containers.
fn devices(privileged: bool) -> Value {
    if privileged {
        return json!([{ "allow": true, "access": "rwm" }]);
    }
    let dev = |typ: &str, major: Option<i64>, minor: Option<i64>, access: &str| json!({ "allow": true, "type": typ, "major": major, "minor": minor, "access": access });
    json!([
        { "allow": false, "access": "rwm" },
        dev("c", None, None, "m"),
        dev("b", None, None, "m"),
        dev("c", Some(1), Some(3), "rwm"),
        dev("c", Some(1), Some(8), "rwm"),
        dev("c", Some(1), Some(7), "rwm"),
        dev("c", Some(5), Some(0), "rwm"),
        dev("c", Some(1), Some(5), "rwm"),
        dev("c", Some(1), Some(9), "rwm"),
        dev("c", Some(136), None, "rwm"),
        dev("c", Some(5), Some(2), "rwm"),
        dev("c", Some(10), Some(200), "rwm"),
    ])
}

/// Every device node under `dev` (the host's `/dev`), as OCI
/// `linux.devices` entries: what a privileged container gets in Docker.
/// The console and the runtime's own directories are left out.
fn host_devices(dev: &Path) -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut stack = vec![dev.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            // Not following links: a symlink is not a device node.
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                let skip = dir == dev
                    && HOST_DEV_SKIP
                        .iter()
                        .any(|s| e.file_name() == std::ffi::OsStr::new(s));
                if !skip {
                    stack.push(path);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            if path == dev.join("console") {
                continue;
            }
            let rdev = meta.rdev();
            out.push(json!({
                "path": Path::new("/dev").join(path.strip_prefix(dev).unwrap_or(&path)),
                "type": typ,
                "major": libc::major(rdev),
                "minor": libc::minor(rdev),
                "fileMode": meta.mode() & 0o7777,
                "uid": meta.uid(),
                "gid": meta.gid(),
            }));
        }
    }
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::tests::sample;

    fn root() -> ExecUser {
        ExecUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            home: "/root".into(),
        }
    }

    fn host() -> HostSupport {
        HostSupport { swap_limit: true }
    }

    #[test]
    fn docker_defaults() {
        let c = sample();
        let s = spec(&c, &root(), Path::new("/r"), host()).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["linux"]["cgroupsPath"],
            json!(format!("/servin/{}", c.id))
        );
        assert_eq!(v["linux"]["maskedPaths"].as_array().unwrap().len(), 11);
        assert_eq!(v["linux"]["namespaces"].as_array().unwrap().len(), 6);
        assert_eq!(
            v["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert!(v["process"]["rlimits"].is_null());
        assert!(v["process"].get("noNewPrivileges").is_none());
        assert!(v["process"]["env"]
            .as_array()
            .unwrap()
            .contains(&json!("HOME=/root")));
        let dests: Vec<&str> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm"
            ]
        );
    }

    #[test]
    fn privileged_host_network() {
        let mut c = sample();
        c.privileged = true;
        c.network = NetworkMode::Host;
        let v = serde_json::to_value(spec(&c, &root(), Path::new("/r"), host()).unwrap()).unwrap();
        assert!(v["linux"]["maskedPaths"].is_null());
        assert_eq!(v["linux"]["namespaces"].as_array().unwrap().len(), 5);
        assert_eq!(
            v["linux"]["resources"]["devices"].as_array().unwrap().len(),
            1
        );
        assert!(
            v["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len()
                > 30
        );
    }

    #[test]
    fn joined_network_namespace_is_a_path() {
        let mut c = sample();
        c.network = NetworkMode::Join("/data/containers/x/netns".into());
        let v = serde_json::to_value(spec(&c, &root(), Path::new("/r"), host()).unwrap()).unwrap();
        let net: Vec<&serde_json::Value> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == "network")
            .collect();
        assert_eq!(net.len(), 1);
        assert_eq!(net[0]["path"], "/data/containers/x/netns");
        c.network = NetworkMode::Private;
        let v = serde_json::to_value(spec(&c, &root(), Path::new("/r"), host()).unwrap()).unwrap();
        assert!(v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network" && n["path"].is_null()));
    }

    #[test]
    fn seccomp_follows_privilege_and_setting() {
        let mut c = sample();
        let v = serde_json::to_value(spec(&c, &root(), Path::new("/r"), host()).unwrap()).unwrap();
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        c.seccomp = crate::seccomp::Seccomp::Unconfined;
        let v = serde_json::to_value(spec(&c, &root(), Path::new("/r"), host()).unwrap()).unwrap();
        assert!(v["linux"]["seccomp"].is_null());
        c.seccomp = crate::seccomp::Seccomp::Custom(r#"{"defaultAction":"SCMP_ACT_LOG"}"#.into());
        let v = serde_json::to_value(spec(&c, &root(), Path::new("/r"), host()).unwrap()).unwrap();
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_LOG");
        c.privileged = true;
        let v = serde_json::to_value(spec(&c, &root(), Path::new("/r"), host()).unwrap()).unwrap();
        assert!(v["linux"]["seccomp"].is_null());
    }

    #[test]
    fn init_wraps_the_command() {
        let mut c = sample();
        c.process.args = vec!["sleep".into(), "5".into()];
        c.process.init = true;
        c.init_path = Some("/usr/bin/tini-static".into());
        let v = serde_json::to_value(spec(&c, &root(), Path::new("/r"), host()).unwrap()).unwrap();
        assert_eq!(
            v["process"]["args"],
            json!(["/sbin/docker-init", "--", "sleep", "5"])
        );
        let m = v["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(m["destination"], "/sbin/docker-init");
        assert_eq!(m["source"], "/usr/bin/tini-static");
        assert_eq!(m["options"], json!(["rbind", "rprivate", "ro"]));
    }

    #[test]
    fn privileged_gets_host_devices() {
        let mut c = sample();
        let v = serde_json::to_value(spec(&c, &root(), Path::new("/r"), host()).unwrap()).unwrap();
        assert!(v["linux"]["devices"].is_null());
        c.privileged = true;
        let v = serde_json::to_value(spec(&c, &root(), Path::new("/r"), host()).unwrap()).unwrap();
        let devs = v["linux"]["devices"].as_array().unwrap();
        let null = devs.iter().find(|d| d["path"] == "/dev/null").unwrap();
        assert_eq!(
            (&null["type"], &null["major"], &null["minor"]),
            (&json!("c"), &json!(1), &json!(3))
        );
        assert!(devs.iter().all(|d| {
            let p = d["path"].as_str().unwrap();
            p != "/dev/console" && !p.starts_with("/dev/pts/")
        }));
    }

    #[test]
    fn user_mounts_replace_and_follow_defaults() {
        let mut c = sample();
        c.mounts = vec![
            MountSpec::Tmpfs {
                destination: "/dev/shm".into(),
                options: vec!["size=1m,exec".into()],
            },
            MountSpec::Bind {
                source: "/h/b".into(),
                destination: "/a/b".into(),
                readonly: true,
            },
            MountSpec::Bind {
                source: "/h/a".into(),
                destination: "/a/".into(),
                readonly: false,
            },
        ];
        c.etc_hosts = Some("/s/hosts".into());
        let v = serde_json::to_value(spec(&c, &root(), Path::new("/r"), host()).unwrap()).unwrap();
        let m = v["mounts"].as_array().unwrap();
        let dests: Vec<&str> = m
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(&dests[6..], ["/a", "/dev/shm", "/a/b", "/etc/hosts"]);
        assert_eq!(
            m[7]["options"],
            json!(["nosuid", "nodev", "size=1m", "exec"])
        );
        assert_eq!(m[8]["options"], json!(["rbind", "rprivate", "ro"]));
    }

    #[test]
    fn resources_map_like_docker() {
        let r = Resources {
            memory: Some(32 << 20),
            memory_swap: None,
            cpu_shares: Some(512),
            cpu_quota: Some(50000),
            cpu_period: Some(100000),
            pids_limit: Some(-1),
        };
        let v = resources(&r, false, host()).unwrap();
        assert_eq!(v["memory"], json!({"limit": 32 << 20, "swap": 64 << 20}));
        assert_eq!(
            v["cpu"],
            json!({"shares": 512, "quota": 50000, "period": 100000})
        );
        assert!(v["pids"].is_null());
        let unlimited = Resources {
            memory: Some(1 << 20),
            memory_swap: Some(-1),
            pids_limit: Some(10),
            ..Default::default()
        };
        let v = resources(&unlimited, false, host()).unwrap();
        assert_eq!(v["memory"]["swap"], json!(-1));
        assert_eq!(v["pids"]["limit"], json!(10));
        let bad = Resources {
            memory: Some(2 << 20),
            memory_swap: Some(1 << 20),
            ..Default::default()
        };
        assert!(resources(&bad, false, host()).is_err());
    }
}
