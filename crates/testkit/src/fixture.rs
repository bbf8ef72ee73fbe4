//! Fixture images as OCI image layouts, built from the static busybox.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::layer::{self, header, Compression, LayerBlob, LayerSpec};

/// The `PATH` of the image config, as in Docker Hub's busybox.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where Debian's busybox-static installs the binary.
pub const BUSYBOX_BIN: &str = "/bin/busybox";

/// Applets linked to `bin/busybox` in the fixture (relative symlinks).
pub const BUSYBOX_APPLETS: &[&str] = &[
    "[", "ash", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df", "dirname",
    "du", "echo", "env", "false", "find", "grep", "head", "hostname", "id", "kill", "ln", "ls",
    "mkdir", "mktemp", "mount", "mv", "nc", "printf", "ps", "pwd", "readlink", "rm", "rmdir",
    "sed", "seq", "sh", "sleep", "sort", "stat", "tail", "tee", "test", "top", "touch", "tr",
    "true", "uname", "uniq", "wc", "wget", "whoami", "xargs", "yes",
];

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";

/// An OCI platform (`os`/`architecture`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn amd64() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    /// linux/arm64/v8. The fixture still carries the amd64 busybox: this is
    /// for resolving manifest lists, not for running.
    pub fn arm64() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"os": self.os, "architecture": self.architecture});
        if let Some(variant) = &self.variant {
            v["variant"] = json!(variant);
        }
        v
    }
}

/// One platform's image inside a fixture.
#[derive(Debug, Clone)]
pub struct FixtureImage {
    pub platform: Platform,
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub config_digest: String,
    pub layers: Vec<LayerBlob>,
}

/// An OCI image layout in a temp dir (removed on drop), with one tag in
/// `index.json` that points at an image manifest or, for several
/// platforms, at an image index.
#[derive(Debug)]
pub struct Fixture {
    dir: tempfile::TempDir,
    tag: String,
    digest: String,
    media_type: &'static str,
    images: Vec<FixtureImage>,
}

impl Fixture {
    /// The busybox image: one gzip layer, linux/amd64, `Cmd ["sh"]`.
    pub fn busybox() -> Result<Fixture> {
        ImageBuilder::new().build()
    }

    /// busybox for linux/amd64 and linux/arm64 behind an OCI image index.
    pub fn busybox_multiarch() -> Result<Fixture> {
        ImageBuilder::new()
            .platforms(vec![Platform::amd64(), Platform::arm64()])
            .build()
    }

    /// The layout directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The tag recorded in `index.json` (`org.opencontainers.image.ref.name`).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `oci:DIR:TAG`, the skopeo source reference.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.dir.path().display(), self.tag)
    }

    /// Digest of the top manifest: what a registry reports for the tag when
    /// the fixture is pushed unconverted ([`crate::push`], or
    /// [`crate::push_raw`] when a layer is uncompressed: skopeo compresses
    /// those).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Media type of the top manifest (image manifest or image index).
    pub fn media_type(&self) -> &str {
        self.media_type
    }

    pub fn is_index(&self) -> bool {
        self.images.len() > 1
    }

    /// The images, one per platform, in the order given to the builder.
    pub fn images(&self) -> &[FixtureImage] {
        &self.images
    }

    /// Sum of the distinct layer blob sizes.
    pub fn layers_size(&self) -> u64 {
        let mut seen = std::collections::BTreeMap::new();
        for blob in self.images.iter().flat_map(|i| &i.layers) {
            seen.insert(&blob.digest, blob.size);
        }
        seen.values().sum()
    }

    /// Path of a blob in the layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join("blobs/sha256").join(hex)
    }
}

