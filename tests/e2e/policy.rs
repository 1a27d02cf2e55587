//! The policy lifecycle as its people meet it: an author drafts and submits, a reviewer
//! sends back or approves, an operator activates; the identity that submitted a version
//! never approves it, every illegal move is a 403 or 409 problem, every transition is
//! kept with who and why, and only the active version decides scans.

use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{assert_problem, start, Reply, Server};

const STRICT: &str = "name = \"strict\"\nversion = 2\ndefault = \"block\"\nrules = []\n";

async fn act(server: &Server, token: &str, version: u64, action: &str, reason: &str) -> Reply {
    server
        .call(
            Method::POST,
            &format!("/api/v1/policy/versions/{version}/{action}"),
            Some(token),
            None,
            Some(json!({ "reason": reason })),
        )
        .await
}

async fn active(server: &Server, token: &str) -> Value {
    let reply = server
        .call(Method::GET, "/api/v1/policy", Some(token), None, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

#[actix_web::test]
async fn the_lifecycle_separates_duties_and_refuses_every_illegal_move() {
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    server.create_tenant("other").await;
    let reader = ["policy:read"];
    let (_, alice) = server
        .token_named("acme", "alice", &["policy:read", "policy:author"])
        .await;
    // The same identity under another token, holding the approval scope.
    let (_, alice_approver) = server
        .token_named("acme", "alice", &["policy:read", "policy:approve"])
        .await;
    let (_, bob) = server
        .token_named(
            "acme",
            "bob",
            &["policy:read", "policy:review", "policy:approve"],
        )
        .await;
    let (_, carol) = server
        .token_named("acme", "carol", &["policy:read", "policy:operate"])
        .await;
    let (_, outsider) = server
        .token_named(
            "other",
            "mallory",
            &[
                "policy:read",
                "policy:author",
                "policy:approve",
                "policy:operate",
            ],
        )
        .await;
    let (_, read_only) = server.token_named("acme", "reader", &reader).await;

    // A draft changes nothing a scan sees.
    let reply = server
        .call(
            Method::POST,
            "/api/v1/policy/versions",
            Some(&alice),
            None,
            Some(json!({ "document": STRICT })),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(
        reply.headers["location"].to_str().unwrap(),
        "/api/v1/policy/versions/1"
    );
    assert_eq!(reply.body["status"], "draft");
    assert_eq!(active(&server, &alice).await["default"], true);

    // Scopes: each move needs its own.
    let reply = act(&server, &read_only, 1, "submit", "").await;
    assert_problem(&reply, 403, "submit without policy:author");
    let reply = act(&server, &alice, 1, "approve", "").await;
    assert_problem(&reply, 403, "approve without policy:approve");

    // Illegal moves of a draft are conflicts that name its status.
    for action in ["approve", "activate", "request-changes"] {
        let reply = act(&server, &bob_or_carol(&bob, &carol, action), 1, action, "x").await;
        assert_problem(&reply, 409, &format!("{action} a draft"));
        assert!(
            reply.body["detail"].as_str().unwrap().contains("is draft"),
            "{}",
            reply.text
        );
    }

    let reply = act(&server, &alice, 1, "submit", "ready for review").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "submitted");
    assert_eq!(reply.body["submitted_by"], "alice");

    // The submitter cannot approve, whatever token it uses.
    let reply = act(&server, &alice_approver, 1, "approve", "").await;
    assert_problem(&reply, 403, "the submitter approving");
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("separation of duties"),
        "{}",
        reply.text
    );
    // A submitted version is not active yet either.
    let reply = act(&server, &carol, 1, "activate", "").await;
    assert_problem(&reply, 409, "activate a submitted version");

    // Request changes needs a reason, then sends it back to draft.
    let reply = act(&server, &bob, 1, "request-changes", "  ").await;
    assert_problem(&reply, 400, "request changes without a reason");
    assert_eq!(reply.body["location"], "reason");
    let reply = act(
        &server,
        &bob,
        1,
        "request-changes",
        "say why default is block",
    )
    .await;
    assert_eq!(reply.body["status"], "draft", "{}", reply.text);
    assert_eq!(reply.body["submitted_by"], Value::Null);

    assert_eq!(
        act(&server, &alice, 1, "submit", "explained").await.status,
        200
    );
    let reply = act(&server, &bob, 1, "approve", "agreed").await;
    assert_eq!(reply.body["status"], "approved", "{}", reply.text);
    assert_eq!(reply.body["approved_by"], "bob");
    assert_eq!(
        active(&server, &alice).await["default"],
        true,
        "approved is not active"
    );

    // Another tenant cannot see or move it.
    let reply = act(&server, &outsider, 1, "activate", "").await;
    assert_problem(&reply, 404, "another tenant activating");
    let reply = server
        .call(
            Method::GET,
            "/api/v1/policy/versions/1",
            Some(&outsider),
            None,
            None,
        )
        .await;
    assert_problem(&reply, 404, "another tenant reading");

    let reply = act(&server, &carol, 1, "activate", "rollout window").await;
    assert_eq!(reply.body["status"], "active", "{}", reply.text);
    let now_active = active(&server, &read_only).await;
    assert_eq!(now_active["version"], 1);
    assert_eq!(now_active["default"], false);
    // An active version is not archived by hand: another one supersedes it.
    let reply = act(&server, &alice, 1, "archive", "").await;
    assert_problem(&reply, 409, "archive the active version");

    // The history: every transition with who and why.
    let reply = server
        .call(
            Method::GET,
            "/api/v1/policy/versions/1",
            Some(&read_only),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let history: Vec<(Value, Value, Value, Value)> = reply.body["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].clone(),
                t["to"].clone(),
                t["identity"].clone(),
                t["reason"].clone(),
            )
        })
        .collect();
    let row =
        |from: Value, to: &str, who: &str, why: &str| (from, json!(to), json!(who), json!(why));
    assert_eq!(
        history,
        [
            row(Value::Null, "draft", "alice", ""),
            row(json!("draft"), "submitted", "alice", "ready for review"),
            row(
                json!("submitted"),
                "draft",
                "bob",
                "say why default is block"
            ),
            row(json!("draft"), "submitted", "alice", "explained"),
            row(json!("submitted"), "approved", "bob", "agreed"),
            row(json!("approved"), "active", "carol", "rollout window"),
        ]
    );
    // The activation told the scheduler (the event tenants read).
    let reply = server
        .call(
            Method::GET,
            "/api/v1/events?kind=policy.updated",
            Some(&server.token("acme", &["scans:read"]).await.1),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        reply.text
    );
    // And the audit log has each call, by its caller.
    let audit = server
        .admin(Method::GET, "/api/v1/audit?limit=500", None)
        .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["details"]["status"] == 200)
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.contains("policy"))
        .collect();
    for action in [
        "submit_policy_version",
        "request_policy_changes",
        "approve_policy_version",
        "activate_policy_version",
    ] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
    server.handle.stop(true).await;
}

fn bob_or_carol(bob: &str, carol: &str, action: &str) -> String {
    if action == "activate" { carol } else { bob }.to_owned()
}
