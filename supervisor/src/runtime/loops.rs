//! The loops of one process's runtime: a consumer per role that hands deliveries to the
//! supervision tree, a janitor per role, and the heartbeat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use stella_store::mailbox::{Delivery, Role};
use stella_store::{telemetry, StoreError};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::shared::Shared;
use crate::tree::messages::Dispatch;
use crate::tree::RootSupervisor;

/// Waits for at least one free slot, then takes as many more as are free, up to `max`.
async fn reserve(
    shared: &Shared,
    max: usize,
    stop: &mut watch::Receiver<bool>,
) -> Option<Vec<OwnedSemaphorePermit>> {
    let first = tokio::select! {
        permit = shared.capacity.clone().acquire_owned() => permit.ok()?,
        _ = stop.changed() => return None,
    };
    let mut permits = vec![first];
    while permits.len() < max {
        match shared.capacity.clone().try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }
    Some(permits)
}

/// With traces exported: one `mailbox.receive` span per received delivery that carries
/// its sender's trace context, a child of the sender's span, and the envelope carries the
/// receive span's context on from here, so the step's `job.step` span is its child. The
/// receive call's duration and the batch size are attributes (the span itself is made
/// once the delivery is known, which is after the call).
fn receive_spans(role: &Role, deliveries: &mut [Delivery], took: Duration) {
    let batch = deliveries.len();
    let receive_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    for delivery in deliveries {
        let Some(sender) = delivery.envelope.trace.take() else {
            continue;
        };
        let envelope = &delivery.envelope;
        let span = tracing::info_span!(
            "mailbox.receive",
            otel.name = "mailbox.receive",
            role = %role,
            tenant = %envelope.tenant,
            kind = %envelope.kind,
            job_id = %envelope.job_id.as_ref().map_or("", |id| id.as_str()),
            attempt = envelope.attempt,
            deliveries = delivery.deliveries,
            batch,
            receive_ms,
        );
        telemetry::adopt(&span, &sender);
        delivery.envelope.trace = span.in_scope(telemetry::traceparent).or(Some(sender));
    }
}

/// Hands received deliveries to the root supervisor in one message (the root splits
/// them by tenant), so a batch costs a couple of actor messages, not two per delivery.
fn dispatch(
    shared: &Shared,
    root: &Addr<RootSupervisor>,
    deliveries: Vec<Delivery>,
    permits: &mut Vec<OwnedSemaphorePermit>,
) {
    let mut batch = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let Some(permit) = permits.pop() else {
            // Cannot happen (receive is capped by the permits); never drop a delivery.
            tracing::error!("received more deliveries than reserved slots");
            break;
        };
        batch.push((delivery, permit));
    }
    if batch.is_empty() {
        return;
    }
    shared.hold(batch.iter().map(|(d, _)| d));
    root.do_send(Dispatch { deliveries: batch });
}

