//! DSSE: PAE known answers, signing with known keys, verification and its failures, key
//! files.
//!
//! Known answers come from the DSSE protocol document (PAE), RFC 8032 §7.1 TEST 1 (the
//! key), and signatures computed independently with Python `cryptography` (OpenSSL) over
//! the same PAE bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use stella_domain::canonical::sha256_hex;
use stella_domain::dsse::{
    pae, sign, verify, verify_as, verify_threshold, DsseError, Envelope, PublicKey, SigningKey,
};

/// RFC 8032 §7.1 TEST 1.
const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const IN_TOTO: &str = "application/vnd.in-toto+json";

fn rfc8032_key() -> SigningKey {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(RFC8032_SEED, &mut seed).unwrap();
    SigningKey::generate(seed)
}

fn other_key() -> SigningKey {
    SigningKey::generate([0x5a; 32])
}

fn statement_payload() -> Vec<u8> {
    br#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"verdict":"pass"},"predicateType":"https://stella.dev/verdict/v1","subject":[{"digest":{"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},"name":"sbom.cdx.json"}]}"#.to_vec()
}

#[test]
fn pae_known_answers() {
    // The example of the DSSE protocol document.
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
    // Lengths are byte counts of UTF-8, not characters: "ä" is two bytes.
    assert_eq!(
        pae("application/vnd.exämple+json", b"{}"),
        "DSSEv1 29 application/vnd.exämple+json 2 {}".as_bytes()
    );
    // Empty body and empty type keep their separators.
    assert_eq!(
        pae(IN_TOTO, b""),
        b"DSSEv1 28 application/vnd.in-toto+json 0 "
    );
    assert_eq!(pae("", b"x"), b"DSSEv1 0  1 x");
    // The body is taken as bytes, not text.
    assert_eq!(pae("t", &[0xff, 0x00]), b"DSSEv1 1 t 2 \xff\x00");
}

#[test]
fn rfc8032_key_and_its_key_id() {
    let key = rfc8032_key();
    assert_eq!(hex::encode(key.public_key().as_bytes()), RFC8032_PUBLIC);
    // The key id is the hex SHA-256 of the raw 32-byte public key.
    let public: Vec<u8> = hex::decode(RFC8032_PUBLIC).unwrap();
    assert_eq!(key.key_id(), sha256_hex(&public));
    assert_eq!(
        key.key_id(),
        "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9"
    );
    assert_eq!(key.public_key().key_id(), key.key_id());
}

#[test]
fn signatures_match_an_independent_implementation() {
    let key = rfc8032_key();
    // Computed with Python `cryptography` (Ed25519PrivateKey.sign over the same PAE bytes).
    let cases: [(&str, &[u8], &str); 2] = [
        (
            "http://example.com/HelloWorld",
            b"hello world",
            "4DHX3Zn4qpBKvEj7maE8O9u9bjXEnPLLnyXVUJ2PXJR8DSLcL3QDpFvfJOj3pB/SPHsl6Jg4boxsMb6KvuYABw==",
        ),
        (
            IN_TOTO,
            br#"{"_type":"https://in-toto.io/Statement/v1"}"#,
            "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA==",
        ),
    ];
    for (payload_type, payload, sig) in cases {
        let envelope = sign(payload_type, payload, &key);
        assert_eq!(envelope.payload, STANDARD.encode(payload));
        assert_eq!(envelope.payload_type, payload_type);
        assert_eq!(envelope.signatures.len(), 1);
        assert_eq!(envelope.signatures[0].sig, sig);
        assert_eq!(envelope.signatures[0].keyid, key.key_id());
        verify(&envelope, &[key.public_key().clone()]).unwrap();
    }
}

#[test]
fn envelope_json_uses_the_dsse_field_names() {
    let key = rfc8032_key();
    let envelope = sign("http://example.com/HelloWorld", b"hello world", &key);
    let json = String::from_utf8(envelope.to_json()).unwrap();
    assert_eq!(
        json,
        format!(
            r#"{{"payload":"aGVsbG8gd29ybGQ=","payloadType":"http://example.com/HelloWorld","signatures":[{{"keyid":"{}","sig":"4DHX3Zn4qpBKvEj7maE8O9u9bjXEnPLLnyXVUJ2PXJR8DSLcL3QDpFvfJOj3pB/SPHsl6Jg4boxsMb6KvuYABw=="}}]}}"#,
            key.key_id()
        )
    );
    // serde gives the same field names.
    let via_serde: serde_json::Value = serde_json::to_value(&envelope).unwrap();
    let via_canonical: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(via_serde, via_canonical);
}

