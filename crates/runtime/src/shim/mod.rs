//! The per-container shim (`servin-shim run STATE_DIR`): creates the
//! container, relays its stdio to the log and to attached clients, serves
//! the control socket, records the exit and cleans up. Single-threaded: it
//! creates processes (libcontainer clones, and changes the working directory).

mod backend;
mod conn;
mod exec;
mod log;
mod procio;
mod runc;
mod setup;
mod sys;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use self::backend::Backend;
use self::conn::{Conn, Role};
use self::exec::Exec;
use self::log::JsonLog;
use self::procio::{Output, ProcIo};
use self::sys::Child;
use crate::client::{READY_ENV, READY_FD};
use crate::error::{chain, RuntimeError, WireError};
use crate::fsutil::write_atomic;
use crate::mounts::Overlay;
use crate::protocol::{frame_header, Response};
use crate::spec::{ContainerSpec, ExitStatus, EXIT_FILE, PID_FILE, SOCKET_FILE};

/// How long output may keep flowing after the main process exited (its
/// pipes normally reach EOF at once: the whole PID namespace is gone).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an exited shim waits for its last clients to go.
const LINGER: Duration = Duration::from_secs(30);
/// Output stops being read while a client has this much unsent.
const OUT_HIGH_WATER: usize = 1 << 20;

/// The container's lifecycle as the shim tracks it.
#[derive(Debug, Clone)]
enum Status {
    Created,
    Running { started_at: DateTime<Utc> },
    Paused { started_at: DateTime<Utc> },
    Exited(ExitStatus),
}

impl Status {
    fn started_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Status::Running { started_at } | Status::Paused { started_at } => Some(*started_at),
            Status::Exited(e) => e.started_at,
            Status::Created => None,
        }
    }
}

/// The main process has exited; output is still draining.
struct PendingExit {
    code: i32,
    oom_killed: bool,
    finished_at: DateTime<Utc>,
    deadline: Instant,
}

/// Which descriptor a poll entry stands for.
#[derive(Debug, Clone, Copy)]
enum Token {
    Listener,
    InitPid,
    InitOut(u8),
    InitIn,
    ExecPid(u64),
    ExecOut(u64, u8),
    ExecIn(u64),
    Conn(u64),
}

pub(crate) struct Shim {
    spec: ContainerSpec,
    backend: Backend,
    overlay: Overlay,
    listener: UnixListener,
    socket_id: Option<(u64, u64)>,
    init: Option<Child>,
    init_pid: u32,
    io: ProcIo,
    log: JsonLog,
    status: Status,
    exiting: Option<PendingExit>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    execs: BTreeMap<u64, Exec>,
    next_exec: u64,
    capabilities: Vec<String>,
    mount_dests: Vec<String>,
    linger_until: Option<Instant>,
}

/// After a shim died without writing its exit record (SIGKILL, OOM killer):
/// ends what it left behind as its own teardown would have, in the
/// daemon's process: every process still in the container's cgroups is
/// killed, then the runtime's state, the cgroups and the rootfs mount go.
/// Does nothing (`Ok(false)`) while the shim lives or once it recorded an
/// exit (it then tore down itself).
pub fn clean_up_after_lost_shim(state_dir: &Path) -> Result<bool, RuntimeError> {
    if state_dir.join(EXIT_FILE).exists() || shim_alive(state_dir) {
        return Ok(false);
    }
    let spec = setup::load_spec(state_dir)?;
    crate::cgroups::kill_all(&spec.cgroup_path());
    let overlay = Overlay::in_state_dir(&spec.state_dir, &spec.layers);
    let mut backend = Backend::new(&spec);
    setup::teardown(&spec, &overlay, &mut backend);
    Ok(true)
}

