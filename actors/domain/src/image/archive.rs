//! The outer archive: `docker save` (`manifest.json`, `<id>/layer.tar` or, since Docker
//! 25, `blobs/sha256/...`) and OCI image layouts packed as a tar (`oci-archive`:
//! `oci-layout`, `index.json`, `blobs/<alg>/<hex>`).
//!
//! The archive is read once, front to back: a stream cannot seek, and `docker save`
//! writes `manifest.json` after the layers. So every blob is sniffed as it passes: a
//! gzip, zstd or tar stream is read as a layer into its kept files (nothing else of it
//! stays), and other files up to `max_file_bytes` are kept as JSON candidates. Once the
//! manifest is known, the layers it lists are applied in its order. Each blob's SHA-256
//! is computed while it streams; an OCI blob whose name is not its digest is refused.

use std::collections::HashMap;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::rootfs::{normalize, read_layer, Budget, LayerDelta, RootFs};
use super::{Cap, ImageError, Limits};

/// How the image was packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    DockerArchive,
    OciArchive,
}

/// One layer, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// `sha256:` of the blob as stored (compressed when it is).
    pub digest: String,
    /// `sha256:` of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    /// Bytes of the blob as stored.
    pub size: u64,
    /// `gzip`, `zstd` or `none`.
    pub compression: String,
}

/// An image read from its archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub format: ImageFormat,
    /// The manifest's digest when the archive has an OCI index (what a registry calls
    /// the image digest); else, for a legacy `docker save`, the config digest (Docker's
    /// image id).
    pub digest: String,
    pub config_digest: String,
    /// `RepoTags` of a docker archive, `org.opencontainers.image.ref.name` of an OCI one.
    pub names: Vec<String>,
    pub layers: Vec<Layer>,
    pub rootfs: RootFs,
}

/// A reader that hashes and counts what passes through it, failing past a byte budget.
struct Meter<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: u64,
    entry: String,
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(ImageError::CapExceeded {
                entry: self.entry.clone(),
                cap: Cap::TotalBytes,
                limit: self.limit,
            }));
        }
        Ok(n)
    }
}

impl<R> Meter<R> {
    fn new(inner: R, limit: u64, entry: &str) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
            limit,
            entry: entry.to_owned(),
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

struct ReadLayer {
    delta: LayerDelta,
    layer: Layer,
}

/// Reads an image archive from a stream.
pub fn read_archive<R: Read>(reader: R, limits: &Limits) -> Result<Image, ImageError> {
    let mut outer = tar::Archive::new(reader);
    let mut budget = Budget::default();
    let mut total: u64 = 0;
    let mut layers: HashMap<String, ReadLayer> = HashMap::new();
    let mut files: HashMap<String, (Vec<u8>, String)> = HashMap::new();
    let entries = outer
        .entries()
        .map_err(|e| ImageError::read("archive", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ImageError::read("archive", e))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        budget.entries += 1;
        if budget.entries > limits.max_entries {
            return Err(ImageError::CapExceeded {
                entry: raw,
                cap: Cap::Entries,
                limit: limits.max_entries,
            });
        }
        let path = normalize(&raw, limits)?;
        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::Char | T::Block | T::Fifo => return Err(ImageError::DeviceFile { entry: raw }),
            T::Regular | T::Continuous => {}
            // Links inside the outer archive (old `docker save` links identical layers)
            // are not followed: a layer named through one is reported missing.
            _ => continue,
        }
        let mut head = Vec::with_capacity(512);
        (&mut entry)
            .take(512)
            .read_to_end(&mut head)
            .map_err(|e| ImageError::read(&raw, e))?;
        let compression = if head.starts_with(&[0x1f, 0x8b]) {
            "gzip"
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            "zstd"
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            "none"
        } else {
            let size = entry.size();
            if size > limits.max_file_bytes {
                // Not a layer and too large to be a manifest: passed over.
                continue;
            }
            let mut bytes = head;
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| ImageError::read(&raw, e))?;
            total += bytes.len() as u64;
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            files.insert(path, (bytes, digest));
            continue;
        };
        let budget_left = limits.max_total_bytes.saturating_sub(total);
        let stored = Meter::new(io::Cursor::new(head).chain(&mut entry), u64::MAX, &raw);
        // Each arm drains its streams to the end so both digests cover every byte.
        let drain = |r: &mut dyn Read| {
            io::copy(r, &mut io::sink()).map_err(|e| ImageError::read(&raw, e))
        };
        let (delta, mut stored, diff_id, plain) = match compression {
            "gzip" => {
                let decoder = flate2::read::MultiGzDecoder::new(stored);
                let (delta, mut plain) =
                    read_layer(Meter::new(decoder, budget_left, &raw), limits, &mut budget)?;
                drain(&mut plain)?;
                let (id, n) = (plain.digest(), plain.count);
                (delta, plain.inner.into_inner(), id, n)
            }
            "zstd" => {
                let decoder = zstd::stream::read::Decoder::new(stored)
                    .map_err(|e| ImageError::read(&raw, e))?;
                let (delta, mut plain) =
                    read_layer(Meter::new(decoder, budget_left, &raw), limits, &mut budget)?;
                drain(&mut plain)?;
                let (id, n) = (plain.digest(), plain.count);
                (delta, plain.inner.finish().into_inner(), id, n)
            }
            _ => {
                let mut stored = stored;
                stored.limit = budget_left;
                let (delta, mut plain) = read_layer(stored, limits, &mut budget)?;
                drain(&mut plain)?;
                let (id, n) = (plain.digest(), plain.count);
                (delta, plain, id, n)
            }
        };
        drain(&mut stored)?;
        total += plain;
        let layer = Layer {
            digest: stored.digest(),
            diff_id,
            size: stored.count,
            compression: compression.to_owned(),
        };
        check_blob_name(&path, &layer.digest)?;
        layers.insert(path, ReadLayer { delta, layer });
    }
    for (path, (_, digest)) in &files {
        check_blob_name(path, digest)?;
    }
    if files.contains_key("index.json") {
        oci(files, layers, limits)
    } else if files.contains_key("manifest.json") {
        docker(files, layers, limits)
    } else {
        Err(ImageError::NotAnImage)
    }
}

