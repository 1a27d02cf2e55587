//! The SMTP sink's Maildir (`ops/smtp_sink.py`, `$STELLA_TEST_MAIL_DIR/new`, one file per
//! message), read back for tests: the messages with a given Message-ID, parsed by Python's
//! `email` package (an independent MIME parser, decoding encoded words as a mail client
//! would) into what a person sees. The sink is shared by every test, so tests find their
//! mail by a Message-ID no other test uses.
//!
//! Use it from a test crate with `#[path = "support/maildir.rs"] mod maildir;`.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The SMTP sink's address and Maildir, or `None` (with a message) to skip; with
/// `STELLA_TEST_SERVICES` set, a missing one fails the test.
pub fn sink() -> Option<(String, u16, PathBuf)> {
    let url = std::env::var("STELLA_TEST_SMTP_URL").ok();
    let dir = std::env::var_os("STELLA_TEST_MAIL_DIR");
    match (url, dir) {
        (Some(url), Some(dir)) => {
            let hostport = url.trim_start_matches("smtp://").trim_end_matches('/');
            let (host, port) = hostport.rsplit_once(':').expect("smtp://host:port");
            Some((host.to_owned(), port.parse().expect("a port"), dir.into()))
        }
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => panic!(
            "STELLA_TEST_SMTP_URL and STELLA_TEST_MAIL_DIR must be set (by ops/services.sh up) \
             when STELLA_TEST_SERVICES is set"
        ),
        _ => {
            eprintln!("skipped: no SMTP sink (run `eval \"$(ops/services.sh up)\"`)");
            None
        }
    }
}

/// The same sink over TLS (`ops/services.sh` runs it on two more ports): its host, the
/// STARTTLS port, the implicit-TLS port, the CA file that signed its certificate and the
/// Maildir; `None` (with a message) to skip, a panic when `STELLA_TEST_SERVICES` is set.
pub struct TlsSink {
    pub host: String,
    pub starttls_port: u16,
    pub tls_port: u16,
    pub ca_file: PathBuf,
    pub maildir: PathBuf,
}

pub fn tls_sink() -> Option<TlsSink> {
    let (host, _, maildir) = sink()?;
    let port = |name: &str| std::env::var(name).ok().and_then(|p| p.parse().ok());
    let starttls = port("STELLA_TEST_SMTP_STARTTLS_PORT");
    let tls = port("STELLA_TEST_SMTP_TLS_PORT");
    let ca = std::env::var_os("STELLA_TEST_SMTP_CA_FILE");
    match (starttls, tls, ca) {
        (Some(starttls_port), Some(tls_port), Some(ca)) => Some(TlsSink {
            host,
            starttls_port,
            tls_port,
            ca_file: ca.into(),
            maildir,
        }),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => panic!(
            "STELLA_TEST_SMTP_STARTTLS_PORT, STELLA_TEST_SMTP_TLS_PORT and \
             STELLA_TEST_SMTP_CA_FILE must be set (by ops/services.sh up) when \
             STELLA_TEST_SERVICES is set"
        ),
        _ => {
            eprintln!("skipped: no TLS SMTP sink (run `eval \"$(ops/services.sh up)\"`)");
            None
        }
    }
}

/// A self-signed CA certificate (PEM) in `dir` that signed nothing the sink serves, made
/// with `openssl` (which `ops/services.sh` needs too).
pub fn unrelated_ca(dir: &Path) -> PathBuf {
    let cert = dir.join("unrelated-ca.pem");
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "1", "-subj", "/CN=Unrelated test CA"])
        .arg("-keyout")
        .arg(dir.join("unrelated-ca.key"))
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    cert
}

/// One stored message as a mail client would show it.
#[derive(Debug, Clone, Deserialize)]
pub struct Received {
    pub file: PathBuf,
    /// The envelope, from the sink's trace headers.
    pub envelope_from: String,
    pub envelope_to: String,
    /// Decoded headers, in order (a name may repeat).
    pub headers: Vec<(String, String)>,
    pub subject: String,
    pub message_id: String,
    pub content_type: String,
    /// `text/plain` and `text/html` parts, decoded, in order, line ends as `\n`.
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    pub content_type: String,
    pub text: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn part(&self, content_type: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.content_type == content_type)
            .map(|p| p.text.as_str())
    }
}

const PARSE: &str = r#"
import email, email.policy, json, sys
out = []
for path in sys.argv[1:]:
    with open(path, "rb") as fh:
        msg = email.message_from_binary_file(fh, policy=email.policy.default)
    parts = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            parts.append({"content_type": part.get_content_type(), "text": part.get_content().replace("\r\n", "\n")})
    out.append({
        "file": path,
        "envelope_from": str(msg.get("Return-Path", "")),
        "envelope_to": str(msg.get("X-Stella-Envelope-To", "")),
        "headers": [[k, str(v)] for k, v in msg.items()],
        "subject": str(msg.get("Subject", "")),
        "message_id": str(msg.get("Message-ID", "")),
        "content_type": msg.get_content_type(),
        "parts": parts,
    })
json.dump(out, sys.stdout)
"#;

/// Every message in `maildir/new` whose Message-ID is `message_id` (with its `<>`),
/// waiting up to `within` for at least `at_least` of them.
pub fn messages_with_id(
    python: &Path,
    maildir: &Path,
    message_id: &str,
    at_least: usize,
    within: Duration,
) -> Vec<Received> {
    let needle = format!("message-id: {}", message_id.to_ascii_lowercase());
    let deadline = Instant::now() + within;
    let files = loop {
        let mut files: Vec<PathBuf> = std::fs::read_dir(maildir.join("new"))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|path| {
                        std::fs::read(path).is_ok_and(|raw| {
                            String::from_utf8_lossy(&raw)
                                .to_ascii_lowercase()
                                .lines()
                                .any(|line| line.trim_end() == needle)
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        if files.len() >= at_least || Instant::now() >= deadline {
            break files;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if files.is_empty() {
        return Vec::new();
    }
    let output = Command::new(python)
        .arg("-c")
        .arg(PARSE)
        .args(&files)
        .output()
        .expect("run python to parse the mail");
    assert!(
        output.status.success(),
        "parsing mail failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the parser's JSON")
}
