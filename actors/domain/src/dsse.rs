//! DSSE (Dead Simple Signing Envelope) v1 with Ed25519: sign a payload, verify an envelope,
//! and read and write the keys.
//!
//! The signature covers the pre-authentication encoding of the payload type and the payload
//! bytes ([`pae`]), never the envelope JSON, so an envelope can be re-serialized freely:
//!
//! ```text
//! PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
//! ```
//!
//! where `LEN` is the byte length in ASCII decimal without leading zeros. The envelope is
//! `{"payload": base64, "payloadType": string, "signatures": [{"keyid": string, "sig":
//! base64}]}` ([`Envelope`]); Stella writes standard base64 with padding and, as the DSSE
//! protocol requires, reads standard or URL-safe base64 with or without padding.
//!
//! **Key id.** A key's id is the lowercase hex SHA-256 of its raw 32-byte Ed25519 public key
//! ([`PublicKey::key_id`]). It is only a hint for picking the key to try: a signature whose
//! `keyid` names no trusted key is skipped, one without a `keyid` is tried against every
//! trusted key. (securesystemslib derives its own default key ids differently; a verifier
//! there is given this id explicitly.)
//!
//! **Key files.**
//! - Private key ([`SigningKey::to_file_string`]): unencrypted PKCS#8 v1 (RFC 5958, RFC 8410)
//!   in PEM, `-----BEGIN PRIVATE KEY-----`, the 32-byte seed only — the same file as
//!   `openssl genpkey -algorithm ed25519` writes. Reading also accepts PKCS#8 v2 with the
//!   public key embedded, and checks that it belongs to the seed.
//! - Public key ([`PublicKey::to_pem`]): SubjectPublicKeyInfo (RFC 8410) in PEM,
//!   `-----BEGIN PUBLIC KEY-----`, readable by OpenSSL, Python `cryptography` and
//!   securesystemslib.
//!
//! Verification uses Ed25519's strict rules (canonical `S`, no small-order keys), so a
//! signature accepted here is accepted by every conforming verifier.
//!
//! Not here: randomness (a new key's seed is an argument), reading or writing files, key
//! rotation policy, the in-toto meaning of a payload (see [`crate::intoto`]).

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::canonical::{canonical_bytes, sha256_hex};

/// Why an envelope did not verify, or a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    /// The envelope is not DSSE JSON (missing field, wrong type, not JSON at all).
    #[error("envelope is not valid DSSE JSON: {0}")]
    MalformedEnvelope(String),
    /// `payload` or a `sig` is not base64 (standard or URL-safe).
    #[error("{field} is not valid base64")]
    MalformedBase64 { field: &'static str },
    /// A `sig` decodes to something other than a 64-byte Ed25519 signature.
    #[error("signature is not a 64-byte Ed25519 signature")]
    MalformedSignature,
    /// The envelope carries no signature at all.
    #[error("envelope has no signatures")]
    NoSignatures,
    /// No signature names a trusted key (the key ids found are listed).
    #[error("no signature is by a trusted key (key ids in the envelope: {key_ids:?})")]
    UnknownKeyId { key_ids: Vec<String> },
    /// A signature by a trusted key does not match the payload type and payload.
    #[error("signature by key {key_id} does not verify")]
    BadSignature { key_id: String },
    /// Fewer distinct trusted keys signed than required.
    #[error("{verified} of the required {required} trusted keys signed")]
    ThresholdNotMet { required: usize, verified: usize },
    /// The signature is good but the payload is not of the type the caller accepts.
    #[error("payload type is {found:?}, expected {expected:?}")]
    WrongPayloadType { expected: String, found: String },
    /// A key file or PEM that is not an Ed25519 key in the documented format.
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

const PAE_PREFIX: &[u8] = b"DSSEv1";

/// The pre-authentication encoding DSSE signs: `"DSSEv1" SP LEN(type) SP type SP LEN(body)
/// SP body`, lengths as ASCII decimal byte counts.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let body_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        PAE_PREFIX.len() + 4 + type_len.len() + payload_type.len() + body_len.len() + payload.len(),
    );
    out.extend_from_slice(PAE_PREFIX);
    out.push(b' ');
    out.extend_from_slice(type_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope as JSON carries it. The fields hold the base64 text as received; nothing
/// in it is trusted until [`verify`] says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Base64 of the payload bytes.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

/// One signature of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Unauthenticated hint naming the key; empty when the signer gave none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// Base64 of the 64-byte Ed25519 signature over [`pae`].
    pub sig: String,
}

