//! Checking that a test left nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::process;

/// A snapshot taken at the start of a test, checked at its end:
///
/// - no process (other than the test's own) whose command line, cwd, root
///   or executable mentions the watched dir;
/// - no mount at or under the watched dir (`/proc/self/mountinfo`);
/// - no more open fds in the test process than at the start.
///
/// Limits, honestly: a container process that names none of these paths
/// (its root is a pivoted mount in its own namespace) is not seen, so stop
/// the daemon first and let its shims be found by their command lines. The
/// fd count is process-wide: tests running in parallel threads open fds of
/// their own, so the check waits a little for the count to settle and then
/// lists the new fds; use it in tests run with `--test-threads=1` or in a
/// test binary of their own for a strict answer.
pub struct LeakCheck {
    dirs: Vec<PathBuf>,
    fds: Option<BTreeMap<i32, String>>,
    grace: Duration,
}

impl LeakCheck {
    /// Snapshots the fds now and watches `dir` (e.g. [`crate::Daemon::dir`]).
    pub fn new(dir: impl AsRef<Path>) -> LeakCheck {
        LeakCheck {
            dirs: vec![dir.as_ref().to_path_buf()],
            fds: Some(open_fds()),
            grace: Duration::from_secs(3),
        }
    }

    /// Watches another dir too (e.g. a [`crate::Registry::dir`]).
    pub fn watch(mut self, dir: impl AsRef<Path>) -> Self {
        self.dirs.push(dir.as_ref().to_path_buf());
        self
    }

    /// Leaves out the fd count, for tests that share their process with
    /// others running in parallel.
    pub fn without_fds(mut self) -> Self {
        self.fds = None;
        self
    }

    /// How long to wait for things to go away before calling them leaks.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Describes each leak; empty when clean. Waits up to the grace period
    /// for exiting processes and closing fds.
    pub fn leaks(&self) -> Vec<String> {
        let deadline = Instant::now() + self.grace;
        loop {
            let leaks = self.leaks_now();
            if leaks.is_empty() || Instant::now() >= deadline {
                return leaks;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn leaks_now(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        for dir in &self.dirs {
            for (pid, cmdline) in process::processes_under(dir) {
                leaks.push(format!("process {pid} still runs: {cmdline}"));
            }
            for mount in process::mounts_under(dir) {
                leaks.push(format!("mount still present: {mount}"));
            }
        }
        let Some(start) = &self.fds else {
            return leaks;
        };
        let now = open_fds();
        if now.len() > start.len() {
            let new: Vec<String> = now
                .iter()
                .filter(|(fd, target)| start.get(fd) != Some(target))
                .map(|(fd, target)| format!("{fd} -> {target}"))
                .collect();
            leaks.push(format!(
                "{} fds open, {} at start; new: {}",
                now.len(),
                start.len(),
                new.join(", ")
            ));
        }
        leaks
    }

    /// Panics listing every leak.
    #[track_caller]
    pub fn assert_clean(&self) {
        let leaks = self.leaks();
        if !leaks.is_empty() {
            panic!("Leaks under {:?}:\n  {}", self.dirs, leaks.join("\n  "));
        }
    }
}

/// Open fds of this process and what they point at.
fn open_fds() -> BTreeMap<i32, String> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        // The read_dir handle itself shows up as a fd while we list.
        .filter(|(_, target)| !target.starts_with("/proc/") || !target.ends_with("/fd"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn sees_a_process_naming_the_dir_until_it_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let check = LeakCheck::new(dir.path())
            .without_fds()
            .grace(Duration::from_millis(100));
        let marker = dir.path().join("marker");
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg("read line")
            .arg(&marker)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        // The sh process carries the marker path in its argv once it has
        // exec'd; leaks() only waits for things to go away, so poll here.
        let seen = |leaks: &[String]| {
            leaks
                .iter()
                .any(|l| l.contains(&format!("process {}", child.id())))
        };
        let mut leaks = check.leaks_now();
        for _ in 0..100 {
            if seen(&leaks) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            leaks = check.leaks_now();
        }
        assert!(seen(&leaks), "{leaks:?}");
        process::kill9(&mut child);
        let leaks = check.leaks();
        assert!(!leaks.iter().any(|l| l.starts_with("process")), "{leaks:?}");
    }

    #[test]
    fn counts_new_fds() {
        let dir = tempfile::tempdir().unwrap();
        let check = LeakCheck::new(dir.path()).grace(Duration::ZERO);
        let file = std::fs::File::create(dir.path().join("held-open")).unwrap();
        let leaks = check.leaks();
        assert!(leaks.iter().any(|l| l.contains("held-open")), "{leaks:?}");
        drop(file);
    }
}
