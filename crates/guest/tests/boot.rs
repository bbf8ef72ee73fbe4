//! Boots the real guest image (scripts/build-guest) under QEMU `microvm`
//! with TCG and talks to it over vsock through `vhost-device-vsock`, as the
//! host does: init's control port, the engine's Docker API, the data disk
//! kept across boots, a foreign disk refused, a host registry pulled from
//! through `--host-gateway`.
//!
//! Needs root, qemu-system-x86_64, qemu-img, vhost-device-vsock and the
//! tools scripts/build-guest uses; skips with the reason on stderr
//! otherwise, and fails instead under SERVIN_REQUIRE_VM=1.
//!
//! The QEMU command line here is only for testing the guest; the product's
//! is in crates/vm.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use servin_guest::contract::{
    foreign_disk_message, kernel_cmdline, vsock_connect_line, vsock_connect_ok, BootArgs,
    ControlResponse, CONTROL_PORT, ENGINE_PORT, ENGINE_READY_LINE, GUEST_CID, INITRAMFS_FILE,
    KERNEL_FILE,
};
use servin_guest::system::{SYSTEM_FILE, SYSTEM_SERIAL};

/// A guard against a guest that never gets there (not a performance check).
fn hang_guard() -> Duration {
    let secs = std::env::var("SERVIN_TEST_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Skips (or, under SERVIN_REQUIRE_VM=1, fails) unless this machine can
/// boot the guest.
fn can_boot(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        return !servin_testkit::skip(test, "needs root (scripts/build-guest installs packages)");
    }
    !servin_testkit::skip_unless_tools(
        test,
        &[
            "qemu-system-x86_64",
            "qemu-img",
            "vhost-device-vsock",
            "mkfs.ext4",
        ],
    )
}

/// The guest image, built once per test run by scripts/build-guest (which
/// does nothing when no input changed), unless the test command has just
/// built it (`SERVIN_GUEST_PREBUILT=1`: CI drops the build tree after, so a
/// second run would build everything again).
fn guest_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let root = repo_root();
        let out = root.join("target/guest");
        if std::env::var("SERVIN_GUEST_PREBUILT").is_ok_and(|v| v == "1")
            && out.join("vmlinuz").is_file()
        {
            return out;
        }
        let status = Command::new(root.join("scripts/build-guest"))
            .arg(&out)
            .status()
            .expect("run scripts/build-guest");
        assert!(status.success(), "scripts/build-guest failed: {status}");
        out
    })
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One QEMU microvm and its vhost-device-vsock; both are killed on drop.
struct Vm {
    dir: PathBuf,
    qemu: Child,
    vsock_dev: Child,
    started: Instant,
}

