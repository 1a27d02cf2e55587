//! The wire forms, checked by independent implementations:
//!
//! - webhook signatures verified by the Standard Webhooks reference library for Python
//!   (`standardwebhooks` from PyPI): one secret, two during rotation (each verifies; a
//!   third does not), a tampered body or id refused, an old timestamp refused;
//! - Teams cards validated by Python `jsonschema` against the Adaptive Card 1.5 JSON
//!   schema (`tests/notify_schemas/adaptive-card-1.5.0.json`, the file of that name in
//!   microsoft/AdaptiveCards' `schemas/1.5.0/`, pinned by its sha256);
//! - Slack messages checked against Block Kit's published structure and limits (written
//!   here from Slack's reference: at most 50 blocks, a header's `plain_text` at most 150
//!   characters, a section's text at most 3000, at most 10 fields of at most 2000, 1 to
//!   10 context elements, `block_id` at most 255).
//!
//! The python comes from `STELLA_TEST_NOTIFY_PYTHON` (set by `ops/services.sh up`);
//! without it the Python checks are skipped with a message, unless `STELLA_TEST_SERVICES`
//! is set, where its absence is a failure. The Slack checks always run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use stella_domain::notify::template::sample_events;
use stella_domain::notify::webhook::{digest_envelope, headers, sign};
use stella_domain::notify::{
    new_secret, render, render_digest, slack_payload, teams_payload, webhook_body, ChannelType,
    Envelope, Rendered, Summary, WebhookSecret,
};

const PYTHON_VAR: &str = "STELLA_TEST_NOTIFY_PYTHON";

/// sha256 of `schemas/1.5.0/adaptive-card.json` in microsoft/AdaptiveCards.
const ADAPTIVE_CARD_SCHEMA_SHA256: &str =
    "32c91fb285180a266a55b3475dd0396e63fe079311714d3a14963b41f5e17920";

const CHECKER: &str = r#"
import base64, hashlib, json, sys

mode = sys.argv[1]
data = json.load(sys.stdin)
if mode == "webhooks":
    import importlib.metadata
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError
    results = []
    for case in data:
        body = base64.b64decode(case["body"])
        try:
            payload = Webhook(case["secret"]).verify(body, case["headers"])
            results.append({"ok": True, "payload": payload})
        except WebhookVerificationError as e:
            results.append({"ok": False, "error": str(e)})
    print(json.dumps({"version": importlib.metadata.version("standardwebhooks"), "results": results}))
elif mode == "cards":
    import jsonschema
    schema_bytes = open(data["schema"], "rb").read()
    schema = json.loads(schema_bytes)
    validator = jsonschema.Draft6Validator(schema, format_checker=jsonschema.Draft6Validator.FORMAT_CHECKER)
    results = []
    for card in data["cards"]:
        errors = sorted(validator.iter_errors(card), key=lambda e: list(e.absolute_path))
        results.append([{"path": "/".join(str(p) for p in e.absolute_path), "message": e.message[:300]} for e in errors])
    print(json.dumps({"schemaSha256": hashlib.sha256(schema_bytes).hexdigest(), "results": results}))
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
                "skipping the independent notification checks: {PYTHON_VAR} is not set \
                 (run `ops/services.sh up` and `source /var/tmp/stella-services/env`)"
            );
            None
        }
    }
}

/// Runs the checker with `input` on stdin; it prints one JSON report and exits 0.
fn check(python: &str, mode: &str, input: &Value) -> Value {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(CHECKER)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "checker {mode} failed: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("checker printed no JSON ({e})\nstdout: {stdout}"))
}

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn finding_new(findings: usize) -> Envelope {
    let findings: Vec<Value> = (0..findings)
        .map(|i| {
            let severity = ["critical", "high", "medium", "low"][i % 4];
            json!({"vulnerability_id": format!("CVE-2026-{i:04}"), "purl": format!("pkg:npm/dep-{i}@1.0.{i}"),
                   "severity": severity, "disposition": "block",
                   "vex_status": "affected", "fixed_version": format!("1.0.{}", i + 1)})
        })
        .collect();
    Envelope::new(
        "finding.new",
        "acme",
        at(),
        &format!("finding.new:{}", findings.len()),
        json!({"target": "web-frontend", "labels": {"team": "web"}, "findings": findings}),
    )
}

