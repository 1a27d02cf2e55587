//! The relational store's contract, run against SQLite and PostgreSQL alike.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use sqlx::Row;
use stella_store::repo::{
    AuditEntry, Effect, JobFilter, JobState, NewExportProfile, NewJob, NewMessage, NewToken,
    TenantStatus, Transition,
};
use stella_store::{JobId, Store, StoreError, TenantId};

use common::TestDb;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

async fn with_tenants(store: &Store, ids: &[&str]) {
    for id in ids {
        store.tenants().create(&tenant(id), id, t0()).await.unwrap();
    }
}

fn noop_job(key: Option<&str>) -> NewJob {
    NewJob {
        kind: "noop".into(),
        step: "run".into(),
        params: json!({"sleep_ms": 0}),
        max_attempts: 5,
        idempotency_key: key.map(str::to_owned),
    }
}

fn message(key: &str) -> NewMessage {
    NewMessage {
        role: "worker".into(),
        kind: "noop.run".into(),
        payload: json!({"k": key}),
        idempotency_key: key.into(),
        attempt: 0,
        not_before: t0(),
        trace: None,
    }
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = crate::common::sqlite().await;
                    super::$test(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(db) = crate::common::postgres().await else { return };
                    super::$test(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

conformance!(
    migrations_are_idempotent,
    tenants_are_created_listed_renamed_and_disabled,
    tokens_are_hashed_at_rest_and_authenticate_only_while_active,
    admin_tokens_are_separate_from_tenant_tokens,
    submit_commits_the_job_with_its_first_message,
    idempotent_submit_returns_the_first_job_once,
    concurrent_submits_with_one_key_create_one_job,
    transitions_follow_the_state_machine_and_record_history,
    a_stale_transition_conflicts_and_changes_nothing,
    only_one_of_many_racing_workers_claims_a_job,
    tenant_data_is_invisible_to_other_tenants,
    outbox_relays_in_order_across_tenants,
    idempotency_keys_are_claimed_once_per_tenant,
    audit_log_is_append_only_and_filterable,
    job_lists_page_through_everything_exactly_once,
    a_batch_submission_commits_each_job_with_its_messages_once_per_key,
    a_batch_of_changes_commits_each_winner_and_rejects_each_loser_alone,
    grouped_calls_keep_the_single_call_guarantees,
    advisory_imports_are_idempotent_and_report_the_delta,
    policy_versions_move_through_their_lifecycle_with_separated_duties,
    vex_documents_are_global_or_per_tenant_and_imported_once,
    events_are_deduplicated_and_scoped_to_their_tenant,
    export_profiles_are_immutable_per_revision_and_per_tenant,
    export_files_commit_with_the_step_once_per_name,
    notify_receipts_and_deliveries_commit_with_the_step,
    mirror_reads_follow_byte_order_and_generations,
    mirror_imports_move_forward_only_in_one_transaction,
    rollouts_move_by_compare_and_set_fenced_and_each_tenant_once,
    images_are_per_tenant_and_scans_show_the_image_of_their_analysis,
);

async fn policy_versions_move_through_their_lifecycle_with_separated_duties(db: &TestDb) {
    use stella_store::repo::{Actor, PolicyStatus as S, PolicyTransition as T};
    let store = &db.store;
    with_tenants(store, &["a", "b"]).await;
    let a = tenant("a");
    let policies = store.tenant(&a).policies();
    let alice = Actor {
        identity: "alice",
        actor: "token:1 (alice)",
    };
    let bob = Actor {
        identity: "bob",
        actor: "token:2 (bob)",
    };
    let conflict = |r: Result<stella_store::repo::PolicyRecord, StoreError>| {
        matches!(r, Err(StoreError::Conflict(_)))
    };
    assert!(policies.active().await.unwrap().is_none());
    let (first, created) = policies.draft("doc 1", "d1", alice, t0()).await.unwrap();
    assert!(created);
    assert_eq!((first.version, first.status), (1, S::Draft));
    let (same, created) = policies.draft("doc 1", "d1", bob, t0()).await.unwrap();
    assert!(!created, "the same document while in play creates nothing");
    assert_eq!(same, first);
    // Nothing but an approved version activates; a draft is neither approved nor
    // submitted.
    assert!(conflict(
        policies.transition(1, T::Activate, bob, "", t0()).await
    ));
    assert!(conflict(
        policies.transition(1, T::Approve, bob, "", t0()).await
    ));
    let submitted = policies
        .transition(1, T::Submit, alice, "ready", t0())
        .await
        .unwrap();
    assert_eq!(
        (submitted.status, submitted.submitted_by.as_deref()),
        (S::Submitted, Some("alice"))
    );
    // The submitter cannot approve, under any token of the same identity.
    let other_token = Actor {
        identity: "alice",
        actor: "token:9 (alice)",
    };
    assert!(matches!(
        policies
            .transition(1, T::Approve, other_token, "", t0())
            .await,
        Err(StoreError::Forbidden(_))
    ));
    let back = policies
        .transition(1, T::RequestChanges, bob, "tighten rule x", t0())
        .await
        .unwrap();
    assert_eq!((back.status, back.submitted_by), (S::Draft, None));
    policies
        .transition(1, T::Submit, alice, "done", t0())
        .await
        .unwrap();
    let approved = policies
        .transition(1, T::Approve, bob, "looks right", t0())
        .await
        .unwrap();
    assert_eq!(approved.approved_by.as_deref(), Some("bob"));
    assert!(
        policies.active().await.unwrap().is_none(),
        "approved is not active"
    );
    let active = policies
        .transition(1, T::Activate, alice, "go", t0())
        .await
        .unwrap();
    assert_eq!(active.status, S::Active);
    assert_eq!(policies.active().await.unwrap().unwrap().version, 1);
    // A second version supersedes the first, which is archived (and may come back).
    policies.draft("doc 2", "d2", alice, t0()).await.unwrap();
    for (t, by) in [(T::Submit, alice), (T::Approve, bob), (T::Activate, bob)] {
        policies.transition(2, t, by, "v2", t0()).await.unwrap();
    }
    assert_eq!(policies.active().await.unwrap().unwrap().version, 2);
    assert_eq!(policies.get(1).await.unwrap().status, S::Archived);
    policies
        .transition(1, T::Activate, bob, "roll back", t0())
        .await
        .unwrap();
    assert_eq!(policies.active().await.unwrap().unwrap().version, 1);
    assert_eq!(policies.get(2).await.unwrap().status, S::Archived);
    // An archived version that was never approved never activates.
    policies.draft("doc 3", "d3", alice, t0()).await.unwrap();
    policies
        .transition(3, T::Archive, alice, "abandoned", t0())
        .await
        .unwrap();
    assert!(conflict(
        policies.transition(3, T::Activate, bob, "", t0()).await
    ));
    assert!(conflict(
        policies.transition(3, T::Submit, alice, "", t0()).await
    ));
    // Every transition is recorded with who and why, superseding included.
    let history: Vec<_> = policies
        .transitions(1)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.from, t.to, t.identity, t.reason))
        .collect();
    let row =
        |from: Option<S>, to: S, who: &str, why: &str| (from, to, who.to_owned(), why.to_owned());
    assert_eq!(
        history,
        [
            row(None, S::Draft, "alice", ""),
            row(Some(S::Draft), S::Submitted, "alice", "ready"),
            row(Some(S::Submitted), S::Draft, "bob", "tighten rule x"),
            row(Some(S::Draft), S::Submitted, "alice", "done"),
            row(Some(S::Submitted), S::Approved, "bob", "looks right"),
            row(Some(S::Approved), S::Active, "alice", "go"),
            row(
                Some(S::Active),
                S::Archived,
                "bob",
                "superseded by version 2"
            ),
            row(Some(S::Archived), S::Active, "bob", "roll back"),
        ]
    );
    // Each activation tells the scheduler, once.
    let updates = store
        .tenant(&a)
        .events()
        .list(None, Some("policy.updated"), 100)
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(updates, 3);
    // Eight writers at once: every document gets its own version.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let a = tenant("a");
            let w = Actor {
                identity: "w",
                actor: "w",
            };
            store
                .tenant(&a)
                .policies()
                .draft(&format!("doc {i}x"), &format!("x{i}"), w, t0())
                .await
                .unwrap()
                .0
                .version
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (4..=11).collect::<Vec<u64>>());
    assert_eq!(policies.get(1).await.unwrap().document, "doc 1");
    // By digest: the version a verdict citing it was evaluated with.
    assert_eq!(policies.by_digest("d1").await.unwrap().unwrap().version, 1);
    assert!(policies.by_digest("nope").await.unwrap().is_none());
    let page = policies.list(None, 4).await.unwrap();
    assert_eq!(
        page.items.iter().map(|p| p.version).collect::<Vec<_>>(),
        [11, 10, 9, 8]
    );
    let rest = policies
        .list(page.next_cursor.as_deref(), 50)
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 7);
    assert!(rest.next_cursor.is_none());
    // Tenant b has none of them, and cannot move them.
    let b = tenant("b");
    let theirs = store.tenant(&b).policies();
    assert!(theirs.by_digest("d1").await.unwrap().is_none());
    assert!(theirs.active().await.unwrap().is_none());
    assert!(matches!(theirs.get(1).await, Err(StoreError::NotFound(_))));
    assert!(matches!(
        theirs.transition(4, T::Submit, bob, "", t0()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn vex_documents_are_global_or_per_tenant_and_imported_once(db: &TestDb) {
    use stella_store::repo::{generation, VexDocumentRecord};
    let store = &db.store;
    with_tenants(store, &["a", "b"]).await;
    let doc = |sha: &str| VexDocumentRecord {
        tenant: None,
        sha256: sha.repeat(64),
        format: "openvex".into(),
        statements: json!([{"vulnerability": "CVE-1"}]),
        statement_count: 1,
        created_at: t0(),
    };
    let before = generation(store, "vex").await.unwrap();
    assert!(store.vex().import(None, &doc("0")).await.unwrap());
    assert!(
        !store.vex().import(None, &doc("0")).await.unwrap(),
        "again: no-op"
    );
    assert!(store
        .vex()
        .import(Some(&tenant("a")), &doc("1"))
        .await
        .unwrap());
    assert_eq!(generation(store, "vex").await.unwrap(), before + 2);
    let for_a = store.vex().for_tenant(&tenant("a")).await.unwrap();
    assert_eq!(for_a.len(), 2);
    assert_eq!(for_a[0].tenant, None, "global first");
    assert_eq!(for_a[1].tenant.as_deref(), Some("a"));
    assert_eq!(for_a[1].statements, json!([{"vulnerability": "CVE-1"}]));
    let for_b = store.vex().for_tenant(&tenant("b")).await.unwrap();
    assert_eq!(for_b.len(), 1, "b sees the global document only");
}

async fn events_are_deduplicated_and_scoped_to_their_tenant(db: &TestDb) {
    use stella_store::repo::VexDocumentRecord;
    let store = &db.store;
    with_tenants(store, &["a", "b"]).await;
    let record = |sha: &str| VexDocumentRecord {
        tenant: None,
        sha256: sha.repeat(64),
        format: "openvex".into(),
        statements: json!([]),
        statement_count: 0,
        created_at: t0(),
    };
    // A global event (every tenant sees it) and one of a's.
    store.vex().import(None, &record("2")).await.unwrap();
    store
        .vex()
        .import(Some(&tenant("a")), &record("3"))
        .await
        .unwrap();
    let a_events = store
        .tenant(&tenant("a"))
        .events()
        .list(None, None, 50)
        .await
        .unwrap();
    assert_eq!(a_events.items.len(), 2);
    assert!(a_events.items[0].seq < a_events.items[1].seq);
    assert_eq!(a_events.items[0].tenant, None);
    assert_eq!(a_events.items[1].tenant.as_deref(), Some("a"));
    let b_events = store
        .tenant(&tenant("b"))
        .events()
        .list(None, None, 50)
        .await
        .unwrap();
    assert_eq!(b_events.items.len(), 1, "b sees the global event only");
    let after = a_events.items[0].seq.to_string();
    let newer = store
        .tenant(&tenant("a"))
        .events()
        .list(Some(&after), Some("vex.imported"), 50)
        .await
        .unwrap();
    assert_eq!(newer.items.len(), 1);
    assert!(store
        .tenant(&tenant("a"))
        .events()
        .list(None, Some("scan.completed"), 50)
        .await
        .unwrap()
        .items
        .is_empty());
}

async fn migrations_are_idempotent(db: &TestDb) {
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
    assert!(db.store.schema_version().await.unwrap() >= 1);
    db.store.ping().await.unwrap();
}

async fn tenants_are_created_listed_renamed_and_disabled(db: &TestDb) {
    let tenants = db.store.tenants();
    let acme = tenant("acme");
    let created = tenants.create(&acme, "Acme Corp", t0()).await.unwrap();
    assert_eq!(created.name, "Acme Corp");
    assert_eq!(created.status, TenantStatus::Active);
    assert_eq!(created.created_at, t0());

    let dup = tenants.create(&acme, "Again", t0()).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    assert_eq!(
        tenants.ensure(&acme, "Other", t0()).await.unwrap().name,
        "Acme Corp"
    );

    for id in ["delta", "bravo", "charlie", "echo"] {
        tenants.create(&tenant(id), id, t0()).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = tenants.list(cursor.as_deref(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|t| t.id.to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["acme", "bravo", "charlie", "delta", "echo"]);

    let later = t0() + Duration::minutes(5);
    let renamed = tenants.rename(&acme, "ACME", later).await.unwrap();
    assert_eq!(renamed.name, "ACME");
    assert_eq!(renamed.updated_at, later);
    let disabled = tenants
        .set_status(&acme, TenantStatus::Disabled, later)
        .await
        .unwrap();
    assert_eq!(disabled.status, TenantStatus::Disabled);

    let missing = tenants.get(&tenant("nobody")).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
    assert!(matches!(
        tenants.rename(&tenant("nobody"), "x", later).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn tokens_are_hashed_at_rest_and_authenticate_only_while_active(db: &TestDb) {
    with_tenants(&db.store, &["acme"]).await;
    let tokens = db.store.tokens();
    let new = NewToken {
        tenant: Some(tenant("acme")),
        name: "ci".into(),
        scopes: vec!["scans:read".into(), "scans:write".into()],
        expires_at: Some(t0() + Duration::days(1)),
    };
    let (record, secret) = tokens.create(&new, t0()).await.unwrap();
    assert!(
        secret.starts_with("stella_") && secret.len() > 60,
        "{secret}"
    );
    assert_eq!(record.scopes, ["scans:read", "scans:write"]);

    // Nothing stored anywhere in the row equals or contains the secret.
    let mut raw = db.raw().await;
    let rows = sqlx::query("SELECT id, name, secret_hash, scopes FROM api_tokens")
        .fetch_all(&mut raw)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    for column in ["id", "name", "secret_hash", "scopes"] {
        let value: String = rows[0].try_get(column).unwrap();
        assert!(!value.contains(&secret), "{column} holds the secret");
    }

    let found = tokens.authenticate(&secret, t0()).await.unwrap().unwrap();
    assert_eq!(found.id, record.id);
    assert_eq!(
        tokens.get(&record.id).await.unwrap().last_used_at,
        Some(t0())
    );
    assert!(tokens
        .authenticate("stella_wrong", t0())
        .await
        .unwrap()
        .is_none());

    // Expired.
    let after_expiry = t0() + Duration::days(2);
    assert!(tokens
        .authenticate(&secret, after_expiry)
        .await
        .unwrap()
        .is_none());

    // Disabled tenant: its tokens stop working, and work again once re-enabled.
    let tenants = db.store.tenants();
    tenants
        .set_status(&tenant("acme"), TenantStatus::Disabled, t0())
        .await
        .unwrap();
    assert!(tokens.authenticate(&secret, t0()).await.unwrap().is_none());
    tenants
        .set_status(&tenant("acme"), TenantStatus::Active, t0())
        .await
        .unwrap();
    assert!(tokens.authenticate(&secret, t0()).await.unwrap().is_some());

    // Revoked, for good.
    let revoked = tokens.revoke(&record.id, t0()).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(t0()));
    assert!(tokens.authenticate(&secret, t0()).await.unwrap().is_none());
}

async fn admin_tokens_are_separate_from_tenant_tokens(db: &TestDb) {
    with_tenants(&db.store, &["acme"]).await;
    let tokens = db.store.tokens();
    assert!(!tokens.admin_exists().await.unwrap());
    let admin = NewToken {
        tenant: None,
        name: "bootstrap".into(),
        scopes: vec!["admin".into()],
        expires_at: None,
    };
    let record = tokens
        .create_with_secret(&admin, "chosen-by-the-operator", t0())
        .await
        .unwrap();
    assert!(tokens.admin_exists().await.unwrap());
    assert_eq!(
        tokens
            .authenticate("chosen-by-the-operator", t0())
            .await
            .unwrap()
            .unwrap()
            .id,
        record.id
    );
    let short = tokens
        .create_with_secret(&admin, "short", t0())
        .await
        .unwrap_err();
    assert!(matches!(short, StoreError::Invalid(_)));
    let dup = tokens
        .create_with_secret(&admin, "chosen-by-the-operator", t0())
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");

    let tenant_token = NewToken {
        tenant: Some(tenant("acme")),
        ..admin.clone()
    };
    tokens.create(&tenant_token, t0()).await.unwrap();
    let admins = tokens.list_admin(None, 10).await.unwrap();
    assert_eq!(admins.items.len(), 1);
    let acme = tokens
        .list_for_tenant(&tenant("acme"), None, 10)
        .await
        .unwrap();
    assert_eq!(acme.items.len(), 1);
    assert_eq!(acme.items[0].tenant, Some(tenant("acme")));

    tokens.revoke(&record.id, t0()).await.unwrap();
    assert!(!tokens.admin_exists().await.unwrap());
}

async fn submit_commits_the_job_with_its_first_message(db: &TestDb) {
    with_tenants(&db.store, &["acme"]).await;
    let acme = tenant("acme");
    let jobs = db.store.tenant(&acme).jobs();
    let submitted = jobs
        .submit(&noop_job(None), &[message("m1")], t0())
        .await
        .unwrap();
    assert!(submitted.created);
    let job = submitted.job;
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.step, "run");
    assert_eq!(job.attempts, 0);
    assert_eq!(job.params, json!({"sleep_ms": 0}));
    assert_eq!(jobs.get(&job.id).await.unwrap(), job);

    let pending = db.store.outbox().pending(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].job_id.as_ref(), Some(&job.id));
    assert_eq!(pending[0].tenant, acme);
    assert_eq!(pending[0].payload, json!({"k": "m1"}));
    assert_eq!(db.store.outbox().backlog().await.unwrap(), 1);

    // A job of an unknown tenant is refused, and leaves no message behind.
    let ghost = tenant("ghost");
    let err = db
        .store
        .tenant(&ghost)
        .jobs()
        .submit(&noop_job(None), &[message("m2")], t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(db.store.outbox().backlog().await.unwrap(), 1);
}

async fn idempotent_submit_returns_the_first_job_once(db: &TestDb) {
    with_tenants(&db.store, &["acme"]).await;
    let acme = tenant("acme");
    let jobs = db.store.tenant(&acme).jobs();
    let first = jobs
        .submit(&noop_job(Some("k1")), &[message("a")], t0())
        .await
        .unwrap();
    let again = jobs
        .submit(&noop_job(Some("k1")), &[message("b")], t0())
        .await
        .unwrap();
    assert!(first.created);
    assert!(!again.created);
    assert_eq!(again.job.id, first.job.id);
    let pending = db.store.outbox().pending(10).await.unwrap();
    assert_eq!(pending.len(), 1, "the duplicate enqueued a second message");
    let all = jobs.list(&JobFilter::default(), None, 10).await.unwrap();
    assert_eq!(all.items.len(), 1);
}

async fn concurrent_submits_with_one_key_create_one_job(db: &TestDb) {
    with_tenants(&db.store, &["acme"]).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let acme = tenant("acme");
            store
                .tenant(&acme)
                .jobs()
                .submit(&noop_job(Some("same")), &[message(&format!("m{i}"))], t0())
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        let submitted = task.await.unwrap();
        created += usize::from(submitted.created);
        ids.insert(submitted.job.id.to_string());
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(db.store.outbox().backlog().await.unwrap(), 1);
}

async fn transitions_follow_the_state_machine_and_record_history(db: &TestDb) {
    with_tenants(&db.store, &["acme"]).await;
    let acme = tenant("acme");
    let jobs = db.store.tenant(&acme).jobs();
    let job = jobs.submit(&noop_job(None), &[], t0()).await.unwrap().job;
    let at = |s| t0() + Duration::seconds(s);

    let mut start = Transition::new(JobState::Queued, JobState::Running);
    start.count_attempt = true;
    let running = jobs.transition(&job.id, &start, &[], at(1)).await.unwrap();
    assert_eq!((running.state, running.attempts), (JobState::Running, 1));

    let mut retry = Transition::new(JobState::Running, JobState::Retrying);
    retry.error = Some("boom".into());
    retry.not_before = Some(at(60));
    let retrying = jobs
        .transition(&job.id, &retry, &[message("retry")], at(2))
        .await
        .unwrap();
    assert_eq!(retrying.last_error.as_deref(), Some("boom"));
    assert_eq!(retrying.not_before, at(60));

    let mut restart = Transition::new(JobState::Retrying, JobState::Running);
    restart.count_attempt = true;
    jobs.transition(&job.id, &restart, &[], at(61))
        .await
        .unwrap();

    let mut next_step = Transition::new(JobState::Running, JobState::Queued);
    next_step.expect_step = Some("run".into());
    next_step.step = Some("seal".into());
    let queued = jobs
        .transition(&job.id, &next_step, &[message("seal")], at(62))
        .await
        .unwrap();
    assert_eq!(queued.step, "seal");
    assert_eq!(queued.attempts, 0, "attempts count per step");
    assert!(queued.finished_at.is_none());

    jobs.transition(
        &job.id,
        &Transition::new(JobState::Queued, JobState::Running),
        &[],
        at(63),
    )
    .await
    .unwrap();
    let mut done = Transition::new(JobState::Running, JobState::Succeeded);
    done.result = Some(json!({"ok": true}));
    let finished = jobs.transition(&job.id, &done, &[], at(64)).await.unwrap();
    assert_eq!(finished.state, JobState::Succeeded);
    assert_eq!(finished.finished_at, Some(at(64)));
    assert_eq!(finished.result, Some(json!({"ok": true})));

    // Terminal: nothing moves it again.
    let err = jobs
        .transition(
            &job.id,
            &Transition::new(JobState::Succeeded, JobState::Running),
            &[],
            at(65),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");

    let history: Vec<_> = jobs
        .events(&job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.to_state, e.step, e.attempt))
        .collect();
    assert_eq!(
        history,
        [
            (JobState::Queued, "run".to_string(), 0),
            (JobState::Running, "run".into(), 1),
            (JobState::Retrying, "run".into(), 1),
            (JobState::Running, "run".into(), 2),
            (JobState::Queued, "seal".into(), 0),
            (JobState::Running, "seal".into(), 0),
            (JobState::Succeeded, "seal".into(), 0),
        ]
    );
    let counts = jobs.count_by_state().await.unwrap();
    assert_eq!(counts, [(JobState::Succeeded, 1)]);
    // The console's throughput and failure counts: jobs that ended since a time.
    assert_eq!(jobs.count_finished_since(at(64), None).await.unwrap(), 1);
    assert_eq!(jobs.count_finished_since(at(65), None).await.unwrap(), 0);
    assert_eq!(
        jobs.count_finished_since(at(0), Some(JobState::Succeeded))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        jobs.count_finished_since(at(0), Some(JobState::Failed))
            .await
            .unwrap(),
        0
    );
}

async fn a_stale_transition_conflicts_and_changes_nothing(db: &TestDb) {
    with_tenants(&db.store, &["acme"]).await;
    let acme = tenant("acme");
    let jobs = db.store.tenant(&acme).jobs();
    let job = jobs.submit(&noop_job(None), &[], t0()).await.unwrap().job;
    let stale = Transition::new(JobState::Running, JobState::Succeeded);
    let err = jobs
        .transition(&job.id, &stale, &[message("x")], t0())
        .await
        .unwrap_err();
    let StoreError::Conflict(text) = err else {
        panic!("expected a conflict, got {err}")
    };
    assert!(text.contains("is queued"), "{text}");
    let mut wrong_step = Transition::new(JobState::Queued, JobState::Running);
    wrong_step.expect_step = Some("seal".into());
    assert!(matches!(
        jobs.transition(&job.id, &wrong_step, &[], t0()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(jobs.get(&job.id).await.unwrap(), job);
    assert_eq!(db.store.outbox().backlog().await.unwrap(), 0);
    assert_eq!(jobs.events(&job.id).await.unwrap().len(), 1);
}

async fn only_one_of_many_racing_workers_claims_a_job(db: &TestDb) {
    with_tenants(&db.store, &["acme"]).await;
    let acme = tenant("acme");
    let job = db
        .store
        .tenant(&acme)
        .jobs()
        .submit(&noop_job(None), &[], t0())
        .await
        .unwrap()
        .job;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = db.store.clone();
        let id = job.id.clone();
        tasks.push(tokio::spawn(async move {
            let acme = tenant("acme");
            let mut claim = Transition::new(JobState::Queued, JobState::Running);
            claim.count_attempt = true;
            store
                .tenant(&acme)
                .jobs()
                .transition(&id, &claim, &[message(&format!("w{i}"))], t0())
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("a racing claim failed with {other}"),
        }
    }
    assert_eq!(won, 1);
    let after = db.store.tenant(&acme).jobs().get(&job.id).await.unwrap();
    assert_eq!(after.attempts, 1);
    assert_eq!(db.store.outbox().backlog().await.unwrap(), 1);
}

async fn tenant_data_is_invisible_to_other_tenants(db: &TestDb) {
    with_tenants(&db.store, &["acme", "globex"]).await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let job = db
        .store
        .tenant(&acme)
        .jobs()
        .submit(&noop_job(Some("k")), &[], t0())
        .await
        .unwrap()
        .job;
    let theirs = db.store.tenant(&globex).jobs();
    assert!(matches!(
        theirs.get(&job.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        theirs.events(&job.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(theirs
        .list(&JobFilter::default(), None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    let err = theirs
        .transition(
            &job.id,
            &Transition::new(JobState::Queued, JobState::Cancelled),
            &[],
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    // The same idempotency key in another tenant is another job.
    let other = theirs
        .submit(&noop_job(Some("k")), &[], t0())
        .await
        .unwrap();
    assert!(other.created);
    assert_ne!(other.job.id, job.id);
    assert_eq!(
        db.store
            .tenant(&acme)
            .jobs()
            .get(&job.id)
            .await
            .unwrap()
            .state,
        JobState::Queued
    );
    // An id from nowhere is rejected before any query.
    assert!(JobId::parse("job_../../etc").is_err());
}

async fn outbox_relays_in_order_across_tenants(db: &TestDb) {
    with_tenants(&db.store, &["acme", "globex"]).await;
    for (i, t) in ["acme", "globex", "acme"].iter().enumerate() {
        let id = tenant(t);
        db.store
            .tenant(&id)
            .jobs()
            .submit(&noop_job(None), &[message(&format!("m{i}"))], t0())
            .await
            .unwrap();
    }
    let outbox = db.store.outbox();
    let pending = outbox.pending(10).await.unwrap();
    let keys: Vec<_> = pending.iter().map(|r| r.idempotency_key.as_str()).collect();
    assert_eq!(keys, ["m0", "m1", "m2"]);
    assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq));
    outbox
        .mark_relayed(&[pending[0].seq, pending[1].seq])
        .await
        .unwrap();
    outbox.mark_relayed(&[pending[0].seq]).await.unwrap();
    let rest = outbox.pending(10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].idempotency_key, "m2");
    assert_eq!(outbox.pending(1).await.unwrap().len(), 1);
}

async fn idempotency_keys_are_claimed_once_per_tenant(db: &TestDb) {
    with_tenants(&db.store, &["acme", "globex"]).await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let keys = db.store.tenant(&acme).idempotency();
    assert!(keys.claim("notify", "evt-1", t0()).await.unwrap());
    assert!(!keys.claim("notify", "evt-1", t0()).await.unwrap());
    assert!(keys.claim("export", "evt-1", t0()).await.unwrap());
    assert!(db
        .store
        .tenant(&globex)
        .idempotency()
        .claim("notify", "evt-1", t0())
        .await
        .unwrap());
    assert_eq!(keys.outcome("notify", "evt-1").await.unwrap(), Some(None));
    keys.complete("notify", "evt-1", "250 OK").await.unwrap();
    assert_eq!(
        keys.outcome("notify", "evt-1").await.unwrap(),
        Some(Some("250 OK".into()))
    );
    assert_eq!(keys.outcome("notify", "evt-2").await.unwrap(), None);
    assert_eq!(
        db.store
            .tenant(&globex)
            .idempotency()
            .outcome("notify", "evt-1")
            .await
            .unwrap(),
        Some(None)
    );
}

async fn audit_log_is_append_only_and_filterable(db: &TestDb) {
    with_tenants(&db.store, &["acme", "globex"]).await;
    let audit = db.store.audit();
    for (i, t) in [Some("acme"), None, Some("globex"), Some("acme")]
        .iter()
        .enumerate()
    {
        audit
            .record(
                &AuditEntry {
                    tenant: t.map(tenant),
                    actor: "tok_admin".into(),
                    action: "tenant.update".into(),
                    target: format!("target-{i}"),
                    request_id: Some(format!("req-{i}")),
                    details: json!({"i": i}),
                },
                t0() + Duration::seconds(i as i64),
            )
            .await
            .unwrap();
    }
    let all = audit.list(None, None, 10).await.unwrap();
    let targets: Vec<_> = all.items.iter().map(|r| r.entry.target.as_str()).collect();
    assert_eq!(targets, ["target-0", "target-1", "target-2", "target-3"]);
    assert_eq!(all.items[1].entry.tenant, None);
    assert_eq!(all.items[2].at, t0() + Duration::seconds(2));
    let acme = audit.list(Some(&tenant("acme")), None, 1).await.unwrap();
    assert_eq!(acme.items[0].entry.target, "target-0");
    let next = audit
        .list(Some(&tenant("acme")), acme.next_cursor.as_deref(), 1)
        .await
        .unwrap();
    assert_eq!(next.items[0].entry.target, "target-3");
    assert!(next.next_cursor.is_none());
    assert!(matches!(
        audit.list(None, Some("not-a-number"), 1).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn job_lists_page_through_everything_exactly_once(db: &TestDb) {
    with_tenants(&db.store, &["acme"]).await;
    let acme = tenant("acme");
    let jobs = db.store.tenant(&acme).jobs();
    let mut submitted = Vec::new();
    for i in 0..23 {
        let mut job = noop_job(None);
        if i % 3 == 0 {
            job.kind = "export".into();
        }
        submitted.push(
            jobs.submit(&job, &[], t0())
                .await
                .unwrap()
                .job
                .id
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = jobs
            .list(&JobFilter::default(), cursor.as_deref(), 5)
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|j| j.id.to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, submitted);
    let exports = jobs
        .list(
            &JobFilter {
                kind: Some("export".into()),
                state: None,
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(exports.items.len(), 8);
    let running = jobs
        .list(
            &JobFilter {
                kind: None,
                state: Some(JobState::Running),
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert!(running.items.is_empty());
}

async fn a_batch_submission_commits_each_job_with_its_messages_once_per_key(db: &TestDb) {
    with_tenants(&db.store, &["acme"]).await;
    let acme = tenant("acme");
    let jobs = db.store.tenant(&acme).jobs();
    let batch = [
        noop_job(Some("k1")),
        noop_job(Some("k2")),
        noop_job(Some("k1")),
        noop_job(None),
    ];
    let submitted = jobs
        .submit_many(&batch, t0(), |id, job| {
            vec![message(&format!("{id}:{}", job.step))]
        })
        .await
        .unwrap();
    let created: Vec<bool> = submitted.iter().map(|s| s.created).collect();
    assert_eq!(created, [true, true, false, true]);
    assert_eq!(submitted[2].job, submitted[0].job);
    for s in &submitted {
        assert_eq!(jobs.get(&s.job.id).await.unwrap(), s.job);
        assert_eq!(s.job.state, JobState::Queued);
        assert_eq!(jobs.events(&s.job.id).await.unwrap().len(), 1);
    }
    let pending = db.store.outbox().pending(10).await.unwrap();
    let mut keys: Vec<String> = pending.iter().map(|r| r.idempotency_key.clone()).collect();
    keys.sort();
    let mut expected: Vec<String> = [0, 1, 3]
        .iter()
        .map(|&i| format!("{}:run", submitted[i].job.id))
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
    for row in &pending {
        assert_eq!(row.tenant, acme);
    }

    let again = jobs
        .submit_many(&[noop_job(Some("k2"))], t0(), |_, _| vec![message("again")])
        .await
        .unwrap();
    assert!(!again[0].created);
    assert_eq!(again[0].job, submitted[1].job);
    assert_eq!(db.store.outbox().backlog().await.unwrap(), 3);
    assert!(matches!(
        jobs.submit_many(
            &[
                noop_job(None),
                NewJob {
                    max_attempts: 0,
                    ..noop_job(None)
                }
            ],
            t0(),
            |_, _| vec![]
        )
        .await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        jobs.list(&JobFilter::default(), None, 100)
            .await
            .unwrap()
            .items
            .len(),
        3
    );
}

async fn a_batch_of_changes_commits_each_winner_and_rejects_each_loser_alone(db: &TestDb) {
    with_tenants(&db.store, &["acme", "globex"]).await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let acme_jobs = db.store.tenant(&acme).jobs();
    let globex_jobs = db.store.tenant(&globex).jobs();
    let a1 = acme_jobs
        .submit(&noop_job(None), &[], t0())
        .await
        .unwrap()
        .job;
    let a2 = acme_jobs
        .submit(&noop_job(None), &[], t0())
        .await
        .unwrap()
        .job;
    let g1 = globex_jobs
        .submit(&noop_job(None), &[], t0())
        .await
        .unwrap()
        .job;

    let mut start = Transition::new(JobState::Queued, JobState::Running);
    start.count_attempt = true;
    start.expect_step = Some("run".into());
    start.expect_attempts = Some(0);
    let stale = Transition::new(JobState::Running, JobState::Succeeded);
    let mut done = Transition::new(JobState::Running, JobState::Succeeded);
    done.result = Some(json!({"ok": true}));
    let invalid = Transition::new(JobState::Succeeded, JobState::Running);
    let at = t0() + Duration::seconds(5);
    let changes = vec![
        acme_jobs.change(&a1.id, &start, &[message("a1-start")], at),
        acme_jobs.change(&a2.id, &stale, &[message("a2-stale")], at),
        globex_jobs.change(&g1.id, &start, &[message("g1-start")], at),
        // Globex cannot reach acme's job, even inside a batch.
        globex_jobs.change(&a2.id, &start, &[message("cross")], at),
        // A second change of a1 in the same batch applies after the first.
        acme_jobs.change(&a1.id, &done, &[], at),
        acme_jobs.change(&a2.id, &invalid, &[], at),
    ];
    let results = db.store.apply_changes(changes).await;
    assert_eq!(results.len(), 6);
    let running = results[0].as_ref().unwrap();
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.attempts, 1);
    assert!(matches!(&results[1], Err(StoreError::Conflict(text)) if text.contains("is queued")));
    assert_eq!(results[2].as_ref().unwrap().state, JobState::Running);
    assert!(matches!(&results[3], Err(StoreError::NotFound(_))));
    let finished = results[4].as_ref().unwrap();
    assert_eq!(finished.state, JobState::Succeeded);
    assert_eq!(finished.result, Some(json!({"ok": true})));
    assert_eq!(finished.finished_at, Some(at));
    assert!(matches!(&results[5], Err(StoreError::Invalid(_))));

    assert_eq!(acme_jobs.get(&a2.id).await.unwrap(), a2);
    assert_eq!(acme_jobs.events(&a2.id).await.unwrap().len(), 1);
    let history: Vec<(Option<JobState>, JobState, u32)> = acme_jobs
        .events(&a1.id)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.from_state, e.to_state, e.attempt))
        .collect();
    assert_eq!(
        history,
        [
            (None, JobState::Queued, 0),
            (Some(JobState::Queued), JobState::Running, 1),
            (Some(JobState::Running), JobState::Succeeded, 1),
        ]
    );
    assert_eq!(globex_jobs.events(&g1.id).await.unwrap().len(), 2);
    let mut relayed: Vec<String> = db
        .store
        .outbox()
        .pending(10)
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{}/{}", r.tenant, r.idempotency_key))
        .collect();
    relayed.sort();
    assert_eq!(relayed, ["acme/a1-start", "globex/g1-start"]);
}

async fn grouped_calls_keep_the_single_call_guarantees(db: &TestDb) {
    with_tenants(&db.store, &["acme", "globex"]).await;
    let acme = tenant("acme");
    let jobs = db.store.tenant(&acme).jobs();
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            jobs.submit(&noop_job(None), &[], t0())
                .await
                .unwrap()
                .job
                .id,
        );
    }
    // Twelve workers race for the first job, and one worker each starts the others, all
    // at once: exactly one racer wins, every other start commits.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = db.store.clone();
        let id = ids[0].clone();
        tasks.push(tokio::spawn(async move {
            let mut claim = Transition::new(JobState::Queued, JobState::Running);
            claim.count_attempt = true;
            let acme = tenant("acme");
            let jobs = store.tenant(&acme).jobs();
            jobs.transition_grouped(&id, &claim, &[message(&format!("w{i}"))], t0())
                .await
        }));
    }
    for id in &ids[1..] {
        let store = db.store.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let mut claim = Transition::new(JobState::Queued, JobState::Running);
            claim.count_attempt = true;
            let acme = tenant("acme");
            let jobs = store.tenant(&acme).jobs();
            jobs.transition_grouped(&id, &claim, &[message(id.as_str())], t0())
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(job) => {
                assert_eq!(job.state, JobState::Running);
                won += 1;
            }
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("a grouped claim failed with {other}"),
        }
    }
    assert_eq!(won, 20);
    assert_eq!(db.store.outbox().backlog().await.unwrap(), 20);
    for id in &ids {
        let job = jobs.get_grouped(id).await.unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Running, 1));
        assert_eq!(&job.id, id);
    }
    let globex = tenant("globex");
    assert!(matches!(
        db.store.tenant(&globex).jobs().get_grouped(&ids[0]).await,
        Err(StoreError::NotFound(_))
    ));

    // Effects of redelivered runs, written at once: one is new, the rest are repeats;
    // every run is counted.
    let mut writes = Vec::new();
    for _ in 0..5 {
        let store = db.store.clone();
        let id = ids[0].clone();
        writes.push(tokio::spawn(async move {
            let acme = tenant("acme");
            let noop = store.tenant(&acme).noop();
            noop.count_execution(&id).await.unwrap();
            noop.write_effect(&id, t0()).await.unwrap()
        }));
    }
    let mut fresh = 0;
    for write in writes {
        fresh += usize::from(write.await.unwrap());
    }
    assert_eq!(fresh, 1);
    let totals = db.store.tenant(&acme).noop().totals().await.unwrap();
    assert_eq!((totals.effects, totals.executions), (1, 5));
}

fn advisory(
    source: &str,
    id: &str,
    sha: char,
    packages: &[(&str, &str)],
) -> stella_store::repo::AdvisoryRecord {
    stella_store::repo::AdvisoryRecord {
        source: source.into(),
        id: id.into(),
        sha256: sha.to_string().repeat(64),
        collection_sha256: "0".repeat(64),
        entry: format!("{id}.json"),
        modified: t0(),
        withdrawn: None,
        normalized: json!({"id": id, "packages": packages}),
        packages: packages
            .iter()
            .map(|(e, n)| ((*e).to_owned(), (*n).to_owned()))
            .collect(),
    }
}

async fn advisory_imports_are_idempotent_and_report_the_delta(db: &TestDb) {
    let advisories = db.store.advisories();
    let first = [
        advisory("osv:Go", "GO-1", 'a', &[("Go", "golang.org/x/net")]),
        advisory("osv:Go", "GO-2", 'b', &[("Go", "golang.org/x/text")]),
    ];
    let summary = advisories.import(&first, t0()).await.unwrap();
    assert_eq!((summary.new, summary.changed, summary.unchanged), (2, 0, 0));
    assert_eq!(summary.delta_packages.len(), 2);

    // Re-importing unchanged records is a no-op with an empty delta.
    let again = advisories.import(&first, t0()).await.unwrap();
    assert_eq!((again.new, again.changed, again.unchanged), (0, 0, 2));
    assert!(again.delta_ids.is_empty() && again.delta_packages.is_empty());

    // A changed record names the packages it named before and names now.
    let changed = [advisory(
        "osv:Go",
        "GO-1",
        'c',
        &[("Go", "golang.org/x/crypto")],
    )];
    let summary = advisories.import(&changed, t0()).await.unwrap();
    assert_eq!((summary.new, summary.changed), (0, 1));
    assert_eq!(summary.delta_ids, ["osv:Go:GO-1"]);
    let packages: Vec<&str> = summary
        .delta_packages
        .iter()
        .map(|(_, n)| n.as_str())
        .collect();
    assert_eq!(packages, ["golang.org/x/crypto", "golang.org/x/net"]);
    assert_eq!(
        advisories.observations("osv:Go", "GO-1").await.unwrap(),
        2,
        "both observations kept"
    );

    // Lookups by package see the current form only; the same id from another source
    // stays beside it.
    let net = advisories
        .for_packages(&[("Go".into(), "golang.org/x/net".into())])
        .await
        .unwrap();
    assert!(net.is_empty(), "GO-1 no longer names x/net");
    advisories
        .import(
            &[advisory(
                "ghsa",
                "GO-1",
                'd',
                &[("Go", "golang.org/x/crypto")],
            )],
            t0(),
        )
        .await
        .unwrap();
    let crypto = advisories
        .for_packages(&[("Go".into(), "golang.org/x/crypto".into())])
        .await
        .unwrap();
    let keys: Vec<(&str, &str)> = crypto
        .iter()
        .map(|a| (a.source.as_str(), a.id.as_str()))
        .collect();
    assert_eq!(keys, [("ghsa", "GO-1"), ("osv:Go", "GO-1")]);
    assert_eq!(crypto[1].sha256, "c".repeat(64));
    assert_eq!(advisories.all().await.unwrap().len(), 3);

    // The observations a scan cited, by id and digest, whichever is current now: GO-1's
    // first record ('a') though 'c' replaced it, from either source.
    let ids = ["GO-1".to_owned(), "GO-2".to_owned()].into();
    let cited = ["a".repeat(64), "d".repeat(64), "e".repeat(64)].into();
    let found = advisories.observations_of(&ids, &cited).await.unwrap();
    let keys: Vec<(&str, &str, char)> = found
        .iter()
        .map(|o| {
            (
                o.source.as_str(),
                o.id.as_str(),
                o.sha256.chars().next().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys, [("ghsa", "GO-1", 'd'), ("osv:Go", "GO-1", 'a')]);
    assert_eq!(found[1].entry, "GO-1.json");
    assert_eq!(found[1].collection_sha256, "0".repeat(64));

    // A bad record fails the whole import: nothing half-stored.
    let mut bad = advisory("osv:Go", "GO-9", 'e', &[("Go", "x")]);
    bad.sha256 = "short".into();
    let batch = [advisory("osv:Go", "GO-8", 'f', &[("Go", "y")]), bad];
    assert!(advisories.import(&batch, t0()).await.is_err());
    assert_eq!(advisories.all().await.unwrap().len(), 3);
}

/// Storage that cannot take writes: every engine's way of saying so is `Unavailable`
/// (the API's 503), and the readiness probe, a write, fails with it.
mod unwritable {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use stella_config::{DatabaseBackend, DatabaseSettings};
    use stella_store::{Store, StoreError};

    use super::{t0, tenant};

    fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
        match result {
            Err(StoreError::Unavailable { .. }) => {}
            other => panic!("{what}: expected unavailable, got {other:?}"),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    async fn sqlite_at(url: &str) -> Store {
        let store = Store::connect(
            &DatabaseBackend::Sqlite { url: url.into() },
            &DatabaseSettings::default(),
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        store
    }

    #[tokio::test]
    async fn sqlite_files_and_their_folder_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("data");
        let db = folder.join("stella.db");
        let store = sqlite_at(&format!("sqlite://{}?mode=rwc", db.display())).await;
        store
            .tenants()
            .create(&tenant("a"), "A", t0())
            .await
            .unwrap();
        assert_eq!(mode(&folder), 0o700);
        for name in ["stella.db", "stella.db-wal", "stella.db-shm"] {
            assert_eq!(mode(&folder.join(name)), 0o600, "{name}");
        }
        store.close().await;
    }

    #[tokio::test]
    async fn a_read_only_sqlite_database_is_unavailable_and_fails_the_probe() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("stella.db");
        let writable = sqlite_at(&format!("sqlite://{}", db.display())).await;
        writable.ping().await.unwrap();
        let read_only = Store::connect(
            &DatabaseBackend::Sqlite {
                url: format!("sqlite://{}?mode=ro", db.display()),
            },
            &DatabaseSettings::default(),
        )
        .await
        .unwrap();
        assert!(
            read_only.tenants().list(None, 10).await.is_ok(),
            "reads work"
        );
        assert_unavailable(
            read_only.tenants().create(&tenant("a"), "A", t0()).await,
            "a write",
        );
        assert_unavailable(read_only.ping().await, "the probe");
        read_only.close().await;
        writable.close().await;
    }

    #[tokio::test]
    async fn a_deleted_sqlite_file_refuses_every_call_and_is_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("stella.db");
        let store = sqlite_at(&format!("sqlite://{}", db.display())).await;
        store
            .tenants()
            .create(&tenant("a"), "A", t0())
            .await
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        // The pool's open connections would write on into the unlinked file.
        assert_unavailable(
            store.tenants().create(&tenant("b"), "B", t0()).await,
            "a write",
        );
        assert_unavailable(store.tenants().get(&tenant("a")).await, "a read");
        match store.ping().await {
            Err(err @ StoreError::Unavailable { .. }) => {
                assert!(err.to_string().contains("stella.db"), "{err}")
            }
            other => panic!("the probe: {other:?}"),
        }
        assert!(!db.exists(), "no empty database in its place");
        store.close().await;
    }

    /// The events stream's `seq` order is its commit order: an append waits while
    /// another transaction that appends events is open (it holds the event-order lock),
    /// so a follower reading `seq > cursor` never moves past an event committed late.
    #[tokio::test]
    async fn an_event_append_waits_for_an_open_transaction_that_appends_events() {
        let Some(db) = crate::common::postgres().await else {
            return;
        };
        let mut raw = db.raw().await;
        sqlx::Executor::execute(&mut raw, "BEGIN").await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(stella_store::repo::EVENT_ORDER_LOCK)
            .execute(&mut raw)
            .await
            .unwrap();
        // A writer's event: its seq is taken now, its row visible at commit.
        sqlx::Executor::execute(
            &mut raw,
            "INSERT INTO events (tenant_id, kind, dedupe_key, payload, created_at) \
             VALUES ('', 'test.first', 'test-first', '{}', 0)",
        )
        .await
        .unwrap();
        let store = db.store.clone();
        let append = tokio::spawn(async move {
            let event = stella_store::repo::NewEvent {
                kind: "test.second".into(),
                dedupe_key: "test-second".into(),
                payload: serde_json::json!({}),
            };
            store.append_event(None, &event, t0()).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(
            !append.is_finished(),
            "the append did not wait for the open transaction"
        );
        sqlx::Executor::execute(&mut raw, "COMMIT").await.unwrap();
        append.await.unwrap().unwrap();
        let kinds: Vec<(String,)> =
            sqlx::query_as("SELECT kind FROM events WHERE kind LIKE 'test.%' ORDER BY seq")
                .fetch_all(&mut raw)
                .await
                .unwrap();
        assert_eq!(
            kinds,
            vec![("test.first".to_owned(),), ("test.second".to_owned(),)],
            "seq order is commit order"
        );
        db.finish().await;
    }

    #[tokio::test]
    async fn a_read_only_postgres_database_is_unavailable_and_fails_the_probe() {
        let Some(db) = crate::common::postgres().await else {
            return;
        };
        let name = db.url.rsplit('/').next().unwrap().to_owned();
        let mut raw = db.raw().await;
        sqlx::Executor::execute(
            &mut raw,
            format!("ALTER DATABASE {name} SET default_transaction_read_only = on").as_str(),
        )
        .await
        .unwrap();
        // The setting applies to sessions opened from now on.
        let store = Store::connect(
            &DatabaseBackend::Postgres {
                url: db.url.clone(),
            },
            &DatabaseSettings::default(),
        )
        .await
        .unwrap();
        assert_unavailable(
            store.tenants().create(&tenant("a"), "A", t0()).await,
            "a write",
        );
        assert_unavailable(store.ping().await, "the probe");
        store.close().await;
        db.finish().await;
    }
}

async fn export_profiles_are_immutable_per_revision_and_per_tenant(db: &TestDb) {
    with_tenants(&db.store, &["acme", "globex"]).await;
    let acme = tenant("acme");
    let profiles = db.store.tenant(&acme).export_profiles();
    let first = NewExportProfile {
        name: "nightly-sarif",
        kind: "sarif",
        definition: r#"{"selectors":{"targets":["api"]}}"#,
        digest: "d1",
        created_by: "ci",
    };
    let (one, created) = profiles.put(&first, t0()).await.unwrap();
    assert!(created);
    assert_eq!((one.revision, one.kind.as_str()), (1, "sarif"));
    // The same definition again is no new revision.
    let (again, created) = profiles.put(&first, t0()).await.unwrap();
    assert!(!created);
    assert_eq!(again, one);
    // A change is the next revision; the first stays as it was.
    let changed = NewExportProfile {
        definition: r#"{"selectors":{"targets":["api","web"]}}"#,
        digest: "d2",
        ..first.clone()
    };
    let (two, created) = profiles.put(&changed, t0()).await.unwrap();
    assert!(created);
    assert_eq!(two.revision, 2);
    assert_eq!(profiles.revision("nightly-sarif", 1).await.unwrap(), one);
    assert_eq!(
        profiles.latest("nightly-sarif").await.unwrap(),
        Some(two.clone())
    );
    assert_eq!(
        profiles
            .revisions("nightly-sarif")
            .await
            .unwrap()
            .iter()
            .map(|r| r.revision)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    let other = NewExportProfile {
        name: "weekly-csv",
        kind: "csv",
        ..first.clone()
    };
    profiles.put(&other, t0()).await.unwrap();
    let page = profiles.list(None, 1).await.unwrap();
    assert_eq!(page.items, vec![two]);
    let rest = profiles
        .list(page.next_cursor.as_deref(), 10)
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].name, "weekly-csv");
    assert!(rest.next_cursor.is_none());

    // Another tenant sees none of it, and its own profile of the same name starts at 1.
    let globex_id = tenant("globex");
    let globex = db.store.tenant(&globex_id).export_profiles();
    assert_eq!(globex.latest("nightly-sarif").await.unwrap(), None);
    assert!(matches!(
        globex.revision("nightly-sarif", 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(globex.list(None, 10).await.unwrap().items.is_empty());
    let (theirs, _) = globex.put(&first, t0()).await.unwrap();
    assert_eq!(theirs.revision, 1);
}

/// A run's files are staged by the step that wrote them: they commit with its outcome,
/// only when its compare-and-set holds, and once per name, through the single and the
/// grouped transitions alike.
async fn export_files_commit_with_the_step_once_per_name(db: &TestDb) {
    with_tenants(&db.store, &["acme", "globex"]).await;
    let acme = tenant("acme");
    let jobs = db.store.tenant(&acme).jobs();
    let files = db.store.tenant(&acme).export_files();
    let file = |name: &str, size: u64| Effect::ExportFile {
        name: name.into(),
        size_bytes: size,
        sha256: format!("{:0>64}", size),
    };
    for grouped in [false, true] {
        let job = jobs.submit(&noop_job(None), &[], t0()).await.unwrap().job;
        let mut start = Transition::new(JobState::Queued, JobState::Running);
        start.count_attempt = true;
        jobs.transition(&job.id, &start, &[], t0()).await.unwrap();

        // A step that lost its compare-and-set commits none of its files.
        let mut stale = Transition::new(JobState::Queued, JobState::Running);
        stale.effects = vec![file("lost.csv", 1)];
        let lost = if grouped {
            jobs.transition_grouped(&job.id, &stale, &[], t0()).await
        } else {
            jobs.transition(&job.id, &stale, &[], t0()).await
        };
        assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
        assert!(files.list(&job.id).await.unwrap().is_empty());

        // The winning step's files, one named twice, commit once each.
        let mut next = Transition::new(JobState::Running, JobState::Queued);
        next.step = Some("seal".into());
        next.effects = vec![
            file("findings.csv", 10),
            file("export.json", 2),
            file("findings.csv", 10),
        ];
        if grouped {
            jobs.transition_grouped(&job.id, &next, &[], t0())
                .await
                .unwrap();
        } else {
            jobs.transition(&job.id, &next, &[], t0()).await.unwrap();
        }
        // The next step writing the same file again changes nothing.
        jobs.transition(&job.id, &start, &[], t0()).await.unwrap();
        let mut again = Transition::new(JobState::Running, JobState::Succeeded);
        again.effects = vec![file("findings.csv", 10)];
        jobs.transition(&job.id, &again, &[], t0()).await.unwrap();
        let listed = files.list(&job.id).await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|f| (f.name.as_str(), f.size_bytes))
                .collect::<Vec<_>>(),
            vec![("export.json", 2), ("findings.csv", 10)],
            "grouped: {grouped}"
        );
        assert_eq!(
            files.get(&job.id, "findings.csv").await.unwrap().size_bytes,
            10
        );
        assert!(matches!(
            files.get(&job.id, "missing.csv").await,
            Err(StoreError::NotFound(_))
        ));
        // Another tenant cannot read them.
        let globex_id = tenant("globex");
        let globex = db.store.tenant(&globex_id).export_files();
        assert!(globex.list(&job.id).await.unwrap().is_empty());
    }
}

/// A delivered notification's receipt and status are staged by its step: they commit
/// with its outcome, only when its compare-and-set holds, through the single and the
/// grouped transitions alike, and a delivered delivery stays delivered.
async fn notify_receipts_and_deliveries_commit_with_the_step(db: &TestDb) {
    use stella_store::repo::NewDelivery;
    use stella_store::{ChannelId, DeliveryId};
    with_tenants(&db.store, &["acme"]).await;
    let acme = tenant("acme");
    let jobs = db.store.tenant(&acme).jobs();
    let notify = db.store.tenant(&acme).notify();
    for grouped in [false, true] {
        let job = jobs.submit(&noop_job(None), &[], t0()).await.unwrap().job;
        let mut start = Transition::new(JobState::Queued, JobState::Running);
        start.count_attempt = true;
        jobs.transition(&job.id, &start, &[], t0()).await.unwrap();
        let delivery = notify
            .insert_delivery(
                &NewDelivery {
                    tenant: acme.clone(),
                    id: DeliveryId::generate(),
                    dedupe_key: format!("key-{grouped}"),
                    event_id: "evt_1".into(),
                    event_kind: "scan.completed".into(),
                    event_seq: 1,
                    rule_id: None,
                    channel_id: ChannelId::generate(),
                    channel_type: "webhook".into(),
                    mode: "instant".into(),
                    job_id: Some(job.id.clone()),
                    status: "pending".into(),
                },
                t0(),
            )
            .await
            .unwrap();
        let attempt = notify.begin_attempt(&delivery.id, t0()).await.unwrap();
        let effects = vec![
            Effect::NotifyAttemptOk {
                delivery_id: delivery.id.clone(),
                attempt,
                status_code: Some(200),
                latency_ms: Some(7),
                response_head: Some("ok".into()),
            },
            Effect::NotifyDelivered {
                delivery_id: delivery.id.clone(),
                detail: Some(json!({"template_error": "x"})),
            },
        ];
        let apply = |change: Transition| {
            let jobs = &jobs;
            let id = job.id.clone();
            async move {
                if grouped {
                    jobs.transition_grouped(&id, &change, &[], t0()).await
                } else {
                    jobs.transition(&id, &change, &[], t0()).await
                }
            }
        };
        // A step that lost its compare-and-set commits neither.
        let mut stale = Transition::new(JobState::Queued, JobState::Running);
        stale.effects = effects.clone();
        let lost = apply(stale).await;
        assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
        let read = notify.delivery(&delivery.id).await.unwrap();
        assert_eq!(read.status, "pending", "grouped: {grouped}");
        let receipts = notify.attempts(&delivery.id).await.unwrap();
        assert_eq!(receipts[0].outcome, "sending");

        // The winning step's commit writes both.
        let mut done = Transition::new(JobState::Running, JobState::Succeeded);
        done.effects = effects;
        apply(done).await.unwrap();
        let read = notify.delivery(&delivery.id).await.unwrap();
        assert_eq!(read.status, "delivered", "grouped: {grouped}");
        assert_eq!(read.job_id.as_deref(), Some(job.id.as_str()));
        assert_eq!(read.detail, Some(json!({"template_error": "x"})));
        let receipts = notify.attempts(&delivery.id).await.unwrap();
        assert_eq!(receipts.len(), 1);
        assert_eq!(receipts[0].outcome, "ok", "grouped: {grouped}");
        assert_eq!(receipts[0].status_code, Some(200));
        assert_eq!(receipts[0].latency_ms, Some(7));
        assert_eq!(receipts[0].response_head.as_deref(), Some("ok"));
        assert_eq!(receipts[0].error, None);
    }
}

async fn mirror_reads_follow_byte_order_and_generations(db: &TestDb) {
    use stella_store::repo::{Change, Generations, VexDocumentRecord};
    let store = &db.store;
    with_tenants(store, &["acme", "beta"]).await;
    let acme = tenant("acme");
    let mirror = store.tenant(&acme).mirror();
    assert_eq!(mirror.generations().await.unwrap(), Generations::default());
    // Byte order, whatever the database's collation: "G" < "a", "-" < "a".
    store
        .advisories()
        .import(
            &[
                advisory("osv:a", "x-b", 'a', &[]),
                advisory("osv:a", "xa", 'b', &[]),
                advisory("osv:Go", "GO-2", 'c', &[]),
                advisory("osv:Go", "GO-10", 'd', &[]),
            ],
            t0(),
        )
        .await
        .unwrap();
    let doc = |sha: char| VexDocumentRecord {
        tenant: None,
        sha256: sha.to_string().repeat(64),
        format: "openvex".into(),
        statements: json!([]),
        statement_count: 0,
        created_at: t0(),
    };
    store.vex().import(None, &doc('f')).await.unwrap();
    store
        .vex()
        .import(Some(&tenant("acme")), &doc('1'))
        .await
        .unwrap();
    store
        .vex()
        .import(Some(&tenant("beta")), &doc('2'))
        .await
        .unwrap();
    let base = mirror.generations().await.unwrap();
    assert_eq!(
        base,
        Generations {
            advisories: 1,
            vex: 3
        }
    );
    assert_eq!(
        mirror.counts(None).await.unwrap(),
        (4, 2),
        "beta's document is not acme's"
    );
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let page = mirror.advisories(None, after.as_ref(), 1).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(last.change.is_none(), "a full read names no change");
        keys.push(format!("{}:{}", last.source, last.id));
        after = Some((last.source.clone(), last.id.clone()));
    }
    assert_eq!(
        keys,
        ["osv:Go:GO-10", "osv:Go:GO-2", "osv:a:x-b", "osv:a:xa"]
    );
    let vex = mirror.vex(None, None, 10).await.unwrap();
    let owners: Vec<Option<&str>> = vex.iter().map(|v| v.tenant.as_deref()).collect();
    assert_eq!(
        owners,
        [None, Some("acme")],
        "global first, then the tenant's own"
    );
    let second = mirror
        .vex(None, Some(&(String::new(), "f".repeat(64))), 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "paging after the global document");

    // One import later: what changed since the base, and how.
    let mut withdrawn = advisory("osv:a", "xa", 'e', &[]);
    withdrawn.withdrawn = Some(t0());
    store
        .advisories()
        .import(
            &[
                advisory("osv:Go", "GO-2", '9', &[]),
                advisory("osv:Go", "GO-3", '8', &[]),
                withdrawn,
                advisory("osv:a", "x-b", 'a', &[]),
            ],
            t0(),
        )
        .await
        .unwrap();
    store
        .vex()
        .import(Some(&tenant("acme")), &doc('3'))
        .await
        .unwrap();
    assert_eq!(mirror.counts(Some(base)).await.unwrap(), (3, 1));
    let delta = mirror
        .advisories(Some(base.advisories), None, 10)
        .await
        .unwrap();
    let changes: Vec<(&str, Option<Change>)> =
        delta.iter().map(|a| (a.id.as_str(), a.change)).collect();
    assert_eq!(
        changes,
        [
            ("GO-2", Some(Change::Changed)),
            ("GO-3", Some(Change::Added)),
            ("xa", Some(Change::Withdrawn)),
        ],
        "an unchanged record is not in the delta"
    );
    let vex = mirror.vex(Some(base.vex), None, 10).await.unwrap();
    assert_eq!(vex.len(), 1);
    assert_eq!(vex[0].sha256, "3".repeat(64));
}

async fn mirror_imports_move_forward_only_in_one_transaction(db: &TestDb) {
    use stella_store::repo::{
        Generations, MirrorImport, MirrorImportOutcome, QuarantineRecord, VexDocumentRecord,
    };
    let store = &db.store;
    with_tenants(store, &["acme"]).await;
    let records = [advisory("osv:Go", "GO-1", 'a', &[("Go", "x")])];
    let documents = [VexDocumentRecord {
        tenant: Some("acme".into()),
        sha256: "f".repeat(64),
        format: "openvex".into(),
        statements: json!([]),
        statement_count: 0,
        created_at: t0(),
    }];
    let counts = json!({"advisories": 1});
    let import =
        |manifest: &'static str, advisories: i64, base: Option<&'static str>| MirrorImport {
            origin: "key-a",
            kind: if base.is_some() {
                "mirror:delta"
            } else {
                "mirror:full"
            },
            manifest_sha256: manifest,
            bundle_sha256: "b",
            base_manifest_sha256: base,
            generations: Generations { advisories, vex: 1 },
            counts: &counts,
            advisories: &records,
            vex: &documents,
            forced_reason: None,
            imported_by: "test",
        };
    let full = import("m1", 5, None);
    let MirrorImportOutcome::Imported {
        record,
        advisories,
        vex_new,
    } = store.mirror_imports().import(&full, t0()).await.unwrap()
    else {
        panic!("the first bundle is imported")
    };
    assert_eq!((advisories.new, vex_new), (1, 1));
    assert_eq!(record.generations.advisories, 5);
    assert_eq!(
        store.vex().for_tenant(&tenant("acme")).await.unwrap().len(),
        1
    );
    // The same bundle again changes nothing.
    assert!(matches!(
        store.mirror_imports().import(&full, t0()).await.unwrap(),
        MirrorImportOutcome::AlreadyImported(_)
    ));
    // A delta whose base was never imported, and an older bundle: refused, nothing written.
    let changed = [advisory("osv:Go", "GO-1", 'z', &[("Go", "x")])];
    let mut orphan = import("m2", 6, Some("never"));
    orphan.advisories = &changed;
    assert_eq!(
        store.mirror_imports().import(&orphan, t0()).await.unwrap(),
        MirrorImportOutcome::MissingBase
    );
    let mut older = import("m0", 4, None);
    older.advisories = &changed;
    assert!(matches!(
        store.mirror_imports().import(&older, t0()).await.unwrap(),
        MirrorImportOutcome::Older(latest) if latest.manifest_sha256 == "m1"
    ));
    assert_eq!(
        store.advisories().all().await.unwrap()[0].sha256,
        "a".repeat(64)
    );
    assert_eq!(store.mirror_imports().list().await.unwrap().len(), 1);
    // A delta on its base moves forward; forced with a reason, an older bundle goes in,
    // and the audit log says why.
    let mut delta = import("m3", 7, Some("m1"));
    delta.advisories = &changed;
    assert!(matches!(
        store.mirror_imports().import(&delta, t0()).await.unwrap(),
        MirrorImportOutcome::Imported { .. }
    ));
    assert_eq!(
        store.advisories().all().await.unwrap()[0].sha256,
        "z".repeat(64)
    );
    let mut forced = import("m0", 4, None);
    forced.forced_reason = Some("roll back a bad feed");
    assert!(matches!(
        store.mirror_imports().import(&forced, t0()).await.unwrap(),
        MirrorImportOutcome::Imported { .. }
    ));
    assert_eq!(
        store.advisories().all().await.unwrap()[0].sha256,
        "a".repeat(64)
    );
    let imports = store.mirror_imports().list().await.unwrap();
    let manifests: Vec<&str> = imports.iter().map(|i| i.manifest_sha256.as_str()).collect();
    assert_eq!(manifests, ["m1", "m3", "m0"]);
    assert_eq!(
        imports[2].forced_reason.as_deref(),
        Some("roll back a bad feed")
    );
    let audit = store.audit().list(None, None, 50).await.unwrap().items;
    let forced_entry = audit
        .iter()
        .find(|e| e.entry.action == "import_mirror_bundle_forced")
        .expect("the forced import is audited");
    assert_eq!(
        forced_entry.entry.details["forced"]["reason"],
        "roll back a bad feed"
    );
    assert_eq!(
        forced_entry.entry.details["forced"]["behind"]["manifest_sha256"],
        "m3"
    );
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.entry.action == "import_mirror_bundle")
            .count(),
        2
    );

    // A quarantined bundle is recorded once, with why.
    let entry = QuarantineRecord {
        bundle_sha256: "q".repeat(64),
        object_key: "mirror/quarantine/q.tar.zst".into(),
        file: "advisories.jsonl".into(),
        reason: "checksum".into(),
        quarantined_by: "test".into(),
        quarantined_at: t0(),
    };
    store.mirror_imports().quarantine(&entry).await.unwrap();
    store.mirror_imports().quarantine(&entry).await.unwrap();
    assert_eq!(store.mirror_imports().quarantined().await.unwrap(), [entry]);
}

/// Packs are versioned by digest; a rollout is one at a time; administrators' moves are
/// refused from the wrong state with a conflict naming it; the leader's moves are
/// fenced by its lease (a stale token writes nothing) and activate or roll back each
/// tenant once, restoring the pack it had before.
async fn rollouts_move_by_compare_and_set_fenced_and_each_tenant_once(db: &TestDb) {
    use stella_store::repo::{Actor, LeaderMove, NewRollout, SCHEDULER_LEASE};
    let store = &db.store;
    with_tenants(store, &["a", "b", "c"]).await;
    let packs = store.packs();
    let (v1, created) = packs
        .put("base", "doc 1", "d1", "admin", t0())
        .await
        .unwrap();
    assert!(created);
    let (same, created) = packs
        .put("base", "doc 1", "d1", "admin", t0())
        .await
        .unwrap();
    assert_eq!((same.version, created), (1, false));
    let (v2, _) = packs
        .put("base", "doc 2", "d2", "admin", t0())
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert!(matches!(
        packs.put("Base", "x", "d", "admin", t0()).await,
        Err(StoreError::Invalid(_))
    ));
    let admin = Actor {
        identity: "root",
        actor: "root",
    };
    let spec = json!({"pack": "base", "version": 2, "waves": [{"tenants": ["a", "b"]}, {"tenants": ["c"]}]});
    let waves = vec![vec![tenant("a"), tenant("b")], vec![tenant("c")]];
    let new = |version| NewRollout {
        pack: "base",
        version,
        spec: &spec,
        waves: &waves,
    };
    assert!(matches!(
        store.rollouts().create(&new(9), admin, "why", t0()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.rollouts().create(&new(2), admin, "  ", t0()).await,
        Err(StoreError::Invalid(_))
    ));
    let rollouts = store.rollouts();
    let r = rollouts.create(&new(2), admin, "why", t0()).await.unwrap();
    assert_eq!(
        (r.state.as_str(), r.wave, r.phase.as_str(), r.generation),
        ("running", 0, "shadow", 1)
    );
    assert!(matches!(
        rollouts.create(&new(2), admin, "again", t0()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        rollouts.resume(&r.id, None, admin, "not paused", t0()).await,
        Err(StoreError::Conflict(m)) if m.contains("running")
    ));
    assert_eq!(rollouts.due(t0()).await.unwrap().len(), 1);

    // The leader activates wave 0; a stale token writes nothing.
    let lease = store
        .scheduling()
        .acquire_lease(
            SCHEDULER_LEASE,
            "p",
            std::time::Duration::from_secs(15),
            t0(),
        )
        .await
        .unwrap()
        .unwrap();
    let activate = LeaderMove::Activate {
        tenants: vec![tenant("a"), tenant("b")],
        gate: json!({"result": "passed"}),
        bake_until: t0() + Duration::seconds(60),
    };
    assert!(matches!(
        rollouts.lead(lease.token + 1, &r, &activate, t0()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(packs.assigned(&tenant("a")).await.unwrap().is_none());
    rollouts
        .lead(lease.token, &r, &activate, t0())
        .await
        .unwrap();
    // The same move again (a second leader that read the same row) conflicts.
    assert!(matches!(
        rollouts.lead(lease.token, &r, &activate, t0()).await,
        Err(StoreError::Conflict(_))
    ));
    let r = rollouts.get(&r.id).await.unwrap();
    assert_eq!(
        (r.phase.as_str(), r.next_at),
        ("bake", t0() + Duration::seconds(60))
    );
    assert_eq!(
        packs.assigned(&tenant("a")).await.unwrap().unwrap().version,
        2
    );
    assert!(rollouts.due(t0()).await.unwrap().is_empty(), "baking");

    // Paused while baking, resumed: it bakes to the same end.
    let paused = rollouts
        .pause(&r.id, admin, "look first", t0())
        .await
        .unwrap();
    assert_eq!(paused.state, "paused");
    assert!(matches!(
        rollouts.pause(&r.id, admin, "again", t0()).await,
        Err(StoreError::Conflict(_))
    ));
    let resumed = rollouts
        .resume(&r.id, None, admin, "fine", t0())
        .await
        .unwrap();
    assert_eq!(resumed.next_at, t0() + Duration::seconds(60));
    let later = t0() + Duration::seconds(61);
    let r = rollouts.due(later).await.unwrap().remove(0);
    rollouts
        .lead(
            lease.token,
            &r,
            &LeaderMove::NextWave {
                wave_name: "wave-2".into(),
            },
            later,
        )
        .await
        .unwrap();
    let r = rollouts.get(&r.id).await.unwrap();
    assert_eq!((r.wave, r.phase.as_str(), r.generation), (1, "shadow", 2));

    // Abort mid-rollout: a and b get no pack again (they had none), c was never touched.
    rollouts.abort(&r.id, admin, "stop", later).await.unwrap();
    let r = rollouts.due(later).await.unwrap().remove(0);
    assert_eq!(r.state, "rolling_back");
    rollouts
        .lead(
            lease.token,
            &r,
            &LeaderMove::RollBack {
                tenants: vec![tenant("a"), tenant("b"), tenant("c")],
            },
            later,
        )
        .await
        .unwrap();
    let r = rollouts.get(&r.id).await.unwrap();
    assert_eq!(r.state, "rolled_back");
    for t in ["a", "b", "c"] {
        assert!(packs.assigned(&tenant(t)).await.unwrap().is_none(), "{t}");
    }
    let rows = rollouts.tenants(&r.id, None).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|t| (
                t.tenant.as_str(),
                t.activated_at.is_some(),
                t.rolled_back_at.is_some()
            ))
            .collect::<Vec<_>>(),
        [("a", true, true), ("b", true, true), ("c", false, false)]
    );
    // A new rollout may start now, and records what each tenant has.
    let next = rollouts
        .create(&new(1), admin, "older", later)
        .await
        .unwrap();
    assert!(matches!(
        rollouts.abort(&r.id, admin, "twice", later).await,
        Err(StoreError::Conflict(_))
    ));
    let mut raw = db.raw().await;
    let updates: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM events WHERE kind = 'policy.updated'")
            .fetch_one(&mut raw)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
    assert_eq!(updates, 4, "two activations and two rollbacks");
    assert_eq!(rollouts.tenants(&next.id, None).await.unwrap().len(), 3);
}

async fn images_are_per_tenant_and_scans_show_the_image_of_their_analysis(db: &TestDb) {
    use stella_store::repo::ImageRecord;
    let store = &db.store;
    with_tenants(store, &["acme", "globex"]).await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let digest = format!("sha256:{}", "a".repeat(64));
    let image = |name: &str, sbom: &str, at: i64| ImageRecord {
        digest: digest.clone(),
        name: name.to_owned(),
        format: "docker-archive".into(),
        archive_sha256: "b".repeat(64),
        archive_size: 1 << 33,
        sbom_sha256: sbom.to_owned(),
        summary: json!({"packages": 3, "package_types": {"deb": 3}}),
        created_at: t0() + Duration::seconds(at),
    };
    let images = store.tenant(&acme).images();
    images
        .record(&image("app:1", &"c".repeat(64), 0))
        .await
        .unwrap();
    assert_eq!(
        images.get(&digest).await.unwrap(),
        image("app:1", &"c".repeat(64), 0)
    );
    // The same image again (a newer analyzer's SBOM) re-points the record.
    images
        .record(&image("app:2", &"d".repeat(64), 5))
        .await
        .unwrap();
    let listed = images.list(None, 10).await.unwrap().items;
    assert_eq!(listed, [image("app:2", &"d".repeat(64), 5)]);
    assert_eq!(listed[0].archive_size, 1 << 33, "sizes over 4 GiB survive");
    // Pages, newest first, each image once: two more images, one at the same instant.
    let mut other = image("app:3", &"e".repeat(64), 5);
    other.digest = format!("sha256:{}", "f".repeat(64));
    images.record(&other).await.unwrap();
    let mut newest = image("app:4", &"e".repeat(64), 9);
    newest.digest = format!("sha256:{}", "0".repeat(64));
    images.record(&newest).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = images.list(cursor.as_deref(), 1).await.unwrap();
        seen.extend(page.items.into_iter().map(|i| i.name));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["app:4", "app:2", "app:3"]);
    assert!(matches!(
        images.list(Some("yesterday"), 10).await,
        Err(StoreError::Invalid(_))
    ));
    // Another tenant sees nothing, and cannot read it by digest.
    assert!(store
        .tenant(&globex)
        .images()
        .list(None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(matches!(
        store.tenant(&globex).images().get(&digest).await,
        Err(StoreError::NotFound(_))
    ));

    // A scan's status reads the image (and the summary) out of the stored analysis, and
    // none where the analysis names no image.
    let scans = store.tenant(&acme).scans();
    let job = || async {
        store
            .tenant(&acme)
            .jobs()
            .submit(&noop_job(None), &[], t0())
            .await
            .unwrap()
            .job
            .id
    };
    let with_image = job().await;
    let analysis = json!({
        "summary": {"declared": 3},
        "context": {"image": {"name": "app:2", "digest": digest, "layers": ["sha256:1"]}},
        "components": []
    });
    scans
        .record_analysis(
            &with_image,
            &"d".repeat(64),
            "app:2",
            t0(),
            &analysis.to_string(),
            t0(),
        )
        .await
        .unwrap();
    let status = scans.status(&with_image).await.unwrap().unwrap();
    assert_eq!(status.image, Some(analysis["context"]["image"].clone()));
    assert_eq!(status.sbom_summary, Some(json!({"declared": 3})));
    let without = job().await;
    let plain = json!({"summary": {"declared": 1}, "context": {"serial": null}, "components": []});
    scans
        .record_analysis(
            &without,
            &"e".repeat(64),
            "sbom",
            t0(),
            &plain.to_string(),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(scans.status(&without).await.unwrap().unwrap().image, None);

    // The console's chart: sealed scans per hour and disposition, from a time on; a scan
    // not sealed yet is not in it.
    for (id, disposition, minute) in [(&without, "block", 5), (&with_image, "pass", 2)] {
        let verdict = stella_store::repo::VerdictRecord {
            verdict: "{}".into(),
            disposition: disposition.into(),
            counts: json!({}),
            inputs: json!({}),
            inputs_hash: "h".into(),
            findings: Vec::new(),
        };
        assert!(scans.record_verdict(id, &verdict).await.unwrap());
        let event = stella_store::repo::NewEvent {
            kind: "scan.completed".into(),
            dedupe_key: format!("scan.completed:{id}"),
            payload: json!({}),
        };
        scans
            .record_attestation(
                id,
                &"f".repeat(64),
                &event,
                t0() + Duration::minutes(minute),
            )
            .await
            .unwrap();
    }
    // Both completed within the hour that starts at t0: counted per disposition.
    assert_eq!(
        scans.dispositions_by_hour(t0()).await.unwrap(),
        [(t0(), "block".to_owned(), 1), (t0(), "pass".to_owned(), 1)]
    );
    assert_eq!(
        scans
            .dispositions_by_hour(t0() + Duration::minutes(3))
            .await
            .unwrap(),
        [(t0(), "block".to_owned(), 1)]
    );
    assert!(store
        .tenant(&globex)
        .scans()
        .dispositions_by_hour(t0())
        .await
        .unwrap()
        .is_empty());
}
