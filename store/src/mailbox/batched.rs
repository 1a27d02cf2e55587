use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::{ConsumerName, Deliver, Delivery, Envelope, Mailbox, Receipt, Role, Wrapper};
use crate::error::{Result, StoreError};

type AckRequest = (Vec<Receipt>, oneshot::Sender<Result<()>>);

/// Wraps a mailbox so concurrent acknowledgements are sent together: while one batch is
/// on its way, the next ones queue up and go in one call. Each caller still waits until
/// its own receipts are acknowledged, so "ack after commit" holds; only the round trips
/// are shared. It changes [`Deliver::ack`] only: the rest of [`Deliver`] is forwarded
/// here, the other capabilities by [`Wrapper`].
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

impl Wrapper for BatchedAcks {
    fn inner(&self) -> &dyn Mailbox {
        &*self.inner
    }
}

#[async_trait]
impl Deliver for BatchedAcks {
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
}