impl Envelope {
    /// Parses envelope JSON. This checks the shape only; see [`verify`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, DsseError> {
        serde_json::from_slice(bytes).map_err(|e| DsseError::MalformedEnvelope(e.to_string()))
    }

    /// The envelope as canonical JSON (RFC 8785), the form Stella stores and hashes.
    pub fn to_json(&self) -> Vec<u8> {
        let signatures: Vec<serde_json::Value> = self
            .signatures
            .iter()
            .map(|s| {
                let mut m = serde_json::Map::new();
                if !s.keyid.is_empty() {
                    m.insert("keyid".into(), s.keyid.clone().into());
                }
                m.insert("sig".into(), s.sig.clone().into());
                serde_json::Value::Object(m)
            })
            .collect();
        canonical_bytes(&serde_json::json!({
            "payload": self.payload,
            "payloadType": self.payload_type,
            "signatures": signatures,
        }))
    }

    /// The decoded payload, without checking any signature: for display and diagnosis only.
    pub fn payload_unverified(&self) -> Result<Vec<u8>, DsseError> {
        decode_base64(&self.payload, "payload")
    }
}

/// Signs `payload` as `payload_type` with one key. Ed25519 is deterministic: the same key,
/// type and payload always give the same envelope.
pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
    use ed25519_dalek::Signer as _;
    let signature = key.inner.sign(&pae(payload_type, payload));
    Envelope {
        payload: STANDARD.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![Signature {
            keyid: key.key_id().to_owned(),
            sig: STANDARD.encode(signature.to_bytes()),
        }],
    }
}

/// A payload whose signature has been checked, with the ids of the trusted keys that
/// signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPayload {
    pub payload_type: String,
    pub payload: Vec<u8>,
    /// Ids of the distinct trusted keys with a good signature, in envelope order.
    pub key_ids: Vec<String>,
}

impl VerifiedPayload {
    /// The payload, if it has the type the caller accepts.
    pub fn into_payload_of_type(self, expected: &str) -> Result<Vec<u8>, DsseError> {
        if self.payload_type == expected {
            Ok(self.payload)
        } else {
            Err(DsseError::WrongPayloadType {
                expected: expected.to_owned(),
                found: self.payload_type,
            })
        }
    }
}

/// Verifies that at least one trusted key signed the envelope's payload type and payload.
///
/// Errors, in the order they are checked: [`DsseError::NoSignatures`],
/// [`DsseError::MalformedBase64`] / [`DsseError::MalformedSignature`] (any undecodable
/// field rejects the envelope), then [`DsseError::UnknownKeyId`] when no signature names a
/// trusted key, [`DsseError::BadSignature`] when one does but does not verify. The payload
/// type is not judged here: use [`verify_as`] or [`VerifiedPayload::into_payload_of_type`].
pub fn verify(envelope: &Envelope, trusted: &[PublicKey]) -> Result<VerifiedPayload, DsseError> {
    verify_threshold(envelope, trusted, 1)
}

/// [`verify`], then checks that the payload type is `payload_type`
/// ([`DsseError::WrongPayloadType`] otherwise). As in the DSSE protocol the signature is
/// checked first: a forged envelope reports a bad signature whatever type it claims.
pub fn verify_as(
    envelope: &Envelope,
    payload_type: &str,
    trusted: &[PublicKey],
) -> Result<VerifiedPayload, DsseError> {
    let verified = verify(envelope, trusted)?;
    if verified.payload_type != payload_type {
        return Err(DsseError::WrongPayloadType {
            expected: payload_type.to_owned(),
            found: verified.payload_type,
        });
    }
    Ok(verified)
}

