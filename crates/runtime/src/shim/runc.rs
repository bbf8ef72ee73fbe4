//! An external runc-compatible runtime, driven through its command line
//! with its state under `STATE_DIR/runc`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::backend::Stdio;
use crate::error::RuntimeError;
use crate::lookup::classify_runtime_error;

pub struct Runc {
    bin: PathBuf,
    root: PathBuf,
    log: PathBuf,
    state_dir: PathBuf,
    id: String,
}

impl Runc {
    pub fn new(bin: &Path, state_dir: &Path, id: &str) -> Runc {
        Runc {
            bin: bin.to_path_buf(),
            root: state_dir.join("runc"),
            log: state_dir.join("runc.log"),
            state_dir: state_dir.to_path_buf(),
            id: id.to_string(),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        c
    }

    /// Runs `cmd`, turning a failure into an error carrying runc's own message.
    fn run(&self, op: &'static str, mut cmd: Command) -> Result<(), RuntimeError> {
        let before = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let status = cmd
            .status()
            .map_err(|e| RuntimeError::io(format!("run {}", self.bin.display()), e))?;
        if status.success() {
            return Ok(());
        }
        let message = self
            .errors_since(before)
            .unwrap_or_else(|| format!("runc {op} exited with {status}"));
        Err(classify_runtime_error(op, message))
    }

    /// The `error`-level messages runc logged after byte `offset` of its log.
    fn errors_since(&self, offset: u64) -> Option<String> {
        let data = std::fs::read(&self.log).ok()?;
        let start = usize::try_from(offset).unwrap_or(0).min(data.len());
        let msgs: Vec<String> = String::from_utf8_lossy(&data[start..])
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
            .filter_map(|v| v["msg"].as_str().map(str::to_string))
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    }

    /// `runc <op> [args] ID`.
    pub fn simple(&self, op: &'static str, args: &[&str]) -> Result<(), RuntimeError> {
        let mut cmd = self.command();
        cmd.arg(op).args(args).arg(&self.id);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        self.run(op, cmd)
    }

    fn with_stdio(cmd: &mut Command, stdio: Stdio) {
        match stdio {
            Stdio::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                cmd.stdin(stdin).stdout(stdout).stderr(stderr);
            }
            Stdio::Console(path) => {
                cmd.arg("--console-socket").arg(path);
                cmd.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            }
        }
    }

    fn read_pid(&self, file: &Path) -> Result<i32, RuntimeError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| RuntimeError::io(format!("read {}", file.display()), e))?;
        let _ = std::fs::remove_file(file);
        text.trim().parse().map_err(|_| RuntimeError::Oci {
            op: "create",
            message: format!("runc wrote no pid to {}", file.display()),
        })
    }

    pub fn create(&mut self, bundle: &Path, stdio: Stdio) -> Result<i32, RuntimeError> {
        let pid_file = self.state_dir.join("runc-init.pid");
        let mut cmd = self.command();
        cmd.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file);
        Self::with_stdio(&mut cmd, stdio);
        cmd.arg(&self.id);
        self.run("create", cmd)?;
        self.read_pid(&pid_file)
    }

    pub fn exec(&mut self, process_json: &Path, stdio: Stdio) -> Result<i32, RuntimeError> {
        let pid_file = process_json.with_extension("pid");
        let mut cmd = self.command();
        cmd.arg("exec")
            .arg("--detach")
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--process")
            .arg(process_json);
        Self::with_stdio(&mut cmd, stdio);
        cmd.arg(&self.id);
        self.run("exec", cmd)?;
        self.read_pid(&pid_file)
    }
}
