//! Checking a sealed export offline, with nothing but its files and the exporter's
//! public keys: `export.json`'s signature, every file against `export.json`, nothing
//! unlisted, and the provenance (its signature, its subjects against the manifest). A
//! mirror import runs it before it reads a single record.
//!
//! Failures say which file and of which kind: [`VerifyError::Checksum`] (a file's bytes
//! are not what the signed manifest lists, or a file is missing or unlisted),
//! [`VerifyError::Signature`] (a signature does not verify with a trusted key, or does not
//! cover the file beside it), [`VerifyError::Malformed`] (a signed document is not what
//! Stella writes).

use std::collections::BTreeMap;

use super::manifest::{
    ExportManifest, FileEntry, MANIFEST_NAME, MANIFEST_PAYLOAD_TYPE, MANIFEST_SIGNATURE_NAME,
    PROVENANCE_NAME, PROVENANCE_SIGNATURE_NAME,
};
use crate::dsse::{self, Envelope, PublicKey};
use crate::intoto::Statement;

/// Why a sealed export did not verify, naming the file at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("checksum failure in {file}: {reason}")]
    Checksum { file: String, reason: String },
    #[error("signature failure in {file}: {reason}")]
    Signature { file: String, reason: String },
    #[error("{file} is malformed: {reason}")]
    Malformed { file: String, reason: String },
}

impl VerifyError {
    /// The file at fault.
    pub fn file(&self) -> &str {
        match self {
            VerifyError::Checksum { file, .. }
            | VerifyError::Signature { file, .. }
            | VerifyError::Malformed { file, .. } => file,
        }
    }
}

/// The bytes of an export's seal files, as found (`None`: absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct SealFiles<'a> {
    pub manifest: Option<&'a [u8]>,
    pub manifest_signature: Option<&'a [u8]>,
    pub provenance: Option<&'a [u8]>,
    pub provenance_signature: Option<&'a [u8]>,
}

/// An export that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedExport {
    pub manifest: ExportManifest,
    /// SHA-256 of `export.json`.
    pub manifest_sha256: String,
    /// The trusted key that signed `export.json`.
    pub key_id: String,
}

