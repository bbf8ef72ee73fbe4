//! Acceptance: native containers through the stock docker CLI.
//! Needs: docker (CLI), docker-registry, skopeo, busybox-static; root
//! (namespaces, cgroups, overlayfs).

mod common;

use common::env_with_busybox;
use servin_testkit::{require_tools, LeakCheck};

#[test]
fn run_prints_output_and_returns_the_exit_code() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();

    let out = env
        .docker
        .run(&["run", "--rm", &image, "echo", "hello"])
        .ok();
    assert_eq!(out.stdout, "hello\n");
    env.docker
        .run(&["run", "--rm", &image, "sh", "-c", "exit 3"])
        .code(3);
    let missing = env
        .docker
        .run(&["run", "--rm", &image, "nosuchcommand"])
        .code(127);
    assert!(
        missing.stderr.contains("nosuchcommand"),
        "{}",
        missing.stderr
    );
    let both = env
        .docker
        .run(&["run", "--rm", &image, "sh", "-c", "echo out; echo err >&2"])
        .ok();
    assert_eq!(
        (both.stdout.as_str(), both.stderr.as_str()),
        ("out\n", "err\n")
    );
    let env_var = env
        .docker
        .run(&[
            "run",
            "--rm",
            "-e",
            "GREETING=hi there",
            "-w",
            "/tmp",
            &image,
            "sh",
            "-c",
            "echo $GREETING; pwd",
        ])
        .ok();
    assert_eq!(env_var.stdout, "hi there\n/tmp\n");
    assert_eq!(
        env.docker.run(&["ps", "-aq"]).ok().out(),
        "",
        "--rm left a container"
    );
    drop(env);
    leaks.assert_clean();
}

#[test]
fn detached_container_logs_stop_and_remove() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let id = env
        .docker
        .run(&[
            "run",
            "-d",
            "--name",
            "sleeper",
            &image,
            "sh",
            "-c",
            "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
        ])
        .ok()
        .out()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = env
        .docker
        .run(&["ps", "--format", "{{.Names}} {{.Status}}"])
        .ok();
    assert!(ps.out().starts_with("sleeper Up"), "{}", ps.stdout);

    let conflict = env
        .docker
        .run(&["run", "-d", "--name", "sleeper", &image, "true"])
        .code(125);
    assert!(
        conflict.stderr.contains("is already in use"),
        "{}",
        conflict.stderr
    );
    let busy = env.docker.run(&["rm", "sleeper"]).fails();
    assert!(
        busy.stderr
            .contains("Stop the container before attempting removal"),
        "{}",
        busy.stderr
    );

    let mut logs = String::new();
    for _ in 0..50 {
        logs = env.docker.run(&["logs", "sleeper"]).ok().stdout;
        if logs.contains("started") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(logs, "started\n");
    env.docker.run(&["stop", "-t", "5", "sleeper"]).ok();
    let state = env
        .docker
        .run(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            "sleeper",
        ])
        .ok();
    assert_eq!(state.out(), "exited 0");
    assert_eq!(
        env.docker.run(&["logs", "sleeper"]).ok().stdout,
        "started\nbye\n"
    );
    env.docker.run(&["rm", "sleeper"]).ok();
    let gone = env.docker.run(&["inspect", "sleeper"]).fails();
    assert!(
        gone.stderr.contains("No such object") || gone.stderr.contains("No such container"),
        "{}",
        gone.stderr
    );
}

#[test]
fn bad_requests_are_refused_clearly() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let unknown = env
        .docker
        .run(&["run", "--rm", "127.0.0.1:1/nosuch"])
        .code(125);
    assert!(
        unknown.stderr.contains("127.0.0.1:1/nosuch"),
        "{}",
        unknown.stderr
    );
    let mem = env
        .docker
        .run(&["run", "--rm", "--memory=lots", &image, "true"])
        .code(125);
    assert!(mem.stderr.contains("lots"), "{}", mem.stderr);
    let missing_bind = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--mount",
            "type=bind,source=/nonexistent/servin,target=/x",
            &image,
            "true",
        ])
        .code(125);
    assert!(
        missing_bind
            .stderr
            .contains("bind source path does not exist"),
        "{}",
        missing_bind.stderr
    );
    let running = env
        .docker
        .run(&["run", "-d", &image, "sleep", "100"])
        .ok()
        .out()
        .to_string();
    let nosuch = env
        .docker
        .run(&["exec", &running, "nosuchcommand"])
        .code(126);
    assert!(
        nosuch.stdout.contains("nosuchcommand"),
        "{}{}",
        nosuch.stdout,
        nosuch.stderr
    );
    env.docker.run(&["rm", "-f", &running]).ok();
    let stopped = env
        .docker
        .run(&["create", &image, "true"])
        .ok()
        .out()
        .to_string();
    let exec = env.docker.run(&["exec", &stopped, "true"]).fails();
    assert!(exec.stderr.contains("is not running"), "{}", exec.stderr);
    assert_eq!(env.docker.run(&["ps", "-aq"]).ok().out(), &stopped[..12]);
}

/// Many `docker run` at once: each gets its own shim's readiness report,
/// output and exit, and a generated name of its own (names generated for
/// concurrent creates can clash; the engine picks again).
#[test]
fn concurrent_runs_all_complete() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let host = env.daemon.host();
    let config = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..20)
        .map(|i| {
            std::process::Command::new("docker")
                .args([
                    "-H",
                    &host,
                    "run",
                    "--rm",
                    &image,
                    "echo",
                    &format!("run {i}"),
                ])
                .env("DOCKER_CONFIG", config.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "run {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("run {i}\n"));
    }
    assert_eq!(env.docker.run(&["ps", "-aq"]).ok().out(), "");
}
