//! The outbound guard's matrix: every forbidden range, names that resolve into them,
//! redirects into them, size and time limits, and error texts that reveal nothing about
//! the remote side. Every listener is on 127.0.0.1 and every name is answered by a stub
//! resolver; a refused fetch is checked to have opened no connection at all.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use stella_actors::outbound::{FetchError, HostResolver, Outbound};
use stella_config::OutboundSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Names for the tests, answered without asking any name server.
#[derive(Debug, Default)]
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

fn stub() -> Arc<Stub> {
    let ips = |list: &[&str]| list.iter().map(|s| s.parse().unwrap()).collect::<Vec<_>>();
    Arc::new(Stub(HashMap::from([
        ("loopback.test", ips(&["127.0.0.1"])),
        ("private.test", ips(&["10.0.0.7"])),
        ("metadata.test", ips(&["169.254.169.254"])),
        ("cgnat.test", ips(&["100.64.1.1"])),
        ("v6-loopback.test", ips(&["::1"])),
        ("v6-mapped.test", ips(&["::ffff:127.0.0.1"])),
        ("ula.test", ips(&["fd00::1"])),
        ("mixed.test", ips(&["10.0.0.8", "192.168.0.9"])),
        ("mirror.test", ips(&["127.0.0.1"])),
    ])))
}

