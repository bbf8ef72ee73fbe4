//! The guest image's system disk (docs/vm-guest-contract.md, "Guest
//! image"): the image's `/usr` as a read-only erofs file next to the
//! initramfs. The host attaches it as a read-only virtio-blk disk with a
//! serial of its own; init mounts it on `/usr`. Binaries on a disk cost
//! guest RAM only for the pages the guest reads (page cache it can drop),
//! where every byte of an initramfs stays in RAM for the guest's life.

/// The file in the guest image directory.
pub const SYSTEM_FILE: &str = "system.img";
/// The virtio-blk serial the host gives the disk (`/sys/block/vdX/serial`).
pub const SYSTEM_SERIAL: &str = "servin-system";
/// Where init mounts it.
pub const SYSTEM_MOUNT: &str = "/usr";
/// Its filesystem, and the module init loads for it.
pub const SYSTEM_FS: &str = "erofs";
/// Paths in the image under this prefix go to the system disk.
pub const SYSTEM_PREFIX: &str = "usr/";
