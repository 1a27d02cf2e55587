//! The notify job's steps: `route`, `send` (one delivery) and `compose` (a digest).

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use stella_domain::notify::{
    self as domain, ChannelConfig, ChannelSpec, ChannelType, Envelope, QuietMode, Rendered, Summary,
};
use stella_store::repo::{AttemptEnd, Effect, NewDelivery, NewDigestItem, Notify as NotifyRepo};
use stella_store::{ChannelId, DeliveryId, RuleId, StoreError};
use stella_supervisor::{StepContext, StepError, StepOutcome};

use super::manage::{open_secret, ChannelSecret};
use super::wire::{self, Mail, WireOutcome};
use super::{NotifyDeps, NotifyParams, NotifyStep};

fn store_err(err: StoreError) -> StepError {
    match err {
        StoreError::NotFound(what) => StepError::abort(format!("{what} does not exist")),
        StoreError::Invalid(why) | StoreError::Corrupt(why) => StepError::abort(why),
        other => StepError::retry(other.to_string()).with_source(other),
    }
}

/// A channel as a step needs it: its spec and its opened secret.
struct Channel {
    id: String,
    name: String,
    spec: ChannelSpec,
    secret: ChannelSecret,
}

async fn channel(
    deps: &NotifyDeps,
    repo: &NotifyRepo<'_>,
    tenant: &str,
    id: &str,
) -> Result<Channel, StepError> {
    let (record, sealed) = repo.channel_with_secret(id).await.map_err(store_err)?;
    let spec = ChannelSpec::parse(&record.spec).map_err(|err| {
        StepError::abort(format!("the channel {} is invalid: {err}", record.name))
    })?;
    let secret = open_secret(&deps.secrets, tenant, &record.name, sealed.as_deref())
        .map_err(|err| StepError::abort(format!("the channel {}: {err}", record.name)))?;
    Ok(Channel {
        id: record.id,
        name: record.name,
        spec,
        secret,
    })
}

fn envelope(value: &Value) -> Result<Envelope, StepError> {
    serde_json::from_value(value.clone())
        .map_err(|err| StepError::abort(format!("the event envelope is invalid: {err}")))
}

/// Quiet hours and the throttle, for an instant delivery.
pub(super) async fn route(
    deps: &NotifyDeps,
    params: &NotifyParams,
    ctx: &mut StepContext<'_>,
) -> Result<StepOutcome<NotifyStep>, StepError> {
    let NotifyParams::Delivery {
        delivery_id,
        channel_id,
        rule_id,
        template,
        event,
        immediate,
    } = params
    else {
        return Err(StepError::abort("route: not a delivery"));
    };
    if *immediate {
        // Sent here rather than as a step of its own: one trip through the mailbox.
        return send(deps, params, ctx).await;
    }
    let tenant = ctx.job.tenant.clone();
    let repo = ctx.store.tenant(&tenant).notify();
    let channel = channel(deps, &repo, tenant.as_str(), channel_id).await?;
    let now = ctx.now;
    let fold = |group_key: String, reason: &'static str, due_at: DateTime<Utc>| NewDigestItem {
        tenant: tenant.clone(),
        group_key,
        channel_id: ChannelId::parse(&channel.id).unwrap_or_else(|_| ChannelId::generate()),
        rule_id: rule_id.as_deref().and_then(|r| RuleId::parse(r).ok()),
        template: template.clone(),
        delivery_id: DeliveryId::parse(delivery_id).unwrap_or_else(|_| DeliveryId::generate()),
        reason: reason.to_owned(),
        event: event.clone(),
        due_at,
    };
    if let Some(quiet) = &channel.spec.quiet_hours {
        if let Some(until) = quiet.quiet_until(now) {
            match quiet.mode {
                QuietMode::Hold => {
                    let detail = json!({ "held_until": until });
                    repo.set_delivery(delivery_id, "held", None, Some(&detail), now)
                        .await
                        .map_err(store_err)?;
                    deps.metrics.held.inc();
                    return Ok(StepOutcome::Later(NotifyStep::Send, until));
                }
                QuietMode::Digest => {
                    let item = fold(format!("quiet:{}", channel.id), "quiet", until);
                    repo.add_digest_item(&item, now).await.map_err(store_err)?;
                    repo.set_delivery(delivery_id, "digested", None, None, now)
                        .await
                        .map_err(store_err)?;
                    deps.metrics.digested.inc();
                    return Ok(StepOutcome::Done(
                        json!({ "outcome": "digested", "until": until }),
                    ));
                }
            }
        }
    }
    // A retry of this step was admitted by its first attempt: it takes no second slot.
    let (start, end) = channel.spec.throttle.window_of(now);
    let taken = ctx.attempt > 1
        || repo
            .take_throttle(&channel.id, start, channel.spec.throttle.max)
            .await
            .map_err(store_err)?;
    if !taken {
        let item = fold(format!("throttle:{}", channel.id), "throttled", end);
        repo.add_digest_item(&item, now).await.map_err(store_err)?;
        repo.set_delivery(delivery_id, "throttled", None, None, now)
            .await
            .map_err(store_err)?;
        deps.metrics
            .throttled
            .with_label_values(&[channel.spec.config.channel_type().as_str()])
            .inc();
        return Ok(StepOutcome::Done(
            json!({ "outcome": "throttled", "digest_at": end }),
        ));
    }
    // Sent here rather than as a step of its own: one trip through the mailbox per
    // delivery, the channel read once. (`send` stays a step for deliveries held through
    // quiet hours.)
    send_to(deps, &repo, &channel, params, ctx).await
}