/// Verifies that at least `threshold` distinct trusted keys signed (a threshold of 0 is
/// taken as 1). One key signing twice counts once.
pub fn verify_threshold(
    envelope: &Envelope,
    trusted: &[PublicKey],
    threshold: usize,
) -> Result<VerifiedPayload, DsseError> {
    use ed25519_dalek::Signature as Ed25519Signature;

    let threshold = threshold.max(1);
    if envelope.signatures.is_empty() {
        return Err(DsseError::NoSignatures);
    }
    let payload = decode_base64(&envelope.payload, "payload")?;
    let signatures = envelope
        .signatures
        .iter()
        .map(|s| {
            let bytes = decode_base64(&s.sig, "sig")?;
            let bytes: [u8; 64] = bytes
                .try_into()
                .map_err(|_| DsseError::MalformedSignature)?;
            Ok((s.keyid.as_str(), Ed25519Signature::from_bytes(&bytes)))
        })
        .collect::<Result<Vec<_>, DsseError>>()?;

    let message = pae(&envelope.payload_type, &payload);
    let mut accepted: Vec<String> = Vec::new();
    let mut first_bad: Option<String> = None;
    for (keyid, signature) in &signatures {
        let candidates = trusted
            .iter()
            .filter(|k| keyid.is_empty() || k.key_id() == *keyid)
            .filter(|k| !accepted.iter().any(|a| a == k.key_id()))
            .collect::<Vec<_>>();
        let mut tried = None;
        for key in candidates {
            if key.key.verify_strict(&message, signature).is_ok() {
                accepted.push(key.key_id().to_owned());
                tried = None;
                break;
            }
            tried.get_or_insert_with(|| key.key_id().to_owned());
        }
        if first_bad.is_none() {
            first_bad = tried;
        }
        if accepted.len() >= threshold {
            break;
        }
    }

    if accepted.len() >= threshold {
        return Ok(VerifiedPayload {
            payload_type: envelope.payload_type.clone(),
            payload,
            key_ids: accepted,
        });
    }
    if !accepted.is_empty() {
        return Err(DsseError::ThresholdNotMet {
            required: threshold,
            verified: accepted.len(),
        });
    }
    match first_bad {
        Some(key_id) => Err(DsseError::BadSignature { key_id }),
        None => Err(DsseError::UnknownKeyId {
            key_ids: envelope
                .signatures
                .iter()
                .map(|s| s.keyid.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        }),
    }
}

/// Standard or URL-safe base64, padded or not; non-canonical trailing bits are refused so
/// that one byte string has one spelling per alphabet.
fn decode_base64(text: &str, field: &'static str) -> Result<Vec<u8>, DsseError> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    let engine = if text.contains(['-', '_']) {
        &URL_SAFE_LENIENT
    } else {
        &STANDARD_LENIENT
    };
    engine
        .decode(text)
        .map_err(|_| DsseError::MalformedBase64 { field })
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4); the raw key follows.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// The DER prefix of an Ed25519 PKCS#8 v1 PrivateKeyInfo (RFC 8410 §7); the seed follows.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// PEM text of `der`. The result is built in one allocation and the base64 body is wiped,
/// so that for a private key no stray copy of the secret is left in freed memory.
fn pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    let body = Zeroizing::new(STANDARD.encode(der));
    let (begin, end) = (
        format!("-----BEGIN {label}-----\n"),
        format!("-----END {label}-----\n"),
    );
    let lines = body.len().div_ceil(64);
    let mut out = Zeroizing::new(String::with_capacity(
        begin.len() + body.len() + lines + end.len(),
    ));
    out.push_str(&begin);
    // Split on char boundaries: base64 is ASCII, so every 64-byte chunk is one.
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&end);
    out
}

