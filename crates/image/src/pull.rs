//! Pulling images from registries: manifest (and platform) resolution, then
//! layers downloaded in parallel, each streamed at once into the content
//! store and into its snapshot, with both digests checked before anything
//! becomes visible.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use oci_client::manifest::OciDescriptor;
use oci_client::{Client, Reference};
use servin_api::{Digest, ImageRef};
use tokio::sync::{mpsc, Semaphore};

use crate::manifest::{self, Manifest, ParsedManifest};
use crate::meta::{ImageRecord, LayerRecord};
use crate::platform::Platform;
use crate::progress::ProgressSink;
use crate::registry::{map_error, oci_ref, oci_ref_digest, Credentials, RegistryConfig};
use crate::store::ImageStore;
use crate::StoreError;

/// How many layers download at once (Docker's default too).
const PARALLEL_DOWNLOADS: usize = 3;

/// What a pull asks for.
#[derive(Debug, Clone)]
pub struct PullRequest {
    pub reference: ImageRef,
    /// `None` means the host's platform, without insisting on it for single-platform images.
    pub platform: Option<Platform>,
    pub credentials: Credentials,
}

#[derive(Debug, Clone)]
pub struct PullOutcome {
    pub image: ImageRecord,
    /// The digest the reference resolved to (the index's, for a multi-platform image).
    pub digest: Digest,
    pub downloaded: bool,
}

/// Pulls `req.reference` (normalised, default tag added by the caller).
/// On failure, whatever the pull wrote is removed again.
pub async fn pull(
    store: &Arc<ImageStore>,
    registries: &RegistryConfig,
    req: &PullRequest,
    progress: &ProgressSink,
) -> Result<PullOutcome, StoreError> {
    let result = pull_inner(store, registries, req, progress).await;
    if result.is_err() {
        if let Err(e) = store.discard_unreferenced() {
            tracing::warn!(error = %e, "cleaning up after a failed pull");
        }
    }
    result
}