/// Renders and sends one delivery.
pub(super) async fn send(
    deps: &NotifyDeps,
    params: &NotifyParams,
    ctx: &mut StepContext<'_>,
) -> Result<StepOutcome<NotifyStep>, StepError> {
    let NotifyParams::Delivery { channel_id, .. } = params else {
        return Err(StepError::abort("send: not a delivery"));
    };
    let tenant = ctx.job.tenant.clone();
    let repo = ctx.store.tenant(&tenant).notify();
    let channel = channel(deps, &repo, tenant.as_str(), channel_id).await?;
    send_to(deps, &repo, &channel, params, ctx).await
}

/// [`send`] to a channel already read (`route` has it).
async fn send_to(
    deps: &NotifyDeps,
    repo: &NotifyRepo<'_>,
    channel: &Channel,
    params: &NotifyParams,
    ctx: &mut StepContext<'_>,
) -> Result<StepOutcome<NotifyStep>, StepError> {
    let NotifyParams::Delivery {
        delivery_id,
        template,
        event,
        ..
    } = params
    else {
        return Err(StepError::abort("send: not a delivery"));
    };
    let event = envelope(event)?;
    let kind = channel.spec.config.channel_type();
    let message = if kind == ChannelType::Webhook {
        Message::Webhook(domain::webhook::webhook_body(&event))
    } else {
        let source = template_source(repo, template.as_deref()).await?;
        let (rendered, fallback) =
            render_or_fall_back(deps, template.as_deref(), kind, |shipped| {
                domain::template::render(
                    if shipped { None } else { source.as_deref() },
                    kind,
                    &event,
                )
            })?;
        if let Some(detail) = &fallback {
            repo.set_delivery(delivery_id, "pending", None, Some(detail), ctx.now)
                .await
                .map_err(store_err)?;
        }
        Message::Rendered {
            rendered,
            summary: Summary::of_event(&event),
        }
    };
    let outcome = transmit(deps, repo, channel, delivery_id, message, ctx).await?;
    ctx.stage(Effect::NotifyDelivered {
        delivery_id: delivery_id.clone(),
        detail: None,
    });
    Ok(StepOutcome::Done(outcome))
}

