use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::{
    Claimed, ConsumerName, DeadLetter, Delivery, Envelope, Mailbox, MailboxStats, Receipt, Role,
};
use crate::error::{Result, StoreError};

type AckRequest = (Vec<Receipt>, oneshot::Sender<Result<()>>);

/// Wraps a mailbox so concurrent acknowledgements are sent together: while one batch is
/// on its way, the next ones queue up and go in one call. Each caller still waits until
/// its own receipts are acknowledged, so "ack after commit" holds; only the round trips
/// are shared. Everything else passes straight through.
#[derive(Debug)]
pub struct BatchedAcks {
    inner: Arc<dyn Mailbox>,
    senders: Mutex<HashMap<Role, mpsc::UnboundedSender<AckRequest>>>,
}

/// Receipts acknowledged in one call at most.
const MAX_BATCH: usize = 1024;

impl BatchedAcks {
    pub fn new(inner: Arc<dyn Mailbox>) -> Self {
        Self {
            inner,
            senders: Mutex::new(HashMap::new()),
        }
    }

    fn stopped(&self) -> StoreError {
        StoreError::Unavailable {
            backend: match self.inner.kind() {
                "valkey" => crate::Backend::Valkey,
                _ => crate::Backend::Sqlite,
            },
            reason: "the acknowledgement batcher stopped".into(),
        }
    }

    fn sender(&self, role: &Role) -> Result<mpsc::UnboundedSender<AckRequest>> {
        let mut senders = self.senders.lock().map_err(|_| self.stopped())?;
        if let Some(sender) = senders.get(role).filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(flush(self.inner.clone(), role.clone(), receiver));
        senders.insert(role.clone(), sender.clone());
        Ok(sender)
    }
}

async fn flush(
    inner: Arc<dyn Mailbox>,
    role: Role,
    mut requests: mpsc::UnboundedReceiver<AckRequest>,
) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        let mut count = batch[0].0.len();
        while count < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => {
                    count += request.0.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        let receipts: Vec<Receipt> = batch.iter().flat_map(|(r, _)| r.iter().cloned()).collect();
        let result = inner.ack(&role, &receipts).await;
        for (_, reply) in batch {
            let _ = reply.send(result.clone());
        }
    }
}

#[async_trait]
impl Mailbox for BatchedAcks {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn send(&self, envelopes: &[Envelope], now: DateTime<Utc>) -> Result<usize> {
        self.inner.send(envelopes, now).await
    }

    async fn receive(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        max: usize,
        own_pending: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>> {
        self.inner
            .receive(role, consumer, max, own_pending, now)
            .await
    }

    async fn ack(&self, role: &Role, receipts: &[Receipt]) -> Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let (reply, done) = oneshot::channel();
        self.sender(role)?
            .send((receipts.to_vec(), reply))
            .map_err(|_| self.stopped())?;
        done.await.map_err(|_| self.stopped())?
    }

    async fn retry_later(
        &self,
        delivery: &Delivery,
        next: &Envelope,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.inner.retry_later(delivery, next, now).await
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.inner.dead_letter(delivery, error, now).await
    }

    async fn claim_abandoned(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        min_idle: Duration,
        max: usize,
        now: DateTime<Utc>,
    ) -> Result<Claimed> {
        self.inner
            .claim_abandoned(role, consumer, min_idle, max, now)
            .await
    }

    async fn touch(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        receipts: &[Receipt],
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.inner.touch(role, consumer, receipts, now).await
    }

    async fn promote_due(&self, role: &Role, now: DateTime<Utc>) -> Result<usize> {
        self.inner.promote_due(role, now).await
    }

    async fn stats(&self, role: &Role, now: DateTime<Utc>) -> Result<MailboxStats> {
        self.inner.stats(role, now).await
    }

    async fn dead_letters(&self, role: &Role, limit: usize) -> Result<Vec<DeadLetter>> {
        self.inner.dead_letters(role, limit).await
    }

    async fn replay_dead_letter(&self, role: &Role, id: &str, now: DateTime<Utc>) -> Result<()> {
        self.inner.replay_dead_letter(role, id, now).await
    }

    async fn discard_dead_letter(&self, role: &Role, id: &str) -> Result<()> {
        self.inner.discard_dead_letter(role, id).await
    }

    async fn register(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        self.inner.register(consumer, instance).await
    }

    async fn renew(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        self.inner.renew(consumer, instance).await
    }

    async fn unregister(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        self.inner.unregister(consumer, instance).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}
