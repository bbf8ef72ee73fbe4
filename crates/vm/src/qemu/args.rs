//! QEMU's command line for a [`LaunchSpec`]: a `microvm` machine booting
//! the kernel directly (no firmware), every device on virtio-mmio.

use servin_guest::contract::{kernel_cmdline, share_tag};
use servin_guest::system::{SYSTEM_FILE, SYSTEM_SERIAL};

use crate::provider::{Accelerator, LaunchSpec};
use crate::VmError;

/// Which virtiofsd is installed: the Rust one (`--shared-dir`) or the C one
/// QEMU 7 still ships (`-o source=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Virtiofsd {
    Rust(std::path::PathBuf),
    Legacy(std::path::PathBuf),
}

impl Virtiofsd {
    /// The daemon's arguments for sharing `dir` on `socket`.
    pub fn args(&self, socket: &std::path::Path, dir: &std::path::Path) -> Vec<String> {
        let (socket, dir) = (socket.display(), dir.display());
        match self {
            Virtiofsd::Rust(_) => vec![
                format!("--socket-path={socket}"),
                format!("--shared-dir={dir}"),
                "--cache=auto".into(),
                "--announce-submounts".into(),
            ],
            Virtiofsd::Legacy(_) => vec![
                format!("--socket-path={socket}"),
                "-o".into(),
                format!("source={dir}"),
                "-o".into(),
                "cache=auto".into(),
                "-o".into(),
                "announce_submounts".into(),
            ],
        }
    }

    pub fn path(&self) -> &std::path::Path {
        match self {
            Virtiofsd::Rust(p) | Virtiofsd::Legacy(p) => p,
        }
    }
}

/// TCG with a 32 MiB translation cache (QEMU's default is 1 GiB). What the
/// guest fills of it stays resident on the host, but 16 MiB is too small:
/// it saved 20 MiB of idle PSS and made a warm `run --rm true` 1.8x slower
/// (retranslation; bench/vm, same load).
const TCG_ACCEL: &str = "tcg,tb-size=32";

/// The image's system disk, next to its initramfs, when it has one (an
/// image built before the system disk holds everything in the initramfs).
pub fn system_image(spec: &LaunchSpec) -> Option<std::path::PathBuf> {
    let p = spec.initramfs.with_file_name(SYSTEM_FILE);
    p.is_file().then_some(p)
}

