//! Wrapping a mailbox to change one capability: a wrapper names its inner mailbox
//! ([`Wrapper::inner`]) and implements [`Deliver`](super::Deliver) itself; [`Reclaim`],
//! [`DeadLetters`], [`ConsumerLease`] and [`Inspect`] are forwarded to the inner mailbox
//! here, once for every wrapper. (Forwarding `Deliver` too would leave a wrapper no way
//! to change it: Rust has no specialization, and delivery is what the one wrapper today,
//! [`BatchedAcks`](super::BatchedAcks), changes.)

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Claimed, ConsumerLease, ConsumerName, DeadLetter, DeadLetters, Inspect, Mailbox, MailboxStats,
    Receipt, Reclaim, Role,
};
use crate::error::Result;

/// A mailbox made from another: its [`Deliver`](super::Deliver) is its own, every other
/// capability is the inner mailbox's.
pub trait Wrapper: Send + Sync + std::fmt::Debug {
    fn inner(&self) -> &dyn Mailbox;
}

#[async_trait]
impl<W: Wrapper> Reclaim for W {
    async fn promote_due(&self, role: &Role, now: DateTime<Utc>) -> Result<usize> {
        self.inner().promote_due(role, now).await
    }

    async fn claim_abandoned(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        min_idle: Duration,
        max: usize,
        now: DateTime<Utc>,
    ) -> Result<Claimed> {
        self.inner()
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
        self.inner().touch(role, consumer, receipts, now).await
    }
}

#[async_trait]
impl<W: Wrapper> DeadLetters for W {
    async fn replay_dead_letter(&self, role: &Role, id: &str, now: DateTime<Utc>) -> Result<()> {
        self.inner().replay_dead_letter(role, id, now).await
    }

    async fn discard_dead_letter(&self, role: &Role, id: &str) -> Result<()> {
        self.inner().discard_dead_letter(role, id).await
    }
}

#[async_trait]
impl<W: Wrapper> ConsumerLease for W {
    async fn register(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        self.inner().register(consumer, instance).await
    }

    async fn renew(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        self.inner().renew(consumer, instance).await
    }

    async fn unregister(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        self.inner().unregister(consumer, instance).await
    }
}

#[async_trait]
impl<W: Wrapper> Inspect for W {
    fn kind(&self) -> &'static str {
        self.inner().kind()
    }

    async fn ping(&self) -> Result<()> {
        self.inner().ping().await
    }

    async fn stats(&self, role: &Role, now: DateTime<Utc>) -> Result<MailboxStats> {
        self.inner().stats(role, now).await
    }

    async fn dead_letters(&self, role: &Role, limit: usize) -> Result<Vec<DeadLetter>> {
        self.inner().dead_letters(role, limit).await
    }
}
