//! The kind API through the real runtime, on the embedded default (SQLite + embedded
//! mailbox): a step's staged writes commit with its outcome and only then, a
//! `retry_after` is waited out, a step naming itself is refused, and parameters are
//! checked as the kind reads them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use stella_config::RuntimeSettings;
use stella_store::mailbox::{ConsumerName, EmbeddedMailbox, Mailbox, Role};
use stella_store::repo::{Effect, Job, JobState};
use stella_store::{JobId, Store, TenantId};
use stella_supervisor::{
    submit, InvalidParams, JobRequest, Kind, Registry, Runtime, RuntimeConfig, RuntimeMetrics,
    Step, StepContext, StepError, StepOutcome, Submitters,
};
use stella_test_harness as common;

/// A kind that fails, waits and stages on request.
#[derive(Debug)]
struct Probe;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ProbeParams {
    /// The first attempt of `start` fails, asking to be retried after this long.
    retry_after_ms: Option<u64>,
    /// `start` names itself as the next step.
    loop_on_start: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeStep {
    Start,
    Finish,
}

impl Step for ProbeStep {
    const ALL: &'static [Self] = &[ProbeStep::Start, ProbeStep::Finish];

    fn name(self) -> &'static str {
        match self {
            ProbeStep::Start => "start",
            ProbeStep::Finish => "finish",
        }
    }

    fn role(self) -> Role {
        Role::from_static("probe")
    }
}

#[async_trait]
impl Kind for Probe {
    const NAME: &'static str = "probe";
    const SUBMITTERS: Submitters = Submitters::Tenants;
    type Params = ProbeParams;
    type Step = ProbeStep;

    fn check(&self, params: &ProbeParams) -> Result<(), InvalidParams> {
        match params.retry_after_ms {
            Some(ms) if ms > 60_000 => {
                Err(InvalidParams::new("retry_after_ms", "at most a minute"))
            }
            _ => Ok(()),
        }
    }

    async fn run(
        &self,
        step: ProbeStep,
        params: &ProbeParams,
        ctx: &mut StepContext<'_>,
    ) -> Result<StepOutcome<ProbeStep>, StepError> {
        match step {
            ProbeStep::Start => {
                // Staged before failing: a failed attempt must commit none of it.
                ctx.stage(Effect::NoopWritten);
                if params.loop_on_start {
                    return Ok(StepOutcome::Next(ProbeStep::Start));
                }
                if let (Some(ms), 1) = (params.retry_after_ms, ctx.attempt) {
                    return Err(StepError::retry_after(
                        "the other side asked to wait",
                        Duration::from_millis(ms),
                    ));
                }
                Ok(StepOutcome::Next(ProbeStep::Finish))
            }
            ProbeStep::Finish => Ok(StepOutcome::Done(json!({ "finished": true }))),
        }
    }
}

fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register(Probe);
    registry
}

async fn start(store: &Store) -> Runtime {
    let mailbox: Arc<dyn Mailbox> = Arc::new(EmbeddedMailbox::new(
        store.clone(),
        common::mailbox_config(),
    ));
    Runtime::start(RuntimeConfig {
        store: store.clone(),
        mailbox,
        settings: RuntimeSettings {
            // The runtime's own first back-off is 20 ms: a wait of seconds is the step's.
            // Nothing waits longer than 3 s.
            retry_min_delay_ms: 20,
            retry_max_delay_ms: 3_000,
            poll_interval_ms: 5,
            ..RuntimeSettings::default()
        },
        roles: vec![Role::from_static("probe")],
        registry: registry(),
        metrics: RuntimeMetrics::new(&prometheus::Registry::new()).unwrap(),
        consumer: ConsumerName::generate(),
    })
    .await
    .unwrap()
}

async fn submit_probe(store: &Store, tenant: &TenantId, params: &ProbeParams) -> JobId {
    store
        .tenants()
        .ensure(tenant, "t", Utc::now())
        .await
        .unwrap();
    let request = JobRequest::of::<Probe>(params).unwrap().with_attempts(3);
    submit(store, &registry(), tenant, &request, Utc::now())
        .await
        .unwrap()
        .job
        .id
}

async fn wait_for(
    store: &Store,
    tenant: &TenantId,
    id: &JobId,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = store.tenant(tenant).jobs().get(id).await.unwrap();
        if done(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} still {} at {}",
            job.state,
            job.step
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn a_retry_after_is_waited_out_and_a_failed_attempt_commits_nothing_it_staged() {
    let db = common::sqlite().await;
    let store = &db.store;
    let tenant = TenantId::parse("acme").unwrap();
    let runtime = start(store).await;
    let params = ProbeParams {
        retry_after_ms: Some(1_500),
        ..ProbeParams::default()
    };
    let id = submit_probe(store, &tenant, &params).await;

    let retrying = wait_for(store, &tenant, &id, |job| job.state == JobState::Retrying).await;
    assert_eq!(
        retrying.last_error.as_deref(),
        Some("the other side asked to wait")
    );
    let effects = store.tenant(&tenant).noop().totals().await.unwrap().effects;
    assert_eq!(
        effects, 0,
        "the failed attempt's staged write was committed"
    );

    let done = wait_for(store, &tenant, &id, |job| job.state.is_terminal()).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({ "finished": true })));
    let effects = store.tenant(&tenant).noop().totals().await.unwrap().effects;
    assert_eq!(effects, 1, "the successful attempt's staged write, once");

    // The second attempt started no earlier than the step asked, though the runtime's
    // own back-off was 20 ms.
    let waited = waited_before_retry(store, &tenant, &id).await;
    assert!(
        waited >= chrono::Duration::milliseconds(1_500),
        "retried after {waited}"
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    db.finish().await;
}

