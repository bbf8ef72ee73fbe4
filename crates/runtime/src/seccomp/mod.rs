//! Seccomp for containers, as Docker does it: the built-in default profile
//! (our own rendering of Docker's), profiles in Docker's JSON format from
//! `--security-opt seccomp=FILE` (the CLI sends the file's content), and
//! `unconfined`. Each is turned into the OCI `linux.seccomp` object of one
//! container from its capabilities, so both libcontainer and runc enforce
//! the same filter.

mod default;
mod profile;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use profile::Profile;
use profile::Target;

use crate::error::RuntimeError;

/// Whether this build's built-in runtime enforces seccomp (the `seccomp`
/// feature links libseccomp; without it libcontainer ignores the filter).
pub const ENFORCED: bool = cfg!(feature = "seccomp");

/// A seccomp profile that cannot be used, with a message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProfileError(pub String);

impl From<ProfileError> for RuntimeError {
    fn from(e: ProfileError) -> Self {
        RuntimeError::InvalidSpec(e.0)
    }
}

/// Which filter a container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Seccomp {
    /// Docker's default profile (`seccomp=builtin`, or nothing said).
    #[default]
    Builtin,
    /// No filter (`seccomp=unconfined`).
    Unconfined,
    /// A profile in Docker's JSON format, as the client sent it.
    Custom(String),
}

impl Seccomp {
    /// The `seccomp=` value of Docker's `HostConfig.SecurityOpt`: `builtin`,
    /// `unconfined`, or a profile's JSON; the profile is checked here, so a
    /// bad one is refused before anything is created.
    pub fn from_security_opt(value: &str) -> Result<Seccomp, ProfileError> {
        match value {
            "" | "builtin" => Ok(Seccomp::Builtin),
            "unconfined" => Ok(Seccomp::Unconfined),
            json => {
                Profile::parse(json)?;
                Ok(Seccomp::Custom(json.to_string()))
            }
        }
    }
}

/// Docker's name for the architecture this program runs on.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        other => other,
    }
}

/// The OCI `linux.seccomp` object for a container with `capabilities`
/// (`CAP_*`); `None` when it runs unconfined. Privileged containers get no
/// filter, whatever was asked, as in Docker.
pub fn linux_seccomp(
    setting: &Seccomp,
    privileged: bool,
    capabilities: &[String],
) -> Result<Option<Value>, RuntimeError> {
    if privileged {
        return Ok(None);
    }
    let profile = match setting {
        Seccomp::Unconfined => return Ok(None),
        Seccomp::Builtin => default::builtin(),
        Seccomp::Custom(json) => Profile::parse(json)?,
    };
    let target = Target {
        arch: host_arch(),
        caps: capabilities,
        kernel: profile::host_kernel(),
    };
    Ok(profile.to_oci(&target)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_opt_values() {
        assert_eq!(Seccomp::from_security_opt("builtin"), Ok(Seccomp::Builtin));
        assert_eq!(
            Seccomp::from_security_opt("unconfined"),
            Ok(Seccomp::Unconfined)
        );
        let p = r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#;
        assert_eq!(Seccomp::from_security_opt(p), Ok(Seccomp::Custom(p.into())));
        assert!(Seccomp::from_security_opt("/no/such/file.json")
            .unwrap_err()
            .0
            .starts_with("Decoding seccomp profile failed"));
    }

    #[test]
    fn privileged_and_unconfined_have_no_filter() {
        let caps = vec!["CAP_CHOWN".to_string()];
        assert!(linux_seccomp(&Seccomp::Builtin, true, &caps)
            .unwrap()
            .is_none());
        assert!(linux_seccomp(&Seccomp::Unconfined, false, &caps)
            .unwrap()
            .is_none());
        let v = linux_seccomp(&Seccomp::Builtin, false, &caps)
            .unwrap()
            .unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    }
}
