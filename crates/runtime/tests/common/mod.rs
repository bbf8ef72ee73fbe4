//! Shared helpers of the runtime's integration tests. They need root (mounts,
//! namespaces, cgroups): without it each test skips with a message on
//! stderr, unless `SERVIN_REQUIRE_VM=1` demands that everything runs.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use servin_runtime::{
    ContainerSpec, ExitStatus, NetworkMode, ProcessSpec, Resources, RuntimeKind, ShimClient,
};

pub const CGROUP_PARENT: &str = "servin-test";

/// True when the test can run (root, and busybox-static for the image);
/// otherwise skips (false) with a message, or panics under `SERVIN_REQUIRE_VM=1`.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let missing = if unsafe { libc::geteuid() } != 0 {
        "root for mounts, namespaces and cgroups"
    } else if !Path::new("/bin/busybox").exists() {
        "/bin/busybox (Debian's busybox-static) for the test image"
    } else {
        return true;
    };
    if std::env::var("SERVIN_REQUIRE_VM").as_deref() == Ok("1") {
        panic!("{test} needs {missing} (SERVIN_REQUIRE_VM=1)");
    }
    eprintln!("skipping {test}: needs {missing}");
    false
}

pub fn runc_path() -> Option<PathBuf> {
    [
        "/usr/sbin/runc",
        "/usr/bin/runc",
        "/usr/local/sbin/runc",
        "/usr/local/bin/runc",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

pub fn shim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_servin-shim"))
}

/// A temp dir with a busybox layer and a state dir for one container.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub layer: PathBuf,
    pub leaks: servin_testkit::LeakCheck,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("servin-rt-")
            .tempdir()
            .unwrap();
        let layer = dir.path().join("layer");
        make_busybox_layer(&layer);
        let leaks = servin_testkit::LeakCheck::new(dir.path())
            .without_fds()
            .grace(Duration::from_secs(5));
        Fixture { dir, layer, leaks }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A spec for `args` with a fresh id and state dir.
    pub fn spec(&self, args: &[&str]) -> ContainerSpec {
        let id = random_id();
        let state_dir = self.path().join("containers").join(&id);
        ContainerSpec {
            log_path: state_dir.join(format!("{id}-json.log")),
            id,
            state_dir,
            layers: vec![self.layer.clone()],
            process: ProcessSpec {
                args: args.iter().map(|s| s.to_string()).collect(),
                env: vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ],
                cwd: "/".into(),
                user: String::new(),
                tty: false,
                open_stdin: false,
                init: false,
            },
            hostname: "servintest".into(),
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
            cgroup_parent: CGROUP_PARENT.into(),
            etc_hosts: None,
            etc_resolv_conf: None,
            etc_hostname: None,
            stop_signal: None,
            seccomp: Default::default(),
            init_path: None,
            sysctls: Default::default(),
        }
    }

    /// Checks that the container left no mount, process or cgroup behind.
    pub fn assert_clean(&self, spec: &ContainerSpec) {
        wait_shim_gone(&spec.state_dir);
        self.leaks.assert_clean();
        let left = cgroup_dirs_named(&spec.id);
        assert!(left.is_empty(), "cgroups left behind: {left:?}");
    }
}

impl Drop for Fixture {
    /// After a failed test: stop its containers so that their shims clean
    /// up (mounts, cgroups) before the temp dir goes.
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.path().join("containers")) else {
            return;
        };
        for e in entries.flatten() {
            if let Ok(client) = ShimClient::connect(&e.path()) {
                if !matches!(client.state(), Ok(servin_runtime::ShimState::Exited { .. })) {
                    let _ = client.kill(9);
                    let _ = client.wait();
                }
            }
            wait_shim_gone_quietly(&e.path());
        }
    }
}

fn wait_shim_gone_quietly(state_dir: &Path) {
    let Ok(pid) = std::fs::read_to_string(state_dir.join("shim.pid")) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid.trim()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// 64 random lowercase hex digits.
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `bin/busybox` with its applets as symlinks, `/etc/passwd` and `/etc/group`.
pub fn make_busybox_layer(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
}

/// Reads an attach/exec stream to EOF; demultiplexes Docker's frames.
pub fn read_frames(mut s: UnixStream) -> (Vec<u8>, Vec<u8>) {
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    demux(&all)
}

pub fn demux(mut all: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while all.len() >= 8 {
        let len = u32::from_be_bytes([all[4], all[5], all[6], all[7]]) as usize;
        let payload = &all[8..8 + len];
        match all[0] {
            1 => out.extend_from_slice(payload),
            2 => err.extend_from_slice(payload),
            s => panic!("bad stream id {s}"),
        }
        all = &all[8 + len..];
    }
    assert!(all.is_empty(), "trailing partial frame");
    (out, err)
}

/// Runs a container to completion: attach, start, collect output, wait.
pub fn run(spec: &ContainerSpec) -> (String, String, ExitStatus) {
    let client = servin_runtime::spawn_shim(spec, &shim_bin()).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(spec.state_dir.join("shim.log")).unwrap_or_default();
        panic!("spawn_shim: {e}\n--- shim.log ---\n{log}")
    });
    let stream = client.attach(false, true, true).unwrap();
    let reader = std::thread::spawn(move || read_frames(stream));
    client.start().unwrap();
    let exit = client.wait().unwrap();
    let (out, err) = reader.join().unwrap();
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        exit,
    )
}

/// Waits (briefly) for the shim of `state_dir` to exit.
pub fn wait_shim_gone(state_dir: &Path) {
    let Ok(pid) = std::fs::read_to_string(state_dir.join("shim.pid")) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid.trim()) {
        assert!(Instant::now() < deadline, "shim {} still runs", pid.trim());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Alive and not a zombie.
pub fn process_alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// cgroup directories named `id` anywhere (three levels deep) in any hierarchy.
pub fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut found = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        if !post.starts_with("cgroup") {
            continue;
        }
        let Some(mp) = pre.split(' ').nth(4) else {
            continue;
        };
        walk(Path::new(mp), id, 3, &mut found);
    }
    found
}

fn walk(dir: &Path, id: &str, depth: u32, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let p = e.path();
        if e.file_name().to_string_lossy().contains(id) {
            found.push(p.clone());
        }
        if depth > 0 {
            walk(&p, id, depth - 1, found);
        }
    }
}

/// The container's log as (stream, line) pairs.
pub fn log_lines(spec: &ContainerSpec) -> Vec<(String, String)> {
    std::fs::read_to_string(&spec.log_path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["stream"].as_str().unwrap().to_string(),
                v["log"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A client that must reach the shim of `spec` again.
pub fn connect(spec: &ContainerSpec) -> ShimClient {
    ShimClient::connect(&spec.state_dir).unwrap()
}
