use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use stella_config::RuntimeSettings;
use stella_store::mailbox::{ConsumerName, Delivery, Mailbox, Receipt, Role};
use tokio::sync::Semaphore;

use crate::job::StepRunner;
use crate::metrics::RuntimeMetrics;

/// What every part of one process's runtime shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) runner: StepRunner,
    pub(crate) mailbox: Arc<dyn Mailbox>,
    pub(crate) settings: RuntimeSettings,
    pub(crate) metrics: RuntimeMetrics,
    pub(crate) consumer: ConsumerName,
    /// One permit per delivery this process may hold at once (`runtime.concurrency`).
    pub(crate) capacity: Arc<Semaphore>,
    /// Every delivery held (running or queued), kept alive by heartbeats. Keyed by the
    /// whole receipt: entry ids are per tenant stream, so two tenants' entries can share
    /// one (a key of role and id alone let one hide the other from the heartbeat, and
    /// the hidden one, going idle, was taken over while it ran).
    held: Mutex<HashSet<(Role, Receipt)>>,
}

impl Shared {
    pub(crate) fn new(
        runner: StepRunner,
        settings: RuntimeSettings,
        metrics: RuntimeMetrics,
        consumer: ConsumerName,
    ) -> Self {
        let capacity = Arc::new(Semaphore::new(settings.concurrency as usize));
        Self {
            mailbox: runner.mailbox.clone(),
            runner,
            settings,
            metrics,
            consumer,
            capacity,
            held: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn hold<'a>(&self, deliveries: impl IntoIterator<Item = &'a Delivery>) {
        if let Ok(mut held) = self.held.lock() {
            for delivery in deliveries {
                held.insert((delivery.envelope.role.clone(), delivery.receipt.clone()));
            }
            self.metrics
                .in_flight
                .set(i64::try_from(held.len()).unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn release(&self, role: &Role, receipt: &Receipt) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(&(role.clone(), receipt.clone()));
            self.metrics
                .in_flight
                .set(i64::try_from(held.len()).unwrap_or(i64::MAX));
        }
    }

    /// The held receipts, grouped by role, for a heartbeat.
    pub(crate) fn held_by_role(&self) -> HashMap<Role, Vec<Receipt>> {
        let mut out: HashMap<Role, Vec<Receipt>> = HashMap::new();
        if let Ok(held) = self.held.lock() {
            for (role, receipt) in held.iter() {
                out.entry(role.clone()).or_default().push(receipt.clone());
            }
        }
        out
    }
}
