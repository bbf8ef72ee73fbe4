//! Compares `servin`'s container and volume commands with the stock `docker`
//! CLI against the same Docker Engine (see `support`): output, errors and
//! exit statuses of `run`, `exec`, `logs`, `ps`, `inspect`, `cp`, … on the
//! same containers. Imports a busybox image tagged
//! `servin-cli-test/busybox:1`; removes it and every container and volume
//! it made afterwards.

mod support;

use std::process::Output;

use support::{assert_outputs, text, Daemon};

const IMAGE: &str = "servin-cli-test/busybox:1";
const LABEL: &str = "servin-cli-test=containers";
/// What the stdin checks send.
const INPUT: &[u8] = b"line1\nline2\n";

/// Removes what the test made even when an assertion fails.
struct Cleanup<'a>(&'a Daemon);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let d = self.0;
        let ids = text(
            &d.docker(&["ps", "-aq", "--filter", &format!("label={LABEL}")])
                .stdout,
        );
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids.split_whitespace());
        if args.len() > 3 {
            let _ = d.docker(&args);
        }
        let _ = d.docker(&["volume", "rm", "-f", "servin-cli-test-vol"]);
        let _ = d.docker(&["rmi", "-f", IMAGE]);
    }
}

/// `/bin/busybox` with its applets and a plain data file, as a tar for
/// `docker import`.
fn busybox_rootfs() -> Option<Vec<u8>> {
    let busybox = std::fs::read("/bin/busybox").ok()?;
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        b.append_data(&mut h, path, data).unwrap();
    };
    for dir in ["bin", "etc", "tmp", "data"] {
        add(dir, tar::EntryType::Directory, 0o755, b"", None);
    }
    add(
        "bin/busybox",
        tar::EntryType::Regular,
        0o755,
        &busybox,
        None,
    );
    for applet in servin_testkit::BUSYBOX_APPLETS {
        add(
            &format!("bin/{applet}"),
            tar::EntryType::Symlink,
            0o777,
            b"",
            Some("busybox"),
        );
    }
    add(
        "etc/passwd",
        tar::EntryType::Regular,
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n",
        None,
    );
    add(
        "data/notes.txt",
        tar::EntryType::Regular,
        0o644,
        b"plain data\n",
        None,
    );
    Some(b.into_inner().unwrap())
}

/// Each tool works on its own container, named `{base}-docker` and
/// `{base}-servin`; outputs must match once the names are swapped.
fn assert_same_each(d: &Daemon, base: &str, args: &[&str], setup: &dyn Fn(&str)) {
    let names = [format!("{base}-docker"), format!("{base}-servin")];
    let outputs: Vec<Output> = names
        .iter()
        .map(|name| {
            setup(name);
            let args: Vec<String> = args.iter().map(|a| a.replace("{}", name)).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if name.ends_with("-docker") {
                d.docker(&args)
            } else {
                d.servin(&args)
            }
        })
        .collect();
    assert_outputs(args, &outputs[0], &outputs[1], &[(&names[0], &names[1])]);
}

#[test]
fn container_commands_match_docker() {
    let Some(d) = Daemon::from_env("container_commands_match_docker") else {
        return;
    };
    let Some(rootfs) = busybox_rootfs() else {
        servin_testkit::skip("container_commands_match_docker", "no /bin/busybox");
        return;
    };
    let _cleanup = Cleanup(&d);
    let out = d.run(
        "docker",
        &["import", "-c", "CMD [\"sh\"]", "-", IMAGE],
        Some(&rootfs),
    );
    assert!(out.status.success(), "docker import: {}", text(&out.stderr));

    run_checks(&d);
    detached_checks(&d);
    read_only_checks(&d);
    lifecycle_checks(&d);
    cp_checks(&d);
    pull_checks(&d);
    volume_checks(&d);
}