/// Whether the process in `shim.pid` is still a servin-shim.
fn shim_alive(state_dir: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(state_dir.join(PID_FILE))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    else {
        return false;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie (state Z after the command's parenthesis) is gone already.
    let running = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    running && String::from_utf8_lossy(&cmdline).contains("servin-shim")
}

/// `servin-shim run STATE_DIR`; returns the process's exit code.
pub fn run(state_dir: &Path) -> i32 {
    sys::close_inherited_fds();
    // SAFETY: called first thing in main, while the process is single-threaded;
    // the parent only returns.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {
            // Out of the spawner's session and process group: its signals and
            // its death do not reach us.
            let _ = nix::unistd::setsid();
        }
        Err(e) => {
            eprintln!("servin-shim: cannot detach: {e}");
            return 1;
        }
    }
    let ready = take_ready_pipe();
    // Log through our own descriptor of shim.log: container processes cloned
    // from the shim share the subscriber, and their fd 2 is the container's.
    let Ok(log_fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return 1;
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(std::fs::File::from(log_fd)))
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SERVIN_SHIM_LOG")
                // libcgroups warns about every absent controller on every create.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,libcgroups=error,libcontainer=error")
                }),
        )
        .try_init();
    tracing::debug!("shim started");
    match Shim::new(state_dir) {
        Ok(mut shim) => {
            report(ready, Response::Ok(serde_json::Value::Null));
            shim.serve();
            0
        }
        Err(e) => {
            tracing::error!(error = %chain(&e), "cannot create the container");
            report(ready, Response::Error(WireError::from(&e)));
            1
        }
    }
}

/// The pipe on which `spawn_shim` waits for the outcome of create: our
/// stdin. Moves it off fd 0 (close-on-exec) and gives fd 0 /dev/null.
fn take_ready_pipe() -> Option<std::fs::File> {
    let fd: i32 = std::env::var(READY_ENV).ok()?.parse().ok()?;
    if fd != READY_FD {
        return None;
    }
    // SAFETY: fd 0 is open for the life of the process and not closed while
    // borrowed here.
    let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(READY_FD) };
    let pipe = stdin.try_clone_to_owned().ok()?;
    let null = std::fs::File::open("/dev/null").ok()?;
    nix::unistd::dup2(null.as_raw_fd(), READY_FD).ok()?;
    Some(std::fs::File::from(pipe))
}

fn report(ready: Option<std::fs::File>, r: Response) {
    if let Some(mut f) = ready {
        if let Ok(mut line) = serde_json::to_vec(&r) {
            line.push(b'\n');
            let _ = f.write_all(&line);
        }
    }
}

impl Shim {
    fn new(state_dir: &Path) -> Result<Shim, RuntimeError> {
        std::env::set_current_dir(state_dir)
            .map_err(|e| RuntimeError::io(format!("enter {}", state_dir.display()), e))?;
        sys::become_subreaper()?;
        sys::reset_sigchld()?;
        std::fs::write(PID_FILE, std::process::id().to_string())
            .map_err(|e| RuntimeError::io("write shim.pid", e))?;
        let spec = setup::load_spec(state_dir)?;
        if spec.state_dir != state_dir {
            return Err(RuntimeError::InvalidSpec(format!(
                "The spec in {} names another state directory, {}",
                state_dir.display(),
                spec.state_dir.display()
            )));
        }
        let overlay = Overlay::in_state_dir(&spec.state_dir, &spec.layers);
        let mut backend = Backend::new(&spec);
        let created = match setup::create(&spec, &overlay, &mut backend)
            .and_then(|c| JsonLog::open(&spec.log_path).map(|l| (c, l)))
        {
            Ok(c) => c,
            Err(e) => {
                setup::teardown(&spec, &overlay, &mut backend);
                let _ = std::fs::remove_file(SOCKET_FILE);
                return Err(e);
            }
        };
        let (created, log) = created;
        let socket_id = std::fs::metadata(SOCKET_FILE).ok().map(|m| {
            (
                std::os::unix::fs::MetadataExt::dev(&m),
                std::os::unix::fs::MetadataExt::ino(&m),
            )
        });
        tracing::info!(container_id = %spec.id, pid = created.init.pid.as_raw(), "container created");
        Ok(Shim {
            mount_dests: setup::mount_destinations(&spec),
            init_pid: created.init.pid.as_raw() as u32,
            init: Some(created.init),
            io: created.io,
            listener: created.listener,
            capabilities: created.capabilities,
            spec,
            backend,
            overlay,
            socket_id,
            log,
            status: Status::Created,
            exiting: None,
            conns: BTreeMap::new(),
            next_conn: 0,
            execs: BTreeMap::new(),
            next_exec: 0,
            linger_until: None,
        })
    }

    fn serve(&mut self) {
        loop {
            if matches!(self.status, Status::Exited(_))
                && (self.conns.is_empty() || self.linger_until.is_some_and(|t| Instant::now() >= t))
            {
                break;
            }
            let events = match self.poll_once() {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "poll failed");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            for (token, revents) in events {
                self.dispatch(token, revents);
            }
            self.tick();
        }
        self.remove_socket();
        tracing::info!(container_id = %self.spec.id, "shim exits");
    }

