//! The notifier end to end on the embedded default, with real receivers: the local
//! webhook receiver (`ops/webhook_receiver.py`, which verifies Standard Webhooks
//! signatures with the PyPI `standardwebhooks` package) and the SMTP sink of
//! `ops/services.sh` (its Maildir read back with Python's `email`).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{assert_problem, start, Server, ADMIN};
use crate::maildir;
use crate::scans::{scan_of, tiny_sbom, wait_scan};
use crate::webhook::Receiver;

/// A Standard Webhooks secret (24 bytes, base64).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const SCOPES: &[&str] = &[
    "scans:read",
    "scans:write",
    "notify:read",
    "notify:write",
    "jobs:read",
    "jobs:write",
];

async fn notify_server() -> Server {
    let sink = maildir::sink();
    start(|s| {
        // The receivers listen on loopback: an administrator allows it.
        s.outbound.allow_hosts = "127.0.0.1".into();
        s.scheduler.poll_interval_ms = 100;
        if let Some((host, port, _)) = sink {
            s.notify.smtp.host = host;
            s.notify.smtp.port = port;
        }
    })
    .await
}

async fn tenant(server: &Server, id: &str) -> String {
    server.create_tenant(id).await;
    server.token(id, SCOPES).await.1
}

async fn call(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> crate::api::Reply {
    server
        .call(method, &format!("/api/v1{path}"), Some(token), None, body)
        .await
}

/// Creates or replaces `/notify/<collection>/<name>` (a POST to the collection naming it).
async fn put(server: &Server, token: &str, path: &str, body: Value) -> Value {
    let reply = save(server, token, path, body).await;
    assert_eq!(reply.status, 200, "saving {path}: {}", reply.text);
    reply.body
}

async fn save(server: &Server, token: &str, path: &str, mut body: Value) -> crate::api::Reply {
    let (collection, name) = path.rsplit_once('/').unwrap();
    body["name"] = json!(name);
    call(server, token, Method::POST, collection, Some(body)).await
}

/// The tenant's deliveries once `done` holds for them, or panics after `within`.
async fn deliveries_until(
    server: &Server,
    token: &str,
    query: &str,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let reply = call(
            server,
            token,
            Method::GET,
            &format!("/notify/deliveries?{query}"),
            None,
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let items = reply.body["items"].as_array().unwrap().clone();
        if done(&items) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never settled: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn delivery(server: &Server, token: &str, id: &str) -> Value {
    let reply = call(
        server,
        token,
        Method::GET,
        &format!("/notify/deliveries/{id}"),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

/// The receiver's attempts once there are at least `n` (polled without blocking the
/// server, which runs on this test's thread).
pub(crate) async fn wait_attempts(
    receiver: &Receiver,
    n: usize,
    within: Duration,
) -> Vec<crate::webhook::Attempt> {
    let deadline = Instant::now() + within;
    loop {
        let attempts = receiver.attempts();
        if attempts.len() >= n {
            return attempts;
        }
        assert!(
            Instant::now() < deadline,
            "{} attempts after {within:?}, expected {n}",
            attempts.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn envelope(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("the webhook body is JSON: {e}: {body}"))
}

#[actix_web::test]
async fn a_webhook_delivery_retries_with_one_id_and_keeps_a_receipt_per_attempt() {
    // Two failures, then success: three wire attempts of one delivery.
    let Some(receiver) = Receiver::start(&[SECRET], json!([{"status": 500, "times": 2}])) else {
        return;
    };
    let server = notify_server().await;
    let token = tenant(&server, "acme").await;
    let channel = put(
        &server,
        &token,
        "/notify/channels/ops-hook",
        json!({"config": {"type": "webhook", "url": receiver.url("/hook")}, "secret": SECRET}),
    )
    .await;
    assert_eq!(channel["has_secret"], true);
    assert!(
        channel["signing_secret"].is_null(),
        "a given secret is never echoed: {channel}"
    );
    put(
        &server,
        &token,
        "/notify/rules/scans",
        json!({"match": {"event_kinds": ["scan.completed"]}, "actions": [{"channel": "ops-hook"}]}),
    )
    .await;
    let scan = scan_of(&server, &token, tiny_sbom(), &[("name", "web")]).await;
    wait_scan(&server, &token, &scan, "completed").await;

    let attempts = wait_attempts(&receiver, 3, Duration::from_secs(60)).await;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    let ids: Vec<_> = attempts
        .iter()
        .map(|a| a.webhook_id.clone().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one webhook-id for every attempt: {ids:?}"
    );
    assert!(
        attempts.iter().all(|a| a.verified == Some(true)),
        "{attempts:?}"
    );
    assert_eq!(
        attempts.iter().map(|a| a.answer).collect::<Vec<_>>(),
        vec![500, 500, 200]
    );
    let event = envelope(&attempts[2].body);
    assert_eq!(event["kind"], "scan.completed");
    assert_eq!(event["version"], 1);
    assert_eq!(event["tenant"], "acme");
    assert_eq!(event["payload"]["scan_id"], scan.as_str());
    assert_eq!(event["correlation_id"], scan.as_str());
    assert!(event["id"].as_str().unwrap().starts_with("evt_"), "{event}");

    let items = deliveries_until(&server, &token, "", Duration::from_secs(30), |items| {
        items.iter().any(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(
        items.len(),
        1,
        "one delivery for one (event, rule, channel): {items:?}"
    );
    let d = delivery(&server, &token, items[0]["id"].as_str().unwrap()).await;
    assert_eq!(
        d["id"].as_str(),
        Some(ids[0].as_str()),
        "the webhook-id is the delivery id"
    );
    let receipts = d["attempts"].as_array().unwrap();
    assert_eq!(receipts.len(), 3, "{d}");
    assert_eq!(
        receipts
            .iter()
            .map(|a| a["outcome"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["failed", "failed", "ok"]
    );
    assert_eq!(receipts[0]["status_code"], 500);
    assert_eq!(receipts[2]["status_code"], 200);
    assert!(receipts.iter().all(|a| a["latency_ms"].is_u64()), "{d}");

    // Filters: by status, channel and event kind.
    for (query, n) in [
        ("status=delivered", 1),
        ("status=dead_lettered", 0),
        ("channel=ops-hook", 1),
        ("channel=nope", 0),
        ("event_kind=scan.completed", 1),
        ("event_kind=finding.new", 0),
    ] {
        let reply = call(
            &server,
            &token,
            Method::GET,
            &format!("/notify/deliveries?{query}"),
            None,
        )
        .await;
        assert_eq!(
            reply.body["items"].as_array().unwrap().len(),
            n,
            "{query}: {}",
            reply.text
        );
    }
    let bad = call(
        &server,
        &token,
        Method::GET,
        "/notify/deliveries?status=lost",
        None,
    )
    .await;
    assert_problem(&bad, 400, "unknown status");
}

#[actix_web::test]
async fn refusals_rate_limits_and_forbidden_redirects_behave_as_documented() {
    let Some(receiver) = Receiver::start(
        &[SECRET],
        json!([
            {"status": 429, "retry_after": "1"},
            {"status": 400, "body": "bad payload"},
            {"status": 307, "location": "http://169.254.169.254/latest/meta-data/"},
        ]),
    ) else {
        return;
    };
    let server = notify_server().await;
    let token = tenant(&server, "acme").await;
    put(
        &server,
        &token,
        "/notify/channels/hook",
        json!({"config": {"type": "webhook", "url": receiver.url("/hook")}, "secret": SECRET}),
    )
    .await;
    put(
        &server,
        &token,
        "/notify/rules/scans",
        json!({"match": {"event_kinds": ["scan.completed"]}, "actions": [{"channel": "hook"}]}),
    )
    .await;
    let scan = scan_of(&server, &token, tiny_sbom(), &[("name", "web")]).await;
    wait_scan(&server, &token, &scan, "completed").await;

    // 429 with Retry-After: 1, then 400: dead-lettered at once, no third attempt.
    let items = deliveries_until(&server, &token, "", Duration::from_secs(60), |items| {
        items.iter().any(|d| d["status"] == "dead_lettered")
    })
    .await;
    let attempts = wait_attempts(&receiver, 2, Duration::from_secs(10)).await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let first = chrono::DateTime::parse_from_rfc3339(&attempts[0].at).unwrap();
    let second = chrono::DateTime::parse_from_rfc3339(&attempts[1].at).unwrap();
    assert!(
        second - first >= chrono::Duration::milliseconds(900),
        "Retry-After honoured: {} then {}",
        attempts[0].at,
        attempts[1].at
    );
    let id = items[0]["id"].as_str().unwrap().to_owned();
    let d = delivery(&server, &token, &id).await;
    let receipts = d["attempts"].as_array().unwrap();
    assert_eq!(receipts.len(), 2, "{d}");
    assert_eq!(receipts[1]["status_code"], 400);
    assert_eq!(receipts[1]["response_head"], "bad payload");

    // Redelivered: the receiver redirects to the metadata address, which the guard
    // refuses without connecting; dead-lettered again, visibly.
    let reply = call(
        &server,
        &token,
        Method::POST,
        &format!("/notify/deliveries/{id}/redeliver"),
        None,
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    let d = loop {
        let d = delivery(&server, &token, &id).await;
        if d["attempts"].as_array().unwrap().len() == 3 && d["status"] == "dead_lettered" {
            break d;
        }
        assert!(Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let error = d["attempts"][2]["error"].as_str().unwrap();
    assert!(
        error.contains("169.254.169.254") || error.contains("link-local"),
        "{error}"
    );
    assert_eq!(
        receiver.attempts().len(),
        3,
        "nothing reached past the redirect"
    );

    // Once more, now answered 200: the same id on the wire (a receiver that had it
    // would drop it), delivered.
    let reply = call(
        &server,
        &token,
        Method::POST,
        &format!("/notify/deliveries/{id}/redeliver"),
        None,
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let attempts = wait_attempts(&receiver, 4, Duration::from_secs(30)).await;
    assert_eq!(attempts[3].answer, 200);
    assert_eq!(attempts[3].webhook_id.as_deref(), Some(id.as_str()));
    deliveries_until(
        &server,
        &token,
        "status=delivered",
        Duration::from_secs(30),
        |items| items.len() == 1,
    )
    .await;
}

#[actix_web::test]
async fn a_full_throttle_window_folds_the_rest_into_one_digest() {
    let Some(receiver) = Receiver::start(&[SECRET], json!([])) else {
        return;
    };
    let server = notify_server().await;
    let token = tenant(&server, "acme").await;
    put(
        &server,
        &token,
        "/notify/channels/hook",
        json!({
            "config": {"type": "webhook", "url": receiver.url("/hook")},
            "secret": SECRET,
            "throttle": {"max": 1, "per_seconds": 4},
        }),
    )
    .await;
    put(
        &server,
        &token,
        "/notify/rules/scans",
        json!({"match": {"event_kinds": ["scan.completed"]}, "actions": [{"channel": "hook"}]}),
    )
    .await;
    let mut scans = Vec::new();
    for name in ["a", "b", "c"] {
        scans.push(scan_of(&server, &token, tiny_sbom(), &[("name", name)]).await);
    }
    for scan in &scans {
        wait_scan(&server, &token, scan, "completed").await;
    }
    // Every event accounted for: one sent alone, the others in one digest, none twice.
    let items = deliveries_until(&server, &token, "", Duration::from_secs(60), |items| {
        items.len() == 4 && items.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    let digest: Vec<&Value> = items.iter().filter(|d| d["mode"] == "digest").collect();
    assert_eq!(digest.len(), 1, "{items:?}");
    let attempts = wait_attempts(&receiver, 2, Duration::from_secs(10)).await;
    assert_eq!(
        attempts.len(),
        2,
        "one message alone, one digest: {attempts:?}"
    );
    let single = envelope(&attempts[0].body);
    let summary = envelope(&attempts[1].body);
    assert_eq!(summary["kind"], "notify.digest");
    assert_eq!(summary["payload"]["throttled"], 2);
    let mut seen: Vec<&str> = summary["payload"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["scan_id"].as_str().unwrap())
        .collect();
    seen.push(single["payload"]["scan_id"].as_str().unwrap());
    seen.sort_unstable();
    let mut want: Vec<&str> = scans.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(seen, want, "each scan once");
    assert!(attempts.iter().all(|a| a.verified == Some(true)));
}

fn left_pad_advisory() -> Vec<u8> {
    json!([{
        "id": "T-NOTIFY-1",
        "modified": "2026-11-01T00:00:00Z",
        "summary": "left-pad pads wrongly",
        "database_specific": {"severity": "HIGH"},
        "affected": [{
            "package": {"ecosystem": "npm", "name": "left-pad"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.1"}]}]
        }]
    }])
    .to_string()
    .into_bytes()
}

#[actix_web::test]
async fn an_advisory_that_affects_a_target_is_told_on_slack_teams_and_by_email() {
    let Some(slack) = Receiver::start(&[], json!([])) else {
        return;
    };
    let Some(teams) = Receiver::start(&[], json!([])) else {
        return;
    };
    let Some((_, _, maildir)) = maildir::sink() else {
        return;
    };
    let python = crate::webhook::python().unwrap();
    let server = notify_server().await;
    let token = tenant(&server, "acme").await;
    let web = scan_of(
        &server,
        &token,
        tiny_sbom(),
        &[("name", "web"), ("target", "web")],
    )
    .await;
    wait_scan(&server, &token, &web, "completed").await;
    put(
        &server,
        &token,
        "/notify/channels/chat",
        json!({"config": {"type": "slack", "url": slack.url("/services/T000/B000/XXXX")}}),
    )
    .await;
    let shown = call(&server, &token, Method::GET, "/notify/channels/chat", None).await;
    assert!(
        !shown.text.contains("XXXX"),
        "a Slack URL is a secret and never shown: {}",
        shown.text
    );
    put(
        &server,
        &token,
        "/notify/channels/mail",
        json!({"config": {"type": "email", "to": ["secops@example.com"]}}),
    )
    .await;
    put(
        &server,
        &token,
        "/notify/channels/teams",
        json!({"config": {"type": "teams", "url": teams.url("/workflows/abc/triggers/manual")}}),
    )
    .await;
    put(
        &server,
        &token,
        "/notify/rules/new-findings",
        json!({
            "match": {"event_kinds": ["finding.new"], "targets": ["web"]},
            "actions": [{"channel": "chat"}, {"channel": "mail"}, {"channel": "teams"}],
        }),
    )
    .await;
    let import = server
        .http
        .post(format!(
            "http://{}/api/v1/advisories/imports?source=osv:notify",
            server.addr
        ))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(left_pad_advisory())
        .send()
        .await
        .unwrap();
    assert!(import.status().is_success());

    let posted = wait_attempts(&slack, 1, Duration::from_secs(90)).await;
    let message: Value = serde_json::from_str(&posted[0].body).unwrap();
    let text = message.to_string();
    assert!(
        text.contains("T-NOTIFY-1"),
        "names the vulnerability: {text}"
    );
    assert!(text.contains("web"), "names the target: {text}");
    assert!(
        message["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "Block Kit: {text}"
    );
    assert!(message["text"].is_string(), "a text fallback: {text}");

    // Teams: a Workflows message carrying an Adaptive Card 1.5 (the card itself is checked
    // against the Adaptive Card schema in the domain's tests).
    let posted = wait_attempts(&teams, 1, Duration::from_secs(60)).await;
    let message: Value = serde_json::from_str(&posted[0].body).unwrap();
    assert_eq!(message["type"], "message", "{message}");
    let card = &message["attachments"][0];
    assert_eq!(
        card["contentType"], "application/vnd.microsoft.card.adaptive",
        "{message}"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard", "{message}");
    assert_eq!(card["content"]["version"], "1.5", "{message}");
    let text = message.to_string();
    assert!(
        text.contains("T-NOTIFY-1") && text.contains("web"),
        "{text}"
    );

    let items = deliveries_until(
        &server,
        &token,
        "event_kind=finding.new",
        Duration::from_secs(60),
        |items| items.len() == 3 && items.iter().all(|d| d["status"] == "delivered"),
    )
    .await;
    let mail_delivery = items.iter().find(|d| d["channel_type"] == "email").unwrap();
    let id = mail_delivery["id"].as_str().unwrap();
    let mails = maildir::messages_with_id(
        &python,
        &maildir,
        &format!("<{id}@localhost>"),
        1,
        Duration::from_secs(5),
    );
    assert_eq!(mails.len(), 1, "one message for one delivery");
    let mail = &mails[0];
    assert!(
        mail.subject.contains("T-NOTIFY-1"),
        "the subject names it: {}",
        mail.subject
    );
    assert!(
        mail.subject.contains("web"),
        "and the target: {}",
        mail.subject
    );
    let plain = mail.part("text/plain").expect("a text part");
    let html = mail.part("text/html").expect("an HTML part");
    assert!(plain.contains("T-NOTIFY-1") && html.contains("T-NOTIFY-1"));
    assert!(
        mail.envelope_to.contains("secops@example.com")
            || mail
                .header("To")
                .is_some_and(|t| t.contains("secops@example.com"))
    );
}

#[actix_web::test]
async fn bad_channels_rules_and_templates_are_refused_with_their_location() {
    let server = notify_server().await;
    let token = tenant(&server, "acme").await;
    let other = tenant(&server, "other").await;
    let cases = [
        (
            "/notify/channels/x",
            json!({"config": {"type": "pager", "url": "https://example.com"}}),
            "/config/type",
        ),
        (
            "/notify/channels/x",
            json!({"config": {"type": "webhook", "url": "http://10.0.0.8/hook"}}),
            "/config/url",
        ),
        (
            "/notify/channels/x",
            json!({"config": {"type": "webhook", "url": "http://169.254.169.254/latest/"}}),
            "/config/url",
        ),
        (
            "/notify/rules/r",
            json!({"match": {"event_kinds": ["scan.completed"]}, "actions": [{"channel": "missing"}]}),
            "/actions/0/channel",
        ),
        (
            "/notify/rules/r",
            json!({"match": {"event_kinds": ["scan.exploded"]}, "actions": [{"channel": "missing"}]}),
            "/match/event_kinds/0",
        ),
        (
            "/notify/templates/t",
            json!({"channel_type": "email", "source": "{% block subject %}Hi {{ event.kind }{% endblock %}"}),
            "/source",
        ),
    ];
    for (path, body, at) in cases {
        let reply = save(&server, &token, path, body.clone()).await;
        assert_problem(&reply, 400, &format!("{path} {body}"));
        assert_eq!(reply.body["location"], at, "{path} {body}: {}", reply.text);
    }
    let reply = save(
        &server,
        &token,
        "/notify/templates/t",
        json!({"channel_type": "email", "source": "{% block subject %}\n{{ event.kind }{% endblock %}"}),
    )
    .await;
    assert!(
        reply.text.contains("line 2"),
        "names the line: {}",
        reply.text
    );

    // A webhook without a secret gets one, shown once.
    let made = put(
        &server,
        &token,
        "/notify/channels/hook",
        json!({"config": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}}),
    )
    .await;
    let secret = made["signing_secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{made}");
    let shown = call(&server, &token, Method::GET, "/notify/channels/hook", None).await;
    assert!(!shown.text.contains(secret), "write-only: {}", shown.text);
    let rotated = call(
        &server,
        &token,
        Method::POST,
        "/notify/channels/hook/rotate-secret",
        None,
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_ne!(rotated.body["signing_secret"], secret);

    // The other tenant sees none of it.
    for path in ["/notify/channels/hook", "/notify/rules/r"] {
        let reply = call(&server, &other, Method::GET, path, None).await;
        assert_problem(&reply, 404, path);
    }

    // A channel a rule uses is not deleted; a preview matches without saving.
    put(
        &server,
        &token,
        "/notify/rules/r",
        json!({"match": {"event_kinds": ["scan.completed"], "dispositions": ["pass"]}, "actions": [{"channel": "hook"}]}),
    )
    .await;
    let reply = call(
        &server,
        &token,
        Method::DELETE,
        "/notify/channels/hook",
        None,
    )
    .await;
    assert_problem(&reply, 409, "in use");
    let scan = scan_of(&server, &token, tiny_sbom(), &[("name", "web")]).await;
    wait_scan(&server, &token, &scan, "completed").await;
    let preview = call(
        &server,
        &token,
        Method::POST,
        "/notify/rules/preview?limit=10",
        Some(json!({"match": {"event_kinds": ["scan.completed"], "targets": ["web"]}, "actions": [{"channel": "hook"}]})),
    )
    .await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert_eq!(preview.body["matched"], 1, "{}", preview.text);
    assert_eq!(
        preview.body["events"][0]["payload"]["scan_id"],
        scan.as_str()
    );
    let none = call(
        &server,
        &token,
        Method::POST,
        "/notify/rules/preview",
        Some(json!({"match": {"event_kinds": ["scan.completed"], "targets": ["api"]}, "actions": [{"channel": "hook"}]})),
    )
    .await;
    assert_eq!(none.body["matched"], 0, "{}", none.text);
}

#[actix_web::test]
async fn quiet_hours_hold_and_digest_rules_wait_for_their_window() {
    let Some(receiver) = Receiver::start(&[SECRET], json!([])) else {
        return;
    };
    let server = notify_server().await;
    let token = tenant(&server, "acme").await;
    // Quiet from an hour ago to two hours from now, in UTC: held until then.
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::hours(1))
        .format("%H:%M")
        .to_string();
    let end = (now + chrono::Duration::hours(2))
        .format("%H:%M")
        .to_string();
    put(
        &server,
        &token,
        "/notify/channels/night",
        json!({
            "config": {"type": "webhook", "url": receiver.url("/night")},
            "secret": SECRET,
            "quiet_hours": {"start": start, "end": end, "timezone": "UTC", "mode": "hold"},
        }),
    )
    .await;
    put(
        &server,
        &token,
        "/notify/channels/day",
        json!({"config": {"type": "webhook", "url": receiver.url("/day")}, "secret": SECRET}),
    )
    .await;
    put(
        &server,
        &token,
        "/notify/rules/held",
        json!({"match": {"event_kinds": ["scan.completed"]}, "actions": [{"channel": "night"}]}),
    )
    .await;
    put(
        &server,
        &token,
        "/notify/rules/hourly",
        json!({"match": {"event_kinds": ["scan.completed"]}, "actions": [{"channel": "day", "digest": "1h"}]}),
    )
    .await;
    let scan = scan_of(&server, &token, tiny_sbom(), &[("name", "web")]).await;
    wait_scan(&server, &token, &scan, "completed").await;
    let items = deliveries_until(&server, &token, "", Duration::from_secs(30), |items| {
        items.len() == 2
            && items.iter().any(|d| d["status"] == "held")
            && items.iter().any(|d| d["status"] == "digested")
    })
    .await;
    let held = items.iter().find(|d| d["status"] == "held").unwrap();
    let until = held["detail"]["held_until"].as_str().unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(until).unwrap();
    assert!(
        until > now + chrono::Duration::minutes(100),
        "held until the end: {until}"
    );
    let digested = items.iter().find(|d| d["status"] == "digested").unwrap();
    assert_eq!(digested["mode"], "digest", "{digested}");
    // Nothing went out: one is held, the other waits for its hour's digest.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(receiver.attempts().is_empty(), "{:?}", receiver.attempts());
}

/// A channel test through a server whose relay settings `smtp` sets: the delivery, once
/// it is delivered or dead-lettered, with its receipts.
async fn test_email_channel(smtp: impl FnOnce(&mut stella_config::SmtpSettings)) -> Value {
    let server = start(|s| {
        s.scheduler.poll_interval_ms = 100;
        smtp(&mut s.notify.smtp);
    })
    .await;
    let token = tenant(&server, "acme").await;
    put(
        &server,
        &token,
        "/notify/channels/mail",
        json!({"config": {"type": "email", "to": ["secops@example.com"]}}),
    )
    .await;
    let reply = call(
        &server,
        &token,
        Method::POST,
        "/notify/channels/mail/test",
        None,
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = delivery(&server, &token, &id).await;
        if d["status"] == "delivered" || d["status"] == "dead_lettered" {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "the test delivery never settled: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn email_goes_over_starttls_and_tls_and_never_in_the_clear_when_starttls_is_missing() {
    use stella_config::SmtpMode;
    let (Some(sink), Some((_, plain_port, _))) = (maildir::tls_sink(), maildir::sink()) else {
        return;
    };
    let python = crate::webhook::python().unwrap();
    for (mode, port) in [
        (SmtpMode::Starttls, sink.starttls_port),
        (SmtpMode::Tls, sink.tls_port),
    ] {
        let d = test_email_channel(|smtp| {
            smtp.host.clone_from(&sink.host);
            smtp.port = port;
            smtp.mode = mode;
            smtp.ca_file = Some(sink.ca_file.clone());
        })
        .await;
        assert_eq!(d["status"], "delivered", "{mode:?}: {d}");
        let id = d["id"].as_str().unwrap();
        let mails = maildir::messages_with_id(
            &python,
            &sink.maildir,
            &format!("<{id}@localhost>"),
            1,
            Duration::from_secs(5),
        );
        assert_eq!(mails.len(), 1, "{mode:?}: one message for one delivery");
        let mail = &mails[0];
        assert_eq!(
            mail.subject, "[Stella] Test notification from Stella",
            "{mode:?}"
        );
        assert!(
            mail.part("text/plain").is_some() && mail.part("text/html").is_some(),
            "{mail:?}"
        );
        let tls = mail.header("X-Stella-Received-TLS").unwrap_or("");
        assert!(tls.starts_with("TLSv1."), "{mode:?}: received over {tls:?}");
    }

    // STARTTLS required, to the plain port (which offers none): the delivery fails at
    // once, its receipt says why, and nothing reached the sink.
    let d = test_email_channel(|smtp| {
        smtp.host.clone_from(&sink.host);
        smtp.port = plain_port;
        smtp.mode = SmtpMode::Starttls;
        smtp.ca_file = Some(sink.ca_file.clone());
    })
    .await;
    assert_eq!(d["status"], "dead_lettered", "{d}");
    let receipts = d["attempts"].as_array().unwrap();
    assert_eq!(receipts.len(), 1, "a permanent failure is not retried: {d}");
    assert_eq!(receipts[0]["outcome"], "failed");
    let error = receipts[0]["error"].as_str().unwrap_or("");
    assert!(
        error.contains("does not offer STARTTLS") && error.contains("nothing was sent"),
        "{error}"
    );
    let id = d["id"].as_str().unwrap();
    assert!(maildir::messages_with_id(
        &python,
        &sink.maildir,
        &format!("<{id}@localhost>"),
        1,
        Duration::from_secs(1)
    )
    .is_empty());

    // A CA file that cannot be read: every email delivery fails, and says so.
    let d = test_email_channel(|smtp| {
        smtp.host.clone_from(&sink.host);
        smtp.port = sink.tls_port;
        smtp.mode = SmtpMode::Tls;
        smtp.ca_file = Some("/nonexistent/smtp-ca.pem".into());
    })
    .await;
    assert_eq!(d["status"], "dead_lettered", "{d}");
    let error = d["attempts"][0]["error"].as_str().unwrap_or("");
    assert!(
        error.contains("notify.smtp.ca_file /nonexistent/smtp-ca.pem cannot be read"),
        "{error}"
    );
}

#[actix_web::test]
async fn a_dead_lettered_job_is_told_and_a_failing_notification_is_not() {
    let Some(receiver) = Receiver::start(&[SECRET], json!([])) else {
        return;
    };
    let server = notify_server().await;
    let token = tenant(&server, "acme").await;
    put(
        &server,
        &token,
        "/notify/channels/ops",
        json!({"config": {"type": "webhook", "url": receiver.url("/ops")}, "secret": SECRET}),
    )
    .await;
    // A channel nothing answers on: its deliveries fail for good, and that failure
    // must not feed `job.dead_lettered` back into the rules.
    put(
        &server,
        &token,
        "/notify/channels/broken",
        json!({"config": {"type": "webhook", "url": "http://127.0.0.1:9/nothing"}, "secret": SECRET}),
    )
    .await;
    put(
        &server,
        &token,
        "/notify/rules/dead",
        json!({"match": {"event_kinds": ["job.dead_lettered"]}, "actions": [{"channel": "ops"}, {"channel": "broken"}]}),
    )
    .await;
    let job = server
        .submit(&token, json!({"panic_always": true}), 1)
        .await;
    server.wait_job(&token, &job, "failed").await;
    let attempts = wait_attempts(&receiver, 1, Duration::from_secs(60)).await;
    let event = envelope(&attempts[0].body);
    assert_eq!(event["kind"], "job.dead_lettered", "{event}");
    assert_eq!(event["payload"]["job_id"], job.as_str());
    assert_eq!(event["payload"]["job_kind"], "noop");
    assert_eq!(event["correlation_id"], job.as_str());
    // The events stream holds exactly one `job.dead_lettered`: the noop's, whatever
    // becomes of the delivery to the broken channel.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = call(
        &server,
        &token,
        Method::GET,
        "/events?kind=job.dead_lettered",
        None,
    )
    .await;
    assert_eq!(events.status, 200, "{}", events.text);
    let items = events.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", events.text);
    assert_eq!(
        receiver.attempts().len(),
        1,
        "one delivery to the working channel"
    );
}

#[actix_web::test]
async fn a_template_that_fails_for_one_event_falls_back_to_the_shipped_one_and_says_so() {
    let Some(slack) = Receiver::start(&[], json!([])) else {
        return;
    };
    let server = notify_server().await;
    let token = tenant(&server, "acme").await;
    // Saved: it renders every sample event and digest. But a `job.dead_lettered` event
    // has no findings, and `length` of nothing is an error at send time.
    let source =
        "{% block subject %}{{ events[0].payload.findings | length }} findings{% endblock %}\n\
                  {% block text %}{{ event.payload.target }}{% endblock %}";
    put(
        &server,
        &token,
        "/notify/templates/counted",
        json!({"channel_type": "slack", "source": source}),
    )
    .await;
    put(
        &server,
        &token,
        "/notify/channels/chat",
        json!({"config": {"type": "slack", "url": slack.url("/services/T000/B000/XXXX")}}),
    )
    .await;
    put(
        &server,
        &token,
        "/notify/rules/dead",
        json!({"match": {"event_kinds": ["job.dead_lettered"]}, "actions": [{"channel": "chat", "template": "counted"}]}),
    )
    .await;
    let job = server
        .submit(&token, json!({"panic_always": true}), 1)
        .await;
    server.wait_job(&token, &job, "failed").await;

    // The message went out, with the shipped Slack template.
    let posted = wait_attempts(&slack, 1, Duration::from_secs(60)).await;
    let message: Value = serde_json::from_str(&posted[0].body).unwrap();
    let text = message.to_string();
    assert!(
        !text.contains("findings"),
        "not the tenant's template: {text}"
    );
    assert!(
        text.contains(job.as_str()),
        "the shipped template names the job: {text}"
    );
    assert!(
        message["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "Block Kit: {text}"
    );
    // The delivery is delivered, and says which template failed, where and why.
    let items = deliveries_until(
        &server,
        &token,
        "event_kind=job.dead_lettered",
        Duration::from_secs(30),
        |items| items.iter().any(|d| d["status"] == "delivered"),
    )
    .await;
    let d = &items[0];
    assert_eq!(d["detail"]["template"], "counted", "{d}");
    let error = d["detail"]["template_error"].as_str().unwrap_or("");
    assert!(
        error.contains("counted")
            && error.contains("length")
            && error.contains("line 1")
            && error.contains("shipped slack template"),
        "{d}"
    );
    assert_eq!(
        slack.attempts().len(),
        1,
        "sent once: {:?}",
        slack.attempts()
    );
}

#[actix_web::test]
async fn a_quarantined_tenant_is_told() {
    let Some(receiver) = Receiver::start(&[SECRET], json!([])) else {
        return;
    };
    // Past one panic in a minute, a tenant is quarantined (for a second here).
    let sink = maildir::sink();
    let server = start(|s| {
        s.outbound.allow_hosts = "127.0.0.1".into();
        s.scheduler.poll_interval_ms = 100;
        s.runtime.restart_max = 1;
        s.runtime.restart_within_secs = 60;
        s.runtime.quarantine_secs = 1;
        if let Some((host, port, _)) = sink {
            s.notify.smtp.host = host;
            s.notify.smtp.port = port;
        }
    })
    .await;
    let token = tenant(&server, "acme").await;
    put(
        &server,
        &token,
        "/notify/channels/ops",
        json!({"config": {"type": "webhook", "url": receiver.url("/ops")}, "secret": SECRET}),
    )
    .await;
    put(
        &server,
        &token,
        "/notify/rules/quarantine",
        json!({"match": {"event_kinds": ["tenant.quarantined"]}, "actions": [{"channel": "ops"}]}),
    )
    .await;
    for _ in 0..3 {
        let job = server
            .submit(&token, json!({"panic_always": true}), 1)
            .await;
        server.wait_job(&token, &job, "failed").await;
    }
    let attempts = wait_attempts(&receiver, 1, Duration::from_secs(60)).await;
    let event = envelope(&attempts[0].body);
    assert_eq!(event["kind"], "tenant.quarantined", "{event}");
    assert_eq!(event["tenant"], "acme");
    assert_eq!(event["payload"]["quarantine_secs"], 1);
}
