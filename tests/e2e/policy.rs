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

const BAN_LEFT_PAD: &str = "name = \"baseline\"\nversion = 1\n[[rules]]\nid = \"no-left-pad\"\n\
                            when = { packages = [\"pkg:npm/left-pad\"] }\noutcome = \"block\"\n\
                            because = \"left-pad is banned\"\n";

/// The latest scan of a tenant's target `web`, once its disposition is `want`.
async fn web_scan(server: &Server, token: &str, want: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let target = server
            .call(Method::GET, "/api/v1/targets/web", Some(token), None, None)
            .await;
        assert_eq!(target.status, 200, "{}", target.text);
        if let Some(scan_id) = target.body["last_scan_id"].as_str() {
            let scan = server
                .call(
                    Method::GET,
                    &format!("/api/v1/scans/{scan_id}/findings"),
                    Some(token),
                    None,
                    None,
                )
                .await;
            let status = server
                .call(
                    Method::GET,
                    &format!("/api/v1/scans/{scan_id}"),
                    Some(token),
                    None,
                    None,
                )
                .await;
            if status.body["disposition"] == want {
                return json!({"scan": status.body, "findings": scan.body});
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "web never became {want}: {}",
            target.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn rollout_state(server: &Server, id: &str, want: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let reply = server
            .admin(Method::GET, &format!("/api/v1/rollouts/{id}"), None)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if reply.body["state"] == want {
            return reply.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rollout never became {want}: {}",
            reply.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A pack reaches a tenant only through a rollout, on a whole server (its scheduler on
/// the real clock): the tenant's shadow diff shows what the pack would block before
/// anything is enforced; the rollout shadows, gates and activates its wave, the
/// tenant's target is re-evaluated with the pack's rule in the trace; a tenant sees only
/// its own part of the rollout; aborting rolls the tenant back and its verdict returns.
#[actix_web::test]
async fn a_pack_reaches_a_tenant_through_a_rollout_and_each_tenant_sees_only_its_part() {
    let server = start(|s| s.scheduler.poll_interval_ms = 50).await;
    server.create_tenant("acme").await;
    server.create_tenant("other").await;
    let advisory = json!([{
        "id": "T-PAD", "modified": "2024-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.1"}]}]}]
    }]);
    let reply = crate::scans::post_bytes(
        &server,
        crate::api::ADMIN,
        "/advisories/imports?source=osv:test",
        "application/json",
        advisory.to_string().into_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let scopes = ["scans:read", "scans:write", "policy:read", "schedules:read"];
    let (_, acme) = server.token("acme", &scopes).await;
    let (_, other) = server.token("other", &scopes).await;
    for token in [&acme, &other] {
        let scan = crate::scans::scan_of(
            &server,
            token,
            crate::scans::tiny_sbom(),
            &[("target", "web")],
        )
        .await;
        crate::scans::wait_scan(&server, token, &scan, "completed").await;
    }
    let before = web_scan(&server, &acme, "warn").await;

    let reply = server
        .admin(
            Method::POST,
            "/api/v1/policy-packs",
            Some(json!({"name": "baseline", "document": BAN_LEFT_PAD})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["version"], 1);
    let reply = server
        .admin(
            Method::POST,
            "/api/v1/policy-packs",
            Some(json!({"name": "Bad Name", "document": BAN_LEFT_PAD})),
        )
        .await;
    assert_problem(&reply, 400, "a bad pack name");

    // In shadow: the pack would block acme's scan; nothing is enforced.
    let reply = server
        .call(
            Method::GET,
            "/api/v1/policy/diff?pack=baseline@1",
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let diff = reply.body;
    assert_eq!(diff["summary"]["scans"], 1, "{diff}");
    assert_eq!(diff["summary"]["newly_blocked_scans"], 1, "{diff}");
    let finding = &diff["scans"][0]["findings"][0];
    assert_eq!(finding["change"], "changed", "{diff}");
    assert_eq!(finding["old"]["disposition"], "warn");
    assert_eq!(finding["new"]["disposition"], "block");
    let last = finding["new"]["trace"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["by"], &last["pack"]),
        (&json!("rule:no-left-pad"), &json!("baseline@1"))
    );
    assert_eq!(active(&server, &acme).await["pack"], Value::Null);

    // Refused rollouts say where.
    for (body, at) in [
        (
            json!({"pack": "baseline", "version": 1, "waves": [{"tenants": ["nobody"]}], "reason": "x"}),
            "/waves/0/tenants/0",
        ),
        (
            json!({"pack": "baseline", "version": 9, "waves": [{"tenants": ["acme"]}], "reason": "x"}),
            "version",
        ),
        (
            json!({"pack": "baseline", "version": 1, "waves": [{"percent": 150}], "reason": "x"}),
            "/waves/0/percent",
        ),
    ] {
        let reply = server
            .admin(Method::POST, "/api/v1/rollouts", Some(body))
            .await;
        assert_problem(&reply, 400, "a bad rollout");
        assert_eq!(reply.body["location"], at, "{}", reply.text);
    }
    // The wave selects by label.
    let reply = server
        .admin(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(json!({"labels": {"Tier": "gold"}})),
        )
        .await;
    assert_problem(&reply, 400, "a label key with capitals");
    assert_eq!(reply.body["location"], "labels", "{}", reply.text);
    let reply = server
        .admin(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(json!({"labels": {"tier": "gold", "env": "prod"}})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["labels"]["tier"], "gold");
    let reply = server
        .admin(
            Method::POST,
            "/api/v1/rollouts",
            Some(json!({
                "pack": "baseline", "version": 1,
                "waves": [{"labels": {"tier": "gold"}}],
                "gate": {"max_newly_blocked_percent": 100.0, "min_scans": 1},
                "bake_seconds": 0,
                "reason": "ban left-pad everywhere"
            })),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let done = rollout_state(&server, &id, "completed").await;
    assert_eq!(done["waves"][0]["state"], "done", "{done}");
    let members: Vec<&Value> = done["waves"][0]["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["tenant"])
        .collect();
    assert_eq!(
        members,
        [&json!("acme")],
        "only the labelled tenant: {done}"
    );
    assert_eq!(
        done["waves"][0]["summary"]["newly_blocked_scans"], 1,
        "{done}"
    );
    let actions: Vec<&str> = done["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "created",
            "wave.started",
            "gate.passed",
            "activated",
            "completed"
        ]
    );
    assert_eq!(active(&server, &acme).await["pack"]["name"], "baseline");
    assert_eq!(active(&server, &other).await["pack"], Value::Null);

    // Enforced: acme's target is re-evaluated and blocks by the pack's rule.
    let blocked = web_scan(&server, &acme, "block").await;
    assert!(
        blocked["findings"].to_string().contains("rule:no-left-pad"),
        "{blocked}"
    );
    // Each tenant sees its own part only.
    let mine = server
        .call(
            Method::GET,
            &format!("/api/v1/rollouts/{id}"),
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(
        mine.body["waves"][0]["tenants"].as_array().unwrap().len(),
        1
    );
    assert!(mine.body.get("transitions").is_none(), "{}", mine.text);
    for path in [
        format!("/api/v1/rollouts/{id}"),
        format!("/api/v1/rollouts/{id}/tenants/acme/diff"),
    ] {
        let reply = server
            .call(Method::GET, &path, Some(&other), None, None)
            .await;
        assert_problem(&reply, 404, &path);
    }
    let reply = server
        .call(
            Method::GET,
            &format!("/api/v1/rollouts/{id}/tenants/acme/diff"),
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["summary"]["newly_blocked_scans"], 1);

    // Aborted: rolled back, and the verdict returns to the one before, finding by finding.
    let reply = server
        .admin(
            Method::POST,
            &format!("/api/v1/rollouts/{id}/abort"),
            Some(json!({"reason": ""})),
        )
        .await;
    assert_problem(&reply, 400, "an abort without a reason");
    let reply = server
        .admin(
            Method::POST,
            &format!("/api/v1/rollouts/{id}/abort"),
            Some(json!({"reason": "left-pad is needed after all"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    rollout_state(&server, &id, "rolled_back").await;
    assert_eq!(active(&server, &acme).await["pack"], Value::Null);
    let after = web_scan(&server, &acme, "warn").await;
    assert_eq!(after["findings"]["items"], before["findings"]["items"]);

    // Shadow evaluations are counted apart from scans, by where they came from.
    let metrics = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "stella_shadow_scans_total{outcome=\"newly_blocked\",source=\"diff\"} 1",
        "stella_shadow_scans_total{outcome=\"newly_blocked\",source=\"rollout\"} 1",
        "stella_shadow_tenant_seconds_count{source=\"rollout\"}",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
}
