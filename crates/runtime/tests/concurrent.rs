//! Many containers created at once from one threaded spawner (as the
//! engine does), and what a shim inherits from its spawner.
//! Needs root: each test skips without it.

mod common;

use std::os::fd::AsRawFd;
use std::sync::{Arc, Barrier};

use common::*;

/// Shims spawned from many threads at the same moment each report their
/// own create (a report lost or sent down a sibling's pipe would show as
/// an error, after spawn_shim's bounded wait) and run their own command.
#[test]
fn shims_spawned_at_once_from_threads_all_report() {
    if !require_root("shims_spawned_at_once_from_threads_all_report") {
        return;
    }
    const N: usize = 16;
    let fx = Fixture::new();
    let specs: Vec<_> = (0..N)
        .map(|i| fx.spec(&["echo", &format!("container {i}")]))
        .collect();
    let barrier = Arc::new(Barrier::new(N));
    let threads: Vec<_> = specs
        .iter()
        .cloned()
        .map(|spec| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                run(&spec)
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let (out, err, exit) = t.join().unwrap_or_else(|_| panic!("container {i} failed"));
        assert_eq!(
            (out.as_str(), err.as_str(), exit.code),
            (format!("container {i}\n").as_str(), "", 0),
            "container {i}"
        );
    }
    for spec in &specs {
        fx.assert_clean(spec);
    }
}

/// A descriptor the spawner holds without close-on-exec does not stay
/// open in the shim (which lives as long as its container).
#[test]
fn a_shim_keeps_no_descriptor_of_its_spawner() {
    if !require_root("a_shim_keeps_no_descriptor_of_its_spawner") {
        return;
    }
    let fx = Fixture::new();
    // Without close-on-exec, as a daemon started from a shell may hold one.
    let (r, w) = nix::unistd::pipe().unwrap();
    let inherited: Vec<String> = [r.as_raw_fd(), w.as_raw_fd()]
        .iter()
        .map(|fd| link(&format!("/proc/self/fd/{fd}")))
        .collect();
    let spec = fx.spec(&["true"]);
    let client = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap();
    let pid = std::fs::read_to_string(spec.state_dir.join("shim.pid")).unwrap();
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", pid.trim()))
        .unwrap()
        .flatten()
        .map(|e| link(&e.path().to_string_lossy()))
        .collect();
    client.kill(9).unwrap();
    client.wait().unwrap();
    drop((r, w));
    for x in &inherited {
        assert!(
            !held.contains(x),
            "the shim holds its spawner's {x}: {held:?}"
        );
    }
    fx.assert_clean(&spec);
}

fn link(path: &str) -> String {
    std::fs::read_link(path)
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}
