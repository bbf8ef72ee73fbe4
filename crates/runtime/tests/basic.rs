//! Running containers end to end with the built-in runtime (and runc for
//! one of them). Needs root: each test skips without it.

mod common;

use common::*;
use servin_runtime::{MountSpec, RuntimeError, RuntimeKind, ShimState};

#[test]
fn echo_hello_via_attach() {
    if !require_root("echo_hello_via_attach") {
        return;
    }
    let fx = Fixture::new();
    let spec = fx.spec(&["echo", "hello"]);
    let (out, err, exit) = run(&spec);
    assert_eq!(out, "hello\n", "stderr: {err}");
    assert_eq!(exit.code, 0);
    assert!(!exit.oom_killed);
    assert!(exit.started_at.is_some());
    assert_eq!(
        log_lines(&spec),
        vec![("stdout".to_string(), "hello\n".to_string())]
    );
    assert_eq!(
        servin_runtime::read_exit_status(&spec.state_dir),
        Some(exit)
    );
    fx.assert_clean(&spec);
}

#[test]
fn echo_hello_with_runc() {
    if !require_root("echo_hello_with_runc") {
        return;
    }
    let Some(runc) = runc_path() else {
        if std::env::var("SERVIN_REQUIRE_VM").as_deref() == Ok("1") {
            panic!("runc is not installed (SERVIN_REQUIRE_VM=1)");
        }
        eprintln!("skipping echo_hello_with_runc: runc is not installed");
        return;
    };
    let fx = Fixture::new();
    let mut spec = fx.spec(&["sh", "-c", "echo hello; echo oops >&2; exit 4"]);
    spec.runtime = RuntimeKind::Runc { path: runc };
    let (out, err, exit) = run(&spec);
    assert_eq!(
        (out.as_str(), err.as_str(), exit.code),
        ("hello\n", "oops\n", 4)
    );
    fx.assert_clean(&spec);
}

#[test]
fn exit_code_and_stderr() {
    if !require_root("exit_code_and_stderr") {
        return;
    }
    let fx = Fixture::new();
    let spec = fx.spec(&["sh", "-c", "echo out; echo err >&2; printf partial; exit 3"]);
    let (out, err, exit) = run(&spec);
    assert_eq!(
        (out.as_str(), err.as_str(), exit.code),
        ("out\npartial", "err\n", 3)
    );
    let log = log_lines(&spec);
    assert!(log.contains(&("stderr".into(), "err\n".into())), "{log:?}");
    assert!(
        log.contains(&("stdout".into(), "partial".into())),
        "{log:?}"
    );
    fx.assert_clean(&spec);
}

#[test]
fn missing_executable_is_the_127_error() {
    if !require_root("missing_executable_is_the_127_error") {
        return;
    }
    let fx = Fixture::new();
    let spec = fx.spec(&["nosuch"]);
    let err = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap_err();
    assert!(
        matches!(err, RuntimeError::ExecutableNotFound(_)),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), Some(127));
    assert!(
        err.to_string()
            .contains("exec: \"nosuch\": executable file not found in $PATH"),
        "{err}"
    );
    let spec2 = fx.spec(&["/etc/passwd"]);
    let err = servin_runtime::spawn_shim(&spec2, &shim_bin()).unwrap_err();
    assert_eq!(err.exit_code(), Some(126), "{err}");
    fx.assert_clean(&spec);
    fx.assert_clean(&spec2);
}

#[test]
fn sigkill_gives_137() {
    if !require_root("sigkill_gives_137") {
        return;
    }
    let fx = Fixture::new();
    let spec = fx.spec(&["sleep", "100"]);
    let client = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap();
    assert_eq!(client.state().unwrap(), ShimState::Created);
    let pid = client.start().unwrap();
    assert!(matches!(client.state().unwrap(), ShimState::Running { pid: p, .. } if p == pid));
    let cgroups = cgroup_dirs_named(&spec.id);
    assert!(
        cgroups
            .iter()
            .any(|c| c.ends_with(format!("memory/{CGROUP_PARENT}/{}", spec.id))),
        "{cgroups:?}"
    );
    client.kill(9).unwrap();
    let exit = client.wait().unwrap();
    assert_eq!(exit.code, 137);
    assert!(!exit.oom_killed);
    fx.assert_clean(&spec);
}

#[test]
fn user_nobody() {
    if !require_root("user_nobody") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&["sh", "-c", "id -u; id -g; echo $HOME"]);
    spec.process.user = "nobody".into();
    let (out, err, exit) = run(&spec);
    assert_eq!(out, "65534\n65534\n/nonexistent\n", "stderr: {err}");
    assert_eq!(exit.code, 0);

    let mut bad = fx.spec(&["true"]);
    bad.process.user = "nosuchuser".into();
    let err = servin_runtime::spawn_shim(&bad, &shim_bin()).unwrap_err();
    assert!(
        err.to_string()
            .contains("nosuchuser: no matching entries in passwd file"),
        "{err}"
    );
    fx.assert_clean(&spec);
    fx.assert_clean(&bad);
}

