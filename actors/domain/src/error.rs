//! A rejected input document, with where in it the problem is, so the API can answer
//! `400` with the JSON pointer of the first error.

/// A document (SBOM, advisory, VEX statement, policy) that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {pointer})")]
pub struct InputError {
    /// RFC 6901 JSON pointer of the offending value (`""` for the whole document).
    pub pointer: String,
    pub message: String,
}

impl InputError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// Escapes one reference token for a JSON pointer (RFC 6901: `~` → `~0`, `/` → `~1`).
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
