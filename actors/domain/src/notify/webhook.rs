//! Webhook bodies and their signatures, per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com>), so receivers verify with stock libraries:
//!
//! - secrets are `whsec_` + base64 of 24 to 64 random bytes;
//! - the signed content is `{webhook-id}.{webhook-timestamp}.{body}` (timestamp in Unix
//!   seconds), the signature `v1,` + base64 of its HMAC-SHA256;
//! - while a secret is rotated, each current secret signs and the header carries all the
//!   signatures separated by spaces; a receiver accepts any one;
//! - `webhook-id` is the delivery's id, the same on every wire attempt of one delivery,
//!   so a receiver can drop a duplicate.
//!
//! The body of an event is the canonical JSON (RFC 8785) of its [`Envelope`]; a digest is
//! an envelope too ([`digest_envelope`]), so it has the same body and signature.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::event::Envelope;
use super::SpecError;

/// The prefix of a serialized secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A webhook signing key. Its `Debug` shows nothing of the key; the bytes are wiped when
/// it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Zeroizing<Vec<u8>>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

impl WebhookSecret {
    /// Reads `whsec_<base64>` (24 to 64 bytes of key).
    pub fn parse(text: &str) -> Result<WebhookSecret, SpecError> {
        let b64 = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            SpecError::new("", format!("a webhook secret starts with {SECRET_PREFIX}"))
        })?;
        let key = Zeroizing::new(
            STANDARD
                .decode(b64)
                .map_err(|_| SpecError::new("", "a webhook secret is whsec_ and base64"))?,
        );
        if !(24..=64).contains(&key.len()) {
            return Err(SpecError::new(
                "",
                "a webhook secret has 24 to 64 bytes of key",
            ));
        }
        Ok(WebhookSecret(key))
    }

    /// The serialized form, `whsec_<base64>`: shown once when created, then stored
    /// encrypted.
    pub fn expose(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(&*self.0)))
    }

    fn signature(&self, content: &[u8]) -> String {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(content);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// A new secret from 24 random bytes (the caller's CSPRNG).
pub fn new_secret(random: [u8; 24]) -> WebhookSecret {
    WebhookSecret(Zeroizing::new(random.to_vec()))
}

/// The `webhook-signature` value: one `v1,<base64>` per secret, space-separated, in the
/// order given.
pub fn sign(msg_id: &str, timestamp: i64, body: &[u8], secrets: &[WebhookSecret]) -> String {
    let mut content = Vec::with_capacity(msg_id.len() + body.len() + 24);
    content.extend_from_slice(msg_id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.to_string().as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    secrets
        .iter()
        .map(|s| s.signature(&content))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three headers of a signed delivery: `webhook-id`, `webhook-timestamp`,
/// `webhook-signature`.
pub fn headers(
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    secrets: &[WebhookSecret],
) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", msg_id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", sign(msg_id, timestamp, body, secrets)),
    ]
}

/// An event's webhook body: the canonical JSON of its envelope.
pub fn webhook_body(event: &Envelope) -> Vec<u8> {
    crate::canonical::to_canonical_vec(event)
        // An envelope holds JSON values only; its payload came from JSON and has no
        // non-finite numbers.
        .unwrap_or_else(|_| serde_json::to_vec(event).unwrap_or_default())
}

/// A digest as one envelope of kind `notify.digest`: `id` is the digest's own delivery
/// (so the `webhook-id`), `correlation_id` the digest group, and the payload
/// `{"window": {"start", "end"}, "count", "throttled", "events": [envelopes]}`, the
/// window's events in order, `throttled` of them held back by the channel's throttle.
pub fn digest_envelope(
    id: &str,
    tenant: &str,
    group_key: &str,
    now: DateTime<Utc>,
    events: &[Envelope],
    window: (DateTime<Utc>, DateTime<Utc>),
    throttled: u32,
) -> Envelope {
    Envelope {
        id: id.to_owned(),
        kind: "notify.digest".to_owned(),
        version: super::event::ENVELOPE_VERSION,
        tenant: tenant.to_owned(),
        occurred_at: now,
        correlation_id: Some(group_key.to_owned()),
        trace_id: None,
        payload: json!({
            "window": {"start": window.0, "end": window.1},
            "count": events.len(),
            "throttled": throttled,
            "events": events,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_stay_out_of_debug() {
        let s = new_secret([7; 24]);
        let text = s.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text).unwrap(), s);
        assert_eq!(format!("{s:?}"), "WebhookSecret(redacted)");
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
        assert!(WebhookSecret::parse("nope").is_err());
    }

    #[test]
    fn the_specs_example_signature() {
        // The worked example of the Standard Webhooks specification.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                body,
                std::slice::from_ref(&secret)
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let two = sign("m", 1, b"{}", &[secret, new_secret([1; 24])]);
        assert_eq!(two.split(' ').count(), 2);
    }
}
