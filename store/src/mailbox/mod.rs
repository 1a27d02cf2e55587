//! The mailbox port: durable, at-least-once message delivery per role, fair across
//! tenants.
//!
//! Contract (every adapter passes `store/tests/mailbox_conformance.rs`):
//! - `send` stores an [`Envelope`]; if its `not_before` is in the future it waits in a
//!   delay queue until `promote_due` moves it. A second send with the same
//!   `(idempotency_key, attempt)` within the dedupe window is dropped.
//! - `receive` hands out up to `max` entries of one role to one consumer, taking at most
//!   `max / tenants` from each tenant so a tenant's backlog cannot starve another's.
//!   A received entry is *pending* on that consumer until acknowledged.
//! - `ack` removes entries for good: call it only after the effect is committed.
//! - `retry_later` acknowledges an entry and schedules its next attempt atomically;
//!   `dead_letter` moves it to the dead letters with a reason, atomically.
//! - `claim_abandoned` takes over entries pending longer than `min_idle` on any consumer
//!   (a crashed process); entries delivered more than `max_deliveries` times go to the
//!   dead letters instead of looping.
//! - `register` claims a consumer name for a live process and refuses a name that a live
//!   process holds; `renew` keeps the lease and `touch` keeps long-running entries from
//!   being claimed.
//!
//! The port is five capability traits, so a user holds only what it needs:
//! - [`Deliver`]: `send`, `receive`, and the three ends of a delivery (`ack`,
//!   `retry_later`, `dead_letter`);
//! - [`Reclaim`]: `promote_due`, `claim_abandoned`, `touch`;
//! - [`DeadLetters`]: `replay_dead_letter`, `discard_dead_letter`;
//! - [`ConsumerLease`]: `register`, `renew`, `unregister`;
//! - [`Inspect`], read-only: `kind`, `ping`, `stats`, `dead_letters`.
//!
//! [`Mailbox`] is all five, for the runtime. A wrapper changes one capability and takes
//! the rest from the mailbox it wraps through [`Wrapper`] ([`BatchedAcks`] changes `ack`).
//!
//! Adapters: [`ValkeyMailbox`] (Redis Streams) and [`EmbeddedMailbox`] (the relational
//! store, so the embedded default needs no server).

mod batched;
mod embedded;
mod valkey;
mod wrapper;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

pub use batched::BatchedAcks;
pub use embedded::EmbeddedMailbox;
pub use valkey::ValkeyMailbox;
pub use wrapper::Wrapper;

use crate::error::{Result, StoreError};
use crate::{JobId, TenantId};

/// The longest role name: a role is part of every mailbox key and row of its entries.
const ROLE_MAX_LEN: usize = 40;

/// A role's name (`fetcher`, `analyzer`, `worker`...): a slug, like a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Role(String);

impl Role {
    pub fn parse(value: &str) -> Result<Self> {
        if crate::ids::is_slug(value, ROLE_MAX_LEN) {
            Ok(Self(value.to_owned()))
        } else {
            Err(StoreError::Invalid(format!(
                "role {value:?} must be 1-{ROLE_MAX_LEN} characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
            )))
        }
    }

