//! Bringing a container up (overlay, bundle, OCI create) and tearing down
//! what is left of it once it has exited.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use super::backend::{Backend, Stdio};
use super::procio::ProcIo;
use super::sys::{bring_up_loopback, Child, ConsoleSocket};
use crate::bundle::{self, HostSupport};
use crate::cgroups;
use crate::error::{chain, RuntimeError};
use crate::lookup::check_executable;
use crate::mounts::Overlay;
use crate::paths::resolve_in_root;
use crate::spec::{ContainerSpec, NetworkMode, ProcessSpec, RuntimeKind, SOCKET_FILE, SPEC_FILE};
use crate::users::{resolve_user, ExecUser};

/// How long the runtime may take to hand over a pty master.
pub const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A created container, its user process waiting for `start`.
pub struct Created {
    pub listener: UnixListener,
    pub init: Child,
    pub io: ProcIo,
    pub capabilities: Vec<String>,
}

pub fn load_spec(state_dir: &Path) -> Result<ContainerSpec, RuntimeError> {
    let path = state_dir.join(SPEC_FILE);
    let data = std::fs::read(&path)
        .map_err(|e| RuntimeError::io(format!("read {}", path.display()), e))?;
    let spec: ContainerSpec = serde_json::from_slice(&data).map_err(|e| {
        RuntimeError::InvalidSpec(format!("Invalid container spec {}: {e}", path.display()))
    })?;
    spec.validate()?;
    Ok(spec)
}

/// Destinations of every mount the container gets besides its rootfs.
pub fn mount_destinations(spec: &ContainerSpec) -> Vec<String> {
    let mut v: Vec<String> = ["/proc", "/dev", "/sys"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(
        spec.mounts
            .iter()
            .map(|m| crate::paths::clean(m.destination())),
    );
    for (dest, file) in [
        ("/etc/hosts", &spec.etc_hosts),
        ("/etc/resolv.conf", &spec.etc_resolv_conf),
        ("/etc/hostname", &spec.etc_hostname),
    ] {
        if file.is_some() {
            v.push(dest.to_string());
        }
    }
    v
}

/// Resolves the user and checks the command of `p` inside the mounted rootfs.
pub fn check_process(
    rootfs: &Path,
    mounts: &[String],
    p: &ProcessSpec,
) -> Result<ExecUser, RuntimeError> {
    p.validate()?;
    let user = resolve_user(rootfs, &p.user)?;
    let env = bundle::process_env(p, &user);
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(bundle::DEFAULT_PATH);
    check_executable(rootfs, mounts, &p.args[0], &bundle::process_cwd(p), path)?;
    Ok(user)
}

/// Mounts the rootfs, writes the bundle and creates the container.
pub fn create(
    spec: &ContainerSpec,
    overlay: &Overlay,
    backend: &mut Backend,
) -> Result<Created, RuntimeError> {
    let state_dir = &spec.state_dir;
    overlay.mount()?;
    tracing::debug!("rootfs mounted");
    let rootfs = &overlay.target;
    let mounts = mount_destinations(spec);
    let user = check_process(rootfs, &mounts, &spec.process)?;
    make_workdir(rootfs, &mounts, &bundle::process_cwd(&spec.process))?;

    let host = HostSupport {
        swap_limit: cgroups::swap_limit_supported(),
    };
    let oci = bundle::spec(spec, &user, rootfs, host)?;
    let config = state_dir.join("config.json");
    oci.save(&config).map_err(|e| RuntimeError::Oci {
        op: "create",
        message: format!("cannot write {}: {}", config.display(), chain(&e)),
    })?;
    let capabilities = crate::caps::effective_set(spec.privileged, &spec.cap_add, &spec.cap_drop)?;

    tracing::debug!("bundle written");
    let listener = bind_control_socket(state_dir)?;

    let console;
    let (io, stdio) = if spec.process.tty {
        console = Some(ConsoleSocket::bind(state_dir, "console.sock")?);
        (
            None,
            Stdio::Console(console.as_ref().expect("bound above").path().to_path_buf()),
        )
    } else {
        console = None;
        let (io, stdio) = ProcIo::pipes(spec.process.open_stdin)?;
        (Some(io), stdio)
    };
    let pid = {
        let _lock = cgroups::lock_parents(false);
        backend.create(state_dir, stdio)?
    };
    let init = Child::watch(pid)?;
    let io = match (io, console) {
        (Some(io), _) => io,
        (None, Some(c)) => ProcIo::tty(c.receive(CONSOLE_TIMEOUT)?)?,
        (None, None) => unreachable!("a tty has a console socket"),
    };
    // runc brings lo up in a new network namespace; libcontainer does not.
    if spec.network != NetworkMode::Host && spec.runtime == RuntimeKind::Builtin {
        bring_up_loopback(pid)?;
    }
    Ok(Created {
        listener,
        init,
        io,
        capabilities,
    })
}

/// Docker creates the working directory when the image lacks it.
fn make_workdir(rootfs: &Path, mounts: &[String], cwd: &str) -> Result<(), RuntimeError> {
    if mounts
        .iter()
        .any(|m| cwd == m || cwd.starts_with(&format!("{m}/")))
    {
        return Ok(());
    }
    let host = resolve_in_root(rootfs, cwd)
        .map_err(|e| RuntimeError::io(format!("resolve the working directory {cwd}"), e))?;
    if !host.exists() {
        std::fs::create_dir_all(&host)
            .map_err(|e| RuntimeError::io(format!("create the working directory {cwd}"), e))?;
    }
    Ok(())
}

fn bind_control_socket(state_dir: &Path) -> Result<UnixListener, RuntimeError> {
    // The shim's working directory is the state directory: a relative name
    // fits sun_path however long that directory's path is.
    let _ = std::fs::remove_file(SOCKET_FILE);
    let listener = UnixListener::bind(SOCKET_FILE).map_err(|e| {
        RuntimeError::io(
            format!("listen on {}", state_dir.join(SOCKET_FILE).display()),
            e,
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| RuntimeError::io("configure the control socket", e))?;
    Ok(listener)
}

/// Removes everything of the container but its state directory's own
/// files: runtime state, cgroups (and empty parents), the rootfs mount.
pub fn teardown(spec: &ContainerSpec, overlay: &Overlay, backend: &mut Backend) {
    if let Err(e) = backend.delete() {
        tracing::warn!(error = %chain(&e), "cannot delete the runtime's state");
    }
    if let Err(e) = cgroups::remove(&spec.cgroup_path(), &spec.cgroup_parent) {
        tracing::warn!(error = %e, "cannot remove the container's cgroups");
    }
    if let Err(e) = overlay.unmount() {
        tracing::warn!(error = %chain(&e), "cannot unmount the root filesystem");
    }
    for dir in ["libcontainer", "runc"] {
        let _ = std::fs::remove_dir(spec.state_dir.join(dir));
    }
}