/// Claims a digest's items and sends one message for them; nothing for none.
pub(super) async fn compose(
    deps: &NotifyDeps,
    params: &NotifyParams,
    ctx: &mut StepContext<'_>,
) -> Result<StepOutcome<NotifyStep>, StepError> {
    let NotifyParams::Digest {
        group_key,
        generation,
        channel_id,
        rule_id,
        template,
        ..
    } = params
    else {
        return Err(StepError::abort("compose: not a digest"));
    };
    let tenant = ctx.job.tenant.clone();
    let repo = ctx.store.tenant(&tenant).notify();
    let items = repo
        .claim_digest(group_key, *generation, &ctx.job.id, ctx.now)
        .await
        .map_err(store_err)?;
    if items.is_empty() {
        return Ok(StepOutcome::Done(json!({ "outcome": "empty" })));
    }
    for item in &items {
        repo.carry(&item.delivery_id, &ctx.job.id, ctx.now)
            .await
            .map_err(store_err)?;
    }
    let channel = channel(deps, &repo, tenant.as_str(), channel_id).await?;
    let events = items
        .iter()
        .map(|item| envelope(&item.event))
        .collect::<Result<Vec<_>, _>>()?;
    let throttled =
        u32::try_from(items.iter().filter(|i| i.reason == "throttled").count()).unwrap_or(u32::MAX);
    let first = events
        .iter()
        .map(|e| e.occurred_at)
        .min()
        .unwrap_or(ctx.now);
    let window = (first, ctx.now);
    // The digest is a delivery of its own (one per digest job), so it has receipts and a
    // stable id on the wire.
    let kind = channel.spec.config.channel_type();
    let digest = repo
        .insert_delivery(
            &NewDelivery {
                tenant: tenant.clone(),
                id: DeliveryId::generate(),
                dedupe_key: format!("digest:{}", ctx.job.id),
                event_id: String::new(),
                event_kind: "notify.digest".into(),
                event_seq: 0,
                rule_id: rule_id.as_deref().and_then(|r| RuleId::parse(r).ok()),
                channel_id: ChannelId::parse(&channel.id).map_err(store_err)?,
                channel_type: kind.as_str().to_owned(),
                mode: "digest".into(),
                job_id: Some(ctx.job.id.clone()),
                status: "pending".into(),
            },
            ctx.now,
        )
        .await
        .map_err(store_err)?;
    let message = if kind == ChannelType::Webhook {
        Message::Webhook(domain::webhook::webhook_body(&domain::digest_envelope(
            &digest.id,
            tenant.as_str(),
            group_key,
            ctx.now,
            &events,
            window,
            throttled,
        )))
    } else {
        let source = template_source(&repo, template.as_deref()).await?;
        let (rendered, fallback) =
            render_or_fall_back(deps, template.as_deref(), kind, |shipped| {
                domain::template::render_digest(
                    if shipped { None } else { source.as_deref() },
                    kind,
                    &events,
                    window,
                    throttled,
                )
            })?;
        if let Some(detail) = &fallback {
            repo.set_delivery(&digest.id, "pending", None, Some(detail), ctx.now)
                .await
                .map_err(store_err)?;
        }
        Message::Rendered {
            rendered,
            summary: Summary::of_digest(&events, window, throttled),
        }
    };
    let mut outcome = transmit(deps, &repo, &channel, &digest.id, message, ctx).await?;
    // The digest and every event it summarised are delivered with the step's commit.
    ctx.stage(Effect::NotifyDelivered {
        delivery_id: digest.id.clone(),
        detail: None,
    });
    let detail = json!({ "digest": digest.id });
    for item in &items {
        ctx.stage(Effect::NotifyDelivered {
            delivery_id: item.delivery_id.clone(),
            detail: Some(detail.clone()),
        });
    }
    outcome["events"] = json!(items.len());
    outcome["digest_delivery"] = json!(digest.id);
    Ok(StepOutcome::Done(outcome))
}

