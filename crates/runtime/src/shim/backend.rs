//! The OCI runtimes the shim drives: youki's `libcontainer` in-process, or
//! an external runc-compatible binary.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::{LinuxSeccomp, Spec};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

use super::runc::Runc;
use crate::error::{chain, RuntimeError};
use crate::lookup::{check_executable, classify_runtime_error};
use crate::spec::{ContainerSpec, RuntimeKind};

/// How a new process gets its stdio.
pub enum Stdio {
    /// The process's ends of three pipes.
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A pty, whose master the runtime sends to this console socket.
    Console(PathBuf),
}

/// One container's OCI runtime.
pub enum Backend {
    Builtin(Builtin),
    Runc(Runc),
}

impl Backend {
    pub fn new(spec: &ContainerSpec) -> Backend {
        match &spec.runtime {
            RuntimeKind::Builtin => Backend::Builtin(Builtin {
                id: spec.id.clone(),
                root: spec.state_dir.join(crate::client::BUILTIN_STATE_DIR),
                container: None,
            }),
            RuntimeKind::Runc { path } => Backend::Runc(Runc::new(path, &spec.state_dir, &spec.id)),
        }
    }

    /// Creates the container from the bundle; returns the pid of its init,
    /// which waits for [`Backend::start`].
    pub fn create(&mut self, bundle: &Path, stdio: Stdio) -> Result<i32, RuntimeError> {
        match self {
            Backend::Builtin(b) => b.create(bundle, stdio),
            Backend::Runc(r) => r.create(bundle, stdio),
        }
    }

    pub fn start(&mut self) -> Result<(), RuntimeError> {
        match self {
            Backend::Builtin(b) => b.loaded()?.start().map_err(|e| RuntimeError::Oci {
                op: "start",
                message: chain(&e),
            }),
            Backend::Runc(r) => r.simple("start", &[]),
        }
    }

    pub fn pause(&mut self) -> Result<(), RuntimeError> {
        match self {
            Backend::Builtin(b) => b.loaded()?.pause().map_err(|e| RuntimeError::Oci {
                op: "pause",
                message: chain(&e),
            }),
            Backend::Runc(r) => r.simple("pause", &[]),
        }
    }

    pub fn resume(&mut self) -> Result<(), RuntimeError> {
        match self {
            Backend::Builtin(b) => b.loaded()?.resume().map_err(|e| RuntimeError::Oci {
                op: "resume",
                message: chain(&e),
            }),
            Backend::Runc(r) => r.simple("resume", &[]),
        }
    }

    /// Starts the OCI process in `process_json` inside the running
    /// container; returns its pid (a child of the shim).
    pub fn exec(
        &mut self,
        process_json: &Path,
        tty: bool,
        stdio: Stdio,
    ) -> Result<i32, RuntimeError> {
        match self {
            Backend::Builtin(b) => b.exec(process_json, tty, stdio),
            Backend::Runc(r) => r.exec(process_json, stdio),
        }
    }

    /// Removes the runtime's state of the (stopped) container, cgroups included.
    pub fn delete(&mut self) -> Result<(), RuntimeError> {
        match self {
            Backend::Builtin(b) => b.delete(),
            Backend::Runc(r) => r.simple("delete", &["--force"]),
        }
    }
}

/// youki's libcontainer, called in the (single-threaded) shim.
pub struct Builtin {
    id: String,
    root: PathBuf,
    container: Option<Container>,
}

impl Builtin {
    fn builder(&self, stdio: Stdio) -> Result<ContainerBuilder, RuntimeError> {
        self.builder_with(stdio, ServinExecutor::default())
    }

    fn builder_with(
        &self,
        stdio: Stdio,
        executor: ServinExecutor,
    ) -> Result<ContainerBuilder, RuntimeError> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| RuntimeError::io(format!("create {}", self.root.display()), e))?;
        let b = ContainerBuilder::new(self.id.clone(), SyscallType::Linux)
            .with_root_path(&self.root)
            .map_err(|e| RuntimeError::Oci {
                op: "create",
                message: chain(&e),
            })?
            .with_executor(executor);
        Ok(match stdio {
            Stdio::Pipes {
                stdin,
                stdout,
                stderr,
            } => b.with_stdin(stdin).with_stdout(stdout).with_stderr(stderr),
            Stdio::Console(path) => b.with_console_socket(Some(path)),
        })
    }

    fn create(&mut self, bundle: &Path, stdio: Stdio) -> Result<i32, RuntimeError> {
        let container = self
            .builder(stdio)?
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(|e| classify_runtime_error("create", chain(&e)))?;
        let pid = container.pid().ok_or_else(|| RuntimeError::Oci {
            op: "create",
            message: "the container has no init process".into(),
        })?;
        self.container = Some(container);
        Ok(pid.as_raw())
    }

    fn loaded(&mut self) -> Result<&mut Container, RuntimeError> {
        if self.container.is_none() {
            let c = Container::load(self.root.join(&self.id)).map_err(|e| RuntimeError::Oci {
                op: "state",
                message: chain(&e),
            })?;
            self.container = Some(c);
        }
        Ok(self.container.as_mut().expect("loaded above"))
    }

    fn exec(&mut self, process_json: &Path, tty: bool, stdio: Stdio) -> Result<i32, RuntimeError> {
        // libcontainer 0.7 builds an exec'd process's spec without the
        // container's seccomp filter, so the executor loads it. Capabilities
        // are dropped by then, so the process gets no_new_privs, which the
        // kernel requires to install a filter without CAP_SYS_ADMIN (runc
        // loads it before dropping them; the difference: setuid binaries do
        // not gain privileges in a `docker exec` of a filtered container).
        let seccomp = self.container_seccomp()?;
        let filtered = seccomp.is_some();
        if filtered {
            set_no_new_privileges(process_json)?;
        }
        let before = children();
        let built = self
            .builder_with(stdio, ServinExecutor { seccomp })?
            .as_tenant()
            .with_process(Some(process_json))
            .with_detach(tty)
            .build();
        match built {
            Ok(pid) => Ok(pid.as_raw()),
            Err(e) => {
                reap_new_children(&before);
                Err(classify_runtime_error("exec", chain(&e)))
            }
        }
    }

    /// The seccomp filter of the container's own bundle, if it has one.
    fn container_seccomp(&mut self) -> Result<Option<LinuxSeccomp>, RuntimeError> {
        let config = self.loaded()?.bundle().join("config.json");
        let spec = Spec::load(&config).map_err(|e| RuntimeError::Oci {
            op: "exec",
            message: format!("read {}: {}", config.display(), chain(&e)),
        })?;
        Ok(spec.linux().as_ref().and_then(|l| l.seccomp().clone()))
    }

    fn delete(&mut self) -> Result<(), RuntimeError> {
        if !self.root.join(&self.id).exists() {
            return Ok(());
        }
        self.loaded()?.delete(true).map_err(|e| RuntimeError::Oci {
            op: "delete",
            message: chain(&e),
        })?;
        self.container = None;
        Ok(())
    }
}

