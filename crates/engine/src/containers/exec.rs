//! `docker exec`: extra processes in a running container, run by its shim.
//! Exec instances live in memory, as Docker's do.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{json, Value};
use servin_api::Error;
use servin_runtime::{ExecId, ProcessSpec, RuntimeError, ShimClient};

use super::record::Action;
use crate::{strs, Engine};

/// One exec instance.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub id: String,
    pub container_id: String,
    pub process: ProcessSpec,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub shim_id: Option<ExecId>,
    pub exit_code: Option<i64>,
}

impl Engine {
    /// `POST /containers/{id}/exec`.
    pub fn create_exec(&self, container: &str, body: &Value) -> Result<String, Error> {
        let rec = self.containers().get(container)?;
        rec.state
            .can(Action::Exec, &rec.id)
            .map_err(Error::conflict)?;
        let cmd = strs(&body["Cmd"]);
        if cmd.is_empty() {
            return Err(Error::invalid("No exec command specified"));
        }
        let mut env = strs(&rec.config["Env"]);
        for e in strs(&body["Env"]) {
            let key = e.split('=').next().unwrap_or(&e).to_string();
            env.retain(|x| x.split('=').next() != Some(key.as_str()));
            env.push(e);
        }
        let user = body["User"]
            .as_str()
            .filter(|u| !u.is_empty())
            .or(rec.config["User"].as_str())
            .unwrap_or("")
            .to_string();
        let cwd = body["WorkingDir"]
            .as_str()
            .filter(|u| !u.is_empty())
            .or(rec.config["WorkingDir"].as_str().filter(|u| !u.is_empty()))
            .unwrap_or("/")
            .to_string();
        let id = super::new_id();
        let exec = ExecRecord {
            id: id.clone(),
            container_id: rec.id.clone(),
            process: ProcessSpec {
                args: cmd,
                env,
                cwd,
                user,
                tty: body["Tty"].as_bool().unwrap_or(false),
                open_stdin: body["AttachStdin"].as_bool().unwrap_or(false),
                init: false,
            },
            attach_stdin: body["AttachStdin"].as_bool().unwrap_or(false),
            attach_stdout: body["AttachStdout"].as_bool().unwrap_or(false),
            attach_stderr: body["AttachStderr"].as_bool().unwrap_or(false),
            shim_id: None,
            exit_code: None,
        };
        self.execs().insert(id.clone(), exec);
        self.emit(crate::Event::container(
            &format!("exec_create: {}", strs(&body["Cmd"]).join(" ")),
            &rec.id,
            &rec,
        ));
        Ok(id)
    }

    fn exec_record(&self, id: &str) -> Result<ExecRecord, Error> {
        self.execs()
            .get(id)
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {id}")))
    }

