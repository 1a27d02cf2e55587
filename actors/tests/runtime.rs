//! The runtime end to end inside one process, on the embedded default (SQLite + embedded
//! mailbox) and on PostgreSQL + Valkey: jobs complete exactly once, failures retry,
//! panics are contained, poison jobs are dead-lettered, tenants are isolated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use stella_actors::diag::{Noop, NoopParams};
use stella_actors::{diagnostics, Role};
use stella_config::RuntimeSettings;
use stella_store::mailbox::{ConsumerName, Mailbox};
use stella_store::repo::JobState;
use stella_store::{JobId, Store, TenantId};
use stella_supervisor::{submit, JobRequest, Runtime, RuntimeConfig, RuntimeMetrics};

fn settings() -> RuntimeSettings {
    RuntimeSettings {
        retry_min_delay_ms: 20,
        retry_max_delay_ms: 100,
        min_idle_ms: 1_000,
        max_attempts: 3,
        poll_interval_ms: 5,
        ..RuntimeSettings::default()
    }
}

async fn start(store: &Store, mailbox: Arc<dyn Mailbox>, settings: RuntimeSettings) -> Runtime {
    Runtime::start(RuntimeConfig {
        store: store.clone(),
        mailbox,
        settings,
        roles: vec![Role::Diag.mailbox()],
        registry: diagnostics(),
        metrics: RuntimeMetrics::new(&prometheus::Registry::new()).unwrap(),
        consumer: ConsumerName::generate(),
    })
    .await
    .unwrap()
}

async fn submit_noop(store: &Store, tenant: &str, params: NoopParams, key: &str) -> JobId {
    let tenant = TenantId::parse(tenant).unwrap();
    store
        .tenants()
        .ensure(&tenant, "t", Utc::now())
        .await
        .unwrap();
    let request = JobRequest::of::<Noop>(&params)
        .unwrap()
        .with_key(key)
        .with_attempts(3);
    submit(store, &diagnostics(), &tenant, &request, Utc::now())
        .await
        .unwrap()
        .job
        .id
}

async fn wait_until_finished(store: &Store, tenant: &str, id: &JobId) -> stella_store::repo::Job {
    let tenant = TenantId::parse(tenant).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = store.tenant(&tenant).jobs().get(id).await.unwrap();
        if job.state.is_terminal() {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} still {} after 60 s",
            job.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

macro_rules! runtime_suite {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[actix_rt::test]
                async fn $test() {
                    let db = crate::common::sqlite().await;
                    let mailbox: std::sync::Arc<dyn stella_store::mailbox::Mailbox> = std::sync::Arc::new(
                        stella_store::mailbox::EmbeddedMailbox::new(db.store.clone(), crate::common::mailbox_config()),
                    );
                    super::$test(&db.store, mailbox).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres_valkey {
            $(
                #[actix_rt::test]
                async fn $test() {
                    let Some(db) = crate::common::postgres().await else { return };
                    let Some(mailbox) = crate::common::valkey_mailbox().await else { return };
                    super::$test(&db.store, mailbox.mailbox.clone()).await;
                    mailbox.finish().await;
                    db.finish().await;
                }
            )*
        }
    };
}

runtime_suite!(
    jobs_complete_with_exactly_one_effect_each,
    failed_attempts_are_retried_until_they_succeed,
    a_job_that_always_panics_is_dead_lettered_with_its_error_and_others_proceed,
    a_tenant_backlog_does_not_delay_another_tenants_job,
    the_supervision_tree_is_observable,
    a_tenant_whose_handlers_keep_panicking_is_quarantined_and_others_proceed,
);

async fn jobs_complete_with_exactly_one_effect_each(store: &Store, mailbox: Arc<dyn Mailbox>) {
    let runtime = start(store, mailbox, settings()).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let tenant = ["acme", "globex", "initech"][i % 3];
        ids.push((
            tenant,
            submit_noop(store, tenant, NoopParams::default(), &format!("k{i}")).await,
        ));
    }
    for (tenant, id) in &ids {
        let job = wait_until_finished(store, tenant, id).await;
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!(job.attempts, 1);
        assert_eq!(job.result, Some(json!({"effect_written": true})));
    }
    for tenant in ["acme", "globex", "initech"] {
        let totals = store
            .tenant(&TenantId::parse(tenant).unwrap())
            .noop()
            .totals()
            .await
            .unwrap();
        assert_eq!((totals.effects, totals.executions), (10, 10), "{tenant}");
    }
    runtime.shutdown(Duration::from_secs(5)).await;
}

async fn failed_attempts_are_retried_until_they_succeed(store: &Store, mailbox: Arc<dyn Mailbox>) {
    let runtime = start(store, mailbox, settings()).await;
    let params = NoopParams {
        fail_first: 2,
        ..NoopParams::default()
    };
    let id = submit_noop(store, "acme", params, "flaky").await;
    let job = wait_until_finished(store, "acme", &id).await;
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.attempts, 3);
    let history: Vec<_> = store
        .tenant(&TenantId::parse("acme").unwrap())
        .jobs()
        .events(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.to_state)
        .collect();
    use JobState::*;
    assert_eq!(
        history,
        [Queued, Running, Retrying, Running, Retrying, Running, Succeeded]
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

async fn a_job_that_always_panics_is_dead_lettered_with_its_error_and_others_proceed(
    store: &Store,
    mailbox: Arc<dyn Mailbox>,
) {
    let runtime = start(store, mailbox.clone(), settings()).await;
    let poison = NoopParams {
        panic_always: true,
        ..NoopParams::default()
    };
    let bad = submit_noop(store, "acme", poison, "poison").await;
    let mut good = Vec::new();
    for i in 0..10 {
        good.push(submit_noop(store, "acme", NoopParams::default(), &format!("ok{i}")).await);
    }
    let job = wait_until_finished(store, "acme", &bad).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts, 3);
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .contains("panicked: noop job panics on attempt 3"),
        "{:?}",
        job.last_error
    );
    for id in &good {
        assert_eq!(
            wait_until_finished(store, "acme", id).await.state,
            JobState::Succeeded
        );
    }
    let dead = mailbox
        .dead_letters(&Role::Diag.mailbox(), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].error.contains("job failed after 3 attempts"),
        "{}",
        dead[0].error
    );
    assert!(dead[0].error.contains("panicked"), "{}", dead[0].error);
    runtime.shutdown(Duration::from_secs(5)).await;
}

