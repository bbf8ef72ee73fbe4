//! Acceptance: the stock docker CLI against servind, for the image store.
//! Needs: docker (CLI), docker-registry, skopeo, busybox-static; root for
//! unpacking layers (overlay whiteouts are device nodes).

mod common;

use common::{registry_blob, store_state, Env};
use servin_testkit::{require_tools, Fixture, ImageBuilder, LeakCheck, Platform};

const TOOLS: [&str; 4] = ["docker", "docker-registry", "skopeo", "busybox"];

#[test]
fn pull_inspect_tag_push_and_remove() {
    require_tools!(TOOLS[0], TOOLS[1], TOOLS[2], TOOLS[3]);
    let env = Env::start();
    let leaks = LeakCheck::new(env.daemon.dir());
    let fixture = Fixture::busybox().unwrap();
    let image = env.publish(&fixture, "busybox:latest");
    let repo = image.trim_end_matches(":latest");
    let id = fixture.images()[0].config_digest.clone();

    let v = env
        .docker
        .run(&[
            "version",
            "--format",
            "{{.Server.Version}} {{.Server.APIVersion}}",
        ])
        .ok();
    assert_eq!(v.out(), format!("{} 1.45", env!("CARGO_PKG_VERSION")));

    let pull = env.docker.run(&["pull", repo]).ok();
    assert!(
        pull.stdout.contains("Using default tag: latest"),
        "{}",
        pull.stdout
    );
    assert!(pull.stdout.contains("Pull complete"), "{}", pull.stdout);
    assert!(
        pull.stdout
            .contains(&format!("Digest: {}", fixture.digest())),
        "{}",
        pull.stdout
    );
    assert!(
        pull.stdout
            .contains(&format!("Status: Downloaded newer image for {image}")),
        "{}",
        pull.stdout
    );

    let again = env.docker.run(&["pull", &image]).ok();
    assert!(again.stdout.contains("Already exists"), "{}", again.stdout);
    assert!(
        again
            .stdout
            .contains(&format!("Status: Image is up to date for {image}")),
        "{}",
        again.stdout
    );

    let listing = env.docker.run(&["images"]).ok();
    let lines: Vec<&str> = listing.stdout.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY"), "{}", listing.stdout);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &row[..3],
        &[repo, "latest", &id[7..19]],
        "{}",
        listing.stdout
    );

    let q = env.docker.run(&["images", "-q"]).ok();
    assert_eq!(q.out(), &id[7..19]);
    let inspected = env
        .docker
        .run(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Os}}/{{.Architecture}} {{json .Config.Cmd}}",
            repo,
        ])
        .ok();
    assert_eq!(inspected.out(), format!("{id} linux/amd64 [\"sh\"]"));
    let digests = env
        .docker
        .run(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &id[7..19],
        ])
        .ok();
    assert_eq!(digests.out(), format!("[\"{repo}@{}\"]", fixture.digest()));

    env.docker.run(&["tag", repo, "copy:v1"]).ok();
    let copy = env.registry.reference("copy:v1");
    env.docker.run(&["tag", "copy:v1", &copy]).ok();
    let push = env.docker.run(&["push", &copy]).ok();
    assert!(
        push.stdout.contains(&format!(
            "The push refers to repository [{}]",
            copy.trim_end_matches(":v1")
        )),
        "{}",
        push.stdout
    );
    assert!(
        push.stdout.contains("v1: digest: sha256:"),
        "{}",
        push.stdout
    );
    let pushed = env.registry.manifest("copy", "v1").unwrap();
    assert_eq!(pushed.status, 200);
    let manifest: serde_json::Value = pushed.json().unwrap();
    assert_eq!(manifest["config"]["digest"], id.as_str());

    let rmi = env.docker.run(&["rmi", "copy:v1"]).ok();
    assert_eq!(rmi.out(), "Untagged: copy:v1");
    let filtered = env
        .docker
        .run(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            "reference=copy",
        ])
        .ok();
    assert_eq!(filtered.out(), "");

    let refused = env.docker.run(&["rmi", &id[7..19]]).code(1);
    assert!(
        refused
            .stderr
            .contains("image is referenced in multiple repositories"),
        "{}",
        refused.stderr
    );
    let forced = env.docker.run(&["rmi", "-f", &id[7..19]]).ok();
    assert!(
        forced.stdout.contains(&format!("Deleted: {id}")),
        "{}",
        forced.stdout
    );
    assert_eq!(env.docker.run(&["images", "-q"]).ok().out(), "");
    let state = store_state(&env.daemon.data_root());
    assert!(
        !state
            .keys()
            .any(|k| k.starts_with("content/blobs/sha256/") || k.starts_with("snapshots/")),
        "store not emptied: {state:?}"
    );
    drop(env);
    leaks.assert_clean();
}