/// run: output, streams, exit statuses and errors.
fn run_checks(d: &Daemon) {
    for args in [
        &["run", "--rm", IMAGE, "echo", "hello"][..],
        &[
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        &["run", "--rm", IMAGE, "nonexist"],
        &["run", "--rm", IMAGE, "/data/notes.txt"],
        &["run", "--rm", "-t", IMAGE, "echo", "tty"],
        &[
            "run",
            "--rm",
            "-e",
            "A=1",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "--entrypoint",
            "sh",
            IMAGE,
            "-c",
            "echo $A $(pwd) $(id -u)",
        ],
        &[
            "run",
            "--rm",
            "--hostname",
            "h1",
            "--read-only",
            "--tmpfs",
            "/run",
            IMAGE,
            "sh",
            "-c",
            "hostname; touch /x 2>/dev/null || echo ro; touch /run/y && echo tmpfs",
        ],
        &[
            "run",
            "--rm",
            "-a",
            "stdout",
            IMAGE,
            "sh",
            "-c",
            "echo seen; echo unseen >&2",
        ],
        &["run", "--memory=lots", IMAGE, "true"],
        &["run", "--cpus=abc", IMAGE, "true"],
        &["run", "--stop-timeout", "x", IMAGE, "true"],
        &["run", "--rm", "--restart=always", IMAGE],
        &["run", "--restart=on-failure:x", IMAGE],
        &["run", "--pull=bogus", IMAGE],
        &["run", "--rm", "--link", "nosuch:x", IMAGE, "true"],
        &["run", "--rm", "--link", "a:b:c", IMAGE, "true"],
        &["run", "--rm", "--sysctl", "vm.swappiness=1", IMAGE, "true"],
        &[
            "run",
            "--rm",
            "--sysctl",
            "net.core.somaxconn",
            IMAGE,
            "true",
        ],
        &["run", "--pull=never", "servin-cli-test/nosuch:1"],
        &["run", "Bad:x"],
        &["run", "--bogus", IMAGE],
        &["run", "-e"],
        &["run"],
        &["create", "--pull=never", "servin-cli-test/nosuch:1"],
        &["create", "Bad:x"],
    ] {
        d.assert_same(args);
    }
    d.assert_same_in(&["run", "--rm", "-i", IMAGE, "cat"], Some(INPUT));
    d.assert_same_in(
        &["run", "--rm", "-i", IMAGE, "sh", "-c", "cat; echo done >&2"],
        Some(INPUT),
    );
    d.assert_same_in(&["run", "--rm", "-it", IMAGE, "cat"], Some(INPUT));
}

/// -d prints the full ID; the containers behind it are alike.
fn detached_checks(d: &Daemon) {
    let detached = |name: &str| {
        let _ = d.docker(&["rm", "-f", name]);
        let args = [
            "run", "-d", "--name", name, "--label", LABEL, IMAGE, "sleep", "1000",
        ];
        let out = if name.ends_with("-servin") {
            d.servin(&args)
        } else {
            d.docker(&args)
        };
        assert!(out.status.success(), "{}", text(&out.stderr));
        let id = text(&out.stdout);
        let id = id.trim();
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id:?}"
        );
    };
    assert_same_each(
        d,
        "cmp-detached",
        &[
            "ps",
            "-a",
            "--filter",
            "name={}",
            "--format",
            "{{.Names}} {{.State}} {{.Command}} {{.Labels}}",
        ],
        &detached,
    );
}

