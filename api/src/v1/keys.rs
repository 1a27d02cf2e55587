//! The public keys that sign attestations, so anyone can verify without Stella. Public:
//! no token needed.

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::Page;
use crate::Context;

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// Lowercase hex SHA-256 of the raw 32-byte public key: the `keyid` in envelopes.
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// SubjectPublicKeyInfo PEM, readable by OpenSSL and securesystemslib.
    pub public_key_pem: String,
}

/// List the attestation signing keys.
#[utoipa::path(
    operation_id = "list_keys",
    tag = "keys",
    responses((status = 200, body = Page<KeyView>)),
    security(())
)]
#[get("/keys")]
pub(crate) async fn list(ctx: web::Data<Context>) -> web::Json<Page<KeyView>> {
    web::Json(Page {
        items: ctx
            .public_keys
            .iter()
            .map(|key| KeyView {
                key_id: key.key_id().to_owned(),
                algorithm: "ed25519".into(),
                public_key_pem: key.to_pem(),
            })
            .collect(),
        next_cursor: None,
    })
}
