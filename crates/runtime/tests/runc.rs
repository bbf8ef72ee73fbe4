//! The same container behaviour through an external runc. Needs root and
//! runc: each test skips without them.

mod common;

use std::io::Write;

use common::*;
use servin_runtime::{ContainerSpec, MountSpec, ProcessSpec, RuntimeError, RuntimeKind, ShimState};

fn runc_fixture(test: &str) -> Option<(Fixture, std::path::PathBuf)> {
    if !require_root(test) {
        return None;
    }
    match runc_path() {
        Some(p) => Some((Fixture::new(), p)),
        None if std::env::var("SERVIN_REQUIRE_VM").as_deref() == Ok("1") => {
            panic!("{test} needs runc (SERVIN_REQUIRE_VM=1)")
        }
        None => {
            eprintln!("skipping {test}: runc is not installed");
            None
        }
    }
}

fn runc_spec(fx: &Fixture, runc: &std::path::Path, args: &[&str]) -> ContainerSpec {
    let mut spec = fx.spec(args);
    spec.runtime = RuntimeKind::Runc {
        path: runc.to_path_buf(),
    };
    spec
}

#[test]
fn runc_tty_user_and_exit_code() {
    let Some((fx, runc)) = runc_fixture("runc_tty_user_and_exit_code") else {
        return;
    };
    let mut spec = runc_spec(&fx, &runc, &["sh", "-c", "tty; id -u; hostname; exit 7"]);
    spec.process.tty = true;
    spec.process.user = "nobody".into();
    let client = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap();
    let mut stream = client.attach(false, true, true).unwrap();
    client.start().unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut out).unwrap();
    let exit = client.wait().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "/dev/pts/0\r\n65534\r\nservintest\r\n"
    );
    assert_eq!(exit.code, 7);
    fx.assert_clean(&spec);
}

#[test]
fn runc_exec_pause_kill() {
    let Some((fx, runc)) = runc_fixture("runc_exec_pause_kill") else {
        return;
    };
    let spec = runc_spec(&fx, &runc, &["sleep", "100"]);
    let client = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap();
    client.start().unwrap();
    let p = ProcessSpec {
        args: vec!["sh".into(), "-c".into(), "echo in-exec; exit 3".into()],
        env: vec![],
        cwd: String::new(),
        user: String::new(),
        tty: false,
        open_stdin: false,
        init: false,
    };
    let (stream, id) = client.exec(&p).unwrap();
    let (out, _) = read_frames(stream);
    assert_eq!(out, b"in-exec\n");
    assert_eq!(client.exec_status(&id).unwrap().exit_code, Some(3));

    let mut tty = p.clone();
    tty.tty = true;
    tty.open_stdin = true;
    tty.args = vec!["sh".into()];
    let (mut stream, id) = client.exec(&tty).unwrap();
    client.exec_resize(&id, 80, 24).unwrap();
    stream.write_all(b"stty size; exit 2\n").unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut out).unwrap();
    assert!(
        String::from_utf8_lossy(&out).contains("24 80"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(client.exec_status(&id).unwrap().exit_code, Some(2));

    let mut missing = p.clone();
    missing.args = vec!["nosuch".into()];
    assert_eq!(client.exec(&missing).unwrap_err().exit_code(), Some(127));

    client.pause().unwrap();
    assert_eq!(client.state().unwrap(), ShimState::Paused);
    client.kill(9).unwrap();
    assert_eq!(client.wait().unwrap().code, 137);
    fx.assert_clean(&spec);
}

#[test]
fn runc_oom() {
    let Some((fx, runc)) = runc_fixture("runc_oom") else {
        return;
    };
    let mut spec = runc_spec(
        &fx,
        &runc,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"],
    );
    spec.resources.memory = Some(32 << 20);
    let (_, err, exit) = run(&spec);
    assert_eq!((exit.code, exit.oom_killed), (137, true), "{err}");
    fx.assert_clean(&spec);
}

/// A command the shim cannot see from the host (under a bind mount) is
/// still reported with its kind, from the runtime's own check.
#[test]
fn command_errors_from_inside_the_container() {
    let Some((fx, runc)) = runc_fixture("command_errors_from_inside_the_container") else {
        return;
    };
    let opt = fx.path().join("opt");
    std::fs::create_dir_all(&opt).unwrap();
    std::fs::write(opt.join("tool"), "not executable").unwrap();
    for runtime in [
        RuntimeKind::Builtin,
        RuntimeKind::Runc { path: runc.clone() },
    ] {
        for (cmd, code) in [("/opt/tool", 126), ("/opt/missing", 127)] {
            let mut spec = fx.spec(&[cmd]);
            spec.runtime = runtime.clone();
            spec.mounts = vec![MountSpec::Bind {
                source: opt.clone(),
                destination: "/opt".into(),
                readonly: true,
            }];
            let err = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap_err();
            eprintln!("{runtime:?} {cmd}: {err}");
            assert_eq!(err.exit_code(), Some(code), "{runtime:?} {cmd}: {err}");
            assert!(matches!(
                err,
                RuntimeError::PermissionDenied(_) | RuntimeError::ExecutableNotFound(_)
            ));
            fx.assert_clean(&spec);
        }
    }
}
