//! From events to deliveries: what the scheduler's leader does with each batch of the
//! events stream, and with digest groups that wait for their job.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use stella_domain::notify::{
    delivery_id as dedupe_key_of, event_id, DigestWindow, Envelope, RuleSpec,
};
use stella_store::repo::{NewDelivery, NewDigestItem, NewTenantJob, RuleRecord};
use stella_store::{ChannelId, DeliveryId, RuleId, Store, StoreError, TenantId};
use stella_supervisor::{prepare, JobRequest, Registry};

use super::{Notify, NotifyParams};

/// Where the leader has read the events stream to, for notifications.
pub const NOTIFY_CURSOR: &str = "notify.events";

/// One event as the dispatcher reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub seq: i64,
    pub tenant: Option<TenantId>,
    pub kind: String,
    pub dedupe_key: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

/// What one batch of events makes: deliveries, the jobs of the instant ones, and digest
/// items. The caller commits them with the cursor.
#[derive(Debug, Default)]
pub struct Dispatched {
    pub jobs: Vec<NewTenantJob>,
    pub deliveries: Vec<NewDelivery>,
    pub digest_items: Vec<NewDigestItem>,
}

/// The versioned envelope of a stored event. Its id is derived from the event's dedupe
/// key, so it is the same however often it is read; the correlation id is the job, scan,
/// export or run the event is about.
pub fn envelope_of(tenant: &TenantId, row: &EventRow) -> Envelope {
    let correlation = ["scan_id", "export_id", "run_id", "job_id"]
        .iter()
        .find_map(|k| row.payload.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    Envelope {
        id: event_id(&row.dedupe_key),
        kind: row.kind.clone(),
        version: 1,
        tenant: tenant.to_string(),
        occurred_at: row.created_at,
        correlation_id: correlation,
        trace_id: row
            .payload
            .get("trace_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        payload: row.payload.clone(),
    }
}

/// A tenant's rules and channels, read once per batch.
struct TenantRules {
    rules: Vec<(RuleRecord, RuleSpec)>,
    /// Channel name → (id, type).
    channels: HashMap<String, (String, String)>,
}

async fn tenant_rules(store: &Store, tenant: &TenantId) -> Result<TenantRules, StoreError> {
    let notify = store.tenant(tenant).notify();
    let mut rules = Vec::new();
    for record in notify.enabled_rules().await? {
        match RuleSpec::parse(&record.spec) {
            Ok(spec) => rules.push((record, spec)),
            Err(err) => {
                tracing::warn!(%tenant, rule = %record.name, error = %err, "skipping an invalid notification rule");
            }
        }
    }
    let mut channels = HashMap::new();
    if !rules.is_empty() {
        let mut cursor: Option<String> = None;
        loop {
            let page = notify.channels(cursor.as_deref(), 500).await?;
            for c in page.items {
                channels.insert(c.name.clone(), (c.id, c.channel_type));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(TenantRules { rules, channels })
}

/// Matches a batch of events against their tenants' rules. Global events (no tenant)
/// notify nobody directly: the scheduler turns an advisory delta into per-tenant
/// `advisory.impact` events. A rule sees only events recorded after it was created.
pub async fn dispatch(
    store: &Store,
    registry: &Registry,
    events: &[EventRow],
    now: DateTime<Utc>,
) -> Result<Dispatched, StoreError> {
    let mut out = Dispatched::default();
    let mut cache: HashMap<TenantId, TenantRules> = HashMap::new();
    for row in events {
        let Some(tenant) = &row.tenant else { continue };
        if !cache.contains_key(tenant) {
            cache.insert(tenant.clone(), tenant_rules(store, tenant).await?);
        }
        let rules = &cache[tenant];
        if rules.rules.is_empty() {
            continue;
        }
        let envelope = envelope_of(tenant, row);
        let event_value = serde_json::to_value(&envelope).unwrap_or(Value::Null);
        for (record, spec) in &rules.rules {
            if record.created_at > row.created_at || !spec.r#match.matches(&envelope) {
                continue;
            }
            for action in &spec.actions {
                let Some((channel_id, channel_type)) = rules.channels.get(&action.channel) else {
                    tracing::warn!(%tenant, rule = %record.name, channel = %action.channel, "a rule names a channel that no longer exists");
                    continue;
                };
                // One delivery per (event, rule, channel), whatever replays.
                let key = dedupe_key_of(&envelope.id, &record.id, channel_id);
                let delivery_id = DeliveryId::generate();
                let rule_id = RuleId::parse(&record.id)?;
                let channel = ChannelId::parse(channel_id)?;
                let mut delivery = NewDelivery {
                    tenant: tenant.clone(),
                    id: delivery_id.clone(),
                    dedupe_key: key.clone(),
                    event_id: envelope.id.clone(),
                    event_kind: envelope.kind.clone(),
                    event_seq: row.seq,
                    rule_id: Some(rule_id.clone()),
                    channel_id: channel.clone(),
                    channel_type: channel_type.clone(),
                    mode: "instant".into(),
                    job_id: None,
                    status: "pending".into(),
                };
                if action.digest == DigestWindow::Instant {
                    let params = NotifyParams::Delivery {
                        delivery_id: delivery_id.to_string(),
                        channel_id: channel_id.clone(),
                        rule_id: Some(record.id.clone()),
                        template: action.template.clone(),
                        event: event_value.clone(),
                        immediate: false,
                    };
                    let request = JobRequest::of::<Notify>(&params)?.with_key(key);
                    let job = prepare(registry, tenant, &request, now)?;
                    delivery.job_id = Some(job.id.clone());
                    out.jobs.push(job);
                } else {
                    let (_, due_at) = action.digest.window_of(envelope.occurred_at);
                    delivery.mode = "digest".into();
                    delivery.status = "digested".into();
                    out.digest_items.push(NewDigestItem {
                        tenant: tenant.clone(),
                        group_key: format!(
                            "rule:{}:{}:{}",
                            record.id,
                            channel_id,
                            serde_json::to_value(action.digest)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        ),
                        channel_id: channel,
                        rule_id: Some(rule_id),
                        template: action.template.clone(),
                        delivery_id,
                        reason: "window".into(),
                        event: event_value.clone(),
                        due_at,
                    });
                }
                out.deliveries.push(delivery);
            }
        }
    }
    Ok(out)
}

/// One digest job per open digest group's generation (idempotency key
/// `digest:<group>:<generation>`: a pass that runs twice submits nothing twice).
pub async fn digest_jobs(
    store: &Store,
    registry: &Registry,
    now: DateTime<Utc>,
) -> Result<Vec<NewTenantJob>, StoreError> {
    let mut jobs = Vec::new();
    for open in store.open_digests(500).await? {
        let params = NotifyParams::Digest {
            group_key: open.group_key.clone(),
            generation: open.generation,
            channel_id: open.channel_id.clone(),
            rule_id: open.rule_id.clone(),
            template: open.template.clone(),
            due_at: open.due_at,
        };
        let key = format!("digest:{}:{}", open.group_key, open.generation);
        let request = JobRequest::of::<Notify>(&params)?.with_key(key);
        jobs.push(prepare(registry, &open.tenant, &request, now)?);
    }
    Ok(jobs)
}

/// The JSON of a draft rule's preview: which of these events it would have matched.
pub fn preview(spec: &RuleSpec, tenant: &TenantId, events: &[EventRow]) -> Value {
    let matched: Vec<Value> = events
        .iter()
        .map(|row| envelope_of(tenant, row))
        .filter(|e| spec.r#match.matches(e))
        .map(|e| json!({ "event_id": e.id, "kind": e.kind, "occurred_at": e.occurred_at, "payload": e.payload }))
        .collect();
    json!({ "examined": events.len(), "matched": matched.len(), "events": matched })
}
