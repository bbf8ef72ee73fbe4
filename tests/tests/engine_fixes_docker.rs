//! Acceptance: engine behaviours checked against Docker Engine 20.10 with
//! the stock docker CLI (prune filters, failed starts, `Mounts`).
//! Needs: docker (CLI), docker-registry, skopeo, busybox-static; root
//! (namespaces, cgroups, overlayfs).

mod common;

use common::Env;
use servin_testkit::{require_tools, Cli, Fixture, LeakCheck};

fn env_with_busybox() -> (Env, String) {
    let env = Env::start();
    let fixture = Fixture::busybox().unwrap();
    let image = env.publish(&fixture, "busybox:latest");
    env.docker.run(&["pull", "-q", &image]).ok();
    (env, image)
}

/// Names of all containers, sorted.
fn names(docker: &Cli) -> Vec<String> {
    let mut v: Vec<String> = docker
        .run(&["ps", "-a", "--format", "{{.Names}}"])
        .ok()
        .stdout
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn container_prune_applies_label_and_until_filters() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;
    for (name, label) in [("keep", "tier=keep"), ("web", "tier=web"), ("bare", "")] {
        let mut args = vec!["create", "--name", name];
        if !label.is_empty() {
            args.extend(["--label", label]);
        }
        args.extend([image.as_str(), "true"]);
        d.run(&args).ok();
    }
    d.run(&[
        "run", "-d", "--name", "running", "--label", "tier=web", &image, "sleep", "60",
    ])
    .ok();
    let all = ["bare", "keep", "running", "web"];

    // A label nothing carries matches nothing: nothing is removed.
    let out = d
        .run(&["container", "prune", "-f", "--filter", "label=none"])
        .ok();
    assert!(!out.stdout.contains("Deleted"), "{}", out.stdout);
    assert_eq!(names(d), all);
    d.run(&["container", "prune", "-f", "--filter", "label=tier=nomatch"])
        .ok();
    assert_eq!(names(d), all);

    // Created within the last hour: `until=1h` keeps them all.
    d.run(&["container", "prune", "-f", "--filter", "until=1h"])
        .ok();
    assert_eq!(names(d), all);

    // docker ps shares the label matching.
    let web = d
        .run(&[
            "ps",
            "-a",
            "--filter",
            "label=tier=web",
            "--format",
            "{{.Names}}",
        ])
        .ok();
    let mut web: Vec<&str> = web.stdout.lines().collect();
    web.sort();
    assert_eq!(web, ["running", "web"]);
    let none = d
        .run(&[
            "ps",
            "-a",
            "--filter",
            "label=none",
            "--format",
            "{{.Names}}",
        ])
        .ok();
    assert_eq!(none.out(), "");

    // `label=tier=web` removes only the stopped one with that value.
    let out = d
        .run(&["container", "prune", "-f", "--filter", "label=tier=web"])
        .ok();
    assert!(out.stdout.contains("Deleted Containers:"), "{}", out.stdout);
    assert_eq!(names(d), ["bare", "keep", "running"]);

    // `label!=tier` removes the stopped ones without the key.
    d.run(&["container", "prune", "-f", "--filter", "label!=tier"])
        .ok();
    assert_eq!(names(d), ["keep", "running"]);

    // Bad filters are refused with Docker's messages and remove nothing.
    let bad = d
        .run(&["container", "prune", "-f", "--filter", "foo=bar"])
        .fails();
    assert!(
        bad.stderr.contains("invalid filter 'foo'"),
        "{}",
        bad.stderr
    );
    let bad = d
        .run(&["container", "prune", "-f", "--filter", "until=xyz"])
        .fails();
    assert!(
        bad.stderr
            .contains("failed to parse value as time or duration: \"xyz\""),
        "{}",
        bad.stderr
    );
    assert_eq!(names(d), ["keep", "running"]);

    // A time after every creation: what is stopped goes, the running stays.
    d.run(&[
        "container",
        "prune",
        "-f",
        "--filter",
        "until=2999-01-01T00:00:00Z",
    ])
    .ok();
    assert_eq!(names(d), ["running"]);
    d.run(&["rm", "-f", "running"]).ok();
    drop(env);
    leaks.assert_clean();
}
