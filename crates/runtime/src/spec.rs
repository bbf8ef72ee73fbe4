//! What the engine asks for (`ContainerSpec`, written as `spec.json` in the
//! container's state directory) and what the runtime reports back
//! (`ShimState`, `ExitStatus`, `ExecStatus`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;
use crate::seccomp::Seccomp;

/// Name of the spec file inside a container's state directory.
pub const SPEC_FILE: &str = "spec.json";
/// Name of the exit record inside a container's state directory.
pub const EXIT_FILE: &str = "exit.json";
/// Name of the shim's control socket inside a container's state directory.
pub const SOCKET_FILE: &str = "shim.sock";
/// Name of the file holding the shim's pid.
pub const PID_FILE: &str = "shim.pid";
/// Name of the shim's own log (its stderr).
pub const SHIM_LOG_FILE: &str = "shim.log";

/// Everything needed to run one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// 64 lowercase hex digits.
    pub id: String,
    /// `DATA_ROOT/containers/<id>`: everything of this container lives here.
    pub state_dir: PathBuf,
    /// Image snapshot directories, lowest first.
    pub layers: Vec<PathBuf>,
    pub process: ProcessSpec,
    pub hostname: String,
    pub domainname: String,
    pub mounts: Vec<MountSpec>,
    pub readonly_rootfs: bool,
    pub network: NetworkMode,
    pub resources: Resources,
    pub privileged: bool,
    /// Capability names, with or without the `CAP_` prefix, or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub runtime: RuntimeKind,
    /// The container's cgroup is `<each hierarchy>/<cgroup_parent>/<id>`.
    pub cgroup_parent: String,
    pub etc_hosts: Option<PathBuf>,
    pub etc_resolv_conf: Option<PathBuf>,
    pub etc_hostname: Option<PathBuf>,
    /// Docker json-file log of the container's output.
    pub log_path: PathBuf,
    /// Signal name or number the engine sends on stop; kept for the engine.
    pub stop_signal: Option<String>,
    /// The seccomp filter (ignored when privileged).
    #[serde(default)]
    pub seccomp: Seccomp,
    /// The host's init binary, mounted at `/sbin/docker-init` when
    /// `process.init` is set.
    #[serde(default)]
    pub init_path: Option<PathBuf>,
    /// `--sysctl`: namespaced ones only (the engine checks), set over the
    /// defaults.
    #[serde(default)]
    pub sysctls: std::collections::BTreeMap<String, String>,
}

/// A process to run: the container's main process or an exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Working directory; empty means `/`.
    pub cwd: String,
    /// `""` (root), `uid`, `uid:gid`, `name` or `name:group`, resolved
    /// against the container's `/etc/passwd` and `/etc/group`.
    pub user: String,
    pub tty: bool,
    pub open_stdin: bool,
    /// Run the container's init (`ContainerSpec::init_path`) as PID 1 with
    /// this process as its child (`docker run --init`); main process only.
    pub init: bool,
}

/// A mount the user asked for, on top of the standard ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MountSpec {
    Bind {
        source: PathBuf,
        destination: String,
        readonly: bool,
    },
    Tmpfs {
        destination: String,
        options: Vec<String>,
    },
}

impl MountSpec {
    pub fn destination(&self) -> &str {
        match self {
            MountSpec::Bind { destination, .. } | MountSpec::Tmpfs { destination, .. } => {
                destination
            }
        }
    }
}

/// Which network namespace the container gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// A new network namespace with only `lo`, up.
    None,
    /// The host's network namespace.
    Host,
    /// A new network namespace with `lo` up; interfaces are added by the engine.
    Private,
    /// An existing network namespace: a pinned one the engine made and
    /// wired (`containers/<id>/netns`), or another container's
    /// (`/proc/PID/ns/net`).
    Join(std::path::PathBuf),
}

/// cgroup limits, as Docker's `HostConfig` names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Bytes.
    pub memory: Option<i64>,
    /// Memory plus swap, bytes; `-1` is unlimited swap.
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    /// Microseconds per period.
    pub cpu_quota: Option<i64>,
    /// Microseconds.
    pub cpu_period: Option<u64>,
    /// `0` or negative is unlimited.
    pub pids_limit: Option<i64>,
}