#[test]
fn sign_then_verify_round_trip_through_json() {
    let key = rfc8032_key();
    let payload = statement_payload();
    let envelope = sign(IN_TOTO, &payload, &key);
    let parsed = Envelope::from_json(&envelope.to_json()).unwrap();
    assert_eq!(parsed, envelope);
    let verified = verify(
        &parsed,
        &[other_key().public_key().clone(), key.public_key().clone()],
    )
    .unwrap();
    assert_eq!(verified.payload, payload);
    assert_eq!(verified.payload_type, IN_TOTO);
    assert_eq!(verified.key_ids, vec![key.key_id().to_owned()]);
    assert_eq!(verified.into_payload_of_type(IN_TOTO).unwrap(), payload);
}

#[test]
fn signing_is_deterministic() {
    let key = rfc8032_key();
    let payload = statement_payload();
    let a = sign(IN_TOTO, &payload, &key);
    let b = sign(IN_TOTO, &payload, &rfc8032_key());
    assert_eq!(a.to_json(), b.to_json());
    // A different payload or type gives a different signature.
    let mut changed = payload.clone();
    changed.push(b' ');
    assert_ne!(
        sign(IN_TOTO, &changed, &key).signatures[0].sig,
        a.signatures[0].sig
    );
    assert_ne!(
        sign("application/json", &payload, &key).signatures[0].sig,
        a.signatures[0].sig
    );
}

#[test]
fn flipping_any_payload_byte_breaks_the_signature() {
    let key = rfc8032_key();
    let trusted = [key.public_key().clone()];
    let payload = statement_payload();
    let envelope = sign(IN_TOTO, &payload, &key);
    for i in 0..payload.len() {
        for bit in [0x01u8, 0x80] {
            let mut tampered = payload.clone();
            tampered[i] ^= bit;
            let forged = Envelope {
                payload: STANDARD.encode(&tampered),
                ..envelope.clone()
            };
            assert_eq!(
                verify(&forged, &trusted),
                Err(DsseError::BadSignature {
                    key_id: key.key_id().to_owned()
                }),
                "payload byte {i} ^ {bit:#04x}"
            );
        }
    }
}

#[test]
fn flipping_any_signature_byte_breaks_the_signature() {
    let key = rfc8032_key();
    let trusted = [key.public_key().clone()];
    let envelope = sign(IN_TOTO, &statement_payload(), &key);
    let sig = STANDARD.decode(&envelope.signatures[0].sig).unwrap();
    assert_eq!(sig.len(), 64);
    for i in 0..sig.len() {
        for bit in [0x01u8, 0x80] {
            let mut tampered = sig.clone();
            tampered[i] ^= bit;
            let mut forged = envelope.clone();
            forged.signatures[0].sig = STANDARD.encode(&tampered);
            assert!(
                matches!(
                    verify(&forged, &trusted),
                    Err(DsseError::BadSignature { .. })
                ),
                "signature byte {i} ^ {bit:#04x}"
            );
        }
    }
}

#[test]
fn the_payload_type_is_signed_too() {
    let key = rfc8032_key();
    let mut envelope = sign(IN_TOTO, &statement_payload(), &key);
    envelope.payload_type = "application/vnd.example.other+json".into();
    assert!(matches!(
        verify(&envelope, &[key.public_key().clone()]),
        Err(DsseError::BadSignature { .. })
    ));
}

#[test]
fn a_wrong_key_fails() {
    let key = rfc8032_key();
    let stranger = other_key();
    let envelope = sign(IN_TOTO, &statement_payload(), &key);

    // The key id names a key we do not trust.
    assert_eq!(
        verify(&envelope, &[stranger.public_key().clone()]),
        Err(DsseError::UnknownKeyId {
            key_ids: vec![key.key_id().to_owned()]
        })
    );
    assert_eq!(
        verify(&envelope, &[]),
        Err(DsseError::UnknownKeyId {
            key_ids: vec![key.key_id().to_owned()]
        })
    );
    // Relabelled with the trusted key's id: the signature itself does not verify.
    let mut relabelled = envelope.clone();
    relabelled.signatures[0].keyid = stranger.key_id().to_owned();
    assert_eq!(
        verify(&relabelled, &[stranger.public_key().clone()]),
        Err(DsseError::BadSignature {
            key_id: stranger.key_id().to_owned()
        })
    );
    // Without a key id every trusted key is tried, and none verifies.
    let mut anonymous = envelope.clone();
    anonymous.signatures[0].keyid.clear();
    assert!(matches!(
        verify(&anonymous, &[stranger.public_key().clone()]),
        Err(DsseError::BadSignature { .. })
    ));
    // ...and the right one does.
    let verified = verify(
        &anonymous,
        &[stranger.public_key().clone(), key.public_key().clone()],
    )
    .unwrap();
    assert_eq!(verified.key_ids, vec![key.key_id().to_owned()]);
}

