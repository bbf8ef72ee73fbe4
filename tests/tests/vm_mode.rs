//! VM mode end to end: `servind --mode vm` on a temp data root, driven by
//! the stock docker CLI and `servin vm`, with the guest image from
//! scripts/build-guest booting under QEMU (TCG on this kind of host).
//!
//! Needs root, qemu-system-x86_64, qemu-img, vhost-device-vsock, a virtiofsd,
//! skopeo, docker and the guest image (target/guest or $SERVIN_GUEST_DIR);
//! without them the boot test says why on stderr and passes, unless
//! SERVIN_REQUIRE_VM=1, where the skip fails. The bad-input tests need no VM.

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use common::{
    free_port, free_udp_port, run_udp_echo, udp_ask_until_answered, udp_ask_until_answered_at,
};
use servin_testkit::{Cli, Daemon, DaemonOpts, Fixture, LeakCheck};

/// The guest image the daemon will use: `$SERVIN_GUEST_DIR`, else the
/// workspace's `target/guest`.
fn guest_dir() -> PathBuf {
    match std::env::var_os("SERVIN_GUEST_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guest"),
    }
}

/// Commands in VM mode may wait for a boot under emulation: a hang guard,
/// not a speed check.
const VM_COMMAND_LIMIT: Duration = Duration::from_secs(600);

fn vm_daemon(extra_env: &[(&str, &str)]) -> Daemon {
    let mut opts = DaemonOpts::default().arg("--mode").arg("vm");
    for (k, v) in extra_env {
        opts = opts.env(k, v);
    }
    Daemon::start(opts).expect("servind --mode vm starts")
}

fn status_json(servin: &Cli) -> serde_json::Value {
    let out = servin.run(&["vm", "status", "--format", "json"]).ok();
    serde_json::from_str(out.out()).expect("status is JSON")
}

