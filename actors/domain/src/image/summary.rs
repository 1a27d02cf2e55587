//! What one image was found to hold, in brief: the summary `stella sbom` prints, and the
//! one `POST /images` answers with and stores beside the image.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::analyzers::{Distro, Inventory};
use super::archive::{Image, Layer};

/// Files listed in [`Summary::skipped`] at most (the count is always whole).
const SKIPPED_LISTED: usize = 50;

/// A file an analyzer could not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// An image and its inventory in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub format: &'static str,
    pub digest: String,
    pub config_digest: String,
    pub names: Vec<String>,
    pub layers: Vec<Layer>,
    pub distro: Option<Distro>,
    /// Packages found, all types together (a package in two places counts twice).
    pub packages: usize,
    /// Packages per type (`deb`, `npm`, ...).
    pub package_types: BTreeMap<String, usize>,
    /// Files an analyzer could not read.
    pub skipped_count: usize,
    /// The first of them, with why.
    pub skipped: Vec<Skipped>,
}

impl Summary {
    pub fn of(image: &Image, inventory: &Inventory) -> Self {
        let mut package_types = BTreeMap::new();
        for p in &inventory.packages {
            let ty = serde_json::to_value(p.ty)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *package_types.entry(ty).or_default() += 1;
        }
        Self {
            format: image.format.as_str(),
            digest: image.digest.clone(),
            config_digest: image.config_digest.clone(),
            names: image.names.clone(),
            layers: image.layers.clone(),
            distro: inventory.distro.clone(),
            packages: inventory.packages.len(),
            package_types,
            skipped_count: inventory.skipped.len(),
            skipped: inventory
                .skipped
                .iter()
                .take(SKIPPED_LISTED)
                .map(|(path, reason)| Skipped {
                    path: path.clone(),
                    reason: reason.clone(),
                })
                .collect(),
        }
    }
}

/// One line: `sha256:… (docker-archive), 3 layers, 97 packages (92 deb, 5 npm), debian 12`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let types: Vec<String> = self
            .package_types
            .iter()
            .map(|(ty, n)| format!("{n} {ty}"))
            .collect();
        write!(
            f,
            "{} ({}), {} layers, {} packages ({})",
            self.digest,
            self.format,
            self.layers.len(),
            self.packages,
            if types.is_empty() {
                "none".to_owned()
            } else {
                types.join(", ")
            }
        )?;
        if let Some(d) = &self.distro {
            write!(
                f,
                ", {} {}",
                d.id,
                d.version_id.as_deref().unwrap_or("(rolling)")
            )?;
        }
        if self.skipped_count > 0 {
            write!(f, "; {} files unreadable", self.skipped_count)?;
        }
        Ok(())
    }
}