    /// Polls every descriptor of interest once; returns the ready ones.
    fn poll_once(&self) -> Result<Vec<(Token, PollFlags)>, nix::Error> {
        let mut fds: Vec<PollFd<'_>> = Vec::new();
        let mut tokens: Vec<Token> = Vec::new();
        let mut add = |fd, events, token| {
            fds.push(PollFd::new(fd, events));
            tokens.push(token);
        };
        add(self.listener.as_fd(), PollFlags::POLLIN, Token::Listener);
        if let Some(init) = &self.init {
            add(init.pidfd.as_fd(), PollFlags::POLLIN, Token::InitPid);
        }
        let init_blocked = self
            .conns
            .values()
            .any(|c| c.is_attach_output() && c.pending() > OUT_HIGH_WATER);
        for (stream, fd) in self.io.outputs() {
            let mut ev = PollFlags::empty();
            if !init_blocked {
                ev |= PollFlags::POLLIN;
            }
            if self.io.tty_wants_write() {
                ev |= PollFlags::POLLOUT;
            }
            add(fd, ev, Token::InitOut(stream));
        }
        if let Some(fd) = self.io.stdin_pending() {
            add(fd, PollFlags::POLLOUT, Token::InitIn);
        }
        for (n, ex) in &self.execs {
            if let Some(child) = &ex.child {
                add(child.pidfd.as_fd(), PollFlags::POLLIN, Token::ExecPid(*n));
            }
            let blocked = ex
                .conn
                .and_then(|c| self.conns.get(&c))
                .is_some_and(|c| c.pending() > OUT_HIGH_WATER);
            for (stream, fd) in ex.io.outputs() {
                let mut ev = PollFlags::empty();
                if !blocked {
                    ev |= PollFlags::POLLIN;
                }
                if ex.io.tty_wants_write() {
                    ev |= PollFlags::POLLOUT;
                }
                add(fd, ev, Token::ExecOut(*n, stream));
            }
            if let Some(fd) = ex.io.stdin_pending() {
                add(fd, PollFlags::POLLOUT, Token::ExecIn(*n));
            }
        }
        for (id, c) in &self.conns {
            let mut ev = PollFlags::empty();
            if self.conn_wants_read(c) {
                ev |= PollFlags::POLLIN;
            }
            if c.pending() > 0 {
                ev |= PollFlags::POLLOUT;
            }
            add(c.stream.as_fd(), ev, Token::Conn(*id));
        }
        let timeout = self.next_deadline().map_or(PollTimeout::NONE, |d| {
            let ms = d.saturating_duration_since(Instant::now()).as_millis() + 1;
            PollTimeout::try_from(i32::try_from(ms).unwrap_or(i32::MAX)).unwrap_or(PollTimeout::MAX)
        });
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
        Ok(fds
            .iter()
            .zip(tokens)
            .filter_map(|(fd, t)| fd.revents().filter(|r| !r.is_empty()).map(|r| (t, r)))
            .collect())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Vec<Instant> = Vec::new();
        d.extend(self.exiting.as_ref().map(|e| e.deadline));
        d.extend(self.execs.values().filter_map(|e| e.drain_deadline));
        d.extend(self.linger_until);
        d.into_iter().min()
    }