#[test]
fn wrong_payload_type_is_reported_after_the_signature_is_checked() {
    let key = rfc8032_key();
    let trusted = [key.public_key().clone()];
    let envelope = sign("application/vnd.stella.other+json", b"{}", &key);
    assert_eq!(
        verify_as(&envelope, IN_TOTO, &trusted),
        Err(DsseError::WrongPayloadType {
            expected: IN_TOTO.into(),
            found: "application/vnd.stella.other+json".into()
        })
    );
    let verified = verify(&envelope, &trusted).unwrap();
    assert!(matches!(
        verified.into_payload_of_type(IN_TOTO),
        Err(DsseError::WrongPayloadType { .. })
    ));
    assert!(verify_as(&envelope, "application/vnd.stella.other+json", &trusted).is_ok());
}

#[test]
fn malformed_envelopes_are_rejected_with_the_reason() {
    let key = rfc8032_key();
    let trusted = [key.public_key().clone()];
    let good = sign(IN_TOTO, b"{}", &key);

    let mut bad_payload = good.clone();
    bad_payload.payload = "not base64!".into();
    assert_eq!(
        verify(&bad_payload, &trusted),
        Err(DsseError::MalformedBase64 { field: "payload" })
    );

    let mut bad_sig = good.clone();
    bad_sig.signatures[0].sig = "%%%".into();
    assert_eq!(
        verify(&bad_sig, &trusted),
        Err(DsseError::MalformedBase64 { field: "sig" })
    );

    let mut short_sig = good.clone();
    short_sig.signatures[0].sig = STANDARD.encode([0u8; 63]);
    assert_eq!(
        verify(&short_sig, &trusted),
        Err(DsseError::MalformedSignature)
    );

    let mut unsigned = good.clone();
    unsigned.signatures.clear();
    assert_eq!(verify(&unsigned, &trusted), Err(DsseError::NoSignatures));

    for text in [
        &b"{}"[..],
        b"not json",
        br#"{"payload":"e30=","signatures":[]}"#,
    ] {
        assert!(matches!(
            Envelope::from_json(text),
            Err(DsseError::MalformedEnvelope(_))
        ));
    }
    // The error messages say what is wrong.
    assert_eq!(
        DsseError::MalformedBase64 { field: "payload" }.to_string(),
        "payload is not valid base64"
    );
}

#[test]
fn url_safe_and_unpadded_base64_are_accepted() {
    let key = rfc8032_key();
    // 0xfb 0xff 0xbf encodes to "+/+/" in standard and "-_-_" in URL-safe base64.
    let payload = [0xfb, 0xff, 0xbf, 0x3e, 0x3f];
    let mut envelope = sign(IN_TOTO, &payload, &key);
    let sig = STANDARD.decode(&envelope.signatures[0].sig).unwrap();
    envelope.payload = URL_SAFE_NO_PAD.encode(payload);
    envelope.signatures[0].sig = URL_SAFE_NO_PAD.encode(&sig);
    assert_eq!(envelope.payload, "-_-_Pj8");
    let verified = verify(&envelope, &[key.public_key().clone()]).unwrap();
    assert_eq!(verified.payload, payload);
}

#[test]
fn envelopes_from_other_signers_without_key_ids_parse_and_verify() {
    let key = rfc8032_key();
    let signed = sign(IN_TOTO, b"{}", &key);
    let json = format!(
        r#"{{"payloadType":"{IN_TOTO}","payload":"e30=","signatures":[{{"sig":"{}"}}]}}"#,
        signed.signatures[0].sig
    );
    let envelope = Envelope::from_json(json.as_bytes()).unwrap();
    assert_eq!(envelope.signatures[0].keyid, "");
    // An absent key id stays absent when written back.
    assert!(!String::from_utf8(envelope.to_json())
        .unwrap()
        .contains("keyid"));
    assert_eq!(
        verify(&envelope, &[key.public_key().clone()])
            .unwrap()
            .payload,
        b"{}"
    );
}

#[test]
fn thresholds_count_distinct_keys() {
    let a = rfc8032_key();
    let b = other_key();
    let trusted = [a.public_key().clone(), b.public_key().clone()];
    let payload = statement_payload();
    let by_a = sign(IN_TOTO, &payload, &a);
    let by_b = sign(IN_TOTO, &payload, &b);
    let both = Envelope {
        signatures: vec![by_a.signatures[0].clone(), by_b.signatures[0].clone()],
        ..by_a.clone()
    };
    let verified = verify_threshold(&both, &trusted, 2).unwrap();
    assert_eq!(
        verified.key_ids,
        vec![a.key_id().to_owned(), b.key_id().to_owned()]
    );

    let a_twice = Envelope {
        signatures: vec![by_a.signatures[0].clone(), by_a.signatures[0].clone()],
        ..by_a.clone()
    };
    assert_eq!(
        verify_threshold(&a_twice, &trusted, 2),
        Err(DsseError::ThresholdNotMet {
            required: 2,
            verified: 1
        })
    );
    // One good signature next to a forged one satisfies a threshold of one.
    let mut forged = by_b.signatures[0].clone();
    forged.sig = by_a.signatures[0].sig.clone();
    let mixed = Envelope {
        signatures: vec![forged, by_a.signatures[0].clone()],
        ..by_a.clone()
    };
    assert_eq!(
        verify(&mixed, &trusted).unwrap().key_ids,
        vec![a.key_id().to_owned()]
    );
}

