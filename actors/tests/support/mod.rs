//! What the export tests share: every kind registered and a runtime running every role
//! over the store and mailbox under test.

use std::sync::Arc;

use stella_actors::scan::ScanDeps;
use stella_actors::{kinds, KindDeps, Role};
use stella_config::RuntimeSettings;
use stella_store::mailbox::{ConsumerName, Mailbox};
use stella_store::Store;
use stella_supervisor::{Registry, Runtime, RuntimeConfig, RuntimeMetrics};

/// Every kind on `scan`'s objects and key, and a runtime taking work for every role.
#[allow(dead_code)] // Not every test binary that shares this module calls it.
pub(crate) async fn start_runtime(
    store: &Store,
    mailbox: Arc<dyn Mailbox>,
    scan: &ScanDeps,
) -> (Registry, Runtime) {
    start_runtime_with(store, mailbox, scan, Default::default()).await
}

/// [`start_runtime`] with these export destinations.
pub(crate) async fn start_runtime_with(
    store: &Store,
    mailbox: Arc<dyn Mailbox>,
    scan: &ScanDeps,
    export_destinations: stella_actors::export::Destinations,
) -> (Registry, Runtime) {
    let registry: Registry = kinds(&KindDeps {
        scan: scan.clone(),
        outbound: stella_actors::outbound::Outbound::new(&Default::default()),
        export_metrics: Default::default(),
        export_destinations,
        notify: stella_actors::notify::NotifyDeps::new(
            stella_actors::outbound::Outbound::new(&Default::default()),
            stella_actors::notify::wire::SecretBox::from_key(&[7; 32]),
            &Default::default(),
        ),
        shadow_metrics: Default::default(),
    });
    let runtime = Runtime::start(RuntimeConfig {
        store: store.clone(),
        mailbox,
        settings: RuntimeSettings {
            poll_interval_ms: 5,
            ..RuntimeSettings::default()
        },
        roles: Role::ALL.iter().map(|r| r.mailbox()).collect(),
        registry: registry.clone(),
        metrics: RuntimeMetrics::new(&prometheus::Registry::new()).unwrap(),
        consumer: ConsumerName::generate(),
    })
    .await
    .unwrap();
    (registry, runtime)
}

/// Makes `document` the tenant's active policy the way people do: an author drafts and
/// submits it, another identity approves it, an operator activates it.
#[allow(dead_code)]
pub(crate) async fn activate_policy(
    store: &Store,
    tenant: &stella_store::TenantId,
    document: &str,
    digest: &str,
) -> stella_store::repo::PolicyRecord {
    use stella_store::repo::{Actor, PolicyTransition as T};
    let policies = store.tenant(tenant).policies();
    let author = Actor {
        identity: "author",
        actor: "ci author",
    };
    let approver = Actor {
        identity: "approver",
        actor: "ci approver",
    };
    let now = chrono::Utc::now();
    let (draft, _) = policies.draft(document, digest, author, now).await.unwrap();
    for (transition, by) in [
        (T::Submit, author),
        (T::Approve, approver),
        (T::Activate, approver),
    ] {
        policies
            .transition(draft.version, transition, by, "test", now)
            .await
            .unwrap();
    }
    policies.get(draft.version).await.unwrap()
}
