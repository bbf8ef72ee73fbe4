//! Client connections on the control socket and the requests they carry.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use chrono::Utc;
use serde_json::{json, Value};

use super::{Shim, Status};
use crate::cgroups;
use crate::error::{RuntimeError, WireError};
use crate::protocol::{Request, Response, Started, MAX_REQUEST, STDERR_STREAM, STDOUT_STREAM};
use crate::spec::ShimState;

/// What a connection is for, once its request line is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Reading the request line.
    Request,
    /// Answered; closes once the answer is sent.
    Done,
    /// Waits for the container's exit.
    Waiter,
    /// Receives the main process's output; may feed its stdin.
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// The stream of an exec'd process.
    Exec(u64),
}

pub struct Conn {
    pub stream: UnixStream,
    pub role: Role,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    read_closed: bool,
    close_after_flush: bool,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            role: Role::Request,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            read_closed: false,
            close_after_flush: false,
        }
    }

    pub fn pending(&self) -> usize {
        self.outbuf.len()
    }

    pub fn is_attach_output(&self) -> bool {
        matches!(self.role, Role::Attach { stdout, stderr, .. } if stdout || stderr)
    }

    pub fn wants_stream(&self, stream: u8) -> bool {
        match self.role {
            Role::Attach { stdout, stderr, .. } => {
                (stream == STDOUT_STREAM && stdout) || (stream == STDERR_STREAM && stderr)
            }
            _ => false,
        }
    }
}

impl Shim {
    pub(super) fn conn_wants_read(&self, c: &Conn) -> bool {
        if c.read_closed {
            return false;
        }
        match c.role {
            Role::Attach { stdin: true, .. } if self.spec.process.open_stdin => {
                self.io.accepts_stdin()
            }
            Role::Exec(n) => self
                .execs
                .get(&n)
                .is_none_or(|e| !e.open_stdin || e.io.accepts_stdin()),
            _ => true,
        }
    }

