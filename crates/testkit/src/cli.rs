//! Running the stock `docker` CLI and our `servin` CLI against a daemon.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::process;

/// What a CLI run produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit code; 128 + N when killed by signal N (as a shell reports it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Returns self when the command exited 0, else panics showing both
    /// streams.
    #[track_caller]
    pub fn ok(self) -> Self {
        if self.code != 0 {
            panic!("{self}");
        }
        self
    }

    /// Returns self when the command failed with exactly `code`, else panics
    /// showing both streams.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        if self.code != code {
            panic!("expected exit code {code}\n{self}");
        }
        self
    }

    /// Returns self when the command failed (any nonzero code), else panics.
    #[track_caller]
    pub fn fails(self) -> Self {
        if self.code == 0 {
            panic!("expected a failure\n{self}");
        }
        self
    }

    /// Returns self when the command failed and its stderr says `needle`,
    /// else panics showing both streams.
    #[track_caller]
    pub fn fails_with(self, needle: &str) -> Self {
        let out = self.fails();
        if !out.stderr.contains(needle) {
            panic!("expected {needle:?} in stderr\n{out}");
        }
        out
    }

    /// stdout without the trailing newline.
    pub fn out(&self) -> &str {
        self.stdout.trim_end_matches('\n')
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

/// A CLI bound to one daemon, with its own empty config dir
/// (`DOCKER_CONFIG`), so `docker login` in a test stays in the test.
pub struct Cli {
    program: PathBuf,
    host: String,
    env: Vec<(String, String)>,
    timeout: Duration,
    config: tempfile::TempDir,
}

impl Cli {
    /// The stock `docker` CLI from `PATH`, talking to `host`.
    pub fn docker(host: &str) -> Result<Cli> {
        let program = crate::which("docker").context("The docker CLI is not on PATH")?;
        Self::new(program, host)
    }

    /// Our `servin` CLI (found like [`crate::bin_path`]), talking to `host`.
    pub fn servin(host: &str) -> Result<Cli> {
        Self::new(crate::bin_path("servin")?, host)
    }

    fn new(program: PathBuf, host: &str) -> Result<Cli> {
        Ok(Cli {
            program,
            host: host.to_string(),
            env: Vec::new(),
            timeout: crate::timeout(300),
            config: crate::temp_dir("cli-config")?,
        })
    }

    /// Sets an environment variable for every run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Kills runs that take longer (default 300 s or `SERVIN_TEST_TIMEOUT`).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// The config dir the CLI uses (`DOCKER_CONFIG`).
    pub fn config_dir(&self) -> &std::path::Path {
        self.config.path()
    }

    /// Runs `PROGRAM -H HOST ARGS…` with no stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    /// Runs with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        let command = format!(
            "{} -H {} {}",
            self.program.display(),
            self.host,
            args.join(" ")
        );
        match self.spawn(args, input) {
            Ok((code, stdout, stderr)) => Output {
                command,
                code,
                stdout,
                stderr,
            },
            Err(e) => Output {
                command,
                code: 127,
                stdout: String::new(),
                stderr: format!("testkit: {e:#}"),
            },
        }
    }

    fn spawn(&self, args: &[&str], input: Option<&[u8]>) -> Result<(i32, String, String)> {
        let mut cmd = Command::new(&self.program);
        cmd.arg("-H")
            .arg(&self.host)
            .args(args)
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("SERVIN_HOST")
            .env("DOCKER_CLI_HINTS", "false")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_retrying(&mut cmd)
            .with_context(|| format!("Cannot run {}", self.program.display()))?;
        // Threads drain the pipes so a chatty command cannot block on a full
        // pipe while we wait for it.
        let stdin = child.stdin.take();
        let input = input.map(<[u8]>::to_vec);
        let feeder = std::thread::spawn(move || {
            if let (Some(mut stdin), Some(input)) = (stdin, input) {
                let _ = stdin.write_all(&input);
            }
        });
        let mut stdout = child.stdout.take().context("no stdout pipe")?;
        let mut stderr = child.stderr.take().context("no stderr pipe")?;
        let out_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        let finished = process::wait_timeout(&mut child, self.timeout);
        if !finished {
            process::kill9(&mut child);
        }
        let status = child.wait()?;
        let _ = feeder.join();
        let stdout = out_reader.join().unwrap_or_default();
        let mut stderr =
            String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
        if !finished {
            stderr.push_str(&format!("\ntestkit: killed after {:?}", self.timeout));
        }
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        Ok((code, String::from_utf8_lossy(&stdout).into_owned(), stderr))
    }
}

/// Spawns, retrying briefly on ETXTBSY: a binary written a moment ago can
/// still be open for writing in a child that another thread just forked.
fn spawn_retrying(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

/// Runs the stock `docker` CLI once against `host` with a fresh, empty
/// config dir. A missing CLI gives code 127 with the reason on stderr.
pub fn docker(host: &str, args: &[&str]) -> Output {
    run_once(Cli::docker(host), "docker", host, args)
}

/// Runs our `servin` CLI once against `host`.
pub fn servin(host: &str, args: &[&str]) -> Output {
    run_once(Cli::servin(host), "servin", host, args)
}

fn run_once(cli: Result<Cli>, name: &str, host: &str, args: &[&str]) -> Output {
    match cli {
        Ok(cli) => cli.run(args),
        Err(e) => Output {
            command: format!("{name} -H {host} {}", args.join(" ")),
            code: 127,
            stdout: String::new(),
            stderr: format!("testkit: {e:#}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("fake-cli");
        // Drop the `-H HOST` pair the harness always passes.
        std::fs::write(&path, format!("#!/bin/sh\nshift 2\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn captures_code_streams_stdin_and_signals() {
        let dir = tempfile::tempdir().unwrap();
        let cli = Cli::new(
            script(dir.path(), r#"cat; echo "$DOCKER_CONFIG" >&2; exit 3"#),
            "h",
        )
        .unwrap();
        let out = cli.run_with_stdin(&["x"], Some(b"in"));
        assert_eq!((out.code, out.out()), (3, "in"));
        assert_eq!(out.stderr.trim(), cli.config_dir().to_str().unwrap());

        let cli = Cli::new(script(dir.path(), "kill -9 $$"), "h").unwrap();
        assert_eq!(cli.run(&[]).code, 137);

        let cli = Cli::new(script(dir.path(), "exec sleep 30"), "h")
            .unwrap()
            .timeout(Duration::from_millis(200));
        let out = cli.run(&[]);
        assert_eq!(out.code, 137);
        assert!(out.stderr.contains("killed after"));
    }

    #[test]
    #[should_panic(expected = "--- stderr ---")]
    fn ok_panics_with_both_streams() {
        Output {
            command: "x".into(),
            code: 1,
            stdout: "o".into(),
            stderr: "e".into(),
        }
        .ok();
    }
}