#[test]
fn env_cwd_and_hostname() {
    if !require_root("env_cwd_and_hostname") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&["sh", "-c", "echo $FOO; pwd; hostname; echo $$"]);
    spec.process.env.push("FOO=bar baz".into());
    spec.process.cwd = "/work/dir".into();
    spec.hostname = "myhost".into();
    let (out, err, exit) = run(&spec);
    assert_eq!(out, "bar baz\n/work/dir\nmyhost\n1\n", "stderr: {err}");
    assert_eq!(exit.code, 0);
    fx.assert_clean(&spec);
}

#[test]
fn readonly_bind_mount_cannot_be_written() {
    if !require_root("readonly_bind_mount_cannot_be_written") {
        return;
    }
    let fx = Fixture::new();
    let data = fx.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in"), "from host\n").unwrap();
    let mut spec = fx.spec(&[
        "sh",
        "-c",
        "cat /data/in; echo rw > /rw/f; echo x > /data/out",
    ]);
    let rw = fx.path().join("rw");
    std::fs::create_dir_all(&rw).unwrap();
    spec.mounts = vec![
        MountSpec::Bind {
            source: data.clone(),
            destination: "/data".into(),
            readonly: true,
        },
        MountSpec::Bind {
            source: rw.clone(),
            destination: "/rw".into(),
            readonly: false,
        },
    ];
    let (out, err, exit) = run(&spec);
    assert_eq!(out, "from host\n");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_ne!(exit.code, 0);
    assert!(!data.join("out").exists());
    assert_eq!(std::fs::read_to_string(rw.join("f")).unwrap(), "rw\n");
    fx.assert_clean(&spec);
}

#[test]
fn readonly_rootfs_and_tmpfs() {
    if !require_root("readonly_rootfs_and_tmpfs") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&[
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo wrote-root; touch /scratch/y && echo wrote-tmpfs; \
         grep -c ' /scratch tmpfs' /proc/mounts",
    ]);
    spec.readonly_rootfs = true;
    spec.mounts = vec![MountSpec::Tmpfs {
        destination: "/scratch".into(),
        options: vec!["size=1m".into()],
    }];
    let (out, err, exit) = run(&spec);
    assert_eq!(out, "wrote-tmpfs\n1\n", "stderr: {err}");
    assert_eq!(exit.code, 0);
    fx.assert_clean(&spec);
}

#[test]
fn tty_container() {
    if !require_root("tty_container") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&["sh", "-c", "tty; stty size; echo done"]);
    spec.process.tty = true;
    let client = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap();
    client.resize(100, 30).unwrap();
    let mut stream = client.attach(false, true, true).unwrap();
    client.start().unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut out).unwrap();
    let exit = client.wait().unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(out, "/dev/pts/0\r\n30 100\r\ndone\r\n");
    assert_eq!(exit.code, 0);
    let log = log_lines(&spec);
    assert!(log.iter().all(|(s, _)| s == "stdout"), "{log:?}");
    fx.assert_clean(&spec);
}

#[test]
fn stdin_is_relayed_and_closed() {
    if !require_root("stdin_is_relayed_and_closed") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&["sh", "-c", "while read l; do echo got:$l; done; echo eof"]);
    spec.process.open_stdin = true;
    let client = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap();
    let stream = client.attach(true, true, true).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let reader = std::thread::spawn(move || read_frames(stream));
    client.start().unwrap();
    std::io::Write::write_all(&mut writer, b"one\ntwo\n").unwrap();
    writer.shutdown(std::net::Shutdown::Write).unwrap();
    let exit = client.wait().unwrap();
    let (out, _) = reader.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out), "got:one\ngot:two\neof\n");
    assert_eq!(exit.code, 0);
    fx.assert_clean(&spec);
}

#[test]
fn network_none_has_loopback_up() {
    if !require_root("network_none_has_loopback_up") {
        return;
    }
    let fx = Fixture::new();
    let spec = fx.spec(&[
        "sh",
        "-c",
        "cat /sys/class/net/lo/operstate; ls /sys/class/net",
    ]);
    let (out, err, exit) = run(&spec);
    assert_eq!(exit.code, 0, "stderr: {err}");
    // A loopback that is up reports "unknown" (it has no carrier).
    assert_eq!(out, "unknown\nlo\n");
    fx.assert_clean(&spec);
}

