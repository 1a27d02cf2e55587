//! The notifier's wire against real receivers on this machine: webhook POSTs to
//! `ops/webhook_receiver.py` (signatures checked by the PyPI `standardwebhooks` package),
//! email to the SMTP sink of `ops/services.sh` (read back from its Maildir), a scripted
//! SMTP server for the relay's refusals, and channel secrets sealed at rest.
//!
//! Every listener is on loopback; names are answered by a stub resolver, so no test asks
//! a name server. Without the services (`$STELLA_TEST_WEBHOOK_PYTHON`, the SMTP sink) the
//! tests that need them are skipped with a message, unless `STELLA_TEST_SERVICES` is set.

#![allow(clippy::unwrap_used)]

#[path = "support/maildir.rs"]
mod maildir;
#[path = "support/webhook.rs"]
mod webhook;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};
use stella_actors::notify::wire::{
    deliver, judge, Mail, MailError, Mailer, SecretBox, SecretError, WireOutcome,
};
use stella_actors::outbound::{FetchError, HostResolver, Outbound, BODY_HEAD_BYTES};
use stella_config::{NotifySettings, OutboundSettings, SmtpMode, SmtpSettings};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use webhook::Receiver;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A secret the receiver does not know (a rotated-out one).
const OLD_SECRET: &str = "whsec_c3RlbGxhLW9sZC1zZWNyZXQtZm9yLXRlc3Rz";

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// Names for the tests, answered without asking any name server.
#[derive(Debug)]
struct Stub(HashMap<&'static str, Vec<IpAddr>>);

#[async_trait]
impl HostResolver for Stub {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        self.0
            .get(host)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
    }
}

fn outbound(allow_hosts: &str) -> Outbound {
    let settings = OutboundSettings {
        allow_hosts: allow_hosts.into(),
        connect_timeout_secs: 2,
        timeout_secs: 10,
        ..OutboundSettings::default()
    };
    let ips = |s: &str| vec![s.parse::<IpAddr>().unwrap()];
    Outbound::with_resolver(
        &settings,
        Arc::new(Stub(HashMap::from([
            ("metadata.test", ips("169.254.169.254")),
            ("loopback.test", ips("127.0.0.1")),
        ]))),
    )
}

/// The receivers' outbound: only 127.0.0.1 is allow-listed (not 127.0.0.2, not names).
fn guarded() -> Outbound {
    outbound("127.0.0.1")
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Standard Webhooks headers for `body`, one `v1,` signature per secret (rotation sends
/// both), written here from the specification, independent of any Stella code.
fn signed(id: &str, body: &[u8], secrets: &[&str]) -> Vec<(String, String)> {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| {
            let key = STANDARD
                .decode(secret.trim_start_matches("whsec_"))
                .unwrap();
            format!("v1,{}", STANDARD.encode(hmac_sha256(&key, &content)))
        })
        .collect();
    vec![
        ("content-type".into(), "application/json".into()),
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp),
        ("webhook-signature".into(), signatures.join(" ")),
    ]
}

fn event_body(id: &str) -> Bytes {
    Bytes::from(
        json!({"type": "finding.new", "timestamp": "2026-03-01T12:00:00Z",
               "data": {"event_id": id, "vulnerability": "CVE-2026-1234"}})
        .to_string(),
    )
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid_like())
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}-{}", std::process::id())
}

