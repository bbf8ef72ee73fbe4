//! The VM's settings: `DATA_ROOT/vm/config.toml`, edited with
//! `servin vm config key=value…` and applied at the next start.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::size::{ByteSize, GIB, MIB};
use crate::VmError;

/// Keys `servin vm config` accepts.
pub const KEYS: &[&str] = &["cpus", "memory", "disk", "shares"];

const MIN_MEMORY: u64 = 256 * MIB;
const MIN_DISK: u64 = GIB;
const MAX_CPUS: u32 = 255;

/// What the VM is made of. Every default is in [`VmConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VmConfig {
    /// VM mode is on: `servind --mode auto` runs the bridge instead of the
    /// native engine.
    pub enabled: bool,
    pub cpus: u32,
    pub memory: ByteSize,
    /// Virtual size of the data disk (sparse: it takes only what is used).
    pub disk: ByteSize,
    /// Host folders the guest mounts at the same path, for bind mounts.
    pub shares: Vec<PathBuf>,
}

impl Default for VmConfig {
    fn default() -> Self {
        let mut shares = Vec::new();
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            shares.push(PathBuf::from(home));
        }
        shares.push(PathBuf::from("/tmp"));
        VmConfig {
            enabled: false,
            cpus: 2,
            memory: ByteSize(2 * GIB),
            disk: ByteSize(20 * GIB),
            shares,
        }
    }
}

impl VmConfig {
    /// Reads the file; a missing file is the defaults.
    pub fn load(path: &Path) -> Result<VmConfig, VmError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(VmConfig::default()),
            Err(e) => return Err(VmError::io(format!("Cannot read {}", path.display()), e)),
        };
        let config: VmConfig = toml::from_str(&text).map_err(|e| VmError::InvalidConfig {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        config
            .validate()
            .map_err(|message| VmError::InvalidConfig {
                path: path.to_path_buf(),
                message,
            })?;
        Ok(config)
    }

    /// Writes the file atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), VmError> {
        let text = self.to_toml();
        crate::write_atomic(path, text.as_bytes())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("VmConfig always serializes")
    }

    /// Checks every value; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.cpus == 0 || self.cpus > MAX_CPUS {
            return Err(format!(
                "cpus={}: must be between 1 and {MAX_CPUS}",
                self.cpus
            ));
        }
        if self.memory.0 < MIN_MEMORY {
            return Err(format!(
                "memory={}: must be at least {}",
                self.memory,
                ByteSize(MIN_MEMORY)
            ));
        }
        if !self.memory.0.is_multiple_of(MIB) {
            return Err(format!(
                "memory={}: must be a whole number of MiB",
                self.memory
            ));
        }
        if self.disk.0 < MIN_DISK {
            return Err(format!(
                "disk={}: must be at least {}",
                self.disk,
                ByteSize(MIN_DISK)
            ));
        }
        for (i, s) in self.shares.iter().enumerate() {
            if !s.is_absolute() || s.to_str().is_none() {
                return Err(format!(
                    "shares: {:?} is not an absolute UTF-8 path",
                    s.display().to_string()
                ));
            }
            if self.shares[..i].contains(s) {
                return Err(format!("shares: {} is listed twice", s.display()));
            }
        }
        Ok(())
    }

    /// Applies `key=value` assignments (all or none) and validates the result.
    pub fn edit(&mut self, assignments: &[String]) -> Result<(), VmError> {
        let mut next = self.clone();
        for a in assignments {
            let invalid = |message: String| VmError::InvalidSetting(message);
            let Some((key, value)) = a.split_once('=') else {
                return Err(invalid(format!(
                    "{a:?}: expected key=value (keys: {})",
                    KEYS.join(", ")
                )));
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "cpus" => {
                    next.cpus = value.parse().map_err(|_| {
                        invalid(format!("cpus={value}: expected a whole number of CPUs"))
                    })?
                }
                "memory" => {
                    next.memory =
                        ByteSize::parse(value).map_err(|e| invalid(format!("memory: {e}")))?
                }
                "disk" => {
                    next.disk = ByteSize::parse(value).map_err(|e| invalid(format!("disk: {e}")))?
                }
                "shares" => {
                    next.shares = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(PathBuf::from)
                        .collect()
                }
                other => {
                    return Err(invalid(format!(
                        "unknown key {other:?} (keys: {})",
                        KEYS.join(", ")
                    )))
                }
            }
        }
        next.validate().map_err(VmError::InvalidSetting)?;
        if next.cpus as usize > host_cpus() {
            return Err(VmError::InvalidSetting(format!(
                "cpus={}: this machine has {} CPUs",
                next.cpus,
                host_cpus()
            )));
        }
        if let Some(total) = host_memory() {
            if next.memory.0 > total {
                return Err(VmError::InvalidSetting(format!(
                    "memory={}: this machine has {}",
                    next.memory,
                    crate::size::human(total)
                )));
            }
        }
        *self = next;
        Ok(())
    }
}

