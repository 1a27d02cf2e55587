//! The local webhook receiver (`ops/webhook_receiver.py`) for tests: started on
//! 127.0.0.1 with an ephemeral port, scripted per test, its attempts read back from its
//! JSON-lines log. It verifies signatures with the PyPI `standardwebhooks` package, run by
//! `$STELLA_TEST_WEBHOOK_PYTHON` (`ops/services.sh up` exports it).
//!
//! Use it from a test crate with `#[path = "support/webhook.rs"] mod webhook;`.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

pub const PYTHON_VAR: &str = "STELLA_TEST_WEBHOOK_PYTHON";

/// The python that has `standardwebhooks`, or `None` (with a message) to skip; with
/// `STELLA_TEST_SERVICES` set, a missing one fails the test.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os(PYTHON_VAR) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!(
                "{PYTHON_VAR} must be set (by ops/services.sh up) when STELLA_TEST_SERVICES is set"
            )
        }
        _ => {
            eprintln!("skipped: {PYTHON_VAR} is not set (run `eval \"$(ops/services.sh up)\"`)");
            None
        }
    }
}

/// One attempt the receiver saw.
#[derive(Debug, Clone, Deserialize)]
pub struct Attempt {
    pub n: u64,
    pub at: String,
    pub path: String,
    pub webhook_id: Option<String>,
    pub webhook_timestamp: Option<String>,
    /// `Some(true)` when the signature verified with one of the secrets, `None` when the
    /// receiver has no secret.
    pub verified: Option<bool>,
    /// Which secret verified it (their order on start).
    pub secret: Option<usize>,
    pub error: Option<String>,
    /// The status the receiver answered (or would have, after a scripted sleep).
    pub answer: u16,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: String,
}

/// A running receiver; stopped when dropped.
#[derive(Debug)]
pub struct Receiver {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Starts a receiver verifying with `secrets` (`whsec_…`) and answering per `script`
    /// (see the script's doc: `[{"status": 500, "times": 2}, {"sleep": 3}]`). `None`
    /// when the test should be skipped.
    pub fn start(secrets: &[&str], script: serde_json::Value) -> Option<Self> {
        let python = python()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("attempts.jsonl");
        let receiver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/webhook_receiver.py");
        let mut command = Command::new(python);
        command
            .arg("-u")
            .arg(&receiver)
            .arg("--log")
            .arg(&log)
            .arg("--script")
            .arg(script.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for secret in secrets {
            command.arg("--secret").arg(secret);
        }
        let mut child = command.spawn().expect("start ops/webhook_receiver.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the receiver's first line");
        let port = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the webhook receiver did not start: {line:?}")
            });
        Some(Self {
            child,
            port,
            log,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every attempt so far, in arrival order.
    pub fn attempts(&self) -> Vec<Attempt> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("a receiver log line"))
            .collect()
    }

    /// The attempts once there are at least `n`, or panics after `within`.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Attempt> {
        let deadline = Instant::now() + within;
        loop {
            let attempts = self.attempts();
            if attempts.len() >= n {
                return attempts;
            }
            assert!(
                Instant::now() < deadline,
                "{} attempts after {within:?}, expected {n}",
                attempts.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Replaces what is left of the script.
    pub fn script(&self, script: &serde_json::Value) {
        use std::io::{Read, Write};
        let body = script.to_string();
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to receiver");
        write!(
            stream,
            "PUT /__script HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send the script");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
