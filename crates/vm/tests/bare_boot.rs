//! Boots Debian's kernel with a trivial initramfs through the QEMU provider
//! and reads the marker its init prints on the console.
//!
//! Needs qemu-system-x86_64, a kernel in /boot and busybox-static (scripts/deps
//! installs them); without them it says why on stderr and passes, unless
//! SERVIN_REQUIRE_VM=1, where the skip fails.

#![cfg(target_os = "linux")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use servin_guest::contract::BootArgs;
use servin_vm::qemu::QemuProvider;
use servin_vm::{LaunchSpec, VmPaths, VmProvider};

fn skip(reason: &str) {
    if std::env::var("SERVIN_REQUIRE_VM").as_deref() == Ok("1") {
        panic!("SERVIN_REQUIRE_VM=1 but this test cannot run: {reason}");
    }
    eprintln!("skipping the bare boot test: {reason}");
}

fn debian_kernel() -> Option<PathBuf> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort();
    kernels.pop()
}

#[test]
fn the_launcher_boots_a_kernel_and_the_console_shows_init_output() {
    let Some(kernel) = debian_kernel() else {
        return skip("no kernel in /boot (apt-get install linux-image-amd64)");
    };
    let busybox = PathBuf::from("/bin/busybox");
    if !busybox.is_file() {
        return skip("no /bin/busybox (apt-get install busybox-static)");
    }
    if servin_vm::provider::find_on_path(servin_vm::qemu::QEMU).is_none() {
        return skip("no qemu-system-x86_64 (apt-get install qemu-system-x86)");
    }
    let root = tempfile::Builder::new()
        .prefix("servin-vm-bare-")
        .tempdir()
        .unwrap();
    let marker = "SERVIN-BARE-BOOT-OK";
    let initramfs = root.path().join("initramfs.img");
    servin_vm::bare::write_initramfs(&busybox, marker, &initramfs).unwrap();
    let paths = VmPaths::new(root.path());
    let spec = LaunchSpec {
        paths: paths.clone(),
        cpus: 1,
        memory: 256 << 20,
        kernel,
        initramfs,
        disk: None,
        shares: Vec::new(),
        boot: BootArgs::default(),
        vsock: false,
        network: false,
    };
    let provider = QemuProvider;
    let (accel, why) = provider.accelerator();
    eprintln!("accelerator: {accel} ({})", why.unwrap_or_default());
    let started = Instant::now();
    let mut vm = provider.start(&spec).unwrap();
    // A guard against a hung guest, not a speed check.
    let limit = Duration::from_secs(600);
    while vm.is_alive() && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alive = vm.is_alive();
    vm.stop(Duration::ZERO);
    let console = std::fs::read_to_string(paths.console_log()).unwrap_or_default();
    eprintln!("bare boot to poweroff: {:?}", started.elapsed());
    assert!(!alive, "the guest did not power off; console:\n{console}");
    assert!(
        console.lines().any(|l| l.trim() == marker),
        "no marker on the console:\n{console}"
    );
    assert!(
        std::fs::read_dir(&paths.dir).unwrap().flatten().all(|e| !e
            .path()
            .extension()
            .is_some_and(|x| x == "pid" || x == "sock")),
        "pid files or sockets left in {}",
        paths.dir.display()
    );
}
