//! Docker's default seccomp profile, written out as our own data: every
//! syscall not allowed here fails with `EPERM`. Some syscalls are allowed
//! only when the container holds the capability that guards them anyway
//! (so `--cap-add SYS_ADMIN` also opens `mount`), a few only on some
//! architectures or with some arguments. The result is in Docker's profile
//! format and goes through the same translation as a user's profile.

use super::profile::{ArchMap, Arg, Filter, Profile, Rule};

/// Allowed for every container.
const ALWAYS: &[&str] = &[
    // Files and directories.
    "access",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "close",
    "close_range",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futimesat",
    "getcwd",
    "getdents",
    "getdents64",
    "getxattr",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "name_to_handle_at",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pipe",
    "pipe2",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "sendfile",
    "sendfile64",
    "setxattr",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "tee",
    "truncate",
    "truncate64",
    "umask",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vmsplice",
    "write",
    "writev",
    // Polling, events, asynchronous I/O.
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "fanotify_mark",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioctl",
    "_newselect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "pselect6",
    "pselect6_time64",
    "select",
    "signalfd",
    "signalfd4",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    // Sockets (socket(2) itself has a rule of its own below).
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "send",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socketcall",
    "socketpair",
    // Processes, signals, credentials.
    "capget",
    "capset",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "getcpu",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "get_thread_area",
    "gettid",
    "getuid",
    "getuid32",
    "ioprio_get",
    "ioprio_set",
    "kill",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "prlimit64",
    "process_mrelease",
    "restart_syscall",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "sigaltstack",
    "sigprocmask",
    "sigreturn",
    "tgkill",
    "tkill",
    "ugetrlimit",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
    // Memory.
    "brk",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mremap",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
    // System V and POSIX IPC, futexes.
    "futex",
    "futex_time64",
    "futex_waitv",
    "ipc",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    // Time (reading it; setting it needs CAP_SYS_TIME, below).
    "adjtimex",
    "alarm",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "getitimer",
    "gettimeofday",
    "nanosleep",
    "pause",
    "setitimer",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "times",
    // Miscellaneous.
    "getrandom",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "sysinfo",
    "uname",
];