/// How long the job waited between its failed attempt and the next.
async fn waited_before_retry(store: &Store, tenant: &TenantId, id: &JobId) -> chrono::Duration {
    let events = store.tenant(tenant).jobs().events(id).await.unwrap();
    let failed = events
        .iter()
        .find(|e| e.to_state == JobState::Retrying)
        .expect("a retrying event");
    let restarted = events
        .iter()
        .find(|e| e.from_state == Some(JobState::Retrying) && e.to_state == JobState::Running)
        .expect("a restart");
    restarted.at - failed.at
}

#[actix_rt::test]
async fn a_retry_after_longer_than_the_longest_back_off_waits_the_longest_back_off() {
    let db = common::sqlite().await;
    let store = &db.store;
    let tenant = TenantId::parse("acme").unwrap();
    let runtime = start(store).await;
    let params = ProbeParams {
        retry_after_ms: Some(60_000),
        ..ProbeParams::default()
    };
    let id = submit_probe(store, &tenant, &params).await;
    let done = wait_for(store, &tenant, &id, |job| job.state.is_terminal()).await;
    assert_eq!(done.state, JobState::Succeeded);
    let waited = waited_before_retry(store, &tenant, &id).await;
    assert!(
        waited >= chrono::Duration::milliseconds(3_000) && waited < chrono::Duration::seconds(20),
        "a minute's Retry-After waited {waited}, not the 3 s cap"
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    db.finish().await;
}

#[actix_rt::test]
async fn a_step_naming_itself_next_fails_the_job_and_commits_nothing() {
    let db = common::sqlite().await;
    let store = &db.store;
    let tenant = TenantId::parse("acme").unwrap();
    let runtime = start(store).await;
    let params = ProbeParams {
        loop_on_start: true,
        ..ProbeParams::default()
    };
    let id = submit_probe(store, &tenant, &params).await;
    let done = wait_for(store, &tenant, &id, |job| job.state.is_terminal()).await;
    assert_eq!(done.state, JobState::Failed);
    assert!(
        done.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("names itself as the next step"),
        "{:?}",
        done.last_error
    );
    let effects = store.tenant(&tenant).noop().totals().await.unwrap().effects;
    assert_eq!(effects, 0);
    runtime.shutdown(Duration::from_secs(5)).await;
    db.finish().await;
}

#[test]
fn parameters_are_checked_as_the_kind_reads_them() {
    let registry = registry();
    assert!(registry.kind("nope").is_none());
    let probe = registry.kind(Probe::NAME).unwrap();
    assert_eq!(probe.submitters, Submitters::Tenants);

    let unknown = JobRequest::checked(&probe, json!({ "bogus": 1 })).unwrap_err();
    assert_eq!(unknown.field, "");
    assert!(
        unknown
            .message
            .starts_with("invalid probe parameters: unknown field `bogus`"),
        "{}",
        unknown.message
    );
    let too_long = JobRequest::checked(&probe, json!({ "retry_after_ms": 3_600_000 })).unwrap_err();
    assert_eq!(
        too_long,
        InvalidParams::new("retry_after_ms", "at most a minute")
    );
    let ok = JobRequest::checked(&probe, json!({ "retry_after_ms": 10 })).unwrap();
    assert_eq!(ok.kind(), "probe");
    assert_eq!(
        registry.check::<Probe>(&ProbeParams::default()),
        Some(Ok(()))
    );
}

/// What one held delivery costs while its step runs is mostly the step runner's future
/// (the delivery, the started job and the state of every await on the way to the
/// commit), one per job in flight: 100,000 jobs in flight hold 100,000 of them. The
/// runner keeps rare paths (taking over, failing an attempt) out of line and starts and
/// commits in boxed calls of their own, so that this stays small: 2,816 bytes before
/// the rare paths were boxed, 1,648 after, 792 once starting and committing were apart,
/// 648 with the plain-message path boxed, 512 holding only what a step reads of the
/// job (`RunningJob`, not the 272-byte row) (the same in debug and release builds).
#[actix_rt::test]
async fn a_running_step_holds_a_small_future() {
    let db = common::sqlite().await;
    let store = db.store.clone();
    let mailbox: Arc<dyn Mailbox> = Arc::new(EmbeddedMailbox::new(
        store.clone(),
        common::mailbox_config(),
    ));
    let tenant = TenantId::parse("memory").unwrap();
    submit_probe(&store, &tenant, &ProbeParams::default()).await;
    let metrics = RuntimeMetrics::new(&prometheus::Registry::new()).unwrap();
    stella_supervisor::relay_once(&store, mailbox.as_ref(), &metrics)
        .await
        .unwrap();
    let consumer = ConsumerName::generate();
    let deliveries = mailbox
        .receive(&Role::from_static("probe"), &consumer, 1, false, Utc::now())
        .await
        .unwrap();
    let delivery = deliveries.first().expect("the submitted job's first step");
    let runner = stella_supervisor::StepRunner {
        store: store.clone(),
        mailbox: mailbox.clone(),
        registry: registry(),
        retry: stella_supervisor::RetryPolicy {
            min_delay: Duration::from_millis(20),
            factor: 2.0,
            max_delay: Duration::from_secs(1),
            max_attempts: 3,
        },
    };
    let step = runner.run(delivery, Utc::now);
    let size = std::mem::size_of_val(&step);
    eprintln!("the step runner's future: {size} bytes");
    assert!(size <= 560, "the step runner's future is {size} bytes");
    // And it still runs the step to its end.
    let finish = step.await.unwrap();
    assert_eq!(finish, stella_supervisor::Finish::Completed);
}
