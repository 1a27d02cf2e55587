//! Channel secrets at rest: webhook signing secrets, chat webhook URLs (which are
//! credentials), SMTP passwords of a channel. The store only ever holds them sealed.
//!
//! The sealed form is text, `v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`:
//! XChaCha20-Poly1305 with a random 24-byte nonce (random nonces of that size never
//! collide in practice, so processes need no shared counter). The key id is the first 8
//! hex digits of SHA-256 over the key, so a later rotation can keep old keys for opening
//! and name which one sealed a value. The associated data binds the version, the key id
//! and the caller's context (tenant and channel id): a sealed value copied into another
//! channel's row, or another tenant's, does not open.
//!
//! The key: 32 bytes written as 64 hex digits in the file `notify.secrets_key_file`, or
//! on the embedded default in `<data_dir>/notify-secrets.key`, generated once (mode
//! 0600, written under a temporary name and linked into place so that two processes
//! starting together end up with one key).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use stella_config::NotifySettings;
use zeroize::{Zeroize, Zeroizing};

/// The name of the generated key file in the data folder.
pub const DEFAULT_KEY_FILE: &str = "notify-secrets.key";

const VERSION: &str = "v1";
const NONCE_BYTES: usize = 24;

/// Why a key could not be had or a sealed value not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The key file is missing, unreadable or not 64 hex digits.
    #[error("{0}")]
    Key(String),
    /// The value is not something [`SecretBox::seal`] wrote.
    #[error("{0}")]
    Malformed(String),
    /// Sealed with a key this process does not have.
    #[error("the secret was sealed with key {0}, which is not notify.secrets_key_file's")]
    UnknownKey(String),
    /// The key is right but the value or its context is not: tampered with, or moved to
    /// another channel.
    #[error("the secret does not open for this channel (tampered with, or copied from another)")]
    Refused,
}

/// Seals and opens channel secrets with the process's key.
#[derive(Clone)]
pub struct SecretBox {
    key_id: String,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SecretBox {
    /// The key of `notify.secrets_key_file`, or the data folder's (generated when missing).
    /// A key file named in settings is never generated: a missing one is an error.
    pub fn from_settings(settings: &NotifySettings, data_dir: &Path) -> Result<Self, SecretError> {
        match &settings.secrets_key_file {
            Some(path) => Self::from_key_file(path),
            None => {
                let path = data_dir.join(DEFAULT_KEY_FILE);
                if !path.exists() {
                    generate_key_file(&path)?;
                }
                Self::from_key_file(&path)
            }
        }
    }

    pub fn from_key_file(path: &Path) -> Result<Self, SecretError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|err| {
            SecretError::Key(format!(
                "cannot read the secrets key {} (notify.secrets_key_file): {err}",
                path.display()
            ))
        })?);
        warn_if_readable_by_others(path);
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), bytes.as_mut_slice()).map_err(|_| {
            SecretError::Key(format!(
                "the secrets key {} (notify.secrets_key_file) must be 64 hex digits \
                 (for example from `openssl rand -hex 32`)",
                path.display()
            ))
        })?;
        Ok(Self::from_key(&bytes))
    }

    pub fn from_key(key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(key);
        let key_id = hex::encode(&digest[..4]);
        let mut key = Key::from(*key);
        let cipher = XChaCha20Poly1305::new(&key);
        key.as_mut_slice().zeroize();
        Self { key_id, cipher }
    }

    /// The id written into every value this box seals.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `plaintext` sealed for the context `aad` (tenant and channel id, say).
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> String {
        let nonce = XNonce::generate();
        let bound = self.bound_aad(&self.key_id, aad);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: bound.as_bytes(),
                },
            )
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 seals any length in memory"));
        let mut packed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        packed.extend_from_slice(nonce.as_slice());
        packed.extend_from_slice(&ciphertext);
        format!(
            "{VERSION}:{}:{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(packed)
        )
    }

    /// The plaintext of `sealed`, if it was sealed by this key for the context `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let malformed = || SecretError::Malformed("not a sealed secret (v1:<key>:<data>)".into());
        let mut parts = sealed.splitn(3, ':');
        let (Some(version), Some(key_id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        if version != VERSION {
            return Err(SecretError::Malformed(format!(
                "sealed with format {version:?}, which this version of Stella does not read"
            )));
        }
        if key_id != self.key_id {
            return Err(SecretError::UnknownKey(key_id.to_owned()));
        }
        let packed = URL_SAFE_NO_PAD.decode(data).map_err(|_| malformed())?;
        if packed.len() < NONCE_BYTES + 16 {
            return Err(malformed());
        }
        let (nonce, ciphertext) = packed.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| malformed())?;
        let bound = self.bound_aad(key_id, aad);
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: bound.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SecretError::Refused)
    }

    fn bound_aad(&self, key_id: &str, aad: &str) -> String {
        format!("stella-notify-secret:{VERSION}:{key_id}:{aad}")
    }
}

/// Writes a new random key to `path` (mode 0600) unless a key appears there first.
fn generate_key_file(path: &Path) -> Result<(), SecretError> {
    let failed = |err: std::io::Error| {
        SecretError::Key(format!(
            "cannot create the secrets key {}: {err}",
            path.display()
        ))
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&dir).map_err(failed)?;
    // tempfile creates with mode 0600.
    let mut file = tempfile::NamedTempFile::new_in(&dir).map_err(failed)?;
    let mut key = Key::generate();
    let mut text = hex::encode(key.as_slice());
    key.as_mut_slice().zeroize();
    text.push('\n');
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all());
    text.zeroize();
    written.map_err(failed)?;
    match file.persist_noclobber(path) {
        Ok(_) => {
            tracing::info!(path = %path.display(), "generated the notification secrets key");
            Ok(())
        }
        // Another process won the race: its key is the key.
        Err(err) if err.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(failed(err.error)),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the notification secrets key is readable by other users"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_context_and_key() {
        let sealed_box = SecretBox::from_key(&[7; 32]);
        let sealed = sealed_box.seal(b"whsec_abc", "tenant-a/channel-1");
        assert!(sealed.starts_with(&format!("v1:{}:", sealed_box.key_id())));
        assert!(!sealed.contains("whsec"));
        assert_eq!(
            sealed_box
                .open(&sealed, "tenant-a/channel-1")
                .unwrap()
                .as_slice(),
            b"whsec_abc"
        );
        // Two seals of one value differ (fresh nonce), both open.
        let again = sealed_box.seal(b"whsec_abc", "tenant-a/channel-1");
        assert_ne!(sealed, again);
        assert!(sealed_box.open(&again, "tenant-a/channel-1").is_ok());

        assert_eq!(
            sealed_box.open(&sealed, "tenant-a/channel-2"),
            Err(SecretError::Refused)
        );
        let other = SecretBox::from_key(&[8; 32]);
        assert!(matches!(
            other.open(&sealed, "tenant-a/channel-1"),
            Err(SecretError::UnknownKey(_))
        ));
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(sealed_box.open(&tampered, "tenant-a/channel-1").is_err());
        for bad in ["", "v1", "v1:x", "v2:aa:bb", "v1:zz:!!"] {
            assert!(sealed_box.open(bad, "tenant-a/channel-1").is_err(), "{bad}");
        }
    }
}
