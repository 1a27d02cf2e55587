//! The properties the fuzz targets check, in one place: `fuzz/fuzz_targets/<name>.rs`
//! (nightly, libFuzzer) calls them on generated inputs, and `tests/fuzz_corpus.rs`
//! (stable, `cargo test`) replays the committed corpus and regression inputs through them.
//!
//! Each check takes untrusted bytes to the same entry point the server uses, with the
//! server's limits, and panics only when a property fails: a parser must refuse what it
//! cannot read with an error, never a panic, and what it accepts must behave.
//!
//! Not here: the cron parser, which lives in `stella-scheduler`
//! (`stella_scheduler::cron::fuzz_check`).

use std::cmp::Ordering;
use std::io::Cursor;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::dsse::{self, Envelope, PublicKey, SigningKey};
use crate::export::mirror::{read_lines, AdvisoryLine, VexLine};
use crate::export::verify::{accept, check, read_tar, ReadLimits};
use crate::intoto::Statement;
use crate::notify::webhook::{self, WebhookSecret};
use crate::osv::{parse_record, visit_collection, CollectionError, Limits};
use crate::policy::Policy;
use crate::version::Version;
use crate::vex::{VexFormat, VexStatement};
use crate::{canonical, sbom, vex, Ecosystem, Purl};

/// A property over one input: returns when it holds, panics when it does not.
pub type Check = fn(&[u8]);

/// Every target of this module, by its fuzz target name, and its check.
pub const TARGETS: [(&str, Check); 12] = [
    ("sbom", sbom),
    ("purl", purl),
    ("osv_record", osv_record),
    ("osv_collection", osv_collection),
    ("vex", vex),
    ("vex_csaf", vex_csaf),
    ("policy", policy),
    ("version", version),
    ("canonical_json", canonical_json),
    ("dsse", dsse),
    ("mirror_bundle", mirror_bundle),
    ("webhook", webhook),
];

/// `api.max_sbom_components`' default: what the intake passes to [`sbom::parse_limited`].
const MAX_SBOM_COMPONENTS: usize = 200_000;

/// CycloneDX or SPDX JSON, as the scan intake reads an upload, then what the analyzer
/// keeps of it.
pub fn sbom(data: &[u8]) {
    let Ok(parsed) = sbom::parse_limited(data, MAX_SBOM_COMPONENTS) else {
        return;
    };
    for component in parsed.scan_targets() {
        let _ = component.version_for_matching();
    }
    let analysis = crate::analysis::Analysis::from_sbom(parsed);
    serde_json::to_vec(&analysis).expect("an analysis serializes");
}

/// A package URL: one that parses is canonical, so its string parses to the same string.
pub fn purl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(purl) = Purl::parse(text) else {
        return;
    };
    let again = Purl::parse(purl.as_str())
        .unwrap_or_else(|err| panic!("{:?} does not parse again: {err}", purl.as_str()));
    assert_eq!(again.as_str(), purl.as_str(), "a canonical purl is stable");
    assert_eq!(again, purl);
    let _ = purl.package_key();
    let _ = purl.without_version();
}

/// One OSV record, as the advisory sync reads each entry, and its ranges evaluated.
pub fn osv_record(data: &[u8]) {
    let Ok(advisory) = parse_record(data) else {
        return;
    };
    for affected in &advisory.affected {
        for version in ["0", "1.0.0", "2.3.4-rc.1"] {
            let _ = affected.is_affected(version);
        }
    }
}

/// An OSV collection (a zip archive, a JSON array or one record) read within the advisory
/// sync's limits, each entry parsed.
pub fn osv_collection(data: &[u8]) {
    let _ = visit_collection(Cursor::new(data), Limits::default(), |entry| {
        let _ = parse_record(&entry.bytes);
        Ok::<(), CollectionError>(())
    });
}

/// A VEX document of whichever format its content shows, as `POST /vex` reads it
/// without a declared media type; the statements survive the store's JSON round trip.
pub fn vex(data: &[u8]) {
    vex_as(data, None);
}

/// A CSAF 2.0 document, as `POST /vex` reads one declared `application/csaf+json`.
pub fn vex_csaf(data: &[u8]) {
    vex_as(data, Some(VexFormat::Csaf));
}