/// Syscalls a capability unlocks, as Docker's profile pairs them.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Syscalls only some architectures have (Docker's architecture names).
const BY_ARCH: &[(&[&str], &[&str])] = &[
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (
        &["arm", "arm64"],
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    ),
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (
        &["s390", "s390x"],
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
    ),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// `personality(2)` values that stay allowed: `PER_LINUX`, `PER_LINUX32`,
/// `UNAME26`, `PER_LINUX32 | UNAME26`, and `0xffffffff`, which only reads
/// the current personality.
const PERSONALITIES: [u64; 5] = [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// The clone flags that create namespaces: without CAP_SYS_ADMIN, `clone`
/// is allowed only when none of them is set.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// Host architectures and the other ABIs their processes may use.
const ARCH_FAMILIES: &[(&str, &[&str])] = &[
    ("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    ("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
    ("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
    ("SCMP_ARCH_RISCV64", &[]),
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn allow(names: &[&str]) -> Rule {
    Rule {
        names: Some(strings(names)),
        action: "SCMP_ACT_ALLOW".into(),
        ..Rule::default()
    }
}

fn caps(c: &str) -> Option<Filter> {
    Some(Filter {
        caps: Some(vec![c.to_string()]),
        ..Filter::default()
    })
}

fn arg(index: u32, op: &str, value: u64) -> Arg {
    Arg {
        index,
        value,
        value_two: 0,
        op: op.into(),
    }
}

/// The built-in profile, in Docker's format.
pub fn builtin() -> Profile {
    let mut rules = vec![allow(ALWAYS)];
    // ptrace and friends are harmless without CAP_SYS_PTRACE since 4.8,
    // which stopped ptrace from bypassing seccomp.
    rules.push(Rule {
        includes: Some(Filter {
            min_kernel: Some("4.8".into()),
            ..Filter::default()
        }),
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    // Any socket family but AF_VSOCK, which would reach the host.
    rules.push(Rule {
        args: Some(vec![arg(0, "SCMP_CMP_NE", libc::AF_VSOCK as u64)]),
        ..allow(&["socket"])
    });
    for p in PERSONALITIES {
        rules.push(Rule {
            args: Some(vec![arg(0, "SCMP_CMP_EQ", p)]),
            ..allow(&["personality"])
        });
    }
    for (arches, names) in BY_ARCH {
        rules.push(Rule {
            includes: Some(Filter {
                arches: Some(strings(arches)),
                ..Filter::default()
            }),
            ..allow(names)
        });
    }
    for (cap, names) in BY_CAPABILITY {
        rules.push(Rule {
            includes: caps(cap),
            ..allow(names)
        });
    }
    // Threads and plain forks, but no new namespaces, without CAP_SYS_ADMIN;
    // s390 passes the flags as the second argument.
    rules.push(Rule {
        args: Some(vec![arg(0, "SCMP_CMP_MASKED_EQ", NAMESPACE_FLAGS)]),
        excludes: Some(Filter {
            caps: Some(vec!["CAP_SYS_ADMIN".into()]),
            arches: Some(strings(&["s390", "s390x"])),
            ..Filter::default()
        }),
        ..allow(&["clone"])
    });
    rules.push(Rule {
        args: Some(vec![arg(1, "SCMP_CMP_MASKED_EQ", NAMESPACE_FLAGS)]),
        includes: Some(Filter {
            arches: Some(strings(&["s390", "s390x"])),
            ..Filter::default()
        }),
        excludes: caps("CAP_SYS_ADMIN"),
        ..allow(&["clone"])
    });
    // clone3 passes its flags in memory, out of seccomp's sight: say "not
    // implemented" so that C libraries fall back to clone.
    rules.push(Rule {
        names: Some(vec!["clone3".into()]),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: caps("CAP_SYS_ADMIN"),
        ..Rule::default()
    });
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(libc::EPERM as u32),
        arch_map: Some(
            ARCH_FAMILIES
                .iter()
                .map(|(a, subs)| ArchMap {
                    architecture: a.to_string(),
                    sub_architectures: Some(strings(subs)),
                })
                .collect(),
        ),
        syscalls: Some(rules),
        ..Profile::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::profile::Target;
    use super::*;
    use serde_json::{json, Value};

    fn oci(caps: &[&str], arch: &str) -> Value {
        let caps = strings(caps);
        builtin()
            .to_oci(&Target {
                arch,
                caps: &caps,
                kernel: (6, 1, 0),
            })
            .unwrap()
            .unwrap()
    }

    /// The rules that allow `name`, unconditionally or with their arguments.
    fn rules_for<'a>(v: &'a Value, name: &str) -> Vec<&'a Value> {
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"].as_array().unwrap().contains(&json!(name)))
            .collect()
    }

    #[test]
    fn default_caps() {
        let v = oci(&crate::caps::DOCKER_DEFAULT, "amd64");
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], libc::EPERM);
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        assert_eq!(rules_for(&v, "mkdirat").len(), 1);
        assert!(rules_for(&v, "mount").is_empty());
        assert!(rules_for(&v, "unshare").is_empty());
        assert!(rules_for(&v, "reboot").is_empty());
        assert!(rules_for(&v, "cacheflush").is_empty());
        // CAP_SYS_CHROOT is in Docker's default set.
        assert_eq!(rules_for(&v, "chroot").len(), 1);
        let clone = rules_for(&v, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone[0]["args"][0]["index"], 0);
        assert_eq!(clone[0]["args"][0]["value"], 0x7E02_0000u64);
        let clone3 = rules_for(&v, "clone3");
        assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3[0]["errnoRet"], libc::ENOSYS);
        assert_eq!(rules_for(&v, "personality").len(), 5);
        assert_eq!(rules_for(&v, "socket")[0]["args"][0]["value"], 40);
        assert_eq!(rules_for(&v, "arch_prctl").len(), 1);
        assert_eq!(rules_for(&v, "ptrace").len(), 1);
    }

    #[test]
    fn capabilities_open_their_syscalls() {
        let v = oci(
            &["CAP_SYS_ADMIN", "CAP_SYS_TIME", "CAP_SYS_PTRACE"],
            "amd64",
        );
        for name in ["mount", "unshare", "setns", "clock_settime", "kcmp"] {
            assert_eq!(rules_for(&v, name).len(), 1, "{name}");
        }
        // With CAP_SYS_ADMIN clone and clone3 are allowed whatever the flags.
        let clone = rules_for(&v, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].get("args").is_none());
        assert_eq!(rules_for(&v, "clone3")[0]["action"], "SCMP_ACT_ALLOW");
        assert!(rules_for(&v, "chroot").is_empty());
    }

    #[test]
    fn other_architectures() {
        let v = oci(&[], "arm64");
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        assert!(rules_for(&v, "arch_prctl").is_empty());
        assert_eq!(rules_for(&v, "cacheflush").len(), 1);
        let v = oci(&[], "s390x");
        assert_eq!(rules_for(&v, "clone")[0]["args"][0]["index"], 1);
    }

    #[test]
    fn loads_as_an_oci_profile() {
        let v = oci(&crate::caps::DOCKER_DEFAULT, "amd64");
        let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(v).unwrap();
        assert!(s.syscalls().as_ref().unwrap().len() > 10);
    }
}