/// Read-only views of the same containers.
fn read_only_checks(d: &Daemon) {
    let label = ["--label", LABEL];
    d.docker_ok(
        &[
            &["create", "--name", "cmp-created"][..],
            &label,
            &[
                "-e",
                "X=1",
                "-p",
                "8080:80",
                "-p",
                "127.0.0.1:9000:9000/udp",
                "--expose",
                "7000-7001",
                "-v",
                "/tmp:/host:ro",
                IMAGE,
                "sh",
                "-c",
                "echo created",
            ],
        ]
        .concat(),
    );
    let out = d.docker(
        &[
            &["run", "--name", "cmp-exited"][..],
            &label,
            &[IMAGE, "sh", "-c", "echo a; echo b >&2; echo c; exit 2"],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(2));
    d.docker_ok(
        &[
            &["run", "-d", "--name", "cmp-running"][..],
            &label,
            &[IMAGE, "sh", "-c", "echo started; exec sleep 1000"],
        ]
        .concat(),
    );
    let filter = format!("label={LABEL}");
    for args in [
        &["ps", "-a", "--filter", &filter, "--format", "table {{.Names}}\t{{.Image}}\t{{.Command}}\t{{.State}}\t{{.Ports}}"][..],
        &["ps", "-a", "--filter", &filter, "--no-trunc", "--format", "{{.Names}} {{.Command}} {{.Labels}} {{.Mounts}}"],
        &["ps", "-a", "-q", "--filter", &filter],
        &["ps", "--filter", &filter, "--format", "{{.Names}}"],
        &["ps", "-a", "-n", "2", "--filter", &filter, "--format", "{{.Names}}"],
        &["ps", "-l", "--format", "{{.Names}} {{.State}}"],
        &["ps", "--format", "{{.Nope}}"],
        &["ps", "-f", "bogus"],
        &["ps", "x"],
        &["container", "ls", "-a", "--filter", &filter, "--format", "{{.ID}}"],
        &["inspect", "cmp-created"],
        &["inspect", "cmp-created", IMAGE],
        &["container", "inspect", "-f", "{{.Name}} {{.State.Status}} {{json .Config.Env}} {{json .HostConfig.PortBindings}} {{.Config.Labels}}", "cmp-created", "cmp-exited"],
        &["container", "inspect", "cmp-created", IMAGE],
        &["inspect", "--type", "container", "servin-cli-test-nosuch"],
        &["inspect", "servin-cli-test-nosuch"],
        &["inspect", "--type", "bogus", "x"],
        &["logs", "cmp-exited"],
        &["logs", "--tail", "1", "cmp-exited"],
        &["logs", "--since", "bogus", "cmp-exited"],
        &["logs", "servin-cli-test-nosuch"],
        &["logs"],
        &["port", "cmp-created"],
        &["port", "cmp-created", "80"],
        &["port", "cmp-created", "81"],
        &["port", "cmp-created", "x"],
        &["port"],
        &["top", "cmp-running", "-o", "pid,comm"],
        &["wait", "cmp-exited"],
        &["wait", "servin-cli-test-nosuch"],
        &["stats", "--no-stream", "--format", "{{.Container}}", "cmp-running"],
        &["stats", "--no-stream", "cmp-running", "servin-cli-test-nosuch"],
        &["exec", "cmp-running", "echo", "hi"],
        &["exec", "cmp-running", "sh", "-c", "exit 4"],
        &["exec", "cmp-running", "nonexist"],
        &["exec", "-e", "A=1", "-w", "/tmp", "-u", "1000", "cmp-running", "sh", "-c", "echo $A $(pwd) $(id -u)"],
        &["exec", "-t", "cmp-running", "echo", "tty"],
        &["exec", "servin-cli-test-nosuch", "true"],
        &["exec", "cmp-exited", "true"],
        &["exec", "cmp-running"],
        &["attach", "cmp-exited"],
        &["stop", "servin-cli-test-nosuch"],
        &["kill", "servin-cli-test-nosuch", "cmp-exited"],
        &["start", "servin-cli-test-nosuch"],
        &["restart", "servin-cli-test-nosuch"],
        &["pause", "servin-cli-test-nosuch"],
        &["unpause", "cmp-running"],
        &["rm", "servin-cli-test-nosuch"],
        &["rm", "-f", "servin-cli-test-nosuch"],
        &["rm", "cmp-running"],
        &["rename", "servin-cli-test-nosuch", "x"],
        &["rename", "a"],
        &["cp", "servin-cli-test-nosuch:/x", "/tmp"],
        &["cp", "cmp-exited:/nonexist", "/tmp"],
        &["cp", "a:/x", "b:/y"],
        &["cp", "a", "b"],
        &["cp", "cmp-exited:/data/notes.txt", "-"],
        &["events", "--since", "1s", "--until", "0s", "--format", "{{.Nope}}"],
        &["events", "--since", "bogus"],
    ] {
        d.assert_same(args);
    }
    d.assert_same_in(&["exec", "-i", "cmp-running", "cat"], Some(INPUT));
    d.assert_same(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "container=cmp-exited",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
}

/// Lifecycle verbs, each tool on its own container.
fn lifecycle_checks(d: &Daemon) {
    let sleeper = |name: &str| {
        let _ = d.docker(&["rm", "-f", name]);
        d.docker_ok(&[
            "run", "-d", "--name", name, "--label", LABEL, IMAGE, "sleep", "1000",
        ]);
    };
    let created = |name: &str| {
        let _ = d.docker(&["rm", "-f", name]);
        d.docker_ok(&[
            "create",
            "--name",
            name,
            "--label",
            LABEL,
            IMAGE,
            "sh",
            "-c",
            "echo from-start; exit 6",
        ]);
    };
    assert_same_each(d, "cmp-stop", &["stop", "-t", "1", "{}"], &sleeper);
    assert_same_each(d, "cmp-kill", &["kill", "-s", "TERM", "{}"], &sleeper);
    assert_same_each(d, "cmp-pause", &["pause", "{}"], &sleeper);
    assert_same_each(d, "cmp-pause", &["unpause", "{}"], &|_| {});
    assert_same_each(d, "cmp-restart", &["restart", "-t", "1", "{}"], &sleeper);
    assert_same_each(d, "cmp-rm", &["rm", "-f", "{}"], &sleeper);
    assert_same_each(d, "cmp-start", &["start", "{}"], &created);
    assert_same_each(d, "cmp-start-a", &["start", "-a", "{}"], &created);
    assert_same_each(d, "cmp-rename", &["rename", "{}", "{}-renamed"], &created);
    assert_same_each(
        d,
        "cmp-rename",
        &["inspect", "-f", "{{.Name}}", "{}-renamed"],
        &|_| {},
    );
}

/// cp both ways: what arrives is the same.
fn cp_checks(d: &Daemon) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src/sub")).unwrap();
    std::fs::write(dir.path().join("src/sub/f.txt"), b"hello\n").unwrap();
    let src = dir.path().join("src");
    let src = src.to_str().unwrap();
    for (tool, target) in [("docker", "/in-docker"), ("servin", "/in-servin")] {
        let arg = format!("cmp-running:{target}");
        let out = match tool {
            "docker" => d.docker(&["cp", src, &arg]),
            _ => d.servin(&["cp", src, &arg]),
        };
        assert!(out.status.success(), "{tool} cp: {}", text(&out.stderr));
    }
    d.assert_same(&["exec", "cmp-running", "sh", "-c", "cat /in-docker/sub/f.txt /in-servin/sub/f.txt; ls -R /in-docker | sed s/docker/X/; ls -R /in-servin | sed s/servin/X/"]);
    let from = dir.path().join("from");
    std::fs::create_dir(&from).unwrap();
    for tool in ["docker", "servin"] {
        let dst = from.join(tool);
        let dst = dst.to_str().unwrap();
        let out = match tool {
            "docker" => d.docker(&["cp", "cmp-running:/in-docker", dst]),
            _ => d.servin(&["cp", "cmp-running:/in-docker", dst]),
        };
        assert!(out.status.success(), "{tool} cp: {}", text(&out.stderr));
        assert_eq!(
            std::fs::read(from.join(tool).join("sub/f.txt")).unwrap(),
            b"hello\n"
        );
    }
}

/// A missing image is pulled first, its progress on stderr.
fn pull_checks(d: &Daemon) {
    if let Ok(registry) = servin_testkit::Registry::start() {
        let remote = registry.reference("servin-cli-test/pulled:1");
        d.docker_ok(&["tag", IMAGE, &remote]);
        d.docker_ok(&["push", &remote]);
        for args in [
            &["run", "--rm", &remote, "echo", "pulled"][..],
            &["run", "--rm", "-q", &remote, "echo", "quietly"],
            &["run", "--rm", "--pull=always", &remote, "echo", "again"],
            &[
                "run",
                "--rm",
                &registry.reference("servin-cli-test/pulled:nosuch"),
            ],
        ] {
            let _ = d.docker(&["rmi", &remote]);
            let docker = d.docker(args);
            let _ = d.docker(&["rmi", &remote]);
            let servin = d.servin(args);
            assert_outputs(args, &docker, &servin, &[]);
        }
        let _ = d.docker(&["rmi", &remote]);
    }
}

/// Volumes.
fn volume_checks(d: &Daemon) {
    d.assert_same(&["volume", "inspect", "servin-cli-test-vol"]);
    let out = d.servin(&["volume", "create", "--label", "a=b", "servin-cli-test-vol"]);
    assert_eq!(
        text(&out.stdout),
        "servin-cli-test-vol\n",
        "{}",
        text(&out.stderr)
    );
    for args in [
        &["volume", "inspect", "servin-cli-test-vol"][..],
        &[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Labels}} {{.Options}}",
            "servin-cli-test-vol",
        ],
        &["volume", "ls", "--filter", "name=servin-cli-test-vol"],
        &["volume", "ls", "-q", "--filter", "name=servin-cli-test-vol"],
        &[
            "volume",
            "ls",
            "--format",
            "json",
            "--filter",
            "name=servin-cli-test-vol",
        ],
        &["volume", "create", "a", "b"],
        &["volume", "ls", "x"],
    ] {
        d.assert_same(args);
    }
    d.assert_same(&[
        "run",
        "--rm",
        "-v",
        "servin-cli-test-vol:/v",
        IMAGE,
        "sh",
        "-c",
        "echo data > /v/f; cat /v/f",
    ]);
    let out = d.servin(&[
        "volume",
        "rm",
        "servin-cli-test-vol",
        "servin-cli-test-nosuch",
    ]);
    assert_eq!(text(&out.stdout), "servin-cli-test-vol\n");
    assert_eq!(out.status.code(), Some(1));
}
