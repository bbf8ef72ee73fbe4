//! End-to-end checks of the harness against the real tools: Debian's
//! `docker-registry`, `skopeo`, busybox-static, apache2-utils' `htpasswd`.
//! Each test skips (or panics under `SERVIN_REQUIRE_VM=1`) when a tool is
//! missing. No root needed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use servin_testkit::{
    push, push_with, require_tools, Compression, Daemon, DaemonOpts, Fixture, Format, ImageBuilder,
    LayerSpec, LeakCheck, Registry,
};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[test]
fn registry_serves_pushed_busybox() {
    require_tools!("docker-registry", "skopeo", "/bin/busybox");
    let registry = Registry::start().unwrap();
    let ping = registry.get("/v2/", "*/*").unwrap();
    assert_eq!(ping.status, 200);

    let fixture = Fixture::busybox().unwrap();
    push(&fixture, &registry.reference("busybox:latest")).unwrap();

    let manifest = registry.manifest("busybox", "latest").unwrap();
    assert_eq!(manifest.status, 200, "{}", manifest.text());
    assert_eq!(manifest.header("content-type"), Some(OCI_MANIFEST));
    // Unconverted, the registry serves our bytes: same digest.
    assert_eq!(
        manifest.header("docker-content-digest"),
        Some(fixture.digest())
    );
    let image = &fixture.images()[0];
    let blob = registry
        .get(
            &format!("/v2/busybox/blobs/{}", image.layers[0].digest),
            "*/*",
        )
        .unwrap();
    assert_eq!(blob.status, 200);
    assert_eq!(blob.body.len() as u64, image.layers[0].size);
    let tags = registry
        .get("/v2/busybox/tags/list", "*/*")
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(tags["tags"][0], "latest");
}

