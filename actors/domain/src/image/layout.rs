//! An OCI image layout directory on disk (`oci-layout`, `index.json`, `blobs/sha256/…`),
//! as `skopeo copy … oci:DIR:TAG`, `buildah push … oci:DIR` or an unpacked `oci-archive`
//! leave it.
//!
//! Unlike a tar stream, a directory can be read in the order the index gives: only
//! `index.json`, the manifests and config it leads to, and the layers the manifest lists
//! are opened, each once, and each layer is streamed as [`super::archive`] streams one
//! (the same code: magic-byte sniffing, both digests, the caps, whiteouts). Every blob
//! read is checked against the digest that names it. A blob path is resolved on disk and
//! must stay inside the layout: a blob that is a symbolic link out of it is refused, even
//! when the bytes it leads to have the right digest. Only `sha256` blobs are read.
//!
//! The walk is generic over where the files are ([`LayoutFiles`]); [`LayoutDir`], the
//! directory, is the domain's one file-system adapter, small enough to move out to the
//! CLI or an actor should the domain stay free of I/O.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::archive::{
    assemble_oci, check_blob_name, is_sha256_hex, layer_compression, oci_plan, read_archive,
    read_layer_blob, Image, ImageFormat, ReadLayer,
};
use super::rootfs::{normalize, Budget};
use super::{Cap, ImageError, Limits};

/// Reads the image at `path`: an OCI image layout when it is a directory, else an
/// archive file ([`read_archive`]).
pub fn read_path(path: &Path, limits: &Limits) -> Result<Image, ImageError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| ImageError::read(&shown, e))?;
    if meta.is_dir() {
        return read_layout(path, limits);
    }
    let file = File::open(path).map_err(|e| ImageError::read(&shown, e))?;
    read_archive(BufReader::new(file), limits)
}

/// Reads an OCI image layout directory.
pub fn read_layout(dir: &Path, limits: &Limits) -> Result<Image, ImageError> {
    read_layout_files(LayoutDir::new(dir)?, limits)
}

/// The files of an OCI image layout, wherever they are kept ([`LayoutDir`]: a
/// directory). The reader asks only for `index.json` and `blobs/sha256/<64 hex>`, after
/// checking the path.
pub trait LayoutFiles {
    type File: Read;
    /// The file at `path` (relative to the layout's root, normalized) and its size; a
    /// file that is not there is [`ImageError::Missing`].
    fn open(&mut self, path: &str) -> Result<(Self::File, u64), ImageError>;
}

/// Reads an OCI image layout from its files: `index.json`, the manifests and config it
/// leads to, then each layer the manifest lists, once.
pub fn read_layout_files<F: LayoutFiles>(files: F, limits: &Limits) -> Result<Image, ImageError> {
    let mut layout = Layout {
        files,
        limits,
        budget: Budget::default(),
        total: 0,
    };
    let plan = oci_plan(
        |path| match layout.small(path) {
            Ok(bytes) => Ok(Cow::Owned(bytes)),
            Err(ImageError::Missing { .. }) if path == "index.json" => Err(ImageError::NotAnImage),
            Err(e) => Err(e),
        },
        limits,
    )?;
    let mut layers = HashMap::new();
    for path in &plan.order {
        if !layers.contains_key(path) {
            let read = layout.layer(path)?;
            layers.insert(path.clone(), read);
        }
    }
    assemble_oci(ImageFormat::OciLayout, plan, layers, limits)
}

struct Layout<'l, F> {
    files: F,
    limits: &'l Limits,
    budget: Budget,
    /// Bytes read so far (uncompressed, for layers), against `max_total_bytes`.
    total: u64,
}

