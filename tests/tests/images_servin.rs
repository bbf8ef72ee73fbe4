//! Acceptance: our own `servin` CLI for the image commands, checked
//! against what the daemon reports through the stock docker CLI.
//! Needs: docker (CLI), docker-registry, skopeo, busybox-static; root.

mod common;

use common::Env;
use servin_testkit::{require_tools, Fixture};

#[test]
fn servin_image_commands_behave_like_dockers() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let env = Env::start();
    let servin = env.servin();
    let fixture = Fixture::busybox().unwrap();
    let image = env.publish(&fixture, "busybox:latest");
    let repo = image.trim_end_matches(":latest").to_string();
    let id = fixture.images()[0].config_digest.clone();

    let pull = servin.run(&["pull", &repo]).ok();
    assert!(
        pull.stdout.contains("Using default tag: latest"),
        "{}",
        pull.stdout
    );
    assert!(
        pull.stdout
            .contains(&format!("Status: Downloaded newer image for {image}")),
        "{}",
        pull.stdout
    );
    assert_eq!(pull.stdout.lines().last(), Some(image.as_str()));

    let ours = servin.run(&["images"]).ok();
    let theirs = env.docker.run(&["images"]).ok();
    assert_eq!(
        ours.stdout, theirs.stdout,
        "servin images differs from docker images"
    );
    assert_eq!(servin.run(&["images", "-q"]).ok().out(), &id[7..19]);
    assert_eq!(
        servin
            .run(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .ok()
            .out(),
        image
    );
    let inspect = servin
        .run(&["image", "inspect", "--format", "{{.Id}}", &repo])
        .ok();
    assert_eq!(inspect.out(), id);

    servin.run(&["tag", &repo, "copy:v2"]).ok();
    let target = env.registry.reference("copy:v2");
    servin.run(&["tag", "copy:v2", &target]).ok();
    let push = servin.run(&["push", &target]).ok();
    assert!(
        push.stdout.contains("v2: digest: sha256:"),
        "{}",
        push.stdout
    );
    assert_eq!(env.registry.manifest("copy", "v2").unwrap().status, 200);

    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("img.tar");
    servin
        .run(&["save", "-o", tar.to_str().unwrap(), "copy:v2"])
        .ok();
    assert_eq!(
        servin.run(&["rmi", "copy:v2"]).ok().out(),
        "Untagged: copy:v2"
    );
    let load = servin.run(&["load", "-i", tar.to_str().unwrap()]).ok();
    assert!(
        load.stdout.contains("Loaded image: copy:v2"),
        "{}",
        load.stdout
    );

    let missing = servin.run(&["rmi", "nosuch"]).code(1);
    assert_eq!(
        missing.stderr.trim(),
        "Error response from daemon: No such image: nosuch:latest"
    );
    let bad = servin.run(&["pull", "UPPER/case"]).fails();
    assert!(bad.stderr.contains("must be lowercase"), "{}", bad.stderr);

    let version = servin
        .run(&["version", "--format", "{{.Server.Version}}"])
        .ok();
    assert_eq!(version.out(), env!("CARGO_PKG_VERSION"));
    let info = servin.run(&["info", "--format", "{{.Images}}"]).ok();
    assert_eq!(info.out(), "1");
}