/// Verifies a sealed export: `found` has an entry (name, size, SHA-256 of the bytes as
/// found) for every file present, the seal files included; `seal` their bytes.
pub fn verify_export(
    found: &BTreeMap<String, FileEntry>,
    seal: &SealFiles<'_>,
    trusted: &[PublicKey],
) -> Result<VerifiedExport, VerifyError> {
    let missing = |file: &str| VerifyError::Checksum {
        file: file.to_owned(),
        reason: "missing".to_owned(),
    };
    let manifest_bytes = seal.manifest.ok_or_else(|| missing(MANIFEST_NAME))?;
    let signature = seal
        .manifest_signature
        .ok_or_else(|| missing(MANIFEST_SIGNATURE_NAME))?;
    let key_id = signed(
        signature,
        MANIFEST_SIGNATURE_NAME,
        MANIFEST_PAYLOAD_TYPE,
        manifest_bytes,
        MANIFEST_NAME,
        trusted,
    )?;
    let manifest =
        ExportManifest::from_json(manifest_bytes).map_err(|err| VerifyError::Malformed {
            file: MANIFEST_NAME.to_owned(),
            reason: err.to_string(),
        })?;
    for listed in &manifest.files {
        let file = found
            .get(&listed.name)
            .ok_or_else(|| VerifyError::Checksum {
                file: listed.name.clone(),
                reason: "listed in export.json but missing".to_owned(),
            })?;
        if file.sha256 != listed.sha256 || file.size != listed.size {
            return Err(VerifyError::Checksum {
                file: listed.name.clone(),
                reason: format!(
                    "{} bytes with sha256 {}, export.json lists {} bytes with sha256 {}",
                    file.size, file.sha256, listed.size, listed.sha256
                ),
            });
        }
    }
    let seal_names = [
        MANIFEST_NAME,
        MANIFEST_SIGNATURE_NAME,
        PROVENANCE_NAME,
        PROVENANCE_SIGNATURE_NAME,
    ];
    if let Some(extra) = found.keys().find(|name| {
        !seal_names.contains(&name.as_str())
            && manifest
                .files
                .binary_search_by(|f| f.name.as_str().cmp(name.as_str()))
                .is_err()
    }) {
        return Err(VerifyError::Checksum {
            file: extra.clone(),
            reason: "not listed in export.json".to_owned(),
        });
    }
    let provenance = seal.provenance.ok_or_else(|| missing(PROVENANCE_NAME))?;
    let provenance_signature = seal
        .provenance_signature
        .ok_or_else(|| missing(PROVENANCE_SIGNATURE_NAME))?;
    signed(
        provenance_signature,
        PROVENANCE_SIGNATURE_NAME,
        crate::intoto::PAYLOAD_TYPE,
        provenance,
        PROVENANCE_NAME,
        trusted,
    )?;
    let malformed = |reason: String| VerifyError::Malformed {
        file: PROVENANCE_NAME.to_owned(),
        reason,
    };
    let statement = Statement::from_json(provenance).map_err(|err| malformed(err.to_string()))?;
    let own = manifest.entry();
    let mut expected: Vec<(&str, &str)> = manifest
        .files
        .iter()
        .chain(std::iter::once(&own))
        .map(|f| (f.name.as_str(), f.sha256.as_str()))
        .collect();
    expected.sort_unstable();
    let subjects: Vec<(String, String)> = statement
        .subjects()
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.sha256().map(|d| d.hex()).unwrap_or_default(),
            )
        })
        .collect();
    let mut subjects_sorted: Vec<(&str, &str)> = subjects
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_str()))
        .collect();
    subjects_sorted.sort_unstable();
    if subjects_sorted != expected {
        return Err(malformed(
            "its subjects are not the files of export.json and export.json itself".to_owned(),
        ));
    }
    Ok(VerifiedExport {
        manifest_sha256: own.sha256,
        manifest,
        key_id,
    })
}