/// Which OCI runtime creates the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RuntimeKind {
    /// youki's `libcontainer`, inside the shim.
    Builtin,
    /// An external `runc`-compatible binary.
    Runc { path: PathBuf },
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code, or 128 + signal number when a signal killed it.
    pub code: i32,
    pub oom_killed: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
}

/// The container's state as its shim sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShimState {
    /// Created; the user process waits for `start`.
    Created,
    Running {
        pid: u32,
        started_at: DateTime<Utc>,
    },
    Paused,
    Exited {
        code: i32,
        oom_killed: bool,
        started_at: Option<DateTime<Utc>>,
        finished_at: DateTime<Utc>,
    },
}

impl From<ExitStatus> for ShimState {
    fn from(e: ExitStatus) -> Self {
        ShimState::Exited {
            code: e.code,
            oom_killed: e.oom_killed,
            started_at: e.started_at,
            finished_at: e.finished_at,
        }
    }
}

/// Identifies an exec'd process within its container's shim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecId(pub String);

impl std::fmt::Display for ExecId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// State of an exec'd process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStatus {
    pub running: bool,
    pub pid: Option<u32>,
    /// Set once it has exited (128 + signal when killed).
    pub exit_code: Option<i32>,
}

impl ContainerSpec {
    /// Checks what can be checked without touching the system.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let invalid = |m: String| Err(RuntimeError::InvalidSpec(m));
        if self.id.len() != 64
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return invalid(format!(
                "Container id {:?} is not 64 lowercase hex digits",
                self.id
            ));
        }
        if self.layers.is_empty() {
            return invalid("Container has no image layers".into());
        }
        if !self.state_dir.is_absolute() {
            return invalid(format!(
                "State directory {} is not absolute",
                self.state_dir.display()
            ));
        }
        if self.cgroup_parent.split('/').any(|c| c == "..") {
            return invalid(format!(
                "Cgroup parent {:?} leaves its hierarchy",
                self.cgroup_parent
            ));
        }
        for m in &self.mounts {
            if !m.destination().starts_with('/') {
                return invalid(format!(
                    "Mount destination {:?} is not absolute",
                    m.destination()
                ));
            }
        }
        if self.process.init && self.init_path.is_none() {
            return invalid("An init process (--init) was asked for without an init binary".into());
        }
        self.process.validate()
    }

    /// The container's cgroup path relative to each hierarchy's root.
    pub fn cgroup_path(&self) -> String {
        let parent = self.cgroup_parent.trim_matches('/');
        if parent.is_empty() {
            format!("/{}", self.id)
        } else {
            format!("/{parent}/{}", self.id)
        }
    }
}

impl ProcessSpec {
    pub fn validate(&self) -> Result<(), RuntimeError> {
        if self.args.is_empty() || self.args[0].is_empty() {
            return Err(RuntimeError::InvalidSpec("No command specified".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> ContainerSpec {
        ContainerSpec {
            id: "a".repeat(64),
            state_dir: "/var/lib/servin/containers/x".into(),
            layers: vec!["/l1".into(), "/l2".into()],
            process: ProcessSpec {
                args: vec!["sh".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/".into(),
                user: String::new(),
                tty: false,
                open_stdin: false,
                init: false,
            },
            hostname: "h".into(),
            domainname: String::new(),
            mounts: vec![],
            readonly_rootfs: false,
            network: NetworkMode::None,
            resources: Resources::default(),
            privileged: false,
            cap_add: vec![],
            cap_drop: vec![],
            no_new_privileges: false,
            runtime: RuntimeKind::Builtin,
            cgroup_parent: "servin".into(),
            etc_hosts: None,
            etc_resolv_conf: None,
            etc_hostname: None,
            log_path: "/x.log".into(),
            stop_signal: None,
            seccomp: Seccomp::Builtin,
            init_path: None,
            sysctls: Default::default(),
        }
    }

    #[test]
    fn validates() {
        let mut s = sample();
        s.validate().unwrap();
        assert_eq!(s.cgroup_path(), format!("/servin/{}", s.id));
        s.layers.clear();
        assert!(s.validate().is_err());
        let mut s = sample();
        s.id = "A".repeat(64);
        assert!(s.validate().is_err());
        let mut s = sample();
        s.process.args.clear();
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "No command specified"
        );
    }

    #[test]
    fn round_trips_through_json() {
        let s = sample();
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<ContainerSpec>(&j).unwrap(), s);
    }
}