#[test]
fn private_key_file_round_trip() {
    let key = rfc8032_key();
    let file = key.to_file_string();
    // PKCS#8 v1 PEM of RFC 8032's key, byte for byte what OpenSSL and Python
    // `cryptography` write for it.
    assert_eq!(
        file.as_str(),
        "-----BEGIN PRIVATE KEY-----\n\
         MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
         -----END PRIVATE KEY-----\n"
    );
    let read = SigningKey::from_file_string(&file).unwrap();
    assert_eq!(read.key_id(), key.key_id());
    assert_eq!(
        sign(IN_TOTO, b"{}", &read).to_json(),
        sign(IN_TOTO, b"{}", &key).to_json()
    );
}

#[test]
fn public_key_pem_round_trip() {
    let key = rfc8032_key();
    let pem = key.public_key().to_pem();
    assert_eq!(
        pem,
        "-----BEGIN PUBLIC KEY-----\n\
         MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n\
         -----END PUBLIC KEY-----\n"
    );
    let read = PublicKey::from_pem(&pem).unwrap();
    assert_eq!(&read, key.public_key());
    assert_eq!(read.key_id(), key.key_id());
    let raw: [u8; 32] = hex::decode(RFC8032_PUBLIC).unwrap().try_into().unwrap();
    assert_eq!(PublicKey::from_bytes(&raw).unwrap(), read);
}

#[test]
fn keys_written_by_openssl_are_read() {
    // `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` (OpenSSL 3.0).
    let private = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIAFPVD37XDOXfsUu7MCZgxm/bYYr9+tVZOxZwPc1GQRW\n\
                   -----END PRIVATE KEY-----\n";
    let public = "-----BEGIN PUBLIC KEY-----\n\
                  MCowBQYDK2VwAyEAnkqh+3LaYP9B/COrTaeEABLVW7rQ6LrTuDRr/dq7q/k=\n\
                  -----END PUBLIC KEY-----\n";
    let key = SigningKey::from_file_string(private).unwrap();
    let trusted = PublicKey::from_pem(public).unwrap();
    assert_eq!(key.public_key(), &trusted);
    assert_eq!(key.to_file_string().as_str(), private);
    let envelope = sign(IN_TOTO, b"{}", &key);
    verify(&envelope, &[trusted]).unwrap();
}

#[test]
fn pkcs8_v2_files_with_the_public_key_are_read_and_checked() {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes, PublicKeyBytes};
    let key = rfc8032_key();
    let mut seed = [0u8; 32];
    hex::decode_to_slice(RFC8032_SEED, &mut seed).unwrap();
    let matching = KeypairBytes {
        secret_key: seed,
        public_key: Some(PublicKeyBytes(*key.public_key().as_bytes())),
    }
    .to_pkcs8_pem(Default::default())
    .unwrap();
    assert_eq!(
        SigningKey::from_file_string(&matching).unwrap().key_id(),
        key.key_id()
    );
    let mismatched = KeypairBytes {
        secret_key: seed,
        public_key: Some(PublicKeyBytes(*other_key().public_key().as_bytes())),
    }
    .to_pkcs8_pem(Default::default())
    .unwrap();
    assert!(matches!(
        SigningKey::from_file_string(&mismatched),
        Err(DsseError::InvalidKey(_))
    ));
}

#[test]
fn unreadable_keys_are_refused() {
    let key = rfc8032_key();
    // A public key is not a private key file, and the other way round.
    assert!(matches!(
        SigningKey::from_file_string(&key.public_key().to_pem()),
        Err(DsseError::InvalidKey(_))
    ));
    assert!(matches!(
        PublicKey::from_pem(&key.to_file_string()),
        Err(DsseError::InvalidKey(_))
    ));
    assert!(matches!(
        SigningKey::from_file_string("seed=00"),
        Err(DsseError::InvalidKey(_))
    ));
    // y = 2 is not the y coordinate of any point on edwards25519 ((y²-1)/(dy²+1) is not
    // a square mod 2²⁵⁵-19).
    let mut y2 = [0u8; 32];
    y2[0] = 2;
    assert!(matches!(
        PublicKey::from_bytes(&y2),
        Err(DsseError::InvalidKey(_))
    ));
    // y = 3 is.
    let mut y3 = [0u8; 32];
    y3[0] = 3;
    assert!(PublicKey::from_bytes(&y3).is_ok());
}