fn vex_as(data: &[u8], format: Option<VexFormat>) {
    let Ok((_, statements)) = vex::parse_format(data, format) else {
        return;
    };
    for statement in &statements {
        let _ = vex::claims(statement, "fuzz");
    }
    let stored = serde_json::to_value(&statements).expect("statements serialize");
    let read: Vec<VexStatement> =
        serde_json::from_value(stored).expect("stored statements read back");
    assert_eq!(
        read, statements,
        "statements survive the store's round trip"
    );
}

/// A TOML policy, as `PUT /policy` reads the document field.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = Policy::parse(text) {
        let _ = policy.digest();
    }
}

/// Version orderings are total orders: the first byte picks the ecosystem, the rest is up
/// to three versions, one per line. Over the ones that parse, `cmp` is antisymmetric,
/// transitive, and `Equal` exactly when the values are equal.
pub fn version(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let ecosystem = Ecosystem::ALL[usize::from(pick) % Ecosystem::ALL.len()];
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let versions: Vec<(&str, Version)> = text
        .splitn(3, '\n')
        .filter_map(|v| Version::parse(ecosystem, v).ok().map(|parsed| (v, parsed)))
        .collect();
    for (a_text, a) in &versions {
        for (b_text, b) in &versions {
            let ab = a.cmp(b);
            assert_eq!(
                ab,
                b.cmp(a).reverse(),
                "{ecosystem:?}: {a_text:?} vs {b_text:?} is not antisymmetric"
            );
            assert_eq!(
                ab == Ordering::Equal,
                a == b,
                "{ecosystem:?}: {a_text:?} vs {b_text:?}: cmp disagrees with =="
            );
            for (c_text, c) in &versions {
                if ab != Ordering::Greater && b.cmp(c) != Ordering::Greater {
                    assert_ne!(
                        a.cmp(c),
                        Ordering::Greater,
                        "{ecosystem:?}: {a_text:?} <= {b_text:?} <= {c_text:?} but not {a_text:?} <= {c_text:?}"
                    );
                }
            }
        }
    }
}

/// Canonical JSON is a fixed point: parse → canonicalise → parse → canonicalise gives
/// the same bytes.
pub fn canonical_json(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let once = canonical::canonical_bytes(&value);
    let reparsed: serde_json::Value = serde_json::from_slice(&once).unwrap_or_else(|err| {
        panic!(
            "canonical form {:?} does not parse: {err}",
            String::from_utf8_lossy(&once)
        )
    });
    let twice = canonical::canonical_bytes(&reparsed);
    assert_eq!(
        String::from_utf8_lossy(&once),
        String::from_utf8_lossy(&twice),
        "canonical JSON is not stable"
    );
}

/// The key the DSSE and mirror checks trust (the export verifier's tests use it too).
fn trusted_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate([9; 32]))
}

fn trusted() -> [PublicKey; 1] {
    [trusted_key().public_key().clone()]
}

/// DSSE envelopes, as `stella verify` reads a file:
/// - the input as an envelope: verification never panics, and one that verifies carries
///   the trusted key's signature of exactly the payload it returns;
/// - the input as a payload, signed, then one byte of the envelope's JSON changed by the
///   input's last three bytes (position, XOR mask): what still verifies is the signed
///   payload and type, unchanged.
pub fn dsse(data: &[u8]) {
    let trusted = trusted();
    if let Ok(envelope) = Envelope::from_json(data) {
        let _ = Statement::verify(&envelope, &trusted);
        if let Ok(verified) = dsse::verify(&envelope, &trusted) {
            let genuine = dsse::sign(&verified.payload_type, &verified.payload, trusted_key());
            let genuine = STANDARD
                .decode(&genuine.signatures[0].sig)
                .expect("own base64");
            assert!(
                envelope
                    .signatures
                    .iter()
                    .any(|s| lenient_base64(&s.sig).as_deref() == Some(&genuine[..])),
                "an envelope verified without the trusted key's signature of its payload"
            );
        }
    }
    let Some((payload, edit)) = data.split_last_chunk::<3>() else {
        return;
    };
    let payload_type = "application/vnd.in-toto+json";
    let mut json = dsse::sign(payload_type, payload, trusted_key()).to_json();
    let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % json.len();
    json[at] ^= edit[2];
    let Ok(changed) = Envelope::from_json(&json) else {
        return;
    };
    if let Ok(verified) = dsse::verify(&changed, &trusted) {
        assert_eq!(
            verified.payload_type, payload_type,
            "a changed type verified"
        );
        assert_eq!(verified.payload, payload, "a changed payload verified");
    }
}

