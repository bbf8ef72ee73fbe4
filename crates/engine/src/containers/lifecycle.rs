//! Start, stop, kill, wait, remove: each container runs under its own shim;
//! the engine watches each shim from a blocking task and records exits.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use servin_api::{Error, ErrorKind};
use servin_runtime::{ExitStatus, ShimClient, ShimState};

use super::record::{Action, ContainerRecord, State, ZERO_TIME};
use crate::{Engine, Event};

/// How long a SIGKILLed container may take to be reported dead.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// Resolves when `id`'s `die` event arrives (or the engine shuts down).
async fn died(events: &mut tokio::sync::broadcast::Receiver<Event>, id: &str) {
    loop {
        match events.recv().await {
            Ok(ev) if ev.kind == "container" && ev.action == "die" && ev.actor.id == id => return,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            _ => {}
        }
    }
}

/// An attached stream, or the promise of one when the container starts.
pub enum AttachTicket {
    Ready(UnixStream),
    Pending(tokio::sync::oneshot::Receiver<Result<UnixStream, Error>>),
}

impl AttachTicket {
    pub async fn stream(self) -> Result<UnixStream, Error> {
        match self {
            AttachTicket::Ready(s) => Ok(s),
            AttachTicket::Pending(rx) => rx
                .await
                .map_err(|_| Error::internal("The container was removed before it started"))?,
        }
    }
}

/// An attach waiting for its container to start.
pub struct PendingAttach {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub reply: tokio::sync::oneshot::Sender<Result<UnixStream, Error>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The exit code Docker records for a start that failed with `message`:
/// 127 for something missing, 126 for something not permitted, else 128.
fn start_error_code(message: &str) -> i64 {
    let m = message.to_lowercase();
    if m.contains("permission denied") {
        126
    } else if [
        "executable file not found",
        "no such file or directory",
        "not a directory",
    ]
    .iter()
    .any(|s| m.contains(s))
    {
        127
    } else {
        128
    }
}

fn runtime_error(e: servin_runtime::RuntimeError) -> Error {
    Error::from_chain(e.kind(), &e)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("Blocking task failed: {e}")))?
}

/// Docker's names for signals given as text (`SIGTERM`, `TERM`, `15`).
pub fn parse_signal(s: &str) -> Result<i32, Error> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    let n = match name.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        "WINCH" => libc::SIGWINCH,
        "ALRM" => libc::SIGALRM,
        "PIPE" => libc::SIGPIPE,
        _ => return Err(Error::invalid(format!("Invalid signal: {s}"))),
    };
    Ok(n)
}

impl Engine {
    fn shim(&self, id: &str) -> Result<ShimClient, Error> {
        ShimClient::connect(&self.containers().dir(id)).map_err(runtime_error)
    }

