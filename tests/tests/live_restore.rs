//! Acceptance: containers outlive a SIGKILLed servind and the restarted
//! daemon re-adopts them; exits that happened meanwhile are noticed.
//! Needs: docker (CLI), docker-registry, skopeo, busybox-static; root.

mod common;

use std::time::Duration;

use common::Env;
use servin_testkit::{require_tools, Fixture};

#[test]
fn running_containers_survive_a_daemon_crash() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let mut env = Env::start();
    let fixture = Fixture::busybox().unwrap();
    let image = env.publish(&fixture, "busybox:latest");
    env.docker.run(&["pull", "-q", &image]).ok();

    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "ticker",
            &image,
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ])
        .ok();
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "short",
            &image,
            "sh",
            "-c",
            "sleep 1; exit 7",
        ])
        .ok();
    let pid_before = env
        .docker
        .run(&["inspect", "--format", "{{.State.Pid}}", "ticker"])
        .ok()
        .out()
        .to_string();

    env.daemon.kill9();
    std::thread::sleep(Duration::from_millis(1500));
    // The container kept running without its daemon, and kept logging.
    assert!(
        std::path::Path::new(&format!("/proc/{pid_before}")).exists(),
        "container died with the daemon"
    );
    env.daemon.restart().unwrap();

    let ps = env.docker.run(&["ps", "--format", "{{.Names}}"]).ok();
    assert_eq!(ps.out(), "ticker", "{}", ps.stdout);
    let short = env
        .docker
        .run(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            "short",
        ])
        .ok();
    assert_eq!(short.out(), "exited 7");
    let pid_after = env
        .docker
        .run(&["inspect", "--format", "{{.State.Pid}}", "ticker"])
        .ok();
    assert_eq!(pid_after.out(), pid_before);

    let logs = env.docker.run(&["logs", "--tail", "1", "ticker"]).ok();
    let n: u32 = logs.out().trim_start_matches("tick ").parse().unwrap();
    assert!(
        n >= 5,
        "the container did not log while the daemon was down: {}",
        logs.stdout
    );
    assert_eq!(
        env.docker
            .run(&["exec", "ticker", "echo", "adopted"])
            .ok()
            .out(),
        "adopted"
    );
    env.docker.run(&["stop", "-t", "1", "ticker"]).ok();
    let st = env
        .docker
        .run(&["inspect", "--format", "{{.State.Status}}", "ticker"])
        .ok();
    assert_eq!(st.out(), "exited");
    env.docker.run(&["rm", "ticker", "short"]).ok();
}

#[test]
fn memory_limit_is_enforced() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let env = Env::start();
    let fixture = Fixture::busybox().unwrap();
    let image = env.publish(&fixture, "busybox:latest");
    env.docker.run(&["pull", "-q", &image]).ok();
    env.docker
        .run(&[
            "run",
            "--name",
            "hog",
            "--memory",
            "32m",
            "--memory-swap",
            "32m",
            &image,
            "sh",
            "-c",
            "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}",
        ])
        .code(137);
    let st = env
        .docker
        .run(&[
            "inspect",
            "--format",
            "{{.State.ExitCode}} {{.State.OOMKilled}}",
            "hog",
        ])
        .ok();
    assert_eq!(st.out(), "137 true");
    env.docker.run(&["rm", "hog"]).ok();
}