#[test]
fn containers_run_in_the_vm_through_the_stock_docker_cli() {
    servin_testkit::require_tools!(
        "qemu-system-x86_64",
        "qemu-img",
        "vhost-device-vsock",
        "skopeo",
        "docker",
        "servind",
        "servin"
    );
    if !nix_is_root()
        && servin_testkit::skip(module_path!(), "needs root (QEMU's helpers, virtiofsd)")
    {
        return;
    }
    let guest = guest_dir();
    let image_missing = !guest.join("vmlinuz").is_file() || !guest.join("initramfs.img").is_file();
    if image_missing
        && servin_testkit::skip(
            module_path!(),
            &format!(
                "no guest image in {} (run scripts/build-guest)",
                guest.display()
            ),
        )
    {
        return;
    }
    let guest_env = guest.display().to_string();
    let mut daemon = vm_daemon(&[("SERVIN_GUEST_DIR", &guest_env)]);
    let leaks = LeakCheck::new(daemon.dir()).without_fds();
    let docker = Cli::docker(&daemon.host())
        .unwrap()
        .timeout(VM_COMMAND_LIMIT);
    let servin = Cli::servin(&daemon.host())
        .unwrap()
        .timeout(VM_COMMAND_LIMIT);

    // The image goes in with `docker load`: the guest reaches the host only
    // through 10.0.2.2, where the test registry is not served as insecure.
    let fixture = Fixture::busybox().unwrap();
    let archive = daemon.dir().join("busybox.tar");
    let copy = std::process::Command::new("skopeo")
        .arg("copy")
        .arg(fixture.oci_ref())
        .arg(format!(
            "docker-archive:{}:busybox:latest",
            archive.display()
        ))
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );

    let start = servin.run(&["vm", "start"]).ok();
    assert!(start.stderr.contains("The VM is running."), "{start}");
    let status = status_json(&servin);
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["provider"], "qemu");
    assert!(status["guest_version"].is_string(), "{status}");
    assert!(status["host_memory"].as_u64().unwrap_or(0) > 0, "{status}");

    docker.run(&["load", "-i", archive.to_str().unwrap()]).ok();

    // The data disk survives a VM restart, and grows (file and filesystem)
    // when the configuration says so.
    let before = status_json(&servin)["disk_size"].as_u64().unwrap();
    let data_root = daemon.data_root().display().to_string();
    servin
        .run(&["vm", "config", "--data-root", &data_root, "disk=24GiB"])
        .ok();
    let restart = servin.run(&["vm", "restart"]).ok();
    assert!(restart.stderr.contains("The VM is running."), "{restart}");
    let after = status_json(&servin)["disk_size"].as_u64().unwrap();
    assert!(
        after > before + (3 << 30),
        "the guest's filesystem did not grow with the disk: {before} -> {after}"
    );
    let images = docker
        .run(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    assert!(
        images.out().lines().any(|l| l == "busybox:latest"),
        "{images}"
    );

    // kill -9 of QEMU: the daemon notices and boots a new VM, and a
    // container with a restart policy comes back in it.
    docker
        .run(&[
            "run",
            "-d",
            "--name",
            "keep",
            "--restart",
            "always",
            "busybox",
            "sleep",
            "1000",
        ])
        .ok();
    let before = status_json(&servin)["pid"].as_u64().expect("a QEMU pid");
    let pid = i32::try_from(before).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + VM_COMMAND_LIMIT;
    let recovered = loop {
        let s = status_json(&servin);
        if s["state"] == "running" && s["pid"].as_u64().is_some_and(|p| p != before) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        recovered,
        "no new VM after QEMU was killed\n{}",
        daemon.log()
    );
    let images = docker
        .run(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    assert!(
        images.out().lines().any(|l| l == "busybox:latest"),
        "{images}"
    );
    let deadline = Instant::now() + VM_COMMAND_LIMIT;
    let state = loop {
        let state = docker
            .run(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.Error}}",
                "keep",
            ])
            .ok();
        if state.out().starts_with("running") || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        state.out().trim(),
        "running",
        "--restart always after the VM died"
    );
    docker.run(&["rm", "-f", "keep"]).ok();

    let hello = docker
        .run(&["run", "--rm", "busybox", "echo", "hello"])
        .ok();
    assert_eq!(hello.out(), "hello");

    // The default seccomp profile is enforced in the guest (static
    // libseccomp), and limits land in the guest's cgroup v2 tree.
    let seccomp = docker
        .run(&[
            "run",
            "--rm",
            "busybox",
            "grep",
            "Seccomp:",
            "/proc/self/status",
        ])
        .ok();
    assert_eq!(seccomp.out(), "Seccomp:\t2");
    let memory = docker
        .run(&[
            "run",
            "--rm",
            "-m",
            "64m",
            "busybox",
            "cat",
            "/sys/fs/cgroup/memory.max",
        ])
        .ok();
    assert_eq!(memory.out(), "67108864");

    // Detached, logs, exec.
    docker
        .run(&[
            "run",
            "-d",
            "--name",
            "bg",
            "busybox",
            "sh",
            "-c",
            "echo started; sleep 1000",
        ])
        .ok();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !docker.run(&["logs", "bg"]).stdout.contains("started") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(docker.run(&["logs", "bg"]).ok().out(), "started");
    assert_eq!(
        docker.run(&["exec", "bg", "echo", "in-exec"]).ok().out(),
        "in-exec"
    );
    docker.run(&["rm", "-f", "bg"]).ok();

    // stdin to its end: the client's half-close reaches the guest (through
    // init's relay), so `cat` ends and its output is whole.
    let echoed = docker.run_with_stdin(
        &["run", "--rm", "-i", "busybox", "cat"],
        Some(b"through the relay\n"),
    );
    assert_eq!(echoed.code, 0, "{echoed}");
    assert_eq!(echoed.out(), "through the relay");

    // A published port answers on the host's loopback as natively, shows in
    // `docker port`, and closes when the container stops.
    let port = free_port();
    let publish = format!("{port}:80");
    let web = docker
        .run(&[
            "run", "-d", "--name", "web", "-p", &publish, "busybox", "busybox", "httpd", "-f",
            "-p", "80", "-h", "/etc",
        ])
        .ok();
    let id = web.out().to_string();
    assert_eq!(
        docker.run(&["port", "web", "80"]).ok().out(),
        format!("0.0.0.0:{port}\n[::]:{port}")
    );
    let hostname = http_get_until_answered(port, "/hostname");
    assert_eq!(hostname.trim(), &id[..12], "the container's /etc/hostname");
    let v6 = std::net::Ipv6Addr::LOCALHOST.into();
    let hostname = http_get_until_answered_at(v6, port, "/hostname");
    assert_eq!(hostname.trim(), &id[..12], "over IPv6");
    docker.run(&["stop", "-t", "1", "web"]).ok();
    for ip in [std::net::Ipv4Addr::LOCALHOST.into(), v6] {
        assert!(
            std::net::TcpStream::connect((ip, port)).is_err(),
            "host port {ip} {port} still open after the container stopped"
        );
    }
    docker.run(&["rm", "web"]).ok();

    // A host port a host process holds: the start fails saying so, and
    // the container does not keep running.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    let publish = format!("127.0.0.1:{held_port}:80");
    let refused = docker
        .run(&[
            "run", "-d", "--name", "taken", "-p", &publish, "busybox", "sleep", "1000",
        ])
        .code(125);
    assert!(
        refused
            .stderr
            .contains("Ports are not available on the host")
            && refused.stderr.contains(&held_port.to_string()),
        "{refused}"
    );
    let state = docker
        .run(&["inspect", "-f", "{{.State.Running}}", "taken"])
        .ok();
    assert_eq!(state.out(), "false");
    docker.run(&["rm", "-f", "taken"]).ok();
    drop(held);

    // A published UDP port: busybox has no UDP server, so a static echo
    // server built here for musl (the guest image's build adds the target)
    // runs from the shared /tmp.
    let echo_dir = tempfile::Builder::new()
        .prefix("servin-vmudp-")
        .tempdir_in("/tmp")
        .unwrap();
    let udp_port = free_udp_port();
    let publish = format!("{udp_port}:53/udp");
    run_udp_echo(&docker, echo_dir.path(), "udp", "busybox", &publish);
    let answer = udp_ask_until_answered(udp_port, b"over-udp", VM_COMMAND_LIMIT);
    assert_eq!(answer, "echo:over-udp");
    let v6 = std::net::Ipv6Addr::LOCALHOST.into();
    let answer = udp_ask_until_answered_at(v6, udp_port, b"over-udp6", VM_COMMAND_LIMIT);
    assert_eq!(answer, "echo:over-udp6");
    docker.run(&["rm", "-f", "udp"]).ok();

    // A bind mount of a host folder under /tmp (shared by default), both ways.
    let shared = tempfile::Builder::new()
        .prefix("servin-vmshare-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::write(shared.path().join("from-host"), "host data\n").unwrap();
    let bind = format!("{}:/data", shared.path().display());
    let out = docker
        .run(&[
            "run",
            "--rm",
            "-v",
            &bind,
            "busybox",
            "sh",
            "-c",
            "cat /data/from-host && echo guest data > /data/from-guest",
        ])
        .ok();
    assert_eq!(out.out(), "host data");
    assert_eq!(
        std::fs::read_to_string(shared.path().join("from-guest")).unwrap(),
        "guest data\n"
    );

    // `vm shell`: a shell in the guest that ends (and ends the command)
    // with the shell's `exit`; the testkit's time limit catches a hang.
    let shell = servin.run_with_stdin(
        &["vm", "shell"],
        Some(b"cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 3\n"),
    );
    assert_eq!(shell.code, 3, "the shell's exit status: {shell}");
    assert!(
        shell.stdout.contains("/init --switched-root"),
        "guest's PID 1 did not leave the initramfs: {shell}"
    );

    servin.run(&["vm", "stop"]).ok();
    assert_eq!(status_json(&servin)["state"], "stopped");
    daemon.stop().unwrap();
    leaks.assert_clean();
}