#[test]
fn pushes_docker_schema2_and_deletes() {
    require_tools!("docker-registry", "skopeo", "/bin/busybox");
    let registry = Registry::start().unwrap();
    let fixture = ImageBuilder::new()
        .layer(LayerSpec::compressible(100_000))
        .layer(LayerSpec::file("etc/motd", "hello\n"))
        .build()
        .unwrap();
    push_with(
        &fixture,
        &registry.reference("multi:v1"),
        Format::V2s2,
        None,
    )
    .unwrap();
    let manifest = registry.manifest("multi", "v1").unwrap();
    assert_eq!(manifest.header("content-type"), Some(DOCKER_MANIFEST));
    let body: Value = manifest.json().unwrap();
    assert_eq!(body["layers"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    // Deletes are enabled in the config.
    let digest = manifest
        .header("docker-content-digest")
        .unwrap()
        .to_string();
    let path = format!("/v2/multi/manifests/{digest}");
    let delete = registry
        .request(servin_testkit::http::Request {
            method: "DELETE",
            path: &path,
            headers: Vec::new(),
            body: &[],
        })
        .unwrap();
    assert_eq!(delete.status, 202, "{}", delete.text());
}

#[test]
fn pushes_multi_platform_index_and_list() {
    require_tools!("docker-registry", "skopeo", "/bin/busybox");
    let registry = Registry::start().unwrap();
    let fixture = Fixture::busybox_multiarch().unwrap();
    push(&fixture, &registry.reference("multiarch:oci")).unwrap();
    let index = registry.manifest("multiarch", "oci").unwrap();
    assert_eq!(index.header("content-type"), Some(OCI_INDEX));
    assert_eq!(
        index.header("docker-content-digest"),
        Some(fixture.digest())
    );
    let arm = &fixture.images()[1];
    let child = registry
        .manifest("multiarch", &arm.manifest_digest)
        .unwrap();
    assert_eq!(child.status, 200);
    let config = registry
        .get(&format!("/v2/multiarch/blobs/{}", arm.config_digest), "*/*")
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(config["architecture"], "arm64");

    push_with(
        &fixture,
        &registry.reference("multiarch:docker"),
        Format::V2s2,
        None,
    )
    .unwrap();
    let list = registry.manifest("multiarch", "docker").unwrap();
    assert_eq!(
        list.header("content-type"),
        Some(DOCKER_LIST),
        "{}",
        list.text()
    );
    let platforms: Vec<String> = list.json().unwrap()["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);

    servin_testkit::push_raw(&fixture, &registry.reference("multiarch:raw"), None).unwrap();
    let raw = registry.manifest("multiarch", "raw").unwrap();
    assert_eq!(raw.header("docker-content-digest"), Some(fixture.digest()));
}

#[test]
fn pushes_zstd_and_uncompressed_layers() {
    require_tools!("docker-registry", "skopeo");
    let registry = Registry::start().unwrap();
    let fixture = ImageBuilder::new()
        .without_busybox()
        .layer_with(LayerSpec::random(50_000), Compression::Zstd)
        .layer_with(LayerSpec::random(50_000), Compression::None)
        .build()
        .unwrap();
    // skopeo would compress the uncompressed layer; push_raw keeps bytes.
    servin_testkit::push_raw(&fixture, &registry.reference("data:zstd"), None).unwrap();
    let manifest = registry.manifest("data", "zstd").unwrap();
    assert_eq!(
        manifest.header("docker-content-digest"),
        Some(fixture.digest())
    );
    let body = manifest.json().unwrap();
    assert_eq!(
        body["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(
        body["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
}

#[test]
fn htpasswd_registry_demands_credentials() {
    require_tools!("docker-registry", "skopeo", "htpasswd", "/bin/busybox");
    let registry = Registry::start_with_htpasswd("tester", "s3cret").unwrap();
    let anonymous = servin_testkit::http::tcp(
        registry.addr(),
        &servin_testkit::http::Request::get("/v2/"),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(anonymous.status, 401);
    assert!(anonymous
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Basic")));
    assert_eq!(registry.get("/v2/", "*/*").unwrap().status, 200);

    let fixture = Fixture::busybox().unwrap();
    let dest = registry.reference("private:latest");
    assert!(push(&fixture, &dest).is_err());
    push_with(&fixture, &dest, Format::Oci, registry.credentials()).unwrap();
    assert_eq!(registry.manifest("private", "latest").unwrap().status, 200);
    let raw_dest = registry.reference("private:raw");
    assert!(servin_testkit::push_raw(&fixture, &raw_dest, None).is_err());
    servin_testkit::push_raw(&fixture, &raw_dest, registry.credentials()).unwrap();
}

#[test]
fn registry_is_gone_after_drop() {
    require_tools!("docker-registry");
    let registry = Registry::start().unwrap();
    let dir = registry.dir().to_path_buf();
    let addr = registry.addr().to_string();
    // Tests in this binary run in parallel: their fds are not ours.
    let check = LeakCheck::new(&dir).without_fds();
    drop(registry);
    check.assert_clean();
    assert!(!dir.exists());
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// A stand-in for servind: answers `/_ping` on the `-H` socket, exits on
/// SIGTERM, or fails at once when asked to.
const FAKE_DAEMON: &str = r#"#!/usr/bin/python3
import os, signal, socket, sys
args = sys.argv[1:]
if "--fail" in args:
    print("boom: refusing to start", flush=True)
    sys.exit(3)
sock = args[args.index("-H") + 1][len("unix://"):]
os.makedirs(args[args.index("--data-root") + 1], exist_ok=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
s = socket.socket(socket.AF_UNIX)
if os.path.exists(sock):
    os.unlink(sock)
s.bind(sock)
s.listen(8)
print("fake servind up", os.getpid(), flush=True)
while True:
    c, _ = s.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    ok = data.startswith(b"GET /_ping ")
    body = b"OK" if ok else b'{"message":"page not found"}'
    status = b"200 OK" if ok else b"404 Not Found"
    c.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    c.close()
"#;

fn fake_daemon(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-servind");
    std::fs::write(&path, FAKE_DAEMON).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn daemon_harness_starts_restarts_and_cleans_up() {
    require_tools!("/usr/bin/python3");
    let bin_dir = tempfile::tempdir().unwrap();
    let opts = DaemonOpts {
        bin: Some(fake_daemon(bin_dir.path())),
        ..DaemonOpts::default()
    };
    let mut daemon = Daemon::start(opts).unwrap();
    assert!(daemon.host().starts_with("unix:///tmp/servin-daemon-"));
    assert!(daemon.data_root().is_dir());
    assert_eq!(daemon.get("/_ping").unwrap().text(), "OK");
    assert_eq!(daemon.get("/nope").unwrap().status, 404);

    let first = daemon.pid().unwrap();
    daemon.restart().unwrap();
    assert_ne!(daemon.pid().unwrap(), first);
    daemon.kill9();
    assert!(daemon.pid().is_none());
    daemon.restart().unwrap();
    assert_eq!(daemon.log().matches("fake servind up").count(), 3);

    let dir = daemon.dir().to_path_buf();
    daemon.stop().unwrap();
    LeakCheck::new(&dir).without_fds().assert_clean();
    drop(daemon);
    assert!(!dir.exists());
}

#[test]
fn daemon_start_failure_shows_the_log() {
    require_tools!("/usr/bin/python3");
    let bin_dir = tempfile::tempdir().unwrap();
    let opts = DaemonOpts {
        bin: Some(fake_daemon(bin_dir.path())),
        ..DaemonOpts::default()
    }
    .arg("--fail");
    let err = Daemon::start(opts)
        .err()
        .expect("the fake daemon refuses to start");
    let text = format!("{err:#}");
    assert!(text.contains("boom: refusing to start"), "{text}");
}
