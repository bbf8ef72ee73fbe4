//! Acceptance: a daemon killed with SIGKILL in the middle of a pull leaves
//! no half image, and the restarted daemon cleans up and pulls again.
//! Needs: docker (CLI), docker-registry, skopeo, busybox-static; root.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{store_state, Env};
use servin_testkit::{require_tools, ImageBuilder};

#[test]
fn kill_during_pull_leaves_no_half_image() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let mut env = Env::start();
    // Big enough that the pull is still streaming when we strike.
    let fixture = ImageBuilder::new()
        .gzip_level(1)
        .random_layers(3, 24 << 20)
        .build()
        .unwrap();
    let image = env.publish(&fixture, "big:latest");
    let config = tempfile::tempdir().unwrap();

    let mut pull = Command::new("docker")
        .args(["-H", &env.daemon.host(), "pull", &image])
        .env("DOCKER_CONFIG", config.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ingest = env.daemon.data_root().join("content/ingest");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let busy = std::fs::read_dir(&ingest)
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        if busy {
            break;
        }
        assert!(Instant::now() < deadline, "the pull never started writing");
        std::thread::sleep(Duration::from_millis(5));
    }
    env.daemon.kill9();
    let _ = pull.wait();

    env.daemon.restart().unwrap();
    assert_eq!(
        env.docker.run(&["images", "-q"]).ok().out(),
        "",
        "a half-pulled image is visible"
    );
    let state = store_state(&env.daemon.data_root());
    let leftovers: Vec<&String> = state
        .keys()
        .filter(|k| {
            k.starts_with("content/ingest/")
                || k.starts_with("content/blobs/sha256/")
                || k.starts_with("snapshots/")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "leftovers after restart: {leftovers:?}"
    );

    env.docker.run(&["pull", &image]).ok();
    let id = env
        .docker
        .run(&["image", "inspect", "--format", "{{.Id}}", &image])
        .ok();
    assert_eq!(id.out(), fixture.images()[0].config_digest);
}

/// A second servind on a data root in use stops with a message naming the
/// first one, and the first keeps serving; once the first is gone (even by
/// SIGKILL) the root is free again.
#[test]
fn a_second_daemon_on_the_same_data_root_is_refused() {
    let mut daemon = servin_testkit::Daemon::start(Default::default()).unwrap();
    let other_socket = daemon.dir().join("other.sock");
    let stderr = servin_testkit::refused_start(&daemon.data_root(), &other_socket, &[]);
    let first_pid = std::fs::read_to_string(daemon.data_root().join("servind.lock")).unwrap();
    assert!(
        stderr.contains(&format!(
            "Another servind (pid {}) is using the data root {}",
            first_pid.trim(),
            daemon.data_root().display()
        )),
        "{stderr}"
    );
    assert!(!other_socket.exists(), "the refused daemon made a socket");
    assert_eq!(daemon.get("/_ping").unwrap().status, 200);

    daemon.kill9();
    daemon.restart().unwrap();
    assert_eq!(daemon.get("/_ping").unwrap().status, 200);
}