/// The body of `GET path` from 127.0.0.1:port, retried while the server in
/// the container is not up yet (a hang guard, not a speed check).
fn http_get_until_answered(port: u16, path: &str) -> String {
    http_get_until_answered_at(std::net::Ipv4Addr::LOCALHOST.into(), port, path)
}

fn http_get_until_answered_at(ip: std::net::IpAddr, port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + VM_COMMAND_LIMIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        let got = std::net::TcpStream::connect((ip, port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
            write!(s, "GET {path} HTTP/1.0\r\n\r\n")?;
            let mut answer = String::new();
            s.read_to_string(&mut answer)?;
            Ok(answer)
        });
        match got {
            Ok(a) if a.starts_with("HTTP/1.") && a.contains("\r\n\r\n") => {
                return a.split_once("\r\n\r\n").unwrap().1.to_string();
            }
            Ok(a) => last = format!("answer {a:?}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("127.0.0.1:{port}{path} never answered: {last}");
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn vm_config_refuses_bad_input_and_keeps_what_was_there() {
    servin_testkit::require_tools!("servin");
    let root = tempfile::Builder::new()
        .prefix("servin-vmconf-")
        .tempdir()
        .unwrap();
    let data_root = root.path().display().to_string();
    // No daemon is needed: the settings are a file under the data root.
    let servin = Cli::servin(&format!("unix://{}/none.sock", data_root)).unwrap();
    let config = root.path().join("vm/config.toml");

    for (args, expected) in [
        (vec!["memory=banana"], "invalid size \"banana\""),
        (vec!["cpus=0"], "cpus=0: must be between 1 and"),
        (vec!["colour=blue"], "unknown key \"colour\""),
        (vec!["cpus=1", "memory=1MiB"], "must be at least 256MiB"),
        (vec!["shares=relative"], "not an absolute"),
    ] {
        let mut argv = vec!["vm", "config", "--data-root", &data_root];
        argv.extend(args.iter().copied());
        let out = servin.run(&argv).fails();
        assert!(out.stderr.contains(expected), "{args:?}: {out}");
        assert!(!config.exists(), "{args:?} wrote {}", config.display());
    }

    let out = servin
        .run(&[
            "vm",
            "config",
            "--data-root",
            &data_root,
            "cpus=1",
            "memory=1GiB",
        ])
        .ok();
    assert!(
        out.stdout.contains("cpus = 1") && out.stdout.contains("memory = \"1GiB\""),
        "{out}"
    );
    let saved = std::fs::read_to_string(&config).unwrap();
    let out = servin
        .run(&["vm", "config", "--data-root", &data_root, "memory=banana"])
        .fails();
    assert!(out.stderr.contains("banana"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        saved,
        "a refused edit changed the file"
    );

    let shown = servin
        .run(&["vm", "config", "--data-root", &data_root])
        .ok();
    assert_eq!(shown.stdout, saved);

    servin
        .run(&["vm", "enable", "--data-root", &data_root])
        .ok();
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("enabled = true"));
    servin
        .run(&["vm", "disable", "--data-root", &data_root])
        .ok();
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("enabled = false"));

    // A file edited by hand with a mistake is reported with its path.
    std::fs::write(&config, "cpus = 2\nmemroy = \"2GiB\"\n").unwrap();
    let out = servin
        .run(&["vm", "config", "--data-root", &data_root])
        .fails();
    assert!(
        out.stderr.contains("config.toml") && out.stderr.contains("memroy"),
        "{out}"
    );
}

#[test]
fn vm_verbs_against_a_native_daemon_say_how_to_turn_vm_mode_on() {
    servin_testkit::require_tools!("servind", "servin");
    let daemon = Daemon::start(DaemonOpts::default().arg("--mode").arg("native")).unwrap();
    let servin = Cli::servin(&daemon.host()).unwrap();
    let out = servin.run(&["vm", "status"]).fails();
    assert!(
        out.stderr.contains("runs containers natively") && out.stderr.contains("servin vm enable"),
        "{out}"
    );
}

#[test]
fn a_missing_guest_image_or_a_foreign_disk_is_a_clear_error() {
    servin_testkit::require_tools!("servind", "docker");
    let empty = tempfile::Builder::new()
        .prefix("servin-noguest-")
        .tempdir()
        .unwrap();
    let dir = empty.path().display().to_string();
    let daemon = vm_daemon(&[("SERVIN_GUEST_DIR", &dir)]);
    let docker = Cli::docker(&daemon.host()).unwrap();
    let out = docker.run(&["run", "--rm", "busybox", "true"]).fails();
    assert!(
        out.stderr.contains("guest image") && out.stderr.contains("scripts/build-guest"),
        "{out}"
    );

    // A disk we did not make is never booted (nor touched).
    std::fs::write(empty.path().join("vmlinuz"), "kernel").unwrap();
    std::fs::write(empty.path().join("initramfs.img"), "initramfs").unwrap();
    let vm_dir = daemon.data_root().join("vm");
    std::fs::create_dir_all(&vm_dir).unwrap();
    let disk = vm_dir.join("disk.qcow2");
    std::fs::write(&disk, b"someone else's bytes").unwrap();
    let out = docker.run(&["run", "--rm", "busybox", "true"]).fails();
    assert!(out.stderr.contains("is not Servin's"), "{out}");
    assert_eq!(std::fs::read(&disk).unwrap(), b"someone else's bytes");
}