#[test]
fn large_output_reaches_log_and_client_whole() {
    if !require_root("large_output_reaches_log_and_client_whole") {
        return;
    }
    let fx = Fixture::new();
    let spec = fx.spec(&[
        "sh",
        "-c",
        "head -c 3000000 /dev/zero | tr '\\0' a; echo; seq 1 20000 >&2",
    ]);
    let (out, err, exit) = run(&spec);
    assert_eq!(exit.code, 0);
    assert_eq!(out.len(), 3_000_001);
    assert!(out.bytes().take(3_000_000).all(|b| b == b'a'));
    let expected_err: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    assert_eq!(err, expected_err);
    let log = log_lines(&spec);
    let logged_out: String = log
        .iter()
        .filter(|(s, _)| s == "stdout")
        .map(|(_, l)| l.as_str())
        .collect();
    let logged_err: String = log
        .iter()
        .filter(|(s, _)| s == "stderr")
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(logged_out, out);
    assert_eq!(logged_err, expected_err);
    fx.assert_clean(&spec);
}

/// Upper layers win, and a lowerdir list longer than a page still mounts.
#[test]
fn many_layers_in_order() {
    if !require_root("many_layers_in_order") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&["sh", "-c", "cat /who /base"]);
    std::fs::write(fx.layer.join("base"), "base layer\n").unwrap();
    for i in 0..45 {
        let dir = fx.path().join(format!("layer-{i:03}-{}", "x".repeat(90)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("who"), format!("layer {i}\n")).unwrap();
        spec.layers.push(dir);
    }
    let (out, err, exit) = run(&spec);
    assert_eq!(
        (out.as_str(), exit.code),
        ("layer 44\nbase layer\n", 0),
        "{err}"
    );
    fx.assert_clean(&spec);
}

#[test]
fn host_network_sees_host_interfaces() {
    if !require_root("host_network_sees_host_interfaces") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&["ls", "/sys/class/net"]);
    spec.network = servin_runtime::NetworkMode::Host;
    let (out, err, exit) = run(&spec);
    assert_eq!(exit.code, 0, "{err}");
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    let mut seen: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    seen.sort();
    assert_eq!(seen, host);
    fx.assert_clean(&spec);
}

#[test]
fn capabilities_and_masked_paths_like_docker() {
    if !require_root("capabilities_and_masked_paths_like_docker") {
        return;
    }
    let fx = Fixture::new();
    let script = "grep CapEff /proc/self/status; \
                  grep -q ' /proc/keys ' /proc/self/mountinfo && echo keys-masked; \
                  echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo sys-writable; \
                  echo end";
    let spec = fx.spec(&["sh", "-c", script]);
    let (out, err, _) = run(&spec);
    // Docker's default set.
    assert_eq!(
        out, "CapEff:\t00000000a80425fb\nkeys-masked\nend\n",
        "{err}"
    );
    fx.assert_clean(&spec);

    let mut spec = fx.spec(&["sh", "-c", "grep CapEff /proc/self/status"]);
    spec.cap_add = vec!["NET_ADMIN".into()];
    spec.cap_drop = vec!["CAP_MKNOD".into()];
    let (out, _, _) = run(&spec);
    assert_eq!(out, "CapEff:\t00000000a00435fb\n");
    fx.assert_clean(&spec);

    let mut spec = fx.spec(&["sh", "-c", script]);
    spec.privileged = true;
    let (out, err, _) = run(&spec);
    // Everything this process may grant (its own bounding set).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    assert!(
        out.starts_with(&format!("CapEff:\t{bounding}\n")),
        "{out} {err}"
    );
    assert!(out.ends_with("\nsys-writable\nend\n"), "{out}");
    fx.assert_clean(&spec);
}

#[test]
fn etc_files_from_the_engine() {
    if !require_root("etc_files_from_the_engine") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&[
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf /etc/hostname; echo changed >> /etc/hosts && echo hosts-writable",
    ]);
    std::fs::create_dir_all(&spec.state_dir).unwrap();
    for (name, text) in [
        ("hosts", "127.0.0.1 localhost\n"),
        ("resolv.conf", "nameserver 127.0.0.53\n"),
        ("hostname", "servintest\n"),
    ] {
        std::fs::write(spec.state_dir.join(name), text).unwrap();
    }
    spec.etc_hosts = Some(spec.state_dir.join("hosts"));
    spec.etc_resolv_conf = Some(spec.state_dir.join("resolv.conf"));
    spec.etc_hostname = Some(spec.state_dir.join("hostname"));
    let (out, err, exit) = run(&spec);
    assert_eq!(
        out, "127.0.0.1 localhost\nnameserver 127.0.0.53\nservintest\nhosts-writable\n",
        "{err}"
    );
    assert_eq!(exit.code, 0);
    assert!(std::fs::read_to_string(spec.state_dir.join("hosts"))
        .unwrap()
        .ends_with("changed\n"));
    fx.assert_clean(&spec);

    // Read-only root filesystem: the files are read-only too, as in Docker.
    spec.readonly_rootfs = true;
    let (out, _, exit) = run(&spec);
    assert!(!out.contains("hosts-writable"), "{out}");
    assert_ne!(exit.code, 0);
    fx.assert_clean(&spec);
}