impl<F: LayoutFiles> Layout<'_, F> {
    /// Opens the file at `path`, counted as an entry, once its path is known to be
    /// `index.json` or a sha256 blob.
    fn open(&mut self, path: &str) -> Result<(F::File, u64), ImageError> {
        self.budget.count_entry(path, self.limits)?;
        // A digest is written by whoever made the layout: `sha256:../../x` must not walk.
        let normal = normalize(path, self.limits)?;
        if let Some(rest) = normal.strip_prefix("blobs/") {
            let sha256 = rest.strip_prefix("sha256/").is_some_and(is_sha256_hex);
            if !sha256 {
                return Err(ImageError::Manifest {
                    entry: path.to_owned(),
                    reason: "not a sha256 digest (only sha256 blobs are read)".to_owned(),
                });
            }
        }
        self.files.open(&normal)
    }

    /// A JSON file of the layout (the index, a manifest, the config), whole, its digest
    /// checked against its name.
    fn small(&mut self, path: &str) -> Result<Vec<u8>, ImageError> {
        let (file, size) = self.open(path)?;
        let cap = self.limits.max_file_bytes;
        let too_large = || ImageError::CapExceeded {
            entry: path.to_owned(),
            cap: Cap::FileBytes,
            limit: cap,
        };
        if size > cap {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        // The size may have changed since: what is read is capped too.
        file.take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ImageError::read(path, e))?;
        if bytes.len() as u64 > cap {
            return Err(too_large());
        }
        self.total += bytes.len() as u64;
        check_blob_name(
            path,
            &format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
        )?;
        Ok(bytes)
    }

    /// A layer blob, streamed into its kept files, its digest checked against its name.
    fn layer(&mut self, path: &str) -> Result<ReadLayer, ImageError> {
        let (file, _) = self.open(path)?;
        let mut file = BufReader::new(file);
        let mut head = Vec::with_capacity(512);
        (&mut file)
            .take(512)
            .read_to_end(&mut head)
            .map_err(|e| ImageError::read(path, e))?;
        // The manifest says it is a layer: what is neither gzip nor zstd is read as a
        // tar (an empty tar has no `ustar` magic; anything else fails as a tar).
        let compression = layer_compression(&head).unwrap_or("none");
        let read = read_layer_blob(
            head,
            file,
            compression,
            path,
            self.limits,
            &mut self.budget,
            &mut self.total,
        )?;
        check_blob_name(path, &read.layer.digest)?;
        Ok(read)
    }
}

/// A layout directory on disk. The domain's one file-system adapter (the rest of it does
/// no I/O): a path is resolved with its links and must stay inside the directory, and
/// only regular files are opened.
#[derive(Debug, Clone)]
pub struct LayoutDir {
    /// The directory, canonical: every blob must resolve inside it.
    root: PathBuf,
}

impl LayoutDir {
    /// The layout at `dir`; [`ImageError::NotAnImage`] when it has no `index.json`.
    pub fn new(dir: &Path) -> Result<Self, ImageError> {
        let root = dir
            .canonicalize()
            .map_err(|e| ImageError::read(&dir.display().to_string(), e))?;
        if !root.join("index.json").exists() {
            return Err(ImageError::NotAnImage);
        }
        Ok(Self { root })
    }
}

impl LayoutFiles for LayoutDir {
    type File = File;

