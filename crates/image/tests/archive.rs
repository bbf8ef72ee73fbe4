//! Image archives: `save` then `load` round trips, docker-archive and OCI
//! layouts built here, whole-archive compression, `import`, and hostile
//! archives that must leave the store as it was.
//!
//! Needs root: layer snapshots hold overlay whiteouts, which are device
//! nodes made with mknod. Without root every test says so and skips.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde_json::{json, Value};
use servin_api::{Digest, ImageRef};
use servin_image::archive::{self, ImportOptions, LoadedImage};
use servin_image::{ImageStore, Platform, Progress, ProgressSink};

fn have_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping: needs root (layer snapshots make overlay whiteouts with mknod)");
    false
}

fn open_store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    (dir, store)
}

/// A tar header written byte by byte, so tests can also write the member
/// names and link targets (`..`, absolute) that `tar::Header` refuses.
fn header(name: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_old();
    let old = h.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(l) = link {
        old.linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// What goes into a tar built by a test.
enum Item<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Exec(&'a str, &'a [u8]),
    Owned(&'a str, &'a [u8], u64),
    Link(&'a str, &'a str),
}

fn tar_of(items: &[Item]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for item in items {
        match item {
            Item::Dir(p) => b.append(&header(p, tar::EntryType::Directory, 0, None), &[][..]),
            Item::File(p, data) => b.append(
                &header(p, tar::EntryType::Regular, data.len() as u64, None),
                *data,
            ),
            Item::Exec(p, data) => {
                let mut h = header(p, tar::EntryType::Regular, data.len() as u64, None);
                h.set_mode(0o755);
                h.set_cksum();
                b.append(&h, *data)
            }
            Item::Owned(p, data, uid) => {
                let mut h = header(p, tar::EntryType::Regular, data.len() as u64, None);
                h.set_uid(*uid);
                h.set_gid(*uid);
                h.set_cksum();
                b.append(&h, *data)
            }
            Item::Link(p, target) => b.append(
                &header(p, tar::EntryType::Symlink, 0, Some(target)),
                &[][..],
            ),
        }
        .unwrap();
    }
    b.into_inner().unwrap()
}

/// A small root filesystem: files, a symlink, an owned file.
fn base_layer() -> Vec<u8> {
    tar_of(&[
        Item::Dir("bin/"),
        Item::Exec("bin/hello", b"#!/bin/sh\necho hello\n"),
        Item::Link("bin/hi", "hello"),
        Item::Dir("etc/"),
        Item::File("etc/hostname", b"servin\n"),
        Item::File("etc/removed", b"soon gone\n"),
        Item::Owned("etc/owned", b"mine\n", 1000),
        Item::Dir("opt/"),
        Item::Dir("opt/dir/"),
        Item::File("opt/dir/a", b"a\n"),
    ])
}

/// A layer on top of [`base_layer`]: a whiteout, an opaque directory, a new file.
fn top_layer() -> Vec<u8> {
    tar_of(&[
        Item::Dir("etc/"),
        Item::File("etc/.wh.removed", b""),
        Item::File("etc/added", b"new\n"),
        Item::Dir("opt/dir/"),
        Item::File("opt/dir/.wh..wh..opq", b""),
        Item::File("opt/dir/b", b"b\n"),
    ])
}

fn config_for(layers: &[&[u8]], cmd: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
    serde_json::to_vec(&json!({
        "architecture": Platform::host().architecture,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": { "Cmd": [cmd] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": layers.iter().map(|_| json!({"created_by": "test"})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

struct TestImage {
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    tags: Vec<&'static str>,
}

impl TestImage {
    fn id(&self) -> Digest {
        Digest::of(&self.config)
    }
}

fn two_images() -> (TestImage, TestImage) {
    let (base, top) = (base_layer(), top_layer());
    let app = TestImage {
        config: config_for(&[&base[..], &top[..]], "/bin/hello"),
        layers: vec![base, top.clone()],
        tags: vec!["test/app:1", "test/app:latest"],
    };
    // Shares a layer with `app` under another chain, so the archive links it.
    let plain = TestImage {
        config: config_for(&[&top[..]], "/bin/hi"),
        layers: vec![top],
        tags: vec!["example.com/base:2"],
    };
    (app, plain)
}

/// A docker-archive as Docker 20.10 writes it: `<id>/layer.tar` (a layer
/// seen before is a symlink to its first copy), `<id>/VERSION`,
/// `<id>/json`, `<config hex>.json`, `manifest.json`, `repositories`.
fn docker_archive(images: &[&TestImage]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let file = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        b.append(
            &header(name, tar::EntryType::Regular, data.len() as u64, None),
            data,
        )
        .unwrap()
    };
    let mut seen: BTreeMap<Digest, String> = BTreeMap::new();
    let mut written = std::collections::BTreeSet::new();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in images {
        let mut chain = String::new();
        let mut paths = Vec::new();
        for layer in &image.layers {
            chain.push_str(Digest::of(layer).hex());
            let v1 = Digest::of(chain.as_bytes()).hex().to_string();
            let path = format!("{v1}/layer.tar");
            paths.push(path.clone());
            if !written.insert(v1.clone()) {
                continue;
            }
            b.append(
                &header(&format!("{v1}/"), tar::EntryType::Directory, 0, None),
                &[][..],
            )
            .unwrap();
            file(&mut b, &format!("{v1}/VERSION"), b"1.0");
            file(&mut b, &format!("{v1}/json"), b"{}");
            match seen.get(&Digest::of(layer)) {
                Some(first) => {
                    let target = format!("../{first}");
                    b.append(
                        &header(&path, tar::EntryType::Symlink, 0, Some(&target)),
                        &[][..],
                    )
                    .unwrap();
                }
                None => {
                    file(&mut b, &path, layer);
                    seen.insert(Digest::of(layer), path);
                }
            }
        }
        let config_path = format!("{}.json", image.id().hex());
        file(&mut b, &config_path, &image.config);
        manifest.push(json!({ "Config": config_path, "RepoTags": image.tags, "Layers": paths }));
        for t in &image.tags {
            let r = ImageRef::parse(t).unwrap();
            repositories
                .entry(r.familiar_repository())
                .or_default()
                .insert(r.tag().unwrap().to_string(), chain.clone());
        }
    }
    file(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    file(
        &mut b,
        "repositories",
        &serde_json::to_vec(&repositories).unwrap(),
    );
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn load_collecting(store: &ImageStore, archive: &[u8]) -> (Vec<LoadedImage>, Vec<String>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let loaded = archive::load(store, archive, &ProgressSink::new(tx)).unwrap();
    let mut lines = Vec::new();
    while let Ok(p) = rx.try_recv() {
        if let Progress::Status(s) = p {
            lines.push(s);
        }
    }
    (loaded, lines)
}

fn refs(names: &[&str]) -> Vec<ImageRef> {
    names.iter().map(|n| ImageRef::parse(n).unwrap()).collect()
}

fn xattrs(path: &Path) -> Vec<String> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 4096];
    // SAFETY: `c` is a NUL-terminated path and `names` a writable buffer of the length passed.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let cname = CString::new(name).unwrap();
        let mut value = vec![0u8; 4096];
        // SAFETY: both strings are NUL-terminated and `value` is a writable buffer of the length passed.
        let len = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        let value = if len >= 0 {
            &value[..len as usize]
        } else {
            &[][..]
        };
        out.push(format!(
            "{}={}",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(value)
        ));
    }
    out.sort();
    out
}

/// Everything about a snapshot that a container would see, by path.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let t = m.file_type();
            let what = if t.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if t.is_symlink() {
                format!("link -> {}", fs::read_link(&p).unwrap().display())
            } else if t.is_char_device() {
                format!("char {}", m.rdev())
            } else {
                format!("file {}", Digest::of(&fs::read(&p).unwrap()))
            };
            let key = p.strip_prefix(dir).unwrap().display().to_string();
            let attrs = if t.is_symlink() {
                Vec::new()
            } else {
                xattrs(&p)
            };
            let desc = format!(
                "{what} mode={:o} owner={}:{} {attrs:?}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            );
            out.insert(key, desc);
        }
    }
    out
}

/// The snapshot trees of an image's layers, lowest first.
fn image_trees(store: &ImageStore, name: &str) -> Vec<BTreeMap<String, String>> {
    let record = store.resolve(name).unwrap();
    record
        .layers
        .iter()
        .map(|l| tree(&store.snapshots().path(&l.diff_id)))
        .collect()
}

/// Every path under the data root (sizes of files), and the image index.
fn store_state(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push(format!(
                "{} {}",
                p.strip_prefix(root).unwrap().display(),
                if m.is_file() { m.len() } else { 0 }
            ));
        }
    }
    out.sort();
    out.push(fs::read_to_string(root.join("images/index.json")).unwrap_or_default());
    out
}

