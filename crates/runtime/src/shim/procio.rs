//! The shim's side of one process's stdio: pipes, or a pty master.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::backend::Stdio;
use super::sys::{pipe, set_nonblocking, set_winsize};
use crate::error::RuntimeError;
use crate::protocol::{STDERR_STREAM, STDOUT_STREAM};

/// At most this much stdin is buffered before the shim stops reading it from clients.
pub const STDIN_HIGH_WATER: usize = 64 * 1024;

/// What a read from an output gave.
pub enum Output {
    Data(Vec<u8>),
    Eof,
    Nothing,
}

pub struct ProcIo {
    pub tty: bool,
    /// pty master: output and input.
    master: Option<OwnedFd>,
    /// Write end of the stdin pipe (None when stdin is not open).
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    stdin_buf: Vec<u8>,
    /// Close stdin once `stdin_buf` is written.
    stdin_closing: bool,
}

impl ProcIo {
    /// Pipes for a process without a tty; stdin reads EOF at once unless `open_stdin`.
    pub fn pipes(open_stdin: bool) -> Result<(ProcIo, Stdio), RuntimeError> {
        let (in_r, in_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        for fd in [&in_w, &out_r, &err_r] {
            set_nonblocking(fd.as_fd())?;
        }
        let io = ProcIo {
            tty: false,
            master: None,
            stdin: open_stdin.then_some(in_w),
            stdout: Some(out_r),
            stderr: Some(err_r),
            stdin_buf: Vec::new(),
            stdin_closing: false,
        };
        Ok((
            io,
            Stdio::Pipes {
                stdin: in_r,
                stdout: out_w,
                stderr: err_w,
            },
        ))
    }

    /// A pty whose master the runtime handed over.
    pub fn tty(master: OwnedFd) -> Result<ProcIo, RuntimeError> {
        set_nonblocking(master.as_fd())?;
        Ok(ProcIo {
            tty: true,
            master: Some(master),
            stdin: None,
            stdout: None,
            stderr: None,
            stdin_buf: Vec::new(),
            stdin_closing: false,
        })
    }

    /// Output descriptors still open, with their stream id.
    pub fn outputs(&self) -> Vec<(u8, BorrowedFd<'_>)> {
        let mut v = Vec::new();
        if let Some(m) = &self.master {
            v.push((STDOUT_STREAM, m.as_fd()));
        }
        if let Some(o) = &self.stdout {
            v.push((STDOUT_STREAM, o.as_fd()));
        }
        if let Some(e) = &self.stderr {
            v.push((STDERR_STREAM, e.as_fd()));
        }
        v
    }

    pub fn outputs_open(&self) -> bool {
        self.master.is_some() || self.stdout.is_some() || self.stderr.is_some()
    }

    /// The pipe to poll for writability while stdin is pending (not for a tty:
    /// the master is polled as an output and written on `POLLOUT` there).
    pub fn stdin_pending(&self) -> Option<BorrowedFd<'_>> {
        if self.stdin_buf.is_empty() {
            return None;
        }
        self.stdin.as_ref().map(|f| f.as_fd())
    }

    pub fn tty_wants_write(&self) -> bool {
        self.master.is_some() && !self.stdin_buf.is_empty()
    }

    pub fn accepts_stdin(&self) -> bool {
        (self.stdin.is_some() || self.master.is_some())
            && !self.stdin_closing
            && self.stdin_buf.len() < STDIN_HIGH_WATER
    }

    /// Reads what is available on the output of `stream`.
    pub fn read(&mut self, stream: u8) -> Output {
        let slot = if self.master.is_some() {
            &mut self.master
        } else if stream == STDERR_STREAM {
            &mut self.stderr
        } else {
            &mut self.stdout
        };
        let Some(fd) = slot.as_ref() else {
            return Output::Eof;
        };
        let mut buf = vec![0u8; 64 * 1024];
        match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(fd), &mut buf) {
            Ok(0) => {
                *slot = None;
                Output::Eof
            }
            Ok(n) => {
                buf.truncate(n);
                Output::Data(buf)
            }
            Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => Output::Nothing,
            // EIO: the pty's last slave is closed.
            Err(_) => {
                *slot = None;
                Output::Eof
            }
        }
    }

    pub fn queue_stdin(&mut self, data: &[u8]) {
        if self.stdin.is_some() || self.master.is_some() {
            self.stdin_buf.extend_from_slice(data);
        }
    }

    /// Writes pending stdin; closes the pipe when asked to and drained.
    pub fn flush_stdin(&mut self) {
        let fd = match (&self.master, &self.stdin) {
            (Some(m), _) => m,
            (None, Some(s)) => s,
            (None, None) => {
                self.stdin_buf.clear();
                return;
            }
        };
        while !self.stdin_buf.is_empty() {
            match nix::unistd::write(fd, &self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(nix::Error::EAGAIN) => return,
                Err(nix::Error::EINTR) => {}
                Err(_) => {
                    // The process closed its stdin: nothing more can go there.
                    self.stdin_buf.clear();
                    if self.master.is_none() {
                        self.stdin = None;
                    }
                    return;
                }
            }
        }
        if self.stdin_closing && self.master.is_none() {
            self.stdin = None;
        }
    }

    /// Closes the process's stdin once pending bytes are written. A pty has
    /// no separate stdin to close: it stays open.
    pub fn close_stdin(&mut self) {
        if self.master.is_some() {
            return;
        }
        self.stdin_closing = true;
        if self.stdin_buf.is_empty() {
            self.stdin = None;
        }
    }

    pub fn close_all(&mut self) {
        self.master = None;
        self.stdin = None;
        self.stdout = None;
        self.stderr = None;
        self.stdin_buf.clear();
    }

    pub fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        match &self.master {
            Some(m) => set_winsize(m.as_fd(), width, height),
            None => Err(RuntimeError::Conflict(
                "The process has no terminal to resize".into(),
            )),
        }
    }
}