fn host_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `MemTotal` from `/proc/meminfo`, where there is one.
fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(assignments: &[&str]) -> Result<VmConfig, String> {
        let mut c = VmConfig::default();
        let list: Vec<String> = assignments.iter().map(|s| s.to_string()).collect();
        c.edit(&list).map(|()| c).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_two_cpus_two_gib_twenty_gib_disk_home_and_tmp() {
        let c = VmConfig::default();
        assert_eq!(c.cpus, 2);
        assert_eq!(c.memory, ByteSize(2 * GIB));
        assert_eq!(c.disk, ByteSize(20 * GIB));
        assert!(c.shares.contains(&PathBuf::from("/tmp")));
        assert!(!c.enabled);
        c.validate().unwrap();
    }

    #[test]
    fn round_trips_through_toml() {
        let mut c = VmConfig::default();
        c.edit(&[
            "cpus=1".into(),
            "memory=1536MiB".into(),
            "shares=/srv, /tmp".into(),
        ])
        .unwrap();
        let text = c.to_toml();
        assert!(text.contains("memory = \"1536MiB\""), "{text}");
        let back: VmConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            back.shares,
            vec![PathBuf::from("/srv"), PathBuf::from("/tmp")]
        );
    }

    #[test]
    fn a_partial_file_takes_defaults_for_the_rest() {
        let c: VmConfig = toml::from_str("cpus = 1\nmemory = 1073741824\n").unwrap();
        assert_eq!(c.cpus, 1);
        assert_eq!(c.memory, ByteSize(GIB));
        assert_eq!(c.disk, VmConfig::default().disk);
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let err = toml::from_str::<VmConfig>("cpu = 4\n").unwrap_err();
        assert!(err.message().contains("unknown field `cpu`"), "{err}");
    }

    #[test]
    fn load_reports_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert_eq!(VmConfig::load(&path).unwrap(), VmConfig::default());
        std::fs::write(&path, "cpus = 0\n").unwrap();
        let err = VmConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("config.toml") && err.contains("cpus=0"),
            "{err}"
        );
        std::fs::write(&path, "memory = \"banana\"\n").unwrap();
        let err = VmConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("invalid size \"banana\""), "{err}");
    }

    #[test]
    fn bad_edits_are_refused_with_the_key_and_change_nothing() {
        let mut c = VmConfig::default();
        let before = c.clone();
        for (input, expected) in [
            ("memory=banana", "memory: invalid size \"banana\""),
            ("cpus=0", "cpus=0: must be between 1 and"),
            ("cpus=two", "cpus=two: expected a whole number"),
            ("cpus=100000", "cpus=100000"),
            ("colour=blue", "unknown key \"colour\""),
            ("memory", "expected key=value"),
            ("memory=1MiB", "must be at least 256MiB"),
            ("disk=10MiB", "must be at least 1GiB"),
            ("shares=relative/dir", "not an absolute"),
            ("shares=/a,/a", "listed twice"),
        ] {
            let err = c.edit(&["cpus=1".into(), input.into()]).unwrap_err();
            assert!(err.to_string().contains(expected), "{input}: {err}");
            assert_eq!(c, before, "{input} changed the config");
        }
    }

    #[test]
    fn edits_apply_together() {
        let c = edit(&["cpus=1", "memory=1GiB", "disk=30G", "shares="]).unwrap();
        assert_eq!(
            (c.cpus, c.memory, c.disk, c.shares.len()),
            (1, ByteSize(GIB), ByteSize(30 * GIB), 0)
        );
    }
}
