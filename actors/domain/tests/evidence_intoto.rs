//! in-toto Statement v1: building, the canonical payload, sealing and reading back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use stella_domain::canonical::Digest;
use stella_domain::dsse::{self, DsseError, SigningKey};
use stella_domain::intoto::{InTotoError, Statement, PAYLOAD_TYPE, STATEMENT_TYPE};

const VERDICT: &str = "https://stella.dev/verdict/v1";

fn sbom_digest() -> Digest {
    Digest::sha256(b"abc")
}

fn statement() -> Statement {
    Statement::builder(VERDICT)
        .subject("sbom.cdx.json", &sbom_digest())
        .predicate(json!({"verdict": "pass", "policy": {"digest": "sha256:00", "rules": 3}}))
        .build()
        .unwrap()
}

#[test]
fn payload_is_the_canonical_statement() {
    let bytes = statement().to_canonical_bytes();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        r#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"policy":{"digest":"sha256:00","rules":3},"verdict":"pass"},"predicateType":"https://stella.dev/verdict/v1","subject":[{"digest":{"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},"name":"sbom.cdx.json"}]}"#
    );
    assert_eq!(STATEMENT_TYPE, "https://in-toto.io/Statement/v1");
    assert_eq!(PAYLOAD_TYPE, "application/vnd.in-toto+json");
}

#[test]
fn builder_refuses_incomplete_statements() {
    assert_eq!(
        Statement::builder(VERDICT).build().unwrap_err(),
        InTotoError::NoSubject
    );
    assert_eq!(
        Statement::builder("")
            .subject("a", &sbom_digest())
            .build()
            .unwrap_err(),
        InTotoError::EmptyPredicateType
    );
    assert_eq!(
        Statement::builder(VERDICT)
            .subject("a", &sbom_digest())
            .subject("", &sbom_digest())
            .build()
            .unwrap_err(),
        InTotoError::SubjectWithoutName { index: 1 }
    );
    assert_eq!(
        Statement::builder(VERDICT)
            .subject("a", &sbom_digest())
            .predicate(json!(["not", "an", "object"]))
            .build()
            .unwrap_err(),
        InTotoError::PredicateNotObject
    );
    // The predicate defaults to an empty object.
    let bare = Statement::builder(VERDICT)
        .subject("a", &sbom_digest())
        .build()
        .unwrap();
    assert_eq!(bare.predicate(), &json!({}));
}

#[test]
fn seal_and_verify_a_statement() {
    let key = SigningKey::generate([1; 32]);
    let statement = statement();
    let envelope = statement.sign(&key);
    assert_eq!(envelope.payload_type, PAYLOAD_TYPE);
    assert_eq!(
        envelope.payload_unverified().unwrap(),
        statement.to_canonical_bytes()
    );
    let verified = Statement::verify(&envelope, &[key.public_key().clone()]).unwrap();
    assert_eq!(verified.statement, statement);
    assert_eq!(verified.key_ids, vec![key.key_id().to_owned()]);
    // The subject's digest is what a consumer compares with the artifact it holds.
    let subject = &verified.statement.subjects()[0];
    assert_eq!(subject.name, "sbom.cdx.json");
    assert_eq!(subject.sha256(), Some(Digest::sha256(b"abc")));
    assert_eq!(verified.statement.predicate_type(), VERDICT);
    assert_eq!(verified.statement.predicate()["verdict"], "pass");
}

#[test]
fn verification_failures_surface_as_envelope_errors() {
    let key = SigningKey::generate([1; 32]);
    let stranger = SigningKey::generate([2; 32]);
    let envelope = statement().sign(&key);
    assert!(matches!(
        Statement::verify(&envelope, &[stranger.public_key().clone()]),
        Err(InTotoError::Envelope(DsseError::UnknownKeyId { .. }))
    ));
    // A signed payload of another type is not taken as a statement.
    let other = dsse::sign("application/json", &statement().to_canonical_bytes(), &key);
    assert!(matches!(
        Statement::verify(&other, &[key.public_key().clone()]),
        Err(InTotoError::Envelope(DsseError::WrongPayloadType { .. }))
    ));
    // A correctly signed in-toto payload that is not a v1 statement is refused.
    let v01 = dsse::sign(
        PAYLOAD_TYPE,
        br#"{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"a","digest":{"sha256":"00"}}],"predicateType":"x","predicate":{}}"#,
        &key,
    );
    assert_eq!(
        Statement::verify(&v01, &[key.public_key().clone()]).unwrap_err(),
        InTotoError::WrongStatementType("https://in-toto.io/Statement/v0.1".into())
    );
    let junk = dsse::sign(PAYLOAD_TYPE, b"[]", &key);
    assert!(matches!(
        Statement::verify(&junk, &[key.public_key().clone()]),
        Err(InTotoError::Malformed(_))
    ));
}

#[test]
fn statements_from_other_producers_are_read_in_any_member_order() {
    let text = r#"{
        "predicate": {},
        "subject": [{"digest": {"sha512": "ab", "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}, "name": "img"}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "_type": "https://in-toto.io/Statement/v1"
    }"#;
    let statement = Statement::from_json(text.as_bytes()).unwrap();
    assert_eq!(statement.subjects()[0].sha256(), Some(sbom_digest()));
    assert_eq!(statement.subjects()[0].digest["sha512"], "ab");
    let no_digest = r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{}}],"predicateType":"x"}"#;
    assert_eq!(
        Statement::from_json(no_digest.as_bytes()).unwrap_err(),
        InTotoError::SubjectWithoutDigest { index: 0 }
    );
}
