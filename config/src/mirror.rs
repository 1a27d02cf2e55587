//! The `[mirror]` section: what `stella mirror import` trusts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Importing mirror bundles (advisories and VEX exported by another instance).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorSettings {
    /// Comma-separated paths of PEM public keys (Ed25519, as `GET /api/v1/keys` serves
    /// them) of the instances whose bundles this one imports. A bundle signed by no key
    /// here is quarantined. Empty: no import is possible.
    pub trusted_keys: String,
}

impl MirrorSettings {
    /// The trusted key files, without empty entries.
    pub fn trusted_key_paths(&self) -> Vec<PathBuf> {
        self.trusted_keys
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect()
    }
}
