//! The fixtures are real images: Docker Engine 20.10 (the reference peer)
//! pulls them from the local registry in both manifest formats, resolves
//! the multi-platform index, and runs busybox from them. Needs root and
//! docker.io; skips otherwise (panics under `SERVIN_REQUIRE_VM=1`).

use servin_testkit::{
    docker, push, push_with, require_tools, skip, DockerPeer, Fixture, Format, LeakCheck, Registry,
};

#[test]
fn docker_pulls_and_runs_the_fixtures() {
    require_tools!(
        "docker-registry",
        "skopeo",
        "dockerd",
        "containerd",
        "docker",
        "/bin/busybox"
    );
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 && skip("docker_peer", "dockerd needs root") {
        return;
    }
    let registry = Registry::start().unwrap();
    let peer = DockerPeer::start(&[registry.addr()]).unwrap();
    let host = peer.host();

    let busybox = Fixture::busybox().unwrap();
    let oci = registry.reference("busybox:oci");
    push(&busybox, &oci).unwrap();
    docker(&host, &["pull", "-q", &oci]).ok();
    let id = docker(&host, &["image", "inspect", "-f", "{{.Id}}", &oci]).ok();
    assert_eq!(id.out(), busybox.images()[0].config_digest);
    let out = docker(
        &host,
        &[
            "run",
            "--rm",
            &oci,
            "sh",
            "-c",
            "echo hi; id -u; ls -ld /tmp",
        ],
    )
    .ok();
    let lines: Vec<&str> = out.out().lines().collect();
    assert_eq!(lines[..2], ["hi", "0"]);
    assert!(lines[2].starts_with("drwxrwxrwt"), "{out}");
    let nobody = docker(&host, &["run", "--rm", "--user", "nobody", &oci, "id"]).ok();
    assert!(nobody.out().contains("uid=65534(nobody)"), "{nobody}");

    let v2s2 = registry.reference("busybox:v2s2");
    push_with(&busybox, &v2s2, Format::V2s2, None).unwrap();
    docker(&host, &["run", "--rm", &v2s2, "true"]).ok();

    let multi = Fixture::busybox_multiarch().unwrap();
    let list = registry.reference("multi:latest");
    push(&multi, &list).unwrap();
    docker(&host, &["pull", "-q", "--platform", "linux/arm64", &list]).ok();
    let arch = docker(
        &host,
        &["image", "inspect", "-f", "{{.Architecture}}", &list],
    )
    .ok();
    assert_eq!(arch.out(), "arm64");

    let dir = peer.dir().to_path_buf();
    drop(peer);
    LeakCheck::new(&dir).without_fds().assert_clean();
}
