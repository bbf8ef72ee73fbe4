//! Linux capabilities: Docker's default set, `--cap-add`/`--cap-drop`, and
//! `--privileged`.

use crate::error::RuntimeError;

/// Every capability by number (index = `CAP_*` value).
const ALL: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set.
pub const DOCKER_DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The capabilities this kernel knows (`/proc/sys/kernel/cap_last_cap`).
fn supported() -> &'static [&'static str] {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL.len() - 1);
    &ALL[..=last.min(ALL.len() - 1)]
}

/// Every capability a container can get from this process: known to the
/// kernel and in our own bounding set (a nested runtime may lack some, and
/// asking for those makes capset fail).
fn grantable() -> Vec<&'static str> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    supported()
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// `NET_ADMIN`, `cap_net_admin` → `CAP_NET_ADMIN`; `ALL` stays `ALL`.
fn normalize(name: &str) -> Result<String, RuntimeError> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(RuntimeError::InvalidSpec(format!(
            "Unknown capability: {name:?}"
        )))
    }
}

/// The container's capability set, as Docker computes it (`TweakCapabilities`);
/// "all" (privileged, `--cap-add ALL`) means all this process can grant.
pub fn effective_set(
    privileged: bool,
    cap_add: &[String],
    cap_drop: &[String],
) -> Result<Vec<String>, RuntimeError> {
    let known = supported();
    if privileged {
        return Ok(grantable().iter().map(|s| s.to_string()).collect());
    }
    let add: Vec<String> = cap_add
        .iter()
        .map(|c| normalize(c))
        .collect::<Result<_, _>>()?;
    let drop: Vec<String> = cap_drop
        .iter()
        .map(|c| normalize(c))
        .collect::<Result<_, _>>()?;
    let mut set: Vec<String> = if add.iter().any(|c| c == "ALL") {
        grantable().iter().map(|s| s.to_string()).collect()
    } else if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DOCKER_DEFAULT.iter().map(|s| s.to_string()).collect()
    };
    if !drop.iter().any(|c| c == "ALL") {
        set.retain(|c| !drop.contains(c));
    }
    for c in add.into_iter().filter(|c| c != "ALL") {
        if !set.contains(&c) {
            set.push(c);
        }
    }
    set.retain(|c| known.contains(&c.as_str()));
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn add_and_drop() {
        let set = effective_set(false, &s(&["NET_ADMIN"]), &s(&["cap_chown", "MKNOD"])).unwrap();
        assert!(set.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!set.contains(&"CAP_CHOWN".to_string()));
        assert!(!set.contains(&"CAP_MKNOD".to_string()));
        assert_eq!(set.len(), 13);
    }

    #[test]
    fn all() {
        let none_but = effective_set(false, &s(&["KILL"]), &s(&["ALL"])).unwrap();
        assert_eq!(none_but, s(&["CAP_KILL"]));
        let everything = effective_set(false, &s(&["ALL"]), &s(&["SYS_ADMIN"])).unwrap();
        assert!(everything.len() > 30);
        assert!(!everything.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(effective_set(true, &[], &[])
            .unwrap()
            .contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn unknown_is_invalid() {
        assert!(effective_set(false, &s(&["NOPE"]), &[]).is_err());
    }
}
