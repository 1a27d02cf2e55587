//! Traces across processes: `stella serve` (API only) and two `stella worker`s, each
//! taking other steps of a scan (`--roles analyzer,sealer` and `--roles evaluator`),
//! export their spans over OTLP/HTTP to a local receiver that decodes them with the
//! `opentelemetry-proto` package (`ops/otlp_receiver.py`). One scan is one trace: the
//! API request and the three steps on two other processes, with step names and the
//! tenant as attributes, and no secret anywhere in what was exported.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::crash::Served;

const ADMIN: &str = "crash-test-admin-token-0123456789";

/// The receiver, killed when the test ends.
struct Receiver(std::process::Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spans(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scan_is_one_trace_across_the_api_and_two_workers() {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let python = std::env::var("STELLA_TEST_OTLP_PYTHON")
        .expect("STELLA_TEST_OTLP_PYTHON must be set with the other services");
    let valkey_url = std::env::var("STELLA_VALKEY_URL").expect("STELLA_VALKEY_URL");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("spans.jsonl");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/otlp_receiver.py"))
        .args(["--port", &port.to_string(), "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "listening");
    let _receiver = Receiver(child);

    let served = Served::start_with(
        &db.url,
        &valkey_url,
        [
            ("STELLA_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")),
            // Spans are exported at the level the log enables; the crash clusters log
            // warnings only.
            ("STELLA_LOG", "info".to_owned()),
            // The batch processor's delay (the SDK's own variable): spans arrive in a
            // fraction of a second instead of five.
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ],
        [
            &["worker", "--roles", "analyzer,sealer"],
            &["worker", "--roles", "evaluator"],
        ],
    )
    .await;
    let status = served
        .http
        .post(format!("{}/tenants", served.base))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"id": "acme", "name": "Acme"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 201);
    let sbom = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [{"type": "library", "name": "left-pad", "version": "1.3.0",
                        "purl": "pkg:npm/left-pad@1.3.0", "bom-ref": "left-pad"}]
    });
    let (status, body, text) = served
        .call(reqwest::Method::POST, "/scans?name=traced", Some(sbom))
        .await;
    assert_eq!(status, 202, "{text}");
    let scan = body["job_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body, text) = served
            .call(reqwest::Method::GET, &format!("/scans/{scan}"), None)
            .await;
        if body["status"] == "completed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "scan never completed: {text}{}",
            served.cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The steps' spans, then everything of their trace.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (trace, all) = loop {
        let all = spans(&out);
        let steps: BTreeSet<&str> = all
            .iter()
            .filter(|s| s["attributes"]["job_id"] == scan.as_str())
            .filter_map(|s| s["trace_id"].as_str())
            .collect();
        let names: BTreeSet<&str> = all
            .iter()
            .filter(|s| s["attributes"]["job_id"] == scan.as_str())
            .filter_map(|s| s["name"].as_str())
            .collect();
        if ["analyze", "evaluate", "seal"]
            .iter()
            .all(|n| names.contains(n))
        {
            assert_eq!(
                steps.len(),
                1,
                "the scan's steps are in one trace: {steps:?}"
            );
            let trace = steps.into_iter().next().unwrap().to_owned();
            break (trace, all);
        }
        assert!(
            Instant::now() < deadline,
            "the steps' spans never arrived: {names:?} of {} spans",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let in_trace: Vec<&Value> = all
        .iter()
        .filter(|s| s["trace_id"] == trace.as_str())
        .collect();
    let names: BTreeSet<&str> = in_trace.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(
        names.contains("POST /api/v1/scans"),
        "the API request is the trace's root: {names:?}"
    );
    let processes: BTreeSet<&str> = in_trace
        .iter()
        .filter_map(|s| s["resource"]["service.instance.id"].as_str())
        .collect();
    assert_eq!(processes.len(), 3, "serve and both workers: {processes:?}");
    let commands: BTreeSet<&str> = in_trace
        .iter()
        .filter_map(|s| s["resource"]["stella.command"].as_str())
        .collect();
    assert_eq!(commands, BTreeSet::from(["serve", "worker"]));
    // Each step ran where its role is, with the tenant and the step as attributes, and
    // each has a parent (the request, or the step before).
    let on =
        |step: &str| -> Vec<&&Value> { in_trace.iter().filter(|s| s["name"] == step).collect() };
    for step in ["analyze", "evaluate", "seal"] {
        for span in on(step) {
            assert_eq!(span["attributes"]["tenant"], "acme", "{span}");
            assert_eq!(span["attributes"]["step"], step, "{span}");
            assert_ne!(span["parent_span_id"], "", "{span}");
        }
    }
    // Each step is the child of its delivery's `mailbox.receive`, in the same process,
    // which is itself the child of the sender (the request, or the step before).
    let by_id = |id: &str| in_trace.iter().find(|s| s["span_id"] == id);
    for step in ["analyze", "evaluate", "seal"] {
        for span in on(step) {
            let parent = by_id(span["parent_span_id"].as_str().unwrap())
                .unwrap_or_else(|| panic!("{step}'s parent is not in the trace: {span}"));
            assert_eq!(
                parent["name"], "mailbox.receive",
                "{step}'s parent: {parent}"
            );
            assert_eq!(parent["attributes"]["tenant"], "acme", "{parent}");
            assert_eq!(parent["attributes"]["job_id"], scan.as_str(), "{parent}");
            assert_eq!(
                parent["resource"]["service.instance.id"], span["resource"]["service.instance.id"],
                "received where it ran: {parent}"
            );
            assert_ne!(parent["parent_span_id"], "", "{parent}");
        }
    }
    // Each step's store transactions are its children: starting it, committing it.
    for step in ["analyze", "evaluate", "seal"] {
        let ids: BTreeSet<&str> = on(step)
            .iter()
            .filter_map(|s| s["span_id"].as_str())
            .collect();
        for name in ["store.start", "store.commit"] {
            assert!(
                in_trace.iter().any(|s| s["name"] == name
                    && ids.contains(s["parent_span_id"].as_str().unwrap_or(""))),
                "{step} has no {name} child: {names:?}"
            );
        }
    }
    let instance = |step: &str| on(step)[0]["resource"]["service.instance.id"].clone();
    assert_eq!(instance("analyze"), instance("seal"));
    assert_ne!(instance("analyze"), instance("evaluate"));
    // No secret left the processes: not the token, not the database URL.
    let exported = std::fs::read_to_string(&out).unwrap();
    assert!(!exported.contains(ADMIN), "the admin token was exported");
    assert!(!exported.contains(&db.url), "the database URL was exported");
    db.finish().await;
}