/// A trusted Ed25519 public key with its key id.
#[derive(Clone)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    key_id: String,
}

impl PublicKey {
    /// A key from its raw 32 bytes; fails for bytes that are not a curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, DsseError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map_err(|_| DsseError::InvalidKey("not an Ed25519 public key".into()))?;
        Ok(Self::from_verifying_key(key))
    }

    fn from_verifying_key(key: ed25519_dalek::VerifyingKey) -> Self {
        let key_id = sha256_hex(key.as_bytes());
        Self { key, key_id }
    }

    /// Reads a `-----BEGIN PUBLIC KEY-----` PEM (SubjectPublicKeyInfo, Ed25519).
    pub fn from_pem(pem: &str) -> Result<Self, DsseError> {
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|e| DsseError::InvalidKey(format!("not an Ed25519 public key PEM: {e}")))?;
        Ok(Self::from_verifying_key(key))
    }

    /// The key as a `-----BEGIN PUBLIC KEY-----` PEM (SubjectPublicKeyInfo, RFC 8410).
    pub fn to_pem(&self) -> String {
        let mut der = Vec::with_capacity(SPKI_PREFIX.len() + 32);
        der.extend_from_slice(&SPKI_PREFIX);
        der.extend_from_slice(self.key.as_bytes());
        pem("PUBLIC KEY", &der).to_string()
    }

    /// The raw 32-byte public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Lowercase hex SHA-256 of the raw 32-byte public key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.key.as_bytes() == other.key.as_bytes()
    }
}

impl Eq for PublicKey {}

impl Hash for PublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.as_bytes().hash(state);
    }
}

/// An Ed25519 signing key. Its `Debug` shows the key id only; the secret leaves only
/// through [`SigningKey::to_file_string`].
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl SigningKey {
    /// The key whose 32-byte Ed25519 seed is `seed`. The caller supplies the randomness
    /// (a CSPRNG for a real key, a constant in tests): domain code has no RNG.
    pub fn generate(seed: [u8; 32]) -> Self {
        let seed = Zeroizing::new(seed);
        let inner = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = PublicKey::from_verifying_key(inner.verifying_key());
        Self { inner, public }
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The id of the public half ([`PublicKey::key_id`]).
    pub fn key_id(&self) -> &str {
        self.public.key_id()
    }

    /// The private key file: unencrypted PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`),
    /// as `openssl genpkey -algorithm ed25519` writes it. Store it with mode 0600.
    pub fn to_file_string(&self) -> Zeroizing<String> {
        let mut der = Zeroizing::new(Vec::with_capacity(PKCS8_V1_PREFIX.len() + 32));
        der.extend_from_slice(&PKCS8_V1_PREFIX);
        der.extend_from_slice(self.inner.as_bytes());
        pem("PRIVATE KEY", &der)
    }

    /// Reads a private key file: PKCS#8 PEM (v1, or v2 with a public key that must match).
    pub fn from_file_string(text: &str) -> Result<Self, DsseError> {
        let inner = ed25519_dalek::SigningKey::from_pkcs8_pem(text.trim()).map_err(|e| {
            DsseError::InvalidKey(format!("not an Ed25519 PKCS#8 private key PEM: {e}"))
        })?;
        let public = PublicKey::from_verifying_key(inner.verifying_key());
        Ok(Self { inner, public })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.public.key_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, KeypairBytes};

    #[test]
    fn hand_built_der_matches_the_pkcs8_crate() {
        let key = SigningKey::generate([7; 32]);
        let crate_public = key
            .inner
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        assert_eq!(key.public_key().to_pem(), crate_public);
        let crate_private = KeypairBytes {
            secret_key: key.inner.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(Default::default())
        .unwrap();
        assert_eq!(key.to_file_string().as_str(), crate_private.as_str());
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let key = SigningKey::generate([0x42; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains(key.key_id()));
        assert!(!shown.contains(&hex::encode([0x42; 32])));
        assert!(!shown.contains("66, 66"));
    }
}