#[test]
fn bad_names_and_registries_get_clear_errors_and_change_nothing() {
    require_tools!(TOOLS[0], TOOLS[1], TOOLS[2], TOOLS[3]);
    let env = Env::start();
    let fixture = Fixture::busybox().unwrap();
    let image = env.publish(&fixture, "busybox:latest");
    env.docker.run(&["pull", &image]).ok();
    let before = store_state(&env.daemon.data_root());

    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["pull".into(), "UPPER/case".into()],
            "invalid reference format: repository name (UPPER/case) must be lowercase",
        ),
        (
            vec!["pull".into(), "a::b".into()],
            "invalid reference format",
        ),
        (
            vec!["image".into(), "inspect".into(), "nosuch".into()],
            "No such image: nosuch",
        ),
        (
            vec!["rmi".into(), "nosuch".into()],
            "No such image: nosuch:latest",
        ),
        (
            vec!["tag".into(), "nosuch".into(), "other".into()],
            "No such image: nosuch:latest",
        ),
        (
            vec!["pull".into(), "127.0.0.1:1/busybox".into()],
            "cannot reach the registry",
        ),
        (
            vec!["pull".into(), env.registry.reference("nosuch:latest")],
            "not found",
        ),
        (
            vec![
                "pull".into(),
                "--platform".into(),
                "linux/s390x".into(),
                image.clone(),
            ],
            "does not match the specified platform",
        ),
    ];
    for (args, message) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = env.docker.run(&args).fails();
        assert!(
            out.stderr.contains(message),
            "{args:?}: expected {message:?} in {}",
            out.stderr
        );
    }
    assert_eq!(
        before,
        store_state(&env.daemon.data_root()),
        "a failed command changed the store"
    );
}

#[test]
fn corrupt_truncated_and_unauthorised_blobs_are_refused() {
    require_tools!(TOOLS[0], TOOLS[1], TOOLS[2], TOOLS[3]);
    let env = Env::start();
    let before = store_state(&env.daemon.data_root());

    // Digest mismatch: the registry serves other bytes than the manifest names.
    let tampered = ImageBuilder::new()
        .layer(servin_testkit::LayerSpec::file("a.txt", "original"))
        .build()
        .unwrap();
    let name = env.publish(&tampered, "tampered:latest");
    let layer = &tampered.images()[0].layers.last().unwrap().digest;
    let path = registry_blob(&env.registry, layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let out = env.docker.run(&["pull", &name]).fails();
    assert!(
        out.stderr.to_lowercase().contains("digest")
            || out.stdout.to_lowercase().contains("digest"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );

    // Truncated blob.
    let short = ImageBuilder::new().seed(7).build().unwrap();
    let name = env.publish(&short, "short:latest");
    let layer = &short.images()[0].layers.last().unwrap().digest;
    let path = registry_blob(&env.registry, layer);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    let out = env.docker.run(&["pull", &name]).fails();
    let text = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        text.contains("truncated") || text.contains("digest") || text.contains("eof"),
        "{text}"
    );

    assert_eq!(
        before,
        store_state(&env.daemon.data_root()),
        "a failed pull left something behind"
    );

    // A registry that wants credentials.
    let secure = servin_testkit::Registry::start_with_htpasswd("alice", "s3cret").unwrap();
    let fixture = Fixture::busybox().unwrap();
    let r = secure.reference("private:latest");
    servin_testkit::push_with(
        &fixture,
        &r,
        servin_testkit::Format::Oci,
        Some(("alice", "s3cret")),
    )
    .unwrap();
    let out = env.docker.run(&["pull", &r]).fails();
    assert!(out.stderr.contains("unauthorized"), "{}", out.stderr);
    env.docker
        .run_with_stdin(
            &["login", "-u", "alice", "--password-stdin", secure.addr()],
            Some(b"s3cret"),
        )
        .ok();
    env.docker.run(&["pull", &r]).ok();
    // servin reads the credentials `docker login` stored.
    let servin = env.servin();
    let anonymous = servin.run(&["pull", &r]).fails();
    assert!(
        anonymous.stderr.contains("unauthorized"),
        "{}",
        anonymous.stderr
    );
    let config = env.docker.config_dir().to_str().unwrap().to_string();
    env.servin()
        .env("DOCKER_CONFIG", &config)
        .run(&["pull", &r])
        .ok();
}

#[test]
fn platform_is_chosen_from_an_index() {
    require_tools!(TOOLS[0], TOOLS[1], TOOLS[2], TOOLS[3]);
    let env = Env::start();
    let fixture = Fixture::busybox_multiarch().unwrap();
    let image = env.publish(&fixture, "multi:latest");
    let want = |p: &Platform| {
        fixture
            .images()
            .iter()
            .find(|i| i.platform == *p)
            .unwrap()
            .config_digest
            .clone()
    };

    env.docker.run(&["pull", &image]).ok();
    let id = env
        .docker
        .run(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Architecture}}",
            &image,
        ])
        .ok();
    assert_eq!(id.out(), format!("{} amd64", want(&Platform::amd64())));

    env.docker
        .run(&["pull", "--platform", "linux/arm64", &image])
        .ok();
    let id = env
        .docker
        .run(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Architecture}}",
            &image,
        ])
        .ok();
    assert_eq!(id.out(), format!("{} arm64", want(&Platform::arm64())));
    let digests = env
        .docker
        .run(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image,
        ])
        .ok();
    assert!(
        digests.out().contains(fixture.digest()),
        "{}",
        digests.out()
    );
}

