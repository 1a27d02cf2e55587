//! The notifier's use cases for the API and the CLI: channels (with their secrets sealed
//! and write-only), rules, templates, a draft rule's preview, a channel's test message
//! and redelivery.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use stella_domain::notify::webhook::WebhookSecret;
use stella_domain::notify::{template, ChannelConfig, ChannelSpec, Envelope, RuleSpec};
use stella_store::repo::{ChannelRecord, DeliveryRecord, NewDelivery, RuleRecord, TemplateRecord};
use stella_store::{ChannelId, DeliveryId, JobId, Store, StoreError, TenantId};
use stella_supervisor::{submit, JobRequest, Registry};

use super::dispatch::{preview as preview_events, EventRow};
use super::wire::SecretBox;
use super::{Notify, NotifyParams};
use crate::outbound::Outbound;

/// How long the previous webhook signing secret still signs after a rotation.
const ROTATION_OVERLAP_HOURS: i64 = 24;
/// Largest template source accepted.
const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// Why a use case refused.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// A field is wrong: `pointer` is its JSON pointer in the request body.
    #[error("{pointer}: {message}")]
    Invalid { pointer: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ManageError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => ManageError::NotFound(format!("{what} does not exist")),
            StoreError::Conflict(why) => ManageError::Conflict(why),
            other => ManageError::Store(other),
        }
    }
}

fn invalid(pointer: &str, message: impl Into<String>) -> ManageError {
    ManageError::Invalid {
        pointer: pointer.to_owned(),
        message: message.into(),
    }
}

/// What a channel keeps sealed: the destination URL when it is itself a secret (Slack's
/// and Teams' webhook URLs carry their token), and the webhook signing secrets (the
/// current one first; during a rotation the previous one until `previous_until`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelSecret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_until: Option<DateTime<Utc>>,
}

impl ChannelSecret {
    /// The secrets that sign now: the current one, and the previous one during its
    /// overlap.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<WebhookSecret> {
        let keep = if self.previous_until.is_some_and(|until| until > now) {
            2
        } else {
            1
        };
        self.signing
            .iter()
            .take(keep)
            .filter_map(|s| WebhookSecret::parse(s).ok())
            .collect()
    }
}

/// A new webhook signing secret, `whsec_…`.
fn fresh_secret() -> String {
    stella_domain::notify::new_secret(rand::random::<[u8; 24]>())
        .expose()
        .to_string()
}

/// The additional data of a channel's sealed secret: it cannot be moved to another
/// channel or tenant.
fn aad(tenant: &str, channel: &str) -> String {
    format!("notify-channel:{tenant}:{channel}")
}

/// Opens a channel's sealed secret (an empty one when it has none).
pub fn open_secret(
    secrets: &SecretBox,
    tenant: &str,
    channel: &str,
    sealed: Option<&str>,
) -> Result<ChannelSecret, String> {
    let Some(sealed) = sealed else {
        return Ok(ChannelSecret::default());
    };
    let plain = secrets.open(sealed, &aad(tenant, channel)).map_err(|err| {
        format!("its secret cannot be opened ({err}); was notify.secrets_key_file changed?")
    })?;
    serde_json::from_slice(&plain).map_err(|err| format!("its secret is unreadable: {err}"))
}

fn seal(secrets: &SecretBox, tenant: &str, channel: &str, secret: &ChannelSecret) -> String {
    let plain = serde_json::to_vec(secret).unwrap_or_default();
    secrets.seal(&plain, &aad(tenant, channel))
}

/// A channel as the API shows it: its spec (a secret URL reduced to its host), whether
/// it has a secret, and, once, a webhook signing secret Stella generated.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    #[serde(flatten)]
    pub record: ChannelRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// Creates or replaces the channel `name` from a request body (a channel spec, plus