/// An OCI blob's path names its digest; it must be the digest of its bytes.
fn check_blob_name(path: &str, digest: &str) -> Result<(), ImageError> {
    if let Some(rest) = path.strip_prefix("blobs/") {
        if let Some((alg, hex)) = rest.split_once('/') {
            if alg == "sha256" && format!("sha256:{hex}") != digest {
                return Err(ImageError::DigestMismatch {
                    entry: path.to_owned(),
                    actual: digest.to_owned(),
                });
            }
        }
    }
    Ok(())
}

fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

fn json<'a, T: Deserialize<'a>>(
    files: &'a HashMap<String, (Vec<u8>, String)>,
    path: &str,
) -> Result<(T, &'a str), ImageError> {
    let (bytes, digest) = files.get(path).ok_or_else(|| ImageError::Missing {
        entry: path.to_owned(),
    })?;
    let value = serde_json::from_slice(bytes).map_err(|e| ImageError::Manifest {
        entry: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok((value, digest))
}

fn assemble(
    format: ImageFormat,
    digest: String,
    config_digest: String,
    names: Vec<String>,
    order: Vec<String>,
    mut layers: HashMap<String, ReadLayer>,
    limits: &Limits,
) -> Result<Image, ImageError> {
    if order.len() > limits.max_layers {
        return Err(ImageError::CapExceeded {
            entry: "manifest".to_owned(),
            cap: Cap::Layers,
            limit: limits.max_layers as u64,
        });
    }
    let mut rootfs = RootFs::default();
    let mut out = Vec::with_capacity(order.len());
    for (i, path) in order.iter().enumerate() {
        // The same blob may be listed twice (an empty layer repeated): apply it again.
        let read = layers.get_mut(path).ok_or_else(|| ImageError::Missing {
            entry: path.clone(),
        })?;
        let delta = std::mem::take(&mut read.delta);
        out.push(read.layer.clone());
        rootfs.apply(i, delta);
    }
    Ok(Image {
        format,
        digest,
        config_digest,
        names,
        layers: out,
        rootfs,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker(
    files: HashMap<String, (Vec<u8>, String)>,
    layers: HashMap<String, ReadLayer>,
    limits: &Limits,
) -> Result<Image, ImageError> {
    let (manifests, _): (Vec<DockerManifest>, _) = json(&files, "manifest.json")?;
    let m = manifests.into_iter().next().ok_or_else(|| ImageError::Manifest {
        entry: "manifest.json".to_owned(),
        reason: "no image in it".to_owned(),
    })?;
    let config = normalize(&m.config, limits)?;
    let (_, config_digest): (serde_json::Value, _) = json(&files, &config)?;
    let order = m
        .layers
        .iter()
        .map(|l| normalize(l, limits))
        .collect::<Result<Vec<_>, _>>()?;
    let config_digest = config_digest.to_owned();
    assemble(
        ImageFormat::DockerArchive,
        config_digest.clone(),
        config_digest,
        m.repo_tags.unwrap_or_default(),
        order,
        layers,
        limits,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    digest: String,
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct OciManifest {
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// The first image manifest of an index, skipping attestation manifests (whose platform
/// is `unknown`).
fn first_image(list: &[Descriptor]) -> Option<&Descriptor> {
    list.iter()
        .find(|d| d.platform.as_ref().is_none_or(|p| p.os != "unknown"))
}

fn oci(
    files: HashMap<String, (Vec<u8>, String)>,
    layers: HashMap<String, ReadLayer>,
    limits: &Limits,
) -> Result<Image, ImageError> {
    let bad = |reason: &str| ImageError::Manifest {
        entry: "index.json".to_owned(),
        reason: reason.to_owned(),
    };
    let (index, _): (Index, _) = json(&files, "index.json")?;
    let top = first_image(&index.manifests).ok_or_else(|| bad("no manifest in it"))?;
    let names: Vec<String> = top
        .annotations
        .as_ref()
        .and_then(|a| a.get("org.opencontainers.image.ref.name"))
        .cloned()
        .into_iter()
        .collect();
    let mut digest = top.digest.clone();
    let mut manifest: OciManifest = json(&files, &blob_path(&digest))?.0;
    // A nested index (a multi-platform image): one level down.
    if let Some(list) = &manifest.manifests {
        let inner = first_image(list).ok_or_else(|| bad("empty nested index"))?;
        digest = inner.digest.clone();
        manifest = json(&files, &blob_path(&digest))?.0;
    }
    let config = manifest.config.ok_or_else(|| bad("manifest without config"))?;
    let _: (serde_json::Value, _) = json(&files, &blob_path(&config.digest))?;
    let order = manifest
        .layers
        .unwrap_or_default()
        .iter()
        .map(|d| blob_path(&d.digest))
        .collect();
    assemble(
        ImageFormat::OciArchive,
        digest,
        config.digest,
        names,
        order,
        layers,
        limits,
    )
}
