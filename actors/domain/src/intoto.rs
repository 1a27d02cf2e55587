//! in-toto Statement v1: what Stella attests to (a subject, named and pinned by digest)
//! and what it says about it (a typed predicate), sealed in a DSSE envelope.
//!
//! ```json
//! {"_type": "https://in-toto.io/Statement/v1",
//!  "subject": [{"name": "sbom.cdx.json", "digest": {"sha256": "<hex>"}}],
//!  "predicateType": "https://stella.dev/verdict/v1",
//!  "predicate": { ... }}
//! ```
//!
//! A statement is always serialized canonically (RFC 8785, [`crate::canonical`]) before it
//! is signed, so the payload of an envelope Stella writes is reproducible from the statement
//! alone. The DSSE payload type is `application/vnd.in-toto+json` ([`PAYLOAD_TYPE`]).
//!
//! Not here: predicate schemas (their owners define them), reading the subjects' bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{canonical_bytes, Digest};
use crate::dsse::{self, DsseError, Envelope, PublicKey, SigningKey};

/// The `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Why a statement cannot be built, read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InTotoError {
    #[error("statement has no subject")]
    NoSubject,
    #[error("subject {index} has no name")]
    SubjectWithoutName { index: usize },
    #[error("subject {index} has no digest")]
    SubjectWithoutDigest { index: usize },
    #[error("predicateType is empty")]
    EmptyPredicateType,
    #[error("predicate is not a JSON object")]
    PredicateNotObject,
    /// `_type` is not [`STATEMENT_TYPE`].
    #[error("_type is {0:?}, expected https://in-toto.io/Statement/v1")]
    WrongStatementType(String),
    /// The payload is not statement JSON.
    #[error("payload is not an in-toto statement: {0}")]
    Malformed(String),
    /// The envelope did not verify (or is not an in-toto payload).
    #[error(transparent)]
    Envelope(#[from] DsseError),
}

/// One attested artifact: its name and its digests by algorithm (`{"sha256": "<hex>"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// A subject pinned by its SHA-256 digest.
    pub fn new(name: impl Into<String>, digest: &Digest) -> Self {
        Self {
            name: name.into(),
            digest: BTreeMap::from([("sha256".to_owned(), digest.hex())]),
        }
    }

    /// The SHA-256 digest, if the subject carries a well-formed one.
    pub fn sha256(&self) -> Option<Digest> {
        self.digest
            .get("sha256")
            .and_then(|hex| Digest::from_hex(hex).ok())
    }
}

/// An in-toto Statement v1. Build one with [`Statement::builder`], read one with
/// [`Statement::from_json`]; both check the rules in [`InTotoError`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    statement_type: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    #[serde(default = "empty_object")]
    predicate: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl Statement {
    /// Starts a statement with the given predicate type (a URI naming the predicate's
    /// schema) and an empty predicate.
    pub fn builder(predicate_type: impl Into<String>) -> StatementBuilder {
        StatementBuilder {
            predicate_type: predicate_type.into(),
            subject: Vec::new(),
            predicate: empty_object(),
        }
    }

    pub fn subjects(&self) -> &[Subject] {
        &self.subject
    }

    pub fn predicate_type(&self) -> &str {
        &self.predicate_type
    }

    pub fn predicate(&self) -> &Value {
        &self.predicate
    }

    /// The statement as canonical JSON (RFC 8785): the DSSE payload.
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        canonical_bytes(&serde_json::json!({
            "_type": self.statement_type,
            "subject": self.subject.iter().map(|s| serde_json::json!({
                "name": s.name,
                "digest": s.digest,
            })).collect::<Vec<_>>(),
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }))
    }

    /// Reads statement JSON (any key order or whitespace) and checks it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, InTotoError> {
        let statement: Statement =
            serde_json::from_slice(bytes).map_err(|e| InTotoError::Malformed(e.to_string()))?;
        if statement.statement_type != STATEMENT_TYPE {
            return Err(InTotoError::WrongStatementType(statement.statement_type));
        }
        statement.check()?;
        Ok(statement)
    }

    fn check(&self) -> Result<(), InTotoError> {
        if self.subject.is_empty() {
            return Err(InTotoError::NoSubject);
        }
        for (index, subject) in self.subject.iter().enumerate() {
            if subject.name.is_empty() {
                return Err(InTotoError::SubjectWithoutName { index });
            }
            if subject.digest.is_empty() {
                return Err(InTotoError::SubjectWithoutDigest { index });
            }
        }
        if self.predicate_type.is_empty() {
            return Err(InTotoError::EmptyPredicateType);
        }
        if !self.predicate.is_object() {
            return Err(InTotoError::PredicateNotObject);
        }
        Ok(())
    }

    /// Signs the canonical statement into a DSSE envelope of type [`PAYLOAD_TYPE`].
    pub fn sign(&self, key: &SigningKey) -> Envelope {
        dsse::sign(PAYLOAD_TYPE, &self.to_canonical_bytes(), key)
    }

    /// Verifies an envelope with the trusted keys, requires the in-toto payload type and
    /// reads the statement in it.
    pub fn verify(
        envelope: &Envelope,
        trusted: &[PublicKey],
    ) -> Result<VerifiedStatement, InTotoError> {
        let verified = dsse::verify_as(envelope, PAYLOAD_TYPE, trusted)?;
        Ok(VerifiedStatement {
            statement: Self::from_json(&verified.payload)?,
            key_ids: verified.key_ids,
        })
    }
}

/// A statement from an envelope that verified, with the ids of the keys that signed it.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedStatement {
    pub statement: Statement,
    pub key_ids: Vec<String>,
}

/// Collects a statement's parts; [`StatementBuilder::build`] checks them.
#[derive(Debug, Clone)]
pub struct StatementBuilder {
    predicate_type: String,
    subject: Vec<Subject>,
    predicate: Value,
}

impl StatementBuilder {
    /// Adds a subject pinned by SHA-256.
    pub fn subject(mut self, name: impl Into<String>, digest: &Digest) -> Self {
        self.subject.push(Subject::new(name, digest));
        self
    }

    /// Sets the predicate (a JSON object).
    pub fn predicate(mut self, predicate: Value) -> Self {
        self.predicate = predicate;
        self
    }

    /// The statement, if it has at least one named subject, a predicate type and an object
    /// predicate.
    pub fn build(self) -> Result<Statement, InTotoError> {
        let statement = Statement {
            statement_type: STATEMENT_TYPE.to_owned(),
            subject: self.subject,
            predicate_type: self.predicate_type,
            predicate: self.predicate,
        };
        statement.check()?;
        Ok(statement)
    }
}