/// A listener that answers every request with `response` and counts connections.
struct Listener {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

async fn listen(response: Vec<u8>) -> Listener {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(&response).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Listener { addr, connections }
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn redirect(to: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .into_bytes()
}

fn guard(allow: &str) -> Outbound {
    let settings = OutboundSettings {
        allow_hosts: allow.into(),
        ..OutboundSettings::default()
    };
    Outbound::with_resolver(&settings, stub())
}

fn forbidden(result: Result<stella_actors::outbound::Download, FetchError>) -> String {
    match result {
        Err(FetchError::Forbidden(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn loopback_and_private_targets_are_refused_without_connecting() {
    let secret = listen(ok(r#"{"secret": "metrics"}"#)).await;
    let port = secret.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let outbound = guard("");
    for url in [
        format!("http://127.0.0.1:{port}/metrics"),
        format!("http://127.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.0.0.1:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://172.16.0.1/".to_owned(),
        "http://100.100.100.200/".to_owned(),
        "http://[fd00:ec2::254]/".to_owned(),
        "http://[fe80::1]/".to_owned(),
        format!("http://loopback.test:{port}/"),
        "http://private.test/".to_owned(),
        "http://metadata.test/latest/meta-data/".to_owned(),
        "http://cgnat.test/".to_owned(),
        format!("http://v6-loopback.test:{port}/"),
        format!("http://v6-mapped.test:{port}/"),
        "http://ula.test/".to_owned(),
        "http://mixed.test/".to_owned(),
    ] {
        let message = forbidden(outbound.download(&url, dir.path()).await);
        assert!(message.contains("does not fetch from"), "{url}: {message}");
        assert!(
            !message.contains(&port.to_string()),
            "{url}: the error names the port: {message}"
        );
    }
    // `localhost` through the real system resolver (the hosts file, no name server).
    let system = Outbound::new(&OutboundSettings::default());
    let message = forbidden(
        system
            .download(&format!("http://localhost:{port}/"), dir.path())
            .await,
    );
    assert!(message.contains("loopback"), "{message}");
    assert_eq!(secret.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn only_http_and_https_without_credentials_are_fetched() {
    let outbound = guard("");
    for url in [
        "file:///etc/passwd",
        "ftp://mirror.test/x.zip",
        "gopher://mirror.test:70/",
        "redis://127.0.0.1:6379/",
        "http://user:pw@mirror.test/",
        "not a url",
    ] {
        assert!(
            matches!(outbound.check(url), Err(FetchError::Forbidden(_))),
            "{url}"
        );
    }
}

#[tokio::test]
async fn an_allow_listed_host_is_fetched_and_its_redirects_are_checked_again() {
    let dir = tempfile::tempdir().unwrap();
    let inner = listen(ok(r#"{"inner": true}"#)).await;
    let body = listen(ok(r#"{"id": "X"}"#)).await;
    // `mirror.test` (allow-listed) resolves to 127.0.0.1; nothing else is allowed.
    let outbound = guard("mirror.test");
    let fetched = outbound
        .download(
            &format!("http://mirror.test:{}/all.zip", body.addr.port()),
            dir.path(),
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(fetched.file.path()).unwrap(),
        br#"{"id": "X"}"#
    );
    assert_eq!(fetched.len, 11);

    let port = inner.addr.port();
    for target in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://loopback.test:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://metadata.test/latest/meta-data/".to_owned(),
        "file:///etc/passwd".to_owned(),
    ] {
        let hop = listen(redirect(&target)).await;
        let message = forbidden(
            outbound
                .download(
                    &format!("http://mirror.test:{}/", hop.addr.port()),
                    dir.path(),
                )
                .await,
        );
        assert!(!message.is_empty(), "{target}");
        assert_eq!(hop.connections.load(Ordering::SeqCst), 1, "{target}");
    }
    assert_eq!(
        inner.connections.load(Ordering::SeqCst),
        0,
        "a redirect reached a forbidden address"
    );

    // A redirect chain longer than the limit ends with a refusal, not a loop.
    let settings = OutboundSettings {
        allow_hosts: "mirror.test".into(),
        max_redirects: 2,
        ..OutboundSettings::default()
    };
    let short = Outbound::with_resolver(&settings, stub());
    let third = listen(ok("{}")).await;
    let second = listen(redirect(&format!(
        "http://mirror.test:{}/",
        third.addr.port()
    )))
    .await;
    let first = listen(redirect(&format!(
        "http://mirror.test:{}/",
        second.addr.port()
    )))
    .await;
    let zeroth = listen(redirect(&format!(
        "http://mirror.test:{}/",
        first.addr.port()
    )))
    .await;
    let result = short
        .download(
            &format!("http://mirror.test:{}/", zeroth.addr.port()),
            dir.path(),
        )
        .await;
    assert!(
        matches!(&result, Err(FetchError::Refused(m)) if m.contains("redirects")),
        "{result:?}"
    );
    assert_eq!(third.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bodies_over_the_limit_and_slow_servers_are_cut_off_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(64 * 1024);
    // Declared length over the limit, and the same body without a declared length.
    let declared = listen(ok(&big)).await;
    let chunked =
        listen(format!("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{big}").into_bytes()).await;
    let settings = OutboundSettings {
        allow_hosts: "127.0.0.1".into(),
        max_bytes: 16 * 1024,
        timeout_secs: 1,
        ..OutboundSettings::default()
    };
    let outbound = Outbound::with_resolver(&settings, stub());
    for listener in [&declared, &chunked] {
        let result = outbound
            .download(
                &format!("http://127.0.0.1:{}/", listener.addr.port()),
                dir.path(),
            )
            .await;
        match result {
            Err(FetchError::Refused(message)) => {
                assert!(message.contains("16384 bytes"), "{message}");
                assert!(!message.contains("xxxx"), "{message}");
            }
            other => panic!("expected the size limit, got {other:?}"),
        }
    }

    // A server that accepts and never answers: the fetch ends at the time limit.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let result = outbound
        .download(&format!("http://127.0.0.1:{port}/"), dir.path())
        .await;
    match result {
        Err(FetchError::Transient(message)) => {
            assert!(message.contains("timed out"), "{message}");
            assert!(!message.contains(&port.to_string()), "{message}");
        }
        other => panic!("expected a time-out, got {other:?}"),
    }

    // A client error is final and says only the status; a server error is transient.
    let missing = listen(
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nsecret-ok"
            .to_vec(),
    )
    .await;
    let result = outbound
        .download(
            &format!("http://127.0.0.1:{}/", missing.addr.port()),
            dir.path(),
        )
        .await;
    assert!(
        matches!(&result, Err(FetchError::Refused(m)) if m.contains("404") && !m.contains("secret")),
        "{result:?}"
    );
    // Nothing listens on a closed port: "could not connect", and no port in the text.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let result = outbound
        .download(&format!("http://127.0.0.1:{port}/"), dir.path())
        .await;
    assert!(
        matches!(&result, Err(FetchError::Transient(m)) if !m.contains(&port.to_string())),
        "{result:?}"
    );
}
