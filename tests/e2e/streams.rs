//! Live progress over Server-Sent Events, as a browser's `EventSource` reads it: a job's
//! state changes in order, each once, resumable with `Last-Event-ID`, heartbeats while
//! idle, an `end` event when the job finishes; the tenant's events as they happen; the
//! tenancy wall, the per-tenant stream limit and the open-streams gauge.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use crate::binary::CliServer;

/// One frame of an event stream: its id, event name and data, or a comment.
#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Event {
        id: Option<i64>,
        name: String,
        data: serde_json::Value,
    },
    Comment(String),
}

/// Reads frames until `stop` says so (or the stream closes), at most `limit` long.
fn read_frames(
    response: reqwest::blocking::Response,
    limit: Duration,
    mut stop: impl FnMut(&Frame) -> bool,
) -> Vec<Frame> {
    let started = Instant::now();
    let mut frames = Vec::new();
    let mut lines = BufReader::new(response).lines();
    let (mut id, mut name, mut data) = (None, String::new(), String::new());
    while started.elapsed() < limit {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(text) = line.strip_prefix(':') {
            frames.push(Frame::Comment(text.trim().to_owned()));
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = v.parse().ok();
            continue;
        } else if let Some(v) = line.strip_prefix("event: ") {
            name = v.to_owned();
            continue;
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
            continue;
        } else if line.is_empty() && !name.is_empty() {
            frames.push(Frame::Event {
                id: id.take(),
                name: std::mem::take(&mut name),
                data: serde_json::from_str(&std::mem::take(&mut data)).unwrap(),
            });
        } else {
            continue;
        }
        if frames.last().is_some_and(&mut stop) {
            break;
        }
    }
    frames
}

fn open(
    server: &CliServer,
    tenant: &str,
    path: &str,
    last_event_id: Option<i64>,
) -> reqwest::blocking::Response {
    let mut request = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap()
        .get(format!("{}/api/v1{path}", server.url()))
        .bearer_auth(server.admin())
        .header("X-Stella-Tenant", tenant)
        .header("Accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    request.send().unwrap()
}

fn states(frames: &[Frame]) -> Vec<(i64, String)> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Event {
                id: Some(id),
                name,
                data,
            } if name == "state" => Some((*id, data["state"].as_str().unwrap().to_owned())),
            _ => None,
        })
        .collect()
}

