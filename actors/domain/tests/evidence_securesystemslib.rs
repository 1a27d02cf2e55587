//! Independent check: envelopes Stella signs verify with Python `securesystemslib` (its
//! DSSE `Envelope` and an `SSlibKey` read from our public key PEM by `cryptography`), a
//! tampered one does not, and an envelope securesystemslib signs with our private key file
//! verifies here with the very same signature bytes.
//!
//! The python comes from `STELLA_TEST_SECURESYSTEMSLIB_PYTHON` (set by `ops/services.sh
//! up`). Without it the test is skipped with a message, unless `STELLA_TEST_SERVICES` is
//! set, where its absence is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use stella_domain::canonical::{sha256_hex, Digest};
use stella_domain::dsse::{self, Envelope, SigningKey};
use stella_domain::intoto::{Statement, PAYLOAD_TYPE};

const PYTHON_VAR: &str = "STELLA_TEST_SECURESYSTEMSLIB_PYTHON";

/// Exit 0: verified; exit 1: securesystemslib rejected the envelope (VerificationError);
/// anything else is a broken check, never taken as a rejection.
const CHECKER: &str = r#"
import json, sys
import securesystemslib
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

def public_key(pem_path, keyid):
    with open(pem_path, "rb") as f:
        return SSlibKey.from_crypto(load_pem_public_key(f.read()), keyid=keyid, scheme="ed25519")

mode = sys.argv[1]
if mode == "verify":
    envelope_path, pem_path, keyid = sys.argv[2:5]
    with open(envelope_path, "rb") as f:
        envelope = Envelope.from_dict(json.load(f))
    try:
        accepted = envelope.verify([public_key(pem_path, keyid)], 1)
    except VerificationError as e:
        print(json.dumps({"verified": False, "error": type(e).__name__, "detail": str(e)}))
        sys.exit(1)
    import hashlib
    print(json.dumps({
        "verified": True,
        "securesystemslib": securesystemslib.__version__,
        "keyids": sorted(accepted),
        "payloadType": envelope.payload_type,
        "payloadSha256": hashlib.sha256(envelope.payload).hexdigest(),
    }))
elif mode == "sign":
    private_path, pem_path, keyid, payload_type, payload_path = sys.argv[2:7]
    with open(private_path, "rb") as f:
        private = load_pem_private_key(f.read(), password=None)
    signer = CryptoSigner(private, public_key(pem_path, keyid))
    with open(payload_path, "rb") as f:
        envelope = Envelope(f.read(), payload_type, {})
    envelope.sign(signer)
    print(json.dumps(envelope.to_dict()))
else:
    sys.exit(f"unknown mode {mode}")
"#;

fn python() -> Option<String> {
    match std::env::var(PYTHON_VAR) {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!(
                "{PYTHON_VAR} must be set (by ops/services.sh up) when STELLA_TEST_SERVICES is set"
            )
        }
        _ => {
            eprintln!(
                "skipping the securesystemslib check: {PYTHON_VAR} is not set \
                 (run `ops/services.sh up` and `source /var/tmp/stella-services/env`)"
            );
            None
        }
    }
}

struct Outcome {
    code: Option<i32>,
    report: Value,
}

fn run(python: &str, dir: &Path, args: &[&str]) -> Outcome {
    let script = dir.join("check_dsse.py");
    std::fs::write(&script, CHECKER).unwrap();
    let output = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("securesystemslib {}: {stdout}", args[0]);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "checker printed no JSON ({e}); exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
            output.status.code()
        )
    });
    Outcome {
        code: output.status.code(),
        report,
    }
}