async fn pull_inner(
    store: &Arc<ImageStore>,
    registries: &RegistryConfig,
    req: &PullRequest,
    progress: &ProgressSink,
) -> Result<PullOutcome, StoreError> {
    let reference = &req.reference;
    let shown = reference.familiar();
    let client = registries.client(reference.domain());
    let auth = req.credentials.to_oci();
    let oref = oci_ref(reference);
    let tag_or_digest = reference
        .digest()
        .map(|d| d.to_string())
        .or_else(|| reference.tag().map(str::to_string))
        .unwrap_or_default();
    let (raw, top_digest) = fetch_manifest(&client, &oref, &auth, reference, &shown).await?;
    progress.item(
        &tag_or_digest,
        &format!("Pulling from {}", reference.path()),
    );
    let want = req.platform.clone().unwrap_or_else(Platform::host);
    let (manifest_bytes, manifest_digest, parsed) = match manifest::parse(&raw)? {
        ParsedManifest::Index(index) => {
            let entry = index.select(&want).ok_or_else(|| {
                StoreError::NotFound(format!(
                    "no matching manifest for {want} in the manifest list entries"
                ))
            })?;
            let r = oci_ref_digest(reference, &entry);
            let (raw, digest) = fetch_manifest(&client, &r, &auth, reference, &shown).await?;
            if digest != entry {
                return Err(StoreError::DigestMismatch {
                    expected: entry,
                    actual: digest,
                });
            }
            match manifest::parse(&raw)? {
                ParsedManifest::Image(m) => (raw, digest, m),
                ParsedManifest::Index(_) => {
                    return Err(StoreError::InvalidImage(format!(
                        "Manifest list for {shown} points at another manifest list"
                    )))
                }
            }
        }
        ParsedManifest::Image(m) => (raw, top_digest.clone(), m),
    };

    // Everything this pull writes stays safe from other operations' garbage
    // collection until the image is published (or the pull fails).
    let pinned = [manifest_digest.clone(), parsed.config.digest.clone()]
        .into_iter()
        .chain(parsed.layers.iter().map(|l| l.digest.clone()));
    let _pin = store.pin(pinned);
    let config = fetch_config(store, &client, &oref, &parsed, &shown).await?;
    let cfg = manifest::ImageConfigInfo::parse(&config, &parsed.config.digest)?;
    if let Some(p) = &req.platform {
        if !p.matches(&cfg.os, &cfg.architecture, cfg.variant.as_deref()) {
            return Err(StoreError::NotFound(format!(
                "image with reference {shown} was found but does not match the specified platform: wanted {p}, actual: {}/{}",
                cfg.os, cfg.architecture
            )));
        }
    }
    let _pin_layers = store.pin(cfg.diff_ids.iter().cloned());
    if cfg.diff_ids.len() != parsed.layers.len() {
        return Err(StoreError::InvalidImage(format!(
            "Image {shown} is invalid: its manifest lists {} layers but its config {} diff IDs",
            parsed.layers.len(),
            cfg.diff_ids.len()
        )));
    }

    let existing = store.resolve(&parsed.config.digest.to_string()).ok();
    let semaphore = Arc::new(Semaphore::new(PARALLEL_DOWNLOADS));
    let mut tasks = Vec::new();
    let mut downloaded = false;
    for (layer, diff_id) in parsed.layers.iter().zip(&cfg.diff_ids) {
        if let Some(size) = store.layer_if_present(&layer.digest, diff_id) {
            progress.item(layer.digest.short(), "Already exists");
            tasks.push(tokio::spawn(std::future::ready(Ok(LayerRecord {
                blob: layer.digest.clone(),
                media_type: layer.media_type.clone(),
                blob_size: layer.size,
                diff_id: diff_id.clone(),
                unpacked_size: size,
            }))));
            continue;
        }
        downloaded = true;
        progress.item(layer.digest.short(), "Pulling fs layer");
        let job = LayerJob {
            store: store.clone(),
            client: client.clone(),
            oref: oref.clone(),
            layer: layer.clone(),
            diff_id: diff_id.clone(),
            progress: progress.clone(),
        };
        let sem = semaphore.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            job.run().await
        }));
    }
    let mut layers = Vec::new();
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(l)) => layers.push(l),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(join) => {
                first_error.get_or_insert(StoreError::Registry(format!(
                    "Layer download task failed: {join}"
                )));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let manifest_blob = store.content().put(&manifest_bytes)?;
    debug_assert_eq!(manifest_blob, manifest_digest);
    let record = ImageRecord {
        id: parsed.config.digest.clone(),
        manifest: manifest_digest,
        manifest_media_type: parsed.media_type.clone(),
        layers,
        repo_digests: vec![format!("{}@{}", reference.repository(), top_digest)],
        last_tag_time: None,
    };
    let tags: Vec<ImageRef> = reference
        .tag()
        .map(|_| reference.clone())
        .into_iter()
        .collect();
    let new = store.commit_image(record, &tags)?;
    progress.status(format!("Digest: {top_digest}"));
    if new || existing.is_none() || downloaded {
        progress.status(format!("Status: Downloaded newer image for {shown}"));
    } else {
        progress.status(format!("Status: Image is up to date for {shown}"));
    }
    let image = store.resolve(&parsed.config.digest.to_string())?;
    Ok(PullOutcome {
        image,
        digest: top_digest,
        downloaded,
    })
}

async fn fetch_manifest(
    client: &Client,
    oref: &Reference,
    auth: &oci_client::secrets::RegistryAuth,
    reference: &ImageRef,
    shown: &str,
) -> Result<(Vec<u8>, Digest), StoreError> {
    let (raw, _) = client
        .pull_manifest_raw(oref, auth, manifest::ACCEPTED)
        .await
        .map_err(|e| map_error(shown, e))?;
    let digest = Digest::of(&raw);
    if let Some(want) = reference.digest() {
        // Only the top-level manifest is named by the reference's digest.
        if oref.digest() == Some(want.to_string().as_str()) && *want != digest {
            return Err(StoreError::DigestMismatch {
                expected: want.clone(),
                actual: digest,
            });
        }
    }
    Ok((raw.to_vec(), digest))
}