fn headers_map(h: &[(&'static str, String)]) -> Value {
    Value::Object(h.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect())
}

#[test]
fn standard_webhooks_verifies_our_signatures() {
    let Some(python) = python() else { return };
    let old = new_secret([0x11; 24]);
    let new = WebhookSecret::parse(&new_secret([0x22; 24]).expose()).unwrap();
    let stranger = new_secret([0x33; 24]);
    let event = finding_new(2);
    let body = webhook_body(&event);
    // The receiver checks the timestamp against its clock (5 minutes of tolerance).
    let now = Utc::now().timestamp();
    let id = "dlv_0190f3a2b7c84d2e9f1a";
    let one = headers(id, now, &body, std::slice::from_ref(&old));
    let rotating = headers(id, now, &body, &[old.clone(), new.clone()]);
    assert_eq!(rotating[2].1.split(' ').count(), 2);
    assert!(
        rotating[2].1.starts_with(&one[2].1),
        "the old secret's signature comes first"
    );

    let mut tampered = body.clone();
    let i = tampered.iter().position(|b| *b == b'7').unwrap_or(10);
    tampered[i] = if tampered[i] == b'7' { b'8' } else { b' ' };
    let mut other_id = rotating.clone();
    other_id[0].1 = "dlv_other".into();
    let stale = headers(id, now - 3600, &body, std::slice::from_ref(&old));
    let window = (at(), at() + chrono::Duration::hours(1));
    let digest = webhook_body(&digest_envelope(
        "dlv_digest",
        "acme",
        "rule:r:c:1h",
        at() + chrono::Duration::hours(1),
        &sample_events(),
        window,
        4,
    ));
    let digest_headers = headers("dlv_digest", now, &digest, std::slice::from_ref(&new));

    let b64 = |b: &[u8]| STANDARD.encode(b);
    let secret = |s: &WebhookSecret| s.expose().to_string();
    let cases = json!([
        {"what": "one secret", "secret": secret(&old), "body": b64(&body), "headers": headers_map(&one), "ok": true},
        {"what": "rotation, old secret", "secret": secret(&old), "body": b64(&body), "headers": headers_map(&rotating), "ok": true},
        {"what": "rotation, new secret", "secret": secret(&new), "body": b64(&body), "headers": headers_map(&rotating), "ok": true},
        {"what": "a secret that did not sign", "secret": secret(&stranger), "body": b64(&body), "headers": headers_map(&rotating), "ok": false},
        {"what": "the new secret alone did not sign", "secret": secret(&new), "body": b64(&body), "headers": headers_map(&one), "ok": false},
        {"what": "tampered body", "secret": secret(&old), "body": b64(&tampered), "headers": headers_map(&rotating), "ok": false},
        {"what": "another message id", "secret": secret(&old), "body": b64(&body), "headers": headers_map(&other_id), "ok": false},
        {"what": "an hour-old timestamp", "secret": secret(&old), "body": b64(&body), "headers": headers_map(&stale), "ok": false},
        {"what": "a digest", "secret": secret(&new), "body": b64(&digest), "headers": headers_map(&digest_headers), "ok": true},
    ]);
    let cases = cases.as_array().unwrap();
    let report = check(&python, "webhooks", &Value::Array(cases.clone()));
    assert_eq!(report["version"], "1.1.0");
    let results = report["results"].as_array().unwrap();
    for (case, result) in cases.iter().zip(results) {
        assert_eq!(result["ok"], case["ok"], "{}: {result}", case["what"]);
    }
    // What the receiver parsed is the envelope as sent.
    let parsed: Envelope = serde_json::from_value(results[0]["payload"].clone()).unwrap();
    assert_eq!(parsed, event);
    // A digest is an envelope of its own, its events in the payload.
    let digest = &results[8]["payload"];
    assert_eq!(digest["kind"], "notify.digest");
    assert_eq!(digest["id"], "dlv_digest");
    assert_eq!(digest["correlation_id"], "rule:r:c:1h");
    assert_eq!(digest["payload"]["count"], 10);
    assert_eq!(digest["payload"]["throttled"], 4);
    assert_eq!(
        digest["payload"]["events"].as_array().map(Vec::len),
        Some(10)
    );
    // And the signature is the one `sign` gives on its own.
    assert_eq!(one[2].1, sign(id, now, &body, &[old]));
    assert_eq!(one[0], ("webhook-id", id.to_owned()));
    assert_eq!(one[1], ("webhook-timestamp", now.to_string()));
}

#[test]
fn webhook_bodies_are_canonical_envelopes() {
    let mut event = finding_new(1);
    event.correlation_id = Some("corr-1".into());
    let body = webhook_body(&event);
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"correlation_id":"corr-1","id":"evt_"#),
        "{text}"
    );
    assert!(text.contains(r#""occurred_at":"2026-03-01T10:00:00Z""#));
    assert!(text.contains(r#""trace_id":null"#));
    assert!(text.contains(r#""version":1"#));
    assert_eq!(serde_json::from_slice::<Envelope>(&body).unwrap(), event);
    // Equal events, equal bytes (a retry signs the same body).
    assert_eq!(webhook_body(&event.clone()), body);
}

fn teams_cards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut events = sample_events();
    events.push(finding_new(120));
    for ev in &events {
        let r = render(None, ChannelType::Teams, ev).unwrap();
        out.push((ev.kind.clone(), teams_payload(&r, &Summary::of_event(ev))));
    }
    let window = (at(), at() + chrono::Duration::days(1));
    let r = render_digest(None, ChannelType::Teams, &events, window, 7).unwrap();
    out.push((
        "digest".into(),
        teams_payload(&r, &Summary::of_digest(&events, window, 7)),
    ));
    out
}

#[test]
fn teams_cards_validate_against_the_adaptive_card_schema() {
    let cards = teams_cards();
    // The message envelope a Workflows webhook takes.
    for (what, message) in &cards {
        assert_eq!(message["type"], "message", "{what}");
        let attachments = message["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), 1);
        assert_eq!(
            attachments[0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(attachments[0]["content"]["type"], "AdaptiveCard");
        assert_eq!(attachments[0]["content"]["version"], "1.5");
        assert!(
            serde_json::to_vec(message).unwrap().len() < 28_000,
            "{what}"
        );
    }
    let finding = &cards.iter().find(|(k, _)| k == "finding.new").unwrap().1;
    let card_text = finding["attachments"][0]["content"].to_string();
    assert!(card_text.contains("CVE-2026-0001") && card_text.contains("web-frontend"));
    assert_eq!(
        finding["attachments"][0]["content"]["body"][0]["color"],
        "Attention"
    );

    let Some(python) = python() else { return };
    let schema: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "notify_schemas",
        "adaptive-card-1.5.0.json",
    ]
    .iter()
    .collect();
    let mut contents: Vec<Value> = cards
        .iter()
        .map(|(_, m)| m["attachments"][0]["content"].clone())
        .collect();
    // A card the schema must refuse, so a passing check means something.
    let mut broken = contents[0].clone();
    broken["body"][0]["colour"] = json!("Attention");
    broken["body"][1]["type"] = json!("Paragraph");
    contents.push(broken);
    let report = check(
        &python,
        "cards",
        &json!({"schema": schema.to_str().unwrap(), "cards": contents}),
    );
    assert_eq!(report["schemaSha256"], ADAPTIVE_CARD_SCHEMA_SHA256);
    let results = report["results"].as_array().unwrap();
    let (broken_result, results) = results.split_last().unwrap();
    for ((what, _), errors) in cards.iter().zip(results) {
        assert_eq!(errors, &json!([]), "{what}");
    }
    assert!(
        !broken_result.as_array().unwrap().is_empty(),
        "the schema check accepted a broken card"
    );
}

/// Block Kit's structure and limits, from Slack's reference for blocks and composition
/// objects. Returns every problem found.
fn block_kit_problems(message: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |p: String| problems.push(p);
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    let text_object =
        |v: &Value, max: usize, only_plain: bool, at: &str, problem: &mut dyn FnMut(String)| {
            let kind = v["type"].as_str().unwrap_or("");
            if only_plain && kind != "plain_text" {
                problem(format!("{at}: text must be plain_text, is {kind:?}"));
            } else if kind != "plain_text" && kind != "mrkdwn" {
                problem(format!("{at}: text type {kind:?}"));
            }
            let n = chars(&v["text"]);
            if n == 0 || n > max {
                problem(format!("{at}: text has {n} characters (1..={max})"));
            }
        };
    if message["text"].as_str().is_none_or(str::is_empty) {
        problem("no top-level text fallback".into());
    }
    let Some(blocks) = message["blocks"].as_array() else {
        problem("no blocks array".into());
        return problems;
    };
    if blocks.len() > 50 {
        problem(format!("{} blocks (at most 50)", blocks.len()));
    }
    for (i, block) in blocks.iter().enumerate() {
        let at = format!("blocks[{i}]");
        if chars(&block["block_id"]) > 255 {
            problem(format!("{at}: block_id longer than 255"));
        }
        match block["type"].as_str() {
            Some("header") => text_object(&block["text"], 150, true, &at, &mut problem),
            Some("section") => {
                let has_text = !block["text"].is_null();
                let fields = block["fields"].as_array();
                if !has_text && fields.is_none() {
                    problem(format!("{at}: a section needs text or fields"));
                }
                if has_text {
                    text_object(&block["text"], 3000, false, &at, &mut problem);
                }
                if let Some(fields) = fields {
                    if fields.is_empty() || fields.len() > 10 {
                        problem(format!("{at}: {} fields (1..=10)", fields.len()));
                    }
                    for (j, f) in fields.iter().enumerate() {
                        text_object(f, 2000, false, &format!("{at}.fields[{j}]"), &mut problem);
                    }
                }
            }
            Some("context") => {
                let elements = block["elements"].as_array().map_or(&[][..], Vec::as_slice);
                if elements.is_empty() || elements.len() > 10 {
                    problem(format!(
                        "{at}: {} context elements (1..=10)",
                        elements.len()
                    ));
                }
                for (j, e) in elements.iter().enumerate() {
                    text_object(e, 3000, false, &format!("{at}.elements[{j}]"), &mut problem);
                }
            }
            Some("divider") => {}
            other => problem(format!("{at}: unexpected block type {other:?}")),
        }
    }
    problems
}

#[test]
fn slack_messages_keep_block_kit_limits() {
    // The checker finds what it must.
    let bad = json!({"blocks": [
        {"type": "header", "text": {"type": "mrkdwn", "text": "x".repeat(151)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "y".repeat(3001)}},
        {"type": "section"},
        {"type": "context", "elements": []},
        {"type": "video"}
    ]});
    assert_eq!(
        block_kit_problems(&bad).len(),
        7,
        "{:?}",
        block_kit_problems(&bad)
    );

    let mut messages: Vec<(String, Value)> = Vec::new();
    let mut events = sample_events();
    events.push(finding_new(500));
    for ev in &events {
        let r = render(None, ChannelType::Slack, ev).unwrap();
        messages.push((ev.kind.clone(), slack_payload(&r, &Summary::of_event(ev))));
    }
    let window = (at(), at() + chrono::Duration::hours(1));
    let r = render_digest(None, ChannelType::Slack, &events, window, 2).unwrap();
    messages.push((
        "digest".into(),
        slack_payload(&r, &Summary::of_digest(&events, window, 2)),
    ));
    // A tenant template that writes far too much, with markup characters in it.
    let huge = Rendered {
        subject: "S".repeat(400),
        text: (0..400)
            .map(|i| format!("line {i} <@U123> & <!channel> {}", "z".repeat(80)))
            .collect::<Vec<_>>()
            .join("\n"),
        html: None,
    };
    messages.push((
        "huge".into(),
        slack_payload(&huge, &Summary::of_event(&events[0])),
    ));
    let one_long_line = Rendered {
        subject: "s".into(),
        text: "&".repeat(5000),
        html: None,
    };
    messages.push((
        "one long line".into(),
        slack_payload(&one_long_line, &Summary::of_event(&events[0])),
    ));

    for (what, message) in &messages {
        let problems = block_kit_problems(message);
        assert!(problems.is_empty(), "{what}: {problems:?}");
    }
    // What a person reads.
    let finding = &messages.iter().find(|(k, _)| k == "finding.new").unwrap().1;
    let header = finding["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        header.contains("CVE-2026-0001")
            && header.contains("web-frontend")
            && header.contains("critical"),
        "{header}"
    );
    assert_eq!(finding["text"].as_str().unwrap(), header);
    // Markup from text cannot mention or link.
    let huge_text = messages
        .iter()
        .find(|(k, _)| k == "huge")
        .unwrap()
        .1
        .to_string();
    assert!(!huge_text.contains("<@U123>") && !huge_text.contains("<!channel>"));
    assert!(huge_text.contains("&lt;@U123&gt; &amp; &lt;!channel&gt;"));
    let long = &messages
        .iter()
        .find(|(k, _)| k == "one long line")
        .unwrap()
        .1;
    let section = long["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        section.ends_with("&amp;…"),
        "an entity was cut: {}",
        &section[section.len() - 10..]
    );
}