fn tar_entries(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(archive);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

#[test]
fn loads_a_docker_archive_built_by_hand() {
    if !have_root() {
        return;
    }
    let (app, plain) = two_images();
    let (dir, store) = open_store();
    let (loaded, lines) = load_collecting(&store, &docker_archive(&[&app, &plain]));
    let staged = fs::read_dir(dir.path().join("content/ingest"))
        .unwrap()
        .count();
    assert_eq!(staged, 0, "the staged archive is removed");

    assert_eq!(
        loaded,
        vec![
            LoadedImage {
                id: app.id(),
                tags: refs(&app.tags)
            },
            LoadedImage {
                id: plain.id(),
                tags: refs(&plain.tags)
            },
        ]
    );
    assert_eq!(
        lines,
        [
            "Loaded image: test/app:1",
            "Loaded image: test/app:latest",
            "Loaded image: example.com/base:2"
        ]
    );
    assert_eq!(store.resolve("test/app").unwrap().id, app.id());
    assert_eq!(store.resolve("example.com/base:2").unwrap().id, plain.id());

    let record = store.resolve("test/app:1").unwrap();
    assert!(record.repo_digests.is_empty());
    for (l, data) in record.layers.iter().zip(&app.layers) {
        assert_eq!(l.blob, Digest::of(data));
        assert_eq!(l.diff_id, Digest::of(data));
        assert_eq!(l.media_type, "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(l.blob_size, data.len() as u64);
        assert_eq!(store.content().read(&l.blob).unwrap(), *data);
    }
    let manifest: Value =
        serde_json::from_slice(&store.content().read(&record.manifest).unwrap()).unwrap();
    assert_eq!(
        record.manifest_media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest["config"]["digest"], json!(app.id().to_string()));
    assert_eq!(
        manifest["layers"][1]["digest"],
        json!(Digest::of(&app.layers[1]).to_string())
    );

    let trees = image_trees(&store, "test/app:1");
    let base = &trees[0];
    assert!(base["bin/hi"].starts_with("link -> hello"), "{base:?}");
    assert!(base["bin/hello"].starts_with("file ") && base["bin/hello"].contains("mode=755"));
    assert!(base["etc/owned"].contains("owner=1000:1000"), "{base:?}");
    assert_eq!(
        base["etc/hostname"].split(' ').nth(1),
        Some(Digest::of(b"servin\n").to_string().as_str())
    );
    let top = &trees[1];
    assert!(
        top["etc/removed"].starts_with("char 0 "),
        "whiteout: {top:?}"
    );
    assert!(
        top["opt/dir"].contains("trusted.overlay.opaque=y"),
        "opaque directory: {top:?}"
    );
    assert!(!top.contains_key("etc/.wh.removed") && !top.contains_key("opt/dir/.wh..wh..opq"));
    assert!(top.contains_key("etc/added") && top.contains_key("opt/dir/b"));

    // The same archive again: nothing new, same answer.
    let (again, _) = load_collecting(&store, &docker_archive(&[&app, &plain]));
    assert_eq!(again, loaded);

    // A tag that moves to another image is announced, as Docker does.
    let retag = TestImage {
        config: plain.config.clone(),
        layers: plain.layers.clone(),
        tags: vec!["test/app:1"],
    };
    let (_, lines) = load_collecting(&store, &docker_archive(&[&retag]));
    assert_eq!(
        lines,
        [
            format!(
                "The image test/app:1 already exists, renaming the old one with ID {} to empty string",
                app.id()
            ),
            "Loaded image: test/app:1".to_string(),
        ]
    );
    assert_eq!(store.resolve("test/app:1").unwrap().id, plain.id());
    assert_eq!(store.resolve("test/app:latest").unwrap().id, app.id());
}

#[test]
fn save_then_load_gives_the_same_images() {
    if !have_root() {
        return;
    }
    let (app, plain) = two_images();
    let (_dir, store) = open_store();
    load_collecting(&store, &docker_archive(&[&app, &plain]));

    let mut saved = Vec::new();
    archive::save(
        &store,
        &["test/app".into(), plain.id().to_string()],
        &mut saved,
    )
    .unwrap();

    let entries = tar_entries(&saved);
    assert_eq!(entries["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    let manifest: Value = serde_json::from_slice(&entries["manifest.json"]).unwrap();
    let diff = |l: &[u8]| format!("blobs/sha256/{}", Digest::of(l).hex());
    assert_eq!(
        manifest,
        json!([
            {
                "Config": format!("blobs/sha256/{}", app.id().hex()),
                "RepoTags": ["test/app:1", "test/app:latest"],
                "Layers": [diff(&app.layers[0]), diff(&app.layers[1])],
            },
            {
                "Config": format!("blobs/sha256/{}", plain.id().hex()),
                "RepoTags": null,
                "Layers": [diff(&plain.layers[0])],
            },
        ])
    );
    let repositories: Value = serde_json::from_slice(&entries["repositories"]).unwrap();
    assert_eq!(
        repositories,
        json!({"test/app": {"1": app.id().hex(), "latest": app.id().hex()}})
    );
    let index: Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    let descriptors = index["manifests"].as_array().unwrap();
    assert_eq!(descriptors.len(), 3, "{index}");
    assert_eq!(
        descriptors[0]["annotations"]["io.containerd.image.name"],
        "docker.io/test/app:1"
    );
    assert_eq!(
        descriptors[0]["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    assert!(descriptors[2].get("annotations").is_none());
    for (name, data) in &entries {
        if let Some(hex) = name.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(Digest::of(data).hex(), hex, "{name}");
        }
    }
    assert_eq!(entries[&diff(&app.layers[1])], app.layers[1]);
    // The stored manifest is the one saved: a later push sends what a save shows.
    let stored = store.resolve("test/app:1").unwrap().manifest;
    assert_eq!(descriptors[0]["digest"], json!(stored.to_string()));

    let (_dir2, fresh) = open_store();
    let (loaded, lines) = load_collecting(&fresh, &saved);
    assert_eq!(
        loaded,
        vec![
            LoadedImage {
                id: app.id(),
                tags: refs(&app.tags)
            },
            LoadedImage {
                id: plain.id(),
                tags: Vec::new()
            },
        ]
    );
    assert_eq!(
        lines.last().unwrap(),
        &format!("Loaded image ID: {}", plain.id())
    );
    assert_eq!(
        image_trees(&fresh, "test/app:1"),
        image_trees(&store, "test/app:1")
    );
    assert_eq!(fresh.resolve("test/app:1").unwrap(), {
        let mut r = store.resolve("test/app:1").unwrap();
        r.last_tag_time = fresh.resolve("test/app:1").unwrap().last_tag_time;
        r
    });
    assert_eq!(fresh.tags_of(&plain.id()), Vec::<String>::new());

    // Saving the same images again gives the same bytes.
    let mut again = Vec::new();
    archive::save(
        &fresh,
        &["test/app".into(), plain.id().to_string()],
        &mut again,
    )
    .unwrap();
    assert!(again == saved, "save is not deterministic");
}

/// An image as a pull leaves it: the layer blob is gzip, the snapshot is by diff ID.
fn commit_pulled_style(store: &ImageStore, tag: &str) -> (Digest, Vec<u8>) {
    let layer = base_layer();
    let blob = gzip(&layer);
    let diff_id = Digest::of(&layer);
    let blob_digest = store.content().put(&blob).unwrap();
    let (pending, unpacked) = store
        .snapshots()
        .unpack(&diff_id, &blob[..], "pulled")
        .unwrap();
    pending.commit().unwrap();
    let config = config_for(&[&layer[..]], "/bin/hello");
    let id = store.content().put(&config).unwrap();
    let manifest = store.content().put(b"{\"pulled\":true}").unwrap();
    let record = servin_image::ImageRecord {
        id: id.clone(),
        manifest,
        manifest_media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
        layers: vec![servin_image::LayerRecord {
            blob: blob_digest,
            media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
            blob_size: blob.len() as u64,
            diff_id,
            unpacked_size: unpacked,
        }],
        repo_digests: vec![format!("docker.io/library/pulled@{}", Digest::of(b"index"))],
        last_tag_time: None,
    };
    store.commit_image(record, &refs(&[tag])).unwrap();
    (id, layer)
}

#[test]
fn saves_compressed_layers_uncompressed() {
    if !have_root() {
        return;
    }
    let (_dir, store) = open_store();
    let (id, layer) = commit_pulled_style(&store, "pulled:1");
    let mut saved = Vec::new();
    archive::save(&store, &["pulled:1".into()], &mut saved).unwrap();
    let entries = tar_entries(&saved);
    assert_eq!(
        entries[&format!("blobs/sha256/{}", Digest::of(&layer).hex())],
        layer
    );

    let (_dir2, fresh) = open_store();
    let (loaded, lines) = load_collecting(&fresh, &saved);
    assert_eq!(
        loaded,
        vec![LoadedImage {
            id: id.clone(),
            tags: refs(&["pulled:1"])
        }]
    );
    assert_eq!(lines, ["Loaded image: pulled:1"]);
    assert_eq!(
        image_trees(&fresh, "pulled:1"),
        image_trees(&store, "pulled:1")
    );
    let record = fresh.resolve("pulled:1").unwrap();
    assert_eq!(record.layers[0].blob, Digest::of(&layer));
    assert!(record.repo_digests.is_empty());

    // Nothing is written when a name is unknown.
    let mut out = Vec::new();
    let err = archive::save(&store, &["pulled:1".into(), "nosuch:9".into()], &mut out).unwrap_err();
    assert_eq!(err.to_string(), "No such image: nosuch:9");
    assert!(out.is_empty());
}

#[test]
fn loads_gzip_and_zstd_archives() {
    if !have_root() {
        return;
    }
    let (app, _) = two_images();
    let plain = docker_archive(&[&app]);
    let zstd = zstd::encode_all(&plain[..], 3).unwrap();
    for compressed in [gzip(&plain), zstd] {
        let (_dir, store) = open_store();
        let (loaded, _) = load_collecting(&store, &compressed);
        assert_eq!(
            loaded,
            vec![LoadedImage {
                id: app.id(),
                tags: refs(&app.tags)
            }]
        );
        assert_eq!(image_trees(&store, "test/app:1").len(), 2);
    }
}

/// An OCI layout as buildx or skopeo writes it: gzip layers, an image index
/// holding the host's manifest and an attestation, names in annotations.
fn oci_layout(app: &TestImage) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let blob = |b: &mut tar::Builder<Vec<u8>>, data: &[u8]| -> Value {
        let d = Digest::of(data);
        let name = format!("blobs/sha256/{}", d.hex());
        b.append(
            &header(&name, tar::EntryType::Regular, data.len() as u64, None),
            data,
        )
        .unwrap();
        json!({ "digest": d.to_string(), "size": data.len() })
    };
    let mut layers = Vec::new();
    for l in &app.layers {
        let mut d = blob(&mut b, &gzip(l));
        d["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+gzip");
        layers.push(d);
    }
    let mut config = blob(&mut b, &app.config);
    config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
    }))
    .unwrap();
    let mut manifest_desc = blob(&mut b, &manifest);
    manifest_desc["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    let host = Platform::host();
    let mut for_host = manifest_desc.clone();
    for_host["platform"] = json!({ "os": "linux", "architecture": host.architecture });
    let attestation = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": Digest::of(b"not in the archive").to_string(),
        "size": 18,
        "platform": { "os": "unknown", "architecture": "unknown" },
        "annotations": { "vnd.docker.reference.type": "attestation-manifest" },
    });
    let other = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": Digest::of(b"some other platform").to_string(),
        "size": 19,
        "platform": { "os": "linux", "architecture": "s390x" },
    });
    let image_index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [other, for_host, attestation],
    }))
    .unwrap();
    let mut index_desc = blob(&mut b, &image_index);
    index_desc["mediaType"] = json!("application/vnd.oci.image.index.v1+json");
    index_desc["annotations"] = json!({ "io.containerd.image.name": "example.com/oci/app:v1" });
    let mut by_ref_name = manifest_desc.clone();
    by_ref_name["annotations"] =
        json!({ "org.opencontainers.image.ref.name": "example.com/oci/app:also" });
    let mut bare_tag = manifest_desc;
    bare_tag["annotations"] = json!({ "org.opencontainers.image.ref.name": "v2" });
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [index_desc, by_ref_name, bare_tag],
    }))
    .unwrap();
    for (name, data) in [
        ("index.json", &index[..]),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
    ] {
        b.append(
            &header(name, tar::EntryType::Regular, data.len() as u64, None),
            data,
        )
        .unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn loads_an_oci_layout() {
    if !have_root() {
        return;
    }
    let (app, _) = two_images();
    let (_dir, store) = open_store();
    let (loaded, lines) = load_collecting(&store, &oci_layout(&app));
    let tags = refs(&["example.com/oci/app:v1", "example.com/oci/app:also"]);
    assert_eq!(loaded, vec![LoadedImage { id: app.id(), tags }]);
    assert_eq!(
        lines,
        [
            "Loaded image: example.com/oci/app:v1",
            "Loaded image: example.com/oci/app:also"
        ]
    );
    let record = store.resolve("example.com/oci/app:v1").unwrap();
    assert_eq!(
        record.layers[1].blob,
        Digest::of(&app.layers[1]),
        "layers are stored uncompressed"
    );

    // The same image from a docker-archive has the same snapshots.
    let (_dir2, other) = open_store();
    load_collecting(&other, &docker_archive(&[&app]));
    assert_eq!(
        image_trees(&store, "example.com/oci/app:v1"),
        image_trees(&other, "test/app:1")
    );
}

#[test]
fn imports_a_root_filesystem() {
    if !have_root() {
        return;
    }
    let (dir, store) = open_store();
    let rootfs = base_layer();
    let opts = ImportOptions {
        tag: Some(ImageRef::parse("imported").unwrap()),
        changes: vec![r#"CMD ["sh"]"#.into(), "ENV A=b".into()],
        message: Some("from a test".into()),
        platform: None,
    };
    let id = archive::import(&store, &gzip(&rootfs)[..], &opts).unwrap();
    let config = store.config(&id).unwrap();
    assert_eq!(config["config"]["Cmd"], json!(["sh"]));
    assert_eq!(config["config"]["Env"], json!(["A=b"]));
    assert_eq!(
        config["rootfs"]["diff_ids"],
        json!([Digest::of(&rootfs).to_string()])
    );
    assert_eq!(config["history"][0]["comment"], "from a test");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], json!(Platform::host().architecture));
    assert!(config["created"].as_str().unwrap().starts_with("20"));
    assert_eq!(store.tags_of(&id), ["docker.io/library/imported:latest"]);
    let trees = image_trees(&store, "imported");
    assert!(trees[0]["bin/hi"].starts_with("link -> hello"));

    // Round trip of an imported image.
    let mut saved = Vec::new();
    archive::save(&store, &["imported:latest".into()], &mut saved).unwrap();
    let (_dir2, fresh) = open_store();
    let (loaded, _) = load_collecting(&fresh, &saved);
    assert_eq!(
        loaded,
        vec![LoadedImage {
            id: id.clone(),
            tags: refs(&["imported:latest"])
        }]
    );
    assert_eq!(image_trees(&fresh, "imported"), trees);

    // Another platform, no tag, a refused change.
    let arm = ImportOptions {
        platform: Some(Platform::parse("linux/arm64").unwrap()),
        ..Default::default()
    };
    let id = archive::import(&store, &rootfs[..], &arm).unwrap();
    assert_eq!(store.config(&id).unwrap()["architecture"], "arm64");
    assert!(store.tags_of(&id).is_empty());
    let before = store_state(dir.path());
    let bad = ImportOptions {
        changes: vec!["RUN rm -rf /".into()],
        ..Default::default()
    };
    let err = archive::import(&store, &rootfs[..], &bad).unwrap_err();
    assert_eq!(err.to_string(), "RUN is not a valid change command");
    assert_eq!(store_state(dir.path()), before);
}