/// Renders with the tenant's template, or, when that fails for this event (it saved
/// fine but, say, reads the length of a field this event lacks), with the shipped one
/// for the channel type: the notification is sent rather than lost, and the returned
/// detail (recorded on the delivery) says which template failed and why. `render(false)`
/// renders with the tenant's template (or the shipped one when there is none),
/// `render(true)` with the shipped one.
fn render_or_fall_back(
    deps: &NotifyDeps,
    template: Option<&str>,
    kind: ChannelType,
    render: impl Fn(bool) -> Result<Rendered, domain::TemplateError>,
) -> Result<(Rendered, Option<Value>), StepError> {
    let err = match (render(false), template) {
        (Ok(rendered), _) => return Ok((rendered, None)),
        (Err(err), Some(_)) => err,
        (Err(err), None) => {
            return Err(StepError::abort(format!(
                "the shipped {} template does not render: {err}",
                kind.as_str()
            )))
        }
    };
    let name = template.unwrap_or_default();
    tracing::warn!(template = name, error = %err, "a tenant template failed to render; sent with the shipped one");
    deps.metrics
        .template_fallbacks
        .with_label_values(&[kind.as_str()])
        .inc();
    let rendered = render(true).map_err(|shipped| {
        StepError::abort(format!(
            "the template {name} does not render ({err}), nor does the shipped {} one: {shipped}",
            kind.as_str()
        ))
    })?;
    let detail = json!({
        "template": name,
        "template_error": format!(
            "the template {name} did not render for this event: {err}; sent with the shipped {} template",
            kind.as_str()
        ),
    });
    Ok((rendered, Some(detail)))
}

async fn template_source(
    repo: &NotifyRepo<'_>,
    name: Option<&str>,
) -> Result<Option<String>, StepError> {
    match name {
        None => Ok(None),
        Some(name) => Ok(Some(repo.template(name).await.map_err(store_err)?.source)),
    }
}

/// A message as its channel type needs it: a webhook's JSON body (the envelope, which no
/// template touches, so nothing is rendered for a webhook), or the rendered text and the
/// facts that email, Slack and Teams lay out.
enum Message {
    Webhook(Vec<u8>),
    Rendered {
        rendered: Rendered,
        summary: Summary,
    },
}

/// One wire attempt of a delivery, with its receipt; the step's error says whether and
/// when to try again. The receipt of an attempt the receiver took is staged to commit
/// with the step; a failed one's is written at once (a failed step's staged writes are
/// dropped).
async fn transmit(
    deps: &NotifyDeps,
    repo: &NotifyRepo<'_>,
    channel: &Channel,
    delivery_id: &str,
    message: Message,
    ctx: &mut StepContext<'_>,
) -> Result<Value, StepError> {
    let now = ctx.now;
    let (url, headers, body) = match (&channel.spec.config, message) {
        (ChannelConfig::Email { to }, Message::Rendered { rendered, .. }) => {
            let attempt = repo
                .begin_attempt(delivery_id, now)
                .await
                .map_err(store_err)?;
            let sent = send_mail(deps, delivery_id, to, &rendered).await;
            return receipt(deps, repo, channel, delivery_id, attempt, sent, ctx).await;
        }
        (ChannelConfig::Webhook { url }, Message::Webhook(body)) => {
            let signing = channel.secret.signing_secrets(now);
            let headers = domain::webhook::headers(delivery_id, now.timestamp(), &body, &signing);
            (url.clone(), headers, body)
        }
        (ChannelConfig::Slack { .. }, Message::Rendered { rendered, summary }) => (
            channel.secret.url.clone().unwrap_or_default(),
            Vec::new(),
            serde_json::to_vec(&domain::slack::slack_payload(&rendered, &summary))
                .unwrap_or_default(),
        ),
        (ChannelConfig::Teams { .. }, Message::Rendered { rendered, summary }) => (
            channel.secret.url.clone().unwrap_or_default(),
            Vec::new(),
            serde_json::to_vec(&domain::teams::teams_payload(&rendered, &summary))
                .unwrap_or_default(),
        ),
        _ => {
            return Err(StepError::abort(
                "the message does not fit its channel's type",
            ))
        }
    };
    let mut all: Vec<(String, String)> = headers
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    all.push(("content-type".into(), "application/json".into()));
    let attempt = repo
        .begin_attempt(delivery_id, now)
        .await
        .map_err(store_err)?;
    let posted = wire::deliver(&deps.outbound, &url, &all, Bytes::from(body), deps.timeout).await;
    let sent = Sent {
        outcome: posted.outcome,
        status_code: posted.status,
        latency: posted.latency,
        error: posted.error,
        head: posted.body_head,
    };
    receipt(deps, repo, channel, delivery_id, attempt, sent, ctx).await
}