    fn dispatch(&mut self, token: Token, revents: PollFlags) {
        let readable =
            revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR);
        match token {
            Token::Listener => self.accept(),
            Token::InitPid => self.reap_init(),
            Token::InitOut(stream) => {
                if revents.contains(PollFlags::POLLOUT) {
                    self.io.flush_stdin();
                }
                if readable {
                    self.read_init(stream);
                }
            }
            Token::InitIn => self.io.flush_stdin(),
            Token::ExecPid(n) => self.reap_exec(n),
            Token::ExecOut(n, stream) => {
                if revents.contains(PollFlags::POLLOUT) {
                    if let Some(ex) = self.execs.get_mut(&n) {
                        ex.io.flush_stdin();
                    }
                }
                if readable {
                    self.read_exec(n, stream);
                }
            }
            Token::ExecIn(n) => {
                if let Some(ex) = self.execs.get_mut(&n) {
                    ex.io.flush_stdin();
                }
            }
            Token::Conn(id) => {
                if revents.contains(PollFlags::POLLOUT) {
                    self.flush_conn(id);
                }
                if readable {
                    self.conn_readable(id, revents);
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = self.next_conn;
                    self.next_conn += 1;
                    self.conns.insert(id, Conn::new(stream));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    fn read_init(&mut self, stream: u8) {
        match self.io.read(stream) {
            Output::Data(data) => self.deliver_init(stream, &data),
            Output::Eof | Output::Nothing => {}
        }
    }

    /// Sends output of the main process to the log and every attached client.
    fn deliver_init(&mut self, stream: u8, data: &[u8]) {
        self.log.write(stream, data, Utc::now());
        let framed = frame(self.io.tty, stream, data);
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.wants_stream(stream))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.send(id, &framed);
        }
    }

    fn reap_init(&mut self) {
        let Some(code) = self.init.as_ref().and_then(Child::try_reap) else {
            return;
        };
        self.init = None;
        let oom_killed = crate::cgroups::oom_killed(&self.spec.cgroup_path());
        tracing::info!(container_id = %self.spec.id, code, oom_killed, "container exited");
        self.exiting = Some(PendingExit {
            code,
            oom_killed,
            finished_at: Utc::now(),
            deadline: Instant::now() + DRAIN_TIMEOUT,
        });
    }

    /// Acts on deadlines and on finished drains.
    fn tick(&mut self) {
        let now = Instant::now();
        if let Some(p) = &self.exiting {
            if !self.io.outputs_open() || now >= p.deadline {
                self.finish();
            }
        }
        let done: Vec<u64> = self
            .execs
            .iter()
            .filter(|(_, e)| {
                e.drain_deadline
                    .is_some_and(|d| !e.io.outputs_open() || now >= d)
            })
            .map(|(n, _)| *n)
            .collect();
        for n in done {
            self.finish_exec(n);
        }
    }

    /// The main process has exited and its output is drained: record the
    /// exit, clean up, answer waiters and close the streams.
    fn finish(&mut self) {
        let Some(p) = self.exiting.take() else {
            return;
        };
        self.log.flush_partial(Utc::now());
        self.io.close_all();
        for n in self.execs.keys().copied().collect::<Vec<_>>() {
            self.reap_exec(n);
            self.finish_exec(n);
        }
        setup::teardown(&self.spec, &self.overlay, &mut self.backend);
        let exit = ExitStatus {
            code: p.code,
            oom_killed: p.oom_killed,
            started_at: self.status.started_at(),
            finished_at: p.finished_at,
        };
        if let Err(e) = write_exit(&self.spec.state_dir, &exit) {
            tracing::error!(error = %chain(&e), "cannot record the exit status");
        }
        self.status = Status::Exited(exit.clone());
        let answer = serde_json::to_value(&exit).unwrap_or_default();
        for id in self.conns.keys().copied().collect::<Vec<_>>() {
            let role = self.conns.get(&id).map(|c| c.role.clone());
            match role {
                Some(Role::Waiter) => self.respond(id, Ok(answer.clone())),
                Some(Role::Attach { .. }) | Some(Role::Exec(_)) => self.close_after_flush(id),
                _ => {}
            }
        }
        self.linger_until = Some(Instant::now() + LINGER);
    }

    fn remove_socket(&self) {
        // A new shim for the same container may already own the path.
        let ours = std::fs::metadata(SOCKET_FILE).ok().map(|m| {
            (
                std::os::unix::fs::MetadataExt::dev(&m),
                std::os::unix::fs::MetadataExt::ino(&m),
            )
        });
        if ours.is_some() && ours == self.socket_id {
            let _ = std::fs::remove_file(SOCKET_FILE);
        }
    }
}

/// Output as clients receive it: raw with a tty, else in Docker's frames.
fn frame(tty: bool, stream: u8, data: &[u8]) -> Vec<u8> {
    if tty {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(&frame_header(stream, data.len()));
    out.extend_from_slice(data);
    out
}

fn write_exit(state_dir: &Path, exit: &ExitStatus) -> Result<(), RuntimeError> {
    let data = serde_json::to_vec(exit).map_err(|e| RuntimeError::Protocol(e.to_string()))?;
    let path = state_dir.join(EXIT_FILE);
    write_atomic(&path, &data).map_err(|e| RuntimeError::io(format!("write {}", path.display()), e))
}
