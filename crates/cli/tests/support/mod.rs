//! What the comparison tests share: a Docker Engine to talk to (the one
//! named by `SERVIN_TEST_DOCKER_HOST`, else a private one started here, which
//! needs root, dockerd and containerd), and running `docker` and `servin`
//! side by side against it.

#![allow(dead_code)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

pub struct Daemon {
    pub host: String,
    _peer: Option<servin_testkit::DockerPeer>,
}

impl Daemon {
    /// The daemon to compare against, or `None` (test skipped) when it
    /// cannot be had.
    pub fn from_env(test: &str) -> Option<Daemon> {
        if let Ok(host) = std::env::var("SERVIN_TEST_DOCKER_HOST") {
            return Some(Daemon { host, _peer: None });
        }
        if servin_testkit::skip_unless_tools(test, &["docker", "dockerd", "containerd"]) {
            return None;
        }
        let peer = servin_testkit::DockerPeer::start(&[]).expect("a private Docker Engine starts");
        Some(Daemon {
            host: peer.host(),
            _peer: Some(peer),
        })
    }

    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(program)
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("SERVIN_HOST")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if let Some(data) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(data).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.run("docker", args, None)
    }

    pub fn servin(&self, args: &[&str]) -> Output {
        self.run(env!("CARGO_BIN_EXE_servin"), args, None)
    }

    /// Runs docker and asserts it worked.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Same stdout, same exit status, and the same stderr once the
    /// program's name is swapped.
    pub fn assert_same(&self, args: &[&str]) {
        self.assert_same_in(args, None);
    }

    /// [`Daemon::assert_same`] for a read-only command whose output tells
    /// the time ("Less than a second ago"): docker runs before and after
    /// servin, and the comparison is made when docker's two answers agree
    /// (a second boundary crossed between the tools is not a difference).
    pub fn assert_same_read_only(&self, args: &[&str]) {
        for _ in 0..3 {
            let before = self.docker(args);
            let s = self.servin(args);
            let after = self.docker(args);
            if before.stdout == after.stdout && before.stderr == after.stderr {
                return assert_outputs(args, &before, &s, &[]);
            }
        }
        panic!("docker {args:?} never answered the same twice in a row");
    }

    /// The same, both reading `stdin`.
    pub fn assert_same_in(&self, args: &[&str], stdin: Option<&[u8]>) {
        let d = self.run("docker", args, stdin);
        let s = self.run(env!("CARGO_BIN_EXE_servin"), args, stdin);
        assert_outputs(args, &d, &s, &[]);
    }
}

/// Compares outputs; `swaps` are `(docker's text, servin's text)` that may
/// differ (a container name or ID each tool worked on).
pub fn assert_outputs(args: &[&str], d: &Output, s: &Output, swaps: &[(&str, &str)]) {
    let mut d_out = text(&d.stdout);
    let mut d_err = normalize_stderr(&text(&d.stderr));
    for (from, to) in swaps {
        d_out = d_out.replace(from, to);
        d_err = d_err.replace(from, to);
    }
    assert_eq!(text(&s.stdout), d_out, "stdout of {args:?}");
    assert_eq!(s.status.code(), d.status.code(), "exit status of {args:?}");
    assert_eq!(text(&s.stderr), d_err, "stderr of {args:?}");
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Docker's stderr as servin words it: our name for docker's, and without
/// v28's misprint of "Run" as "SRun" after "requires at most".
pub fn normalize_stderr(s: &str) -> String {
    s.replace("docker", "servin")
        .replace("Docker", "Servin")
        .replace("\nSRun '", "\nRun '")
}