/// Checks that `envelope` (the file `envelope_name`) is a signature by a trusted key over
/// exactly `document` (the file `document_name`) as `payload_type`; the key's id.
fn signed(
    envelope: &[u8],
    envelope_name: &str,
    payload_type: &str,
    document: &[u8],
    document_name: &str,
    trusted: &[PublicKey],
) -> Result<String, VerifyError> {
    let failure = |file: &str, reason: String| VerifyError::Signature {
        file: file.to_owned(),
        reason,
    };
    let envelope =
        Envelope::from_json(envelope).map_err(|err| failure(envelope_name, err.to_string()))?;
    let verified = dsse::verify_as(&envelope, payload_type, trusted)
        .map_err(|err| failure(envelope_name, err.to_string()))?;
    if verified.payload != document {
        return Err(failure(
            document_name,
            format!("its bytes are not what {envelope_name} signs"),
        ));
    }
    Ok(verified.key_ids.into_iter().next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::dsse::SigningKey;
    use crate::export::manifest::{provenance_statement, ProfileRef};

    struct Sealed {
        found: BTreeMap<String, FileEntry>,
        files: BTreeMap<String, Vec<u8>>,
    }

    fn sealed(key: &SigningKey) -> Sealed {
        let mut manifest = ExportManifest::new(
            ProfileRef {
                name: "m".into(),
                revision: 1,
            },
            "mirror:full",
            json!({}),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        );
        let mut files = BTreeMap::new();
        files.insert("advisories.jsonl".to_owned(), b"{}\n".to_vec());
        for (name, bytes) in &files {
            manifest
                .add_file(FileEntry::of(name.clone(), bytes))
                .unwrap();
        }
        let bytes = manifest.to_canonical_bytes();
        let statement = provenance_statement(&manifest, &[]).unwrap();
        files.insert(
            MANIFEST_SIGNATURE_NAME.into(),
            dsse::sign(MANIFEST_PAYLOAD_TYPE, &bytes, key).to_json(),
        );
        files.insert(MANIFEST_NAME.into(), bytes);
        files.insert(PROVENANCE_NAME.into(), statement.to_canonical_bytes());
        files.insert(
            PROVENANCE_SIGNATURE_NAME.into(),
            statement.sign(key).to_json(),
        );
        let found = files
            .iter()
            .map(|(name, bytes)| (name.clone(), FileEntry::of(name.clone(), bytes)))
            .collect();
        Sealed { found, files }
    }

    fn check(s: &Sealed, keys: &[PublicKey]) -> Result<VerifiedExport, VerifyError> {
        let seal = SealFiles {
            manifest: s.files.get(MANIFEST_NAME).map(Vec::as_slice),
            manifest_signature: s.files.get(MANIFEST_SIGNATURE_NAME).map(Vec::as_slice),
            provenance: s.files.get(PROVENANCE_NAME).map(Vec::as_slice),
            provenance_signature: s.files.get(PROVENANCE_SIGNATURE_NAME).map(Vec::as_slice),
        };
        verify_export(&s.found, &seal, keys)
    }

    fn tamper(s: &mut Sealed, name: &str, bytes: &[u8]) {
        s.files.insert(name.to_owned(), bytes.to_vec());
        s.found
            .insert(name.to_owned(), FileEntry::of(name.to_owned(), bytes));
    }

    #[test]
    fn a_sealed_export_verifies_and_each_fault_names_its_file() {
        let key = SigningKey::generate([3; 32]);
        let keys = [key.public_key().clone()];
        let good = sealed(&key);
        let verified = check(&good, &keys).unwrap();
        assert_eq!(verified.key_id, key.key_id());
        assert_eq!(verified.manifest.kind, "mirror:full");

        // A member changed: a checksum failure naming it.
        let mut s = sealed(&key);
        tamper(&mut s, "advisories.jsonl", b"{\"x\":1}\n");
        let err = check(&s, &keys).unwrap_err();
        assert!(matches!(err, VerifyError::Checksum { .. }), "{err}");
        assert_eq!(err.file(), "advisories.jsonl");

        // A file the manifest does not list.
        let mut s = sealed(&key);
        tamper(&mut s, "extra.jsonl", b"");
        let err = check(&s, &keys).unwrap_err();
        assert_eq!(
            (err.file(), matches!(err, VerifyError::Checksum { .. })),
            ("extra.jsonl", true)
        );

        // The manifest changed (a count raised): its signature no longer covers it.
        let mut s = sealed(&key);
        let text = String::from_utf8(s.files[MANIFEST_NAME].clone()).unwrap();
        tamper(
            &mut s,
            MANIFEST_NAME,
            text.replace("\"counts\":{}", "\"counts\":{\"a\":1}")
                .as_bytes(),
        );
        let err = check(&s, &keys).unwrap_err();
        assert!(matches!(err, VerifyError::Signature { .. }), "{err}");
        assert_eq!(err.file(), MANIFEST_NAME);

        // Signed by a key the verifier does not trust.
        let other = SigningKey::generate([4; 32]);
        let err = check(&good, &[other.public_key().clone()]).unwrap_err();
        assert!(matches!(err, VerifyError::Signature { .. }), "{err}");
        assert_eq!(err.file(), MANIFEST_SIGNATURE_NAME);

        // The provenance replaced by one signed with another key.
        let mut s = sealed(&key);
        let replaced = sealed(&other);
        tamper(
            &mut s,
            PROVENANCE_SIGNATURE_NAME,
            &replaced.files[PROVENANCE_SIGNATURE_NAME],
        );
        let err = check(&s, &keys).unwrap_err();
        assert_eq!(err.file(), PROVENANCE_SIGNATURE_NAME);

        // A seal file missing.
        let mut s = sealed(&key);
        s.files.remove(PROVENANCE_NAME);
        s.found.remove(PROVENANCE_NAME);
        let err = check(&s, &keys).unwrap_err();
        assert_eq!(err.file(), PROVENANCE_NAME);
    }
}
