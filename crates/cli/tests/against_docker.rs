//! Compares `servin` with the stock `docker` CLI against the same daemon.
//!
//! Runs against `SERVIN_TEST_DOCKER_HOST` (`unix:///…`) when set, else
//! against a private Docker Engine this test starts (needs root, dockerd and
//! containerd); it imports a one-file image tagged `servin-cli-test/cmp:*`
//! there and removes it afterwards.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

const REPO: &str = "servin-cli-test/cmp";

struct Daemon {
    host: String,
    _peer: Option<servin_testkit::DockerPeer>,
}

impl Daemon {
    fn from_env() -> Option<Daemon> {
        if let Ok(host) = std::env::var("SERVIN_TEST_DOCKER_HOST") {
            return Some(Daemon { host, _peer: None });
        }
        if servin_testkit::skip_unless_tools(
            "image_commands_match_docker",
            &["docker", "dockerd", "containerd"],
        ) {
            return None;
        }
        let peer = servin_testkit::DockerPeer::start(&[]).expect("a private Docker Engine starts");
        Some(Daemon {
            host: peer.host(),
            _peer: Some(peer),
        })
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(program)
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .env_remove("DOCKER_HOST")
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
            child.stdin.take().unwrap().write_all(data).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.run("docker", args, None)
    }

    fn servin(&self, args: &[&str]) -> Output {
        self.run(env!("CARGO_BIN_EXE_servin"), args, None)
    }

    /// Same stdout, same exit status, and the same stderr once the
    /// program's name is swapped.
    fn assert_same(&self, args: &[&str]) {
        let d = self.docker(args);
        let s = self.servin(args);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert_eq!(text(&s.stdout), text(&d.stdout), "stdout of {args:?}");
        assert_eq!(s.status.code(), d.status.code(), "exit status of {args:?}");
        // Docker v28 misprints "Run" as "SRun" after "requires at most"; we don't.
        let d_err = text(&d.stderr)
            .replace("docker", "servin")
            .replace("\nSRun '", "\nRun '");
        assert_eq!(text(&s.stderr), d_err, "stderr of {args:?}");
    }
}

/// Removes the test's tags even when an assertion fails.
struct Cleanup<'a>(&'a Daemon, Vec<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let mut args = vec!["rmi", "-f"];
        args.extend(self.1.iter().map(String::as_str));
        let _ = self.0.docker(&args);
    }
}

/// A tar with one small file: enough for `docker import`.
fn tiny_rootfs() -> Vec<u8> {
    let mut header = [0u8; 512];
    let data = b"hello\n";
    header[..5].copy_from_slice(b"hello");
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    let mut block = [0u8; 512];
    block[..data.len()].copy_from_slice(data);
    tar.extend_from_slice(&block);
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

#[test]
fn image_commands_match_docker() {
    let Some(daemon) = Daemon::from_env() else {
        return;
    };
    let tag1 = format!("{REPO}:1");
    let tag2 = format!("{REPO}:2");
    let _cleanup = Cleanup(&daemon, vec![tag1.clone(), tag2.clone()]);
    let out = daemon.run(
        "docker",
        &["import", "-m", "servin test", "-", &tag1],
        Some(&tiny_rootfs()),
    );
    assert!(
        out.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(daemon.docker(&["tag", &tag1, &tag2]).status.success());

    let checks: &[&[&str]] = &[
        &["images", REPO],
        &["images", "-q", REPO],
        &["images", "--digests", REPO],
        &[
            "images",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
            REPO,
        ],
        &[
            "images",
            "--format",
            "table {{.Repository}}\t{{.Tag}}\t{{.Size}}",
            REPO,
        ],
        &[
            "images",
            "--format",
            "{{json .Containers}} {{.Size}} {{.VirtualSize}}",
            REPO,
        ],
        &["images", "--format", "{{.Nope}}", REPO],
        &["images", "--format", "{{.ID", REPO],
        &["images", "--bogus"],
        &["images", "-f", "bogus"],
        &["images", "a", "b"],
        &["image", "inspect", &tag1],
        &["image", "inspect", "--format", "json", &tag1],
        &[
            "image",
            "inspect",
            "-f",
            "{{.Comment}} {{.RepoTags}} {{json .Config.Env}} {{.Size}}",
            &tag1,
        ],
        &["image", "inspect", "-f", "{{.Nope}}", &tag1],
        &["image", "inspect", &tag1, "servin-cli-test/nosuch"],
        &["inspect", "servin-cli-test/nosuch"],
        &["rmi", "servin-cli-test/nosuch"],
        &["rmi", "-f", "servin-cli-test/nosuch"],
        &["tag", "servin-cli-test/nosuch", "x"],
        &["tag", &tag1, "Bad:x"],
        &["pull"],
        &["save"],
        &["load", "extra"],
        &[
            "info",
            "--format",
            "{{.ServerVersion}} {{json .Plugins.Volume}}",
        ],
        &["version", "--format", "{{.Server.Version}}"],
    ];
    for args in checks {
        daemon.assert_same(args);
    }

    let saved_d = daemon.docker(&["save", &tag1]);
    let saved_s = daemon.servin(&["save", &tag1]);
    assert!(saved_s.status.success());
    assert_eq!(
        saved_s.stdout.len(),
        saved_d.stdout.len(),
        "save output size"
    );

    let removed = daemon.servin(&["rmi", &tag2]);
    assert_eq!(
        String::from_utf8_lossy(&removed.stdout),
        format!("Untagged: {tag2}\n")
    );
    let removed = daemon.servin(&["rmi", &tag1]);
    assert!(removed.status.success());
    let text = String::from_utf8_lossy(&removed.stdout);
    assert!(
        text.starts_with(&format!("Untagged: {tag1}\nDeleted: sha256:")),
        "{text}"
    );
}
