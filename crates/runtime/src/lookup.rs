//! Finding the command in the container before creating it, so that a
//! missing or non-executable command fails with Docker's message and kind
//! (127 / 126) whichever OCI runtime runs it.

use std::path::Path;

use crate::error::RuntimeError;
use crate::paths::{clean, resolve_in_root};

/// Checks that `cmd` names an executable file inside `rootfs`, searching
/// `path_env` as `exec.LookPath` does. Paths under `mounts` (destinations of
/// mounts made at create time) cannot be seen from here and are accepted.
pub fn check_executable(
    rootfs: &Path,
    mounts: &[String],
    cmd: &str,
    cwd: &str,
    path_env: &str,
) -> Result<(), RuntimeError> {
    let hidden = |p: &str| {
        mounts
            .iter()
            .any(|m| m == "/" || p == m || p.starts_with(&format!("{m}/")))
    };
    if cmd.contains('/') {
        let cpath = if cmd.starts_with('/') {
            clean(cmd)
        } else {
            clean(&format!("{cwd}/{cmd}"))
        };
        if hidden(&cpath) {
            return Ok(());
        }
        let host = resolve_in_root(rootfs, &cpath)
            .map_err(|e| RuntimeError::io(format!("resolve {cmd} in the container"), e))?;
        return match std::fs::metadata(&host) {
            Ok(m) if m.is_file() && executable(&host) => Ok(()),
            Ok(_) => Err(RuntimeError::PermissionDenied(format!(
                "{cmd:?}: permission denied"
            ))),
            Err(_) => Err(RuntimeError::ExecutableNotFound(format!(
                "{cmd:?}: stat {cmd}: no such file or directory"
            ))),
        };
    }
    for dir in path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cpath = if dir.starts_with('/') {
            clean(&format!("{dir}/{cmd}"))
        } else {
            clean(&format!("{cwd}/{dir}/{cmd}"))
        };
        if hidden(&cpath) {
            return Ok(());
        }
        let Ok(host) = resolve_in_root(rootfs, &cpath) else {
            continue;
        };
        if let Ok(m) = std::fs::metadata(&host) {
            if m.is_file() && executable(&host) {
                return Ok(());
            }
        }
    }
    Err(RuntimeError::ExecutableNotFound(format!(
        "{cmd:?}: executable file not found in $PATH"
    )))
}

/// Executable by this process's effective ids (root: any execute bit), as
/// Go's `exec.LookPath` checks it inside runc.
fn executable(path: &Path) -> bool {
    nix::unistd::faccessat(
        None,
        path,
        nix::unistd::AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .is_ok()
}

/// Recognises the command errors in an OCI runtime's message (runc's and
/// libcontainer's wordings), else keeps it as a runtime failure.
pub fn classify_runtime_error(op: &'static str, message: String) -> RuntimeError {
    let detail = message
        .rfind("exec: ")
        .map(|i| message[i + "exec: ".len()..].trim().to_string());
    if let Some(d) = detail {
        if d.contains("executable file not found") || d.contains("no such file or directory") {
            return RuntimeError::ExecutableNotFound(d);
        }
        if d.contains("permission denied") {
            return RuntimeError::PermissionDenied(d);
        }
    }
    if message.contains("not found in $PATH") {
        return RuntimeError::ExecutableNotFound(message);
    }
    if message.contains("does not have correct permissions") {
        return RuntimeError::PermissionDenied(message);
    }
    RuntimeError::Oci { op, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn finds_like_lookpath() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::write(r.join("bin/busybox"), "").unwrap();
        std::fs::set_permissions(
            r.join("bin/busybox"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        symlink("busybox", r.join("bin/sh")).unwrap();
        std::fs::write(r.join("bin/data"), "").unwrap();
        let check = |cmd: &str| {
            check_executable(
                r,
                &["/proc".into(), "/opt".into()],
                cmd,
                "/",
                "/usr/bin:/bin",
            )
        };
        check("sh").unwrap();
        check("/bin/sh").unwrap();
        check("/opt/tool").unwrap();
        let e = check("nosuch").unwrap_err();
        assert_eq!(e.exit_code(), Some(127));
        assert_eq!(
            e.to_string(),
            "Unable to start container process: exec: \"nosuch\": executable file not found in $PATH"
        );
        assert_eq!(check("data").unwrap_err().exit_code(), Some(127));
        assert_eq!(check("/bin/data").unwrap_err().exit_code(), Some(126));
        assert_eq!(check("/bin").unwrap_err().exit_code(), Some(126));
        assert_eq!(check("/nope").unwrap_err().exit_code(), Some(127));
    }

    #[test]
    fn classifies_runc_messages() {
        let m = "runc create failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH".to_string();
        assert_eq!(classify_runtime_error("create", m).exit_code(), Some(127));
        let m = "unable to start container process: exec: \"/etc\": permission denied".to_string();
        assert_eq!(classify_runtime_error("create", m).exit_code(), Some(126));
        let m = "something else".to_string();
        assert!(matches!(
            classify_runtime_error("create", m),
            RuntimeError::Oci { .. }
        ));
    }
}