/// Base64 as DSSE signatures may carry it: standard or URL-safe, padded or not.
fn lenient_base64(text: &str) -> Option<Vec<u8>> {
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabet = if text.contains(['-', '_']) {
        &alphabet::URL_SAFE
    } else {
        &alphabet::STANDARD
    };
    GeneralPurpose::new(alphabet, config).decode(text).ok()
}

/// A mirror bundle, as `stella mirror import` reads one (after zstd): the tar read within
/// the import's limits, checked against the trusted key; and the input as the bundle's
/// `advisories.jsonl` and `vex.jsonl` members, each record read.
pub fn mirror_bundle(data: &[u8]) {
    let limits = ReadLimits {
        max_members: 16,
        max_seal_bytes: 16 * 1024 * 1024,
        ..ReadLimits::default()
    };
    let trusted = trusted();
    if let Ok(contents) = read_tar(data, &limits) {
        let _ = check(&contents, Some(&trusted));
        let _ = accept(&contents, &trusted);
    }
    let _ = read_lines(
        data,
        crate::export::mirror::ADVISORIES,
        |line: &AdvisoryLine| (line.source.clone(), line.id.clone()),
        |line, _| {
            parse_record(line.record.as_bytes())
                .map(drop)
                .map_err(|e| e.to_string())
        },
    );
    let _ = read_lines(
        data,
        crate::export::mirror::VEX,
        |line: &VexLine| (line.scope.clone(), line.sha256.clone()),
        |line, _| {
            serde_json::from_value::<Vec<VexStatement>>(line.statements)
                .map(drop)
                .map_err(|e| e.to_string())
        },
    );
}

/// The webhook check's secret, and the `webhook-id` and `webhook-timestamp` it signs.
const WEBHOOK_KEY: [u8; 24] = [5; 24];
const WEBHOOK_MESSAGE: (&str, i64) = ("msg_2fuzz", 1_767_225_600);

/// Standard Webhooks signatures: the input's first line as a `webhook-signature` header,
/// the rest as the body. A receiver that checks the specification's way accepts Stella's
/// signature of the body, never that signature for a changed body, and the input's
/// header only if it holds the body's signature. The input is also read as a secret, as
/// a channel's `secret` field is.
pub fn webhook(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = WebhookSecret::parse(text);
    }
    static SECRET: OnceLock<WebhookSecret> = OnceLock::new();
    let secret = SECRET.get_or_init(|| webhook::new_secret(WEBHOOK_KEY));
    let (id, timestamp) = WEBHOOK_MESSAGE;
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    let signed = webhook::sign(id, timestamp, body, std::slice::from_ref(secret));
    assert!(receiver_accepts(secret, id, timestamp, body, &signed));
    let mut changed = body.to_vec();
    match changed.last_mut() {
        Some(last) => *last ^= 1,
        None => changed.push(b'{'),
    }
    assert!(
        !receiver_accepts(secret, id, timestamp, &changed, &signed),
        "a signature verified a changed body"
    );
    let header = String::from_utf8_lossy(header);
    if receiver_accepts(secret, id, timestamp, body, &header) {
        assert!(
            header.split(' ').any(|s| s == signed),
            "{header:?} verified without the body's signature"
        );
    }
}

/// The receiver's side of Standard Webhooks, written from the specification: any `v1,`
/// signature in the space-separated header that is the HMAC-SHA256 of
/// `{id}.{timestamp}.{body}`, compared in constant time.
fn receiver_accepts(
    secret: &WebhookSecret,
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let key = secret.expose();
    let Some(key) = key
        .strip_prefix(webhook::SECRET_PREFIX)
        .and_then(|b64| STANDARD.decode(b64).ok())
    else {
        return false;
    };
    header.split(' ').any(|token| {
        let Some(signature) = token
            .strip_prefix("v1,")
            .and_then(|b64| STANDARD.decode(b64).ok())
        else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    })
}