fn open_streams(server: &CliServer) -> String {
    let text = reqwest::blocking::get(format!("{}/metrics", server.url()))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("stella_api_open_streams{"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn job_streams_send_each_change_once_resume_and_end_and_events_arrive_live() {
    let server = CliServer::start_with_config(
        "[api]\nstream_heartbeat_secs = 1\nmax_streams_per_tenant = 3\n",
    );
    for tenant in ["acme", "globex"] {
        server.ok(&["tenants", "create", tenant, "--name", tenant]);
    }
    // The tenant's events, from now on, read alongside.
    let events = open(&server, "acme", "/events/stream", None);
    assert_eq!(events.status(), 200);
    assert!(events.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events_reader = std::thread::spawn(move || {
        read_frames(
            events,
            Duration::from_secs(60),
            |f| matches!(f, Frame::Event { name, .. } if name == "scan.completed"),
        )
    });

    // A job that sleeps 2.5 s: the stream follows it to the end, with heartbeats meanwhile.
    let submitted: serde_json::Value = serde_json::from_str(&server.ok(&[
        "--output",
        "json",
        "--tenant",
        "acme",
        "jobs",
        "submit",
        "--kind",
        "noop",
        "--params",
        r#"{"sleep_ms": 2500}"#,
    ]))
    .unwrap();
    let id = submitted["id"].as_str().unwrap().to_owned();
    let path = format!("/jobs/{id}/stream");
    let frames = read_frames(
        open(&server, "acme", &path, None),
        Duration::from_secs(60),
        |_| false,
    );
    let seen = states(&frames);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{frames:?}");
    assert_eq!(seen.first().unwrap().1, "queued", "{frames:?}");
    assert!(seen.iter().any(|(_, s)| s == "running"), "{frames:?}");
    assert_eq!(seen.last().unwrap().1, "succeeded", "{frames:?}");
    assert!(
        frames.contains(&Frame::Comment("heartbeat".into())),
        "no heartbeat while the job slept: {frames:?}"
    );
    match frames.last().unwrap() {
        Frame::Event { name, data, .. } => {
            assert_eq!(name, "end");
            assert_eq!(data["state"], "succeeded");
        }
        other => panic!("the stream did not end with `end`: {other:?}"),
    }
    // The same history as the job's own record of its events.
    let job: serde_json::Value = serde_json::from_str(
        &server.ok(&["--output", "json", "--tenant", "acme", "jobs", "get", &id]),
    )
    .unwrap();
    let recorded: Vec<(i64, String)> = job["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["to_state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(recorded, seen);

    // Resumed after the first event: the rest, nothing twice.
    let resumed = states(&read_frames(
        open(&server, "acme", &path, Some(seen[0].0)),
        Duration::from_secs(30),
        |_| false,
    ));
    assert_eq!(resumed, seen[1..].to_vec());

    // Another tenant cannot follow acme's job.
    let other = open(&server, "globex", &path, None);
    assert_eq!(other.status(), 404);

    // A scan's progress, and its `scan.completed` on the tenant's events stream.
    // A Go application and the Go advisories: findings for the export below.
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let advisories = data.join("advisories/Go-all.zip");
    server.ok(&["advisories", "import", advisories.to_str().unwrap()]);
    let sbom = data.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json");
    // `stella events --follow` prints it too, one JSON object per line.
    let mut follower = server
        .command(&[
            "--output",
            "json",
            "--tenant",
            "acme",
            "events",
            "--follow",
            "--kind",
            "scan.completed",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let follower_out = follower.stdout.take().unwrap();
    let followed = std::thread::spawn(move || {
        BufReader::new(follower_out)
            .lines()
            .next()
            .map(|l| l.unwrap())
    });
    // The follower is connected once the server counts its stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !open_streams(&server).contains("stella_api_open_streams{stream=\"events\"} 2") {
        assert!(Instant::now() < deadline, "{}", open_streams(&server));
        std::thread::sleep(Duration::from_millis(100));
    }
    let scan: serde_json::Value = serde_json::from_str(&server.ok(&[
        "--output",
        "json",
        "--tenant",
        "acme",
        "scan",
        sbom.to_str().unwrap(),
    ]))
    .unwrap();
    let scan_id = scan["job_id"].as_str().unwrap();
    let scan_frames = read_frames(
        open(&server, "acme", &format!("/scans/{scan_id}/stream"), None),
        Duration::from_secs(60),
        |_| false,
    );
    let steps: Vec<&str> = scan_frames
        .iter()
        .filter_map(|f| match f {
            Frame::Event { name, data, .. } if name == "state" => data["step"].as_str(),
            _ => None,
        })
        .collect();
    assert!(steps.contains(&"seal"), "{scan_frames:?}");
    let live = events_reader.join().unwrap();
    let completed = live
        .iter()
        .find_map(|f| match f {
            Frame::Event { id, name, data } if name == "scan.completed" => Some((id, data)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no scan.completed on the events stream: {live:?}"));
    assert!(completed.0.is_some());
    assert_eq!(completed.1["payload"]["scan_id"], scan_id);
    let line = followed
        .join()
        .unwrap()
        .expect("stella events --follow printed nothing");
    let printed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(printed["kind"], "scan.completed", "{line}");
    assert_eq!(printed["payload"]["scan_id"], scan_id, "{line}");
    follower.kill().unwrap();
    follower.wait().unwrap();

    // An export run of that scan: its steps, its items written of its total moving up to
    // the total, then `end`.
    server.ok(&[
        "--tenant", "acme", "export", "profiles", "create", "shop", "--scans", scan_id,
    ]);
    let run: serde_json::Value = serde_json::from_str(&server.ok(&[
        "--output", "json", "--tenant", "acme", "export", "run", "shop",
    ]))
    .unwrap();
    let export_id = run["export_id"].as_str().unwrap();
    let export_frames = read_frames(
        open(
            &server,
            "acme",
            &format!("/exports/{export_id}/stream"),
            None,
        ),
        Duration::from_secs(60),
        |_| false,
    );
    let progress: Vec<(u64, u64)> = export_frames
        .iter()
        .filter_map(|f| match f {
            Frame::Event { name, data, .. } if name == "progress" => Some((
                data["items_done"].as_u64().unwrap(),
                data["items_total"].as_u64().unwrap(),
            )),
            _ => None,
        })
        .collect();
    let (done, total) = *progress
        .last()
        .unwrap_or_else(|| panic!("{export_frames:?}"));
    assert!(total > 0 && done == total, "{progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "{progress:?}"
    );
    assert!(
        matches!(export_frames.last(), Some(Frame::Event { name, data, .. })
            if name == "end" && data["state"] == "succeeded"),
        "{export_frames:?}"
    );

    // At most three streams per tenant: the fourth is refused; closed ones are counted
    // down in the gauge (the server sees a client leave at its next write, a heartbeat
    // at the latest).
    let closed = |server: &CliServer| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !open_streams(server).contains("stella_api_open_streams{stream=\"events\"} 0") {
            assert!(Instant::now() < deadline, "{}", open_streams(server));
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    closed(&server);
    let held: Vec<_> = (0..3)
        .map(|_| open(&server, "acme", "/events/stream", None))
        .collect();
    assert!(held.iter().all(|r| r.status() == 200));
    assert!(open_streams(&server).contains("stella_api_open_streams{stream=\"events\"} 3"));
    let refused = open(&server, "acme", "/events/stream", None);
    assert_eq!(refused.status(), 429);
    drop(held);
    closed(&server);
}

/// Sends `body` to the API as the administrator, acting on `tenant` if given.
fn admin_call(
    server: &CliServer,
    method: reqwest::Method,
    tenant: Option<&str>,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::blocking::Client::new()
        .request(method, format!("{}/api/v1{path}", server.url()))
        .bearer_auth(server.admin())
        .json(&body);
    if let Some(tenant) = tenant {
        request = request.header("X-Stella-Tenant", tenant);
    }
    let reply = request.send().unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().unwrap_or_default())
}

/// The `state` events' ids and the named field of their data.
fn snapshots(frames: &[Frame], field: &str) -> Vec<(i64, String)> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Event {
                id: Some(id),
                name,
                data,
            } if name == "state" => Some((*id, data[field].as_str().unwrap_or("").to_owned())),
            _ => None,
        })
        .collect()
}

#[test]
fn run_and_rollout_streams_send_the_whole_view_when_it_changes_and_end() {
    let server = CliServer::start_with_config("[api]\nstream_heartbeat_secs = 1\n");
    for tenant in ["acme", "globex"] {
        server.ok(&["tenants", "create", tenant, "--name", tenant]);
    }

    // A schedule run with no targets: planned, then completed at once.
    let (status, body) = admin_call(
        &server,
        reqwest::Method::POST,
        Some("acme"),
        "/schedules",
        serde_json::json!({"name": "nightly", "cron": "@daily"}),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin_call(
        &server,
        reqwest::Method::POST,
        Some("acme"),
        "/schedules/nightly/run",
        serde_json::Value::Null,
    );
    assert_eq!(status, 202, "{body}");
    let run = body["id"].as_str().unwrap().to_owned();
    let path = format!("/runs/{run}/stream");
    let frames = read_frames(
        open(&server, "acme", &path, None),
        Duration::from_secs(60),
        |_| false,
    );
    let seen = snapshots(&frames, "state");
    assert!(!seen.is_empty(), "{frames:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{frames:?}");
    assert_eq!(seen.last().unwrap().1, "completed", "{frames:?}");
    // Each state comes with the run's progress: no targets, nothing to do.
    assert!(
        frames.iter().any(|f| matches!(f,
        Frame::Event { name, data, .. } if name == "progress" && data["items_total"] == 0)),
        "{frames:?}"
    );
    match frames.last().unwrap() {
        Frame::Event { name, data, .. } => {
            assert_eq!(name, "end");
            assert_eq!(data["state"], "completed");
        }
        other => panic!("the run's stream did not end with `end`: {other:?}"),
    }
    // The last state is the run as `GET /runs/{id}` shows it.
    let (_, shown) = admin_call(
        &server,
        reqwest::Method::GET,
        Some("acme"),
        &format!("/runs/{run}"),
        serde_json::Value::Null,
    );
    let last_view = frames
        .iter()
        .rev()
        .find_map(|f| match f {
            Frame::Event { name, data, .. } if name == "state" => Some(data.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_view, shown);
    // Resumed after the last state: nothing again but the end.
    let resumed = read_frames(
        open(&server, "acme", &path, Some(seen.last().unwrap().0)),
        Duration::from_secs(30),
        |_| false,
    );
    assert!(snapshots(&resumed, "state").is_empty(), "{resumed:?}");
    assert!(matches!(resumed.last(), Some(Frame::Event { name, .. }) if name == "end"));
    // Another tenant's run is missing.
    assert_eq!(open(&server, "globex", &path, None).status(), 404);

    // A rollout, followed by the administrator until it is aborted and rolled back.
    let (status, body) = admin_call(
        &server,
        reqwest::Method::POST,
        None,
        "/policy-packs",
        serde_json::json!({"name": "baseline", "document": "name = \"baseline\"\nversion = 1\n[[rules]]\nid = \"no-left-pad\"\nwhen = { packages = [\"pkg:npm/left-pad\"] }\noutcome = \"block\"\nbecause = \"left-pad is banned\"\n"}),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin_call(
        &server,
        reqwest::Method::POST,
        None,
        "/rollouts",
        serde_json::json!({"pack": "baseline", "version": 1, "waves": [{"tenants": ["acme"]}],
                           "bake_seconds": 3600, "reason": "ban left-pad"}),
    );
    assert_eq!(status, 201, "{body}");
    let rollout = body["id"].as_str().unwrap().to_owned();
    let path = format!("/rollouts/{rollout}/stream");
    let follow = {
        let response = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap()
            .get(format!("{}/api/v1{path}", server.url()))
            .bearer_auth(server.admin())
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        std::thread::spawn(move || read_frames(response, Duration::from_secs(90), |_| false))
    };
    std::thread::sleep(Duration::from_secs(1));
    let (status, body) = admin_call(
        &server,
        reqwest::Method::POST,
        None,
        &format!("/rollouts/{rollout}/abort"),
        serde_json::json!({"reason": "the canary blocks too much"}),
    );
    assert!((200..300).contains(&status), "{status} {body}");
    let frames = follow.join().unwrap();
    let seen = snapshots(&frames, "state");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{frames:?}");
    assert_eq!(seen.first().unwrap().1, "running", "{frames:?}");
    assert_eq!(seen.last().unwrap().1, "rolled_back", "{frames:?}");
    assert!(
        matches!(frames.last(), Some(Frame::Event { name, data, .. })
        if name == "end" && data["state"] == "rolled_back"),
        "{frames:?}"
    );
    // A tenant outside the rollout does not see it.
    let globex = serde_json::from_str::<serde_json::Value>(&server.ok(&[
        "tokens",
        "create",
        "--for-tenant",
        "globex",
        "--name",
        "g",
        "--scopes",
        "policy:read",
        "--output",
        "json",
    ]))
    .unwrap();
    let outside = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1{path}", server.url()))
        .bearer_auth(globex["token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(outside.status(), 404);
}