    /// A role whose name is fixed in code (a role enum's). The name must be valid: each
    /// enum's tests parse every one of its names, and debug builds check here.
    pub fn from_static(name: &'static str) -> Self {
        debug_assert!(
            crate::ids::is_slug(name, ROLE_MAX_LEN),
            "invalid role name {name:?}"
        );
        Self(name.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Role {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<Role> for String {
    fn from(role: Role) -> Self {
        role.0
    }
}

/// One message. Serialized whole into the mailbox, so every adapter carries the same
/// fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    pub tenant: TenantId,
    pub job_id: Option<JobId>,
    pub role: Role,
    pub kind: String,
    pub payload: Payload,
    /// Handler attempts before this one (0 on the first send).
    pub attempt: u32,
    pub idempotency_key: String,
    pub not_before: DateTime<Utc>,
    /// W3C `traceparent` of the sender, if any.
    pub trace: Option<String>,
    pub enqueued_at: DateTime<Utc>,
}

impl Envelope {
    /// A first attempt, due now.
    pub fn new(
        tenant: TenantId,
        role: Role,
        kind: impl Into<String>,
        payload: Value,
        idempotency_key: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            tenant,
            job_id: None,
            role,
            kind: kind.into(),
            payload: Payload::from(&payload),
            attempt: 0,
            idempotency_key: idempotency_key.into(),
            not_before: now,
            trace: None,
            enqueued_at: now,
        }
    }

    /// The same message, for its next attempt, due at `not_before`.
    pub fn next_attempt(&self, not_before: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        Self {
            id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            attempt: self.attempt + 1,
            not_before,
            enqueued_at: now,
            ..self.clone()
        }
    }

    /// The same message as a fresh first attempt, due now: a replayed dead letter.
    pub(crate) fn replayed(&self, now: DateTime<Utc>) -> Self {
        Self {
            attempt: 0,
            ..self.next_attempt(now, now)
        }
    }

    /// Identifies this send for deduplication: the same message and attempt, to the same
    /// tenant and role, is one send.
    pub(crate) fn dedupe_key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.tenant, self.role, self.idempotency_key, self.attempt
        )
    }

    pub(crate) fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|err| StoreError::Invalid(format!("envelope does not serialize: {err}")))
    }

    pub(crate) fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|err| StoreError::Corrupt(format!("mailbox entry is not an envelope: {err}")))
    }
}

/// A message's payload, kept as its JSON text. A worker holds the envelope of every
/// delivery in flight for as long as its step runs (100,000 of them in a busy process):
/// as text a step message costs its 60-odd bytes, where a parsed `serde_json` object
/// costs at least one 632-byte tree node. Read it with [`Payload::decode`] into the type
/// the handler expects, or [`Payload::to_value`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The payload decoded into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.0.get())
    }

    /// The payload as a JSON value.
    pub fn to_value(&self) -> Value {
        // The text was valid JSON when it was made or read.
        self.decode().unwrap_or(Value::Null)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl From<&Value> for Payload {
    fn from(value: &Value) -> Self {
        // A `Value` always serializes: its map keys are strings.
        let text = serde_json::value::to_raw_value(value)
            .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("null is JSON"));
        Self(text)
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self::from(&value)
    }
}

/// Equal when the JSON is: key order and spacing of the text do not matter.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Proof of delivery, needed to acknowledge. Opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub(crate) tenant: TenantId,
    pub(crate) id: String,
}

impl Receipt {
    /// The adapter's id of the entry (stream id, row id), for logs.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A received entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub envelope: Envelope,
    pub receipt: Receipt,
    /// Times this entry has been handed out, this one included (more than 1 means a
    /// consumer died or stalled while holding it).
    pub deliveries: u32,
}

/// What `claim_abandoned` took over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claimed {
    /// Entries now pending on the claiming consumer: process them.
    pub deliveries: Vec<Delivery>,
    /// Entries over `max_deliveries`, moved to the dead letters with this reason, so the
    /// caller can record the failure (for example fail the job).
    pub dead_lettered: Vec<(Envelope, String)>,
}

/// A message that will not be delivered again unless replayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub envelope: Envelope,
    pub error: String,
    pub deliveries: u32,
    pub died_at: DateTime<Utc>,
}

/// A role's queue, for metrics and the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MailboxStats {
    /// Entries waiting to be received.
    pub ready: u64,
    /// Entries received but not acknowledged.
    pub pending: u64,
    /// Entries waiting for their `not_before`.
    pub delayed: u64,
    pub dead: u64,
    /// How long the oldest ready entry has waited to be received, in milliseconds at the
    /// `now` of the call (0: nothing ready): the queue's age, which grows when workers
    /// do not keep up even while the depth stays flat.
    pub oldest_ready_ms: u64,
    /// The tenants with the most ready entries (at most [`BUSIEST_TENANTS`], most first):
    /// who a backlog belongs to, without a metric per tenant.
    pub busiest: Vec<(TenantId, u64)>,
}

