//! The outer archive: `docker save` (`manifest.json`, `<id>/layer.tar` or, since Docker
//! 25, `blobs/sha256/...`) and OCI image layouts packed as a tar (`oci-archive`:
//! `oci-layout`, `index.json`, `blobs/<alg>/<hex>`).
//!
//! The archive is read once, front to back: a stream cannot seek, and `docker save`
//! writes `manifest.json` after the layers. So every blob is sniffed as it passes: a
//! gzip, zstd or tar stream is read as a layer into its kept files (nothing else of it
//! stays), and other files that look like JSON (first byte `{` or `[`, as
//! `manifest.json`, `index.json`, `oci-layout`, `repositories`, manifests and configs
//! are) up to [`MAX_JSON_BYTES`] are kept as candidates; the rest is streamed past.
//! Once the manifest is known, the layers it lists are applied in its order. Each blob's
//! SHA-256 is computed while it streams; an OCI blob whose name is not its digest is
//! refused, and so is a docker archive whose layers, uncompressed and in the manifest's
//! order, are not the config's `rootfs.diff_ids`. Everything held counts against
//! `max_kept_bytes`.
//!
//! The walk from `index.json` to a manifest and its layers (`oci_plan`) and the
//! streaming of one layer blob (`read_layer_blob`) are shared with
//! [`super::layout`], which reads the same layout from a directory.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Read};

use serde::de::DeserializeOwned;
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
    /// An OCI image layout directory on disk ([`super::layout::read_layout`]).
    OciLayout,
    /// An unpacked root filesystem (no layers; its digest is [`Image::of_rootfs`]'s).
    Rootfs,
}

impl ImageFormat {
    /// The name the SBOMs give the format (its serialized form).
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::DockerArchive => "docker-archive",
            ImageFormat::OciArchive => "oci-archive",
            ImageFormat::OciLayout => "oci-layout",
            ImageFormat::Rootfs => "rootfs",
        }
    }
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

