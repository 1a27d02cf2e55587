//! `stella sbom IMAGE`: an SBOM of a container image (a `docker save` archive, an OCI
//! archive or an OCI layout folder, or with `--rootfs` an unpacked root filesystem), made
//! on this machine with no server: the image is read once (its layers applied in order
//! with whiteouts, only what the analyzers read kept), the OS and language packages
//! found, and a CycloneDX 1.5 or SPDX 2.3 document written. What it found goes to
//! standard error as one summary line.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use stella_domain::image::rootfs::{keep_file, wanted};
use stella_domain::image::{analyze, cyclonedx, read_path, spdx, Image, Limits, RootFs, Summary};

use crate::cli::output::{errln, outln};

/// The SBOM formats `stella sbom` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SbomFormat {
    /// CycloneDX 1.5 JSON.
    Cyclonedx,
    /// SPDX 2.3 JSON.
    Spdx,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["image", "rootfs"])))]
pub(crate) struct Sbom {
    /// The image: a `docker save -o app.tar IMAGE` archive, an OCI archive, or an OCI
    /// image layout folder (`skopeo copy ... oci:DIR`); gzip, zstd or plain layers.
    image: Option<PathBuf>,
    /// An unpacked root filesystem instead (a folder; symbolic links are not followed and
    /// the walk stays on the folder's file system).
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Write the SBOM to this file (default: standard output).
    #[arg(long = "out", short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
    /// The SBOM's format.
    #[arg(long, value_enum, default_value = "cyclonedx")]
    format: SbomFormat,
}

/// Whether `path` is an image rather than an SBOM: a tar archive, or an OCI layout folder
/// (it has an `oci-layout` file).
pub(crate) fn is_image(path: &Path) -> bool {
    if path.is_dir() {
        return path.join("oci-layout").is_file();
    }
    is_tar(path)
}

/// Whether the file at `path` is a tar archive: the `ustar` magic at offset 257.
pub(crate) fn is_tar(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 262];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head[257..262] == b"ustar")
}

/// The SBOM of the image at `path` (an archive streamed, never held whole, or an OCI
/// layout folder), and the summary line of what was found.
pub(crate) fn image_sbom(
    path: &Path,
    format: SbomFormat,
) -> anyhow::Result<(serde_json::Value, String)> {
    let image = read_path(path, &Limits::default())
        .with_context(|| format!("{} was refused", path.display()))?;
    Ok(sbom_of(&image, format))
}

/// The files of the root filesystem at `dir` that analyzers read, within the caps an
/// image has: regular files only (a symbolic link is not followed: it may lead out of
/// the root), and only on `dir`'s own file system (`/proc` and other mounts are not
/// walked). Each file is kept as an image layer would keep it ([`keep_file`]: package
/// databases whole, binaries and Java archives as what was derived from them).
pub(crate) fn read_rootfs(dir: &Path) -> anyhow::Result<Image> {
    use std::os::unix::fs::MetadataExt as _;
    let limits = Limits::default();
    let root = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    anyhow::ensure!(root.is_dir(), "{} is not a folder", dir.display());
    let mut fs = RootFs::default();
    let mut entries = 0u64;
    let mut stack = vec![(dir.to_path_buf(), String::new(), 0usize)];
    while let Some((path, relative, depth)) = stack.pop() {
        let listing =
            std::fs::read_dir(&path).with_context(|| format!("cannot read {}", path.display()))?;
        for entry in listing {
            let entry = entry.with_context(|| format!("cannot read {}", path.display()))?;
            entries += 1;
            anyhow::ensure!(
                entries <= limits.max_entries,
                "{} has more than {} entries (max_entries)",
                dir.display(),
                limits.max_entries
            );
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: no analyzer's file
            };
            let child = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            let meta = std::fs::symlink_metadata(entry.path())
                .with_context(|| format!("cannot read {}", entry.path().display()))?;
            if meta.is_dir() && meta.dev() == root.dev() {
                anyhow::ensure!(
                    depth < limits.max_depth,
                    "{child} is deeper than {} (max_depth)",
                    limits.max_depth
                );
                stack.push((entry.path(), child, depth + 1));
            } else if meta.is_file() {
                let file = match std::fs::File::open(entry.path()) {
                    Ok(f) => f,
                    // Only a file an analyzer reads by name must be readable; any other
                    // is probed when it can be.
                    Err(_) if !wanted(&child) => continue,
                    Err(e) => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("cannot read {}", entry.path().display())))
                    }
                };
                if let Some(node) = keep_file(&child, meta.len(), file, &limits)? {
                    fs.insert_node(&child, node, 0);
                }
            }
        }
    }
    Ok(Image::of_rootfs(fs))
}

/// The SBOM of an image, and the summary line of what was found.
pub(crate) fn sbom_of(image: &Image, format: SbomFormat) -> (serde_json::Value, String) {
    let inventory = analyze(&image.rootfs);
    let document = match format {
        SbomFormat::Cyclonedx => cyclonedx::document(image, &inventory),
        // SPDX requires a creation time; whole seconds, as SPDX writes it.
        SbomFormat::Spdx => spdx::document(
            image,
            &inventory,
            chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap_or_default(),
        ),
    };
    let summary = format!("# {}", Summary::of(image, &inventory));
    (document, summary)
}

impl Sbom {
    pub(crate) fn run(&self) -> anyhow::Result<()> {
        let (document, summary) = match (&self.image, &self.rootfs) {
            (Some(image), _) => image_sbom(image, self.format)?,
            (None, Some(dir)) => sbom_of(&read_rootfs(dir)?, self.format),
            (None, None) => anyhow::bail!("give an image archive or --rootfs DIR"),
        };
        let text = serde_json::to_string_pretty(&document)?;
        match &self.out {
            Some(path) => {
                let mut out = std::fs::File::create(path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                out.write_all(text.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            None => outln!("{text}"),
        }
        errln!("{summary}");
        Ok(())
    }
}