/// Inputs a fuzzer cannot make alone, signed by the key the checks trust: for `dsse`, an
/// in-toto statement and an export manifest in envelopes; for `webhook`, a body with its
/// signature; for `mirror_bundle`, a sealed
/// full mirror (the tar inside its `tar.zst`) and its two members. Written into the corpus
/// by the example `fuzz_signed_seeds`.
pub fn signed_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use chrono::TimeZone as _;
    use serde_json::json;

    use crate::canonical::sha256_hex;
    use crate::export::manifest::{self, ExportManifest, FileEntry, ProfileRef};
    use crate::export::mirror::{
        advisory_line, vex_line, Generations, MirrorKind, MirrorSection, ADVISORIES, VEX,
    };
    use crate::export::tar::TarWriter;

    let key = trusted_key();
    let record = r#"{"id":"GO-2024-0001","modified":"2024-01-02T00:00:00Z","aliases":["CVE-2024-0001"],"affected":[{"package":{"ecosystem":"Go","name":"example.com/lib"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"}]}]}]}"#;
    let advisory = serde_json::to_value(parse_record(record.as_bytes()).expect("seed record"))
        .expect("an advisory serializes");
    let advisories = advisory_line(
        "osv:Go",
        "GO-2024-0001",
        &sha256_hex(record.as_bytes()),
        record,
        None,
        &advisory,
    );
    let document = r#"{"@context":"https://openvex.dev/ns/v0.2.0","@id":"https://example.com/vex/1","author":"Example","timestamp":"2024-01-01T00:00:00Z","version":1,"statements":[{"vulnerability":{"name":"CVE-2024-0001"},"products":[{"@id":"pkg:golang/example.com/lib@v1.2.0"}],"status":"not_affected","justification":"vulnerable_code_not_in_execute_path"}]}"#;
    let statements = serde_json::to_value(vex::parse(document.as_bytes()).expect("seed VEX"))
        .expect("statements serialize");
    let vex = vex_line(
        true,
        &sha256_hex(document.as_bytes()),
        "openvex",
        document,
        &statements,
    );
    let as_of = chrono::Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a date");
    let profile = ProfileRef {
        name: "mirror".into(),
        revision: 1,
    };
    let mut export = ExportManifest::new(profile, "mirror:full", json!({}), as_of);
    export.mirror = Some(MirrorSection {
        kind: MirrorKind::Full,
        base: None,
        from: None,
        to: Generations {
            advisories: 1,
            vex: 1,
        },
    });
    let members = [(ADVISORIES, &advisories), (VEX, &vex)];
    for (name, bytes) in members {
        export
            .add_file(FileEntry::of(name, bytes))
            .expect("distinct names");
    }
    let manifest_bytes = export.to_canonical_bytes();
    let provenance = manifest::provenance_statement(&export, &[]).expect("a statement");
    let manifest_envelope =
        dsse::sign(manifest::MANIFEST_PAYLOAD_TYPE, &manifest_bytes, key).to_json();
    let provenance_envelope = provenance.sign(key).to_json();
    let mut tar = TarWriter::new(Vec::new(), 1_767_225_600).expect("an mtime");
    let provenance_bytes = provenance.to_canonical_bytes();
    let mut members = [
        (ADVISORIES, &advisories),
        (VEX, &vex),
        (manifest::MANIFEST_SIGNATURE, &manifest_envelope),
        (manifest::MANIFEST_NAME, &manifest_bytes),
        (manifest::PROVENANCE_NAME, &provenance_bytes),
        (manifest::PROVENANCE_SIGNATURE, &provenance_envelope),
    ];
    // A Stella archive lists its members sorted by name.
    members.sort();
    for (name, bytes) in members {
        tar.append_data(name, bytes).expect("a member");
    }
    let bundle = tar.finish().expect("an archive");
    let body = br#"{"id":"msg_1","kind":"finding.new","payload":{}}"#;
    let (id, timestamp) = WEBHOOK_MESSAGE;
    let signature = webhook::sign(id, timestamp, body, &[webhook::new_secret(WEBHOOK_KEY)]);
    vec![
        ("webhook", [signature.as_bytes(), b"\n", body].concat()),
        ("dsse", provenance_envelope),
        ("dsse", manifest_envelope),
        ("mirror_bundle", bundle),
        ("mirror_bundle", advisories),
        ("mirror_bundle", vex),
    ]
}