    /// Queues bytes for a client and tries to send them at once.
    pub(super) fn send(&mut self, id: u64, data: &[u8]) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.outbuf.extend_from_slice(data);
        }
        self.flush_conn(id);
    }

    pub(super) fn flush_conn(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        while !c.outbuf.is_empty() {
            match c.stream.write(&c.outbuf) {
                Ok(0) => break,
                Ok(n) => {
                    c.outbuf.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.drop_conn(id);
                    return;
                }
            }
        }
        if c.close_after_flush {
            self.drop_conn(id);
        }
    }

    pub(super) fn close_after_flush(&mut self, id: u64) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.close_after_flush = true;
        }
        self.flush_conn(id);
    }

    fn drop_conn(&mut self, id: u64) {
        if let Some(c) = self.conns.remove(&id) {
            if let Role::Exec(n) = c.role {
                if let Some(ex) = self.execs.get_mut(&n) {
                    // Nobody can write to the exec any more.
                    ex.conn = None;
                    ex.io.close_stdin();
                }
            }
        }
    }

    /// The client's side is readable, hung up or in error.
    pub(super) fn conn_readable(&mut self, id: u64, revents: nix::poll::PollFlags) {
        use nix::poll::PollFlags;
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        if revents.contains(PollFlags::POLLERR)
            || (c.read_closed && revents.contains(PollFlags::POLLHUP))
        {
            // Gone both ways: nobody to send to any more.
            self.drop_conn(id);
        } else if !c.read_closed {
            self.read_conn(id);
        }
    }

    fn read_conn(&mut self, id: u64) {
        let mut buf = vec![0u8; 64 * 1024];
        let res = match self.conns.get_mut(&id) {
            Some(c) => c.stream.read(&mut buf),
            None => return,
        };
        match res {
            Ok(0) => self.conn_eof(id),
            Ok(n) => self.conn_data(id, &buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => self.drop_conn(id),
        }
    }

    fn conn_eof(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.read_closed = true;
        match c.role.clone() {
            Role::Request | Role::Waiter => self.drop_conn(id),
            Role::Attach { stdin: true, .. } => self.io.close_stdin(),
            Role::Exec(n) => {
                if let Some(ex) = self.execs.get_mut(&n) {
                    ex.io.close_stdin();
                }
            }
            Role::Done | Role::Attach { .. } => {}
        }
    }

    fn conn_data(&mut self, id: u64, data: &[u8]) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        match c.role.clone() {
            Role::Request => {
                c.inbuf.extend_from_slice(data);
                let Some(pos) = c.inbuf.iter().position(|b| *b == b'\n') else {
                    if c.inbuf.len() > MAX_REQUEST {
                        self.respond(
                            id,
                            Err(RuntimeError::Protocol("request line too long".into())),
                        );
                    }
                    return;
                };
                let rest = c.inbuf.split_off(pos + 1);
                let line = std::mem::take(&mut c.inbuf);
                match serde_json::from_slice::<Request>(&line[..pos]) {
                    Ok(req) => self.handle(id, req),
                    Err(e) => self.respond(id, Err(RuntimeError::Protocol(e.to_string()))),
                }
                // Bytes sent right after an attach or exec request are stdin.
                if !rest.is_empty() {
                    if let Some(Role::Attach { .. } | Role::Exec(_)) =
                        self.conns.get(&id).map(|c| c.role.clone())
                    {
                        self.conn_data(id, &rest);
                    }
                }
            }
            Role::Attach { stdin: true, .. } => {
                if self.spec.process.open_stdin {
                    self.io.queue_stdin(data);
                    self.io.flush_stdin();
                }
            }
            Role::Exec(n) => {
                if let Some(ex) = self.execs.get_mut(&n) {
                    ex.io.queue_stdin(data);
                    ex.io.flush_stdin();
                }
            }
            Role::Done | Role::Waiter | Role::Attach { .. } => {}
        }
    }

    /// Answers a request: one JSON line; errors close the connection.
    pub(super) fn respond(&mut self, id: u64, result: Result<Value, RuntimeError>) {
        let (resp, failed) = match result {
            Ok(v) => (Response::Ok(v), false),
            Err(e) => (Response::Error(WireError::from(&e)), true),
        };
        let mut line = serde_json::to_vec(&resp).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        if let Some(c) = self.conns.get_mut(&id) {
            if failed || matches!(c.role, Role::Request | Role::Waiter) {
                c.role = Role::Done;
                c.close_after_flush = true;
            }
        }
        self.send(id, &line);
    }

    fn handle(&mut self, id: u64, req: Request) {
        tracing::debug!(?req, "request");
        let result = match req {
            Request::State => Ok(self.shim_state()),
            Request::Start => self.start(),
            Request::Kill { signal } => self.kill(signal),
            Request::Wait => {
                if let Status::Exited(e) = &self.status {
                    Ok(serde_json::to_value(e).unwrap_or_default())
                } else {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.role = Role::Waiter;
                    }
                    return;
                }
            }
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.role = Role::Attach {
                        stdin,
                        stdout,
                        stderr,
                    };
                }
                self.respond(id, Ok(Value::Null));
                if matches!(self.status, Status::Exited(_)) {
                    self.close_after_flush(id);
                }
                return;
            }
            Request::Resize { width, height } => {
                self.io.resize(width, height).map(|()| Value::Null)
            }
            Request::Pause => self.pause(),
            Request::Resume => self.resume(),
            Request::Exec { process } => match self.exec(process) {
                Ok((n, started)) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.role = Role::Exec(n);
                    }
                    if let Some(ex) = self.execs.get_mut(&n) {
                        ex.conn = Some(id);
                    }
                    Ok(started)
                }
                Err(e) => Err(e),
            },
            Request::ExecStatus { id: exec_id } => self.exec_status(&exec_id),
            Request::ExecResize {
                id: exec_id,
                width,
                height,
            } => self.exec_resize(&exec_id, width, height),
            Request::Stats => Ok(cgroups::stats(&self.spec.cgroup_path())),
        };
        self.respond(id, result);
    }

    fn not_running(&self) -> RuntimeError {
        RuntimeError::Conflict(format!("Container {} is not running", self.spec.id))
    }

    fn shim_state(&self) -> Value {
        let s = match &self.status {
            Status::Created => ShimState::Created,
            Status::Running { started_at } => ShimState::Running {
                pid: self.init_pid,
                started_at: *started_at,
            },
            Status::Paused { .. } => ShimState::Paused,
            Status::Exited(e) => e.clone().into(),
        };
        serde_json::to_value(s).unwrap_or_default()
    }

    fn start(&mut self) -> Result<Value, RuntimeError> {
        if !matches!(self.status, Status::Created) || self.exiting.is_some() || self.init.is_none()
        {
            return Err(RuntimeError::Conflict(format!(
                "Container {} is not in the created state",
                self.spec.id
            )));
        }
        self.backend.start()?;
        self.status = Status::Running {
            started_at: Utc::now(),
        };
        tracing::info!(container_id = %self.spec.id, "container started");
        Ok(json!(Started { pid: self.init_pid }))
    }

    fn kill(&mut self, signal: i32) -> Result<Value, RuntimeError> {
        let Some(init) = self.init.as_ref().filter(|_| self.exiting.is_none()) else {
            return Err(self.not_running());
        };
        init.signal(signal)?;
        if signal == libc::SIGKILL {
            if let Status::Paused { started_at } = self.status {
                // A frozen process only dies once thawed.
                self.backend.resume()?;
                self.status = Status::Running { started_at };
            }
        }
        Ok(Value::Null)
    }

    fn pause(&mut self) -> Result<Value, RuntimeError> {
        match self.status {
            Status::Running { started_at } if self.exiting.is_none() => {
                self.backend.pause()?;
                self.status = Status::Paused { started_at };
                Ok(Value::Null)
            }
            Status::Paused { .. } => Err(RuntimeError::Conflict(format!(
                "Container {} is already paused",
                self.spec.id
            ))),
            _ => Err(self.not_running()),
        }
    }

    fn resume(&mut self) -> Result<Value, RuntimeError> {
        match self.status {
            Status::Paused { started_at } => {
                self.backend.resume()?;
                self.status = Status::Running { started_at };
                Ok(Value::Null)
            }
            _ => Err(RuntimeError::Conflict(format!(
                "Container {} is not paused",
                self.spec.id
            ))),
        }
    }
}
