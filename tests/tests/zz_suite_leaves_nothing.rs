//! Runs after the other acceptance binaries (cargo runs test targets in name
//! order): nothing any test started may remain — no test daemon directory,
//! no mount, no container cgroup, no shim or container process, no test
//! bridge or veth, no test nft table, no pinned network namespace.

use std::path::Path;

use servin_testkit::{TEST_BRIDGE_PREFIX, TEST_NFT_PREFIX, TEST_VETH_PREFIX};

fn output(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Test daemons live in `/tmp/servin-daemon-*` (servin_testkit::Daemon).
fn test_dirs() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("servin-daemon-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn no_test_leaves_anything_behind() {
    let dirs = test_dirs();
    assert!(dirs.is_empty(), "test daemon directories left: {dirs:?}");

    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ours: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains("/servin-daemon-"))
        .collect();
    assert!(ours.is_empty(), "mounts left: {ours:?}");

    let mut cgroups = Vec::new();
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in hierarchies.flatten() {
            let dir = h.path().join("servin");
            if let Ok(children) = std::fs::read_dir(&dir) {
                cgroups.extend(
                    children
                        .flatten()
                        .filter(|c| c.path().is_dir())
                        .map(|c| c.path()),
                );
            }
        }
    }
    assert!(cgroups.is_empty(), "container cgroups left: {cgroups:?}");

    let mut procs = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmd.contains("/servin-daemon-") {
            procs.push(format!("{}: {cmd}", p.file_name().to_string_lossy()));
        }
    }
    assert!(procs.is_empty(), "processes left: {procs:?}");

    // Test daemons name their links and tables with these prefixes
    // (servin_testkit::TestNetwork); a netns pin is an nsfs mount.
    let links: Vec<String> = output("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(TEST_BRIDGE_PREFIX) || n.starts_with(TEST_VETH_PREFIX))
        .collect();
    assert!(links.is_empty(), "test bridges or veths left: {links:?}");
    if servin_testkit::which("nft").is_some() {
        let tables: Vec<String> = output("nft", &["list", "tables"])
            .lines()
            .filter(|l| l.contains(TEST_NFT_PREFIX))
            .map(str::to_string)
            .collect();
        assert!(tables.is_empty(), "test nft tables left: {tables:?}");
    }
    let pins: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(" nsfs ") && l.contains("/servin-"))
        .collect();
    assert!(pins.is_empty(), "network namespaces left pinned: {pins:?}");
    assert!(Path::new("/proc/self/mountinfo").exists());
}