/// Builds fixture images: busybox base (unless turned off) plus extra layers.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    busybox: Option<PathBuf>,
    compression: Compression,
    gzip_level: u32,
    layers: Vec<(LayerSpec, Compression)>,
    platforms: Vec<Platform>,
    tag: String,
    cmd: Vec<String>,
    entrypoint: Option<Vec<String>>,
    env: Vec<String>,
    working_dir: Option<String>,
    labels: Vec<(String, String)>,
    seed: u64,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// busybox base layer, gzip, linux/amd64, tag `latest`, `Cmd ["sh"]`.
    pub fn new() -> Self {
        ImageBuilder {
            busybox: Some(PathBuf::from(BUSYBOX_BIN)),
            compression: Compression::Gzip,
            gzip_level: 6,
            layers: Vec::new(),
            platforms: vec![Platform::amd64()],
            tag: "latest".into(),
            cmd: vec!["sh".into()],
            entrypoint: None,
            env: vec![DEFAULT_PATH.into()],
            working_dir: None,
            labels: Vec::new(),
            seed: 0x005e_7117,
        }
    }

    /// Leave out the busybox base layer (a data-only image).
    pub fn without_busybox(mut self) -> Self {
        self.busybox = None;
        self
    }

    /// Take busybox from another path (must be statically linked).
    pub fn busybox_from(mut self, path: impl Into<PathBuf>) -> Self {
        self.busybox = Some(path.into());
        self
    }

    /// Compression of the busybox layer and of layers added after this call
    /// with [`ImageBuilder::layer`].
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// gzip level 0–9 (default 6). Level 1 is much faster for random data,
    /// which does not compress anyway.
    pub fn gzip_level(mut self, level: u32) -> Self {
        self.gzip_level = level.min(9);
        self
    }

    /// Adds a layer compressed with the current [`ImageBuilder::compression`].
    pub fn layer(mut self, spec: LayerSpec) -> Self {
        self.layers.push((spec, self.compression));
        self
    }

    /// Adds a layer with its own compression.
    pub fn layer_with(mut self, spec: LayerSpec, compression: Compression) -> Self {
        self.layers.push((spec, compression));
        self
    }

    /// Adds `count` random (incompressible) layers of `size` bytes each.
    pub fn random_layers(mut self, count: usize, size: u64) -> Self {
        for _ in 0..count {
            self = self.layer(LayerSpec::random(size));
        }
        self
    }

    /// One platform gives an image manifest; several give an image index
    /// whose manifests share the layers and differ in their configs.
    pub fn platforms(mut self, platforms: Vec<Platform>) -> Self {
        self.platforms = platforms;
        self
    }

    pub fn tag(mut self, tag: &str) -> Self {
        self.tag = tag.into();
        self
    }

    pub fn cmd(mut self, cmd: &[&str]) -> Self {
        self.cmd = cmd.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn entrypoint(mut self, entrypoint: &[&str]) -> Self {
        self.entrypoint = Some(entrypoint.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Adds `KEY=VALUE` to the config's `Env` (after `PATH`).
    pub fn env(mut self, entry: &str) -> Self {
        self.env.push(entry.into());
        self
    }

    pub fn working_dir(mut self, dir: &str) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// Seed of the random data; two builds with the same seed and layers
    /// have the same digests, different seeds give different layers.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Writes the layout into a new temp dir.
    pub fn build(self) -> Result<Fixture> {
        let dir = crate::temp_dir("fixture")?;
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        if self.platforms.is_empty() {
            bail!("An image needs at least one platform");
        }

        let mut layers = Vec::new();
        let mut history = Vec::new();
        if let Some(busybox) = &self.busybox {
            layers.push(self.busybox_layer(&blobs, busybox)?);
            history.push("servin-testkit: busybox".to_string());
        }
        for (index, (spec, compression)) in self.layers.iter().enumerate() {
            let index = index + 1;
            let seed = self.seed;
            let blob = layer::write_layer(&blobs, *compression, self.gzip_level, |b| match spec {
                LayerSpec::Data { size, fill } => layer::append_data(b, index, *size, *fill, seed),
                LayerSpec::Files(files) => layer::append_files(b, files),
            })?;
            layers.push(blob);
            history.push(format!("servin-testkit: layer {index}"));
        }

        let mut images = Vec::new();
        for platform in &self.platforms {
            let config = self.config(platform, &layers, &history);
            let (config_digest, config_size) =
                layer::write_blob(&blobs, &serde_json::to_vec(&config)?)?;
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {"mediaType": CONFIG, "digest": config_digest, "size": config_size},
                "layers": layers.iter().map(|l| json!({
                    "mediaType": l.media_type, "digest": l.digest, "size": l.size,
                })).collect::<Vec<_>>(),
            });
            let (manifest_digest, manifest_size) =
                layer::write_blob(&blobs, &serde_json::to_vec(&manifest)?)?;
            images.push(FixtureImage {
                platform: platform.clone(),
                manifest_digest,
                manifest_size,
                config_digest,
                layers: layers.clone(),
            });
        }

        let (media_type, digest, size) = if let [image] = images.as_slice() {
            (MANIFEST, image.manifest_digest.clone(), image.manifest_size)
        } else {
            let index = json!({
                "schemaVersion": 2,
                "mediaType": INDEX,
                "manifests": images.iter().map(|i| json!({
                    "mediaType": MANIFEST,
                    "digest": i.manifest_digest,
                    "size": i.manifest_size,
                    "platform": i.platform.to_json(),
                })).collect::<Vec<_>>(),
            });
            let (digest, size) = layer::write_blob(&blobs, &serde_json::to_vec(&index)?)?;
            (INDEX, digest, size)
        };
        let top = json!({
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [{
                "mediaType": media_type,
                "digest": digest,
                "size": size,
                "annotations": {"org.opencontainers.image.ref.name": self.tag},
            }],
        });
        std::fs::write(dir.path().join("index.json"), serde_json::to_vec(&top)?)?;
        Ok(Fixture {
            dir,
            tag: self.tag,
            digest,
            media_type,
            images,
        })
    }

    fn config(&self, platform: &Platform, layers: &[LayerBlob], history: &[String]) -> Value {
        let created = "2024-01-01T00:00:00Z";
        let mut config = json!({"Env": self.env, "Cmd": self.cmd});
        if let Some(entrypoint) = &self.entrypoint {
            config["Entrypoint"] = json!(entrypoint);
        }
        if let Some(dir) = &self.working_dir {
            config["WorkingDir"] = json!(dir);
        }
        if !self.labels.is_empty() {
            let labels: serde_json::Map<String, Value> = self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            config["Labels"] = Value::Object(labels);
        }
        let mut v = json!({
            "created": created,
            "architecture": platform.architecture,
            "os": platform.os,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()},
            "history": history.iter().map(|h| json!({"created": created, "created_by": h})).collect::<Vec<_>>(),
        });
        if let Some(variant) = &platform.variant {
            v["variant"] = json!(variant);
        }
        v
    }

    fn busybox_layer(&self, blobs: &Path, busybox: &Path) -> Result<LayerBlob> {
        let binary = std::fs::read(busybox).with_context(|| {
            format!(
                "Cannot read {} (apt-get install busybox-static)",
                busybox.display()
            )
        })?;
        if is_dynamic_elf(&binary) {
            bail!(
                "{} is dynamically linked; the fixture needs busybox-static",
                busybox.display()
            );
        }
        layer::write_layer(blobs, self.compression, self.gzip_level, |b| {
            append_busybox_tree(b, &binary)
        })
    }
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn append_busybox_tree<W: io::Write>(b: &mut tar::Builder<W>, binary: &[u8]) -> Result<()> {
    use tar::EntryType::{Directory, Regular, Symlink};
    let dir = |b: &mut tar::Builder<W>, path: &str, mode: u32| {
        b.append_data(&mut header(Directory, mode, 0), path, io::empty())
    };
    dir(b, "bin/", 0o755)?;
    b.append_data(
        &mut header(Regular, 0o755, binary.len() as u64),
        "bin/busybox",
        binary,
    )?;
    for applet in BUSYBOX_APPLETS {
        let mut h = header(Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    dir(b, "dev/", 0o755)?;
    dir(b, "etc/", 0o755)?;
    for (path, text) in [("etc/group", GROUP), ("etc/passwd", PASSWD)] {
        b.append_data(
            &mut header(Regular, 0o644, text.len() as u64),
            path,
            text.as_bytes(),
        )?;
    }
    dir(b, "proc/", 0o555)?;
    dir(b, "root/", 0o700)?;
    dir(b, "sys/", 0o555)?;
    dir(b, "tmp/", 0o1777)?;
    dir(b, "usr/", 0o755)?;
    dir(b, "usr/bin/", 0o755)?;
    dir(b, "var/", 0o755)?;
    Ok(())
}

/// True for an ELF file with a program interpreter (a dynamic executable).
fn is_dynamic_elf(bytes: &[u8]) -> bool {
    // ELF64 little-endian: e_phoff at 0x20, e_phentsize at 0x36, e_phnum at
    // 0x38; PT_INTERP is program header type 3.
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if bytes.get(..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(entsize), Some(num)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..num).any(|i| u32_at(phoff as usize + i * entsize) == Some(3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn data_only_image_has_consistent_digests() {
        let fixture = ImageBuilder::new()
            .without_busybox()
            .layer(LayerSpec::random(4096))
            .layer_with(LayerSpec::compressible(4096), Compression::Zstd)
            .layer_with(LayerSpec::file("etc/hello", "hi\n"), Compression::None)
            .build()
            .unwrap();
        let image = &fixture.images()[0];
        assert_eq!(image.layers.len(), 3);
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(fixture.blob_path(fixture.digest())).unwrap())
                .unwrap();
        assert_eq!(manifest["config"]["digest"], image.config_digest.as_str());
        let config: Value = serde_json::from_slice(
            &std::fs::read(fixture.blob_path(&image.config_digest)).unwrap(),
        )
        .unwrap();
        let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let expected: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
        assert_eq!(diff_ids, expected);
        assert_eq!(config["history"].as_array().unwrap().len(), 3);
        let index: Value =
            serde_json::from_slice(&std::fs::read(fixture.path().join("index.json")).unwrap())
                .unwrap();
        assert_eq!(index["manifests"][0]["digest"], fixture.digest());
    }

    #[test]
    fn same_seed_same_digest_other_seed_other_digest() {
        let build = |seed| {
            ImageBuilder::new()
                .without_busybox()
                .seed(seed)
                .layer(LayerSpec::random(1000))
                .build()
                .unwrap()
        };
        assert_eq!(build(1).digest(), build(1).digest());
        assert_ne!(build(1).digest(), build(2).digest());
    }

    #[test]
    fn busybox_fixture_has_the_expected_tree() {
        if !Path::new(BUSYBOX_BIN).exists() && crate::skip("busybox_fixture", "no /bin/busybox") {
            return;
        }
        let fixture = Fixture::busybox().unwrap();
        let image = &fixture.images()[0];
        let blob = std::fs::File::open(fixture.blob_path(&image.layers[0].digest)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
        let mut entries = std::collections::BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let link = entry
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            let mode = entry.header().mode().unwrap();
            let mut text = String::new();
            if path.starts_with("etc/") {
                entry.read_to_string(&mut text).unwrap();
            }
            entries.insert(path, (mode, link, text));
        }
        assert_eq!(entries["tmp/"].0, 0o1777);
        assert_eq!(entries["bin/sh"].1.as_deref(), Some("busybox"));
        assert_eq!(entries["bin/busybox"].0, 0o755);
        assert!(entries["etc/passwd"].2.starts_with("root:x:0:0:"));
        assert!(entries["etc/group"].2.contains("nobody:x:65534:"));
        for dir in ["proc/", "sys/", "dev/", "etc/"] {
            assert!(entries.contains_key(dir), "{dir} missing");
        }
        let config: Value = serde_json::from_slice(
            &std::fs::read(fixture.blob_path(&image.config_digest)).unwrap(),
        )
        .unwrap();
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["config"]["Cmd"], json!(["sh"]));
        assert_eq!(config["config"]["Env"], json!([DEFAULT_PATH]));
    }

    #[test]
    fn multiarch_fixture_is_an_index() {
        let fixture = ImageBuilder::new()
            .without_busybox()
            .layer(LayerSpec::file("hello", "hi"))
            .platforms(vec![Platform::amd64(), Platform::arm64()])
            .build()
            .unwrap();
        assert!(fixture.is_index());
        let index: Value =
            serde_json::from_slice(&std::fs::read(fixture.blob_path(fixture.digest())).unwrap())
                .unwrap();
        assert_eq!(index["manifests"][1]["platform"]["architecture"], "arm64");
        assert_ne!(
            fixture.images()[0].config_digest,
            fixture.images()[1].config_digest
        );
    }

    #[test]
    fn detects_dynamic_executables() {
        let shell = std::fs::read("/proc/self/exe").unwrap();
        // The test binary itself is dynamically linked on glibc targets.
        assert!(is_dynamic_elf(&shell));
        assert!(!is_dynamic_elf(b"#!/bin/sh\n"));
    }
}
