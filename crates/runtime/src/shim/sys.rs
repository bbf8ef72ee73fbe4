//! The few system calls the shim needs that std does not offer: pidfds,
//! reaping by pid, pty sizes, receiving a pty master, bringing `lo` up.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::RuntimeError;

/// Closes every descriptor from 3 up. Whatever the spawner held without
/// close-on-exec (a daemon started from a shell or a test harness inherits
/// such descriptors) would otherwise stay open in the shim for the
/// container's whole life. Call it first thing, before opening anything.
pub fn close_inherited_fds() {
    // SAFETY: close_range takes integers and only closes descriptors; none
    // from 3 up is owned by anything in this process yet.
    if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } == 0 {
        return;
    }
    // Kernels before 5.9: one by one, as /proc lists them.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; the directory listing's own descriptor is
        // already closed, so closing its number again is a harmless EBADF.
        unsafe { libc::close(fd) };
    }
}

/// A child process of the shim, watched through a pidfd (readable once it exits).
#[derive(Debug)]
pub struct Child {
    pub pid: Pid,
    pub pidfd: OwnedFd,
}

impl Child {
    /// Watches `pid`, which must be a child of this process (or reparented to it).
    pub fn watch(pid: i32) -> Result<Child, RuntimeError> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
        // it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(RuntimeError::sys(
                format!("open a pidfd for process {pid}"),
                nix::Error::last(),
            ));
        }
        Ok(Child {
            pid: Pid::from_raw(pid),
            // SAFETY: the syscall returned a new descriptor that nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
        })
    }

    /// Sends a signal through the pidfd (never to a recycled pid).
    pub fn signal(&self, signal: i32) -> Result<(), RuntimeError> {
        // SAFETY: pidfd_send_signal with a null siginfo only reads its integer
        // arguments; the pidfd is open for the lifetime of `self`.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            let e = nix::Error::last();
            if e == nix::Error::ESRCH {
                // Exited, not yet reaped: nothing to signal.
                return Ok(());
            }
            return Err(RuntimeError::sys(
                format!("send signal {signal} to process {}", self.pid),
                e,
            ));
        }
        Ok(())
    }

    /// Reaps the child if it has exited: its exit code, or 128 + signal.
    pub fn try_reap(&self) -> Option<i32> {
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
            // Not our child after all (or already reaped): report it gone.
            Err(nix::Error::ECHILD) => Some(255),
            _ => None,
        }
    }
}

/// Makes `fd` non-blocking.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<(), RuntimeError> {
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)
        .map_err(|e| RuntimeError::sys("read fd flags", e))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags))
        .map_err(|e| RuntimeError::sys("set O_NONBLOCK", e))?;
    Ok(())
}

/// A pipe whose ends are both close-on-exec: (read, write).
pub fn pipe() -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| RuntimeError::sys("create a pipe", e))
}

/// Sets a terminal's size.
pub fn set_winsize(fd: BorrowedFd<'_>, width: u16, height: u16) -> Result<(), RuntimeError> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `winsize` from the pointer, which points to a
    // live, initialised struct for the duration of the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(RuntimeError::sys("resize the terminal", nix::Error::last()));
    }
    Ok(())
}

/// A listening socket on which the OCI runtime sends a pty master.
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Binds `dir/name`, or a short path under /tmp when that is too long for sun_path.
    pub fn bind(dir: &Path, name: &str) -> Result<ConsoleSocket, RuntimeError> {
        let mut path = dir.join(name);
        if path.as_os_str().len() >= 100 {
            path = std::env::temp_dir().join(format!("servin-{}-{name}", std::process::id()));
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| RuntimeError::io(format!("listen on {}", path.display()), e))?;
        Ok(ConsoleSocket { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the runtime's connection and takes the pty master it sends.
    pub fn receive(&self, timeout: Duration) -> Result<OwnedFd, RuntimeError> {
        let deadline = Instant::now() + timeout;
        set_nonblocking(self.listener.as_fd())?;
        let conn = loop {
            match self.listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    wait_readable(self.listener.as_fd(), deadline)
                        .map_err(|e| RuntimeError::io("wait for the runtime's console", e))?;
                }
                Err(e) => return Err(RuntimeError::io("accept the runtime's console", e)),
            }
        };
        conn.set_nonblocking(false)
            .map_err(|e| RuntimeError::io("configure the console socket", e))?;
        let mut name = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| RuntimeError::sys("receive the pty master", e))?;
        for c in msg
            .cmsgs()
            .map_err(|e| RuntimeError::sys("read the pty master message", e))?
        {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(fd) = fds.first() {
                    // SAFETY: SCM_RIGHTS installed this descriptor in our table just now; we own it.
                    return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
                }
            }
        }
        Err(RuntimeError::Oci {
            op: "create",
            message: "the runtime sent no pty master on the console socket".into(),
        })
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn wait_readable(fd: BorrowedFd<'_>, deadline: Instant) -> std::io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(n) if n > 0 => return Ok(()),
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Brings `lo` up in the network namespace of `pid`. Switches this process's
/// network namespace and back: call only from a single-threaded process.
pub fn bring_up_loopback(pid: i32) -> Result<(), RuntimeError> {
    use nix::sched::{setns, CloneFlags};
    let own = std::fs::File::open("/proc/self/ns/net")
        .map_err(|e| RuntimeError::io("open this process's network namespace", e))?;
    let theirs = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| RuntimeError::io("open the container's network namespace", e))?;
    setns(theirs.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| RuntimeError::sys("enter the container's network namespace", e))?;
    let res = set_lo_up();
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| RuntimeError::sys("return to the shim's network namespace", e))?;
    res
}

fn set_lo_up() -> Result<(), RuntimeError> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| RuntimeError::sys("open a socket in the container", e))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into `req`,
    // a live, correctly sized ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(RuntimeError::sys(
            "read the flags of lo",
            nix::Error::last(),
        ));
    }
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the initialised one.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(RuntimeError::sys("bring lo up", nix::Error::last()));
    }
    Ok(())
}

/// Marks this process as the reaper of its orphaned descendants, so that
/// container processes started by an external runtime become its children.
pub fn become_subreaper() -> Result<(), RuntimeError> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| RuntimeError::sys("become a subreaper", e))
}

/// Restores default dispositions an exec would otherwise pass on (an
/// ignored SIGCHLD would reap our children behind our back).
pub fn reset_sigchld() -> Result<(), RuntimeError> {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: installing SIG_DFL runs no handler code.
    unsafe { signal(Signal::SIGCHLD, SigHandler::SigDfl) }
        .map_err(|e| RuntimeError::sys("reset SIGCHLD", e))?;
    Ok(())
}