/// How many tenants [`MailboxStats::busiest`] names.
pub const BUSIEST_TENANTS: usize = 10;

/// Keeps the `BUSIEST_TENANTS` largest counts, most first (ties by tenant).
pub(crate) fn busiest(mut counts: Vec<(TenantId, u64)>) -> Vec<(TenantId, u64)> {
    counts.retain(|(_, n)| *n > 0);
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(BUSIEST_TENANTS);
    counts
}

/// The longest consumer name.
const CONSUMER_NAME_MAX_LEN: usize = 100;

/// A process's unique name as a consumer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerName(String);

impl ConsumerName {
    pub fn parse(value: &str) -> Result<Self> {
        let valid = (1..=CONSUMER_NAME_MAX_LEN).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(StoreError::Invalid(format!(
                "consumer name {value:?} must be 1-{CONSUMER_NAME_MAX_LEN} characters of A-Z, a-z, 0-9, '-', '_', '.'"
            )))
        }
    }

    /// `<host>-<pid>-<random>`: unique per process without configuration.
    pub fn generate() -> Self {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| {
                h.trim()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .take(40)
                    .collect::<String>()
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "stella".to_owned());
        let random = &uuid::Uuid::new_v4().simple().to_string()[..8];
        Self(format!("{host}-{}-{random}", std::process::id()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConsumerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Mailbox tuning shared by the adapters.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    /// Deliveries after which an entry is dead-lettered instead of handed out again.
    pub max_deliveries: u32,
    /// How long a consumer-name lease lasts without renewal.
    pub lease: Duration,
    /// How long a sent `(idempotency_key, attempt)` is remembered to drop duplicates.
    pub dedupe_window: Duration,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self {
            max_deliveries: 5,
            lease: Duration::from_secs(30),
            dedupe_window: Duration::from_secs(24 * 3600),
        }
    }
}

pub(crate) fn too_many_deliveries(deliveries: u32, limit: u32) -> String {
    format!(
        "delivered {deliveries} times without acknowledgement (limit {limit}): its consumers died or stalled"
    )
}

/// `register` or `renew` found the name taken.
pub(crate) fn name_taken(consumer: &ConsumerName) -> StoreError {
    StoreError::Conflict(format!(
        "consumer name {consumer} is held by a live process"
    ))
}

/// No dead letter of that id (or an id no dead letter could have).
pub(crate) fn no_dead_letter(id: &str) -> StoreError {
    StoreError::NotFound(format!("dead letter {id}"))
}

/// Sending and receiving, and ending each delivery: acknowledged, retried later, or
/// dead-lettered. What producers (the outbox relay) and the job runner use.
#[async_trait]
pub trait Deliver: Send + Sync + fmt::Debug {
    /// Stores the envelopes (delayed ones until due). Returns how many were new (not
    /// dropped as duplicates).
    async fn send(&self, envelopes: &[Envelope], now: DateTime<Utc>) -> Result<usize>;

    /// Up to `max` entries of `role` for `consumer`, fairly across tenants. With
    /// `own_pending`, returns this consumer's unacknowledged entries instead (drain them
    /// first after a restart).
    async fn receive(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        max: usize,
        own_pending: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>>;

    async fn ack(&self, role: &Role, receipts: &[Receipt]) -> Result<()>;

    /// Acknowledges `delivery` and sends `next` (its next attempt) in one step. `next`
    /// goes to the delivery's role (on a Valkey Cluster the step is one script, so its
    /// keys must share the role's slot).
    async fn retry_later(
        &self,
        delivery: &Delivery,
        next: &Envelope,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Acknowledges `delivery` and records it as a dead letter, in one step.
    async fn dead_letter(&self, delivery: &Delivery, error: &str, now: DateTime<Utc>)
        -> Result<()>;
}

/// Bringing entries back into circulation: delayed ones when due, a dead consumer's
/// after `min_idle`, and keeping a live consumer's from being taken. What the runtime's
/// janitor and heartbeat use.
#[async_trait]
pub trait Reclaim: Send + Sync + fmt::Debug {
    /// Moves delayed entries whose time has come into their queues; returns how many.
    async fn promote_due(&self, role: &Role, now: DateTime<Utc>) -> Result<usize>;

    /// Takes over up to `max` entries that have been pending longer than `min_idle`.
    /// Entries over `max_deliveries` are dead-lettered, not returned.
    async fn claim_abandoned(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        min_idle: Duration,
        max: usize,
        now: DateTime<Utc>,
    ) -> Result<Claimed>;

    /// Resets the idle time of entries still being worked on, so they are not claimed.
    async fn touch(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        receipts: &[Receipt],
        now: DateTime<Utc>,
    ) -> Result<()>;
}

/// Acting on dead letters. Listing them is read-only and lives in [`Inspect`].
#[async_trait]
pub trait DeadLetters: Send + Sync + fmt::Debug {
    /// Sends a dead letter again as a fresh attempt and removes it from the dead letters.
    async fn replay_dead_letter(&self, role: &Role, id: &str, now: DateTime<Utc>) -> Result<()>;

    async fn discard_dead_letter(&self, role: &Role, id: &str) -> Result<()>;
}

/// A process's hold on its consumer name, so two live processes never share one.
#[async_trait]
pub trait ConsumerLease: Send + Sync + fmt::Debug {
    /// Claims `consumer` for this process (`instance` identifies the process). Fails with
    /// `Conflict` if a live process holds the name.
    async fn register(&self, consumer: &ConsumerName, instance: &str) -> Result<()>;

    /// Extends the lease; `Conflict` if another process took the name meanwhile.
    async fn renew(&self, consumer: &ConsumerName, instance: &str) -> Result<()>;

    async fn unregister(&self, consumer: &ConsumerName, instance: &str) -> Result<()>;
}

/// What may be seen without changing anything: the readiness check, queue gauges and a
/// console of dead letters hold this and nothing more.
#[async_trait]
pub trait Inspect: Send + Sync + fmt::Debug {
    /// `valkey` or `embedded`, for readiness and diagnostics.
    fn kind(&self) -> &'static str;

    /// Checks the backend answers: the readiness check.
    async fn ping(&self) -> Result<()>;

    async fn stats(&self, role: &Role, now: DateTime<Utc>) -> Result<MailboxStats>;

    /// Dead letters of `role`, oldest first.
    async fn dead_letters(&self, role: &Role, limit: usize) -> Result<Vec<DeadLetter>>;
}

/// Every capability at once: what the runtime holds (`Arc<dyn Mailbox>`). Implemented by
/// whatever implements the five, so an adapter or a wrapper implements the capabilities
/// and never this.
pub trait Mailbox: Deliver + Reclaim + DeadLetters + ConsumerLease + Inspect {}

impl<T: Deliver + Reclaim + DeadLetters + ConsumerLease + Inspect + ?Sized> Mailbox for T {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{busiest, BUSIEST_TENANTS};
    use crate::TenantId;

    #[test]
    fn busiest_keeps_the_largest_counts_most_first_without_empty_tenants() {
        let counts: Vec<(TenantId, u64)> = (0..15u64)
            .map(|i| (TenantId::parse(&format!("t{i:02}")).unwrap(), i % 12))
            .collect();
        let top = busiest(counts);
        assert_eq!(top.len(), BUSIEST_TENANTS);
        assert_eq!(top[0], (TenantId::parse("t11").unwrap(), 11));
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(top.iter().all(|(_, n)| *n > 0));
    }
}