async fn a_tenant_backlog_does_not_delay_another_tenants_job(
    store: &Store,
    mailbox: Arc<dyn Mailbox>,
) {
    // The backlog is queued before any worker runs, so it is all waiting at once.
    let slow = NoopParams {
        sleep_ms: 20,
        ..NoopParams::default()
    };
    let mut backlog = Vec::new();
    for i in 0..300 {
        backlog.push(submit_noop(store, "big", slow.clone(), &format!("b{i}")).await);
    }
    let single = submit_noop(store, "small", NoopParams::default(), "s").await;
    let runtime = start(
        store,
        mailbox,
        RuntimeSettings {
            concurrency: 8,
            tenant_concurrency: 8,
            batch_size: 8,
            ..settings()
        },
    )
    .await;
    wait_until_finished(store, "small", &single).await;
    let big = TenantId::parse("big").unwrap();
    let done = store
        .tenant(&big)
        .jobs()
        .count_in(JobState::Succeeded)
        .await
        .unwrap();
    // 300 jobs of 20 ms on 8 slots take about 750 ms; the small tenant's job must not
    // wait for more than a batch or two of them.
    assert!(
        done <= 40,
        "the small tenant waited for {done} of the big tenant's jobs"
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

async fn the_supervision_tree_is_observable(store: &Store, mailbox: Arc<dyn Mailbox>) {
    let runtime = start(store, mailbox, settings()).await;
    let slow = NoopParams {
        sleep_ms: 500,
        ..NoopParams::default()
    };
    let id = submit_noop(store, "acme", slow, "slow").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let snapshot = loop {
        let snapshot = runtime.observe().await;
        if snapshot.children.iter().any(|t| t.in_flight > 0) {
            break snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "no tenant actor ever showed work: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(snapshot.kind, "root");
    let tenant = &snapshot.children[0];
    assert_eq!(
        (tenant.name.as_str(), tenant.kind.as_str()),
        ("acme", "tenant")
    );
    assert_eq!(tenant.children[0].kind, "job");
    assert_eq!(tenant.children[0].name, id.to_string());
    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(json["children"][0]["name"], "acme");
    wait_until_finished(store, "acme", &id).await;
    runtime.shutdown(Duration::from_secs(5)).await;
}

async fn a_tenant_whose_handlers_keep_panicking_is_quarantined_and_others_proceed(
    store: &Store,
    mailbox: Arc<dyn Mailbox>,
) {
    let registry = prometheus::Registry::new();
    let runtime = Runtime::start(RuntimeConfig {
        store: store.clone(),
        mailbox,
        settings: RuntimeSettings {
            restart_max: 2,
            restart_within_secs: 60,
            quarantine_secs: 600,
            max_attempts: 5,
            ..settings()
        },
        roles: vec![Role::Diag.mailbox()],
        registry: diagnostics(),
        metrics: RuntimeMetrics::new(&registry).unwrap(),
        consumer: ConsumerName::generate(),
    })
    .await
    .unwrap();
    let poison = NoopParams {
        panic_always: true,
        ..NoopParams::default()
    };
    for i in 0..6 {
        submit_noop(store, "bad", poison.clone(), &format!("p{i}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let bad = loop {
        let snapshot = runtime.observe().await;
        // Quarantined, and the attempts already running when it began have finished.
        if let Some(bad) = snapshot
            .children
            .iter()
            .find(|t| t.name == "bad" && t.quarantined && t.in_flight == 0)
        {
            break bad.clone();
        }
        assert!(Instant::now() < deadline, "never quarantined: {snapshot:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(bad.restarts > 2, "{bad:?}");
    assert!(
        bad.last_error.as_deref().unwrap_or("").contains("panicked"),
        "{bad:?}"
    );
    let quarantined = registry
        .gather()
        .into_iter()
        .find(|m| m.name() == "stella_actors_quarantined")
        .map(|m| m.get_metric()[0].get_gauge().get_value());
    assert_eq!(quarantined, Some(1.0));

    // The quarantined tenant takes no work; another tenant is unaffected.
    let executions_then = store
        .tenant(&TenantId::parse("bad").unwrap())
        .noop()
        .totals()
        .await
        .unwrap()
        .executions;
    let good = submit_noop(store, "good", NoopParams::default(), "fine").await;
    assert_eq!(
        wait_until_finished(store, "good", &good).await.state,
        JobState::Succeeded
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let executions_now = store
        .tenant(&TenantId::parse("bad").unwrap())
        .noop()
        .totals()
        .await
        .unwrap()
        .executions;
    assert_eq!(
        executions_now, executions_then,
        "a quarantined tenant kept running handlers"
    );
    runtime.shutdown(Duration::from_secs(1)).await;
}
