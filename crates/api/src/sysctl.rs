//! Which sysctls a container may set (`--sysctl`): those the kernel keeps
//! per namespace, as Docker's CLI allows them.

/// Whether `key` is one of the namespaced sysctls: the IPC ones
/// (`kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`) and the
/// network ones (`net.*`).
pub fn sysctl_is_namespaced(key: &str) -> bool {
    matches!(
        key,
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || key.starts_with("net.")
        || key.starts_with("fs.mqueue.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_sysctls_pass() {
        assert!(sysctl_is_namespaced("net.core.somaxconn"));
        assert!(sysctl_is_namespaced("kernel.shmmax"));
        assert!(sysctl_is_namespaced("fs.mqueue.msg_max"));
        assert!(!sysctl_is_namespaced("vm.swappiness"));
        assert!(!sysctl_is_namespaced("kernel.hostname"));
        assert!(!sysctl_is_namespaced("network.x"));
    }
}