impl Vm {
    fn boot(dir: &Path, disk: &Path) -> Vm {
        std::fs::create_dir_all(dir).unwrap();
        let image = guest_image();
        let vhost = dir.join("vhost.sock");
        let uds = dir.join("vsock.sock");
        let vsock_dev = Command::new("vhost-device-vsock")
            .arg("--guest-cid")
            .arg(GUEST_CID.to_string())
            .arg("--socket")
            .arg(&vhost)
            .arg("--uds-path")
            .arg(&uds)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("vhost-device-vsock.log")).unwrap())
            .spawn()
            .expect("start vhost-device-vsock");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !vhost.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let args = BootArgs {
            time: Some(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            ),
            ..Default::default()
        };
        let append = kernel_cmdline(&args, true).unwrap();
        let started = Instant::now();
        let qemu = Command::new("qemu-system-x86_64")
            .args([
                "-M",
                "microvm,memory-backend=mem",
                "-accel",
                "tcg",
                "-cpu",
                "max",
            ])
            .args(["-smp", "2", "-m", "1024", "-nodefaults", "-no-user-config"])
            .args(["-nographic", "-no-reboot"])
            .args(["-object", "memory-backend-memfd,id=mem,size=1024M,share=on"])
            .arg("-serial")
            .arg(format!("file:{}", dir.join("console.log").display()))
            .arg("-kernel")
            .arg(image.join(KERNEL_FILE))
            .arg("-initrd")
            .arg(image.join(INITRAMFS_FILE))
            .arg("-append")
            .arg(append)
            .args(["-global", "virtio-mmio.force-legacy=false"])
            .arg("-drive")
            .arg(format!(
                "id=data,file={},format=qcow2,if=none,discard=unmap",
                disk.display()
            ))
            .args(["-device", "virtio-blk-device,drive=data"])
            // The image's /usr (servin_guest::system), after the data disk.
            .arg("-drive")
            .arg(format!(
                "id=system,file={},format=raw,if=none,readonly=on",
                image.join(SYSTEM_FILE).display()
            ))
            .arg("-device")
            .arg(format!(
                "virtio-blk-device,drive=system,serial={SYSTEM_SERIAL}"
            ))
            .arg("-chardev")
            .arg(format!("socket,id=vsock,path={}", vhost.display()))
            .args(["-device", "vhost-user-vsock-device,chardev=vsock"])
            .args(["-netdev", "user,id=net0"])
            .args(["-device", "virtio-net-device,netdev=net0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("qemu.log")).unwrap())
            .spawn()
            .expect("start qemu-system-x86_64");
        Vm {
            dir: dir.to_path_buf(),
            qemu,
            vsock_dev,
            started,
        }
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    fn describe(&self) -> String {
        let qemu_log = std::fs::read_to_string(self.dir.join("qemu.log")).unwrap_or_default();
        format!("console:\n{}\nqemu:\n{qemu_log}", self.console())
    }

    /// Waits until the console shows `needle`; panics if QEMU exits first.
    fn wait_console(&mut self, needle: &str) {
        let deadline = Instant::now() + hang_guard();
        while !self.console().contains(needle) {
            if let Some(status) = self.qemu.try_wait().unwrap() {
                panic!(
                    "QEMU exited ({status}) before {needle:?}\n{}",
                    self.describe()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} on the console\n{}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for QEMU to exit by itself (power off).
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + hang_guard();
        loop {
            if let Some(status) = self.qemu.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "QEMU did not exit\n{}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A stream to a guest vsock port, through vhost-device-vsock's socket.
    fn connect(&self, port: u32) -> UnixStream {
        let mut s = UnixStream::connect(self.dir.join("vsock.sock")).expect("vsock socket");
        s.set_read_timeout(Some(hang_guard())).unwrap();
        s.write_all(vsock_connect_line(port).as_bytes()).unwrap();
        let reply = read_line(&mut s);
        assert!(vsock_connect_ok(&reply), "CONNECT {port}: {reply:?}");
        s
    }

    fn control(&self, request: &str) -> ControlResponse {
        let mut s = self.connect(CONTROL_PORT);
        s.write_all(request.as_bytes()).unwrap();
        let line = read_line(&mut s);
        ControlResponse::parse(&line).unwrap_or_else(|e| panic!("{e}"))
    }

    /// One HTTP/1.0 request to the guest engine: (status, body).
    fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut s = self.connect(ENGINE_PORT);
        let mut req = format!("{method} {path} HTTP/1.0\r\nHost: servin\r\n");
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or(""));
        s.write_all(req.as_bytes()).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"));
        (status, body.to_string())
    }

    fn power_off(mut self) {
        assert_eq!(
            self.control("POWEROFF\n"),
            ControlResponse::Ok(String::new())
        );
        let status = self.wait_exit();
        assert!(status.success(), "QEMU after POWEROFF: {status}");
        assert!(
            self.console().contains("reboot: Power down"),
            "{}",
            self.describe()
        );
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        for child in [&mut self.qemu, &mut self.vsock_dev] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_line(s: &mut UnixStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap_or(0) == 1 {
        line.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

fn temp_dir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("servin-guest-{what}-"))
        .tempdir_in("/tmp")
        .unwrap()
}

#[test]
fn guest_boots_serves_the_engine_on_vsock_and_keeps_its_disk() {
    if !can_boot("guest_boots_serves_the_engine_on_vsock_and_keeps_its_disk") {
        return;
    }
    guest_image();
    let tmp = temp_dir("boot");
    let leaks = servin_testkit::LeakCheck::new(tmp.path()).without_fds();
    let disk = tmp.path().join("data.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&disk)
        .arg("2G"));

    // The host's local registry, reached from the guest by its loopback name.
    let registry = servin_testkit::Registry::start().unwrap();
    let image_ref = registry.reference("guest/busybox:latest");
    servin_testkit::push(&servin_testkit::Fixture::busybox().unwrap(), &image_ref).unwrap();

    let mut vm = Vm::boot(&tmp.path().join("first"), &disk);
    vm.wait_console(ENGINE_READY_LINE);
    let (status, body) = vm.http("GET", "/_ping", None);
    eprintln!(
        "first boot (blank disk, formatted): QEMU start to engine /_ping OK in {:.1} s",
        vm.started.elapsed().as_secs_f64()
    );
    assert_eq!((status, body.as_str()), (200, "OK"));
    assert!(vm
        .console()
        .contains("servin-init: formatting the data disk"));

    match vm.control("PING\n") {
        ControlResponse::Ok(v) => assert_eq!(v, env!("CARGO_PKG_VERSION")),
        other => panic!("PING: {other:?}"),
    }
    assert_eq!(
        vm.control("REBOOT\n"),
        ControlResponse::Err("unknown request: REBOOT".into())
    );
    let ControlResponse::Ok(stats) = vm.control("STATS\n") else {
        panic!("STATS failed")
    };
    let stats: servin_guest::contract::GuestStats = serde_json::from_str(&stats).unwrap();
    assert!(stats.disk_size > 1 << 30 && stats.disk_used < stats.disk_size);
    assert!(stats.mem_total > 0 && stats.mem_available <= stats.mem_total);

    // SHELL: a login shell on a pty of the asked size, bytes both ways.
    let mut sh = vm.connect(CONTROL_PORT);
    sh.write_all(b"SHELL 24 80\n").unwrap();
    let ok = read_line(&mut sh);
    let pid: i32 = ok
        .strip_prefix("OK ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("SHELL did not answer OK <pid>: {ok:?}"));
    sh.write_all(b"echo size=$(busybox stty size) sum=$((6*7))\nexit 5\n")
        .unwrap();
    let mut out = Vec::new();
    sh.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("size=24 80 sum=42"), "{out:?}");
    // SHELLEXIT: the shell's status, once.
    let exit = format!("SHELLEXIT {pid}\n");
    assert_eq!(vm.control(&exit), ControlResponse::Ok("5".into()));
    assert!(matches!(vm.control(&exit), ControlResponse::Err(_)));

    let (status, body) = vm.http(
        "POST",
        "/volumes/create",
        Some(r#"{"Name":"kept-across-boots"}"#),
    );
    assert_eq!(status, 201, "{body}");

    // --host-gateway: the guest pulls 127.0.0.1:PORT/… from the host.
    let (name, tag) = image_ref.rsplit_once(':').unwrap();
    let (status, body) = vm.http(
        "POST",
        &format!("/images/create?fromImage={name}&tag={tag}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("errorDetail"),
        "pull failed: {body}\n{}",
        vm.describe()
    );
    let (_, images) = vm.http("GET", "/images/json", None);
    assert!(images.contains(&image_ref), "{image_ref} not in {images}");
    vm.power_off();

    // Second boot on the same disk: nothing formatted, the volume is there.
    let mut vm = Vm::boot(&tmp.path().join("second"), &disk);
    vm.wait_console(ENGINE_READY_LINE);
    let (status, body) = vm.http("GET", "/_ping", None);
    eprintln!(
        "second boot (existing disk): QEMU start to engine /_ping OK in {:.1} s",
        vm.started.elapsed().as_secs_f64()
    );
    assert_eq!((status, body.as_str()), (200, "OK"));
    assert!(!vm.console().contains("formatting"), "{}", vm.describe());
    let (_, volumes) = vm.http("GET", "/volumes", None);
    assert!(volumes.contains("\"kept-across-boots\""), "{volumes}");
    let (_, images) = vm.http("GET", "/images/json", None);
    assert!(images.contains(&image_ref), "{image_ref} not in {images}");
    vm.power_off();

    drop(registry);
    let found = leaks.leaks();
    assert!(found.is_empty(), "left behind: {found:?}");
}

#[test]
fn a_foreign_data_disk_is_refused_and_left_untouched() {
    if !can_boot("a_foreign_data_disk_is_refused_and_left_untouched") {
        return;
    }
    guest_image();
    let tmp = temp_dir("foreign");
    let raw = tmp.path().join("foreign.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "backup"])
        .arg(&raw));
    let disk = tmp.path().join("foreign.qcow2");
    run(Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&disk));

    let mut vm = Vm::boot(&tmp.path().join("vm"), &disk);
    let status = vm.wait_exit();
    assert!(status.success(), "QEMU: {status}");
    let console = vm.console();
    assert!(
        console.contains(&foreign_disk_message("backup")),
        "{}",
        vm.describe()
    );
    assert!(!console.contains(ENGINE_READY_LINE), "{console}");
    drop(vm);
    // Not one byte changed.
    run(Command::new("qemu-img")
        .args(["compare", "-q", "-f", "raw", "-F", "qcow2"])
        .arg(&raw)
        .arg(&disk));
}
