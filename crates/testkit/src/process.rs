//! Child-process and filesystem chores shared by the harnesses.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Sends `signal` to the child unless it has already been reaped.
pub(crate) fn signal(child: &Child, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers; the pid is our own unreaped
    // child, so it cannot have been recycled for another process.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL; always reaps the child.
/// Returns true when the child exited within the grace period.
pub(crate) fn terminate(child: &mut Child, grace: Duration) -> bool {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return true;
    }
    signal(child, libc::SIGTERM);
    if wait_timeout(child, grace) {
        return true;
    }
    kill9(child);
    false
}

/// SIGKILL and reap.
pub(crate) fn kill9(child: &mut Child) {
    // Child::kill sends SIGKILL (and is a no-op error once reaped).
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls until the child exits (reaping it) or `limit` passes.
pub(crate) fn wait_timeout(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    format!("--- last lines of {} ---\n{tail}", path.display())
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Racy by nature;
/// callers retry when the port turns out to be taken.
pub(crate) fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("Cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Mount points at or under `dir`, deepest first, from /proc/self/mountinfo.
pub(crate) fn mounts_under(dir: &Path) -> Vec<String> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let dir = dir.to_string_lossy();
    let dir = dir.trim_end_matches('/');
    let mut mounts: Vec<String> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| m == dir || m.starts_with(&format!("{dir}/")))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts.dedup();
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        if let (b'\\', Some(digits)) = (bytes[i], octal) {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(value as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily unmounts everything under `dir` (deepest first), so removing the
/// directory can never reach through a leftover bind mount into host files.
/// Returns what it had to unmount.
pub(crate) fn detach_mounts(dir: &Path) -> Vec<String> {
    let mounts = mounts_under(dir);
    for mount in &mounts {
        let Ok(c_path) = std::ffi::CString::new(mount.as_str()) else {
            continue;
        };
        // SAFETY: umount2 reads a valid NUL-terminated path; MNT_DETACH has
        // no other side effects on our process.
        unsafe {
            libc::umount2(c_path.as_ptr(), libc::MNT_DETACH);
        }
    }
    mounts
}

/// Pids (other than ours) whose command line, cwd, root or executable
/// mentions `dir`, with their command lines.
pub(crate) fn processes_under(dir: &Path) -> Vec<(i32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let proc_dir = entry.path();
        let cmdline = std::fs::read(proc_dir.join("cmdline"))
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .unwrap_or_default();
        if cmdline.is_empty() {
            // Kernel threads and zombies have no command line.
            continue;
        }
        let links = ["cwd", "root", "exe"].map(|l| std::fs::read_link(proc_dir.join(l)));
        let mentions = cmdline.contains(&needle)
            || links.iter().flatten().any(|target| target.starts_with(dir));
        if mentions {
            found.push((pid, cmdline.trim_end().to_string()));
        }
    }
    found
}

/// SIGKILLs the given pids (best effort; used only on cleanup).
pub(crate) fn kill_pids(pids: &[(i32, String)]) {
    for (pid, _) in pids {
        // SAFETY: kill(2) takes plain integers. The pid was read from /proc
        // an instant ago; this is a last-resort cleanup of our own leftovers.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }
}

/// Removes a directory tree after detaching leftover mounts and killing
/// leftover processes, telling stderr about each.
pub(crate) fn scrub(dir: &Path, what: &str) {
    let procs = processes_under(dir);
    if !procs.is_empty() {
        eprintln!("{what}: killing leftover processes {procs:?}");
        kill_pids(&procs);
        std::thread::sleep(Duration::from_millis(100));
    }
    let mounts = detach_mounts(dir);
    if !mounts.is_empty() {
        eprintln!("{what}: detached leftover mounts {mounts:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/end\"), "/end\\");
    }

    #[test]
    fn log_tail_keeps_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "a\nb\nc\n").unwrap();
        assert!(log_tail(&log, 2).ends_with("b\nc"));
    }
}