impl Image {
    /// An unpacked root filesystem as an image without layers: its digest is the sha256
    /// of the kept files' paths and contents (each path, a NUL, the content's sha256,
    /// a newline, in path order), so the same files give the same digest.
    pub fn of_rootfs(rootfs: RootFs) -> Image {
        let mut hasher = Sha256::new();
        for (path, entry) in rootfs.entries() {
            hasher.update(path.as_bytes());
            hasher.update([0]);
            match &entry.node {
                super::rootfs::Node::File(bytes) => {
                    hasher.update(hex::encode(Sha256::digest(bytes)).as_bytes());
                }
                // What was derived from a binary stands for its bytes.
                super::rootfs::Node::Derived(d) => {
                    let record = serde_json::to_vec(&**d).unwrap_or_default();
                    hasher.update(hex::encode(Sha256::digest(&record)).as_bytes());
                }
                super::rootfs::Node::Symlink(_) => {}
            }
            hasher.update(b"\n");
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        Image {
            format: ImageFormat::Rootfs,
            digest,
            config_digest: String::new(),
            names: Vec::new(),
            layers: Vec::new(),
            rootfs,
        }
    }
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

pub(super) struct ReadLayer {
    delta: LayerDelta,
    pub(super) layer: Layer,
}

/// The largest non-layer file of an archive kept as a JSON candidate (a manifest, an
/// index, a config), and never more than `max_file_bytes`.
pub const MAX_JSON_BYTES: u64 = 4 << 20;

/// Whether a file of the outer archive starting with `head` may be JSON (an object or
/// an array, after any whitespace).
fn looks_like_json(head: &[u8]) -> bool {
    matches!(
        head.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// Reads an image archive from a stream.
pub fn read_archive<R: Read>(reader: R, limits: &Limits) -> Result<Image, ImageError> {
    let mut outer = tar::Archive::new(reader);
    let mut budget = Budget::default();
    let mut total: u64 = 0;
    // Every layer read is held (as its kept files) until the manifest, written last,
    // says which to apply: layers no manifest lists stay here too, bounded by
    // `max_kept_bytes` as the rest is.
    let mut layers: HashMap<String, ReadLayer> = HashMap::new();
    let mut files: HashMap<String, (Vec<u8>, String)> = HashMap::new();
    let entries = outer
        .entries()
        .map_err(|e| ImageError::read("archive", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ImageError::read("archive", e))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        budget.count_entry(&raw, limits)?;
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
        let Some(compression) = layer_compression(&head) else {
            let size = entry.size();
            let cap = MAX_JSON_BYTES.min(limits.max_file_bytes);
            if size > cap || !looks_like_json(&head) {
                // Not a layer and not a manifest, index or config: streamed past.
                continue;
            }
            budget.keep(&raw, size, limits)?;
            let mut bytes = head;
            // The tar entry ends at its header's size, checked above.
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| ImageError::read(&raw, e))?;
            total += bytes.len() as u64;
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            files.insert(path, (bytes, digest));
            continue;
        };
        let read = read_layer_blob(
            head,
            &mut entry,
            compression,
            &raw,
            limits,
            &mut budget,
            &mut total,
        )?;
        check_blob_name(&path, &read.layer.digest)?;
        layers.insert(path, read);
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

/// How a blob starting with `head` is compressed if it is a layer: gzip and zstd by
/// their magic bytes, a plain tar by `ustar` at offset 257, an empty tar by its first
/// block of zeros (the end-of-archive marker; builders write empty layers).
pub(super) fn layer_compression(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if (head.len() >= 262 && &head[257..262] == b"ustar")
        || (head.len() == 512 && head.iter().all(|&b| b == 0))
    {
        Some("none")
    } else {
        None
    }
}

/// Streams one layer blob (`head`, its first bytes already read, then `rest`) into its
/// kept files, hashing it as stored and as uncompressed tar. `total` is the uncompressed
/// bytes read so far, against `max_total_bytes`; `entry` names the blob in errors.
pub(super) fn read_layer_blob<R: Read>(
    head: Vec<u8>,
    rest: R,
    compression: &'static str,
    entry: &str,
    limits: &Limits,
    budget: &mut Budget,
    total: &mut u64,
) -> Result<ReadLayer, ImageError> {
    let budget_left = limits.max_total_bytes.saturating_sub(*total);
    let stored = Meter::new(io::Cursor::new(head).chain(rest), u64::MAX, entry);
    // Each arm drains its streams to the end so both digests cover every byte.
    let drain =
        |r: &mut dyn Read| io::copy(r, &mut io::sink()).map_err(|e| ImageError::read(entry, e));
    let (delta, mut stored, diff_id, plain) = match compression {
        "gzip" => {
            let decoder = flate2::read::MultiGzDecoder::new(stored);
            let (delta, mut plain) =
                read_layer(Meter::new(decoder, budget_left, entry), limits, budget)?;
            drain(&mut plain)?;
            let (id, n) = (plain.digest(), plain.count);
            (delta, plain.inner.into_inner(), id, n)
        }
        "zstd" => {
            let decoder =
                zstd::stream::read::Decoder::new(stored).map_err(|e| ImageError::read(entry, e))?;
            let (delta, mut plain) =
                read_layer(Meter::new(decoder, budget_left, entry), limits, budget)?;
            drain(&mut plain)?;
            let (id, n) = (plain.digest(), plain.count);
            (delta, plain.inner.finish().into_inner(), id, n)
        }
        _ => {
            let mut stored = stored;
            stored.limit = budget_left;
            let (delta, mut plain) = read_layer(stored, limits, budget)?;
            drain(&mut plain)?;
            let (id, n) = (plain.digest(), plain.count);
            (delta, plain, id, n)
        }
    };
    drain(&mut stored)?;
    *total += plain;
    Ok(ReadLayer {
        delta,
        layer: Layer {
            digest: stored.digest(),
            diff_id,
            size: stored.count,
            compression: compression.to_owned(),
        },
    })
}

/// An OCI blob's path names its digest; it must be the digest of its bytes.
pub(super) fn check_blob_name(path: &str, digest: &str) -> Result<(), ImageError> {
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

/// Where a layout keeps the blob of `digest`: `blobs/<alg>/<hex>`.
pub(super) fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// Whether `hex` is a SHA-256 digest as OCI writes it: 64 lowercase hex digits.
pub(super) fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The blob path of a descriptor's digest, which must be `sha256:<64 hex>`: only
/// SHA-256 is computed, so a blob under any other algorithm could not be checked (an
/// archive and a layout directory refuse it alike).
fn sha256_blob(digest: &str, limits: &Limits) -> Result<String, ImageError> {
    let path = blob_path(digest);
    // A digest written to walk out of `blobs/` is named as such.
    normalize(&path, limits)?;
    if !digest.strip_prefix("sha256:").is_some_and(is_sha256_hex) {
        return Err(ImageError::Manifest {
            entry: path,
            reason: "not a sha256 digest (only sha256 blobs are read)".to_owned(),
        });
    }
    Ok(path)
}

fn parse_json<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::Manifest {
        entry: path.to_owned(),
        reason: e.to_string(),
    })
}

fn json<'a, T: DeserializeOwned>(
    files: &'a HashMap<String, (Vec<u8>, String)>,
    path: &str,
) -> Result<(T, &'a str), ImageError> {
    let (bytes, digest) = files.get(path).ok_or_else(|| ImageError::Missing {
        entry: path.to_owned(),
    })?;
    Ok((parse_json(path, bytes)?, digest))
}

fn check_layer_count(layers: usize, limits: &Limits) -> Result<(), ImageError> {
    if layers > limits.max_layers {
        return Err(ImageError::CapExceeded {
            entry: "manifest".to_owned(),
            cap: Cap::Layers,
            limit: limits.max_layers as u64,
        });
    }
    Ok(())
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
    check_layer_count(order.len(), limits)?;
    let mut rootfs = RootFs::default();
    let mut out = Vec::with_capacity(order.len());
    let last: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect();
    for (i, path) in order.iter().enumerate() {
        // The same blob may be listed twice (an empty layer repeated, or a layer
        // re-adding what one between deleted): each use applies it whole. A clone shares
        // the kept content; the last use takes it.
        let read = layers.get_mut(path).ok_or_else(|| ImageError::Missing {
            entry: path.clone(),
        })?;
        let delta = if last[path.as_str()] == i {
            std::mem::take(&mut read.delta)
        } else {
            read.delta.clone()
        };
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

/// The part of an image config that ties it to its layers.
#[derive(Deserialize)]
struct DockerConfig {
    rootfs: ConfigRootfs,
}

#[derive(Deserialize)]
struct ConfigRootfs {
    diff_ids: Vec<String>,
}

/// A docker archive's layers are the config's: the `i`-th layer of the manifest must be
/// the uncompressed tar whose digest is the config's `rootfs.diff_ids[i]`, so an archive
/// cannot pair a config (and its image id) with other layers.
fn check_diff_ids(
    config: &str,
    diff_ids: &[String],
    order: &[String],
    layers: &HashMap<String, ReadLayer>,
) -> Result<(), ImageError> {
    let read: Vec<&Layer> = order
        .iter()
        .map(|path| {
            layers
                .get(path)
                .map(|r| &r.layer)
                .ok_or_else(|| ImageError::Missing {
                    entry: path.clone(),
                })
        })
        .collect::<Result<_, _>>()?;
    if diff_ids.len() != order.len() {
        return Err(ImageError::Manifest {
            entry: config.to_owned(),
            reason: format!(
                "rootfs.diff_ids lists {} layers, the manifest {}",
                diff_ids.len(),
                order.len()
            ),
        });
    }
    for ((path, layer), want) in order.iter().zip(read).zip(diff_ids) {
        if layer.diff_id != *want {
            return Err(ImageError::DigestMismatch {
                entry: path.clone(),
                actual: layer.diff_id.clone(),
            });
        }
    }
    Ok(())
}

fn docker(
    files: HashMap<String, (Vec<u8>, String)>,
    layers: HashMap<String, ReadLayer>,
    limits: &Limits,
) -> Result<Image, ImageError> {
    let (manifests, _): (Vec<DockerManifest>, _) = json(&files, "manifest.json")?;
    let m = manifests
        .into_iter()
        .next()
        .ok_or_else(|| ImageError::Manifest {
            entry: "manifest.json".to_owned(),
            reason: "no image in it".to_owned(),
        })?;
    let config = normalize(&m.config, limits)?;
    let (image_config, config_digest): (DockerConfig, _) = json(&files, &config)?;
    let order = m
        .layers
        .iter()
        .map(|l| normalize(l, limits))
        .collect::<Result<Vec<_>, _>>()?;
    check_layer_count(order.len(), limits)?;
    check_diff_ids(&config, &image_config.rootfs.diff_ids, &order, &layers)?;
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

/// What an OCI index leads to: the image manifest's digest, its config's digest, the
/// index's name for it, and its layers' blob paths, bottom first.
pub(super) struct OciPlan {
    pub(super) digest: String,
    pub(super) config_digest: String,
    pub(super) names: Vec<String>,
    pub(super) order: Vec<String>,
}

/// Follows `index.json` to the first image manifest (one nested index down) and its
/// config, reading each through `blob`, which gives the bytes at a path of the layout
/// (their digest already checked against the path) or why not. Every descriptor on the
/// way (manifests, config, layers) must name a `sha256:` digest.
pub(super) fn oci_plan<'a>(
    mut blob: impl FnMut(&str) -> Result<Cow<'a, [u8]>, ImageError>,
    limits: &Limits,
) -> Result<OciPlan, ImageError> {
    let bad = |reason: &str| ImageError::Manifest {
        entry: "index.json".to_owned(),
        reason: reason.to_owned(),
    };
    let index: Index = parse_json("index.json", &blob("index.json")?)?;
    let mut json =
        |path: &str| -> Result<OciManifest, ImageError> { parse_json(path, &blob(path)?) };
    let top = first_image(&index.manifests).ok_or_else(|| bad("no manifest in it"))?;
    let names: Vec<String> = top
        .annotations
        .as_ref()
        .and_then(|a| a.get("org.opencontainers.image.ref.name"))
        .cloned()
        .into_iter()
        .collect();
    let mut digest = top.digest.clone();
    let mut manifest = json(&sha256_blob(&digest, limits)?)?;
    // A nested index (a multi-platform image): one level down.
    if let Some(list) = &manifest.manifests {
        let inner = first_image(list).ok_or_else(|| bad("empty nested index"))?;
        digest = inner.digest.clone();
        manifest = json(&sha256_blob(&digest, limits)?)?;
    }
    let config = manifest
        .config
        .ok_or_else(|| bad("manifest without config"))?;
    let path = sha256_blob(&config.digest, limits)?;
    let _: serde_json::Value = parse_json(&path, &blob(&path)?)?;
    let order: Vec<String> = manifest
        .layers
        .unwrap_or_default()
        .iter()
        .map(|d| sha256_blob(&d.digest, limits))
        .collect::<Result<_, _>>()?;
    check_layer_count(order.len(), limits)?;
    Ok(OciPlan {
        digest,
        config_digest: config.digest,
        names,
        order,
    })
}

/// Builds the image of `plan` from its layers, read.
pub(super) fn assemble_oci(
    format: ImageFormat,
    plan: OciPlan,
    layers: HashMap<String, ReadLayer>,
    limits: &Limits,
) -> Result<Image, ImageError> {
    assemble(
        format,
        plan.digest,
        plan.config_digest,
        plan.names,
        plan.order,
        layers,
        limits,
    )
}

fn oci(
    files: HashMap<String, (Vec<u8>, String)>,
    layers: HashMap<String, ReadLayer>,
    limits: &Limits,
) -> Result<Image, ImageError> {
    let plan = oci_plan(
        |path| match files.get(path) {
            Some((bytes, _)) => Ok(Cow::Borrowed(bytes.as_slice())),
            None => Err(ImageError::Missing {
                entry: path.to_owned(),
            }),
        },
        limits,
    )?;
    assemble_oci(ImageFormat::OciArchive, plan, layers, limits)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;
    use std::io::{Read, Write};

    use super::*;
    use crate::image::rootfs::tests::{tar_of, E};
    use crate::image::{analyze, cyclonedx, Package, PackageType};

    pub(crate) fn sha(b: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(b)))
    }

    pub(crate) fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn zst(b: &[u8]) -> Vec<u8> {
        zstd::stream::encode_all(b, 3).unwrap()
    }

    /// A tar of regular files with ordinary (valid) paths.
    pub(crate) fn outer(files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn config(diff_ids: &[String]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .unwrap()
    }

    /// `docker save` as Docker before 25 writes it: layers first, `manifest.json` last.
    pub(crate) fn docker_archive(layers: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        let diff_ids: Vec<String> = layers.iter().map(|l| diff_id(l)).collect();
        docker_archive_with(layers, &diff_ids)
    }

    /// The digest of a layer as an uncompressed tar (a gzip one inflated first).
    pub(crate) fn diff_id(layer: &[u8]) -> String {
        if layer.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(layer)
                .read_to_end(&mut plain)
                .unwrap();
            sha(&plain)
        } else {
            sha(layer)
        }
    }

    /// A docker archive whose config lists `diff_ids`, whatever the layers are.
    pub(crate) fn docker_archive_with(
        layers: &[Vec<u8>],
        diff_ids: &[String],
    ) -> (Vec<u8>, Vec<u8>) {
        let config = config(diff_ids);
        let config_name = format!("{}.json", &sha(&config)[7..]);
        let mut files = Vec::new();
        let mut names = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let name = format!("{i:064x}/layer.tar");
            files.push((name.clone(), l.clone()));
            names.push(name);
        }
        files.push((config_name.clone(), config.clone()));
        let manifest = serde_json::json!([{
            "Config": config_name, "RepoTags": ["stella/test:1"], "Layers": names,
        }]);
        files.push((
            "manifest.json".into(),
            serde_json::to_vec(&manifest).unwrap(),
        ));
        (outer(&files), config)
    }

    /// An OCI layout as a tar: blobs first, `index.json` last; returns the manifest.
    fn oci_archive(blobs: &[(Vec<u8>, &str)], diff_ids: &[String]) -> (Vec<u8>, Vec<u8>) {
        let (files, manifest) = oci_files(blobs, diff_ids);
        (outer(&files), manifest)
    }

    /// The files of an OCI layout, blobs first, `index.json` last; and the manifest.
    pub(crate) fn oci_files(
        blobs: &[(Vec<u8>, &str)],
        diff_ids: &[String],
    ) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
        let config = config(diff_ids);
        let layers: Vec<_> = blobs
            .iter()
            .map(|(b, mt)| serde_json::json!({"mediaType": mt, "digest": sha(b), "size": b.len()}))
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
            "layers": layers,
        }))
        .unwrap();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(&manifest), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "stella/test:1"},
        }]});
        let blob = |b: &[u8]| (format!("blobs/sha256/{}", &sha(b)[7..]), b.to_vec());
        let mut files = vec![(
            "oci-layout".to_owned(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        )];
        files.extend(blobs.iter().map(|(b, _)| blob(b)));
        files.push(blob(&config));
        files.push(blob(&manifest));
        files.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
        (files, manifest)
    }

    fn host(path: &str) -> Option<Vec<u8>> {
        std::fs::read(path).ok()
    }

    /// Two layers cut from this machine's own root filesystem: its os-release, dpkg
    /// database and Python distributions, an npm tree; the second layer deletes one
    /// Python distribution and replaces the npm tree through an opaque folder.
    pub(crate) fn fragment() -> Vec<Vec<u8>> {
        let os = host("/usr/lib/os-release")
            .unwrap_or_else(|| b"ID=debian\nVERSION_ID=\"12\"\n".to_vec());
        let status = host("/var/lib/dpkg/status").unwrap_or_default();
        let mut l0: Vec<(String, Vec<u8>)> = vec![
            ("usr/lib/os-release".into(), os),
            ("var/lib/dpkg/status".into(), status),
            (
                "srv/app/node_modules/left-pad/package.json".into(),
                br#"{"name":"left-pad","version":"1.1.3"}"#.to_vec(),
            ),
        ];
        let mut dists: Vec<_> = std::fs::read_dir("/usr/lib/python3/dist-packages")
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        dists.sort();
        for d in dists
            .iter()
            .filter(|d| d.extension().is_some_and(|e| e == "dist-info"))
        {
            if let Some(m) = host(&format!("{}/METADATA", d.display())) {
                l0.push((format!("{}/METADATA", &d.display().to_string()[1..]), m));
            }
        }
        let mut entries: Vec<E<'_>> = l0.iter().map(|(p, d)| E::File(p, d)).collect();
        entries.push(E::Symlink("etc/os-release", "../usr/lib/os-release"));
        entries.push(E::File("usr/bin/true", b"\x7fELF"));
        let layer0 = tar_of(&entries);
        let layer1 = tar_of(&[
            E::File("srv/app/node_modules/.wh..wh..opq", b""),
            E::File(
                "srv/app/node_modules/@scope/name/package.json",
                br#"{"name":"@scope/name","version":"1.0.0"}"#,
            ),
            E::File(
                "usr/lib/python3/dist-packages/.wh.PyYAML-6.0.dist-info",
                b"",
            ),
        ]);
        vec![layer0, layer1]
    }

    pub(crate) fn rows(pkgs: &[Package]) -> Vec<(String, String)> {
        pkgs.iter()
            .map(|p| (p.purl.to_string(), p.evidence.clone()))
            .collect()
    }

    #[test]
    fn docker_archive_of_a_real_fragment() {
        let layers = fragment();
        let (archive, config) = docker_archive(&layers);
        let image = read_archive(&archive[..], &Limits::default()).unwrap();
        assert_eq!(image.format, ImageFormat::DockerArchive);
        assert_eq!(image.config_digest, sha(&config));
        assert_eq!(image.digest, sha(&config));
        assert_eq!(image.names, ["stella/test:1"]);
        let digests: Vec<_> = image
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.diff_id.clone()))
            .collect();
        assert_eq!(
            digests,
            layers.iter().map(|l| (sha(l), sha(l))).collect::<Vec<_>>()
        );
        let inv = analyze(&image.rootfs);
        let npm: Vec<_> = inv
            .packages
            .iter()
            .filter(|p| p.ty == PackageType::Npm)
            .map(|p| (p.purl.as_str(), p.layer))
            .collect();
        assert_eq!(
            npm,
            [("pkg:npm/%40scope/name@1.0.0", 1)],
            "the opaque folder hid left-pad"
        );
        assert!(!inv
            .packages
            .iter()
            .any(|p| p.purl.as_str().starts_with("pkg:pypi/pyyaml@")));
        assert!(inv.distro.is_some());

        // The SBOM reads back as the same inventory.
        let doc = serde_json::to_vec(&cyclonedx::document(&image, &inv)).unwrap();
        let sbom = crate::sbom::parse(&doc).unwrap();
        let back: BTreeSet<String> = sbom
            .components
            .iter()
            .filter_map(|c| c.purl.as_ref())
            .map(|p| p.to_string())
            .collect();
        let ours: BTreeSet<String> = inv.packages.iter().map(|p| p.purl.to_string()).collect();
        assert_eq!(back, ours);
        assert_eq!(sbom.components.len(), ours.len());
        let subject = sbom.subject.unwrap();
        assert_eq!(subject.version.as_deref(), Some(image.digest.as_str()));
        assert_eq!(sbom.name.as_deref(), Some("stella/test:1"));
        assert_eq!(sbom.spec_version, "1.5");
    }

    type Blobs = Vec<(Vec<u8>, &'static str)>;

    /// The fragment's layers as OCI blobs, the first gzip, the second zstd, and their
    /// diff ids.
    pub(crate) fn fragment_blobs(layers: &[Vec<u8>]) -> (Blobs, Vec<String>) {
        let blobs = vec![
            (
                gz(&layers[0]),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            ),
            (
                zst(&layers[1]),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        ];
        (blobs, layers.iter().map(|l| sha(l)).collect())
    }

    /// The fragment as an OCI archive, read; and the archive.
    pub(crate) fn oci_image() -> (Image, Vec<u8>) {
        let (blobs, diff_ids) = fragment_blobs(&fragment());
        let (archive, _) = oci_archive(&blobs, &diff_ids);
        let image = read_archive(&archive[..], &Limits::default()).unwrap();
        (image, archive)
    }

    #[test]
    fn oci_archive_with_gzip_and_zstd_layers_gives_the_same_root() {
        let layers = fragment();
        let (blobs, diff_ids) = fragment_blobs(&layers);
        let (archive, manifest) = oci_archive(&blobs, &diff_ids);
        let image = read_archive(&archive[..], &Limits::default()).unwrap();
        assert_eq!(image.format, ImageFormat::OciArchive);
        assert_eq!(image.digest, sha(&manifest));
        assert_eq!(image.names, ["stella/test:1"]);
        let got: Vec<_> = image
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.diff_id.clone(), l.compression.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (sha(&blobs[0].0), diff_ids[0].clone(), "gzip"),
                (sha(&blobs[1].0), diff_ids[1].clone(), "zstd"),
            ]
        );
        let docker = read_archive(&docker_archive(&layers).0[..], &Limits::default()).unwrap();
        assert_eq!(image.rootfs, docker.rootfs);
        assert_eq!(
            rows(&analyze(&image.rootfs).packages),
            rows(&analyze(&docker.rootfs).packages)
        );
    }

    #[test]
    fn an_oci_blob_not_named_by_its_digest_is_refused() {
        let layer = tar_of(&[E::File("etc/os-release", b"ID=debian\n")]);
        let bad = format!("blobs/sha256/{}", "0".repeat(64));
        let tampered = outer(&[(bad.clone(), layer)]);
        assert_eq!(
            read_archive(&tampered[..], &Limits::default()).unwrap_err(),
            ImageError::DigestMismatch {
                entry: bad,
                actual: sha(&tar_of(&[E::File("etc/os-release", b"ID=debian\n")]))
            }
        );
    }

    #[test]
    fn an_oci_archive_refuses_a_descriptor_that_is_not_sha256() {
        let plain = tar_of(&[E::File("etc/os-release", b"ID=debian\n")]);
        // Compressed, so that only the manifest names the layer's digest.
        let layer = gz(&plain);
        let (files, _) = oci_files(
            &[(layer.clone(), "application/vnd.oci.image.layer.v1.tar+gzip")],
            &[sha(&plain)],
        );
        let l = Limits::default();
        assert!(read_archive(&outer(&files)[..], &l).is_ok());
        // The layer stored and described under sha512 (a digest Stella does not compute),
        // the manifest and index rewritten to match.
        let digest512 = format!("sha512:{}", "ab".repeat(64));
        let sha256 = sha(&layer);
        let mut swapped: Vec<(String, Vec<u8>)> = Vec::new();
        let mut renamed = HashMap::new();
        for (path, bytes) in &files {
            if *path == blob_path(&sha256) {
                swapped.push((blob_path(&digest512), bytes.clone()));
                continue;
            }
            let text = String::from_utf8_lossy(bytes);
            if text.contains(&sha256) {
                let new = text.replace(&sha256, &digest512).into_bytes();
                renamed.insert(sha(bytes), sha(&new));
                swapped.push((blob_path(&sha(&new)), new));
                continue;
            }
            swapped.push((path.clone(), bytes.clone()));
        }
        for (path, bytes) in &mut swapped {
            if path == "index.json" {
                let mut text = String::from_utf8(bytes.clone()).unwrap();
                for (old, new) in &renamed {
                    text = text.replace(old, new);
                }
                *bytes = text.into_bytes();
            }
        }
        assert_eq!(
            read_archive(&outer(&swapped)[..], &l).unwrap_err(),
            ImageError::Manifest {
                entry: blob_path(&digest512),
                reason: "not a sha256 digest (only sha256 blobs are read)".into()
            }
        );
        // A manifest descriptor in the index too, and a digest with uppercase hex.
        for bad in [
            format!("sha512:{}", "cd".repeat(64)),
            sha(b"x").to_uppercase().replace("SHA256", "sha256"),
        ] {
            let files: Vec<_> = files
                .iter()
                .map(|(p, b)| {
                    if p == "index.json" {
                        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                        let mut v = v;
                        v["manifests"][0]["digest"] = serde_json::json!(bad);
                        (p.clone(), serde_json::to_vec(&v).unwrap())
                    } else {
                        (p.clone(), b.clone())
                    }
                })
                .collect();
            assert_eq!(
                read_archive(&outer(&files)[..], &l).unwrap_err(),
                ImageError::Manifest {
                    entry: blob_path(&bad),
                    reason: "not a sha256 digest (only sha256 blobs are read)".into()
                }
            );
        }
    }

    #[test]
    fn an_empty_layer_is_a_layer() {
        let empty = tar_of(&[]);
        assert!(empty.iter().all(|&b| b == 0));
        let a = tar_of(&[E::File("etc/os-release", b"ID=debian\n")]);
        let (archive, _) = docker_archive(&[a.clone(), empty.clone(), gz(&empty)]);
        let image = read_archive(&archive[..], &Limits::default()).unwrap();
        let ids: Vec<_> = image.layers.iter().map(|l| l.diff_id.clone()).collect();
        assert_eq!(ids, [sha(&a), sha(&empty), sha(&empty)]);
        assert_eq!(image.rootfs.read("etc/os-release").unwrap().1, 0);
    }

    #[test]
    fn a_layer_listed_twice_applies_whole_each_time() {
        let a = tar_of(&[E::File("etc/os-release", b"ID=debian\n")]);
        let b = tar_of(&[E::File("etc/.wh.os-release", b"")]);
        let l = Limits::default();
        let present = |image: &Image| {
            image
                .rootfs
                .read("etc/os-release")
                .map(|(c, i)| (c.to_vec(), i))
        };
        let mt = "application/vnd.oci.image.layer.v1.tar";
        let (files, _) = oci_files(
            &[(a.clone(), mt), (b.clone(), mt), (a.clone(), mt)],
            &[sha(&a), sha(&b), sha(&a)],
        );
        let image = read_archive(&outer(&files)[..], &l).unwrap();
        assert_eq!(image.layers.len(), 3);
        assert_eq!(present(&image), Some((b"ID=debian\n".to_vec(), 2)));
        // A docker archive naming one layer file twice.
        let config = config(&[sha(&a), sha(&b), sha(&a)]);
        let config_name = format!("{}.json", &sha(&config)[7..]);
        let manifest = serde_json::json!([{
            "Config": config_name, "Layers": ["a/layer.tar", "b/layer.tar", "a/layer.tar"],
        }]);
        let docker = outer(&[
            ("a/layer.tar".into(), a.clone()),
            ("b/layer.tar".into(), b.clone()),
            (config_name, config),
            (
                "manifest.json".into(),
                serde_json::to_vec(&manifest).unwrap(),
            ),
        ]);
        let image = read_archive(&docker[..], &l).unwrap();
        assert_eq!(present(&image), Some((b"ID=debian\n".to_vec(), 2)));
    }

    #[test]
    fn a_layer_bomb_stops_at_the_byte_cap() {
        let zeros = vec![0u8; 4 << 20];
        let bomb = gz(&tar_of(&[E::File("usr/share/zeros", &zeros)]));
        assert!(bomb.len() < 64 << 10);
        let (archive, _) = docker_archive(&[bomb]);
        let err = read_archive(
            &archive[..],
            &Limits {
                max_total_bytes: 1 << 20,
                ..Limits::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            err,
            ImageError::CapExceeded {
                entry: format!("{:064x}/layer.tar", 0),
                cap: Cap::TotalBytes,
                limit: 1 << 20
            }
        );
    }

    #[test]
    fn outer_files_that_are_not_json_are_streamed_past_and_json_ones_charged() {
        let layer = tar_of(&[E::File("etc/os-release", b"ID=debian\n")]);
        let (archive, _) = docker_archive(std::slice::from_ref(&layer));
        // A large file that is neither a layer nor JSON (a `VERSION`, a signature, junk)
        // is not held: a cap far below its size does not refuse the image.
        let mut files = vec![("junk/VERSION".to_owned(), vec![b'1'; 1 << 20])];
        let mut tar = tar::Archive::new(&archive[..]);
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            files.push((path, bytes));
        }
        let small = Limits {
            max_kept_bytes: 64 << 10,
            ..Limits::default()
        };
        let image = read_archive(&outer(&files)[..], &small).unwrap();
        assert_eq!(
            image.rootfs.read("etc/os-release").unwrap().0,
            b"ID=debian\n"
        );
        // The JSON files are held, so charged: a cap below them refuses the image.
        let err = read_archive(
            &outer(&files)[..],
            &Limits {
                max_kept_bytes: 100,
                ..Limits::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                &err,
                ImageError::CapExceeded {
                    cap: Cap::KeptBytes,
                    limit: 100,
                    ..
                }
            ),
            "{err}"
        );
        assert!(looks_like_json(b" \n[{}]") && looks_like_json(b"{"));
        assert!(!looks_like_json(b"1.0") && !looks_like_json(b""));
    }

    #[test]
    fn a_docker_archive_whose_config_lists_other_layers_is_refused() {
        let a = tar_of(&[E::File("etc/os-release", b"ID=debian\n")]);
        let b = gz(&tar_of(&[E::File("var/lib/dpkg/status", b"Package: x\n")]));
        let l = Limits::default();
        // The diff id is the uncompressed tar's: a gzip layer reads.
        let (good, _) = docker_archive(&[a.clone(), b.clone()]);
        let image = read_archive(&good[..], &l).unwrap();
        assert_eq!(image.layers[1].diff_id, diff_id(&b));
        assert_ne!(image.layers[1].diff_id, sha(&b));

        let other = sha(b"another layer");
        let (swapped, _) = docker_archive_with(&[a.clone(), b.clone()], &[sha(&a), other]);
        assert_eq!(
            read_archive(&swapped[..], &l).unwrap_err(),
            ImageError::DigestMismatch {
                entry: format!("{:064x}/layer.tar", 1),
                actual: diff_id(&b)
            }
        );
        // In the wrong order.
        let (reversed, _) = docker_archive_with(&[a.clone(), b.clone()], &[diff_id(&b), sha(&a)]);
        assert!(matches!(
            read_archive(&reversed[..], &l).unwrap_err(),
            ImageError::DigestMismatch { .. }
        ));
        // One layer more or fewer than the config lists.
        for ids in [vec![sha(&a)], vec![sha(&a), diff_id(&b), sha(&a)]] {
            let (archive, config) = docker_archive_with(&[a.clone(), b.clone()], &ids);
            let err = read_archive(&archive[..], &l).unwrap_err();
            assert_eq!(
                err,
                ImageError::Manifest {
                    entry: format!("{}.json", &sha(&config)[7..]),
                    reason: format!("rootfs.diff_ids lists {} layers, the manifest 2", ids.len()),
                }
            );
        }
        // A config without diff ids is no image config.
        let (archive, _) = docker_archive(std::slice::from_ref(&a));
        let mut files = Vec::new();
        for e in tar::Archive::new(&archive[..]).entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            if path.ends_with(".json") && path != "manifest.json" {
                bytes = br#"{"architecture":"amd64"}"#.to_vec();
            }
            files.push((path, bytes));
        }
        assert!(matches!(
            read_archive(&outer(&files)[..], &l).unwrap_err(),
            ImageError::Manifest { .. }
        ));
    }

    #[test]
    fn hostile_outer_archives_are_refused() {
        let l = Limits::default();
        let traversal = tar_of(&[E::File("../manifest.json", b"[]")]);
        assert_eq!(
            read_archive(&traversal[..], &l).unwrap_err(),
            ImageError::PathTraversal {
                entry: "../manifest.json".into()
            }
        );
        let device = tar_of(&[E::Char("manifest.json")]);
        assert_eq!(
            read_archive(&device[..], &l).unwrap_err(),
            ImageError::DeviceFile {
                entry: "manifest.json".into()
            }
        );
        let (three, _) = docker_archive(&[tar_of(&[]), tar_of(&[]), tar_of(&[])]);
        let err = read_archive(&three[..], &Limits { max_layers: 2, ..l }).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::CapExceeded {
                    cap: Cap::Layers,
                    limit: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            read_archive(&outer(&[("x".into(), b"{}".to_vec())])[..], &l).unwrap_err(),
            ImageError::NotAnImage
        );
        // A layer the manifest lists but the archive lacks.
        let missing = outer(&[
            ("c.json".into(), config(&[])),
            (
                "manifest.json".into(),
                br#"[{"Config":"c.json","Layers":["a/layer.tar"]}]"#.to_vec(),
            ),
        ]);
        assert_eq!(
            read_archive(&missing[..], &l).unwrap_err(),
            ImageError::Missing {
                entry: "a/layer.tar".into()
            }
        );
    }

    /// Checked against the real thing: this machine's own dpkg database, packed as an
    /// image layer, gives exactly what `dpkg-query -W` lists (name, version,
    /// architecture), package for package.
    #[test]
    fn host_dpkg_database_equals_dpkg_query() {
        let (Some(status), Ok(out)) = (
            host("/var/lib/dpkg/status"),
            std::process::Command::new("dpkg-query")
                .args(["-W", "-f", "${Package} ${Version} ${Architecture}\n"])
                .output(),
        ) else {
            eprintln!("no dpkg on this machine: skipped");
            return;
        };
        let want: BTreeSet<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let (archive, _) =
            docker_archive(&[gz(&tar_of(&[E::File("var/lib/dpkg/status", &status)]))]);
        let image = read_archive(&archive[..], &Limits::default()).unwrap();
        let inv = analyze(&image.rootfs);
        let got: BTreeSet<String> = inv
            .packages
            .iter()
            .map(|p| {
                format!(
                    "{} {} {}",
                    p.name,
                    p.version,
                    p.arch.as_deref().unwrap_or("")
                )
            })
            .collect();
        assert!(want.len() > 10, "{want:?}");
        assert_eq!(got.len(), inv.packages.len(), "one package per line");
        assert_eq!(
            got.difference(&want).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "only in Stella"
        );
        assert_eq!(
            want.difference(&got).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "only in dpkg-query"
        );
    }
}