async fn fetch_config(
    store: &Arc<ImageStore>,
    client: &Client,
    oref: &Reference,
    m: &Manifest,
    shown: &str,
) -> Result<Vec<u8>, StoreError> {
    let d = &m.config.digest;
    if store.content().has(d) {
        return store.content().read(d);
    }
    if m.config.size > 16 * 1024 * 1024 {
        return Err(StoreError::InvalidImage(format!(
            "Image config {d} of {shown} is too large ({} bytes)",
            m.config.size
        )));
    }
    let mut buf = Vec::new();
    client
        .pull_blob(oref, &m.config.to_oci(), &mut buf)
        .await
        .map_err(|e| map_error(&format!("{shown}: config {d}"), e))?;
    let actual = Digest::of(&buf);
    if actual != *d {
        return Err(StoreError::DigestMismatch {
            expected: d.clone(),
            actual,
        });
    }
    // Published now; if the pull fails later, garbage collection takes it back.
    store.content().put(&buf)?;
    Ok(buf)
}

struct LayerJob {
    store: Arc<ImageStore>,
    client: Client,
    oref: Reference,
    layer: manifest::Descriptor,
    diff_id: Digest,
    progress: ProgressSink,
}

impl LayerJob {
    async fn run(self) -> Result<LayerRecord, StoreError> {
        let short = self.layer.digest.short().to_string();
        let label = self.layer.digest.to_string();
        let total = self.layer.size;
        let desc: OciDescriptor = self.layer.to_oci();
        let mut stream = self
            .client
            .pull_blob_stream(&self.oref, &desc)
            .await
            .map_err(|e| map_error(&format!("layer {label}"), e))?;

        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(64);
        let store = self.store.clone();
        let diff_id = self.diff_id.clone();
        let blob = self.layer.digest.clone();
        let unpacker = tokio::task::spawn_blocking(move || -> Result<u64, StoreError> {
            let mut writer = store.content().writer()?;
            let mut tee = TeeReader {
                inner: ChannelReader {
                    rx,
                    current: Bytes::new(),
                },
                out: &mut writer,
            };
            let (pending, size) = match store.snapshots().unpack(&diff_id, &mut tee, &label) {
                Ok(done) => done,
                Err(e) => {
                    // Corrupt bytes usually break the tar first: when the blob
                    // itself does not match its digest, that is the real cause.
                    let _ = io::copy(&mut tee, &mut io::sink());
                    let actual = writer.digest();
                    return Err(if actual != blob {
                        StoreError::DigestMismatch {
                            expected: blob,
                            actual,
                        }
                    } else {
                        e
                    });
                }
            };
            io::copy(&mut tee, &mut io::sink())
                .map_err(|e| StoreError::Registry(format!("Layer {label}: {e}")))?;
            writer.commit(Some(&blob))?;
            pending.commit()?;
            Ok(size)
        });

        let mut received: u64 = 0;
        let mut last = Instant::now();
        while let Some(chunk) = stream.next().await {
            let item = match chunk {
                Ok(b) => {
                    received += b.len() as u64;
                    if last.elapsed() > Duration::from_millis(100) {
                        last = Instant::now();
                        self.progress
                            .bytes(&short, "Downloading", received, Some(total));
                    }
                    Ok(b)
                }
                Err(e) => Err(io::Error::other(format!("download failed: {e}"))),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
        if received < total {
            let _ = tx
                .send(Err(io::Error::other(format!(
                    "blob is truncated: received {received} of {total} bytes"
                ))))
                .await;
        }
        drop(tx);
        let unpacked = unpacker
            .await
            .map_err(|e| {
                StoreError::Registry(format!("Layer {} unpacker failed: {e}", self.layer.digest))
            })?
            .map_err(|e| match e {
                StoreError::Io { op, path, source } if op == "read" || op == "decompress" => {
                    StoreError::Registry(format!(
                        "Failed to pull layer {}: {source}",
                        path.display()
                    ))
                }
                other => other,
            })?;
        self.progress.item(&short, "Verifying Checksum");
        self.progress.item(&short, "Download complete");
        self.progress
            .bytes(&short, "Extracting", total, Some(total));
        self.progress.item(&short, "Pull complete");
        Ok(LayerRecord {
            blob: self.layer.digest.clone(),
            media_type: self.layer.media_type.clone(),
            blob_size: total,
            diff_id: self.diff_id,
            unpacked_size: unpacked,
        })
    }
}

/// Reads the chunks a download task sends.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Copies everything read into a writer (the blob being ingested).
struct TeeReader<'a, R, W> {
    inner: R,
    out: &'a mut W,
}

impl<R: Read, W: Write> Read for TeeReader<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}