    /// `POST /containers/{id}/start`.
    pub async fn start_container(&self, name: &str) -> Result<(), Error> {
        let rec = self.containers().get(name)?;
        rec.state
            .can(Action::Start, &rec.id)
            .map_err(Error::conflict)?;
        if rec.state.is_running() {
            // Docker answers 304 Not Modified; the route maps this kind.
            return Err(Error::new(ErrorKind::Conflict, "container already started"));
        }
        // Docker's checks before a start (a `--mount` bind source that is
        // gone) fail it with nothing recorded.
        let rec = self.keep_anonymous_volumes(rec)?;
        let mounts = self.prepare_mounts(&rec)?;
        if let Err(e) = self.copy_up_volumes(&rec).await {
            return Err(self.record_failed_start(&rec.id, e, None));
        }
        // Any later failure is recorded as Docker does: the error and an
        // exit code in `State`, the container still shown as created.
        // A network that cannot be set up (a host port taken) leaves
        // nothing made.
        let sandbox = match self.setup_network(&rec).await {
            Ok(s) => s,
            Err(e) => return Err(self.record_failed_start(&rec.id, e, None)),
        };
        let spec = match self.runtime_spec(&rec, &sandbox, mounts) {
            Ok(spec) => spec,
            Err(e) => {
                self.release_network(&rec.id).await;
                let code = start_error_code(&e.message);
                return Err(self.record_failed_start(&rec.id, e, Some(code)));
            }
        };
        let shim_bin = self.config().shim_binary.clone();
        let client = std::sync::Arc::new(
            self.start_step(&rec.id, move || {
                servin_runtime::spawn_shim(&spec, &shim_bin)
            })
            .await?,
        );
        let pending: Vec<PendingAttach> = self.take_pending_attaches(&rec.id);
        for p in pending {
            let c = client.clone();
            let stream =
                blocking(move || c.attach(p.stdin, p.stdout, p.stderr).map_err(runtime_error))
                    .await;
            let _ = p.reply.send(stream);
        }
        let c = client.clone();
        let pid = self.start_step(&rec.id, move || c.start()).await?;
        let started_at = now();
        let (_, rec) = self.containers().update(&rec.id, |r| {
            r.state = State::Running {
                pid,
                started_at: started_at.clone(),
            };
            r.manually_stopped = false;
            Ok(())
        })?;
        self.emit(Event::container("start", &rec.id, &rec));
        self.watch(rec.id.clone());
        self.start_health(&rec.id);
        Ok(())
    }

    /// Fills each empty volume from what the container has at its
    /// destination, as Docker does at every start.
    async fn copy_up_volumes(&self, rec: &ContainerRecord) -> Result<(), Error> {
        let copies = self.volume_copies(rec);
        if copies.is_empty() {
            return Ok(());
        }
        let layers = self.layers_top_first(rec)?;
        blocking(move || {
            for (volume, dest) in copies {
                super::copyup::populate(&layers, &dest, &volume).map_err(|e| {
                    Error::internal(format!(
                        "Cannot copy {dest} into volume {}: {e}",
                        volume.display()
                    ))
                })?;
            }
            Ok(())
        })
        .await
    }

