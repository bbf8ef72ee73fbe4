//! `servin-init`: PID 1 of Servin's guest (see docs/vm-guest-contract.md,
//! "What init does"). It mounts the basics, sets the clock, loads the
//! modules, prepares the data disk, mounts the shares, brings up the
//! network, supervises `servind`, serves the control and relay ports and reaps every
//! orphan. Anything it cannot do that the guest needs ends in a message on
//! the console and a power off, never in a kernel panic loop.

mod control;
mod disk;
mod engine;
mod net;
mod relay;
mod root;
mod setup;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use servin_guest::contract::{BootArgs, CONSOLE_PREFIX};

/// Prints one line on the console (init's stdout is `/dev/console`).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console_line(&format!($($arg)*))
    };
}
pub(crate) use say;

/// Seconds since the kernel started (`/proc/uptime`), for the boot's
/// timings on the console.
pub(crate) fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Where the boot's time went, printed with the engine's ready line:
/// each step's end, in seconds since the kernel started.
#[derive(Default)]
pub(crate) struct BootTimes(Mutex<Vec<(&'static str, f64)>>);

impl BootTimes {
    pub(crate) fn mark(&self, step: &'static str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((step, uptime()));
    }

    pub(crate) fn summary(&self) -> String {
        let steps = self.0.lock().unwrap_or_else(|e| e.into_inner());
        steps
            .iter()
            .map(|(step, t)| format!("{step} {t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub(crate) fn console_line(msg: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{CONSOLE_PREFIX}{msg}");
    let _ = out.flush();
}

/// Children whose exit someone waits for. PID 1 reaps every process
/// (`waitpid(-1)`), so nobody else may call `wait`: spawners register the
/// pid here (under the lock, at spawn) and get its status through a channel.
#[derive(Default)]
pub(crate) struct Children {
    waiters: Mutex<HashMap<i32, mpsc::Sender<i32>>>,
}

impl Children {
    /// Spawns `cmd` and returns its pid and a receiver of its exit status
    /// (the code, or 128 + signal).
    pub(crate) fn spawn(
        &self,
        cmd: &mut std::process::Command,
    ) -> std::io::Result<(i32, mpsc::Receiver<i32>)> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd.spawn()?;
        let pid = child.id() as i32;
        // Dropping `Child` neither waits nor kills: the reaper owns the exit.
        drop(child);
        let (tx, rx) = mpsc::channel();
        waiters.insert(pid, tx);
        Ok((pid, rx))
    }

    fn reaped(&self, pid: i32, status: i32) {
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid);
        if let Some(tx) = waiter {
            let _ = tx.send(status);
        }
    }
}

/// Reaps every child and orphan for ever.
fn reap(children: &Children) -> ! {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) => children.reaped(pid.as_raw(), code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                children.reaped(pid.as_raw(), 128 + sig as i32)
            }
            Ok(_) => {}
            Err(nix::errno::Errno::ECHILD) => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(_) => {}
        }
    }
}

fn main() {
    if std::process::id() != 1 {
        eprintln!("servin-init is the guest's PID 1; it does not run anywhere else");
        std::process::exit(2);
    }
    if root::on_initramfs() {
        let Err(e) = root::switch();
        say!("error: {e}");
        setup::power_off();
    }
    if let Err(e) = setup::mount_basics() {
        say!("error: {e}");
        setup::power_off();
    }
    let times = Arc::new(BootTimes::default());
    times.mark("init");
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let args = match BootArgs::parse(&cmdline) {
        Ok(a) => a,
        Err(e) => {
            say!("error: {e}");
            setup::power_off();
        }
    };
    if let Some(t) = args.time {
        if let Err(e) = setup::set_clock(t) {
            say!("warning: cannot set the clock: {e}");
        }
    }
    setup::load_modules(&cmdline);
    times.mark("modules");
    if let Err(e) = disk::prepare() {
        say!("error: {e}");
        setup::power_off();
    }
    for share in &args.shares {
        if let Err(e) = setup::mount_share(share) {
            say!("warning: {e}");
        }
    }
    times.mark("disks");
    if let Err(e) = net::configure() {
        say!("warning: network: {e}");
    }
    setup::write_etc();
    times.mark("network");

    let children = Arc::new(Children::default());
    let engine = Arc::new(engine::Engine::new(args.engine_port, times));
    {
        let (children, engine) = (children.clone(), engine.clone());
        std::thread::spawn(move || engine.supervise(&children));
    }
    {
        let (children, engine) = (children.clone(), engine.clone());
        let port = args.control_port;
        std::thread::spawn(move || control::serve(port, children, engine));
    }
    std::thread::spawn(|| relay::serve(servin_guest::contract::RELAY_PORT));
    reap(&children)
}