    /// `POST /exec/{id}/start`: the process's stdio as one stream, and whether it has a TTY.
    /// A process that cannot start is reported in the stream when attached;
    /// when `detach`ed nobody reads it, so it is the request's error then.
    pub async fn start_exec(&self, id: &str, detach: bool) -> Result<(UnixStream, bool), Error> {
        let exec = self.exec_record(id)?;
        if exec.shim_id.is_some() {
            return Err(Error::conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        let rec = self.containers().get(&exec.container_id)?;
        rec.state
            .can(Action::Exec, &rec.id)
            .map_err(Error::conflict)?;
        let dir = self.containers().dir(&rec.id);
        let process = exec.process.clone();
        let started = tokio::task::spawn_blocking(move || {
            ShimClient::connect(&dir).and_then(|c| c.exec(&process))
        })
        .await
        .map_err(|e| Error::internal(format!("Blocking task failed: {e}")))?;
        let (stream, shim_id) = match started {
            Ok(s) => s,
            // A container that is not running (or whose shim is gone) and an
            // exec already started fail before the stream, as with Docker.
            Err(
                e @ (RuntimeError::Conflict(_)
                | RuntimeError::ExecNotFound(_)
                | RuntimeError::ShimUnavailable { .. }),
            ) => return Err(Error::from_chain(e.kind(), &e)),
            // Any other failure to start (a command that cannot run, an
            // unknown user, a working directory the runtime cannot enter)
            // is reported in the stream, and the exec's exit code is 126,
            // as Docker does for every exec that fails to start.
            Err(e) => {
                self.execs().update(id, |r| r.exit_code = Some(126));
                let Error { kind, message } = Error::from_chain(e.kind(), &e);
                let message = match e {
                    RuntimeError::User(_) => message,
                    _ if message.starts_with("OCI runtime") => message,
                    _ => format!("OCI runtime exec failed: {message}"),
                };
                if detach {
                    return Err(Error::new(kind, message));
                }
                return failed_exec_stream(&format!("{message}\n"), exec.process.tty);
            }
        };
        let tty = exec.process.tty;
        self.execs().update(id, |e| e.shim_id = Some(shim_id));
        self.emit(crate::Event::container(
            &format!("exec_start: {}", exec.process.args.join(" ")),
            &rec.id,
            &rec,
        ));
        Ok((stream, tty))
    }

    /// `GET /exec/{id}/json`.
    pub async fn inspect_exec(&self, id: &str) -> Result<Value, Error> {
        let exec = self.exec_record(id)?;
        let mut running = false;
        let mut pid = 0;
        let mut code = exec.exit_code;
        if let (Some(shim_id), None) = (&exec.shim_id, code) {
            let dir = self.containers().dir(&exec.container_id);
            let shim_id = shim_id.clone();
            // The stream can end a moment before the shim has reaped the process.
            for attempt in 0..20 {
                let (d, s) = (dir.clone(), shim_id.clone());
                let status = tokio::task::spawn_blocking(move || {
                    ShimClient::connect(&d).and_then(|c| c.exec_status(&s))
                })
                .await
                .map_err(|e| Error::internal(format!("Blocking task failed: {e}")))?;
                match status {
                    Ok(st) if st.running && attempt < 19 => {
                        running = true;
                        pid = st.pid.unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Ok(st) => {
                        running = st.running;
                        pid = st.pid.unwrap_or(0);
                        code = st.exit_code.map(i64::from);
                        break;
                    }
                    Err(_) => {
                        running = false;
                        break;
                    }
                }
            }
            if let Some(c) = code {
                self.execs().update(id, |e| e.exit_code = Some(c));
            }
        }
        Ok(json!({
            "ID": exec.id,
            "Running": running && code.is_none(),
            "ExitCode": code,
            "ProcessConfig": {
                "tty": exec.process.tty,
                "entrypoint": exec.process.args.first(),
                "arguments": exec.process.args.get(1..).unwrap_or(&[]),
                "privileged": false,
                "user": exec.process.user,
            },
            "OpenStdin": exec.attach_stdin,
            "OpenStderr": exec.attach_stderr,
            "OpenStdout": exec.attach_stdout,
            "CanRemove": false,
            "ContainerID": exec.container_id,
            "DetachKeys": "",
            "Pid": pid,
        }))
    }

    /// `POST /exec/{id}/resize`.
    pub async fn resize_exec(&self, id: &str, width: u16, height: u16) -> Result<(), Error> {
        let exec = self.exec_record(id)?;
        let Some(shim_id) = exec.shim_id else {
            return Err(Error::conflict(format!("Exec {id} is not running")));
        };
        let dir = self.containers().dir(&exec.container_id);
        tokio::task::spawn_blocking(move || {
            ShimClient::connect(&dir).and_then(|c| c.exec_resize(&shim_id, width, height))
        })
        .await
        .map_err(|e| Error::internal(format!("Blocking task failed: {e}")))?
        .map_err(|e| Error::from_chain(e.kind(), &e))
    }
}

/// A finished stream that carries only `message`, as the exec's output.
fn failed_exec_stream(message: &str, tty: bool) -> Result<(UnixStream, bool), Error> {
    use std::io::Write;
    let (ours, theirs) = UnixStream::pair()
        .map_err(|e| Error::internal(format!("Cannot create a socket pair: {e}")))?;
    let mut w = ours;
    let bytes = if tty {
        message.as_bytes().to_vec()
    } else {
        super::frame(1, message.as_bytes())
    };
    w.write_all(&bytes)
        .map_err(|e| Error::internal(format!("Cannot write the exec error: {e}")))?;
    Ok((theirs, tty))
}

/// The in-memory table of exec instances.
#[derive(Debug, Default)]
pub struct ExecTable {
    inner: std::sync::Mutex<std::collections::HashMap<String, ExecRecord>>,
}

impl ExecTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, ExecRecord>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn insert(&self, id: String, rec: ExecRecord) {
        self.lock().insert(id, rec);
    }
    pub fn get(&self, id: &str) -> Option<ExecRecord> {
        self.lock().get(id).cloned()
    }
    pub fn update(&self, id: &str, f: impl FnOnce(&mut ExecRecord)) {
        if let Some(r) = self.lock().get_mut(id) {
            f(r);
        }
    }
    /// Forgets the execs of a removed container.
    pub fn forget_container(&self, container_id: &str) {
        self.lock().retain(|_, e| e.container_id != container_id);
    }
}
