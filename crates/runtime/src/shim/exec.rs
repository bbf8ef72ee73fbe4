//! Processes exec'd into the running container (`docker exec`).

use std::time::Instant;

use serde_json::{json, Value};

use super::backend::Stdio;
use super::procio::{Output, ProcIo};
use super::setup::{check_process, CONSOLE_TIMEOUT};
use super::sys::{Child, ConsoleSocket};
use super::{frame, Shim, Status, DRAIN_TIMEOUT};
use crate::bundle;
use crate::error::RuntimeError;
use crate::protocol::ExecStarted;
use crate::spec::{ExecId, ExecStatus, ProcessSpec};

pub struct Exec {
    pub id: ExecId,
    pub pid: u32,
    /// Until reaped.
    pub child: Option<Child>,
    pub io: ProcIo,
    pub open_stdin: bool,
    /// The client connection carrying its stream.
    pub conn: Option<u64>,
    pub exit_code: Option<i32>,
    /// Set once it exited: output is drained until then.
    pub drain_deadline: Option<Instant>,
}

/// `KEY=VALUE` lists merged: later keys replace earlier ones, as Docker merges
/// the container's environment with an exec's.
fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut out: Vec<String> = base.to_vec();
    for e in over {
        let k = key(e);
        match out.iter().position(|x| key(x) == k) {
            Some(i) => out[i] = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

impl Shim {
    /// Starts an exec; returns its number and the answer for the client.
    pub(super) fn exec(&mut self, mut p: ProcessSpec) -> Result<(u64, Value), RuntimeError> {
        match self.status {
            Status::Running { .. } if self.exiting.is_none() => {}
            Status::Paused { .. } => {
                return Err(RuntimeError::Conflict(format!(
                    "Container {} is paused, unpause the container before exec",
                    self.spec.id
                )))
            }
            _ => {
                return Err(RuntimeError::Conflict(format!(
                    "Container {} is not running",
                    self.spec.id
                )))
            }
        }
        // Docker's defaults for an exec come from the container.
        p.env = merge_env(&self.spec.process.env, &p.env);
        if p.cwd.is_empty() {
            p.cwd = self.spec.process.cwd.clone();
        }
        if p.user.is_empty() {
            p.user = self.spec.process.user.clone();
        }
        let user = check_process(&self.overlay.target, &self.mount_dests, &p)?;
        let process = bundle::process(&p, &user, &self.capabilities, self.spec.no_new_privileges)?;

        let n = self.next_exec;
        self.next_exec += 1;
        let json_path = self.spec.state_dir.join(format!("exec-{n}.json"));
        let data =
            serde_json::to_vec(&process).map_err(|e| RuntimeError::Protocol(e.to_string()))?;
        std::fs::write(&json_path, data)
            .map_err(|e| RuntimeError::io(format!("write {}", json_path.display()), e))?;

        let result = (|| {
            let (io, console, stdio) = if p.tty {
                let c = ConsoleSocket::bind(&self.spec.state_dir, &format!("exec-{n}.sock"))?;
                let stdio = Stdio::Console(c.path().to_path_buf());
                (None, Some(c), stdio)
            } else {
                let (io, stdio) = ProcIo::pipes(p.open_stdin)?;
                (Some(io), None, stdio)
            };
            let pid = self.backend.exec(&json_path, p.tty, stdio)?;
            let child = Child::watch(pid)?;
            let io = match (io, console) {
                (Some(io), _) => io,
                (None, Some(c)) => ProcIo::tty(c.receive(CONSOLE_TIMEOUT)?)?,
                (None, None) => unreachable!("a tty has a console socket"),
            };
            Ok::<_, RuntimeError>((pid, child, io))
        })();
        let _ = std::fs::remove_file(&json_path);
        let (pid, child, io) = result?;

        let id = ExecId(format!("exec-{n}"));
        tracing::debug!(container_id = %self.spec.id, exec_id = %id, pid, "exec started");
        self.execs.insert(
            n,
            Exec {
                id: id.clone(),
                pid: pid as u32,
                child: Some(child),
                io,
                open_stdin: p.open_stdin,
                conn: None,
                exit_code: None,
                drain_deadline: None,
            },
        );
        Ok((
            n,
            json!(ExecStarted {
                id,
                pid: pid as u32
            }),
        ))
    }

    pub(super) fn reap_exec(&mut self, n: u64) {
        let Some(ex) = self.execs.get_mut(&n) else {
            return;
        };
        let Some(code) = ex.child.as_ref().and_then(|c| c.try_reap()) else {
            return;
        };
        ex.child = None;
        ex.exit_code = Some(code);
        ex.drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
    }

    pub(super) fn read_exec(&mut self, n: u64, stream: u8) {
        let Some(ex) = self.execs.get_mut(&n) else {
            return;
        };
        if let Output::Data(data) = ex.io.read(stream) {
            let framed = frame(ex.io.tty, stream, &data);
            if let Some(conn) = ex.conn {
                self.send(conn, &framed);
            }
        }
    }

    /// Output drained after exit: close the stream so the client sees EOF.
    pub(super) fn finish_exec(&mut self, n: u64) {
        let Some(ex) = self.execs.get_mut(&n) else {
            return;
        };
        ex.drain_deadline = None;
        ex.io.close_all();
        if let Some(conn) = ex.conn.take() {
            self.close_after_flush(conn);
        }
    }

    fn find_exec(&self, id: &ExecId) -> Result<&Exec, RuntimeError> {
        self.execs
            .values()
            .find(|e| &e.id == id)
            .ok_or_else(|| RuntimeError::ExecNotFound(id.0.clone()))
    }

    pub(super) fn exec_status(&self, id: &ExecId) -> Result<Value, RuntimeError> {
        let ex = self.find_exec(id)?;
        let status = ExecStatus {
            running: ex.exit_code.is_none(),
            pid: Some(ex.pid),
            exit_code: ex.exit_code,
        };
        Ok(serde_json::to_value(status).unwrap_or_default())
    }

    pub(super) fn exec_resize(
        &self,
        id: &ExecId,
        width: u16,
        height: u16,
    ) -> Result<Value, RuntimeError> {
        self.find_exec(id)?
            .io
            .resize(width, height)
            .map(|()| Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_env_overrides_the_container_env() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let over = vec!["A=2".to_string(), "B=3".to_string()];
        assert_eq!(merge_env(&base, &over), vec!["PATH=/bin", "A=2", "B=3"]);
    }
}