/// Records one attempt's receipt and says what it means for the step.
async fn receipt(
    deps: &NotifyDeps,
    repo: &NotifyRepo<'_>,
    channel: &Channel,
    delivery_id: &str,
    attempt: u32,
    sent: Sent,
    ctx: &mut StepContext<'_>,
) -> Result<Value, StepError> {
    let type_name = channel.spec.config.channel_type().as_str();
    let latency_ms = u64::try_from(sent.latency.as_millis()).unwrap_or(u64::MAX);
    deps.metrics
        .latency
        .with_label_values(&[type_name])
        .observe(sent.latency.as_secs_f64());
    if sent.outcome == WireOutcome::Delivered {
        ctx.stage(Effect::NotifyAttemptOk {
            delivery_id: delivery_id.to_owned(),
            attempt,
            status_code: sent.status_code,
            latency_ms: Some(latency_ms),
            response_head: sent.head.clone(),
        });
    } else {
        repo.end_attempt(
            delivery_id,
            attempt,
            &AttemptEnd {
                ok: false,
                status_code: sent.status_code,
                latency_ms: Some(latency_ms),
                error: sent.error.clone(),
                response_head: sent.head.clone(),
            },
        )
        .await
        .map_err(store_err)?;
    }
    let (label, result) = match sent.outcome {
        WireOutcome::Delivered => (
            "delivered",
            Ok(json!({
                "outcome": "delivered",
                "delivery_id": delivery_id,
                "channel": channel.name,
                "attempt": attempt,
                "status_code": sent.status_code,
            })),
        ),
        WireOutcome::Retry { after } => {
            let why = sent.error.unwrap_or_else(|| "the attempt failed".into());
            (
                "retrying",
                Err(match after {
                    Some(after) => StepError::retry_after(why, after),
                    None => StepError::retry(why),
                }),
            )
        }
        WireOutcome::Failed => (
            "failed",
            Err(StepError::abort(sent.error.unwrap_or_else(|| {
                "the receiver refused the message".into()
            }))),
        ),
    };
    deps.metrics
        .deliveries
        .with_label_values(&[type_name, label])
        .inc();
    result
}

/// One attempt as the receipt records it, whatever the channel.
struct Sent {
    outcome: WireOutcome,
    status_code: Option<u16>,
    latency: Duration,
    error: Option<String>,
    head: Option<String>,
}

async fn send_mail(
    deps: &NotifyDeps,
    delivery_id: &str,
    to: &[String],
    rendered: &Rendered,
) -> Sent {
    let started = Instant::now();
    let mailer = match &deps.mailer {
        Ok(mailer) => mailer,
        Err(err) => {
            return Sent {
                outcome: WireOutcome::Failed,
                status_code: None,
                latency: started.elapsed(),
                error: Some(format!("no usable SMTP settings: {err}")),
                head: None,
            }
        }
    };
    let mail = Mail {
        from: None,
        to: to.to_vec(),
        subject: rendered.subject.clone(),
        text: rendered.text.clone(),
        html: rendered.html.clone(),
        message_id: delivery_id.to_owned(),
        headers: vec![("X-Stella-Delivery".into(), delivery_id.to_owned())],
    };
    match mailer.send(&mail).await {
        Ok(receipt) => Sent {
            outcome: WireOutcome::Delivered,
            status_code: Some(receipt.code),
            latency: receipt.latency,
            error: None,
            head: Some(receipt.answer),
        },
        Err(err) => Sent {
            outcome: err.outcome(),
            status_code: err.code(),
            latency: started.elapsed(),
            error: Some(err.to_string()),
            head: None,
        },
    }
}
