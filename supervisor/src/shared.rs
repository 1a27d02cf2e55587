use std::collections::HashMap;
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
    /// Every delivery held (running or queued), kept alive by heartbeats.
    held: Mutex<HashMap<(Role, String), Receipt>>,
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
            held: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn hold<'a>(&self, deliveries: impl IntoIterator<Item = &'a Delivery>) {
        if let Ok(mut held) = self.held.lock() {
            for delivery in deliveries {
                let receipt = &delivery.receipt;
                held.insert(
                    (delivery.envelope.role.clone(), receipt.id().to_owned()),
                    receipt.clone(),
                );
            }
            self.metrics
                .in_flight
                .set(i64::try_from(held.len()).unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn release(&self, role: &Role, receipt: &Receipt) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(&(role.clone(), receipt.id().to_owned()));
            self.metrics
                .in_flight
                .set(i64::try_from(held.len()).unwrap_or(i64::MAX));
        }
    }

    /// The held receipts, grouped by role, for a heartbeat.
    pub(crate) fn held_by_role(&self) -> HashMap<Role, Vec<Receipt>> {
        let mut out: HashMap<Role, Vec<Receipt>> = HashMap::new();
        if let Ok(held) = self.held.lock() {
            for ((role, _), receipt) in held.iter() {
                out.entry(role.clone()).or_default().push(receipt.clone());
            }
        }
        out
    }
}