/// The arguments after `qemu-system-x86_64`.
pub fn qemu_args(spec: &LaunchSpec, accel: Accelerator) -> Result<Vec<String>, VmError> {
    let p = &spec.paths;
    let mib = spec.memory / (1024 * 1024);
    let cmdline = kernel_cmdline(&spec.boot, accel == Accelerator::Tcg)
        .map_err(|e| VmError::Boot(e.to_string()))?;
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]);
    match accel {
        Accelerator::Kvm => push(&["-machine", "microvm", "-accel", "kvm", "-cpu", "host"]),
        // TCG's translation cache defaults to 1 GiB and fills as the guest
        // runs new code; once touched it stays resident on the host. A
        // smaller cache is flushed and refilled instead.
        Accelerator::Tcg => push(&["-machine", "microvm", "-accel", TCG_ACCEL, "-cpu", "max"]),
    }
    let smp = spec.cpus.to_string();
    let mem = format!("{mib}M");
    // vhost-user devices (vsock, virtiofs) map guest memory from a shared fd.
    let backend = format!("memory-backend-memfd,id=mem,size={mib}M,share=on");
    push(&["-smp", &smp, "-m", &mem, "-object", &backend]);
    push(&["-numa", "node,memdev=mem"]);
    push(&["-global", "virtio-mmio.force-legacy=false"]);
    let kernel = spec.kernel.display().to_string();
    let initrd = spec.initramfs.display().to_string();
    push(&["-kernel", &kernel, "-initrd", &initrd, "-append", &cmdline]);
    let console = format!(
        "file,id=console,path={},append=on",
        p.console_log().display()
    );
    push(&["-chardev", &console, "-serial", "chardev:console"]);
    let qmp = format!("unix:{},server=on,wait=off", p.qmp_socket().display());
    push(&["-qmp", &qmp]);
    if let Some(disk) = &spec.disk {
        let drive = format!(
            "id=data,file={},if=none,format=qcow2,discard=unmap,cache=writeback",
            disk.display()
        );
        push(&["-drive", &drive, "-device", "virtio-blk-device,drive=data"]);
    }
    // The system disk (the image's /usr, read-only) after the data disk, so
    // that the data disk stays /dev/vda; init finds it by its serial. The
    // guest's page cache then holds only the parts of the binaries it runs,
    // where an initramfs would keep every byte in guest RAM.
    if let Some(system) = system_image(spec) {
        let drive = format!(
            "id=system,file={},if=none,format=raw,readonly=on",
            system.display()
        );
        let device = format!("virtio-blk-device,drive=system,serial={SYSTEM_SERIAL}");
        push(&["-drive", &drive, "-device", &device]);
    }
    if spec.vsock {
        let chardev = format!("socket,id=vsock,path={}", p.vhost_vsock_socket().display());
        // The guest's CID is the backend's (vhost-device-vsock --guest-cid).
        push(&[
            "-chardev",
            &chardev,
            "-device",
            "vhost-user-vsock-device,chardev=vsock",
        ]);
    }
    for (n, _) in spec.shares.iter().enumerate() {
        let chardev = format!("socket,id=fs{n},path={}", p.virtiofs_socket(n).display());
        let device = format!("vhost-user-fs-device,chardev=fs{n},tag={}", share_tag(n));
        push(&["-chardev", &chardev, "-device", &device]);
    }
    // Free page reporting: the guest tells QEMU which pages it freed and
    // QEMU drops them from the memfd, so host memory follows what the guest
    // uses rather than the most it ever used.
    push(&["-device", "virtio-balloon-device,free-page-reporting=on"]);
    if spec.network {
        push(&[
            "-netdev",
            "user,id=net0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3",
            "-device",
            "virtio-net-device,netdev=net0",
        ]);
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use servin_guest::contract::{BootArgs, Share};

    use super::*;
    use crate::VmPaths;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            paths: VmPaths::new(std::path::Path::new("/data")),
            cpus: 2,
            memory: 2 << 30,
            kernel: "/img/vmlinuz".into(),
            initramfs: "/img/initramfs.img".into(),
            disk: Some("/data/vm/disk.qcow2".into()),
            shares: vec!["/home/me".into(), "/tmp".into()],
            boot: BootArgs {
                time: Some(1_700_000_000),
                shares: vec![Share {
                    tag: "servin0".into(),
                    path: "/home/me".into(),
                }],
                ..BootArgs::default()
            },
            vsock: true,
            network: true,
        }
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn tcg_microvm_with_every_device() {
        let a = qemu_args(&spec(), Accelerator::Tcg).unwrap();
        assert_eq!(value_after(&a, "-machine"), ["microvm"]);
        assert_eq!(value_after(&a, "-accel"), ["tcg,tb-size=32"]);
        assert_eq!(value_after(&a, "-smp"), ["2"]);
        assert_eq!(value_after(&a, "-m"), ["2048M"]);
        assert!(value_after(&a, "-object")[0].contains("memory-backend-memfd"));
        assert!(value_after(&a, "-object")[0].contains("share=on"));
        assert_eq!(
            value_after(&a, "-global"),
            ["virtio-mmio.force-legacy=false"]
        );
        assert_eq!(value_after(&a, "-kernel"), ["/img/vmlinuz"]);
        let append = value_after(&a, "-append")[0];
        assert!(
            append.starts_with("console=ttyS0 reboot=k panic=-1"),
            "{append}"
        );
        assert!(
            append.contains("no_timer_check tsc_early_khz=2000000"),
            "{append}"
        );
        assert!(append.contains("servin.time=1700000000"), "{append}");
        assert!(append.contains("servin.engine_port=2375"), "{append}");
        let devices = value_after(&a, "-device");
        assert_eq!(
            devices,
            [
                "virtio-blk-device,drive=data",
                "vhost-user-vsock-device,chardev=vsock",
                "vhost-user-fs-device,chardev=fs0,tag=servin0",
                "vhost-user-fs-device,chardev=fs1,tag=servin1",
                "virtio-balloon-device,free-page-reporting=on",
                "virtio-net-device,netdev=net0",
            ]
        );
        assert!(value_after(&a, "-drive")[0].contains("discard=unmap"));
        assert!(value_after(&a, "-drive")[0].contains("format=qcow2"));
        assert!(value_after(&a, "-chardev")
            .iter()
            .any(|c| c.contains("/data/vm/virtiofs-1.sock")));
        assert_eq!(
            value_after(&a, "-qmp"),
            ["unix:/data/vm/qmp.sock,server=on,wait=off"]
        );
        assert!(
            !a.iter().any(|s| s == "-bios"),
            "direct kernel boot, no firmware"
        );
    }

    #[test]
    fn kvm_has_no_tcg_timer_flags() {
        let a = qemu_args(&spec(), Accelerator::Kvm).unwrap();
        assert_eq!(value_after(&a, "-machine"), ["microvm"]);
        assert_eq!(value_after(&a, "-accel"), ["kvm"]);
        assert_eq!(value_after(&a, "-cpu"), ["host"]);
        assert!(!value_after(&a, "-append")[0].contains("no_timer_check"));
    }

    #[test]
    fn a_bare_boot_has_only_the_balloon() {
        let mut s = spec();
        s.disk = None;
        s.shares.clear();
        s.vsock = false;
        s.network = false;
        let a = qemu_args(&s, Accelerator::Tcg).unwrap();
        assert_eq!(
            value_after(&a, "-device"),
            ["virtio-balloon-device,free-page-reporting=on"]
        );
    }

    #[test]
    fn the_system_disk_comes_after_the_data_disk_when_the_image_has_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec();
        s.initramfs = dir.path().join("initramfs.img");
        let a = qemu_args(&s, Accelerator::Tcg).unwrap();
        assert!(
            !value_after(&a, "-drive")
                .iter()
                .any(|d| d.contains("system")),
            "no system.img, no system disk: {a:?}"
        );
        std::fs::write(dir.path().join(SYSTEM_FILE), b"erofs").unwrap();
        let a = qemu_args(&s, Accelerator::Tcg).unwrap();
        let drives = value_after(&a, "-drive");
        assert!(drives[0].starts_with("id=data,"), "{drives:?}");
        assert!(drives[1].contains("readonly=on"), "{drives:?}");
        assert!(
            drives[1].contains(&dir.path().join(SYSTEM_FILE).display().to_string()),
            "{drives:?}"
        );
        let devices = value_after(&a, "-device");
        assert_eq!(devices[0], "virtio-blk-device,drive=data");
        assert_eq!(
            devices[1],
            format!("virtio-blk-device,drive=system,serial={SYSTEM_SERIAL}")
        );
    }

    #[test]
    fn virtiofsd_flavours() {
        let sock = PathBuf::from("/d/v.sock");
        let rust = Virtiofsd::Rust("/usr/libexec/virtiofsd".into());
        assert!(rust
            .args(&sock, "/tmp".as_ref())
            .contains(&"--shared-dir=/tmp".to_string()));
        let c = Virtiofsd::Legacy("/usr/lib/qemu/virtiofsd".into());
        assert!(c
            .args(&sock, "/tmp".as_ref())
            .contains(&"source=/tmp".to_string()));
    }
}
