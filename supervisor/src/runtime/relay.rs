//! The outbox relay: moves committed outbox rows into the mailbox. Every process that
//! runs workers runs one; several relays sending the same row are harmless, since the
//! mailbox drops a second send of the same `(idempotency key, attempt)`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use stella_store::mailbox::{Envelope, Mailbox, Payload, Role};
use stella_store::{Store, StoreError};
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use crate::metrics::RuntimeMetrics;

const BATCH: u32 = 500;

/// Relays until `stop` turns true. Store or mailbox outages are logged and retried.
///
/// It moves rows as soon as this process commits them (the store's outbox signal) and
/// polls every `poll` for rows other processes committed; after moving rows it wakes
/// this process's consumers (`wake`), so a step's next step starts without waiting for
/// either poll.
pub(super) async fn run(
    store: Store,
    mailbox: Arc<dyn Mailbox>,
    metrics: RuntimeMetrics,
    poll: Duration,
    wake: Vec<Arc<Notify>>,
    mut stop: watch::Receiver<bool>,
) {
    let written = store.outbox_written();
    let mut backoff = poll;
    loop {
        if *stop.borrow() {
            return;
        }
        match relay_once(&store, mailbox.as_ref(), &metrics).await {
            Ok(moved) => {
                backoff = poll;
                if moved > 0 {
                    for consumer in &wake {
                        consumer.notify_one();
                    }
                }
                if moved >= BATCH as usize {
                    continue;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "outbox relay failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = written.notified() => {}
            _ = stop.changed() => {}
        }
    }
}

/// Moves one batch; returns how many rows it handled.
pub async fn relay_once(
    store: &Store,
    mailbox: &dyn Mailbox,
    metrics: &RuntimeMetrics,
) -> Result<usize, StoreError> {
    let outbox = store.outbox();
    let rows = outbox.pending(BATCH).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let mut envelopes = Vec::with_capacity(rows.len());
    for row in &rows {
        let role = match Role::parse(&row.role) {
            Ok(role) => role,
            Err(err) => {
                // A row no role can take would block the relay forever: skip it loudly.
                tracing::error!(seq = row.seq, role = %row.role, error = %err, "outbox row with an invalid role");
                continue;
            }
        };
        metrics
            .outbox_relayed
            .with_label_values(&[role.as_str()])
            .inc();
        envelopes.push(Envelope {
            id: format!("msg_out_{}", row.seq),
            tenant: row.tenant.clone(),
            job_id: row.job_id.clone(),
            role,
            kind: row.kind.clone(),
            payload: Payload::from(&row.payload),
            attempt: row.attempt,
            idempotency_key: row.idempotency_key.clone(),
            not_before: row.not_before,
            trace: row.trace.clone(),
            enqueued_at: now,
        });
    }
    let span = tracing::info_span!("mailbox.send", messages = envelopes.len());
    mailbox.send(&envelopes, now).instrument(span).await?;
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    outbox.mark_relayed(&seqs).await?;
    Ok(rows.len())
}
