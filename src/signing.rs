//! The attestation signing key: read from `signing_key_file`, or on the embedded default
//! generated once into `<data_dir>/signing-key.pem` (mode 0600) and reused after.

use std::path::PathBuf;

use rand::RngCore;
use stella_config::Settings;
use stella_domain::dsse::SigningKey;

use crate::StartupError;

/// Where the key lives, and whether that is the default place (where a missing key is
/// generated; a configured path that does not exist is an error).
fn location(settings: &Settings) -> (PathBuf, bool) {
    match &settings.signing_key_file {
        Some(path) => (path.clone(), false),
        None => (settings.data_dir.join("signing-key.pem"), true),
    }
}

/// Loads the signing key, creating it on the embedded default's first start.
pub fn load_or_create(settings: &Settings) -> Result<SigningKey, StartupError> {
    let (path, default) = location(settings);
    match std::fs::read_to_string(&path) {
        Ok(text) => SigningKey::from_file_string(&text).map_err(|err| {
            StartupError::new(
                "signing_key_file",
                format!("{} is not an Ed25519 PKCS#8 PEM key: {err}", path.display()),
            )
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && default => {
            let mut seed = [0u8; 32];
            rand::rng().fill_bytes(&mut seed);
            let key = SigningKey::generate(seed);
            crate::bootstrap::write_private(&path, key.to_file_string().trim_end()).map_err(
                |err| {
                    StartupError::new(
                        "signing_key_file",
                        format!("cannot write {}: {err}", path.display()),
                    )
                },
            )?;
            tracing::info!(key_id = %key.key_id(), file = %path.display(), "generated the attestation signing key");
            Ok(key)
        }
        Err(err) => Err(StartupError::new(
            "signing_key_file",
            format!("cannot read {}: {err}", path.display()),
        )),
    }
}