    fn open(&mut self, path: &str) -> Result<(File, u64), ImageError> {
        let resolved = self.root.join(path).canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ImageError::Missing {
                    entry: path.to_owned(),
                }
            } else {
                ImageError::read(path, e)
            }
        })?;
        if !resolved.starts_with(&self.root) {
            return Err(ImageError::LinkEscapes {
                entry: path.to_owned(),
                target: resolved.display().to_string(),
            });
        }
        // Checked before opening: opening a fifo would wait for a writer.
        let meta = std::fs::metadata(&resolved).map_err(|e| ImageError::read(path, e))?;
        if !meta.is_file() {
            use std::os::unix::fs::FileTypeExt as _;
            let t = meta.file_type();
            if t.is_fifo() || t.is_char_device() || t.is_block_device() || t.is_socket() {
                return Err(ImageError::DeviceFile {
                    entry: path.to_owned(),
                });
            }
            return Err(ImageError::Read {
                entry: path.to_owned(),
                reason: "not a regular file".to_owned(),
            });
        }
        let file = File::open(&resolved).map_err(|e| ImageError::read(path, e))?;
        Ok((file, meta.len()))
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use tempfile::TempDir;

    use super::*;
    use crate::image::analyze;
    use crate::image::archive::blob_path;
    use crate::image::archive::tests::{
        docker_archive, fragment, fragment_blobs, gz, oci_files, outer, rows, sha,
    };
    use crate::image::rootfs::tests::{tar_of, E};

    type Files = Vec<(String, Vec<u8>)>;

    fn write_layout(files: &[(String, Vec<u8>)]) -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, bytes) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        dir
    }

    /// The fragment's files as an OCI layout (gzip and zstd layers) and its manifest.
    fn fragment_layout() -> (Files, Vec<u8>) {
        let (blobs, diff_ids) = fragment_blobs(&fragment());
        oci_files(&blobs, &diff_ids)
    }

    fn blob(bytes: &[u8]) -> String {
        blob_path(&sha(bytes))
    }

    /// Points `index.json` at a new manifest listing `layers` (digests as written).
    fn index_to(dir: &Path, layers: &[&str]) {
        let config = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layers: Vec<_> = layers
            .iter()
            .map(|d| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": 1}))
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": config.len()},
            "layers": layers,
        }))
        .unwrap();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&manifest), "size": manifest.len()},
        ]});
        std::fs::write(dir.join(blob(config)), config).unwrap();
        std::fs::write(dir.join(blob(&manifest)), &manifest).unwrap();
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }

    #[test]
    fn a_layer_listed_twice_is_read_once_and_applied_whole_each_time() {
        let a = tar_of(&[E::File("etc/os-release", b"ID=debian\n")]);
        let b = tar_of(&[E::File("etc/.wh.os-release", b"")]);
        let mt = "application/vnd.oci.image.layer.v1.tar";
        let (files, _) = oci_files(
            &[(a.clone(), mt), (b.clone(), mt), (a.clone(), mt)],
            &[sha(&a), sha(&b), sha(&a)],
        );
        let dir = write_layout(&files);
        let image = read_layout(dir.path(), &Limits::default()).unwrap();
        assert_eq!(image.layers.len(), 3);
        assert_eq!(
            image.rootfs.read("etc/os-release"),
            Some((&b"ID=debian\n"[..], 2))
        );
    }

    #[test]
    fn a_layout_directory_reads_as_the_same_image_packed_as_an_oci_archive() {
        let (files, manifest) = fragment_layout();
        let dir = write_layout(&files);
        // A blob the index does not lead to is never opened (its name is not its digest).
        std::fs::write(
            dir.path().join(format!("blobs/sha256/{}", "0".repeat(64))),
            b"unrelated",
        )
        .unwrap();
        let l = Limits::default();
        let from_dir = read_layout(dir.path(), &l).unwrap();
        let from_tar = read_archive(&outer(&files)[..], &l).unwrap();
        assert_eq!(from_dir.format, ImageFormat::OciLayout);
        assert_eq!(from_tar.format, ImageFormat::OciArchive);
        assert_eq!(from_dir.digest, sha(&manifest));
        assert_eq!(
            (&from_dir.digest, &from_dir.config_digest, &from_dir.names),
            (&from_tar.digest, &from_tar.config_digest, &from_tar.names)
        );
        assert_eq!(from_dir.layers, from_tar.layers);
        let compression: Vec<_> = from_dir
            .layers
            .iter()
            .map(|l| l.compression.as_str())
            .collect();
        assert_eq!(compression, ["gzip", "zstd"]);
        assert_eq!(from_dir.rootfs, from_tar.rootfs);
        let packages = rows(&analyze(&from_dir.rootfs).packages);
        assert!(packages.len() > 2, "{packages:?}");
        assert_eq!(packages, rows(&analyze(&from_tar.rootfs).packages));

        // `read_path` tells a layout from an archive file.
        assert_eq!(
            read_path(dir.path(), &l).unwrap().format,
            ImageFormat::OciLayout
        );
        let tar = dir.path().join("image.tar");
        std::fs::write(&tar, outer(&files)).unwrap();
        assert_eq!(read_path(&tar, &l).unwrap(), from_tar);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            read_layout(empty.path(), &l).unwrap_err(),
            ImageError::NotAnImage
        );
    }

    #[test]
    fn a_blob_whose_bytes_are_not_its_digest_is_refused() {
        let (files, manifest) = fragment_layout();
        let l = Limits::default();
        // A layer replaced by another valid layer.
        let dir = write_layout(&files);
        let (layer, _) = &fragment_blobs(&fragment()).0[0];
        let other = gz(&tar_of(&[E::File("etc/os-release", b"ID=evil\n")]));
        std::fs::write(dir.path().join(blob(layer)), &other).unwrap();
        assert_eq!(
            read_layout(dir.path(), &l).unwrap_err(),
            ImageError::DigestMismatch {
                entry: blob(layer),
                actual: sha(&other)
            }
        );
        // The manifest edited to list other layers.
        let dir = write_layout(&files);
        let edited = String::from_utf8(manifest.clone())
            .unwrap()
            .replace("tar+zstd", "tar+gzip");
        assert_ne!(edited.as_bytes(), &manifest[..]);
        std::fs::write(dir.path().join(blob(&manifest)), &edited).unwrap();
        assert_eq!(
            read_layout(dir.path(), &l).unwrap_err(),
            ImageError::DigestMismatch {
                entry: blob(&manifest),
                actual: sha(edited.as_bytes())
            }
        );
    }

    #[test]
    fn blobs_must_stay_inside_the_layout() {
        let (files, _) = fragment_layout();
        let l = Limits::default();
        let (layer, _) = &fragment_blobs(&fragment()).0[0];

        // A link to the right bytes inside the layout is followed.
        let dir = write_layout(&files);
        let inside = dir.path().join("shared-layer");
        std::fs::rename(dir.path().join(blob(layer)), &inside).unwrap();
        std::os::unix::fs::symlink("../../shared-layer", dir.path().join(blob(layer))).unwrap();
        assert_eq!(
            read_layout(dir.path(), &l).unwrap().layers[0].digest,
            sha(layer)
        );

        // The same bytes outside it are refused, though their digest is right.
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("layer");
        std::fs::rename(&inside, &target).unwrap();
        std::fs::remove_file(dir.path().join(blob(layer))).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(blob(layer))).unwrap();
        assert_eq!(
            read_layout(dir.path(), &l).unwrap_err(),
            ImageError::LinkEscapes {
                entry: blob(layer),
                target: target.canonicalize().unwrap().display().to_string()
            }
        );

        // A digest written to walk out of `blobs/`, and one Stella cannot check.
        let dir = write_layout(&files);
        index_to(dir.path(), &["sha256:../../../../etc/passwd"]);
        assert_eq!(
            read_layout(dir.path(), &l).unwrap_err(),
            ImageError::PathTraversal {
                entry: "blobs/sha256/../../../../etc/passwd".into()
            }
        );
        let sha512 = format!("sha512:{}", "a".repeat(128));
        index_to(dir.path(), &[&sha512]);
        assert!(
            matches!(
                read_layout(dir.path(), &l).unwrap_err(),
                ImageError::Manifest { entry, .. } if entry == format!("blobs/sha512/{}", "a".repeat(128))
            ),
            "an unchecked digest is not read"
        );
    }

    /// A fifo where a blob should be is refused before it is opened (opening one for
    /// reading would wait for a writer forever).
    #[test]
    fn a_fifo_blob_is_refused_without_blocking() {
        let (files, _) = fragment_layout();
        let dir = write_layout(&files);
        let (layer, _) = &fragment_blobs(&fragment()).0[0];
        let path = dir.path().join(blob(layer));
        std::fs::remove_file(&path).unwrap();
        match Command::new("mkfifo").arg(&path).status() {
            Ok(s) if s.success() => {}
            _ => {
                eprintln!("no mkfifo on this machine: skipped");
                return;
            }
        }
        assert_eq!(
            read_layout(dir.path(), &Limits::default()).unwrap_err(),
            ImageError::DeviceFile { entry: blob(layer) }
        );
    }

    /// What users feed Stella: `skopeo copy docker-archive:… oci:DIR:TAG` of an image,
    /// read as a layout, has the root filesystem and packages of the docker archive it
    /// was made from, with skopeo's default gzip layers and with the zstd ones it writes
    /// when asked. Runs when `skopeo` is on the PATH.
    #[test]
    fn skopeo_layouts_of_a_docker_archive_read_as_the_archive() {
        if Command::new("skopeo").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("STELLA_TEST_SERVICES").is_none(),
                "skopeo must be on the PATH with the services (ops/services.sh up)"
            );
            eprintln!("no skopeo on the PATH: skipped");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let layers = fragment();
        let archive = tmp.path().join("image.tar");
        std::fs::write(&archive, docker_archive(&layers).0).unwrap();
        let l = Limits::default();
        let docker = read_archive(&std::fs::read(&archive).unwrap()[..], &l).unwrap();
        let diff_ids = |i: &Image| {
            i.layers
                .iter()
                .map(|l| l.diff_id.clone())
                .collect::<Vec<_>>()
        };
        for (compression, flags) in [
            ("gzip", &[][..]),
            (
                "zstd",
                &["--dest-compress", "--dest-compress-format", "zstd"][..],
            ),
        ] {
            let layout = tmp.path().join(compression);
            let out = Command::new("skopeo")
                .args(["--insecure-policy", "copy"])
                .args(flags)
                .arg(format!("docker-archive:{}", archive.display()))
                .arg(format!("oci:{}:stella-test", layout.display()))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "skopeo copy failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let image = read_layout(&layout, &l).unwrap();
            assert_eq!(image.format, ImageFormat::OciLayout);
            assert_eq!(image.names, ["stella-test"]);
            assert!(layout.join(blob_path(&image.digest)).is_file());
            assert!(
                image.layers.iter().all(|l| l.compression == compression),
                "{:?}",
                image.layers
            );
            assert_eq!(diff_ids(&image), diff_ids(&docker));
            assert_eq!(
                diff_ids(&image),
                layers.iter().map(|l| sha(l)).collect::<Vec<_>>()
            );
            assert_eq!(image.rootfs, docker.rootfs);
            assert_eq!(
                rows(&analyze(&image.rootfs).packages),
                rows(&analyze(&docker.rootfs).packages)
            );
        }
    }
}
