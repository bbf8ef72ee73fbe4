//! Acceptance: `docker save`/`load`/`import` against servind, and image
//! archives exchanged with a real Docker Engine 20.10 in both directions.
//! Needs: docker (CLI), dockerd + containerd (Debian docker.io), docker-registry,
//! skopeo, busybox-static; root.

mod common;

use common::Env;
use servin_testkit::{require_tools, Cli, DockerPeer, Fixture};

#[test]
fn save_load_and_import_round_trip() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let env = Env::start();
    let fixture = Fixture::busybox().unwrap();
    let image = env.publish(&fixture, "busybox:latest");
    let id = fixture.images()[0].config_digest.clone();
    env.docker.run(&["pull", "-q", &image]).ok();

    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox.tar");
    env.docker
        .run(&["save", "-o", archive.to_str().unwrap(), &image])
        .ok();
    env.docker.run(&["rmi", &image]).ok();
    assert_eq!(env.docker.run(&["images", "-q"]).ok().out(), "");

    let load = env
        .docker
        .run(&["load", "-i", archive.to_str().unwrap()])
        .ok();
    assert!(
        load.stdout.contains(&format!("Loaded image: {image}")),
        "{}",
        load.stdout
    );
    let loaded = env
        .docker
        .run(&["image", "inspect", "--format", "{{.Id}}", &image])
        .ok();
    assert_eq!(loaded.out(), id);

    // import: a root filesystem tar becomes a one-layer image.
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hello"), "hi\n").unwrap();
    let tar = dir.path().join("rootfs.tar");
    let status = std::process::Command::new("tar")
        .args([
            "-C",
            rootfs.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let imported = env
        .docker
        .run(&[
            "import",
            "-c",
            "CMD [\"sh\"]",
            "-c",
            "ENV A=b",
            "-m",
            "by test",
            tar.to_str().unwrap(),
            "imported:1",
        ])
        .ok();
    assert!(imported.out().starts_with("sha256:"), "{}", imported.stdout);
    let cfg = env
        .docker
        .run(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{json .Config.Cmd}} {{json .Config.Env}}",
            "imported:1",
        ])
        .ok();
    assert_eq!(cfg.out(), format!("{} [\"sh\"] [\"A=b\"]", imported.out()));
    let history = env
        .docker
        .run(&["history", "--format", "{{.Comment}}", "imported:1"])
        .ok();
    assert_eq!(history.out(), "by test");
}

#[test]
fn archives_cross_between_servin_and_docker_engine() {
    require_tools!(
        "docker",
        "dockerd",
        "containerd",
        "docker-registry",
        "skopeo",
        "busybox"
    );
    let env = Env::start();
    let peer = DockerPeer::start(&[env.registry.addr()]).unwrap();
    let theirs = Cli::docker(&peer.host()).unwrap();
    let fixture = Fixture::busybox().unwrap();
    let image = env.publish(&fixture, "busybox:latest");
    let id = fixture.images()[0].config_digest.clone();
    env.docker.run(&["pull", "-q", &image]).ok();

    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.tar");
    env.docker
        .run(&["save", "-o", ours.to_str().unwrap(), &image])
        .ok();
    let loaded = theirs.run(&["load", "-i", ours.to_str().unwrap()]).ok();
    assert!(loaded.stdout.contains(&image), "{}", loaded.stdout);
    assert_eq!(
        theirs
            .run(&["image", "inspect", "--format", "{{.Id}}", &image])
            .ok()
            .out(),
        id
    );
    let ran = theirs
        .run(&[
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "echo",
            "hello from our archive",
        ])
        .ok();
    assert_eq!(ran.out(), "hello from our archive");

    theirs.run(&["tag", &image, "from-docker:1"]).ok();
    let docker_tar = dir.path().join("docker.tar");
    theirs
        .run(&["save", "-o", docker_tar.to_str().unwrap(), "from-docker:1"])
        .ok();
    let ours_loaded = env
        .docker
        .run(&["load", "-i", docker_tar.to_str().unwrap()])
        .ok();
    assert!(
        ours_loaded.stdout.contains("Loaded image: from-docker:1"),
        "{}",
        ours_loaded.stdout
    );
    assert_eq!(
        env.docker
            .run(&["image", "inspect", "--format", "{{.Id}}", "from-docker:1"])
            .ok()
            .out(),
        id
    );
}
