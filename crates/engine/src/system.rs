//! `/version` and `/info`.

use serde_json::{json, Value};
use servin_api::{API_VERSION, MIN_API_VERSION};

use crate::Engine;

/// Facts about the build, supplied by the binary.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub version: String,
    pub git_commit: String,
}

fn kernel_version() -> String {
    nix_uname().unwrap_or_default()
}

fn nix_uname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

fn os_pretty_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `/info`'s `SecurityOptions`: seccomp only when this build's built-in
/// runtime enforces it.
fn security_options() -> Vec<&'static str> {
    if servin_runtime::seccomp::ENFORCED {
        vec!["name=seccomp,profile=builtin"]
    } else {
        Vec::new()
    }
}

impl Engine {
    /// `GET /version`.
    pub fn version(&self) -> Value {
        let b = &self.config().build;
        json!({
            "Platform": {"Name": "Servin Engine"},
            "Components": [{
                "Name": "Engine",
                "Version": b.version,
                "Details": {
                    "ApiVersion": API_VERSION,
                    "MinAPIVersion": MIN_API_VERSION,
                    "GitCommit": b.git_commit,
                    "Os": "linux",
                    "Arch": arch(),
                    "KernelVersion": kernel_version(),
                    "GoVersion": "n/a (Rust)",
                    "BuildTime": "",
                    "Experimental": "false",
                }
            }],
            "Version": b.version,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": b.git_commit,
            "GoVersion": "n/a (Rust)",
            "Os": "linux",
            "Arch": arch(),
            "KernelVersion": kernel_version(),
            "BuildTime": "",
            "Experimental": false,
        })
    }

    /// `GET /info`.
    pub fn info(&self) -> Value {
        let images = self.image_store().list().len();
        let cfg = self.config();
        let insecure: Vec<String> = std::iter::once("127.0.0.0/8".to_string())
            .chain(cfg.registries.insecure.iter().cloned())
            .collect();
        let nfd = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count())
            .unwrap_or(0);
        let id = self.daemon_id();
        json!({
            "ID": id,
            "Containers": 0,
            "ContainersRunning": 0,
            "ContainersPaused": 0,
            "ContainersStopped": 0,
            "Images": images,
            "Driver": "overlayfs",
            "DriverStatus": [["Backing Filesystem", "extfs"]],
            "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Authorization": null, "Log": ["json-file"]},
            "MemoryLimit": true,
            "SwapLimit": true,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "CPUSet": true,
            "PidsLimit": true,
            "IPv4Forwarding": true,
            "Debug": false,
            "NFd": nfd,
            "OomKillDisable": false,
            "NGoroutines": 0,
            "SystemTime": chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, false),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version(),
            "NEventsListener": self.inner.events.receiver_count(),
            "KernelVersion": kernel_version(),
            "OperatingSystem": os_pretty_name(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": null,
                "AllowNondistributableArtifactsHostnames": null,
                "InsecureRegistryCIDRs": insecure,
                "IndexConfigs": {},
                "Mirrors": null,
            },
            "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "MemTotal": mem_total(),
            "GenericResources": null,
            "DockerRootDir": cfg.data_root.display().to_string(),
            "HttpProxy": "",
            "HttpsProxy": "",
            "NoProxy": "",
            "Name": hostname(),
            "Labels": [],
            "ExperimentalBuild": false,
            "ServerVersion": cfg.build.version,
            "Runtimes": {"servin": {"path": "servin-runtime"}, "runc": {"path": "runc"}},
            "DefaultRuntime": "servin",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
            "LiveRestoreEnabled": true,
            "Isolation": "",
            "InitBinary": cfg.init_path,
            "ContainerdCommit": {"ID": ""},
            "RuncCommit": {"ID": ""},
            "InitCommit": {"ID": ""},
            "SecurityOptions": security_options(),
            "Warnings": null,
        })
    }

    /// A stable identifier for this engine's data root, created once.
    fn daemon_id(&self) -> String {
        let path = self.config().data_root.join("engine-id");
        if let Ok(id) = std::fs::read_to_string(&path) {
            return id.trim().to_string();
        }
        let id = format!("{:032x}", rand_u128());
        let _ = servin_image::meta::write_atomic(&path, id.as_bytes());
        id
    }

    /// Seconds since the engine opened.
    pub fn uptime(&self) -> u64 {
        self.inner
            .started
            .elapsed()
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

fn rand_u128() -> u128 {
    let mut buf = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    u128::from_le_bytes(buf)
}