/// `secret` for a webhook's signing secret). A webhook without a secret gets one
/// generated, returned once. Slack and Teams URLs are sealed and shown by host only.
pub async fn put_channel(
    store: &Store,
    secrets: &SecretBox,
    outbound: &Outbound,
    tenant: &TenantId,
    name: &str,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<ChannelView, ManageError> {
    let mut body = body.clone();
    let Some(object) = body.as_object_mut() else {
        return Err(invalid("", "a channel is a JSON object"));
    };
    let given_secret = match object.remove("secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(invalid("/secret", "must be a string (whsec_…)")),
    };
    match object.get("name") {
        None => {
            object.insert("name".into(), json!(name));
        }
        Some(n) if n == name => {}
        Some(_) => return Err(invalid("/name", "differs from the name in the path")),
    }
    let spec = ChannelSpec::parse(&body).map_err(|err| invalid(&err.pointer, err.message))?;
    let repo = store.tenant(tenant).notify();
    let existing = match repo.channel(name).await {
        Ok(c) => Some(c),
        Err(StoreError::NotFound(_)) => None,
        Err(err) => return Err(err.into()),
    };
    let mut secret = match &existing {
        Some(c) => open_secret(
            secrets,
            tenant.as_str(),
            &c.name,
            repo.channel_secret(&c.id).await?.as_deref(),
        )
        .map_err(ManageError::Conflict)?,
        None => ChannelSecret::default(),
    };
    let mut generated = None;
    let mut stored = body.clone();
    match &spec.config {
        ChannelConfig::Webhook { url } => {
            outbound
                .check(url)
                .map_err(|err| invalid("/config/url", err.to_string()))?;
            secret.url = None;
            if let Some(given) = given_secret {
                WebhookSecret::parse(&given).map_err(|err| invalid("/secret", err.message))?;
                secret.signing = vec![given];
                secret.previous_until = None;
            } else if secret.signing.is_empty() {
                let fresh = fresh_secret();
                generated = Some(fresh.clone());
                secret.signing = vec![fresh];
            }
        }
        ChannelConfig::Slack { url } | ChannelConfig::Teams { url } => {
            if given_secret.is_some() {
                return Err(invalid(
                    "/secret",
                    "only webhook channels have a signing secret",
                ));
            }
            let checked = outbound
                .check(url)
                .map_err(|err| invalid("/config/url", err.to_string()))?;
            secret.url = Some(url.clone());
            secret.signing.clear();
            stored["config"]["url"] = json!(format!(
                "{}://{}/redacted",
                checked.scheme(),
                checked.host_str().unwrap_or("host")
            ));
        }
        ChannelConfig::Email { .. } => {
            if given_secret.is_some() {
                return Err(invalid(
                    "/secret",
                    "only webhook channels have a signing secret",
                ));
            }
            secret = ChannelSecret::default();
        }
    }
    let sealed =
        (secret != ChannelSecret::default()).then(|| seal(secrets, tenant.as_str(), name, &secret));
    let record = match existing {
        Some(c) => {
            repo.update_channel(&c.id, &stored, sealed.as_deref(), now)
                .await?
        }
        None => {
            repo.create_channel(
                name,
                spec.config.channel_type().as_str(),
                &stored,
                sealed.as_deref(),
                now,
            )
            .await?
        }
    };
    Ok(ChannelView {
        record,
        signing_secret: generated,
    })
}

/// Rotates a webhook channel's signing secret: the new one signs from now on, the
/// previous one too for another day (receivers accept either). Returns the new secret.
pub async fn rotate_secret(
    store: &Store,
    secrets: &SecretBox,
    tenant: &TenantId,
    name: &str,
    now: DateTime<Utc>,
) -> Result<String, ManageError> {
    let repo = store.tenant(tenant).notify();
    let channel = repo.channel(name).await?;
    if channel.channel_type != "webhook" {
        return Err(ManageError::Conflict(format!(
            "the channel {name} is a {} channel; only webhooks have signing secrets",
            channel.channel_type
        )));
    }
    let sealed = repo.channel_secret(&channel.id).await?;
    let mut secret = open_secret(secrets, tenant.as_str(), &channel.name, sealed.as_deref())
        .map_err(ManageError::Conflict)?;
    let fresh = fresh_secret();
    secret.signing.truncate(1);
    secret.signing.insert(0, fresh.clone());
    secret.previous_until = Some(now + Duration::hours(ROTATION_OVERLAP_HOURS));
    let sealed = seal(secrets, tenant.as_str(), &channel.name, &secret);
    repo.update_channel(&channel.id, &channel.spec, Some(&sealed), now)
        .await?;
    Ok(fresh)
}

/// Deletes a channel no rule names.
pub async fn delete_channel(
    store: &Store,
    tenant: &TenantId,
    name: &str,
) -> Result<(), ManageError> {
    let repo = store.tenant(tenant).notify();
    let channel = repo.channel(name).await?;
    let users = repo.rules_naming_channel(&channel.name).await?;
    if !users.is_empty() {
        return Err(ManageError::Conflict(format!(
            "the channel {name} is used by the rules {}; change them first",
            users.join(", ")
        )));
    }
    repo.delete_channel(&channel.id).await?;
    Ok(())
}

/// Checks a rule body: its spec, and that its channels and templates exist.
async fn check_rule(
    store: &Store,
    tenant: &TenantId,
    body: &Value,
) -> Result<RuleSpec, ManageError> {
    let spec = RuleSpec::parse(body).map_err(|err| invalid(&err.pointer, err.message))?;
    let repo = store.tenant(tenant).notify();
    for (i, action) in spec.actions.iter().enumerate() {
        match repo.channel(&action.channel).await {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(invalid(
                    &format!("/actions/{i}/channel"),
                    format!("no channel named {:?}", action.channel),
                ))
            }
            Err(err) => return Err(err.into()),
        }
        if let Some(name) = &action.template {
            match repo.template(name).await {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => {
                    return Err(invalid(
                        &format!("/actions/{i}/template"),
                        format!("no template named {name:?}"),
                    ))
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
    Ok(spec)
}

/// Creates or replaces the rule `name`.
pub async fn put_rule(
    store: &Store,
    tenant: &TenantId,
    name: &str,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<RuleRecord, ManageError> {
    let mut body = body.clone();
    match body.get("name") {
        None => {
            if let Some(o) = body.as_object_mut() {
                o.insert("name".into(), json!(name));
            }
        }
        Some(n) if n == name => {}
        Some(_) => return Err(invalid("/name", "differs from the name in the path")),
    }
    let spec = check_rule(store, tenant, &body).await?;
    let repo = store.tenant(tenant).notify();
    match repo.rule(name).await {
        Ok(existing) => Ok(repo
            .update_rule(&existing.id, spec.enabled, &body, now)
            .await?),
        Err(StoreError::NotFound(_)) => {
            Ok(repo.create_rule(name, spec.enabled, &body, now).await?)
        }
        Err(err) => Err(err.into()),
    }
}

/// Which of the tenant's last `limit` events a draft rule would have matched.
pub async fn preview(
    store: &Store,
    tenant: &TenantId,
    body: &Value,
    limit: u32,
) -> Result<Value, ManageError> {
    let spec = check_rule(store, tenant, body).await?;
    let events: Vec<EventRow> = store
        .tenant(tenant)
        .notify()
        .recent_events(limit)
        .await?
        .into_iter()
        .map(|(seq, kind, dedupe_key, payload, created_at)| EventRow {
            seq,
            tenant: Some(tenant.clone()),
            kind,
            dedupe_key,
            payload,
            created_at,
        })
        .collect();
    Ok(preview_events(&spec, tenant, &events))
}

/// Creates or replaces a template, refused with its line and column when it does not
/// compile or render.
pub async fn put_template(
    store: &Store,
    tenant: &TenantId,
    name: &str,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<TemplateRecord, ManageError> {
    let channel_type = body["channel_type"]
        .as_str()
        .ok_or_else(|| invalid("/channel_type", "required: email, webhook, slack or teams"))?;
    if !["email", "webhook", "slack", "teams"].contains(&channel_type) {
        return Err(invalid(
            "/channel_type",
            format!("{channel_type:?} is not a channel type (email, webhook, slack, teams)"),
        ));
    }
    let source = body["source"]
        .as_str()
        .ok_or_else(|| invalid("/source", "required: the template's text"))?;
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(invalid(
            "/source",
            format!("{} bytes; at most {MAX_TEMPLATE_BYTES}", source.len()),
        ));
    }
    template::check_template(source).map_err(|err| {
        invalid(
            "/source",
            format!("line {}, column {}: {}", err.line, err.column, err.message),
        )
    })?;
    Ok(store
        .tenant(tenant)
        .notify()
        .put_template(name, channel_type, source, now)
        .await?)
}

/// Sends a test message through a channel now (no quiet hours, no throttle).
pub async fn test_channel(
    store: &Store,
    registry: &Registry,
    tenant: &TenantId,
    name: &str,
    now: DateTime<Utc>,
) -> Result<DeliveryRecord, ManageError> {
    let repo = store.tenant(tenant).notify();
    let channel = repo.channel(name).await?;
    let id = DeliveryId::generate();
    let event = Envelope {
        id: format!("evt_test_{}", id.as_str().trim_start_matches("dlv_")),
        kind: "notify.test".into(),
        version: 1,
        tenant: tenant.to_string(),
        occurred_at: now,
        correlation_id: Some(id.to_string()),
        trace_id: None,
        payload: json!({
            "channel": channel.name,
            "message": format!("A test message from Stella to the channel {}", channel.name),
        }),
    };
    let params = NotifyParams::Delivery {
        delivery_id: id.to_string(),
        channel_id: channel.id.clone(),
        rule_id: None,
        template: None,
        event: serde_json::to_value(&event).unwrap_or(Value::Null),
        immediate: true,
    };
    let key = format!("test:{id}");
    let delivery = NewDelivery {
        tenant: tenant.clone(),
        id,
        dedupe_key: key.clone(),
        event_id: event.id.clone(),
        event_kind: event.kind.clone(),
        event_seq: 0,
        rule_id: None,
        channel_id: ChannelId::parse(&channel.id)?,
        channel_type: channel.channel_type.clone(),
        mode: "test".into(),
        job_id: None,
        status: "pending".into(),
    };
    start(store, registry, tenant, delivery, &params, key, now).await
}

/// Sends a delivery again, with the same id on the wire (a receiver that got it before
/// drops the copy): for one that was dead-lettered, or to repeat one.
pub async fn redeliver(
    store: &Store,
    registry: &Registry,
    tenant: &TenantId,
    delivery_id: &str,
    now: DateTime<Utc>,
) -> Result<DeliveryRecord, ManageError> {
    let repo = store.tenant(tenant).notify();
    let delivery = repo.delivery(delivery_id).await?;
    if matches!(delivery.status.as_str(), "pending" | "held") {
        return Err(ManageError::Conflict(format!(
            "the delivery {delivery_id} is {}; it will be sent",
            delivery.status
        )));
    }
    if delivery.mode == "digest" && delivery.event_kind == "notify.digest" {
        return Err(ManageError::Conflict(
            "a digest is sent again by redelivering the deliveries it summarised".into(),
        ));
    }
    let from_job = match &delivery.job_id {
        Some(job) => {
            let job = store.tenant(tenant).jobs().get(&JobId::parse(job)?).await?;
            serde_json::from_value::<NotifyParams>(job.params).ok()
        }
        None => None,
    };
    let (event, template) = match from_job {
        Some(NotifyParams::Delivery {
            event, template, ..
        }) => (event, template),
        _ => (
            repo.digest_event(delivery_id).await?.ok_or_else(|| {
                ManageError::Conflict(format!("the delivery {delivery_id} has no event to send"))
            })?,
            None,
        ),
    };
    let params = NotifyParams::Delivery {
        delivery_id: delivery.id.clone(),
        channel_id: delivery.channel_id.clone(),
        rule_id: delivery.rule_id.clone(),
        template,
        event,
        immediate: true,
    };
    let attempts = repo.attempts(&delivery.id).await?.len();
    let key = format!("redeliver:{}:{attempts}", delivery.id);
    let request = JobRequest::of::<Notify>(&params)?.with_key(key);
    let submitted = submit(store, registry, tenant, &request, now).await?;
    repo.set_delivery(&delivery.id, "pending", Some(&submitted.job.id), None, now)
        .await?;
    Ok(repo.delivery(&delivery.id).await?)
}

async fn start(
    store: &Store,
    registry: &Registry,
    tenant: &TenantId,
    mut delivery: NewDelivery,
    params: &NotifyParams,
    key: String,
    now: DateTime<Utc>,
) -> Result<DeliveryRecord, ManageError> {
    let request = JobRequest::of::<Notify>(params)?.with_key(key);
    let submitted = submit(store, registry, tenant, &request, now).await?;
    delivery.job_id = Some(submitted.job.id.clone());
    Ok(store
        .tenant(tenant)
        .notify()
        .insert_delivery(&delivery, now)
        .await?)
}