/// This process's children, as `/proc` lists them.
fn children() -> Vec<i32> {
    let tasks = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Reaps what a failed exec left: libcontainer 0.7 does not wait for its
/// intermediate and init processes when the init fails after the fork (a
/// working directory that does not exist). The init is in the container's
/// PID namespace, and while it stays an unreaped zombie the container's
/// own init cannot finish exiting when killed: the shim then never sees
/// the exit and the rootfs stays mounted. The shim is single-threaded, so
/// every child that was not there before the exec is that exec's.
fn reap_new_children(before: &[i32]) {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::waitpid;
    use nix::unistd::Pid;
    for pid in children().into_iter().filter(|p| !before.contains(p)) {
        let pid = Pid::from_raw(pid);
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
}

/// libcontainer's default executor, with the command looked up the way the
/// shim does and the signal state of a fresh process.
/// Sets `noNewPrivileges` in an exec's process file (the tenant builder
/// takes it from the file, not from its own option, when given one).
fn set_no_new_privileges(process_json: &Path) -> Result<(), RuntimeError> {
    let io = |e| RuntimeError::io(format!("update {}", process_json.display()), e);
    let text = std::fs::read(process_json).map_err(io)?;
    let mut process: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    process["noNewPrivileges"] = serde_json::Value::Bool(true);
    let text = serde_json::to_vec(&process)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    std::fs::write(process_json, text).map_err(io)
}

/// For an exec'd process it also installs the container's seccomp filter,
/// as the last step before the command runs.
#[derive(Clone, Default)]
struct ServinExecutor {
    seccomp: Option<LinuxSeccomp>,
}

impl Executor for ServinExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        reset_signal_state();
        if let Some(seccomp) = &self.seccomp {
            load_seccomp(seccomp)?;
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let Some(process) = spec.process() else {
            return Err(ExecutorValidationError::ArgValidationError(
                "No process in the spec".into(),
            ));
        };
        let Some(cmd) = process.args().as_ref().and_then(|a| a.first()) else {
            return Err(ExecutorValidationError::ArgValidationError(
                "No command specified".into(),
            ));
        };
        let path = process
            .env()
            .as_ref()
            .and_then(|env| env.iter().find_map(|e| e.strip_prefix("PATH=")))
            .unwrap_or(crate::bundle::DEFAULT_PATH);
        let cwd = process.cwd().to_string_lossy();
        // We run inside the container here, after pivot_root: "/" is its root.
        check_executable(Path::new("/"), &[], cmd, &cwd, path).map_err(|e| {
            let detail = match e {
                RuntimeError::ExecutableNotFound(d) | RuntimeError::PermissionDenied(d) => {
                    format!("exec: {d}")
                }
                other => other.to_string(),
            };
            ExecutorValidationError::ArgValidationError(detail)
        })
    }
}

/// The shim ignores SIGPIPE (Rust's runtime does) and ignored signals
/// survive exec: give the container's process default dispositions and an
/// empty signal mask, as a freshly forked runc process has.
fn reset_signal_state() {
    use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code; this process is
        // single-threaded and about to exec.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

#[cfg(feature = "seccomp")]
fn load_seccomp(seccomp: &LinuxSeccomp) -> Result<(), ExecutorError> {
    libcontainer::seccomp::initialize_seccomp(seccomp)
        .map(|_| ())
        .map_err(|e| ExecutorError::Other(format!("load the seccomp filter: {e}")))
}

/// Without libseccomp the filter cannot be loaded: refuse rather than run
/// the process unfiltered.
#[cfg(not(feature = "seccomp"))]
fn load_seccomp(_seccomp: &LinuxSeccomp) -> Result<(), ExecutorError> {
    Err(ExecutorError::Other(
        "this build has no seccomp support (servin-runtime's `seccomp` feature)".into(),
    ))
}
