//! Acceptance: healthchecks and restart policies, with Docker's states and events.
//! Needs: docker (CLI), docker-registry, skopeo, busybox-static; root.

mod common;

use std::time::{Duration, Instant};

use common::{env_with_busybox, Env};
use servin_testkit::require_tools;

fn wait_for(env: &Env, what: &str, format: &str, name: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = env
            .docker
            .run(&["inspect", "--format", format, name])
            .ok()
            .out()
            .to_string();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {got:?}, wanted {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn healthchecks_report_starting_healthy_and_unhealthy() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let since = chrono_now(&env);
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "hc",
            "--health-cmd",
            "test -f /tmp/ok",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            &image,
            "sh",
            "-c",
            "sleep 1; touch /tmp/ok; sleep 100",
        ])
        .ok();
    let first = env
        .docker
        .run(&["inspect", "--format", "{{.State.Health.Status}}", "hc"])
        .ok();
    assert_eq!(first.out(), "starting");
    wait_for(
        &env,
        "healthcheck",
        "{{.State.Health.Status}}",
        "hc",
        "healthy",
    );
    let ps = env.docker.run(&["ps", "--format", "{{.Status}}"]).ok();
    assert!(ps.out().ends_with("(healthy)"), "{}", ps.stdout);

    env.docker.run(&["exec", "hc", "rm", "/tmp/ok"]).ok();
    wait_for(
        &env,
        "healthcheck",
        "{{.State.Health.Status}}",
        "hc",
        "unhealthy",
    );
    let streak = env
        .docker
        .run(&[
            "inspect",
            "--format",
            "{{.State.Health.FailingStreak}}",
            "hc",
        ])
        .ok();
    assert!(
        streak.out().parse::<u32>().unwrap() >= 2,
        "{}",
        streak.stdout
    );

    // `--until` is whole seconds: one past now covers events of this second.
    let until = (chrono_now(&env).parse::<u64>().unwrap() + 1).to_string();
    let events = env
        .docker
        .run(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "container=hc",
            "--format",
            "{{.Action}}",
        ])
        .ok();
    assert!(
        events.stdout.contains("health_status: healthy"),
        "{}",
        events.stdout
    );
    assert!(
        events.stdout.contains("health_status: unhealthy"),
        "{}",
        events.stdout
    );
    env.docker.run(&["rm", "-f", "hc"]).ok();
}

fn chrono_now(env: &Env) -> String {
    let _ = env;
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

#[test]
fn restart_policies_bring_containers_back() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "flaky",
            "--restart",
            "on-failure:2",
            &image,
            "sh",
            "-c",
            "exit 1",
        ])
        .ok();
    wait_for(
        &env,
        "on-failure:2",
        "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
        "flaky",
        "2 exited 1",
    );
    std::thread::sleep(Duration::from_millis(800));
    let after = env
        .docker
        .run(&["inspect", "--format", "{{.RestartCount}}", "flaky"])
        .ok();
    assert_eq!(after.out(), "2", "restarted past its limit");

    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "always",
            "--restart",
            "always",
            &image,
            "sh",
            "-c",
            "sleep 0.2; exit 0",
        ])
        .ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: u32 = env
            .docker
            .run(&["inspect", "--format", "{{.RestartCount}}", "always"])
            .ok()
            .out()
            .parse()
            .unwrap();
        if n >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "--restart always did not restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    env.docker.run(&["stop", "-t", "1", "always"]).ok();
    std::thread::sleep(Duration::from_millis(500));
    let st = env
        .docker
        .run(&["inspect", "--format", "{{.State.Status}}", "always"])
        .ok();
    assert_eq!(
        st.out(),
        "exited",
        "a stopped --restart always container came back"
    );
    env.docker.run(&["rm", "-f", "flaky", "always"]).ok();
}