#[test]
fn api_versions_and_error_bodies_are_dockers() {
    require_tools!(TOOLS[1]);
    let env = Env::start();
    let ping = env.daemon.get("/_ping").unwrap();
    assert_eq!((ping.status, ping.text().as_str()), (200, "OK"));
    assert_eq!(ping.header("Api-Version"), Some("1.45"));
    assert_eq!(ping.header("Ostype"), Some("linux"));

    assert_eq!(env.daemon.get("/v1.24/version").unwrap().status, 200);
    let v = env.daemon.get("/v1.45/version").unwrap().json().unwrap();
    assert_eq!(v["ApiVersion"], "1.45");
    assert_eq!(v["MinAPIVersion"], "1.24");

    let too_new = env.daemon.get("/v1.99/version").unwrap();
    assert_eq!(too_new.status, 400);
    assert_eq!(
        too_new.json().unwrap()["message"],
        "client version 1.99 is too new. Maximum supported API version is 1.45"
    );
    let too_old = env.daemon.get("/v1.12/info").unwrap();
    assert_eq!(too_old.status, 400);
    assert!(too_old.json().unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("too old"));

    let missing = env.daemon.get("/v1.45/images/nosuch/json").unwrap();
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json().unwrap()["message"],
        "No such image: nosuch:latest"
    );

    let bad_filter = env.daemon.get("/images/json?filters=%7Bnot-json").unwrap();
    assert_eq!(bad_filter.status, 400);
    assert!(bad_filter.json().unwrap()["message"]
        .as_str()
        .unwrap()
        .starts_with("invalid filter"));

    let info = env.daemon.get("/info").unwrap().json().unwrap();
    assert_eq!(
        info["DockerRootDir"],
        env.daemon.data_root().display().to_string()
    );
}

#[test]
fn zstd_plain_and_schema2_images_pull() {
    require_tools!(TOOLS[0], TOOLS[1], TOOLS[2], TOOLS[3]);
    let env = Env::start();
    let zstd = ImageBuilder::new()
        .compression(servin_testkit::Compression::Zstd)
        .layer(servin_testkit::LayerSpec::file("etc/z.txt", "zstd"))
        .build()
        .unwrap();
    let plain = ImageBuilder::new()
        .compression(servin_testkit::Compression::None)
        .layer(servin_testkit::LayerSpec::file("etc/p.txt", "plain"))
        .build()
        .unwrap();
    let v2s2 = ImageBuilder::new().seed(3).build().unwrap();

    let z = env.publish(&zstd, "zstd:latest");
    let p = env.registry.reference("plain:latest");
    servin_testkit::push_raw(&plain, &p, None).unwrap();
    let d = env.registry.reference("schema2:latest");
    servin_testkit::push_with(&v2s2, &d, servin_testkit::Format::V2s2, None).unwrap();
    let ct = env
        .registry
        .get(
            "/v2/schema2/manifests/latest",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .unwrap();
    assert_eq!(
        ct.header("Content-Type"),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );

    for (name, fixture) in [(&z, &zstd), (&p, &plain), (&d, &v2s2)] {
        env.docker.run(&["pull", name]).ok();
        let id = env
            .docker
            .run(&["image", "inspect", "--format", "{{.Id}}", name])
            .ok();
        assert_eq!(id.out(), fixture.images()[0].config_digest, "{name}");
    }
    // The uncompressed layers are unpacked to the same files whatever the compression.
    let root = env.daemon.data_root().join("snapshots");
    let found = |file: &str| {
        std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .any(|e| e.path().join(file).is_file())
    };
    assert!(found("etc/z.txt") && found("etc/p.txt"));
}