fn write_envelope(dir: &Path, name: &str, envelope: &Envelope) -> String {
    let path = dir.join(name);
    std::fs::write(&path, envelope.to_json()).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn securesystemslib_verifies_what_stella_signs() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(*b"stella evidence test key seed 01");
    let pem_path = dir.path().join("stella.pub.pem");
    std::fs::write(&pem_path, key.public_key().to_pem()).unwrap();
    let pem = pem_path.to_str().unwrap();

    let statement = Statement::builder("https://stella.dev/verdict/v1")
        .subject(
            "sbom.cdx.json",
            &Digest::sha256(b"{\"bomFormat\":\"CycloneDX\"}"),
        )
        .predicate(json!({"verdict": "pass", "findings": [], "score": 0.5}))
        .build()
        .unwrap();
    let payload = statement.to_canonical_bytes();
    let envelope = statement.sign(&key);

    // 1. Stella's envelope verifies, with the payload and key id Stella put in.
    let good = write_envelope(dir.path(), "good.json", &envelope);
    let outcome = run(&python, dir.path(), &["verify", &good, pem, key.key_id()]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.report);
    assert_eq!(outcome.report["verified"], true);
    assert_eq!(outcome.report["payloadType"], PAYLOAD_TYPE);
    assert_eq!(outcome.report["payloadSha256"], sha256_hex(&payload));
    assert_eq!(outcome.report["keyids"], json!([key.key_id()]));

    // 2. One flipped payload byte: securesystemslib rejects it.
    let mut tampered = payload.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let forged = Envelope {
        payload: STANDARD.encode(&tampered),
        ..envelope.clone()
    };
    let forged_path = write_envelope(dir.path(), "forged-payload.json", &forged);
    let outcome = run(
        &python,
        dir.path(),
        &["verify", &forged_path, pem, key.key_id()],
    );
    assert_eq!(outcome.code, Some(1), "{}", outcome.report);
    assert_eq!(outcome.report["verified"], false);
    assert_eq!(outcome.report["error"], "VerificationError");

    // 3. One flipped signature byte: rejected too.
    let mut sig = STANDARD.decode(&envelope.signatures[0].sig).unwrap();
    sig[0] ^= 0x01;
    let mut forged = envelope.clone();
    forged.signatures[0].sig = STANDARD.encode(&sig);
    let forged_path = write_envelope(dir.path(), "forged-sig.json", &forged);
    let outcome = run(
        &python,
        dir.path(),
        &["verify", &forged_path, pem, key.key_id()],
    );
    assert_eq!(outcome.code, Some(1), "{}", outcome.report);

    // 4. Another key under the same key id: rejected.
    let stranger = SigningKey::generate([9; 32]);
    let stranger_pem = dir.path().join("stranger.pub.pem");
    std::fs::write(&stranger_pem, stranger.public_key().to_pem()).unwrap();
    let outcome = run(
        &python,
        dir.path(),
        &[
            "verify",
            &good,
            stranger_pem.to_str().unwrap(),
            key.key_id(),
        ],
    );
    assert_eq!(outcome.code, Some(1), "{}", outcome.report);
}

#[test]
fn stella_verifies_what_securesystemslib_signs_with_the_stella_key_file() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(*b"stella evidence test key seed 02");
    let private = dir.path().join("stella.key.pem");
    std::fs::write(&private, key.to_file_string().as_bytes()).unwrap();
    let public = dir.path().join("stella.pub.pem");
    std::fs::write(&public, key.public_key().to_pem()).unwrap();
    let payload = br#"{"_type":"https://in-toto.io/Statement/v1","predicate":{},"predicateType":"https://stella.dev/test/v1","subject":[{"digest":{"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},"name":"a"}]}"#;
    let payload_path = dir.path().join("payload.json");
    std::fs::write(&payload_path, payload).unwrap();

    let outcome = run(
        &python,
        dir.path(),
        &[
            "sign",
            private.to_str().unwrap(),
            public.to_str().unwrap(),
            key.key_id(),
            PAYLOAD_TYPE,
            payload_path.to_str().unwrap(),
        ],
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.report);
    let theirs = Envelope::from_json(outcome.report.to_string().as_bytes()).unwrap();
    let verified = dsse::verify_as(&theirs, PAYLOAD_TYPE, &[key.public_key().clone()]).unwrap();
    assert_eq!(verified.payload, payload);
    assert_eq!(verified.key_ids, vec![key.key_id().to_owned()]);
    // Ed25519 is deterministic: both implementations produce the same signature.
    let ours = dsse::sign(PAYLOAD_TYPE, payload, &key);
    assert_eq!(theirs.signatures[0].sig, ours.signatures[0].sig);
    assert_eq!(theirs.payload, ours.payload);
}
