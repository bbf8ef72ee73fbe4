//! Kernel modules of the guest: which ones it loads, and `modules.dep`
//! (written by the image builder, read by init to load dependencies first).

use std::collections::{BTreeMap, HashSet};

/// The modules init loads, in this order (each after its dependencies):
/// virtio transport, balloon (free page reporting), disk, vsock, network, shares, filesystems, then what
/// containers' networking needs. `crc32c_generic` comes before `ext4`
/// and `libcrc32c`, which only name it as a soft dependency.
pub const GUEST_MODULES: &[&str] = &[
    "virtio_mmio",
    "virtio_balloon",
    "virtio_blk",
    "vmw_vsock_virtio_transport",
    "virtio_net",
    "virtiofs",
    "crc32c_generic",
    "ext4",
    "overlay",
    "veth",
    "bridge",
    "br_netfilter",
    "nf_tables",
    "nf_conntrack",
    "nf_nat",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "nft_ct",
    "nft_fib_inet",
    "nft_fib_ipv4",
    "nft_compat",
    "tun",
];

/// A module's name as the kernel knows it: the file stem without its
/// `.ko[.xz|.zst]` suffix, `-` written `_`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// `modules.dep`: for each module (by path relative to the modules
/// directory), the paths of the modules it needs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ModulesDep {
    /// name → (path, dependency paths)
    entries: BTreeMap<String, (String, Vec<String>)>,
}

impl ModulesDep {
    pub fn parse(text: &str) -> ModulesDep {
        let mut entries = BTreeMap::new();
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim().to_string();
            let deps = deps.split_whitespace().map(str::to_string).collect();
            entries.insert(module_name(&path), (path, deps));
        }
        ModulesDep { entries }
    }

    pub fn insert(&mut self, path: String, deps: Vec<String>) {
        self.entries.insert(module_name(&path), (path, deps));
    }

    pub fn path_of(&self, name: &str) -> Option<&str> {
        self.entries
            .get(&name.replace('-', "_"))
            .map(|(p, _)| p.as_str())
    }

    /// The text of the file, sorted by module name.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (path, deps) in self.entries.values() {
            s.push_str(path);
            s.push(':');
            for d in deps {
                s.push(' ');
                s.push_str(d);
            }
            s.push('\n');
        }
        s
    }

    /// The paths to load for `names`, every module after what it depends
    /// on, each once. Names that are not in the file are returned in the
    /// second list.
    pub fn load_order<'a>(&self, names: &[&'a str]) -> (Vec<String>, Vec<&'a str>) {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        let mut missing = Vec::new();
        for name in names {
            if !self.visit(&name.replace('-', "_"), &mut seen, &mut order) {
                missing.push(*name);
            }
        }
        (order, missing)
    }

    fn visit(&self, name: &str, seen: &mut HashSet<String>, order: &mut Vec<String>) -> bool {
        let Some((path, deps)) = self.entries.get(name) else {
            return false;
        };
        if !seen.insert(name.to_string()) {
            return true;
        }
        for d in deps {
            self.visit(&module_name(d), seen, order);
        }
        order.push(path.clone());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_suffixes_and_dashes() {
        assert_eq!(
            module_name("kernel/arch/x86/crc32c-intel.ko"),
            "crc32c_intel"
        );
        assert_eq!(module_name("kernel/fs/ext4/ext4.ko.xz"), "ext4");
        assert_eq!(module_name("a/b/virtio_blk.ko.zst"), "virtio_blk");
    }

    #[test]
    fn dependencies_load_first_and_once() {
        let dep = ModulesDep::parse(
            "kernel/a/virtio_blk.ko: kernel/a/virtio_ring.ko kernel/a/virtio.ko\n\
             kernel/a/virtio_ring.ko: kernel/a/virtio.ko\n\
             kernel/a/virtio.ko:\n\
             kernel/a/virtio_mmio.ko: kernel/a/virtio_ring.ko kernel/a/virtio.ko\n",
        );
        let (order, missing) = dep.load_order(&["virtio_mmio", "virtio_blk", "nope"]);
        assert_eq!(
            order,
            [
                "kernel/a/virtio.ko",
                "kernel/a/virtio_ring.ko",
                "kernel/a/virtio_mmio.ko",
                "kernel/a/virtio_blk.ko"
            ]
        );
        assert_eq!(missing, ["nope"]);
        assert_eq!(ModulesDep::parse(&dep.render()), dep);
    }
}