/// A docker-archive with one image whose parts a test may replace.
fn archive_with(manifest: &[u8], files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files.iter().copied().chain([("manifest.json", manifest)]) {
        b.append(
            &header(name, tar::EntryType::Regular, data.len() as u64, None),
            data,
        )
        .unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn refuses_hostile_archives_and_leaves_the_store_alone() {
    if !have_root() {
        return;
    }
    let (dir, store) = open_store();
    let (app, plain) = two_images();
    load_collecting(&store, &docker_archive(&[&plain]));
    let (base, top) = (&app.layers[0], &app.layers[1]);
    let config_name = format!("{}.json", app.id().hex());
    let manifest = |layers: &[&str]| {
        serde_json::to_vec(
            &json!([{ "Config": config_name, "RepoTags": ["evil:1"], "Layers": layers }]),
        )
        .unwrap()
    };
    let good = manifest(&["l1/layer.tar", "l2/layer.tar"]);
    let parts = |top: &[u8]| -> Vec<(String, Vec<u8>)> {
        vec![
            (config_name.clone(), app.config.clone()),
            ("l1/layer.tar".into(), base.clone()),
            ("l2/layer.tar".into(), top.to_vec()),
        ]
    };
    let build = |manifest: &[u8], files: &[(String, Vec<u8>)]| {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), &d[..])).collect();
        archive_with(manifest, &files)
    };
    let mut tampered = top.clone();
    let at = tampered.len() / 3;
    tampered[at..at + 4].copy_from_slice(b"EVIL");
    let whole = build(&good, &parts(top));

    let mut with_parent = parts(top);
    with_parent.push(("../evil".into(), b"x".to_vec()));
    let mut with_absolute = parts(top);
    with_absolute.push(("/etc/evil".into(), b"x".to_vec()));
    let escaping_link = {
        let mut b = tar::Builder::new(whole[..whole.len() - 1024].to_vec());
        b.append(
            &header(
                "x/layer.tar",
                tar::EntryType::Symlink,
                0,
                Some("../../etc/passwd"),
            ),
            &[][..],
        )
        .unwrap();
        b.into_inner().unwrap()
    };
    let wrong_blob = {
        let name = format!("blobs/sha256/{}", Digest::of(base).hex());
        build(&good, &[(name, top.clone())])
    };
    // Not on a 512-byte boundary, where a tar reader would just see the end.
    let truncated = whole[..whole.len() / 2 + 100].to_vec();

    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "parent path",
            build(&good, &with_parent),
            vec!["\"../evil\"", "not a relative path"],
        ),
        (
            "absolute path",
            build(&good, &with_absolute),
            vec!["\"/etc/evil\"", "not a relative path"],
        ),
        (
            "escaping link",
            escaping_link,
            vec!["\"x/layer.tar\"", "outside the archive"],
        ),
        (
            "missing layer",
            build(
                &manifest(&["l1/layer.tar", "nowhere/layer.tar"]),
                &parts(top),
            ),
            vec!["nowhere/layer.tar", "does not contain"],
        ),
        (
            "missing config",
            build(&good, &parts(top)[1..]),
            vec![config_name.as_str(), "does not contain"],
        ),
        (
            "layer path outside",
            build(&manifest(&["l1/layer.tar", "../l2/layer.tar"]), &parts(top)),
            vec!["../l2/layer.tar", "not a relative path"],
        ),
        (
            "tampered layer",
            build(&good, &parts(&tampered)),
            vec!["l2/layer.tar", "does not match its diff ID"],
        ),
        (
            "blob not matching its name",
            wrong_blob,
            vec!["blobs/sha256/", "does not match its digest"],
        ),
        (
            "layer count",
            build(&manifest(&["l1/layer.tar"]), &parts(top)),
            vec![config_name.as_str(), "1 layers", "2 diff IDs"],
        ),
        (
            "manifest not JSON",
            build(b"{not json", &parts(top)),
            vec!["manifest.json", "not a valid"],
        ),
        (
            "manifest wrong shape",
            build(br#"{"Config": 1}"#, &parts(top)),
            vec!["manifest.json", "not a valid"],
        ),
        (
            "no manifest",
            tar_of(&[Item::File("hello", b"hi")]),
            vec!["neither manifest.json nor index.json"],
        ),
        ("truncated", truncated, vec!["Failed to read"]),
    ];
    for (what, archive, wanted) in cases {
        let before = store_state(dir.path());
        let err = match archive::load(&store, &archive[..], &ProgressSink::discard()) {
            Ok(loaded) => panic!("{what}: loaded {loaded:?}"),
            Err(e) => e.to_string(),
        };
        for w in wanted {
            assert!(err.contains(w), "{what}: {err:?} should mention {w:?}");
        }
        assert!(err.starts_with(char::is_uppercase), "{what}: {err}");
        assert_eq!(store_state(dir.path()), before, "{what}: the store changed");
    }
    // And the untampered archive still loads.
    let (loaded, _) = load_collecting(&store, &whole);
    assert_eq!(loaded[0].id, app.id());
}
