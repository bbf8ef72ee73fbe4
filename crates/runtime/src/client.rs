//! The engine's side: starting a shim and talking to it.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::RuntimeError;
use crate::fsutil::tail;
use crate::protocol::{ExecStarted, Request, Response, Started};
use crate::spec::{
    ContainerSpec, ExecId, ExecStatus, ExitStatus, ProcessSpec, ShimState, EXIT_FILE,
    SHIM_LOG_FILE, SOCKET_FILE, SPEC_FILE,
};

/// The fd number on which the shim reports that the container is created (its stdin).
pub(crate) const READY_FD: i32 = 0;
/// Environment variable telling the shim that `READY_FD` is open.
pub(crate) const READY_ENV: &str = "SERVIN_SHIM_READY_FD";

/// How long a one-round-trip request may take before the client gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long creating a container may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

/// Talks to the shim of one container; connects per request.
#[derive(Debug, Clone)]
pub struct ShimClient {
    state_dir: PathBuf,
}

/// Writes `spec.json` and starts `shim_bin run STATE_DIR` detached from the
/// caller (own session, reparented away from it), then waits until the
/// container is created: its process waits for [`ShimClient::start`].
///
/// Blocks for the time of a create (tens of milliseconds; longer for big
/// images on slow disks): call it off async worker threads.
pub fn spawn_shim(spec: &ContainerSpec, shim_bin: &Path) -> Result<ShimClient, RuntimeError> {
    spec.validate()?;
    let dir = &spec.state_dir;
    // A shim that still answers owns this container: never start a second one.
    if let Ok(state) = (ShimClient {
        state_dir: dir.clone(),
    })
    .call::<ShimState>(&Request::State)
    {
        if !matches!(state, ShimState::Exited { .. }) {
            return Err(RuntimeError::Conflict(format!(
                "Container {} already has a running shim",
                spec.id
            )));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| RuntimeError::io(format!("create {}", dir.display()), e))?;
    clear_stale_builtin_state(&dir.join(BUILTIN_STATE_DIR), &spec.id);
    for stale in [EXIT_FILE, SOCKET_FILE] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let json = serde_json::to_vec_pretty(spec).map_err(|e| {
        RuntimeError::InvalidSpec(format!("Cannot serialise the container spec: {e}"))
    })?;
    // Rewritten at every start, and read only by the shim started next:
    // atomic (temp + rename) but not fsynced, which under concurrent
    // starts costs more than the rest of the write.
    replace_file(&dir.join(SPEC_FILE), &json)
        .map_err(|e| RuntimeError::io(format!("write {}", dir.join(SPEC_FILE).display()), e))?;

    let log_path = dir.join(SHIM_LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| RuntimeError::io(format!("open {}", log_path.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| RuntimeError::io("duplicate the shim log descriptor", e))?;
    let (ready_r, ready_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| RuntimeError::sys("create a pipe", e))?;

    // The readiness pipe travels as the shim's stdin, which the shim swaps for
    // /dev/null at once: no pre_exec hook, so std can use posix_spawn (no
    // fork of a large, multi-threaded daemon). The shim makes its own session.
    let mut cmd = Command::new(shim_bin);
    cmd.arg("run")
        .arg(dir)
        .env(READY_ENV, READY_FD.to_string())
        .stdin(Stdio::from(ready_w))
        .stdout(log)
        .stderr(log2);
    let mut child = cmd
        .spawn()
        .map_err(|e| RuntimeError::io(format!("run {}", shim_bin.display()), e))?;
    // Our copy of the pipe's write end went with `cmd`: EOF means the shim is gone.
    drop(cmd);
    // The shim forks at once and its first process exits: reap that one so
    // the caller never holds a zombie; the shim itself is not our child.
    let status = child
        .wait()
        .map_err(|e| RuntimeError::io("wait for the shim to detach", e))?;
    if !status.success() {
        return Err(RuntimeError::Shim(format!(
            "The shim failed to start ({status}): {}",
            tail(&log_path, 2000)
        )));
    }

    let line = read_ready_line(&ready_r, CREATE_TIMEOUT).map_err(|e| {
        RuntimeError::io(format!("read the shim's report for {}", dir.display()), e)
    })?;
    if line.is_empty() {
        return Err(RuntimeError::Shim(format!(
            "The shim exited before creating the container: {}",
            tail(&log_path, 2000)
        )));
    }
    match serde_json::from_slice::<Response>(&line) {
        Ok(Response::Ok(_)) => {}
        Ok(Response::Error(e)) => return Err(e.into()),
        Err(e) => return Err(RuntimeError::Protocol(e.to_string())),
    }
    let client = ShimClient {
        state_dir: dir.clone(),
    };
    client.state()?;
    Ok(client)
}

/// Replaces `path` with `data` through a temp file and a rename, unsynced.
fn replace_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// Reads up to a newline or EOF from the readiness pipe, with a deadline.
fn read_ready_line(fd: &OwnedFd, timeout: Duration) -> std::io::Result<Vec<u8>> {
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let mut buf = [0u8; 4096];
        let n = match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(n) => n,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(pos) = out.iter().position(|b| *b == b'\n') {
            out.truncate(pos);
            return Ok(out);
        }
    }
}

/// The exit record the shim wrote, if the container has exited.
/// Where the built-in runtime (libcontainer) keeps its state, under a
/// container's state directory.
pub(crate) const BUILTIN_STATE_DIR: &str = "libcontainer";

/// Removes the built-in runtime's state of container `id` when no process
/// of it can still be running: it was created before this boot (the
/// machine, or the VM, went down with it) or its init process is gone.
/// Without this a container whose shim died with the machine could never
/// be created again ("container already exists"), so restart policies
/// would not bring it back.
fn clear_stale_builtin_state(root: &Path, id: &str) {
    let dir = root.join(id);
    let Ok(data) = std::fs::read(dir.join("state.json")) else {
        return;
    };
    let state: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
    let created = state["created"]
        .as_str()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|c| c.timestamp());
    let before_boot = matches!((created, boot_time()), (Some(c), Some(b)) if c < b);
    let pid_gone = match state["pid"].as_i64() {
        Some(pid) if pid > 0 => !Path::new(&format!("/proc/{pid}")).exists(),
        _ => true,
    };
    if before_boot || pid_gone {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// This boot's start, seconds since the epoch (`btime` in /proc/stat).
fn boot_time() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

pub fn read_exit_status(state_dir: &Path) -> Option<ExitStatus> {
    let data = std::fs::read(state_dir.join(EXIT_FILE)).ok()?;
    serde_json::from_slice(&data).ok()
}

impl ShimClient {
    /// Re-adopts the shim of a container (after a daemon restart). Succeeds
    /// for a container that exited meanwhile too: its state is then `Exited`.
    pub fn connect(state_dir: &Path) -> Result<ShimClient, RuntimeError> {
        let client = ShimClient {
            state_dir: state_dir.to_path_buf(),
        };
        client.state()?;
        Ok(client)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Lets the container's process run; returns its pid (on the host).
    pub fn start(&self) -> Result<u32, RuntimeError> {
        let s: Started = self.call(&Request::Start)?;
        Ok(s.pid)
    }

    /// The container's state; `Exited` from `exit.json` once the shim is gone.
    pub fn state(&self) -> Result<ShimState, RuntimeError> {
        match self.call(&Request::State) {
            Err(RuntimeError::ShimUnavailable { path, source }) => read_exit_status(&path)
                .map(ShimState::from)
                .ok_or(RuntimeError::ShimUnavailable { path, source }),
            other => other,
        }
    }

    /// Sends `signal` to the container's main process.
    pub fn kill(&self, signal: i32) -> Result<(), RuntimeError> {
        self.call::<Value>(&Request::Kill { signal }).map(drop)
    }

    /// Blocks until the container has exited (and the shim has cleaned up);
    /// reads `exit.json` when the shim is already gone.
    pub fn wait(&self) -> Result<ExitStatus, RuntimeError> {
        match self.round_trip(&Request::Wait, None) {
            Ok((_, value)) => decode(value),
            Err(RuntimeError::ShimUnavailable { path, source }) => {
                read_exit_status(&path).ok_or(RuntimeError::ShimUnavailable { path, source })
            }
            Err(e) => Err(e),
        }
    }

    /// Attaches to the container's stdio; see the protocol module for the stream.
    pub fn attach(
        &self,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<UnixStream, RuntimeError> {
        let (stream, _) = self.round_trip(
            &Request::Attach {
                stdin,
                stdout,
                stderr,
            },
            Some(REQUEST_TIMEOUT),
        )?;
        clear_timeouts(&stream)?;
        Ok(stream)
    }

    /// Resizes the container's terminal.
    pub fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        self.call::<Value>(&Request::Resize { width, height })
            .map(drop)
    }

    pub fn pause(&self) -> Result<(), RuntimeError> {
        self.call::<Value>(&Request::Pause).map(drop)
    }

    pub fn resume(&self) -> Result<(), RuntimeError> {
        self.call::<Value>(&Request::Resume).map(drop)
    }

    /// Runs another process in the running container; the stream works as
    /// [`ShimClient::attach`]'s does (stdout and stderr are always sent).
    pub fn exec(&self, p: &ProcessSpec) -> Result<(UnixStream, ExecId), RuntimeError> {
        let (stream, value) =
            self.round_trip(&Request::Exec { process: p.clone() }, Some(REQUEST_TIMEOUT))?;
        clear_timeouts(&stream)?;
        let started: ExecStarted = decode(value)?;
        Ok((stream, started.id))
    }

    pub fn exec_status(&self, id: &ExecId) -> Result<ExecStatus, RuntimeError> {
        self.call(&Request::ExecStatus { id: id.clone() })
    }

    pub fn exec_resize(&self, id: &ExecId, width: u16, height: u16) -> Result<(), RuntimeError> {
        self.call::<Value>(&Request::ExecResize {
            id: id.clone(),
            width,
            height,
        })
        .map(drop)
    }

    /// cgroup usage in the shape of Docker's stats (`memory_stats`, `cpu_stats`, `pids_stats`).
    pub fn stats(&self) -> Result<Value, RuntimeError> {
        self.call(&Request::Stats)
    }

    fn call<T: DeserializeOwned>(&self, req: &Request) -> Result<T, RuntimeError> {
        let (_, value) = self.round_trip(req, Some(REQUEST_TIMEOUT))?;
        decode(value)
    }

    fn unavailable(&self, source: std::io::Error) -> RuntimeError {
        RuntimeError::ShimUnavailable {
            path: self.state_dir.clone(),
            source,
        }
    }

    fn open(&self) -> Result<UnixStream, RuntimeError> {
        let path = self.state_dir.join(SOCKET_FILE);
        let res = if path.as_os_str().len() < 100 {
            UnixStream::connect(&path)
        } else {
            // Long paths do not fit sun_path: go through a descriptor of the directory.
            std::fs::File::open(&self.state_dir).and_then(|dir| {
                UnixStream::connect(format!("/proc/self/fd/{}/{SOCKET_FILE}", dir.as_raw_fd()))
            })
        };
        res.map_err(|e| self.unavailable(e))
    }

    /// Sends one request and reads its response line, leaving the stream
    /// positioned at the first raw byte after it.
    fn round_trip(
        &self,
        req: &Request,
        timeout: Option<Duration>,
    ) -> Result<(UnixStream, Value), RuntimeError> {
        let mut stream = self.open()?;
        stream
            .set_read_timeout(timeout)
            .and_then(|()| stream.set_write_timeout(timeout))
            .map_err(|e| self.unavailable(e))?;
        let mut line =
            serde_json::to_vec(req).map_err(|e| RuntimeError::Protocol(e.to_string()))?;
        line.push(b'\n');
        stream.write_all(&line).map_err(|e| self.unavailable(e))?;
        let mut resp = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match stream.read(&mut byte) {
                Ok(0) => {
                    return Err(
                        self.unavailable(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
                    )
                }
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => resp.push(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.unavailable(e)),
            }
        }
        match serde_json::from_slice::<Response>(&resp) {
            Ok(Response::Ok(v)) => Ok((stream, v)),
            Ok(Response::Error(e)) => Err(e.into()),
            Err(e) => Err(RuntimeError::Protocol(e.to_string())),
        }
    }
}

fn clear_timeouts(stream: &UnixStream) -> Result<(), RuntimeError> {
    stream
        .set_read_timeout(None)
        .and_then(|()| stream.set_write_timeout(None))
        .map_err(|e| RuntimeError::io("configure the shim stream", e))
}

fn decode<T: DeserializeOwned>(v: Value) -> Result<T, RuntimeError> {
    serde_json::from_value(v).map_err(|e| RuntimeError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(root: &Path, id: &str, pid: i64, created: &str) {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let json = serde_json::json!({ "id": id, "pid": pid, "created": created });
        std::fs::write(dir.join("state.json"), json.to_string()).unwrap();
    }

    #[test]
    fn builtin_state_is_cleared_only_when_nothing_of_it_can_run() {
        let root = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now().to_rfc3339();
        let me = i64::from(std::process::id());
        // Alive and created in this boot: kept.
        state(root.path(), "alive", me, &now);
        clear_stale_builtin_state(root.path(), "alive");
        assert!(root.path().join("alive/state.json").exists());
        // Created before this boot: the pid is someone else's now.
        state(root.path(), "rebooted", me, "2000-01-01T00:00:00Z");
        clear_stale_builtin_state(root.path(), "rebooted");
        assert!(!root.path().join("rebooted").exists());
        // Its init process is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = i64::from(child.id());
        child.wait().unwrap();
        state(root.path(), "gone", gone, &now);
        clear_stale_builtin_state(root.path(), "gone");
        assert!(!root.path().join("gone").exists());
    }
}