    /// Records a start the runtime failed: its exit code (127/126 for a
    /// missing or non-executable command), else Docker's reading of the
    /// message.
    /// One runtime call of a start, off the async threads. When it fails
    /// the container's network goes and the failure is recorded.
    async fn start_step<T: Send + 'static>(
        &self,
        id: &str,
        call: impl FnOnce() -> Result<T, servin_runtime::RuntimeError> + Send + 'static,
    ) -> Result<T, Error> {
        let failed = match tokio::task::spawn_blocking(call).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => Ok(e),
            Err(e) => Err(e),
        };
        self.release_network(id).await;
        Err(match failed {
            Ok(e) => self.record_runtime_failure(id, e),
            Err(e) => Error::internal(format!("Blocking task failed: {e}")),
        })
    }

    fn record_runtime_failure(&self, id: &str, e: servin_runtime::RuntimeError) -> Error {
        let code = e.exit_code().map(i64::from);
        let err = runtime_error(e);
        let code = code.unwrap_or_else(|| start_error_code(&err.message));
        self.record_failed_start(id, err, Some(code))
    }

    /// Records a failed start as Docker does and returns the error: `State`
    /// keeps the message and the exit code (128 unless `code` says
    /// otherwise); a container that never ran still shows as created.
    fn record_failed_start(&self, id: &str, err: Error, code: Option<i64>) -> Error {
        let code = code.unwrap_or(128);
        let msg = err.message.clone();
        if let Ok((_, rec)) = self.containers().update(id, |r| {
            let (started_at, finished_at) = match &r.state {
                State::Exited {
                    started_at,
                    finished_at,
                    ..
                } => (started_at.clone(), finished_at.clone()),
                _ => (ZERO_TIME.to_string(), ZERO_TIME.to_string()),
            };
            r.state = State::Exited {
                code,
                oom_killed: false,
                started_at,
                finished_at,
                error: msg,
            };
            Ok(())
        }) {
            self.emit(Event::container("die", id, &rec));
            if rec.host_config["AutoRemove"].as_bool().unwrap_or(false) {
                let engine = self.clone();
                let id = id.to_string();
                tokio::spawn(async move {
                    let _ = engine.remove_container(&id, true, true).await;
                });
            }
        }
        err
    }

    /// Watches a running container's shim until it exits, then records the exit.
    pub(crate) fn watch(&self, id: String) {
        let engine = self.clone();
        tokio::spawn(async move {
            let dir = engine.containers().dir(&id);
            let d = dir.clone();
            let status = tokio::task::spawn_blocking(move || -> Option<ExitStatus> {
                match ShimClient::connect(&d).and_then(|c| c.wait()) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        let status = servin_runtime::read_exit_status(&d);
                        // Killed before it could record an exit: its
                        // processes, mounts and cgroups are still there.
                        match servin_runtime::clean_up_after_lost_shim(&d) {
                            Ok(true) => tracing::warn!(state_dir = %d.display(), "the container's shim died; its processes were killed and its mounts removed"),
                            Ok(false) => {}
                            Err(e) => tracing::error!(state_dir = %d.display(), error = %e, "cannot clean up after the container's dead shim"),
                        }
                        status
                    }
                }
            })
            .await
            .ok()
            .flatten();
            engine.on_exit(&id, status).await;
        });
    }

    async fn on_exit(&self, id: &str, status: Option<ExitStatus>) {
        // Addresses, ports and names go before `die` is reported.
        self.release_network(id).await;
        let (code, oom, finished) = match &status {
            Some(s) => (
                i64::from(s.code),
                s.oom_killed,
                s.finished_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ),
            None => (137, false, now()),
        };
        let Ok((_, rec)) = self.containers().update(id, |r| {
            let started_at = match &r.state {
                State::Running { started_at, .. } | State::Paused { started_at, .. } => {
                    started_at.clone()
                }
                _ => ZERO_TIME.into(),
            };
            r.state = State::Exited {
                code,
                oom_killed: oom,
                started_at,
                finished_at: finished.clone(),
                error: String::new(),
            };
            Ok(())
        }) else {
            return;
        };
        if oom {
            self.emit(Event::container("oom", id, &rec));
        }
        self.emit(Event::container("die", id, &rec));
        if rec.host_config["AutoRemove"].as_bool().unwrap_or(false) {
            let _ = self.remove_container(id, true, true).await;
            return;
        }
        if self.should_restart(&rec, code) {
            let delay = Duration::from_millis(100u64 << rec.restart_count.min(8));
            let engine = self.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let still = engine
                    .containers()
                    .get(&id)
                    .map(|r| !r.manually_stopped && !r.state.is_running())
                    .unwrap_or(false);
                if still {
                    let _ = engine.containers().update(&id, |r| {
                        r.restart_count += 1;
                        Ok(())
                    });
                    if let Err(e) = engine.start_container(&id).await {
                        tracing::error!(container_id = %id, error = %e, "restart failed");
                    }
                }
            });
        }
    }

    fn should_restart(&self, rec: &ContainerRecord, code: i64) -> bool {
        if rec.manually_stopped {
            return false;
        }
        let policy = &rec.host_config["RestartPolicy"];
        match policy["Name"].as_str().unwrap_or("") {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                let max = policy["MaximumRetryCount"].as_u64().unwrap_or(0);
                code != 0 && (max == 0 || rec.restart_count < max)
            }
            _ => false,
        }
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill_container(&self, name: &str, signal: Option<&str>) -> Result<(), Error> {
        let rec = self.containers().get(name)?;
        rec.state
            .can(Action::Kill, &rec.id)
            .map_err(Error::conflict)?;
        let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("KILL"))?;
        if sig == libc::SIGKILL {
            self.containers().update(&rec.id, |r| {
                r.manually_stopped = r.host_config["RestartPolicy"]["Name"] != "always";
                Ok(())
            })?;
        }
        let client = self.shim(&rec.id)?;
        blocking(move || client.kill(sig).map_err(runtime_error)).await?;
        self.emit(Event::container("kill", &rec.id, &rec).with("signal", &sig.to_string()));
        Ok(())
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after the timeout.
    pub async fn stop_container(
        &self,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<bool, Error> {
        let rec = self.containers().get(name)?;
        if !rec.state.is_running() {
            return Ok(false);
        }
        let mut events = self.subscribe();
        self.containers().update(&rec.id, |r| {
            r.manually_stopped = true;
            Ok(())
        })?;
        let sig_name = signal
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| rec.config["StopSignal"].as_str().map(str::to_string))
            .unwrap_or_else(|| "TERM".into());
        let sig = parse_signal(&sig_name)?;
        let secs = timeout
            .or_else(|| rec.config["StopTimeout"].as_i64())
            .unwrap_or(10);
        let client = self.shim(&rec.id)?;
        let c = std::sync::Arc::new(client);
        let c2 = c.clone();
        let _ = blocking(move || c2.kill(sig).map_err(runtime_error)).await;
        let exited = died(&mut events, &rec.id);
        let graceful = if secs < 0 {
            exited.await;
            true
        } else {
            tokio::time::timeout(Duration::from_secs(secs as u64), exited)
                .await
                .is_ok()
        };
        if !graceful {
            let mut events = self.subscribe();
            if self.containers().get(&rec.id)?.state.is_running() {
                let _ = blocking(move || c.kill(libc::SIGKILL).map_err(runtime_error)).await;
                let _ = tokio::time::timeout(KILL_GRACE, died(&mut events, &rec.id)).await;
            }
        }
        let rec = self.containers().get(&rec.id)?;
        self.emit(Event::container("stop", &rec.id, &rec));
        Ok(true)
    }

    /// `POST /containers/{id}/wait`: resolves to the exit code.
    pub async fn wait_container(&self, name: &str, condition: &str) -> Result<i64, Error> {
        let mut events = self.subscribe();
        let rec = self.containers().get(name)?;
        let exit_code = |r: &ContainerRecord| match &r.state {
            State::Exited { code, .. } => *code,
            _ => 0,
        };
        match condition {
            "" | "not-running" if !rec.state.is_running() => return Ok(exit_code(&rec)),
            "" | "not-running" | "next-exit" | "removed" => {}
            other => return Err(Error::invalid(format!("invalid condition: \"{other}\""))),
        }
        let want = if condition == "removed" {
            "destroy"
        } else {
            "die"
        };
        loop {
            match events.recv().await {
                Ok(ev) if ev.kind == "container" && ev.actor.id == rec.id && ev.action == want => {
                    let code = ev
                        .actor
                        .attributes
                        .get("exitCode")
                        .and_then(|c| c.parse().ok());
                    return Ok(code.unwrap_or_else(|| {
                        self.containers()
                            .get(&rec.id)
                            .map(|r| exit_code(&r))
                            .unwrap_or(0)
                    }));
                }
                Ok(ev)
                    if want == "destroy"
                        && ev.kind == "container"
                        && ev.actor.id == rec.id
                        && ev.action == "die" =>
                {
                    // Remember the code: the record is gone by the time `destroy` comes.
                    if let Some(code) = ev
                        .actor
                        .attributes
                        .get("exitCode")
                        .and_then(|c| c.parse::<i64>().ok())
                    {
                        loop {
                            match events.recv().await {
                                Ok(e)
                                    if e.kind == "container"
                                        && e.actor.id == rec.id
                                        && e.action == "destroy" =>
                                {
                                    return Ok(code)
                                }
                                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                    return Ok(code)
                                }
                                _ => {}
                            }
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err(Error::internal("The engine is shutting down"))
                }
                _ => {}
            }
        }
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove_container(
        &self,
        name: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), Error> {
        let rec = self.containers().get(name)?;
        if rec.state.is_running() {
            if !force {
                return Err(Error::conflict(
                    rec.state
                        .can(Action::Remove, &rec.id)
                        .unwrap_err()
                        .replace("{name}", &rec.name),
                ));
            }
            self.containers().update(&rec.id, |r| {
                r.manually_stopped = true;
                Ok(())
            })?;
            let mut events = self.subscribe();
            if let Ok(c) = self.shim(&rec.id) {
                let _ = blocking(move || c.kill(libc::SIGKILL).map_err(runtime_error)).await;
                let _ = tokio::time::timeout(KILL_GRACE, died(&mut events, &rec.id)).await;
            }
        }
        let rec = match self.containers().update(&rec.id, |r| {
            if r.state == State::Removing {
                return Err(Error::conflict(format!(
                    "removal of container {} is already in progress",
                    &r.id[..12]
                )));
            }
            r.state = State::Removing;
            Ok(())
        }) {
            Ok((_, r)) => r,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        self.release_network(&rec.id).await;
        let store = self.containers_arc();
        let id = rec.id.clone();
        if let Err(e) = blocking(move || store.remove(&id)).await {
            // As Docker does: the container is dead, and `rm` may be tried again.
            let _ = self.containers().update(&rec.id, |r| {
                r.state = State::Dead;
                Ok(())
            });
            return Err(Error::internal(format!(
                "unable to remove filesystem for {}: {}",
                rec.id, e.message
            )));
        }
        self.execs().forget_container(&rec.id);
        // Named volumes stay, as with Docker.
        if volumes {
            self.drop_anonymous_volumes(&rec);
        }
        self.emit(Event::container("destroy", &rec.id, &rec));
        Ok(())
    }

    /// Picks up containers after a daemon restart: live shims are watched
    /// again, and exits that happened meanwhile are recorded.
    pub(crate) fn restore_containers(&self) {
        for rec in self.containers().all() {
            match rec.state {
                State::Running { .. } | State::Paused { .. } | State::Restarting { .. } => {
                    let alive = self
                        .shim(&rec.id)
                        .and_then(|c| c.state().map_err(runtime_error));
                    match alive {
                        Ok(ShimState::Exited { .. }) | Err(_) => {
                            let status =
                                servin_runtime::read_exit_status(&self.containers().dir(&rec.id));
                            let engine = self.clone();
                            let id = rec.id.clone();
                            tokio::spawn(async move { engine.on_exit(&id, status).await });
                        }
                        Ok(_) => {
                            self.watch(rec.id.clone());
                            self.start_health(&rec.id);
                        }
                    }
                }
                State::Removing => {
                    let _ = self.containers().remove(&rec.id);
                }
                _ => {}
            }
        }
    }

    /// Attaches to a container's stdio: at once if it runs, else when it
    /// starts (registered before this returns, so a start that follows
    /// cannot miss it).
    pub async fn attach_container(
        &self,
        name: &str,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<(AttachTicket, bool), Error> {
        let rec = self.containers().get(name)?;
        let tty = rec.tty();
        if rec.state.is_running() {
            let client = self.shim(&rec.id)?;
            let s = blocking(move || client.attach(stdin, stdout, stderr).map_err(runtime_error))
                .await?;
            return Ok((AttachTicket::Ready(s), tty));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.add_pending_attach(
            &rec.id,
            PendingAttach {
                stdin,
                stdout,
                stderr,
                reply: tx,
            },
        );
        Ok((AttachTicket::Pending(rx), tty))
    }

    pub async fn resize_container(&self, name: &str, width: u16, height: u16) -> Result<(), Error> {
        let rec = self.containers().get(name)?;
        if !rec.state.is_running() {
            return Err(Error::conflict(format!(
                "Container {} is not running",
                rec.short_id()
            )));
        }
        let client = self.shim(&rec.id)?;
        blocking(move || client.resize(width, height).map_err(runtime_error)).await
    }
}

impl Engine {
    /// `POST /containers/{id}/pause` and `/unpause`, through the freezer.
    pub async fn pause_container(&self, name: &str, pause: bool) -> Result<(), Error> {
        let rec = self.containers().get(name)?;
        let action = if pause {
            Action::Pause
        } else {
            Action::Unpause
        };
        rec.state.can(action, &rec.id).map_err(Error::conflict)?;
        let client = self.shim(&rec.id)?;
        blocking(move || {
            if pause {
                client.pause()
            } else {
                client.resume()
            }
            .map_err(runtime_error)
        })
        .await?;
        let (_, rec) = self.containers().update(&rec.id, |r| {
            r.state = match std::mem::replace(&mut r.state, State::Created) {
                State::Running { pid, started_at } if pause => State::Paused { pid, started_at },
                State::Paused { pid, started_at } if !pause => State::Running { pid, started_at },
                other => other,
            };
            Ok(())
        })?;
        self.emit(Event::container(
            if pause { "pause" } else { "unpause" },
            &rec.id,
            &rec,
        ));
        Ok(())
    }

    /// `POST /containers/{id}/rename`.
    pub fn rename_container(&self, name: &str, new_name: &str) -> Result<(), Error> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name).to_string();
        if new_name.len() < 2
            || !new_name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
        {
            return Err(Error::invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let rec = self.containers().get(name)?;
        if let Ok(other) = self.containers().get(&new_name) {
            if other.id != rec.id {
                return Err(Error::conflict(format!(
                    "Conflict. The container name \"/{new_name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
        }
        let (_, rec) = self.containers().update(&rec.id, |r| {
            r.name = new_name.clone();
            Ok(())
        })?;
        self.emit(Event::container("rename", &rec.id, &rec));
        Ok(())
    }

    /// `GET /containers/{id}/stats` (one sample): the shim's cgroup
    /// figures, with the previous sample's CPU figures as `precpu_stats`
    /// (zeros for the first), and a memory limit no larger than the host's
    /// memory, as Docker reports them.
    pub async fn container_stats(&self, name: &str) -> Result<serde_json::Value, Error> {
        let rec = self.containers().get(name)?;
        if !rec.state.is_running() {
            self.swap_last_stats(&rec.id, None);
            return Ok(
                serde_json::json!({"id": rec.id, "name": format!("/{}", rec.name), "read": ZERO_STATS_TIME, "preread": ZERO_STATS_TIME}),
            );
        }
        let client = self.shim(&rec.id)?;
        let mut v = blocking(move || client.stats().map_err(runtime_error)).await?;
        let host_memory = host_memory();
        if let Some(limit) = v["memory_stats"]["limit"].as_u64() {
            if host_memory > 0 && limit > host_memory {
                v["memory_stats"]["limit"] = serde_json::json!(host_memory);
            }
        }
        let previous =
            self.swap_last_stats(&rec.id, Some((v["read"].clone(), v["cpu_stats"].clone())));
        let (preread, precpu) = previous.unwrap_or_else(|| {
            (
                serde_json::json!(ZERO_STATS_TIME),
                serde_json::json!({
                    "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                    "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
                }),
            )
        });
        v["preread"] = preread;
        v["precpu_stats"] = precpu;
        v["num_procs"] = serde_json::json!(0);
        v["blkio_stats"] = serde_json::json!({
            "io_service_bytes_recursive": null, "io_serviced_recursive": null,
            "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null,
            "io_time_recursive": null, "sectors_recursive": null,
        });
        v["storage_stats"] = serde_json::json!({});
        v["id"] = serde_json::json!(rec.id);
        v["name"] = serde_json::json!(format!("/{}", rec.name));
        Ok(v)
    }
}

/// Go's zero time, which Docker reports for a sample not taken.
const ZERO_STATS_TIME: &str = "0001-01-01T00:00:00Z";

/// The host's memory in bytes (0 when unknown).
fn host_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