pub(super) async fn consume(
    shared: Arc<Shared>,
    role: Role,
    root: Addr<RootSupervisor>,
    wake: Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let poll = Duration::from_millis(shared.settings.poll_interval_ms);
    let batch = shared.settings.batch_size as usize;
    // A restart under the same consumer name finds its unacknowledged entries first.
    let mut own_pending = true;
    let mut backoff = poll;
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(mut permits) = reserve(&shared, batch, &mut stop).await else {
            return;
        };
        let asked = Instant::now();
        let received = shared
            .mailbox
            .receive(
                &role,
                &shared.consumer,
                permits.len(),
                own_pending,
                Utc::now(),
            )
            .await;
        match received {
            Ok(deliveries) if deliveries.is_empty() => {
                drop(permits);
                if own_pending {
                    own_pending = false;
                    continue;
                }
                // The relay wakes us when it moved entries; the poll finds what other
                // processes' relays sent.
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = wake.notified() => {}
                    _ = stop.changed() => {}
                }
            }
            Ok(mut deliveries) => {
                backoff = poll;
                if telemetry::enabled() {
                    receive_spans(&role, &mut deliveries, asked.elapsed());
                }
                dispatch(&shared, &root, deliveries, &mut permits);
            }
            Err(err) => {
                drop(permits);
                tracing::warn!(role = %role, error = %err, "receive failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(2));
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// Per role: promotes due delayed entries, takes over abandoned entries, and keeps the
/// queue gauges current.
pub(super) async fn janitor(
    shared: Arc<Shared>,
    role: Role,
    root: Addr<RootSupervisor>,
    mut stop: watch::Receiver<bool>,
) {
    let min_idle = Duration::from_millis(shared.settings.min_idle_ms);
    let mut promote = tokio::time::interval(Duration::from_millis(200).min(min_idle));
    let mut claim = tokio::time::interval((min_idle / 2).max(Duration::from_millis(10)));
    let mut stats = tokio::time::interval(Duration::from_secs(5));
    // The tenants last shown by the per-tenant gauge, removed when they leave the top.
    let mut shown: Vec<stella_store::TenantId> = Vec::new();
    for timer in [&mut promote, &mut claim, &mut stats] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = promote.tick() => {
                if let Err(err) = shared.mailbox.promote_due(&role, Utc::now()).await {
                    tracing::warn!(role = %role, error = %err, "promoting delayed entries failed");
                }
            }
            _ = claim.tick() => {
                let free = shared.capacity.available_permits().min(shared.settings.batch_size as usize);
                if free == 0 {
                    continue;
                }
                let mut permits = Vec::new();
                for _ in 0..free {
                    match shared.capacity.clone().try_acquire_owned() {
                        Ok(permit) => permits.push(permit),
                        Err(_) => break,
                    }
                }
                match shared.mailbox.claim_abandoned(&role, &shared.consumer, min_idle, permits.len(), Utc::now()).await {
                    Ok(claimed) => {
                        if !claimed.deliveries.is_empty() {
                            shared.metrics.redeliveries.with_label_values(&[role.as_str()]).inc_by(claimed.deliveries.len() as u64);
                            tracing::info!(role = %role, count = claimed.deliveries.len(), "took over abandoned entries");
                        }
                        for (envelope, reason) in &claimed.dead_lettered {
                            shared.metrics.dead_letters.with_label_values(&[role.as_str()]).inc();
                            tracing::warn!(tenant = %envelope.tenant, reason = %reason, "entry dead-lettered after too many deliveries");
                            if let Err(err) = shared.runner.fail_abandoned(envelope, reason, Utc::now()).await {
                                tracing::warn!(error = %err, "could not record the failure of an abandoned job");
                            }
                        }
                        dispatch(&shared, &root, claimed.deliveries, &mut permits);
                    }
                    Err(err) => tracing::warn!(role = %role, error = %err, "taking over abandoned entries failed"),
                }
            }
            _ = stats.tick() => {
                if let Ok(stats) = shared.mailbox.stats(&role, Utc::now()).await {
                    let gauge = &shared.metrics.mailbox;
                    for (state, value) in [("ready", stats.ready), ("pending", stats.pending), ("delayed", stats.delayed), ("dead", stats.dead)] {
                        gauge.with_label_values(&[role.as_str(), state]).set(i64::try_from(value).unwrap_or(i64::MAX));
                    }
                    #[allow(clippy::cast_precision_loss)] // milliseconds far below 2^52
                    shared.metrics.mailbox_oldest.with_label_values(&[role.as_str()]).set(stats.oldest_ready_ms as f64 / 1000.0);
                    let tenants = &shared.metrics.mailbox_tenant_ready;
                    for gone in shown.iter().filter(|t| !stats.busiest.iter().any(|(b, _)| b == *t)) {
                        let _ = tenants.remove_label_values(&[role.as_str(), gone.as_str()]);
                    }
                    for (tenant, ready) in &stats.busiest {
                        tenants.with_label_values(&[role.as_str(), tenant.as_str()]).set(i64::try_from(*ready).unwrap_or(i64::MAX));
                    }
                    shown = stats.busiest.into_iter().map(|(t, _)| t).collect();
                }
            }
        }
    }
}

/// Keeps held entries from being taken over and the consumer name leased. Losing the
/// lease (another process took the name) stops this runtime from taking work.
///
/// A heartbeat that keeps failing (an error, or no answer within a third of `min_idle`,
/// 1 to 5 s) for longer than the consumer lease (`runtime.lease_secs`) while deliveries
/// are held means the lease is gone and other processes have taken the deliveries over
/// (they may after `min_idle`): a network partition, a stalled link. The runtime stops
/// acting: it touches nothing more (a late touch would claim the entries back), takes
/// no work, and reports itself lost, so the process exits and its supervisor starts a
/// fresh one. A Valkey restart of a few seconds does not come near the lease.
pub(super) async fn heartbeat(
    shared: Arc<Shared>,
    instance: String,
    stop_all: watch::Sender<bool>,
    lost: watch::Sender<Option<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let min_idle = Duration::from_millis(shared.settings.min_idle_ms);
    let lease_ttl = Duration::from_secs(shared.settings.lease_secs);
    // Long enough for a slow but live Valkey, short enough to notice a dead link.
    let answer_within = (min_idle / 3).clamp(Duration::from_secs(1), Duration::from_secs(5));
    let mut touch = tokio::time::interval((min_idle / 3).max(Duration::from_millis(5)));
    let mut lease = tokio::time::interval(Duration::from_secs(5));
    // Since when every heartbeat has failed (none when the last one went through).
    let mut failing_since: Option<std::time::Instant> = None;
    let give_up = |reason: String| {
        tracing::error!(reason = %reason, "stopping this runtime: it no longer owns its deliveries");
        let _ = lost.send(Some(reason));
        let _ = stop_all.send(true);
    };
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = touch.tick() => {
                let held = shared.held_by_role();
                if held.values().all(Vec::is_empty) {
                    failing_since = None;
                    continue;
                }
                if let Some(since) = failing_since.filter(|s| s.elapsed() > lease_ttl) {
                    give_up(format!(
                        "the heartbeat of its held deliveries has failed for {} s, longer than \
                         its consumer lease (runtime.lease_secs = {}): other processes have \
                         taken them over",
                        since.elapsed().as_secs(),
                        lease_ttl.as_secs()
                    ));
                    return;
                }
                let mut ok = true;
                for (role, receipts) in held {
                    let touched = tokio::time::timeout(
                        answer_within,
                        shared.mailbox.touch(&role, &shared.consumer, &receipts, Utc::now()),
                    )
                    .await;
                    match touched {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => {
                            ok = false;
                            tracing::warn!(role = %role, error = %err, "heartbeat failed");
                        }
                        Err(_) => {
                            ok = false;
                            tracing::warn!(role = %role, "heartbeat got no answer in {} ms", answer_within.as_millis());
                        }
                    }
                }
                if ok {
                    failing_since = None;
                } else {
                    failing_since.get_or_insert_with(std::time::Instant::now);
                }
            }
            _ = lease.tick() => {
                let renewed = tokio::time::timeout(
                    Duration::from_secs(5),
                    shared.mailbox.renew(&shared.consumer, &instance),
                )
                .await;
                match renewed {
                    Ok(Ok(())) => {}
                    Ok(Err(StoreError::Conflict(reason))) => {
                        give_up(format!("consumer name lost to another process: {reason}"));
                        return;
                    }
                    Ok(Err(err)) => tracing::warn!(error = %err, "renewing the consumer lease failed"),
                    Err(_) => tracing::warn!("renewing the consumer lease got no answer in 5 s"),
                }
            }
        }
    }
}