/// A listener that counts connections and answers each request with `response`.
struct Counting {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

async fn counting(bind: &str, response: &'static [u8]) -> Counting {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(response).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Counting { addr, connections }
}

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// webhooks
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_signed_post_is_verified_by_standardwebhooks_and_answered() {
    let Some(receiver) = Receiver::start(&[SECRET], json!([])) else {
        return;
    };
    let out = guarded();
    let id = unique("msg");
    let body = event_body(&id);
    let response = out
        .post(
            &receiver.url("/hooks/stella"),
            &signed(&id, &body, &[SECRET]),
            body.clone(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body_head, "ok");
    assert_eq!(response.retry_after, None);
    assert!(response.latency < Duration::from_secs(5));

    // During a rotation both signatures go out; the receiver knows only the new secret.
    let rotated = unique("msg");
    let rotated_body = event_body(&rotated);
    out.post(
        &receiver.url("/hooks/stella"),
        &signed(&rotated, &rotated_body, &[OLD_SECRET, SECRET]),
        rotated_body,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    // The control: a body changed after signing does not verify.
    let forged = unique("msg");
    out.post(
        &receiver.url("/hooks/stella"),
        &signed(&forged, b"{\"type\":\"other\"}", &[SECRET]),
        event_body(&forged),
        Duration::from_secs(5),
    )
    .await
    .unwrap();

    let attempts = receiver.wait_for(3, WAIT);
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0].webhook_id.as_deref(), Some(id.as_str()));
    assert_eq!(attempts[0].verified, Some(true), "{:?}", attempts[0].error);
    assert_eq!(attempts[0].path, "/hooks/stella");
    assert_eq!(attempts[0].body, String::from_utf8_lossy(&body));
    assert_eq!(
        attempts[0].headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    assert!(attempts[0]
        .headers
        .get("user-agent")
        .is_some_and(|ua| ua.starts_with("stella/")));
    assert_eq!(attempts[1].verified, Some(true), "{:?}", attempts[1].error);
    assert_eq!(attempts[2].verified, Some(false));
}

#[tokio::test]
async fn failing_first_attempts_are_retried_with_the_same_webhook_id() {
    let Some(receiver) = Receiver::start(&[SECRET], json!([{"status": 500, "times": 2}])) else {
        return;
    };
    let out = guarded();
    let id = unique("delivery");
    let body = event_body(&id);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        // Each wire attempt signs afresh (a new timestamp) but keeps the delivery's id.
        let attempt = deliver(
            &out,
            &receiver.url("/hook"),
            &signed(&id, &body, &[SECRET]),
            body.clone(),
            Duration::from_secs(5),
        )
        .await;
        outcomes.push(attempt);
    }
    assert_eq!(outcomes[0].status, Some(500));
    assert_eq!(outcomes[0].outcome, WireOutcome::Retry { after: None });
    assert_eq!(
        outcomes[0].error.as_deref(),
        Some("the receiver answered 500 Internal Server Error")
    );
    assert_eq!(outcomes[0].body_head.as_deref(), Some("scripted 500"));
    assert_eq!(outcomes[1].status, Some(500));
    assert_eq!(outcomes[2].status, Some(200));
    assert_eq!(outcomes[2].outcome, WireOutcome::Delivered);
    assert_eq!(outcomes[2].error, None);

    let attempts = receiver.wait_for(3, WAIT);
    assert_eq!(
        attempts.iter().map(|a| a.answer).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert!(attempts
        .iter()
        .all(|a| a.webhook_id.as_deref() == Some(id.as_str()) && a.verified == Some(true)));
    // What a receiver deduplicating on webhook-id keeps: one delivery.
    let ids: std::collections::BTreeSet<_> = attempts.iter().map(|a| &a.webhook_id).collect();
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn throttled_answers_carry_retry_after_as_sent() {
    let Some(receiver) = Receiver::start(
        &[SECRET],
        json!([
            {"status": 429, "retry_after": "7"},
            {"status": 503, "retry_after": "Wed, 21 Oct 2099 07:28:00 GMT"},
            {"status": 429}
        ]),
    ) else {
        return;
    };
    let out = guarded();
    let mut responses = Vec::new();
    for _ in 0..3 {
        let id = unique("msg");
        let body = event_body(&id);
        let result = out
            .post(
                &receiver.url("/hook"),
                &signed(&id, &body, &[SECRET]),
                body,
                Duration::from_secs(5),
            )
            .await;
        responses.push(result);
    }
    let now = chrono::Utc::now();
    let first = responses[0].as_ref().unwrap();
    assert_eq!(first.status, 429);
    assert_eq!(first.retry_after.as_deref(), Some("7"));
    assert_eq!(
        judge(&responses[0], now),
        WireOutcome::Retry {
            after: Some(Duration::from_secs(7))
        }
    );
    let second = responses[1].as_ref().unwrap();
    assert_eq!(second.status, 503);
    assert_eq!(
        second.retry_after.as_deref(),
        Some("Wed, 21 Oct 2099 07:28:00 GMT")
    );
    let WireOutcome::Retry { after: Some(wait) } = judge(&responses[1], now) else {
        panic!("503 with a date is a retry after it")
    };
    assert!(wait > Duration::from_secs(365 * 24 * 3600), "{wait:?}");
    let third = responses[2].as_ref().unwrap();
    assert_eq!((third.status, third.retry_after.as_deref()), (429, None));
    assert_eq!(
        judge(&responses[2], now),
        WireOutcome::Retry { after: None }
    );
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_is_a_transient_failure() {
    let Some(receiver) = Receiver::start(&[SECRET], json!([{"sleep": 3}])) else {
        return;
    };
    let out = guarded();
    let id = unique("msg");
    let body = event_body(&id);
    let started = Instant::now();
    let err = out
        .post(
            &receiver.url("/hook"),
            &signed(&id, &body, &[SECRET]),
            body,
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let FetchError::Transient(text) = &err else {
        panic!("a time-out is transient: {err:?}")
    };
    assert_eq!(text, "posting to 127.0.0.1 timed out");
    assert!(!text.contains(&receiver.port.to_string()));
    assert_eq!(
        judge(&Err(err), chrono::Utc::now()),
        WireOutcome::Retry { after: None }
    );
    // The receiver did get the attempt: a retry must carry the same webhook-id.
    let attempts = receiver.wait_for(1, WAIT);
    assert_eq!(attempts[0].webhook_id.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn a_redirect_is_never_followed_and_into_a_forbidden_address_is_forbidden() {
    // A second receiver on 127.0.0.2, which is loopback and not allow-listed: a redirect
    // there must never reach it.
    let hidden = counting(
        "127.0.0.2:0",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let Some(receiver) = Receiver::start(
        &[SECRET],
        json!([
            {"status": 307, "location": "http://169.254.169.254/latest/meta-data/"},
            {"status": 308, "location": format!("http://{}/internal", hidden.addr)},
            {"status": 307, "location": "http://metadata.test/latest/"},
            {"status": 307, "location": "/moved"}
        ]),
    ) else {
        return;
    };
    let out = guarded();
    let mut errors = Vec::new();
    for _ in 0..4 {
        let id = unique("msg");
        let body = event_body(&id);
        let err = out
            .post(
                &receiver.url("/hook"),
                &signed(&id, &body, &[SECRET]),
                body,
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        errors.push(err);
    }
    for err in &errors[..3] {
        assert!(matches!(err, FetchError::Forbidden(_)), "{err:?}");
        assert_eq!(
            judge(&Err(err.clone()), chrono::Utc::now()),
            WireOutcome::Failed
        );
    }
    assert!(
        errors[0].to_string().contains("169.254.169.254"),
        "{}",
        errors[0]
    );
    assert!(errors[1].to_string().contains("loopback"), "{}", errors[1]);
    assert!(
        errors[2].to_string().contains("metadata.test"),
        "{}",
        errors[2]
    );
    // A redirect within the allowed host is not followed either: the channel's URL is to fix.
    let FetchError::Refused(text) = &errors[3] else {
        panic!(
            "a redirect to an allowed address is refused: {:?}",
            errors[3]
        )
    };
    assert!(text.contains("307") && text.contains("redirect"), "{text}");
    for err in &errors {
        let text = err.to_string();
        assert!(!text.contains(&receiver.port.to_string()), "{text}");
        assert!(!text.contains(&hidden.addr.port().to_string()), "{text}");
    }

    // Four attempts, all to /hook: none followed a redirect, not even the allowed one.
    let attempts = receiver.wait_for(4, WAIT);
    assert_eq!(attempts.len(), 4);
    assert!(attempts.iter().all(|a| a.path == "/hook"), "{attempts:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hidden.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_client_error_fails_at_once_with_the_answer_kept() {
    let Some(receiver) = Receiver::start(
        &[SECRET],
        json!([{"status": 400, "body": "unknown event type finding.new"}]),
    ) else {
        return;
    };
    let id = unique("msg");
    let body = event_body(&id);
    let attempt = deliver(
        &guarded(),
        &receiver.url("/hook"),
        &signed(&id, &body, &[SECRET]),
        body,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(attempt.outcome, WireOutcome::Failed);
    assert_eq!(attempt.status, Some(400));
    assert_eq!(
        attempt.body_head.as_deref(),
        Some("unknown event type finding.new")
    );
    assert_eq!(
        attempt.error.as_deref(),
        Some("the receiver answered 400 Bad Request")
    );
}

#[tokio::test]
async fn the_guard_refuses_loopback_that_is_not_allow_listed_without_connecting() {
    let listener = counting(
        "127.0.0.1:0",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let out = outbound("");
    let body = Bytes::from_static(b"{}");
    for url in [
        format!("http://{}/hook", listener.addr),
        format!("http://loopback.test:{}/hook", listener.addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}/hook", listener.addr.port()),
    ] {
        let err = out
            .post(&url, &[], body.clone(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Forbidden(_)), "{url}: {err:?}");
        assert!(
            !err.to_string().contains(&listener.addr.port().to_string()),
            "{err}"
        );
    }
    for url in [
        "ftp://example.com/x",
        "http://user:pw@example.com/x",
        "not a url",
    ] {
        let err = out
            .post(url, &[], body.clone(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Forbidden(_)), "{url}: {err:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(listener.connections.load(Ordering::SeqCst), 0);

    // The control: allow-listed, the same listener is reached.
    let response = outbound("127.0.0.1")
        .post(
            &format!("http://{}/hook", listener.addr),
            &[],
            body,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(listener.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_endless_answer_is_read_only_up_to_the_bound() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = socket.read(&mut buf).await;
                let head = "HTTP/1.1 502 Bad Gateway\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 1024, "é".repeat(512));
                // Stops when the client hangs up; bounded so the test cannot run away.
                for _ in 0..100_000 {
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let started = Instant::now();
    let response = outbound("127.0.0.1")
        .post(
            &format!("http://{addr}/"),
            &[("webhook-id".into(), "x".into())],
            Bytes::from_static(b"{}"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status, 502);
    assert_eq!(response.body_head, "é".repeat(BODY_HEAD_BYTES / 2));
}

#[tokio::test]
async fn an_invalid_header_is_refused_before_sending() {
    let listener = counting(
        "127.0.0.1:0",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let url = format!("http://{}/", listener.addr);
    for header in [
        ("bad name".to_owned(), "v".to_owned()),
        ("x-ok".into(), "a\r\nb".into()),
    ] {
        let err = outbound("127.0.0.1")
            .post(&url, &[header], Bytes::new(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Refused(_)), "{err:?}");
    }
    assert_eq!(listener.connections.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------
// email
// ---------------------------------------------------------------------------

fn sink_mailer() -> Option<(Mailer, std::path::PathBuf, std::path::PathBuf)> {
    let (host, port, maildir) = maildir::sink()?;
    let python = webhook::python()?;
    let settings = SmtpSettings {
        host,
        port,
        from: "Stella Alerts <alerts@stella.test>".into(),
        timeout_secs: 10,
        ..SmtpSettings::default()
    };
    Some((Mailer::new(&settings).unwrap(), maildir, python))
}

#[tokio::test]
async fn mail_arrives_with_both_parts_its_subject_and_a_stable_message_id() {
    let Some((mailer, maildir, python)) = sink_mailer() else {
        return;
    };
    let delivery = unique("delivery");
    let subject = "Neue Schwachstelle CVE-2026-1234 in café-api — blockiert";
    let mail = Mail {
        from: None,
        to: vec![
            "Ops Team <ops@example.com>".into(),
            "sec@example.com".into(),
        ],
        subject: subject.into(),
        text: "CVE-2026-1234 (critical) affects café-api:1.4.2.\nVerdict: pass → block\n".into(),
        html: Some(
            "<p><strong>CVE-2026-1234</strong> (critical) affects <code>café-api:1.4.2</code>.</p>"
                .into(),
        ),
        message_id: delivery.clone(),
        headers: vec![
            ("X-Stella-Event".into(), "finding.new".into()),
            ("X-Stella-Delivery".into(), delivery.clone()),
        ],
    };
    let receipt = mailer.send(&mail).await.unwrap();
    assert_eq!(receipt.code, 250);
    assert!(receipt.answer.contains("accepted"), "{}", receipt.answer);
    let message_id = format!("<{delivery}@stella.test>");
    assert_eq!(receipt.message_id, message_id);

    // A wire retry of the same delivery: the same Message-ID, so mail systems can fold it.
    let again = mailer.send(&mail).await.unwrap();
    assert_eq!(again.message_id, message_id);

    let received = maildir::messages_with_id(&python, &maildir, &message_id, 2, WAIT);
    assert_eq!(received.len(), 2, "{received:?}");
    for message in &received {
        assert_eq!(message.message_id, message_id);
        assert_eq!(message.subject, subject);
        assert_eq!(message.content_type, "multipart/alternative");
        assert_eq!(message.envelope_from, "<alerts@stella.test>");
        assert_eq!(message.envelope_to, "ops@example.com, sec@example.com");
        assert_eq!(
            message.header("From"),
            Some("Stella Alerts <alerts@stella.test>")
        );
        assert_eq!(
            message.header("To"),
            Some("Ops Team <ops@example.com>, sec@example.com")
        );
        assert_eq!(message.header("X-Stella-Event"), Some("finding.new"));
        assert!(message.header("Date").is_some());
        assert_eq!(
            message
                .parts
                .iter()
                .map(|p| p.content_type.as_str())
                .collect::<Vec<_>>(),
            ["text/plain", "text/html"]
        );
        assert_eq!(message.part("text/plain"), Some(mail.text.as_str()));
        assert!(message
            .part("text/html")
            .unwrap()
            .contains("<code>café-api:1.4.2</code>"));
    }
}

#[tokio::test]
async fn text_only_mail_is_a_single_part() {
    let Some((mailer, maildir, python)) = sink_mailer() else {
        return;
    };
    let delivery = unique("digest");
    let mail = Mail {
        from: Some("digest@stella.test".into()),
        to: vec!["ops@example.com".into()],
        subject: "Stella digest: 3 events".into(),
        text: "3 events in the last hour\n".into(),
        html: None,
        message_id: format!("<{delivery}@digest.stella.test>"),
        headers: vec![],
    };
    let receipt = mailer.send(&mail).await.unwrap();
    assert_eq!(
        receipt.message_id,
        format!("<{delivery}@digest.stella.test>")
    );
    let received = maildir::messages_with_id(&python, &maildir, &receipt.message_id, 1, WAIT);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].content_type, "text/plain");
    assert_eq!(received[0].parts.len(), 1);
    // A single part ends with the message's own line ends, blank lines no reader sees.
    assert_eq!(
        received[0].part("text/plain").map(str::trim_end),
        Some("3 events in the last hour")
    );
    assert_eq!(received[0].header("MIME-Version"), Some("1.0"));
}

/// An SMTP server that refuses every recipient with `rcpt_answer`.
async fn refusing_smtp(rcpt_answer: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                if write.write_all(b"220 fake ESMTP\r\n").await.is_err() {
                    return;
                }
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let answer = match verb.as_str() {
                        "EHLO" | "HELO" => "250 fake\r\n",
                        "MAIL" | "RSET" | "NOOP" => "250 2.0.0 ok\r\n",
                        "RCPT" => rcpt_answer,
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => "502 5.5.2 not implemented\r\n",
                    };
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn test_mail() -> Mail {
    Mail {
        from: None,
        to: vec!["nobody@example.com".into()],
        subject: "s".into(),
        text: "t".into(),
        html: None,
        message_id: unique("refused"),
        headers: vec![],
    }
}

#[tokio::test]
async fn the_relays_refusals_are_classified_by_their_code() {
    let settings = |port| SmtpSettings {
        port,
        timeout_secs: 5,
        ..SmtpSettings::default()
    };
    let busy = refusing_smtp("450 4.2.1 mailbox busy, try later\r\n").await;
    let err = Mailer::new(&settings(busy))
        .unwrap()
        .send(&test_mail())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.code(), Some(450));
    assert_eq!(err.outcome(), WireOutcome::Retry { after: None });
    assert!(
        err.to_string().contains("450") && err.to_string().contains("mailbox busy"),
        "{err}"
    );

    let unknown = refusing_smtp("550 5.1.1 no such user here\r\n").await;
    let err = Mailer::new(&settings(unknown))
        .unwrap()
        .send(&test_mail())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MailError::Permanent {
                code: Some(550),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.outcome(), WireOutcome::Failed);
    assert!(err.to_string().contains("no such user"), "{err}");

    // Nobody listening: a connection failure is transient and has no code.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = Mailer::new(&settings(port))
        .unwrap()
        .send(&test_mail())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.code(), None);
    assert!(!err.to_string().contains(&port.to_string()), "{err}");
}

// ---------------------------------------------------------------------------
// email over TLS: STARTTLS and implicit TLS to the sink's TLS ports, the relay's
// certificate checked against notify.smtp.ca_file
// ---------------------------------------------------------------------------

fn tls_settings(sink: &maildir::TlsSink, mode: SmtpMode, port: u16) -> SmtpSettings {
    SmtpSettings {
        host: sink.host.clone(),
        port,
        mode,
        from: "Stella Alerts <alerts@stella.test>".into(),
        timeout_secs: 10,
        ca_file: Some(sink.ca_file.clone()),
        ..SmtpSettings::default()
    }
}

#[tokio::test]
async fn mail_arrives_over_starttls_and_implicit_tls_with_both_parts() {
    let (Some(sink), Some(python)) = (maildir::tls_sink(), webhook::python()) else {
        return;
    };
    for (mode, port) in [
        (SmtpMode::Starttls, sink.starttls_port),
        (SmtpMode::Tls, sink.tls_port),
    ] {
        let mailer = Mailer::new(&tls_settings(&sink, mode, port)).unwrap();
        let delivery = unique("tls");
        let mail = Mail {
            subject: format!("Über TLS ({mode:?}): CVE-2026-1234 in café-api"),
            text: "CVE-2026-1234 (critical) affects café-api:1.4.2.\n".into(),
            html: Some(
                "<p><strong>CVE-2026-1234</strong> affects <code>café-api</code></p>".into(),
            ),
            message_id: delivery.clone(),
            ..test_mail()
        };
        let receipt = mailer
            .send(&mail)
            .await
            .unwrap_or_else(|err| panic!("{mode:?} to port {port}: {err}"));
        assert_eq!(receipt.code, 250);
        let received =
            maildir::messages_with_id(&python, &sink.maildir, &receipt.message_id, 1, WAIT);
        assert_eq!(received.len(), 1, "{mode:?}: {received:?}");
        let message = &received[0];
        assert_eq!(message.subject, mail.subject);
        assert_eq!(message.content_type, "multipart/alternative");
        assert_eq!(message.part("text/plain"), Some(mail.text.as_str()));
        assert!(
            message
                .part("text/html")
                .unwrap()
                .contains("<code>café-api</code>"),
            "{message:?}"
        );
        // The sink writes the TLS version of the connection the message came over.
        let tls = message.header("X-Stella-Received-TLS").unwrap_or("");
        assert!(tls.starts_with("TLSv1."), "{mode:?}: received over {tls:?}");
    }
}

#[tokio::test]
async fn starttls_to_a_relay_that_does_not_offer_it_sends_nothing() {
    let (Some(sink), Some((host, plain_port, _))) = (maildir::tls_sink(), maildir::sink()) else {
        return;
    };
    let Some(python) = webhook::python() else {
        return;
    };
    // The plain port offers no STARTTLS: `starttls` must not fall back to the clear.
    let settings = SmtpSettings {
        host,
        ..tls_settings(&sink, SmtpMode::Starttls, plain_port)
    };
    let mail = Mail {
        message_id: unique("no-starttls"),
        ..test_mail()
    };
    let err = Mailer::new(&settings)
        .unwrap()
        .send(&mail)
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert_eq!(err.outcome(), WireOutcome::Failed);
    assert_eq!(err.code(), None);
    assert!(
        err.to_string().contains("does not offer STARTTLS")
            && err.to_string().contains("nothing was sent"),
        "{err}"
    );
    let id = format!("<{}@stella.test>", mail.message_id);
    assert!(
        maildir::messages_with_id(&python, &sink.maildir, &id, 1, Duration::from_secs(1))
            .is_empty(),
        "the message reached the sink in the clear"
    );
}

#[tokio::test]
async fn a_relay_certificate_that_the_configured_ca_did_not_sign_is_refused_visibly() {
    let Some(sink) = maildir::tls_sink() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unrelated = maildir::unrelated_ca(dir.path());
    for (mode, port) in [
        (SmtpMode::Starttls, sink.starttls_port),
        (SmtpMode::Tls, sink.tls_port),
    ] {
        for ca_file in [Some(unrelated.clone()), None] {
            let settings = SmtpSettings {
                ca_file: ca_file.clone(),
                ..tls_settings(&sink, mode, port)
            };
            let err = Mailer::new(&settings)
                .unwrap()
                .send(&test_mail())
                .await
                .unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("failed in TLS") && text.contains("UnknownIssuer"),
                "{mode:?} with {ca_file:?}: {text}"
            );
            // Transient (a relay mid-handshake looks the same); after its attempts the
            // delivery is dead-lettered with this text in every receipt.
            assert!(err.is_transient(), "{err:?}");
        }
    }
}

#[test]
fn a_ca_file_that_cannot_be_used_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    for (path, why) in [
        (&missing, "cannot be read"),
        (&not_pem, "holds no PEM certificate"),
    ] {
        let settings = SmtpSettings {
            mode: SmtpMode::Tls,
            ca_file: Some(path.clone()),
            ..SmtpSettings::default()
        };
        let err = Mailer::new(&settings).unwrap_err();
        assert!(!err.is_transient(), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("notify.smtp.ca_file")
                && text.contains(&path.display().to_string())
                && text.contains(why),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------------------
// secrets at rest
// ---------------------------------------------------------------------------

#[test]
fn the_embedded_key_is_generated_once_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("stella-data");
    let settings = NotifySettings::default();

    // Several processes starting at once end up with one key.
    let boxes: Vec<SecretBox> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| SecretBox::from_settings(&settings, &data_dir).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let key_file = data_dir.join("notify-secrets.key");
    let meta = std::fs::metadata(&key_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert!(boxes.iter().all(|b| b.key_id() == boxes[0].key_id()));
    let leftovers = std::fs::read_dir(&data_dir).unwrap().count();
    assert_eq!(leftovers, 1, "only the key file in the data folder");

    let aad = "tenant-a/channel-7";
    let sealed = boxes[0].seal(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", aad);
    // A restart reads the same key: what was sealed still opens, and the file is unchanged.
    let restarted = SecretBox::from_settings(&settings, &data_dir).unwrap();
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), text);
    assert_eq!(
        restarted.open(&sealed, aad).unwrap().as_slice(),
        b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    );
    // Moved to another channel or tenant, it does not open.
    assert_eq!(
        restarted.open(&sealed, "tenant-a/channel-8"),
        Err(SecretError::Refused)
    );
    assert_eq!(
        restarted.open(&sealed, "tenant-b/channel-7"),
        Err(SecretError::Refused)
    );
    assert!(!format!("{restarted:?}").contains(&text.trim()[..16]));
}

#[test]
fn a_named_key_file_is_used_and_never_generated() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.hex");
    let named = NotifySettings {
        secrets_key_file: Some(key_file.clone()),
        ..NotifySettings::default()
    };
    let err = SecretBox::from_settings(&named, dir.path()).unwrap_err();
    assert!(matches!(err, SecretError::Key(_)), "{err:?}");
    assert!(err.to_string().contains("key.hex"), "{err}");
    assert!(!key_file.exists());
    assert!(!dir.path().join("notify-secrets.key").exists());

    std::fs::write(&key_file, "not hex\n").unwrap();
    let err = SecretBox::from_settings(&named, dir.path()).unwrap_err();
    assert!(err.to_string().contains("64 hex digits"), "{err}");

    std::fs::write(&key_file, format!("{}\n", "ab".repeat(32))).unwrap();
    let from_file = SecretBox::from_settings(&named, dir.path()).unwrap();
    let same = SecretBox::from_key(&[0xab; 32]);
    assert_eq!(from_file.key_id(), same.key_id());
    let sealed = from_file.seal(b"xoxb-slack-token", "t/c");
    assert_eq!(
        same.open(&sealed, "t/c").unwrap().as_slice(),
        b"xoxb-slack-token"
    );
    // Another key cannot open it, and says which key it would need.
    let other = SecretBox::from_key(&[0xcd; 32]);
    assert_eq!(
        other.open(&sealed, "t/c"),
        Err(SecretError::UnknownKey(from_file.key_id().to_owned()))
    );
}
