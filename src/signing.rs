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
            let cannot_write = |err: std::io::Error| {
                StartupError::new(
                    "signing_key_file",
                    format!("cannot write {}: {err}", path.display()),
                )
            };
            if crate::bootstrap::create_private(&path, key.to_file_string().trim_end())
                .map_err(cannot_write)?
            {
                tracing::info!(key_id = %key.key_id(), file = %path.display(), "generated the attestation signing key");
                Ok(key)
            } else {
                // Another process on the same data dir (serve and workers started
                // together) created it first: every process signs with that one key.
                load_or_create(settings)
            }
        }
        Err(err) => Err(StartupError::new(
            "signing_key_file",
            format!("cannot read {}: {err}", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serve` and two `worker`s started together on one data dir: each must load the
    /// same key, none may read a half-written file.
    #[test]
    fn processes_starting_together_share_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let settings = Settings {
                data_dir: dir.path().to_path_buf(),
                ..Settings::default()
            };
            let ids: Vec<String> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|_| scope.spawn(|| load_or_create(&settings).unwrap().key_id().to_owned()))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
            let on_disk = load_or_create(&settings).unwrap().key_id().to_owned();
            assert_eq!(on_disk, ids[0]);
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, ["signing-key.pem"], "no temporary file is left");
        }
    }
}
