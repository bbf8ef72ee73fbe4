//! `bare_boot KERNEL CPUS MEMORY_MIB`: boots KERNEL through the QEMU
//! provider (same machine and accelerator as the guest) with an initramfs
//! whose init only prints a marker and powers off, and prints the
//! milliseconds from launch to the marker on the console. bench/vm uses it
//! as the floor for a guest's cold start.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use servin_guest::contract::BootArgs;
use servin_vm::qemu::QemuProvider;
use servin_vm::{LaunchSpec, VmPaths, VmProvider};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kernel, cpus, memory_mib] = args.as_slice() else {
        eprintln!("usage: bare_boot KERNEL CPUS MEMORY_MIB");
        std::process::exit(2);
    };
    let (Ok(cpus), Ok(memory_mib)) = (cpus.parse::<u32>(), memory_mib.parse::<u64>()) else {
        eprintln!("bare_boot: CPUS and MEMORY_MIB must be numbers");
        std::process::exit(2);
    };
    let root = tempfile::Builder::new()
        .prefix("servin-bench-bare-")
        .tempdir()
        .expect("a temporary directory");
    let marker = "SERVIN-BARE-BOOT-OK";
    let initramfs = root.path().join("initramfs.img");
    servin_vm::bare::write_initramfs(&PathBuf::from("/bin/busybox"), marker, &initramfs)
        .expect("the bare initramfs is written");
    let paths = VmPaths::new(root.path());
    let spec = LaunchSpec {
        paths: paths.clone(),
        cpus,
        memory: memory_mib << 20,
        kernel: PathBuf::from(kernel),
        initramfs,
        disk: None,
        shares: Vec::new(),
        boot: BootArgs::default(),
        vsock: false,
        network: false,
    };
    let started = Instant::now();
    let mut vm = QemuProvider.start(&spec).expect("QEMU starts");
    let limit = Duration::from_secs(600);
    let mut seen = None;
    while started.elapsed() < limit {
        let console = std::fs::read_to_string(paths.console_log()).unwrap_or_default();
        if console.lines().any(|l| l.trim() == marker) {
            seen = Some(started.elapsed());
            break;
        }
        if !vm.is_alive() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    vm.stop(Duration::ZERO);
    match seen {
        Some(t) => println!("{}", t.as_millis()),
        None => {
            eprintln!("bare_boot: no marker on the console");
            std::process::exit(1);
        }
    }
}
